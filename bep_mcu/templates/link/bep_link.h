/*
 * bep_link.h - the board side of the bep-mcu serial protocol (docs/protocol.md).
 *
 * Hand-written, copied verbatim by `bep-mcu generate`; constants come from the generated
 * bep_proto.h (bep_mcu/cgen/protocol.py). Pure C99: integers only, no dynamic memory, no libc
 * beyond <stdint.h> and <stddef.h>; every buffer lives inside bep_link_t.
 *
 * Invariants (what the fuzz tests pin, whatever bytes arrive):
 *   - the receiver never reads or writes outside bep_link_t and the caller's buffers;
 *     a request is decoded incrementally into a buffer of BEP_LINK_FRAME_MAX bytes and
 *     anything longer is discarded as OVERSIZED;
 *   - a 0x00 byte always ends the frame being received, so the stream resynchronises;
 *   - a frame that is torn, corrupted, oversized, of an unknown type, or whose fields are
 *     out of range gets an error reply and changes no state: every field of a request is
 *     validated before the runtime is called (a TRAIN with one bad label trains nothing);
 *   - a request equal to the last one processed (same type, seq and CRC) is answered
 *     again from the cached reply and never processed twice (HELLO, which is idempotent,
 *     is always processed so a new host session is never answered with a stale token).
 *
 * Options (define before including, or with -D):
 *   BEP_LINK_MAX_PAYLOAD  largest payload of a frame, in bytes (default
 *                         BEP_PROTO_MAX_PAYLOAD_DEFAULT). RAM grows by about 2 bytes per
 *                         payload byte (one decoded request, one encoded reply); boards
 *                         with little RAM set it lower. The host learns it from HELLO.
 *
 * Example usage (a firmware main loop; "net" is the generated network's name):
 *
 *     static uint32_t state[BEP_NET_STATE_WORDS];
 *     static bep_link_t link;
 *     static const bep_board_info_t info = { "mps2-an386", 4u << 20, 4u << 20, 1u };
 *     static void uart_write(void *ctx, const uint8_t *data, size_t n) { ...send n bytes... }
 *
 *     bep_link_init(&link, &bep_net_config, state, sizeof state, &info, uart_write, NULL);
 *     for (;;) {
 *         uint8_t buf[64];
 *         size_t n = ...bytes received from the UART into buf...;
 *         bep_link_rx(&link, buf, n);   // replies go out through uart_write
 *     }
 */
#ifndef BEP_LINK_H
#define BEP_LINK_H

#include <stddef.h>
#include <stdint.h>

#include "bep_proto.h"
#include "bep_runtime.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#ifndef BEP_LINK_MAX_PAYLOAD
#define BEP_LINK_MAX_PAYLOAD BEP_PROTO_MAX_PAYLOAD_DEFAULT
#endif
#if BEP_LINK_MAX_PAYLOAD < BEP_PROTO_MIN_MAX_PAYLOAD || BEP_LINK_MAX_PAYLOAD > BEP_PROTO_MAX_MAX_PAYLOAD
#error "BEP_LINK_MAX_PAYLOAD is outside BEP_PROTO_MIN_MAX_PAYLOAD..BEP_PROTO_MAX_MAX_PAYLOAD"
#endif

