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

/** Forward, backward and in-place SGD update (learning rate lr) on one sample x with
 * class `label`; returns the class predicted before the update (ties to the lowest). */
uint32_t fsgd_train_step(const fsgd_mlp_t *net, const float *x, uint32_t label, float lr);

#endif /* FLOAT_SGD_H */
