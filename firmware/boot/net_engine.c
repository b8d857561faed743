/* The token protocol's engine on the real engine, with conversations (see net_engine.h). */
#include "boot/net_engine.h"

#include "boot/chat_config.h"
#include "boot/status.h"
#include "dte_config.h"
#include "engine/generate.h"
#include "runtime/platform.h"

#ifndef DTE_SYSTEM_PROMPT
#define DTE_SYSTEM_PROMPT ""
#endif

_Static_assert(DTE_PROTO_SESSIONS <= DTE_CONV_MAX_SLOTS, "one conversation slot per protocol session");

static const char system_prompt[] = DTE_SYSTEM_PROMPT;
#define SYSTEM_PROMPT_LEN (sizeof system_prompt - 1u)

static uint64_t put(struct net_engine *ne, uint64_t len, const char *text, uint64_t size)
{
    for (uint64_t i = 0; i < size && len < ne->text_cap; i++) {
        ne->text[len++] = text[i];
    }
    return len;
}

static uint64_t text_length(const char *text)
{
    uint64_t n = 0;
    while (text && text[n]) {
        n++;
    }
    return n;
}

/* The most a formatted turn can add around the request text: the system prompt and every chat string. */
static uint64_t format_overhead(void)
{
    const dte_chat_format *f = chat_config_format();
    uint64_t n = SYSTEM_PROMPT_LEN + 1u;
    if (f) {
        n += text_length(f->prefix) + text_length(f->prefix_system) + text_length(f->system_end) +
             text_length(f->user_end) + text_length(f->assistant_end);
    }
    return n + 1u;
}

/* The turn's text into ne->text; returns its length. `first`: the transcript starts with this turn. With
 * `chat` and a compiled-in chat format (boot/chat_config.h): the first turn is [system,] user and the
 * generation prompt, a follow-up the end of the previous reply, the user turn and the generation prompt; the
 * template writes any BOS itself (*add_bos false) and the text is tokenized with special tokens parsed
 * (*special), as llama-cpp-python's chat handler does. Otherwise plain text as sent (a system prompt is a chat
 * message: plain completion has none), BOS when the tokenizer adds one, control tokens' text left as text. */
static uint64_t format_turn(struct net_engine *ne, bool first, bool chat, const uint8_t *text, uint64_t size,
                            bool *add_bos, bool *special)
{
    const dte_chat_format *f = chat ? chat_config_format() : NULL;
    const char *user = (const char *)text;
    *special = f != NULL;
    if (f) {
        *add_bos = false;
        if (first) {
            const char *sys = SYSTEM_PROMPT_LEN ? system_prompt : NULL;
            return dte_chat_first_turn(f, sys, SYSTEM_PROMPT_LEN, user, size, ne->text, ne->text_cap);
        }
        return dte_chat_next_turn(f, user, size, ne->text, ne->text_cap);
    }
    *add_bos = first && ne->info.add_bos;
    return put(ne, 0, user, size);
}

uint32_t net_engine_context(const struct net_engine *ne)
{
    return ne->info.n_ctx;
}

int net_engine_init(struct net_engine *ne)
{
    *ne = (struct net_engine){0};
    if (run_engine_parts(&ne->parts) != 0) {
        dte_status("net error=no_engine text=\"the engine did not start\"");
        return -1;
    }
    dte_engine_get_info(ne->parts.engine, &ne->info);
    uint32_t n_ctx = ne->info.n_ctx;
    ne->text_cap = format_overhead() + DTE_PROTO_MAX_PAYLOAD;
    ne->text = dte_alloc(ne->text_cap, 64);
    ne->new_ids = dte_alloc((size_t)n_ctx * sizeof(int32_t), 64);
    int32_t *transcripts = dte_alloc(dte_conv_ids_bytes(n_ctx, DTE_PROTO_SESSIONS), 64);
    int32_t *cached = dte_alloc((size_t)n_ctx * sizeof(int32_t), 64);
    if (!ne->text || !ne->new_ids || !transcripts || !cached) {
        dte_status("net error=memory text=\"no memory for the session transcripts\"");
        return -1;
    }
    /* The boot prompt left tokens in the KV cache that no transcript names: the cache starts as unknown. */
    dte_conv_init(&ne->conv, n_ctx, DTE_PROTO_SESSIONS, transcripts, cached);
    /* Grow the tokenizer's workspaces once, to the largest request, so no request allocates. */
    if (!dte_engine_tokenize_reserve(ne->parts.engine, ne->text_cap)) {
        dte_status("net error=memory text=\"no memory for the tokenizer\"");
        return -1;
    }
    return 0;
}

