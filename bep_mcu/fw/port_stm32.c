/*
 * port_stm32.c - STM32F4 boards: ST NUCLEO-F401RE (STM32F401RE, real board) and the
 * Netduino Plus 2 as QEMU emulates it (-M netduinoplus2, STM32F405RG). Both Cortex-M4F.
 *
 * One file for both: what differs comes from the board table (bep_mcu/boards.py) as
 * macros, so the code the NUCLEO would run is the code the emulated board runs in the
 * tests:
 *   BEP_BOARD_UART_BASE, BEP_BOARD_UART_IRQ   the USART and its interrupt line
 *   BEP_STM32_USART_APB        1 or 2: the bus the USART hangs on (clock enable, PCLK)
 *   BEP_STM32_USART_RCC_BIT    its enable bit in RCC_APB1ENR / RCC_APB2ENR
 *   BEP_STM32_GPIO_PORT        0 = GPIOA, 1 = GPIOB, ... (the TX/RX pins' port)
 *   BEP_STM32_TX_PIN, BEP_STM32_RX_PIN, BEP_STM32_GPIO_AF   pins and alternate function
 *   BEP_STM32_SYSCLK_HZ        core clock to run at, from the PLL
 *
 *   NUCLEO-F401RE: USART2 (0x40004400, line 38) on PA2/PA3 AF7, wired to the ST-LINK's
 *                  virtual COM port; 84 MHz (the part's maximum).
 *   netduinoplus2: USART1 (0x40011000, line 37) on PA9/PA10 AF7: QEMU 7.2 connects its
 *                  first -serial to USART1 (stm32f405_soc.c creates USART1..6, UART7
 *                  in that order, serial_hd(0..6)); 168 MHz.
 *
 * Clocks. Both parts reset to the 16 MHz HSI oscillator. The PLL is set to HSI / 16 * 336
 * = 336 MHz (VCO input 1 MHz, output within 192..432 MHz on both parts; PLLQ = 7 gives
 * USB's 48 MHz), divided by PLLP = 336 MHz / SYSCLK. Flash wait states and the APB
 * prescalers follow from SYSCLK with the limits the two parts share at 2.7..3.6 V:
 * one wait state per 30 MHz, APB1 <= 42 MHz, APB2 <= 84 MHz. The voltage scale after
 * reset suffices (F401: scale 2, up to 84 MHz; F405: scale 1, up to 168 MHz).
 *
 * QEMU models none of this: its STM32F405 has a fixed 168 MHz clock and maps the RCC
 * and the flash interface as "unimplemented devices" that read 0 and ignore writes, so
 * a loop waiting for a ready flag would spin forever. Two defences:
 *   1. Detection: on silicon the oscillator the core runs from is always ready, so
 *      RCC_CR has HSIRDY, HSERDY or PLLRDY set; all three clear means no RCC is
 *      modelled, and the clock set-up is skipped. Chosen over waiting for a timeout
 *      because it costs nothing at boot, which matters in QEMU: its USART drops
 *      (rather than refuses) bytes that arrive before UE and RE are set, so the UART
 *      must be up before the host's first frame.
 *   2. Bounded waits, for silicon: every wait for a flag gives up after
 *      BEP_STM32_WAIT_POLLS reads (>= 30,000 cycles, about 2 ms at 16 MHz; the PLL
 *      locks within 0.3 ms and the other flags change within a few cycles) and the
 *      set-up falls back to HSI, so a part (or an emulator the detection misses) that
 *      never raises a flag runs slower instead of hanging. tests/test_firmware.py
 *      runs this path in QEMU with the detection removed.
 * The USART's baud divisor is computed from the clock actually selected (RCC_CFGR.SWS
 * and the prescalers read back), so a fallback still gives 115200 baud.
 *
 * Assumes the reset state of the clock tree (power-on, or a reset by the debugger, as
 * after `pyocd flash`), not one left behind by a bootloader.
 *
 * UNTESTED ON HARDWARE: written from the reference manuals (RM0368 for the F401,
 * RM0090 for the F405) and the NUCLEO's user manual (UM1724).
 */
#include "bep_port.h"
#include "uart_stm32.h"

#if !defined(BEP_STM32_USART_APB) || !defined(BEP_STM32_USART_RCC_BIT) || !defined(BEP_STM32_GPIO_PORT) ||   \
    !defined(BEP_STM32_TX_PIN) || !defined(BEP_STM32_RX_PIN) || !defined(BEP_STM32_GPIO_AF) ||                  \
    !defined(BEP_STM32_SYSCLK_HZ)
#error "the BEP_STM32_* macros come from the board table (bep_mcu/boards.py)"
#endif

/* ---------------------------------------------------------------- clock plan */

#define BEP_STM32_HSI_HZ 16000000u
#define BEP_STM32_PLLM 16u  /* HSI / 16 = 1 MHz VCO input */
#define BEP_STM32_PLLN 336u /* x 336 = 336 MHz VCO output */
#define BEP_STM32_PLLQ 7u   /* 336 / 7 = 48 MHz for USB */
#define BEP_STM32_VCO_HZ 336000000u
#define BEP_STM32_PLLP (BEP_STM32_VCO_HZ / BEP_STM32_SYSCLK_HZ)
#if BEP_STM32_PLLP * BEP_STM32_SYSCLK_HZ != BEP_STM32_VCO_HZ ||                                                   \
    (BEP_STM32_PLLP != 2u && BEP_STM32_PLLP != 4u && BEP_STM32_PLLP != 6u && BEP_STM32_PLLP != 8u)
#error "BEP_STM32_SYSCLK_HZ must be 336 MHz / 2, 4, 6 or 8"
#endif
#define BEP_STM32_FLASH_WS ((BEP_STM32_SYSCLK_HZ - 1u) / 30000000u)

/* The smallest APB prescaler that keeps each bus within its limit, as its RCC_CFGR code
 * (0 = /1, 4 = /2, 5 = /4). bep_stm32_pclk_hz reads it back rather than trusting it. */
#if BEP_STM32_SYSCLK_HZ <= 42000000u
#define BEP_STM32_PPRE1 0u
#elif BEP_STM32_SYSCLK_HZ <= 84000000u
#define BEP_STM32_PPRE1 4u
#else
#define BEP_STM32_PPRE1 5u
#endif
#if BEP_STM32_SYSCLK_HZ <= 84000000u
#define BEP_STM32_PPRE2 0u
#else
#define BEP_STM32_PPRE2 4u
#endif

/* See "Bounded waits" above: each poll is an uncached peripheral read, a compare and a
 * branch, at least 3 cycles even with zero wait states. */
#define BEP_STM32_WAIT_POLLS 10000u

/* ---------------------------------------------------------------- registers */

#define BEP_STM32_RCC 0x40023800u
#define BEP_STM32_RCC_CR BEP_REG32(BEP_STM32_RCC + 0x00u)
#define BEP_STM32_RCC_PLLCFGR BEP_REG32(BEP_STM32_RCC + 0x04u)
#define BEP_STM32_RCC_CFGR BEP_REG32(BEP_STM32_RCC + 0x08u)
#define BEP_STM32_RCC_AHB1ENR BEP_REG32(BEP_STM32_RCC + 0x30u)
#define BEP_STM32_RCC_APB1ENR BEP_REG32(BEP_STM32_RCC + 0x40u)
#define BEP_STM32_RCC_APB2ENR BEP_REG32(BEP_STM32_RCC + 0x44u)

#define BEP_STM32_CR_HSIRDY (1u << 1)
#define BEP_STM32_CR_HSERDY (1u << 17)
#define BEP_STM32_CR_PLLON (1u << 24)
#define BEP_STM32_CR_PLLRDY (1u << 25)
/* PLLCFGR fields: PLLM 5:0, PLLN 14:6, PLLP 17:16, PLLSRC 22 (0 = HSI), PLLQ 27:24; the
 * other bits are reserved and keep their reset values. */
