/*
 * port_mps2_an505.c - Arm MPS2+ AN505 (Cortex-M33) as emulated by QEMU (-M mps2-an505).
 *
 * UART0 (CMSDK) answers at its Secure alias 0x50200000 (Non-secure 0x40200000), receive
 * interrupt on line 32. The core boots in Secure state and every interrupt line is
 * Secure after reset, so nothing else needs configuring. Base and line come from the
 * board table (bep_mcu/boards.py) as BEP_BOARD_UART_BASE and BEP_BOARD_UART_IRQ.
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
