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
 * The golden file (format: bep_mcu/golden.py, host/README.md) is validated completely
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

#define BEP_HOST_CAT3_(a, b, c) a##b##c
#define BEP_HOST_CAT3(a, b, c) BEP_HOST_CAT3_(a, b, c)
/* bep_<net>_<op> and BEP_<NET>_<MACRO> of the network selected at compile time. */
#define BEP_HOST_FN(op) BEP_HOST_CAT3(bep_, BEP_HOST_NET, _##op)
#define BEP_HOST_MACRO(m) BEP_HOST_CAT3(BEP_, BEP_HOST_NET_UPPER, _##m)

#define BEP_HOST_CONFIG (BEP_HOST_FN(config))
#define BEP_HOST_CONFIG_HASH (BEP_HOST_MACRO(CONFIG_HASH))

/* Golden file format version 1 (bep_mcu/golden.py). */
#define GOLDEN_VERSION 1u
#define GOLDEN_HEADER_BYTES 44u
#define GOLDEN_LAYER_RECORD_BYTES 16u
#define GOLDEN_N_COUNTERS 5u

static const char golden_magic[8] = {'B', 'E', 'P', 'G', 'O', 'L', 'D', '\0'};
static const char golden_end[8] = {'B', 'E', 'P', 'G', 'E', 'N', 'D', '\0'};
static const char *const counter_names[GOLDEN_N_COUNTERS] = {"samples", "triggered", "errors", "updates",
                                                              "batches"};

enum { EXIT_MATCH = 0, EXIT_MISMATCH = 1, EXIT_ERROR = 2 };

/* ------------------------------------------------------------ file reading */

typedef struct {
    const unsigned char *data;
    size_t len;
    size_t pos;
    const char *path;
} reader_t;

static size_t pad4(size_t n) { return (n + 3u) & ~(size_t)3u; }

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8)); }

/* Claims n bytes (then skips the padding to 4); NULL when the file is too short. */
static const unsigned char *take(reader_t *r, size_t n, const char *what, long batch)
{
    const unsigned char *p;
    if (n > r->len - r->pos || pad4(n) < n) {
        if (batch >= 0)
            fprintf(stderr, "%s: truncated golden file (batch %ld %s at offset %lu)\n", r->path, batch, what,
                    (unsigned long)r->pos);
        else
            fprintf(stderr, "%s: truncated golden file (%s at offset %lu)\n", r->path, what,
                    (unsigned long)r->pos);
        return NULL;
    }
    p = r->data + r->pos;
    r->pos = pad4(n) > r->len - r->pos ? r->len : r->pos + pad4(n);
    return p;
}

/* n * size without overflow (0 on overflow, which no valid section has). */
static size_t mul_size(size_t n, size_t size) { return (size != 0u && n > (size_t)-1 / size) ? 0u : n * size; }

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

typedef struct {
    uint32_t config_hash, input_words, seed, batch_counter, n_batches, prov_len;
    unsigned model, hidden_bits, n_layers, n_classes, steps;
    uint32_t rows[BEP_MAX_LAYERS], cols[BEP_MAX_LAYERS];
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS];
    const unsigned char *provenance;
    const unsigned char *initial[BEP_MAX_LAYERS];
} golden_t;

/* Views into one batch record. */
typedef struct {
    uint32_t n;
    const unsigned char *x, *labels, *predictions, *counters;
    const unsigned char *hidden[BEP_MAX_LAYERS];
} batch_t;

static size_t layer_bytes(const golden_t *g, unsigned l)
{
    return mul_size(mul_size(g->rows[l], g->cols[l]), g->hidden_bits / 8u);
}

/* Header, provenance, layer records, initial weights; checks them against the
 * compiled network. Returns 0 or prints one line and returns -1. */
