/*
 * bep_runtime.c - the BEP learning rule in portable C99 (see bep_runtime.h).
 *
 * Everything here mirrors bep_mcu/engine/network.py; the comments name the docs/algorithm.md section each
 * step implements. Packed vectors: bit i of word i/32 is feature i, 1 = +1, padding 0.
 *
 * Where the time goes and why the kernels look the way they do is written up, with
 * instruction counts per word of work, in docs/performance.md.
 */
#include "bep_runtime.h"

/* The host plans memory with these numbers, read from bep_runtime.h (bep_mcu/cgen/abi.py):
 * the compiler must agree with them. */
typedef char bep_header_size_check[(sizeof(bep_state_header_t) == BEP_STATE_HEADER_BYTES) ? 1 : -1];
typedef char bep_schedule_state_size_check[(sizeof(bep_schedule_state_t) == BEP_SCHEDULE_STATE_BYTES) ? 1 : -1];
typedef char bep_config_size_check[(sizeof(void *) != 4u || sizeof(bep_config_t) == BEP_CONFIG_BYTES_32) ? 1 : -1];
#if BEP_USE_DSP && !(defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP)
#error "BEP_USE_DSP=1 needs a core with the Arm DSP extension (Cortex-M4, M7, M33)"
#endif
#if BEP_UPDATE8 < 0 || BEP_UPDATE8 > 2
#error "BEP_UPDATE8 must be 0 (SWAR), 1 (one weight at a time) or 2 (SWAR32)"
#endif

/* ------------------------------------------------------------------ helpers */

/* Hot helpers must inline even at -Os (a call per popcount costs a third of the
 * forward pass on Cortex-M). BEP_KERNEL marks the functions whose instruction counts
 * name a part of the step (forward, update, ...): kept apart only in measurement builds. */
#if defined(__GNUC__)
#define BEP_HOT static inline __attribute__((always_inline))
#else
#define BEP_HOT static
#endif
#if BEP_MEASURE && defined(__GNUC__)
#define BEP_KERNEL static __attribute__((noinline))
#else
#define BEP_KERNEL static
#endif

/* GCC folds a constant into each instruction that uses it, and Thumb-2 can then not
 * use the barrel shifter on the other operand ("and r, m, x, lsr #1" needs m in a
 * register); Thumb-1 reloads it from a literal pool. An empty asm makes the constant
 * opaque, so it is loaded once and lives in a register. */
#if defined(__GNUC__) && defined(__thumb__)
#define BEP_IN_REGISTER(v) __asm__("" : "+r"(v))
#else
#define BEP_IN_REGISTER(v) ((void)0)
#endif

/* __builtin_ctz is an instruction or two where the core counts leading zeros (RBIT +
 * CLZ on ARMv7-M and ARMv8-M Mainline, TZCNT/BSF on x86, RBIT + CLZ on AArch64), a
 * libgcc call on ARMv6-M. */
#if defined(__GNUC__) && (defined(__ARM_FEATURE_CLZ) || defined(__x86_64__) || defined(__i386__) || \
                          defined(__aarch64__))
#define BEP_HAS_CTZ 1
#else
#define BEP_HAS_CTZ 0
#endif

/* C99's restrict is not a C++ keyword; GCC and Clang spell it __restrict__ there, so
 * this file also compiles as C++ (e.g. added to a C++ firmware project as is). */
#if !defined(__cplusplus)
#define BEP_RESTRICT restrict
#elif defined(__GNUC__)
#define BEP_RESTRICT __restrict__
#else
#define BEP_RESTRICT
#endif

#if BEP_POPCOUNT_TABLE
static const uint8_t bep_pop8[256] = {
#define B2(n) n, n + 1, n + 1, n + 2
#define B4(n) B2(n), B2(n + 1), B2(n + 1), B2(n + 2)
#define B6(n) B4(n), B4(n + 1), B4(n + 1), B4(n + 2)
    B6(0), B6(1), B6(1), B6(2)
#undef B2
#undef B4
#undef B6
};

BEP_HOT uint32_t bep_pop(uint32_t x)
{
    return (uint32_t)bep_pop8[x & 0xFFu] + bep_pop8[(x >> 8) & 0xFFu] + bep_pop8[(x >> 16) & 0xFFu] +
           bep_pop8[x >> 24];
}
#elif BEP_POPCOUNT_BUILTIN
/* Hosts with a popcount instruction (x86 -mpopcnt, AArch64): used by the host twin. */
BEP_HOT uint32_t bep_pop(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
#else
/* Cortex-M has no popcount instruction and GCC calls libgcc for __builtin_popcount,
 * so the SWAR form is written out. */
BEP_HOT uint32_t bep_pop(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (x * 0x01010101u) >> 24;
}
#endif

/* Internal calls use the static bep_pop so it inlines (a public symbol in a shared
 * object is called through the PLT). */
uint32_t bep_popcount32(uint32_t x) { return bep_pop(x); }

BEP_HOT uint32_t bep_mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7FEB352Du;
    x ^= x >> 15;
    x *= 0x846CA68Bu;
    x ^= x >> 16;
    return x;
}

/* Prefix of a draw that does not depend on the draw index. */
static uint32_t bep_draw_key(uint32_t seed, uint32_t counter, uint32_t layer)
{
    return bep_mix32(bep_mix32(bep_mix32(seed ^ 0x9E3779B9u) ^ counter) ^ layer);
}

uint32_t bep_draw(uint32_t seed, uint32_t counter, uint32_t layer, uint32_t index)
{
    return bep_mix32(bep_draw_key(seed, counter, layer) ^ index);
}

/* High 32 bits of a 32 x 32 product: (a * b) >> 32, the reinforcement index. ARMv6-M
 * (Cortex-M0/M0+) has no long multiply and libgcc's 64-bit one costs ~40 instructions,
 * so there it is built from 16 x 16 products (exact): two when b < 2^16 (every layer
 * of up to 65,535 weights; the sum cannot overflow, as ah * b + 0xFFFF < 2^32), four
 * otherwise. */
BEP_HOT uint32_t bep_mulhi(uint32_t a, uint32_t b)
{
#if BEP_MULHI_PORTABLE
    uint32_t al = a & 0xFFFFu, ah = a >> 16, bl = b & 0xFFFFu, bh = b >> 16;
    if (bh == 0u) return (ah * bl + ((al * bl) >> 16)) >> 16;
    {
        uint32_t lh = al * bh, hl = ah * bl;
        uint32_t mid = ((al * bl) >> 16) + (lh & 0xFFFFu) + (hl & 0xFFFFu);
        return ah * bh + (lh >> 16) + (hl >> 16) + (mid >> 16);
    }
#else
    return (uint32_t)(((uint64_t)a * b) >> 32);
#endif
}

/* Four int8 from memory as one little-endian word (no alignment needed; compilers
 * merge this into one load where the core allows unaligned access). */
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ && \
    (defined(__ARM_FEATURE_UNALIGNED) || defined(__x86_64__) || defined(__i386__) || defined(__aarch64__))
#define BEP_LE_BUILTINS 1 /* a 4-byte __builtin_memcpy is one unaligned load or store here */
#else
#define BEP_LE_BUILTINS 0
#endif

BEP_HOT uint32_t bep_load4(const int8_t *p)
{
#if BEP_LE_BUILTINS
    uint32_t w;
    __builtin_memcpy(&w, p, 4);
    return w;
#else
    const uint8_t *b = (const uint8_t *)p;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
#endif
}

