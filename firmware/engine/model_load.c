/* Loading a model view from GGUF for any architecture in the table (arch.c): the hyper-parameters under
 * "<arch>.", validated (finite, in range), then the tensors the architecture lists, each checked for presence,
 * type, shape and alignment. Keys and defaults follow llama.cpp src/llama-model.cpp load_hparams and
 * src/models/<arch>.cpp load_arch_hparams. The forward pass lives in forward.c. */
#include "model.h"

#include "arch.h"
#include "errors.h"
#include "layout.h"
#include "lib/fmt.h"
#include "mathf.h"
#include "quants.h"
#include "runtime/platform.h"

typedef struct {
    const dte_gguf *g;
    const dte_model_source *src;
    const char *arch;
    char *err;
    size_t errlen;
} loader;

static int fail(loader *ld, int code, const char *what, const char *name)
{
    if (ld->err && ld->errlen) {
        dte_fmt(ld->err, ld->errlen, "model: %s%s%s", what, name ? " " : "", name ? name : "");
    }
    return code;
}

/* ---- hyper-parameters ---- */

static const char *key(loader *ld, const char *suffix, char *buf, size_t cap)
{
    dte_fmt(buf, cap, "%s.%s", ld->arch, suffix);
    return buf;
}

static bool get_u32(loader *ld, const char *suffix, uint32_t *v)
{
    char k[96];
    return dte_gguf_get_u32(ld->g, key(ld, suffix, k, sizeof k), v);
}

static int need_u32(loader *ld, const char *suffix, uint32_t *v)
{
    char k[96];
    if (!dte_gguf_get_u32(ld->g, key(ld, suffix, k, sizeof k), v)) {
        return fail(ld, DTE_E_HPARAM, "missing", k);
    }
    return 0;
}

static bool is_finite(float x)
{
    return x == x && x - x == 0.0f;
}

/* An optional float key, which must be finite and in [lo, hi] when present. 1 when absent, 0 when read. */
static int get_f32_in(loader *ld, const char *suffix, float lo, float hi, float *v)
{
    char k[96];
    float x;
    if (!dte_gguf_get_f32(ld->g, key(ld, suffix, k, sizeof k), &x)) {
        if (dte_gguf_find(ld->g, k)) {
            return fail(ld, DTE_E_HPARAM, "not a float:", k);
        }
        return 1;
    }
    if (!is_finite(x) || x < lo || x > hi) {
        return fail(ld, DTE_E_HPARAM, "out of range (NaN, infinite, zero or absurd):", k);
    }
    *v = x;
    return 0;
}

static int read_dims(loader *ld, dte_hparams *hp)
{
    int rc;
    if ((rc = need_u32(ld, "embedding_length", &hp->n_embd)) || (rc = need_u32(ld, "block_count", &hp->n_layer)) ||
        (rc = need_u32(ld, "feed_forward_length", &hp->n_ff)) ||
        (rc = need_u32(ld, "attention.head_count", &hp->n_head)) ||
        (rc = need_u32(ld, "context_length", &hp->n_ctx_train))) {
        return rc;
    }
    if (!get_u32(ld, "attention.head_count_kv", &hp->n_head_kv)) {
        hp->n_head_kv = hp->n_head;
    }
    if (hp->n_embd == 0 || hp->n_layer == 0 || hp->n_ff == 0 || hp->n_head == 0 || hp->n_ctx_train == 0) {
        return fail(ld, DTE_E_HPARAM, "a dimension is zero (embedding, blocks, feed-forward, heads or context)", 0);
    }
    if (hp->n_layer > 4096 || hp->n_head > 4096 || hp->n_embd > (1u << 20) || hp->n_ff > (1u << 22)) {
        return fail(ld, DTE_E_HPARAM, "layer, head, embedding or feed-forward size out of range", 0);
    }
    if (hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0) {
        return fail(ld, DTE_E_HPARAM, "attention.head_count_kv does not divide attention.head_count", 0);
    }
    /* head_dim: attention.key_length when given (gemma3: 256 != 640/4), else n_embd / n_head */
    if (!get_u32(ld, "attention.key_length", &hp->head_dim)) {
        if (hp->n_embd % hp->n_head != 0) {
            return fail(ld, DTE_E_HPARAM, "attention.head_count does not divide the embedding", 0);
        }
        hp->head_dim = hp->n_embd / hp->n_head;
    }
    uint32_t vl;
    if (get_u32(ld, "attention.value_length", &vl) && vl != hp->head_dim) {
        return fail(ld, DTE_E_HPARAM, "attention.value_length differs from attention.key_length (unsupported)", 0);
    }
    if (hp->head_dim == 0 || hp->head_dim > 1024 || hp->head_dim % 2 != 0) {
        return fail(ld, DTE_E_HPARAM, "head dimension (attention.key_length) zero, odd or above 1024", 0);
    }
    if (!get_u32(ld, "rope.dimension_count", &hp->n_rot)) {
        hp->n_rot = hp->head_dim;
    }
    if (hp->n_rot == 0 || hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0) {
        return fail(ld, DTE_E_HPARAM, "rope.dimension_count out of range", 0);
    }
    uint32_t experts;
    if (get_u32(ld, "expert_count", &experts) && experts > 0) {
        return fail(ld, DTE_E_ARCH, "mixture-of-experts models (expert_count > 0) are not supported", 0);
    }
    return 0;
}

