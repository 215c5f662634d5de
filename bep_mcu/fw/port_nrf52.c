/*
 * port_nrf52.c - nRF52840 boards (Cortex-M4F, 64 MHz): the Arduino Nano 33 BLE (and BLE
 * Sense), behind its bootloader, and Nordic's nRF52840 DK. Real boards only: QEMU 7.2 has
 * no nRF52 machine.
 *
 * UART: the legacy UART0 at 0x40002000 (peripheral ID 2, interrupt line 2), not UARTE0 at
 * the same address. UARTE moves bytes through RAM by EasyDMA; the legacy UART, still in the
 * nRF52840 product specification (its UART chapter, marked deprecated, beside UARTE's),
 * has the nRF51's registers, so uart_nrf51.h drives it unchanged (tasks, events, INTENSET, ENABLE = 4, PSEL.TXD/RXD, RXD, TXD, BAUDRATE at the
 * same offsets). One difference: a PSEL register holds the pin (bits 4:0), its port (bit 5)
 * and CONNECT (bit 31, 0 = connected), so pin n of port p is written as 32 * p + n, which
 * is what the BEP_NRF52_*_PIN macros hold. The two peripherals share the ID (and ENABLE):
 * the port disables whatever a bootloader left on before selecting pins, as the
 * specification requires PSEL to be written only while the UART is disabled.
 *
 * From the board table (bep_mcu/device/boards.py):
 *   BEP_NRF52_TX_PIN, BEP_NRF52_RX_PIN   32 * port + pin
 *   BEP_BOARD_FLASH_ORIGIN               where the vector table is (VTOR, below)
 *   nano33ble:  TX P1.03 (pin D1/TX), RX P1.10 (D0/RX) of the header: the board's USB is
 *               the nRF52840's own, so the link needs a 3.3 V USB-serial adapter on those
 *               pins. Image at 0x10000, after Arduino's bootloader (0x0-0xFFFF), which
 *               starts it at 0x10000 (the Arduino core's mbed_app_start).
 *   nrf52840dk: TX P0.06, RX P0.08, wired to the on-board J-Link's virtual COM port.
 *
 * Clocks: the CPU always runs at 64 MHz. The UART's baud rate comes from the high-frequency
 * clock, after reset the internal RC oscillator (HFINT), whose tolerance is coarse for a
 * UART; the port starts the 32 MHz crystal oscillator (HFXO, on both boards) and waits for
 * it at most BEP_NRF52_WAIT_POLLS reads, staying on HFINT if it never runs.
 *
 * A bootloader (the Nano 33 BLE's) may jump here with its own vector table in VTOR, its
 * interrupt lines enabled and SysTick running; bep_port_init turns those off and points
 * VTOR at this image's table before enabling the UART's line. Exceptions before that (a
 * fault in the start-up code) still go to the bootloader's table.
 *
 * UNTESTED ON HARDWARE: written from the nRF52840 product specification (v1.7), the
 * boards' schematics, and the Arduino core for the Nano 33 BLE (its linker script and
 * bossac command).
 */
#include "bep_port.h"
#include "flash_nvmc.h"
#include "uart_nrf51.h"

#if !defined(BEP_NRF52_TX_PIN) || !defined(BEP_NRF52_RX_PIN) || !defined(BEP_BOARD_FLASH_ORIGIN)
#error "BEP_NRF52_TX_PIN, BEP_NRF52_RX_PIN and BEP_BOARD_FLASH_ORIGIN come from the board table (bep_mcu/boards.py)"
#endif

/* CLOCK: HFCLKSTART task, HFCLKSTARTED event, HFCLKSTAT (SRC bit 0: 1 = crystal; STATE
 * bit 16: running). */