/* Mask of the valid bits in the last word of a vector of `bits` bits. */
static uint32_t bep_last_mask(uint32_t bits)
{
    uint32_t r = bits & 31u;
    return r ? ((1u << r) - 1u) : 0xFFFFFFFFu;
}

static uint32_t bep_get_bit(const uint32_t *v, uint32_t i) { return (v[i >> 5] >> (i & 31u)) & 1u; }

static void bep_put_bit(uint32_t *v, uint32_t i, uint32_t bit)
{
    uint32_t m = 1u << (i & 31u);
    v[i >> 5] = bit ? (v[i >> 5] | m) : (v[i >> 5] & ~m);
}

/* ------------------------------------------------------- XNOR-popcount dot */

/* Disagreements of two packed ±1 vectors over all n words, padding bits included:
 * <w, a> = K - 2 * (differ - padding) (docs/algorithm.md §1). Counting disagreements (XOR) rather
 * than agreements saves a complement per word. Packed weight rows and the classifier
 * have zero padding, so the padding of w ^ a is that of a, the same for every row: the
 * caller subtracts bep_padding(a) once per vector instead of masking each row's last
 * word (an input may carry garbage there; it must never count). */
#if BEP_POPCOUNT_TABLE || BEP_POPCOUNT_BUILTIN
BEP_HOT uint32_t bep_differ(const uint32_t *w, const uint32_t *a, uint32_t n)
{
    uint32_t k, acc = 0;
    for (k = 0; k < n; ++k) acc += bep_pop(w[k] ^ a[k]);
    return acc;
}
#else
/* Paired SWAR: a word's 2-bit and 4-bit steps leave eight nibble counts of at most 4, so
 * two words' nibbles add up without overflow (<= 8) and share one nibble-to-byte fold
 * and one horizontal byte sum (USADA8 where the DSP extension exists, else a multiply):
 * 21 instructions per two words on Cortex-M4 instead of 30 word by word. On ARM the
 * pair loop is written in assembly (BEP_USE_ASM), as GCC at -Os spends a third more on
 * address arithmetic and register moves. */
#define BEP_NIBBLES(x) ((x) -= ((x) >> 1) & m1, ((x) & m2) + (((x) >> 2) & m2))

BEP_HOT uint32_t bep_byte_sum(uint32_t x, uint32_t m4, uint32_t acc)
{
    x = (x & m4) + ((x >> 4) & m4); /* four byte counts, each <= 16 */
#if BEP_USE_DSP
    __asm__("usada8 %0, %1, %2, %0" : "+r"(acc) : "r"(x), "r"(0u));
    return acc;
#else
    return acc + ((x * 0x01010101u) >> 24);
#endif
}

BEP_HOT uint32_t bep_differ(const uint32_t *w, const uint32_t *a, uint32_t n)
{
    uint32_t m1 = 0x55555555u, m2 = 0x33333333u, m4 = 0x0F0F0F0Fu, acc = 0, x;
    BEP_IN_REGISTER(m1);
    BEP_IN_REGISTER(m2);
    BEP_IN_REGISTER(m4);
#if BEP_USE_ASM && defined(__thumb2__)
    if (n >= 2u) {
        uint32_t pairs = n >> 1, y, p, q;
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
                : [w] "+&r"(w), [a] "+&r"(a), [g] "+&r"(pairs), [acc] "+&r"(acc), [x] "=&r"(x), [y] "=&r"(y),
                  [p] "=&r"(p), [q] "=&r"(q)
                : [m1] "r"(m1), [m2] "r"(m2), [m4] "r"(m4), [k] "r"(BEP_USE_DSP ? 0u : 0x01010101u)
                : "cc", "memory");
    }
#elif BEP_USE_ASM && defined(__ARM_ARCH_6M__)
    /* ARMv6-M: a two-operand ALU, most of it on r0-r7 only, and GCC needs a low register
     * of its own to fill high ones, so the loop works in two low registers (x, p) and
     * parks the first word's counts and the masks it does not use often in high ones.
     * The byte counts of up to 15 pairs (<= 16 each) add up in one word before the fold
     * to 16-bit halves: 34 instructions a pair, against about 45 from the C loop. */
    while (n >= 2u) {
        /* High operands sit in named registers: GCC's "h" constraint fails to allocate
         * at -Os ("inconsistent operand constraints"). */
        uint32_t pairs = n >> 1 < 15u ? n >> 1 : 15u, p;
        register uint32_t bytes __asm__("r8") = 0;
        register uint32_t park __asm__("r9");
        register uint32_t m4_high __asm__("r10") = m4;
        register const uint32_t *end __asm__("r11") = w + 2u * pairs;
        n -= 2u * pairs;
        __asm__(".syntax unified\n" /* GCC hands Thumb-1 inline assembly over in divided syntax */
                "1:\n\t"
                "ldr %[x], [%[w]]\n\t"
                "ldr %[p], [%[a]]\n\t"
                "eors %[x], %[p]\n\t"
                "lsrs %[p], %[x], #1\n\t"
                "ands %[p], %[m1]\n\t"
                "subs %[x], %[x], %[p]\n\t"
                "lsrs %[p], %[x], #2\n\t"
                "ands %[p], %[m2]\n\t"
                "ands %[x], %[m2]\n\t"
                "adds %[x], %[x], %[p]\n\t"
                "mov %[park], %[x]\n\t"
                "ldr %[x], [%[w], #4]\n\t"
                "ldr %[p], [%[a], #4]\n\t"
                "eors %[x], %[p]\n\t"
                "lsrs %[p], %[x], #1\n\t"
                "ands %[p], %[m1]\n\t"
                "subs %[x], %[x], %[p]\n\t"
                "lsrs %[p], %[x], #2\n\t"
                "ands %[p], %[m2]\n\t"
                "ands %[x], %[m2]\n\t"
                "adds %[x], %[x], %[p]\n\t"
                "add %[x], %[park]\n\t"
                "adds %[w], #8\n\t"
                "adds %[a], #8\n\t"
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
                : [w] "+l"(w), [a] "+l"(a), [bytes] "+r"(bytes), [x] "=&l"(x), [p] "=&l"(p), [park] "=r"(park)
                : [m1] "l"(m1), [m2] "l"(m2), [m4] "r"(m4_high), [end] "r"(end)
                : "cc", "memory");
        bytes = (bytes & 0x00FF00FFu) + ((bytes >> 8) & 0x00FF00FFu);
        acc += (bytes + (bytes >> 16)) & 0xFFFFu;
    }
#else
    for (; n >= 2u; n -= 2u, w += 2, a += 2) {
        uint32_t y = w[1] ^ a[1];
        x = w[0] ^ a[0];
        acc = bep_byte_sum(BEP_NIBBLES(x) + BEP_NIBBLES(y), m4, acc);
    }
#endif
    if (n & 1u) {
        x = w[0] ^ a[0];
        acc = bep_byte_sum(BEP_NIBBLES(x), m4, acc);
    }
    return acc;
}
#undef BEP_NIBBLES
#endif

/* Set padding bits of a packed vector of `bits` bits (see bep_differ). */
static uint32_t bep_padding(const uint32_t *a, uint32_t bits)
{
    return (bits & 31u) ? bep_pop(a[bits >> 5] >> (bits & 31u)) : 0u;
}

static void bep_zero(uint32_t *v, uint32_t words)
{
    uint32_t k;
    for (k = 0; k < words; ++k) v[k] = 0;
}

