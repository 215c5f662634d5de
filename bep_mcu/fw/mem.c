/*
 * mem.c - the libc functions GCC may call even with -ffreestanding (struct copies,
 * zeroing), since the firmware links with -nostdlib. Byte loops: small, and these
 * calls are rare (the runtime does its own word loops).
 *
 * no-tree-loop-distribute-patterns: otherwise GCC recognises the loops below as
 * memset/memcpy and compiles them into calls to themselves.
 */
#include <stddef.h>
#include <stdint.h>

#define BEP_NO_LIBCALL __attribute__((optimize("no-tree-loop-distribute-patterns")))

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

BEP_NO_LIBCALL void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

BEP_NO_LIBCALL void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    if (d < s) {
        while (n--) *d++ = *s++;
    } else {
        while (n--) d[n] = s[n];
    }
    return dst;
}

BEP_NO_LIBCALL void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = a, *y = b;
    for (; n; --n, ++x, ++y) {
        if (*x != *y) return (int)*x - (int)*y;
    }
    return 0;
}
