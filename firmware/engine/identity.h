/* The identity sampler stage (docs/identity.md, "Identity stage"): a per-logit bias derived from the persona's
 * SHA-256, applied to every logit before sampling:
 *
 *     seed      = u64 little-endian of hash[0..8)
 *     resonance = 0.5 + u16 little-endian of hash[8..10) / 131072          in [0.5, 1)
 *     weight    = (float)(strength * resonance)                             one float32 rounding
 *     z(i)      = mix64(seed ^ (i * 0x9E3779B97F4A7C15))                     splitmix64's finalizer
 *     echo(i)   = ((float)(z(i) >> 40) - 2^23) / 2^23                        in [-1, 1), exact in float32
 *     logit'[i] = logit[i] + (float)(weight * echo(i))                       two float32 roundings, no FMA
 *
 * Strength 0 means the stage is not installed at all (the sampler's output stays llama.cpp-identical).
 * Platform-free; built into the firmware and the hosted library. */
#ifndef DTE_ENGINE_IDENTITY_H
#define DTE_ENGINE_IDENTITY_H

#include <stdint.h>

#include "sampler.h"

typedef struct {
    uint64_t seed;
    float resonance;
    float weight; /* strength * resonance; 0: off */
} dte_identity;

void dte_identity_init(dte_identity *id, const uint8_t hash[32], float strength);
/* echo(i) in [-1, 1). */
float dte_identity_echo(const dte_identity *id, int32_t token);
/* The sampler stage (dte_logit_stage_fn); `user` is a dte_identity. */
float dte_identity_stage(void *user, int32_t token, float logit);
/* logits[i] = stage(i, logits[i]) for i < n (what the sampler does, for tests and tools). */
void dte_identity_apply(const dte_identity *id, float *logits, int64_t n);
/* Install the stage on `s` when id->weight != 0; otherwise leave `s` untouched (stage off). */
void dte_identity_attach(dte_identity *id, dte_sampler *s);

#endif /* DTE_ENGINE_IDENTITY_H */
