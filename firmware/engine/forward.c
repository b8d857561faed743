/* The forward pass, one for every architecture in arch.c, following llama.cpp's graphs (src/models/llama.cpp,
 * qwen2.cpp, qwen3.cpp, gemma2.cpp, gemma3.cpp, phi3.cpp) and ggml-cpu's numerics. The differences are fields
 * of dte_hparams chosen at load; the whole pass reads top to bottom:
 *
 *   x = get_rows(token_embd) * embd_scale                                         (gemma: sqrt(n_embd))
 *   per layer:
 *     h = rms_norm(x) * attn_norm
 *     q,k,v = W{q,k,v} h (+ biases)  or  split(Wqkv h)                            (qwen2 biases; phi3 fused)
 *     q,k = rms_norm per head * {q,k}_norm                                        (qwen3, gemma3)
 *     rope(q,k): NORM (adjacent pairs, llama) or NEOX (halves), the layer's base  (gemma3: 10000 on sliding layers)
 *     q *= q_scale                                                                (gemma, phi3)
 *     K,V -> F16 cache (V transposed, as llama.cpp without flash attention); a sliding layer's cache is a ring of
 *            n_swa + n_batch - 1 positions and attends to the last n_swa positions only
 *     kq = K.q (q rounded to F16) * kq_scale; kq = c tanh(kq / c)                 (gemma2 soft-capping)
 *     a = Wo (V^T softmax(kq + causal mask)) (probs rounded to F16)
 *     x += post_norm ? rms_norm(a) * attn_post_norm : a                           (gemma2/3)
 *     h = rms_norm(x) * ffn_norm
 *     f = Wdown (act(Wgate h) * (Wup h))   act = SiLU (SwiGLU) or GELU-tanh (GeGLU, gemma); phi3: Wup = gate|up
 *     x += post_norm ? rms_norm(f) * ffn_post_norm : f
 *   logits = Woutput (rms_norm(x_last) * output_norm); logits = c tanh(logits / c)  (final soft-capping)
 *
 * Every matrix product quantizes its activations to dte_vec_dot_type(weight) first (ggml_compute_forward_mul_mat).
 */
#include "model.h"

#include "errors.h"
#include "layout.h"
#include "mathf.h"
#include "quants.h"
#include "runtime/platform.h"

struct dte_model_ctx {
    const dte_model *m;
    uint32_t n_ctx, n_batch, pos;
    uint16_t *k_cache;    /* per layer at kv_off[il]: [kv_head][kv_len[il]][head_dim] F16 */
    uint16_t *v_cache;    /* per layer at kv_off[il]: [kv_head][head_dim][kv_len[il]] F16 (transposed) */
    uint64_t *kv_off;
    uint32_t *kv_len;     /* positions a layer's cache holds: n_ctx, or a sliding layer's ring */
    float *x, *xn, *q, *k, *v, *qkv, *gate, *up;
    float *attn, *tmp;    /* aliases of xn and q (see dte_model_ctx_new) */
    uint8_t *act;         /* quantized activations of the current product's input */
    float *scores;        /* per worker: n_ctx */
    uint16_t *scratch16;  /* per worker: n_ctx + head_dim */
    uint16_t *gelu;       /* GeGLU models: the F16 GELU of every F16 input (gelu_f16), NULL otherwise */
    int n_workers;
};

/* ---- sizes ---- */

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

/* Positions layer il's cache holds. */
static uint32_t layer_kv_len(const dte_model *m, uint32_t il, uint32_t n_ctx, uint32_t n_batch)
{
    if (!m->layers[il].swa) {
        return n_ctx;
    }
    uint64_t ring = (uint64_t)m->hp.n_swa + n_batch - 1;
    return ring < n_ctx ? (uint32_t)ring : n_ctx;
}