/* Buffer sizes; bep_mcu/cgen/protocol.py link_bytes() computes the same numbers on the host. */
#define BEP_LINK_FRAME_MAX (BEP_PROTO_HEADER_BYTES + BEP_LINK_MAX_PAYLOAD + BEP_PROTO_CRC_BYTES)
#define BEP_LINK_COBS_MAX(n) ((n) + (n) / BEP_PROTO_COBS_BLOCK + 1u)
#define BEP_LINK_ROUND8(n) (((n) + 7u) & ~7u)
/* Decoded request, in u32 words so inputs can be handed to the runtime aligned. */
#define BEP_LINK_RX_WORDS (BEP_LINK_ROUND8(BEP_LINK_FRAME_MAX) / 4u)
/* Encoded reply with a leading and a trailing 0x00 (also the exactly-once cache). */
#define BEP_LINK_TX_BYTES BEP_LINK_ROUND8(BEP_LINK_COBS_MAX(BEP_LINK_FRAME_MAX) + 2u)
#define BEP_LINK_ERR_FRAME (BEP_PROTO_HEADER_BYTES + BEP_PROTO_ERROR_REPLY_BYTES + BEP_PROTO_CRC_BYTES)
#define BEP_LINK_ERR_BYTES BEP_LINK_ROUND8(BEP_LINK_COBS_MAX(BEP_LINK_ERR_FRAME) + 2u)
#define BEP_LINK_FIXED_BYTES 32u
#define BEP_LINK_DATA_BYTES (BEP_LINK_FIXED_BYTES + 4u * BEP_LINK_RX_WORDS + BEP_LINK_TX_BYTES + BEP_LINK_ERR_BYTES)
/** sizeof(bep_link_t): 2156 bytes on Cortex-M with the default payload (pinned by a static assert). */
#define BEP_LINK_BYTES (BEP_LINK_DATA_BYTES + BEP_PROTO_LINK_POINTERS * sizeof(void *))

/* BEP_CDEF_BEGIN */
/** Sends `n` bytes to the host (blocking until they are queued or sent). */
typedef void (*bep_link_write_fn)(void *ctx, const uint8_t *data, size_t n);

/** What HELLO reports about the board (the name is cut to fit a reply). */
typedef struct {
    const char *board;     /* NUL-terminated ASCII name, or NULL */
    uint32_t ram_bytes;    /* RAM the firmware image uses (data + bss, stack included) */
    uint32_t flash_bytes;  /* flash the firmware image uses (text + data) */
    uint16_t fw_version;   /* the firmware's own version number */
} bep_board_info_t;
/* BEP_CDEF_END */

/** One link: all of its buffers inside, nothing else allocated. Treat as opaque. */
typedef struct bep_link {
    const bep_config_t *cfg;
    void *state;
    const bep_board_info_t *info;
    bep_link_write_fn write;
    void *ctx;
    uint32_t state_len;    /* bytes at state (capped at 0xFFFFFFFF) */
    uint32_t session;      /* the host's token from HELLO, 0 after init */
    uint32_t rx_len;       /* decoded bytes of the frame being received */
    uint32_t tx_len;       /* bytes of the cached encoded reply in tx, 0 = none */
    uint32_t cached_crc;   /* the cached reply answers (cached_type, cached_seq, cached_crc) */
    uint16_t cached_seq;
    uint8_t cached_type;
    uint8_t rx_left;       /* data bytes left in the current COBS block; 0: next byte is a code */
    uint8_t rx_flags;      /* BEP_LINK_RX_* bits (bep_link.c) */
    uint8_t reserved[7];
    uint32_t rx[BEP_LINK_RX_WORDS];
    uint8_t tx[BEP_LINK_TX_BYTES];
    uint8_t err[BEP_LINK_ERR_BYTES];
} bep_link_t;

/* BEP_CDEF_BEGIN */
/** Set up a link over a network's state buffer. Touches neither the state (the host
 * sends INIT) nor the transport.
 * @param[out] link       the link; all of its memory
 * @param[in]  cfg        the generated network configuration (&bep_<net>_config)
 * @param[in]  state      the network's state buffer, 4-byte aligned, cfg->state_bytes long
 * @param[in]  state_len  bytes at state
 * @param[in]  info       board description for HELLO (kept by pointer), or NULL
 * @param[in]  write      called with each reply, from inside bep_link_rx
 * @param[in]  ctx        passed to write unchanged */
void bep_link_init(bep_link_t *link, const bep_config_t *cfg, void *state, size_t state_len,
                   const bep_board_info_t *info, bep_link_write_fn write, void *ctx);

/** Feed received bytes, any number, split anywhere. Every frame they complete is
 * processed (the runtime runs here, for TRAIN possibly for a while) and answered
 * through write() before this returns.
 * @param[in,out] link  an initialised link
 * @param[in]     data  received bytes (may be NULL when n is 0)
 * @param[in]     n     number of bytes */
void bep_link_rx(bep_link_t *link, const uint8_t *data, size_t n);
/* BEP_CDEF_END */

#ifdef __cplusplus
}
#endif

#endif /* BEP_LINK_H */
