/* Greedy / temperature / top-k / top-p sampling with xoshiro256** (Blackman & Vigna) seeded by splitmix64. */
#include "sampler.h"

#include "mathf.h"
#include "runtime/platform.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t dte_sampler_next_u64(dte_sampler *s)
{
    uint64_t *r = s->rng;
    const uint64_t result = rotl(r[1] * 5, 7) * 9, t = r[1] << 17;
    r[2] ^= r[0];
    r[3] ^= r[1];
    r[1] ^= r[2];
    r[0] ^= r[3];
    r[2] ^= t;
    r[3] = rotl(r[3], 45);
    return result;
}

void dte_sampler_configure(dte_sampler *s, float temp, int32_t top_k, float top_p, uint64_t seed)
{
    s->temp = temp;
    s->top_k = top_k;
    s->top_p = top_p;
    for (int i = 0; i < 4; i++) {
        s->rng[i] = splitmix64(&seed);
    }
}

int dte_sampler_init(dte_sampler *s, uint32_t n_vocab, float temp, int32_t top_k, float top_p, uint64_t seed)
{
    *s = (dte_sampler){0};
    s->n_vocab = n_vocab;
    dte_sampler_configure(s, temp, top_k, top_p, seed);
    s->cand = dte_alloc((size_t)n_vocab * sizeof(int32_t), 64);
    s->prob = dte_alloc((size_t)n_vocab * sizeof(float), 64);
    return s->cand && s->prob ? 0 : -1;
}

void dte_sampler_set_stage(dte_sampler *s, dte_logit_stage_fn fn, void *user)
{
    s->stage = fn;
    s->stage_user = user;
}

/* Order: higher logit first, then the lower token id (a total order, so results do not depend on the sort). */
static int better(const float *logits, int32_t a, int32_t b)
{
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
}

/* Sift-down for a heap over cand[0..n) whose root is the WORST candidate (min-heap by `better`). */
static void sift_worst(const float *logits, int32_t *cand, int64_t n, int64_t i)
{
    for (;;) {
        int64_t c = 2 * i + 1;
        if (c >= n) {
            return;
        }
        if (c + 1 < n && better(logits, cand[c], cand[c + 1])) {
            c++;
        }
        if (!better(logits, cand[i], cand[c])) {
            return;
        }
        int32_t t = cand[i];
        cand[i] = cand[c];
        cand[c] = t;
        i = c;
    }
}

/* The k best tokens into cand[0..k), best first. */
static int64_t select_top(const float *logits, int64_t n, int64_t k, int32_t *cand)
{
    for (int64_t i = 0; i < k; i++) {
        cand[i] = (int32_t)i;
    }
    for (int64_t i = k / 2 - 1; i >= 0; i--) {
        sift_worst(logits, cand, k, i);
    }
    for (int64_t i = k; i < n; i++) {
        if (better(logits, (int32_t)i, cand[0])) {
            cand[0] = (int32_t)i;
            sift_worst(logits, cand, k, 0);
        }
    }
    for (int64_t end = k - 1; end > 0; end--) { /* heap sort: worst to the back */
        int32_t t = cand[0];
        cand[0] = cand[end];
        cand[end] = t;
        sift_worst(logits, cand, end, 0);
    }
    return k;
}

int32_t dte_sample(dte_sampler *s, float *logits)
{
    const int64_t n = s->n_vocab;
    if (s->stage) {
        for (int64_t i = 0; i < n; i++) {
            logits[i] = s->stage(s->stage_user, (int32_t)i, logits[i]);
        }
    }
    if (s->temp <= 0.0f) {
        int32_t best = 0;
        for (int64_t i = 1; i < n; i++) {
            if (logits[i] > logits[best]) {
                best = (int32_t)i;
            }
        }
        return best;
    }
    int64_t k = (s->top_k > 0 && s->top_k < n) ? s->top_k : n;
    k = select_top(logits, n, k, s->cand);
    const float max = logits[s->cand[0]];
    double sum = 0.0;
    if (s->top_p > 0.0f && s->top_p < 1.0f) {
        /* llama.cpp's default chain order: top-k, then top-p on the untempered softmax, then temperature. */
        for (int64_t i = 0; i < k; i++) {
            s->prob[i] = (float)dte_exp_d((double)(logits[s->cand[i]] - max));
            sum += s->prob[i];
        }
        double cum = 0.0;
        for (int64_t i = 0; i < k; i++) {
            cum += s->prob[i] / sum;
            if (cum >= s->top_p) {
                k = i + 1;
                break;
            }
        }
        sum = 0.0;
    }
    for (int64_t i = 0; i < k; i++) {
        s->prob[i] = (float)dte_exp_d((double)(logits[s->cand[i]] - max) / (double)s->temp);
        sum += s->prob[i];
    }
    const double u = (double)(dte_sampler_next_u64(s) >> 11) * (1.0 / 9007199254740992.0) * sum; /* [0, sum) */
    double acc = 0.0;
    for (int64_t i = 0; i < k; i++) {
        acc += s->prob[i];
        if (u < acc) {
            return s->cand[i];
        }
    }
    return s->cand[k - 1];
}
