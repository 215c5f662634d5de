/*
 * bep_runtime.h - portable C99 Binary Error Propagation (BEP) training runtime.
 *
 * Hand-written, copied verbatim by `bep-mcu generate`. The generator emits only data
 * (sizes, offsets, constant tables) in bep_<net>.c/.h; all logic lives in the runtime:
 * bep_runtime.c (the learning rule) and bep_kernels.c (its dot products and row updates),
 * which share the internal bep_runtime_internal.h and bep_kernels_arm.h. Users include
 * this header (or bep_<net>.h) only and compile both .c files.
 *
 * Contract: for the same model, data, seed and per-epoch parameters, this code produces
 * hidden weights and predictions identical, bit for bit, to the numpy engine
 * (bep_mcu/engine/network.py). Integers only: no float, no malloc, no libc beyond <stdint.h> and
 * <stddef.h>. All state lives in one caller-owned buffer of BEP_<NET>_STATE_BYTES
 * bytes; its layout is planned on the host and described by a const bep_config_t.
 *
 * Options (define before including, or with -D). Every kernel has a portable C path;
 * the defaults pick the fastest one the compiler says the core supports, and every
 * variant trains bit-exactly the same weights (tests/test_verify.py, tests/test_icount.py).
 *   BEP_POPCOUNT_TABLE    1 = the XNOR-popcount dot counts word by word with an 8-bit
 *                         lookup table. 0 (default) = the paired SWAR dot: the nibble
 *                         counts of two words are added before they are folded, so the
 *                         fold and the horizontal sum are paid once per two words.
 *   BEP_POPCOUNT_BUILTIN  1 = word by word with __builtin_popcount, for hosts with a
 *                         popcount instruction (GCC/Clang; never on Cortex-M, where it
 *                         calls libgcc). Used by the host twin.
 *   BEP_USE_DSP           1 = use the Arm DSP extension: QADD8 saturating int8 row
 *                         updates and USADA8 horizontal sums. Defaults to 1 where the
 *                         compiler defines __ARM_FEATURE_DSP (Cortex-M4, M7, M33); 0 = the
 *                         portable paths on those cores too.
 *   BEP_USE_ASM           1 = the inner loops of the dot (Thumb-2 on Cortex-M3/M4/M7/M33,
 *                         Thumb-1 on M0/M0+) and of the int8 row update (QADD8 on DSP
 *                         cores, SWAR32 on M0/M0+) in inline assembly, where GCC at -Os
 *                         spends a quarter to a third more instructions on addressing and
 *                         moves. Defaults to 1 with GCC-compatible compilers on Cortex-M;
 *                         0 = the C loops.
 *   BEP_UPDATE8           int8 row update where BEP_USE_DSP is 0: 0 (default) = SWAR, four
 *                         weights per 32-bit word (eight per 64-bit word on 64-bit hosts);
 *                         1 = one weight at a time (the reference); 2 = SWAR32 everywhere.
 *   BEP_MULHI_PORTABLE    1 = the reinforcement index (d * N) >> 32 from 16 x 16 products,
 *                         as on ARMv6-M (Cortex-M0/M0+), which has no long multiply.
 *   BEP_MEASURE           1 = the kernels are not inlined, so per-function instruction
 *                         counts split a training step into its parts (bep_mcu.icount).
 *                         For measurement builds only: it costs call overhead.
 *
 * Example usage (through the generated wrappers of a network called "net"):
 *
 *     static uint32_t state[BEP_NET_STATE_WORDS];
 *     bep_net_init(state, sizeof state, seed, 0);
 *     for each epoch:
 *         bep_net_set_epoch(state, sizeof state, gamma, n_layers, q, n_layers);
 *         for each batch:
 *             for each sample: bep_net_train_sample(state, sizeof state, x, x_words, label, &pred);
 *             bep_net_end_batch(state, sizeof state);
 *     bep_net_infer(state, sizeof state, x, x_words, &pred);
 */