/* The widest quantized activation row any product of this model needs (bytes). */
static int64_t act_row_bytes_max(const dte_model *m)
{
    int64_t best = dte_type_row_bytes(dte_vec_dot_type(m->output.type), m->output.n_cols);
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        for (int i = 0; i < DTE_LAYER_MATRICES; i++) {
            const dte_weight *w = &m->layers[il].w[i];
            if (w->present) {
                best = max64(best, dte_type_row_bytes(dte_vec_dot_type(w->type), w->n_cols));
            }
        }
    }
    return best;
}

typedef struct {
    uint64_t kv_elems, x, xn, q, kvdim, qkv, gate, up, act_row, workers, gelu;
} ctx_plan;

static ctx_plan plan(const dte_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    const dte_hparams *hp = &m->hp;
    ctx_plan p = {0};
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        p.kv_elems += (uint64_t)hp->n_head_kv * hp->head_dim * layer_kv_len(m, il, n_ctx, n_batch);
    }
    const int64_t qdim = (int64_t)hp->n_head * hp->head_dim;
    p.kvdim = (uint64_t)hp->n_head_kv * hp->head_dim;
    p.x = (uint64_t)n_batch * hp->n_embd;
    p.xn = (uint64_t)n_batch * (uint64_t)max64(hp->n_embd, qdim);  /* norm output, then attention output */
    p.q = (uint64_t)n_batch * (uint64_t)max64(hp->n_embd, qdim);   /* q, then the Wo / Wdown outputs */
    bool fused_qkv = false;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        fused_qkv |= m->layers[il].w[DTE_WQKV].present;
    }
    p.qkv = fused_qkv ? (uint64_t)n_batch * ((uint64_t)qdim + 2 * p.kvdim) : 0;
    p.gate = (uint64_t)n_batch * hp->n_ff * (hp->fused_gate_up ? 2u : 1u);
    p.up = (uint64_t)n_batch * hp->n_ff;
    p.act_row = (uint64_t)act_row_bytes_max(m);
    p.workers = (uint64_t)dte_worker_count();
    p.gelu = hp->ffn == DTE_FFN_GEGLU ? 65536 : 0;
    return p;
}

uint64_t dte_model_ctx_bytes(const dte_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    ctx_plan p = plan(m, n_ctx, n_batch);
    uint64_t floats = p.x + p.xn + p.q + 2 * (uint64_t)n_batch * p.kvdim + p.qkv + p.gate + p.up + p.workers * n_ctx;
    return 2 * 2 * p.kv_elems + 4 * floats + n_batch * p.act_row + 2 * p.workers * (n_ctx + m->hp.head_dim) +
           2 * p.gelu;
}

/* GELU-tanh of an F16 input, rounded to F16 (ggml_gelu_f32 at the F16 value, stored as F16). */
static uint16_t gelu_f16(uint16_t h)
{
    const float xh = dte_f16_to_f32(h);
    const float g =
        0.5f * xh * (1.0f + dte_tanhf(0.79788456080286535587989211986876f * xh * (1.0f + 0.044715f * xh * xh)));
    return dte_f32_to_f16(g);
}

static void *alloc_array(uint64_t count, uint64_t elem)
{
    if (count == 0 || count > (uint64_t)SIZE_MAX / elem) {
        return 0;
    }
    return dte_alloc((size_t)(count * elem), 64);
}

