/* The model view the forward pass runs on (engine-internal: callers use engine.h). One struct for every
 * architecture the table in arch.c knows; a layer is an array of weight slots the architecture fills (a slot it
 * does not use stays absent), and the few forward-pass differences are fields of dte_hparams set at load.
 * Weights stay in place in the GGUF buffer (or in the streaming window); norms and biases are copied to F32.
 * Platform-free.
 */
#ifndef DTE_ENGINE_MODEL_H
#define DTE_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct {
    uint32_t type;          /* enum dte_type */
    int64_t n_cols, n_rows; /* ne[0], ne[1] */
    int64_t row_bytes;
    uint64_t offset;        /* of the data from the start of the GGUF */
    const uint8_t *data;    /* NULL while a streamed weight is not in the window */
    bool present;           /* the file has this tensor */
    uint8_t layout;         /* DTE_LAYOUT_* (layout.h) of the bytes at data: ROWS4 where it applies to the tensor */
} dte_weight;

/* Matrix slots of a layer (llama.cpp llama_layer names). */
enum dte_layer_matrix {
    DTE_WQ,
    DTE_WK,
    DTE_WV,
    DTE_WQKV,               /* fused Q|K|V rows (phi3) instead of WQ, WK, WV */
    DTE_WO,
    DTE_W_GATE,
    DTE_W_UP,   /* W_UP holds gate|up rows when the architecture fuses them (phi3) */
    DTE_W_DOWN,
    DTE_LAYER_MATRICES
};

/* Vector slots of a layer (F32 copies). */
enum dte_layer_vector {
    DTE_ATTN_NORM,
    DTE_BQ,
    DTE_BK,
    DTE_BV, /* Q/K/V biases (qwen2) */
    DTE_Q_NORM,
    DTE_K_NORM, /* per-head RMSNorm of Q and K (qwen3, gemma3) */
    DTE_ATTN_POST_NORM,     /* RMSNorm of the attention output before the residual add (gemma2/3) */
    DTE_FFN_NORM,
    DTE_FFN_POST_NORM,      /* RMSNorm of the FFN output before the residual add (gemma2/3) */
    DTE_LAYER_VECTORS
};

typedef struct {
    dte_weight w[DTE_LAYER_MATRICES];
    const float *v[DTE_LAYER_VECTORS];
    bool swa;               /* sliding-window attention layer */
    float rope_base, rope_scale;
} dte_layer;

enum dte_rope_type { DTE_ROPE_NORM = 0, DTE_ROPE_NEOX = 2 }; /* ggml's GGML_ROPE_TYPE_* */
enum dte_ffn_kind { DTE_FFN_SWIGLU, DTE_FFN_GEGLU };

typedef struct {
    uint32_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    uint32_t n_swa;         /* sliding window (positions, the current one included); 0: none */
    float rms_eps, rope_freq_base, rope_freq_scale;
    /* forward-pass differences, set from the architecture at load */
    uint8_t rope_type;      /* enum dte_rope_type */
    uint8_t ffn;            /* enum dte_ffn_kind */
    bool fused_gate_up;     /* W_UP = gate|up */
    float embd_scale;       /* token embeddings are multiplied by this (gemma: sqrt(n_embd)), else 1 */
    float q_scale;          /* Q is multiplied by this before the F16 rounding (gemma, phi3), else 1 */
    float kq_scale;         /* K.q is multiplied by this (llama: 1/sqrt(head_dim); 1 where q_scale is used) */
    float attn_softcap;     /* gemma2: kq = c * tanh(kq / c); 0 off */
    float final_softcap;    /* logits = c * tanh(logits / c); 0 off */
} dte_hparams;

typedef struct {
    const char *arch;       /* general.architecture */
    dte_hparams hp;
    dte_weight tok_embd, output; /* output is tok_embd when tied */
    const float *output_norm;
    const float *rope_freqs;     /* optional per-pair frequency factors (rope_freqs.weight), else NULL */
    dte_layer *layers;
    /* Optional (NULL: off): called before layer il runs (il < n_layer) and before the output head (il == n_layer);
     * it makes that part's streamed weights resident (engine.c places them). Non-zero fails the evaluation. */
    int (*ensure_resident)(void *user, uint32_t il);
    void *ensure_user;
} dte_model;

/* Where the weights are: [0, resident) of the buffer is in memory; tensors past it are either read now through
 * `read` (vectors, copied to F32) or left absent (data NULL) for the streaming loader (matrices). */
typedef struct {
    uint64_t resident;   /* 0: all of the buffer */
    uint32_t layout;     /* DTE_LAYOUT_* the matrices are in when evaluated (each dte_weight's layout where it
                          * applies to the tensor; layout.h) */
    int (*read)(void *user, uint64_t offset, uint64_t bytes, void *dst);
    void *user;
} dte_model_source;

/* Build the model view over a parsed GGUF following the architecture table (arch.h). Returns 0 or a negative
 * DTE_E_* with a one-line message naming the key or tensor. */
int dte_model_load(const dte_gguf *g, const dte_model_source *src, dte_model *m, char *err, size_t errlen);

/* Per-sequence state: F16 KV cache (sliding-window layers hold only their window) and scratch for n_batch. */
typedef struct dte_model_ctx dte_model_ctx;

/* Bytes dte_model_ctx_new allocates for n_ctx / n_batch (the KV cache and scratch), for the build-time check. */
uint64_t dte_model_ctx_bytes(const dte_model *m, uint32_t n_ctx, uint32_t n_batch);
dte_model_ctx *dte_model_ctx_new(const dte_model *m, uint32_t n_ctx, uint32_t n_batch);
uint32_t dte_model_ctx_size(const dte_model_ctx *c);
uint32_t dte_model_ctx_batch(const dte_model_ctx *c);
uint32_t dte_model_ctx_pos(const dte_model_ctx *c);
void dte_model_ctx_reset(dte_model_ctx *c);
/* Keep the first n positions (see dte_engine_truncate); returns the positions kept. */
uint32_t dte_model_ctx_truncate(dte_model_ctx *c, uint32_t n);

/* Run n tokens (n <= n_batch, pos + n <= n_ctx) at the next positions; writes the logits of the last token
 * (n_vocab floats) into logits. Returns 0 or a negative DTE_E_*. */
int dte_model_eval(dte_model_ctx *c, const int32_t *tokens, uint32_t n, float *logits);

#endif /* DTE_ENGINE_MODEL_H */