static int engine_start(void *ctx, const dte_proto_request *request)
{
    struct net_engine *ne = ctx;
    struct engine_parts *p = &ne->parts;
    uint32_t n_ctx = ne->info.n_ctx;
    uint32_t len = 0;
    bool continues = request->append && ne->conv.owner[request->slot] == request->session;
    if (continues) {
        dte_conv_transcript(&ne->conv, request->slot, &len);
    }
    bool first = !continues || len == 0;
    bool add_bos = false, special = false;
    uint64_t text_len = format_turn(ne, first, request->chat, request->text, request->text_size, &add_bos, &special);
    if (text_len >= ne->text_cap) {
        return DTE_ENGINE_START_FAILED;   /* cannot happen: text_cap covers every format string */
    }
    int64_t n = dte_engine_tokenize_special(p->engine, ne->text, text_len, add_bos, special, ne->new_ids, n_ctx);
    if (n <= 0) {
        return DTE_ENGINE_START_FAILED;   /* empty or untokenizable */
    }
    if (n >= (int64_t)n_ctx || dte_conv_begin(&ne->conv, request->slot, request->session, continues, ne->new_ids,
                                              (uint32_t)n, &ne->turn) != 0) {
        return DTE_ENGINE_CONTEXT_FULL;   /* the session's transcript is unchanged */
    }
    ne->slot = request->slot;
    ne->prompt_sent = 0;
    uint32_t used = ne->turn.keep + ne->turn.n_eval;
    uint32_t room = n_ctx - used;
    int32_t n_predict = request->n_predict < room ? (int32_t)request->n_predict : (int32_t)room;
    dte_sampler_configure(p->sampler, request->temperature, (int32_t)request->top_k, request->top_p, request->seed);
    dte_generation_begin(&ne->run, &(dte_generation_setup){.engine = p->engine,
                                                           .sampler = p->sampler,
                                                           .prompt = ne->turn.eval,
                                                           .n_prompt = ne->turn.n_eval,
                                                           .n_predict = n_predict,
                                                           .keep = ne->turn.keep});
    return 0;
}

/* The token and its text piece into *out (the piece stays valid until the next call). */
static int emit_token(struct net_engine *ne, int32_t id, bool is_prompt, uint32_t position, dte_proto_token *out)
{
    int32_t len = dte_generation_piece(ne->parts.engine, id, ne->piece, (int32_t)sizeof ne->piece);
    *out = (dte_proto_token){.id = (uint32_t)id,
                             .piece = (const uint8_t *)ne->piece,
                             .piece_size = (size_t)len,
                             .is_prompt = is_prompt,
                             .position = position};
    return DTE_ENGINE_STEP_TOKEN;
}

/* The turn's new tokens first (with their transcript positions), then one generated token per step. */
static int engine_step(void *ctx, dte_proto_token *out)
{
    struct net_engine *ne = ctx;
    uint32_t len;
    const int32_t *ids = dte_conv_transcript(&ne->conv, ne->slot, &len);
    uint32_t n_new = ne->turn.keep + ne->turn.n_eval - ne->turn.first;
    if (ne->prompt_sent < n_new) {
        uint32_t position = ne->turn.first + ne->prompt_sent++;
        return emit_token(ne, ids[position], true, position, out);
    }
    int32_t id;
    int rc = dte_generation_next(&ne->run, &id);
    if (rc < 0) {
        return -1;
    }
    if (rc == 0) {
        return DTE_ENGINE_STEP_FINISHED;
    }
    dte_conv_push(&ne->conv, ne->slot, id);
    return emit_token(ne, id, false, 0, out);
}

static uint8_t done_reason(const dte_generation *g)
{
    switch (g->stop) {
    case DTE_GEN_EOS: return DTE_DONE_END_OF_SEQUENCE;
    case DTE_GEN_ERROR: return DTE_DONE_ENGINE_ERROR;
    case DTE_GEN_CONTEXT_FULL: return DTE_DONE_CONTEXT_FULL;
    default: return DTE_DONE_LENGTH;
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
    if (g->stop == DTE_GEN_ERROR) {
        dte_conv_forget_cache(&ne->conv);
    } else {
        dte_conv_end(&ne->conv, ne->slot, dte_engine_pos(ne->parts.engine));
    }
    uint32_t len;
    dte_conv_transcript(&ne->conv, ne->slot, &len);
    uint8_t reason = done_reason(g);
    if (reason == DTE_DONE_LENGTH && len >= ne->info.n_ctx) {
        reason = DTE_DONE_CONTEXT_FULL;   /* n_predict was capped to the room left */
    }
    *out = (dte_proto_result){.reason = reason,
                              .prompt_tokens = g->prefilled ? ne->turn.n_eval : 0,
                              .generated_tokens = (uint32_t)g->n_generated,
                              .prompt_ns = prompt_ns,
                              .generate_ns = generate_ns,
                              .reused_tokens = ne->turn.keep,
                              .context_used = len};
}

dte_proto_engine net_engine_callbacks(struct net_engine *ne)
{
    return (dte_proto_engine){.ctx = ne, .start = engine_start, .step = engine_step, .finish = engine_finish};
}
