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
 * file is rendered by bep_mcu/board_firmware.py into a generated C file of the build
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
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "bep_cortexm.h"
#include BEP_FW_NET_HEADER

#if !defined(BEP_ST_GOLDEN_BYTES) || !defined(BEP_ST_MAX_N) || !defined(BEP_ST_CHUNK)
#error "BEP_ST_GOLDEN_BYTES, BEP_ST_MAX_N and BEP_ST_CHUNK are set by the build (bep_mcu/board_firmware.py)"
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

/* Golden file format version 1 (bep_mcu/golden.py). */
#define GOLDEN_VERSION 1u
#define GOLDEN_HEADER_BYTES 44u
#define GOLDEN_LAYER_RECORD_BYTES 16u
#define GOLDEN_N_COUNTERS 5u

enum { ST_MATCH = 0, ST_MISMATCH = 1, ST_ERROR = 2 };

extern const unsigned char bep_st_golden[BEP_ST_GOLDEN_BYTES];

/* The board this image was built for (not allocated; see main.c): run_to_exit in
 * bep_mcu/emulate.py refuses an image built for another board. */
__attribute__((section(".bep_board"), used)) static const char bep_fw_board_tag[] = BEP_BOARD_NAME;

static const char golden_magic[8] = {'B', 'E', 'P', 'G', 'O', 'L', 'D', '\0'};
static const char golden_end[8] = {'B', 'E', 'P', 'G', 'E', 'N', 'D', '\0'};
static const char *const counter_names[GOLDEN_N_COUNTERS] = {"samples", "triggered", "errors", "updates",
                                                              "batches"};

static uint32_t bep_fw_state[BEP_FW_NET_MACRO(STATE_WORDS)];

/* One struct so the RAM plan is a plain sum: every member is a multiple of 4 bytes. */
#define BEP_ST_SLOTS ((BEP_ST_MAX_N + 1u) & ~1u)
static struct {
    uint32_t x[BEP_ST_MAX_N * BEP_FW_NET_MACRO(INPUT_WORDS)];
    uint16_t labels[BEP_ST_SLOTS];
    uint16_t pred[BEP_ST_SLOTS];
    uint8_t chunk[BEP_ST_CHUNK];
} bep_st_buf;

/* ------------------------------------------------------------ semihosting */

/* SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit: QEMU exits with `status`. */
__attribute__((noreturn)) static void st_exit(uint32_t status)
{
    uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = status;
    {
        register uint32_t op __asm__("r0") = 0x20u;
        register const uint32_t *arg __asm__("r1") = block;
        __asm__ volatile("bkpt 0xAB" : : "r"(op), "r"(arg) : "memory");
    }
    for (;;) {
    }
}

/* SYS_WRITE0 (0x04): a NUL-terminated string to the emulator's console. */
static void st_write0(const char *s)
{
    register uint32_t op __asm__("r0") = 0x04u;
    register const char *arg __asm__("r1") = s;
    __asm__ volatile("bkpt 0xAB" : "+r"(op) : "r"(arg) : "memory");
}

/* ------------------------------------------------------------ one report line */

/* Longest line: a MISMATCH with every number at its widest, about 120 characters
 * (longer ones are cut, never overrun). */
#define ST_LINE 160u

/* One line to the console. A tiny format language, not printf's: %s a string, %u an
 * unsigned long, %d a long, %x an unsigned long as 0x%08lX. The buffer lives in this
 * frame only, and this is called only on the way out, so it never adds to the
 * deepest stack (main -> bep_train_batch -> the forward pass). */
__attribute__((noinline)) static void st_say(const char *fmt, ...)
{
    static const char hex[] = "0123456789ABCDEF";
    char line[ST_LINE], digits[10];
    size_t len = 0, n;
    unsigned long u;
    const char *s;
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt != '\0' && len + 2u < ST_LINE; ++fmt) {
        if (*fmt != '%' || fmt[1] == '\0') {
            line[len++] = *fmt;
            continue;
        }
        switch (*++fmt) {
        case 's':
            for (s = va_arg(ap, const char *); *s != '\0' && len + 2u < ST_LINE; ++s) line[len++] = *s;
            break;
        case 'd':
        case 'u':
            if (*fmt == 'd') {
                long v = va_arg(ap, long);
                if (v < 0) line[len++] = '-';
                u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
            } else {
                u = va_arg(ap, unsigned long);
            }
            n = 0;
            do {
                digits[n++] = (char)('0' + (char)(u % 10u));
                u /= 10u;
            } while (u != 0u);
            while (n > 0u && len + 2u < ST_LINE) line[len++] = digits[--n];
            break;
        case 'x':
            u = va_arg(ap, unsigned long);
            for (n = 0; n < 10u && len + 2u < ST_LINE; ++n)
                line[len++] = n == 0u ? '0' : n == 1u ? 'x' : hex[(u >> (36u - 4u * n)) & 0xFu];
            break;
        default:
            line[len++] = *fmt;
            break;
        }
    }
    va_end(ap);
    line[len++] = '\n';
    line[len] = '\0';
    st_write0(line);
}

