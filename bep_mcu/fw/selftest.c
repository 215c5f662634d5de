/*
 * selftest.c - the firmware self-test: replays a golden-vector file (bep-mcu golden)
 * through the generated training code on the board and ends QEMU with the verdict.
 *
 * The on-device twin of host/bep_host_driver.c, with the same checks in the same order:
 * the whole file is validated first (magic, version, config hash equal to
 * BEP_<NET>_CONFIG_HASH, network shape equal to bep_<net>_config, every section in
 * bounds, the end marker last), then bep_<net>_init with the file's seed and batch
 * counter, the initial hidden weights, bep_<net>_set_epoch with the file's gamma and Q,
 * and per batch bep_<net>_train_batch followed by the predictions, the counters and
 * every hidden weight of every layer, compared with exact equality.
 *
 * Replaces main.c in a self-test image (bep-mcu firmware --self-test GOLDEN); the golden
 * file is rendered by bep_mcu/device/firmware.py into a generated C file of the build
 * as `bep_st_golden`, a const byte array in flash. The build passes its sizes:
 *   BEP_ST_GOLDEN_BYTES  bytes of the file
 *   BEP_ST_MAX_N         the largest batch in it (sizes the input/label buffers)
 *   BEP_ST_CHUNK         bytes of hidden weights read back per bep_read_hidden_bytes
 *
 * The verdict leaves through semihosting SYS_EXIT_EXTENDED (QEMU's exit status), with
 * one line through SYS_WRITE0 first (QEMU writes it to its standard output or error):
 *   0  everything matches ("OK ...")
 *   1  the first mismatch ("MISMATCH batch B layer L row R col C: expected E, got G
 *      (file offset O)", or a sample's prediction, a counter, or "after init")
 *   2  a foreign or damaged golden file, or a runtime call that failed
 *   3  a fault (startup.c)
 * Same numbering and message format as the host driver.
 *
 * RAM is static and planned on the host like the training firmware's (see
 * board_firmware.py: plan_selftest_memory): the state buffer, `bep_st_buf` below, the
 * stack, and the port's receive ring (the vector table keeps the UART handler and
 * so the ring linked, although the UART is never enabled here). Hidden weights are
 * read back in BEP_ST_CHUNK pieces rather than a layer at a time, so a network that
 * fits the training firmware (which holds a link of several hundred bytes instead)
 * also fits its self-test.
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_cpu.h"
#include BEP_FW_NET_HEADER
#include "bep_golden.h" /* the file format, shared with host/bep_host_driver.c */
#include "bep_semihost.h"

#if !defined(BEP_ST_GOLDEN_BYTES) || !defined(BEP_ST_MAX_N) || !defined(BEP_ST_CHUNK)
#error "BEP_ST_GOLDEN_BYTES, BEP_ST_MAX_N and BEP_ST_CHUNK are set by the build (bep_mcu/device/firmware.py)"
#endif
#if !BEP_BOARD_QEMU
#error "the self-test reports through semihosting: build it for an emulated board"
#endif
#if (BEP_ST_CHUNK % 4u) != 0u
#error "BEP_ST_CHUNK must be a multiple of 4 (an int16 weight never straddles two pieces)"
#endif

#define BEP_FW_PASTE_(a, b, c) a##b##c
#define BEP_FW_PASTE(a, b, c) BEP_FW_PASTE_(a, b, c)
#define BEP_FW_NET_FN(op) BEP_FW_PASTE(bep_, BEP_FW_NET, _##op)
#define BEP_FW_NET_MACRO(m) BEP_FW_PASTE(BEP_, BEP_FW_NET_UPPER, _##m)
#define BEP_FW_NET_CONFIG BEP_FW_NET_FN(config)

enum { ST_MATCH = 0, ST_MISMATCH = 1, ST_ERROR = 2 };

extern const unsigned char bep_st_golden[BEP_ST_GOLDEN_BYTES];

/* The board this image was built for (not allocated; see main.c): run_to_exit in
 * bep_mcu/device/emulate.py refuses an image built for another board. */
__attribute__((section(".bep_board"), used)) static const char bep_fw_board_tag[] = BEP_BOARD_NAME;

static uint32_t bep_fw_state[BEP_FW_NET_MACRO(STATE_WORDS)];

