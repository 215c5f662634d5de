/*
 * uart_nrf51.h - Nordic nRF51 UART (BBC micro:bit v1; QEMU "nrf51_soc.uart").
 *
 * Tasks STARTRX 0x000, STARTTX 0x008; events RXDRDY 0x108, TXDRDY 0x11C (write 0 to
 * clear); INTENSET 0x304 (bit 2 RXDRDY); ENABLE 0x500 (4 = on); PSELTXD 0x50C,
 * PSELRXD 0x514; RXD 0x518, TXD 0x51C; BAUDRATE 0x524. A TXD write is ignored while the
 * previous byte is pending, so each byte waits for its TXDRDY. Reading RXD pops the
 * receive FIFO and raises RXDRDY again while bytes remain.
 */
#ifndef BEP_UART_NRF51_H
#define BEP_UART_NRF51_H

#include <stdint.h>

#include "bep_cortexm.h"
#include "bep_rx_ring.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_NRF51_STARTRX(base) BEP_REG32((base) + 0x000u)
#define BEP_NRF51_STARTTX(base) BEP_REG32((base) + 0x008u)
#define BEP_NRF51_RXDRDY(base) BEP_REG32((base) + 0x108u)
#define BEP_NRF51_TXDRDY(base) BEP_REG32((base) + 0x11Cu)
#define BEP_NRF51_INTENSET(base) BEP_REG32((base) + 0x304u)
#define BEP_NRF51_ENABLE(base) BEP_REG32((base) + 0x500u)
#define BEP_NRF51_PSELTXD(base) BEP_REG32((base) + 0x50Cu)
#define BEP_NRF51_PSELRXD(base) BEP_REG32((base) + 0x514u)
#define BEP_NRF51_RXD(base) BEP_REG32((base) + 0x518u)
#define BEP_NRF51_TXD(base) BEP_REG32((base) + 0x51Cu)
#define BEP_NRF51_BAUDRATE(base) BEP_REG32((base) + 0x524u)

#define BEP_NRF51_ENABLE_ON 4u
#define BEP_NRF51_INTEN_RXDRDY (1u << 2)
#define BEP_NRF51_BAUD_115200 0x01D7E000u

static inline void bep_nrf51_init(uint32_t base, uint32_t tx_pin, uint32_t rx_pin)
{
    BEP_NRF51_PSELTXD(base) = tx_pin;
    BEP_NRF51_PSELRXD(base) = rx_pin;
    BEP_NRF51_BAUDRATE(base) = BEP_NRF51_BAUD_115200;
    BEP_NRF51_ENABLE(base) = BEP_NRF51_ENABLE_ON;
    BEP_NRF51_RXDRDY(base) = 0u;
    BEP_NRF51_TXDRDY(base) = 0u;
    BEP_NRF51_INTENSET(base) = BEP_NRF51_INTEN_RXDRDY;
    BEP_NRF51_STARTTX(base) = 1u;
    BEP_NRF51_STARTRX(base) = 1u;
}

static inline void bep_nrf51_putc(uint32_t base, uint8_t byte)
{
    BEP_NRF51_TXDRDY(base) = 0u;
    BEP_NRF51_TXD(base) = byte;
    while (BEP_NRF51_TXDRDY(base) == 0u) {
    }
}

/* Receive interrupt: clear the event before each read (the read raises it again
 * while the FIFO still holds bytes). Ring full: leave the event set. */
static inline void bep_nrf51_rx_irq(uint32_t base)
{
    while (BEP_NRF51_RXDRDY(base) != 0u) {
        if (!bep_rx_room()) {
            bep_rx_stall();
            return;
        }
        BEP_NRF51_RXDRDY(base) = 0u;
        bep_rx_push((uint8_t)(BEP_NRF51_RXD(base) & 0xFFu));
    }
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_UART_NRF51_H */
