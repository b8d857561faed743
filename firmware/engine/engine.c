/* The engine session (see engine.h): GGUF parse, model view for the architecture, tokenizer, KV cache, and the
 * part/weight listing the streaming loader fills. */
#include "engine.h"

#include "gguf.h"
#include "layout.h"
#include "lib/fmt.h"
#include "model.h"
#include "runtime/platform.h"
#include "tokenizer.h"

#define DEFAULT_BATCH 512u

struct dte_engine {
    dte_gguf gguf;
    dte_model model;
    dte_tokenizer tok;
    dte_model_ctx *ctx;     /* NULL without a KV cache */
    float *logits;
    bool has_model;
    dte_engine_hooks hooks;
    bool repack;            /* the file's matrices are in GGUF layout and are evaluated in ROWS4: repack them */
    void *layout_tmp;       /* one group of the widest laid-out matrix (dte_layout_pack_inplace) */
};

static int fail(char *err, size_t errlen, int code, const char *msg)
{
    if (err && errlen) {
        dte_fmt(err, errlen, "%s", msg);
    }
    return code;
}

static int read_hook(void *user, uint64_t offset, uint64_t bytes, void *dst)
{
    const dte_engine_hooks *h = user;
    return h->read ? h->read(h->user, offset, bytes, dst) : -1;
}

/* Every matrix of the model once (a tied output is token_embd itself), in file order of the parts. */
static dte_weight *nth_matrix(dte_model *m, uint32_t i)
{
    if (i == 0) {
        return &m->tok_embd;
    }
    if (i == 1) {
        return m->output.offset != m->tok_embd.offset ? &m->output : 0;
    }
    i -= 2;
    if (i >= m->hp.n_layer * (uint32_t)DTE_LAYER_MATRICES) {
        return 0;
    }
    dte_weight *w = &m->layers[i / DTE_LAYER_MATRICES].w[i % DTE_LAYER_MATRICES];
    return w->present ? w : 0;
}

static void repack(dte_engine *e, dte_weight *w)
{
    if (e->repack && w->data && w->layout == DTE_LAYOUT_ROWS4) {
        dte_layout_pack_inplace(w->layout, w->type, w->n_cols, w->n_rows, (void *)(uintptr_t)w->data, e->layout_tmp);
    }
}

/* A GGUF-layout file evaluated in ROWS4: the one-group buffer, then the resident matrices repacked in place
 * (streamed ones are repacked as dte_engine_place puts them in the window). */
static int repack_at_open(dte_engine *e, char *err, size_t errlen)
{
    dte_model *m = &e->model;
    const uint32_t count = 2 + m->hp.n_layer * (uint32_t)DTE_LAYER_MATRICES;
    int64_t tmp = 0;
    for (uint32_t i = 0; i < count; i++) {
        const dte_weight *w = nth_matrix(m, i);
        if (w && w->layout == DTE_LAYOUT_ROWS4 && dte_layout_tmp_bytes(w->type, w->n_cols) > tmp) {
            tmp = dte_layout_tmp_bytes(w->type, w->n_cols);
        }
    }
    if (tmp == 0) {
        return 0;
    }
    e->layout_tmp = dte_alloc((size_t)tmp, 64);
    if (!e->layout_tmp) {
        return fail(err, errlen, DTE_E_NOMEM, "engine: out of memory for the weight layout");
    }
    for (uint32_t i = 0; i < count; i++) {
        dte_weight *w = nth_matrix(m, i);
        if (w) {
            repack(e, w);
        }
    }
    return 0;
}

static int open_model(dte_engine *e, const dte_engine_params *p, char *err, size_t errlen)
{
    /* evaluated weights are always in ROWS4; a check without a KV cache reads them as they are */
    const uint32_t layout =
        p->weights_layout == DTE_LAYOUT_ROWS4 || !p->no_context ? DTE_LAYOUT_ROWS4 : DTE_LAYOUT_GGUF;
    dte_model_source src = {p->resident_bytes, layout, read_hook, &e->hooks};
    int rc = dte_model_load(&e->gguf, &src, &e->model, err, errlen);
    if (rc) {
        return rc;
    }
    e->has_model = true;
    e->repack = p->weights_layout == DTE_LAYOUT_GGUF && layout == DTE_LAYOUT_ROWS4;
    if (e->repack && (rc = repack_at_open(e, err, errlen)) != 0) {
        return rc;
    }
    if (e->hooks.ensure_resident) {
        e->model.ensure_resident = e->hooks.ensure_resident;
        e->model.ensure_user = e->hooks.user;
    }
    if (e->tok.n_vocab != e->model.hp.n_vocab) {
        return fail(err, errlen, DTE_E_TOKENIZER,
                    "tokenizer: tokenizer.ggml.tokens and token_embd.weight disagree on the vocabulary size");
    }
    return 0;
}