/* One struct so the RAM plan is a plain sum: every member is a multiple of 4 bytes. */
#define BEP_ST_SLOTS ((BEP_ST_MAX_N + 1u) & ~1u)
static struct {
    uint32_t x[BEP_ST_MAX_N * BEP_FW_NET_MACRO(INPUT_WORDS)];
    uint16_t labels[BEP_ST_SLOTS];
    uint16_t pred[BEP_ST_SLOTS];
    uint8_t chunk[BEP_ST_CHUNK];
} bep_st_buf;

/* ------------------------------------------------------------ file reading */

static unsigned long file_offset(const unsigned char *p) { return (unsigned long)(p - bep_st_golden); }

/* golden_take, with the one-line report of a section that does not fit. */
static const unsigned char *take(golden_reader_t *r, size_t n, const char *what, long batch)
{
    const unsigned char *p = golden_take(r, n, what, batch);
    if (p != NULL) return p;
    if (batch >= 0)
        bep_sh_say("ERROR truncated golden file (batch %d %s at offset %u)", batch, what, (unsigned long)r->pos);
    else
        bep_sh_say("ERROR truncated golden file (%s at offset %u)", what, (unsigned long)r->pos);
    return NULL;
}

/* --------------------------------------------------------------- the file */

/* What pass 2 needs from the head; the shapes are the compiled config's (checked equal). */
typedef struct {
    golden_head_t h;
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS];
    const unsigned char *initial[BEP_MAX_LAYERS];
} golden_t;

/* Header, provenance, layer records and initial weights, checked against the
 * compiled network (the host driver's parse_head). 0, or -1 after one line. */
static int parse_head(golden_reader_t *r, golden_t *g)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    const unsigned char *h = take(r, GOLDEN_HEADER_BYTES, "header", -1), *p;
    golden_layer_t rec;
    unsigned l;
    if (h == NULL) return -1;
    if (!golden_same(h, golden_magic, sizeof golden_magic)) {
        bep_sh_say("ERROR not a bep-mcu golden file (bad magic)");
        return -1;
    }
    golden_decode_head(h, &g->h);
    if (g->h.version != GOLDEN_VERSION) {
        bep_sh_say("ERROR golden format version %u, this self-test reads %u", (unsigned long)g->h.version,
               (unsigned long)GOLDEN_VERSION);
        return -1;
    }
    if (g->h.config_hash != BEP_FW_NET_MACRO(CONFIG_HASH)) {
        bep_sh_say("ERROR golden file for config %x, this image was built for %x (regenerate the image or the golden "
               "file from the same model)", (unsigned long)g->h.config_hash,
               (unsigned long)BEP_FW_NET_MACRO(CONFIG_HASH));
        return -1;
    }
    if (g->h.model != cfg->model || g->h.hidden_bits != cfg->hidden_bits || g->h.n_layers != cfg->n_layers ||
        g->h.n_classes != cfg->n_classes || g->h.steps != cfg->steps || g->h.input_words != cfg->input_words) {
        bep_sh_say("ERROR network shape differs from the compiled one");
        return -1;
    }
    if (take(r, g->h.prov_len, "provenance", -1) == NULL) return -1;
    for (l = 0; l < cfg->n_layers; ++l) {
        p = take(r, GOLDEN_LAYER_RECORD_BYTES, "layer record", -1);
        if (p == NULL) return -1;
        golden_decode_layer(p, &rec);
        if (rec.rows != cfg->layer[l].rows || rec.cols != cfg->layer[l].cols) {
            bep_sh_say("ERROR layer %u is %u x %u, the compiled network's is %u x %u", (unsigned long)l,
                   (unsigned long)rec.rows, (unsigned long)rec.cols, (unsigned long)cfg->layer[l].rows,
                   (unsigned long)cfg->layer[l].cols);
            return -1;
        }
        if (rec.gamma > 0xFFFFu) {
            bep_sh_say("ERROR layer %u gamma %u out of range", (unsigned long)l, (unsigned long)rec.gamma);
            return -1;
        }
        g->gamma[l] = (uint16_t)rec.gamma;
        g->q[l] = rec.q;
    }
    for (l = 0; l < cfg->n_layers; ++l) {
        g->initial[l] = take(r, golden_layer_bytes(cfg, l), "initial hidden weights", -1);
        if (g->initial[l] == NULL) return -1;
    }
    return 0;
}

