/*
 * port_esp32c3.c - Espressif ESP32-C3 (rv32imc), started by the ROM's direct boot
 * (bep_esp32c3.ld): no second-stage bootloader, so this port does what that one would.
 * Built and sized, never run here ("builds, not run").
 *
 * - Watchdogs: the ROM leaves the RTC watchdog and timer group 0's watchdog running in
 *   "flash boot" mode (about a second and a half) and the super watchdog expecting to be
 *   fed; each is unlocked with its key, the first two disabled (enable and flash-boot bits
 *   cleared), the third set to feed itself. Registers as in ESP-IDF's rtc_cntl_reg.h and
 *   timer_group_reg.h for the ESP32-C3.
 * - UART0 (BEP_BOARD_UART_BASE) as the ROM left it, receive interrupt on (uart_esp32c3.h).
 * - Interrupts: the interrupt matrix routes peripheral source BEP_BOARD_UART_IRQ (UART0 is
 *   21) to CPU line BEP_RISCV_IRQ_CAUSE, level-triggered, priority 1 over threshold 0.
 * - Clock: the reset clock (the 40 MHz crystal); no PLL, so the ROM's baud rate holds.
 * - No flash store driver (flash_driver None in the board table), as on the NUCLEO.
 */
#include "bep_port.h"
#include "uart_esp32c3.h"

#define BEP_C3_RTC_CNTL 0x60008000u
#define BEP_C3_RTC_WDTCONFIG0 BEP_REG32(BEP_C3_RTC_CNTL + 0x90u)
#define BEP_C3_RTC_WDTWPROTECT BEP_REG32(BEP_C3_RTC_CNTL + 0xA8u)
#define BEP_C3_RTC_SWD_CONF BEP_REG32(BEP_C3_RTC_CNTL + 0xACu)
#define BEP_C3_RTC_SWD_WPROTECT BEP_REG32(BEP_C3_RTC_CNTL + 0xB0u)
#define BEP_C3_WDT_KEY 0x50D83AA1u
#define BEP_C3_SWD_KEY 0x8F1D312Au
#define BEP_C3_RTC_WDT_EN 0x80000000u
#define BEP_C3_RTC_WDT_FLASHBOOT 0x1000u   /* bit 12 */
#define BEP_C3_SWD_AUTO_FEED 0x80000000u

#define BEP_C3_TIMG0 0x6001F000u
#define BEP_C3_TIMG0_WDTCONFIG0 BEP_REG32(BEP_C3_TIMG0 + 0x48u)
#define BEP_C3_TIMG0_WDTWPROTECT BEP_REG32(BEP_C3_TIMG0 + 0x64u)
#define BEP_C3_TIMG_WDT_EN 0x80000000u
#define BEP_C3_TIMG_WDT_FLASHBOOT 0x4000u  /* bit 14 */

#define BEP_C3_INTC 0x600C2000u            /* INTERRUPT_CORE0 */
#define BEP_C3_INTC_MAP(source) BEP_REG32(BEP_C3_INTC + 4u * (uint32_t)(source))
#define BEP_C3_INTC_ENABLE BEP_REG32(BEP_C3_INTC + 0x104u)
#define BEP_C3_INTC_TYPE BEP_REG32(BEP_C3_INTC + 0x108u)
#define BEP_C3_INTC_PRI(line) BEP_REG32(BEP_C3_INTC + 0x114u + 4u * (uint32_t)(line))
#define BEP_C3_INTC_THRESH BEP_REG32(BEP_C3_INTC + 0x194u)

static void bep_c3_watchdogs_off(void)
{
    BEP_C3_RTC_WDTWPROTECT = BEP_C3_WDT_KEY;
    BEP_C3_RTC_WDTCONFIG0 &= ~(BEP_C3_RTC_WDT_EN | BEP_C3_RTC_WDT_FLASHBOOT);
    BEP_C3_RTC_WDTWPROTECT = 0u;
    BEP_C3_RTC_SWD_WPROTECT = BEP_C3_SWD_KEY;
    BEP_C3_RTC_SWD_CONF |= BEP_C3_SWD_AUTO_FEED;
    BEP_C3_RTC_SWD_WPROTECT = 0u;
    BEP_C3_TIMG0_WDTWPROTECT = BEP_C3_WDT_KEY;
    BEP_C3_TIMG0_WDTCONFIG0 &= ~(BEP_C3_TIMG_WDT_EN | BEP_C3_TIMG_WDT_FLASHBOOT);
    BEP_C3_TIMG0_WDTWPROTECT = 0u;
}

void bep_port_init(void)
{
    bep_c3_watchdogs_off();
    bep_esp32c3_uart_init(BEP_BOARD_UART_BASE);
    BEP_C3_INTC_MAP(BEP_BOARD_UART_IRQ) = BEP_RISCV_IRQ_CAUSE;
    BEP_C3_INTC_TYPE &= ~(1u << BEP_RISCV_IRQ_CAUSE); /* level */
    BEP_C3_INTC_PRI(BEP_RISCV_IRQ_CAUSE) = 1u;
    BEP_C3_INTC_THRESH = 0u;
    bep_irq_line_enable(BEP_BOARD_UART_IRQ);
}

/* The UART's CPU line, as bep_rx_ring.h masks and unmasks it: level-triggered, so a line
 * unmasked while the UART still asks interrupts again at once. */
void bep_irq_line_enable(uint32_t irq)
{
    (void)irq;
    BEP_C3_INTC_ENABLE |= 1u << BEP_RISCV_IRQ_CAUSE;
}

void bep_irq_line_disable(uint32_t irq)
{
    (void)irq;
    BEP_C3_INTC_ENABLE &= ~(1u << BEP_RISCV_IRQ_CAUSE);
}

void bep_port_uart_irq(void) { bep_esp32c3_uart_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_esp32c3_uart_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }
