/*
 * cortexm_start.c - the least a Cortex-M image of train_main needs, for QEMU's mps2-an386
 * (tests/test_package.py): a vector table, a reset handler that sets up .data and .bss
 * and calls main, and semihosting for printing and for ending QEMU with main's status
 * (3 on a fault). Linked with bep_mcu/fw/ld/bep_cortexm.ld, whose symbols it uses.
 */
#include <stdint.h>

#include "bep_test_io.h"

int main(void);

extern uint32_t __bep_data_load[], __bep_data_start[], __bep_data_end[], __bep_bss_start[], __bep_bss_end[];
extern uint32_t __bep_stack_top[];

/* Which board the image is for: bep-mcu's emulator checks it (a non-allocated section). */
__attribute__((section(".bep_board"), used)) static const char board_tag[] = "mps2-an386";

static void semihost(uint32_t op, const void *arg)
{
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
}

void bep_test_print(const char *s)
{
    semihost(0x04u, s); /* SYS_WRITE0 */
}

static void bep_test_exit(uint32_t status)
{
    uint32_t block[2];
    block[0] = 0x20026u; /* ADP_Stopped_ApplicationExit */
    block[1] = status;
    semihost(0x20u, block); /* SYS_EXIT_EXTENDED */
    for (;;) {
    }
}

static void bep_test_fault(void)
{
    bep_test_exit(3u);
}

void bep_reset_handler(void)
{
    const uint32_t *src = __bep_data_load;
    uint32_t *dst;
    for (dst = __bep_data_start; dst < __bep_data_end; ++dst) *dst = *src++;
    for (dst = __bep_bss_start; dst < __bep_bss_end; ++dst) *dst = 0u;
    bep_test_exit((uint32_t)main());
}

/* Initial stack pointer, reset, then NMI, HardFault, MemManage, BusFault, UsageFault. */
__attribute__((section(".vectors"), used)) static void (*const vectors[7])(void) = {
    (void (*)(void))__bep_stack_top, bep_reset_handler, bep_test_fault, bep_test_fault, bep_test_fault,
    bep_test_fault, bep_test_fault,
};
