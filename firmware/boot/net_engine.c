/* The token protocol's engine on the real engine (see net_engine.h). */
#include "boot/net_engine.h"

#include "boot/status.h"
#include "dte_config.h"
#include "engine/platform.h"

#ifndef DTE_SYSTEM_PROMPT
#define DTE_SYSTEM_PROMPT ""
#endif

static const char system_prompt[] = DTE_SYSTEM_PROMPT;
#define SYSTEM_PROMPT_LEN (sizeof system_prompt - 1u)

/* system prompt + '\n' + text into ne->text; returns the length. */
static uint64_t compose_prompt(struct net_engine *ne, const uint8_t *text, uint64_t size)
{
    uint64_t len = 0;
    if (SYSTEM_PROMPT_LEN) {
        for (uint64_t i = 0; i < SYSTEM_PROMPT_LEN; i++) {
            ne->text[len++] = system_prompt[i];
        }
        ne->text[len++] = '\n';
    }
    for (uint64_t i = 0; i < size && len < ne->text_cap; i++) {
        ne->text[len++] = (char)text[i];
    }
    return len;
}

int net_engine_init(struct net_engine *ne)
{
    *ne = (struct net_engine){0};
    if (run_engine_parts(&ne->parts) != 0) {
        dte_status("net error=no_engine text=\"the engine did not start\"");
        return -1;
    }
    uint32_t n_ctx = dte_llama_ctx_size(ne->parts.ctx);
    ne->text_cap = SYSTEM_PROMPT_LEN + 1u + DTE_PROTO_MAX_PAYLOAD;
    ne->text = dte_alloc(ne->text_cap, 64);
    ne->prompt_ids = dte_alloc((size_t)n_ctx * sizeof(int32_t), 64);
    if (!ne->text || !ne->prompt_ids) {
        dte_status("net error=memory text=\"no memory for the request buffers\"");
        return -1;
    }
    /* Grow the tokenizer's work buffer once, to the largest request, so no request allocates. */
    for (uint64_t i = 0; i < ne->text_cap; i++) {
        ne->text[i] = 'a';
    }
    dte_tokenize(ne->parts.tok, ne->text, ne->text_cap, ne->parts.tok->add_bos, NULL, 0);
    return 0;
}

static int engine_start(void *ctx, const dte_proto_request *request)
{
    struct net_engine *ne = ctx;
    struct engine_parts *p = &ne->parts;
    uint32_t n_ctx = dte_llama_ctx_size(p->ctx);
    uint64_t len = compose_prompt(ne, request->text, request->text_size);
    int64_t n = dte_tokenize(p->tok, ne->text, len, p->tok->add_bos, ne->prompt_ids, n_ctx);
    if (n <= 0 || n >= (int64_t)n_ctx) {
        return -1;   /* empty, untokenizable, or no room left to generate: ERROR ENGINE */
    }
    ne->n_prompt = n;
    ne->prompt_sent = 0;
    uint32_t room = n_ctx - (uint32_t)n;
    ne->n_predict = request->n_predict < room ? (int32_t)request->n_predict : (int32_t)room;
    ne->n_generated = 0;
    ne->prefilled = false;
    ne->failed = false;
    ne->reason = DTE_DONE_LENGTH;
    ne->prompt_ns = ne->generate_ns = 0;
    /* Every request starts from an empty KV cache and a freshly seeded sampler: requests are independent. */
    dte_llama_ctx_reset(p->ctx);
    dte_sampler_configure(p->sampler, request->temperature, (int32_t)request->top_k, request->top_p, request->seed);
    return 0;
}

static int fail_step(struct net_engine *ne)
{
    ne->failed = true;
    ne->reason = DTE_DONE_ENGINE_ERROR;
    return -1;
}

/* Evaluate what the next sample needs: the whole prompt once, then the last generated token. */
static int advance(struct net_engine *ne)
{
    struct engine_parts *p = &ne->parts;
    if (!ne->prefilled) {
        uint64_t t0 = dte_time_ns();
        if (dte_llama_eval(p->ctx, ne->prompt_ids, (uint32_t)ne->n_prompt, p->logits) != 0) {
            return fail_step(ne);
        }
        ne->generate_start_ns = dte_time_ns();
        ne->prompt_ns = ne->generate_start_ns - t0;
        ne->prefilled = true;
        return 0;
    }
    return dte_llama_eval(p->ctx, &ne->last_id, 1, p->logits) != 0 ? fail_step(ne) : 0;
}

/* The token and its text piece into *out (the piece stays valid until the next call). */
static int emit_token(struct net_engine *ne, int32_t id, bool is_prompt, dte_proto_token *out)
{
    int len = dte_token_piece(ne->parts.tok, id, ne->piece, (int)sizeof ne->piece);
    len = len < 0 ? 0 : len < (int)sizeof ne->piece ? len : (int)sizeof ne->piece;
    *out = (dte_proto_token){.id = (uint32_t)id, .piece = (const uint8_t *)ne->piece, .piece_size = (size_t)len,
                             .is_prompt = is_prompt};
    return DTE_ENGINE_STEP_TOKEN;
}

static int engine_step(void *ctx, dte_proto_token *out)
{
    struct net_engine *ne = ctx;
    struct engine_parts *p = &ne->parts;
    if (ne->failed) {
        return -1;
    }
    if (ne->prompt_sent < ne->n_prompt) {
        return emit_token(ne, ne->prompt_ids[ne->prompt_sent++], true, out);
    }
    /* Stop rules of dte_host_generate: n_predict reached, or the context is full. */
    if (ne->n_generated >= ne->n_predict ||
        (ne->prefilled && dte_llama_ctx_pos(p->ctx) >= dte_llama_ctx_size(p->ctx))) {
        return DTE_ENGINE_STEP_FINISHED;
    }
    if (advance(ne) != 0) {
        return -1;
    }
    int32_t id = dte_sample(p->sampler, p->logits);
    if (id == p->tok->eos) {
        ne->reason = DTE_DONE_END_OF_SEQUENCE;
        return DTE_ENGINE_STEP_FINISHED;
    }
    ne->last_id = id;
    ne->n_generated++;
    return emit_token(ne, id, false, out);
}

static void engine_finish(void *ctx, dte_proto_result *out)
{
    struct net_engine *ne = ctx;
    if (ne->prefilled) {
        ne->generate_ns = dte_time_ns() - ne->generate_start_ns;
    }
    *out = (dte_proto_result){.reason = ne->reason, .prompt_tokens = (uint32_t)ne->n_prompt,
                              .generated_tokens = (uint32_t)ne->n_generated, .prompt_ns = ne->prompt_ns,
                              .generate_ns = ne->generate_ns};
}

dte_proto_engine net_engine_callbacks(struct net_engine *ne)
{
    return (dte_proto_engine){.ctx = ne, .start = engine_start, .step = engine_step, .finish = engine_finish};
}
