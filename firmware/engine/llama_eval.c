/* The llama forward pass, following llama.cpp's graph (llm_build_llama) and ggml-cpu's numerics:
 *   x = get_rows(token_embd)
 *   per layer: h = rms_norm(x) * attn_norm; q,k,v = W{q,k,v} h; rope(q,k) (GGML_ROPE_TYPE_NORM, adjacent pairs);
 *              K,V -> F16 cache (V stored transposed, as llama.cpp does without flash attention);
 *              kq = K.q with q rounded to F16 (F16 vec_dot_type); softmax(kq * 1/sqrt(head_dim) + causal mask);
 *              kqv = V^T.p with p rounded to F16; x += Wo kqv;
 *              h = rms_norm(x) * ffn_norm; x += Wdown (silu(Wgate h) * (Wup h))
 *   logits = Woutput (rms_norm(x_last) * output_norm)
 * Every matrix product quantizes its activations to dte_vec_dot_type(weight) first (ggml_compute_forward_mul_mat).
 */
#include "llama.h"

#include "mathf.h"
#include "platform.h"
#include "quants.h"

struct dte_llama_ctx {
    const dte_llama_model *m;
    uint32_t n_ctx, n_batch, pos;
    uint16_t *k_cache; /* [layer][kv_head][n_ctx][head_dim] F16 */
    uint16_t *v_cache; /* [layer][kv_head][head_dim][n_ctx] F16 (transposed) */
    float *x, *xn, *q, *k, *v, *gate, *up;
    float *attn, *tmp;    /* aliases of xn and q (see dte_llama_ctx_new) */
    uint8_t *act;         /* quantized activations of the current product's input */
    float *scores;        /* per worker: n_ctx */
    uint16_t *scratch16;  /* per worker: n_ctx + head_dim */
    int n_workers;
};

static void *alloc_array(uint64_t count, uint64_t elem) {
    if (count == 0 || count > (uint64_t)SIZE_MAX / elem) return 0;
    return dte_alloc((size_t)(count * elem), 64);
}

/* The widest quantized activation row any product of this model needs (bytes). */
static int64_t act_row_bytes_max(const dte_llama_model *m) {
    int64_t best = 0;
    const dte_weight *all[2] = {&m->output, &m->tok_embd};
    for (int i = 0; i < 2; i++) {
        int64_t rb = dte_type_row_bytes(dte_vec_dot_type(all[i]->type), all[i]->n_cols);
        if (rb > best) best = rb;
    }
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        const dte_layer *L = &m->layers[il];
        const dte_weight *w[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) {
            int64_t rb = dte_type_row_bytes(dte_vec_dot_type(w[i]->type), w[i]->n_cols);
            if (rb > best) best = rb;
        }
    }
    return best;
}

