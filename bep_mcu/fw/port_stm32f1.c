/*
 * port_stm32f1.c - STM32F1 boards (Cortex-M3): the "Blue Pill" (STM32F103C8, real board)
 * and ST's STM32VLDISCOVERY as QEMU emulates it (-M stm32vldiscovery, STM32F100RB).
 *
 * The F1's clock controller (RCC) and pins differ from the F4's (port_stm32.c): the enable
 * bits sit in RCC_APB2ENR at 0x18 (GPIO ports and USART1) and RCC_APB1ENR at 0x1C, a pin is
 * configured by four bits of GPIOx_CRL (pins 0-7) or CRH (8-15), MODE (output speed, 0 =
 * input) and CNF (for an output 0b10 = alternate function push-pull; for an input 0b10 =
 * pull-up/down, the direction from the ODR bit), with no alternate-function number: USART1
 * is on PA9/PA10 unless remapped. The USART is the F4's (uart_stm32.h).
 *
 * From the board table (bep_mcu/device/boards.py), the F4 port's macro names:
 *   BEP_BOARD_UART_BASE, BEP_BOARD_UART_IRQ   the USART and its interrupt line
 *   BEP_STM32_USART_APB        1 or 2: the bus the USART hangs on (clock enable, PCLK)
 *   BEP_STM32_USART_RCC_BIT    its enable bit in RCC_APB1ENR / RCC_APB2ENR
 *   BEP_STM32_GPIO_PORT        0 = GPIOA, 1 = GPIOB, ... (the TX/RX pins' port)
 *   BEP_STM32_TX_PIN, BEP_STM32_RX_PIN
 *   BEP_STM32_SYSCLK_HZ        core clock to run at, from the PLL
 *
 *   bluepill:         USART1 (0x40013800, line 37) on PA9/PA10, no USB-serial on the board
 *                     (its USB socket is the chip's own USB): a 3.3 V adapter on A9 (TX)
 *                     and A10 (RX); 64 MHz.
 *   stm32vldiscovery: USART1 the same (QEMU's stm32f100_soc.c connects serial_hd(0) to it);
 *                     24 MHz, the STM32F100's maximum.
 *
 * Clocks. Both parts reset to the 8 MHz HSI oscillator. The PLL runs from HSI / 2 = 4 MHz
 * times PLLMUL = SYSCLK / 4 MHz (2..16), so no crystal is needed: 64 MHz on the F103,
 * where HSE x 9 would give its maximum of 72 MHz but depends on the board's crystal (clones
 * differ); 24 MHz on the F100. Flash wait states (F103, RM0008 §3.3.3): none up to 24 MHz,
 * 1 up to 48, 2 up to 72 (the F100 needs none: it runs at 24 MHz at most). APB1 <= 36 MHz,
 * APB2 <= 72 MHz. As in port_stm32.c: no clock set-up when no RCC is modelled (all of
 * HSIRDY, HSERDY, PLLRDY clear: QEMU maps the RCC as an unimplemented device that reads
 * 0), every wait bounded by BEP_STM32_WAIT_POLLS reads (bep_port_wait) with a fallback to
 * HSI, and the baud divisor from the clock actually selected (RCC_CFGR.SWS and the
 * prescalers read back).
 *
 * Assumes the reset state of the clock tree (power-on, or a reset by the debugger), not one
 * left behind by a bootloader (the STM32duino bootloader at 0x08000000 is not supported:
 * the image is linked there).
 *
 * UNTESTED ON HARDWARE (the Blue Pill): written from the reference manual RM0008 and the
 * STM32F103x8 datasheet (DS5319); the STM32F100 path runs in QEMU in the tests.
 */
#include "bep_port.h"
#include "uart_stm32.h"

#if !defined(BEP_STM32_USART_APB) || !defined(BEP_STM32_USART_RCC_BIT) || !defined(BEP_STM32_GPIO_PORT) ||   \
    !defined(BEP_STM32_TX_PIN) || !defined(BEP_STM32_RX_PIN) || !defined(BEP_STM32_SYSCLK_HZ)
