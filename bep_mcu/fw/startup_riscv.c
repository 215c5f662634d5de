/*
 * startup_riscv.c - reset and trap handling of the RISC-V boards (RV32, machine mode,
 * one hart), the counterpart of startup.c on Cortex-M.
 *
 * Reset: bep_reset_handler (the ELF's entry, first in flash: bep_riscv.ld, bep_esp32c3.ld)
 * sets the stack pointer and calls C, which copies .data, zeroes .bss, points mtvec at the
 * vector table, enables the UART's interrupt cause (the board's interrupt controller is the
 * port file's) and runs main. Memory (bep_riscv.ld): as on Cortex-M, the
 * stack at the bottom of RAM, below .data and .bss.
 *
 * Traps: the UART's interrupt (BEP_RISCV_IRQ_CAUSE) goes to the port (bep_port_uart_irq;
 * on virt it claims the source from the PLIC); anything else (an exception, a stray interrupt) ends the
 * program: in QEMU (BEP_BOARD_QEMU) through semihosting SYS_EXIT_EXTENDED with exit status
 * BEP_FW_FAULT_EXIT, on real hardware interrupts off and a spin (a debugger shows where).
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_port.h"
#include "bep_riscv.h"

#define BEP_FW_FAULT_EXIT 3u

/* Provided by the linker script. */
extern uint32_t __bep_data_load[];
extern uint32_t __bep_data_start[];
extern uint32_t __bep_data_end[];
extern uint32_t __bep_bss_start[];
extern uint32_t __bep_bss_end[];

int main(void);
void bep_reset_handler(void);
void bep_reset_c(void);
void bep_trap_handler(void);
void bep_fault_handler(void);

/* No C before the stack pointer is set. No global pointer either: the linker scripts define
 * no __global_pointer$, so the linker never makes code gp-relative. Then the vector table
 * (mtvec, vectored): every entry, the exceptions' (0) and each interrupt's, jumps to the one
 * handler, which reads mcause; 4-byte jumps, so each is one entry. */
__asm__(".section .text.bep_start, \"ax\", @progbits\n"
        ".globl bep_reset_handler\n"
        "bep_reset_handler:\n"
        "    la sp, __bep_stack_top\n"
        "    j bep_reset_c\n"
        ".section .text.bep_vectors, \"ax\", @progbits\n"
        ".balign 256\n"
        "bep_vector_table:\n"
        ".option push\n"
        ".option norvc\n"
        ".rept 32\n"
        "    j bep_trap_handler\n"
        ".endr\n"
        ".option pop\n"
        ".text\n");
extern const uint32_t bep_vector_table[];

void bep_reset_c(void)
{
    const uint32_t *src = __bep_data_load;
    uint32_t *dst = __bep_data_start;
    while (dst < __bep_data_end) *dst++ = *src++;
    for (dst = __bep_bss_start; dst < __bep_bss_end; ++dst) *dst = 0u;
    bep_csr_write_mtvec(bep_vector_table);
    bep_csr_set_mie(1u << BEP_RISCV_IRQ_CAUSE); /* the UART's cause (on the ESP32-C3 the matrix decides) */
    bep_irq_enable();
    (void)main();
    bep_fault_handler();
}

/* interrupt("machine"): GCC saves what the handler uses and returns with mret. */
__attribute__((interrupt("machine"))) void bep_trap_handler(void)
{
    if (bep_csr_read_mcause() == (BEP_MCAUSE_INTERRUPT | BEP_RISCV_IRQ_CAUSE)) {
        bep_port_uart_irq();
        return;
    }
    bep_fault_handler();
}

#if BEP_BOARD_QEMU
/* SYS_EXIT_EXTENDED's argument block: ADP_Stopped_ApplicationExit, exit status. In
 * flash, so the call needs no stack (the fault may be a stack overflow). */
static const uint32_t bep_exit_block[2] = {0x20026u, BEP_FW_FAULT_EXIT};
#endif

void bep_fault_handler(void)
{
    bep_irq_disable();
#if BEP_BOARD_QEMU
    {
        /* RISC-V semihosting: a0 = operation, a1 = argument, then the three uncompressed
         * instructions slli/ebreak/srai that tell the debugger an ebreak is a call. */
        register uint32_t op __asm__("a0") = 0x20u; /* SYS_EXIT_EXTENDED */
        register const uint32_t *arg __asm__("a1") = bep_exit_block;
        __asm__ volatile(".option push\n\t.option norvc\n\t.balign 4\n\t"
                         "slli zero, zero, 0x1f\n\tebreak\n\tsrai zero, zero, 7\n\t.option pop"
                         : : "r"(op), "r"(arg) : "memory");
    }
#endif
    for (;;) {
    }
}
