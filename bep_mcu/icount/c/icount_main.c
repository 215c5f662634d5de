/*
 * icount_main.c - bare-metal entry of an instruction-count image (bep_mcu/icount).
 *
 * The host writes icount_io into emulated RAM, starts icount_run and stops the emulator
 * at icount_halt; icount_mark(phase) cuts the count into phases (its entry is watched).
 * Everything named icount_* is left out of the reported counts.
 *
 * Built for one of two workloads:
 *   -DICOUNT_NET=net -DICOUNT_NET_UPPER=NET -DICOUNT_NET_HEADER='"bep_net.h"'
 *       the generated BEP network: init, set_epoch, then train_batch on consecutive
 *       batches, then the trained hidden weights copied out;
 *   -DICOUNT_FLOAT -DICOUNT_IN=256 -DICOUNT_HIDDEN=128 -DICOUNT_OUT=10
 *       the float32 SGD step of float_sgd.c on the same samples, one by one.
 */
#include <stddef.h>
#include <stdint.h>

#define ICOUNT_MAGIC 0x49434E54u /* "ICNT" */

/* Phases, in the order the host expects them (bep_mcu/icount/harness.py). */
enum { ICOUNT_INIT = 1, ICOUNT_SET_EPOCH = 2, ICOUNT_BATCH = 3, ICOUNT_DONE = 4 };

/* Written by the host; the layout is pinned here and in harness.py (IO_FORMAT). */
typedef struct {
    uint32_t magic;         /*   0: ICOUNT_MAGIC */
    uint32_t seed;          /*   4 */
    uint32_t batches;       /*   8: initial batch counter */
    uint32_t n_samples;     /*  12 */
    uint32_t batch_size;    /*  16 */
    const void *x;          /*  20: packed words (BEP) or floats (float SGD), sample after sample */
    const uint16_t *labels; /*  24 */
    uint16_t *pred;         /*  28 */
    uint32_t q[4];          /*  32 */
    uint16_t gamma[4];      /*  48 */
    int32_t status[4];      /*  56: init, set_epoch, train_batch, read_hidden */
    uint32_t done;          /*  72: batches (or samples) trained */
    void *hidden_out[4];    /*  76 */
    uint32_t hidden_len[4]; /*  92 */
    uint32_t reserved[3];   /* 108 */
} icount_io_t;

typedef char icount_io_size_check[(sizeof(icount_io_t) == 120u && offsetof(icount_io_t, gamma) == 48u &&
                                   offsetof(icount_io_t, hidden_len) == 92u) ? 1 : -1];

icount_io_t icount_io;

/* Called between phases; the host watches its first instruction. Not cloned either: at -O3
 * gcc would call a constant-propagated copy at another address, which the host never sees. */
void __attribute__((noinline, noclone)) icount_mark(uint32_t phase)
{
    __asm__ volatile("" : : "r"(phase) : "memory");
}

void __attribute__((noinline, noreturn)) icount_halt(void)
{
    for (;;) __asm__ volatile("nop");
}

/* gcc may emit calls to these even with -ffreestanding (built with
 * -fno-tree-loop-distribute-patterns, so the loops stay loops). */
void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n--) *d++ = *s++;
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

#if defined(ICOUNT_NET)
#include ICOUNT_NET_HEADER

#define ICOUNT_CAT3(a, b, c) a##b##c
#define ICOUNT_PASTE3(a, b, c) ICOUNT_CAT3(a, b, c)
#define ICOUNT_FN(op) ICOUNT_PASTE3(bep_, ICOUNT_NET, op)        /* bep_<net>_<op> */
#define ICOUNT_MACRO(m) ICOUNT_PASTE3(BEP_, ICOUNT_NET_UPPER, m) /* BEP_<NET>_<M> */
#define ICOUNT_LAYERS ICOUNT_MACRO(_N_LAYERS)
#define ICOUNT_WORDS ICOUNT_MACRO(_INPUT_WORDS)

/* The training state: its size is the RAM a device spends on learning. */
uint32_t icount_state[ICOUNT_MACRO(_STATE_WORDS)];

void __attribute__((noreturn)) icount_run(void)
{
    icount_io_t *io = &icount_io;
    const uint32_t *x = (const uint32_t *)io->x;
    uint32_t k, l;
    if (io->magic == ICOUNT_MAGIC) {
        icount_mark(ICOUNT_INIT);
        io->status[0] = ICOUNT_FN(_init)(icount_state, sizeof icount_state, io->seed, io->batches);
        icount_mark(ICOUNT_SET_EPOCH);
        io->status[1] = ICOUNT_FN(_set_epoch)(icount_state, sizeof icount_state, io->gamma, ICOUNT_LAYERS, io->q,
                                              ICOUNT_LAYERS);
        for (k = 0; k < io->n_samples && io->status[2] == 0; k += io->batch_size) {
            uint32_t m = io->n_samples - k < io->batch_size ? io->n_samples - k : io->batch_size;
            icount_mark(ICOUNT_BATCH);
            io->status[2] = ICOUNT_FN(_train_batch)(icount_state, sizeof icount_state, x + (size_t)k * ICOUNT_WORDS,
                                                    (size_t)m * ICOUNT_WORDS, io->labels + k, io->pred + k, m);
            io->done++;
        }
        icount_mark(ICOUNT_DONE);
        for (l = 0; l < ICOUNT_LAYERS; ++l) {
            int32_t st = ICOUNT_FN(_read_hidden)(icount_state, sizeof icount_state, l, io->hidden_out[l],
                                                 io->hidden_len[l]);
            if (st != 0) io->status[3] = st;
        }
    }
    icount_halt();
}

#elif defined(ICOUNT_FLOAT)
#include "float_sgd.h"

/* The float network's whole training state, written by the host before the run. */
float icount_w1[ICOUNT_HIDDEN * ICOUNT_IN], icount_b1[ICOUNT_HIDDEN];
float icount_w2[ICOUNT_OUT * ICOUNT_HIDDEN], icount_b2[ICOUNT_OUT];
float icount_hidden[ICOUNT_HIDDEN], icount_delta[ICOUNT_HIDDEN], icount_prob[ICOUNT_OUT];

void __attribute__((noreturn)) icount_run(void)
{
    icount_io_t *io = &icount_io;
    const float *x = (const float *)io->x;
    const fsgd_mlp_t net = {ICOUNT_IN, ICOUNT_HIDDEN, ICOUNT_OUT, icount_w1, icount_b1, icount_w2, icount_b2,
                            icount_hidden, icount_delta, icount_prob};
    uint32_t k;
    float lr;
    __builtin_memcpy(&lr, &io->seed, sizeof lr); /* the learning rate travels in the seed word */
    if (io->magic == ICOUNT_MAGIC) {
        for (k = 0; k < io->n_samples; ++k) {
            icount_mark(ICOUNT_BATCH);
            io->pred[k] = (uint16_t)fsgd_train_step(&net, x + (size_t)k * ICOUNT_IN, io->labels[k], lr);
            io->done++;
        }
        icount_mark(ICOUNT_DONE);
    }
    icount_halt();
}
#else
#error "build with -DICOUNT_NET=<name> (a generated BEP network) or -DICOUNT_FLOAT (the float baseline)"
#endif
