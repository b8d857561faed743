/* Freestanding float math: double-precision kernels rounded once to float (see mathf.h). */
#include "mathf.h"

#include <stdint.h>

static const double LN2_HI = 6.93147180369123816490e-01; /* fdlibm split of ln 2 */
static const double LN2_LO = 1.90821492927058770002e-10;
static const double LOG2E = 1.44269504088896338700e+00;

static uint64_t bits_of(double x)
{
    union {
        double d;
        uint64_t u;
    } v = {x};
    return v.u;
}

static double from_bits(uint64_t u)
{
    union {
        uint64_t u;
        double d;
    } v = {u};
    return v.d;
}

static double round_half_even(double x)
{
    /* Valid for |x| < 2^51: adding and subtracting 1.5*2^52 rounds to an integer in the current (nearest) mode. */
    const double magic = 6755399441055744.0;
    volatile double t = x + magic;
    return t - magic;
}

float dte_sqrtf(float x)
{
#if defined(__x86_64__) || defined(__i386__)
    float r;
    __asm__("sqrtss %1, %0" : "=x"(r) : "x"(x)); /* IEEE 754 correctly rounded square root */
    return r;
#else
    if (!(x > 0.0f)) {
        return x == 0.0f ? x : (x - x) / (x - x);
    }
    double d = (double)x, r = d;
    for (int i = 0; i < 60; i++) {
        r = 0.5 * (r + d / r);
    }
    return (float)r;
#endif
}

double dte_exp_d(double x)
{
    if (x != x) {
        return x;
    }
    if (x > 709.7) {
        return 1.0 / 0.0 * (x > 0);
    }
    if (x < -745.2) {
        return 0.0;
    }
    double k = round_half_even(x * LOG2E);
    double r = (x - k * LN2_HI) - k * LN2_LO; /* |r| <= ln2/2 */
    /* Taylor series to r^13: truncation error < 2^-60 on |r| <= 0.347. */
    double p = 1.0 / 6227020800.0;
    static const double inv_fact[13] = {1.0 / 479001600.0,
                                        1.0 / 39916800.0,
                                        1.0 / 3628800.0,
                                        1.0 / 362880.0,
                                        1.0 / 40320.0,
                                        1.0 / 5040.0,
                                        1.0 / 720.0,
                                        1.0 / 120.0,
                                        1.0 / 24.0,
                                        1.0 / 6.0,
                                        0.5,
                                        1.0,
                                        1.0};
    for (int i = 0; i < 13; i++) {
        p = p * r + inv_fact[i];
    }
    int64_t ki = (int64_t)k;
    /* Scale by 2^k in two steps so subnormal results and k = 1024 stay representable. */
    int64_t k1 = ki / 2, k2 = ki - k1;
    return p * from_bits((uint64_t)(k1 + 1023) << 52) * from_bits((uint64_t)(k2 + 1023) << 52);
}