#error "the BEP_STM32_* macros come from the board table (bep_mcu/boards.py)"
#endif

/* ---------------------------------------------------------------- clock plan */

#define BEP_STM32_HSI_HZ 8000000u
#define BEP_STM32_PLL_IN_HZ (BEP_STM32_HSI_HZ / 2u) /* PLLSRC = 0: HSI / 2 */
#define BEP_STM32_PLLMUL (BEP_STM32_SYSCLK_HZ / BEP_STM32_PLL_IN_HZ)
#if BEP_STM32_PLLMUL * BEP_STM32_PLL_IN_HZ != BEP_STM32_SYSCLK_HZ || BEP_STM32_PLLMUL < 2u ||                      \
    BEP_STM32_PLLMUL > 16u || BEP_STM32_SYSCLK_HZ > 72000000u
#error "BEP_STM32_SYSCLK_HZ must be 4 MHz x 2..16, at most 72 MHz"
#endif
#define BEP_STM32_FLASH_WS ((BEP_STM32_SYSCLK_HZ - 1u) / 24000000u)

/* APB1 at most 36 MHz: /2 above that (RCC_CFGR code 4); APB2 and AHB undivided. */
#if BEP_STM32_SYSCLK_HZ <= 36000000u
#define BEP_STM32_PPRE1 0u
#else
#define BEP_STM32_PPRE1 4u
#endif

/* See port_stm32.c: each poll is at least 3 cycles, 10000 polls >= 30,000 cycles (almost
 * 4 ms at 8 MHz); the PLL locks within 200 us (DS5319). */
#define BEP_STM32_WAIT_POLLS 10000u

/* ---------------------------------------------------------------- registers */

#define BEP_STM32_RCC 0x40021000u
#define BEP_STM32_RCC_CR BEP_REG32(BEP_STM32_RCC + 0x00u)
#define BEP_STM32_RCC_CFGR BEP_REG32(BEP_STM32_RCC + 0x04u)
#define BEP_STM32_RCC_APB2ENR BEP_REG32(BEP_STM32_RCC + 0x18u)
#define BEP_STM32_RCC_APB1ENR BEP_REG32(BEP_STM32_RCC + 0x1Cu)
#define BEP_STM32_APB2ENR_IOPA 2u /* IOPxEN: bit 2 + port */

#define BEP_STM32_CR_HSIRDY (1u << 1)
#define BEP_STM32_CR_HSERDY (1u << 17)
#define BEP_STM32_CR_PLLON (1u << 24)
#define BEP_STM32_CR_PLLRDY (1u << 25)
/* CFGR: SW 1:0, SWS 3:2, HPRE 7:4, PPRE1 10:8, PPRE2 13:11, PLLSRC 16, PLLXTPRE 17, PLLMUL
 * 21:18 (multiplier - 2). */
#define BEP_STM32_CFGR_SW_MASK 0x3u
#define BEP_STM32_CFGR_SW_PLL 0x2u
#define BEP_STM32_CFGR_SWS_MASK (0x3u << 2)
#define BEP_STM32_CFGR_SWS_PLL (0x2u << 2)
#define BEP_STM32_CFGR_HPRE_MASK (0xFu << 4)
#define BEP_STM32_CFGR_PPRE1_SHIFT 8u
#define BEP_STM32_CFGR_PPRE2_SHIFT 11u
#define BEP_STM32_CFGR_PPRE_MASK (0x3Fu << BEP_STM32_CFGR_PPRE1_SHIFT)
#define BEP_STM32_CFGR_PLL_MASK (0x3Fu << 16) /* PLLSRC, PLLXTPRE, PLLMUL */
#define BEP_STM32_CFGR_PLLMUL_SHIFT 18u

#define BEP_STM32_FLASH_ACR BEP_REG32(0x40022000u)
#define BEP_STM32_ACR_LATENCY_MASK 0x7u