/* ------------------------------------------------------------ file reading */

typedef struct {
    size_t pos;
} reader_t;

static size_t pad4(size_t n) { return (n + 3u) & ~(size_t)3u; }

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint16_t le16(const unsigned char *p) { return (uint16_t)((unsigned)p[0] | ((unsigned)p[1] << 8)); }

static unsigned long file_offset(const unsigned char *p) { return (unsigned long)(p - bep_st_golden); }

static int same_bytes(const unsigned char *a, const char *b, size_t n)
{
    size_t k;
    for (k = 0; k < n; ++k) {
        if (a[k] != (unsigned char)b[k]) return 0;
    }
    return 1;
}

/* Claims n bytes (then skips the padding to 4); NULL, after one line, when the file
 * is too short. `batch` < 0: a section outside the batches. */
static const unsigned char *take(reader_t *r, size_t n, const char *what, long batch)
{
    const unsigned char *p;
    if (n > BEP_ST_GOLDEN_BYTES - r->pos || pad4(n) < n) {
        if (batch >= 0)
            st_say("ERROR truncated golden file (batch %d %s at offset %u)", batch, what, (unsigned long)r->pos);
        else
            st_say("ERROR truncated golden file (%s at offset %u)", what, (unsigned long)r->pos);
        return NULL;
    }
    p = bep_st_golden + r->pos;
    r->pos = pad4(n) > BEP_ST_GOLDEN_BYTES - r->pos ? BEP_ST_GOLDEN_BYTES : r->pos + pad4(n);
    return p;
}

/* n * size without overflow (0 on overflow, which no valid section has). */
static size_t mul_size(size_t n, size_t size) { return (size != 0u && n > (size_t)-1 / size) ? 0u : n * size; }

/* --------------------------------------------------------------- the file */

/* What pass 2 needs from the head; the shapes are the compiled config's (checked equal). */
typedef struct {
    uint32_t seed, batch_counter, n_batches;
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS];
    const unsigned char *initial[BEP_MAX_LAYERS];
} golden_t;

/* Views into one batch record. */
typedef struct {
    uint32_t n;
    const unsigned char *x, *labels, *predictions, *counters;
    const unsigned char *hidden[BEP_MAX_LAYERS];
} batch_t;

static size_t layer_bytes(unsigned l)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    return (size_t)cfg->layer[l].n_weights * (cfg->hidden_bits / 8u);
}

/* Header, provenance, layer records and initial weights, checked against the
 * compiled network (the host driver's parse_head). 0, or -1 after one line. */
static int parse_head(reader_t *r, golden_t *g)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    const unsigned char *h = take(r, GOLDEN_HEADER_BYTES, "header", -1), *p;
    unsigned l;
    if (h == NULL) return -1;
    if (!same_bytes(h, golden_magic, sizeof golden_magic)) {
        st_say("ERROR not a bep-mcu golden file (bad magic)");
        return -1;
    }
    if (le32(h + 8) != GOLDEN_VERSION) {
        st_say("ERROR golden format version %u, this self-test reads %u", (unsigned long)le32(h + 8),
               (unsigned long)GOLDEN_VERSION);
        return -1;
    }
    if (le32(h + 12) != BEP_FW_NET_MACRO(CONFIG_HASH)) {
        st_say("ERROR golden file for config %x, this image was built for %x (regenerate the image or the golden "
               "file from the same model)", (unsigned long)le32(h + 12),
               (unsigned long)BEP_FW_NET_MACRO(CONFIG_HASH));
        return -1;
    }
    if (h[16] != cfg->model || h[17] != cfg->hidden_bits || h[18] != cfg->n_layers ||
        le16(h + 20) != cfg->n_classes || le16(h + 22) != cfg->steps || le32(h + 24) != cfg->input_words) {
        st_say("ERROR network shape differs from the compiled one");
        return -1;
    }
    g->seed = le32(h + 28);
    g->batch_counter = le32(h + 32);
    g->n_batches = le32(h + 36);
    if (take(r, le32(h + 40), "provenance", -1) == NULL) return -1;
    for (l = 0; l < cfg->n_layers; ++l) {
        p = take(r, GOLDEN_LAYER_RECORD_BYTES, "layer record", -1);
        if (p == NULL) return -1;
        if (le32(p) != cfg->layer[l].rows || le32(p + 4) != cfg->layer[l].cols) {
            st_say("ERROR layer %u is %u x %u, the compiled network's is %u x %u", (unsigned long)l,
                   (unsigned long)le32(p), (unsigned long)le32(p + 4), (unsigned long)cfg->layer[l].rows,
                   (unsigned long)cfg->layer[l].cols);
            return -1;
        }
        if (le32(p + 8) > 0xFFFFu) {
            st_say("ERROR layer %u gamma %u out of range", (unsigned long)l, (unsigned long)le32(p + 8));
            return -1;
        }
        g->gamma[l] = (uint16_t)le32(p + 8);
        g->q[l] = le32(p + 12);
    }
    for (l = 0; l < cfg->n_layers; ++l) {
        g->initial[l] = take(r, layer_bytes(l), "initial hidden weights", -1);
        if (g->initial[l] == NULL) return -1;
    }
    return 0;
}

