/* Matrix products through the generated kernels (kernels.h): dte_vec_dot (one row, one token), dte_vec_dot_tokens
 * (one row, many tokens: the 16- and 4-token kernels) and dte_vec_dot_rows_tokens (rows x tokens: ROWS4 groups in
 * 4 x 4 tiles and 4 x 1 kernels, the F16 16-row kernel, the K-quants' 4-row kernels), each falling back to the
 * scalar reference of quants_dot.c. Every path gives each (row, token) the same bits (docs/kernels.md "One
 * reduction order"). No libc.
 */
#include "quants.h"

#include "kernels.h"
#include "layout.h"

float dte_vec_dot(uint32_t weight_type, int64_t n, const void *weights, const void *activations)
{
    const dte_vec_dot_fn kernel = dte_kernel_vec_dot(weight_type);
    if (kernel != NULL) {
        return kernel(n, weights, activations);
    }
    return dte_vec_dot_ref(weight_type, n, weights, activations);
}

_Static_assert(DTE_KERNEL_ROWS == DTE_LAYOUT_GROUP_ROWS, "the 4-row kernels read one ROWS4 group");

/* One ROWS4 group (layout.h) against `tokens` activation rows: 4 x 4 tiles, then the 4 x 1 kernel (or the
 * reference) for the leftover tokens. */
static void group_tokens(uint32_t weight_type, int64_t n, const uint8_t *g, int64_t w_row_bytes, const uint8_t *a,
                         int64_t act_row_bytes, int64_t tokens, float *out, int64_t out_stride)
{
    const dte_gemm_fn tile = dte_kernel_gemm(weight_type), rows_fn = dte_kernel_rows(weight_type);
    float block[DTE_KERNEL_ROWS * DTE_KERNEL_TOKENS];
    int64_t t = 0;
    for (; tile != NULL && t + DTE_KERNEL_TOKENS <= tokens; t += DTE_KERNEL_TOKENS) {
        tile(n, g, w_row_bytes, a + t * act_row_bytes, act_row_bytes, block);
        for (int tt = 0; tt < DTE_KERNEL_TOKENS; ++tt) {
            for (int rr = 0; rr < DTE_KERNEL_ROWS; ++rr) {
                out[(t + tt) * out_stride + rr] = block[tt * DTE_KERNEL_ROWS + rr];
            }
        }
    }
    for (; t < tokens; ++t) {
        if (rows_fn != NULL) {
            rows_fn(n, g, w_row_bytes, a + t * act_row_bytes, 0, block);
        } else {
            dte_vec_dot_ref_rows4(weight_type, n, g, a + t * act_row_bytes, block);
        }
        for (int rr = 0; rr < DTE_KERNEL_ROWS; ++rr) {
            out[t * out_stride + rr] = block[rr];
        }
    }
}

/* DTE_KERNEL_ROWS plain rows (K-quants): tokens below `batched` by dte_vec_dot_tokens row by row (16- and 4-token
 * kernels), the rest one token at a time through the 4-row kernel (bit-identical to the one-row kernel). */
static void plain_rows4_tokens(dte_gemm_fn rows_fn, uint32_t weight_type, int64_t n, const uint8_t *w,
                               int64_t w_row_bytes, const uint8_t *a, int64_t act_row_bytes, int64_t batched,
                               int64_t tokens, float *out, int64_t out_stride)
{
    for (int rr = 0; batched > 0 && rr < DTE_KERNEL_ROWS; ++rr) {
        dte_vec_dot_tokens(weight_type, n, w + rr * w_row_bytes, a, act_row_bytes, batched, out + rr, out_stride);
    }
    float block[DTE_KERNEL_ROWS];
    for (int64_t t = batched; t < tokens; ++t) {
        rows_fn(n, w, w_row_bytes, a + t * act_row_bytes, 0, block);
        for (int rr = 0; rr < DTE_KERNEL_ROWS; ++rr) {
            out[t * out_stride + rr] = block[rr];
        }
    }
}

