/* The token protocol's engine on the real engine (see net_engine.h). */
#include "boot/net_engine.h"

#include "boot/status.h"
#include "dte_config.h"
#include "engine/generate.h"
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
    int32_t n_predict = request->n_predict < room ? (int32_t)request->n_predict : (int32_t)room;
    /* Every request starts from an empty KV cache and a freshly seeded sampler: requests are independent. */
    dte_sampler_configure(p->sampler, request->temperature, (int32_t)request->top_k, request->top_p, request->seed);
    dte_generation_begin(&ne->run, &(dte_generation_setup){.ctx = p->ctx, .logits = p->logits, .sampler = p->sampler,
                                                           .eos = p->tok->eos, .prompt = ne->prompt_ids,
                                                           .n_prompt = n, .n_predict = n_predict});
    return 0;
}

/* The token and its text piece into *out (the piece stays valid until the next call). */
static int emit_token(struct net_engine *ne, int32_t id, bool is_prompt, dte_proto_token *out)
{
    int32_t len = dte_generation_piece(ne->parts.tok, id, ne->piece, (int32_t)sizeof ne->piece);
    *out = (dte_proto_token){.id = (uint32_t)id, .piece = (const uint8_t *)ne->piece, .piece_size = (size_t)len,
                             .is_prompt = is_prompt};
    return DTE_ENGINE_STEP_TOKEN;
}

/* The prompt's tokens first, then one generated token per step (engine/generate.h's pull loop). */
static int engine_step(void *ctx, dte_proto_token *out)
{
    struct net_engine *ne = ctx;
    if (ne->prompt_sent < ne->n_prompt) {
        return emit_token(ne, ne->prompt_ids[ne->prompt_sent++], true, out);
    }
    int32_t id;
    int rc = dte_generation_next(&ne->run, &id);
    if (rc < 0) {
        return -1;
    }
    return rc == 0 ? DTE_ENGINE_STEP_FINISHED : emit_token(ne, id, false, out);
}

static uint8_t done_reason(const dte_generation *g)
{
    switch (g->stop) {
    case DTE_GEN_EOS:
        return DTE_DONE_END_OF_SEQUENCE;
    case DTE_GEN_ERROR:
        return DTE_DONE_ENGINE_ERROR;
    default:
        return DTE_DONE_LENGTH;   /* n_predict reached or the context full */
    }
}

static void engine_finish(void *ctx, dte_proto_result *out)
{
    struct net_engine *ne = ctx;
    const dte_generation *g = &ne->run;
    uint64_t prompt_ns = 0, generate_ns = 0;
    if (g->prefilled) {
        dte_generation_end(&ne->run);
        prompt_ns = g->prompt_done_ns - g->start_ns;
        generate_ns = g->end_ns - g->prompt_done_ns;
    }
    *out = (dte_proto_result){.reason = done_reason(g), .prompt_tokens = (uint32_t)ne->n_prompt,
                              .generated_tokens = (uint32_t)g->n_generated, .prompt_ns = prompt_ns,
                              .generate_ns = generate_ns};
}

dte_proto_engine net_engine_callbacks(struct net_engine *ne)
{
    return (dte_proto_engine){.ctx = ne, .start = engine_start, .step = engine_step, .finish = engine_finish};
}
