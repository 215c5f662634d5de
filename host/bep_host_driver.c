/*
 * bep_host_driver.c - replay a golden-vector file through the generated C and compare
 * every prediction, counter and hidden weight with the numpy engine's, bit for bit.
 *
 * A host tool: plain C99 with stdio/stdlib, compiled together with one generated
 * directory (see Makefile; the generated code itself stays libc-free). The network is
 * chosen at compile time:
 *
 *     -DBEP_HOST_HEADER='"bep_net.h"' -DBEP_HOST_NET=net -DBEP_HOST_NET_UPPER=NET
 *
 * Usage: bep_host_driver [-v] GOLDEN_FILE
 *
 * The golden file (format: bep_mcu/twin/golden.py, host/README.md) is validated completely
 * before anything runs, so a damaged file is reported as such rather than as a
 * mismatch; all multi-byte values are decoded explicitly as little-endian, so the
 * driver runs on any host.
 *
 * Exit status: 0 everything matches; 1 the first mismatch is printed (batch, sample or
 * layer/row/column, expected and actual value, file offset); 2 usage, unreadable or
 * foreign file, or a runtime call that failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(BEP_HOST_HEADER) || !defined(BEP_HOST_NET) || !defined(BEP_HOST_NET_UPPER)
#error "define BEP_HOST_HEADER, BEP_HOST_NET and BEP_HOST_NET_UPPER (host/Makefile does)"
#endif
#include BEP_HOST_HEADER

#include "bep_golden.h" /* the file format, shared with the firmware self-test */

#define BEP_HOST_CAT3_(a, b, c) a##b##c
#define BEP_HOST_CAT3(a, b, c) BEP_HOST_CAT3_(a, b, c)
/* bep_<net>_<op> and BEP_<NET>_<MACRO> of the network selected at compile time. */
#define BEP_HOST_FN(op) BEP_HOST_CAT3(bep_, BEP_HOST_NET, _##op)
#define BEP_HOST_MACRO(m) BEP_HOST_CAT3(BEP_, BEP_HOST_NET_UPPER, _##m)

#define BEP_HOST_CONFIG (BEP_HOST_FN(config))
#define BEP_HOST_CONFIG_HASH (BEP_HOST_MACRO(CONFIG_HASH))


enum { EXIT_MATCH = 0, EXIT_MISMATCH = 1, EXIT_ERROR = 2 };

/* ------------------------------------------------------------ file reading */

/* golden_take, with the one-line report of a section that does not fit. */
static const unsigned char *take(golden_reader_t *r, const char *path, size_t n, const char *what, long batch)
{
    const unsigned char *p = golden_take(r, n, what, batch);
    if (p != NULL) return p;
    if (batch >= 0)
        fprintf(stderr, "%s: truncated golden file (batch %ld %s at offset %lu)\n", path, batch, what,
                (unsigned long)r->pos);
    else
        fprintf(stderr, "%s: truncated golden file (%s at offset %lu)\n", path, what, (unsigned long)r->pos);
    return NULL;
}


static unsigned char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, used = 0;
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open golden file\n", path);
        return NULL;
    }
    for (;;) {
        size_t got;
        if (used == cap) {
            size_t ncap = cap ? cap * 2u : 65536u;
            unsigned char *nbuf = ncap > cap ? (unsigned char *)realloc(buf, ncap) : NULL;
            if (nbuf == NULL) {
                fprintf(stderr, "%s: out of memory\n", path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nbuf;
            cap = ncap;
        }
        got = fread(buf + used, 1u, cap - used, f);
        used += got;
        if (got == 0u) break;
    }
    if (ferror(f)) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *len = used;
    return buf;
}

/* --------------------------------------------------------------- the file */

/* The head of a golden file, checked against the compiled network. */
typedef struct {
    golden_head_t h;
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS];
    const unsigned char *provenance;
    const unsigned char *initial[BEP_MAX_LAYERS];
} golden_t;

/* Header, provenance, layer records, initial weights; checks them against the
 * compiled network. Returns 0 or prints one line and returns -1. */
