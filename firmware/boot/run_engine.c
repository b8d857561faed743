/* Boot to tokens: the engine on the build-time prompt (see run_engine.h). The generation loop is the one the
 * hosted engine runs (engine/generate.h): same prompt evaluation in one batch, same sampler, same stopping
 * rules, so the ids equal `dte generate`'s for the same model and settings. */
#include "boot/run_engine.h"

#include "boot/attest.h"
#include "boot/chat_config.h"
#include "boot/io.h"
#include "boot/panic.h"
#include "boot/serial.h"
#include "boot/status.h"
#include "boot/timer.h"
#include "boot/weights_stream.h"
#include "dte_config.h"
#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/sampler.h"
#include "lib/fmt.h"
#include "runtime/platform.h"

#define MS(ns) ((unsigned long long)((ns) / 1000000u))

#ifndef DTE_N_CTX
#define DTE_N_CTX 0   /* the model's training context */
#endif

struct engine {
    dte_engine *engine;
    dte_engine_info info;
    dte_sampler sampler;
};

struct generation {
    int32_t *prompt_ids;
    int64_t n_prompt;
    int32_t *ids;
    int32_t n_ids;
    char *text;            /* the pieces, NUL-terminated */
    uint64_t text_len, text_cap;
    dte_generation run;    /* the loop's state and times */
};

static int engine_error(const char *what, const char *detail)
{
    char escaped[256];
    dte_status("engine error=%s text=\"%s\"", what, status_escape(escaped, sizeof escaped, detail));
    return -1;
}

static int build_engine(const struct weights_loaded *w, struct engine *e)
{
    char err[160] = "";
    /* The engine validates every offset against the whole file; on a streamed model the part past
     * resident_bytes is read through the hooks (weights_stream), never through the buffer. */
    dte_engine_params params = {.n_ctx = DTE_N_CTX, .weights_layout = w->layout};   /* as WEIGHTS.MAN says */
    dte_engine_hooks hooks;
    weights_stream_hooks(w, &params, &hooks);
    int rc = dte_engine_open(w->data, w->model_size, &params, &hooks, &e->engine, err, sizeof err);
    if (rc != 0) {
        return engine_error(dte_err_name(rc), err);
    }
    if (weights_stream_attach(e->engine) != 0) {
        return engine_error("stream", "no memory for the streaming window");
    }
    dte_engine_get_info(e->engine, &e->info);
    if (dte_sampler_init(&e->sampler, e->info.n_vocab, DTE_TEMPERATURE, DTE_TOP_K, DTE_TOP_P, DTE_SEED) != 0) {
        return engine_error("memory", "out of memory for the sampler");
    }
    attest_attach_identity(&e->sampler);   /* the persona's identity stage; off at strength 0 */
    const dte_engine_info *i = &e->info;
    dte_status("model arch=%s layers=%u embd=%u heads=%u kv_heads=%u head_dim=%u ff=%u vocab=%u ctx=%u swa=%u", i->arch,
               i->n_layer, i->n_embd, i->n_head, i->n_head_kv, i->head_dim, i->n_ff, i->n_vocab, i->n_ctx, i->n_swa);
    return 0;
}

static int tokenize_prompt(struct engine *e, struct generation *g)
{
    size_t len = 0;
    bool chat = false;   /* a chat turn: the template writes any BOS (boot/chat_config.h) */
    const char *prompt = chat_config_boot_prompt(&len, &chat);
    if (!prompt) {
        return engine_error("memory", "no memory for the chat prompt");
    }
    bool add_bos = chat ? false : e->info.add_bos;
    int64_t n = dte_engine_tokenize_special(e->engine, prompt, len, add_bos, chat, NULL, 0);
    if (n <= 0) {
        return engine_error("prompt", "the prompt is empty or could not be tokenized");
    }
    if (n >= (int64_t)e->info.n_ctx) {
        return engine_error("prompt", "the prompt does not fit in the model's context");
    }
    g->prompt_ids = dte_alloc((size_t)n * sizeof(int32_t), 64);
    if (!g->prompt_ids) {
        return engine_error("memory", "no memory for the prompt ids");
    }
    g->n_prompt = dte_engine_tokenize_special(e->engine, prompt, len, add_bos, chat, g->prompt_ids, n);
    return 0;
}

/* Each piece: streamed raw to the console as it comes and kept for the `dte: text` line. */
static int emit_piece(void *user, int32_t id, const char *piece, int32_t len)
{
    (void)id;
    struct generation *g = user;
    serial_write(piece, (size_t)len);
    for (int32_t i = 0; i < len && g->text_len + 1 < g->text_cap; i++) {
        g->text[g->text_len++] = piece[i];
    }
    g->text[g->text_len] = '\0';
    return 0;
}

