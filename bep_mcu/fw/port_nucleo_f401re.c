/*
 * port_nucleo_f401re.c - ST NUCLEO-F401RE (STM32F401RE, Cortex-M4F, 84 MHz max).
 *
 * UNTESTED ON HARDWARE: written from the reference manual (RM0368) and the board's
 * user manual (UM1724); it builds with the same command as the emulated boards.
 *
 * USART2 on PA2 (TX) / PA3 (RX), alternate function 7, is wired to the ST-LINK's
 * virtual COM port (/dev/ttyACM0 on Linux). The core runs from the reset clock, HSI
 * 16 MHz, with no PLL and no bus prescaler, so PCLK1 = 16 MHz and flash needs no wait
 * state. USART2's base (0x40004400) and interrupt line (38) come from the board table
 * (bep_mcu/device/boards.py) as BEP_BOARD_UART_BASE and BEP_BOARD_UART_IRQ.
 */
#include "bep_port.h"
#include "uart_stm32.h"

#define BEP_F4_RCC 0x40023800u
#define BEP_F4_RCC_AHB1ENR BEP_REG32(BEP_F4_RCC + 0x30u)
#define BEP_F4_RCC_APB1ENR BEP_REG32(BEP_F4_RCC + 0x40u)
#define BEP_F4_RCC_AHB1ENR_GPIOAEN (1u << 0)
#define BEP_F4_RCC_APB1ENR_USART2EN (1u << 17)

#define BEP_F4_GPIOA 0x40020000u
#define BEP_F4_GPIOA_MODER BEP_REG32(BEP_F4_GPIOA + 0x00u)
#define BEP_F4_GPIOA_OSPEEDR BEP_REG32(BEP_F4_GPIOA + 0x08u)
#define BEP_F4_GPIOA_PUPDR BEP_REG32(BEP_F4_GPIOA + 0x0Cu)
#define BEP_F4_GPIOA_AFRL BEP_REG32(BEP_F4_GPIOA + 0x20u)

#define BEP_F4_PCLK1_HZ 16000000u /* HSI after reset */
#define BEP_F4_BAUD 115200u

void bep_port_init(void)
{
    uint32_t v;
    BEP_F4_RCC_AHB1ENR |= BEP_F4_RCC_AHB1ENR_GPIOAEN;
    BEP_F4_RCC_APB1ENR |= BEP_F4_RCC_APB1ENR_USART2EN;
    (void)BEP_F4_RCC_APB1ENR; /* read back: the clock is on before the first register access */

    /* PA2, PA3: alternate function (MODER 0b10), AF7 = USART2, medium speed, RX pulled up. */
    v = BEP_F4_GPIOA_MODER & ~((3u << 4) | (3u << 6));
    BEP_F4_GPIOA_MODER = v | (2u << 4) | (2u << 6);
    v = BEP_F4_GPIOA_AFRL & ~((0xFu << 8) | (0xFu << 12));
    BEP_F4_GPIOA_AFRL = v | (7u << 8) | (7u << 12);
    v = BEP_F4_GPIOA_OSPEEDR & ~((3u << 4) | (3u << 6));
    BEP_F4_GPIOA_OSPEEDR = v | (1u << 4) | (1u << 6);
    v = BEP_F4_GPIOA_PUPDR & ~(3u << 6);
    BEP_F4_GPIOA_PUPDR = v | (1u << 6);

    bep_stm32_usart_init(BEP_BOARD_UART_BASE, BEP_F4_PCLK1_HZ, BEP_F4_BAUD);
    bep_nvic_enable(BEP_BOARD_UART_IRQ);
}

void bep_port_uart_irq(void) { bep_stm32_rx_irq(BEP_BOARD_UART_BASE); }

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_stm32_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }
