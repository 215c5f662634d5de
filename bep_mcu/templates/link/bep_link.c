/*
 * bep_link.c - the board side of the bep-mcu serial protocol (see bep_link.h and
 * docs/protocol.md for the contract).
 *
 * Receive path: bytes -> incremental COBS decoder (bounded by BEP_LINK_FRAME_MAX) ->
 * on 0x00: length, CRC, len field, type -> exactly-once cache -> a handler that first
 * validates every field and only then calls the runtime and builds its reply.
 * Replies are built, sealed (header, CRC) and COBS-encoded in place inside `tx`, which
 * then doubles as the cache of the last reply; error replies use their own small
 * buffer so they never disturb that cache.
 */
#include "bep_link.h"

#define BEP_LINK_RX_STARTED 1u   /* bytes arrived since the last 0x00 */
#define BEP_LINK_RX_ZERO 2u      /* the block just ended implies a 0x00 if another block follows */
#define BEP_LINK_RX_OVERSIZED 4u /* too long: discard until the next 0x00 */

/* The decoded reply is built this far into tx so it can be COBS-encoded in place to
 * tx + 1: the encoder's write position never passes its read position as long as the
 * offset covers one code byte per started 254-byte block (see bep_cobs_encode). */
#define BEP_LINK_TX_DATA_OFF (2u + BEP_LINK_FRAME_MAX / BEP_PROTO_COBS_BLOCK)
#define BEP_LINK_ERR_DATA_OFF (2u + BEP_LINK_ERR_FRAME / BEP_PROTO_COBS_BLOCK)
#define BEP_LINK_PAYLOAD_OFF (BEP_LINK_TX_DATA_OFF + BEP_PROTO_HEADER_BYTES)

/* The host's planner (bep_mcu/cgen/protocol.py link_bytes) and the compiler agree. */
typedef char bep_link_size_check[(sizeof(bep_link_t) == BEP_LINK_BYTES) ? 1 : -1];
typedef char bep_link_tx_check[(BEP_LINK_TX_DATA_OFF + BEP_LINK_FRAME_MAX <= BEP_LINK_TX_BYTES &&
                                BEP_LINK_ERR_DATA_OFF + BEP_LINK_ERR_FRAME <= BEP_LINK_ERR_BYTES &&
                                4u * BEP_LINK_RX_WORDS >= BEP_LINK_FRAME_MAX) ? 1 : -1];
typedef char bep_link_hello_check[(BEP_PROTO_HELLO_FIXED_BYTES < BEP_PROTO_MIN_MAX_PAYLOAD) ? 1 : -1];
/* SET_EPOCH and READ_SCHEDULE's reply, four layers included, fit the smallest payload. */
typedef char bep_link_schedule_check[(BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_EPOCH_RECORD_BYTES +
                                      6u * BEP_MAX_LAYERS <= BEP_PROTO_MIN_MAX_PAYLOAD) ? 1 : -1];

/* ------------------------------------------------------------------ bytes */

static uint32_t bep_rd16(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8); }

static uint32_t bep_rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static void bep_wr16(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
}

static void bep_wr32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

/* CRC-32/IEEE, as Python's zlib.crc32; a 64-byte table, two lookups a byte. */
static uint32_t bep_crc32(const uint8_t *p, uint32_t n)
{
    static const uint32_t table[16] = BEP_PROTO_CRC32_NIBBLES;
    uint32_t crc = 0xFFFFFFFFu, i;
    for (i = 0; i < n; ++i) {
        crc ^= p[i];
        crc = (crc >> 4) ^ table[crc & 15u];
        crc = (crc >> 4) ^ table[crc & 15u];
    }
    return ~crc;
}

/* COBS-encode n bytes of src into dst; returns the encoded length (at most
 * n + n / 254 + 1). src may lie inside dst's output range at offset >= 1 + n / 254:
 * before byte i is read, at most 1 + i + i / 254 bytes have been written. */
static uint32_t bep_cobs_encode(const uint8_t *src, uint32_t n, uint8_t *dst)
{
    uint32_t out = 1u, code_at = 0u, i;
    uint8_t code = 1u;
    for (i = 0; i < n; ++i) {
        uint8_t b = src[i];
        if (b != 0u) {
            dst[out++] = b;
            ++code;
        }
        if (b == 0u || code == 0xFFu) {
            dst[code_at] = code;
            code_at = out++;
            code = 1u;
        }
    }
    dst[code_at] = code;
    return out;
}

