/* Kernel table: which generated kernel (kernels.h) serves which weight type in this build. */
#include "kernels.h"

#include "quants.h"

#include <stddef.h>

dte_vec_dot_fn dte_kernel_vec_dot(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q8_0: return dte_k_vec_dot_q8_0_q8_0;
    case DTE_TYPE_Q4_0: return dte_k_vec_dot_q4_0_q8_0;
    case DTE_TYPE_Q4_1: return dte_k_vec_dot_q4_1_q8_1;
    case DTE_TYPE_Q5_0: return dte_k_vec_dot_q5_0_q8_0;
    case DTE_TYPE_Q5_1: return dte_k_vec_dot_q5_1_q8_1;
    case DTE_TYPE_Q2_K: return dte_k_vec_dot_q2_K_q8_K;
    case DTE_TYPE_Q3_K: return dte_k_vec_dot_q3_K_q8_K;
    case DTE_TYPE_Q4_K: return dte_k_vec_dot_q4_K_q8_K;
    case DTE_TYPE_Q5_K: return dte_k_vec_dot_q5_K_q8_K;
    case DTE_TYPE_Q6_K: return dte_k_vec_dot_q6_K_q8_K;
    case DTE_TYPE_F32: return dte_k_vec_dot_f32_f32;
    case DTE_TYPE_F16: return dte_k_vec_dot_f16_f16;
    case DTE_TYPE_BF16: return dte_k_vec_dot_bf16_bf16;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_vec_dot4_fn dte_kernel_vec_dot4(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q8_0: return dte_k_vec_dot4_q8_0_q8_0;
    case DTE_TYPE_Q4_0: return dte_k_vec_dot4_q4_0_q8_0;
    case DTE_TYPE_Q4_1: return dte_k_vec_dot4_q4_1_q8_1;
    case DTE_TYPE_Q5_0: return dte_k_vec_dot4_q5_0_q8_0;
    case DTE_TYPE_Q5_1: return dte_k_vec_dot4_q5_1_q8_1;
    case DTE_TYPE_Q2_K: return dte_k_vec_dot4_q2_K_q8_K;
    case DTE_TYPE_Q3_K: return dte_k_vec_dot4_q3_K_q8_K;
    case DTE_TYPE_Q4_K: return dte_k_vec_dot4_q4_K_q8_K;
    case DTE_TYPE_Q5_K: return dte_k_vec_dot4_q5_K_q8_K;
    case DTE_TYPE_Q6_K: return dte_k_vec_dot4_q6_K_q8_K;
    case DTE_TYPE_F32: return dte_k_vec_dot4_f32_f32;
    case DTE_TYPE_F16: return dte_k_vec_dot4_f16_f16;
    case DTE_TYPE_BF16: return dte_k_vec_dot4_bf16_bf16;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_gemm_fn dte_kernel_float_rows(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    return weight_type == DTE_TYPE_F16 ? dte_k_gemm16x1_f16_f16 : NULL;
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_vec_dot4_fn dte_kernel_vec_dot16(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q2_K: return dte_k_vec_dot16_q2_K_q8_K;
    case DTE_TYPE_Q3_K: return dte_k_vec_dot16_q3_K_q8_K;
    case DTE_TYPE_Q4_K: return dte_k_vec_dot16_q4_K_q8_K;
    case DTE_TYPE_Q5_K: return dte_k_vec_dot16_q5_K_q8_K;
    case DTE_TYPE_Q6_K: return dte_k_vec_dot16_q6_K_q8_K;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_gemm_fn dte_kernel_gemm(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q8_0: return dte_k_gemm4x4_q8_0_q8_0;
    case DTE_TYPE_Q4_0: return dte_k_gemm4x4_q4_0_q8_0;
    case DTE_TYPE_Q4_1: return dte_k_gemm4x4_q4_1_q8_1;
    case DTE_TYPE_Q5_0: return dte_k_gemm4x4_q5_0_q8_0;
    case DTE_TYPE_Q5_1: return dte_k_gemm4x4_q5_1_q8_1;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_gemm_fn dte_kernel_rows(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q8_0: return dte_k_gemm4x1_q8_0_q8_0;
    case DTE_TYPE_Q4_0: return dte_k_gemm4x1_q4_0_q8_0;
    case DTE_TYPE_Q4_1: return dte_k_gemm4x1_q4_1_q8_1;
    case DTE_TYPE_Q5_0: return dte_k_gemm4x1_q5_0_q8_0;
    case DTE_TYPE_Q5_1: return dte_k_gemm4x1_q5_1_q8_1;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}

dte_gemm_fn dte_kernel_plain_rows(uint32_t weight_type)
{
#ifdef DTE_HAVE_GENERATED_KERNELS
    switch (weight_type) {
    case DTE_TYPE_Q2_K: return dte_k_gemm4x1_q2_K_q8_K;
    case DTE_TYPE_Q3_K: return dte_k_gemm4x1_q3_K_q8_K;
    case DTE_TYPE_Q4_K: return dte_k_gemm4x1_q4_K_q8_K;
    case DTE_TYPE_Q5_K: return dte_k_gemm4x1_q5_K_q8_K;
    case DTE_TYPE_Q6_K: return dte_k_gemm4x1_q6_K_q8_K;
    default: return NULL;
    }
#else
    (void)weight_type;
    return NULL;
#endif
}