#ifndef BEP_RUNTIME_H
#define BEP_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "bep_status.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* Bumped whenever bep_config_t or the state layout changes; generated files check it. */
#define BEP_RUNTIME_ABI 6
#define BEP_MAX_LAYERS 4

#ifndef BEP_POPCOUNT_TABLE
#define BEP_POPCOUNT_TABLE 0
#endif
#ifndef BEP_POPCOUNT_BUILTIN
#define BEP_POPCOUNT_BUILTIN 0
#endif
#ifndef BEP_USE_DSP
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define BEP_USE_DSP 1
#else
#define BEP_USE_DSP 0
#endif
#endif
#ifndef BEP_USE_ASM
#if defined(__GNUC__) && defined(__thumb__)
#define BEP_USE_ASM 1
#else
#define BEP_USE_ASM 0
#endif
#endif
#ifndef BEP_UPDATE8
#define BEP_UPDATE8 0
#endif
#ifndef BEP_MULHI_PORTABLE
#if defined(__ARM_ARCH_6M__)
#define BEP_MULHI_PORTABLE 1
#else
#define BEP_MULHI_PORTABLE 0
#endif
#endif
#ifndef BEP_MEASURE
#define BEP_MEASURE 0
#endif

#define BEP_MODEL_MLP 0u
#define BEP_MODEL_RNN 1u

/* One hidden layer (for an RNN: the cell, with x and recurrent parts). All offsets are
 * byte offsets into the state buffer, planned on the host (bep_mcu/cgen/layout.py). */
typedef struct {
    uint16_t rows;        /* K_out: neurons */
    uint16_t cols;        /* fan-in: K_in (rnn: K_x + K_h) */
    uint16_t in_bits;     /* mlp: K_in; rnn: K_x (the x part of a row) */
    uint16_t in_words;    /* packed words of in_bits */
    uint16_t rec_words;   /* rnn: packed words of K_h (recurrent part), else 0 */
    uint16_t out_words;   /* packed words of rows */
    int32_t gate;         /* G: gate open iff |z| <= G (used when back-propagating into the layer below) */
    uint32_t n_weights;   /* rows * cols: reinforcement index range */
    uint32_t h_off;       /* int8/int16 hidden weights, rows x cols, row-major */
    uint32_t w_off;       /* packed visible weights, rows x in_words (mlp) */
    uint32_t wr_off;      /* rnn: packed recurrent weights, rows x rec_words */
    uint32_t wt_off;      /* packed transpose used by the backward pass, or 0 when unused:
                             mlp: cols x out_words (layers >= 1), rnn: rows x out_words of W_h^T */
    uint32_t z_off;       /* int16 pre-activations: rows (mlp) or steps x rows (rnn) */
    uint32_t a_off;       /* packed activations: out_words (mlp) or steps x out_words (rnn) */
    uint32_t t_off;       /* packed desired activations a*: out_words (rnn: 3 x out_words:
                             a*_t, a*_{t-1} and the all-ones a_0) */
    uint32_t dirty_off;   /* one bit per row: rows updated in this batch (repacked at its end) */
} bep_layer_t;

