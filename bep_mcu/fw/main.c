/*
 * main.c - the firmware: one generated network, trained over the serial link.
 *
 * Boot: the port's UART, the network's state from its flash tables (bep_<net>_init
 * with the model's seed and batch counter), the link (bep_link.c) bound to that state.
 * Then forever: sleep until bytes arrive, hand them to bep_link_rx, which decodes
 * frames, runs the requests and writes the replies back through the UART.
 *
 * RAM is planned on the host, all static, no heap (bep_mcu/device/firmware.py checks
 * the plan against arm-none-eabi-size): the stack (linker script), the state buffer,
 * the link (its frame buffers are inside bep_link_t) and the port's receive ring.
 *
 * The network is chosen by the build: BEP_FW_NET (e.g. net), BEP_FW_NET_UPPER (NET)
 * and BEP_FW_NET_HEADER ("bep_net.h"); the shim below maps bep_<net>_* to fixed names.
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_port.h"
#include "bep_cpu.h"
#include "bep_link.h"
#include BEP_FW_NET_HEADER

#define BEP_FW_PASTE_(a, b, c) a##b##c
#define BEP_FW_PASTE(a, b, c) BEP_FW_PASTE_(a, b, c)
#define BEP_FW_NET_CONFIG BEP_FW_PASTE(bep_, BEP_FW_NET, _config)
#define BEP_FW_NET_INIT BEP_FW_PASTE(bep_, BEP_FW_NET, _init)
#define BEP_FW_NET_STATE_WORDS BEP_FW_PASTE(BEP_, BEP_FW_NET_UPPER, _STATE_WORDS)
#define BEP_FW_NET_SEED BEP_FW_PASTE(BEP_, BEP_FW_NET_UPPER, _SEED)
#define BEP_FW_NET_BATCHES BEP_FW_PASTE(BEP_, BEP_FW_NET_UPPER, _BATCHES)

/* Bytes handed to the link per call: any size works; this bounds main's stack use. */
#define BEP_FW_RX_CHUNK 32u

/* Provided by the linker script: what this image occupies (reported by HELLO). */
extern const uint8_t __bep_ram_used[];
extern const uint8_t __bep_flash_used[];

/* The board this image was built for, in a non-allocated ELF section (no flash, no
 * RAM): `bep-mcu emulate` reads it and refuses a firmware built for another board. */
__attribute__((section(".bep_board"), used)) static const char bep_fw_board_tag[] = BEP_BOARD_NAME;

static uint32_t bep_fw_state[BEP_FW_NET_STATE_WORDS];
static bep_link_t bep_fw_link;

static void bep_fw_write(void *ctx, const uint8_t *data, size_t n)
{
    (void)ctx;
    bep_port_write(data, n);
}

int main(void)
{
    /* Lives as long as main, i.e. forever; the link may keep a pointer to it. */
    bep_board_info_t info;
    uint8_t chunk[BEP_FW_RX_CHUNK];

    info.board = BEP_BOARD_NAME;
    info.ram_bytes = (uint32_t)(uintptr_t)__bep_ram_used;
    info.flash_bytes = (uint32_t)(uintptr_t)__bep_flash_used;
    info.fw_version = (uint16_t)BEP_FW_VERSION;

    bep_port_init();
#if BEP_BOARD_QEMU
    bep_qemu_io_kick();
#endif
    /* A failure here (it cannot fail for a buffer of the planned size) leaves the
     * state unmarked; the host sees it as a failing request and sends INIT. */
    (void)BEP_FW_NET_INIT(bep_fw_state, sizeof bep_fw_state, BEP_FW_NET_SEED, BEP_FW_NET_BATCHES);
    bep_link_init(&bep_fw_link, &BEP_FW_NET_CONFIG, bep_fw_state, sizeof bep_fw_state, &info, bep_fw_write, NULL);
    for (;;) {
        size_t n = bep_port_read(chunk, sizeof chunk);
        bep_link_rx(&bep_fw_link, chunk, n);
    }
}
