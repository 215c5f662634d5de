/*
 * startup.c - vector table and reset handler for every board (ARMv6-M, v7-M, v8-M).
 *
 * Memory (bep_cortexm.ld): the stack sits at the bottom of RAM, below .data and .bss,
 * so an overflow runs off the start of RAM and faults instead of silently eating the
 * network's state. On ARMv8-M Mainline (Cortex-M33) MSPLIM also guards it.
 *
 * A fault (or any exception besides reset and the UART's) ends the program: in QEMU
 * (BEP_BOARD_QEMU) through semihosting SYS_EXIT_EXTENDED with exit status
 * BEP_FW_FAULT_EXIT, so a crashed emulated board stops QEMU instead of hanging the
 * host; on real hardware it masks interrupts and spins (a debugger shows where).
 */
#include <stddef.h>
#include <stdint.h>

#include "bep_cortexm.h"
#include "bep_port.h"

#define BEP_FW_FAULT_EXIT 3u

/* Provided by the linker script. */
extern uint32_t __bep_stack_limit[];
extern uint32_t __bep_stack_top[];
extern uint32_t __bep_data_load[];
extern uint32_t __bep_data_start[];
extern uint32_t __bep_data_end[];
extern uint32_t __bep_bss_start[];
extern uint32_t __bep_bss_end[];

int main(void);
void bep_reset_handler(void);
void bep_fault_handler(void);

/* Initial stack pointer, then exceptions 1..15, then external lines 0..UART's.
 * Lines below the UART's stay NULL: they are never enabled. */
typedef struct {
    uint32_t *initial_sp;
    void (*handler[15 + BEP_BOARD_UART_IRQ + 1])(void);
} bep_vector_table_t;

__attribute__((section(".vectors"), used)) const bep_vector_table_t bep_vector_table = {
    __bep_stack_top,
    {
        [0] = bep_reset_handler,  /* 1 reset */
        [1] = bep_fault_handler,  /* 2 NMI */
        [2] = bep_fault_handler,  /* 3 HardFault */
        [3] = bep_fault_handler,  /* 4 MemManage (v7-M, v8-M) */
        [4] = bep_fault_handler,  /* 5 BusFault */
        [5] = bep_fault_handler,  /* 6 UsageFault */
        [6] = bep_fault_handler,  /* 7 SecureFault (v8-M) */
        [10] = bep_fault_handler, /* 11 SVCall */
        [11] = bep_fault_handler, /* 12 DebugMonitor */
        [13] = bep_fault_handler, /* 14 PendSV */
        [14] = bep_fault_handler, /* 15 SysTick */
        [15 + BEP_BOARD_UART_IRQ] = bep_port_uart_irq,
    },
};

void bep_reset_handler(void)
{
    const uint32_t *src = __bep_data_load;
    uint32_t *dst = __bep_data_start;
#if defined(__ARM_ARCH_8M_MAIN__)
    __asm__ volatile("msr msplim, %0" : : "r"(__bep_stack_limit));
#endif
    while (dst < __bep_data_end) *dst++ = *src++;
    for (dst = __bep_bss_start; dst < __bep_bss_end; ++dst) *dst = 0u;
    (void)main();
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
        register uint32_t op __asm__("r0") = 0x20u; /* SYS_EXIT_EXTENDED */
        register const uint32_t *arg __asm__("r1") = bep_exit_block;
        __asm__ volatile("bkpt 0xAB" : : "r"(op), "r"(arg) : "memory");
    }
#endif
    for (;;) {
    }
}