/* Everything the runtime needs to know about a network; generated, const (flash). */
typedef struct {
    uint32_t abi;             /* BEP_RUNTIME_ABI the generator targeted */
    uint32_t config_hash;     /* first 32 bits of the host's config hash */
    uint32_t state_bytes;     /* size of the state buffer */
    uint8_t model;            /* BEP_MODEL_MLP or BEP_MODEL_RNN */
    uint8_t n_layers;
    uint8_t hidden_bits;      /* 8 or 16 */
    uint8_t reserved;
    uint16_t n_classes;       /* classes in use when generated: bep_init's count */
    uint16_t steps;           /* rnn: T; mlp: 1 */
    uint16_t input_words;     /* packed words of one sample (rnn: steps x words of K_x) */
    uint16_t class_words;     /* packed words of the last hidden width */
    uint32_t max_classes;     /* rows of the classifier: n_classes and the prototypes reserved for
                                 classes to come, which bep_set_classes puts in use */
    int32_t trigger_margin;   /* R */
    uint32_t gate_off;        /* scratch: packed gate mask, largest out_words */
    uint32_t schedule_off;    /* the epoch schedule's bep_schedule_state_t (bep_standalone.h) */
    const uint32_t *classifier;     /* max_classes x class_words, packed P */
    /* mlp: the first layer's input centring, M_i = round(256 m_i) per input bit (m_i its training
     * mean), or NULL. Layer 0 then computes z_j = W_j x - o_j, o_j = floor((sum_i W_ji M_i + 128) / 256)
     * kept per row at centre_off (int16, refreshed when the row repacks), and a winner's row moves by
     * 2 a*_j (x - r), r_i = sign(M_i) where |M_i| > 128 else 0, saturating once. */
    const int16_t *input_means;
    uint32_t centre_off;
    const void *initial_hidden[BEP_MAX_LAYERS]; /* int8/int16 tables, or NULL */
    bep_layer_t layer[BEP_MAX_LAYERS];
} bep_config_t;

/* BEP_CDEF_BEGIN */
/* Counters a host reads after an epoch (also in the state header). */
typedef struct {
    uint32_t samples;     /* training samples seen */
    uint32_t triggered;   /* samples whose margin was below R */
    uint32_t errors;      /* training samples predicted wrong (forward pass) */
    uint32_t updates;     /* hidden-weight rows updated */
    uint32_t batches;     /* batch counter (keys the reinforcement generator) */
} bep_counters_t;
/* BEP_CDEF_END */

/* The first bytes of every state buffer (BEP_STATE_HEADER_BYTES, pinned by a static
 * assert in the generated code so the host plan and the compiler agree). */
typedef struct {
    uint32_t magic;             /* cfg->config_hash once initialised: foreign buffers are refused */
    uint32_t seed;              /* reinforcement generator seed */
    uint32_t batch_triggered;   /* samples triggered in the open batch */
    bep_counters_t counters;
    uint32_t q[BEP_MAX_LAYERS];     /* per-epoch fixed-point reinforcement count */
    uint16_t gamma[BEP_MAX_LAYERS]; /* per-epoch winner-takes-update group size; 0: frozen */
    uint32_t n_classes_in_use;  /* classes 0..n-1 are predicted and trained (bep_set_classes) */
} bep_state_header_t;

#define BEP_STATE_HEADER_BYTES 60u
/* sizeof(bep_config_t) where pointers are 32 bits (Cortex-M): the host plans flash with it. */
#define BEP_CONFIG_BYTES_32 276u

/* The epoch schedule's state (bep_standalone.h), kept in the state buffer at
 * cfg->schedule_off. Declared here because the runtime keeps its epoch-start marks within
 * reach of the counters: bep_reset_counters moves them with the counters, and an epoch that
 * reaches BEP_EPOCH_MAX_SAMPLES samples (a board that learns for weeks without closing an
 * epoch) is counted from there on. So for every state the runtime keeps, the samples since
 * the marks are below BEP_EPOCH_MAX_SAMPLES and the errors since them are no more than the
 * samples (both modulo 2^32, as the counters wrap): bep_restore refuses any other. */
typedef struct {
    uint32_t magic;         /* the config hash once the schedule started */
    uint32_t epoch;         /* epochs completed: keys the sample order */
    uint32_t level;         /* quantised error rate of the last epoch: the column of the Q table */
    uint32_t stalled;       /* epochs since the best one (always below the patience) */
    uint32_t best_errors;   /* the best epoch's error count and samples (best_samples 0: none yet) */
    uint32_t best_samples;
    uint32_t start_errors;  /* the counters when this epoch began */
    uint32_t start_samples;
    uint32_t budget_epochs; /* epochs closed since the schedule started (the budget's count) */
    uint32_t marked_epoch;  /* the budget's mark: the last epoch whose errors fell by the gain, */
    uint32_t marked_errors; /* and its error count (both 0 while budget_epochs is 0) */
} bep_schedule_state_t;

