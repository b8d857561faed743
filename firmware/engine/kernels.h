/* Generated SIMD kernels (src/dte_build/kernels/, llvmlite) and the table dte_vec_dot dispatches through.
 *
 * A build that links a generated kernel object defines DTE_HAVE_GENERATED_KERNELS; the object then provides every
 * function declared below (the generator emits exactly this set: dte_build.kernels.KERNEL_SYMBOLS). Without it,
 * dte_kernel_vec_dot returns NULL and dte_vec_dot uses the scalar reference. Each kernel has dte_vec_dot_ref's
 * contract: n elements (a multiple of the block size), one weight row, one activation row in dte_vec_dot_type().
 */
#ifndef DTE_ENGINE_KERNELS_H
#define DTE_ENGINE_KERNELS_H

#include <stdint.h>

typedef float (*dte_vec_dot_fn)(int64_t n, const void *weights, const void *activations);
/* One weight row against DTE_KERNEL_TOKENS activation rows act_row_bytes apart: out[t] = dot(w, a_t). */
#define DTE_KERNEL_TOKENS 4
typedef void (*dte_vec_dot4_fn)(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                                float *out);
/* DTE_KERNEL_ROWS weight rows, one DTE_LAYOUT_ROWS4 group (layout.h: blocks of the 4 rows side by side, fields
 * grouped; w_row_bytes is not used), against DTE_KERNEL_TOKENS activation rows (act_row_bytes apart):
 * out[t * DTE_KERNEL_ROWS + r] = dot(w_r, a_t), each bit-identical to the dte_vec_dot4_fn kernel's result on the
 * plain row (the legacy 32-element types; prompt processing). */
#define DTE_KERNEL_ROWS 4
typedef void (*dte_gemm_fn)(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                            int64_t act_row_bytes, float *out);

float dte_k_vec_dot_q8_0_q8_0(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q4_0_q8_0(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q4_1_q8_1(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q5_0_q8_0(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q5_1_q8_1(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q2_K_q8_K(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q3_K_q8_K(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q4_K_q8_K(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q5_K_q8_K(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_q6_K_q8_K(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_f32_f32(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_f16_f16(int64_t n, const void *weights, const void *activations);
float dte_k_vec_dot_bf16_bf16(int64_t n, const void *weights, const void *activations);

void dte_k_vec_dot4_q8_0_q8_0(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q4_0_q8_0(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q4_1_q8_1(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q5_0_q8_0(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q5_1_q8_1(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q2_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q3_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q4_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q5_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_q6_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);
void dte_k_vec_dot4_f32_f32(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes, float *out);
void dte_k_vec_dot4_f16_f16(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes, float *out);
void dte_k_vec_dot4_bf16_bf16(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                              float *out);

void dte_k_gemm4x4_q8_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x4_q4_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x4_q4_1_q8_1(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x4_q5_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x4_q5_1_q8_1(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);

/* DTE_KERNEL_ROWS weight rows (one ROWS4 group, as above) against one activation row (generation; act_row_bytes
 * unused): out[r] = dot(w_r, a), bit-identical to dte_vec_dot_fn's result on the plain row. */
void dte_k_gemm4x1_q8_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q4_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q4_1_q8_1(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q5_0_q8_0(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q5_1_q8_1(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
/* The K-quants' DTE_KERNEL_ROWS x 1 kernels read DTE_KERNEL_ROWS plain rows (the GGUF layout) w_row_bytes apart:
 * out[r] = dot(w_r, a), bit-identical to dte_k_vec_dot_<t>_q8_K on row r (generation: one activation load, scale and
 * bsums per super-block serve the four rows). */
void dte_k_gemm4x1_q2_K_q8_K(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q3_K_q8_K(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q4_K_q8_K(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q5_K_q8_K(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);
void dte_k_gemm4x1_q6_K_q8_K(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                             int64_t act_row_bytes, float *out);

/* One weight row against DTE_KERNEL_WIDE_TOKENS activation rows (K-quants; prompt processing), dte_vec_dot4_fn's
 * ABI: out[t] = dot(w, a_t) for t < 16, bit-identical to the 4-token and one-token kernels' results. Each weight
 * super-block is unpacked once for all sixteen tokens. */
#define DTE_KERNEL_WIDE_TOKENS 16
void dte_k_vec_dot16_q2_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                               float *out);
void dte_k_vec_dot16_q3_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                               float *out);
void dte_k_vec_dot16_q4_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                               float *out);
void dte_k_vec_dot16_q5_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                               float *out);
void dte_k_vec_dot16_q6_K_q8_K(int64_t n, const void *weights, const void *activations, int64_t act_row_bytes,
                               float *out);

/* DTE_KERNEL_FLOAT_ROWS F16 weight rows (w_row_bytes apart) against one F16 activation row, dte_gemm_fn's ABI
 * (act_row_bytes unused): out[r] = dot(w_r, a), bit-identical to dte_k_vec_dot_f16_f16 (attention's V rows against
 * the probabilities; the scalar tails of the rows run side by side). */
#define DTE_KERNEL_FLOAT_ROWS 16
void dte_k_gemm16x1_f16_f16(int64_t n, const void *weights, int64_t w_row_bytes, const void *activations,
                            int64_t act_row_bytes, float *out);

/* The fastest kernel this build has for a weight type, or NULL (use dte_vec_dot_ref). */
dte_vec_dot_fn dte_kernel_vec_dot(uint32_t weight_type);
/* The multi-token kernel for a weight type, or NULL (loop over dte_vec_dot). */
dte_vec_dot4_fn dte_kernel_vec_dot4(uint32_t weight_type);
/* The DTE_KERNEL_FLOAT_ROWS x 1 kernel for a float weight type (F16), or NULL. */
dte_gemm_fn dte_kernel_float_rows(uint32_t weight_type);
/* The DTE_KERNEL_WIDE_TOKENS-token kernel for a weight type (K-quants), or NULL. */
dte_vec_dot4_fn dte_kernel_vec_dot16(uint32_t weight_type);
/* The DTE_KERNEL_ROWS x DTE_KERNEL_TOKENS tile kernel for a weight type, or NULL. */
dte_gemm_fn dte_kernel_gemm(uint32_t weight_type);
/* The DTE_KERNEL_ROWS x 1 kernel for a weight type, or NULL (reads one ROWS4 group; legacy types). */
dte_gemm_fn dte_kernel_rows(uint32_t weight_type);
/* The DTE_KERNEL_ROWS x 1 kernel on plain rows w_row_bytes apart for a weight type, or NULL (K-quants). */
dte_gemm_fn dte_kernel_plain_rows(uint32_t weight_type);

#endif
