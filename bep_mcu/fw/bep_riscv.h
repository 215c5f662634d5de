/*
 * bep_riscv.h - the few RV32 machine-mode instructions and registers the firmware uses
 * (Zicsr and wfi; no vendor headers). The firmware runs in machine mode only, one hart.
 *
 * The external interrupt controller is the board's (a PLIC on QEMU's virt): its line
 * functions live in the port file, which defines them before it includes the UART driver.
 * The CSR instructions enable Zicsr in their own asm: the compiler runs with plain
 * -march=rv32imac, the multilib Debian's toolchain links (bep_mcu/cgen/toolchain.py).
 */
#ifndef BEP_RISCV_H
#define BEP_RISCV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))
#define BEP_REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))

/* One CSR instruction with Zicsr enabled for it alone. */
#define BEP_CSR_ASM(insn) ".option push\n\t.option arch, +zicsr\n\t" insn "\n\t.option pop"

#define BEP_MCAUSE_INTERRUPT 0x80000000u
#define BEP_MTVEC_VECTORED 1u    /* mtvec mode: interrupt n at base + 4 n, exceptions at base */

/* The interrupt cause of the UART's line (mcause without the interrupt bit), from the board
 * table: 11 (machine external, through a PLIC) on virt, the CPU line the interrupt matrix
 * routes the UART to on an ESP32-C3. */
#ifndef BEP_RISCV_IRQ_CAUSE
#error "BEP_RISCV_IRQ_CAUSE is set by the build (bep_mcu/device/boards.py)"
#endif

static inline void bep_irq_disable(void) { __asm__ volatile(BEP_CSR_ASM("csrci mstatus, 8") ::: "memory"); }
static inline void bep_irq_enable(void) { __asm__ volatile(BEP_CSR_ASM("csrsi mstatus, 8") ::: "memory"); }
/* wfi wakes on an interrupt that is pending and enabled in mie even while mstatus.MIE is
 * clear, as Cortex-M's wfi does with PRIMASK set: bep_rx_ring.h's sleep relies on it. */
static inline void bep_wfi(void) { __asm__ volatile("wfi" ::: "memory"); }

/* mtvec = a vector table (256-byte aligned) in vectored mode: the ESP32-C3 has no other
 * mode, and on virt it is the same. */
static inline void bep_csr_write_mtvec(const void *table)
{
    __asm__ volatile(BEP_CSR_ASM("csrw mtvec, %0") : : "r"((uintptr_t)table | BEP_MTVEC_VECTORED) : "memory");
}

static inline void bep_csr_set_mie(uint32_t bits)
{
    __asm__ volatile(BEP_CSR_ASM("csrs mie, %0") : : "r"(bits) : "memory");
}

static inline uint32_t bep_csr_read_mcause(void)
{
    uint32_t v;
    __asm__ volatile(BEP_CSR_ASM("csrr %0, mcause") : "=r"(v));
    return v;
}

/* The line functions of the board's interrupt controller (the port file's). */
void bep_irq_line_enable(uint32_t irq);
void bep_irq_line_disable(uint32_t irq);

#if defined(BEP_RISCV_RESET_ADDR)
/** Reset the machine now: a warm reset through the board's reset register (QEMU virt's
 * SiFive test device); QEMU loads the image again and leaves the rest of memory as it was. */
static inline void bep_system_reset(void)
{
    BEP_REG32(BEP_RISCV_RESET_ADDR) = BEP_RISCV_RESET_VALUE;
    for (;;) {
    }
}
#endif

/** QEMU only: nothing to do here. QEMU's 16550 takes bytes from the host as soon as the
 * machine starts and asks for more whenever its receive register is read, so its I/O loop
 * never waits the way it does for the Cortex-M UARTs (bep_cortexm.h). */
static inline void bep_qemu_io_kick(void) {}

#ifdef __cplusplus
}
#endif

#endif /* BEP_RISCV_H */
