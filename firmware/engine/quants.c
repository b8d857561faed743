/* Tensor types: traits, fp16/bf16 conversions, dequantization, activation quantization, vec_dot dispatch.
 *
 * Numerics follow ggml (ggml/src/ggml-quants.c dequantize_row_*, quantize_row_*_ref; ggml-cpu/arch/x86/quants.c
 * quantize_row_q8_0/q8_1 for the x86 activation path). Block layouts: quants_blocks.h. The reference dot products
 * live in quants_dot.c, the dispatch to the generated kernels in quants_matmul.c. No libc.
 */
#include "quants.h"

#include "quants_blocks.h"

/* ---- type traits (ggml.c type_traits: blck_size, type_size) ---- */

struct type_traits {
    const char *name;
    int64_t block_elems;
    int64_t block_bytes;
    bool is_weight;
};

static const struct type_traits *traits_of(uint32_t type)
{
    static const struct type_traits traits[DTE_TYPE_COUNT] = {
        [DTE_TYPE_F32] = {"f32", 1, 4, true},
        [DTE_TYPE_F16] = {"f16", 1, 2, true},
        [DTE_TYPE_Q4_0] = {"q4_0", DTE_QK4_0, sizeof(dte_block_q4_0), true},
        [DTE_TYPE_Q4_1] = {"q4_1", DTE_QK4_0, sizeof(dte_block_q4_1), true},
        [DTE_TYPE_Q5_0] = {"q5_0", DTE_QK4_0, sizeof(dte_block_q5_0), true},
        [DTE_TYPE_Q5_1] = {"q5_1", DTE_QK4_0, sizeof(dte_block_q5_1), true},
        [DTE_TYPE_Q8_0] = {"q8_0", DTE_QK8_0, sizeof(dte_block_q8_0), true},
        [DTE_TYPE_Q8_1] = {"q8_1", DTE_QK8_0, sizeof(dte_block_q8_1), false},
        [DTE_TYPE_Q2_K] = {"q2_K", DTE_QK_K, sizeof(dte_block_q2_K), true},
        [DTE_TYPE_Q3_K] = {"q3_K", DTE_QK_K, sizeof(dte_block_q3_K), true},
        [DTE_TYPE_Q4_K] = {"q4_K", DTE_QK_K, sizeof(dte_block_q4_K), true},
        [DTE_TYPE_Q5_K] = {"q5_K", DTE_QK_K, sizeof(dte_block_q5_K), true},
        [DTE_TYPE_Q6_K] = {"q6_K", DTE_QK_K, sizeof(dte_block_q6_K), true},
        [DTE_TYPE_Q8_K] = {"q8_K", DTE_QK_K, sizeof(dte_block_q8_K), false},
        [DTE_TYPE_BF16] = {"bf16", 1, 2, true},
    };
    if (type >= DTE_TYPE_COUNT || traits[type].name == NULL) {
        return NULL;
    }
    return &traits[type];
}

bool dte_type_is_weight(uint32_t type)
{
    const struct type_traits *t = traits_of(type);
    return t != NULL && t->is_weight;
}

int64_t dte_type_block_elems(uint32_t type)
{
    const struct type_traits *t = traits_of(type);
    return t ? t->block_elems : 0;
}

int64_t dte_type_block_bytes(uint32_t type)
{
    const struct type_traits *t = traits_of(type);
    return t ? t->block_bytes : 0;
}

int64_t dte_type_row_bytes(uint32_t type, int64_t n)
{
    const struct type_traits *t = traits_of(type);
    if (t == NULL || n < 0 || n % t->block_elems != 0 || n / t->block_elems > INT64_MAX / t->block_bytes) {
        return -1;
    }
    return n / t->block_elems * t->block_bytes;
}

const char *dte_type_name(uint32_t type)
{
    const struct type_traits *t = traits_of(type);
    return t ? t->name : "unknown";
}

uint32_t dte_vec_dot_type(uint32_t weight_type)
{
    switch (weight_type) {
    case DTE_TYPE_Q4_0:
    case DTE_TYPE_Q5_0:
    case DTE_TYPE_Q8_0: return DTE_TYPE_Q8_0;
    case DTE_TYPE_Q4_1:
    case DTE_TYPE_Q5_1: return DTE_TYPE_Q8_1;
    case DTE_TYPE_Q2_K:
    case DTE_TYPE_Q3_K:
    case DTE_TYPE_Q4_K:
    case DTE_TYPE_Q5_K:
    case DTE_TYPE_Q6_K: return DTE_TYPE_Q8_K;
    default: return weight_type; /* F32, F16, BF16 multiply with their own type */
    }
}

/* ---- fp16 / bf16 (IEEE 754 binary16; bf16 = top half of binary32) ---- */

static uint32_t f32_bits(float f)
{
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    return v.u;
}

