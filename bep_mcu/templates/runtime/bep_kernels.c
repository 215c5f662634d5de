/*
 * bep_kernels.c - the arithmetic of the BEP runtime: XNOR-popcount dot products and
 * saturating row updates (bep_runtime_internal.h declares what bep_runtime.c calls).
 *
 * Every kernel has a portable C path, and each family starts with its plainest one (word
 * by word, one weight at a time): the reference the others must equal bit for bit.
 * Inside a function the variants come in one order: `#if` hand-scheduled assembly
 * (bep_kernels_arm.h) or the DSP extension, `#elif` the next core down, `#else` portable
 * C. Packed vectors: bit i of word i/32 is feature i, 1 = +1, padding 0.
 * Why each kernel looks the way it does, with instruction counts per word of work, is
 * written up in docs/performance.md.
 */
#include "bep_runtime_internal.h"
#include "bep_kernels_arm.h"

/* -------------------------------------------------------- XNOR-popcount dot */

#if BEP_POPCOUNT_TABLE
#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)
const uint8_t bep_pop8[256] = {B6(0), B6(1), B6(1), B6(2)};
#undef B2
#undef B4
#undef B6
#endif

/* Internal calls use the inline bep_pop (a public symbol in a shared object is called
 * through the PLT). */
uint32_t bep_popcount32(uint32_t x) { return bep_pop(x); }

/* Disagreements of two packed ±1 vectors over all n words, padding bits included:
 * <w, a> = K - 2 * (differ - padding) (docs/algorithm.md §1). Counting disagreements (XOR) rather
 * than agreements saves a complement per word. Packed weight rows and the classifier
 * have zero padding, so the padding of w ^ a is that of a, the same for every row: the
 * caller subtracts bep_padding(a) once per vector instead of masking each row's last
 * word (an input may carry garbage there; it must never count). */
#if BEP_POPCOUNT_TABLE || BEP_POPCOUNT_BUILTIN
/* Word by word (the table, or a popcount instruction). */
BEP_HOT uint32_t bep_differ(const uint32_t *w, const uint32_t *a, uint32_t n)
{
    uint32_t k, acc = 0;
    for (k = 0; k < n; ++k) acc += bep_pop(w[k] ^ a[k]);
    return acc;
}
#else
/* Paired SWAR (the default): a word's 2-bit and 4-bit steps leave eight nibble counts of
 * at most 4, so two words' nibbles add up without overflow (<= 8) and share one
 * nibble-to-byte fold and one horizontal byte sum (USADA8 where the DSP extension
 * exists, else a multiply): 21 instructions per two words on Cortex-M4 instead of 30
 * word by word. On Arm the pair loop is assembly (BEP_USE_ASM). */
#define BEP_NIBBLES(x) ((x) -= ((x) >> 1) & m1, ((x) & m2) + (((x) >> 2) & m2))

BEP_HOT uint32_t bep_byte_sum(uint32_t x, uint32_t m4, uint32_t acc)
{
    x = (x & m4) + ((x >> 4) & m4); /* four byte counts, each <= 16 */
#if BEP_USE_DSP
    return bep_usada8(x, acc);
#else
    return acc + ((x * 0x01010101u) >> 24);
#endif
}

