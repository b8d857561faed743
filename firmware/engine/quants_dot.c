/* Scalar reference dot products, one per weight type against its vec_dot type: the definition of dte's one
 * reduction order (docs/kernels.md "One reduction order"), which every generated SIMD kernel follows at every
 * vector width, so that every CPU gives the same bits.
 *
 * Integer sums are ggml's (ggml/src/ggml-cpu/quants.c ggml_vec_dot_*_generic): exact. The float side is fixed
 * here instead of ggml's (whose order depends on the CPU):
 * - 32-element blocks (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0): 16 float lanes; block b adds its eight 4-element integer sums
 *   into lanes 8*(b%2)+j with fmaf(dw_b*da_b, sum, lane); Q4_1/Q5_1 add m_b*s_b into one scalar with fmaf in
 *   block order; result = tree(16 lanes) + that scalar.
 * - K-quants: 8 float lanes; lane j of a super-block's integer sum holds the elements e with (e%32)/4 == j, each
 *   times its sub-block scale; lane = fmaf(d*da, sum, lane); Q2_K/Q4_K/Q5_K subtract (dmin*da)*minsum from one
 *   scalar in super-block order (separate roundings); result = tree(8 lanes) - that scalar.
 * - F32/F16/BF16: 64 float lanes (ggml's AVX-512 layout), element i into lane i%64 with fmaf over the first
 *   n - n%64 elements, the rest fmaf'd into one scalar in order; result = tree(64 lanes) + that scalar.
 * tree(v): v[l] += v[l + h] for h = n/2, n/4, ..., 1; v[0]. No libc.
 * The 4 rows of a ROWS4 group (layout.h) get the same per-block steps, each block de-interleaved first.
 */
#include "quants.h"

#include "layout.h"
#include "quants_blocks.h"

/* Only the fmaf calls fuse; every other product and sum rounds as written, whatever -march allows. */
#pragma STDC FP_CONTRACT OFF

static float fused(float a, float b, float c)
{
    return __builtin_fmaf(a, b, c);
}

static float tree_sum(float *v, int n)
{
    for (int h = n / 2; h >= 1; h /= 2) {
        for (int l = 0; l < h; ++l) {
            v[l] = v[l] + v[l + h];
        }
    }
    return v[0];
}

/* One 32-element block: q[e] weight values, y[e] activations, d = dw * da. */
static void block32(float acc[16], int64_t b, const int8_t q[32], const int8_t y[32], float d)
{
    for (int j = 0; j < 8; ++j) {
        int s = 0;
        for (int k = 0; k < 4; ++k) {
            s += q[4 * j + k] * y[4 * j + k];
        }
        acc[8 * (b % 2) + j] = fused(d, (float)s, acc[8 * (b % 2) + j]);
    }
}

/* Element e of a Q4_0/Q4_1 (fifth = NULL) or Q5_0/Q5_1 block, before the offset. */
static int nibble_value(const uint8_t qs[16], const uint8_t *qh, int e)
{
    int v = e < 16 ? (qs[e] & 0x0F) : (qs[e - 16] >> 4);
    if (qh != NULL) {
        v |= (int)((dte_qh_word(qh) >> e) & 1) << 4;
    }
    return v;
}

static void nibble_block(int8_t q[32], const uint8_t qs[16], const uint8_t *qh, int offset)
{
    for (int e = 0; e < 32; ++e) {
        q[e] = (int8_t)(nibble_value(qs, qh, e) - offset);
    }
}

/* The running sums of one 32-element-type dot product: 16 lanes and the scalar min term (Q4_1/Q5_1). */
typedef struct {
    float acc[16], m;
} legacy_sums;

