/* Scalar reference dot products, one per weight type against its vec_dot type.
 *
 * Same integer sums and float combination as ggml's generic versions (ggml/src/ggml-cpu/quants.c
 * ggml_vec_dot_*_generic; ggml-cpu/vec.c ggml_vec_dot_f32/f16/bf16 accumulate in double). The SIMD kernels are
 * tested against these. No libc.
 */
#include "quants.h"

#include "quants_blocks.h"

/* No fused multiply-add: each product and sum rounds separately, as in ggml's generic C (built without
 * contraction), so the reference is bit-identical to ggml_vec_dot_*_generic whatever -march allows. */
#pragma STDC FP_CONTRACT OFF

static float dot_q4_0_q8_0(int64_t nb, const dte_block_q4_0 *x, const dte_block_q8_0 *y)
{
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            sumi0 += ((x[i].qs[j] & 0x0F) - 8) * y[i].qs[j];
            sumi1 += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + 16];
        }
        sumf += (float)(sumi0 + sumi1) * dte_f16_to_f32(x[i].d) * dte_f16_to_f32(y[i].d);
    }
    return sumf;
}

static float dot_q4_1_q8_1(int64_t nb, const dte_block_q4_1 *x, const dte_block_q8_1 *y)
{
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            sumi0 += (x[i].qs[j] & 0x0F) * y[i].qs[j];
            sumi1 += (x[i].qs[j] >> 4) * y[i].qs[j + 16];
        }
        sumf += (dte_f16_to_f32(x[i].d) * dte_f16_to_f32(y[i].d)) * (float)(sumi0 + sumi1) +
                dte_f16_to_f32(x[i].m) * dte_f16_to_f32(y[i].s);
    }
    return sumf;
}

static float dot_q5_0_q8_0(int64_t nb, const dte_block_q5_0 *x, const dte_block_q8_0 *y)
{
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = dte_qh_word(x[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10)) - 16;
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10)) - 16;
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + 16];
        }
        sumf += (dte_f16_to_f32(x[i].d) * dte_f16_to_f32(y[i].d)) * (float)(sumi0 + sumi1);
    }
    return sumf;
}

static float dot_q5_1_q8_1(int64_t nb, const dte_block_q5_1 *x, const dte_block_q8_1 *y)
{
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = dte_qh_word(x[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            const int x0 = (int)((x[i].qs[j] & 0x0F) | (((qh >> j) << 4) & 0x10));
            const int x1 = (int)((x[i].qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
            sumi0 += x0 * y[i].qs[j];
            sumi1 += x1 * y[i].qs[j + 16];
        }
        sumf += (dte_f16_to_f32(x[i].d) * dte_f16_to_f32(y[i].d)) * (float)(sumi0 + sumi1) +
                dte_f16_to_f32(x[i].m) * dte_f16_to_f32(y[i].s);
    }
    return sumf;
}

static float dot_q8_0_q8_0(int64_t nb, const dte_block_q8_0 *x, const dte_block_q8_0 *y)
{
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        int sumi = 0;
        for (int j = 0; j < 32; ++j) {
            sumi += x[i].qs[j] * y[i].qs[j];
        }
        sumf += (float)sumi * (dte_f16_to_f32(x[i].d) * dte_f16_to_f32(y[i].d));
    }
    return sumf;
}

static float dot_q2_K_q8_K(int64_t nb, const dte_block_q2_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q2_K(&x[i], q);
        int summs = 0, isum = 0;
        for (int j = 0; j < 16; ++j) {
            summs += y[i].bsums[j] * (x[i].scales[j] >> 4);
            int isuml = 0;
            for (int l = 0; l < 16; ++l) isuml += y[i].qs[16 * j + l] * q[16 * j + l];
            isum += (x[i].scales[j] & 0xF) * isuml;
        }
        const float dall = y[i].d * dte_f16_to_f32(x[i].d);
        const float dmin = y[i].d * dte_f16_to_f32(x[i].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    return sumf;
}

/* The K-quant generic kernels accumulate in 8 int32 lanes (element index mod 8) and 8 float lanes. */
static void lanes_add_scaled(int32_t aux32[8], const int8_t *q8, const int8_t *a, int count, int32_t scale)
{
    for (int k = 0; k < count; ++k) {
        aux32[k % 8] += scale * (int16_t)(q8[k] * a[k]);
    }
}

static void lanes_flush(float sums[8], const int32_t aux32[8], float d)
{
    for (int l = 0; l < 8; ++l) sums[l] += d * (float)aux32[l];
}

static float lanes_total(float sumf, const float sums[8])
{
    for (int l = 0; l < 8; ++l) sumf += sums[l];
    return sumf;
}

static float dot_q3_K_q8_K(int64_t nb, const dte_block_q3_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K], sc[16];
    float sums[8] = {0};
    for (int64_t i = 0; i < nb; ++i) {
        int32_t aux32[8] = {0};
        dte_unpack_q3_K(&x[i], q, sc);
        for (int j = 0; j < 16; ++j) lanes_add_scaled(aux32, y[i].qs + 16 * j, q + 16 * j, 16, sc[j]);
        lanes_flush(sums, aux32, dte_f16_to_f32(x[i].d) * y[i].d);
    }
    return lanes_total(0.0f, sums);
}

/* Q4_K and Q5_K differ only in how the quants unpack. */
static float dot_q45_K_q8_K(const uint16_t dd[2], const uint8_t scales[12], const int8_t q[DTE_QK_K],
                            const dte_block_q8_K *y, float sums[8])
{
    uint8_t sc[8], mn[8];
    dte_unpack_scale_min_k4(scales, sc, mn);
    int sumi = 0;
    for (int j = 0; j < 16; ++j) sumi += y->bsums[j] * mn[j / 2];
    int32_t aux32[8] = {0};
    for (int j = 0; j < 8; ++j) lanes_add_scaled(aux32, y->qs + 32 * j, q + 32 * j, 32, sc[j]);
    lanes_flush(sums, aux32, dte_f16_to_f32(dd[0]) * y->d);
    return dte_f16_to_f32(dd[1]) * y->d * (float)sumi; /* the caller subtracts this */
}

static float dot_q4_K_q8_K(int64_t nb, const dte_block_q4_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float sums[8] = {0}, sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint16_t dd[2] = {x[i].d, x[i].dmin};
        dte_unpack_q4_K(x[i].qs, q);
        sumf -= dot_q45_K_q8_K(dd, x[i].scales, q, &y[i], sums);
    }
    return lanes_total(sumf, sums);
}