BEP_HOT uint32_t bep_differ(const uint32_t *w, const uint32_t *a, uint32_t n)
{
    uint32_t m1 = 0x55555555u, m2 = 0x33333333u, m4 = 0x0F0F0F0Fu, acc = 0, x;
    BEP_IN_REGISTER(m1);
    BEP_IN_REGISTER(m2);
    BEP_IN_REGISTER(m4);
#if BEP_USE_ASM && defined(__thumb2__)
    if (n >= 2u) acc = bep_asm_differ_pairs(&w, &a, n >> 1, m1, m2, m4, acc);
#elif BEP_USE_ASM && defined(__ARM_ARCH_6M__)
    /* The byte counts of up to 15 pairs (<= 16 each) add up in one word before the fold
     * to 16-bit halves. */
    while (n >= 2u) {
        uint32_t bytes = bep_asm_byte_counts_v6m(&w, &a, &n, m1, m2, m4);
        bytes = (bytes & 0x00FF00FFu) + ((bytes >> 8) & 0x00FF00FFu);
        acc += (bytes + (bytes >> 16)) & 0xFFFFu;
    }
#else
    for (; n >= 2u; n -= 2u, w += 2, a += 2) {
        uint32_t y = w[1] ^ a[1];
        x = w[0] ^ a[0];
        acc = bep_byte_sum(BEP_NIBBLES(x) + BEP_NIBBLES(y), m4, acc);
    }
#endif
    if (n & 1u) {
        x = w[0] ^ a[0];
        acc = bep_byte_sum(BEP_NIBBLES(x), m4, acc);
    }
    return acc;
}
#undef BEP_NIBBLES
#endif

/* Set padding bits of a packed vector of `bits` bits (see bep_differ). */
static uint32_t bep_padding(const uint32_t *a, uint32_t bits)
{
    return (bits & 31u) ? bep_pop(a[bits >> 5] >> (bits & 31u)) : 0u;
}

/* z_b = bits - 2 differ(row b, in) for the nb (1..32) rows of n words at *w, stored at
 * *z; returns the signs (z_b >= 0) at bit b; *w and *z end past the rows. The hidden
 * layers' rows and the classifier's. On Arm the row loop is assembly too. On ARMv6-M
 * never inlined: the row loop's inline assembly takes all eight low registers, and inlined
 * into its callers (as -O3 or LTO could) it trained other weights on rows of more than 30
 * words (tests/test_icount.py::test_forward_row_loops_bit_exact caught it). */
#if BEP_USE_ASM && defined(__ARM_ARCH_6M__) && defined(__GNUC__)
__attribute__((noinline))
#endif
static uint32_t bep_dot_rows(const uint32_t **w, const uint32_t *in, uint32_t n, uint32_t nb, int32_t bits,
                             int16_t **z)
{
    const uint32_t *wp = *w;
    int16_t *zp = *z;
    uint32_t b, acts = 0;
#if BEP_USE_ASM && defined(__thumb2__) && BEP_USE_DSP && !BEP_POPCOUNT_TABLE && !BEP_POPCOUNT_BUILTIN
    if ((n & 1u) == 0u && n != 0u)
        return bep_asm_forward_rows(w, in, n >> 1, nb, bits, z, 0x55555555u, 0x33333333u, 0x0F0F0F0Fu);
#elif BEP_USE_ASM && defined(__ARM_ARCH_6M__) && !BEP_POPCOUNT_TABLE && !BEP_POPCOUNT_BUILTIN
    if ((n & 1u) == 0u && n != 0u && n <= 30u) {
        bep_rows_v6m_t s;
        s.in = in;
        s.m8 = 0x00FF00FFu;
        s.bits = bits;
        s.z = zp;
        acts = bep_asm_forward_rows_v6m(w, &s, n >> 1, nb, 0x55555555u, 0x33333333u, 0x0F0F0F0Fu);
        *z = s.z;
        /* Row b's z < 0 came back at bit nb - 1 - b: reverse, complement. */
        return ~(bep_reverse32(acts) >> (32u - nb)) & (0xFFFFFFFFu >> (32u - nb));
    }
#endif
    for (b = 0; b < nb; ++b, wp += n) {
        const int32_t zb = bits - 2 * (int32_t)bep_differ(wp, in, n);
        *zp++ = (int16_t)zb;
        acts |= (uint32_t)(zb >= 0) << b;
    }
    *w = wp;
    *z = zp;
    return acts;
}

/* --------------------------------------- column-form (bit-sliced) forward pass */