static int parse_batch(golden_reader_t *r, long b, golden_batch_t *out)
{
    int rc = golden_take_batch(r, &BEP_FW_NET_CONFIG, b, out);
    if (rc == -2) {
        bep_sh_say("ERROR batch %d has a bad sample count %u", b, (unsigned long)out->n);
    } else if (rc != 0) {
        bep_sh_say("ERROR truncated golden file (batch %d %s at offset %u)", b, r->fail_what, (unsigned long)r->pos);
    } else if (out->n > BEP_ST_MAX_N) { /* the build sized the buffers for this very file */
        bep_sh_say("ERROR batch %d has %u samples, the image holds %u", b, (unsigned long)out->n,
               (unsigned long)BEP_ST_MAX_N);
        rc = -1;
    }
    return rc;
}

/* ------------------------------------------------------------ comparison */

static int runtime_failed(const char *call, long batch, bep_status_t st)
{
    if (batch >= 0)
        bep_sh_say("ERROR batch %d: %s: status %d", batch, call, (long)st);
    else
        bep_sh_say("ERROR %s: status %d", call, (long)st);
    return ST_ERROR;
}

/* Every hidden weight of every layer against `expected`, read back in BEP_ST_CHUNK
 * pieces (little-endian, as in the file: Cortex-M runs little-endian here); `batch`
 * < 0 means right after init. */
static __attribute__((noinline)) int compare_hidden(const unsigned char *const expected[], long batch)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    const unsigned wb = cfg->hidden_bits / 8u;
    unsigned l;
    for (l = 0; l < cfg->n_layers; ++l) {
        size_t total = golden_layer_bytes(cfg, l), off, k;
        for (off = 0; off < total; off += BEP_ST_CHUNK) {
            size_t m = total - off < BEP_ST_CHUNK ? total - off : BEP_ST_CHUNK;
            bep_status_t st = bep_read_hidden_bytes(cfg, bep_fw_state, sizeof bep_fw_state, l, (uint32_t)off,
                                                    bep_st_buf.chunk, m);
            if (st != BEP_OK) return runtime_failed("bep_read_hidden_bytes", batch, st);
            for (k = 0; k < m / wb; ++k) {
                size_t idx = off / wb + k;
                int32_t want = golden_weight(expected[l], cfg->hidden_bits, idx);
                int32_t got = golden_weight(bep_st_buf.chunk, cfg->hidden_bits, k);
                if (want == got) continue;
                if (batch < 0)
                    bep_sh_say("MISMATCH after init (before batch 0) layer %u row %u col %u: expected %d, got %d "
                           "(file offset %u)", (unsigned long)l, (unsigned long)(idx / cfg->layer[l].cols),
                           (unsigned long)(idx % cfg->layer[l].cols), (long)want, (long)got,
                           file_offset(expected[l] + idx * wb));
                else
                    bep_sh_say("MISMATCH batch %d layer %u row %u col %u: expected %d, got %d (file offset %u)", batch,
                           (unsigned long)l, (unsigned long)(idx / cfg->layer[l].cols),
                           (unsigned long)(idx % cfg->layer[l].cols), (long)want, (long)got,
                           file_offset(expected[l] + idx * wb));
                return ST_MISMATCH;
            }
        }
    }
    return ST_MATCH;
}

/* After a batch: its counters as the golden file has them. Not inlined, so that its
 * locals are not on the stack while the batch trains (the deepest call chain). */
static __attribute__((noinline)) int compare_counters(const golden_batch_t *bt, long b)
{
    bep_counters_t c;
    uint32_t got_c[GOLDEN_N_COUNTERS], k;
    bep_status_t st = BEP_FW_NET_FN(read_counters)(bep_fw_state, sizeof bep_fw_state, &c);
    if (st != BEP_OK) return runtime_failed("bep_read_counters", b, st);
    golden_counters(&c, got_c);
    for (k = 0; k < GOLDEN_N_COUNTERS; ++k) {
        uint32_t want = golden_le32(bt->counters + 4u * k);
        if (got_c[k] != want) {
            bep_sh_say("MISMATCH batch %d counter %s: expected %u, got %u (file offset %u)", b, golden_counter_names[k],
                   (unsigned long)want, (unsigned long)got_c[k], file_offset(bt->counters + 4u * k));
            return ST_MISMATCH;
        }
    }
    return ST_MATCH;
}