dte_model_ctx *dte_model_ctx_new(const dte_model *m, uint32_t n_ctx, uint32_t n_batch)
{
    const dte_hparams *hp = &m->hp;
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) {
        n_ctx = hp->n_ctx_train;
    }
    if (n_batch == 0) {
        n_batch = 1;
    }
    if (n_batch > n_ctx) {
        n_batch = n_ctx;
    }
    dte_model_ctx *c = dte_alloc(sizeof *c, 64);
    if (!c) {
        return 0;
    }
    ctx_plan p = plan(m, n_ctx, n_batch);
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_workers = (int)p.workers;
    c->kv_off = alloc_array(hp->n_layer, sizeof(uint64_t));
    c->kv_len = alloc_array(hp->n_layer, sizeof(uint32_t));
    if (!c->kv_off || !c->kv_len) {
        return 0;
    }
    uint64_t off = 0;
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        c->kv_off[il] = off;
        c->kv_len[il] = layer_kv_len(m, il, n_ctx, n_batch);
        off += (uint64_t)hp->n_head_kv * hp->head_dim * c->kv_len[il];
    }
    c->k_cache = alloc_array(p.kv_elems, 2);
    c->v_cache = alloc_array(p.kv_elems, 2);
    c->x = alloc_array(p.x, 4);
    c->xn = alloc_array(p.xn, 4);
    c->q = alloc_array(p.q, 4);
    c->attn = c->xn; /* xn is dead once q, k, v are computed */
    c->tmp = c->q;   /* q is dead once attention has run */
    c->k = alloc_array((uint64_t)n_batch * p.kvdim, 4);
    c->v = alloc_array((uint64_t)n_batch * p.kvdim, 4);
    c->qkv = p.qkv ? alloc_array(p.qkv, 4) : 0;
    c->gate = alloc_array(p.gate, 4);
    c->up = alloc_array(p.up, 4);
    c->act = alloc_array((uint64_t)n_batch, p.act_row);
    c->scores = alloc_array(p.workers * n_ctx, 4);
    c->scratch16 = alloc_array(p.workers * (n_ctx + hp->head_dim), 2);
    c->gelu = p.gelu ? alloc_array(p.gelu, 2) : 0;
    if (!c->k_cache || !c->v_cache || !c->x || !c->xn || !c->q || !c->k || !c->v || (p.qkv && !c->qkv) || !c->gate ||
        !c->up || !c->act || !c->scores || !c->scratch16 || (p.gelu && !c->gelu)) {
        return 0;
    }
    for (uint32_t h = 0; h < p.gelu; h++) {
        c->gelu[h] = gelu_f16((uint16_t)h);
    }
    return c;
}

uint32_t dte_model_ctx_size(const dte_model_ctx *c)
{
    return c->n_ctx;
}
uint32_t dte_model_ctx_batch(const dte_model_ctx *c)
{
    return c->n_batch;
}
uint32_t dte_model_ctx_pos(const dte_model_ctx *c)
{
    return c->pos;
}
void dte_model_ctx_reset(dte_model_ctx *c)
{
    c->pos = 0;
}

/* A sliding layer's ring of len positions holds [pos - len, pos); continuing at position n needs [n - n_swa, n). */
uint32_t dte_model_ctx_truncate(dte_model_ctx *c, uint32_t n)
{
    if (n >= c->pos) {
        return c->pos;
    }
    for (uint32_t il = 0; il < c->m->hp.n_layer; il++) {
        if (c->m->layers[il].swa && (uint64_t)n + c->kv_len[il] < (uint64_t)c->pos + c->m->hp.n_swa) {
            c->pos = 0;
            return 0;
        }
    }
    c->pos = n;
    return n;
}

/* ---- matrix products: several weights sharing one quantized input, split over rows in one parallel_for ---- */

typedef struct {
    const dte_weight *w;
    float *out; /* [n_tokens][w->n_rows] */
} mm_job;

typedef struct {
    const mm_job *jobs;
    int n_jobs;
    uint32_t n_tokens;
    const uint8_t *act;
    int64_t act_row_bytes;
} mm_task;

/* Work is split in groups of DTE_LAYOUT_GROUP_ROWS rows (a job's last group may be short), so that every worker's
 * rows start at a ROWS4 group boundary (layout.h). */
static int64_t mm_groups(const dte_weight *w)
{
    return (w->n_rows + DTE_LAYOUT_GROUP_ROWS - 1) / DTE_LAYOUT_GROUP_ROWS;
}