static int open_context(dte_engine *e, const dte_engine_params *p, char *err, size_t errlen)
{
    uint32_t n_ctx = p->n_ctx && p->n_ctx < e->model.hp.n_ctx_train ? p->n_ctx : e->model.hp.n_ctx_train;
    uint32_t n_batch = p->n_batch ? p->n_batch : (n_ctx < DEFAULT_BATCH ? n_ctx : DEFAULT_BATCH);
    e->ctx = dte_model_ctx_new(&e->model, n_ctx, n_batch);
    e->logits = dte_alloc((size_t)e->model.hp.n_vocab * sizeof(float), 64);
    if (!e->ctx || !e->logits) {
        if (err && errlen) {
            dte_fmt(err, errlen, "engine: out of memory for a KV cache of %u positions (%llu bytes)", n_ctx,
                    (unsigned long long)dte_model_ctx_bytes(&e->model, n_ctx, n_batch));
        }
        return DTE_E_CONTEXT;
    }
    return 0;
}

int dte_engine_open(const void *buf, uint64_t size, const dte_engine_params *params, const dte_engine_hooks *hooks,
                    dte_engine **out, char *err, size_t errlen)
{
    static const dte_engine_params defaults = {0};
    const dte_engine_params *p = params ? params : &defaults;
    *out = 0;
    dte_engine *e = dte_alloc(sizeof *e, 64);
    if (!e) {
        return fail(err, errlen, DTE_E_NOMEM, "engine: out of memory");
    }
    if (hooks) {
        e->hooks = *hooks;
    }
    if (p->weights_layout != DTE_LAYOUT_GGUF && p->weights_layout != DTE_LAYOUT_ROWS4) {
        return fail(err, errlen, DTE_E_ARG, "engine: unknown weights layout");
    }
    int rc = dte_gguf_parse(buf, size, &e->gguf, err, errlen);
    if (rc) {
        return rc;
    }
    if (p->resident_bytes && e->gguf.data_offset > p->resident_bytes) {
        return fail(err, errlen, DTE_E_STREAM,
                    "engine: the GGUF metadata does not fit the resident part of the weights");
    }
    if (p->gguf_only) {
        *out = e;
        return 0;
    }
    if ((rc = dte_tokenizer_load(&e->gguf, &e->tok, err, errlen)) != 0) {
        return rc;
    }
    if (!p->vocab_only) {
        if ((rc = open_model(e, p, err, errlen)) != 0) {
            return rc;
        }
        if (!p->no_context && (rc = open_context(e, p, err, errlen)) != 0) {
            return rc;
        }
    }
    *out = e;
    return 0;
}

uint64_t dte_engine_context_bytes(const dte_engine *e, uint32_t n_ctx, uint32_t n_batch)
{
    if (!e->has_model) {
        return 0;
    }
    if (n_ctx == 0 || n_ctx > e->model.hp.n_ctx_train) {
        n_ctx = e->model.hp.n_ctx_train;
    }
    if (n_batch == 0) {
        n_batch = n_ctx < DEFAULT_BATCH ? n_ctx : DEFAULT_BATCH;
    }
    return dte_model_ctx_bytes(&e->model, n_ctx, n_batch > n_ctx ? n_ctx : n_batch) +
           (uint64_t)e->model.hp.n_vocab * sizeof(float);
}

void dte_engine_get_info(const dte_engine *e, dte_engine_info *info)
{
    const dte_hparams *hp = &e->model.hp;
    *info = (dte_engine_info){.n_vocab = e->tok.n_vocab,
                              .n_embd = hp->n_embd,
                              .n_layer = hp->n_layer,
                              .n_head = hp->n_head,
                              .n_head_kv = hp->n_head_kv,
                              .head_dim = hp->head_dim,
                              .n_ff = hp->n_ff,
                              .n_ctx_train = hp->n_ctx_train,
                              .n_swa = hp->n_swa,
                              .n_ctx = e->ctx ? dte_model_ctx_size(e->ctx) : 0,
                              .n_batch = e->ctx ? dte_model_ctx_batch(e->ctx) : 0,
                              .bos = e->tok.bos,
                              .eos = e->tok.eos,
                              .add_bos = e->tok.add_bos};
    if (e->model.arch) {
        dte_fmt(info->arch, sizeof info->arch, "%s", e->model.arch);
    }
}

/* ---- parts and their weights, for the streaming loader ---- */

uint32_t dte_engine_parts(const dte_engine *e)
{
    return e->has_model ? e->model.hp.n_layer + 1 : 0;
}

