/* Weight quantizers for the K-quant types (host-side tooling and tests: makes Q2_K..Q6_K tensors without
 * llama.cpp). Simple min/max scale search per sub-block, then 6/8-bit super-block scales; valid ggml blocks
 * (ggml-common.h), not byte-equal to llama.cpp's quantize_row_q*_K_ref (whose iterative search gives somewhat
 * lower error). */
#ifndef DTE_ENGINE_QUANTS_K_QUANTIZE_H
#define DTE_ENGINE_QUANTS_K_QUANTIZE_H

#include <stdint.h>

/* Quantize n floats (a multiple of 256) to Q2_K, Q3_K, Q4_K, Q5_K or Q6_K. Returns 0, or -1 for another type or
 * a bad n. */
int dte_quantize_row_k(uint32_t type, const float *src, void *dst, int64_t n);

#endif
