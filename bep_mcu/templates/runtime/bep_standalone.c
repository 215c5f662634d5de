/*
 * bep_standalone.c - the epoch schedule, sample order and snapshots (see bep_standalone.h).
 *
 * Works through bep_runtime.h's public functions and its state header; the schedule's
 * own state lives in the state buffer at a planned offset, so the training step and the
 * state layout of bep_runtime.c are unchanged.
 */
#include "bep_standalone.h"

#if defined(__GNUC__)
#define BEP_NOINLINE __attribute__((noinline))
#else
#define BEP_NOINLINE
#endif

typedef char bep_schedule_layers_check[(BEP_MAX_LAYERS == 4) ? 1 : -1]; /* bep_schedule_info_t, the snapshot */

static bep_schedule_state_t *bep_sched(void *state, const bep_config_t *cfg)
{
    return (bep_schedule_state_t *)(void *)((uint8_t *)state + cfg->schedule_off);
}

static const bep_schedule_state_t *bep_sched_c(const void *state, const bep_config_t *cfg)
{
    return (const bep_schedule_state_t *)(const void *)((const uint8_t *)state + cfg->schedule_off);
}

/* A state buffer this network initialised (bep_read_counters runs the runtime's checks). */
static bep_status_t bep_valid(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                              size_t state_len, bep_counters_t *counters)
{
    if (sc == NULL) return BEP_ERR_NULL;
    return bep_read_counters(cfg, state, state_len, counters);
}

/* Q of every layer at `level`, and γ, into the state (bep_set_epoch checks γ and Q). The
 * level indexes a table of levels + 1 columns: every caller has bounded it, and it is
 * bounded here once more so that no state can read past the table. */
static bep_status_t bep_apply(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state, size_t state_len,
                              const uint16_t *gamma, uint32_t level)
{
    uint32_t q[BEP_MAX_LAYERS], l;
    if (level > sc->levels) return BEP_ERR_STATE;
    for (l = 0; l < cfg->n_layers; ++l) q[l] = sc->q_table[l * (sc->levels + 1u) + level];
    return bep_set_epoch(cfg, state, state_len, gamma, cfg->n_layers, q, cfg->n_layers);
}

bep_status_t bep_schedule_start(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state,
                                size_t state_len)
{
    bep_counters_t c;
    bep_schedule_state_t *s;
    bep_status_t st = bep_valid(cfg, sc, state, state_len, &c);
    if (st != BEP_OK) return st;
    st = bep_apply(cfg, sc, state, state_len, sc->gamma0, sc->level0);
    if (st != BEP_OK) return st;
    s = bep_sched(state, cfg);
    s->magic = cfg->config_hash;
    s->epoch = sc->epoch0;
    s->level = sc->level0;
    s->stalled = s->best_errors = s->best_samples = 0;
    s->budget_epochs = s->marked_epoch = s->marked_errors = 0;
    s->start_errors = c.errors;
    s->start_samples = c.samples;
    return BEP_OK;
}

bep_status_t bep_end_epoch(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state, size_t state_len)
{
    bep_counters_t c;
    bep_schedule_state_t *s;
    const bep_state_header_t *hd = (const bep_state_header_t *)state;
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t errors, samples, level, gain, l;
    bep_status_t st = bep_valid(cfg, sc, state, state_len, &c);
    if (st != BEP_OK) return st;
    s = bep_sched(state, cfg);
    if (s->magic != cfg->config_hash) return BEP_ERR_STATE;
    if (hd->batch_triggered != 0u) return BEP_ERR_BATCH_OPEN;
    errors = c.errors - s->start_errors; /* modulo 2^32, as the counters wrap */
    samples = c.samples - s->start_samples;
    if (samples == 0u) return BEP_ERR_ARG;
    /* Never true for a state this runtime kept (bep_runtime.h, bep_schedule_state_t): clamped
     * so that the level below stays within the Q table whatever the state. */
    if (errors > samples) errors = samples;
    level = (uint32_t)(((uint64_t)errors * (2u * sc->levels) + samples) / (2u * (uint64_t)samples));
    for (l = 0; l < cfg->n_layers; ++l) gamma[l] = hd->gamma[l];
    if (s->best_samples == 0u || (uint64_t)errors * s->best_samples < (uint64_t)s->best_errors * samples) {
        s->best_errors = errors;
        s->best_samples = samples;
        s->stalled = 0;
    } else if (++s->stalled >= sc->patience) {
        for (l = 0; l < cfg->n_layers; ++l) {
            uint32_t g = (gamma[l] * sc->growth_num + sc->growth_den - 1u) / sc->growth_den;
            gamma[l] = (uint16_t)(g < sc->cap[l] ? g : sc->cap[l]);
        }
        s->stalled = 0;
    }
    st = bep_apply(cfg, sc, state, state_len, gamma, level);
    if (st != BEP_OK) return st;
    /* The budget's mark (engine/schedule.py, ProgressMarks): the first epoch, then each epoch
     * whose errors fell by the gain below the marked count. The count saturates, so that the
     * mark never passes it (bep_check_schedule). */
    if (s->budget_epochs != 0xFFFFFFFFu) s->budget_epochs++;
    gain = samples / BEP_BUDGET_GAIN_DIV > 1u ? samples / BEP_BUDGET_GAIN_DIV : 1u;
    if (s->marked_epoch == 0u || errors + gain <= s->marked_errors) {
        s->marked_errors = errors;
        s->marked_epoch = s->budget_epochs;
    }
    s->level = level;
    s->epoch++;
    s->start_errors = c.errors;
    s->start_samples = c.samples;
    return BEP_OK;
}

bep_status_t bep_read_schedule(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                               size_t state_len, bep_schedule_info_t *out)
{
    bep_counters_t c;
    const bep_schedule_state_t *s;
    const bep_state_header_t *hd = (const bep_state_header_t *)state;
    uint32_t l;
    bep_status_t st = bep_valid(cfg, sc, state, state_len, &c);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    s = bep_sched_c(state, cfg);
    out->epoch = s->epoch;
    out->level = s->level;
    out->stalled = s->stalled;
    out->best_errors = s->best_errors;
    out->best_samples = s->best_samples;
    for (l = 0; l < BEP_MAX_LAYERS; ++l) {
        out->gamma[l] = hd->gamma[l];
        out->q[l] = hd->q[l];
    }
    out->epoch_samples = c.samples - s->start_samples;
    out->epoch_errors = c.errors - s->start_errors;
    out->budget_epochs = s->budget_epochs;
    out->marked_epoch = s->marked_epoch;
    out->marked_errors = s->marked_errors;
    return BEP_OK;
}

bep_status_t bep_should_stop(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                             size_t state_len, uint32_t min_epochs, uint32_t *stop)
{
    bep_counters_t c;
    const bep_schedule_state_t *s;
    uint32_t window;
    bep_status_t st = bep_valid(cfg, sc, state, state_len, &c);
    if (st != BEP_OK) return st;
    if (stop == NULL) return BEP_ERR_NULL;
    if (min_epochs == 0u || min_epochs > BEP_BUDGET_MAX_MIN) return BEP_ERR_ARG;
    s = bep_sched_c(state, cfg);
    if (s->magic != cfg->config_hash) return BEP_ERR_STATE;
    window = min_epochs / BEP_BUDGET_WINDOW_DIV > BEP_BUDGET_MIN_WINDOW ? min_epochs / BEP_BUDGET_WINDOW_DIV
                                                                        : BEP_BUDGET_MIN_WINDOW;
    *stop = (uint32_t)((uint64_t)s->budget_epochs >= (uint64_t)BEP_BUDGET_CAP_FACTOR * min_epochs ||
                       (s->budget_epochs >= min_epochs && s->budget_epochs - s->marked_epoch >= window));
    return BEP_OK;
}

/* ------------------------------------------------------------- sample order */

uint32_t bep_sample_index(uint32_t seed, uint32_t epoch, uint32_t n, uint32_t i)
{
    uint32_t bits = 2u, half, mask, x = i, r;
    while (bits < 32u && (1u << bits) < n) ++bits;
    half = (bits + 1u) / 2u;
    mask = (1u << half) - 1u;
    do { /* a Feistel permutation of 0..2^(2 half)-1, walked until it lands below n */
        uint32_t left = x >> half, right = x & mask;
        for (r = 0; r < 4u; ++r) {
            uint32_t t = right;
            right = left ^ (bep_draw(seed, epoch, BEP_ORDER_LAYER, (r << 16) | right) & mask);
            left = t;
        }
        x = (left << half) | right;
    } while (x >= n);
    return x;
}

