/*
 * bep_port.h - what main.c needs from a board: a UART that receives by interrupt.
 *
 * One port file per board (port_<board>.c) implements this with one of the UART
 * drivers (uart_cmsdk.h, uart_nrf51.h, uart_stm32.h). Board facts (UART base address
 * and IRQ line, name, memory map) are not typed here: they come from the board table
 * in bep_mcu/device/boards.py as -D macros (BEP_BOARD_*) and as the rendered memory.ld.
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

/** The UART interrupt handler (the vector table entry 16 + BEP_BOARD_UART_IRQ). */
void bep_port_uart_irq(void);

#ifdef __cplusplus
}
#endif

#endif /* BEP_PORT_H */