/* The i-th present matrix of a part, or NULL. */
static dte_weight *part_weight(const dte_engine *e, uint32_t part, uint32_t i, int *slot)
{
    dte_model *m = (dte_model *)&e->model;
    if (!e->has_model || part > m->hp.n_layer) {
        return 0;
    }
    if (part == m->hp.n_layer) { /* the output head, unless tied to token_embd (which is always resident) */
        *slot = -1;
        return i == 0 && m->output.offset != m->tok_embd.offset ? &m->output : 0;
    }
    dte_layer *L = &m->layers[part];
    for (int s = 0; s < DTE_LAYER_MATRICES; s++) {
        if (L->w[s].present && i-- == 0) {
            *slot = s;
            return &L->w[s];
        }
    }
    return 0;
}

static const char *slot_name(int slot)
{
    static const char *const names[DTE_LAYER_MATRICES] = {
        [DTE_WQ] = "attn_q",      [DTE_WK] = "attn_k",       [DTE_WV] = "attn_v",   [DTE_WQKV] = "attn_qkv",
        [DTE_WO] = "attn_output", [DTE_W_GATE] = "ffn_gate", [DTE_W_UP] = "ffn_up", [DTE_W_DOWN] = "ffn_down"};
    return slot >= 0 && slot < DTE_LAYER_MATRICES ? names[slot] : "output";
}

int dte_engine_part_weight(const dte_engine *e, uint32_t part, uint32_t i, dte_weight_ref *out)
{
    int slot = -1;
    const dte_weight *w = part_weight(e, part, i, &slot);
    if (!w) {
        return 1;
    }
    *out =
        (dte_weight_ref){.type = w->type, .offset = w->offset, .bytes = (uint64_t)w->row_bytes * (uint64_t)w->n_rows};
    if (slot < 0) {
        dte_fmt(out->name, sizeof out->name, "output.weight");
    } else {
        dte_fmt(out->name, sizeof out->name, "blk.%u.%s.weight", part, slot_name(slot));
    }
    out->resident = w->data != 0 && w->data == e->gguf.buf + w->offset;
    return 0;
}

void dte_engine_place(dte_engine *e, uint32_t part, uint32_t i, const void *data)
{
    int slot;
    dte_weight *w = part_weight(e, part, i, &slot);
    if (w) {
        w->data = data;
        repack(e, w);
    }
}

/* ---- evaluation ---- */

int dte_engine_eval(dte_engine *e, const int32_t *ids, int64_t n)
{
    if (!e->ctx) {
        return DTE_E_ARG;
    }
    if (n <= 0) {
        return DTE_E_ARG;
    }
    if ((uint64_t)n > dte_model_ctx_size(e->ctx) - dte_model_ctx_pos(e->ctx)) {
        return DTE_E_CONTEXT;
    }
    const int64_t batch = dte_model_ctx_batch(e->ctx);
    for (int64_t done = 0; done < n;) {
        int64_t step = n - done < batch ? n - done : batch;
        int rc = dte_model_eval(e->ctx, ids + done, (uint32_t)step, e->logits);
        if (rc) {
            return rc;
        }
        done += step;
    }
    return 0;
}

float *dte_engine_logits(dte_engine *e)
{
    return e->logits;
}
uint32_t dte_engine_pos(const dte_engine *e)
{
    return e->ctx ? dte_model_ctx_pos(e->ctx) : 0;
}
void dte_engine_reset(dte_engine *e)
{
    if (e->ctx) {
        dte_model_ctx_reset(e->ctx);
    }
}

uint32_t dte_engine_truncate(dte_engine *e, uint32_t n)
{
    return e->ctx ? dte_model_ctx_truncate(e->ctx, n) : 0;
}

/* ---- tokens ---- */

int64_t dte_engine_tokenize(dte_engine *e, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out)
{
    return dte_tokenize(&e->tok, text, len, add_bos, out, max_out);
}

int32_t dte_engine_piece(const dte_engine *e, int32_t id, char *buf, int32_t cap)
{
    return dte_token_piece(&e->tok, id, buf, cap);
}

int64_t dte_engine_tokenize_special(dte_engine *e, const char *text, size_t len, bool add_bos, bool parse_special,
                                    int32_t *out, int64_t max_out)
{
    return dte_tokenize_special(&e->tok, text, len, add_bos, parse_special, out, max_out);
}

bool dte_engine_tokenize_reserve(dte_engine *e, size_t len)
{
    return dte_tokenizer_reserve(&e->tok, len);
}

bool dte_engine_is_eog(const dte_engine *e, int32_t id)
{
    return dte_token_is_eog(&e->tok, id);
}

int32_t dte_engine_piece_special(const dte_engine *e, int32_t id, char *buf, int32_t cap)
{
    return dte_token_piece_special(&e->tok, id, buf, cap);
}