/* rms_eps, rope base/scaling: finite and in range (issue 15: NaN, zero, negative or denormal values refused). */
static int read_floats(loader *ld, dte_hparams *hp)
{
    char k[96];
    int rc = get_f32_in(ld, "attention.layer_norm_rms_epsilon", 1e-12f, 1e-1f, &hp->rms_eps);
    if (rc == 1) {
        return fail(ld, DTE_E_HPARAM, "missing", key(ld, "attention.layer_norm_rms_epsilon", k, sizeof k));
    }
    if (rc < 0) {
        return rc;
    }
    hp->rope_freq_base = 10000.0f;
    /* base >= 1: theta = pos * base^(-2i/n_rot) stays <= pos (a base below 1 grows it without bound) */
    if ((rc = get_f32_in(ld, "rope.freq_base", 1.0f, 1e12f, &hp->rope_freq_base)) < 0) {
        return rc;
    }
    hp->rope_freq_scale = 1.0f;
    dte_str scaling;
    if (dte_gguf_get_str(ld->g, key(ld, "rope.scaling.type", k, sizeof k), &scaling) && !dte_str_eq(scaling, "none")) {
        if (!dte_str_eq(scaling, "linear")) {
            return fail(ld, DTE_E_HPARAM, "unsupported (only linear):", k);
        }
        float factor = 1.0f;
        if ((rc = get_f32_in(ld, "rope.scaling.factor", 1e-2f, 1e4f, &factor)) < 0) {
            return rc;
        }
        hp->rope_freq_scale = 1.0f / factor;
    }
    return 0;
}

/* The architecture's forward-pass fields and its sliding-window layers. */
static int read_arch_params(loader *ld, const dte_arch *a, dte_hparams *hp, dte_layer *layers)
{
    int rc;
    hp->rope_type = a->rope_type;
    hp->ffn = a->ffn;
    hp->fused_gate_up = a->fused_gate_up;
    hp->embd_scale = a->embd_scale ? dte_sqrtf((float)hp->n_embd) : 1.0f;
    float scale = 1.0f / dte_sqrtf((float)hp->head_dim);
    if (a->big_scale_by_embd && hp->n_layer == a->big_layers) {
        scale = 1.0f / dte_sqrtf((float)(hp->n_embd / hp->n_head));
    }
    hp->q_scale = a->q_prescale ? scale : 1.0f;
    hp->kq_scale = a->q_prescale ? 1.0f : scale;
    if (a->attn_softcap && (rc = get_f32_in(ld, "attn_logit_softcapping", 1e-3f, 1e6f, &hp->attn_softcap)) < 0) {
        return rc;
    }
    if ((rc = get_f32_in(ld, "final_logit_softcapping", 1e-3f, 1e6f, &hp->final_softcap)) < 0) {
        return rc;
    }
    hp->n_swa = 0;
    if (a->swa_pattern && !get_u32(ld, "attention.sliding_window", &hp->n_swa)) {
        hp->n_swa = a->swa_default;
    }
    uint32_t pattern = a->swa_pattern;
    if (hp->n_swa) {
        get_u32(ld, "attention.sliding_window_pattern", &pattern);
    }
    float base_swa = a->swa_local_base ? 10000.0f : hp->rope_freq_base;
    if ((rc = get_f32_in(ld, "rope.freq_base_swa", 1.0f, 1e12f, &base_swa)) < 0) {
        return rc;
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        /* llama_hparams::set_swa_pattern: every pattern-th layer (the last of each group) is global */
        layers[il].swa = hp->n_swa > 0 && (pattern == 0 || il % pattern < pattern - 1);
        layers[il].rope_base = layers[il].swa ? base_swa : hp->rope_freq_base;
        layers[il].rope_scale = layers[il].swa ? 1.0f : hp->rope_freq_scale;
    }
    return 0;
}

/* ---- tensors ---- */

