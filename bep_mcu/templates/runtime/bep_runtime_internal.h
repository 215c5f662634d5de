/*
 * bep_runtime_internal.h - what the runtime's two source files share. Not for users:
 * they include bep_runtime.h (the public API and the compile options).
 *
 *   bep_runtime.c  the learning rule: which layer, which rows, when (forward pass,
 *                  trigger, backward pass, winner-takes-update, reinforcement, repacking)
 *                  and the public functions;
 *   bep_kernels.c  the arithmetic it calls: the XNOR-popcount dot products of a layer
 *                  and of the classifier, the saturating int8/int16 row updates, each
 *                  with its portable C path and its variants per core;
 *   bep_kernels_arm.h  the Arm inline assembly of bep_kernels.c, nowhere else.
 *
 * Helpers that must inline into a loop are defined here (BEP_HOT); the kernels
 * bep_kernels.c exports are declared at the end. Each is called once per layer, sample
 * or updated row, never per word, and none was inlined when both files were one, so the
 * split costs next to nothing: the code is the same but for bep_update on Thumb-2 cores,
 * which no longer knows which registers bep_row_add8 leaves alone and spends one more
 * instruction per updated row (about 14 per sample, 0.06 %, in bep_mcu.icount's workload).
 */
#ifndef BEP_RUNTIME_INTERNAL_H
#define BEP_RUNTIME_INTERNAL_H

#include "bep_runtime.h"

#if BEP_USE_DSP && !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP)
#error "BEP_USE_DSP=1 needs a core with the Arm DSP extension (Cortex-M4, M7, M33)"
#endif
#if BEP_UPDATE8 < 0 || BEP_UPDATE8 > 2
#error "BEP_UPDATE8 must be 0 (SWAR), 1 (one weight at a time) or 2 (SWAR32)"
#endif

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* ----------------------------------------------------------- compiler helpers */

/* Hot helpers must inline even at -Os (a call per popcount costs a third of the
 * forward pass on Cortex-M). BEP_KERNEL marks the functions whose instruction counts
 * name a part of the step (forward, update, ...): kept apart only in measurement builds. */
#if defined(__GNUC__)
#define BEP_HOT static inline __attribute__((always_inline))
#else
#define BEP_HOT static inline
#endif
#if BEP_MEASURE && defined(__GNUC__)
#define BEP_KERNEL static __attribute__((noinline))
#define BEP_INLINE_KERNEL static __attribute__((noinline))
#else
#define BEP_KERNEL static
/* A kernel with a second, rare caller (bep_winner: a centred first layer's update) stays inline
 * in its hot one, as when it had one caller. */
#define BEP_INLINE_KERNEL BEP_HOT
#endif

/* GCC folds a constant into each instruction that uses it, and Thumb-2 can then not
 * use the barrel shifter on the other operand ("and r, m, x, lsr #1" needs m in a
 * register); Thumb-1 reloads it from a literal pool. An empty asm makes the constant
 * opaque, so it is loaded once and lives in a register. */
#if defined(__GNUC__) && defined(__thumb__)
#define BEP_IN_REGISTER(v) __asm__("" : "+r"(v))
#else
#define BEP_IN_REGISTER(v) ((void)0)
#endif

/* __builtin_ctz is an instruction or two where the core counts leading zeros (RBIT +
 * CLZ on ARMv7-M and ARMv8-M Mainline, TZCNT/BSF on x86, RBIT + CLZ on AArch64), a
 * libgcc call on ARMv6-M. */
#if defined(__GNUC__) && (defined(__ARM_FEATURE_CLZ) || defined(__x86_64__) || defined(__i386__) || \
                          defined(__aarch64__))
#define BEP_HAS_CTZ 1
#else
#define BEP_HAS_CTZ 0
#endif

/* C99's restrict is not a C++ keyword; GCC and Clang spell it __restrict__ there, so
 * the runtime also compiles as C++ (e.g. added to a C++ firmware project as is). */
#if !defined(__cplusplus)
#define BEP_RESTRICT restrict
#elif defined(__GNUC__)
#define BEP_RESTRICT __restrict__
#else
#define BEP_RESTRICT
#endif

/* Four int8 from memory as one little-endian word (no alignment needed; compilers
 * merge this into one load where the core allows unaligned access). */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__ARM_FEATURE_UNALIGNED) || defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
