/* Tensor element types and the quantized dot products the engine is built on.
 *
 * Type ids and block layouts are ggml's (ggml/include/ggml.h `enum ggml_type`, ggml-common.h block_*), because
 * GGUF stores them. Activations are quantized to the weight type's "vec_dot type" before a dot product, exactly as
 * ggml does (Q4_0/Q5_0/Q8_0 -> Q8_0, Q4_1/Q5_1 -> Q8_1, K-quants -> Q8_K, F16 -> F16, BF16 -> BF16, F32 -> F32),
 * so results follow llama.cpp's numerics.
 *
 * Platform-free: built into the firmware and hosted.
 */
#ifndef DTE_ENGINE_QUANTS_H
#define DTE_ENGINE_QUANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dte_type {
    DTE_TYPE_F32 = 0,
    DTE_TYPE_F16 = 1,
    DTE_TYPE_Q4_0 = 2,
    DTE_TYPE_Q4_1 = 3,
    DTE_TYPE_Q5_0 = 6,
    DTE_TYPE_Q5_1 = 7,
    DTE_TYPE_Q8_0 = 8,
    DTE_TYPE_Q8_1 = 9,
    DTE_TYPE_Q2_K = 10,
    DTE_TYPE_Q3_K = 11,
    DTE_TYPE_Q4_K = 12,
    DTE_TYPE_Q5_K = 13,
    DTE_TYPE_Q6_K = 14,
    DTE_TYPE_Q8_K = 15,
    DTE_TYPE_BF16 = 30,
    DTE_TYPE_COUNT = 31
};

/* True for the types the engine accepts as weights/embeddings. */
bool dte_type_is_weight(uint32_t type);
/* Elements per block (1 for float types) and bytes per block; 0 for unknown types. */
int64_t dte_type_block_elems(uint32_t type);
int64_t dte_type_block_bytes(uint32_t type);
/* Bytes of a row of n elements, or -1 when n is not a multiple of the block size / the type is unknown. */
int64_t dte_type_row_bytes(uint32_t type, int64_t n);
const char *dte_type_name(uint32_t type);

/* Expand one row of n elements to float. */
void dte_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);

/* The activation type a weight type is multiplied with. */
uint32_t dte_vec_dot_type(uint32_t weight_type);
/* Quantize a float row to an activation type (Q8_0, Q8_1, Q8_K, F16, BF16 or F32).
 * Q8_0/Q8_1 follow llama.cpp's x86 CPU path (ggml-cpu/arch/x86/quants.c quantize_row_q8_0/q8_1: id = 127/amax,
 * round half to even), which is what llama.cpp runs on both boards; Q8_K is ggml's reference on every path. */
void dte_quantize_row(uint32_t act_type, const float *src, void *dst, int64_t n);
/* ggml's reference quantizers (ggml-quants.c quantize_row_q8_0_ref/q8_1_ref: id = 1/d, roundf), byte-equal to
 * gguf-py's gguf.quants.quantize. Differs from dte_quantize_row only in Q8_0/Q8_1 rounding ties and the last ulp
 * of the inverse scale. */
void dte_quantize_row_ref(uint32_t act_type, const float *src, void *dst, int64_t n);

/* Dot product of one weight row (weight_type) with one activation row already in dte_vec_dot_type(weight_type).
 * n is the element count. Dispatches to the fastest kernel available for this build (SIMD kernels where
 * generated, the scalar reference otherwise). */
float dte_vec_dot(uint32_t weight_type, int64_t n, const void *weights, const void *activations);
/* One weight row against `tokens` activation rows (act_row_bytes apart): out[t * out_stride] = dot(w, a_t).
 * Uses the multi-token kernels where generated (the weight row is unpacked once per 16 tokens for the K-quants,
 * once per 4 for the others: prompt processing), dte_vec_dot otherwise. */
void dte_vec_dot_tokens(uint32_t weight_type, int64_t n, const void *weights, const void *activations,
                        int64_t act_row_bytes, int64_t tokens, float *out, int64_t out_stride);
/* `rows` weight rows (w_row_bytes apart) against `tokens` activation rows: out[t * out_stride + r] = dot(w_r, a_t).
 * layout: the rows' layout (layout.h). DTE_LAYOUT_ROWS4 for a type with a rows layout: the rows start at a group
 * boundary, whole groups go to the ROWS4 tile kernels (DTE_KERNEL_ROWS x DTE_KERNEL_TOKENS, the leftover tokens to
 * the DTE_KERNEL_ROWS x 1 kernels; no kernels: dte_vec_dot_ref_rows4), and rows % 4 (plain: the tensor's last
 * rows) to dte_vec_dot_tokens. Otherwise every row to dte_vec_dot_tokens (F16 against one token: blocks of
 * DTE_KERNEL_FLOAT_ROWS rows to the float rows kernel where generated; K-quants: the tokens % 4 single tokens,
 * all of them in generation, four plain rows at a time to dte_kernel_plain_rows's kernel). Every result bit-identical to
 * dte_vec_dot_ref's on the plain row. One token (generation) is the tokens == 1 case. */
void dte_vec_dot_rows_tokens(uint32_t weight_type, uint32_t layout, int64_t n, const void *weights, int64_t w_row_bytes,
                             int64_t rows, const void *activations, int64_t act_row_bytes, int64_t tokens, float *out,
                             int64_t out_stride);
/* The scalar reference (always available): the definition of dte's one reduction order (quants_dot.c,
 * docs/kernels.md). Every SIMD kernel, at every width, returns exactly its bits. Within float rounding of ggml's
 * own dot products (whose order varies with the CPU), not bit-equal to them. */
float dte_vec_dot_ref(uint32_t weight_type, int64_t n, const void *weights, const void *activations);
/* The reference on the 4 rows of one ROWS4 group (layout.h; Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) against one activation row:
 * out[r] bit-identical to dte_vec_dot_ref on row r's plain bytes. */
void dte_vec_dot_ref_rows4(uint32_t weight_type, int64_t n, const void *group, const void *activations, float out[4]);

/* fp16 / bf16 conversions (IEEE binary16 round-to-nearest-even; bf16 as ggml: round-to-nearest-even, NaN kept). */
float dte_f16_to_f32(uint16_t h);
uint16_t dte_f32_to_f16(float f);
float dte_bf16_to_f32(uint16_t h);
uint16_t dte_f32_to_bf16(float f);

#endif
