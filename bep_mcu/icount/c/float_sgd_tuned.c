/*
 * float_sgd_tuned.c - the float baseline as a careful user would tune it for one network.
 *
 * The same step as float_sgd.c (ReLU hidden layer, softmax + cross-entropy output, plain
 * SGD in place, the same shared fsgd_exp), operation for operation in the same order, so
 * both give the same floats bit for bit. What changes is how the loops are written:
 *   - the shapes are compile-time constants (-DFSGD_IN, -DFSGD_HIDDEN, -DFSGD_OUT): the
 *     net's n_in, n_hidden and n_out are not read; every loop bound and row stride is known;
 *   - `restrict` pointers, so the compiler keeps loads in registers across stores;
 *   - the hidden layer's forward pass takes FSGD_ROWS rows per pass over the input (each
 *     input value loaded once for them all, one accumulator per row);
 *   - the W1 update takes two active rows per pass over the input, and the inner loops of
 *     the output layer and the updates are unrolled by FSGD_UNROLL.
 * Each row's sum still runs over its inputs in index order and each weight moves by
 * step * input, so the rounding is that of float_sgd.c.
 */
#include "float_sgd.h"

#if !defined(FSGD_IN) || !defined(FSGD_HIDDEN) || !defined(FSGD_OUT)
#error "build with -DFSGD_IN=<inputs> -DFSGD_HIDDEN=<hidden units> -DFSGD_OUT=<classes>"
#endif

#define FSGD_ROWS 8   /* hidden rows per pass over the input in the forward pass */
#define FSGD_UNROLL 8 /* inner loops of the output layer and the updates */

typedef char fsgd_shape_check[(FSGD_HIDDEN % FSGD_ROWS == 0 && FSGD_IN % FSGD_UNROLL == 0 &&
                               FSGD_HIDDEN % FSGD_UNROLL == 0 && FSGD_HIDDEN < 65536) ? 1 : -1];

/* w[i] -= step * x[i] for i < n, FSGD_UNROLL at a time (n a multiple of FSGD_UNROLL). */
static inline void fsgd_axpy(float *restrict w, const float *restrict x, float step, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i += FSGD_UNROLL) {
        w[i] -= step * x[i];
        w[i + 1] -= step * x[i + 1];
        w[i + 2] -= step * x[i + 2];
        w[i + 3] -= step * x[i + 3];
        w[i + 4] -= step * x[i + 4];
        w[i + 5] -= step * x[i + 5];
        w[i + 6] -= step * x[i + 6];
        w[i + 7] -= step * x[i + 7];
    }
}

