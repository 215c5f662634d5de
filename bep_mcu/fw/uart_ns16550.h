/*
 * uart_ns16550.h - National Semiconductor 16550A UART, byte registers (QEMU virt's
 * "ns16550a" at 0x10000000, register shift 0; the same part on many RISC-V SoCs).
 *
 * Registers: RBR/THR 0x0 (DLL with LCR.DLAB), IER 0x1 (DLM with DLAB; bit0 receive data
 * interrupt), FCR 0x2 (bit0 FIFO on, bits 1-2 clear them, bits 6-7 receive trigger: 00
 * = 1 byte), LCR 0x3 (0x03 = 8N1, bit7 DLAB), LSR 0x5 (bit0 data ready, bit5 transmit
 * holding register empty). The interrupt is a level: up while data is ready and IER
 * bit0 set.
 */
#ifndef BEP_UART_NS16550_H
#define BEP_UART_NS16550_H

#include <stdint.h>

#include "bep_cpu.h"
#include "bep_rx_ring.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_16550_RBR(base) BEP_REG8((base) + 0x0u)
#define BEP_16550_THR(base) BEP_REG8((base) + 0x0u)
#define BEP_16550_DLL(base) BEP_REG8((base) + 0x0u)
#define BEP_16550_IER(base) BEP_REG8((base) + 0x1u)
#define BEP_16550_DLM(base) BEP_REG8((base) + 0x1u)
#define BEP_16550_FCR(base) BEP_REG8((base) + 0x2u)
#define BEP_16550_LCR(base) BEP_REG8((base) + 0x3u)
#define BEP_16550_LSR(base) BEP_REG8((base) + 0x5u)

#define BEP_16550_IER_RDI 0x01u
#define BEP_16550_FCR_FIFO 0x07u  /* FIFOs on and cleared, receive trigger at 1 byte */
#define BEP_16550_LCR_8N1 0x03u
#define BEP_16550_LCR_DLAB 0x80u
#define BEP_16550_LSR_DR 0x01u
#define BEP_16550_LSR_THRE 0x20u

/* 8N1 at clock / (16 * divisor), FIFOs on, receive interrupt on. */
static inline void bep_16550_init(uint32_t base, uint16_t divisor)
{
    BEP_16550_IER(base) = 0u;
    BEP_16550_LCR(base) = BEP_16550_LCR_DLAB;
    BEP_16550_DLL(base) = (uint8_t)(divisor & 0xFFu);
    BEP_16550_DLM(base) = (uint8_t)(divisor >> 8);
    BEP_16550_LCR(base) = BEP_16550_LCR_8N1;
    BEP_16550_FCR(base) = BEP_16550_FCR_FIFO;
    BEP_16550_IER(base) = BEP_16550_IER_RDI;
}

static inline void bep_16550_putc(uint32_t base, uint8_t byte)
{
    while ((BEP_16550_LSR(base) & BEP_16550_LSR_THRE) == 0u) {
    }
    BEP_16550_THR(base) = byte;
}

/* Receive interrupt: drain into the ring. Ring full: leave the bytes in the UART and mask
 * the line (bep_rx_stall); the level stays up, so nothing needs acknowledging here. */
static inline void bep_16550_rx_irq(uint32_t base)
{
    while (BEP_16550_LSR(base) & BEP_16550_LSR_DR) {
        if (!bep_rx_room()) {
            bep_rx_stall();
            return;
        }
        bep_rx_push(BEP_16550_RBR(base));
    }
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_UART_NS16550_H */