double dte_log_d(double x)
{
    if (x != x || x < 0.0) {
        return (x - x) / (x - x);
    }
    if (x == 0.0) {
        return -1.0 / 0.0;
    }
    if (x == 1.0 / 0.0) {
        return x;
    }
    uint64_t u = bits_of(x);
    int64_t e = (int64_t)((u >> 52) & 0x7ff);
    if (e == 0) { /* subnormal: normalise */
        x *= 18014398509481984.0; /* 2^54 */
        u = bits_of(x);
        e = (int64_t)((u >> 52) & 0x7ff) - 54;
    }
    e -= 1023;
    double m = from_bits((u & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL); /* [1, 2) */
    if (m > 1.41421356237309504880) {
        m *= 0.5;
        e += 1;
    }
    /* log(m) = 2 atanh(s), s = (m-1)/(m+1), |s| <= 0.1716: series to s^23 is below 2^-60. */
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, term = s, sum = 0.0;
    for (int k = 1; k <= 23; k += 2) {
        sum += term / (double)k;
        term *= s2;
    }
    return 2.0 * sum + (double)e * LN2_LO + (double)e * LN2_HI;
}

/* 2^(i/32), i = 0..31, as double bit patterns (table-driven expf in the style of musl / ARM optimized-routines). */
static const uint64_t EXP2_TABLE[32] = {
    0x3ff0000000000000ULL, 0x3ff059b0d3158574ULL, 0x3ff0b5586cf9890fULL, 0x3ff11301d0125b51ULL, 0x3ff172b83c7d517bULL,
    0x3ff1d4873168b9aaULL, 0x3ff2387a6e756238ULL, 0x3ff29e9df51fdee1ULL, 0x3ff306fe0a31b715ULL, 0x3ff371a7373aa9cbULL,
    0x3ff3dea64c123422ULL, 0x3ff44e086061892dULL, 0x3ff4bfdad5362a27ULL, 0x3ff5342b569d4f82ULL, 0x3ff5ab07dd485429ULL,
    0x3ff6247eb03a5585ULL, 0x3ff6a09e667f3bcdULL, 0x3ff71f75e8ec5f74ULL, 0x3ff7a11473eb0187ULL, 0x3ff82589994cce13ULL,
    0x3ff8ace5422aa0dbULL, 0x3ff93737b0cdc5e5ULL, 0x3ff9c49182a3f090ULL, 0x3ffa5503b23e255dULL, 0x3ffae89f995ad3adULL,
    0x3ffb7f76f2fb5e47ULL, 0x3ffc199bdd85529cULL, 0x3ffcb720dcef9069ULL, 0x3ffd5818dcfba487ULL, 0x3ffdfc97337b9b5fULL,
    0x3ffea4afa2a490daULL, 0x3fff50765b6e4540ULL

};

/* exp(x) = 2^(k/32) * 2^(r/32) with z = x*32/ln2 = k + r, |r| <= 1/2; the cubic in r is good to 2^-31 relative,
 * far below a float ulp, so the result is within about 0.5 ulp. Tiny/huge arguments take the double path. */
float dte_expf(float x)
{
    if (!(x > -87.0f && x < 88.0f)) {
        return (float)dte_exp_d((double)x); /* NaN, overflow, subnormal results */
    }
    static const double INV_LN2_N = 46.166241308446828;                 /* 32 / ln 2 */
    static const double C1 = 2.1660849392498290e-02;                    /* ln2/32 */
    static const double C2 = 2.3459619820224677e-04;                    /* (ln2/32)^2 / 2 */
    static const double C3 = 1.6938509724371819e-06;                    /* (ln2/32)^3 / 6 */
    const double z = INV_LN2_N * (double)x;
    const double kd = round_half_even(z);
    const double r = z - kd;
    const int64_t ki = (int64_t)kd;
    const uint64_t bits = EXP2_TABLE[ki & 31] + ((uint64_t)(ki >> 5) << 52);
    const double p = 1.0 + r * (C1 + r * (C2 + r * C3));
    return (float)(from_bits(bits) * p);
}
float dte_logf(float x)
{
    return (float)dte_log_d((double)x);
}

float dte_powf(float base, float exponent)
{
    if (exponent == 0.0f) {
        return 1.0f;
    }
    if (base == 1.0f) {
        return 1.0f;
    }
    if (base > 0.0f) {
        return (float)dte_exp_d((double)exponent * dte_log_d((double)base));
    }
    if (base == 0.0f) {
        return exponent > 0.0f ? 0.0f : 1.0f / 0.0f;
    }
    /* Negative base: defined only for integer exponents. */
    double ip = round_half_even((double)exponent);
    if (ip != (double)exponent) {
        return (base - base) / (base - base);
    }
    double mag = dte_exp_d((double)exponent * dte_log_d(-(double)base));
    int64_t odd = (int64_t)ip & 1;
    return (float)(odd ? -mag : mag);
}

/* sin and cos of the reduced argument r, |r| <= pi/4, by Taylor series to r^17 / r^18. */
static double sin_kernel(double r)
{
    double r2 = r * r, term = r, sum = r;
    for (int k = 1; k <= 8; k++) {
        term *= -r2 / (double)((2 * k) * (2 * k + 1));
        sum += term;
    }
    return sum;
}

static double cos_kernel(double r)
{
    double r2 = r * r, term = 1.0, sum = 1.0;
    for (int k = 1; k <= 9; k++) {
        term *= -r2 / (double)((2 * k - 1) * (2 * k));
        sum += term;
    }
    return sum;
}

/* Cody-Waite reduction by pi/2 with a three-part constant (exact products for |q| < 2^20). */
static double reduce_half_pi(double x, int64_t *quadrant)
{
    static const double TWO_OVER_PI = 6.36619772367581382433e-01;
    static const double PIO2_1 = 1.57079632673412561417e+00;  /* first 33 bits of pi/2 */
    static const double PIO2_2 = 6.07710050650619224932e-11;  /* next 33 bits */
    static const double PIO2_3 = 2.02226624879595063154e-21;  /* the rest */
    double q = round_half_even(x * TWO_OVER_PI);
    *quadrant = (int64_t)q;
    return ((x - q * PIO2_1) - q * PIO2_2) - q * PIO2_3;
}

static double sin_cos_d(double x, int want_cos)
{
    if (x != x || x - x != 0.0) {
        return (x - x) / (x - x); /* NaN or infinity */
    }
    if (x > 0x1p62 || x < -0x1p62) {
        return 0.0; /* no phase left at this magnitude; keeps the quadrant an int64 */
    }
    int64_t q;
    double r = reduce_half_pi(x, &q);
    int64_t quadrant = (q + (want_cos ? 1 : 0)) & 3;
    switch (quadrant) {
    case 0: return sin_kernel(r);
    case 1: return cos_kernel(r);
    case 2: return -sin_kernel(r);
    default: return -cos_kernel(r);
    }
}

float dte_sinf(float x)
{
    return (float)sin_cos_d((double)x, 0);
}
float dte_cosf(float x)
{
    return (float)sin_cos_d((double)x, 1);
}

float dte_tanhf(float x)
{
    double d = (double)x;
    if (d > 20.0) {
        return 1.0f;
    }
    if (d < -20.0) {
        return -1.0f;
    }
    if (d > -0.125 && d < 0.125) { /* series avoids cancellation in (e^2x - 1) */
        double d2 = d * d;
        return (float)(d * (1.0 + d2 * (-1.0 / 3 + d2 * (2.0 / 15 + d2 * (-17.0 / 315 + d2 * (62.0 / 2835))))));
    }
    double e = dte_exp_d(2.0 * d);
    return (float)((e - 1.0) / (e + 1.0));
}

/* ggml_silu_f32: x / (1 + expf(-x)) in float. */
float dte_siluf(float x)
{
    return x / (1.0f + dte_expf(-x));
}