static void mm_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    const mm_task *t = arg;
    int64_t base = 0;
    for (int j = 0; j < t->n_jobs; j++) {
        const dte_weight *w = t->jobs[j].w;
        const int64_t groups = mm_groups(w);
        int64_t lo = begin > base ? begin - base : 0, hi = end - base < groups ? end - base : groups;
        lo *= DTE_LAYOUT_GROUP_ROWS;
        hi = hi * DTE_LAYOUT_GROUP_ROWS < w->n_rows ? hi * DTE_LAYOUT_GROUP_ROWS : w->n_rows;
        for (int64_t r0 = lo; r0 < hi; r0 += 16) { /* tiles of rows x tokens that stay in cache */
            int64_t r1 = r0 + 16 < hi ? r0 + 16 : hi;
            for (int64_t t0 = 0; t0 < t->n_tokens; t0 += 64) {
                int64_t nt = t->n_tokens - t0 < 64 ? t->n_tokens - t0 : 64;
                const uint8_t *a = t->act + t0 * t->act_row_bytes;
                float *out = t->jobs[j].out + t0 * w->n_rows;
                /* 4 x 4 tiles (rows x tokens), 4 x 1 for one token, where the type has those kernels */
                dte_vec_dot_rows_tokens(w->type, w->layout, w->n_cols, w->data + r0 * w->row_bytes, w->row_bytes,
                                        r1 - r0, a, t->act_row_bytes, nt, out + r0, w->n_rows);
            }
        }
        base += groups;
    }
}

/* Quantize n_tokens rows of x (n_cols each) to act_type; returns the row stride in bytes. */
static int64_t quantize_rows(uint32_t act_type, const float *x, uint32_t n_tokens, int64_t n_cols, uint8_t *dst)
{
    int64_t rb = dte_type_row_bytes(act_type, n_cols);
    for (uint32_t t = 0; t < n_tokens; t++) {
        dte_quantize_row(act_type, x + (int64_t)t * n_cols, dst + t * rb, n_cols);
    }
    return rb;
}

/* out_j = W_j x for weights that share the input x and the same vec_dot type. */
static int matmul(const mm_job *jobs, int n_jobs, const float *x, uint32_t n_tokens, uint8_t *act)
{
    const dte_weight *w0 = jobs[0].w;
    uint32_t act_type = dte_vec_dot_type(w0->type);
    int64_t total = 0;
    for (int j = 0; j < n_jobs; j++) {
        if (!jobs[j].w->data) {
            return DTE_E_STREAM; /* a streamed weight the loader did not place */
        }
        if (dte_vec_dot_type(jobs[j].w->type) != act_type) { /* mixed types: run separately */
            for (int i = 0; i < n_jobs; i++) {
                int rc = matmul(&jobs[i], 1, x, n_tokens, act);
                if (rc) {
                    return rc;
                }
            }
            return 0;
        }
        total += mm_groups(jobs[j].w);
    }
    mm_task task = {jobs, n_jobs, n_tokens, act, quantize_rows(act_type, x, n_tokens, w0->n_cols, act)};
    return dte_parallel_for(total, mm_rows, &task) ? DTE_E_BUSY : 0;
}

/* ---- elementwise pieces ---- */

/* ggml_compute_forward_rms_norm_f32 (sum of squares in double) followed by ggml_mul with the weight. */
static void rms_norm(const float *x, const float *w, float *out, int64_t n, float eps)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) {
        sum += (double)(x[i] * x[i]);
    }
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / dte_sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) {
        float y = x[i] * scale;
        out[i] = y * w[i];
    }
}

/* rms_norm of each of n_rows rows of width n in place (per-head Q/K norms, post-norms). */
static void rms_norm_rows(float *x, const float *w, int64_t n_rows, int64_t n, float eps)
{
    for (int64_t r = 0; r < n_rows; r++) {
        rms_norm(x + r * n, w, x + r * n, n, eps);
    }
}