static bep_state_header_t *bep_header(void *state) { return (bep_state_header_t *)state; }
static bep_schedule_state_t *bep_schedule(const bep_config_t *cfg, void *state)
{
    return (bep_schedule_state_t *)(void *)((uint8_t *)state + cfg->schedule_off);
}

static uint8_t *bep_bytes(void *state, uint32_t off) { return (uint8_t *)state + off; }
static uint32_t *bep_u32(void *state, uint32_t off) { return (uint32_t *)(void *)bep_bytes(state, off); }
static int16_t *bep_i16(void *state, uint32_t off) { return (int16_t *)(void *)bep_bytes(state, off); }

/* Bytes of one layer's hidden weights (int8 or int16). */
static size_t bep_layer_bytes(const bep_config_t *cfg, uint32_t layer)
{
    return (size_t)cfg->layer[layer].n_weights * (cfg->hidden_bits / 8u);
}

static void bep_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
    size_t k;
    for (k = 0; k < n; ++k) dst[k] = src[k];
}

/* ------------------------------------------------------ saturating row updates */

/* The int8 row update of §2.5: h[i] += bit(v, i) == 1 ? +2 : -2, saturating at
 * [-128, 127], for i < bits. The caller passes `flip` = 0 when the target is +1 and all
 * ones when it is -1, so a set bit of v ^ flip always means +2. Each input nibble picks
 * a word of four lane keys from a table and one lane-parallel add updates four weights.
 * Rows of int8 start at any byte (fan-ins that are not a multiple of 4): aligned rows
 * use word loads and stores, the others unaligned ones (byte by byte where the core has
 * no unaligned access), and the last fan-in % 4 weights go one by one. */

/* One weight: the reference every lane-parallel kernel must equal. */
BEP_HOT void bep_add1(int8_t *h, uint32_t plus)
{
    int32_t t = *h + (plus ? 2 : -2);
    t = t > 127 ? 127 : t;
    *h = (int8_t)(t < -128 ? -128 : t);
}

/* Which int8 kernel: DSP (QADD8), SWAR32, SWAR64 (64-bit hosts), or one weight at a time
 * (BEP_UPDATE8=1, the reference). */
#if BEP_USE_DSP
#define BEP_ROW8_DSP 1
#elif BEP_UPDATE8 == 0 && BEP_LE_BUILTINS && UINTPTR_MAX > 0xFFFFFFFFu
#define BEP_ROW8_SWAR64 1
#elif BEP_UPDATE8 != 1
#define BEP_ROW8_SWAR32 1
#endif

/* Word views of the int8 hidden weights, which are also read and written as bytes: GCC
 * is told they may alias anything, so no access is reordered across another type. */
#if defined(__GNUC__)
typedef uint32_t bep_w32_t __attribute__((__may_alias__));
typedef uint64_t bep_w64_t __attribute__((__may_alias__));
#else
typedef uint32_t bep_w32_t;
typedef uint64_t bep_w64_t;
#endif

#if defined(BEP_ROW8_DSP) || defined(BEP_ROW8_SWAR32)
#if defined(BEP_ROW8_DSP)
/* Cortex-M4/M7/M33: QADD8 adds four int8 lanes with exactly the saturation of the C
 * path; the key of nibble n holds +2 (0x02) or -2 (0xFE) per lane. */
static const uint32_t bep_lanes4[16] = {
    0xFEFEFEFEu, 0xFEFEFE02u, 0xFEFE02FEu, 0xFEFE0202u, 0xFE02FEFEu, 0xFE02FE02u, 0xFE0202FEu, 0xFE020202u,
    0x02FEFEFEu, 0x02FEFE02u, 0x02FE02FEu, 0x02FE0202u, 0x0202FEFEu, 0x0202FE02u, 0x020202FEu, 0x02020202u,
};

BEP_HOT uint32_t bep_add4(uint32_t h, uint32_t key)
{
    uint32_t r;
    __asm__("qadd8 %0, %1, %2" : "=r"(r) : "r"(h), "r"(key));
    return r;
}
#else
/* SWAR32, no DSP (Cortex-M0/M0+/M3): four lanes per 32-bit word. The key of a lane is
 * 0x80 for +2 and 0x7F for -2; v = h ^ key is then the offset-binary value h + 128 for
 * +2 lanes and its complement 127 - h for -2 lanes, so both become one unsigned +2
 * saturating at 255, done on 7 bits so no carry crosses a lane; the same xor maps back. */
static const uint32_t bep_lanes4[16] = {
    0x7F7F7F7Fu, 0x7F7F7F80u, 0x7F7F807Fu, 0x7F7F8080u, 0x7F807F7Fu, 0x7F807F80u, 0x7F80807Fu, 0x7F808080u,
    0x807F7F7Fu, 0x807F7F80u, 0x807F807Fu, 0x807F8080u, 0x80807F7Fu, 0x80807F80u, 0x8080807Fu, 0x80808080u,
};

BEP_HOT uint32_t bep_add4(uint32_t h, uint32_t key)
{
    uint32_t v = h ^ key, hi = v & 0x80808080u;
    uint32_t s = (v ^ hi) + 0x02020202u; /* 7-bit sums, carry in each lane's bit 7 */
    uint32_t full = s & hi;              /* lanes that reached 256: saturate at 255 */
    return ((s ^ hi) | ((full >> 7) * 0xFFu)) ^ key;
}
#endif

BEP_HOT void bep_store4(int8_t *p, uint32_t w)
{
#if BEP_LE_BUILTINS
    __builtin_memcpy(p, &w, 4);
#else
    uint8_t *b = (uint8_t *)p;
    b[0] = (uint8_t)w;
    b[1] = (uint8_t)(w >> 8);
    b[2] = (uint8_t)(w >> 16);
    b[3] = (uint8_t)(w >> 24);
#endif
}

#if defined(BEP_ROW8_DSP)
/* Eight weights at an 8-byte step: one 64-bit load and store (LDRD/STRD), two QADD8s. */
typedef bep_w64_t bep_pair_t;
BEP_HOT void bep_add8(bep_pair_t *h, uint32_t nibbles)
{
    const uint64_t w = *h;
    *h = (uint64_t)bep_add4((uint32_t)w, bep_lanes4[nibbles & 15u]) |
         (uint64_t)bep_add4((uint32_t)(w >> 32), bep_lanes4[(nibbles >> 4) & 15u]) << 32;
}
#else
/* Eight weights as two words (ARMv6-M has no LDRD, and a 64-bit value costs it moves). */
typedef bep_w32_t bep_pair_t[2];
BEP_HOT void bep_add8(bep_pair_t *h, uint32_t nibbles)
{
    (*h)[0] = bep_add4((*h)[0], bep_lanes4[nibbles & 15u]);
    (*h)[1] = bep_add4((*h)[1], bep_lanes4[(nibbles >> 4) & 15u]);
}
#endif

BEP_KERNEL void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t i = 0;
#if BEP_USE_ASM && defined(BEP_ROW8_DSP)
    if (((uintptr_t)h & 3u) == 0u && bits >= 32u) {
        /* The loop below, scheduled by hand: per eight weights two nibbles pick two lane
         * keys, one LDRD, two QADD8, one STRD (GCC splits the 64-bit load in two and
         * spends five instructions a word on addressing). */
        uint32_t words = bits >> 5, x, a, b, k1, k2;
        const uint32_t *vp = v;
        int8_t *hp = h;
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
                : [h] "+&r"(hp), [v] "+&r"(vp), [n] "+&r"(words), [x] "=&r"(x), [a] "=&r"(a), [b] "=&r"(b),
                  [k1] "=&r"(k1), [k2] "=&r"(k2)
                : [t] "r"(bep_lanes4), [flip] "r"(flip)
                : "cc", "memory");