/* An MLP layer's z from the transpose wt (bit n of column i: the sign of weight (n, i)):
 * with S_n = the +1 weights of row n at the set input bits, the disagreements are
 * d_n = |x| + T_n - 2 S_n (T_n: the row's +1 weights, bep_tn), so
 * z_n = K - 2 d_n = K - 2|x| - 2 T_n + 4 S_n. When more than half the input bits are set
 * the clear ones are summed instead (S'_n = T_n - S_n). The sum runs over 32 neurons at
 * once: one column word per iterated bit goes into bit planes of the counts through a
 * carry-save adder tree (eight columns give ones, twos, fours and a carry into the
 * eights), then a bit-matrix transpose turns the planes into one count per neuron. The
 * iterated bits are listed first (word offsets of their columns, in the state: at most
 * K / 2 of them, padded to whole groups with the column of zeros after the last). Columns
 * whose offsets pass uint16 (layers of more than 2^21 weights) take the row form
 * (bep_cols_forward_fits). */

/* The columns one pass of the counting loop takes (lists are padded with the zero column
 * to a multiple of it). */
#if BEP_USE_ASM && defined(__thumb2__)
#define BEP_SLICE_GROUP 16u
#else
#define BEP_SLICE_GROUP 8u
#endif

/* (h, l) = l + a + b, as the bit planes of 32 two-bit sums. */
#define BEP_CSA(h, l, a, b)                      \
    do {                                         \
        const uint32_t u_ = (l) ^ (a), b_ = (b); \
        (h) = ((l) & (a)) | (u_ & b_);           \
        (l) = u_ ^ b_;                           \
    } while (0)

/* Eight columns into the planes: ones, twos and fours in carry-save form, the eights
 * rippling up c[3..]. */
#define BEP_CSA8(d0, d1, d2, d3, d4, d5, d6, d7)     \
    do {                                             \
        uint32_t ta, tb, fa, fb, e, q;               \
        BEP_CSA(ta, ones, d0, d1);                   \
        BEP_CSA(tb, ones, d2, d3);                   \
        BEP_CSA(fa, twos, ta, tb);                   \
        BEP_CSA(ta, ones, d4, d5);                   \
        BEP_CSA(tb, ones, d6, d7);                   \
        BEP_CSA(fb, twos, ta, tb);                   \
        BEP_CSA(e, fours, fa, fb);                   \
        for (q = 3; e != 0u; ++q) {                  \
            const uint32_t t_ = c[q] & e;            \
            c[q] ^= e;                               \
            e = t_;                                  \
        }                                            \
    } while (0)

/* c[0..15] = the bit planes of the sums, over the n (a multiple of BEP_SLICE_GROUP)
 * listed columns (word offsets into col), of their first word (c[16] scratch; a sum
 * below 2^16 ripples no further than c[15]). */
static void bep_slice_count(const uint32_t *col, const uint16_t *p, uint32_t n, uint32_t *c)
{
#if BEP_USE_ASM && defined(__thumb2__)
    c[16] = (uint32_t)(uintptr_t)(p + n); /* sixteen at a time, to the end pointer in c[16] */
    bep_asm_slice16(col, p, c);
#else
    uint32_t ones = 0, twos = 0, fours = 0, i;
    const uint16_t *end = p + n;
    for (i = 3; i < 16u; ++i) c[i] = 0;
    for (; p != end; p += 8)
        BEP_CSA8(col[p[0]], col[p[1]], col[p[2]], col[p[3]], col[p[4]], col[p[5]], col[p[6]], col[p[7]]);
    c[0] = ones;
    c[1] = twos;
    c[2] = fours;
#endif
}
#undef BEP_CSA8
#undef BEP_CSA

/* Transposes the 8 x 32 bit matrix c[0..7]: afterwards bit k of byte j of c[r] is bit
 * 8j + r of plane k, so byte j of c[r] is the count of neuron 8j + r. Three rounds of
 * swaps of 4, 2 and 1 rows and columns in each 8 x 8 block. */
#define BEP_SWAP(a, b, s, m)                            \
    do {                                                \
        const uint32_t t_ = (((a) >> (s)) ^ (b)) & (m); \
        (b) ^= t_;                                      \
        (a) ^= t_ << (s);                               \
    } while (0)