static int parse_head(golden_reader_t *r, const char *path, golden_t *g)
{
    const bep_config_t *cfg = &BEP_HOST_CONFIG;
    const unsigned char *h = take(r, path, GOLDEN_HEADER_BYTES, "header", -1), *p;
    golden_layer_t rec;
    unsigned l;
    if (h == NULL) return -1;
    if (!golden_same(h, golden_magic, sizeof golden_magic)) {
        fprintf(stderr, "%s: not a bep-mcu golden file (bad magic)\n", path);
        return -1;
    }
    golden_decode_head(h, &g->h);
    if (g->h.version != GOLDEN_VERSION) {
        fprintf(stderr, "%s: golden format version %lu, this driver reads %u\n", path, (unsigned long)g->h.version,
                GOLDEN_VERSION);
        return -1;
    }
    if (g->h.config_hash != BEP_HOST_CONFIG_HASH) {
        fprintf(stderr, "%s: config hash 0x%08lX, this driver was built for 0x%08lX (regenerate the C or the "
                "golden file from the same model)\n", path, (unsigned long)g->h.config_hash,
                (unsigned long)BEP_HOST_CONFIG_HASH);
        return -1;
    }
    if (g->h.model != cfg->model || g->h.hidden_bits != cfg->hidden_bits || g->h.n_layers != cfg->n_layers ||
        g->h.n_classes != cfg->n_classes || g->h.steps != cfg->steps || g->h.input_words != cfg->input_words) {
        fprintf(stderr, "%s: network shape differs from the compiled one (model %u/%u, hidden bits %u/%u, "
                "layers %u/%u, classes %u/%u, steps %u/%u, input words %lu/%u)\n", path, g->h.model,
                (unsigned)cfg->model, g->h.hidden_bits, (unsigned)cfg->hidden_bits, g->h.n_layers,
                (unsigned)cfg->n_layers, g->h.n_classes, (unsigned)cfg->n_classes, g->h.steps, (unsigned)cfg->steps,
                (unsigned long)g->h.input_words, (unsigned)cfg->input_words);
        return -1;
    }
    g->provenance = take(r, path, g->h.prov_len, "provenance", -1);
    if (g->provenance == NULL) return -1;
    for (l = 0; l < cfg->n_layers; ++l) {
        p = take(r, path, GOLDEN_LAYER_RECORD_BYTES, "layer record", -1);
        if (p == NULL) return -1;
        golden_decode_layer(p, &rec);
        if (rec.rows != cfg->layer[l].rows || rec.cols != cfg->layer[l].cols) {
            fprintf(stderr, "%s: layer %u is %lu x %lu, the compiled network's is %u x %u\n", path, l,
                    (unsigned long)rec.rows, (unsigned long)rec.cols, (unsigned)cfg->layer[l].rows,
                    (unsigned)cfg->layer[l].cols);
            return -1;
        }
        if (rec.gamma > 0xFFFFu) {
            fprintf(stderr, "%s: layer %u gamma %lu out of range\n", path, l, (unsigned long)rec.gamma);
            return -1;
        }
        g->gamma[l] = (uint16_t)rec.gamma;
        g->q[l] = rec.q;
    }
    for (l = 0; l < cfg->n_layers; ++l) {
        g->initial[l] = take(r, path, golden_layer_bytes(cfg, l), "initial hidden weights", -1);
        if (g->initial[l] == NULL) return -1;
    }
    return 0;
}

static int parse_batch(golden_reader_t *r, const char *path, long b, golden_batch_t *out)
{
    int rc = golden_take_batch(r, &BEP_HOST_CONFIG, b, out);
    if (rc == -2)
        fprintf(stderr, "%s: batch %ld has a bad sample count %lu\n", path, b, (unsigned long)out->n);
    else if (rc != 0)
        fprintf(stderr, "%s: truncated golden file (batch %ld %s at offset %lu)\n", path, b, r->fail_what,
                (unsigned long)r->pos);
    return rc;
}

/* ------------------------------------------------------------ comparison */

/* Compares every layer's hidden weights with the expected ones; `when` names the
 * moment ("after init" or "batch N") in the report. */