#define BEP_STM32_PLLCFGR_FIELDS 0x0F437FFFu
#define BEP_STM32_CFGR_SW_MASK 0x3u
#define BEP_STM32_CFGR_SW_PLL 0x2u
#define BEP_STM32_CFGR_SWS_MASK (0x3u << 2)
#define BEP_STM32_CFGR_SWS_PLL (0x2u << 2)
#define BEP_STM32_CFGR_HPRE_MASK (0xFu << 4)
#define BEP_STM32_CFGR_PPRE1_SHIFT 10u
#define BEP_STM32_CFGR_PPRE2_SHIFT 13u
#define BEP_STM32_CFGR_PPRE_MASK ((7u << BEP_STM32_CFGR_PPRE1_SHIFT) | (7u << BEP_STM32_CFGR_PPRE2_SHIFT))

#define BEP_STM32_FLASH_ACR BEP_REG32(0x40023C00u)
#define BEP_STM32_ACR_LATENCY_MASK 0x7u
#define BEP_STM32_ACR_CACHES ((1u << 8) | (1u << 9) | (1u << 10)) /* prefetch, I-cache, D-cache */

#define BEP_STM32_GPIO (0x40020000u + 0x400u * (uint32_t)(BEP_STM32_GPIO_PORT))
#define BEP_STM32_GPIO_MODER BEP_REG32(BEP_STM32_GPIO + 0x00u)
#define BEP_STM32_GPIO_OSPEEDR BEP_REG32(BEP_STM32_GPIO + 0x08u)
#define BEP_STM32_GPIO_PUPDR BEP_REG32(BEP_STM32_GPIO + 0x0Cu)
#define BEP_STM32_GPIO_AFR(pin) BEP_REG32(BEP_STM32_GPIO + 0x20u + 4u * ((pin) / 8u))

#define BEP_STM32_BAUD 115200u

/* ---------------------------------------------------------------- clocks */

/* Poll until (reg & mask) == want, at most BEP_STM32_WAIT_POLLS times; 1 when it got there. */
static int bep_stm32_wait(volatile uint32_t *reg, uint32_t mask, uint32_t want)
{
    return bep_port_wait(reg, mask, want, BEP_STM32_WAIT_POLLS);
}

/* Run from the PLL at BEP_STM32_SYSCLK_HZ. Any step that does not complete leaves the
 * core on HSI (the order keeps every intermediate state valid: wait states and
 * prescalers first, the switch last). */
static void bep_stm32_clock_init(void)
{
    uint32_t v;
    if ((BEP_STM32_RCC_CR & (BEP_STM32_CR_HSIRDY | BEP_STM32_CR_HSERDY | BEP_STM32_CR_PLLRDY)) == 0u) {
        return; /* no RCC behind this address (an emulator): nothing to set up, nothing will get ready */
    }
    BEP_STM32_FLASH_ACR = BEP_STM32_ACR_CACHES | BEP_STM32_FLASH_WS;
    if (!bep_stm32_wait(&BEP_STM32_FLASH_ACR, BEP_STM32_ACR_LATENCY_MASK, BEP_STM32_FLASH_WS)) {
        return; /* faster than HSI needs these wait states in force first */
    }
    v = BEP_STM32_RCC_CFGR & ~(BEP_STM32_CFGR_HPRE_MASK | BEP_STM32_CFGR_PPRE_MASK);
    BEP_STM32_RCC_CFGR = v | (BEP_STM32_PPRE1 << BEP_STM32_CFGR_PPRE1_SHIFT) |
                         (BEP_STM32_PPRE2 << BEP_STM32_CFGR_PPRE2_SHIFT);
    v = BEP_STM32_RCC_PLLCFGR & ~BEP_STM32_PLLCFGR_FIELDS;
    BEP_STM32_RCC_PLLCFGR = v | BEP_STM32_PLLM | (BEP_STM32_PLLN << 6) | ((BEP_STM32_PLLP / 2u - 1u) << 16) |
                            (BEP_STM32_PLLQ << 24);
    BEP_STM32_RCC_CR |= BEP_STM32_CR_PLLON;
    if (!bep_stm32_wait(&BEP_STM32_RCC_CR, BEP_STM32_CR_PLLRDY, BEP_STM32_CR_PLLRDY)) {
        BEP_STM32_RCC_CR &= ~BEP_STM32_CR_PLLON;
        return;
    }
    BEP_STM32_RCC_CFGR = (BEP_STM32_RCC_CFGR & ~BEP_STM32_CFGR_SW_MASK) | BEP_STM32_CFGR_SW_PLL;
    (void)bep_stm32_wait(&BEP_STM32_RCC_CFGR, BEP_STM32_CFGR_SWS_MASK, BEP_STM32_CFGR_SWS_PLL);
}