BEP_HOT void bep_transpose8(uint32_t *c)
{
    uint32_t c0 = c[0], c1 = c[1], c2 = c[2], c3 = c[3], c4 = c[4], c5 = c[5], c6 = c[6], c7 = c[7];
    uint32_t m = 0x0F0F0F0Fu;
    BEP_IN_REGISTER(m);
    BEP_SWAP(c0, c4, 4, m);
    BEP_SWAP(c1, c5, 4, m);
    BEP_SWAP(c2, c6, 4, m);
    BEP_SWAP(c3, c7, 4, m);
    m = 0x33333333u;
    BEP_IN_REGISTER(m);
    BEP_SWAP(c0, c2, 2, m);
    BEP_SWAP(c1, c3, 2, m);
    BEP_SWAP(c4, c6, 2, m);
    BEP_SWAP(c5, c7, 2, m);
    m = 0x55555555u;
    BEP_IN_REGISTER(m);
    BEP_SWAP(c0, c1, 1, m);
    BEP_SWAP(c2, c3, 1, m);
    BEP_SWAP(c4, c5, 1, m);
    BEP_SWAP(c6, c7, 1, m);
    c[0] = c0;
    c[1] = c1;
    c[2] = c2;
    c[3] = c3;
    c[4] = c4;
    c[5] = c5;
    c[6] = c6;
    c[7] = c7;
}
#undef BEP_SWAP

/* z and the activations of the rows in 32-neuron words from the counts S_n of the n
 * listed columns: z_n = base + sg (4 S_n - 2 T_n); planes: the counts' bits. */
static void bep_slice_z(const bep_layer_t *L, const uint32_t *wt, const int16_t *tn, const uint16_t *list,
                        uint32_t n, int32_t base, int32_t sg, uint32_t planes, int16_t *z, uint32_t *a_out)
{
    uint32_t row;
    for (row = 0; row < L->rows; row += 32u, z += 32, tn += 32) {
        const uint32_t nb = L->rows - row < 32u ? L->rows - row : 32u;
        uint32_t c[17], q, neg = 0;
        bep_slice_count(wt + (row >> 5), list, n, c);
        bep_transpose8(c);
        if (planes > 8u) bep_transpose8(c + 8);
        if (nb == 32u && planes <= 8u) {
            /* Neuron 8j + r is byte j of c[r]; its sign goes to bit 8j of neg_r, and neg_r to
             * bit r. */
#if BEP_USE_ASM && defined(__thumb2__)
            neg = bep_asm_slice_z8(c, tn, z, base, 2 * sg);
#else
            for (q = 0; q < 8u; ++q) {
                const uint32_t x = c[q];
                uint32_t nq = 0;
                int32_t v;
#define BEP_NEURON(j)                                                                          \
    v = base + sg * (4 * (int32_t)((x >> (8 * (j))) & 0xFFu) - 2 * (int32_t)tn[8 * (j) + q]); \
    z[8 * (j) + q] = (int16_t)v;                                                               \
    nq |= ((uint32_t)v >> 31) << (8 * (j))
                BEP_NEURON(0);
                BEP_NEURON(1);
                BEP_NEURON(2);
                BEP_NEURON(3);
#undef BEP_NEURON
                neg |= nq << q;
            }
#endif
        } else {
            for (q = 0; q < nb; ++q) {
                const uint32_t sh = q & ~7u, r = q & 7u;
                const uint32_t s = ((c[r] >> sh) & 0xFFu) | (((c[8u + r] >> sh) & 0xFFu) << 8);
                const int32_t v = base + sg * (4 * (int32_t)s - 2 * (int32_t)tn[q]);
                z[q] = (int16_t)v;
                neg |= ((uint32_t)v >> 31) << q;
            }
        }
        a_out[row >> 5] = ~neg & (0xFFFFFFFFu >> (32u - nb));
    }
}