#undef BEP_QADD8_PAIR
        i = bits & ~31u;
    }
#elif BEP_USE_ASM && defined(BEP_ROW8_SWAR32) && defined(__ARM_ARCH_6M__)
    if (((uintptr_t)h & 3u) == 0u && bits >= 32u) {
        /* ARMv6-M: bep_add4 on four weights in 19 instructions (GCC: about 25), on the
         * seven low registers; constants and the loop bounds sit in named high registers
         * (GCC's "h" constraint fails to allocate at -Os). */
        register uint32_t c80 __asm__("r8") = 0x80808080u;
        register uint32_t c02 __asm__("r9") = 0x02020202u;
        register const uint32_t *vp __asm__("r10") = v;
        register uint32_t flip_high __asm__("r11") = flip;
        register const int8_t *end __asm__("r12") = h + (bits & ~31u);
        uint32_t x, k, w, t1, t2;
        int8_t *hp = h;
#define BEP_SWAR4(off)                      \
    "lsls %[k], %[x], #28\n\t"              \
    "lsrs %[k], %[k], #26\n\t"              \
    "ldr %[k], [%[t], %[k]]\n\t"            \
    "lsrs %[x], %[x], #4\n\t"               \
    "ldr %[w], [%[h], #" off "]\n\t"        \
    "eors %[w], %[k]\n\t"                   \
    "mov %[s], %[c80]\n\t"                  \
    "ands %[s], %[w]\n\t"                   \
    "eors %[w], %[s]\n\t"                   \
    "add %[w], %[c02]\n\t"                  \
    "mov %[f], %[w]\n\t"                    \
    "ands %[f], %[s]\n\t"                   \
    "eors %[w], %[s]\n\t"                   \
    "lsrs %[f], %[f], #7\n\t"               \
    "lsls %[s], %[f], #8\n\t"               \
    "subs %[s], %[s], %[f]\n\t"             \
    "orrs %[w], %[s]\n\t"                   \
    "eors %[w], %[k]\n\t"                   \
    "str %[w], [%[h], #" off "]\n\t"
        __asm__ volatile(".syntax unified\n" /* it writes memory and no output is used */
                         "1:\n\t"
                         "mov %[k], %[v]\n\t"
                         "ldm %[k]!, {%[x]}\n\t"
                         "mov %[v], %[k]\n\t"
                         "mov %[k], %[flip]\n\t"
                         "eors %[x], %[k]\n\t"
                         BEP_SWAR4("0") BEP_SWAR4("4") BEP_SWAR4("8") BEP_SWAR4("12")
                         BEP_SWAR4("16") BEP_SWAR4("20") BEP_SWAR4("24") BEP_SWAR4("28")
                         "adds %[h], #32\n\t"
                         "cmp %[h], %[end]\n\t"
                         "beq 2f\n\t"
                         "b 1b\n" /* the loop is longer than a conditional branch reaches */
                         "2:"
                         : [h] "+l"(hp), [x] "=&l"(x), [k] "=&l"(k), [w] "=&l"(w), [s] "=&l"(t1), [f] "=&l"(t2),
                           [v] "+r"(vp)
                         : [t] "l"(bep_lanes4), [c80] "r"(c80), [c02] "r"(c02), [flip] "r"(flip_high),
                           [end] "r"(end)
                         : "cc", "memory");
#undef BEP_SWAR4
        i = bits & ~31u;
    }
#else
    if (((uintptr_t)h & 3u) == 0u) {
        /* 32 weights per input word, written out so every lane key comes from a nibble
         * of one register. */
        bep_pair_t *h2 = (bep_pair_t *)(void *)h;
        for (; i + 32u <= bits; i += 32u, h2 += 4) {
            const uint32_t x = v[i >> 5] ^ flip;
            bep_add8(h2, x);
            bep_add8(h2 + 1, x >> 8);
            bep_add8(h2 + 2, x >> 16);
            bep_add8(h2 + 3, x >> 24);
        }
    }
#endif
    for (; i + 4u <= bits; i += 4u)
        bep_store4(h + i, bep_add4(bep_load4(h + i), bep_lanes4[((v[i >> 5] ^ flip) >> (i & 31u)) & 15u]));
    for (; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#elif defined(BEP_ROW8_SWAR64)
/* 64-bit hosts: eight weights per 64-bit word with no table and no branch, so the
 * compiler vectorises it (the host twin spends most of its time here). On the
 * offset-binary value u = h + 128 of each byte: +2 saturates at u >= 254, -2 at u <= 1;
 * every other lane moves by 2 without carrying into its neighbour. */
BEP_HOT uint64_t bep_add8x8(uint64_t h, uint32_t bits8)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u, lows = 0x7F7F7F7F7F7F7F7Fu;
    uint64_t u = h ^ highs;
    uint64_t spread = ((uint64_t)bits8 * ones) & 0x8040201008040201u; /* lane k keeps bit k */
    uint64_t up = ((((spread + lows) | spread) & highs) >> 7) * 0xFFu; /* 0xFF where +2 */
    uint64_t v = (u >> 1) & lows;
    uint64_t top = ((((v + ones) & highs) >> 7) * 0xFFu) & up;       /* u >= 254, +2 */
    uint64_t bottom = (((~(v + lows) & highs) >> 7) * 0xFFu) & ~up;   /* u <= 1, -2 */
    uint64_t two = ones << 1;
    uint64_t r = u + ((up & ~top) & two) - ((~up & ~bottom) & two);
    return ((r & ~(top | bottom)) | top) ^ highs;
}