/* Header and CRC around the payload built at buf + data_off, then COBS to buf + 1 with a
 * 0x00 on each side. Returns the bytes to send. */
static uint32_t bep_link_seal(uint8_t *buf, uint32_t data_off, uint32_t type, uint32_t seq, uint32_t payload_len)
{
    uint8_t *frame = buf + data_off;
    uint32_t n = BEP_PROTO_HEADER_BYTES + payload_len, enc;
    frame[BEP_PROTO_HEADER_TYPE_OFF] = (uint8_t)type;
    bep_wr16(frame + BEP_PROTO_HEADER_SEQ_OFF, seq);
    bep_wr16(frame + BEP_PROTO_HEADER_LEN_OFF, payload_len);
    bep_wr32(frame + n, bep_crc32(frame, n));
    enc = bep_cobs_encode(frame, n + BEP_PROTO_CRC_BYTES, buf + 1);
    buf[0] = 0u;
    buf[1u + enc] = 0u;
    return enc + 2u;
}

static void bep_link_send(const bep_link_t *link, const uint8_t *data, uint32_t n)
{
    if (link->write != NULL) link->write(link->ctx, data, n);
}

/* An error reply (never cached: it changes nothing, so a repeat gets the same answer). */
static void bep_link_error(bep_link_t *link, uint32_t seq, int code, uint32_t request_type)
{
    uint8_t *p = link->err + BEP_LINK_ERR_DATA_OFF + BEP_PROTO_HEADER_BYTES;
    bep_wr32(p + BEP_PROTO_ERROR_REPLY_SESSION_OFF, link->session);
    p[BEP_PROTO_ERROR_REPLY_CODE_OFF] = (uint8_t)((unsigned)code & 0xFFu);
    p[BEP_PROTO_ERROR_REPLY_REQUEST_TYPE_OFF] = (uint8_t)request_type;
    bep_link_send(link, link->err,
                  bep_link_seal(link->err, BEP_LINK_ERR_DATA_OFF, BEP_MSG_ERROR, seq, BEP_PROTO_ERROR_REPLY_BYTES));
}

/* ------------------------------------------------------------------ handlers
 *
 * Each handler gets the request payload `p` of `len` bytes. It returns a negative
 * bep_proto_err_t without having touched anything, or the length of the reply payload
 * it built at link->tx + BEP_LINK_PAYLOAD_OFF after running the request. A handler calls
 * bep_link_out() (which drops the cached reply) only once every field is valid.
 */

static uint8_t *bep_link_out(bep_link_t *link)
{
    link->tx_len = 0u;
    return link->tx + BEP_LINK_PAYLOAD_OFF;
}

/* session + status: the whole reply of most requests, and of any request whose status is not BEP_OK. */
static uint32_t bep_link_status(bep_link_t *link, uint8_t *out, bep_status_t status)
{
    bep_wr32(out + BEP_PROTO_STATUS_REPLY_SESSION_OFF, link->session);
    out[BEP_PROTO_STATUS_REPLY_STATUS_OFF] = (uint8_t)((unsigned)status & 0xFFu);
    return BEP_PROTO_STATUS_REPLY_BYTES;
}

/* The n little-endian u32 at byte `off` of the request as aligned native words: converted
 * in place and moved down to a word boundary (reads stay ahead of writes). */
static const uint32_t *bep_link_words(bep_link_t *link, uint32_t off, uint32_t n)
{
    const uint8_t *b = (const uint8_t *)link->rx;
    uint32_t dst = off / 4u, k;
    for (k = 0; k < n; ++k) link->rx[dst + k] = bep_rd32(b + off + 4u * k);
    return link->rx + dst;
}

