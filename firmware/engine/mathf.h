/* Freestanding float math for the engine (no libm on bare metal).
 *
 * Each function evaluates in double precision and rounds once to float, so results are within about one ulp
 * of a correctly rounded libm (what llama.cpp gets from glibc's expf/sinf/cosf/powf). Platform-free.
 */
#ifndef DTE_ENGINE_MATHF_H
#define DTE_ENGINE_MATHF_H

float dte_sqrtf(float x);
float dte_expf(float x);
float dte_logf(float x);
float dte_powf(float base, float exponent);
float dte_sinf(float x);
float dte_cosf(float x);
float dte_tanhf(float x);
/* x / (1 + exp(-x)), the SiLU used by ggml_silu / ggml_swiglu. */
float dte_siluf(float x);

/* Double-precision building blocks (also used by the sampler). */
double dte_exp_d(double x);
double dte_log_d(double x);

#endif /* DTE_ENGINE_MATHF_H */
