/*
 * port_microbit.c - BBC micro:bit v1 (nRF51822, Cortex-M0, 16 KB RAM), real or in
 * QEMU (-M microbit).
 *
 * UART0 at 0x40002000, interrupt line 2; pins of the KL26 interface chip's USB serial
 * (TX P0.24, RX P0.25). The values of the base and line come from the board table
 * (bep_mcu/device/boards.py) as BEP_BOARD_UART_BASE and BEP_BOARD_UART_IRQ.
 */
#include "bep_port.h"
#include "flash_nvmc.h"
#include "uart_nrf51.h"

#define BEP_MICROBIT_TX_PIN 24u
#define BEP_MICROBIT_RX_PIN 25u

void bep_port_init(void)
{
    bep_nrf51_init(BEP_BOARD_UART_BASE, BEP_MICROBIT_TX_PIN, BEP_MICROBIT_RX_PIN);
    bep_nvic_enable(BEP_BOARD_UART_IRQ);
}

void bep_port_uart_irq(void) { bep_nrf51_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_nrf51_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }

/* Flash: the nRF51's NVMC (flash_nvmc.h), as on the chip and as QEMU emulates it; the store's
 * three flash functions are defined there. */
