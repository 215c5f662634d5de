/*
 * bep_runtime.c - the BEP learning rule in portable C99 (see bep_runtime.h).
 *
 * Everything here mirrors bep_mcu/engine/network.py; the comments name the docs/algorithm.md section each
 * step implements. Packed vectors: bit i of word i/32 is feature i, 1 = +1, padding 0.
 * This file decides what is computed on which layer and row; the dot products and the
 * row updates themselves, with their variants per core, are in bep_kernels.c.
 *
 * Where the time goes and why the kernels look the way they do is written up, with
 * instruction counts per word of work, in docs/performance.md.
 */
#include "bep_runtime_internal.h"
#include "bep_kernels_arm.h"

/* The host plans memory with these numbers, read from bep_runtime.h (bep_mcu/cgen/abi.py):
 * the compiler must agree with them. */
typedef char bep_header_size_check[(sizeof(bep_state_header_t) == BEP_STATE_HEADER_BYTES) ? 1 : -1];
typedef char bep_schedule_state_size_check[(sizeof(bep_schedule_state_t) == BEP_SCHEDULE_STATE_BYTES) ? 1 : -1];
typedef char bep_config_size_check[(sizeof(void *) != 4u || sizeof(bep_config_t) == BEP_CONFIG_BYTES_32) ? 1 : -1];

/* --------------------------------------------------------------- generator */

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

/* ------------------------------------------------------------------ helpers */

static uint32_t bep_get_bit(const uint32_t *v, uint32_t i) { return (v[i >> 5] >> (i & 31u)) & 1u; }

static void bep_put_bit(uint32_t *v, uint32_t i, uint32_t bit)
{
    uint32_t m = 1u << (i & 31u);
    v[i >> 5] = bit ? (v[i >> 5] | m) : (v[i >> 5] & ~m);
}

static void bep_zero(uint32_t *v, uint32_t words)
{
    uint32_t k;
    for (k = 0; k < words; ++k) v[k] = 0;
}

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

/* The checks every public function taking a state buffer starts with (bep_runtime.h). */
static bep_status_t bep_check(const bep_config_t *cfg, const void *state, size_t state_len)
{
    if (cfg == NULL || state == NULL) return BEP_ERR_NULL;
    if (cfg->abi != BEP_RUNTIME_ABI) return BEP_ERR_ABI;
    if (((uintptr_t)state & 3u) != 0u) return BEP_ERR_ALIGN;
    if (state_len < cfg->state_bytes) return BEP_ERR_SIZE;
    const bep_state_header_t *hd = (const bep_state_header_t *)state;
    if (hd->magic != cfg->config_hash) return BEP_ERR_STATE;
    /* The count bounds the classifier rows read: a buffer overwritten since bep_init or
     * bep_restore (which range-check it) must not send them past the table. */
    if (hd->n_classes_in_use == 0u || hd->n_classes_in_use > cfg->max_classes) return BEP_ERR_STATE;
    return BEP_OK;
}

/* ------------------------------------------------------------- visible weights */

/* Sign bits (1 = non-negative) of eight int8 weights, given as two little-endian
 * words: the sign of weight k < 4 lands on bit 8k, that of weight 4 + k on bit 8k + 4,
 * and one multiply gathers them into bits 24..31 in weight order (no two partial
 * products meet, so nothing carries). The masks come in registers (see
 * BEP_IN_REGISTER): "bic t, m, w, lsr #7" is then one instruction. */
BEP_HOT uint32_t bep_sign8(uint32_t lo, uint32_t hi, uint32_t m_lo, uint32_t m_hi, uint32_t gather)
{
    return ((m_lo & ~(lo >> 7)) | (m_hi & ~(hi >> 3))) * gather;
}

