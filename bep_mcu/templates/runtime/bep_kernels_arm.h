/*
 * bep_kernels_arm.h - the Arm inline assembly of bep_kernels.c, and nothing else.
 *
 * Internal (included by bep_kernels.c, and by bep_runtime.c for the repack). Two kinds:
 *  - one-instruction wrappers of the DSP extension (USADA8, QADD8), which GCC has no
 *    builtin for;
 *  - four hand-scheduled inner loops (BEP_USE_ASM=1): the XNOR-popcount dot in Thumb-2
 *    and Thumb-1, the int8 row update with QADD8 and with SWAR32 on Thumb-1. GCC at -Os
 *    spends a quarter to a third more instructions on addressing and register moves
 *    in the same loops written in C; docs/performance.md counts both.
 * Each loop computes exactly what the C path beside its call in bep_kernels.c computes
 * (tests/test_icount.py trains every variant bit for bit against numpy in an emulator).
 * Everything here is always inlined into its one caller, so its registers are the
 * caller's: the loops are kept as functions only to keep the kernels readable.
 */
#ifndef BEP_KERNELS_ARM_H
#define BEP_KERNELS_ARM_H

#include "bep_runtime_internal.h"

#ifdef __cplusplus
extern "C" { /* C linkage for C++ callers */
#endif

#if BEP_USE_DSP
/* acc + the sum of the four bytes of x (USADA8 against zero). */
BEP_HOT uint32_t bep_usada8(uint32_t x, uint32_t acc)
{
    __asm__("usada8 %0, %1, %2, %0" : "+r"(acc) : "r"(x), "r"(0u));
    return acc;
}

/* Four int8 lanes added with signed saturation (QADD8). */
BEP_HOT uint32_t bep_qadd8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("qadd8 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#endif

#if BEP_USE_ASM && defined(__thumb2__)
/* Disagreements of the pairs of words at *w and *a, added to acc; both pointers end
 * past the last pair (pairs >= 1). Per pair: LDRD both, the 2-bit and 4-bit SWAR steps
 * of each word on the barrel shifter, one nibble-to-byte fold, one horizontal sum
 * (USADA8 with the DSP extension, else a multiply by 0x01010101). */
BEP_HOT uint32_t bep_asm_differ_pairs(const uint32_t **w, const uint32_t **a, uint32_t pairs, uint32_t m1,
                                      uint32_t m2, uint32_t m4, uint32_t acc)
{
    const uint32_t *wp = *w, *ap = *a;
    uint32_t x, y, p, q;
    __asm__("1:\n\t"
            "ldrd %[x], %[y], [%[w]], #8\n\t"
            "ldrd %[p], %[q], [%[a]], #8\n\t"
            "eor %[x], %[x], %[p]\n\t"
            "eor %[y], %[y], %[q]\n\t"
            "and %[p], %[m1], %[x], lsr #1\n\t"
            "and %[q], %[m1], %[y], lsr #1\n\t"
            "sub %[x], %[x], %[p]\n\t"
            "sub %[y], %[y], %[q]\n\t"
            "and %[p], %[m2], %[x], lsr #2\n\t"
            "and %[q], %[m2], %[y], lsr #2\n\t"
            "and %[x], %[x], %[m2]\n\t"
            "and %[y], %[y], %[m2]\n\t"
            "add %[x], %[x], %[p]\n\t"
            "add %[y], %[y], %[q]\n\t"
            "add %[x], %[x], %[y]\n\t"
            "and %[p], %[m4], %[x], lsr #4\n\t"
            "and %[x], %[x], %[m4]\n\t"
            "add %[x], %[x], %[p]\n\t"
#if BEP_USE_DSP
            "usada8 %[acc], %[x], %[k], %[acc]\n\t"
#else
            "mul %[x], %[x], %[k]\n\t"
            "add %[acc], %[acc], %[x], lsr #24\n\t"
#endif
            "subs %[g], %[g], #1\n\t"
            "bne 1b"
            : [w] "+&r"(wp), [a] "+&r"(ap), [g] "+&r"(pairs), [acc] "+&r"(acc), [x] "=&r"(x), [y] "=&r"(y),
              [p] "=&r"(p), [q] "=&r"(q)
            : [m1] "r"(m1), [m2] "r"(m2), [m4] "r"(m4), [k] "r"(BEP_USE_DSP ? 0u : 0x01010101u)
            : "cc", "memory");
    *w = wp;
    *a = ap;
    return acc;
}
#endif

#if BEP_USE_ASM && defined(__thumb2__) && BEP_USE_DSP
/* A whole group of nb (1..32) rows of `pairs` pairs of words each, against the input
 * at `in`: z_b = bits - 2 differ(row b, in) stored at *z, the rows' activation bits
 * (z >= 0) returned at bit b; *w and *z end past the group. The pair loop of
 * bep_asm_differ_pairs with the row loop around it in assembly too, so the thirteen
 * registers it needs stay put (in C, GCC spills and reloads about twenty instructions
 * a row). Two tricks free registers: USADA8 against m2 (bytes of 51 >= any byte count
 * of a pair, 16) adds 204 - count, so the zero register goes and z = 2 acc + c with
 * c = bits - 408 pairs; and a sentinel bit in the activation word, shifted out by the
 * nb-th row, ends the row loop (the carry of the ORRS that shifts the word). The
 * activation bits go in as z < 0 at the top and come out complemented. */
/* One pair of words into acc (a step of bep_asm_differ_pairs, USADA8 against m2). */
#define BEP_T2_PAIR                                  \
    "ldrd %[x], %[y], [%[w]], #8\n\t"                \
    "ldrd %[p], %[q], [%[a]], #8\n\t"                \
    "eor %[x], %[x], %[p]\n\t"                       \
    "eor %[y], %[y], %[q]\n\t"                       \
    "and %[p], %[m1], %[x], lsr #1\n\t"              \
    "and %[q], %[m1], %[y], lsr #1\n\t"              \
    "sub %[x], %[x], %[p]\n\t"                       \
    "sub %[y], %[y], %[q]\n\t"                       \
    "and %[p], %[m2], %[x], lsr #2\n\t"              \
    "and %[q], %[m2], %[y], lsr #2\n\t"              \
    "and %[x], %[x], %[m2]\n\t"                      \
    "and %[y], %[y], %[m2]\n\t"                      \
    "add %[x], %[x], %[p]\n\t"                       \
    "add %[y], %[y], %[q]\n\t"                       \
    "add %[x], %[x], %[y]\n\t"                       \
    "and %[p], %[m4], %[x], lsr #4\n\t"              \
    "and %[x], %[x], %[m4]\n\t"                      \
    "add %[x], %[x], %[p]\n\t"                       \
    "usada8 %[acc], %[x], %[m2], %[acc]\n\t"

/* The row loop around `body`, run g times a row. */
#define BEP_T2_ROWS(body)                             \
    "0:\n\t"                                         \
    "ldr %[a], %[in]\n\t"                            \
    "ldr %[g], %[loops]\n\t"                         \
    "mov %[acc], #0\n"                               \
    "1:\n\t" body                                    \
    "subs %[g], %[g], #1\n\t"                        \
    "bne 1b\n\t"                                     \
    "ldr %[x], %[c]\n\t"                             \
    "add %[x], %[x], %[acc], lsl #1\n\t"             \
    "strh %[x], [%[z]], #2\n\t"                      \
    "and %[x], %[x], #0x80000000\n\t"                \
    "orrs %[acts], %[x], %[acts], lsr #1\n\t"        \
    "bcc 0b"

#define BEP_T2_OPERANDS                                                                                          \
    : [w] "+&r"(wp), [z] "+&r"(zp), [acts] "+&r"(acts), [a] "=&r"(ap), [g] "=&r"(g), [acc] "=&r"(acc),         \
      [x] "=&r"(x), [y] "=&r"(y), [p] "=&r"(p), [q] "=&r"(q)                                                      \
    : [m1] "r"(m1), [m2] "r"(m2), [m4] "r"(m4), [in] "m"(in), [loops] "m"(loops), [c] "m"(c)                    \
    : "cc", "memory"

/* A whole group of nb (1..32) rows of `pairs` pairs of words each, against the input
 * at `in`: z_b = bits - 2 differ(row b, in) stored at *z, the rows' activation bits
 * (z >= 0) returned at bit b; *w and *z end past the group. The pair loop of
 * bep_asm_differ_pairs with the row loop around it in assembly too, so the thirteen
 * registers it needs stay put (in C, GCC spills and reloads about twenty instructions
 * a row); an even number of pairs goes two per loop test. Two tricks free registers:
 * USADA8 against m2 (bytes of 51 >= any byte count of a pair, 16) adds 204 - count,
 * so the zero register goes and z = 2 acc + c with c = bits - 408 pairs; and a
 * sentinel bit in the activation word, shifted out by the nb-th row, ends the row
 * loop (the carry of the ORRS that shifts the word). The activation bits go in as
 * z < 0 at the top and come out complemented. */
BEP_HOT uint32_t bep_asm_forward_rows(const uint32_t **w, const uint32_t *in, uint32_t pairs, uint32_t nb,
                                      int32_t bits, int16_t **z, uint32_t m1, uint32_t m2, uint32_t m4)
{
    const uint32_t *wp = *w, *ap;
    int16_t *zp = *z;
    const int32_t c = bits - 408 * (int32_t)pairs;
    const uint32_t loops = pairs & 1u ? pairs : pairs >> 1;
    uint32_t acts = 1u << (nb - 1u), g, acc, x, y, p, q;
    if (pairs & 1u)
        __asm__(BEP_T2_ROWS(BEP_T2_PAIR) BEP_T2_OPERANDS);
    else
        __asm__(BEP_T2_ROWS(BEP_T2_PAIR BEP_T2_PAIR) BEP_T2_OPERANDS);
    *w = wp;
    *z = zp;
    return ~(acts >> (32u - nb)) & (0xFFFFFFFFu >> (32u - nb));
}
#undef BEP_T2_PAIR
#undef BEP_T2_ROWS
#undef BEP_T2_OPERANDS
#endif

#if BEP_USE_ASM && defined(__thumb2__)
/* The column-form forward pass (bep_slice_count): sixteen listed columns (word offsets
 * at p) of col into the bit planes, a Harley-Seal tree: ones, twos, fours and eights
 * stay in registers in carry-save form, the sixteens ripple up c[4..15]. One CSA,
 * (h, l) = l + a + b, is five instructions that leave h in the register u and use a as
 * scratch; the last one's ORRS tests the carry into the sixteens. All planes start at zero
 * (six STRDs clear c[4..15]). 13 registers: the loop runs until p reaches c[16]. */
#define BEP_T2_CSA_OR(u, l, a, b, orr)   \
    "eor " u ", " l ", " a "\n\t"        \
    "and " a ", " a ", " l "\n\t"        \
    "eor " l ", " u ", " b "\n\t"        \
    "and " u ", " u ", " b "\n\t"        \
    orr " " u ", " u ", " a "\n\t"
#define BEP_T2_CSA(u, l, a, b) BEP_T2_CSA_OR(u, l, a, b, "orr")
#define BEP_T2_LOAD2(o0, o1)                          \
    "ldrh %[a], [%[p], #" o0 "]\n\t"                   \
    "ldrh %[b], [%[p], #" o1 "]\n\t"                   \
    "ldr %[a], [%[col], %[a], lsl #2]\n\t"             \
    "ldr %[b], [%[col], %[b], lsl #2]\n\t"
/* Eight columns: ones and twos take them, the carry into the eights goes to h. */
#define BEP_T2_EIGHT(o0, o1, o2, o3, o4, o5, o6, o7, h)                \
    BEP_T2_LOAD2(o0, o1) BEP_T2_CSA("%[u]", "%[ones]", "%[a]", "%[b]") \
    BEP_T2_LOAD2(o2, o3) BEP_T2_CSA("%[v]", "%[ones]", "%[a]", "%[b]") \
    BEP_T2_CSA("%[f]", "%[twos]", "%[u]", "%[v]")                    \
    BEP_T2_LOAD2(o4, o5) BEP_T2_CSA("%[u]", "%[ones]", "%[a]", "%[b]") \
    BEP_T2_LOAD2(o6, o7) BEP_T2_CSA("%[v]", "%[ones]", "%[a]", "%[b]") \
    BEP_T2_CSA("%[a]", "%[twos]", "%[u]", "%[v]")                    \
    BEP_T2_CSA(h, "%[fours]", "%[f]", "%[a]")
/* The carry u into plane c[off / 4]; done when nothing carries on. */
#define BEP_T2_RIPPLE(off)                 \
    "ldr %[b], [%[c], #" off "]\n\t"        \
    "eor %[a], %[b], %[u]\n\t"              \
    "str %[a], [%[c], #" off "]\n\t"        \
    "ands %[u], %[u], %[b]\n\t"             \
    "beq 2f\n\t"
BEP_HOT void bep_asm_slice16(const uint32_t *col, const uint16_t *p, uint32_t *c)
{
    uint32_t ones = 0, twos = 0, fours = 0, eights = 0, a, b, u, v, f, e;
    __asm__ volatile(
        "movs %[a], #0\n\t" /* the planes above the eights start at zero */
        "movs %[b], #0\n\t"
        "strd %[a], %[b], [%[c], #16]\n\t"
        "strd %[a], %[b], [%[c], #24]\n\t"
        "strd %[a], %[b], [%[c], #32]\n\t"
        "strd %[a], %[b], [%[c], #40]\n\t"
        "strd %[a], %[b], [%[c], #48]\n\t"
        "strd %[a], %[b], [%[c], #56]\n\t"
        "ldr %[a], [%[c], #64]\n\t"
        "cmp %[p], %[a]\n\t"
        "beq 3f\n\t"
        "1:\n\t"
        BEP_T2_EIGHT("0", "2", "4", "6", "8", "10", "12", "14", "%[e]")
        BEP_T2_EIGHT("16", "18", "20", "22", "24", "26", "28", "30", "%[v]")
        BEP_T2_CSA_OR("%[u]", "%[eights]", "%[e]", "%[v]", "orrs") /* Z: nothing carries */
        "beq 2f\n\t"
        BEP_T2_RIPPLE("16") BEP_T2_RIPPLE("20") BEP_T2_RIPPLE("24") BEP_T2_RIPPLE("28")
        BEP_T2_RIPPLE("32") BEP_T2_RIPPLE("36") BEP_T2_RIPPLE("40") BEP_T2_RIPPLE("44")
        BEP_T2_RIPPLE("48") BEP_T2_RIPPLE("52") BEP_T2_RIPPLE("56") BEP_T2_RIPPLE("60")
        "2:\n\t"
        "adds %[p], %[p], #32\n\t"
        "ldr %[a], [%[c], #64]\n\t"
        "cmp %[p], %[a]\n\t"
        "bne 1b\n\t"
        "3:\n\t"
        : [ones] "+r"(ones), [twos] "+r"(twos), [fours] "+r"(fours), [eights] "+r"(eights), [p] "+r"(p),
          [a] "=&r"(a), [b] "=&r"(b), [u] "=&r"(u), [v] "=&r"(v), [f] "=&r"(f), [e] "=&r"(e)
        : [col] "r"(col), [c] "r"(c)
        : "cc", "memory");
    c[0] = ones;
    c[1] = twos;
    c[2] = fours;
    c[3] = eights;
}
/* z and the sign bits of 32 neurons (bep_slice_z, counts below 256): byte j of c[r] is
 * the count S of neuron 8j + r, z = base + sg2 (2 S - T) with T at tn; returns the
 * negative ones' bits. c[7] down to c[0], so one ORR with a shifted operand puts each
 * c[r]'s four signs in place: eight instructions a neuron. */
BEP_HOT uint32_t bep_asm_slice_z8(const uint32_t *c, const int16_t *tn, int16_t *z, int32_t base, int32_t sg2)
{
    uint32_t x, s, t, nq, neg = 0, n = 8;
    c += 8;
    tn += 8;
    z += 8;
#define BEP_T2_NEURON(extract, j, ld, st, collect) \
    extract                                      \
    "ldrsh %[t], [%[tn]" ld "\n\t"               \
    "rsb %[s], %[t], %[s], lsl #1\n\t"          \
    "mla %[s], %[s], %[sg2], %[base]\n\t"       \
    "strh %[s], [%[z]" st "\n\t"                \
    collect
    __asm__ volatile(
            "1:\n\t"
            "ldr %[x], [%[c], #-4]!\n\t"
            BEP_T2_NEURON("uxtb %[s], %[x]\n\t", 0, ", #-2]!", ", #-2]!", "lsr %[nq], %[s], #31\n\t")
            BEP_T2_NEURON("ubfx %[s], %[x], #8, #8\n\t", 1, ", #16]", ", #16]",
                          "lsr %[s], %[s], #31\n\t" "orr %[nq], %[nq], %[s], lsl #8\n\t")
            BEP_T2_NEURON("ubfx %[s], %[x], #16, #8\n\t", 2, ", #32]", ", #32]",
                          "lsr %[s], %[s], #31\n\t" "orr %[nq], %[nq], %[s], lsl #16\n\t")
            BEP_T2_NEURON("lsr %[s], %[x], #24\n\t", 3, ", #48]", ", #48]",
                          "lsr %[s], %[s], #31\n\t" "orr %[nq], %[nq], %[s], lsl #24\n\t")
            "orr %[neg], %[nq], %[neg], lsl #1\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [c] "+&r"(c), [tn] "+&r"(tn), [z] "+&r"(z), [neg] "+&r"(neg), [n] "+&r"(n), [x] "=&r"(x),
              [s] "=&r"(s), [t] "=&r"(t), [nq] "=&r"(nq)
            : [base] "r"(base), [sg2] "r"(sg2)
            : "cc", "memory");
#undef BEP_T2_NEURON
    return neg;
}
/* The list of bep_layer_forward_cols: off + i * ow for every set bit i of x, lowest
 * first; returns the end of the list. The word is bit-reversed once, so CLZ alone finds
 * each bit and BICS clears it and tests for the last: six instructions a bit. */
BEP_HOT uint16_t *bep_asm_list_bits(uint16_t *lp, uint32_t x, uint32_t off, uint32_t ow)
{
    uint32_t b, t, top = 0x80000000u;
    __asm__("rbit %[x], %[x]\n\t"
            "1:\n\t"
            "clz %[b], %[x]\n\t"
            "mla %[t], %[b], %[ow], %[off]\n\t"
            "strh %[t], [%[lp]], #2\n\t"
            "lsr %[t], %[top], %[b]\n\t"
            "bics %[x], %[x], %[t]\n\t"
            "bne 1b\n\t"
            : [lp] "+r"(lp), [x] "+r"(x), [b] "=&r"(b), [t] "=&r"(t)
            : [off] "r"(off), [ow] "r"(ow), [top] "r"(top)
            : "cc", "memory");
    return lp;
}
/* bep_asm_list_bits over n whole words at in, each XORed with flip first, offsets from 0
 * (word k's from 32 k ow): seven instructions a word around the six a bit. */
BEP_HOT uint16_t *bep_asm_list_words(uint16_t *lp, const uint32_t *in, uint32_t n, uint32_t flip, uint32_t ow)
{
    uint32_t x, b, t, off = 0, top = 0x80000000u;
    __asm__("cmp %[n], #0\n\t"
            "beq 4f\n\t"
            "1:\n\t"
            "ldr %[x], [%[in]], #4\n\t"
            "eors %[x], %[x], %[flip]\n\t"
            "beq 3f\n\t"
            "rbit %[x], %[x]\n\t"
            "2:\n\t"
            "clz %[b], %[x]\n\t"
            "mla %[t], %[b], %[ow], %[off]\n\t"
            "strh %[t], [%[lp]], #2\n\t"
            "lsr %[t], %[top], %[b]\n\t"
            "bics %[x], %[x], %[t]\n\t"
            "bne 2b\n\t"
            "3:\n\t"
            "add %[off], %[off], %[ow], lsl #5\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b\n\t"
            "4:\n\t"
            : [lp] "+&r"(lp), [in] "+&r"(in), [n] "+&r"(n), [off] "+&r"(off), [x] "=&r"(x), [b] "=&r"(b),
              [t] "=&r"(t)
            : [flip] "r"(flip), [ow] "r"(ow), [top] "r"(top)
            : "cc", "memory");
    return lp;
}
#undef BEP_T2_RIPPLE
#undef BEP_T2_EIGHT
#undef BEP_T2_LOAD2
#undef BEP_T2_CSA
#undef BEP_T2_CSA_OR
#endif

#if BEP_USE_ASM && defined(__ARM_ARCH_6M__)
/* x = the disagreements of the next words at w and a counted in 4-bit lanes (the first
 * two steps of a SWAR popcount; p is scratch); LDM's write-back moves both pointers on. */
#define BEP_V6M_NIBBLES                 \
    "ldm %[w]!, {%[x]}\n\t"            \
    "ldm %[a]!, {%[p]}\n\t"            \
    "eors %[x], %[p]\n\t"             \
    "lsrs %[p], %[x], #1\n\t"         \
    "ands %[p], %[m1]\n\t"            \
    "subs %[x], %[x], %[p]\n\t"       \
    "lsrs %[p], %[x], #2\n\t"         \
    "ands %[p], %[m2]\n\t"            \
    "ands %[x], %[m2]\n\t"            \
    "adds %[x], %[x], %[p]\n\t"

/* ARMv6-M: the byte counts (four lanes) of the disagreements of the next pairs of
 * words at *w and *a, as many pairs as *n words hold but at most 15, so no lane
 * (<= 16 per pair) overflows; both pointers move past them and *n drops by their words
 * (*n >= 2). A two-operand ALU, most of it on r0-r7 only, and GCC needs a low register
 * of its own to fill high ones, so the loop works in two low registers (x, p) and parks
 * the first word's counts and the masks it does not use often in high ones: 32
 * instructions a pair, against about 45 from the C loop. High operands sit in named
 * registers: GCC's "h" constraint fails to allocate at -Os ("inconsistent operand
 * constraints"). */
BEP_HOT uint32_t bep_asm_byte_counts_v6m(const uint32_t **w, const uint32_t **a, uint32_t *n, uint32_t m1,
                                         uint32_t m2, uint32_t m4)
{
    const uint32_t *wp = *w, *ap = *a;
    uint32_t pairs = *n >> 1 < 15u ? *n >> 1 : 15u, x, p;
    register uint32_t bytes __asm__("r8") = 0;
    register uint32_t park __asm__("r9");
    register uint32_t m4_high __asm__("r10") = m4;
    register const uint32_t *end __asm__("r11") = wp + 2u * pairs;
    *n -= 2u * pairs;
    __asm__(".syntax unified\n" /* GCC hands Thumb-1 inline assembly over in divided syntax */
            "1:\n\t"
            BEP_V6M_NIBBLES
            "mov %[park], %[x]\n\t"
            BEP_V6M_NIBBLES
            "add %[x], %[park]\n\t"
            "mov %[park], %[x]\n\t"
            "lsrs %[x], %[x], #4\n\t"
            "mov %[p], %[m4]\n\t"
            "ands %[x], %[p]\n\t"
            "add %[bytes], %[x]\n\t"
            "mov %[x], %[park]\n\t"
            "ands %[x], %[p]\n\t"
            "add %[bytes], %[x]\n\t"
            "cmp %[w], %[end]\n\t"
            "bne 1b"
            : [w] "+l"(wp), [a] "+l"(ap), [bytes] "+r"(bytes), [x] "=&l"(x), [p] "=&l"(p), [park] "=r"(park)
            : [m1] "l"(m1), [m2] "l"(m2), [m4] "r"(m4_high), [end] "r"(end)
            : "cc", "memory");
    *w = wp;
    *a = ap;
    return bytes;
}

/* The bits of x in reverse order: within each byte by three swaps, then REV. */
BEP_HOT uint32_t bep_reverse32(uint32_t x)
{
    x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
    x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
    x = ((x >> 4) & 0x0F0F0F0Fu) | ((x & 0x0F0F0F0Fu) << 4);
    return __builtin_bswap32(x);
}

/* What bep_asm_forward_rows_v6m reads and writes per row besides its registers. */
typedef struct {
    const uint32_t *in; /* the input vector, reread at every row */
    uint32_t m8;        /* 0x00FF00FF */
    int32_t bits;       /* z = bits - 2 differ */
    int16_t *z;         /* where the next row's z goes */
} bep_rows_v6m_t;

/* ARMv6-M: a whole group of nb (1..32) rows of 2 * pairs words (1 <= pairs <= 15, so
 * no byte lane of a row's counts overflows) against s->in: per pair of words the 2- and
 * 4-bit steps of bep_asm_byte_counts_v6m, but with all three masks in low registers
 * (29 instructions, not 32); per row the fold to a count, z stored at s->z, and the
 * sign of z shifted into the returned word (ADCS: row b's "z < 0" at bit nb - 1 - b);
 * a sentinel bit shifted out by the nb-th row ends the loop. About 24 instructions a
 * row around the pairs, against about 70 with the row loop in C (GCC spills). *w ends
 * past the group. */
BEP_HOT uint32_t bep_asm_forward_rows_v6m(const uint32_t **w, bep_rows_v6m_t *s, uint32_t pairs, uint32_t nb,
                                          uint32_t m1, uint32_t m2, uint32_t m4)
{
    const uint32_t *wp = *w;
    uint32_t x, p, ap;
    register uint32_t bytes __asm__("r8");
    register uint32_t park __asm__("r9");
    register uint32_t neg __asm__("r10") = 1u << (32u - nb);
    register const uint32_t *end __asm__("r11") = wp;
    register uint32_t step __asm__("r12") = 8u * pairs;
    __asm__(".syntax unified\n"
            "0:\n\t"
            "ldr %[a], [%[s], #0]\n\t"
            "movs %[x], #0\n\t"
            "mov %[bytes], %[x]\n\t"
            "add %[end], %[step]\n"
            "1:\n\t"
            BEP_V6M_NIBBLES
            "mov %[park], %[x]\n\t"
            BEP_V6M_NIBBLES
            "add %[x], %[park]\n\t"
            "lsrs %[p], %[x], #4\n\t"
            "ands %[p], %[m4]\n\t"
            "ands %[x], %[m4]\n\t"
            "add %[bytes], %[p]\n\t"
            "add %[bytes], %[x]\n\t"
            "cmp %[w], %[end]\n\t"
            "bne 1b\n\t"
            "mov %[x], %[bytes]\n\t"
            "ldr %[a], [%[s], #4]\n\t"
            "lsrs %[p], %[x], #8\n\t"
            "ands %[p], %[a]\n\t"
            "ands %[x], %[a]\n\t"
            "adds %[x], %[x], %[p]\n\t"
            "lsls %[p], %[x], #16\n\t" /* the two halves summed in the top one, */
            "adds %[x], %[x], %[p]\n\t"
            "lsrs %[x], %[x], #15\n\t" /* as twice the count (bit 15 is clear: <= 480) */
            "ldr %[p], [%[s], #8]\n\t"
            "subs %[p], %[p], %[x]\n\t"
            "ldr %[a], [%[s], #12]\n\t"
            "strh %[p], [%[a]]\n\t"
            "adds %[a], #2\n\t"
            "str %[a], [%[s], #12]\n\t"
            "mov %[x], %[neg]\n\t"
            "lsls %[p], %[p], #1\n\t"
            "adcs %[x], %[x]\n\t"
            "mov %[neg], %[x]\n\t"
            "bcc 0b"
            : [w] "+l"(wp), [a] "=&l"(ap), [x] "=&l"(x), [p] "=&l"(p), [bytes] "=&r"(bytes), [park] "=&r"(park),
              [neg] "+r"(neg), [end] "+r"(end)
            : [s] "l"(s), [m1] "l"(m1), [m2] "l"(m2), [m4] "l"(m4), [step] "r"(step)
            : "cc", "memory");
    *w = wp;
    return neg;
}
#undef BEP_V6M_NIBBLES
#endif

#if BEP_USE_ASM && defined(__thumb2__)
/* The packed signs (1 = non-negative) of `words` x 32 int8 weights at h (4-byte
 * aligned, words >= 1) into out: per eight weights one LDRD, two BICs that leave the
 * complemented sign bits at bits 8k and 8k + 4 (bep_sign8 of bep_runtime.c), one ORR
 * and one multiply that gathers them into the top byte; the four top bytes of a word
 * are merged by shifting the word down 8 at a time. 30 instructions a word, against
 * 36 from GCC (three LDRDs, two LDRs and more shifts). */
BEP_HOT void bep_asm_sign_words(const int8_t *h, uint32_t *out, uint32_t words, uint32_t m_lo, uint32_t m_hi,
                                uint32_t gather)
{
    uint32_t a, b, o;
#define BEP_SIGN8_STEP                           \
    "ldrd %[a], %[b], [%[h]], #8\n\t"           \
    "bic %[a], %[lo], %[a], lsr #7\n\t"         \
    "bic %[b], %[hi], %[b], lsr #3\n\t"         \
    "orr %[a], %[a], %[b]\n\t"                  \
    "mul %[a], %[a], %[g]\n\t"
    __asm__ volatile( /* it writes memory and no output is used */
            "1:\n\t"
            BEP_SIGN8_STEP
            "and %[o], %[a], #0xFF000000\n\t"
            BEP_SIGN8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            BEP_SIGN8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            BEP_SIGN8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            "str %[o], [%[out]], #4\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [h] "+&r"(h), [out] "+&r"(out), [n] "+&r"(words), [a] "=&r"(a), [b] "=&r"(b), [o] "=&r"(o)
            : [lo] "r"(m_lo), [hi] "r"(m_hi), [g] "r"(gather)
            : "cc", "memory");
#undef BEP_SIGN8_STEP
}
#endif

#if BEP_USE_ASM && defined(__thumb2__)
/* The repack of an MLP row's `words` x 32 int8 weights at h (4-byte aligned, words >= 1)
 * against its old signs w, in one pass (bep_repack_words): per eight weights one LDRD, two
 * ANDs that keep the sign bits (at 8k + 3 and 8k + 7 once the low word is shifted down
 * 4), one ORR and one multiply that gathers them into the top byte as bep_sign8 does,
 * here for the negative signs; a word equal to the old signs' complement costs three
 * more. A changed word is stored, and each changed sign toggles `bit` in its column
 * (col + i * stride bytes for bit i of the word; col moves on 32 columns a word) and
 * counts in t (+1 up, -1 down), nine instructions a toggle. Returns t. */
BEP_HOT uint32_t bep_asm_repack_words(const int8_t *h, uint32_t *w, uint32_t words, const uint32_t *col,
                                      uint32_t stride, uint32_t bit, uint32_t t)
{
    uint32_t a, b, o, v;
    const uint32_t g = 0x00204081u, top = 0x80000000u;
#define BEP_NEG8_STEP                           \
    "ldrd %[a], %[b], [%[h]], #8\n\t"          \
    "and %[a], %[a], #0x80808080\n\t"          \
    "and %[b], %[b], #0x80808080\n\t"          \
    "orr %[a], %[b], %[a], lsr #4\n\t"         \
    "mul %[a], %[a], %[g]\n\t"
/* Toggles the column bit of every set bit of the bit-reversed word s, t op= 1 each. */
#define BEP_TOGGLES(s, op, label, done)         \
    "cmp " s ", #0\n\t"                        \
    "beq " done "f\n\t"                        \
    label ":\n\t"                              \
    "clz %[o], " s "\n\t"                      \
    "lsr %[v], %[top], %[o]\n\t"               \
    "bics " s ", " s ", %[v]\n\t"              \
    "mla %[o], %[o], %[stride], %[col]\n\t"    \
    "ldr %[v], [%[o]]\n\t"                     \
    "eor %[v], %[v], %[bit]\n\t"               \
    "str %[v], [%[o]]\n\t"                     \
    op " %[t], %[t], #1\n\t"                   \
    "bne " label "b\n\t"                       \
    done ":\n\t"
    __asm__ volatile( /* it writes memory */
            "1:\n\t"
            BEP_NEG8_STEP
            "and %[o], %[a], #0xFF000000\n\t"
            BEP_NEG8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            BEP_NEG8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            BEP_NEG8_STEP
            "and %[a], %[a], #0xFF000000\n\t"
            "orr %[o], %[a], %[o], lsr #8\n\t"
            "ldr %[v], [%[w]], #4\n\t"
            "eor %[a], %[v], %[o]\n\t" /* all ones: no sign changed */
            "cmn %[a], #1\n\t"
            "beq 4f\n\t"
            "mvn %[o], %[o]\n\t"
            "str %[o], [%[w], #-4]\n\t"
            "bic %[b], %[o], %[v]\n\t" /* up: new and not old */
            "bic %[a], %[v], %[o]\n\t" /* down: old and not new */
            "rbit %[b], %[b]\n\t"
            "rbit %[a], %[a]\n\t"
            BEP_TOGGLES("%[b]", "add", "2", "3")
            BEP_TOGGLES("%[a]", "sub", "5", "4")
            "add %[col], %[col], %[stride], lsl #5\n\t"
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [h] "+&r"(h), [w] "+&r"(w), [n] "+&r"(words), [col] "+&r"(col), [t] "+&r"(t), [a] "=&r"(a),
              [b] "=&r"(b), [o] "=&r"(o), [v] "=&r"(v)
            : [g] "r"(g), [top] "r"(top), [stride] "r"(stride), [bit] "r"(bit)
            : "cc", "memory");
#undef BEP_TOGGLES
#undef BEP_NEG8_STEP
    return t;
}
#endif

#if BEP_USE_ASM && defined(__thumb2__)
/* Winner selection's candidate loop (bep_min_key of bep_runtime.c over the set bits of
 * cand != 0, bit k for neuron z + k, offset + k its index in the group): the word is
 * bit-reversed once, so CLZ alone finds each candidate; |z| by EOR and SUB on the sign;
 * the key's "- 1" folded into the offset (offset - 0x10000 + k + (|z| << 16)). 12
 * instructions a candidate, against 17 from GCC. */
BEP_HOT uint32_t bep_asm_min_key(uint32_t cand, const int16_t *z, uint32_t offset, uint32_t best)
{
    uint32_t k, v, t;
    __asm__("rbit %[c], %[c]\n"
            "1:\n\t"
            "clz %[k], %[c]\n\t"
            "ldrsh %[v], [%[z], %[k], lsl #1]\n\t"
            "eor %[t], %[v], %[v], asr #31\n\t"
            "sub %[v], %[t], %[v], asr #31\n\t"
            "add %[t], %[k], %[o]\n\t"
            "add %[t], %[t], %[v], lsl #16\n\t"
            "cmp %[t], %[b]\n\t"
            "it lo\n\t"
            "movlo %[b], %[t]\n\t"
            "lsr %[t], %[top], %[k]\n\t"
            "bics %[c], %[c], %[t]\n\t"
            "bne 1b"
            : [c] "+&r"(cand), [b] "+&r"(best), [k] "=&r"(k), [v] "=&r"(v), [t] "=&r"(t)
            : [z] "r"(z), [o] "r"(offset - 0x10000u), [top] "r"(0x80000000u)
            : "cc", "memory"); /* it reads z */
    return best;
}
#endif

#if BEP_USE_ASM && defined(__ARM_ARCH_6M__)
/* ARMv6-M (no CLZ): winner selection's candidate loop, one neuron a step, bep_min_key
 * of bep_runtime.c over the set bits of cand != 0 (bit k for neuron z + k, offset + k
 * its index in the group). LSRS shifts the next bit into the carry and tests it in one,
 * and a neuron that is no candidate leaves cand != 0 (a set bit is still to come), so
 * it loops back at once: 4 instructions a neuron that is no candidate, 15 one that is
 * (GCC: 8 and 13). Index and offset step first, so they start one step back. */
BEP_HOT uint32_t bep_asm_min_key_v6m(uint32_t cand, const int16_t *z, uint32_t offset, uint32_t best)
{
    uint32_t v, t, i2 = 0u - 2u, o = offset - 0x10001u; /* the key's "- 1", as in bep_asm_min_key */
    __asm__(".syntax unified\n"
            "1:\n\t"
            "adds %[o], #1\n\t"
            "adds %[i2], #2\n\t"
            "lsrs %[c], %[c], #1\n\t"
            "bcc 1b\n\t"
            "ldrsh %[v], [%[z], %[i2]]\n\t"
            "asrs %[t], %[v], #31\n\t"
            "adds %[v], %[v], %[t]\n\t"
            "eors %[v], %[t]\n\t"
            "lsls %[v], %[v], #16\n\t"
            "adds %[v], %[v], %[o]\n\t"
            "cmp %[v], %[b]\n\t"
            "bhs 2f\n\t"
            "movs %[b], %[v]\n"
            "2:\n\t"
            "cmp %[c], #0\n\t"
            "bne 1b"
            : [c] "+l"(cand), [b] "+l"(best), [o] "+l"(o), [i2] "+l"(i2), [v] "=&l"(v), [t] "=&l"(t)
            : [z] "l"(z)
            : "cc", "memory"); /* it reads z */
    return best;
}
#endif

#if BEP_USE_ASM && BEP_USE_DSP
/* The int8 row update on `words` x 32 weights at h (4-byte aligned, words >= 1), input
 * words at v: per eight weights two nibbles of v ^ flip pick two lane keys from
 * `lanes` (bep_lanes4), one LDRD, two QADD8, one STRD (GCC splits the 64-bit load in
 * two and spends five instructions a word on addressing). */
BEP_HOT void bep_asm_add8_qadd8(int8_t *h, const uint32_t *v, uint32_t words, uint32_t flip, const uint32_t *lanes)
{
    uint32_t x, a, b, k1, k2;
#define BEP_QADD8_PAIR(lo, hi)                                                         \
    lo "ldr %[k1], [%[t], %[k1], lsl #2]\n\t" hi "ldr %[k2], [%[t], %[k2], lsl #2]\n\t" \
       "ldrd %[a], %[b], [%[h]]\n\t"                                                 \
       "qadd8 %[a], %[a], %[k1]\n\t"                                                 \
       "qadd8 %[b], %[b], %[k2]\n\t"                                                 \
       "strd %[a], %[b], [%[h]], #8\n\t"
    __asm__ volatile( /* it writes memory and no output is used */
            "1:\n\t"
            "ldr %[x], [%[v]], #4\n\t"
            "eor %[x], %[x], %[flip]\n\t"
            BEP_QADD8_PAIR("and %[k1], %[x], #15\n\t", "ubfx %[k2], %[x], #4, #4\n\t")
            BEP_QADD8_PAIR("ubfx %[k1], %[x], #8, #4\n\t", "ubfx %[k2], %[x], #12, #4\n\t")
            BEP_QADD8_PAIR("ubfx %[k1], %[x], #16, #4\n\t", "ubfx %[k2], %[x], #20, #4\n\t")
            BEP_QADD8_PAIR("ubfx %[k1], %[x], #24, #4\n\t", "lsr %[k2], %[x], #28\n\t")
            "subs %[n], %[n], #1\n\t"
            "bne 1b"
            : [h] "+&r"(h), [v] "+&r"(v), [n] "+&r"(words), [x] "=&r"(x), [a] "=&r"(a), [b] "=&r"(b),
              [k1] "=&r"(k1), [k2] "=&r"(k2)
            : [t] "r"(lanes), [flip] "r"(flip)
            : "cc", "memory");
#undef BEP_QADD8_PAIR
}
#endif

#if BEP_USE_ASM && defined(__ARM_ARCH_6M__)
/* ARMv6-M: the SWAR32 int8 row update (bep_add4 of bep_kernels.c) of a row of `bits`
 * weights at h (4-byte aligned, bits a multiple of 32, at least 32), input words at v,
 * lane keys from `lanes` (bep_lanes4, or its complement-indexed twin when the caller's
 * flip is all ones, so the loop has no flip).
 * Four weights in 16 instructions (GCC: about 25): each input word splits once into its
 * even and its odd nibbles, so every key offset (nibble * 4, the bits below it clear)
 * comes from two shifts of one of them; STM's write-back steps h. That takes all eight
 * low registers: the operands are pinned to r0-r6 and r7 (the frame pointer of some
 * builds) is saved around the loop; constants and the loop bounds sit in high
 * registers (GCC's "h" constraint fails to allocate at -Os). */
BEP_HOT void bep_asm_add8_swar32(int8_t *h, const uint32_t *v, uint32_t bits, const uint32_t *lanes)
{
    register int8_t *hp __asm__("r0") = h;
    register const uint32_t *t __asm__("r1") = lanes;
    register uint32_t x __asm__("r2"), k __asm__("r3"), w __asm__("r4"), s __asm__("r5"), f __asm__("r6");
    register uint32_t c80 __asm__("r8") = 0x80808080u;
    register uint32_t c02 __asm__("r9") = 0x02020202u;
    register const uint32_t *vp __asm__("r10") = v;
    register uint32_t c0f __asm__("r11") = 0x0F0F0F0Fu;
    register const int8_t *end __asm__("r12") = h + bits;
/* Key offset of the next four weights in k (`key`), then the update of the word at h. */
#define BEP_SWAR4(key)                      \
    key                                     \
    "ldr %[k], [%[t], %[k]]\n\t"            \
    "ldr %[w], [%[h]]\n\t"                  \
    "eors %[w], %[k]\n\t"                   \
    "mov %[s], %[c80]\n\t"                  \
    "ands %[s], %[w]\n\t"                   \
    "eors %[w], %[s]\n\t"                   \
    "add %[w], %[c02]\n\t"                  \
    "mov %[f], %[w]\n\t"                    \
    "ands %[f], %[s]\n\t"                   \
    "lsrs %[f], %[f], #7\n\t"               \
    "subs %[s], %[s], %[f]\n\t"             \
    "orrs %[w], %[s]\n\t"                   \
    "eors %[w], %[k]\n\t"                   \
    "stm %[h]!, {%[w]}\n\t"
/* Nibble n of the input word: r7 holds the even nibbles, x the odd ones. */
#define BEP_EVEN(sh) "lsls %[k], r7, #" #sh "\n\tlsrs %[k], %[k], #26\n\t"
#define BEP_ODD(sh) "lsls %[k], %[x], #" #sh "\n\tlsrs %[k], %[k], #26\n\t"
    __asm__ volatile(".syntax unified\n\t" /* it writes memory and no output is used */
                     "push {r7}\n"
                     "1:\n\t"
                     "mov %[k], %[v]\n\t"
                     "ldm %[k]!, {%[x]}\n\t"
                     "mov %[v], %[k]\n\t"
                     "mov r7, %[c0f]\n\t"
                     "ands r7, %[x]\n\t"
                     "eors %[x], r7\n\t"
                     BEP_SWAR4(BEP_EVEN(28)) BEP_SWAR4(BEP_ODD(24)) BEP_SWAR4(BEP_EVEN(20))
                     BEP_SWAR4(BEP_ODD(16)) BEP_SWAR4(BEP_EVEN(12)) BEP_SWAR4(BEP_ODD(8))
                     BEP_SWAR4(BEP_EVEN(4)) BEP_SWAR4("lsrs %[k], %[x], #26\n\t")
                     "cmp %[h], %[end]\n\t"
                     "beq 2f\n\t"
                     "b 1b\n" /* the loop is longer than a conditional branch reaches */
                     "2:\n\t"
                     "pop {r7}"
                     : [h] "+l"(hp), [x] "=&l"(x), [k] "=&l"(k), [w] "=&l"(w), [s] "=&l"(s), [f] "=&l"(f),
                       [v] "+r"(vp)
                     : [t] "l"(t), [c80] "r"(c80), [c02] "r"(c02), [c0f] "r"(c0f), [end] "r"(end)
                     : "cc", "memory");
#undef BEP_ODD
#undef BEP_EVEN
#undef BEP_SWAR4
}
#endif

#ifdef __cplusplus
}
#endif

#endif /* BEP_KERNELS_ARM_H */
