/*
 * port_mps2_an500.c - Arm MPS2 AN500 (Cortex-M7) as emulated by QEMU (-M mps2-an500).
 *
 * UART0 (CMSDK) at 0x40004000, receive interrupt on line 0 (UART0 RX). Base and line
 * come from the board table (bep_mcu/boards.py) as BEP_BOARD_UART_BASE and
 * BEP_BOARD_UART_IRQ.
 */
#include "bep_port.h"
#include "uart_cmsdk.h"

/* The FPGA's 25 MHz APB clock / 115200 baud; any value >= 16 works in QEMU. */
#define BEP_MPS2_BAUDDIV 217u

void bep_port_init(void)
{
    bep_cmsdk_init(BEP_BOARD_UART_BASE, BEP_MPS2_BAUDDIV);
    bep_nvic_enable(BEP_BOARD_UART_IRQ);
}

void bep_port_uart_irq(void) { bep_cmsdk_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_cmsdk_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }
