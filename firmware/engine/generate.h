/* The token-generation loop, one copy for every caller (hosted dte_host_generate, the boot prompt in
 * boot/run_engine.c, network sessions in boot/net_engine.c), so all of them give the same ids for the same
 * model and settings:
 *
 *     evaluate the prompt in one call (prefill)
 *     repeat: stop at n_predict or a full context; evaluate the last token (not before the first sample);
 *             sample; stop at EOS; hand the token out
 *
 * Two ways to drive it: dte_generation_run (push: every token's text piece to a callback, ids into a buffer)
 * and dte_generation_next (pull: one token per call, for a caller that streams between forward passes).
 * Callers cap n_predict themselves where they want (the appliance caps it to the context's room).
 * dte_generation_begin truncates the KV cache to setup.keep positions (0: empty) and the prompt is evaluated
 * after them: a conversation continues from the tokens it keeps (engine/conversation.h). Platform-free;
 * times are dte_time_ns. */
#ifndef DTE_ENGINE_GENERATE_H
#define DTE_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine.h"
#include "sampler.h"

/* Evaluates n tokens at the next positions, the last token's logits into dte_engine_logits. 0 on success. */
typedef int (*dte_eval_fn)(void *user, const int32_t *ids, int64_t n);
/* Called per generated token with its text piece; return non-zero to stop. */
typedef int (*dte_piece_fn)(void *user, int32_t id, const char *piece, int32_t len);

enum dte_generation_stop {
    DTE_GEN_RUNNING = 0,
    DTE_GEN_LENGTH,        /* n_predict tokens generated */
    DTE_GEN_CONTEXT_FULL,  /* no room for the next token's evaluation */
    DTE_GEN_EOS,           /* the sampler picked the end-of-sequence token */
    DTE_GEN_CALLBACK,      /* the piece callback asked to stop */
    DTE_GEN_ERROR,         /* an evaluation failed */
};

typedef struct {
    dte_engine *engine;       /* its logits are what the sampler reads; its EOS stops the loop */
    dte_sampler *sampler;
    dte_eval_fn eval;         /* NULL: dte_engine_eval(engine, ids, n) */
    void *eval_user;
    const int32_t *prompt;
    int64_t n_prompt;
    int32_t n_predict;
    uint32_t keep;            /* KV positions kept from before (0: start from an empty cache) */
} dte_generation_setup;

typedef struct {
    dte_generation_setup s;
    int32_t n_generated;
    int32_t eos;              /* the engine's end-of-sequence id */
    uint32_t n_ctx;           /* the engine's context size */
    int32_t last_id;
    bool prefilled;
    uint8_t stop;             /* enum dte_generation_stop */
    uint64_t start_ns;        /* prefill began */
    uint64_t prompt_done_ns;  /* prefill ended */
    uint64_t first_token_ns;  /* first sample (EOS included); 0 before it */
    uint64_t end_ns;          /* set by dte_generation_run and dte_generation_end */
} dte_generation;

/* Truncate the KV cache to setup->keep positions and start a generation of `setup` (the sampler keeps its
 * settings and seed). */
void dte_generation_begin(dte_generation *g, const dte_generation_setup *setup);
/* Evaluate the prompt (once; later calls do nothing). 0, or -1 when the evaluation failed. */
int dte_generation_prefill(dte_generation *g);
/* The next token: 1 with *id set; 0 when finished (g->stop says why); -1 when an evaluation failed. Checks
 * n_predict before the prefill, so n_predict 0 finishes without evaluating anything. */
int dte_generation_next(dte_generation *g, int32_t *id);
/* Prefill, then every token to ids (capacity n_predict; may be NULL) and to cb (may be NULL) until finished;
 * cb sees whole UTF-8 characters only: the bytes of a character split across tokens arrive with the token that
 * completes it (dte_utf8_stream), and a sequence still incomplete at the end comes in one last call that repeats
 * the last id;
 * stamps end_ns (and first_token_ns when no token was sampled). 0, or -1 when an evaluation failed. */
int dte_generation_run(dte_generation *g, int32_t *ids, dte_piece_fn cb, void *user);
/* Stamp end_ns now (for dte_generation_next's callers). */
void dte_generation_end(dte_generation *g);

/* One token's text into buf, its length clamped to [0, cap]. */
int32_t dte_generation_piece(const dte_engine *e, int32_t id, char *buf, int32_t cap);

#endif /* DTE_ENGINE_GENERATE_H */