bep_status_t bep_epoch_sample(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                              size_t state_len, uint32_t n, uint32_t i, uint32_t *out)
{
    bep_counters_t c;
    bep_status_t st = bep_valid(cfg, sc, state, state_len, &c);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    if (i >= n) return BEP_ERR_ARG;
    *out = bep_sample_index(((const bep_state_header_t *)state)->seed, bep_sched_c(state, cfg)->epoch, n, i);
    return BEP_OK;
}

/* ------------------------------------------------------------- snapshots */

uint32_t bep_crc32(uint32_t crc, const uint8_t *p, size_t n)
{
    size_t k;
    uint32_t b;
    crc = ~crc;
    for (k = 0; k < n; ++k) {
        crc ^= p[k];
        for (b = 0; b < 8u; ++b) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

static void bep_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t bep_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

/* 1 on a big-endian core: int16 hidden weights are byte-swapped to and from the file. */
static int bep_big_endian(void)
{
    const uint16_t one = 1u;
    return *(const uint8_t *)&one == 0u;
}

static void bep_swap16(uint8_t *p, size_t n)
{
    size_t k;
    for (k = 0; k + 1u < n; k += 2u) {
        uint8_t t = p[k];
        p[k] = p[k + 1u];
        p[k + 1u] = t;
    }
}

static uint32_t bep_pad4(uint32_t n) { return (n + 3u) & ~3u; }

/* A 32-bit two's complement field as int32 (without an implementation-defined conversion). */
static int32_t bep_i32(uint32_t v)
{
    return v <= 0x7FFFFFFFu ? (int32_t)v : (int32_t)(v - 0x80000000u) - 0x7FFFFFFF - 1;
}

static uint32_t bep_hidden_bytes(const bep_config_t *cfg, uint32_t l)
{
    return cfg->layer[l].n_weights * (cfg->hidden_bits / 8u);
}

/* Where the followed input thresholds begin: after the header and every layer's hidden weights. */
static uint32_t bep_calib_offset(const bep_config_t *cfg)
{
    uint32_t l, off = BEP_SNAPSHOT_HEADER_BYTES;
    for (l = 0; l < cfg->n_layers; ++l) off += bep_pad4(bep_hidden_bytes(cfg, l));
    return off;
}

/* The board follows input thresholds (bep_calibrate.h) that its snapshots carry. */
static const bep_calib_config_t *bep_followed(const bep_schedule_config_t *sc)
{
    return sc->calib != NULL && sc->calib->count != 0u ? sc->calib : NULL;
}

/* Offsets of the fixed part of a snapshot (bep_standalone.h). */
enum {
    SNAP_MAGIC = 0, SNAP_VERSION = 4, SNAP_HASH = 8, SNAP_BYTES = 12, SNAP_SEED = 16, SNAP_COUNTERS = 20,
    SNAP_GAMMA = 40, SNAP_Q = 48, SNAP_SCHEDULE = 64, SNAP_GENERATION = 92, SNAP_BUDGET = 96, SNAP_CLASSES = 108
};

/* Pieces of a snapshot through the sink, with the running CRC: the snapshot is never
 * whole in RAM, so a flash store needs no buffer of its size. */
typedef struct {
    bep_snapshot_write_fn write;
    void *ctx;
    uint32_t offset, crc;
} bep_emit_t;

static bep_status_t bep_emit(bep_emit_t *e, const uint8_t *p, uint32_t n)
{
    if (e->write(e->ctx, e->offset, p, n) != 0) return BEP_ERR_FLASH;
    e->crc = bep_crc32(e->crc, p, n);
    e->offset += n;
    return BEP_OK;
}

static bep_status_t bep_emit32(bep_emit_t *e, uint32_t v)
{
    uint8_t b[4];
    bep_put32(b, v);
    return bep_emit(e, b, 4u);
}

/* The fixed part (bep_standalone.h), field by field: no buffer of it is on the stack, which
 * the deepest call of a store's save (down to its flash driver) would carry. */
static BEP_NOINLINE bep_status_t bep_snapshot_head(const bep_config_t *cfg, const bep_schedule_config_t *sc,
                                                   const void *state, uint32_t generation, bep_emit_t *e)
{
    const bep_counters_t *c = &((const bep_state_header_t *)state)->counters;
    const bep_state_header_t *hd = (const bep_state_header_t *)state;
    const bep_schedule_state_t *s = bep_sched_c(state, cfg);
    uint32_t l;
    bep_status_t st;
#define BEP_EMIT32(v)                      \
    do {                                   \
        st = bep_emit32(e, (v));           \
        if (st != BEP_OK) return st;       \
    } while (0)
    BEP_EMIT32(BEP_SNAPSHOT_MAGIC);
    BEP_EMIT32(BEP_SNAPSHOT_VERSION);
    BEP_EMIT32(cfg->config_hash);
    BEP_EMIT32(sc->snapshot_bytes);
    BEP_EMIT32(hd->seed);
    BEP_EMIT32(c->samples);
    BEP_EMIT32(c->triggered);
    BEP_EMIT32(c->errors);
    BEP_EMIT32(c->updates);
    BEP_EMIT32(c->batches);
    for (l = 0; l < BEP_MAX_LAYERS; l += 2u) BEP_EMIT32((uint32_t)hd->gamma[l] | ((uint32_t)hd->gamma[l + 1u] << 16));
    for (l = 0; l < BEP_MAX_LAYERS; ++l) BEP_EMIT32(hd->q[l]);
    BEP_EMIT32(s->epoch);
    BEP_EMIT32(s->level);
    BEP_EMIT32(s->stalled);
    BEP_EMIT32(s->best_errors);
    BEP_EMIT32(s->best_samples);
    BEP_EMIT32(s->start_errors);
    BEP_EMIT32(s->start_samples);
    BEP_EMIT32(generation);
    BEP_EMIT32(s->budget_epochs);
    BEP_EMIT32(s->marked_epoch);
    BEP_EMIT32(s->marked_errors);
    BEP_EMIT32(hd->n_classes_in_use);
#undef BEP_EMIT32
    return BEP_OK;
}

/* The hidden weights and their padding, after the header (32 bytes at a time: this frame is
 * under the deepest call of a store's save, down to its flash driver). */
static BEP_NOINLINE bep_status_t bep_snapshot_body(const bep_config_t *cfg, const void *state, size_t state_len,
                                                   bep_emit_t *e)
{
    static const uint8_t zeros[3] = {0u, 0u, 0u};
    uint8_t chunk[32];
    uint32_t l, done, m;
    bep_status_t st;
    for (l = 0; l < cfg->n_layers; ++l) {
        uint32_t n = bep_hidden_bytes(cfg, l);
        for (done = 0; done < n; done += m) {
            m = n - done < sizeof chunk ? n - done : (uint32_t)sizeof chunk;
            st = bep_read_hidden_bytes(cfg, state, state_len, l, done, chunk, m);
            if (st != BEP_OK) return st;
            if (cfg->hidden_bits == 16u && bep_big_endian()) bep_swap16(chunk, m);
            st = bep_emit(e, chunk, m);
            if (st != BEP_OK) return st;
        }
        st = bep_emit(e, zeros, bep_pad4(n) - n);
        if (st != BEP_OK) return st;
    }
    return BEP_OK;
}

/* The followed input thresholds, then their accumulators, eight values at a time. */
static BEP_NOINLINE bep_status_t bep_snapshot_calib(const bep_calib_config_t *cal, const void *state, bep_emit_t *e)
{
    uint8_t chunk[32];
    uint32_t i, n = 0u;
    int32_t v[2];
    bep_status_t st;
    for (i = 0; i < 2u * cal->count; ++i) {
        uint32_t second = i >= cal->count;
        bep_calib_entry(cal, state, second ? i - cal->count : i, &v[0], &v[1]);
        bep_put32(chunk + n, (uint32_t)v[second]);
        n += 4u;
        if (n == sizeof chunk || i + 1u == 2u * cal->count) {
            st = bep_emit(e, chunk, n);
            if (st != BEP_OK) return st;
            n = 0u;
        }
    }
    return BEP_OK;
}

/* bep_valid in its own frame, for callers on a save's deepest call. */
static BEP_NOINLINE bep_status_t bep_check_state(const bep_config_t *cfg, const bep_schedule_config_t *sc,
                                                 const void *state, size_t state_len)
{
    bep_counters_t c;
    return bep_valid(cfg, sc, state, state_len, &c);
}

bep_status_t bep_snapshot_to(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                             size_t state_len, uint32_t generation, bep_snapshot_write_fn write, void *ctx)
{
    bep_emit_t e;
    bep_status_t st = bep_check_state(cfg, sc, state, state_len);
    if (st != BEP_OK) return st;
    if (write == NULL) return BEP_ERR_NULL;
    if (((const bep_state_header_t *)state)->batch_triggered != 0u) return BEP_ERR_BATCH_OPEN;
    e.write = write;
    e.ctx = ctx;
    e.offset = e.crc = 0u;
    st = bep_snapshot_head(cfg, sc, state, generation, &e);
    if (st == BEP_OK) st = bep_snapshot_body(cfg, state, state_len, &e);
    if (st == BEP_OK && bep_followed(sc) != NULL) st = bep_snapshot_calib(bep_followed(sc), state, &e);
    if (st != BEP_OK) return st;
    return bep_emit32(&e, e.crc);
}

/* A snapshot held in a buffer, as a source or a sink. */
typedef struct {
    uint8_t *out;
    const uint8_t *in;
} bep_buffer_t;

static int bep_buffer_write(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    uint8_t *dst = ((bep_buffer_t *)ctx)->out + offset;
    uint32_t k;
    for (k = 0; k < n; ++k) dst[k] = src[k];
    return 0;
}

static int bep_buffer_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    const uint8_t *src = ((const bep_buffer_t *)ctx)->in + offset;
    uint32_t k;
    for (k = 0; k < n; ++k) dst[k] = src[k];
    return 0;
}

bep_status_t bep_snapshot(const bep_config_t *cfg, const bep_schedule_config_t *sc, const void *state,
                          size_t state_len, void *buf, size_t buf_len)
{
    bep_buffer_t b;
    if (sc == NULL) return BEP_ERR_NULL;
    if (buf == NULL) return BEP_ERR_NULL;
    if (buf_len < sc->snapshot_bytes) return BEP_ERR_SIZE;
    b.out = (uint8_t *)buf;
    b.in = NULL;
    return bep_snapshot_to(cfg, sc, state, state_len, 0u, bep_buffer_write, &b);
}

/* The schedule state of a snapshot must be one the runtime keeps: a level within the Q
 * table, fewer stalled epochs than the patience, no more errors than samples in the best
 * epoch, and since the open epoch's marks fewer than BEP_EPOCH_MAX_SAMPLES samples and no
 * more errors than samples (modulo 2^32, as bep_end_epoch takes them; bep_runtime.h). A
 * snapshot whose CRC is right but whose schedule is not is refused as corrupt: restored, it
 * would have indexed past the Q table. The budget's mark likewise: none (all three 0) before
 * the first epoch closed, then an epoch from 1 to the count and an error count of one epoch
 * (below BEP_EPOCH_MAX_SAMPLES); restored otherwise, the budget would stop at a wrong epoch. */
static bep_status_t bep_check_schedule(const bep_schedule_config_t *sc, const uint8_t *in)
{
    const uint8_t *s = in + SNAP_SCHEDULE;
    uint32_t level = bep_get32(s + 4), stalled = bep_get32(s + 8);
    uint32_t best_errors = bep_get32(s + 12), best_samples = bep_get32(s + 16);
    uint32_t errors = bep_get32(in + SNAP_COUNTERS + 8) - bep_get32(s + 20);
    uint32_t samples = bep_get32(in + SNAP_COUNTERS) - bep_get32(s + 24);
    uint32_t epochs = bep_get32(in + SNAP_BUDGET), marked = bep_get32(in + SNAP_BUDGET + 4);
    uint32_t marked_errors = bep_get32(in + SNAP_BUDGET + 8);
    if (level > sc->levels || stalled >= sc->patience || best_errors > best_samples ||
        samples >= BEP_EPOCH_MAX_SAMPLES || errors > samples)
        return BEP_ERR_CORRUPT;
    if (epochs == 0u ? (marked != 0u || marked_errors != 0u)
                     : (marked < 1u || marked > epochs || marked_errors >= BEP_EPOCH_MAX_SAMPLES))
        return BEP_ERR_CORRUPT;
    return BEP_OK;
}

/* A snapshot of this network's layout: magic, version and length (another network's
 * length: BEP_ERR_FOREIGN, when its hash says so). */
static bep_status_t bep_check_frame(const bep_config_t *cfg, const bep_schedule_config_t *sc, const uint8_t *in)
{
    if (bep_get32(in + SNAP_MAGIC) != BEP_SNAPSHOT_MAGIC || bep_get32(in + SNAP_VERSION) != BEP_SNAPSHOT_VERSION)
        return BEP_ERR_CORRUPT;
    if (bep_get32(in + SNAP_BYTES) != sc->snapshot_bytes) /* another network, or a damaged length */
        return bep_get32(in + SNAP_HASH) != cfg->config_hash ? BEP_ERR_FOREIGN : BEP_ERR_CORRUPT;
    return BEP_OK;
}

/* What a whole (CRC-checked) snapshot's header says: this network, γ and Q in range (as
 * bep_set_epoch takes them: γ 0 is a layer frozen by `adapt --layers last`, which a board
 * saves like any other state), classes in use within the classifier's table (the classifier
 * reads that many of its rows), a schedule the runtime could have kept. */
static bep_status_t bep_check_contents(const bep_config_t *cfg, const bep_schedule_config_t *sc, const uint8_t *in)
{
    uint32_t l, classes = bep_get32(in + SNAP_CLASSES);
    if (bep_get32(in + SNAP_HASH) != cfg->config_hash) return BEP_ERR_FOREIGN;
    if (classes < 1u || classes > cfg->max_classes) return BEP_ERR_CORRUPT;
    for (l = 0; l < BEP_MAX_LAYERS; ++l) {
        uint32_t g = (uint32_t)in[SNAP_GAMMA + 2u * l] | ((uint32_t)in[SNAP_GAMMA + 2u * l + 1u] << 8);
        uint32_t q = bep_get32(in + SNAP_Q + 4u * l);
        if (l < cfg->n_layers ? (g > cfg->layer[l].rows || q > 0xFFFFFFFFu - 0xFFFFu) : (g != 0u || q != 0u))
            return BEP_ERR_CORRUPT;
    }
    return bep_check_schedule(sc, in);
}

/* The followed input thresholds of a (CRC-checked) snapshot: each within the input type and
 * not below the one before it in its feature, each accumulator strictly within ±window of its
 * feature; restored otherwise, a threshold could not be stored or an accumulator would
 * overflow (bep_calibrate.c). Read value by value: the snapshot may be in flash. */
static BEP_NOINLINE bep_status_t bep_check_calib(const bep_config_t *cfg, const bep_calib_config_t *cal,
                                                 bep_snapshot_read_fn read, void *ctx)
{
    uint8_t b[4];
    uint32_t off = bep_calib_offset(cfg), f, k, j = 0u;
    for (f = 0; f < cal->encoder->features; ++f) {
        uint32_t kept = bep_encode_kept(cal->encoder, f);
        int32_t prev = cal->lo, t, a;
        for (k = 0; k < kept && j < cal->count; ++k, ++j) {
            if (read(ctx, off + 4u * j, b, 4u) != 0) return BEP_ERR_FLASH;
            t = bep_i32(bep_get32(b));
            if (read(ctx, off + 4u * (cal->count + j), b, 4u) != 0) return BEP_ERR_FLASH;
            a = bep_i32(bep_get32(b));
            if (t < prev || t > cal->hi || a <= -cal->window[f] || a >= cal->window[f]) return BEP_ERR_CORRUPT;
            prev = t;
        }
    }
    return BEP_OK;
}

/* 1 if the CRC of the snapshot's first `bytes` - 4 bytes equals its last 4, 0 if not, -1
 * if the source failed (read in pieces: the snapshot may be in flash). */
static BEP_NOINLINE int bep_crc_matches(bep_snapshot_read_fn read, void *ctx, uint32_t bytes)
{
    uint8_t chunk[64];
    uint32_t crc = 0u, done, m;
    for (done = 0; done + 4u < bytes; done += m) {
        m = bytes - 4u - done < sizeof chunk ? bytes - 4u - done : (uint32_t)sizeof chunk;
        if (read(ctx, done, chunk, m) != 0) return -1;
        crc = bep_crc32(crc, chunk, m);
    }
    if (read(ctx, bytes - 4u, chunk, 4u) != 0) return -1;
    return crc == bep_get32(chunk) ? 1 : 0;
}

/* The frame of the snapshot a source gives (bep_check_frame reads its first 16 bytes), in a
 * frame of its own: no header buffer is on the stack while the CRC is computed. */
static BEP_NOINLINE bep_status_t bep_read_frame(const bep_config_t *cfg, const bep_schedule_config_t *sc,
                                                bep_snapshot_read_fn read, void *ctx)
{
    uint8_t head[16];
    if (read(ctx, 0u, head, sizeof head) != 0) return BEP_ERR_FLASH;
    return bep_check_frame(cfg, sc, head);
}

/* The contents of a CRC-checked snapshot's header (bep_check_contents), and its generation. */
static BEP_NOINLINE bep_status_t bep_read_contents(const bep_config_t *cfg, const bep_schedule_config_t *sc,
                                                   bep_snapshot_read_fn read, void *ctx, uint32_t *generation)
{
    uint8_t head[BEP_SNAPSHOT_HEADER_BYTES];
    if (read(ctx, 0u, head, BEP_SNAPSHOT_HEADER_BYTES) != 0) return BEP_ERR_FLASH;
    *generation = bep_get32(head + SNAP_GENERATION);
    return bep_check_contents(cfg, sc, head);
}

bep_status_t bep_snapshot_check(const bep_config_t *cfg, const bep_schedule_config_t *sc, bep_snapshot_read_fn read,
                                void *ctx, size_t available, uint32_t *generation)
{
    bep_status_t st;
    uint32_t gen;
    int crc;
    if (cfg == NULL || sc == NULL || read == NULL) return BEP_ERR_NULL;
    if (available < BEP_SNAPSHOT_HEADER_BYTES) return BEP_ERR_SIZE;
    st = bep_read_frame(cfg, sc, read, ctx);
    if (st != BEP_OK) return st;
    if (available < sc->snapshot_bytes) return BEP_ERR_SIZE;
    crc = bep_crc_matches(read, ctx, sc->snapshot_bytes);
    if (crc < 0) return BEP_ERR_FLASH;
    if (crc == 0) return BEP_ERR_CORRUPT;
    st = bep_read_contents(cfg, sc, read, ctx, &gen);
    if (st == BEP_OK && bep_followed(sc) != NULL) st = bep_check_calib(cfg, bep_followed(sc), read, ctx);
    if (st == BEP_OK && generation != NULL) *generation = gen;
    return st;
}

/* The hidden weights of a checked snapshot into the state, through a small copy (the
 * file is little-endian); apart from bep_restore_from so that its buffer is not on the
 * stack while bep_init and the repacking run (the micro:bit has 1 KB of stack). */
static BEP_NOINLINE bep_status_t bep_restore_hidden(const bep_config_t *cfg, void *state, size_t state_len,
                                                    bep_snapshot_read_fn read, void *ctx)
{
    uint8_t chunk[64];
    uint32_t off = BEP_SNAPSHOT_HEADER_BYTES, done, m, l;
    bep_status_t st;
    for (l = 0; l < cfg->n_layers; ++l) {
        uint32_t n = bep_hidden_bytes(cfg, l);
        for (done = 0; done < n; done += m) {
            m = n - done < sizeof chunk ? n - done : (uint32_t)sizeof chunk;
            if (read(ctx, off + done, chunk, m) != 0) return BEP_ERR_FLASH;
            if (cfg->hidden_bits == 16u && bep_big_endian()) bep_swap16(chunk, m);
            st = bep_write_hidden_bytes(cfg, state, state_len, l, done, chunk, m);
            if (st != BEP_OK) return st;
        }
        off += bep_pad4(n);
    }
    return BEP_OK;
}

/* The header's counters, γ, Q and schedule into a state whose weights are restored (its
 * own copy of the header: none is on the stack while the weights are restored). */
static BEP_NOINLINE bep_status_t bep_restore_header(const bep_config_t *cfg, void *state, size_t state_len,
                                                    bep_snapshot_read_fn read, void *ctx)
{
    uint8_t in[BEP_SNAPSHOT_HEADER_BYTES];
    bep_state_header_t *hd = (bep_state_header_t *)state;
    bep_schedule_state_t *s = bep_sched(state, cfg);
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS], l;
    bep_status_t st;
    if (read(ctx, 0u, in, BEP_SNAPSHOT_HEADER_BYTES) != 0) return BEP_ERR_FLASH;
    for (l = 0; l < cfg->n_layers; ++l) {
        gamma[l] = (uint16_t)((uint32_t)in[SNAP_GAMMA + 2u * l] | ((uint32_t)in[SNAP_GAMMA + 2u * l + 1u] << 8));
        q[l] = bep_get32(in + SNAP_Q + 4u * l);
    }
    st = bep_set_epoch(cfg, state, state_len, gamma, cfg->n_layers, q, cfg->n_layers);
    if (st != BEP_OK) return st;
    hd->counters.samples = bep_get32(in + SNAP_COUNTERS);
    hd->counters.triggered = bep_get32(in + SNAP_COUNTERS + 4);
    hd->counters.errors = bep_get32(in + SNAP_COUNTERS + 8);
    hd->counters.updates = bep_get32(in + SNAP_COUNTERS + 12);
    hd->n_classes_in_use = bep_get32(in + SNAP_CLASSES);
    s->magic = cfg->config_hash;
    s->epoch = bep_get32(in + SNAP_SCHEDULE);
    s->level = bep_get32(in + SNAP_SCHEDULE + 4);
    s->stalled = bep_get32(in + SNAP_SCHEDULE + 8);
    s->best_errors = bep_get32(in + SNAP_SCHEDULE + 12);
    s->best_samples = bep_get32(in + SNAP_SCHEDULE + 16);
    s->start_errors = bep_get32(in + SNAP_SCHEDULE + 20);
    s->start_samples = bep_get32(in + SNAP_SCHEDULE + 24);
    s->budget_epochs = bep_get32(in + SNAP_BUDGET);
    s->marked_epoch = bep_get32(in + SNAP_BUDGET + 4);
    s->marked_errors = bep_get32(in + SNAP_BUDGET + 8);
    return BEP_OK;
}