#define BEP_NRF52_CLOCK 0x40000000u
#define BEP_NRF52_HFCLKSTART BEP_REG32(BEP_NRF52_CLOCK + 0x000u)
#define BEP_NRF52_HFCLKSTARTED BEP_REG32(BEP_NRF52_CLOCK + 0x100u)
#define BEP_NRF52_HFCLKSTAT BEP_REG32(BEP_NRF52_CLOCK + 0x40Cu)
#define BEP_NRF52_HFCLKSTAT_XTAL_RUNNING ((1u << 16) | 1u)
/* The crystal starts in well under a millisecond; on a board whose crystal circuit is
 * faulty it never does (HFCLKSTAT then never reads 0x10001). Each poll is an uncached
 * peripheral read, a compare and a branch: 100000 polls last over 4 ms at 64 MHz. */
#define BEP_NRF52_WAIT_POLLS 100000u

/* GPIO port p at 0x50000000 + 0x300 * p: OUTSET, and PIN_CNF[n] (DIR bit 0, INPUT bit 1
 * = disconnect the input buffer, PULL bits 3:2, 3 = pull-up). */
#define BEP_NRF52_GPIO(pin) (0x50000000u + 0x300u * ((uint32_t)(pin) >> 5))
#define BEP_NRF52_OUTSET(pin) BEP_REG32(BEP_NRF52_GPIO(pin) + 0x508u)
#define BEP_NRF52_PIN_CNF(pin) BEP_REG32(BEP_NRF52_GPIO(pin) + 0x700u + 4u * ((uint32_t)(pin) & 31u))
#define BEP_NRF52_PIN_OUTPUT 3u  /* output, input buffer disconnected */
#define BEP_NRF52_PIN_PULLUP 12u /* input, connected, pull-up */

/* Armv7-M system control: VTOR; NVIC clear-pending; the nRF52840 has 48 interrupt lines. */
#define BEP_NRF52_VTOR BEP_REG32(0xE000ED08u)
#define BEP_NRF52_NVIC_ICPR(n) BEP_REG32(0xE000E280u + 4u * (uint32_t)(n))
#define BEP_NRF52_IRQ_WORDS 2u

void bep_port_init(void)
{
    uint32_t i;

    /* What a bootloader may have left: its interrupt lines, SysTick, its vector table. */
    BEP_SYST_CSR = 0u;
    for (i = 0; i < BEP_NRF52_IRQ_WORDS; ++i) {
        BEP_NVIC_ICER(i) = 0xFFFFFFFFu;
        BEP_NRF52_NVIC_ICPR(i) = 0xFFFFFFFFu;
    }
    BEP_NRF52_VTOR = BEP_BOARD_FLASH_ORIGIN;
    __asm__ volatile("dsb\n\tisb" ::: "memory");

    BEP_NRF52_HFCLKSTARTED = 0u;
    BEP_NRF52_HFCLKSTART = 1u;
    (void)bep_port_wait(&BEP_NRF52_HFCLKSTAT, BEP_NRF52_HFCLKSTAT_XTAL_RUNNING, BEP_NRF52_HFCLKSTAT_XTAL_RUNNING,
                        BEP_NRF52_WAIT_POLLS); /* else the UART runs from HFINT */

    /* The specification's pin set-up for the UART: TXD an output at 1 (idle), RXD an input
     * (pulled up: an unconnected line reads idle instead of noise). */
    BEP_NRF52_OUTSET(BEP_NRF52_TX_PIN) = 1u << (BEP_NRF52_TX_PIN & 31u);
    BEP_NRF52_PIN_CNF(BEP_NRF52_TX_PIN) = BEP_NRF52_PIN_OUTPUT;
    BEP_NRF52_PIN_CNF(BEP_NRF52_RX_PIN) = BEP_NRF52_PIN_PULLUP;

    BEP_NRF51_ENABLE(BEP_BOARD_UART_BASE) = 0u;
    bep_nrf51_init(BEP_BOARD_UART_BASE, BEP_NRF52_TX_PIN, BEP_NRF52_RX_PIN);
    bep_nvic_enable(BEP_BOARD_UART_IRQ);
}

void bep_port_uart_irq(void) { bep_nrf51_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_nrf51_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }

/* Flash: the nRF52840's NVMC, the nRF51's registers (flash_nvmc.h), which the micro:bit's
 * power-cut tests run in QEMU; 4 KB pages, a word written at most twice between erases
 * (the store writes each once); the store's three flash functions are defined there. */