static int parse_head(reader_t *r, golden_t *g)
{
    const bep_config_t *cfg = &BEP_HOST_CONFIG;
    const unsigned char *h = take(r, GOLDEN_HEADER_BYTES, "header", -1), *p;
    unsigned l;
    if (h == NULL) return -1;
    if (memcmp(h, golden_magic, sizeof golden_magic) != 0) {
        fprintf(stderr, "%s: not a bep-mcu golden file (bad magic)\n", r->path);
        return -1;
    }
    if (le32(h + 8) != GOLDEN_VERSION) {
        fprintf(stderr, "%s: golden format version %lu, this driver reads %u\n", r->path,
                (unsigned long)le32(h + 8), GOLDEN_VERSION);
        return -1;
    }
    g->config_hash = le32(h + 12);
    g->model = h[16];
    g->hidden_bits = h[17];
    g->n_layers = h[18];
    g->n_classes = le16(h + 20);
    g->steps = le16(h + 22);
    g->input_words = le32(h + 24);
    g->seed = le32(h + 28);
    g->batch_counter = le32(h + 32);
    g->n_batches = le32(h + 36);
    g->prov_len = le32(h + 40);
    if (g->config_hash != BEP_HOST_CONFIG_HASH) {
        fprintf(stderr, "%s: config hash 0x%08lX, this driver was built for 0x%08lX (regenerate the C or the "
                "golden file from the same model)\n", r->path, (unsigned long)g->config_hash,
                (unsigned long)BEP_HOST_CONFIG_HASH);
        return -1;
    }
    if (g->model != cfg->model || g->hidden_bits != cfg->hidden_bits || g->n_layers != cfg->n_layers ||
        g->n_classes != cfg->n_classes || g->steps != cfg->steps || g->input_words != cfg->input_words) {
        fprintf(stderr, "%s: network shape differs from the compiled one (model %u/%u, hidden bits %u/%u, "
                "layers %u/%u, classes %u/%u, steps %u/%u, input words %lu/%u)\n", r->path, g->model,
                (unsigned)cfg->model, g->hidden_bits, (unsigned)cfg->hidden_bits, g->n_layers,
                (unsigned)cfg->n_layers, g->n_classes, (unsigned)cfg->n_classes, g->steps, (unsigned)cfg->steps,
                (unsigned long)g->input_words, (unsigned)cfg->input_words);
        return -1;
    }
    g->provenance = take(r, g->prov_len, "provenance", -1);
    if (g->provenance == NULL) return -1;
    for (l = 0; l < g->n_layers; ++l) {
        p = take(r, GOLDEN_LAYER_RECORD_BYTES, "layer record", -1);
        if (p == NULL) return -1;
        g->rows[l] = le32(p);
        g->cols[l] = le32(p + 4);
        if (g->rows[l] != cfg->layer[l].rows || g->cols[l] != cfg->layer[l].cols) {
            fprintf(stderr, "%s: layer %u is %lu x %lu, the compiled network's is %u x %u\n", r->path, l,
                    (unsigned long)g->rows[l], (unsigned long)g->cols[l], (unsigned)cfg->layer[l].rows,
                    (unsigned)cfg->layer[l].cols);
            return -1;
        }
        if (le32(p + 8) > 0xFFFFu) {
            fprintf(stderr, "%s: layer %u gamma %lu out of range\n", r->path, l, (unsigned long)le32(p + 8));
            return -1;
        }
        g->gamma[l] = (uint16_t)le32(p + 8);
        g->q[l] = le32(p + 12);
    }
    for (l = 0; l < g->n_layers; ++l) {
        g->initial[l] = take(r, layer_bytes(g, l), "initial hidden weights", -1);
        if (g->initial[l] == NULL) return -1;
    }
    return 0;
}