void dte_vec_dot_rows_tokens(uint32_t weight_type, uint32_t layout, int64_t n, const void *weights, int64_t w_row_bytes,
                             int64_t rows, const void *activations, int64_t act_row_bytes, int64_t tokens, float *out,
                             int64_t out_stride)
{
    const uint8_t *w = weights, *a = activations;
    const bool grouped = dte_layout_applies(layout, weight_type, 2, DTE_LAYOUT_GROUP_ROWS) != 0;
    const int64_t full_rows = grouped ? rows / DTE_LAYOUT_GROUP_ROWS * DTE_LAYOUT_GROUP_ROWS : 0;
    for (int64_t r = 0; r < full_rows; r += DTE_LAYOUT_GROUP_ROWS) {
        group_tokens(weight_type, n, w + r * w_row_bytes, w_row_bytes, a, act_row_bytes, tokens, out + r, out_stride);
    }
    int64_t r = full_rows;
    const dte_gemm_fn float_rows = tokens == 1 ? dte_kernel_float_rows(weight_type) : NULL;
    for (; float_rows != NULL && r + DTE_KERNEL_FLOAT_ROWS <= rows; r += DTE_KERNEL_FLOAT_ROWS) { /* F16, one token */
        float block[DTE_KERNEL_FLOAT_ROWS];
        float_rows(n, w + r * w_row_bytes, w_row_bytes, a, 0, block);
        for (int k = 0; k < DTE_KERNEL_FLOAT_ROWS; ++k) {
            out[r + k] = block[k];
        }
    }
    /* plain rows with a 4-row kernel (K-quants): the multi-token kernels per row, the single tokens four rows at a
     * time */
    const dte_gemm_fn plain4 = dte_kernel_plain_rows(weight_type);
    const int64_t batched = plain4 != NULL ? tokens - tokens % DTE_KERNEL_TOKENS : tokens;
    for (; plain4 != NULL && r + DTE_KERNEL_ROWS <= rows; r += DTE_KERNEL_ROWS) {
        plain_rows4_tokens(plain4, weight_type, n, w + r * w_row_bytes, w_row_bytes, a, act_row_bytes, batched, tokens,
                           out + r, out_stride);
    }
    for (; r < rows; ++r) { /* plain rows, every token */
        dte_vec_dot_tokens(weight_type, n, w + r * w_row_bytes, a, act_row_bytes, tokens, out + r, out_stride);
    }
}

/* One weight row against the tokens [*t, tokens) in calls of `width` tokens (a multi-token kernel); advances *t past
 * the last full call. */
static void multi_tokens(dte_vec_dot4_fn kernel, int width, int64_t n, const void *weights, const uint8_t *a,
                         int64_t act_row_bytes, int64_t tokens, float *out, int64_t out_stride, int64_t *t)
{
    float got[DTE_KERNEL_WIDE_TOKENS];
    for (; kernel != NULL && *t + width <= tokens; *t += width) {
        kernel(n, weights, a + *t * act_row_bytes, act_row_bytes, got);
        for (int k = 0; k < width; ++k) {
            out[(*t + k) * out_stride] = got[k];
        }
    }
}

void dte_vec_dot_tokens(uint32_t weight_type, int64_t n, const void *weights, const void *activations,
                        int64_t act_row_bytes, int64_t tokens, float *out, int64_t out_stride)
{
    const uint8_t *a = activations;
    int64_t t = 0;
    multi_tokens(dte_kernel_vec_dot16(weight_type), DTE_KERNEL_WIDE_TOKENS, n, weights, a, act_row_bytes, tokens, out,
                 out_stride, &t);
    multi_tokens(dte_kernel_vec_dot4(weight_type), DTE_KERNEL_TOKENS, n, weights, a, act_row_bytes, tokens, out,
                 out_stride, &t);
    for (; t < tokens; ++t) {
        out[t * out_stride] = dte_vec_dot(weight_type, n, weights, a + t * act_row_bytes);
    }
}