/* Block i of a Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 row (x, one ggml block) against its activation block (y). */
static void legacy_block(uint32_t type, legacy_sums *s, int64_t i, const void *x, const void *y)
{
    int8_t q[32];
    switch (type) {
    case DTE_TYPE_Q4_0: {
        const dte_block_q4_0 *b = x;
        const dte_block_q8_0 *a = y;
        nibble_block(q, b->qs, NULL, 8);
        block32(s->acc, i, q, a->qs, dte_f16_to_f32(b->d) * dte_f16_to_f32(a->d));
        break;
    }
    case DTE_TYPE_Q4_1: {
        const dte_block_q4_1 *b = x;
        const dte_block_q8_1 *a = y;
        nibble_block(q, b->qs, NULL, 0);
        block32(s->acc, i, q, a->qs, dte_f16_to_f32(b->d) * dte_f16_to_f32(a->d));
        s->m = fused(dte_f16_to_f32(b->m), dte_f16_to_f32(a->s), s->m);
        break;
    }
    case DTE_TYPE_Q5_0: {
        const dte_block_q5_0 *b = x;
        const dte_block_q8_0 *a = y;
        nibble_block(q, b->qs, b->qh, 16);
        block32(s->acc, i, q, a->qs, dte_f16_to_f32(b->d) * dte_f16_to_f32(a->d));
        break;
    }
    case DTE_TYPE_Q5_1: {
        const dte_block_q5_1 *b = x;
        const dte_block_q8_1 *a = y;
        nibble_block(q, b->qs, b->qh, 0);
        block32(s->acc, i, q, a->qs, dte_f16_to_f32(b->d) * dte_f16_to_f32(a->d));
        s->m = fused(dte_f16_to_f32(b->m), dte_f16_to_f32(a->s), s->m);
        break;
    }
    default: { /* Q8_0 */
        const dte_block_q8_0 *b = x;
        const dte_block_q8_0 *a = y;
        block32(s->acc, i, b->qs, a->qs, dte_f16_to_f32(b->d) * dte_f16_to_f32(a->d));
        break;
    }
    }
}

static float legacy_result(uint32_t type, legacy_sums *s)
{
    const float t = tree_sum(s->acc, 16);
    return type == DTE_TYPE_Q4_1 || type == DTE_TYPE_Q5_1 ? t + s->m : t;
}

static float dot_legacy(uint32_t type, int64_t nb, const uint8_t *x, const uint8_t *y)
{
    const int64_t wb = dte_type_block_bytes(type), ab = dte_type_block_bytes(dte_vec_dot_type(type));
    legacy_sums s = {{0}, 0.0f};
    for (int64_t i = 0; i < nb; ++i) {
        legacy_block(type, &s, i, x + i * wb, y + i * ab);
    }
    return legacy_result(type, &s);
}

void dte_vec_dot_ref_rows4(uint32_t weight_type, int64_t n, const void *group, const void *activations, float out[4])
{
    const int64_t wb = dte_type_block_bytes(weight_type), ab = dte_type_block_bytes(dte_vec_dot_type(weight_type));
    const uint8_t *g = group, *y = activations;
    legacy_sums s[DTE_LAYOUT_GROUP_ROWS] = {{{0}, 0.0f}};
    uint8_t block[sizeof(dte_block_q8_0)];
    for (int64_t i = 0; i < n / 32; ++i) {
        for (int r = 0; r < DTE_LAYOUT_GROUP_ROWS; ++r) { /* de-interleave row r's block, then the 1-row step */
            dte_layout_block(weight_type, g + i * DTE_LAYOUT_GROUP_ROWS * wb, r, block);
            legacy_block(weight_type, &s[r], i, block, y + i * ab);
        }
    }
    for (int r = 0; r < DTE_LAYOUT_GROUP_ROWS; ++r) {
        out[r] = legacy_result(weight_type, &s[r]);
    }
}

/* One K-quant super-block: q[e] values, sc16[e/16] their scales; lane (e%32)/4 collects element e. */
static void k_block(float acc[8], const int8_t q[DTE_QK_K], const int sc16[16], const dte_block_q8_K *y, float d)
{
    int32_t lanes[8] = {0};
    for (int e = 0; e < DTE_QK_K; ++e) {
        lanes[(e % 32) / 4] += sc16[e / 16] * (q[e] * y->qs[e]);
    }
    for (int j = 0; j < 8; ++j) {
        acc[j] = fused(d, (float)lanes[j], acc[j]);
    }
}

/* The scalar min term of a super-block: (dmin * da) * sum_j bsums[j] * mins16[j], rounded separately. */
static float k_min(uint16_t dmin, const int mins16[16], const dte_block_q8_K *y)
{
    int s = 0;
    for (int j = 0; j < 16; ++j) {
        s += y->bsums[j] * mins16[j];
    }
    const float d = dte_f16_to_f32(dmin) * y->d;
    return d * (float)s;
}

static float dot_q2_K_q8_K(int64_t nb, const dte_block_q2_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    int sc[16], mn[16];
    float acc[8] = {0}, m = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q2_K(&x[i], q);
        for (int j = 0; j < 16; ++j) {
            sc[j] = x[i].scales[j] & 0xF;
            mn[j] = x[i].scales[j] >> 4;
        }
        k_block(acc, q, sc, &y[i], dte_f16_to_f32(x[i].d) * y[i].d);
        m = m + k_min(x[i].dmin, mn, &y[i]);
    }
    return tree_sum(acc, 8) - m;
}

