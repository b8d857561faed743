/* memcpy/memset/memmove/memcmp for the freestanding firmware (firmware only; hosted builds use libc).
 * clang emits calls to these for struct copies and large initialisers even with -fno-builtin, so they must exist.
 * Byte loops on purpose: -ffreestanding keeps clang from turning them back into calls to themselves.
 */
#include <stddef.h>
#include <stdint.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int value, size_t n);
void *memmove(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* The MSVC-style target references _fltused from every object that uses floating point. */
int _fltused = 0;

void *memcpy(void *restrict dst, const void *restrict src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n >= 8) {
        uint64_t word;
        __builtin_memcpy(&word, s, 8);   /* one unaligned 8-byte load/store, never a call */
        __builtin_memcpy(d, &word, 8);
        d += 8;
        s += 8;
        n -= 8;
    }
    while (n--) {
        *d++ = *s++;
    }
    return dst;
}

void *memset(void *dst, int value, size_t n)
{
    unsigned char *d = dst;
    uint64_t word = 0x0101010101010101ULL * (unsigned char)value;
    while (n >= 8) {
        __builtin_memcpy(d, &word, 8);
        d += 8;
        n -= 8;
    }
    while (n--) {
        *d++ = (unsigned char)value;
    }
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    if (d == s || n == 0) {
        return dst;
    }
    if (d < s || d >= s + n) {
        return memcpy(dst, src, n);
    }
    while (n--) {   /* overlapping with dst above src: copy backwards */
        d[n] = s[n];
    }
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a;
    const unsigned char *y = b;
    for (size_t i = 0; i < n; i++) {
        if (x[i] != y[i]) {
            return x[i] < y[i] ? -1 : 1;
        }
    }
    return 0;
}