static int parse_batch(reader_t *r, long b, batch_t *out)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    const unsigned char *p = take(r, 4u, "sample count", b);
    unsigned l;
    size_t x_bytes;
    if (p == NULL) return -1;
    out->n = le32(p);
    x_bytes = mul_size(mul_size(out->n, cfg->input_words), 4u);
    if (out->n == 0u || x_bytes == 0u) {
        st_say("ERROR batch %d has a bad sample count %u", b, (unsigned long)out->n);
        return -1;
    }
    /* The build sized the buffers for the largest batch of this very file. */
    if (out->n > BEP_ST_MAX_N) {
        st_say("ERROR batch %d has %u samples, the image holds %u", b, (unsigned long)out->n,
               (unsigned long)BEP_ST_MAX_N);
        return -1;
    }
    if ((out->x = take(r, x_bytes, "inputs", b)) == NULL) return -1;
    if ((out->labels = take(r, mul_size(out->n, 2u), "labels", b)) == NULL) return -1;
    if ((out->predictions = take(r, mul_size(out->n, 2u), "predictions", b)) == NULL) return -1;
    if ((out->counters = take(r, 4u * GOLDEN_N_COUNTERS, "counters", b)) == NULL) return -1;
    for (l = 0; l < cfg->n_layers; ++l) {
        if ((out->hidden[l] = take(r, layer_bytes(l), "hidden weights", b)) == NULL) return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ comparison */

static int32_t weight_at(const unsigned char *p, unsigned hidden_bits, size_t k)
{
    if (hidden_bits == 8u) return (int32_t)(int8_t)p[k];
    return (int32_t)(int16_t)le16(p + 2u * k);
}

static int runtime_failed(const char *call, long batch, bep_status_t st)
{
    if (batch >= 0)
        st_say("ERROR batch %d: %s: status %d", batch, call, (long)st);
    else
        st_say("ERROR %s: status %d", call, (long)st);
    return ST_ERROR;
}

/* Every hidden weight of every layer against `expected`, read back in BEP_ST_CHUNK
 * pieces (little-endian, as in the file: Cortex-M runs little-endian here); `batch`
 * < 0 means right after init. */
static int compare_hidden(const unsigned char *const expected[], long batch)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    const unsigned wb = cfg->hidden_bits / 8u;
    unsigned l;
    for (l = 0; l < cfg->n_layers; ++l) {
        size_t total = layer_bytes(l), off, k;
        for (off = 0; off < total; off += BEP_ST_CHUNK) {
            size_t m = total - off < BEP_ST_CHUNK ? total - off : BEP_ST_CHUNK;
            bep_status_t st = bep_read_hidden_bytes(cfg, bep_fw_state, sizeof bep_fw_state, l, (uint32_t)off,
                                                    bep_st_buf.chunk, m);
            if (st != BEP_OK) return runtime_failed("bep_read_hidden_bytes", batch, st);
            for (k = 0; k < m / wb; ++k) {
                size_t idx = off / wb + k;
                int32_t want = weight_at(expected[l], cfg->hidden_bits, idx);
                int32_t got = weight_at(bep_st_buf.chunk, cfg->hidden_bits, k);
                if (want == got) continue;
                if (batch < 0)
                    st_say("MISMATCH after init (before batch 0) layer %u row %u col %u: expected %d, got %d "
                           "(file offset %u)", (unsigned long)l, (unsigned long)(idx / cfg->layer[l].cols),
                           (unsigned long)(idx % cfg->layer[l].cols), (long)want, (long)got,
                           file_offset(expected[l] + idx * wb));
                else
                    st_say("MISMATCH batch %d layer %u row %u col %u: expected %d, got %d (file offset %u)", batch,
                           (unsigned long)l, (unsigned long)(idx / cfg->layer[l].cols),
                           (unsigned long)(idx % cfg->layer[l].cols), (long)want, (long)got,
                           file_offset(expected[l] + idx * wb));
                return ST_MISMATCH;
            }
        }
    }
    return ST_MATCH;
}