void bep_layer_forward_cols(const bep_layer_t *L, void *state, const uint32_t *in, int16_t *z, uint32_t *a_out)
{
    const uint32_t *wt = bep_u32(state, L->wt_off);
    const int16_t *tn = bep_tn(state, L);
    const uint32_t ow = L->out_words, nw = L->in_words, bits = L->in_bits;
    const uint16_t zero = (uint16_t)(L->cols * ow); /* the column of zeros after the last */
    uint16_t *list = bep_slice_list(state, L), *lp = list;
    const uint32_t last = bep_last_mask(bits);
    uint32_t ones = 0, flip, m, k, planes;
    for (k = 0; k + 1u < nw; ++k) ones += bep_pop(in[k]);
    ones += bep_pop(in[k] & last);
    flip = 2u * ones > bits ? 0xFFFFFFFFu : 0u; /* sum over the clear bits */
    m = flip ? bits - ones : ones;
#if BEP_HAS_CTZ
    planes = m != 0u ? 32u - (uint32_t)__builtin_clz(m) : 0u;
#else
    for (planes = 0; (m >> planes) != 0u; ++planes) continue;
#endif
#if BEP_USE_ASM && defined(__thumb2__)
    {
        const uint32_t left = (in[nw - 1u] ^ flip) & last;
        lp = bep_asm_list_words(lp, in, nw - 1u, flip, ow);
        if (left != 0u) lp = bep_asm_list_bits(lp, left, 32u * (nw - 1u) * ow, ow);
    }
#else
    {
        uint32_t off;
        for (k = 0, off = 0; k < nw; ++k, off += 32u * ow) {
            uint32_t left = (in[k] ^ flip) & (k + 1u < nw ? 0xFFFFFFFFu : last);
#if BEP_HAS_CTZ
            for (; left != 0u; left &= left - 1u) *lp++ = (uint16_t)(off + (uint32_t)__builtin_ctz(left) * ow);
#else
            uint32_t o = off;
            for (; left != 0u; left >>= 1, o += ow) {
                if (left & 1u) *lp++ = (uint16_t)o;
            }
#endif
        }
    }
#endif
    while (((uint32_t)(lp - list) & (BEP_SLICE_GROUP - 1u)) != 0u) *lp++ = zero; /* whole groups */
    bep_slice_z(L, wt, tn, list, (uint32_t)(lp - list), (int32_t)bits - 2 * (int32_t)ones, flip ? -1 : 1, planes, z,
                a_out);
}

/* z = W a (+ W_h a_prev for the RNN), a_out = sign(z), 32 activations per store. */
void bep_layer_forward(const bep_layer_t *L, void *state, const uint32_t *in, const uint32_t *prev, int16_t *z,
                       uint32_t *a_out)
{
    const uint32_t *w = bep_u32(state, L->w_off), *wr = bep_u32(state, L->wr_off);
    const uint32_t n = L->in_words, n_rec = L->rec_words, rows = L->rows;
    int32_t bits = (int32_t)(L->in_bits + 2u * bep_padding(in, L->in_bits));
    uint32_t j, b;
    if (prev != NULL) bits += (int32_t)(rows + 2u * bep_padding(prev, rows));
    for (j = 0; j < rows; j += 32u) {
        const uint32_t nb = rows - j < 32u ? rows - j : 32u;
        uint32_t acts = 0;
        if (prev == NULL) {
            acts = bep_dot_rows(&w, in, n, nb, bits, &z);
        } else {
            for (b = 0; b < nb; ++b, w += n, wr += n_rec) {
                const int32_t zj = bits - 2 * (int32_t)(bep_differ(w, in, n) + bep_differ(wr, prev, n_rec));
                *z++ = (int16_t)zj;
                acts |= (uint32_t)(zj >= 0) << b;
            }
        }
        *a_out++ = acts;
    }
}

/* The logit of class c, y_c = <P_c, a_L> = k - 2 differ(P_c, a_L), with k the last hidden
 * width plus twice a_L's padding ones (bep_logit_k; see bep_differ). */