static int64_t dim(const dte_hparams *hp, uint8_t d)
{
    const int64_t q = (int64_t)hp->n_head * hp->head_dim, kv = (int64_t)hp->n_head_kv * hp->head_dim;
    switch (d) {
    case DTE_DIM_EMBD: return hp->n_embd;
    case DTE_DIM_Q: return q;
    case DTE_DIM_KV: return kv;
    case DTE_DIM_QKV: return q + 2 * kv;
    case DTE_DIM_FF: return hp->n_ff;
    case DTE_DIM_FF2: return 2 * (int64_t)hp->n_ff;
    case DTE_DIM_HEAD: return hp->head_dim;
    default: return 1;
    }
}

/* A 2-D weight [n_cols, n_rows] (n_rows < 0: any) of a weight type. 1 when absent and optional. */
static int get_weight(loader *ld, const char *name, int64_t n_cols, int64_t n_rows, dte_weight *w, bool optional)
{
    const dte_gguf_tensor *t = dte_gguf_find_tensor(ld->g, name);
    if (!t) {
        return optional ? 1 : fail(ld, DTE_E_TENSOR, "missing tensor", name);
    }
    if (!dte_type_is_weight(t->type)) {
        return fail(ld, DTE_E_TENSOR, "unsupported tensor type in", name);
    }
    if (t->ne[0] != n_cols || (n_rows >= 0 && t->ne[1] != n_rows) || t->ne[2] != 1 || t->ne[3] != 1) {
        return fail(ld, DTE_E_TENSOR, "unexpected shape of", name);
    }
    if ((uint64_t)(t->data - ld->g->buf) % 4 !=
        0) { /* blocks hold floats and halves: general.alignment must align them */
        return fail(ld, DTE_E_TENSOR, "data not 4-byte aligned (general.alignment) in", name);
    }
    *w = (dte_weight){.type = t->type,
                      .n_cols = t->ne[0],
                      .n_rows = t->ne[1],
                      .row_bytes = dte_type_row_bytes(t->type, t->ne[0]),
                      .offset = (uint64_t)(t->data - ld->g->buf),
                      .data = t->data,
                      .present = true};
    const uint32_t layout = ld->src ? ld->src->layout : DTE_LAYOUT_GGUF;
    w->layout = (uint8_t)(dte_layout_applies(layout, t->type, t->n_dims, t->ne[1]) ? layout : DTE_LAYOUT_GGUF);
    uint64_t resident = ld->src ? ld->src->resident : 0;
    if (resident && w->offset + t->n_bytes > resident) {
        w->data = 0; /* streamed: placed by the loader (engine.c) */
    }
    return 0;
}

/* A 1-D vector of n floats (any weight type), dequantized into a fresh F32 buffer; past the resident prefix it is
 * read through the source's hook first. 1 when absent and optional. */
static int get_vector(loader *ld, const char *name, int64_t n, const float **out, bool optional)
{
    dte_weight w;
    int rc = get_weight(ld, name, n, 1, &w, optional);
    if (rc) {
        return rc;
    }
    float *v = dte_alloc((size_t)n * sizeof(float), 64);
    if (!v) {
        return fail(ld, DTE_E_NOMEM, "out of memory for", name);
    }
    const uint8_t *data = w.data;
    if (!data || (uintptr_t)data % 4 != 0) { /* streamed, or a buffer mapped at an odd address (a disk window) */
        uint8_t *copy = dte_alloc((size_t)w.row_bytes, 64);
        if (!copy) {
            return fail(ld, DTE_E_NOMEM, "out of memory for", name);
        }
        if (data) {
            for (int64_t i = 0; i < w.row_bytes; i++) {
                copy[i] = data[i];
            }
        } else if (!ld->src->read || ld->src->read(ld->src->user, w.offset, (uint64_t)w.row_bytes, copy) != 0) {
            return fail(ld, DTE_E_STREAM, "cannot read", name);
        }
        data = copy;
    }
    dte_dequantize_row(w.type, data, v, n);
    for (int64_t i = 0; i < n; i++) {
        if (!is_finite(v[i])) {
            return fail(ld, DTE_E_TENSOR, "non-finite value in", name);
        }
    }
    *out = v;
    return 0;
}