static float dot_q3_K_q8_K(int64_t nb, const dte_block_q3_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K], sc8[16];
    int sc[16];
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q3_K(&x[i], q, sc8);
        for (int j = 0; j < 16; ++j) {
            sc[j] = sc8[j];
        }
        k_block(acc, q, sc, &y[i], dte_f16_to_f32(x[i].d) * y[i].d);
    }
    return tree_sum(acc, 8);
}

/* Q4_K and Q5_K differ only in how the quants unpack; returns the min term. */
static float k45_block(float acc[8], uint16_t d, uint16_t dmin, const uint8_t scales[12], const int8_t q[DTE_QK_K],
                       const dte_block_q8_K *y)
{
    uint8_t sc8[8], mn8[8];
    int sc[16], mn[16];
    dte_unpack_scale_min_k4(scales, sc8, mn8);
    for (int j = 0; j < 16; ++j) {
        sc[j] = sc8[j / 2];
        mn[j] = mn8[j / 2];
    }
    k_block(acc, q, sc, y, dte_f16_to_f32(d) * y->d);
    return k_min(dmin, mn, y);
}

static float dot_q4_K_q8_K(int64_t nb, const dte_block_q4_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float acc[8] = {0}, m = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q4_K(x[i].qs, q);
        m = m + k45_block(acc, x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    return tree_sum(acc, 8) - m;
}

static float dot_q5_K_q8_K(int64_t nb, const dte_block_q5_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    float acc[8] = {0}, m = 0.0f;
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q5_K(&x[i], q);
        m = m + k45_block(acc, x[i].d, x[i].dmin, x[i].scales, q, &y[i]);
    }
    return tree_sum(acc, 8) - m;
}

static float dot_q6_K_q8_K(int64_t nb, const dte_block_q6_K *x, const dte_block_q8_K *y)
{
    int8_t q[DTE_QK_K];
    int sc[16];
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; ++i) {
        dte_unpack_q6_K(&x[i], q);
        for (int j = 0; j < 16; ++j) {
            sc[j] = x[i].scales[j];
        }
        k_block(acc, q, sc, &y[i], dte_f16_to_f32(x[i].d) * y[i].d);
    }
    return tree_sum(acc, 8);
}

/* F32/F16/BF16: element i of a row as float. */
typedef float (*element_fn)(const void *row, int64_t i);
static float f32_at(const void *row, int64_t i)
{
    return ((const float *)row)[i];
}
static float f16_at(const void *row, int64_t i)
{
    return dte_f16_to_f32(((const uint16_t *)row)[i]);
}
static float bf16_at(const void *row, int64_t i)
{
    return dte_bf16_to_f32(((const uint16_t *)row)[i]);
}

static float dot_float(int64_t n, const void *x, const void *y, element_fn at)
{
    float acc[64] = {0}, rest = 0.0f;
    const int64_t main = n - n % 64;
    for (int64_t i = 0; i < main; ++i) {
        acc[i % 64] = fused(at(x, i), at(y, i), acc[i % 64]);
    }
    for (int64_t i = main; i < n; ++i) {
        rest = fused(at(x, i), at(y, i), rest);
    }
    return tree_sum(acc, 64) + rest;
}

float dte_vec_dot_ref(uint32_t weight_type, int64_t n, const void *w, const void *a)
{
    const int64_t be = dte_type_block_elems(weight_type);
    if (be == 0 || n % be != 0) {
        return 0.0f;
    }
    const int64_t nb = n / be;
    switch (weight_type) {
    case DTE_TYPE_F32: return dot_float(n, w, a, f32_at);
    case DTE_TYPE_F16: return dot_float(n, w, a, f16_at);
    case DTE_TYPE_BF16: return dot_float(n, w, a, bf16_at);
    case DTE_TYPE_Q4_0:
    case DTE_TYPE_Q4_1:
    case DTE_TYPE_Q5_0:
    case DTE_TYPE_Q5_1:
    case DTE_TYPE_Q8_0: return dot_legacy(weight_type, nb, w, a);
    case DTE_TYPE_Q2_K: return dot_q2_K_q8_K(nb, w, a);
    case DTE_TYPE_Q3_K: return dot_q3_K_q8_K(nb, w, a);
    case DTE_TYPE_Q4_K: return dot_q4_K_q8_K(nb, w, a);
    case DTE_TYPE_Q5_K: return dot_q5_K_q8_K(nb, w, a);
    case DTE_TYPE_Q6_K: return dot_q6_K_q8_K(nb, w, a);
    default: return 0.0f;
    }
}