static int32_t bep_link_hello(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    const bep_config_t *cfg = link->cfg;
    const bep_board_info_t *info = link->info;
    const char *board = info != NULL ? info->board : NULL;
    uint32_t board_len = 0u, limit = BEP_LINK_MAX_PAYLOAD - BEP_PROTO_HELLO_FIXED_BYTES, k;
    uint16_t in_use;
    uint8_t *out, *h;
    if (len != BEP_PROTO_HELLO_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    if (limit > 255u) limit = 255u;
    while (board != NULL && board_len < limit && board[board_len] != '\0') ++board_len;
    link->session = bep_rd32(p + BEP_PROTO_HELLO_REQ_SESSION_OFF);
    out = bep_link_out(link);
    bep_wr32(out + BEP_PROTO_REPLY_HEAD_SESSION_OFF, link->session);
    h = out + BEP_PROTO_REPLY_HEAD_BYTES;
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_PROTO_VERSION_OFF, BEP_PROTO_VERSION);
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_FW_VERSION_OFF, info != NULL ? info->fw_version : 0u);
    bep_wr32(h + BEP_PROTO_HELLO_REPLY_CONFIG_HASH_OFF, cfg->config_hash);
    bep_wr32(h + BEP_PROTO_HELLO_REPLY_STATE_BYTES_OFF, cfg->state_bytes);
    bep_wr32(h + BEP_PROTO_HELLO_REPLY_RAM_BYTES_OFF, info != NULL ? info->ram_bytes : 0u);
    bep_wr32(h + BEP_PROTO_HELLO_REPLY_FLASH_BYTES_OFF, info != NULL ? info->flash_bytes : 0u);
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_MAX_PAYLOAD_OFF, BEP_LINK_MAX_PAYLOAD);
    h[BEP_PROTO_HELLO_REPLY_N_LAYERS_OFF] = cfg->n_layers;
    h[BEP_PROTO_HELLO_REPLY_HIDDEN_BITS_OFF] = cfg->hidden_bits;
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_N_CLASSES_OFF, cfg->n_classes);
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_MAX_CLASSES_OFF, cfg->max_classes);
    /* The classes in use are the state's (0: not initialised): the config hash covers every
     * prototype, so the host compares the classes of its model with these. */
    if (bep_read_classes(cfg, link->state, link->state_len, &in_use) != BEP_OK) in_use = 0u;
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_CLASSES_IN_USE_OFF, in_use);
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_INPUT_WORDS_OFF, cfg->input_words);
    bep_wr16(h + BEP_PROTO_HELLO_REPLY_STEPS_OFF, cfg->steps);
    h[BEP_PROTO_HELLO_REPLY_BOARD_LEN_OFF] = (uint8_t)board_len;
    for (k = 0; k < board_len; ++k) out[BEP_PROTO_HELLO_FIXED_BYTES + k] = (uint8_t)board[k];
    return (int32_t)(BEP_PROTO_HELLO_FIXED_BYTES + board_len);
}

