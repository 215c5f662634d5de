/*
 * bep_rx_ring.h - the receive ring shared by every port: the UART interrupt pushes,
 * main pops. Single producer, single consumer on one core: head is written only by
 * the interrupt, tail only by main, both free-running uint32 (aligned 32-bit stores
 * are atomic on Cortex-M and RV32), so no lock is needed except around the sleep decision.
 *
 * Flow control instead of loss: when the ring is full the interrupt handler leaves
 * the byte in the UART and masks its interrupt line (bep_rx_stall); the UART's request
 * stays asserted, and the next bep_rx_pop unmasks the line, which re-enters the
 * handler. In QEMU the UART then refuses further bytes, so nothing is ever dropped
 * whatever the ring size; on real hardware a byte arriving meanwhile overruns the
 * UART, the frame fails its CRC and the host retries it.
 *
 * RAM: BEP_FW_RX_RING bytes + two uint32 indices; bep_mcu/device/boards.py counts exactly
 * this (firmware_static_bytes), and a test checks it against arm-none-eabi-size.
 * Include from exactly one file (the port file): the storage is static.
 */
#ifndef BEP_RX_RING_H
#define BEP_RX_RING_H

#include <stddef.h>
#include <stdint.h>

#include "bep_cpu.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#ifndef BEP_FW_RX_RING
#error "BEP_FW_RX_RING is set by the build (bep_mcu/device/boards.py)"
#endif
#if (BEP_FW_RX_RING & (BEP_FW_RX_RING - 1u)) != 0u
#error "BEP_FW_RX_RING must be a power of two"
#endif

static volatile uint8_t bep_rx_buf[BEP_FW_RX_RING];
static volatile uint32_t bep_rx_head; /* next slot the interrupt writes */
static volatile uint32_t bep_rx_tail; /* next slot main reads */

/* Interrupt side: is there room for one more byte? */
static inline int bep_rx_room(void) { return bep_rx_head - bep_rx_tail < BEP_FW_RX_RING; }

/* Interrupt side, after bep_rx_room() said yes. */
static inline void bep_rx_push(uint8_t byte)
{
    uint32_t head = bep_rx_head;
    bep_rx_buf[head & (BEP_FW_RX_RING - 1u)] = byte;
    bep_rx_head = head + 1u;
}

/* Interrupt side, ring full: mask the UART's line until main has made room. */
static inline void bep_rx_stall(void) { bep_irq_line_disable(BEP_BOARD_UART_IRQ); }

/* Main side: sleep until a byte is there, then copy what is there (up to max). The
 * emptiness test and wfi run with interrupts masked, so a byte arriving in between
 * still wakes the core (wfi wakes on a pending interrupt even when masked). */
static inline size_t bep_rx_pop(uint8_t *dst, size_t max)
{
    size_t n = 0;
    uint32_t tail;
    for (;;) {
        bep_irq_disable();
        if (bep_rx_head != bep_rx_tail) break;
        bep_wfi();
        bep_irq_enable();
    }
    bep_irq_enable();
    tail = bep_rx_tail;
    while (n < max && tail != bep_rx_head) {
        dst[n++] = bep_rx_buf[tail & (BEP_FW_RX_RING - 1u)];
        tail++;
    }
    bep_rx_tail = tail;
    bep_irq_line_enable(BEP_BOARD_UART_IRQ); /* undo a bep_rx_stall: there is room now */
    return n;
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_RX_RING_H */
