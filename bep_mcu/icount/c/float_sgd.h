/*
 * float_sgd.h - the on-device float baseline: one plain SGD step of a float32 MLP.
 */
#ifndef FLOAT_SGD_H
#define FLOAT_SGD_H

#include <stdint.h>

/* One hidden layer: ReLU hidden units, a softmax output trained with cross-entropy.
 * All arrays are caller-owned; `hidden`, `delta` and `prob` are scratch for one step. */
typedef struct {
    uint32_t n_in, n_hidden, n_out;
    float *w1;     /* n_hidden x n_in, row-major */
    float *b1;     /* n_hidden */
    float *w2;     /* n_out x n_hidden, row-major */
    float *b2;     /* n_out */
    float *hidden; /* n_hidden: ReLU activations of the sample */
    float *delta;  /* n_hidden: error back-propagated to the hidden layer */
    float *prob;   /* n_out: softmax output */
} fsgd_mlp_t;

/* e^x for x <= 0 (softmax of logits shifted by their maximum): x = k ln2 + r with
 * |r| <= ln2 / 2 (ln2 split in two for an exact k ln2), e^r by its degree-6 Taylor
 * polynomial (relative error below 3e-7), 2^k built in the exponent field. Shared by both
 * baselines (float_sgd.c, float_sgd_tuned.c) so that they compute the same softmax. */
static inline float fsgd_exp(float x)
{
    float k, r, p, scale;
    uint32_t bits;
    if (x < -87.0f) return 0.0f; /* below the smallest normal float */
    k = (float)(int32_t)(x * 1.44269504f - 0.5f);
    r = x - k * 0.693145751953125f - k * 1.42860677e-6f;
    p = 1.0f + r * (1.0f + r * (0.5f + r * (1.66666667e-1f + r * (4.16666667e-2f + r * (8.33333333e-3f +
                                                                                     r * 1.38888889e-3f)))));
    bits = (uint32_t)((int32_t)k + 127) << 23;
    __builtin_memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/** Forward, backward and in-place SGD update (learning rate lr) on one sample x with
 * class `label`; returns the class predicted before the update (ties to the lowest). */
uint32_t fsgd_train_step(const fsgd_mlp_t *net, const float *x, uint32_t label, float lr);

#endif /* FLOAT_SGD_H */
