/*
 * bep_cortexm.h - the few core instructions and registers the firmware uses
 * (no CMSIS dependency; everything here exists on ARMv6-M, ARMv7-M and ARMv8-M).
 */
#ifndef BEP_CORTEXM_H
#define BEP_CORTEXM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#define BEP_REG32(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* NVIC set-enable registers: one bit per external interrupt line. */
#define BEP_NVIC_ISER(n) BEP_REG32(0xE000E100u + 4u * (uint32_t)(n))
/* NVIC clear-enable registers. */
#define BEP_NVIC_ICER(n) BEP_REG32(0xE000E180u + 4u * (uint32_t)(n))

static inline void bep_irq_disable(void) { __asm__ volatile("cpsid i" ::: "memory"); }
static inline void bep_irq_enable(void) { __asm__ volatile("cpsie i" ::: "memory"); }
static inline void bep_wfi(void) { __asm__ volatile("wfi" ::: "memory"); }

/** Enable external interrupt line irq (0..) in the NVIC. */
static inline void bep_nvic_enable(uint32_t irq) { BEP_NVIC_ISER(irq / 32u) = 1u << (irq % 32u); }

/** Disable external interrupt line irq; barriers so it is off before the handler returns. */
static inline void bep_nvic_disable(uint32_t irq)
{
    BEP_NVIC_ICER(irq / 32u) = 1u << (irq % 32u);
    __asm__ volatile("dsb\n\tisb" ::: "memory");
}

/* The UART's line, as bep_rx_ring.h masks and unmasks it (bep_cpu.h). */
static inline void bep_irq_line_enable(uint32_t irq) { bep_nvic_enable(irq); }
static inline void bep_irq_line_disable(uint32_t irq) { bep_nvic_disable(irq); }

/** Reset the core and the system now (SCB AIRCR SYSRESETREQ): a warm reset; QEMU resets
 * the machine and boots the image again, leaving memory outside the image as it was. */
static inline void bep_system_reset(void)
{
    __asm__ volatile("dsb" ::: "memory");
    BEP_REG32(0xE000ED0Cu) = 0x05FA0004u;
    __asm__ volatile("dsb" ::: "memory");
    for (;;) {
    }
}

/* SysTick (present in QEMU on every core; optional on ARMv6-M silicon). */
#define BEP_SYST_CSR BEP_REG32(0xE000E010u)
#define BEP_SYST_RVR BEP_REG32(0xE000E014u)
#define BEP_SYST_CVR BEP_REG32(0xE000E018u)

/** QEMU only: wake QEMU's I/O loop once the UART can receive. QEMU stops polling the
 * host socket while the emulated UART cannot take a byte (before it is enabled), and
 * nothing the UART does afterwards wakes that loop: bytes the host sent meanwhile would
 * wait up to a second. Arming a timer does wake it, so start and stop SysTick once. */
static inline void bep_qemu_io_kick(void)
{
    BEP_SYST_RVR = 0x00FFFFFFu;
    BEP_SYST_CVR = 0u;
    BEP_SYST_CSR = 0x5u; /* enable, processor clock, no interrupt */
    BEP_SYST_CSR = 0u;
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_CORTEXM_H */
