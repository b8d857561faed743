/* Identity sampler stage: see identity.h for the formula (docs/identity.md). */
#include "identity.h"

/* logit + weight * echo must round twice (product, then sum), the way the documented formula and its numpy
 * reference do: never contract it into an FMA. */
#pragma STDC FP_CONTRACT OFF

#define ECHO_SCALE 8388608.0f /* 2^23 */

static uint64_t load_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }
    return v;
}

/* splitmix64's output function (Steele, Lea, Flood 2014): a bijective 64-bit mixer. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void dte_identity_init(dte_identity *id, const uint8_t hash[32], float strength)
{
    id->seed = load_le(hash, 8);
    id->resonance = 0.5f + (float)load_le(hash + 8, 2) / 131072.0f;
    id->weight = strength * id->resonance;
}

float dte_identity_echo(const dte_identity *id, int32_t token)
{
    uint64_t z = mix64(id->seed ^ ((uint64_t)(uint32_t)token * 0x9E3779B97F4A7C15ULL));
    float top24 = (float)(uint32_t)(z >> 40);
    return (top24 - ECHO_SCALE) / ECHO_SCALE;
}

float dte_identity_stage(void *user, int32_t token, float logit)
{
    const dte_identity *id = user;
    float bias = id->weight * dte_identity_echo(id, token);
    return logit + bias;
}

void dte_identity_apply(const dte_identity *id, float *logits, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        logits[i] = dte_identity_stage((void *)id, (int32_t)i, logits[i]);
    }
}

void dte_identity_attach(dte_identity *id, dte_sampler *s)
{
    if (id->weight != 0.0f) {
        dte_sampler_set_stage(s, dte_identity_stage, id);
    }
}
