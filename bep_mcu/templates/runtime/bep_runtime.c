/*
 * bep_runtime.c - the BEP learning rule in portable C99 (see bep_runtime.h).
 *
 * Everything here mirrors bep_mcu/engine/network.py; the comments name the docs/algorithm.md section each
 * step implements. Packed vectors: bit i of word i/32 is feature i, 1 = +1, padding 0.
 */
#include "bep_runtime.h"

/* The host plans memory with these numbers, read from bep_runtime.h (bep_mcu/cgen/abi.py):
 * the compiler must agree with them. */
typedef char bep_header_size_check[(sizeof(bep_state_header_t) == BEP_STATE_HEADER_BYTES) ? 1 : -1];
typedef char bep_config_size_check[(sizeof(void *) != 4u || sizeof(bep_config_t) == BEP_CONFIG_BYTES_32) ? 1 : -1];

/* ------------------------------------------------------------------ helpers */

/* Hot helpers must inline even at -Os (a call per popcount costs a third of the
 * forward pass on Cortex-M). */
#if defined(__GNUC__)
#define BEP_HOT static inline __attribute__((always_inline))
#else
#define BEP_HOT static
#endif

/* C99's restrict is not a C++ keyword; GCC and Clang spell it __restrict__ there, so
 * this file also compiles as C++ (e.g. added to a C++ firmware project as is). */
#if !defined(__cplusplus)
#define BEP_RESTRICT restrict
#elif defined(__GNUC__)
#define BEP_RESTRICT __restrict__
#else
#define BEP_RESTRICT
#endif

#if BEP_POPCOUNT_TABLE
static const uint8_t bep_pop8[256] = {
#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)
    B6(0), B6(1), B6(1), B6(2)
#undef B2
#undef B4
#undef B6
};

BEP_HOT uint32_t bep_pop(uint32_t x)
{
    return (uint32_t)bep_pop8[x & 0xFFu] + bep_pop8[(x >> 8) & 0xFFu] + bep_pop8[(x >> 16) & 0xFFu] +
           bep_pop8[x >> 24];
}
#elif BEP_POPCOUNT_BUILTIN
/* Hosts with a popcount instruction (x86 -mpopcnt, AArch64): used by the host twin. */
BEP_HOT uint32_t bep_pop(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
#else
/* Cortex-M has no popcount instruction and GCC calls libgcc for __builtin_popcount,
 * so the SWAR form is written out (about 12 instructions on M3/M4/M7/M33). */
BEP_HOT uint32_t bep_pop(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}
#endif

/* Internal calls use the static bep_pop so it inlines (a public symbol in a shared
 * object is called through the PLT). */
uint32_t bep_popcount32(uint32_t x) { return bep_pop(x); }

BEP_HOT uint32_t bep_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/* Prefix of a draw that does not depend on the draw index. */
static uint32_t bep_draw_key(uint32_t seed, uint32_t counter, uint32_t layer)
{
    return bep_mix32(bep_mix32(bep_mix32(seed ^ 0x9E3779B9u) ^ counter) ^ layer);
}

uint32_t bep_draw(uint32_t seed, uint32_t counter, uint32_t layer, uint32_t index)
{
    return bep_mix32(bep_draw_key(seed, counter, layer) ^ index);
}

/* High 32 bits of a 32 x 32 product: (a * b) >> 32, the reinforcement index. ARMv6-M
 * (Cortex-M0/M0+) has no long multiply and libgcc's 64-bit one costs ~40 instructions,
 * so there it is built from four 16 x 16 products (exact). */
static uint32_t bep_mulhi(uint32_t a, uint32_t b)
{
#if defined(__ARM_ARCH_6M__) || defined(BEP_MULHI_PORTABLE)
    uint32_t al = a & 0xFFFFu, ah = a >> 16, bl = b & 0xFFFFu, bh = b >> 16;
    uint32_t lh = al * bh, hl = ah * bl;
    uint32_t mid = ((al * bl) >> 16) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
    return ah * bh + (lh >> 16) + (hl >> 16) + (mid >> 16);
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

/* Four int8 from memory as one little-endian word (no alignment needed; compilers
 * merge this into one load where the core allows unaligned access). */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__ARM_FEATURE_UNALIGNED) || defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
#define BEP_LE_BUILTINS 1 /* a 4-byte __builtin_memcpy is one unaligned load or store here */
#else
#define BEP_LE_BUILTINS 0
#endif

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

static uint32_t bep_words(uint32_t bits) { return (bits + 31u) >> 5; }

/* Mask of the valid bits in the last word of a vector of `bits` bits. */
static uint32_t bep_last_mask(uint32_t bits)
{
    uint32_t r = bits & 31u;
    return r ? ((1u << r) - 1u) : 0xFFFFFFFFu;
}

static uint32_t bep_get_bit(const uint32_t *v, uint32_t i) { return (v[i >> 5] >> (i & 31u)) & 1u; }

static void bep_put_bit(uint32_t *v, uint32_t i, uint32_t bit)
{
    uint32_t m = 1u << (i & 31u);
    v[i >> 5] = bit ? (v[i >> 5] | m) : (v[i >> 5] & ~m);
}

/* Number of agreeing positions of two packed ±1 vectors of n words, the last word
 * masked to its valid bits (`last`). Inlined into the row loops, so the word count
 * and the mask are computed once per layer, not once per row. */
BEP_HOT uint32_t bep_agree(const uint32_t *w, const uint32_t *a, uint32_t n, uint32_t last)
{
    uint32_t k = 0, acc = 0;
#if BEP_POPCOUNT_TABLE || BEP_POPCOUNT_BUILTIN
    for (; k + 1u < n; ++k) acc += bep_pop(~(w[k] ^ a[k]));
#else
    /* SWAR popcount sharing its last steps across pairs of words: the 4-bit partial
     * counts (at most 4 each) of two words still fit a nibble, so one byte fold and
     * one multiply serve two words (Cortex-M has no popcount instruction). */
    for (; k + 2u < n; k += 2u) {
        uint32_t x = ~(w[k] ^ a[k]), y = ~(w[k + 1u] ^ a[k + 1u]);
        x = x - ((x >> 1) & 0x55555555u);
        y = y - ((y >> 1) & 0x55555555u);
        x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u) + (y & 0x33333333u) + ((y >> 2) & 0x33333333u);
        x = (x & 0x0F0F0F0Fu) + ((x >> 4) & 0x0F0F0F0Fu);
        acc += (x * 0x01010101u) >> 24;
    }
    for (; k + 1u < n; ++k) acc += bep_pop(~(w[k] ^ a[k]));
#endif
    return acc + bep_pop(~(w[n - 1u] ^ a[n - 1u]) & last);
}

