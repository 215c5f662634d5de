/*
 * port_microbit.c - BBC micro:bit v1 (nRF51822, Cortex-M0, 16 KB RAM), real or in
 * QEMU (-M microbit).
 *
 * UART0 at 0x40002000, interrupt line 2; pins of the KL26 interface chip's USB serial
 * (TX P0.24, RX P0.25). The values of the base and line come from the board table
 * (bep_mcu/device/boards.py) as BEP_BOARD_UART_BASE and BEP_BOARD_UART_IRQ.
 */
#include "bep_port.h"
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

/* Flash: the nRF51's non-volatile memory controller (NVMC, nRF51 reference manual §6), as
 * on the chip and as QEMU emulates it. CONFIG selects read-only, write or erase; an erase
 * of a 1 KB page writes the page's address to ERASEPAGE; a write is one aligned word to the
 * flash address, which can only clear bits. READY is polled after each operation (the CPU
 * stalls while the NVMC works: 21 ms an erase, 46 us a word on the chip). */
#define BEP_NVMC_READY BEP_REG32(0x4001E400u)
#define BEP_NVMC_CONFIG BEP_REG32(0x4001E504u)
#define BEP_NVMC_ERASEPAGE BEP_REG32(0x4001E508u)
#define BEP_NVMC_READ_ONLY 0u
#define BEP_NVMC_WRITE 1u
#define BEP_NVMC_ERASE 2u

static void bep_nvmc_wait(void)
{
    while ((BEP_NVMC_READY & 1u) == 0u) {
    }
}

int bep_port_flash_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    (void)ctx;
    return bep_port_store_read(offset, dst, n);
}

int bep_port_flash_erase(void *ctx, uint32_t offset)
{
    (void)ctx;
    if (!bep_port_store_span(offset, BEP_BOARD_FLASH_PAGE, BEP_BOARD_FLASH_PAGE)) return -1;
    BEP_NVMC_CONFIG = BEP_NVMC_ERASE;
    bep_nvmc_wait();
    BEP_NVMC_ERASEPAGE = (uint32_t)(uintptr_t)(__bep_store_start + offset);
    bep_nvmc_wait();
    BEP_NVMC_CONFIG = BEP_NVMC_READ_ONLY;
    bep_nvmc_wait();
    return 0;
}

int bep_port_flash_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    uint32_t k;
    (void)ctx;
    if (n % 4u != 0u || !bep_port_store_span(offset, n, 4u)) return -1;
    BEP_NVMC_CONFIG = BEP_NVMC_WRITE;
    bep_nvmc_wait();
    for (k = 0; k < n; k += 4u) {
        BEP_REG32((uintptr_t)(__bep_store_start + offset + k)) = (uint32_t)src[k] | ((uint32_t)src[k + 1u] << 8) |
                                                                 ((uint32_t)src[k + 2u] << 16) |
                                                                 ((uint32_t)src[k + 3u] << 24);
        bep_nvmc_wait();
    }
    BEP_NVMC_CONFIG = BEP_NVMC_READ_ONLY;
    bep_nvmc_wait();
    return 0;
}