static int32_t bep_link_init_req(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    bep_status_t st;
    if (len != BEP_PROTO_INIT_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    st = bep_init(link->cfg, link->state, link->state_len, bep_rd32(p + BEP_PROTO_INIT_REQ_SEED_OFF),
                  bep_rd32(p + BEP_PROTO_INIT_REQ_BATCHES_OFF));
    return (int32_t)bep_link_status(link, bep_link_out(link), st);
}

/* Bytes of hidden weights of `layer`, or 0 when there is no such layer. */
static uint32_t bep_link_layer_bytes(const bep_config_t *cfg, uint32_t layer)
{
    if (layer >= cfg->n_layers || layer >= BEP_MAX_LAYERS) return 0u;
    return cfg->layer[layer].n_weights * (cfg->hidden_bits / 8u);
}

/* A byte range of a layer's hidden weights: inside the layer and, for 16-bit weights,
 * whole weights only. */
static int bep_link_span_ok(const bep_config_t *cfg, uint32_t layer, uint32_t offset, uint32_t n)
{
    uint32_t total = bep_link_layer_bytes(cfg, layer);
    if (total == 0u || offset > total || n > total - offset) return 0;
    if (cfg->hidden_bits == 16u && ((offset | n) & 1u) != 0u) return 0;
    return 1;
}

static int32_t bep_link_load_hidden(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    uint32_t layer, last, offset, n;
    bep_status_t st;
    if (len < BEP_PROTO_LOAD_HIDDEN_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    layer = p[BEP_PROTO_LOAD_HIDDEN_REQ_LAYER_OFF];
    last = p[BEP_PROTO_LOAD_HIDDEN_REQ_LAST_OFF];
    offset = bep_rd32(p + BEP_PROTO_LOAD_HIDDEN_REQ_OFFSET_OFF);
    n = len - BEP_PROTO_LOAD_HIDDEN_REQ_BYTES;
    if (last > 1u || !bep_link_span_ok(link->cfg, layer, offset, n)) return BEP_PROTO_ERR_BAD_PAYLOAD;
    st = bep_write_hidden_bytes(link->cfg, link->state, link->state_len, layer, offset,
                                p + BEP_PROTO_LOAD_HIDDEN_REQ_BYTES, n);
    if (st == BEP_OK && last != 0u) st = bep_repack_layer(link->cfg, link->state, link->state_len, layer);
    return (int32_t)bep_link_status(link, bep_link_out(link), st);
}

static int32_t bep_link_read_hidden(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    uint32_t layer, offset, n;
    uint8_t *out;
    bep_status_t st;
    if (len != BEP_PROTO_READ_HIDDEN_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    layer = p[BEP_PROTO_READ_HIDDEN_REQ_LAYER_OFF];
    offset = bep_rd32(p + BEP_PROTO_READ_HIDDEN_REQ_OFFSET_OFF);
    n = bep_rd16(p + BEP_PROTO_READ_HIDDEN_REQ_LENGTH_OFF);
    if (n > BEP_LINK_MAX_PAYLOAD - BEP_PROTO_STATUS_REPLY_BYTES || !bep_link_span_ok(link->cfg, layer, offset, n))
        return BEP_PROTO_ERR_BAD_PAYLOAD;
    out = bep_link_out(link);
    st = bep_read_hidden_bytes(link->cfg, link->state, link->state_len, layer, offset,
                               out + BEP_PROTO_STATUS_REPLY_BYTES, n);
    return (int32_t)(bep_link_status(link, out, st) + (st == BEP_OK ? n : 0u));
}

/* The epoch schedule's state inside the network's state buffer (bep_runtime.h). */
static bep_schedule_state_t *bep_link_schedule(const bep_link_t *link)
{
    return (bep_schedule_state_t *)(void *)((uint8_t *)link->state + link->cfg->schedule_off);
}

/* SET_EPOCH: the epoch record (where the host's schedule stands), then γ and Q. The board keeps
 * the record in the state's schedule area, the way its own schedule would (bep_standalone.c), so
 * that a host that dies mid-epoch can read it back (READ_SCHEDULE) and continue exactly there. */
static int32_t bep_link_set_epoch(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    const bep_config_t *cfg = link->cfg;
    const uint8_t *v = p + BEP_PROTO_EPOCH_RECORD_BYTES;
    uint16_t gamma[BEP_MAX_LAYERS];
    uint32_t q[BEP_MAX_LAYERS], l, n_layers = cfg->n_layers;
    uint32_t level, stalled, best_errors, best_samples, samples, errors;
    bep_counters_t c;
    bep_schedule_state_t *s;
    bep_status_t st;
    if (n_layers > BEP_MAX_LAYERS) return BEP_PROTO_ERR_BAD_PAYLOAD;
    if (len != BEP_PROTO_EPOCH_RECORD_BYTES + n_layers * 6u) return BEP_PROTO_ERR_BAD_LENGTH;
    level = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_LEVEL_OFF);
    stalled = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_STALLED_OFF);
    best_errors = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_BEST_ERRORS_OFF);
    best_samples = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_BEST_SAMPLES_OFF);
    samples = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_SAMPLES_OFF);
    errors = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_ERRORS_OFF);
    /* A record the runtime could keep (bep_runtime.h, bep_schedule_state_t): its level indexes a Q table. */
    if (level > BEP_PROTO_MAX_LEVEL || stalled > BEP_PROTO_MAX_STALLED || best_errors > best_samples ||
        samples >= BEP_EPOCH_MAX_SAMPLES || errors > samples)
        return BEP_PROTO_ERR_BAD_PAYLOAD;
    for (l = 0; l < n_layers; ++l) {
        gamma[l] = (uint16_t)bep_rd16(v + 2u * l);
        q[l] = bep_rd32(v + 2u * n_layers + 4u * l);
    }
    /* γ and Q ranges are the runtime's to judge; it checks all of them before storing any, and the
     * record is stored only once they are. */
    st = bep_read_counters(cfg, link->state, link->state_len, &c);
    if (st == BEP_OK) st = bep_set_epoch(cfg, link->state, link->state_len, gamma, n_layers, q, n_layers);
    if (st == BEP_OK) {
        s = bep_link_schedule(link);
        s->magic = cfg->config_hash;
        s->epoch = bep_rd32(p + BEP_PROTO_EPOCH_RECORD_EPOCH_OFF);
        s->level = level;
        s->stalled = stalled;
        s->best_errors = best_errors;
        s->best_samples = best_samples;
        s->start_errors = c.errors - errors; /* modulo 2^32, as the counters wrap */
        s->start_samples = c.samples - samples;
    }
    return (int32_t)bep_link_status(link, bep_link_out(link), st);
}

