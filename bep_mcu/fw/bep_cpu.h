/*
 * bep_cpu.h - the core's few instructions and registers, for the core being compiled for:
 * bep_riscv.h on RISC-V, bep_cortexm.h on Cortex-M. Both give the same functions:
 * bep_irq_disable/enable (all interrupts), bep_wfi, bep_irq_line_enable/disable (one
 * external line: the UART's), bep_system_reset (where the board has one) and
 * bep_qemu_io_kick.
 */
#ifndef BEP_CPU_H
#define BEP_CPU_H

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers (as every shipped header; the included ones have their own) */
#endif

#if defined(__riscv)
#include "bep_riscv.h"
#else
#include "bep_cortexm.h"
#endif

#ifdef __cplusplus
}
#endif

#endif /* BEP_CPU_H */