#define BEP_SCHEDULE_STATE_BYTES 44u
#define BEP_EPOCH_MAX_SAMPLES 0x80000000u

/* The public functions. Every one that takes a state buffer (all but bep_init, bep_draw and
 * bep_popcount32) first checks it and returns, without touching it:
 *   BEP_ERR_NULL   cfg or state is NULL
 *   BEP_ERR_ABI    cfg was generated for another BEP_RUNTIME_ABI
 *   BEP_ERR_ALIGN  state is not 4-byte aligned
 *   BEP_ERR_SIZE   state_len < cfg->state_bytes
 *   BEP_ERR_STATE  state was not initialised by bep_init for this network (cfg->config_hash), or its
 *                  count of classes in use is outside 1..cfg->max_classes (overwritten since)
 * The @return lines below list what each function adds. Layers are numbered 0..n_layers-1;
 * "layer bytes" are rows x cols x hidden_bits / 8 (int8 or int16 weights, row-major). */

/** Initialise a state buffer: copies the initial hidden weights (if any), packs W; the
 * classes in use are cfg->n_classes.
 * @param[in]  cfg        network configuration (generated)
 * @param[out] state      caller buffer, 4-byte aligned, cfg->state_bytes long
 * @param[in]  state_len  bytes available at state: at least cfg->state_bytes
 * @param[in]  seed       reinforcement generator seed (the model's training seed), any value
 * @param[in]  batches    initial batch counter (0 for a fresh model), any value
 * @return BEP_OK, BEP_ERR_NULL, BEP_ERR_SIZE (buffer short), BEP_ERR_ABI, BEP_ERR_ALIGN */
bep_status_t bep_init(const bep_config_t *cfg, void *state, size_t state_len, uint32_t seed, uint32_t batches);

/** Replace one layer's hidden weights and repack its visible weights.
 * @param[in]     cfg         network configuration
 * @param[in,out] state       an initialised state buffer
 * @param[in]     state_len   bytes at state: at least cfg->state_bytes
 * @param[in]     layer       0..cfg->n_layers-1
 * @param[in]     hidden      the layer's weights, int8 or int16 (cfg->hidden_bits), row-major rows x cols
 * @param[in]     hidden_len  bytes at hidden: exactly the layer bytes
 * @return BEP_OK, BEP_ERR_NULL (hidden), BEP_ERR_ARG (layer), BEP_ERR_SIZE (hidden_len) */
bep_status_t bep_load_hidden(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                             const void *hidden, size_t hidden_len);

/** Copy one layer's hidden weights out.
 * @param[in]  cfg        network configuration
 * @param[in]  state      an initialised state buffer
 * @param[in]  state_len  bytes at state: at least cfg->state_bytes
 * @param[in]  layer      0..cfg->n_layers-1
 * @param[out] out        the layer's weights, int8 or int16 (cfg->hidden_bits), row-major rows x cols
 * @param[in]  out_len    bytes at out: exactly the layer bytes
 * @return BEP_OK, BEP_ERR_NULL (out), BEP_ERR_ARG (layer), BEP_ERR_SIZE (out_len) */
bep_status_t bep_read_hidden(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                             void *out, size_t out_len);

/** Write `n` bytes of one layer's hidden weights (int8/int16 row-major, as bytes in the
 * core's byte order) at byte offset `offset`, without repacking: for loading weights in
 * pieces over a link. Call bep_repack_layer once the layer is complete.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     layer      0..cfg->n_layers-1
 * @param[in]     offset     first byte to write, 0..layer bytes
 * @param[in]     src        n bytes (may be NULL when n is 0)
 * @param[in]     n          bytes to write: offset + n <= layer bytes
 * @return BEP_OK, BEP_ERR_NULL (src), BEP_ERR_ARG (layer), BEP_ERR_SIZE (offset + n past the layer) */