static int load_layer(loader *ld, const dte_arch *a, const dte_hparams *hp, uint32_t il, dte_layer *L)
{
    char name[96];
    int rc;
    for (uint32_t i = 0; i < a->n_layer; i++) {
        const dte_tensor_spec *s = &a->layer[i];
        bool optional = s->flags == DTE_T_OPTIONAL || (s->flags == DTE_T_UNLESS_QKV && L->w[DTE_WQKV].present);
        dte_fmt(name, sizeof name, "blk.%u.%s", il, s->name);
        if (s->flags == DTE_T_UNLESS_QKV && !optional && !dte_gguf_find_tensor(ld->g, name)) {
            char both[200];
            dte_fmt(both, sizeof both, "%s (and no fused blk.%u.attn_qkv.weight)", name, il);
            return fail(ld, DTE_E_TENSOR, "missing tensor", both);
        }
        if (s->vector) {
            rc = get_vector(ld, name, dim(hp, s->cols), &L->v[s->slot], optional);
        } else {
            rc = get_weight(ld, name, dim(hp, s->cols), dim(hp, s->rows), &L->w[s->slot], optional);
        }
        if (rc < 0) {
            return rc;
        }
    }
    return 0;
}

/* rope_freqs.weight divides theta per pair: factors must be finite and in [1e-2, 1e4] (llama3's are 1..8, phi3's
 * long factors up to ~60), or theta leaves the range the sine/cosine reduction is exact for. */
static int check_rope_freqs(loader *ld, const float *f, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (!(f[i] >= 1e-2f && f[i] <= 1e4f)) {
            return fail(ld, DTE_E_TENSOR, "factor out of range in", "rope_freqs.weight");
        }
    }
    return 0;
}

static int load_globals(loader *ld, dte_model *m)
{
    dte_hparams *hp = &m->hp;
    int rc;
    if ((rc = get_weight(ld, "token_embd.weight", hp->n_embd, -1, &m->tok_embd, false)) != 0) {
        return rc;
    }
    if (m->tok_embd.n_rows <= 0 || m->tok_embd.n_rows > 0x7fffffff) {
        return fail(ld, DTE_E_TENSOR, "vocabulary size out of range in", "token_embd.weight");
    }
    if (!m->tok_embd.data) {
        return fail(ld, DTE_E_STREAM, "not in the resident prefix of the weights:", "token_embd.weight");
    }
    hp->n_vocab = (uint32_t)m->tok_embd.n_rows;
    if ((rc = get_vector(ld, "output_norm.weight", hp->n_embd, &m->output_norm, false)) != 0) {
        return rc;
    }
    rc = get_weight(ld, "output.weight", hp->n_embd, hp->n_vocab, &m->output, true);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        m->output = m->tok_embd; /* tied embeddings */
    }
    rc = get_vector(ld, "rope_freqs.weight", hp->n_rot / 2, &m->rope_freqs, true);
    if (rc < 0) {
        return rc;
    }
    if (rc == 0 && (rc = check_rope_freqs(ld, m->rope_freqs, hp->n_rot / 2)) != 0) {
        return rc;
    }
    return 0;
}

/* "name" (printable ASCII, at most cap - 3 bytes) for messages. */
static void quote_name(dte_str s, char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = '"';
    for (uint64_t i = 0; i < s.len && n + 2 < cap; i++) {
        out[n++] = s.ptr[i] >= 0x20 && s.ptr[i] < 0x7f ? s.ptr[i] : '?';
    }
    out[n++] = '"';
    out[n] = '\0';
}

int dte_model_load(const dte_gguf *g, const dte_model_source *src, dte_model *m, char *err, size_t errlen)
{
    loader ld = {g, src, 0, err, errlen};
    *m = (dte_model){0};
    dte_str arch_name;
    if (!dte_gguf_get_str(g, "general.architecture", &arch_name)) {
        return fail(&ld, DTE_E_ARCH, "missing", "general.architecture");
    }
    const dte_arch *a = dte_arch_find(arch_name);
    char quoted[40];
    quote_name(arch_name, quoted, sizeof quoted);
    if (!a) {
        return fail(&ld, DTE_E_ARCH, "unsupported general.architecture", quoted);
    }
    if (a->refused) {
        if (err && errlen) {
            dte_fmt(err, errlen, "model: general.architecture %s refused: %s", quoted, a->refused);
        }
        return DTE_E_ARCH;
    }
    ld.arch = a->name;
    m->arch = a->name;
    int rc;
    if ((rc = read_dims(&ld, &m->hp)) != 0 || (rc = read_floats(&ld, &m->hp)) != 0) {
        return rc;
    }
    m->layers = dte_alloc(m->hp.n_layer * sizeof(dte_layer), 64);
    if (!m->layers) {
        return fail(&ld, DTE_E_NOMEM, "out of memory for the layer table", 0);
    }
    if ((rc = read_arch_params(&ld, a, &m->hp, m->layers)) != 0 || (rc = load_globals(&ld, m)) != 0) {
        return rc;
    }
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        if ((rc = load_layer(&ld, a, &m->hp, il, &m->layers[il])) != 0) {
            return rc;
        }
    }
    return 0;
}