static int compare_hidden(const void *state, size_t state_len, void *scratch, const unsigned char *const expected[],
                          const char *when, const unsigned char *file)
{
    const bep_config_t *cfg = &BEP_HOST_CONFIG;
    const unsigned bits = cfg->hidden_bits;
    unsigned l;
    for (l = 0; l < cfg->n_layers; ++l) {
        size_t n = cfg->layer[l].n_weights, cols = cfg->layer[l].cols, k;
        bep_status_t st = BEP_HOST_FN(read_hidden)(state, state_len, l, scratch, golden_layer_bytes(cfg, l));
        if (st != BEP_OK) {
            fprintf(stderr, "bep_read_hidden(layer %u): %s\n", l, bep_status_str(st));
            return EXIT_ERROR;
        }
        for (k = 0; k < n; ++k) {
            int32_t want = golden_weight(expected[l], bits, k);
            int32_t got = bits == 8u ? (int32_t)((const int8_t *)scratch)[k] : (int32_t)((const int16_t *)scratch)[k];
            if (want != got) {
                printf("MISMATCH %s layer %u row %lu col %lu: expected %ld, got %ld (file offset %lu)\n", when, l,
                       (unsigned long)(k / cols), (unsigned long)(k % cols), (long)want, (long)got,
                       (unsigned long)(expected[l] + k * (bits / 8u) - file));
                return EXIT_MISMATCH;
            }
        }
    }
    return EXIT_MATCH;
}

static int run_batch(void *state, size_t state_len, const golden_batch_t *bt, uint32_t b, uint32_t *x,
                     uint16_t *labels, uint16_t *pred, void *scratch, const unsigned char *file)
{
    size_t words = (size_t)bt->n * BEP_HOST_CONFIG.input_words, k;
    bep_counters_t c;
    uint32_t got_c[GOLDEN_N_COUNTERS];
    char when[32];
    bep_status_t st;
    for (k = 0; k < words; ++k) x[k] = golden_le32(bt->x + 4u * k);
    for (k = 0; k < bt->n; ++k) labels[k] = golden_le16(bt->labels + 2u * k);
    st = BEP_HOST_FN(train_batch)(state, state_len, x, words, labels, pred, bt->n);
    if (st != BEP_OK) {
        fprintf(stderr, "batch %lu: bep_train_batch: %s\n", (unsigned long)b, bep_status_str(st));
        return EXIT_ERROR;
    }
    for (k = 0; k < bt->n; ++k) {
        uint16_t want = golden_le16(bt->predictions + 2u * k);
        if (pred[k] != want) {
            printf("MISMATCH batch %lu sample %lu prediction: expected %u, got %u (file offset %lu)\n",
                   (unsigned long)b, (unsigned long)k, (unsigned)want, (unsigned)pred[k],
                   (unsigned long)(bt->predictions + 2u * k - file));
            return EXIT_MISMATCH;
        }
    }
    st = BEP_HOST_FN(read_counters)(state, state_len, &c);
    if (st != BEP_OK) {
        fprintf(stderr, "batch %lu: bep_read_counters: %s\n", (unsigned long)b, bep_status_str(st));
        return EXIT_ERROR;
    }
    golden_counters(&c, got_c);
    for (k = 0; k < GOLDEN_N_COUNTERS; ++k) {
        uint32_t want = golden_le32(bt->counters + 4u * k);
        if (got_c[k] != want) {
            printf("MISMATCH batch %lu counter %s: expected %lu, got %lu (file offset %lu)\n", (unsigned long)b,
                   golden_counter_names[k], (unsigned long)want, (unsigned long)got_c[k],
                   (unsigned long)(bt->counters + 4u * k - file));
            return EXIT_MISMATCH;
        }
    }
    snprintf(when, sizeof when, "batch %lu", (unsigned long)b);
    return compare_hidden(state, state_len, scratch, bt->hidden, when, file);
}

/* ------------------------------------------------------------------ main */

static void print_provenance(const golden_t *g)
{
    fprintf(stderr, "provenance:\n");
    fwrite(g->provenance, 1u, g->h.prov_len, stderr);
    if (g->h.prov_len == 0u || g->provenance[g->h.prov_len - 1u] != '\n') fputc('\n', stderr);
}

