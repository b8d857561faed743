/* The token-generation loop: see generate.h. */
#include "generate.h"

#include "runtime/platform.h"
#include "tokenizer.h"

void dte_generation_begin(dte_generation *g, const dte_generation_setup *setup)
{
    *g = (dte_generation){.s = *setup};
    dte_engine_info info;
    dte_engine_get_info(setup->engine, &info);
    g->eos = info.eos;
    g->n_ctx = info.n_ctx;
    if (dte_engine_truncate(setup->engine, setup->keep) < setup->keep) {
        g->stop = DTE_GEN_ERROR; /* cache not reusable */
    }
}

static int eval(dte_generation *g, const int32_t *ids, int64_t n)
{
    if (g->s.eval) {
        return g->s.eval(g->s.eval_user, ids, n);
    }
    return dte_engine_eval(g->s.engine, ids, n);
}

static int fail(dte_generation *g)
{
    g->stop = DTE_GEN_ERROR;
    return -1;
}

int dte_generation_prefill(dte_generation *g)
{
    if (g->prefilled) {
        return 0;
    }
    g->start_ns = dte_time_ns();
    if (eval(g, g->s.prompt, g->s.n_prompt) != 0) {
        return fail(g);
    }
    g->prompt_done_ns = dte_time_ns();
    g->prefilled = true;
    return 0;
}

int dte_generation_next(dte_generation *g, int32_t *id)
{
    if (g->stop == DTE_GEN_ERROR) {
        return -1;
    }
    if (g->stop != DTE_GEN_RUNNING) {
        return 0;
    }
    if (g->n_generated >= g->s.n_predict) {
        g->stop = DTE_GEN_LENGTH;
        return 0;
    }
    if (g->n_generated > 0 && dte_engine_pos(g->s.engine) >= g->n_ctx) {
        g->stop = DTE_GEN_CONTEXT_FULL;
        return 0;
    }
    if (!g->prefilled) {
        if (dte_generation_prefill(g) != 0) {
            return -1;
        }
    } else if (g->n_generated > 0 && eval(g, &g->last_id, 1) != 0) {
        return fail(g);
    }
    int32_t next = dte_sample(g->s.sampler, dte_engine_logits(g->s.engine));
    if (!g->first_token_ns) {
        g->first_token_ns = dte_time_ns();
    }
    if (next == g->eos || dte_engine_is_eog(g->s.engine, next)) {
        g->stop = DTE_GEN_EOS;
        return 0;
    }
    g->last_id = next;
    g->n_generated++;
    *id = next;
    return 1;
}

void dte_generation_end(dte_generation *g)
{
    g->end_ns = dte_time_ns();
}

int32_t dte_generation_piece(const dte_engine *e, int32_t id, char *buf, int32_t cap)
{
    int32_t len = dte_engine_piece(e, id, buf, cap);
    return len < 0 ? 0 : len < cap ? len : cap;
}

int dte_generation_run(dte_generation *g, int32_t *ids, dte_piece_fn cb, void *user)
{
    if (dte_generation_prefill(g) != 0) {
        return -1;
    }
    char piece[256], text[sizeof piece + 4];
    dte_utf8_stream utf8 = {0};
    int32_t id, last = -1;
    int rc;
    while ((rc = dte_generation_next(g, &id)) == 1) {
        if (ids) {
            ids[g->n_generated - 1] = id;
        }
        if (!cb) {
            continue;
        }
        int32_t len = dte_generation_piece(g->s.engine, id, piece, (int32_t)sizeof piece);
        last = id;
        if (cb(user, id, text, dte_utf8_stream_push(&utf8, piece, len, text)) != 0) {
            g->stop = DTE_GEN_CALLBACK;
            break;
        }
    }
    if (rc < 0) {
        return -1;
    }
    int32_t held = dte_utf8_stream_flush(&utf8, text);
    if (cb && held > 0) {
        cb(user, last, text, held);
    }
    dte_generation_end(g);
    if (!g->first_token_ns) {
        g->first_token_ns = g->end_ns;
    }
    return 0;
}