static int32_t bep_logit_k(const bep_config_t *cfg, const uint32_t *a_last)
{
    uint32_t bits = cfg->layer[cfg->n_layers - 1u].rows;
    return (int32_t)(bits + 2u * bep_padding(a_last, bits));
}

/* The logits of classes c .. c + nb - 1 (nb <= 32) at y (|y| <= the last hidden width
 * <= MAX_WIDTH, so int16 holds them). */
static void bep_logits16(const bep_config_t *cfg, const uint32_t *a_last, int32_t k, uint32_t c, uint32_t nb,
                         int16_t *y)
{
    const uint32_t *p = cfg->classifier + c * cfg->class_words;
    (void)bep_dot_rows(&p, a_last, cfg->class_words, nb, k, &y);
}

/* Logits y_c = <P_c, a_L>; prediction (argmax, ties to the lowest class) and trigger
 * margin (docs/algorithm.md §2.1, §2.3). */
uint16_t bep_classify(const bep_config_t *cfg, uint32_t n_classes, const uint32_t *a_last, int32_t label,
                      int32_t *margin)
{
    uint32_t c, b, nb;
    int32_t best = 0, rival = 0, own = 0, k = bep_logit_k(cfg, a_last);
    uint16_t arg = 0;
    int first_rival = 1;
    int16_t y16[32];
    for (c = 0; c < n_classes; c += nb) {
        nb = n_classes - c < 32u ? n_classes - c : 32u;
        bep_logits16(cfg, a_last, k, c, nb, y16);
        for (b = 0; b < nb; ++b) {
            const int32_t y = y16[b];
            if (c + b == 0u || y > best) {
                best = y;
                arg = (uint16_t)(c + b);
            }
            if ((int32_t)(c + b) == label) {
                own = y;
            } else if (first_rival || y > rival) {
                rival = y;
                first_rival = 0;
            }
        }
    }
    if (margin != NULL) *margin = own - rival;
    return arg;
}

void bep_logits(const bep_config_t *cfg, uint32_t n_classes, const uint32_t *a_last, int32_t *y)
{
    uint32_t c, b, nb;
    int32_t k = bep_logit_k(cfg, a_last);
    int16_t y16[32];
    for (c = 0; c < n_classes; c += nb) {
        nb = n_classes - c < 32u ? n_classes - c : 32u;
        bep_logits16(cfg, a_last, k, c, nb, y16);
        for (b = 0; b < nb; ++b) y[c + b] = y16[b];
    }
}

/* ------------------------------------------------------ saturating row updates */

/* The int8 row update of §2.5: h[i] += bit(v, i) == 1 ? +2 : -2, saturating at
 * [-128, 127], for i < bits. The caller passes `flip` = 0 when the target is +1 and all
 * ones when it is -1, so a set bit of v ^ flip always means +2. Each input nibble picks
 * a word of four lane keys from a table and one lane-parallel add updates four weights.
 * Rows of int8 start at any byte (fan-ins that are not a multiple of 4): aligned rows
 * use word loads and stores, the others unaligned ones (byte by byte where the core has
 * no unaligned access), and the last fan-in % 4 weights go one by one. */

/* One weight: the reference every lane-parallel kernel must equal. */
BEP_HOT void bep_add1(int8_t *h, uint32_t plus)
{
    int32_t t = *h + (plus ? 2 : -2);
    t = t > 127 ? 127 : t;
    *h = (int8_t)(t < -128 ? -128 : t);
}

/* Which int8 kernel: DSP (QADD8), SWAR32, SWAR64 (64-bit hosts), or one weight at a time
 * (BEP_UPDATE8=1, the reference). */
#if BEP_USE_DSP
#define BEP_ROW8_DSP 1
#elif BEP_UPDATE8 == 0 && BEP_LE_BUILTINS && UINTPTR_MAX > 0xFFFFFFFFu
#define BEP_ROW8_SWAR64 1
#elif BEP_UPDATE8 != 1
#define BEP_ROW8_SWAR32 1
#endif