#define BEP_STM32_GPIO (0x40010800u + 0x400u * (uint32_t)(BEP_STM32_GPIO_PORT))
#define BEP_STM32_GPIO_CR(pin) BEP_REG32(BEP_STM32_GPIO + 4u * ((pin) / 8u)) /* CRL, CRH */
#define BEP_STM32_GPIO_BSRR BEP_REG32(BEP_STM32_GPIO + 0x10u)
#define BEP_STM32_PIN_AF_OUT 0x9u   /* MODE 01 (10 MHz), CNF 10: alternate function push-pull */
#define BEP_STM32_PIN_IN_PULL 0x8u  /* MODE 00 (input), CNF 10: pull-up/down, up when ODR = 1 */

#define BEP_STM32_BAUD 115200u

/* ---------------------------------------------------------------- clocks */

/* Run from the PLL at BEP_STM32_SYSCLK_HZ; any step that does not complete leaves the core
 * on HSI (wait states and prescalers first, the switch last). */
static void bep_stm32_clock_init(void)
{
    uint32_t v;
    if ((BEP_STM32_RCC_CR & (BEP_STM32_CR_HSIRDY | BEP_STM32_CR_HSERDY | BEP_STM32_CR_PLLRDY)) == 0u) {
        return; /* no RCC behind this address (an emulator): nothing to set up, nothing will get ready */
    }
    BEP_STM32_FLASH_ACR = (BEP_STM32_FLASH_ACR & ~BEP_STM32_ACR_LATENCY_MASK) | BEP_STM32_FLASH_WS;
    if (!bep_port_wait(&BEP_STM32_FLASH_ACR, BEP_STM32_ACR_LATENCY_MASK, BEP_STM32_FLASH_WS, BEP_STM32_WAIT_POLLS)) {
        return;
    }
    v = BEP_STM32_RCC_CFGR & ~(BEP_STM32_CFGR_HPRE_MASK | BEP_STM32_CFGR_PPRE_MASK | BEP_STM32_CFGR_PLL_MASK);
    BEP_STM32_RCC_CFGR = v | (BEP_STM32_PPRE1 << BEP_STM32_CFGR_PPRE1_SHIFT) |
                         ((BEP_STM32_PLLMUL - 2u) << BEP_STM32_CFGR_PLLMUL_SHIFT);
    BEP_STM32_RCC_CR |= BEP_STM32_CR_PLLON;
    if (!bep_port_wait(&BEP_STM32_RCC_CR, BEP_STM32_CR_PLLRDY, BEP_STM32_CR_PLLRDY, BEP_STM32_WAIT_POLLS)) {
        BEP_STM32_RCC_CR &= ~BEP_STM32_CR_PLLON;
        return;
    }
    BEP_STM32_RCC_CFGR = (BEP_STM32_RCC_CFGR & ~BEP_STM32_CFGR_SW_MASK) | BEP_STM32_CFGR_SW_PLL;
    (void)bep_port_wait(&BEP_STM32_RCC_CFGR, BEP_STM32_CFGR_SWS_MASK, BEP_STM32_CFGR_SWS_PLL, BEP_STM32_WAIT_POLLS);
}

/* The USART's bus clock as the RCC has it now: SYSCLK from RCC_CFGR.SWS (PLL or HSI; the
 * port never selects HSE), divided by the APB prescaler read back. */
static uint32_t bep_stm32_pclk_hz(void)
{
    uint32_t cfgr = BEP_STM32_RCC_CFGR;
    uint32_t hz = (cfgr & BEP_STM32_CFGR_SWS_MASK) == BEP_STM32_CFGR_SWS_PLL ? BEP_STM32_SYSCLK_HZ : BEP_STM32_HSI_HZ;
    uint32_t ppre = (cfgr >> (BEP_STM32_USART_APB == 1 ? BEP_STM32_CFGR_PPRE1_SHIFT : BEP_STM32_CFGR_PPRE2_SHIFT)) & 7u;
    return (ppre & 4u) ? hz >> ((ppre & 3u) + 1u) : hz; /* 0xx: /1, 100: /2, 101: /4, 110: /8, 111: /16 */
}

