/*
 * float_sgd.c - the float baseline that BEP's instruction counts are set against.
 *
 * What a device would otherwise run to learn on-line: a compact, plain float32 SGD step
 * of the same MLP shape (ReLU hidden layer, softmax + cross-entropy output), written as
 * a careful C programmer would, with no deliberate slowness: weights updated in place
 * (no gradient buffer), hidden units whose ReLU is off skipped in the backward pass and
 * the update, the softmax's exponential computed without libm. Built hard-float for
 * Cortex-M4F (fpv4-sp-d16) and soft-float (libgcc) for Cortex-M0 by bep_mcu/icount.
 */
#include "float_sgd.h"

uint32_t fsgd_train_step(const fsgd_mlp_t *net, const float *x, uint32_t label, float lr)
{
    const uint32_t n_in = net->n_in, n_hidden = net->n_hidden, n_out = net->n_out;
    uint32_t i, j, k, best = 0;
    float sum = 0.0f, top;
    for (j = 0; j < n_hidden; ++j) { /* hidden = ReLU(W1 x + b1) */
        const float *w = net->w1 + j * n_in;
        float s = net->b1[j];
        for (i = 0; i < n_in; ++i) s += w[i] * x[i];
        net->hidden[j] = s > 0.0f ? s : 0.0f;
        net->delta[j] = 0.0f;
    }
    for (k = 0; k < n_out; ++k) { /* logits = W2 hidden + b2 */
        const float *w = net->w2 + k * n_hidden;
        float s = net->b2[k];
        for (j = 0; j < n_hidden; ++j) s += w[j] * net->hidden[j];
        net->prob[k] = s;
        if (s > net->prob[best]) best = k;
    }
    top = net->prob[best];
    for (k = 0; k < n_out; ++k) { /* softmax, shifted by the largest logit */
        net->prob[k] = fsgd_exp(net->prob[k] - top);
        sum += net->prob[k];
    }
    sum = 1.0f / sum;
    for (k = 0; k < n_out; ++k) { /* dL/dlogit = p - onehot; back-propagate, then move W2 */
        float *w = net->w2 + k * n_hidden;
        const float g = net->prob[k] * sum - (k == label ? 1.0f : 0.0f), step = lr * g;
        for (j = 0; j < n_hidden; ++j) {
            net->delta[j] += w[j] * g;
            w[j] -= step * net->hidden[j];
        }
        net->b2[k] -= step;
    }
    for (j = 0; j < n_hidden; ++j) { /* W1 moves only where the ReLU passed the error */
        if (net->hidden[j] > 0.0f) {
            float *w = net->w1 + j * n_in;
            const float step = lr * net->delta[j];
            for (i = 0; i < n_in; ++i) w[i] -= step * x[i];
            net->b1[j] -= step;
        }
    }
    return best;
}
