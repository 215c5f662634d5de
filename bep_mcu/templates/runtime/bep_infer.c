/*
 * bep_infer.c - the inference-only forward pass (see bep_infer.h). The training runtime's
 * bep_forward and bep_classify compute the same numbers from weights in the state buffer;
 * here the weights are const tables, so the RAM is the activations alone.
 */
#include "bep_infer.h"

/* Set bits of a word: SWAR (Cortex-M has no popcount instruction; GCC's builtin calls libgcc). */
static uint32_t bep_infer_pop(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}

static uint32_t bep_infer_words(uint32_t bits) { return (bits + 31u) >> 5; }

/* <w, a> of two packed ±1 vectors of `bits` bits: 2 * agreements - bits (padding ignored). */
static int32_t bep_infer_dot(const uint32_t *w, const uint32_t *a, uint32_t bits)
{
    uint32_t n = bep_infer_words(bits), r = bits & 31u, k, agree = 0;
    for (k = 0; k + 1u < n; ++k) agree += bep_infer_pop(~(w[k] ^ a[k]));
    agree += bep_infer_pop(~(w[n - 1u] ^ a[n - 1u]) & (r ? (1u << r) - 1u : 0xFFFFFFFFu));
    return 2 * (int32_t)agree - (int32_t)bits;
}

/* a_out = sign(W in + W_r prev), sign(0) = +1; prev NULL for an MLP layer. */
static void bep_infer_layer(const bep_infer_layer_t *L, const uint32_t *in, const uint32_t *prev, uint32_t *a_out)
{
    uint32_t j, k;
    for (k = 0; k < bep_infer_words(L->rows); ++k) a_out[k] = 0;
    for (j = 0; j < L->rows; ++j) {
        int32_t z = bep_infer_dot(L->w + (size_t)j * L->in_words, in, L->in_bits);
        if (prev != NULL) z += bep_infer_dot(L->wr + (size_t)j * L->rec_words, prev, L->rows);
        if (L->offset != NULL) z -= L->offset[j];
        if (z >= 0) a_out[j >> 5] |= 1u << (j & 31u);
    }
}

/* scores NULL: the class alone (bep_infer_predict). */
bep_status_t bep_infer_scores(const bep_infer_config_t *cfg, const uint32_t *x, size_t x_words, uint32_t *scratch,
                              size_t scratch_words, int32_t *scores, size_t n_scores, uint16_t *out_class)
{
    uint32_t *a, *b, *t, l, k, c, bits;
    const uint32_t *last;
    int32_t best = 0;
    if (cfg == NULL || x == NULL || scratch == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words || scratch_words < cfg->scratch_words) return BEP_ERR_SIZE;
    if (scores != NULL && n_scores < cfg->n_classes) return BEP_ERR_SIZE;
    a = scratch;
    b = scratch + cfg->scratch_words / 2u;
    if (cfg->rnn) {
        const bep_infer_layer_t *L = &cfg->layer[0];
        uint32_t n = bep_infer_words(L->rows);
        for (k = 0; k < n; ++k) a[k] = 0xFFFFFFFFu; /* a_0 = +1 (padding bits never count) */
        for (k = 0; k < cfg->steps; ++k) {
            bep_infer_layer(L, x + (size_t)k * L->in_words, a, b);
            t = a;
            a = b;
            b = t;
        }
        last = a;
    } else {
        const uint32_t *in = x;
        for (l = 0; l < cfg->n_layers; ++l) {
            bep_infer_layer(&cfg->layer[l], in, NULL, a);
            in = a;
            t = a;
            a = b;
            b = t;
        }
        last = in;
    }
    /* Logits y_c = <P_c, a_L>; the first largest wins (ties to the lowest class). */
    bits = cfg->layer[cfg->n_layers - 1u].rows;
    *out_class = 0;
    for (c = 0; c < cfg->n_classes; ++c) {
        int32_t y = bep_infer_dot(cfg->classifier + (size_t)c * cfg->class_words, last, bits);
        if (scores != NULL) scores[c] = y;
        if (c == 0u || y > best) {
            best = y;
            *out_class = (uint16_t)c;
        }
    }
    return BEP_OK;
}

bep_status_t bep_infer_predict(const bep_infer_config_t *cfg, const uint32_t *x, size_t x_words, uint32_t *scratch,
                               size_t scratch_words, uint16_t *out_class)
{
    return bep_infer_scores(cfg, x, x_words, scratch, scratch_words, NULL, 0u, out_class);
}

bep_status_t bep_infer_scores_raw(const bep_infer_config_t *cfg, const bep_encoder_t *enc, const void *raw,
                                  size_t n_values, uint32_t *work, size_t work_words, int32_t *scores, size_t n_scores,
                                  uint16_t *out_class)
{
    bep_status_t st;
    if (cfg == NULL || work == NULL) return BEP_ERR_NULL;
    if (work_words < (size_t)cfg->input_words + cfg->scratch_words) return BEP_ERR_SIZE;
    st = bep_encode(enc, raw, n_values, 0u, work, cfg->input_words);
    if (st != BEP_OK) return st;
    return bep_infer_scores(cfg, work, cfg->input_words, work + cfg->input_words, work_words - cfg->input_words,
                            scores, n_scores, out_class);
}

bep_status_t bep_infer_predict_raw(const bep_infer_config_t *cfg, const bep_encoder_t *enc, const void *raw,
                                   size_t n_values, uint32_t *work, size_t work_words, uint16_t *out_class)
{
    return bep_infer_scores_raw(cfg, enc, raw, n_values, work, work_words, NULL, 0u, out_class);
}
