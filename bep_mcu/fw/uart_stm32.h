/*
 * uart_stm32.h - STM32F4 USART (F401/F411/F446 ...), reference manual RM0368 §19.
 *
 * SR 0x00 (bit3 ORE, bit5 RXNE, bit7 TXE), DR 0x04, BRR 0x08 (oversampling by 16:
 * BRR = f_pclk / baud, rounded), CR1 0x0C (bit2 RE, bit3 TE, bit5 RXNEIE, bit13 UE).
 * Reading SR then DR clears RXNE and an overrun (ORE).
 *
 * QEMU's model (hw/char/stm32f2xx_usart.c, -M netduinoplus2) differs in two ways that
 * matter here: it drops, rather than refuses, bytes that arrive while CR1.UE or CR1.RE
 * is clear (so the port does nothing slow before enabling the USART; a request sent as
 * QEMU starts can still be lost, and the host resends it), and it takes no new byte
 * while RXNE is set, which is what makes the ring's flow control lossless there
 * (bep_rx_ring.h). It never sets ORE; transmission is synchronous (TXE always set).
 */
#ifndef BEP_UART_STM32_H
#define BEP_UART_STM32_H

#include <stdint.h>

#include "bep_cortexm.h"
#include "bep_rx_ring.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_STM32_SR(base) BEP_REG32((base) + 0x00u)
#define BEP_STM32_DR(base) BEP_REG32((base) + 0x04u)
#define BEP_STM32_BRR(base) BEP_REG32((base) + 0x08u)
#define BEP_STM32_CR1(base) BEP_REG32((base) + 0x0Cu)
#define BEP_STM32_CR2(base) BEP_REG32((base) + 0x10u)
#define BEP_STM32_CR3(base) BEP_REG32((base) + 0x14u)

#define BEP_STM32_SR_ORE (1u << 3)
#define BEP_STM32_SR_RXNE (1u << 5)
#define BEP_STM32_SR_TXE (1u << 7)
#define BEP_STM32_CR1_RE (1u << 2)
#define BEP_STM32_CR1_TE (1u << 3)
#define BEP_STM32_CR1_RXNEIE (1u << 5)
#define BEP_STM32_CR1_UE (1u << 13)

static inline void bep_stm32_usart_init(uint32_t base, uint32_t pclk_hz, uint32_t baud)
{
    BEP_STM32_CR1(base) = 0u;
    BEP_STM32_CR2(base) = 0u; /* 1 stop bit */
    BEP_STM32_CR3(base) = 0u; /* no flow control */
    BEP_STM32_BRR(base) = (pclk_hz + baud / 2u) / baud;
    BEP_STM32_CR1(base) = BEP_STM32_CR1_UE | BEP_STM32_CR1_TE | BEP_STM32_CR1_RE | BEP_STM32_CR1_RXNEIE;
}

static inline void bep_stm32_putc(uint32_t base, uint8_t byte)
{
    while ((BEP_STM32_SR(base) & BEP_STM32_SR_TXE) == 0u) {
    }
    BEP_STM32_DR(base) = byte;
}

/* Receive interrupt. Ring full: leave RXNE set. An overrun alone (ORE without RXNE)
 * is cleared by the same SR-then-DR read; its byte is lost and the host retries. */
static inline void bep_stm32_rx_irq(uint32_t base)
{
    uint32_t sr;
    while ((sr = BEP_STM32_SR(base)) & (BEP_STM32_SR_RXNE | BEP_STM32_SR_ORE)) {
        uint8_t byte;
        if ((sr & BEP_STM32_SR_RXNE) && !bep_rx_room()) {
            bep_rx_stall();
            return;
        }
        byte = (uint8_t)(BEP_STM32_DR(base) & 0xFFu);
        if (sr & BEP_STM32_SR_RXNE) bep_rx_push(byte);
    }
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_UART_STM32_H */
