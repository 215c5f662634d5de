/*
 * bep_semihost.h - how the self-ending images (selftest.c, standalone.c) report: lines to
 * the emulator's console and the exit status, through semihosting (Arm's, which RISC-V
 * shares; QEMU runs with -semihosting-config enable=on; on a board without a debugger the
 * trap instruction would halt it).
 */
#ifndef BEP_SEMIHOST_H
#define BEP_SEMIHOST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

/* One semihosting call: operation op, argument arg; the debugger's (QEMU's) result. Arm:
 * r0, r1 and bkpt 0xAB. RISC-V: a0, a1 and ebreak between slli/srai, the three uncompressed
 * (the sequence that tells the debugger an ebreak is a semihosting call). */
static inline uint32_t bep_sh_call(uint32_t op, const void *arg)
{
#if defined(__riscv)
    register uint32_t r0 __asm__("a0") = op;
    register const void *r1 __asm__("a1") = arg;
    __asm__ volatile(".option push\n\t.option norvc\n\t.balign 4\n\t"
                     "slli zero, zero, 0x1f\n\tebreak\n\tsrai zero, zero, 7\n\t.option pop"
                     : "+r"(r0) : "r"(r1) : "memory");
#else
    register uint32_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
#endif
    return r0;
}

/* SYS_EXIT_EXTENDED (0x20) with ADP_Stopped_ApplicationExit: QEMU exits with `status`. */
__attribute__((noreturn)) static void bep_sh_exit(uint32_t status)
{
    uint32_t block[2];
    block[0] = 0x20026u;
    block[1] = status;
    (void)bep_sh_call(0x20u, block);
    for (;;) {
    }
}

/* SYS_WRITE0 (0x04): a NUL-terminated string to the emulator's console. */
static void bep_sh_write0(const char *s) { (void)bep_sh_call(0x04u, s); }

/* ------------------------------------------------------------ one report line */

/* Longest line: the self-test's MISMATCH with every number at its widest, about 120
 * characters (longer ones are cut, never overrun). */
#define BEP_SH_LINE 160u

/* One line to the console. A tiny format language, not printf's: %s a string, %u an
 * unsigned long, %d a long, %x an unsigned long as 0x%08lX. The buffer lives in this
 * frame only, and it is called from main only (after a batch, an epoch or on the way
 * out), so it never adds to the deepest stack (main -> training step -> forward pass). */
__attribute__((noinline)) static void bep_sh_say(const char *fmt, ...)
{
    static const char hex[] = "0123456789ABCDEF";
    char line[BEP_SH_LINE], digits[10];
    size_t len = 0, n;
    unsigned long u;
    const char *s;
    va_list ap;
    va_start(ap, fmt);
    for (; *fmt != '\0' && len + 2u < BEP_SH_LINE; ++fmt) {
        if (*fmt != '%' || fmt[1] == '\0') {
            line[len++] = *fmt;
            continue;
        }
        switch (*++fmt) {
        case 's':
            for (s = va_arg(ap, const char *); *s != '\0' && len + 2u < BEP_SH_LINE; ++s) line[len++] = *s;
            break;
        case 'd':
        case 'u':
            if (*fmt == 'd') {
                long v = va_arg(ap, long);
                if (v < 0) line[len++] = '-';
                u = v < 0 ? 0ul - (unsigned long)v : (unsigned long)v;
            } else {
                u = va_arg(ap, unsigned long);
            }
            n = 0;
            do {
                digits[n++] = (char)('0' + (char)(u % 10u));
                u /= 10u;
            } while (u != 0u);
            while (n > 0u && len + 2u < BEP_SH_LINE) line[len++] = digits[--n];
            break;
        case 'x':
            u = va_arg(ap, unsigned long);
            for (n = 0; n < 10u && len + 2u < BEP_SH_LINE; ++n)
                line[len++] = n == 0u ? '0' : n == 1u ? 'x' : hex[(u >> (36u - 4u * n)) & 0xFu];
            break;
        default:
            line[len++] = *fmt;
            break;
        }
    }
    va_end(ap);
    line[len++] = '\n';
    line[len] = '\0';
    bep_sh_write0(line);
}

#ifdef __cplusplus
}
#endif

#endif /* BEP_SEMIHOST_H */