BEP_KERNEL void bep_row_add8(int8_t *BEP_RESTRICT h, const uint32_t *BEP_RESTRICT v, uint32_t bits, uint32_t flip)
{
    uint32_t i;
    for (i = 0; i + 8u <= bits; i += 8u) {
        uint64_t w;
        __builtin_memcpy(&w, h + i, 8);
        w = bep_add8x8(w, ((v[i >> 5] ^ flip) >> (i & 31u)) & 0xFFu);
        __builtin_memcpy(h + i, &w, 8);
    }
    for (; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#else
BEP_KERNEL void bep_row_add8(int8_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t i;
    for (i = 0; i < bits; ++i) bep_add1(h + i, ((v[i >> 5] ^ flip) >> (i & 31u)) & 1u);
}
#endif

BEP_KERNEL void bep_row_add16(int16_t *h, const uint32_t *v, uint32_t bits, uint32_t flip)
{
    uint32_t w, n;
    for (w = 0; bits > 0u; ++w, bits -= n) {
        uint32_t x = v[w] ^ flip;
        n = bits < 32u ? bits : 32u;
        for (uint32_t b = 0; b < n; ++b, x >>= 1, ++h) {
            int32_t t = *h + (int32_t)((x & 1u) << 2) - 2;
            t = t > 32767 ? 32767 : t;
            *h = (int16_t)(t < -32768 ? -32768 : t);
        }
    }
}

/* Sign bits (1 = non-negative) of eight int8 weights, given as two little-endian
 * words: the sign of weight k < 4 lands on bit 8k, that of weight 4 + k on bit 8k + 4,
 * and one multiply gathers them into bits 24..31 in weight order (no two partial
 * products meet, so nothing carries). The masks come in registers (see
 * BEP_IN_REGISTER): "bic t, m, w, lsr #7" is then one instruction. */
BEP_HOT uint32_t bep_sign8(uint32_t lo, uint32_t hi, uint32_t m_lo, uint32_t m_hi, uint32_t gather)
{
    return ((m_lo & ~(lo >> 7)) | (m_hi & ~(hi >> 3))) * gather;
}

/* Packed sign of `bits` hidden weights starting at element `first` (sign(0) = +1). */
static void bep_row_sign(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t first,
                         uint32_t bits, uint32_t *out)
{
    uint32_t w, n, b;
    if (cfg->hidden_bits == 8u) {
        const int8_t *h = (const int8_t *)(void *)bep_bytes(state, L->h_off) + first;
        uint32_t m_lo = 0x01010101u, m_hi = 0x10101010u, gather = 0x01020408u;
        BEP_IN_REGISTER(m_lo);
        BEP_IN_REGISTER(m_hi);
        BEP_IN_REGISTER(gather);
        if (((uintptr_t)h & 3u) == 0u) {
            /* Full words of an aligned row: four gathers of eight, word loads. */
            for (; bits >= 32u; bits -= 32u, h += 32) {
#if defined(__thumb2__)
                /* Pairs of words as one 64-bit load each: LDRD. */
                const bep_w64_t *hw = (const bep_w64_t *)(const void *)h;
                const uint64_t q0 = hw[0], q1 = hw[1], q2 = hw[2], q3 = hw[3];
#define BEP_SIGN8(v) bep_sign8((uint32_t)(v), (uint32_t)((v) >> 32), m_lo, m_hi, gather)
#else
                const bep_w32_t *hw = (const bep_w32_t *)(const void *)h;
                const bep_w32_t *q0 = hw, *q1 = hw + 2, *q2 = hw + 4, *q3 = hw + 6;
#define BEP_SIGN8(v) bep_sign8((v)[0], (v)[1], m_lo, m_hi, gather)
#endif
                *out++ = BEP_SIGN8(q0) >> 24 | (BEP_SIGN8(q1) >> 24) << 8 | (BEP_SIGN8(q2) >> 24) << 16 |
                         (BEP_SIGN8(q3) & 0xFF000000u);
#undef BEP_SIGN8
            }
        }
        for (w = 0; bits > 0u; ++w, bits -= n) {
            uint32_t x = 0;
            n = bits < 32u ? bits : 32u;
            for (b = 0; b + 8u <= n; b += 8u)
                x |= (bep_sign8(bep_load4(h + b), bep_load4(h + b + 4), m_lo, m_hi, gather) >> 24) << b;
            for (; b < n; ++b) x |= (uint32_t)(h[b] >= 0) << b;
            out[w] = x;
            h += n;
        }
    } else {
        const int16_t *h = bep_i16(state, L->h_off) + first;
        for (w = 0; bits > 0u; ++w, bits -= n) {
            uint32_t x = 0;
            n = bits < 32u ? bits : 32u;
            for (b = 0; b < n; ++b) x |= (uint32_t)(h[b] >= 0) << b;
            out[w] = x;
            h += n;
        }
    }
}

static bep_status_t bep_check(const bep_config_t *cfg, const void *state, size_t state_len)
{
    if (cfg == NULL || state == NULL) return BEP_ERR_NULL;
    if (cfg->abi != BEP_RUNTIME_ABI) return BEP_ERR_ABI;
    if (((uintptr_t)state & 3u) != 0u) return BEP_ERR_ALIGN;
    if (state_len < cfg->state_bytes) return BEP_ERR_SIZE;
    if (((const bep_state_header_t *)state)->magic != cfg->config_hash) return BEP_ERR_STATE;
    return BEP_OK;
}

/* ------------------------------------------------------------- visible weights */

/* W[row] = sign(H[row]) (sign(0) = +1), and the row's bit in every row of the
 * transpose kept for the backward pass. */
BEP_KERNEL void bep_pack_row(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t row)
{
    uint32_t *w = bep_u32(state, L->w_off) + row * L->in_words;
    uint32_t *wt = bep_u32(state, L->wt_off), i;
    bep_row_sign(cfg, state, L, row * L->cols, L->in_bits, w);
    if (cfg->model == BEP_MODEL_RNN) {
        uint32_t *wr = bep_u32(state, L->wr_off) + row * L->rec_words;
        bep_row_sign(cfg, state, L, row * L->cols + L->in_bits, L->rows, wr);
        /* W_h^T: row i holds, for every neuron, its recurrent weight from neuron i. */
        for (i = 0; i < L->rows; ++i) bep_put_bit(wt + i * L->out_words, row, bep_get_bit(wr, i));
    } else if (L->wt_off != 0u) {
        for (i = 0; i < L->cols; ++i) bep_put_bit(wt + i * L->out_words, row, bep_get_bit(w, i));
    }
}

static void bep_pack_layer(const bep_config_t *cfg, void *state, const bep_layer_t *L)
{
    uint32_t row;
    if (L->wt_off != 0u) bep_zero(bep_u32(state, L->wt_off), (uint32_t)(cfg->model == BEP_MODEL_RNN ? L->rows : L->cols) * L->out_words);
    for (row = 0; row < L->rows; ++row) bep_pack_row(cfg, state, L, row);
}

/* ----------------------------------------------------------------- forward */

/* z = W a (+ W_h a_prev for the RNN), a_out = sign(z), 32 activations per store. */
BEP_KERNEL void bep_layer_forward(const bep_layer_t *L, void *state, const uint32_t *in, const uint32_t *prev,
                                  int16_t *z, uint32_t *a_out)
{
    const uint32_t *w = bep_u32(state, L->w_off), *wr = bep_u32(state, L->wr_off);
    const uint32_t n = L->in_words, n_rec = L->rec_words, rows = L->rows;
    int32_t bits = (int32_t)(L->in_bits + 2u * bep_padding(in, L->in_bits));
    uint32_t j, b;
    if (prev != NULL) bits += (int32_t)(rows + 2u * bep_padding(prev, rows));
    for (j = 0; j < rows; j += 32u) {
        const uint32_t nb = rows - j < 32u ? rows - j : 32u;
        uint32_t acts = 0;
        if (prev == NULL) {
            for (b = 0; b < nb; ++b, w += n) {
                const int32_t zj = bits - 2 * (int32_t)bep_differ(w, in, n);
                *z++ = (int16_t)zj;
                acts |= (uint32_t)(zj >= 0) << b;
            }
        } else {
            for (b = 0; b < nb; ++b, w += n, wr += n_rec) {
                const int32_t zj = bits - 2 * (int32_t)(bep_differ(w, in, n) + bep_differ(wr, prev, n_rec));
                *z++ = (int16_t)zj;
                acts |= (uint32_t)(zj >= 0) << b;
            }
        }
        *a_out++ = acts;
    }
}

/* Runs the network on one packed sample; returns the last hidden activation. */
static const uint32_t *bep_forward(const bep_config_t *cfg, void *state, const uint32_t *x)
{
    uint32_t l, t;
    if (cfg->model == BEP_MODEL_MLP) {
        const uint32_t *in = x;
        for (l = 0; l < cfg->n_layers; ++l) {
            const bep_layer_t *L = &cfg->layer[l];
            uint32_t *a = bep_u32(state, L->a_off);
            bep_layer_forward(L, state, in, NULL, bep_i16(state, L->z_off), a);
            in = a;
        }
        return in;
    } else {
        const bep_layer_t *L = &cfg->layer[0];
        const uint32_t *prev = bep_u32(state, L->t_off) + 2u * L->out_words; /* a_0 = +1 */
        for (t = 0; t < cfg->steps; ++t) {
            uint32_t *a = bep_u32(state, L->a_off) + t * L->out_words;
            bep_layer_forward(L, state, x + t * L->in_words, prev, bep_i16(state, L->z_off) + t * L->rows, a);
            prev = a;
        }
        return prev;
    }
}

/* Logits y_c = <P_c, a_L>; prediction (argmax, ties to the lowest class) and trigger
 * margin (docs/algorithm.md §2.1, §2.3). */
BEP_KERNEL uint16_t bep_classify(const bep_config_t *cfg, const uint32_t *a_last, int32_t label, int32_t *margin)
{
    uint32_t bits = cfg->layer[cfg->n_layers - 1u].rows, n = cfg->class_words, c;
    int32_t best = 0, rival = 0, own = 0, k = (int32_t)(bits + 2u * bep_padding(a_last, bits));
    uint16_t arg = 0;
    int first_rival = 1;
    for (c = 0; c < cfg->n_classes; ++c) {
        int32_t y = k - 2 * (int32_t)bep_differ(cfg->classifier + c * n, a_last, n);
        if (c == 0u || y > best) {
            best = y;
            arg = (uint16_t)c;
        }
        if ((int32_t)c == label) {
            own = y;
        } else if (first_rival || y > rival) {
            rival = y;
            first_rival = 0;
        }
    }
    if (margin != NULL) *margin = own - rival;
    return arg;
}

/* ---------------------------------------------------------------- learning */

/* Winner-takes-update (§2.5) on one layer/step: in each group of γ neurons the wrong
 * neuron with the smallest |s|, s = a*_j z_j, lowest index on ties.
 * A neuron is wrong exactly where its target differs from its activation
 * (a_j = z_j >= 0) and z_j != 0, and then |s| = |z|: one XOR per 32 neurons finds
 * the candidates, and only those load z. */
/* A candidate j: keeps the smallest nonzero |z|, the lowest index on ties. */
BEP_HOT void bep_consider(uint32_t j, const int16_t *z, int32_t *best, uint32_t *winner)
{
    const int32_t v = z[j] < 0 ? -(int32_t)z[j] : z[j];
    if (v != 0 && v < *best) {
        *best = v;
        *winner = j;
    }
}

BEP_KERNEL uint32_t bep_winner(uint32_t start, uint32_t end, const int16_t *z, const uint32_t *act,
                               const uint32_t *target)
{
    uint32_t j, stop, winner = 0xFFFFFFFFu;
    int32_t best = 0x7FFFFFFF;
    for (j = start; j < end; j = stop) {
        uint32_t cand = (act[j >> 5] ^ target[j >> 5]) >> (j & 31u);
        stop = (j | 31u) + 1u < end ? (j | 31u) + 1u : end; /* this word's part of the group */
#if BEP_HAS_CTZ
        /* Jump from candidate to candidate (RBIT + CLZ on ARMv7-M). */
        while (cand != 0u) {
            const uint32_t skip = (uint32_t)__builtin_ctz(cand);
            j += skip;
            if (j >= stop) break;
            bep_consider(j, z, &best, &winner);
            cand = (cand >> skip) >> 1;
            ++j;
        }
#else
        for (; j < stop; ++j, cand >>= 1) {
            if (cand & 1u) bep_consider(j, z, &best, &winner);
        }
#endif
    }
    return winner;
}

/* Each winner's row moves by 2 a*_j [in, prev] (saturating) and is marked dirty for the
 * repack at the end of the batch. */
static void bep_update(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t gamma,
                       const int16_t *z, const uint32_t *act, const uint32_t *target, const uint32_t *in,
                       const uint32_t *prev)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *dirty = bep_u32(state, L->dirty_off);
    uint32_t start, end;
    for (start = 0; start < L->rows; start = end) {
        uint32_t winner, flip, base;
        end = start + gamma < L->rows ? start + gamma : L->rows;
        winner = bep_winner(start, end, z, act, target);
        if (winner == 0xFFFFFFFFu) continue;
        flip = bep_get_bit(target, winner) ? 0u : 0xFFFFFFFFu;
        base = winner * L->cols;
        if (cfg->hidden_bits == 8u) {
            int8_t *h = (int8_t *)(void *)bep_bytes(state, L->h_off) + base;
            bep_row_add8(h, in, L->in_bits, flip);
            if (prev != NULL) bep_row_add8(h + L->in_bits, prev, L->rows, flip);
        } else {
            int16_t *h = bep_i16(state, L->h_off) + base;
            bep_row_add16(h, in, L->in_bits, flip);
            if (prev != NULL) bep_row_add16(h + L->in_bits, prev, L->rows, flip);
        }
        dirty[winner >> 5] |= 1u << (winner & 31u);
        hd->counters.updates++;
    }
}

/* Desired activation of the layer below (§2.4): a*_i = sign(v_i), v = W^T (g ⊙ a*),
 * keeping the current activation where v_i = 0. `wt` rows are the columns of W. */
BEP_KERNEL void bep_backward(const bep_layer_t *upper, const uint32_t *wt, uint32_t n_below,
                             const int16_t *z_upper, const uint32_t *t_upper, const uint32_t *a_below,
                             uint32_t *t_below, uint32_t *gate)
{
    uint32_t j, i, open = 0;
    bep_zero(gate, upper->out_words);
    for (j = 0; j < upper->rows; ++j) {
        int32_t zj = z_upper[j];
        if ((zj < 0 ? -zj : zj) <= upper->gate) {
            gate[j >> 5] |= 1u << (j & 31u);
            ++open;
        }
    }
    for (i = 0; i < n_below; ++i) {
        const uint32_t *col = wt + i * upper->out_words;
        uint32_t k, agree = 0;
        int32_t v;
        for (k = 0; k < upper->out_words; ++k) agree += bep_pop(~(col[k] ^ t_upper[k]) & gate[k]);
        v = 2 * (int32_t)agree - (int32_t)open;
        bep_put_bit(t_below, i, v > 0 ? 1u : (v < 0 ? 0u : bep_get_bit(a_below, i)));
    }
}

static void bep_learn_mlp(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t *gate = bep_u32(state, cfg->gate_off);
    int l;
    const bep_layer_t *top = &cfg->layer[cfg->n_layers - 1u];
    uint32_t k, *t_top = bep_u32(state, top->t_off);
    for (k = 0; k < cfg->class_words; ++k) t_top[k] = cfg->classifier[label * cfg->class_words + k];
    /* All a* come from the forward state, so compute them before any update. */
    for (l = (int)cfg->n_layers - 1; l >= 1; --l) {
        const bep_layer_t *U = &cfg->layer[l], *D = &cfg->layer[l - 1];
        bep_backward(U, bep_u32(state, U->wt_off), D->rows, bep_i16(state, U->z_off), bep_u32(state, U->t_off),
                     bep_u32(state, D->a_off), bep_u32(state, D->t_off), gate);
    }
    for (l = 0; l < (int)cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        const uint32_t *in = l == 0 ? x : bep_u32(state, cfg->layer[l - 1].a_off);
        bep_update(cfg, state, L, hd->gamma[l], bep_i16(state, L->z_off), bep_u32(state, L->a_off),
                   bep_u32(state, L->t_off), in, NULL);
    }
}

/* BEP through time (§3): a*_T = P[c]; for t = T..1 the step's winners move H, then
 * a*_{t-1} comes from W_h^T and the gate on z_t (W is frozen, so order is free). */
static void bep_learn_rnn(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    const bep_layer_t *L = &cfg->layer[0];
    uint32_t *gate = bep_u32(state, cfg->gate_off);
    uint32_t *cur = bep_u32(state, L->t_off);       /* a*_t */
    uint32_t *next = cur + L->out_words;            /* a*_{t-1} */
    const uint32_t *ones = cur + 2u * L->out_words; /* a_0 = +1 */
    uint32_t k, t;
    for (k = 0; k < cfg->class_words; ++k) cur[k] = cfg->classifier[label * cfg->class_words + k];
    for (t = cfg->steps; t-- > 0u;) {
        const int16_t *z = bep_i16(state, L->z_off) + t * L->rows;
        const uint32_t *act = bep_u32(state, L->a_off) + t * L->out_words;
        const uint32_t *prev = t > 0u ? act - L->out_words : ones;
        bep_update(cfg, state, L, hd->gamma[0], z, act, cur, x + t * L->in_words, prev);
        if (t > 0u) {
            bep_backward(L, bep_u32(state, L->wt_off), L->rows, z, cur, prev, next, gate);
            for (k = 0; k < L->out_words; ++k) cur[k] = next[k];
        }
    }
}

/* ------------------------------------------------------------------- API */

bep_status_t bep_init(const bep_config_t *cfg, void *state, size_t state_len, uint32_t seed, uint32_t batches)
{
    bep_state_header_t *hd;
    uint32_t l, k;
    if (cfg == NULL || state == NULL) return BEP_ERR_NULL;
    if (cfg->abi != BEP_RUNTIME_ABI) return BEP_ERR_ABI;
    if (((uintptr_t)state & 3u) != 0u) return BEP_ERR_ALIGN;
    if (state_len < cfg->state_bytes) return BEP_ERR_SIZE;
    bep_zero((uint32_t *)state, cfg->state_bytes / 4u);
    hd = bep_header(state);
    hd->magic = cfg->config_hash;
    hd->seed = seed;
    hd->counters.batches = batches;
    for (l = 0; l < cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        hd->gamma[l] = 1;
        if (cfg->initial_hidden[l] != NULL)
            bep_copy(bep_bytes(state, L->h_off), (const uint8_t *)cfg->initial_hidden[l], bep_layer_bytes(cfg, l));
        bep_pack_layer(cfg, state, L);
    }
    if (cfg->model == BEP_MODEL_RNN) {
        /* A packed all-ones vector: a_0 = +1 (§3). */
        const bep_layer_t *L = &cfg->layer[0];
        uint32_t *ones = bep_u32(state, L->t_off) + 2u * L->out_words;
        for (k = 0; k < L->out_words; ++k) ones[k] = 0xFFFFFFFFu;
        ones[L->out_words - 1u] = bep_last_mask(L->rows);
    }
    return BEP_OK;
}

bep_status_t bep_load_hidden(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                             const void *hidden, size_t hidden_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (hidden == NULL) return BEP_ERR_NULL;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    if (hidden_len != bep_layer_bytes(cfg, layer)) return BEP_ERR_SIZE;
    bep_copy(bep_bytes(state, cfg->layer[layer].h_off), (const uint8_t *)hidden, hidden_len);
    bep_pack_layer(cfg, state, &cfg->layer[layer]);
    return BEP_OK;
}

bep_status_t bep_read_hidden(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                             void *out, size_t out_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    if (out_len != bep_layer_bytes(cfg, layer)) return BEP_ERR_SIZE;
    bep_copy((uint8_t *)out, (const uint8_t *)state + cfg->layer[layer].h_off, out_len);
    return BEP_OK;
}

static bep_status_t bep_check_span(const bep_config_t *cfg, uint32_t layer, uint32_t offset, size_t n)
{
    size_t total;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    total = bep_layer_bytes(cfg, layer);
    if (offset > total || n > total - offset) return BEP_ERR_SIZE;
    return BEP_OK;
}

bep_status_t bep_write_hidden_bytes(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer,
                                    uint32_t offset, const uint8_t *src, size_t n)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (src == NULL && n > 0u) return BEP_ERR_NULL;
    st = bep_check_span(cfg, layer, offset, n);
    if (st != BEP_OK) return st;
    bep_copy(bep_bytes(state, cfg->layer[layer].h_off) + offset, src, n);
    return BEP_OK;
}