/* Packed sign of `bits` hidden weights starting at element `first` (sign(0) = +1). */
static void bep_row_sign(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t first,
                         uint32_t bits, uint32_t *out)
{
    uint32_t w, n, b;
    if (cfg->hidden_bits == 8u) {
        const int8_t *h = (const int8_t *)(void *)bep_bytes(state, L->h_off) + first;
        uint32_t m_lo = 0x01010101u, m_hi = 0x10101010u, gather = 0x01020408u;
        BEP_IN_REGISTER(m_lo);
        BEP_IN_REGISTER(m_hi);
        BEP_IN_REGISTER(gather);
        if (((uintptr_t)h & 3u) == 0u) {
            /* Full words of an aligned row: four gathers of eight, word loads. */
#if BEP_USE_ASM && defined(__thumb2__)
            if (bits >= 32u) {
                bep_asm_sign_words(h, out, bits >> 5, m_lo, m_hi, gather);
                out += bits >> 5;
                h += bits & ~31u;
                bits &= 31u;
            }
#else
            for (; bits >= 32u; bits -= 32u, h += 32) {
#if defined(__thumb2__)
                /* Pairs of words as one 64-bit load each: LDRD. */
                const bep_w64_t *hw = (const bep_w64_t *)(const void *)h;
                const uint64_t q0 = hw[0], q1 = hw[1], q2 = hw[2], q3 = hw[3];
#define BEP_SIGN8(v) bep_sign8((uint32_t)(v), (uint32_t)((v) >> 32), m_lo, m_hi, gather)
#else
                const bep_w32_t *hw = (const bep_w32_t *)(const void *)h;
                const bep_w32_t *q0 = hw, *q1 = hw + 2, *q2 = hw + 4, *q3 = hw + 6;
#define BEP_SIGN8(v) bep_sign8((v)[0], (v)[1], m_lo, m_hi, gather)
#endif
                *out++ = BEP_SIGN8(q0) >> 24 | (BEP_SIGN8(q1) >> 24) << 8 | (BEP_SIGN8(q2) >> 24) << 16 |
                         (BEP_SIGN8(q3) & 0xFF000000u);
#undef BEP_SIGN8
            }
#endif
        }
        for (w = 0; bits > 0u; ++w, bits -= n) {
            uint32_t x = 0;
            n = bits < 32u ? bits : 32u;
            for (b = 0; b + 8u <= n; b += 8u)
                x |= (bep_sign8(bep_load4(h + b), bep_load4(h + b + 4), m_lo, m_hi, gather) >> 24) << b;
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

/* Toggles `bit` in word col[i * ow] for every set bit i of `bits`; returns their count. */
static int32_t bep_toggle(uint32_t *col, uint32_t ow, uint32_t bits, uint32_t bit)
{
    int32_t n = 0;
#if BEP_HAS_CTZ
    for (; bits != 0u; bits &= bits - 1u, ++n) col[(uint32_t)__builtin_ctz(bits) * ow] ^= bit;
#else
    /* No CTZ: the lowest bit's index by a de Bruijn multiply (a few changed signs in a
     * word, not a scan of all 32). */
    static const uint8_t debruijn[32] = {0,  1,  28, 2,  29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4,  8,
                                         31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6,  11, 5,  10, 9};
    for (; bits != 0u; bits &= bits - 1u, ++n) col[debruijn[((bits & (0u - bits)) * 0x077CB531u) >> 27] * ow] ^= bit;
#endif
    return n;
}

/* The centred first layer's functions are out of line and marked cold: the hot path of every other
 * network keeps its code and registers (a test of cfg->input_means at each call site is all it pays). */
#if defined(__GNUC__)
#define BEP_COLD static __attribute__((noinline, cold))
#else
#define BEP_COLD static
#endif

/* A centred network's first layer (cfg->input_means): o_j = floor((sum_i W_ji M_i + 128) / 256) of
 * row j from its packed signs, after every repack of the row. ~((~s) >> 8) is the floor of a
 * negative s / 256 without shifting a negative value (implementation-defined in C99). */
BEP_COLD void bep_centre_row(const bep_config_t *cfg, void *state, uint32_t row)
{
    const bep_layer_t *L = &cfg->layer[0];
    const uint32_t *w = bep_u32(state, L->w_off) + row * L->in_words;
    int32_t s = 128;
    uint32_t i;
    for (i = 0; i < L->in_bits; ++i)
        s += (w[i >> 5] >> (i & 31u)) & 1u ? cfg->input_means[i] : -cfg->input_means[i];
    bep_i16(state, cfg->centre_off)[row] = (int16_t)(s >= 0 ? s >> 8 : ~((~s) >> 8));
}

/* Layer 0 of a centred network after its forward pass: z_j -= o_j, a_j = (z_j >= 0). */
BEP_COLD void bep_centre_forward(const bep_config_t *cfg, void *state, int16_t *z, uint32_t *a)
{
    const int16_t *o = bep_i16(state, cfg->centre_off);
    uint32_t j;
    for (j = 0; j < cfg->layer[0].rows; ++j) {
        z[j] = (int16_t)(z[j] - o[j]);
        a[j >> 5] = z[j] >= 0 ? a[j >> 5] | 1u << (j & 31u) : a[j >> 5] & ~(1u << (j & 31u));
    }
}

/* Weight i's move in a winner's row of a centred first layer: 2 a* (x_i - r_i), r_i = sign(M_i)
 * where |M_i| > 128 (the bit's rarer value comes in fewer than one row in four) else 0, so 0, ±2
 * or ±4 (t = 2 a*). */
static int32_t bep_centre_step(const bep_config_t *cfg, const uint32_t *in, uint32_t i, int32_t t)
{
    const int32_t m = cfg->input_means[i], r = m > 128 ? 1 : (m < -128 ? -1 : 0);
    return t * (((in[i >> 5] >> (i & 31u)) & 1u ? 1 : -1) - r);
}

/* A winner's row of a centred first layer: H_i += bep_centre_step, saturating once. */
static void bep_centre_update(const bep_config_t *cfg, void *h, const uint32_t *in, uint32_t flip)
{
    const int32_t t = flip ? -2 : 2;
    uint32_t i;
    if (cfg->hidden_bits == 8u) {
        int8_t *w = (int8_t *)h;
        for (i = 0; i < cfg->layer[0].in_bits; ++i) {
            const int32_t v = w[i] + bep_centre_step(cfg, in, i, t);
            w[i] = (int8_t)(v > 127 ? 127 : (v < -128 ? -128 : v));
        }
    } else {
        int16_t *w = (int16_t *)h;
        for (i = 0; i < cfg->layer[0].in_bits; ++i) {
            const int32_t v = w[i] + bep_centre_step(cfg, in, i, t);
            w[i] = (int16_t)(v > 32767 ? 32767 : (v < -32768 ? -32768 : v));
        }
    }
}

/* W[row] = sign(H[row]) (sign(0) = +1), and the row's bit in every row of the
 * transpose. MLP: the transpose (the column form of the forward pass) and the row's count
 * of +1 signs follow the row's changed signs only, found by XOR with the old row: a
 * repacked row changes few. */
BEP_KERNEL void bep_pack_row(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t row)
{
    uint32_t *w = bep_u32(state, L->w_off) + row * L->in_words;
    uint32_t *wt = bep_u32(state, L->wt_off), i;
    if (cfg->model == BEP_MODEL_RNN) {
        uint32_t *wr = bep_u32(state, L->wr_off) + row * L->rec_words;
        bep_row_sign(cfg, state, L, row * L->cols, L->in_bits, w);
        bep_row_sign(cfg, state, L, row * L->cols + L->in_bits, L->rows, wr);
        /* W_h^T: row i holds, for every neuron, its recurrent weight from neuron i. */
        for (i = 0; i < L->rows; ++i) bep_put_bit(wt + i * L->out_words, row, bep_get_bit(wr, i));
    } else {
        /* The new signs go to the forward pass's list, scratch until the next forward pass
         * (in_bits + 32 bytes: room for a row's words). */
        uint32_t *fresh = (uint32_t *)(void *)bep_slice_list(state, L), k;
        const uint32_t ow = L->out_words, bit = 1u << (row & 31u);
        int16_t *tn = bep_tn(state, L) + row;
        int32_t t = *tn;
        wt += row >> 5;
        bep_row_sign(cfg, state, L, row * L->cols, L->in_bits, fresh);
        for (k = 0; k < L->in_words; ++k) {
            const uint32_t now = fresh[k], diff = now ^ w[k];
            uint32_t *col = wt + 32u * k * ow;
            if (diff == 0u) continue;
            w[k] = now;
            /* One bit of the transpose per changed sign; T counts the signs that went up less
             * those that went down. */
            t += bep_toggle(col, ow, diff & now, bit) - bep_toggle(col, ow, diff & ~now, bit);
        }
        *tn = (int16_t)t;
    }
}

static void bep_pack_layer(const bep_config_t *cfg, void *state, const bep_layer_t *L)
{
    uint32_t row;
    if (cfg->model == BEP_MODEL_RNN) {
        bep_zero(bep_u32(state, L->wt_off), (uint32_t)L->rows * L->out_words);
    } else {
        /* From all-zero signs, every row's +1 signs count as changed (bep_pack_row). */
        bep_zero(bep_u32(state, L->w_off), (uint32_t)L->rows * L->in_words);
        bep_zero(bep_u32(state, L->wt_off), ((uint32_t)L->cols + 1u) * L->out_words);
        bep_zero((uint32_t *)(void *)bep_tn(state, L), ((uint32_t)L->rows + 1u) / 2u);
    }
    for (row = 0; row < L->rows; ++row) bep_pack_row(cfg, state, L, row);
    if (cfg->input_means != NULL && L == cfg->layer)
        for (row = 0; row < L->rows; ++row) bep_centre_row(cfg, state, row);
}

/* bep_repack_dirty for a centred first layer: each repacked row's offset follows its signs. */
BEP_COLD void bep_repack_centred(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t *dirty)
{
    uint32_t k, row;
    for (k = 0; k < L->out_words; ++k) {
        for (row = k * 32u; dirty[k] != 0u; dirty[k] >>= 1, ++row) {
            if (dirty[k] & 1u) {
                bep_pack_row(cfg, state, L, row);
                bep_centre_row(cfg, state, row);
            }
        }
    }
}

/* ----------------------------------------------------------------- forward */

/* Runs the network on one packed sample; returns the last hidden activation. */
static const uint32_t *bep_forward(const bep_config_t *cfg, void *state, const uint32_t *x)
{
    uint32_t l, t;
    if (cfg->model == BEP_MODEL_MLP) {
        const uint32_t *in = x;
        for (l = 0; l < cfg->n_layers; ++l) {
            const bep_layer_t *L = &cfg->layer[l];
            uint32_t *a = bep_u32(state, L->a_off);
            if (bep_cols_forward_fits(L))
                bep_layer_forward_cols(L, state, in, bep_i16(state, L->z_off), a);
            else
                bep_layer_forward(L, state, in, NULL, bep_i16(state, L->z_off), a);
            if (l == 0u && cfg->input_means != NULL) bep_centre_forward(cfg, state, bep_i16(state, L->z_off), a);
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

/* ---------------------------------------------------------------- learning */

/* Winner-takes-update (§2.5) on one layer/step: in each group of γ neurons the wrong
 * neuron with the smallest |s|, s = a*_j z_j, lowest index on ties.
 * A neuron is wrong exactly where its target differs from its activation
 * (a_j = z_j >= 0) and z_j != 0, and then |s| = |z|: one XOR per 32 neurons finds
 * the candidates, and only those load z. */
/* Each candidate i becomes one key, (|z_i| - 1) << 16 | (i - start), and the smallest
 * key wins: the smallest |z|, then the lowest index, without a branch. z_i = 0 wraps
 * to a key of at least 0xFFFF0000, above every real one (|z| <= 32768, i - start <
 * γ <= 32767), so it never wins. */
BEP_HOT uint32_t bep_min_key(int32_t zi, uint32_t offset, uint32_t best)
{
    const uint32_t key = ((uint32_t)(zi < 0 ? -zi : zi) - 1u) << 16 | offset;
    return key < best ? key : best;
}

BEP_INLINE_KERNEL uint32_t bep_winner(uint32_t start, uint32_t end, const int16_t *z, const uint32_t *act,
                               const uint32_t *target)
{
    uint32_t j, stop, best = 0xFFFFFFFFu;
    for (j = start; j < end; j = stop) {
        uint32_t cand;
        stop = (j | 31u) + 1u < end ? (j | 31u) + 1u : end; /* this word's part of the group */
        cand = ((act[j >> 5] ^ target[j >> 5]) >> (j & 31u)) & (0xFFFFFFFFu >> (32u - (stop - j)));
#if BEP_USE_ASM && defined(__thumb2__)
        if (cand != 0u) best = bep_asm_min_key(cand, z + j, j - start, best);
#elif BEP_USE_ASM && defined(__ARM_ARCH_6M__)
        if (cand != 0u) best = bep_asm_min_key_v6m(cand, z + j, j - start, best);
#elif BEP_HAS_CTZ
        /* Jump from candidate to candidate. */
        for (; cand != 0u; cand &= cand - 1u) {
            const uint32_t k = (uint32_t)__builtin_ctz(cand);
            best = bep_min_key(z[j + k], j + k - start, best);
        }
#else
        uint32_t i;
        for (i = j; cand != 0u; ++i, cand >>= 1) {
            if (cand & 1u) best = bep_min_key(z[i], i - start, best);
        }
#endif
    }
    return best < 0x80000000u ? start + (best & 0xFFFFu) : 0xFFFFFFFFu;
}

/* bep_update for a centred first layer (bep_config_t.input_means): the same winners, each row moved by
 * bep_centre_update. A function apart, so that no other layer pays a test per winner. */
BEP_COLD void bep_update_centred(const bep_config_t *cfg, void *state, uint32_t gamma, const int16_t *z,
                                 const uint32_t *act, const uint32_t *target, const uint32_t *in)
{
    const bep_layer_t *L = cfg->layer;
    uint32_t *dirty = bep_u32(state, L->dirty_off);
    uint32_t start, end;
    for (start = 0; start < L->rows; start = end) {
        uint32_t winner;
        end = start + gamma < L->rows ? start + gamma : L->rows;
        winner = bep_winner(start, end, z, act, target);
        if (winner == 0xFFFFFFFFu) continue;
        bep_centre_update(cfg, bep_bytes(state, L->h_off) + winner * L->cols * (cfg->hidden_bits / 8u), in,
                          (target[winner >> 5] >> (winner & 31u)) & 1u ? 0u : 0xFFFFFFFFu);
        dirty[winner >> 5] |= 1u << (winner & 31u);
        bep_header(state)->counters.updates++;
    }
}

/* Each winner's row moves by 2 a*_j [in, prev] (saturating) and is marked dirty for the
 * repack at the end of the batch. */
static void bep_update(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t gamma,
                       const int16_t *z, const uint32_t *act, const uint32_t *target, const uint32_t *in,
                       const uint32_t *prev)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *dirty = bep_u32(state, L->dirty_off);
    uint32_t start, end;
    if (cfg->input_means != NULL && L == cfg->layer) {
        bep_update_centred(cfg, state, gamma, z, act, target, in);
        return;
    }
    for (start = 0; start < L->rows; start = end) {
        uint32_t winner, flip, base;
        end = start + gamma < L->rows ? start + gamma : L->rows;
        winner = bep_winner(start, end, z, act, target);
        if (winner == 0xFFFFFFFFu) continue;
        flip = bep_get_bit(target, winner) ? 0u : 0xFFFFFFFFu;
        base = winner * L->cols;
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
        hd->counters.updates++;
    }
}

/* Desired activation of the layer below (§2.4): a*_i = sign(v_i), v = W^T (g ⊙ a*),
 * keeping the current activation where v_i = 0. `wt` rows are the columns of W. */
BEP_KERNEL void bep_backward(const bep_layer_t *upper, const uint32_t *wt, uint32_t n_below,
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

/* γ = 0 freezes a layer (bep_set_epoch): no update, no reinforcement, and no a* below the
 * lowest layer that learns, whose backward passes are skipped. */
static void bep_learn_mlp(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *gate = bep_u32(state, cfg->gate_off);
    int l, lowest = 0;
    const bep_layer_t *top = &cfg->layer[cfg->n_layers - 1u];
    uint32_t k, *t_top = bep_u32(state, top->t_off);
    while (lowest < (int)cfg->n_layers && hd->gamma[lowest] == 0u) ++lowest;
    if (lowest == (int)cfg->n_layers) return; /* every layer frozen */
    for (k = 0; k < cfg->class_words; ++k) t_top[k] = cfg->classifier[label * cfg->class_words + k];
    /* All a* come from the forward state, so compute them before any update. */
    for (l = (int)cfg->n_layers - 1; l > lowest; --l) {
        const bep_layer_t *U = &cfg->layer[l], *D = &cfg->layer[l - 1];
        bep_backward(U, bep_u32(state, U->wt_off), D->rows, bep_i16(state, U->z_off), bep_u32(state, U->t_off),
                     bep_u32(state, D->a_off), bep_u32(state, D->t_off), gate);
    }
    for (l = lowest; l < (int)cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        const uint32_t *in = l == 0 ? x : bep_u32(state, cfg->layer[l - 1].a_off);
        if (hd->gamma[l] != 0u) /* else frozen */
            bep_update(cfg, state, L, hd->gamma[l], bep_i16(state, L->z_off), bep_u32(state, L->a_off),
                       bep_u32(state, L->t_off), in, NULL);
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
    if (hd->gamma[0] == 0u) return; /* the cell is frozen */
    for (k = 0; k < cfg->class_words; ++k) cur[k] = cfg->classifier[label * cfg->class_words + k];
    for (t = cfg->steps; t-- > 0u;) {
        const int16_t *z = bep_i16(state, L->z_off) + t * L->rows;
        const uint32_t *act = bep_u32(state, L->a_off) + t * L->out_words;
        const uint32_t *prev = t > 0u ? act - L->out_words : ones;
        bep_update(cfg, state, L, hd->gamma[0], z, act, cur, x + t * L->in_words, prev);
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
    hd->n_classes_in_use = cfg->n_classes;
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
        if (gamma[l] > cfg->layer[l].rows) return BEP_ERR_ARG; /* 0: the layer is frozen */
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
    *out_class = bep_classify(cfg, bep_header(state)->n_classes_in_use, bep_forward(cfg, state, x), -1, NULL);
    return BEP_OK;
}

bep_status_t bep_scores(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x, size_t x_words,
                        int32_t *scores, size_t n_scores)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (x == NULL || scores == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words || n_scores < bep_header(state)->n_classes_in_use) return BEP_ERR_SIZE;
    bep_logits(cfg, bep_header(state)->n_classes_in_use, bep_forward(cfg, state, x), scores);
    return BEP_OK;
}

/* One training sample after the caller's checks (§2.1-2.5); returns the prediction. */
static uint16_t bep_learn_sample(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    int32_t margin = 0;
    uint16_t pred = bep_classify(cfg, hd->n_classes_in_use, bep_forward(cfg, state, x), (int32_t)label, &margin);
    bep_schedule_state_t *sched = bep_schedule(cfg, state);
    hd->counters.samples++;
    if (pred != label) hd->counters.errors++;
    if (hd->counters.samples - sched->start_samples >= BEP_EPOCH_MAX_SAMPLES) { /* bep_schedule_state_t */
        sched->start_samples = hd->counters.samples;
        sched->start_errors = hd->counters.errors;
    }
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
    if (label >= bep_header(state)->n_classes_in_use) return BEP_ERR_LABEL;
    *out_class = bep_learn_sample(cfg, state, x, label);
    return BEP_OK;
}

/* ------------------------------------------------------------- end of batch */

/* bep_reinforce8[u]: the int8 weight with bit pattern u pushed 2 away from zero,
 * saturating, zero left alone (§2.7): one table load per draw instead of a sign, an
 * add and two clamps. */
#define BEP_R(u) ((uint8_t)((u) == 0 ? 0 : (u) < 126 ? (u) + 2 : (u) < 128 ? 127 : (u) < 130 ? 128 : (u) - 2))
#define BEP_R4(u) BEP_R(u), BEP_R(u + 1), BEP_R(u + 2), BEP_R(u + 3)
#define BEP_R16(u) BEP_R4(u), BEP_R4(u + 4), BEP_R4(u + 8), BEP_R4(u + 12)
#define BEP_R64(u) BEP_R16(u), BEP_R16(u + 16), BEP_R16(u + 32), BEP_R16(u + 48)
static const uint8_t bep_reinforce8[256] = {BEP_R64(0), BEP_R64(64), BEP_R64(128), BEP_R64(192)};
#undef BEP_R64
#undef BEP_R16
#undef BEP_R4
#undef BEP_R

/* §2.7 for one layer: M = (Q + (u & 0xFFFF)) >> 16 draws, index (d * N) >> 32, each
 * pushing its weight 2 away from zero (zero stays), saturating, in draw order. */
BEP_KERNEL void bep_reinforce(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t key, uint32_t q)
{
    const uint32_t n = L->n_weights;
    uint32_t m = (q + (bep_mix32(key) & 0xFFFFu)) >> 16, k;
    if (cfg->hidden_bits == 8u) {
        /* Draw 1, then the pairs (k, k + 1) with k even, whose keys differ in bit 0 only:
         * one loop test and one key per two draws, in draw order. */
        uint8_t *h8 = bep_bytes(state, L->h_off);
        uint32_t i;
        if (m == 0u) return;
        i = bep_mulhi(bep_mix32(key ^ 1u), n);
        h8[i] = bep_reinforce8[h8[i]];
        k = 2;
        if (k < m) {
            do { /* the test at the bottom: one branch a pair */
                const uint32_t d = key ^ k;
                i = bep_mulhi(bep_mix32(d), n);
                h8[i] = bep_reinforce8[h8[i]];
                i = bep_mulhi(bep_mix32(d ^ 1u), n);
                h8[i] = bep_reinforce8[h8[i]];
                k += 2u;
            } while (k < m);
        }
        if (k == m) {
            i = bep_mulhi(bep_mix32(key ^ k), n);
            h8[i] = bep_reinforce8[h8[i]];
        }
    } else {
        int16_t *h16 = bep_i16(state, L->h_off);
        for (k = 1; k <= m; ++k) {
            uint32_t idx = bep_mulhi(bep_mix32(key ^ k), n);
            /* Branch-free: the sign of a random weight is unpredictable. */
            int32_t h = h16[idx], t = h + 2 * ((h > 0) - (h < 0));
            t = t > 32767 ? 32767 : t;
            h16[idx] = (int16_t)(t < -32768 ? -32768 : t);
        }
    }
}

#if BEP_USE_ASM && defined(__thumb2__)
/* bep_repack_dirty for int8 MLP rows of whole aligned words: what bep_pack_row does, in
 * one pass a row (bep_asm_repack_words) and without its per-row set-up. Out of line:
 * inlined into bep_close_batch, it costs the reinforcement loop registers. */
static __attribute__((noinline)) void bep_repack_words(void *state, const bep_layer_t *L, uint32_t *dirty)
{
    const int8_t *h = (const int8_t *)(void *)bep_bytes(state, L->h_off);
    const uint32_t words = L->in_bits >> 5, stride = 4u * L->out_words;
    uint32_t *w = bep_u32(state, L->w_off), *wt = bep_u32(state, L->wt_off), k;
    int16_t *tn = bep_tn(state, L);
    for (k = 0; k < L->out_words; ++k) {
        uint32_t left = dirty[k];
        for (; left != 0u; left &= left - 1u) {
            const uint32_t row = k * 32u + (uint32_t)__builtin_ctz(left);
            tn[row] = (int16_t)bep_asm_repack_words(h + row * L->in_bits, w + row * words, words, wt + k, stride,
                                                    left & (0u - left), (uint32_t)(int32_t)tn[row]);
        }
        dirty[k] = 0;
    }
}
#endif

/* W = sign(H) for the rows updated in this batch (a dirty bit each), then clear them. */
BEP_KERNEL void bep_repack_dirty(const bep_config_t *cfg, void *state, const bep_layer_t *L)
{
    uint32_t *dirty = bep_u32(state, L->dirty_off), k;
    if (cfg->input_means != NULL && L == cfg->layer) {
        bep_repack_centred(cfg, state, L, dirty);
        return;
    }
#if BEP_USE_ASM && defined(__thumb2__)
    if (cfg->model == BEP_MODEL_MLP && cfg->hidden_bits == 8u && (L->in_bits & 31u) == 0u &&
        ((uintptr_t)bep_bytes(state, L->h_off) & 3u) == 0u) {
        bep_repack_words(state, L, dirty);
        return;
    }
#endif
    for (k = 0; k < L->out_words; ++k) {
        uint32_t left = dirty[k], row = k * 32u;
#if BEP_HAS_CTZ
        for (; left != 0u; left &= left - 1u) bep_pack_row(cfg, state, L, row + (uint32_t)__builtin_ctz(left));
#else
        for (; left != 0u; left >>= 1, ++row) {
            if (left & 1u) bep_pack_row(cfg, state, L, row);
        }
#endif
        dirty[k] = 0;
    }
}

/* §2.6-2.7 at the end of a batch, after the caller's checks. Reinforcement never flips
 * a sign, so only the rows updated in this batch need repacking. */
static void bep_close_batch(const bep_config_t *cfg, void *state)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t l, counter;
    counter = hd->counters.batches++;
    if (hd->batch_triggered == 0u) return;
    hd->batch_triggered = 0;
    for (l = 0; l < cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        if (hd->gamma[l] != 0u) bep_reinforce(cfg, state, L, bep_draw_key(hd->seed, counter, l), hd->q[l]);
        bep_repack_dirty(cfg, state, L); /* a layer frozen by a SET_EPOCH inside the batch has rows to repack */
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
        /* checked first: a batch applies whole or not at all */
        if (labels[k] >= bep_header(state)->n_classes_in_use) return BEP_ERR_LABEL;
    }
    /* Checked once for the whole batch, not again per sample. */
    for (k = 0; k < n_samples; ++k) out_class[k] = bep_learn_sample(cfg, state, x + k * cfg->input_words, labels[k]);
    bep_close_batch(cfg, state);
    return BEP_OK;
}

bep_status_t bep_set_classes(const bep_config_t *cfg, void *state, size_t state_len, uint32_t n)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (n < bep_header(state)->n_classes_in_use || n > cfg->max_classes) return BEP_ERR_ARG;
    bep_header(state)->n_classes_in_use = n;
    return BEP_OK;
}

bep_status_t bep_read_classes(const bep_config_t *cfg, const void *state, size_t state_len, uint16_t *out)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    *out = (uint16_t)((const bep_state_header_t *)state)->n_classes_in_use;
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
    bep_schedule_state_t *sched;
    uint32_t batches;
    if (st != BEP_OK) return st;
    hd = bep_header(state);
    batches = hd->counters.batches;
    hd->counters.samples = hd->counters.triggered = hd->counters.errors = hd->counters.updates = 0;
    hd->counters.batches = batches;
    sched = bep_schedule(cfg, state); /* the open epoch is counted from here (bep_schedule_state_t) */
    sched->start_errors = sched->start_samples = 0;
    return BEP_OK;
}