#if !defined(BEP_ROW8_DSP) && !defined(BEP_ROW8_SWAR32) && !defined(BEP_ROW8_SWAR64)
/* One weight at a time (BEP_UPDATE8=1). */
void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t i;
    for (i = 0; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#elif defined(BEP_ROW8_SWAR64)
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

void bep_row_add8(int8_t *BEP_RESTRICT h, const uint32_t *BEP_RESTRICT v, uint32_t bits, uint32_t flip)
{
    uint32_t i;
    for (i = 0; i + 8u <= bits; i += 8u) {
        uint64_t w;
        __builtin_memcpy(&w, h + i, 8);
        w = bep_add8x8(w, ((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu);
        __builtin_memcpy(h + i, &w, 8);
    }
    for (; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#else
/* Four lanes per 32-bit word: QADD8 (DSP) or SWAR32. */
#if defined(BEP_ROW8_SWAR32)
/* SWAR32, no DSP (Cortex-M0/M0+/M3, 32-bit hosts): four lanes per 32-bit word. The key
 * of a lane is 0x80 for +2 and 0x7F for -2; v = h ^ key is then the offset-binary value
 * h + 128 for +2 lanes and its complement 127 - h for -2 lanes, so both become one
 * unsigned +2 saturating at 255, done on 7 bits so no carry crosses a lane; the same xor
 * maps back. */
static const uint32_t bep_lanes4[16] = {
    0x7F7F7F7Fu, 0x7F7F7F80u, 0x7F7F807Fu, 0x7F7F8080u, 0x7F807F7Fu, 0x7F807F80u, 0x7F80807Fu, 0x7F808080u,
    0x807F7F7Fu, 0x807F7F80u, 0x807F807Fu, 0x807F8080u, 0x80807F7Fu, 0x80807F80u, 0x8080807Fu, 0x80808080u,
};

#if BEP_USE_ASM && defined(__ARM_ARCH_6M__)
/* bep_lanes4[n ^ 15]: the keys of the input word's complement, for bep_asm_add8_swar32. */
static const uint32_t bep_lanes4_not[16] = {
    0x80808080u, 0x8080807Fu, 0x80807F80u, 0x80807F7Fu, 0x807F8080u, 0x807F807Fu, 0x807F7F80u, 0x807F7F7Fu,
    0x7F808080u, 0x7F80807Fu, 0x7F807F80u, 0x7F807F7Fu, 0x7F7F8080u, 0x7F7F807Fu, 0x7F7F7F80u, 0x7F7F7F7Fu,
};
#endif

BEP_HOT uint32_t bep_add4(uint32_t h, uint32_t key)
{
    uint32_t v = h ^ key, hi = v & 0x80808080u;
    uint32_t s = (v ^ hi) + 0x02020202u; /* 7-bit sums, carry in each lane's bit 7 */
    uint32_t full = s & hi;              /* lanes that reached 256: saturate at 255 */
    /* hi - (full >> 7) is 0x7F in full lanes (s has bit 7 set there: 0xFF), and hi in
     * the others, where s | hi = s ^ hi. */
    return (s | (hi - (full >> 7))) ^ key;
}
#else
/* Cortex-M4/M7/M33: QADD8 adds four int8 lanes with exactly the saturation of the C
 * path; the key of nibble n holds +2 (0x02) or -2 (0xFE) per lane. */
static const uint32_t bep_lanes4[16] = {
    0xFEFEFEFEu, 0xFEFEFE02u, 0xFEFE02FEu, 0xFEFE0202u, 0xFE02FEFEu, 0xFE02FE02u, 0xFE0202FEu, 0xFE020202u,
    0x02FEFEFEu, 0x02FEFE02u, 0x02FE02FEu, 0x02FE0202u, 0x0202FEFEu, 0x0202FE02u, 0x020202FEu, 0x02020202u,
};

BEP_HOT uint32_t bep_add4(uint32_t h, uint32_t key) { return bep_qadd8(h, key); }
#endif

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

#if defined(BEP_ROW8_DSP)
/* Eight weights at an 8-byte step: one 64-bit load and store (LDRD/STRD), two QADD8s. */
typedef bep_w64_t bep_pair_t;
BEP_HOT void bep_add8(bep_pair_t *h, uint32_t nibbles)
{
    const uint64_t w = *h;
    *h = (uint64_t)bep_add4((uint32_t)w, bep_lanes4[nibbles & 15u]) |
         (uint64_t)bep_add4((uint32_t)(w >> 32), bep_lanes4[(nibbles >> 4) & 15u]) << 32;
}
#else
/* Eight weights as two words (ARMv6-M has no LDRD, and a 64-bit value costs it moves). */
typedef bep_w32_t bep_pair_t[2];
BEP_HOT void bep_add8(bep_pair_t *h, uint32_t nibbles)
{
    (*h)[0] = bep_add4((*h)[0], bep_lanes4[nibbles & 15u]);
    (*h)[1] = bep_add4((*h)[1], bep_lanes4[(nibbles >> 4) & 15u]);
}
#endif

#if BEP_USE_ASM && defined(BEP_ROW8_SWAR32) && defined(__ARM_ARCH_6M__)
/* ARMv6-M: an aligned row of whole words (every hidden row of a fan-in that is a
 * multiple of 32) goes straight to the assembly loop, inlined here so that nothing is
 * kept over it; any other row through bep_row_add8_split, which hands its whole words
 * to the same loop (bep_row_add8_words) and does the rest in C. */
#define BEP_ROW8_V6M 1
static __attribute__((noinline)) void bep_row_add8_split(int8_t *h, const uint32_t *v, uint32_t bits,
                                                         uint32_t flip);

/* The split path's whole words: the same loop, in a function of its own (calling
 * bep_row_add8 back would be a recursion, which the stack analysis refuses). */
static __attribute__((noinline)) void bep_row_add8_words(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    bep_asm_add8_swar32(h, v, bits, flip ? bep_lanes4_not : bep_lanes4);
}

void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    if (((uintptr_t)h & 3u) == 0u && bits >= 32u && (bits & 31u) == 0u)
        bep_asm_add8_swar32(h, v, bits, flip ? bep_lanes4_not : bep_lanes4);
    else
        bep_row_add8_split(h, v, bits, flip);
}

static void bep_row_add8_split(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
#else
void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
#endif
{
    uint32_t i = 0;
#if BEP_USE_ASM && defined(BEP_ROW8_DSP)
    if (((uintptr_t)h & 3u) == 0u && bits >= 32u) {
        bep_asm_add8_qadd8(h, v, bits >> 5, flip, bep_lanes4);
        i = bits & ~31u;
    }
#elif defined(BEP_ROW8_V6M)
    if (((uintptr_t)h & 3u) == 0u && bits >= 32u) {
        bep_row_add8_words(h, v, bits & ~31u, flip);
        i = bits & ~31u;
    }
#else
    if (((uintptr_t)h & 3u) == 0u) {
        /* 32 weights per input word, written out so every lane key comes from a nibble
         * of one register. */
        bep_pair_t *h2 = (bep_pair_t *)(void *)h;
        for (; i + 32u <= bits; i += 32u, h2 += 4) {
            const uint32_t x = v[i >> 5] ^ flip;
            bep_add8(h2, x);
            bep_add8(h2 + 1, x >> 8);
            bep_add8(h2 + 2, x >> 16);
            bep_add8(h2 + 3, x >> 24);
        }
    }
#endif
    for (; i + 4u <= bits; i += 4u)
        bep_store4(h + i, bep_add4(bep_load4(h + i), bep_lanes4[((v[i >> 5] ^ flip) >> (i & 31u)) & 15u]));
    for (; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#endif

/* int16 hidden weights: one weight at a time, +2 or -2 as (bit << 2) - 2, saturating. */
void bep_row_add16(int16_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
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
