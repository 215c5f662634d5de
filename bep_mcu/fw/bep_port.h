/*
 * bep_port.h - what main.c needs from a board: a UART that receives by interrupt.
 *
 * One port file per board (port_<board>.c) implements this with one of the UART
 * drivers (uart_cmsdk.h, uart_nrf51.h, uart_stm32.h, uart_ns16550.h, uart_esp32c3.h).
 * Board facts (UART base address and IRQ line, name, memory map) are not typed here: they
 * come from the board table in bep_mcu/device/boards.py as -D macros (BEP_BOARD_*) and as
 * the rendered memory.ld.
 */
#ifndef BEP_PORT_H
#define BEP_PORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/** Clocks, pins and the UART: 8N1, receive interrupt enabled. Called once, interrupts on. */
void bep_port_init(void);

/** Send n bytes; returns when the last one is handed to the UART. */
void bep_port_write(const uint8_t *data, size_t n);

/** Copy between 1 and max received bytes to dst; sleeps (wfi) while none has arrived. */
size_t bep_port_read(uint8_t *dst, size_t max);

/** The UART interrupt handler (Cortex-M: the vector table entry 16 + BEP_BOARD_UART_IRQ;
 * RISC-V: called by startup_riscv.c's trap handler for the cause BEP_RISCV_IRQ_CAUSE). */
void bep_port_uart_irq(void);

/* Flash for a store of snapshots (bep_store.h), on the ports that have a driver (the board
 * table's flash_driver, bep_mcu/device/boards.py): the region the linker script reserves
 * at the end of flash, __bep_store_start (__bep_store_bytes long, possibly 0), erased in
 * pages of BEP_BOARD_FLASH_PAGE bytes and programmed in units of BEP_BOARD_FLASH_WRITE.
 * Offsets count from the region's start; each returns 0, or -1 for a request outside the
 * region or misaligned. They fit bep_flash_t's read, erase and program (ctx unused). */
int bep_port_flash_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n);
int bep_port_flash_erase(void *ctx, uint32_t offset);
int bep_port_flash_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n);

/* The store region (the rendered memory.ld). */
extern uint8_t __bep_store_start[];
extern uint8_t __bep_store_bytes[]; /* its address is the region's size */
#define BEP_PORT_STORE_BYTES ((uint32_t)(uintptr_t)__bep_store_bytes)

/** 1 if n bytes at offset lie in the store region and start on a multiple of align. */
static inline int bep_port_store_span(uint32_t offset, uint32_t n, uint32_t align)
{
    return offset % align == 0u && offset <= BEP_PORT_STORE_BYTES && n <= BEP_PORT_STORE_BYTES - offset;
}

/** Poll until (*reg & mask) == want, at most polls reads; 1 when it got there. Every wait
 * of a port for a clock or flash flag is bounded (docs/porting.md, "Clocks"): a flag that
 * never rises (an emulator that models no clock controller, a dead crystal) must cost time,
 * not the board. */
static inline int bep_port_wait(volatile uint32_t *reg, uint32_t mask, uint32_t want, uint32_t polls)
{
    uint32_t i;
    for (i = 0; i < polls; ++i) {
        if ((*reg & mask) == want) return 1;
    }
    return 0;
}

/** Read n bytes of a memory-mapped store region (on-chip flash reads as memory). */
static inline int bep_port_store_read(uint32_t offset, uint8_t *dst, uint32_t n)
{
    const volatile uint8_t *src = __bep_store_start + offset;
    uint32_t k;
    if (!bep_port_store_span(offset, n, 1u)) return -1;
    for (k = 0; k < n; ++k) dst[k] = src[k];
    return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_PORT_H */