/* The USART's bus clock as the RCC has it now: SYSCLK from RCC_CFGR.SWS (PLL or HSI;
 * the port never selects HSE), divided by the APB prescaler read back. */
static uint32_t bep_stm32_pclk_hz(void)
{
    uint32_t cfgr = BEP_STM32_RCC_CFGR;
    uint32_t hz = (cfgr & BEP_STM32_CFGR_SWS_MASK) == BEP_STM32_CFGR_SWS_PLL ? BEP_STM32_SYSCLK_HZ : BEP_STM32_HSI_HZ;
    uint32_t ppre = (cfgr >> (BEP_STM32_USART_APB == 1 ? BEP_STM32_CFGR_PPRE1_SHIFT : BEP_STM32_CFGR_PPRE2_SHIFT)) & 7u;
    return (ppre & 4u) ? hz >> ((ppre & 3u) + 1u) : hz; /* 0xx: /1, 100: /2, 101: /4, 110: /8, 111: /16 */
}

/* ---------------------------------------------------------------- port */

void bep_port_init(void)
{
    uint32_t v;
    const uint32_t tx = BEP_STM32_TX_PIN, rx = BEP_STM32_RX_PIN;

    bep_stm32_clock_init();
    BEP_STM32_RCC_AHB1ENR |= 1u << BEP_STM32_GPIO_PORT;
#if BEP_STM32_USART_APB == 1
    BEP_STM32_RCC_APB1ENR |= 1u << BEP_STM32_USART_RCC_BIT;
    (void)BEP_STM32_RCC_APB1ENR; /* read back: the clock is on before the first register access */
#else
    BEP_STM32_RCC_APB2ENR |= 1u << BEP_STM32_USART_RCC_BIT;
    (void)BEP_STM32_RCC_APB2ENR;
#endif

    /* TX and RX: alternate function (MODER 0b10), medium speed, RX pulled up (an
     * unconnected line then reads idle instead of noise). */
    v = BEP_STM32_GPIO_MODER & ~((3u << (2u * tx)) | (3u << (2u * rx)));
    BEP_STM32_GPIO_MODER = v | (2u << (2u * tx)) | (2u << (2u * rx));
    v = BEP_STM32_GPIO_AFR(tx) & ~(0xFu << (4u * (tx % 8u)));
    BEP_STM32_GPIO_AFR(tx) = v | ((uint32_t)BEP_STM32_GPIO_AF << (4u * (tx % 8u)));
    v = BEP_STM32_GPIO_AFR(rx) & ~(0xFu << (4u * (rx % 8u)));
    BEP_STM32_GPIO_AFR(rx) = v | ((uint32_t)BEP_STM32_GPIO_AF << (4u * (rx % 8u)));
    v = BEP_STM32_GPIO_OSPEEDR & ~((3u << (2u * tx)) | (3u << (2u * rx)));
    BEP_STM32_GPIO_OSPEEDR = v | (1u << (2u * tx)) | (1u << (2u * rx));
    v = BEP_STM32_GPIO_PUPDR & ~(3u << (2u * rx));
    BEP_STM32_GPIO_PUPDR = v | (1u << (2u * rx));

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