dte_llama_ctx *dte_llama_ctx_new(const dte_llama_model *m, uint32_t n_ctx, uint32_t n_batch) {
    const dte_llama_hparams *hp = &m->hp;
    if (n_ctx == 0 || n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    if (n_batch == 0) n_batch = 1;
    if (n_batch > n_ctx) n_batch = n_ctx;
    dte_llama_ctx *c = dte_alloc(sizeof *c, 64);
    if (!c) return 0;
    c->m = m;
    c->n_ctx = n_ctx;
    c->n_batch = n_batch;
    c->n_workers = dte_worker_count() + 1;
    uint64_t kv = (uint64_t)hp->n_layer * hp->n_head_kv * hp->head_dim * n_ctx;
    uint64_t kvdim = (uint64_t)hp->n_head_kv * hp->head_dim;
    c->k_cache = alloc_array(kv, 2);
    c->v_cache = alloc_array(kv, 2);
    c->x = alloc_array((uint64_t)n_batch * hp->n_embd, 4);
    c->xn = alloc_array((uint64_t)n_batch * hp->n_embd, 4);
    c->q = alloc_array((uint64_t)n_batch * hp->n_embd, 4);
    c->attn = c->xn; /* xn is dead once q, k, v are computed */
    c->tmp = c->q;   /* q is dead once attention has run */
    c->k = alloc_array((uint64_t)n_batch * kvdim, 4);
    c->v = alloc_array((uint64_t)n_batch * kvdim, 4);
    c->gate = alloc_array((uint64_t)n_batch * hp->n_ff, 4);
    c->up = alloc_array((uint64_t)n_batch * hp->n_ff, 4);
    c->act = alloc_array((uint64_t)n_batch, (uint64_t)act_row_bytes_max(m));
    c->scores = alloc_array((uint64_t)c->n_workers * n_ctx, 4);
    c->scratch16 = alloc_array((uint64_t)c->n_workers * (n_ctx + hp->head_dim), 2);
    if (!c->k_cache || !c->v_cache || !c->x || !c->xn || !c->q || !c->attn || !c->tmp || !c->k || !c->v ||
        !c->gate || !c->up || !c->act || !c->scores || !c->scratch16)
        return 0;
    return c;
}

uint32_t dte_llama_ctx_size(const dte_llama_ctx *c) { return c->n_ctx; }
uint32_t dte_llama_ctx_pos(const dte_llama_ctx *c) { return c->pos; }
void dte_llama_ctx_reset(dte_llama_ctx *c) { c->pos = 0; }
void dte_llama_ctx_truncate(dte_llama_ctx *c, uint32_t n) { if (n < c->pos) c->pos = n; }

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

static void mm_rows(void *arg, int64_t begin, int64_t end, int worker) {
    (void)worker;
    const mm_task *t = arg;
    int64_t base = 0;
    for (int j = 0; j < t->n_jobs; j++) {
        const dte_weight *w = t->jobs[j].w;
        int64_t lo = begin > base ? begin - base : 0, hi = end - base < w->n_rows ? end - base : w->n_rows;
        for (int64_t r0 = lo; r0 < hi; r0 += 16) { /* tiles of rows x tokens that stay in cache */
            int64_t r1 = r0 + 16 < hi ? r0 + 16 : hi;
            for (int64_t t0 = 0; t0 < t->n_tokens; t0 += 64) {
                int64_t nt = t->n_tokens - t0 < 64 ? t->n_tokens - t0 : 64;
                const uint8_t *a = t->act + t0 * t->act_row_bytes;
                float *out = t->jobs[j].out + t0 * w->n_rows;
                /* 4 x 4 tiles (rows x tokens), 4 x 1 for one token, where the type has those kernels */
                dte_vec_dot_rows_tokens(w->type, w->n_cols, w->data + r0 * w->row_bytes, w->row_bytes, r1 - r0, a,
                                        t->act_row_bytes, nt, out + r0, w->n_rows);
            }
        }
        base += w->n_rows;
    }
}

/* Quantize n_tokens rows of x (n_cols each) to act_type; returns the row stride in bytes. */
static int64_t quantize_rows(uint32_t act_type, const float *x, uint32_t n_tokens, int64_t n_cols, uint8_t *dst) {
    int64_t rb = dte_type_row_bytes(act_type, n_cols);
    for (uint32_t t = 0; t < n_tokens; t++) dte_quantize_row(act_type, x + (int64_t)t * n_cols, dst + t * rb, n_cols);
    return rb;
}

/* out_j = W_j x for weights that share the input x and the same vec_dot type. */
static int matmul(const mm_job *jobs, int n_jobs, const float *x, uint32_t n_tokens, uint8_t *act) {
    const dte_weight *w0 = jobs[0].w;
    uint32_t act_type = dte_vec_dot_type(w0->type);
    int64_t total = 0;
    for (int j = 0; j < n_jobs; j++) {
        if (dte_vec_dot_type(jobs[j].w->type) != act_type) { /* mixed types: run separately */
            for (int i = 0; i < n_jobs; i++)
                if (matmul(&jobs[i], 1, x, n_tokens, act)) return -1;
            return 0;
        }
        total += jobs[j].w->n_rows;
    }
    mm_task task = {jobs, n_jobs, n_tokens, act, quantize_rows(act_type, x, n_tokens, w0->n_cols, act)};
    return dte_parallel_for(total, mm_rows, &task);
}

/* ---- elementwise pieces ---- */

/* ggml_compute_forward_rms_norm_f32 (sum of squares in double) followed by ggml_mul with the weight. */
static void rms_norm(const float *x, const float *w, float *out, int64_t n, float eps) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += (double)(x[i] * x[i]);
    const float mean = (float)(sum / (double)n);
    const float scale = 1.0f / dte_sqrtf(mean + eps);
    for (int64_t i = 0; i < n; i++) {
        float y = x[i] * scale;
        out[i] = y * w[i];
    }
}

/* ggml_rope_cache_init + rotate_pairs for GGML_ROPE_TYPE_NORM (ggml-cpu ops.cpp): theta advances by repeated
 * multiplication with theta_scale = freq_base^(-2/n_rot); dims >= n_rot pass through. */