static void add_bias(float *x, const float *b, uint32_t n_tokens, int64_t n)
{
    if (!b) {
        return;
    }
    for (uint32_t t = 0; t < n_tokens; t++) {
        for (int64_t i = 0; i < n; i++) {
            x[(int64_t)t * n + i] += b[i];
        }
    }
}

/* ggml_rope_cache_init + rotate_pairs (ggml-cpu ops.cpp): theta advances by repeated multiplication with
 * theta_scale = base^(-2/n_rot); NORM rotates adjacent pairs (i, i+1), NEOX the halves (i, i + n_rot/2);
 * dims >= n_rot pass through. */
static void rope(float *v, int n_heads, int head_dim, const dte_model *m, const dte_layer *L, uint32_t pos)
{
    const int n_rot = (int)m->hp.n_rot, half = n_rot / 2;
    const bool neox = m->hp.rope_type == DTE_ROPE_NEOX;
    const float theta_scale = dte_powf(L->rope_base, -2.0f / (float)n_rot);
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = m->rope_freqs ? m->rope_freqs[i0 / 2] : 1.0f;
        const float th = L->rope_scale * (theta / ff);
        const float c = dte_cosf(th), s = dte_sinf(th);
        const int a = neox ? i0 / 2 : i0, b = neox ? i0 / 2 + half : i0 + 1;
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (int64_t)h * head_dim;
            const float x0 = p[a], x1 = p[b];
            p[a] = x0 * c - x1 * s;
            p[b] = x0 * s + x1 * c;
        }
        theta *= theta_scale;
    }
}

/* ggml_vec_geglu_f32 with GGML_GELU_FP16: GELU-tanh looked up at the F16-rounded input, result rounded to F16.
 * The table (the context's `gelu`, made once by gelu_f16 for all 65536 inputs, as ggml's table_gelu_f16) holds
 * exactly what computing it per element gives. */
static float gelu_f16_table(const uint16_t *table, float x)
{
    if (x <= -10.0f) {
        return 0.0f;
    }
    if (x >= 10.0f) {
        return x;
    }
    return dte_f16_to_f32(table[dte_f32_to_f16(x)]);
}

static float softcap(float x, float c)
{
    return dte_tanhf(x * (1.0f / c)) * c;
}

/* ---- attention over the F16 cache ---- */

typedef struct {
    dte_model_ctx *c;
    uint32_t layer, n_tokens, pos0;
} attn_task;

/* sum_j V[d][(lo + j) % len] p[j] for one head's transposed V rows of a ring of `len` positions. */
static float v_dot(const uint16_t *vrow, uint32_t len, int64_t lo, int64_t count, const uint16_t *p)
{
    const int64_t a = lo % len, n1 = count < (int64_t)len - a ? count : (int64_t)len - a;
    float s = dte_vec_dot(DTE_TYPE_F16, n1, vrow + a, p);
    if (count > n1) {
        s += dte_vec_dot(DTE_TYPE_F16, count - n1, vrow, p + n1);
    }
    return s;
}