/* READ_SCHEDULE: the record SET_EPOCH left, with the open epoch's samples and errors so far and
 * the γ and Q in use; BEP_ERR_STATE when no SET_EPOCH came since INIT. */
static int32_t bep_link_read_schedule(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    const bep_config_t *cfg = link->cfg;
    const bep_state_header_t *hd = (const bep_state_header_t *)link->state;
    const bep_schedule_state_t *s;
    uint32_t l, n_layers = cfg->n_layers;
    bep_counters_t c;
    uint8_t *out, *r, *v;
    bep_status_t st;
    (void)p;
    if (len != 0u) return BEP_PROTO_ERR_BAD_LENGTH;
    if (n_layers > BEP_MAX_LAYERS) return BEP_PROTO_ERR_BAD_PAYLOAD;
    st = bep_read_counters(cfg, link->state, link->state_len, &c); /* checks the state buffer first */
    if (st == BEP_OK && bep_link_schedule(link)->magic != cfg->config_hash) st = BEP_ERR_STATE;
    out = bep_link_out(link);
    bep_link_status(link, out, st);
    if (st != BEP_OK) return BEP_PROTO_STATUS_REPLY_BYTES;
    s = bep_link_schedule(link);
    r = out + BEP_PROTO_STATUS_REPLY_BYTES;
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_EPOCH_OFF, s->epoch);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_LEVEL_OFF, s->level);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_STALLED_OFF, s->stalled);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_BEST_ERRORS_OFF, s->best_errors);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_BEST_SAMPLES_OFF, s->best_samples);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_SAMPLES_OFF, c.samples - s->start_samples);
    bep_wr32(r + BEP_PROTO_EPOCH_RECORD_ERRORS_OFF, c.errors - s->start_errors);
    v = r + BEP_PROTO_EPOCH_RECORD_BYTES;
    for (l = 0; l < n_layers; ++l) {
        bep_wr16(v + 2u * l, hd->gamma[l]);
        bep_wr32(v + 2u * n_layers + 4u * l, hd->q[l]);
    }
    return (int32_t)(BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_EPOCH_RECORD_BYTES + 6u * n_layers);
}

/* TRAIN and EVAL: `fixed` bytes of header fields, then n samples and n labels. Checks the
 * length and every label; returns 0 or the error. */
static int32_t bep_link_check_samples(const bep_link_t *link, const uint8_t *p, uint32_t len, uint32_t fixed,
                                      uint32_t n)
{
    const bep_config_t *cfg = link->cfg;
    uint32_t per = 4u * cfg->input_words + 2u, rest = len - fixed, k;
    uint16_t classes;
    const uint8_t *labels;
    /* n, per <= rest < 65536 before multiplying, so n * per cannot wrap. */
    if (n != 0u && (per > rest || n > rest)) return BEP_PROTO_ERR_BAD_LENGTH;
    if (n * per != rest) return BEP_PROTO_ERR_BAD_LENGTH;
    if (BEP_PROTO_STATUS_REPLY_BYTES + 2u + 2u * n > BEP_LINK_MAX_PAYLOAD) return BEP_PROTO_ERR_BAD_PAYLOAD;
    /* A label must name a class in use; a state not initialised is refused by the runtime after. */
    if (bep_read_classes(cfg, link->state, link->state_len, &classes) != BEP_OK) classes = (uint16_t)cfg->max_classes;
    labels = p + fixed + 4u * cfg->input_words * n;
    for (k = 0; k < n; ++k) {
        if (bep_rd16(labels + 2u * k) >= classes) return BEP_PROTO_ERR_BAD_PAYLOAD;
    }
    return 0;
}