static float f32_from_bits(uint32_t u)
{
    union {
        uint32_t u;
        float f;
    } v = {.u = u};
    return v.f;
}

float dte_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
    if (exp == 0x1F) {
        return f32_from_bits(sign | 0x7F800000u | (man << 13));
    }
    if (exp == 0) {
        if (man == 0) {
            return f32_from_bits(sign);
        }
        exp = 1; /* subnormal: normalise so that bit 10 is the implicit one */
        while ((man & 0x400) == 0) {
            man <<= 1;
            exp--;
        }
        man &= 0x3FF;
    }
    return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13)); /* rebias 15 -> 127 */
}

/* Round-to-nearest-even of a right shift by `shift` (1..31) bits. */
static uint32_t shift_round_even(uint32_t v, uint32_t shift)
{
    const uint32_t half = 1u << (shift - 1), rem = v & ((1u << shift) - 1), q = v >> shift;
    return q + ((rem > half || (rem == half && (q & 1))) ? 1 : 0);
}

uint16_t dte_f32_to_f16(float f)
{
    const uint32_t x = f32_bits(f), ax = x & 0x7FFFFFFFu;
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    if (ax > 0x7F800000u) {
        return (uint16_t)(sign | 0x7E00 | ((ax >> 13) & 0x3FF)); /* NaN: quiet, payload truncated (as F16C) */
    }
    if (ax >= 0x38800000u) { /* >= 2^-14: normal half (or overflow to inf) */
        if (ax >= 0x477FF000u) {
            return (uint16_t)(sign | 0x7C00); /* rounds to >= 65536: inf */
        }
        return (uint16_t)(sign | shift_round_even(ax - 0x38000000u, 13));
    }
    if (ax < 0x33000000u) {
        return sign; /* below 2^-25: rounds to zero */
    }
    /* subnormal half: value = k * 2^-24, k = mantissa(with implicit 1) >> (126 - exponent) */
    const uint32_t exp = ax >> 23, man = (ax & 0x7FFFFFu) | 0x800000u;
    return (uint16_t)(sign | shift_round_even(man, 126 - exp));
}

float dte_bf16_to_f32(uint16_t h)
{
    return f32_from_bits((uint32_t)h << 16);
}

uint16_t dte_f32_to_bf16(float f)
{
    const uint32_t u = f32_bits(f);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) {
        return (uint16_t)((u >> 16) | 64); /* NaN: force quiet (ggml_compute_fp32_to_bf16) */
    }
    return (uint16_t)((u + (0x7FFFu + ((u >> 16) & 1))) >> 16);
}

/* ---- dequantization (ggml-quants.c dequantize_row_*) ---- */

static void dequantize_q4_0(const dte_block_q4_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += 32) {
        const float d = dte_f16_to_f32(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[j] = (float)((x[i].qs[j] & 0x0F) - 8) * d;
            y[j + 16] = (float)((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

static void dequantize_q4_1(const dte_block_q4_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += 32) {
        const float d = dte_f16_to_f32(x[i].d), m = dte_f16_to_f32(x[i].m);
        for (int j = 0; j < 16; ++j) {
            y[j] = (float)(x[i].qs[j] & 0x0F) * d + m;
            y[j + 16] = (float)(x[i].qs[j] >> 4) * d + m;
        }
    }
}

/* Q5_0/Q5_1: bit j of qh is the fifth bit of element j, bit j+16 that of element j+16. */
static void dequantize_q5_0(const dte_block_q5_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += 32) {
        const float d = dte_f16_to_f32(x[i].d);
        const uint32_t qh = dte_qh_word(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            y[j] = (float)x0 * d;
            y[j + 16] = (float)x1 * d;
        }
    }
}

static void dequantize_q5_1(const dte_block_q5_1 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += 32) {
        const float d = dte_f16_to_f32(x[i].d), m = dte_f16_to_f32(x[i].m);
        const uint32_t qh = dte_qh_word(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
            y[j] = (float)x0 * d + m;
            y[j + 16] = (float)x1 * d + m;
        }
    }
}

static void dequantize_q8_0(const dte_block_q8_0 *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += 32) {
        const float d = dte_f16_to_f32(x[i].d);
        for (int j = 0; j < 32; ++j) {
            y[j] = (float)x[i].qs[j] * d;
        }
    }
}

static void dequantize_q2_K(const dte_block_q2_K *x, float *y, int64_t nb)
{
    int8_t q[DTE_QK_K];
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        const float d = dte_f16_to_f32(x[i].d), dmin = dte_f16_to_f32(x[i].dmin);
        dte_unpack_q2_K(&x[i], q);
        for (int e = 0; e < DTE_QK_K; ++e) {
            const uint8_t sc = x[i].scales[e / 16];
            y[e] = d * (float)(sc & 0xF) * (float)q[e] - dmin * (float)(sc >> 4);
        }
    }
}