bep_status_t bep_read_hidden_bytes(const bep_config_t *cfg, const void *state, size_t state_len, uint32_t layer,
                                   uint32_t offset, uint8_t *dst, size_t n)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (dst == NULL && n > 0u) return BEP_ERR_NULL;
    st = bep_check_span(cfg, layer, offset, n);
    if (st != BEP_OK) return st;
    bep_copy(dst, (const uint8_t *)state + cfg->layer[layer].h_off + offset, n);
    return BEP_OK;
}

bep_status_t bep_repack_layer(const bep_config_t *cfg, void *state, size_t state_len, uint32_t layer)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (layer >= cfg->n_layers) return BEP_ERR_ARG;
    bep_pack_layer(cfg, state, &cfg->layer[layer]);
    return BEP_OK;
}

bep_status_t bep_set_epoch(const bep_config_t *cfg, void *state, size_t state_len, const uint16_t *gamma,
                           size_t n_gamma, const uint32_t *q, size_t n_q)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    bep_state_header_t *hd;
    uint32_t l;
    if (st != BEP_OK) return st;
    if (gamma == NULL || q == NULL) return BEP_ERR_NULL;
    if (n_gamma != cfg->n_layers || n_q != cfg->n_layers) return BEP_ERR_ARG;
    for (l = 0; l < cfg->n_layers; ++l) {
        if (gamma[l] < 1u || gamma[l] > cfg->layer[l].rows) return BEP_ERR_ARG;
        if (q[l] > 0xFFFFFFFFu - 0xFFFFu) return BEP_ERR_ARG;
    }
    hd = bep_header(state);
    for (l = 0; l < cfg->n_layers; ++l) {
        hd->gamma[l] = gamma[l];
        hd->q[l] = q[l];
    }
    return BEP_OK;
}

bep_status_t bep_infer(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x, size_t x_words,
                       uint16_t *out_class)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (x == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words) return BEP_ERR_SIZE;
    *out_class = bep_classify(cfg, bep_forward(cfg, state, x), -1, NULL);
    return BEP_OK;
}

/* One training sample after the caller's checks (§2.1-2.5); returns the prediction. */
static uint16_t bep_learn_sample(const bep_config_t *cfg, void *state, const uint32_t *x, uint16_t label)
{
    bep_state_header_t *hd = bep_header(state);
    int32_t margin = 0;
    uint16_t pred = bep_classify(cfg, bep_forward(cfg, state, x), (int32_t)label, &margin);
    bep_schedule_state_t *sched = bep_schedule(cfg, state);
    hd->counters.samples++;
    if (pred != label) hd->counters.errors++;
    if (hd->counters.samples - sched->start_samples >= BEP_EPOCH_MAX_SAMPLES) { /* bep_schedule_state_t */
        sched->start_samples = hd->counters.samples;
        sched->start_errors = hd->counters.errors;
    }
    if (margin >= cfg->trigger_margin) return pred; /* §2.3: not triggered, nothing changes */
    hd->counters.triggered++;
    hd->batch_triggered++;
    if (cfg->model == BEP_MODEL_MLP)
        bep_learn_mlp(cfg, state, x, label);
    else
        bep_learn_rnn(cfg, state, x, label);
    return pred;
}

