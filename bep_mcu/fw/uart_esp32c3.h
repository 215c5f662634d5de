/*
 * uart_esp32c3.h - the ESP32-C3's UART (ESP32-C3 Technical Reference Manual, "UART
 * Controller"; register offsets as in ESP-IDF's soc/esp32c3/include/soc/uart_reg.h).
 *
 * Registers: FIFO 0x00 (a read pops a received byte, a write pushes one to send), INT_RAW
 * 0x04, INT_ST 0x08, INT_ENA 0x0C, INT_CLR 0x10 (bit0 RXFIFO_FULL: the receive FIFO holds
 * more than CONF1.RXFIFO_FULL_THRHD bytes), STATUS 0x1C (RXFIFO_CNT bits 9:0, TXFIFO_CNT bits
 * 25:16; 128-byte FIFOs), CONF1 0x24 (RXFIFO_FULL_THRHD bits 8:0), ID 0x80 (bit31 UPDATE:
 * write 1 to carry the configuration into the UART core's clock domain; cleared when done).
 * The baud rate, format and pins are the ROM's (UART0 at 115200 8N1 on GPIO21/GPIO20, the
 * development boards' USB serial bridge), left as they are.
 */
#ifndef BEP_UART_ESP32C3_H
#define BEP_UART_ESP32C3_H

#include <stdint.h>

#include "bep_port.h"
#include "bep_cpu.h"
#include "bep_rx_ring.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_ESP_UART_FIFO(base) BEP_REG32((base) + 0x00u)
#define BEP_ESP_UART_INT_ENA(base) BEP_REG32((base) + 0x0Cu)
#define BEP_ESP_UART_INT_CLR(base) BEP_REG32((base) + 0x10u)
#define BEP_ESP_UART_STATUS(base) BEP_REG32((base) + 0x1Cu)
#define BEP_ESP_UART_CONF1(base) BEP_REG32((base) + 0x24u)
#define BEP_ESP_UART_ID(base) BEP_REG32((base) + 0x80u)

#define BEP_ESP_UART_INT_RXFIFO_FULL 0x1u
#define BEP_ESP_UART_RXFIFO_CNT(status) ((status) & 0x3FFu)
#define BEP_ESP_UART_TXFIFO_CNT(status) (((status) >> 16) & 0x3FFu)
#define BEP_ESP_UART_FIFO_BYTES 128u
#define BEP_ESP_UART_THRHD_MASK 0x1FFu
#define BEP_ESP_UART_ID_UPDATE 0x80000000u
#define BEP_ESP_UART_UPDATE_POLLS 10000u

/* Receive interrupt on every byte (threshold 0: "more than 0 bytes"). */
static inline void bep_esp32c3_uart_init(uint32_t base)
{
    BEP_ESP_UART_INT_ENA(base) = 0u;
    BEP_ESP_UART_CONF1(base) &= ~BEP_ESP_UART_THRHD_MASK;
    BEP_ESP_UART_ID(base) |= BEP_ESP_UART_ID_UPDATE;
    (void)bep_port_wait(&BEP_ESP_UART_ID(base), BEP_ESP_UART_ID_UPDATE, 0u, BEP_ESP_UART_UPDATE_POLLS);
    BEP_ESP_UART_INT_CLR(base) = 0xFFFFFFFFu;
    BEP_ESP_UART_INT_ENA(base) = BEP_ESP_UART_INT_RXFIFO_FULL;
}

static inline void bep_esp32c3_uart_putc(uint32_t base, uint8_t byte)
{
    while (BEP_ESP_UART_TXFIFO_CNT(BEP_ESP_UART_STATUS(base)) >= BEP_ESP_UART_FIFO_BYTES - 1u) {
    }
    BEP_ESP_UART_FIFO(base) = byte;
}

/* Receive interrupt: drain the FIFO into the ring, acknowledge, and look once more (a byte
 * between the last look and the acknowledgement would wait with its interrupt cleared).
 * Ring full: leave the bytes in the FIFO, unacknowledged, and mask the line. */
static inline void bep_esp32c3_uart_rx_irq(uint32_t base)
{
    for (;;) {
        while (BEP_ESP_UART_RXFIFO_CNT(BEP_ESP_UART_STATUS(base)) != 0u) {
            if (!bep_rx_room()) {
                bep_rx_stall();
                return;
            }
            bep_rx_push((uint8_t)(BEP_ESP_UART_FIFO(base) & 0xFFu));
        }
        BEP_ESP_UART_INT_CLR(base) = BEP_ESP_UART_INT_RXFIFO_FULL;
        if (BEP_ESP_UART_RXFIFO_CNT(BEP_ESP_UART_STATUS(base)) == 0u) return;
    }
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_UART_ESP32C3_H */
