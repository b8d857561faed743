/* Token sampling: greedy (temp <= 0), or top-k, top-p (on the untempered distribution, llama.cpp's default
 * order), then temperature, drawn with a seeded xoshiro256** generator,
 * so the same seed gives the same tokens everywhere. An optional per-logit stage runs first (the identity hook
 * the firmware can enable; off by default). Platform-free.
 */
#ifndef DTE_ENGINE_SAMPLER_H
#define DTE_ENGINE_SAMPLER_H

#include <stdint.h>

/* Returns the (possibly changed) logit of `token`. */
typedef float (*dte_logit_stage_fn)(void *user, int32_t token, float logit);

typedef struct {
    uint32_t n_vocab;
    float temp;    /* <= 0: greedy */
    int32_t top_k; /* <= 0: off */
    float top_p;   /* >= 1: off */
    uint64_t rng[4];
    dte_logit_stage_fn stage; /* NULL: off */
    void *stage_user;
    int32_t *cand; /* n_vocab scratch */
    float *prob;   /* n_vocab scratch */
} dte_sampler;

/* Returns 0, or -1 when out of memory. */
int dte_sampler_init(dte_sampler *s, uint32_t n_vocab, float temp, int32_t top_k, float top_p, uint64_t seed);
/* New settings and seed, keeping the scratch and the stage (no allocation): the state dte_sampler_init leaves
 * for these values. For a long-lived sampler serving many requests (the appliance's network server). */
void dte_sampler_configure(dte_sampler *s, float temp, int32_t top_k, float top_p, uint64_t seed);
void dte_sampler_set_stage(dte_sampler *s, dte_logit_stage_fn fn, void *user);
/* Pick the next token from n_vocab logits (the array may be modified). */
int32_t dte_sample(dte_sampler *s, float *logits);
/* Next raw 64-bit value of the generator (exposed for tests). */
uint64_t dte_sampler_next_u64(dte_sampler *s);

#endif /* DTE_ENGINE_SAMPLER_H */
