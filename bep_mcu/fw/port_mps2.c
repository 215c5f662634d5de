/*
 * port_mps2.c - the Arm MPS2/MPS2+ boards as emulated by QEMU: AN385 (Cortex-M3),
 * AN386 (Cortex-M4), AN500 (Cortex-M7) and AN505 (Cortex-M33).
 *
 * All four talk through UART0, a CMSDK UART; they differ only in where it sits and
 * which interrupt line it raises, and those come from the board table
 * (bep_mcu/device/boards.py) as BEP_BOARD_UART_BASE and BEP_BOARD_UART_IRQ:
 *   AN385/AN386/AN500: 0x40004000, line 0 (UART0 RX).
 *   AN505: the Secure alias 0x50200000 (Non-secure 0x40200000), line 32. The core
 *   boots in Secure state and every interrupt line is Secure after reset, so nothing
 *   else needs configuring.
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

/* Flash. QEMU's MPS2 boards have no flash controller: the code memory is SSRAM, which QEMU
 * keeps across a system reset except where the image is loaded (flash_ram_nor.h). */
#include "flash_ram_nor.h"