#define BEP_LE_BUILTINS 1 /* a 4-byte __builtin_memcpy is one unaligned load or store here */
#else
#define BEP_LE_BUILTINS 0
#endif

/* Word views of the int8 hidden weights, which are also read and written as bytes: GCC
 * is told they may alias anything, so no access is reordered across another type. */
#if defined(__GNUC__)
typedef uint32_t bep_w32_t __attribute__((__may_alias__));
typedef uint64_t bep_w64_t __attribute__((__may_alias__));
#else
typedef uint32_t bep_w32_t;
typedef uint64_t bep_w64_t;
#endif

/* ------------------------------------------------------------ the state buffer */

/* Views of the caller's buffer at the byte offsets the host planned (bep_config_t); plain
 * inline, as they were static functions of one file that GCC always inlined. */
static inline bep_state_header_t *bep_header(void *state) { return (bep_state_header_t *)state; }
static inline bep_schedule_state_t *bep_schedule(const bep_config_t *cfg, void *state)
{
    return (bep_schedule_state_t *)(void *)((uint8_t *)state + cfg->schedule_off);
}
static inline uint8_t *bep_bytes(void *state, uint32_t off) { return (uint8_t *)state + off; }
static inline uint32_t *bep_u32(void *state, uint32_t off) { return (uint32_t *)(void *)bep_bytes(state, off); }
static inline int16_t *bep_i16(void *state, uint32_t off) { return (int16_t *)(void *)bep_bytes(state, off); }
/* MLP: each row's count of +1 signs, int16, right after the transpose and its column of
 * zeros, then the column list of the forward pass, K_in / 2 + 16 uint16 (layout.py: wt,
 * tn). */
static inline int16_t *bep_tn(void *state, const bep_layer_t *L)
{
    return bep_i16(state, L->wt_off + ((uint32_t)L->cols + 1u) * L->out_words * 4u);
}
static inline uint16_t *bep_slice_list(void *state, const bep_layer_t *L)
{
    return (uint16_t *)(void *)(bep_tn(state, L) + (((uint32_t)L->rows + 1u) & ~1u));
}
/* Whether bep_layer_forward_cols takes the MLP layer L: the word offsets of its columns,
 * the column of zeros included, fit its uint16 list (else bep_layer_forward). */
static inline int bep_cols_forward_fits(const bep_layer_t *L)
{
    return ((uint32_t)L->cols + 1u) * L->out_words <= 65536u;
}

/* ------------------------------------------------------------- inline helpers */

/* Number of set bits of a word: an 8-bit table (BEP_POPCOUNT_TABLE), the compiler's
 * builtin (BEP_POPCOUNT_BUILTIN, hosts with a popcount instruction), else SWAR:
 * Cortex-M has no popcount instruction and GCC calls libgcc for __builtin_popcount. */
#if BEP_POPCOUNT_TABLE
extern const uint8_t bep_pop8[256];

BEP_HOT uint32_t bep_pop(uint32_t x)
{
    return (uint32_t)bep_pop8[x & 0xFFu] + bep_pop8[(x >> 8) & 0xFFu] + bep_pop8[(x >> 16) & 0xFFu] +
           bep_pop8[x >> 24];
}
#elif BEP_POPCOUNT_BUILTIN
BEP_HOT uint32_t bep_pop(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
#else
BEP_HOT uint32_t bep_pop(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}
#endif

/* High 32 bits of a 32 x 32 product: (a * b) >> 32, the reinforcement index. ARMv6-M
 * (Cortex-M0/M0+) has no long multiply and libgcc's 64-bit one costs ~40 instructions,
 * so there it is built from 16 x 16 products (exact): two when b < 2^16 (every layer
 * of up to 65,535 weights; the sum cannot overflow, as ah * b + 0xFFFF < 2^32), four
 * otherwise. */
BEP_HOT uint32_t bep_mulhi(uint32_t a, uint32_t b)
{
#if BEP_MULHI_PORTABLE
    uint32_t al = a & 0xFFFFu, ah = a >> 16, bl = b & 0xFFFFu, bh = b >> 16;
    if (bh == 0u) return (ah * bl + ((al * bl) >> 16)) >> 16;
    {
        uint32_t lh = al * bh, hl = ah * bl;
        uint32_t mid = ((al * bl) >> 16) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
        return ah * bh + (lh >> 16) + (hl >> 16) + (mid >> 16);
    }
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

/* Mask of the valid bits in the last word of a vector of `bits` bits. */
BEP_HOT uint32_t bep_last_mask(uint32_t bits)
{
    uint32_t r = bits & 31u;
    return r ? ((1u << r) - 1u) : 0xFFFFFFFFu;
}

BEP_HOT uint32_t bep_load4(const int8_t *p)
{
#if BEP_LE_BUILTINS
    uint32_t w;
    __builtin_memcpy(&w, p, 4);
    return w;
#else
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
#endif
}

/* --------------------------------------------------- kernels (bep_kernels.c) */

/** One layer's forward pass for one sample (or one RNN step): z = W in (+ W_h prev),
 * a_out = sign(z) with sign(0) = +1.
 * @param[in]  L      the layer (cfg->layer[l])
 * @param[in]  state  the state buffer holding the layer's packed visible weights
 * @param[in]  in     packed input, L->in_words words (padding bits may hold anything)
 * @param[in]  prev   RNN: packed previous activation, L->rec_words words; MLP: NULL
 * @param[out] z      L->rows pre-activations, each in [-cols, cols]
 * @param[out] a_out  packed activations, L->out_words words (padding bits 0) */
void bep_layer_forward(const bep_layer_t *L, void *state, const uint32_t *in, const uint32_t *prev, int16_t *z,
                       uint32_t *a_out);

/** An MLP layer's forward pass in column form, from the transpose wt and the rows' +1
 * counts (bep_tn): z and a_out as bep_layer_forward computes them.
 * @param[in]  L      the layer (cfg->layer[l]), an MLP layer
 * @param[in]  state  the state buffer holding the layer's transpose and counts
 * @param[in]  in     packed input, L->in_words words (padding bits may hold anything)
 * @param[out] z      L->rows pre-activations
 * @param[out] a_out  packed activations, L->out_words words (padding bits 0) */
void bep_layer_forward_cols(const bep_layer_t *L, void *state, const uint32_t *in, int16_t *z, uint32_t *a_out);

/** The classifier: logits y_c = <P_c, a_last> of the classes in use, the prediction (argmax,
 * ties to the lowest class) and the trigger margin y_label - max_{c != label} y_c. The
 * prototypes reserved for classes to come are not looked at: a board with n classes in use
 * computes what the network of n classes computes.
 * @param[in]  cfg        network configuration (cfg->classifier)
 * @param[in]  n_classes  the classes in use, 1..cfg->max_classes (the state header's)
 * @param[in]  a_last     the last hidden layer's packed activation, cfg->class_words words
 * @param[in]  label      the sample's class, 0..n_classes-1, or -1 (inference: no margin)
 * @param[out] margin     the margin, or NULL when not wanted
 * @return the predicted class, 0..n_classes-1 */
uint16_t bep_classify(const bep_config_t *cfg, uint32_t n_classes, const uint32_t *a_last, int32_t label,
                      int32_t *margin);

/** The logits y_c = <P_c, a_last> of the classes in use (what bep_classify takes the argmax of).
 * @param[in]  cfg        network configuration (cfg->classifier)
 * @param[in]  n_classes  the classes in use, 1..cfg->max_classes
 * @param[in]  a_last     the last hidden layer's packed activation, cfg->class_words words
 * @param[out] y          n_classes logits, each in [-rows, rows] of the last hidden layer */
void bep_logits(const bep_config_t *cfg, uint32_t n_classes, const uint32_t *a_last, int32_t *y);

/** h[i] += bit i of (v ^ flip) ? +2 : -2 for i < bits, saturating at [-128, 127].
 * @param[in,out] h     bits int8 hidden weights, any alignment
 * @param[in]     v     packed ±1 vector, (bits + 31) / 32 words
 * @param[in]     bits  number of weights, 0..65535
 * @param[in]     flip  0 when the target is +1, 0xFFFFFFFF when it is -1 */
void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip);

/** bep_row_add8 for int16 hidden weights: saturating at [-32768, 32767]; h 2-byte aligned. */
void bep_row_add16(int16_t *h, const uint32_t *v, uint32_t bits, uint32_t flip);

#ifdef __cplusplus
}
#endif

#endif /* BEP_RUNTIME_INTERNAL_H */
