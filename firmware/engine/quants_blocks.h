/* Block layouts of the ggml tensor types (ggml/src/ggml-common.h, block_q4_0 ... block_q8_K).
 * Private to the quants code (quants.c, quants_k_quantize.c); the engine sees only quants.h. */
#ifndef DTE_ENGINE_QUANTS_BLOCKS_H
#define DTE_ENGINE_QUANTS_BLOCKS_H

#include <stdint.h>

#define DTE_QK4_0 32
#define DTE_QK8_0 32
#define DTE_QK_K 256
#define DTE_K_SCALE_SIZE 12

typedef struct {
    uint16_t d;
    uint8_t qs[16];
} dte_block_q4_0;                     /* 18 bytes */
typedef struct {
    uint16_t d, m;
    uint8_t qs[16];
} dte_block_q4_1;                  /* 20 bytes */
typedef struct {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[16];
} dte_block_q5_0;      /* 22 bytes */
typedef struct {
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[16];
} dte_block_q5_1;   /* 24 bytes */
typedef struct {
    uint16_t d;
    int8_t qs[32];
} dte_block_q8_0;                      /* 34 bytes */
typedef struct {
    uint16_t d, s;
    int8_t qs[32];
} dte_block_q8_1;                   /* 36 bytes, s = d * sum(qs) */

/* K-quants: 256-element super-blocks. */
typedef struct {
    uint8_t scales[16];
    uint8_t qs[64];
    uint16_t d, dmin;
} dte_block_q2_K;            /* 84 */
typedef struct {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint16_t d;
} dte_block_q3_K; /* 110 */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qs[128];
} dte_block_q4_K;           /* 144 */
typedef struct {
    uint16_t d, dmin;
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
} dte_block_q5_K; /* 176 */
typedef struct {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint16_t d;
} dte_block_q6_K;   /* 210 */
typedef struct {
    float d;
    int8_t qs[256];
    int16_t bsums[16];
} dte_block_q8_K;                       /* 292 */

_Static_assert(sizeof(dte_block_q4_0) == 18, "block_q4_0");
_Static_assert(sizeof(dte_block_q4_1) == 20, "block_q4_1");
_Static_assert(sizeof(dte_block_q5_0) == 22, "block_q5_0");
_Static_assert(sizeof(dte_block_q5_1) == 24, "block_q5_1");
_Static_assert(sizeof(dte_block_q8_0) == 34, "block_q8_0");
_Static_assert(sizeof(dte_block_q8_1) == 36, "block_q8_1");
_Static_assert(sizeof(dte_block_q2_K) == 84, "block_q2_K");
_Static_assert(sizeof(dte_block_q3_K) == 110, "block_q3_K");
_Static_assert(sizeof(dte_block_q4_K) == 144, "block_q4_K");
_Static_assert(sizeof(dte_block_q5_K) == 176, "block_q5_K");
_Static_assert(sizeof(dte_block_q6_K) == 210, "block_q6_K");
_Static_assert(sizeof(dte_block_q8_K) == 292, "block_q8_K");

/* Unpacking helpers shared by dequantization and the reference dot products. Each turns one super-block's packed
 * quants into one small signed integer per element (index = element position in the block) and its sub-block
 * scales; the float combination is left to the caller so that it follows ggml's order of operations. */
/* Round half to even (x86 _MM_ROUND_NEAREST; ggml-quants.c nearest_int). Valid for |v| < 2^22. */
static inline int dte_nearest_int(float v)
{
    union {
        float f;
        uint32_t u;
    } biased = {.f = v + 12582912.0f}; /* 1.5 * 2^23: the FPU rounds to an integer */
    return (int)(biased.u & 0x007FFFFFu) - 0x00400000;
}

/* Q5_0/Q5_1 qh: the 4 bytes of fifth bits as a little-endian word (bit e belongs to element e). */
static inline uint32_t dte_qh_word(const uint8_t b[4])
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Q4_K / Q5_K: eight 6-bit scales and mins packed in 12 bytes (ggml-quants.c get_scale_min_k4). */
static inline void dte_unpack_scale_min_k4(const uint8_t q[12], uint8_t sc[8], uint8_t mn[8])
{
    for (int j = 0; j < 4; ++j) {
        sc[j] = q[j] & 63;
        mn[j] = q[j + 4] & 63;
    }
    for (int j = 4; j < 8; ++j) {
        sc[j] = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        mn[j] = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* Q2_K: element e uses bits 2*((e%128)/32) of qs[32*(e/128) + e%32]; values 0..3. */
static inline void dte_unpack_q2_K(const dte_block_q2_K *b, int8_t q[DTE_QK_K])
{
    for (int e = 0; e < DTE_QK_K; ++e) {
        q[e] = (int8_t)((b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3);
    }
}

/* Q3_K: 2 low bits like Q2_K, high bit (hmask) clear means -4; values -4..3. Scales: 16 x 6 bits, minus 32. */
static inline void dte_unpack_q3_K(const dte_block_q3_K *b, int8_t q[DTE_QK_K], int8_t sc[16])
{
    for (int e = 0; e < DTE_QK_K; ++e) {
        const int low = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
        const int high = (b->hmask[e % 32] >> (e / 32)) & 1;
        q[e] = (int8_t)(low - (high ? 0 : 4));
    }
    for (int j = 0; j < 16; ++j) {
        const int low = j < 8 ? (b->scales[j] & 0xF) : (b->scales[j - 8] >> 4);
        const int high = (b->scales[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (int8_t)((low | (high << 4)) - 32);
    }
}

/* Q4_K: per 64 elements, 32 low nibbles then 32 high nibbles of qs[32*(e/64) + e%32]; values 0..15. */
static inline void dte_unpack_q4_K(const uint8_t qs[128], int8_t q[DTE_QK_K])
{
    for (int e = 0; e < DTE_QK_K; ++e) {
        const uint8_t byte = qs[32 * (e / 64) + e % 32];
        q[e] = (int8_t)(((e / 32) % 2) ? (byte >> 4) : (byte & 0xF));
    }
}

/* Q5_K: Q4_K plus bit (e/32) of qh[e%32] as value 16; values 0..31. */
static inline void dte_unpack_q5_K(const dte_block_q5_K *b, int8_t q[DTE_QK_K])
{
    dte_unpack_q4_K(b->qs, q);
    for (int e = 0; e < DTE_QK_K; ++e) {
        q[e] = (int8_t)(q[e] + (((b->qh[e % 32] >> (e / 32)) & 1) << 4));
    }
}

/* Q6_K: per 128 elements, quarter r: low 4 bits from ql (r even: low nibble, odd quarter pairs: +32 bytes),
 * high 2 bits from qh[32*(e/128) + e%32] >> 2r; value minus 32: -32..31. */
static inline void dte_unpack_q6_K(const dte_block_q6_K *b, int8_t q[DTE_QK_K])
{
    for (int e = 0; e < DTE_QK_K; ++e) {
        const int chunk = e / 128, quarter = (e % 128) / 32, l = e % 32;
        const uint8_t lbyte = b->ql[64 * chunk + 32 * (quarter & 1) + l];
        const int low = (quarter & 2) ? (lbyte >> 4) : (lbyte & 0xF);
        const int high = (b->qh[32 * chunk + l] >> (2 * quarter)) & 3;
        q[e] = (int8_t)((low | (high << 4)) - 32);
    }
}

#endif