static int32_t bep_link_train(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    const bep_config_t *cfg = link->cfg;
    uint32_t n, end_batch, k, iw = cfg->input_words;
    const uint32_t *x;
    const uint8_t *labels;
    uint8_t *out, *pred;
    bep_status_t st = BEP_OK;
    int32_t bad;
    if (len < BEP_PROTO_TRAIN_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    n = bep_rd16(p + BEP_PROTO_TRAIN_REQ_N_OFF);
    end_batch = p[BEP_PROTO_TRAIN_REQ_END_BATCH_OFF];
    bad = bep_link_check_samples(link, p, len, BEP_PROTO_TRAIN_REQ_BYTES, n);
    if (bad != 0) return bad;
    if (end_batch > 1u) return BEP_PROTO_ERR_BAD_PAYLOAD;
    labels = p + BEP_PROTO_TRAIN_REQ_BYTES + 4u * iw * n;
    x = bep_link_words(link, BEP_PROTO_HEADER_BYTES + BEP_PROTO_TRAIN_REQ_BYTES, iw * n);
    out = bep_link_out(link);
    pred = out + BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_TRAIN_REPLY_BYTES;
    for (k = 0; k < n && st == BEP_OK; ++k) {
        uint16_t c = 0;
        st = bep_train_sample(cfg, link->state, link->state_len, x + k * iw, iw, (uint16_t)bep_rd16(labels + 2u * k),
                              &c);
        bep_wr16(pred + 2u * k, c);
    }
    if (st == BEP_OK && end_batch != 0u) st = bep_end_batch(cfg, link->state, link->state_len);
    bep_link_status(link, out, st);
    if (st != BEP_OK) return BEP_PROTO_STATUS_REPLY_BYTES;
    bep_wr16(out + BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_TRAIN_REPLY_N_OFF, n);
    return (int32_t)(BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_TRAIN_REPLY_BYTES + 2u * n);
}

static int32_t bep_link_eval(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    const bep_config_t *cfg = link->cfg;
    uint32_t n, k, correct = 0u, iw = cfg->input_words;
    const uint32_t *x;
    const uint8_t *labels;
    uint8_t *out, *pred;
    bep_status_t st = BEP_OK;
    int32_t bad;
    if (len < BEP_PROTO_EVAL_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    n = bep_rd16(p + BEP_PROTO_EVAL_REQ_N_OFF);
    bad = bep_link_check_samples(link, p, len, BEP_PROTO_EVAL_REQ_BYTES, n);
    if (bad != 0) return bad;
    labels = p + BEP_PROTO_EVAL_REQ_BYTES + 4u * iw * n;
    x = bep_link_words(link, BEP_PROTO_HEADER_BYTES + BEP_PROTO_EVAL_REQ_BYTES, iw * n);
    out = bep_link_out(link);
    pred = out + BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_EVAL_REPLY_BYTES;
    for (k = 0; k < n && st == BEP_OK; ++k) {
        uint16_t c = 0;
        st = bep_infer(cfg, link->state, link->state_len, x + k * iw, iw, &c);
        correct += (uint32_t)(c == bep_rd16(labels + 2u * k));
        bep_wr16(pred + 2u * k, c);
    }
    bep_link_status(link, out, st);
    if (st != BEP_OK) return BEP_PROTO_STATUS_REPLY_BYTES;
    bep_wr16(out + BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_EVAL_REPLY_CORRECT_OFF, correct);
    return (int32_t)(BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_EVAL_REPLY_BYTES + 2u * n);
}

static int32_t bep_link_counters(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    bep_counters_t c;
    uint8_t *out, *body;
    bep_status_t st;
    (void)p;
    if (len != 0u) return BEP_PROTO_ERR_BAD_LENGTH;
    st = bep_read_counters(link->cfg, link->state, link->state_len, &c);
    out = bep_link_out(link);
    bep_link_status(link, out, st);
    if (st != BEP_OK) return BEP_PROTO_STATUS_REPLY_BYTES;
    body = out + BEP_PROTO_STATUS_REPLY_BYTES;
    bep_wr32(body + BEP_PROTO_COUNTERS_REPLY_SAMPLES_OFF, c.samples);
    bep_wr32(body + BEP_PROTO_COUNTERS_REPLY_TRIGGERED_OFF, c.triggered);
    bep_wr32(body + BEP_PROTO_COUNTERS_REPLY_ERRORS_OFF, c.errors);
    bep_wr32(body + BEP_PROTO_COUNTERS_REPLY_UPDATES_OFF, c.updates);
    bep_wr32(body + BEP_PROTO_COUNTERS_REPLY_BATCHES_OFF, c.batches);
    return (int32_t)(BEP_PROTO_STATUS_REPLY_BYTES + BEP_PROTO_COUNTERS_REPLY_BYTES);
}

static int32_t bep_link_reset_counters(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    (void)p;
    if (len != 0u) return BEP_PROTO_ERR_BAD_LENGTH;
    return (int32_t)bep_link_status(link, bep_link_out(link),
                                    bep_reset_counters(link->cfg, link->state, link->state_len));
}

/* SET_CLASSES: bep_set_classes (a class the firmware was built before takes a reserved prototype). */
static int32_t bep_link_set_classes(bep_link_t *link, const uint8_t *p, uint32_t len)
{
    if (len != BEP_PROTO_SET_CLASSES_REQ_BYTES) return BEP_PROTO_ERR_BAD_LENGTH;
    return (int32_t)bep_link_status(link, bep_link_out(link),
                                    bep_set_classes(link->cfg, link->state, link->state_len,
                                                    bep_rd16(p + BEP_PROTO_SET_CLASSES_REQ_N_OFF)));
}

/* Handlers by request type: a const table (flash) rather than a switch, which Thumb-1
 * compilers turn into calls to a libgcc jump-table helper. Positional rather than
 * designated ([BEP_MSG_HELLO] = ...), which C++ lacks, so the file also compiles as C++;
 * the typedef below pins every slot to its message type at compile time. */
typedef int32_t (*bep_link_handler_t)(bep_link_t *link, const uint8_t *p, uint32_t len);
static const bep_link_handler_t bep_link_handlers[BEP_PROTO_LAST_REQUEST + 1u] = {
    NULL,                    /* 0x00: no request */
    bep_link_hello,          /* BEP_MSG_HELLO */
    bep_link_init_req,       /* BEP_MSG_INIT */
    bep_link_load_hidden,    /* BEP_MSG_LOAD_HIDDEN */
    bep_link_read_hidden,    /* BEP_MSG_READ_HIDDEN */
    bep_link_set_epoch,      /* BEP_MSG_SET_EPOCH */
    bep_link_train,          /* BEP_MSG_TRAIN */
    bep_link_eval,           /* BEP_MSG_EVAL */
    bep_link_counters,       /* BEP_MSG_READ_COUNTERS */
    bep_link_reset_counters, /* BEP_MSG_RESET_COUNTERS */
    bep_link_read_schedule,  /* BEP_MSG_READ_SCHEDULE */
    bep_link_set_classes,    /* BEP_MSG_SET_CLASSES */
};
typedef char bep_link_handlers_in_type_order[(BEP_MSG_HELLO == 1 && BEP_MSG_INIT == 2 && BEP_MSG_LOAD_HIDDEN == 3 &&
                                              BEP_MSG_READ_HIDDEN == 4 && BEP_MSG_SET_EPOCH == 5 &&
                                              BEP_MSG_TRAIN == 6 && BEP_MSG_EVAL == 7 &&
                                              BEP_MSG_READ_COUNTERS == 8 && BEP_MSG_RESET_COUNTERS == 9 &&
                                              BEP_MSG_READ_SCHEDULE == 10 && BEP_MSG_SET_CLASSES == 11 &&
                                              BEP_PROTO_LAST_REQUEST == 11u) ? 1 : -1];

static int32_t bep_link_dispatch(bep_link_t *link, uint32_t type, const uint8_t *p, uint32_t len)
{
    bep_link_handler_t handler;
    if (type >= sizeof bep_link_handlers / sizeof bep_link_handlers[0]) return BEP_PROTO_ERR_UNKNOWN_TYPE;
    handler = bep_link_handlers[type];
    return handler != NULL ? handler(link, p, len) : (int32_t)BEP_PROTO_ERR_UNKNOWN_TYPE;
}

/* ------------------------------------------------------------------ frames */

/* A complete decoded frame of n bytes in link->rx. */
static void bep_link_frame(bep_link_t *link, uint32_t n)
{
    const uint8_t *f = (const uint8_t *)link->rx;
    uint32_t type, seq, len, crc;
    int32_t r;
    if (n < BEP_PROTO_HEADER_BYTES + BEP_PROTO_CRC_BYTES) {
        bep_link_error(link, BEP_PROTO_NO_SEQ, BEP_PROTO_ERR_BAD_LENGTH, n > 0u ? f[0] : 0u);
        return;
    }
    crc = bep_crc32(f, n - BEP_PROTO_CRC_BYTES);
    if (crc != bep_rd32(f + n - BEP_PROTO_CRC_BYTES)) {
        bep_link_error(link, BEP_PROTO_NO_SEQ, BEP_PROTO_ERR_BAD_CRC, f[0]);
        return;
    }
    type = f[BEP_PROTO_HEADER_TYPE_OFF];
    seq = bep_rd16(f + BEP_PROTO_HEADER_SEQ_OFF);
    len = bep_rd16(f + BEP_PROTO_HEADER_LEN_OFF);
    if (len != n - BEP_PROTO_HEADER_BYTES - BEP_PROTO_CRC_BYTES) {
        bep_link_error(link, seq, BEP_PROTO_ERR_BAD_LENGTH, type);
        return;
    }
    if (seq == BEP_PROTO_NO_SEQ) { /* reserved for error replies: never a request's */
        bep_link_error(link, seq, BEP_PROTO_ERR_BAD_PAYLOAD, type);
        return;
    }
    if (type != BEP_MSG_HELLO && link->tx_len != 0u && type == link->cached_type && seq == link->cached_seq &&
        crc == link->cached_crc) {
        bep_link_send(link, link->tx, link->tx_len); /* a repeat: answered, not processed again */
        return;
    }
    if (link->cfg == NULL) {
        bep_link_error(link, seq, BEP_PROTO_ERR_BAD_PAYLOAD, type);
        return;
    }
    r = bep_link_dispatch(link, type, f + BEP_PROTO_HEADER_BYTES, len);
    if (r < 0) {
        bep_link_error(link, seq, r, type);
        return;
    }
    link->tx_len = bep_link_seal(link->tx, BEP_LINK_TX_DATA_OFF, type | BEP_PROTO_REPLY_BIT, seq, (uint32_t)r);
    link->cached_type = (uint8_t)type;
    link->cached_seq = (uint16_t)seq;
    link->cached_crc = crc;
    bep_link_send(link, link->tx, link->tx_len);
}

/* A 0x00 arrived: the frame so far is complete (or broken). */
static void bep_link_end(bep_link_t *link)
{
    uint32_t n = link->rx_len, flags = link->rx_flags, left = link->rx_left;
    uint32_t type = n > 0u ? ((const uint8_t *)link->rx)[0] : 0u;
    link->rx_len = 0u;
    link->rx_left = 0u;
    link->rx_flags = 0u;
    if ((flags & BEP_LINK_RX_STARTED) == 0u) return; /* 0x00 0x00: nothing between, nothing to say */
    if ((flags & BEP_LINK_RX_OVERSIZED) != 0u)
        bep_link_error(link, BEP_PROTO_NO_SEQ, BEP_PROTO_ERR_OVERSIZED, type);
    else if (left != 0u)
        bep_link_error(link, BEP_PROTO_NO_SEQ, BEP_PROTO_ERR_BAD_COBS, type); /* a block was cut short */
    else
        bep_link_frame(link, n);
}

static void bep_link_put(bep_link_t *link, uint8_t b)
{
    if (link->rx_len >= BEP_LINK_FRAME_MAX) {
        link->rx_flags = (uint8_t)(link->rx_flags | BEP_LINK_RX_OVERSIZED);
        return;
    }
    ((uint8_t *)link->rx)[link->rx_len++] = b;
}

/* ------------------------------------------------------------------ API */

void bep_link_init(bep_link_t *link, const bep_config_t *cfg, void *state, size_t state_len,
                   const bep_board_info_t *info, bep_link_write_fn write, void *ctx)
{
    uint32_t k;
    if (link == NULL) return;
    link->cfg = cfg;
    link->state = state;
    link->state_len = state_len > 0xFFFFFFFFu ? 0xFFFFFFFFu : (uint32_t)state_len;
    link->info = info;
    link->write = write;
    link->ctx = ctx;
    link->session = 0u;
    link->rx_len = 0u;
    link->tx_len = 0u;
    link->cached_crc = 0u;
    link->cached_seq = 0u;
    link->cached_type = 0u;
    link->rx_left = 0u;
    link->rx_flags = 0u;
    for (k = 0; k < sizeof link->reserved; ++k) link->reserved[k] = 0u;
}

void bep_link_rx(bep_link_t *link, const uint8_t *data, size_t n)
{
    size_t i;
    if (link == NULL || data == NULL) return;
    for (i = 0; i < n; ++i) {
        uint8_t b = data[i];
        if (b == 0u) {
            bep_link_end(link);
            continue;
        }
        link->rx_flags = (uint8_t)(link->rx_flags | BEP_LINK_RX_STARTED);
        if ((link->rx_flags & BEP_LINK_RX_OVERSIZED) != 0u) continue;
        if (link->rx_left == 0u) { /* a code byte: b - 1 data bytes follow */
            if ((link->rx_flags & BEP_LINK_RX_ZERO) != 0u) bep_link_put(link, 0u);
            link->rx_left = (uint8_t)(b - 1u);
            link->rx_flags = (uint8_t)(b == 0xFFu ? (link->rx_flags & ~BEP_LINK_RX_ZERO)
                                                  : (link->rx_flags | BEP_LINK_RX_ZERO));
        } else {
            bep_link_put(link, b);
            link->rx_left--;
        }
    }
}