/* ---------------------------------------------------------------- port */

/* One pin's four configuration bits in CRL or CRH. */
static void bep_stm32_pin(uint32_t pin, uint32_t conf)
{
    const uint32_t shift = 4u * (pin % 8u);
    BEP_STM32_GPIO_CR(pin) = (BEP_STM32_GPIO_CR(pin) & ~(0xFu << shift)) | (conf << shift);
}

void bep_port_init(void)
{
    bep_stm32_clock_init();
#if BEP_STM32_USART_APB == 1
    BEP_STM32_RCC_APB2ENR |= 1u << (BEP_STM32_APB2ENR_IOPA + BEP_STM32_GPIO_PORT);
    BEP_STM32_RCC_APB1ENR |= 1u << BEP_STM32_USART_RCC_BIT;
    (void)BEP_STM32_RCC_APB1ENR; /* read back: the clock is on before the first register access */
#else
    BEP_STM32_RCC_APB2ENR |= (1u << (BEP_STM32_APB2ENR_IOPA + BEP_STM32_GPIO_PORT)) | (1u << BEP_STM32_USART_RCC_BIT);
    (void)BEP_STM32_RCC_APB2ENR;
#endif

    /* TX: alternate function push-pull; RX: input pulled up (an unconnected line then reads
     * idle instead of noise), the pull-up selected by the pin's ODR bit (set through BSRR). */
    bep_stm32_pin(BEP_STM32_TX_PIN, BEP_STM32_PIN_AF_OUT);
    BEP_STM32_GPIO_BSRR = 1u << BEP_STM32_RX_PIN;
    bep_stm32_pin(BEP_STM32_RX_PIN, BEP_STM32_PIN_IN_PULL);

    bep_stm32_usart_init(BEP_BOARD_UART_BASE, bep_stm32_pclk_hz(), BEP_STM32_BAUD);
    bep_nvic_enable(BEP_BOARD_UART_IRQ);
}

void bep_port_uart_irq(void) { bep_stm32_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_stm32_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }

/* ---------------------------------------------------------------- flash (store) */

/* The F1's flash interface (PM0075, the STM32F10xxx flash programming manual; RM0041 §3 on
 * the F100): KEYR 0x04, SR 0x0C (BSY 0, PGERR 2, WRPRTERR 4, EOP 5; write 1 to clear), CR
 * 0x10 (PG 0, PER 1, STRT 6, LOCK 7), AR 0x14. Unlock by writing the two keys to KEYR; erase
 * a page with PER set, its address in AR, then STRT; program a half-word at a time with PG
 * set; after each operation wait for BSY to clear, then check the error flags and read the
 * flash back (PM0075 §2.3.3-2.3.4 do the same), and lock again. An erase takes 20-40 ms, a
 * half-word 40-70 us (DS5319); the CPU stalls on its next flash fetch meanwhile, so the
 * bound on the wait is for a controller that never answers, not for timing: the driver
 * then reports the failure (-1) instead of hanging. QEMU models no flash interface (its
 * registers read 0 and its flash ignores writes), so there every operation fails its read
 * back; stm32vldiscovery has no store in the board table for that reason. */
#define BEP_STM32_FLASH_KEYR BEP_REG32(0x40022004u)
#define BEP_STM32_FLASH_SR BEP_REG32(0x4002200Cu)
#define BEP_STM32_FLASH_CR BEP_REG32(0x40022010u)
#define BEP_STM32_FLASH_AR BEP_REG32(0x40022014u)
#define BEP_STM32_FLASH_KEY1 0x45670123u
#define BEP_STM32_FLASH_KEY2 0xCDEF89ABu
#define BEP_STM32_SR_BSY (1u << 0)
#define BEP_STM32_SR_ERRORS ((1u << 2) | (1u << 4)) /* PGERR, WRPRTERR */
#define BEP_STM32_SR_CLEAR (BEP_STM32_SR_ERRORS | (1u << 5))
#define BEP_STM32_CR_PG (1u << 0)
#define BEP_STM32_CR_PER (1u << 1)
#define BEP_STM32_CR_STRT (1u << 6)
#define BEP_STM32_CR_LOCK (1u << 7)
#define BEP_STM32_FLASH_POLLS 4000000u /* >= 12 M cycles: 190 ms at 64 MHz, over four erases */