/* <w, a> = 2 * agreements - K (docs/algorithm.md §1). */
BEP_HOT int32_t bep_dot(const uint32_t *w, const uint32_t *a, uint32_t bits)
{
    return 2 * (int32_t)bep_agree(w, a, bep_words(bits), bep_last_mask(bits)) - (int32_t)bits;
}

static void bep_zero(uint32_t *v, uint32_t words)
{
    uint32_t k;
    for (k = 0; k < words; ++k) v[k] = 0;
}

static bep_state_header_t *bep_header(void *state) { return (bep_state_header_t *)state; }

static uint8_t *bep_bytes(void *state, uint32_t off) { return (uint8_t *)state + off; }
static uint32_t *bep_u32(void *state, uint32_t off) { return (uint32_t *)(void *)bep_bytes(state, off); }
static int16_t *bep_i16(void *state, uint32_t off) { return (int16_t *)(void *)bep_bytes(state, off); }

/* Bytes of one layer's hidden weights (int8 or int16). */
static size_t bep_layer_bytes(const bep_config_t *cfg, uint32_t layer)
{
    return (size_t)cfg->layer[layer].n_weights * (cfg->hidden_bits / 8u);
}

static void bep_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t k;
    for (k = 0; k < n; ++k) dst[k] = src[k];
}


/* h[i] += bit(v, i) == up ? +2 : -2, saturating, for i < bits (§2.5). `flip` is 0 when
 * the target is +1 and all ones when it is -1, so a set bit of v ^ flip means +2. */
/* bep_delta8[n][k] = +2 if bit k of n is set, else -2: the update of eight weights
 * from one byte of input bits (2 KB of flash, no per-bit shifting). */
#define BEP_D(n, k) (((n) >> (k)) & 1 ? 2 : -2)
#define BEP_D8(n) {BEP_D(n, 0), BEP_D(n, 1), BEP_D(n, 2), BEP_D(n, 3), BEP_D(n, 4), BEP_D(n, 5), BEP_D(n, 6), BEP_D(n, 7)}
#define BEP_D8x4(n) BEP_D8(n), BEP_D8(n + 1), BEP_D8(n + 2), BEP_D8(n + 3)
#define BEP_D8x16(n) BEP_D8x4(n), BEP_D8x4(n + 4), BEP_D8x4(n + 8), BEP_D8x4(n + 12)
#define BEP_D8x64(n) BEP_D8x16(n), BEP_D8x16(n + 16), BEP_D8x16(n + 32), BEP_D8x16(n + 48)
static const int8_t bep_delta8[256][8] = {BEP_D8x64(0), BEP_D8x64(64), BEP_D8x64(128), BEP_D8x64(192)};
#undef BEP_D8x64
#undef BEP_D8x16
#undef BEP_D8x4
#undef BEP_D8
#undef BEP_D

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
/* Cortex-M4/M7/M33: QADD8 adds four int8 lanes with the same saturation as the C path
 * ([-128, 127]); bep_delta4[n] holds +2 (0x02) or -2 (0xFE) per lane from nibble n. */
