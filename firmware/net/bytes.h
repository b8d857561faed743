/* Big-endian (network order) loads and stores, and small byte helpers, for the network code.
 * Every header field on the wire is big-endian: RFC 791 §3.1, RFC 826, RFC 768, docs/protocol.md. */
#ifndef DTE_NET_BYTES_H
#define DTE_NET_BYTES_H

#include <stddef.h>
#include <stdint.h>

static inline uint16_t dte_get_be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t dte_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static inline uint64_t dte_get_be64(const uint8_t *p)
{
    return ((uint64_t)dte_get_be32(p) << 32) | dte_get_be32(p + 4);
}

static inline void dte_put_be16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void dte_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void dte_put_be64(uint8_t *p, uint64_t v)
{
    dte_put_be32(p, (uint32_t)(v >> 32));
    dte_put_be32(p + 4, (uint32_t)v);
}

static inline void dte_copy_bytes(uint8_t *dst, const uint8_t *src, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        dst[i] = src[i];
    }
}

static inline int dte_same_bytes(const uint8_t *a, const uint8_t *b, size_t size)
{
    for (size_t i = 0; i < size; i++) {
        if (a[i] != b[i]) {
            return 0;
        }
    }
    return 1;
}

#endif