/* The shared loop (engine/generate.h), n_predict capped to the context's room. */
static int generate(struct engine *e, struct generation *g)
{
    uint32_t room = e->info.n_ctx - (uint32_t)g->n_prompt;
    int32_t n_predict = DTE_N_PREDICT < room ? DTE_N_PREDICT : (int32_t)room;
    g->ids = dte_alloc((size_t)(n_predict > 0 ? n_predict : 1) * sizeof(int32_t), 64);
    g->text_cap = (uint64_t)(n_predict > 0 ? n_predict : 1) * 64u + 1u;
    g->text = dte_alloc(g->text_cap, 64);
    if (!g->ids || !g->text) {
        return engine_error("memory", "no memory for the generated ids");
    }
    dte_generation_begin(&g->run, &(dte_generation_setup){.engine = e->engine,
                                                          .sampler = &e->sampler,
                                                          .prompt = g->prompt_ids,
                                                          .n_prompt = g->n_prompt,
                                                          .n_predict = n_predict});
    if (dte_generation_prefill(&g->run) != 0) {
        return engine_error("eval", "prompt evaluation failed");
    }
#ifdef DTE_TEST_ENGINE_FAULT
    /* Test builds only: a store to a non-canonical address raises #GP (vector 13; Intel SDM Vol. 3A §6.15)
     * in the middle of inference, to exercise the panic path with subsystem=engine. */
    *(volatile uint64_t *)(uintptr_t)0x8000000000000000ULL = 1;
#endif
    if (dte_generation_run(&g->run, g->ids, emit_piece, g) != 0) {
        return engine_error("eval", "token evaluation failed");
    }
    g->n_ids = g->run.n_generated;
    serial_write("\n", 1);
    return 0;
}

/* `dte: <word> <key>=a,b,c` for an id list (one line, no length limit). */
static void report_ids(const char *word, const char *key, const int32_t *ids, int64_t n)
{
    uint64_t cap = 32u + (uint64_t)n * 12u;
    char *line = dte_alloc(cap, 8);
    if (!line) {
        return;
    }
    uint64_t len = dte_fmt(line, cap, "dte: %s %s=", word, key);
    for (int64_t i = 0; i < n && len < cap; i++) {
        len += dte_fmt(line + len, cap - len, i ? ",%d" : "%d", ids[i]);
    }
    status_write_line(line);
}

static void report_text(const struct generation *g)
{
    uint64_t cap = 32u + g->text_len * 2u;
    char *line = dte_alloc(cap, 8);
    if (!line) {
        return;
    }
    uint64_t len = dte_fmt(line, cap, "dte: text text=\"");
    status_escape(line + len, cap - len - 2, g->text);
    while (line[len]) {
        len++;
    }
    line[len] = '"';
    line[len + 1] = '\0';
    status_write_line(line);
}

static double per_second(uint64_t count, uint64_t ns)
{
    return ns ? (double)count * 1e9 / (double)ns : 0.0;
}

static void report_speeds(const struct generation *g, const struct boot_times *t, uint64_t model_ns)
{
    const dte_generation *r = &g->run;
    uint64_t prompt_ns = r->prompt_done_ns - r->start_ns, gen_ns = r->end_ns - r->prompt_done_ns;
    dte_status("generate prompt_tokens=%lld tokens=%d prompt_ms=%llu gen_ms=%llu prompt_tok_per_s=%.2f "
               "tok_per_s=%.2f",
               (long long)g->n_prompt, g->n_ids, MS(prompt_ns), MS(gen_ns),
               per_second((uint64_t)g->n_prompt, prompt_ns), per_second((uint64_t)g->n_ids, gen_ns));
    dte_status("first_token ms=%llu platform_ms=%llu firmware_ms=%llu load_ms=%llu verify_ms=%llu model_ms=%llu "
               "prompt_ms=%llu",
               MS(r->first_token_ns), MS(t->platform_ns), MS(t->firmware_ns), MS(t->load_ns), MS(t->verify_ns),
               MS(model_ns), MS(r->first_token_ns - r->start_ns));
}

static struct engine *built;   /* set once run_engine succeeded */

int run_engine_parts(struct engine_parts *out)
{
    if (!built) {
        return -1;
    }
    *out = (struct engine_parts){.engine = built->engine, .sampler = &built->sampler};
    return 0;
}

int run_engine(const struct weights_loaded *weights, const struct boot_times *times)
{
    static struct engine e;
    static struct generation g;
    dte_set_subsystem("engine");
    uint64_t t0 = timer_ns();
    if (build_engine(weights, &e) != 0 || tokenize_prompt(&e, &g) != 0) {
        return -1;
    }
    uint64_t model_ns = timer_ns() - t0;
    report_ids("prompt", "ids", g.prompt_ids, g.n_prompt);
    dte_status("generate begin n_predict=%d temp=%.3f top_k=%d top_p=%.3f seed=%llu", DTE_N_PREDICT,
               (double)DTE_TEMPERATURE, DTE_TOP_K, (double)DTE_TOP_P, (unsigned long long)DTE_SEED);
    if (generate(&e, &g) != 0) {
        return -1;
    }
    dte_set_subsystem("appliance");
    report_ids("tokens", "ids", g.ids, g.n_ids);
    report_text(&g);
    report_speeds(&g, times, model_ns);
    built = &e;
    return 0;
}
