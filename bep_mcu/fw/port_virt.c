/*
 * port_virt.c - QEMU's RISC-V "virt" machine, one rv32imac hart in machine mode
 * (-bios none: no firmware of QEMU's runs before the image).
 *
 * UART0 is a 16550A at BEP_BOARD_UART_BASE on PLIC source BEP_BOARD_UART_IRQ (the board
 * table, bep_mcu/device/boards.py); the PLIC at BEP_VIRT_PLIC_BASE (hw/riscv/virt.c).
 * PLIC context 0 is hart 0's machine mode: enable bits at 0x2000, priority threshold at
 * 0x200000, claim/complete at 0x200004; each source's priority at 4 * source.
 */
#include "bep_port.h"
#include "uart_ns16550.h"

#define BEP_PLIC_PRIORITY(irq) BEP_REG32(BEP_VIRT_PLIC_BASE + 4u * (uint32_t)(irq))
#define BEP_PLIC_ENABLE(irq) BEP_REG32(BEP_VIRT_PLIC_BASE + 0x2000u + 4u * ((uint32_t)(irq) / 32u))
#define BEP_PLIC_THRESHOLD BEP_REG32(BEP_VIRT_PLIC_BASE + 0x200000u)
#define BEP_PLIC_CLAIM BEP_REG32(BEP_VIRT_PLIC_BASE + 0x200004u)

/* The 16550's 3.6864 MHz clock / (16 * 2) = 115200 baud; the rate does not matter in QEMU. */
#define BEP_VIRT_DIVISOR 2u

void bep_port_init(void)
{
    BEP_PLIC_PRIORITY(BEP_BOARD_UART_IRQ) = 1u;
    BEP_PLIC_THRESHOLD = 0u;
    BEP_PLIC_ENABLE(BEP_BOARD_UART_IRQ) |= 1u << (BEP_BOARD_UART_IRQ % 32u);
    bep_16550_init(BEP_BOARD_UART_BASE, BEP_VIRT_DIVISOR);
}

/* bep_rx_ring.h masks the UART's line while its ring is full and unmasks it when there is
 * room. At the UART (IER), not at the PLIC: the 16550 drops its level when IER is cleared
 * and raises it anew when IER turns it back on with data waiting, so the unmasking never
 * depends on how a PLIC (real, or QEMU's model) treats a level that stayed up while its
 * source was disabled (the PLIC gateway's claim/complete rules). */
void bep_irq_line_enable(uint32_t irq)
{
    (void)irq;
    BEP_16550_IER(BEP_BOARD_UART_BASE) = BEP_16550_IER_RDI;
}

void bep_irq_line_disable(uint32_t irq)
{
    (void)irq;
    BEP_16550_IER(BEP_BOARD_UART_BASE) = 0u;
}

/* The machine external interrupt: claim the source from the PLIC, serve it, complete it. */
void bep_port_uart_irq(void)
{
    uint32_t source = BEP_PLIC_CLAIM;
    if (source == BEP_BOARD_UART_IRQ) bep_16550_rx_irq(BEP_BOARD_UART_BASE);
    if (source != 0u) BEP_PLIC_CLAIM = source;
}

void bep_port_write(const uint8_t *data, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) bep_16550_putc(BEP_BOARD_UART_BASE, data[i]);
}

size_t bep_port_read(uint8_t *dst, size_t max) { return bep_rx_pop(dst, max); }

/* Flash. virt's flash (two CFI pflash banks at 0x20000000) cannot be read, so not run from,
 * while it is being programmed: the image and the store are in the DRAM QEMU loads the image
 * to, which it keeps across a system reset except where the image is loaded (flash_ram_nor.h). */
#include "flash_ram_nor.h"
