/* Loading the llama architecture from GGUF: hyperparameters and tensor views (names and shapes as llama.cpp's
 * llama-arch.cpp LLM_ARCH_LLAMA tensor table). The forward pass lives in llama_eval.c. */
#include "llama.h"

#include "../lib/fmt.h"
#include "platform.h"
#include "quants.h"

#define LOAD_E_FORMAT (-20)
#define LOAD_E_NOMEM (-7)

typedef struct {
    const dte_gguf *g;
    char *err;
    size_t errlen;
} loader;

static int fail(loader *ld, const char *what, const char *name) {
    if (ld->err && ld->errlen) dte_fmt(ld->err, ld->errlen, "llama: %s%s%s", what, name ? " " : "", name ? name : "");
    return LOAD_E_FORMAT;
}

static bool arch_is_llama(const dte_gguf *g) {
    dte_str arch;
    return dte_gguf_get_str(g, "general.architecture", &arch) && dte_str_eq(arch, "llama");
}

static int read_hparams(loader *ld, dte_llama_hparams *hp) {
    const dte_gguf *g = ld->g;
    if (!arch_is_llama(g)) return fail(ld, "general.architecture is not \"llama\"", 0);
    if (!dte_gguf_get_u32(g, "llama.embedding_length", &hp->n_embd)) return fail(ld, "missing", "llama.embedding_length");
    if (!dte_gguf_get_u32(g, "llama.block_count", &hp->n_layer)) return fail(ld, "missing", "llama.block_count");
    if (!dte_gguf_get_u32(g, "llama.feed_forward_length", &hp->n_ff)) return fail(ld, "missing", "llama.feed_forward_length");
    if (!dte_gguf_get_u32(g, "llama.attention.head_count", &hp->n_head)) return fail(ld, "missing", "llama.attention.head_count");
    if (!dte_gguf_get_u32(g, "llama.context_length", &hp->n_ctx_train)) return fail(ld, "missing", "llama.context_length");
    if (!dte_gguf_get_u32(g, "llama.attention.head_count_kv", &hp->n_head_kv)) hp->n_head_kv = hp->n_head;
    if (!dte_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->rms_eps))
        return fail(ld, "missing", "llama.attention.layer_norm_rms_epsilon");
    if (!dte_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_freq_base)) hp->rope_freq_base = 10000.0f;
    hp->rope_freq_scale = 1.0f;
    float factor;
    dte_str scaling;
    if (dte_gguf_get_str(g, "llama.rope.scaling.type", &scaling) && !dte_str_eq(scaling, "none")) {
        if (!dte_str_eq(scaling, "linear")) return fail(ld, "unsupported llama.rope.scaling.type (only linear)", 0);
        if (dte_gguf_get_f32(g, "llama.rope.scaling.factor", &factor) && factor > 0.0f) hp->rope_freq_scale = 1.0f / factor;
    }
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head == 0 || hp->n_ctx_train == 0)
        return fail(ld, "a dimension is zero", 0);
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0 || hp->n_embd % hp->n_head != 0)
        return fail(ld, "head counts do not divide the embedding/heads", 0);
    if (hp->n_layer > 4096 || hp->n_head > 4096) return fail(ld, "layer or head count out of range", 0);
    hp->head_dim = hp->n_embd / hp->n_head;
    uint32_t kl;
    if (dte_gguf_get_u32(g, "llama.attention.key_length", &kl) && kl != hp->head_dim)
        return fail(ld, "attention.key_length differs from embedding/heads (unsupported)", 0);
    if (!dte_gguf_get_u32(g, "llama.rope.dimension_count", &hp->n_rot)) hp->n_rot = hp->head_dim;
    if (hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) return fail(ld, "rope.dimension_count out of range", 0);
    if (hp->head_dim % 2 != 0) return fail(ld, "head dimension is odd", 0);
    return 0;
}

