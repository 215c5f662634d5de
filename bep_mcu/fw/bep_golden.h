/*
 * bep_golden.h - the golden-vector file format (bep_mcu/twin/golden.py), read in C.
 *
 * One reader for the two programs that replay golden files: the host driver
 * (host/bep_host_driver.c) and the firmware self-test (bep_mcu/fw/selftest.c). It only
 * slices the file into sections and decodes little-endian fields: no libc, no
 * allocation, every read bounds-checked. Checking the sections against the compiled
 * network and reporting problems stay with each program (stdio on the host,
 * semihosting on the board).
 *
 * Layout: a 44-byte header, the provenance text, one 16-byte record per layer, the
 * initial hidden weights of each layer, then per batch: sample count, packed inputs,
 * labels, expected predictions, expected counters and every layer's hidden weights;
 * finally the end marker. Every section is padded to a multiple of 4 bytes.
 */
#ifndef BEP_GOLDEN_H
#define BEP_GOLDEN_H

#include <stddef.h>
#include <stdint.h>

#include "bep_runtime.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* The format's one home: bep_mcu/twin/golden.py reads these lines. */
#define GOLDEN_VERSION 1u
#define GOLDEN_HEADER_BYTES 44u
#define GOLDEN_LAYER_RECORD_BYTES 16u
#define GOLDEN_N_COUNTERS 5u
#define GOLDEN_MAGIC "BEPGOLD"
#define GOLDEN_END "BEPGEND"

static const char golden_magic[8] = GOLDEN_MAGIC;
static const char golden_end[8] = GOLDEN_END;
static const char *const golden_counter_names[GOLDEN_N_COUNTERS] = {"samples", "triggered", "errors",
                                                                     "updates", "batches"};

/* A cursor over the file. When a section does not fit, `take` returns NULL and leaves
 * what was wanted (and for which batch, -1 outside the batches) in `fail_*`. */
typedef struct {
    const unsigned char *data;
    size_t len;
    size_t pos;
    const char *fail_what;
    long fail_batch;
} golden_reader_t;

/* The header fields, as written. */
typedef struct {
    uint32_t version, config_hash, input_words, seed, batch_counter, n_batches, prov_len;
    unsigned model, hidden_bits, n_layers, n_classes, steps;
} golden_head_t;

/* One layer record. */
typedef struct {
    uint32_t rows, cols, gamma, q;
} golden_layer_t;

/* Views into one batch record. */
typedef struct {
    uint32_t n;
    const unsigned char *x, *labels, *predictions, *counters;
    const unsigned char *hidden[BEP_MAX_LAYERS];
} golden_batch_t;

static inline size_t golden_pad4(size_t n) { return (n + 3u) & ~(size_t)3u; }

static inline uint32_t golden_le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static inline uint16_t golden_le16(const unsigned char *p)
{
    return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8));
}

/* n * size without overflow (0 on overflow, which no valid section has). */
static inline size_t golden_mul(size_t n, size_t size) { return (size != 0u && n > (size_t)-1 / size) ? 0u : n * size; }

static inline int golden_same(const unsigned char *a, const char *b, size_t n)
{
    size_t k;
    for (k = 0; k < n; ++k) {
        if (a[k] != (unsigned char)b[k]) return 0;
    }
    return 1;
}

/* Claims n bytes (then skips the padding to 4); NULL when the file is too short. */
static inline const unsigned char *golden_take(golden_reader_t *r, size_t n, const char *what, long batch)
{
    const unsigned char *p;
    if (n > r->len - r->pos || golden_pad4(n) < n) {
        r->fail_what = what;
        r->fail_batch = batch;
        return NULL;
    }
    p = r->data + r->pos;
    r->pos = golden_pad4(n) > r->len - r->pos ? r->len : r->pos + golden_pad4(n);
    return p;
}

static inline void golden_decode_head(const unsigned char *h, golden_head_t *g)
{
    g->version = golden_le32(h + 8);
    g->config_hash = golden_le32(h + 12);
    g->model = h[16];
    g->hidden_bits = h[17];
    g->n_layers = h[18];
    g->n_classes = golden_le16(h + 20);
    g->steps = golden_le16(h + 22);
    g->input_words = golden_le32(h + 24);
    g->seed = golden_le32(h + 28);
    g->batch_counter = golden_le32(h + 32);
    g->n_batches = golden_le32(h + 36);
    g->prov_len = golden_le32(h + 40);
}

static inline void golden_decode_layer(const unsigned char *p, golden_layer_t *l)
{
    l->rows = golden_le32(p);
    l->cols = golden_le32(p + 4);
    l->gamma = golden_le32(p + 8);
    l->q = golden_le32(p + 12);
}

/* Bytes of one layer's hidden weights in the file. */
static inline size_t golden_layer_bytes(const bep_config_t *cfg, unsigned l)
{
    return golden_mul(cfg->layer[l].n_weights, cfg->hidden_bits / 8u);
}

/* Slices batch record `b`, shaped by the compiled network `cfg` (the caller has checked
 * that the header matches it). 0; -1 when a section does not fit (see `fail_*`); -2
 * when the sample count is 0 or absurd (out->n holds it). */
static inline int golden_take_batch(golden_reader_t *r, const bep_config_t *cfg, long b, golden_batch_t *out)
{
    const unsigned char *p = golden_take(r, 4u, "sample count", b);
    size_t x_bytes;
    unsigned l;
    if (p == NULL) return -1;
    out->n = golden_le32(p);
    x_bytes = golden_mul(golden_mul(out->n, cfg->input_words), 4u);
    if (out->n == 0u || x_bytes == 0u) return -2;
    if ((out->x = golden_take(r, x_bytes, "inputs", b)) == NULL) return -1;
    if ((out->labels = golden_take(r, golden_mul(out->n, 2u), "labels", b)) == NULL) return -1;
    if ((out->predictions = golden_take(r, golden_mul(out->n, 2u), "predictions", b)) == NULL) return -1;
    if ((out->counters = golden_take(r, 4u * GOLDEN_N_COUNTERS, "counters", b)) == NULL) return -1;
    for (l = 0; l < cfg->n_layers; ++l) {
        if ((out->hidden[l] = golden_take(r, golden_layer_bytes(cfg, l), "hidden weights", b)) == NULL) return -1;
    }
    return 0;
}

/* Hidden weight k of a layer section (int8 or int16, little-endian). */
static inline int32_t golden_weight(const unsigned char *p, unsigned hidden_bits, size_t k)
{
    if (hidden_bits == 8u) return (int32_t)(int8_t)p[k];
    return (int32_t)(int16_t)golden_le16(p + 2u * k);
}

/* The runtime's counters in file order. */
static inline void golden_counters(const bep_counters_t *c, uint32_t out[GOLDEN_N_COUNTERS])
{
    out[0] = c->samples;
    out[1] = c->triggered;
    out[2] = c->errors;
    out[3] = c->updates;
    out[4] = c->batches;
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_GOLDEN_H */