static void attn_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    const attn_task *a = arg;
    dte_model_ctx *c = a->c;
    const dte_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim, group = hp->n_head / hp->n_head_kv, qdim = (int64_t)hp->n_head * hd;
    const uint32_t len = c->kv_len[a->layer];
    const bool swa = c->m->layers[a->layer].swa;
    float *scores = c->scores + (int64_t)worker * c->n_ctx;
    uint16_t *probs16 = c->scratch16 + (int64_t)worker * (c->n_ctx + hd), *q16 = probs16 + c->n_ctx;
    for (int64_t job = begin; job < end; job++) {
        const int64_t t = job / hp->n_head, h = job % hp->n_head, kvh = h / group;
        const int64_t p = a->pos0 + t; /* causal mask: later positions get -inf, i.e. weight 0 */
        const int64_t lo = swa && p >= hp->n_swa ? p - hp->n_swa + 1 : 0, n_kv = p - lo + 1; /* sliding window */
        const uint16_t *kc = c->k_cache + c->kv_off[a->layer] + (uint64_t)kvh * len * hd;
        const uint16_t *vc = c->v_cache + c->kv_off[a->layer] + (uint64_t)kvh * hd * len;
        dte_quantize_row(DTE_TYPE_F16, c->q + t * qdim + h * hd, q16, hd);
        float max = -1.0f / 0.0f;
        for (int64_t j = 0; j < n_kv; j++) {
            float s = dte_vec_dot(DTE_TYPE_F16, hd, kc + ((lo + j) % len) * hd, q16) * hp->kq_scale;
            if (hp->attn_softcap > 0.0f) {
                s = softcap(s, hp->attn_softcap);
            }
            scores[j] = s;
            if (s > max) {
                max = s;
            }
        }
        double sum = 0.0; /* ggml_vec_soft_max_f32 sums in ggml_float (double) */
        for (int64_t j = 0; j < n_kv; j++) {
            scores[j] = dte_expf(scores[j] - max);
            sum += (double)scores[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n_kv; j++) {
            scores[j] *= inv;
        }
        dte_quantize_row(DTE_TYPE_F16, scores, probs16, n_kv);
        float *out = c->attn + t * qdim + h * hd;
        if ((lo % len) + n_kv <= (int64_t)len) { /* no ring wrap: all head_dim V rows as one rows x 1 product */
            dte_vec_dot_rows_tokens(DTE_TYPE_F16, DTE_LAYOUT_GGUF, n_kv, vc + lo % len, (int64_t)len * 2, hd, probs16,
                                    0, 1, out, 0);
            continue;
        }
        for (int64_t d = 0; d < hd; d++) {
            out[d] = v_dot(vc + d * len, len, lo, n_kv, probs16);
        }
    }
}

static void store_kv(dte_model_ctx *c, uint32_t layer, uint32_t n_tokens)
{
    const dte_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim;
    const uint32_t len = c->kv_len[layer];
    for (uint32_t t = 0; t < n_tokens; t++) {
        const int64_t slot = (c->pos + t) % len;
        for (int64_t kvh = 0; kvh < hp->n_head_kv; kvh++) {
            const float *ks = c->k + (int64_t)t * hp->n_head_kv * hd + kvh * hd;
            const float *vs = c->v + (int64_t)t * hp->n_head_kv * hd + kvh * hd;
            uint16_t *kd = c->k_cache + c->kv_off[layer] + ((uint64_t)kvh * len + slot) * hd;
            uint16_t *vd = c->v_cache + c->kv_off[layer] + (uint64_t)kvh * hd * len + slot;
            for (int64_t d = 0; d < hd; d++) {
                kd[d] = dte_f32_to_f16(ks[d]);
                vd[d * len] = dte_f32_to_f16(vs[d]);
            }
        }
    }
}

/* ---- one layer and the whole pass ---- */

/* q, k, v of n tokens from c->xn: separate products (+ biases) or one fused product split per token. */
static int project_qkv(dte_model_ctx *c, const dte_layer *L, uint32_t n)
{
    const dte_hparams *hp = &c->m->hp;
    const int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    int rc;
    if (L->w[DTE_WQKV].present) {
        mm_job j = {&L->w[DTE_WQKV], c->qkv};
        if ((rc = matmul(&j, 1, c->xn, n, c->act)) != 0) {
            return rc;
        }
        for (uint32_t t = 0; t < n; t++) {
            const float *row = c->qkv + (int64_t)t * (Q + 2 * KV);
            for (int64_t i = 0; i < Q; i++) {
                c->q[t * Q + i] = row[i];
            }
            for (int64_t i = 0; i < KV; i++) {
                c->k[t * KV + i] = row[Q + i], c->v[t * KV + i] = row[Q + KV + i];
            }
        }
    } else {
        mm_job qkv[3] = {{&L->w[DTE_WQ], c->q}, {&L->w[DTE_WK], c->k}, {&L->w[DTE_WV], c->v}};
        if ((rc = matmul(qkv, 3, c->xn, n, c->act)) != 0) {
            return rc;
        }
    }
    add_bias(c->q, L->v[DTE_BQ], n, Q);
    add_bias(c->k, L->v[DTE_BK], n, KV);
    add_bias(c->v, L->v[DTE_BV], n, KV);
    return 0;
}