static void dequantize_q3_K(const dte_block_q3_K *x, float *y, int64_t nb)
{
    int8_t q[DTE_QK_K], sc[16];
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        const float d = dte_f16_to_f32(x[i].d);
        dte_unpack_q3_K(&x[i], q, sc);
        for (int e = 0; e < DTE_QK_K; ++e) {
            y[e] = d * (float)sc[e / 16] * (float)q[e];
        }
    }
}

static void dequantize_q4_K(const dte_block_q4_K *x, float *y, int64_t nb)
{
    int8_t q[DTE_QK_K];
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        const float d = dte_f16_to_f32(x[i].d), dmin = dte_f16_to_f32(x[i].dmin);
        dte_unpack_scale_min_k4(x[i].scales, sc, mn);
        dte_unpack_q4_K(x[i].qs, q);
        for (int e = 0; e < DTE_QK_K; ++e) {
            y[e] = d * (float)sc[e / 32] * (float)q[e] - dmin * (float)mn[e / 32];
        }
    }
}

static void dequantize_q5_K(const dte_block_q5_K *x, float *y, int64_t nb)
{
    int8_t q[DTE_QK_K];
    uint8_t sc[8], mn[8];
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        const float d = dte_f16_to_f32(x[i].d), dmin = dte_f16_to_f32(x[i].dmin);
        dte_unpack_scale_min_k4(x[i].scales, sc, mn);
        dte_unpack_q5_K(&x[i], q);
        for (int e = 0; e < DTE_QK_K; ++e) {
            y[e] = d * (float)sc[e / 32] * (float)q[e] - dmin * (float)mn[e / 32];
        }
    }
}

static void dequantize_q6_K(const dte_block_q6_K *x, float *y, int64_t nb)
{
    int8_t q[DTE_QK_K];
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        const float d = dte_f16_to_f32(x[i].d);
        dte_unpack_q6_K(&x[i], q);
        for (int e = 0; e < DTE_QK_K; ++e) {
            y[e] = d * (float)x[i].scales[e / 16] * (float)q[e];
        }
    }
}

static void dequantize_q8_K(const dte_block_q8_K *x, float *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; ++i, y += DTE_QK_K) {
        for (int e = 0; e < DTE_QK_K; ++e) {
            y[e] = x[i].d * (float)x[i].qs[e];
        }
    }
}

void dte_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n)
{
    const int64_t be = dte_type_block_elems(type);
    if (be == 0 || n % be != 0) {
        return;
    }
    const int64_t nb = n / be;
    const uint16_t *h = src;
    switch (type) {
    case DTE_TYPE_F32:
        for (int64_t i = 0; i < n; ++i) {
            dst[i] = ((const float *)src)[i];
        }
        break;
    case DTE_TYPE_F16:
        for (int64_t i = 0; i < n; ++i) {
            dst[i] = dte_f16_to_f32(h[i]);
        }
        break;
    case DTE_TYPE_BF16:
        for (int64_t i = 0; i < n; ++i) {
            dst[i] = dte_bf16_to_f32(h[i]);
        }
        break;
    case DTE_TYPE_Q4_0: dequantize_q4_0(src, dst, nb); break;
    case DTE_TYPE_Q4_1: dequantize_q4_1(src, dst, nb); break;
    case DTE_TYPE_Q5_0: dequantize_q5_0(src, dst, nb); break;
    case DTE_TYPE_Q5_1: dequantize_q5_1(src, dst, nb); break;
    case DTE_TYPE_Q8_0: dequantize_q8_0(src, dst, nb); break;
    case DTE_TYPE_Q2_K: dequantize_q2_K(src, dst, nb); break;
    case DTE_TYPE_Q3_K: dequantize_q3_K(src, dst, nb); break;
    case DTE_TYPE_Q4_K: dequantize_q4_K(src, dst, nb); break;
    case DTE_TYPE_Q5_K: dequantize_q5_K(src, dst, nb); break;
    case DTE_TYPE_Q6_K: dequantize_q6_K(src, dst, nb); break;
    case DTE_TYPE_Q8_K: dequantize_q8_K(src, dst, nb); break;
    case DTE_TYPE_Q8_1: { /* same payload layout as Q8_0 after the extra half */
        const dte_block_q8_1 *x = src;
        for (int64_t i = 0; i < nb; ++i) {
            const float d = dte_f16_to_f32(x[i].d);
            for (int j = 0; j < 32; ++j) {
                dst[32 * i + j] = (float)x[i].qs[j] * d;
            }
        }
        break;
    }
    default: break;
    }
}

/* ---- activation quantization ---- */

static float abs_f32(float f)
{
    return f32_from_bits(f32_bits(f) & 0x7FFFFFFFu);
}