static int run_batch(const golden_batch_t *bt, long b)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    size_t words = (size_t)bt->n * cfg->input_words, k;
    bep_status_t st;
    int rc;
    for (k = 0; k < words; ++k) bep_st_buf.x[k] = golden_le32(bt->x + 4u * k);
    for (k = 0; k < bt->n; ++k) bep_st_buf.labels[k] = golden_le16(bt->labels + 2u * k);
    st = BEP_FW_NET_FN(train_batch)(bep_fw_state, sizeof bep_fw_state, bep_st_buf.x, words, bep_st_buf.labels,
                                    bep_st_buf.pred, bt->n);
    if (st != BEP_OK) return runtime_failed("bep_train_batch", b, st);
    for (k = 0; k < bt->n; ++k) {
        uint16_t want = golden_le16(bt->predictions + 2u * k);
        if (bep_st_buf.pred[k] != want) {
            bep_sh_say("MISMATCH batch %d sample %u prediction: expected %u, got %u (file offset %u)", b,
                   (unsigned long)k, (unsigned long)want, (unsigned long)bep_st_buf.pred[k],
                   file_offset(bt->predictions + 2u * k));
            return ST_MISMATCH;
        }
    }
    rc = compare_counters(bt, b);
    return rc != ST_MATCH ? rc : compare_hidden(bt->hidden, b);
}

/* ------------------------------------------------------------------ main */

/* Pass 1: validate the whole file, so a damaged one is reported as such. */
static __attribute__((noinline)) int validate(void)
{
    golden_reader_t r = {bep_st_golden, BEP_ST_GOLDEN_BYTES, 0, NULL, 0};
    golden_t g;
    golden_batch_t bt;
    const unsigned char *end;
    uint32_t b;
    if (parse_head(&r, &g) != 0) return ST_ERROR;
    for (b = 0; b < g.h.n_batches; ++b) {
        if (parse_batch(&r, (long)b, &bt) != 0) return ST_ERROR;
    }
    end = take(&r, sizeof golden_end, "end marker", -1);
    if (end == NULL) return ST_ERROR;
    if (!golden_same(end, golden_end, sizeof golden_end) || r.pos != BEP_ST_GOLDEN_BYTES) {
        bep_sh_say("ERROR damaged golden file (no end marker at offset %u)", file_offset(end));
        return ST_ERROR;
    }
    return ST_MATCH;
}

/* Pass 2's start: the header read again (r then at the first batch), the network set
 * up from it and checked against its initial weights. The header lives here, not in
 * run(): run's frame is on the stack while the batches train (the deepest call chain). */
static __attribute__((noinline)) int start(golden_reader_t *r, uint32_t *n_batches)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    golden_t g;
    bep_status_t st;
    int rc;
    if (parse_head(r, &g) != 0) return ST_ERROR;
    *n_batches = g.h.n_batches;
    st = BEP_FW_NET_FN(init)(bep_fw_state, sizeof bep_fw_state, g.h.seed, g.h.batch_counter);
    if (st != BEP_OK) return runtime_failed("bep_init", -1, st);
    rc = compare_hidden(g.initial, -1);
    if (rc != ST_MATCH) return rc;
    st = BEP_FW_NET_FN(set_epoch)(bep_fw_state, sizeof bep_fw_state, g.gamma, cfg->n_layers, g.q, cfg->n_layers);
    return st != BEP_OK ? runtime_failed("bep_set_epoch", -1, st) : ST_MATCH;
}

static int run(void)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    golden_reader_t r = {bep_st_golden, BEP_ST_GOLDEN_BYTES, 0, NULL, 0};
    golden_batch_t bt;
    uint32_t b, n_batches = 0;
    int rc = validate();
    if (rc != ST_MATCH) return rc;

    /* Pass 2: run. */
    rc = start(&r, &n_batches);
    if (rc != ST_MATCH) return rc;
    for (b = 0; b < n_batches; ++b) {
        if (parse_batch(&r, (long)b, &bt) != 0) return ST_ERROR;
        rc = run_batch(&bt, (long)b);
        if (rc != ST_MATCH) return rc;
    }
    bep_sh_say("OK self-test on %s: %u batches, %u layers, %u-bit, config %x: predictions, counters and hidden "
           "weights match", BEP_BOARD_NAME, (unsigned long)n_batches,
           (unsigned long)cfg->n_layers, (unsigned long)cfg->hidden_bits,
           (unsigned long)BEP_FW_NET_MACRO(CONFIG_HASH));
    return ST_MATCH;
}

int main(void) { bep_sh_exit((uint32_t)run()); }