bep_status_t bep_write_hidden_bytes(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                                    uint32_t offset, const uint8_t *src, size_t n);

/** Copy `n` bytes of one layer's hidden weights from byte offset `offset`.
 * @param[in]  cfg        network configuration
 * @param[in]  state      an initialised state buffer
 * @param[in]  state_len  bytes at state: at least cfg->state_bytes
 * @param[in]  layer      0..cfg->n_layers-1
 * @param[in]  offset     first byte to read, 0..layer bytes
 * @param[out] dst        n bytes (may be NULL when n is 0)
 * @param[in]  n          bytes to read: offset + n <= layer bytes
 * @return BEP_OK, BEP_ERR_NULL (dst), BEP_ERR_ARG (layer), BEP_ERR_SIZE (offset + n past the layer) */
bep_status_t bep_read_hidden_bytes(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                                   uint32_t offset, uint8_t *dst, size_t n);

/** Recompute the packed visible weights (and transposes) of a layer from its hidden weights.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     layer      0..cfg->n_layers-1
 * @return BEP_OK, BEP_ERR_ARG (layer) */
bep_status_t bep_repack_layer(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer);

/** Set the epoch's parameters of every layer: γ (winner-takes-update group size) and Q
 * (reinforcement: (Q + u) >> 16 draws per batch with a random u < 2^16, so Q / 65536 on
 * average). γ = 0 freezes a layer: no update and no reinforcement (whatever its Q), and no
 * desired activation below the lowest layer that learns (γ = 0, ..., 0, γ_L: BEP on the last
 * hidden layer only). Nothing is set when any value is refused.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     gamma      n_gamma group sizes, layer l's in 0..cfg->layer[l].rows (0: frozen)
 * @param[in]     n_gamma    cfg->n_layers
 * @param[in]     q          n_q fixed-point counts, each 0..0xFFFF0000
 * @param[in]     n_q        cfg->n_layers
 * @return BEP_OK, BEP_ERR_NULL (gamma, q), BEP_ERR_ARG (a count or a value out of range) */
bep_status_t bep_set_epoch(const bep_config_t *cfg, void *state, size_t state_len, const uint16_t *gamma,
                           size_t n_gamma, const uint32_t *q, size_t n_q);

/** Predict one sample. Overwrites the state's activations (scratch), not what was learnt.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     x          the packed input (bit i of word i/32 is input i, 1 = +1; padding bits ignored)
 * @param[in]     x_words    words at x: exactly cfg->input_words
 * @param[out]    out_class  the predicted class, 0..n-1 with n the classes in use (bep_set_classes)
 * @return BEP_OK, BEP_ERR_NULL (x, out_class), BEP_ERR_SIZE (x_words) */
bep_status_t bep_infer(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                       size_t x_words, uint16_t *out_class);

/** The integer logits of one sample, y_c = <P_c, a_L> for every class c: the values
 * bep_infer's prediction is the argmax of (the first largest). Scratch as for bep_infer.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     x          the packed input, as for bep_infer
 * @param[in]     x_words    words at x: exactly cfg->input_words
 * @param[out]    scores     the logits of the classes in use, 0..n-1, each in [-K, K] with K the
 *                           last hidden layer's width; nothing is written unless BEP_OK
 * @param[in]     n_scores   values at scores: at least n, the classes in use
 * @return BEP_OK, BEP_ERR_NULL (x, scores), BEP_ERR_SIZE (x_words, n_scores) */
bep_status_t bep_scores(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x, size_t x_words,
                        int32_t *scores, size_t n_scores);

/** Train on one sample of the current batch: forward with the batch-start visible
 * weights, trigger, backward, winner-takes-update into H.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     x          the packed input, as for bep_infer
 * @param[in]     x_words    words at x: exactly cfg->input_words
 * @param[in]     label      the sample's class, 0..n-1 with n the classes in use
 * @param[out]    out_class  the forward pass's prediction, 0..n-1
 * @return BEP_OK, BEP_ERR_NULL (x, out_class), BEP_ERR_SIZE (x_words), BEP_ERR_LABEL */