/* A 2-D weight [n_cols, n_rows] of a weight type. */
static int get_weight(loader *ld, const char *name, int64_t n_cols, int64_t n_rows, dte_weight *w, bool optional) {
    const dte_gguf_tensor *t = dte_gguf_find_tensor(ld->g, name);
    if (!t) return optional ? 1 : fail(ld, "missing tensor", name);
    if (!dte_type_is_weight(t->type)) return fail(ld, "unsupported tensor type in", name);
    if (t->ne[0] != n_cols || (n_rows >= 0 && t->ne[1] != n_rows) || t->ne[2] != 1 || t->ne[3] != 1)
        return fail(ld, "unexpected shape of", name);
    w->type = t->type;
    w->n_cols = t->ne[0];
    w->n_rows = t->ne[1];
    w->row_bytes = dte_type_row_bytes(t->type, t->ne[0]);
    w->data = t->data;
    return 0;
}

/* A 1-D vector of n floats (any weight type), dequantized into a fresh F32 buffer. */
static int get_vector(loader *ld, const char *name, int64_t n, const float **out, bool optional) {
    dte_weight w;
    int rc = get_weight(ld, name, n, 1, &w, optional);
    if (rc) return rc;
    float *v = dte_alloc((size_t)n * sizeof(float), 64);
    if (!v) return LOAD_E_NOMEM;
    dte_dequantize_row(w.type, w.data, v, n);
    *out = v;
    return 0;
}

static int load_layer(loader *ld, const dte_llama_hparams *hp, uint32_t il, dte_layer *L) {
    char name[96];
    int64_t e = hp->n_embd, kv = (int64_t)hp->head_dim * hp->n_head_kv, ff = hp->n_ff;
    struct { const char *suffix; int64_t cols, rows; dte_weight *w; } mats[] = {
        {"attn_q", e, e, &L->wq},       {"attn_k", e, kv, &L->wk},     {"attn_v", e, kv, &L->wv},
        {"attn_output", e, e, &L->wo},  {"ffn_gate", e, ff, &L->w_gate}, {"ffn_up", e, ff, &L->w_up},
        {"ffn_down", ff, e, &L->w_down},
    };
    int rc;
    dte_fmt(name, sizeof name, "blk.%u.attn_norm.weight", il);
    if ((rc = get_vector(ld, name, e, &L->attn_norm, false)) != 0) return rc;
    dte_fmt(name, sizeof name, "blk.%u.ffn_norm.weight", il);
    if ((rc = get_vector(ld, name, e, &L->ffn_norm, false)) != 0) return rc;
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
        dte_fmt(name, sizeof name, "blk.%u.%s.weight", il, mats[i].suffix);
        if ((rc = get_weight(ld, name, mats[i].cols, mats[i].rows, mats[i].w, false)) != 0) return rc;
    }
    return 0;
}

int dte_llama_load(const dte_gguf *g, dte_llama_model *m, char *err, size_t errlen) {
    loader ld = {g, err, errlen};
    *m = (dte_llama_model){0};
    int rc = read_hparams(&ld, &m->hp);
    if (rc) return rc;
    dte_llama_hparams *hp = &m->hp;
    if ((rc = get_weight(&ld, "token_embd.weight", hp->n_embd, -1, &m->tok_embd, false)) != 0) return rc;
    if (m->tok_embd.n_rows <= 0 || m->tok_embd.n_rows > 0x7fffffff) return fail(&ld, "vocabulary size out of range", 0);
    hp->n_vocab = (uint32_t)m->tok_embd.n_rows;
    if ((rc = get_vector(&ld, "output_norm.weight", hp->n_embd, &m->output_norm, false)) != 0) return rc;
    rc = get_weight(&ld, "output.weight", hp->n_embd, hp->n_vocab, &m->output, true);
    if (rc < 0) return rc;
    if (rc == 1) m->output = m->tok_embd; /* tied embeddings */
    rc = get_vector(&ld, "rope_freqs.weight", hp->n_rot / 2, &m->rope_freqs, true);
    if (rc < 0) return rc;
    m->layers = dte_alloc(hp->n_layer * sizeof(dte_layer), 64);
    if (!m->layers) return fail(&ld, "out of memory for the layer table", 0);
    for (uint32_t il = 0; il < hp->n_layer; il++)
        if ((rc = load_layer(&ld, hp, il, &m->layers[il])) != 0) return rc;
    return 0;
}
