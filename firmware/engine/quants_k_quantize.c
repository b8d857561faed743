/* K-quant weight quantizers (see quants_k_quantize.h). Block layouts: quants_blocks.h (ggml-common.h); the
 * packing below is the inverse of the dte_unpack_* helpers there. No libc. */
#include "quants_k_quantize.h"

#include "quants.h"
#include "quants_blocks.h"

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

static float abs_float(float v)
{
    return v < 0 ? -v : v;
}

/* fp16-rounded value of f, stored to *h: the block keeps this, so quants are chosen against it. */
static float store_half(uint16_t *h, float f)
{
    *h = dte_f32_to_f16(f);
    return dte_f16_to_f32(*h);
}

/* ---- asymmetric types (Q2_K, Q4_K, Q5_K): x ~ d*ls*q - dmin*lm, q in [0, nmax] ---- */

struct asym_result {
    uint8_t ls[16], lm[16];   /* sub-block scale and min, in [0, smax] */
    uint8_t q[DTE_QK_K];      /* quants, in [0, nmax] */
};

static void quantize_asym(const float *x, int sub, int nmax, int smax, uint16_t *d_out, uint16_t *dmin_out,
                          struct asym_result *r)
{
    const int nsub = DTE_QK_K / sub;
    float scale[16], minv[16], max_scale = 0.0f, max_min = 0.0f;
    for (int s = 0; s < nsub; ++s) {
        float lo = 0.0f, hi = x[s * sub];
        for (int e = 0; e < sub; ++e) {
            const float v = x[s * sub + e];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        scale[s] = (hi - lo) / (float)nmax;
        minv[s] = -lo;
        max_scale = scale[s] > max_scale ? scale[s] : max_scale;
        max_min = minv[s] > max_min ? minv[s] : max_min;
    }
    const float d = store_half(d_out, max_scale / (float)smax);
    const float dmin = store_half(dmin_out, max_min / (float)smax);
    for (int s = 0; s < nsub; ++s) {
        r->ls[s] = (uint8_t)(d > 0.0f ? clamp_int(dte_nearest_int(scale[s] / d), 0, smax) : 0);
        r->lm[s] = (uint8_t)(dmin > 0.0f ? clamp_int(dte_nearest_int(minv[s] / dmin), 0, smax) : 0);
        const float step = d * (float)r->ls[s], offset = dmin * (float)r->lm[s];
        for (int e = 0; e < sub; ++e) {
            const float v = x[s * sub + e] + offset;
            r->q[s * sub + e] = (uint8_t)(step > 0.0f ? clamp_int(dte_nearest_int(v / step), 0, nmax) : 0);
        }
    }
}

/* ---- symmetric types (Q3_K, Q6_K): x ~ d*ls*q, q in [qlo, -qlo-1], ls in [slo, -slo-1] ---- */

static void quantize_sym(const float *x, int qlo, int slo, uint16_t *d_out, int8_t ls[16], int8_t q[DTE_QK_K])
{
    float scale[16], max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
        float amax = 0.0f, vmax = 0.0f;
        for (int e = 0; e < 16; ++e) {
            const float v = x[s * 16 + e];
            if (abs_float(v) > amax) {
                amax = abs_float(v);
                vmax = v;
            }
        }
        scale[s] = vmax / (float)qlo; /* the largest magnitude maps onto qlo, the end with the extra level */
        if (abs_float(scale[s]) > abs_float(max_scale)) {
            max_scale = scale[s];
        }
    }
    const float iscale = max_scale != 0.0f ? (float)slo / max_scale : 0.0f;
    const float d = store_half(d_out, iscale != 0.0f ? 1.0f / iscale : 0.0f);
    for (int s = 0; s < 16; ++s) {
        ls[s] = (int8_t)clamp_int(dte_nearest_int(iscale * scale[s]), slo, -slo - 1);
        const float step = d * (float)ls[s];
        for (int e = 0; e < 16; ++e) {
            const int v = step != 0.0f ? dte_nearest_int(x[s * 16 + e] / step) : 0;
            q[s * 16 + e] = (int8_t)clamp_int(v, qlo, -qlo - 1);
        }
    }
}

/* ---- packing (inverse of quants_blocks.h unpacking) ---- */

/* Q2_K/Q3_K low 2 bits: element e -> bits 2*((e%128)/32) of qs[32*(e/128) + e%32]. */
static void pack_two_bits(uint8_t qs[64], const uint8_t *values)
{
    for (int i = 0; i < 64; ++i) {
        qs[i] = 0;
    }
    for (int e = 0; e < DTE_QK_K; ++e) {
        qs[32 * (e / 128) + e % 32] |= (uint8_t)((values[e] & 3) << (2 * ((e % 128) / 32)));
    }
}

/* Q4_K/Q5_K low 4 bits: per 64 elements, 32 low nibbles then 32 high nibbles of qs[32*(e/64) + e%32]. */
static void pack_nibbles(uint8_t qs[128], const uint8_t *values)
{
    for (int i = 0; i < 128; ++i) {
        qs[i] = 0;
    }
    for (int e = 0; e < DTE_QK_K; ++e) {
        qs[32 * (e / 64) + e % 32] |= (uint8_t)((values[e] & 0xF) << (((e / 32) % 2) ? 4 : 0));
    }
}