/* x += (post_norm) Wo attention(q, k, v) */
static int attention_block(dte_model_ctx *c, uint32_t il, uint32_t n)
{
    const dte_model *m = c->m;
    const dte_hparams *hp = &m->hp;
    const dte_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, hd = hp->head_dim, Q = (int64_t)hp->n_head * hd, KV = (int64_t)hp->n_head_kv * hd;
    int rc;
    for (uint32_t t = 0; t < n; t++) {
        rms_norm(c->x + t * E, L->v[DTE_ATTN_NORM], c->xn + t * E, E, hp->rms_eps);
    }
    if ((rc = project_qkv(c, L, n)) != 0) {
        return rc;
    }
    if (L->v[DTE_Q_NORM]) {
        rms_norm_rows(c->q, L->v[DTE_Q_NORM], (int64_t)n * hp->n_head, hd, hp->rms_eps);
    }
    if (L->v[DTE_K_NORM]) {
        rms_norm_rows(c->k, L->v[DTE_K_NORM], (int64_t)n * hp->n_head_kv, hd, hp->rms_eps);
    }
    for (uint32_t t = 0; t < n; t++) {
        rope(c->q + t * Q, (int)hp->n_head, (int)hd, m, L, c->pos + t);
        rope(c->k + t * KV, (int)hp->n_head_kv, (int)hd, m, L, c->pos + t);
    }
    if (hp->q_scale != 1.0f) {
        for (int64_t i = 0; i < (int64_t)n * Q; i++) {
            c->q[i] *= hp->q_scale;
        }
    }
    store_kv(c, il, n);
    attn_task at = {c, il, n, c->pos};
    if (dte_parallel_for((int64_t)n * hp->n_head, attn_rows, &at)) {
        return DTE_E_BUSY;
    }
    mm_job wo = {&L->w[DTE_WO], c->tmp};
    if ((rc = matmul(&wo, 1, c->attn, n, c->act)) != 0) {
        return rc;
    }
    if (L->v[DTE_ATTN_POST_NORM]) {
        rms_norm_rows(c->tmp, L->v[DTE_ATTN_POST_NORM], n, E, hp->rms_eps);
    }
    for (int64_t i = 0; i < (int64_t)n * E; i++) {
        c->x[i] += c->tmp[i];
    }
    return 0;
}