/* Unlock, clear old flags and start the operation `op` (PG or PER). */
static int bep_stm32_flash_begin(uint32_t op)
{
    if (!bep_port_wait(&BEP_STM32_FLASH_SR, BEP_STM32_SR_BSY, 0u, BEP_STM32_FLASH_POLLS)) return 0;
    if (BEP_STM32_FLASH_CR & BEP_STM32_CR_LOCK) {
        BEP_STM32_FLASH_KEYR = BEP_STM32_FLASH_KEY1;
        BEP_STM32_FLASH_KEYR = BEP_STM32_FLASH_KEY2;
    }
    BEP_STM32_FLASH_SR = BEP_STM32_SR_CLEAR;
    BEP_STM32_FLASH_CR = op;
    return 1;
}

/* Wait for the operation to end; 1 when it did without an error flag. */
static int bep_stm32_flash_done(void)
{
    return bep_port_wait(&BEP_STM32_FLASH_SR, BEP_STM32_SR_BSY, 0u, BEP_STM32_FLASH_POLLS) &&
           (BEP_STM32_FLASH_SR & BEP_STM32_SR_ERRORS) == 0u;
}

/* Clear the operation bit and lock; passes ok through (1: 0, else -1). */
static int bep_stm32_flash_end(int ok)
{
    BEP_STM32_FLASH_CR = BEP_STM32_CR_LOCK;
    return ok ? 0 : -1;
}

int bep_port_flash_read(void *ctx, uint32_t offset, uint8_t *dst, uint32_t n)
{
    (void)ctx;
    return bep_port_store_read(offset, dst, n);
}

int bep_port_flash_erase(void *ctx, uint32_t offset)
{
    const volatile uint32_t *page = (const volatile uint32_t *)(__bep_store_start + offset);
    uint32_t k;
    int ok;
    (void)ctx;
    if (!bep_port_store_span(offset, BEP_BOARD_FLASH_PAGE, BEP_BOARD_FLASH_PAGE)) return -1;
    if (!bep_stm32_flash_begin(BEP_STM32_CR_PER)) return bep_stm32_flash_end(0);
    BEP_STM32_FLASH_AR = (uint32_t)(uintptr_t)page;
    BEP_STM32_FLASH_CR = BEP_STM32_CR_PER | BEP_STM32_CR_STRT;
    ok = bep_stm32_flash_done();
    for (k = 0; ok && k < BEP_BOARD_FLASH_PAGE / 4u; ++k) ok = page[k] == 0xFFFFFFFFu;
    return bep_stm32_flash_end(ok);
}

int bep_port_flash_program(void *ctx, uint32_t offset, const uint8_t *src, uint32_t n)
{
    volatile uint16_t *dst = (volatile uint16_t *)(__bep_store_start + offset);
    uint32_t k;
    int ok;
    (void)ctx;
    if (n % 2u != 0u || !bep_port_store_span(offset, n, 2u)) return -1;
    if (!bep_stm32_flash_begin(BEP_STM32_CR_PG)) return bep_stm32_flash_end(0);
    ok = 1;
    for (k = 0; ok && k < n; k += 2u) {
        const uint16_t half = (uint16_t)(src[k] | (src[k + 1u] << 8));
        dst[k / 2u] = half;
        ok = bep_stm32_flash_done() && dst[k / 2u] == half;
    }
    return bep_stm32_flash_end(ok);
}
