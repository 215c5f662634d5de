/*
 * uart_cmsdk.h - Arm CMSDK APB UART (MPS2 FPGA images; QEMU "cmsdk-apb-uart").
 *
 * Registers: DATA 0x00, STATE 0x04 (bit0 TX full, bit1 RX full), CTRL 0x08 (bit0 TX
 * enable, bit1 RX enable, bit3 RX interrupt enable), INTSTATUS 0x0C (write 1 to
 * clear), BAUDDIV 0x10 (>= 16, else QEMU keeps the UART off; the rate itself does not
 * matter in emulation). Without TX enable the first write hangs forever, silently.
 */
#ifndef BEP_UART_CMSDK_H
#define BEP_UART_CMSDK_H

#include <stdint.h>

#include "bep_cortexm.h"
#include "bep_rx_ring.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_CMSDK_DATA(base) BEP_REG32((base) + 0x00u)
#define BEP_CMSDK_STATE(base) BEP_REG32((base) + 0x04u)
#define BEP_CMSDK_CTRL(base) BEP_REG32((base) + 0x08u)
#define BEP_CMSDK_INTSTATUS(base) BEP_REG32((base) + 0x0Cu)
#define BEP_CMSDK_BAUDDIV(base) BEP_REG32((base) + 0x10u)

#define BEP_CMSDK_STATE_TXFULL 0x1u
#define BEP_CMSDK_STATE_RXFULL 0x2u
#define BEP_CMSDK_CTRL_TXEN 0x1u
#define BEP_CMSDK_CTRL_RXEN 0x2u
#define BEP_CMSDK_CTRL_RXINTEN 0x8u
#define BEP_CMSDK_INT_RX 0x2u

static inline void bep_cmsdk_init(uint32_t base, uint32_t bauddiv)
{
    BEP_CMSDK_CTRL(base) = 0u;
    BEP_CMSDK_BAUDDIV(base) = bauddiv < 16u ? 16u : bauddiv;
    BEP_CMSDK_INTSTATUS(base) = 0xFu;
    BEP_CMSDK_CTRL(base) = BEP_CMSDK_CTRL_TXEN | BEP_CMSDK_CTRL_RXEN | BEP_CMSDK_CTRL_RXINTEN;
}

static inline void bep_cmsdk_putc(uint32_t base, uint8_t byte)
{
    while (BEP_CMSDK_STATE(base) & BEP_CMSDK_STATE_TXFULL) {
    }
    BEP_CMSDK_DATA(base) = byte;
}

/* Receive interrupt. Drain, acknowledge, and look once more: a byte that arrived
 * between the last look and the acknowledgement would otherwise wait with its
 * interrupt cleared. Ring full: leave the byte (and the request) in the UART. */
static inline void bep_cmsdk_rx_irq(uint32_t base)
{
    for (;;) {
        while (BEP_CMSDK_STATE(base) & BEP_CMSDK_STATE_RXFULL) {
            if (!bep_rx_room()) {
                bep_rx_stall();
                return;
            }
            bep_rx_push((uint8_t)(BEP_CMSDK_DATA(base) & 0xFFu));
        }
        BEP_CMSDK_INTSTATUS(base) = BEP_CMSDK_INT_RX;
        if ((BEP_CMSDK_STATE(base) & BEP_CMSDK_STATE_RXFULL) == 0u) return;
    }
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_UART_CMSDK_H */