static float dot_q5_K_q8_K(int64_t nb, const dte_block_q5_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float sums[8] = {0}, sumf = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        const uint16_t dd[2] = {x[i].d, x[i].dmin};
        dte_unpack_q5_K(&x[i], q);
        sumf -= dot_q45_K_q8_K(dd, x[i].scales, q, &y[i], sums);
    }
    return lanes_total(sumf, sums);
}

static float dot_q6_K_q8_K(int64_t nb, const dte_block_q6_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float sums[8] = {0};
    for (int64_t i = 0; i < nb; ++i) {
        int32_t aux32[8] = {0};
        dte_unpack_q6_K(&x[i], q);
        for (int j = 0; j < 16; ++j) lanes_add_scaled(aux32, y[i].qs + 16 * j, q + 16 * j, 16, x[i].scales[j]);
        lanes_flush(sums, aux32, dte_f16_to_f32(x[i].d) * y[i].d);
    }
    return lanes_total(0.0f, sums);
}

static float dot_f32(int64_t n, const float *x, const float *y)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)(x[i] * y[i]);
    return (float)sum;
}

static float dot_f16(int64_t n, const uint16_t *x, const uint16_t *y)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)(dte_f16_to_f32(x[i]) * dte_f16_to_f32(y[i]));
    return (float)sum;
}

static float dot_bf16(int64_t n, const uint16_t *x, const uint16_t *y)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double)(dte_bf16_to_f32(x[i]) * dte_bf16_to_f32(y[i]));
    return (float)sum;
}

float dte_vec_dot_ref(uint32_t weight_type, int64_t n, const void *w, const void *a)
{
    const int64_t be = dte_type_block_elems(weight_type);
    if (be == 0 || n % be != 0) {
        return 0.0f;
    }
    const int64_t nb = n / be;
    switch (weight_type) {
    case DTE_TYPE_F32: return dot_f32(n, w, a);
    case DTE_TYPE_F16: return dot_f16(n, w, a);
    case DTE_TYPE_BF16: return dot_bf16(n, w, a);
    case DTE_TYPE_Q4_0: return dot_q4_0_q8_0(nb, w, a);
    case DTE_TYPE_Q4_1: return dot_q4_1_q8_1(nb, w, a);
    case DTE_TYPE_Q5_0: return dot_q5_0_q8_0(nb, w, a);
    case DTE_TYPE_Q5_1: return dot_q5_1_q8_1(nb, w, a);
    case DTE_TYPE_Q8_0: return dot_q8_0_q8_0(nb, w, a);
    case DTE_TYPE_Q2_K: return dot_q2_K_q8_K(nb, w, a);
    case DTE_TYPE_Q3_K: return dot_q3_K_q8_K(nb, w, a);
    case DTE_TYPE_Q4_K: return dot_q4_K_q8_K(nb, w, a);
    case DTE_TYPE_Q5_K: return dot_q5_K_q8_K(nb, w, a);
    case DTE_TYPE_Q6_K: return dot_q6_K_q8_K(nb, w, a);
    default: return 0.0f;
    }
}