/* roundf: half away from zero (ggml reference). |v| is at most ~127.5 here. */
static int round_half_away(float v)
{
    const float a = abs_f32(v);
    int i = (int)a;
    if (a - (float)i >= 0.5f) {
        i++;
    }
    return v < 0 ? -i : i;
}

static float max_abs(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; ++j) {
        const float a = abs_f32(x[j]);
        amax = a > amax ? a : amax;
    }
    return amax;
}

/* Q8_0 / Q8_1, one 32-element block. reference: ggml-quants.c quantize_row_q8_0_ref (id = 1/d, roundf);
 * x86: ggml-cpu/arch/x86/quants.c quantize_row_q8_0 (id = 127/amax, round half even). Returns sum of quants. */
static int quantize_block_q8(const float *x, uint16_t *d_out, float *d_f32, int8_t qs[32], bool x86)
{
    const float amax = max_abs(x, 32);
    const float d = amax / 127.0f;
    *d_out = dte_f32_to_f16(d);
    *d_f32 = d;
    int sum = 0;
    if (x86) {
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        for (int j = 0; j < 32; ++j) {
            qs[j] = (int8_t)dte_nearest_int(x[j] * id);
            sum += qs[j];
        }
    } else {
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        for (int j = 0; j < 32; ++j) {
            qs[j] = (int8_t)round_half_away(x[j] * id);
            sum += qs[j];
        }
    }
    return sum;
}

/* Q8_K, one 256-element block (ggml-quants.c quantize_row_q8_K_ref): scale from the signed value of largest
 * magnitude, iscale = -127/max, nearest_int, clamp to 127, bsums over 16s, d = 1/iscale. */
static void quantize_block_q8_K(const float *x, dte_block_q8_K *y)
{
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < DTE_QK_K; ++j) {
        const float a = abs_f32(x[j]);
        if (a > amax) {
            amax = a;
            max = x[j];
        }
    }
    if (amax == 0.0f) {
        y->d = 0.0f;
        for (int j = 0; j < DTE_QK_K; ++j) {
            y->qs[j] = 0;
        }
        for (int j = 0; j < 16; ++j) {
            y->bsums[j] = 0;
        }
        return;
    }
    const float iscale = -127.0f / max;
    for (int j = 0; j < DTE_QK_K; ++j) {
        const int v = dte_nearest_int(iscale * x[j]);
        y->qs[j] = (int8_t)(v < 127 ? v : 127);
    }
    for (int j = 0; j < 16; ++j) {
        int sum = 0;
        for (int k = 0; k < 16; ++k) {
            sum += y->qs[16 * j + k];
        }
        y->bsums[j] = (int16_t)sum;
    }
    y->d = 1.0f / iscale;
}

static void quantize_row(uint32_t act_type, const float *src, void *dst, int64_t n, bool x86)
{
    const int64_t be = dte_type_block_elems(act_type);
    if (be == 0 || n % be != 0) {
        return;
    }
    switch (act_type) {
    case DTE_TYPE_F32:
        for (int64_t i = 0; i < n; ++i) {
            ((float *)dst)[i] = src[i];
        }
        break;
    case DTE_TYPE_F16:
        for (int64_t i = 0; i < n; ++i) {
            ((uint16_t *)dst)[i] = dte_f32_to_f16(src[i]);
        }
        break;
    case DTE_TYPE_BF16:
        for (int64_t i = 0; i < n; ++i) {
            ((uint16_t *)dst)[i] = dte_f32_to_bf16(src[i]);
        }
        break;
    case DTE_TYPE_Q8_0: {
        dte_block_q8_0 *y = dst;
        float d;
        for (int64_t i = 0; i < n / 32; ++i) {
            quantize_block_q8(src + 32 * i, &y[i].d, &d, y[i].qs, x86);
        }
        break;
    }
    case DTE_TYPE_Q8_1: { /* s = d * sum(qs), d as stored before rounding to half */
        dte_block_q8_1 *y = dst;
        for (int64_t i = 0; i < n / 32; ++i) {
            float d;
            const int sum = quantize_block_q8(src + 32 * i, &y[i].d, &d, y[i].qs, x86);
            y[i].s = dte_f32_to_f16((float)sum * d);
        }
        break;
    }
    case DTE_TYPE_Q8_K: {
        dte_block_q8_K *y = dst;
        for (int64_t i = 0; i < n / DTE_QK_K; ++i) {
            quantize_block_q8_K(src + DTE_QK_K * i, &y[i]);
        }
        break;
    }
    default: break;
    }
}

void dte_quantize_row(uint32_t act_type, const float *src, void *dst, int64_t n)
{
    quantize_row(act_type, src, dst, n, true);
}

void dte_quantize_row_ref(uint32_t act_type, const float *src, void *dst, int64_t n)
{
    quantize_row(act_type, src, dst, n, false);
}