static int run_batch(const batch_t *bt, long b)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    size_t words = (size_t)bt->n * cfg->input_words, k;
    bep_counters_t c;
    uint32_t got_c[GOLDEN_N_COUNTERS];
    bep_status_t st;
    for (k = 0; k < words; ++k) bep_st_buf.x[k] = le32(bt->x + 4u * k);
    for (k = 0; k < bt->n; ++k) bep_st_buf.labels[k] = le16(bt->labels + 2u * k);
    st = BEP_FW_NET_FN(train_batch)(bep_fw_state, sizeof bep_fw_state, bep_st_buf.x, words, bep_st_buf.labels,
                                    bep_st_buf.pred, bt->n);
    if (st != BEP_OK) return runtime_failed("bep_train_batch", b, st);
    for (k = 0; k < bt->n; ++k) {
        uint16_t want = le16(bt->predictions + 2u * k);
        if (bep_st_buf.pred[k] != want) {
            st_say("MISMATCH batch %d sample %u prediction: expected %u, got %u (file offset %u)", b,
                   (unsigned long)k, (unsigned long)want, (unsigned long)bep_st_buf.pred[k],
                   file_offset(bt->predictions + 2u * k));
            return ST_MISMATCH;
        }
    }
    st = BEP_FW_NET_FN(read_counters)(bep_fw_state, sizeof bep_fw_state, &c);
    if (st != BEP_OK) return runtime_failed("bep_read_counters", b, st);
    got_c[0] = c.samples;
    got_c[1] = c.triggered;
    got_c[2] = c.errors;
    got_c[3] = c.updates;
    got_c[4] = c.batches;
    for (k = 0; k < GOLDEN_N_COUNTERS; ++k) {
        uint32_t want = le32(bt->counters + 4u * k);
        if (got_c[k] != want) {
            st_say("MISMATCH batch %d counter %s: expected %u, got %u (file offset %u)", b, counter_names[k],
                   (unsigned long)want, (unsigned long)got_c[k], file_offset(bt->counters + 4u * k));
            return ST_MISMATCH;
        }
    }
    return compare_hidden(bt->hidden, b);
}

/* ------------------------------------------------------------------ main */

static int run(void)
{
    const bep_config_t *cfg = &BEP_FW_NET_CONFIG;
    reader_t r;
    golden_t g;
    batch_t bt;
    uint32_t b;
    const unsigned char *end;
    bep_status_t st;
    int rc;

    /* Pass 1: validate the whole file, so a damaged one is reported as such. */
    r.pos = 0;
    if (parse_head(&r, &g) != 0) return ST_ERROR;
    for (b = 0; b < g.n_batches; ++b) {
        if (parse_batch(&r, (long)b, &bt) != 0) return ST_ERROR;
    }
    end = take(&r, sizeof golden_end, "end marker", -1);
    if (end == NULL) return ST_ERROR;
    if (!same_bytes(end, golden_end, sizeof golden_end) || r.pos != BEP_ST_GOLDEN_BYTES) {
        st_say("ERROR damaged golden file (no end marker at offset %u)", file_offset(end));
        return ST_ERROR;
    }

    /* Pass 2: run. */
    r.pos = 0;
    if (parse_head(&r, &g) != 0) return ST_ERROR;
    st = BEP_FW_NET_FN(init)(bep_fw_state, sizeof bep_fw_state, g.seed, g.batch_counter);
    if (st != BEP_OK) return runtime_failed("bep_init", -1, st);
    rc = compare_hidden(g.initial, -1);
    if (rc != ST_MATCH) return rc;
    st = BEP_FW_NET_FN(set_epoch)(bep_fw_state, sizeof bep_fw_state, g.gamma, cfg->n_layers, g.q, cfg->n_layers);
    if (st != BEP_OK) return runtime_failed("bep_set_epoch", -1, st);
    for (b = 0; b < g.n_batches; ++b) {
        if (parse_batch(&r, (long)b, &bt) != 0) return ST_ERROR;
        rc = run_batch(&bt, (long)b);
        if (rc != ST_MATCH) return rc;
    }
    st_say("OK self-test on %s: %u batches, %u layers, %u-bit, config %x: predictions, counters and hidden "
           "weights match", BEP_BOARD_NAME, (unsigned long)g.n_batches,
           (unsigned long)cfg->n_layers, (unsigned long)cfg->hidden_bits,
           (unsigned long)BEP_FW_NET_MACRO(CONFIG_HASH));
    return ST_MATCH;
}

int main(void) { st_exit((uint32_t)run()); }