static void rope(float *v, int n_heads, int head_dim, int n_rot, uint32_t pos, const dte_llama_model *m, float theta_scale) {
    float theta = (float)pos;
    for (int i0 = 0; i0 < n_rot; i0 += 2) {
        const float ff = m->rope_freqs ? m->rope_freqs[i0 / 2] : 1.0f;
        const float th = m->hp.rope_freq_scale * (theta / ff);
        const float c = dte_cosf(th), s = dte_sinf(th);
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (int64_t)h * head_dim + i0;
            const float x0 = p[0], x1 = p[1];
            p[0] = x0 * c - x1 * s;
            p[1] = x0 * s + x1 * c;
        }
        theta *= theta_scale;
    }
}

/* ---- attention over the F16 cache ---- */

typedef struct {
    dte_llama_ctx *c;
    uint32_t layer, n_tokens, pos0;
} attn_task;

static void attn_rows(void *arg, int64_t begin, int64_t end, int worker) {
    const attn_task *a = arg;
    dte_llama_ctx *c = a->c;
    const dte_llama_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim, n_ctx = c->n_ctx, group = hp->n_head / hp->n_head_kv;
    const float scale = 1.0f / dte_sqrtf((float)hd);
    float *scores = c->scores + (int64_t)worker * n_ctx;
    uint16_t *probs16 = c->scratch16 + (int64_t)worker * (n_ctx + hd), *q16 = probs16 + n_ctx;
    for (int64_t job = begin; job < end; job++) {
        const int64_t t = job / hp->n_head, h = job % hp->n_head, kvh = h / group;
        const int64_t n_kv = a->pos0 + t + 1; /* causal mask: later positions get -inf, i.e. weight 0 */
        const uint16_t *kc = c->k_cache + (((int64_t)a->layer * hp->n_head_kv + kvh) * n_ctx) * hd;
        const uint16_t *vc = c->v_cache + (((int64_t)a->layer * hp->n_head_kv + kvh) * hd) * n_ctx;
        dte_quantize_row(DTE_TYPE_F16, c->q + t * hp->n_embd + h * hd, q16, hd);
        float max = -1.0f / 0.0f;
        for (int64_t j = 0; j < n_kv; j++) {
            scores[j] = dte_vec_dot(DTE_TYPE_F16, hd, kc + j * hd, q16) * scale;
            if (scores[j] > max) max = scores[j];
        }
        double sum = 0.0; /* ggml_vec_soft_max_f32 sums in ggml_float (double) */
        for (int64_t j = 0; j < n_kv; j++) {
            scores[j] = dte_expf(scores[j] - max);
            sum += (double)scores[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n_kv; j++) scores[j] *= inv;
        dte_quantize_row(DTE_TYPE_F16, scores, probs16, n_kv);
        float *out = c->attn + t * hp->n_embd + h * hd;
        for (int64_t d = 0; d < hd; d++) out[d] = dte_vec_dot(DTE_TYPE_F16, n_kv, vc + d * n_ctx, probs16);
    }
}

static void store_kv(dte_llama_ctx *c, uint32_t layer, uint32_t n_tokens) {
    const dte_llama_hparams *hp = &c->m->hp;
    const int64_t hd = hp->head_dim, n_ctx = c->n_ctx;
    for (uint32_t t = 0; t < n_tokens; t++) {
        const int64_t pos = c->pos + t;
        for (int64_t kvh = 0; kvh < hp->n_head_kv; kvh++) {
            const float *ks = c->k + (int64_t)t * hp->n_head_kv * hd + kvh * hd;
            const float *vs = c->v + (int64_t)t * hp->n_head_kv * hd + kvh * hd;
            uint16_t *kd = c->k_cache + (((int64_t)layer * hp->n_head_kv + kvh) * n_ctx + pos) * hd;
            uint16_t *vd = c->v_cache + (((int64_t)layer * hp->n_head_kv + kvh) * hd) * n_ctx + pos;
            for (int64_t d = 0; d < hd; d++) {
                kd[d] = dte_f32_to_f16(ks[d]);
                vd[d * n_ctx] = dte_f32_to_f16(vs[d]);
            }
        }
    }
}

/* ---- one layer and the whole pass ---- */

static int attention_block(dte_llama_ctx *c, uint32_t il, uint32_t n) {
    const dte_llama_model *m = c->m;
    const dte_llama_hparams *hp = &m->hp;
    const dte_layer *L = &m->layers[il];
    const int64_t E = hp->n_embd, KV = (int64_t)hp->n_head_kv * hp->head_dim;
    for (uint32_t t = 0; t < n; t++) rms_norm(c->x + t * E, L->attn_norm, c->xn + t * E, E, hp->rms_eps);
    mm_job qkv[3] = {{&L->wq, c->q}, {&L->wk, c->k}, {&L->wv, c->v}};
    if (matmul(qkv, 3, c->xn, n, c->act)) return -1;
    const float theta_scale = dte_powf(hp->rope_freq_base, -2.0f / (float)hp->n_rot);
    for (uint32_t t = 0; t < n; t++) {
        rope(c->q + t * E, (int)hp->n_head, (int)hp->head_dim, (int)hp->n_rot, c->pos + t, m, theta_scale);
        rope(c->k + t * KV, (int)hp->n_head_kv, (int)hp->head_dim, (int)hp->n_rot, c->pos + t, m, theta_scale);
    }
    store_kv(c, il, n);
    attn_task at = {c, il, n, c->pos};
    if (dte_parallel_for((int64_t)n * hp->n_head, attn_rows, &at)) return -1;
    mm_job wo = {&L->wo, c->tmp};
    if (matmul(&wo, 1, c->attn, n, c->act)) return -1;
    for (int64_t i = 0; i < (int64_t)n * E; i++) c->x[i] += c->tmp[i];
    return 0;
}

static int ffn_block(dte_llama_ctx *c, uint32_t il, uint32_t n) {
    const dte_llama_hparams *hp = &c->m->hp;
    const dte_layer *L = &c->m->layers[il];
    const int64_t E = hp->n_embd, F = hp->n_ff;
    for (uint32_t t = 0; t < n; t++) rms_norm(c->x + t * E, L->ffn_norm, c->xn + t * E, E, hp->rms_eps);
    mm_job gu[2] = {{&L->w_gate, c->gate}, {&L->w_up, c->up}};
    if (matmul(gu, 2, c->xn, n, c->act)) return -1;
    for (int64_t i = 0; i < (int64_t)n * F; i++) c->gate[i] = dte_siluf(c->gate[i]) * c->up[i]; /* ggml_swiglu */
    mm_job down = {&L->w_down, c->tmp};
    if (matmul(&down, 1, c->gate, n, c->act)) return -1;
    for (int64_t i = 0; i < (int64_t)n * E; i++) c->x[i] += c->tmp[i];
    return 0;
}

/* The platform's worker count grew since the context was made (hosted: another thread count): per-worker
 * attention scratch must cover every worker index. */
static int grow_worker_scratch(dte_llama_ctx *c) {
    int n_workers = dte_worker_count() + 1;
    float *scores = alloc_array((uint64_t)n_workers * c->n_ctx, 4);
    uint16_t *scratch16 = alloc_array((uint64_t)n_workers * (c->n_ctx + c->m->hp.head_dim), 2);
    if (!scores || !scratch16) return -1;
    c->scores = scores;
    c->scratch16 = scratch16;
    c->n_workers = n_workers;
    return 0;
}

int dte_llama_eval(dte_llama_ctx *c, const int32_t *tokens, uint32_t n, float *logits) {
    const dte_llama_model *m = c->m;
    const dte_llama_hparams *hp = &m->hp;
    const int64_t E = hp->n_embd;
    if (n == 0 || n > c->n_batch || n > c->n_ctx - c->pos) return -1;
    if (dte_worker_count() + 1 > c->n_workers && grow_worker_scratch(c)) return -1;
    for (uint32_t t = 0; t < n; t++) {
        if (tokens[t] < 0 || (uint32_t)tokens[t] >= hp->n_vocab) return -1;
        dte_dequantize_row(m->tok_embd.type, m->tok_embd.data + (int64_t)tokens[t] * m->tok_embd.row_bytes, c->x + t * E, E);
    }
    for (uint32_t il = 0; il < hp->n_layer; il++) {
        if (m->ensure_resident && m->ensure_resident(m->ensure_user, il)) return -1;
        if (attention_block(c, il, n) || ffn_block(c, il, n)) return -1;
    }
    if (m->ensure_resident && m->ensure_resident(m->ensure_user, hp->n_layer)) return -1;
    rms_norm(c->x + (int64_t)(n - 1) * E, m->output_norm, c->xn, E, hp->rms_eps);
    mm_job out = {&m->output, logits};
    if (matmul(&out, 1, c->xn, 1, c->act)) return -1;
    c->pos += n;
    return 0;
}