static int run(const char *path, const unsigned char *file, size_t len, int verbose)
{
    const bep_config_t *cfg = &BEP_HOST_CONFIG;
    golden_reader_t r;
    golden_t g;
    golden_batch_t bt;
    uint32_t b, max_n = 0, *x = NULL;
    uint16_t *labels = NULL, *pred = NULL;
    size_t max_layer = 0, state_len = BEP_HOST_FN(state_size)();
    const unsigned char *end;
    void *state = NULL, *scratch = NULL;
    bep_status_t st;
    int rc = EXIT_ERROR;
    unsigned l;

    memset(&g, 0, sizeof g);
    memset(&r, 0, sizeof r);
    r.data = file;
    r.len = len;
    /* Pass 1: validate the whole file and size the buffers. */
    if (parse_head(&r, path, &g) != 0) return EXIT_ERROR;
    for (b = 0; b < g.h.n_batches; ++b) {
        if (parse_batch(&r, path, (long)b, &bt) != 0) return EXIT_ERROR;
        if (bt.n > max_n) max_n = bt.n;
    }
    end = take(&r, path, sizeof golden_end, "end marker", -1);
    if (end == NULL) return EXIT_ERROR;
    if (!golden_same(end, golden_end, sizeof golden_end) || r.pos != len) {
        fprintf(stderr, "%s: damaged golden file (no end marker at offset %lu)\n", path,
                (unsigned long)(end - file));
        return EXIT_ERROR;
    }
    if (verbose) print_provenance(&g);

    for (l = 0; l < cfg->n_layers; ++l) {
        max_layer = golden_layer_bytes(cfg, l) > max_layer ? golden_layer_bytes(cfg, l) : max_layer;
    }
    /* Exactly sized heap buffers, so ASan and valgrind see any overrun by the runtime. */
    state = malloc(state_len);
    scratch = malloc(max_layer);
    x = (uint32_t *)malloc((size_t)max_n * cfg->input_words * sizeof *x);
    labels = (uint16_t *)malloc((size_t)max_n * sizeof *labels);
    pred = (uint16_t *)malloc((size_t)max_n * sizeof *pred);
    if (state == NULL || scratch == NULL || x == NULL || labels == NULL || pred == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    /* Pass 2: run. */
    r.pos = 0;
    if (parse_head(&r, path, &g) != 0) goto done;
    st = BEP_HOST_FN(init)(state, state_len, g.h.seed, g.h.batch_counter);
    if (st != BEP_OK) {
        fprintf(stderr, "bep_init: %s\n", bep_status_str(st));
        goto done;
    }
    rc = compare_hidden(state, state_len, scratch, g.initial, "after init (before batch 0)", file);
    if (rc != EXIT_MATCH) goto done;
    st = BEP_HOST_FN(set_epoch)(state, state_len, g.gamma, cfg->n_layers, g.q, cfg->n_layers);
    if (st != BEP_OK) {
        fprintf(stderr, "bep_set_epoch: %s\n", bep_status_str(st));
        rc = EXIT_ERROR;
        goto done;
    }
    for (b = 0; b < g.h.n_batches; ++b) {
        if (parse_batch(&r, path, (long)b, &bt) != 0) {
            rc = EXIT_ERROR;
            goto done;
        }
        rc = run_batch(state, state_len, &bt, b, x, labels, pred, scratch, file);
        if (rc != EXIT_MATCH) goto done;
    }
    printf("OK %s: %lu batch%s, %u layer%s, %u-bit hidden weights, config 0x%08lX: predictions, counters and "
           "hidden weights match after every batch\n", path, (unsigned long)g.h.n_batches,
           g.h.n_batches == 1u ? "" : "es", g.h.n_layers, g.h.n_layers == 1u ? "" : "s", g.h.hidden_bits,
           (unsigned long)g.h.config_hash);
    rc = EXIT_MATCH;
done:
    free(pred);
    free(labels);
    free(x);
    free(scratch);
    free(state);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    unsigned char *file;
    size_t len = 0;
    int verbose = 0, i, rc;
    for (i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (argv[i][0] == '-' || path != NULL) {
            fprintf(stderr, "usage: %s [-v] GOLDEN_FILE\n", argv[0]);
            return EXIT_ERROR;
        } else {
            path = argv[i];
        }
    }
    if (path == NULL) {
        fprintf(stderr, "usage: %s [-v] GOLDEN_FILE\n", argv[0]);
        return EXIT_ERROR;
    }
    file = read_file(path, &len);
    if (file == NULL) return EXIT_ERROR;
    rc = run(path, file, len, verbose);
    free(file);
    return rc;
}