static int parse_batch(reader_t *r, const golden_t *g, long b, batch_t *out)
{
    const unsigned char *p = take(r, 4u, "sample count", b);
    unsigned l;
    size_t x_bytes;
    if (p == NULL) return -1;
    out->n = le32(p);
    x_bytes = mul_size(mul_size(out->n, g->input_words), 4u);
    if (out->n == 0u || x_bytes == 0u) {
        fprintf(stderr, "%s: batch %ld has a bad sample count %lu\n", r->path, b, (unsigned long)out->n);
        return -1;
    }
    if ((out->x = take(r, x_bytes, "inputs", b)) == NULL) return -1;
    if ((out->labels = take(r, mul_size(out->n, 2u), "labels", b)) == NULL) return -1;
    if ((out->predictions = take(r, mul_size(out->n, 2u), "predictions", b)) == NULL) return -1;
    if ((out->counters = take(r, 4u * GOLDEN_N_COUNTERS, "counters", b)) == NULL) return -1;
    for (l = 0; l < g->n_layers; ++l) {
        if ((out->hidden[l] = take(r, layer_bytes(g, l), "hidden weights", b)) == NULL) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ comparison */

static int32_t weight_at(const unsigned char *p, unsigned hidden_bits, size_t k)
{
    if (hidden_bits == 8u) return (int32_t)(int8_t)p[k];
    return (int32_t)(int16_t)le16(p + 2u * k);
}

/* Compares every layer's hidden weights with the expected ones; `when` names the
 * moment ("after init" or "batch N") in the report. */
static int compare_hidden(const golden_t *g, const void *state, size_t state_len, void *scratch,
                          const unsigned char *const expected[], const char *when, const unsigned char *file)
{
    unsigned l;
    for (l = 0; l < g->n_layers; ++l) {
        size_t n = (size_t)g->rows[l] * g->cols[l], k;
        bep_status_t st = BEP_HOST_FN(read_hidden)(state, state_len, l, scratch, n * (g->hidden_bits / 8u));
        if (st != BEP_OK) {
            fprintf(stderr, "bep_read_hidden(layer %u): %s\n", l, bep_status_str(st));
            return EXIT_ERROR;
        }
        for (k = 0; k < n; ++k) {
            int32_t want = weight_at(expected[l], g->hidden_bits, k);
            int32_t got = g->hidden_bits == 8u ? (int32_t)((const int8_t *)scratch)[k]
                                               : (int32_t)((const int16_t *)scratch)[k];
            if (want != got) {
                printf("MISMATCH %s layer %u row %lu col %lu: expected %ld, got %ld (file offset %lu)\n", when, l,
                       (unsigned long)(k / g->cols[l]), (unsigned long)(k % g->cols[l]), (long)want, (long)got,
                       (unsigned long)(expected[l] + k * (g->hidden_bits / 8u) - file));
                return EXIT_MISMATCH;
            }
        }
    }
    return EXIT_MATCH;
}

static int run_batch(const golden_t *g, void *state, size_t state_len, const batch_t *bt, uint32_t b,
                     uint32_t *x, uint16_t *labels, uint16_t *pred, void *scratch, const unsigned char *file)
{
    size_t words = (size_t)bt->n * g->input_words, k;
    bep_counters_t c;
    uint32_t got_c[GOLDEN_N_COUNTERS];
    char when[32];
    bep_status_t st;
    for (k = 0; k < words; ++k) x[k] = le32(bt->x + 4u * k);
    for (k = 0; k < bt->n; ++k) labels[k] = le16(bt->labels + 2u * k);
    st = BEP_HOST_FN(train_batch)(state, state_len, x, words, labels, pred, bt->n);
    if (st != BEP_OK) {
        fprintf(stderr, "batch %lu: bep_train_batch: %s\n", (unsigned long)b, bep_status_str(st));
        return EXIT_ERROR;
    }
    for (k = 0; k < bt->n; ++k) {
        uint16_t want = le16(bt->predictions + 2u * k);
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
    got_c[0] = c.samples;
    got_c[1] = c.triggered;
    got_c[2] = c.errors;
    got_c[3] = c.updates;
    got_c[4] = c.batches;
    for (k = 0; k < GOLDEN_N_COUNTERS; ++k) {
        uint32_t want = le32(bt->counters + 4u * k);
        if (got_c[k] != want) {
            printf("MISMATCH batch %lu counter %s: expected %lu, got %lu (file offset %lu)\n", (unsigned long)b,
                   counter_names[k], (unsigned long)want, (unsigned long)got_c[k],
                   (unsigned long)(bt->counters + 4u * k - file));
            return EXIT_MISMATCH;
        }
    }
    snprintf(when, sizeof when, "batch %lu", (unsigned long)b);
    return compare_hidden(g, state, state_len, scratch, bt->hidden, when, file);
}

/* ------------------------------------------------------------------ main */

static void print_provenance(const golden_t *g)
{
    fprintf(stderr, "provenance:\n");
    fwrite(g->provenance, 1u, g->prov_len, stderr);
    if (g->prov_len == 0u || g->provenance[g->prov_len - 1u] != '\n') fputc('\n', stderr);
}

static int run(const char *path, const unsigned char *file, size_t len, int verbose)
{
    reader_t r;
    golden_t g;
    batch_t bt;
    uint32_t b, max_n = 0, *x = NULL;
    uint16_t *labels = NULL, *pred = NULL;
    size_t max_layer = 0, state_len = BEP_HOST_FN(state_size)();
    const unsigned char *end;
    void *state = NULL, *scratch = NULL;
    bep_status_t st;
    int rc = EXIT_ERROR;
    unsigned l;

    memset(&g, 0, sizeof g);
    r.data = file;
    r.len = len;
    r.pos = 0;
    r.path = path;
    /* Pass 1: validate the whole file and size the buffers. */
    if (parse_head(&r, &g) != 0) return EXIT_ERROR;
    for (b = 0; b < g.n_batches; ++b) {
        if (parse_batch(&r, &g, (long)b, &bt) != 0) return EXIT_ERROR;
        if (bt.n > max_n) max_n = bt.n;
    }
    end = take(&r, sizeof golden_end, "end marker", -1);
    if (end == NULL) return EXIT_ERROR;
    if (memcmp(end, golden_end, sizeof golden_end) != 0 || r.pos != len) {
        fprintf(stderr, "%s: damaged golden file (no end marker at offset %lu)\n", path,
                (unsigned long)(end - file));
        return EXIT_ERROR;
    }
    if (verbose) print_provenance(&g);

    for (l = 0; l < g.n_layers; ++l) max_layer = layer_bytes(&g, l) > max_layer ? layer_bytes(&g, l) : max_layer;
    /* Exactly sized heap buffers, so ASan and valgrind see any overrun by the runtime. */
    state = malloc(state_len);
    scratch = malloc(max_layer);
    x = (uint32_t *)malloc((size_t)max_n * g.input_words * sizeof *x);
    labels = (uint16_t *)malloc((size_t)max_n * sizeof *labels);
    pred = (uint16_t *)malloc((size_t)max_n * sizeof *pred);
    if (state == NULL || scratch == NULL || x == NULL || labels == NULL || pred == NULL) {
        fprintf(stderr, "out of memory\n");
        goto done;
    }

    /* Pass 2: run. */
    r.pos = 0;
    if (parse_head(&r, &g) != 0) goto done;
    st = BEP_HOST_FN(init)(state, state_len, g.seed, g.batch_counter);
    if (st != BEP_OK) {
        fprintf(stderr, "bep_init: %s\n", bep_status_str(st));
        goto done;
    }
    rc = compare_hidden(&g, state, state_len, scratch, g.initial, "after init (before batch 0)", file);
    if (rc != EXIT_MATCH) goto done;
    st = BEP_HOST_FN(set_epoch)(state, state_len, g.gamma, g.n_layers, g.q, g.n_layers);
    if (st != BEP_OK) {
        fprintf(stderr, "bep_set_epoch: %s\n", bep_status_str(st));
        rc = EXIT_ERROR;
        goto done;
    }
    for (b = 0; b < g.n_batches; ++b) {
        if (parse_batch(&r, &g, (long)b, &bt) != 0) {
            rc = EXIT_ERROR;
            goto done;
        }
        rc = run_batch(&g, state, state_len, &bt, b, x, labels, pred, scratch, file);
        if (rc != EXIT_MATCH) goto done;
    }
    printf("OK %s: %lu batch%s, %u layer%s, %u-bit hidden weights, config 0x%08lX: predictions, counters and "
           "hidden weights match after every batch\n", path, (unsigned long)g.n_batches, g.n_batches == 1u ? "" : "es",
           g.n_layers, g.n_layers == 1u ? "" : "s", g.hidden_bits, (unsigned long)g.config_hash);
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