/* Q4_K/Q5_K: eight 6-bit scales and mins into 12 bytes (inverse of dte_unpack_scale_min_k4). */
static void pack_scale_min_k4(uint8_t out[12], const uint8_t sc[8], const uint8_t mn[8])
{
    for (int j = 0; j < 4; ++j) {
        out[j] = (uint8_t)((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = (uint8_t)((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mn[j + 4] & 0xF) << 4));
    }
}

static void quantize_q2_K(const float *x, dte_block_q2_K *y)
{
    struct asym_result r;
    quantize_asym(x, 16, 3, 15, &y->d, &y->dmin, &r);
    for (int s = 0; s < 16; ++s) {
        y->scales[s] = (uint8_t)(r.ls[s] | (r.lm[s] << 4));
    }
    pack_two_bits(y->qs, r.q);
}

static void quantize_q4_K(const float *x, dte_block_q4_K *y)
{
    struct asym_result r;
    quantize_asym(x, 32, 15, 63, &y->d, &y->dmin, &r);
    pack_scale_min_k4(y->scales, r.ls, r.lm);
    pack_nibbles(y->qs, r.q);
}

static void quantize_q5_K(const float *x, dte_block_q5_K *y)
{
    struct asym_result r;
    quantize_asym(x, 32, 31, 63, &y->d, &y->dmin, &r);
    pack_scale_min_k4(y->scales, r.ls, r.lm);
    pack_nibbles(y->qs, r.q);
    for (int i = 0; i < 32; ++i) {
        y->qh[i] = 0;
    }
    for (int e = 0; e < DTE_QK_K; ++e) {
        y->qh[e % 32] |= (uint8_t)(((r.q[e] >> 4) & 1) << (e / 32));
    }
}

static void quantize_q3_K(const float *x, dte_block_q3_K *y)
{
    int8_t ls[16], q[DTE_QK_K];
    uint8_t biased[DTE_QK_K];
    quantize_sym(x, -4, -32, &y->d, ls, q);
    for (int e = 0; e < DTE_QK_K; ++e) {
        biased[e] = (uint8_t)(q[e] + 4); /* 0..7: bit 2 is the hmask bit */
    }
    pack_two_bits(y->qs, biased);
    for (int i = 0; i < 32; ++i) {
        y->hmask[i] = 0;
    }
    for (int e = 0; e < DTE_QK_K; ++e) {
        y->hmask[e % 32] |= (uint8_t)(((biased[e] >> 2) & 1) << (e / 32));
    }
    for (int i = 0; i < 12; ++i) {
        y->scales[i] = 0;
    }
    for (int j = 0; j < 16; ++j) {
        const int u = ls[j] + 32; /* 0..63 */
        y->scales[j < 8 ? j : j - 8] |= (uint8_t)((u & 0xF) << (j < 8 ? 0 : 4));
        y->scales[8 + j % 4] |= (uint8_t)((u >> 4) << (2 * (j / 4)));
    }
}

static void quantize_q6_K(const float *x, dte_block_q6_K *y)
{
    int8_t ls[16], q[DTE_QK_K];
    quantize_sym(x, -32, -128, &y->d, ls, q);
    for (int s = 0; s < 16; ++s) {
        y->scales[s] = ls[s];
    }
    for (int i = 0; i < 128; ++i) {
        y->ql[i] = 0;
    }
    for (int i = 0; i < 64; ++i) {
        y->qh[i] = 0;
    }
    for (int e = 0; e < DTE_QK_K; ++e) {
        const int u = q[e] + 32, chunk = e / 128, quarter = (e % 128) / 32, l = e % 32;
        y->ql[64 * chunk + 32 * (quarter & 1) + l] |= (uint8_t)((u & 0xF) << ((quarter & 2) ? 4 : 0));
        y->qh[32 * chunk + l] |= (uint8_t)((u >> 4) << (2 * quarter));
    }
}

int dte_quantize_row_k(uint32_t type, const float *src, void *dst, int64_t n)
{
    if (n < 0 || n % DTE_QK_K != 0) {
        return -1;
    }
    for (int64_t i = 0; i < n / DTE_QK_K; ++i) {
        const float *x = src + i * DTE_QK_K;
        switch (type) {
        case DTE_TYPE_Q2_K: quantize_q2_K(x, (dte_block_q2_K *)dst + i); break;
        case DTE_TYPE_Q3_K: quantize_q3_K(x, (dte_block_q3_K *)dst + i); break;
        case DTE_TYPE_Q4_K: quantize_q4_K(x, (dte_block_q4_K *)dst + i); break;
        case DTE_TYPE_Q5_K: quantize_q5_K(x, (dte_block_q5_K *)dst + i); break;
        case DTE_TYPE_Q6_K: quantize_q6_K(x, (dte_block_q6_K *)dst + i); break;
        default: return -1;
        }
    }
    return 0;
}