/* x += (post_norm) Wdown (act(gate) * up) */
static int ffn_block(dte_model_ctx *c, uint32_t il, uint32_t n)
{
    const dte_hparams *hp = &c->m->hp;
    const dte_layer *L = &c->m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff;
    int rc;
    for (uint32_t t = 0; t < n; t++) {
        rms_norm(c->x + t * E, L->v[DTE_FFN_NORM], c->xn + t * E, E, hp->rms_eps);
    }
    float *h = c->up; /* act(gate) * up, [n][F] */
    if (hp->fused_gate_up) { /* ggml_swiglu on gate|up rows */
        mm_job gu = {&L->w[DTE_W_UP], c->gate};
        if ((rc = matmul(&gu, 1, c->xn, n, c->act)) != 0) {
            return rc;
        }
        for (int64_t t = 0; t < n; t++) {
            for (int64_t i = 0; i < F; i++) {
                h[t * F + i] = dte_siluf(c->gate[t * 2 * F + i]) * c->gate[t * 2 * F + F + i];
            }
        }
    } else {
        mm_job gu[2] = {{&L->w[DTE_W_GATE], c->gate}, {&L->w[DTE_W_UP], c->up}};
        if ((rc = matmul(gu, 2, c->xn, n, c->act)) != 0) {
            return rc;
        }
        for (int64_t i = 0; i < (int64_t)n * F; i++) {
            h[i] = (hp->ffn == DTE_FFN_GEGLU ? gelu_f16_table(c->gelu, c->gate[i]) : dte_siluf(c->gate[i])) * c->up[i];
        }
    }
    mm_job down = {&L->w[DTE_W_DOWN], c->tmp};
    if ((rc = matmul(&down, 1, h, n, c->act)) != 0) {
        return rc;
    }
    if (L->v[DTE_FFN_POST_NORM]) {
        rms_norm_rows(c->tmp, L->v[DTE_FFN_POST_NORM], n, E, hp->rms_eps);
    }
    for (int64_t i = 0; i < (int64_t)n * E; i++) {
        c->x[i] += c->tmp[i];
    }
    return 0;
}

/* The platform's worker count grew since the context was made (hosted: another thread count): per-worker
 * attention scratch must cover every worker index. */
static int grow_worker_scratch(dte_model_ctx *c)
{
    int n_workers = dte_worker_count();
    float *scores = alloc_array((uint64_t)n_workers * c->n_ctx, 4);
    uint16_t *scratch16 = alloc_array((uint64_t)n_workers * (c->n_ctx + c->m->hp.head_dim), 2);
    if (!scores || !scratch16) {
        return DTE_E_NOMEM;
    }
    c->scores = scores;
    c->scratch16 = scratch16;
    c->n_workers = n_workers;
    return 0;
}

static void embed(dte_model_ctx *c, const int32_t *tokens, uint32_t n)
{
    const dte_model *m = c->m;
    const int64_t E = m->hp.n_embd;
    for (uint32_t t = 0; t < n; t++) {
        float *x = c->x + t * E;
        const dte_weight *w = &m->tok_embd;
        dte_layout_dequantize_row(w->layout, w->type, w->n_cols, w->n_rows, w->data, tokens[t], x);
        if (m->hp.embd_scale != 1.0f) {
            for (int64_t i = 0; i < E; i++) {
                x[i] *= m->hp.embd_scale;
            }
        }
    }
}

int dte_model_eval(dte_model_ctx *c, const int32_t *tokens, uint32_t n, float *logits)
{
    const dte_model *m = c->m;
    const dte_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    int rc;
    if (n == 0 || n > c->n_batch || n > c->n_ctx - c->pos) {
        return DTE_E_ARG;
    }
    for (uint32_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab) {
            return DTE_E_ARG;
        }
    }
    if (dte_worker_count() > c->n_workers && (rc = grow_worker_scratch(c)) != 0) {
        return rc;
    }
    embed(c, tokens, n);
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (m->ensure_resident && m->ensure_resident(m->ensure_user, il)) {
            return DTE_E_STREAM;
        }
        if ((rc = attention_block(c, il, n)) != 0 || (rc = ffn_block(c, il, n)) != 0) {
            return rc;
        }
    }
    if (m->ensure_resident && m->ensure_resident(m->ensure_user, hp->n_layer)) {
        return DTE_E_STREAM;
    }
    rms_norm(c->x + (int64_t)(n - 1) * E, m->output_norm, c->xn, E, hp->rms_eps);
    mm_job out = {&m->output, logits};
    if ((rc = matmul(&out, 1, c->xn, 1, c->act)) != 0) {
        return rc;
    }
    if (hp->final_softcap > 0.0f) {
        for (uint32_t i = 0; i < hp->n_vocab; i++) {
            logits[i] = softcap(logits[i], hp->final_softcap);
        }
    }
    c->pos += n;
    return 0;
}