/* The followed input thresholds and accumulators of a checked snapshot into the state. */
static BEP_NOINLINE bep_status_t bep_restore_calib(const bep_config_t *cfg, const bep_calib_config_t *cal, void *state,
                                                   bep_snapshot_read_fn read, void *ctx)
{
    uint8_t t[4], a[4];
    uint32_t off = bep_calib_offset(cfg), k;
    for (k = 0; k < cal->count; ++k) {
        if (read(ctx, off + 4u * k, t, 4u) != 0 || read(ctx, off + 4u * (cal->count + k), a, 4u) != 0)
            return BEP_ERR_FLASH;
        bep_calib_put(cal, state, k, bep_i32(bep_get32(t)), bep_i32(bep_get32(a)));
    }
    return BEP_OK;
}

bep_status_t bep_restore_from(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state,
                              size_t state_len, bep_snapshot_read_fn read, void *ctx, size_t available)
{
    uint8_t seed[4], batches[4];
    uint32_t l;
    bep_status_t st;
    if (state == NULL) return BEP_ERR_NULL;
    st = bep_snapshot_check(cfg, sc, read, ctx, available, NULL);
    if (st != BEP_OK) return st; /* refused: the state is untouched */
    if (read(ctx, SNAP_SEED, seed, 4u) != 0 || read(ctx, SNAP_COUNTERS + 16, batches, 4u) != 0) return BEP_ERR_FLASH;
    st = bep_init(cfg, state, state_len, bep_get32(seed), bep_get32(batches));
    if (st != BEP_OK) return st;
    st = bep_restore_hidden(cfg, state, state_len, read, ctx);
    for (l = 0; st == BEP_OK && l < cfg->n_layers; ++l) st = bep_repack_layer(cfg, state, state_len, l);
    if (st == BEP_OK) st = bep_restore_header(cfg, state, state_len, read, ctx);
    if (st == BEP_OK && bep_followed(sc) != NULL) st = bep_restore_calib(cfg, bep_followed(sc), state, read, ctx);
    return st;
}

bep_status_t bep_restore(const bep_config_t *cfg, const bep_schedule_config_t *sc, void *state, size_t state_len,
                         const void *buf, size_t buf_len)
{
    bep_buffer_t b;
    if (buf == NULL) return BEP_ERR_NULL;
    b.out = NULL;
    b.in = (const uint8_t *)buf;
    return bep_restore_from(cfg, sc, state, state_len, bep_buffer_read, &b, buf_len);
}