static const uint32_t bep_delta4[16] = {
    0xFEFEFEFEu, 0xFEFEFE02u, 0xFEFE02FEu, 0xFEFE0202u, 0xFE02FEFEu, 0xFE02FE02u, 0xFE0202FEu, 0xFE020202u,
    0x02FEFEFEu, 0x02FEFE02u, 0x02FE02FEu, 0x02FE0202u, 0x0202FEFEu, 0x0202FE02u, 0x020202FEu, 0x02020202u,
};

BEP_HOT void bep_store4(int8_t *p, uint32_t w)
{
#if BEP_LE_BUILTINS
    __builtin_memcpy(p, &w, 4);
#else
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)w;
    b[1] = (uint8_t)(w >> 8);
    b[2] = (uint8_t)(w >> 16);
    b[3] = (uint8_t)(w >> 24);
#endif
}

BEP_HOT uint32_t bep_qadd8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("qadd8 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

static void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t i, b;
    for (i = 0; i + 32u <= bits; i += 32u) { /* one word of input bits: eight QADD8s */
        uint32_t x = v[i >> 5] ^ flip, j;
        for (j = 0; j < 32u; j += 4u, x >>= 4) bep_store4(h + i + j, bep_qadd8(bep_load4(h + i + j), bep_delta4[x & 0xFu]));
    }
    for (; i + 4u <= bits; i += 4u)
        bep_store4(h + i, bep_qadd8(bep_load4(h + i), bep_delta4[((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFu]));
    for (b = 0; i + b < bits; ++b) {
        int32_t t = h[i + b] + bep_delta8[((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu][b];
        t = t > 127 ? 127 : t;
        h[i + b] = (int8_t)(t < -128 ? -128 : t);
    }
}
#else
#if !defined(BEP_NO_SWAR64) && BEP_LE_BUILTINS && UINTPTR_MAX > 0xFFFFFFFFu
/* 64-bit hosts: eight weights per 64-bit word with no table and no branch, so the
 * compiler vectorises it (the host twin spends most of its time here). On the
 * offset-binary value u = h + 128 of each byte: +2 saturates at u >= 254, -2 at u <= 1;
 * every other lane moves by 2 without carrying into its neighbour. */
BEP_HOT uint64_t bep_add8x8(uint64_t h, uint32_t bits8)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u, lows = 0x7F7F7F7F7F7F7F7Fu;
    uint64_t u = h ^ highs;
    uint64_t spread = ((uint64_t)bits8 * ones) & 0x8040201008040201u; /* lane k keeps bit k */
    uint64_t up = ((((spread + lows) | spread) & highs) >> 7) * 0xFFu; /* 0xFF where +2 */
    uint64_t v = (u >> 1) & lows;
    uint64_t top = ((((v + ones) & highs) >> 7) * 0xFFu) & up;       /* u >= 254, +2 */
    uint64_t bottom = (((~(v + lows) & highs) >> 7) * 0xFFu) & ~up;   /* u <= 1, -2 */
    uint64_t two = ones << 1;
    uint64_t r = u + ((up & ~top) & two) - ((~up & ~bottom) & two);
    return ((r & ~(top | bottom)) | top) ^ highs;
}

static void bep_row_add8(int8_t *BEP_RESTRICT h, const uint32_t *BEP_RESTRICT v, uint32_t bits, uint32_t flip)
{
    uint32_t i, b;
    for (i = 0; i + 8u <= bits; i += 8u) {
        uint64_t w;
        __builtin_memcpy(&w, h + i, 8);
        w = bep_add8x8(w, ((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu);
        __builtin_memcpy(h + i, &w, 8);
    }
    for (b = 0; i + b < bits; ++b) {
        int32_t t = h[i + b] + bep_delta8[((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu][b];
        t = t > 127 ? 127 : t;
        h[i + b] = (int8_t)(t < -128 ? -128 : t);
    }
}
#else
static void bep_row_add8(int8_t *BEP_RESTRICT h, const uint32_t *BEP_RESTRICT v, uint32_t bits, uint32_t flip)
{
    uint32_t i, b;
    for (i = 0; i + 8u <= bits; i += 8u) {
        const int8_t *BEP_RESTRICT d = bep_delta8[((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu];
        for (b = 0; b < 8u; ++b) { /* independent lanes: vectorises on hosts */
            int32_t t = h[i + b] + d[b];
            t = t > 127 ? 127 : t;
            h[i + b] = (int8_t)(t < -128 ? -128 : t);
        }
    }
    for (b = 0; i + b < bits; ++b) {
        int32_t t = h[i + b] + bep_delta8[((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu][b];
        t = t > 127 ? 127 : t;
        h[i + b] = (int8_t)(t < -128 ? -128 : t);
    }
}
#endif
#endif

static void bep_row_add16(int16_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t w, n;
    for (w = 0; bits > 0u; ++w, bits -= n) {
        uint32_t x = v[w] ^ flip;
        n = bits < 32u ? bits : 32u;
        for (uint32_t b = 0; b < n; ++b, x >>= 1, ++h) {
            int32_t t = *h + (int32_t)((x & 1u) << 2) - 2;
            t = t > 32767 ? 32767 : t;
            *h = (int16_t)(t < -32768 ? -32768 : t);
        }
    }
}

/* Sign bits (1 = non-negative) of four int8 weights: lane k's bit lands on bit 8k,
 * and the multiply gathers bits 0, 8, 16, 24 into bits 24..27 (no carries). */
BEP_HOT uint32_t bep_sign4(const int8_t *h) { return (((~bep_load4(h) >> 7) & 0x01010101u) * 0x01020408u) >> 24; }

/* Packed sign of `bits` hidden weights starting at element `first` (sign(0) = +1). */
static void bep_row_sign(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t first,
                         uint32_t bits, uint32_t *out)
{
    uint32_t w, n, b;
    if (cfg->hidden_bits == 8u) {
        const int8_t *h = (const int8_t *)(void *)bep_bytes(state, L->h_off) + first;
        for (w = 0; bits > 0u; ++w, bits -= n) {
            uint32_t x = 0;
            n = bits < 32u ? bits : 32u;
            if (n == 32u) { /* a full word, unrolled: about 7 instructions per 4 weights */
                x = bep_sign4(h) | bep_sign4(h + 4) << 4 | bep_sign4(h + 8) << 8 | bep_sign4(h + 12) << 12 |
                    bep_sign4(h + 16) << 16 | bep_sign4(h + 20) << 20 | bep_sign4(h + 24) << 24 |
                    bep_sign4(h + 28) << 28;
                b = 32u;
            } else {
                for (b = 0; b + 4u <= n; b += 4u) x |= bep_sign4(h + b) << b;
            }
            for (; b < n; ++b) x |= (uint32_t)(h[b] >= 0) << b;
            out[w] = x;
            h += n;
        }
    } else {
        const int16_t *h = bep_i16(state, L->h_off) + first;
        for (w = 0; bits > 0u; ++w, bits -= n) {
            uint32_t x = 0;
            n = bits < 32u ? bits : 32u;
            for (b = 0; b < n; ++b) x |= (uint32_t)(h[b] >= 0) << b;
            out[w] = x;
            h += n;
        }
    }
}

static bep_status_t bep_check(const bep_config_t *cfg, const void *state, size_t state_len)
{
    if (cfg == NULL || state == NULL) return BEP_ERR_NULL;
    if (cfg->abi != BEP_RUNTIME_ABI) return BEP_ERR_ABI;
    if (((uintptr_t)state & 3u) != 0u) return BEP_ERR_ALIGN;
    if (state_len < cfg->state_bytes) return BEP_ERR_SIZE;
    if (((const bep_state_header_t *)state)->magic != cfg->config_hash) return BEP_ERR_STATE;
    return BEP_OK;
}

/* ------------------------------------------------------------- visible weights */

/* W[row] = sign(H[row]) (sign(0) = +1), and the row's bit in every row of the
 * transpose kept for the backward pass. */
static void bep_pack_row(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t row)
{
    uint32_t *w = bep_u32(state, L->w_off) + row * L->in_words;
    uint32_t *wt = bep_u32(state, L->wt_off), i;
    bep_row_sign(cfg, state, L, row * L->cols, L->in_bits, w);
    if (cfg->model == BEP_MODEL_RNN) {
        uint32_t *wr = bep_u32(state, L->wr_off) + row * L->rec_words;
        bep_row_sign(cfg, state, L, row * L->cols + L->in_bits, L->rows, wr);
        /* W_h^T: row i holds, for every neuron, its recurrent weight from neuron i. */
        for (i = 0; i < L->rows; ++i) bep_put_bit(wt + i * L->out_words, row, bep_get_bit(wr, i));
    } else if (L->wt_off != 0u) {
        for (i = 0; i < L->cols; ++i) bep_put_bit(wt + i * L->out_words, row, bep_get_bit(w, i));
    }
}

static void bep_pack_layer(const bep_config_t *cfg, void *state, const bep_layer_t *L)
{
    uint32_t row;
    if (L->wt_off != 0u) bep_zero(bep_u32(state, L->wt_off), (uint32_t)(cfg->model == BEP_MODEL_RNN ? L->rows : L->cols) * L->out_words);
    for (row = 0; row < L->rows; ++row) bep_pack_row(cfg, state, L, row);
}

/* ----------------------------------------------------------------- forward */

/* z = W a (+ W_h a_prev for the RNN), a_out = sign(z). */
static void bep_layer_forward(const bep_layer_t *L, void *state, const uint32_t *in, const uint32_t *prev,
                              int16_t *z, uint32_t *a_out)
{
    const uint32_t *w = bep_u32(state, L->w_off);
    const uint32_t *wr = bep_u32(state, L->wr_off);
    const uint32_t in_mask = bep_last_mask(L->in_bits), rec_mask = bep_last_mask(L->rows);
    const int32_t in_bits = (int32_t)L->in_bits, rec_bits = (int32_t)L->rows;
    uint32_t j;
    bep_zero(a_out, L->out_words);
    for (j = 0; j < L->rows; ++j) {
        int32_t zj = 2 * (int32_t)bep_agree(w + j * L->in_words, in, L->in_words, in_mask) - in_bits;
        if (prev != NULL) zj += 2 * (int32_t)bep_agree(wr + j * L->rec_words, prev, L->rec_words, rec_mask) - rec_bits;
        z[j] = (int16_t)zj;
        if (zj >= 0) a_out[j >> 5] |= 1u << (j & 31u);
    }
}

/* Runs the network on one packed sample; returns the last hidden activation and
 * writes the logits' argmax (ties to the lowest class) and the trigger decision. */
static const uint32_t *bep_forward(const bep_config_t *cfg, void *state, const uint32_t *x)
{
    uint32_t l, t;
    if (cfg->model == BEP_MODEL_MLP) {
        const uint32_t *in = x;
        for (l = 0; l < cfg->n_layers; ++l) {
            const bep_layer_t *L = &cfg->layer[l];
            uint32_t *a = bep_u32(state, L->a_off);
            bep_layer_forward(L, state, in, NULL, bep_i16(state, L->z_off), a);
            in = a;
        }
        return in;
    } else {
        const bep_layer_t *L = &cfg->layer[0];
        const uint32_t *prev = bep_u32(state, L->t_off) + 2u * L->out_words; /* a_0 = +1 */
        for (t = 0; t < cfg->steps; ++t) {
            uint32_t *a = bep_u32(state, L->a_off) + t * L->out_words;
            bep_layer_forward(L, state, x + t * L->in_words, prev, bep_i16(state, L->z_off) + t * L->rows, a);
            prev = a;
        }
        return prev;
    }
}

/* Logits y_c = <P_c, a_L>; prediction and trigger margin (docs/algorithm.md §2.1, §2.3). */
static uint16_t bep_classify(const bep_config_t *cfg, const uint32_t *a_last, int32_t label, int32_t *margin)
{
    uint32_t bits = cfg->layer[cfg->n_layers - 1u].rows, c;
    int32_t best = 0, rival = 0, own = 0;
    uint16_t arg = 0;
    int first_rival = 1;
    for (c = 0; c < cfg->n_classes; ++c) {
        int32_t y = bep_dot(cfg->classifier + c * cfg->class_words, a_last, bits);
        if (c == 0u || y > best) {
            best = y;
            arg = (uint16_t)c;
        }
        if ((int32_t)c == label) {
            own = y;
        } else if (first_rival || y > rival) {
            rival = y;
            first_rival = 0;
        }
    }
    if (margin != NULL) *margin = own - rival;
    return arg;
}

/* ---------------------------------------------------------------- learning */

/* Winner-takes-update (§2.5) on one layer/step and the saturating row updates:
 * H[j, :] += 2 a*_j [in, prev] for the wrong neuron with the smallest |s| per group. */
static uint32_t bep_update(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t gamma,
                           const int16_t *z, const uint32_t *target, const uint32_t *in, const uint32_t *prev)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *dirty = bep_u32(state, L->dirty_off);
    uint32_t start, n_updates = 0;
    for (start = 0; start < L->rows; start += gamma) {
        uint32_t end = start + gamma < L->rows ? start + gamma : L->rows;
        uint32_t j, winner = 0xFFFFFFFFu;
        int32_t best = 0;
        for (j = start; j < end; ++j) {
            int32_t s = bep_get_bit(target, j) ? z[j] : -(int32_t)z[j];
            if (s < 0 && (winner == 0xFFFFFFFFu || -s < best)) {
                best = -s;
                winner = j;
            }
        }
        if (winner == 0xFFFFFFFFu) continue;
        {
            uint32_t flip = bep_get_bit(target, winner) ? 0u : 0xFFFFFFFFu, base = winner * L->cols;
            if (cfg->hidden_bits == 8u) {
                int8_t *h = (int8_t *)(void *)bep_bytes(state, L->h_off) + base;
                bep_row_add8(h, in, L->in_bits, flip);
                if (prev != NULL) bep_row_add8(h + L->in_bits, prev, L->rows, flip);
            } else {
                int16_t *h = bep_i16(state, L->h_off) + base;
                bep_row_add16(h, in, L->in_bits, flip);
                if (prev != NULL) bep_row_add16(h + L->in_bits, prev, L->rows, flip);
            }
            dirty[winner >> 5] |= 1u << (winner & 31u);
            ++n_updates;
        }
    }
    hd->counters.updates += n_updates;
    return n_updates;
}

/* Desired activation of the layer below (§2.4): a*_i = sign(v_i), v = W^T (g ⊙ a*),
 * keeping the current activation where v_i = 0. `wt` rows are the columns of W. */
static void bep_backward(const bep_layer_t *upper, const uint32_t *wt, uint32_t n_below,
                         const int16_t *z_upper, const uint32_t *t_upper, const uint32_t *a_below,
                         uint32_t *t_below, uint32_t *gate)
{
    uint32_t j, i, open = 0;
    bep_zero(gate, upper->out_words);
    for (j = 0; j < upper->rows; ++j) {
        int32_t zj = z_upper[j];
        if ((zj < 0 ? -zj : zj) <= upper->gate) {
            gate[j >> 5] |= 1u << (j & 31u);
            ++open;
        }
    }
    for (i = 0; i < n_below; ++i) {
        const uint32_t *col = wt + i * upper->out_words;
        uint32_t k, agree = 0;
        int32_t v;
        for (k = 0; k < upper->out_words; ++k) agree += bep_pop(~(col[k] ^ t_upper[k]) & gate[k]);
        v = 2 * (int32_t)agree - (int32_t)open;
        bep_put_bit(t_below, i, v > 0 ? 1u : (v < 0 ? 0u : bep_get_bit(a_below, i)));
    }
}

static void bep_learn_mlp(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *gate = bep_u32(state, cfg->gate_off);
    int l;
    const bep_layer_t *top = &cfg->layer[cfg->n_layers - 1u];
    uint32_t k, *t_top = bep_u32(state, top->t_off);
    for (k = 0; k < cfg->class_words; ++k) t_top[k] = cfg->classifier[label * cfg->class_words + k];
    /* All a* come from the forward state, so compute them before any update. */
    for (l = (int)cfg->n_layers - 1; l >= 1; --l) {
        const bep_layer_t *U = &cfg->layer[l], *D = &cfg->layer[l - 1];
        bep_backward(U, bep_u32(state, U->wt_off), D->rows, bep_i16(state, U->z_off), bep_u32(state, U->t_off),
                     bep_u32(state, D->a_off), bep_u32(state, D->t_off), gate);
    }
    for (l = 0; l < (int)cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        const uint32_t *in = l == 0 ? x : bep_u32(state, cfg->layer[l - 1].a_off);
        bep_update(cfg, state, L, hd->gamma[l], bep_i16(state, L->z_off), bep_u32(state, L->t_off), in, NULL);
    }
}

/* BEP through time (§3): a*_T = P[c]; for t = T..1 the step's winners move H, then
 * a*_{t-1} comes from W_h^T and the gate on z_t (W is frozen, so order is free). */
static void bep_learn_rnn(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    const bep_layer_t *L = &cfg->layer[0];
    uint32_t *gate = bep_u32(state, cfg->gate_off);
    uint32_t *cur = bep_u32(state, L->t_off);       /* a*_t */
    uint32_t *next = cur + L->out_words;            /* a*_{t-1} */
    const uint32_t *ones = cur + 2u * L->out_words; /* a_0 = +1 */
    uint32_t k, t;
    for (k = 0; k < cfg->class_words; ++k) cur[k] = cfg->classifier[label * cfg->class_words + k];
    for (t = cfg->steps; t-- > 0u;) {
        const int16_t *z = bep_i16(state, L->z_off) + t * L->rows;
        const uint32_t *prev = t > 0u ? bep_u32(state, L->a_off) + (t - 1u) * L->out_words : ones;
        bep_update(cfg, state, L, hd->gamma[0], z, cur, x + t * L->in_words, prev);
        if (t > 0u) {
            bep_backward(L, bep_u32(state, L->wt_off), L->rows, z, cur, prev, next, gate);
            for (k = 0; k < L->out_words; ++k) cur[k] = next[k];
        }
    }
}

/* ------------------------------------------------------------------- API */

bep_status_t bep_init(const bep_config_t *cfg, void *state, size_t state_len, uint32_t seed, uint32_t batches)
{
    bep_state_header_t *hd;
    uint32_t l, k;
    if (cfg == NULL || state == NULL) return BEP_ERR_NULL;
    if (cfg->abi != BEP_RUNTIME_ABI) return BEP_ERR_ABI;
    if (((uintptr_t)state & 3u) != 0u) return BEP_ERR_ALIGN;
    if (state_len < cfg->state_bytes) return BEP_ERR_SIZE;
    bep_zero((uint32_t *)state, cfg->state_bytes / 4u);
    hd = bep_header(state);
    hd->magic = cfg->config_hash;
    hd->seed = seed;
    hd->counters.batches = batches;
    for (l = 0; l < cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        hd->gamma[l] = 1;
        if (cfg->initial_hidden[l] != NULL)
            bep_copy(bep_bytes(state, L->h_off), (const uint8_t *)cfg->initial_hidden[l], bep_layer_bytes(cfg, l));
        bep_pack_layer(cfg, state, L);
    }
    if (cfg->model == BEP_MODEL_RNN) {
        /* A packed all-ones vector: a_0 = +1 (§3). */
        const bep_layer_t *L = &cfg->layer[0];
        uint32_t *ones = bep_u32(state, L->t_off) + 2u * L->out_words;
        for (k = 0; k < L->out_words; ++k) ones[k] = 0xFFFFFFFFu;
        ones[L->out_words - 1u] = bep_last_mask(L->rows);
    }
    return BEP_OK;
}

bep_status_t bep_load_hidden(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                             const void *hidden, size_t hidden_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (hidden == NULL) return BEP_ERR_NULL;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    if (hidden_len != bep_layer_bytes(cfg, layer)) return BEP_ERR_SIZE;
    bep_copy(bep_bytes(state, cfg->layer[layer].h_off), (const uint8_t *)hidden, hidden_len);
    bep_pack_layer(cfg, state, &cfg->layer[layer]);
    return BEP_OK;
}

bep_status_t bep_read_hidden(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                             void *out, size_t out_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    if (out_len != bep_layer_bytes(cfg, layer)) return BEP_ERR_SIZE;
    bep_copy((uint8_t *)out, (const uint8_t *)state + cfg->layer[layer].h_off, out_len);
    return BEP_OK;
}

static bep_status_t bep_check_span(const bep_config_t *cfg, uint32_t layer, uint32_t offset, size_t n)
{
    size_t total;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    total = bep_layer_bytes(cfg, layer);
    if (offset > total || n > total - offset) return BEP_ERR_SIZE;
    return BEP_OK;
}

bep_status_t bep_write_hidden_bytes(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                                    uint32_t offset, const uint8_t *src, size_t n)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (src == NULL && n > 0u) return BEP_ERR_NULL;
    st = bep_check_span(cfg, layer, offset, n);
    if (st != BEP_OK) return st;
    bep_copy(bep_bytes(state, cfg->layer[layer].h_off) + offset, src, n);
    return BEP_OK;
}

bep_status_t bep_read_hidden_bytes(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                                   uint32_t offset, uint8_t *dst, size_t n)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (dst == NULL && n > 0u) return BEP_ERR_NULL;
    st = bep_check_span(cfg, layer, offset, n);
    if (st != BEP_OK) return st;
    bep_copy(dst, (const uint8_t *)state + cfg->layer[layer].h_off + offset, n);
    return BEP_OK;
}

bep_status_t bep_repack_layer(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    bep_pack_layer(cfg, state, &cfg->layer[layer]);
    return BEP_OK;
}

bep_status_t bep_set_epoch(const bep_config_t *cfg, void *state, size_t state_len, const uint16_t *gamma,
                           size_t n_gamma, const uint32_t *q, size_t n_q)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    bep_state_header_t *hd;
    uint32_t l;
    if (st != BEP_OK) return st;
    if (gamma == NULL || q == NULL) return BEP_ERR_NULL;
    if (n_gamma != cfg->n_layers || n_q != cfg->n_layers) return BEP_ERR_ARG;
    for (l = 0; l < cfg->n_layers; ++l) {
        if (gamma[l] < 1u || gamma[l] > cfg->layer[l].rows) return BEP_ERR_ARG;
        if (q[l] > 0xFFFFFFFFu - 0xFFFFu) return BEP_ERR_ARG;
    }
    hd = bep_header(state);
    for (l = 0; l < cfg->n_layers; ++l) {
        hd->gamma[l] = gamma[l];
        hd->q[l] = q[l];
    }
    return BEP_OK;
}

bep_status_t bep_infer(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x, size_t x_words,
                       uint16_t *out_class)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (x == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words) return BEP_ERR_SIZE;
    *out_class = bep_classify(cfg, bep_forward(cfg, state, x), -1, NULL);
    return BEP_OK;
}

/* One training sample after the caller's checks (§2.1-2.5); returns the prediction. */
static uint16_t bep_learn_sample(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    int32_t margin = 0;
    uint16_t pred = bep_classify(cfg, bep_forward(cfg, state, x), (int32_t)label, &margin);
    hd->counters.samples++;
    if (pred != label) hd->counters.errors++;
    if (margin >= cfg->trigger_margin) return pred; /* §2.3: not triggered, nothing changes */
    hd->counters.triggered++;
    hd->batch_triggered++;
    if (cfg->model == BEP_MODEL_MLP)
        bep_learn_mlp(cfg, state, x, label);
    else
        bep_learn_rnn(cfg, state, x, label);
    return pred;
}

bep_status_t bep_train_sample(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                              size_t x_words, uint16_t label, uint16_t *out_class)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (x == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words) return BEP_ERR_SIZE;
    if (label >= cfg->n_classes) return BEP_ERR_LABEL;
    *out_class = bep_learn_sample(cfg, state, x, label);
    return BEP_OK;
}

/* §2.6-2.7 at the end of a batch, after the caller's checks. */
static void bep_close_batch(const bep_config_t *cfg, void *state)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t l, counter;
    counter = hd->counters.batches++;
    if (hd->batch_triggered == 0u) return;
    hd->batch_triggered = 0;
    for (l = 0; l < cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        uint32_t *dirty = bep_u32(state, L->dirty_off);
        /* §2.7: M = (Q + (u & 0xFFFF)) >> 16 draws, index (d * N) >> 32, each pushes
         * its weight 2 away from zero (zero stays), saturating. Never flips a sign,
         * so only the rows updated in this batch need repacking. */
        uint32_t key = bep_draw_key(hd->seed, counter, l);
        uint32_t m = (hd->q[l] + (bep_mix32(key) & 0xFFFFu)) >> 16, k, row;
        if (cfg->hidden_bits == 8u) {
            int8_t *h8 = (int8_t *)(void *)bep_bytes(state, L->h_off);
            for (k = 1; k <= m; ++k) {
                uint32_t idx = bep_mulhi(bep_mix32(key ^ k), L->n_weights);
                /* Branch-free: the sign of a random weight is unpredictable. */
                int32_t h = h8[idx], t = h + 2 * ((h > 0) - (h < 0));
                t = t > 127 ? 127 : t;
                h8[idx] = (int8_t)(t < -128 ? -128 : t);
            }
        } else {
            int16_t *h16 = bep_i16(state, L->h_off);
            for (k = 1; k <= m; ++k) {
                uint32_t idx = bep_mulhi(bep_mix32(key ^ k), L->n_weights);
                int32_t h = h16[idx], t = h + 2 * ((h > 0) - (h < 0));
                t = t > 32767 ? 32767 : t;
                h16[idx] = (int16_t)(t < -32768 ? -32768 : t);
            }
        }
        for (row = 0; row < L->rows; ++row) {
            if (bep_get_bit(dirty, row)) bep_pack_row(cfg, state, L, row);
        }
        bep_zero(dirty, L->out_words);
    }
}

bep_status_t bep_end_batch(const bep_config_t *cfg, void *state, size_t state_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    bep_close_batch(cfg, state);
    return BEP_OK;
}

bep_status_t bep_train_batch(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                             size_t x_words, const uint16_t *labels, uint16_t *out_class, size_t n_samples)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    size_t k;
    if (st != BEP_OK) return st;
    if (x == NULL || labels == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != n_samples * cfg->input_words) return BEP_ERR_SIZE;
    for (k = 0; k < n_samples; ++k) {
        if (labels[k] >= cfg->n_classes) return BEP_ERR_LABEL; /* checked first: a batch applies whole or not at all */
    }
    /* Checked once for the whole batch, not again per sample. */
    for (k = 0; k < n_samples; ++k) out_class[k] = bep_learn_sample(cfg, state, x + k * cfg->input_words, labels[k]);
    bep_close_batch(cfg, state);
    return BEP_OK;
}

bep_status_t bep_read_counters(const bep_config_t *cfg, const void *state, size_t state_len, bep_counters_t *out)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    *out = ((const bep_state_header_t *)state)->counters;
    return BEP_OK;
}

bep_status_t bep_reset_counters(const bep_config_t *cfg, void *state, size_t state_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    bep_state_header_t *hd;
    uint32_t batches;
    if (st != BEP_OK) return st;
    hd = bep_header(state);
    batches = hd->counters.batches;
    hd->counters.samples = hd->counters.triggered = hd->counters.errors = hd->counters.updates = 0;
    hd->counters.batches = batches;
    return BEP_OK;
}