uint32_t fsgd_train_step(const fsgd_mlp_t *net, const float *x_in, uint32_t label, float lr)
{
    float *restrict w1 = net->w1, *restrict b1 = net->b1, *restrict w2 = net->w2, *restrict b2 = net->b2;
    float *restrict hidden = net->hidden, *restrict delta = net->delta, *restrict prob = net->prob;
    const float *restrict x = x_in;
    uint16_t active[FSGD_HIDDEN]; /* hidden units whose ReLU passes the error, in order */
    uint32_t i, j, k, n_active = 0, best = 0;
    float sum = 0.0f, top;
    for (j = 0; j < FSGD_HIDDEN; j += FSGD_ROWS) { /* hidden = ReLU(W1 x + b1), eight rows at once */
        const float *restrict w = w1 + j * FSGD_IN;
        float s0 = b1[j], s1 = b1[j + 1], s2 = b1[j + 2], s3 = b1[j + 3];
        float s4 = b1[j + 4], s5 = b1[j + 5], s6 = b1[j + 6], s7 = b1[j + 7];
        for (i = 0; i < FSGD_IN; ++i) {
            const float xi = x[i];
            s0 += w[i] * xi;
            s1 += w[FSGD_IN + i] * xi;
            s2 += w[2 * FSGD_IN + i] * xi;
            s3 += w[3 * FSGD_IN + i] * xi;
            s4 += w[4 * FSGD_IN + i] * xi;
            s5 += w[5 * FSGD_IN + i] * xi;
            s6 += w[6 * FSGD_IN + i] * xi;
            s7 += w[7 * FSGD_IN + i] * xi;
        }
        hidden[j] = s0 > 0.0f ? s0 : 0.0f;
        hidden[j + 1] = s1 > 0.0f ? s1 : 0.0f;
        hidden[j + 2] = s2 > 0.0f ? s2 : 0.0f;
        hidden[j + 3] = s3 > 0.0f ? s3 : 0.0f;
        hidden[j + 4] = s4 > 0.0f ? s4 : 0.0f;
        hidden[j + 5] = s5 > 0.0f ? s5 : 0.0f;
        hidden[j + 6] = s6 > 0.0f ? s6 : 0.0f;
        hidden[j + 7] = s7 > 0.0f ? s7 : 0.0f;
    }
    for (k = 0; k < FSGD_OUT; ++k) { /* logits = W2 hidden + b2 */
        const float *restrict w = w2 + k * FSGD_HIDDEN;
        float s = b2[k];
        for (j = 0; j < FSGD_HIDDEN; j += FSGD_UNROLL) { /* one accumulator: the sum keeps its order */
            s += w[j] * hidden[j];
            s += w[j + 1] * hidden[j + 1];
            s += w[j + 2] * hidden[j + 2];
            s += w[j + 3] * hidden[j + 3];
            s += w[j + 4] * hidden[j + 4];
            s += w[j + 5] * hidden[j + 5];
            s += w[j + 6] * hidden[j + 6];
            s += w[j + 7] * hidden[j + 7];
        }
        prob[k] = s;
        if (s > prob[best]) best = k;
    }
    top = prob[best];
    for (k = 0; k < FSGD_OUT; ++k) { /* softmax, shifted by the largest logit */
        prob[k] = fsgd_exp(prob[k] - top);
        sum += prob[k];
    }
    sum = 1.0f / sum;
    for (k = 0; k < FSGD_OUT; ++k) { /* dL/dlogit = p - onehot; back-propagate (delta starts at k = 0), move W2 */
        float *restrict w = w2 + k * FSGD_HIDDEN;
        const float g = prob[k] * sum - (k == label ? 1.0f : 0.0f), step = lr * g;
        if (k == 0) {
            for (j = 0; j < FSGD_HIDDEN; ++j) delta[j] = 0.0f + w[j] * g;
        } else {
            for (j = 0; j < FSGD_HIDDEN; j += FSGD_UNROLL) {
                delta[j] += w[j] * g;
                delta[j + 1] += w[j + 1] * g;
                delta[j + 2] += w[j + 2] * g;
                delta[j + 3] += w[j + 3] * g;
                delta[j + 4] += w[j + 4] * g;
                delta[j + 5] += w[j + 5] * g;
                delta[j + 6] += w[j + 6] * g;
                delta[j + 7] += w[j + 7] * g;
            }
        }
        fsgd_axpy(w, hidden, step, FSGD_HIDDEN);
        b2[k] -= step;
    }
    for (j = 0; j < FSGD_HIDDEN; ++j) /* W1 moves only where the ReLU passed the error */
        if (hidden[j] > 0.0f) active[n_active++] = (uint16_t)j;
    for (k = 0; k + 1 < n_active; k += 2) { /* two rows per pass over the input */
        float *restrict wa = w1 + active[k] * FSGD_IN, *restrict wb = w1 + active[k + 1] * FSGD_IN;
        const float step_a = lr * delta[active[k]], step_b = lr * delta[active[k + 1]];
        for (i = 0; i < FSGD_IN; i += FSGD_UNROLL / 2) {
            const float x0 = x[i], x1 = x[i + 1], x2 = x[i + 2], x3 = x[i + 3];
            wa[i] -= step_a * x0;
            wb[i] -= step_b * x0;
            wa[i + 1] -= step_a * x1;
            wb[i + 1] -= step_b * x1;
            wa[i + 2] -= step_a * x2;
            wb[i + 2] -= step_b * x2;
            wa[i + 3] -= step_a * x3;
            wb[i + 3] -= step_b * x3;
        }
        b1[active[k]] -= step_a;
        b1[active[k + 1]] -= step_b;
    }
    if (k < n_active) { /* an odd one out */
        const float step = lr * delta[active[k]];
        fsgd_axpy(w1 + active[k] * FSGD_IN, x, step, FSGD_IN);
        b1[active[k]] -= step;
    }
    return best;
}