bep_status_t bep_train_sample(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                              size_t x_words, uint16_t label, uint16_t *out_class)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (x == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != cfg->input_words) return BEP_ERR_SIZE;
    if (label >= cfg->n_classes) return BEP_ERR_LABEL;
    *out_class = bep_learn_sample(cfg, state, x, label);
    return BEP_OK;
}

/* ------------------------------------------------------------- end of batch */

/* bep_reinforce8[u]: the int8 weight with bit pattern u pushed 2 away from zero,
 * saturating, zero left alone (§2.7): one table load per draw instead of a sign, an
 * add and two clamps. */
#define BEP_R(u) ((uint8_t)((u) == 0 ? 0 : (u) < 126 ? (u) + 2 : (u) < 128 ? 127 : (u) < 130 ? 128 : (u) - 2))
#define BEP_R4(u) BEP_R(u), BEP_R(u + 1), BEP_R(u + 2), BEP_R(u + 3)
#define BEP_R16(u) BEP_R4(u), BEP_R4(u + 4), BEP_R4(u + 8), BEP_R4(u + 12)
#define BEP_R64(u) BEP_R16(u), BEP_R16(u + 16), BEP_R16(u + 32), BEP_R16(u + 48)
static const uint8_t bep_reinforce8[256] = {BEP_R64(0), BEP_R64(64), BEP_R64(128), BEP_R64(192)};
#undef BEP_R64
#undef BEP_R16
#undef BEP_R4
#undef BEP_R

/* §2.7 for one layer: M = (Q + (u & 0xFFFF)) >> 16 draws, index (d * N) >> 32, each
 * pushing its weight 2 away from zero (zero stays), saturating, in draw order. */
BEP_KERNEL void bep_reinforce(const bep_config_t *cfg, void *state, const bep_layer_t *L, uint32_t key, uint32_t q)
{
    const uint32_t n = L->n_weights;
    uint32_t m = (q + (bep_mix32(key) & 0xFFFFu)) >> 16, k;
    if (cfg->hidden_bits == 8u) {
        /* Draw 1, then the pairs (k, k + 1) with k even, whose keys differ in bit 0 only:
         * one loop test and one key per two draws, in draw order. */
        uint8_t *h8 = bep_bytes(state, L->h_off);
        uint32_t i;
        if (m == 0u) return;
        i = bep_mulhi(bep_mix32(key ^ 1u), n);
        h8[i] = bep_reinforce8[h8[i]];
        for (k = 2; k < m; k += 2u) {
            const uint32_t d = key ^ k;
            i = bep_mulhi(bep_mix32(d), n);
            h8[i] = bep_reinforce8[h8[i]];
            i = bep_mulhi(bep_mix32(d ^ 1u), n);
            h8[i] = bep_reinforce8[h8[i]];
        }
        if (k == m) {
            i = bep_mulhi(bep_mix32(key ^ k), n);
            h8[i] = bep_reinforce8[h8[i]];
        }
    } else {
        int16_t *h16 = bep_i16(state, L->h_off);
        for (k = 1; k <= m; ++k) {
            uint32_t idx = bep_mulhi(bep_mix32(key ^ k), n);
            /* Branch-free: the sign of a random weight is unpredictable. */
            int32_t h = h16[idx], t = h + 2 * ((h > 0) - (h < 0));
            t = t > 32767 ? 32767 : t;
            h16[idx] = (int16_t)(t < -32768 ? -32768 : t);
        }
    }
}

/* W = sign(H) for the rows updated in this batch (a dirty bit each), then clear them. */
BEP_KERNEL void bep_repack_dirty(const bep_config_t *cfg, void *state, const bep_layer_t *L)
{
    uint32_t *dirty = bep_u32(state, L->dirty_off), k;
    for (k = 0; k < L->out_words; ++k) {
        uint32_t left = dirty[k], row = k * 32u;
#if BEP_HAS_CTZ
        for (; left != 0u; left &= left - 1u) bep_pack_row(cfg, state, L, row + (uint32_t)__builtin_ctz(left));
#else
        for (; left != 0u; left >>= 1, ++row) {
            if (left & 1u) bep_pack_row(cfg, state, L, row);
        }
#endif
        dirty[k] = 0;
    }
}

/* §2.6-2.7 at the end of a batch, after the caller's checks. Reinforcement never flips
 * a sign, so only the rows updated in this batch need repacking. */
static void bep_close_batch(const bep_config_t *cfg, void *state)
{
    bep_state_header_t *hd = bep_header(state);
    uint32_t l, counter;
    counter = hd->counters.batches++;
    if (hd->batch_triggered == 0u) return;
    hd->batch_triggered = 0;
    for (l = 0; l < cfg->n_layers; ++l) {
        const bep_layer_t *L = &cfg->layer[l];
        bep_reinforce(cfg, state, L, bep_draw_key(hd->seed, counter, l), hd->q[l]);
        bep_repack_dirty(cfg, state, L);
    }
}

bep_status_t bep_end_batch(const bep_config_t *cfg, void *state, size_t state_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    bep_close_batch(cfg, state);
    return BEP_OK;
}

bep_status_t bep_train_batch(const bep_config_t *cfg, void *state, size_t state_len, const uint32_t *x,
                             size_t x_words, const uint16_t *labels, uint16_t *out_class, size_t n_samples)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    size_t k;
    if (st != BEP_OK) return st;
    if (x == NULL || labels == NULL || out_class == NULL) return BEP_ERR_NULL;
    if (x_words != n_samples * cfg->input_words) return BEP_ERR_SIZE;
    for (k = 0; k < n_samples; ++k) {
        if (labels[k] >= cfg->n_classes) return BEP_ERR_LABEL; /* checked first: a batch applies whole or not at all */
    }
    /* Checked once for the whole batch, not again per sample. */
    for (k = 0; k < n_samples; ++k) out_class[k] = bep_learn_sample(cfg, state, x + k * cfg->input_words, labels[k]);
    bep_close_batch(cfg, state);
    return BEP_OK;
}

bep_status_t bep_read_counters(const bep_config_t *cfg, const void *state, size_t state_len, bep_counters_t *out)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    if (st != BEP_OK) return st;
    if (out == NULL) return BEP_ERR_NULL;
    *out = ((const bep_state_header_t *)state)->counters;
    return BEP_OK;
}

bep_status_t bep_reset_counters(const bep_config_t *cfg, void *state, size_t state_len)
{
    bep_status_t st = bep_check(cfg, state, state_len);
    bep_state_header_t *hd;
    bep_schedule_state_t *sched;
    uint32_t batches;
    if (st != BEP_OK) return st;
    hd = bep_header(state);
    batches = hd->counters.batches;
    hd->counters.samples = hd->counters.triggered = hd->counters.errors = hd->counters.updates = 0;
    hd->counters.batches = batches;
    sched = bep_schedule(cfg, state); /* the open epoch is counted from here (bep_schedule_state_t) */
    sched->start_errors = sched->start_samples = 0;
    return BEP_OK;
}