bep_status_t bep_train_sample(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                              size_t x_words, uint16_t label, uint16_t *out_class);

/** Close a batch: reinforcement (if any sample triggered), repack updated rows,
 * advance the batch counter.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @return BEP_OK */
bep_status_t bep_end_batch(const bep_config_t *cfg, void *state, size_t state_len);

/** Train on a whole batch: bep_train_sample for each sample, then bep_end_batch. Every
 * label is checked first: a batch applies whole or not at all.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     x          n_samples packed inputs of cfg->input_words words each, one after the other
 * @param[in]     x_words    words at x: exactly n_samples x cfg->input_words
 * @param[in]     labels     n_samples classes, each 0..n-1 with n the classes in use
 * @param[out]    out_class  n_samples forward predictions
 * @param[in]     n_samples  samples in the batch (0: only bep_end_batch)
 * @return BEP_OK, BEP_ERR_NULL (x, labels, out_class), BEP_ERR_SIZE (x_words), BEP_ERR_LABEL */
bep_status_t bep_train_batch(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                             size_t x_words, const uint16_t *labels, uint16_t *out_class, size_t n_samples);

/** Put more classes in use: the classifier's prototypes reserved for classes to come (rows
 * n_classes..max_classes-1 of its table), in order, so a deployed board learns a class its
 * firmware was built before (docs/adaptation.md). Classes in use are never taken away: what
 * was learnt for them stays meaningful.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @param[in]     n          classes in use from now: from the current count to cfg->max_classes
 * @return BEP_OK, BEP_ERR_ARG (n below the classes in use or above cfg->max_classes: nothing changes) */
bep_status_t bep_set_classes(const bep_config_t *cfg, void *state, size_t state_len, uint32_t n);

/** Read how many classes are in use.
 * @param[in]  cfg        network configuration
 * @param[in]  state      an initialised state buffer
 * @param[in]  state_len  bytes at state: at least cfg->state_bytes
 * @param[out] out        the classes in use, 1..cfg->max_classes
 * @return BEP_OK, BEP_ERR_NULL (out) */
bep_status_t bep_read_classes(const bep_config_t *cfg, const void *state, size_t state_len, uint16_t *out);

/** Read the counters (they wrap modulo 2^32).
 * @param[in]  cfg        network configuration
 * @param[in]  state      an initialised state buffer
 * @param[in]  state_len  bytes at state: at least cfg->state_bytes
 * @param[out] out        the counters
 * @return BEP_OK, BEP_ERR_NULL (out) */
bep_status_t bep_read_counters(const bep_config_t *cfg, const void *state, size_t state_len,
                               bep_counters_t *out);

/** Reset the counters (not the weights, not the batch counter); the epoch schedule
 * then counts the open epoch from here.
 * @param[in]     cfg        network configuration
 * @param[in,out] state      an initialised state buffer
 * @param[in]     state_len  bytes at state: at least cfg->state_bytes
 * @return BEP_OK */
bep_status_t bep_reset_counters(const bep_config_t *cfg, void *state, size_t state_len);

/** The counter-based generator shared with the host (bep_mcu/engine/rng.py).
 * @param[in] seed     the model's seed
 * @param[in] counter  the batch counter
 * @param[in] layer    the layer (or a stream's tag, e.g. BEP_ORDER_LAYER)
 * @param[in] index    the draw's index
 * @return a uniform 32-bit value, the same for the same four arguments */
uint32_t bep_draw(uint32_t seed, uint32_t counter, uint32_t layer, uint32_t index);

/** Number of set bits of a 32-bit word (SWAR, table or builtin, see BEP_POPCOUNT_*).
 * @param[in] x  any word
 * @return 0..32 */
uint32_t bep_popcount32(uint32_t x);

#ifdef __cplusplus
}
#endif

#endif /* BEP_RUNTIME_H */
