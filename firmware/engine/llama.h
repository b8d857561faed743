/* The llama architecture as llama.cpp runs it (llama.cpp src/llama-model.cpp llm_build_llama, ggml-cpu ops):
 * token embedding, RMSNorm, RoPE (normal mode: adjacent pairs), grouped-query attention with an F16 KV cache,
 * SwiGLU FFN, output norm, output head or tied token_embd. Activations are quantized to each weight's vec_dot type
 * before the dot products, as ggml does. Platform-free.
 */
#ifndef DTE_ENGINE_LLAMA_H
#define DTE_ENGINE_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

typedef struct {
    uint32_t type;          /* enum dte_type */
    int64_t n_cols, n_rows; /* ne[0], ne[1] */
    int64_t row_bytes;
    const uint8_t *data;
} dte_weight;

typedef struct {
    const float *attn_norm, *ffn_norm; /* F32 copies, n_embd */
    dte_weight wq, wk, wv, wo, w_gate, w_up, w_down;
} dte_layer;

typedef struct {
    uint32_t n_vocab, n_embd, n_layer, n_ff, n_head, n_head_kv, head_dim, n_rot, n_ctx_train;
    float rms_eps, rope_freq_base, rope_freq_scale;
} dte_llama_hparams;

typedef struct {
    dte_llama_hparams hp;
    dte_weight tok_embd, output; /* output aliases tok_embd when tied */
    const float *output_norm;
    const float *rope_freqs;     /* optional per-pair frequency factors (rope_freqs.weight), else NULL */
    dte_layer *layers;
    /* Optional (NULL: off): called before layer il runs (il < n_layer) and before the output head (il == n_layer);
     * it makes that part's weights resident and may repoint their dte_weight.data (weights streamed from storage
     * by the firmware, boot/weights_stream.c). Non-zero fails the evaluation. */
    int (*ensure_resident)(void *user, uint32_t il);
    void *ensure_user;
} dte_llama_model;

/* Per-sequence state: F16 KV cache and scratch buffers sized for n_ctx positions and n_batch tokens per call. */
typedef struct dte_llama_ctx dte_llama_ctx;

/* Build the model view over a parsed GGUF (weights stay in place; norms are copied to F32).
 * Returns 0 or a negative code with a message in err. */
int dte_llama_load(const dte_gguf *g, dte_llama_model *m, char *err, size_t errlen);

/* n_ctx 0 = the model's training context. n_batch = the most tokens one dte_llama_eval call takes. */
dte_llama_ctx *dte_llama_ctx_new(const dte_llama_model *m, uint32_t n_ctx, uint32_t n_batch);
uint32_t dte_llama_ctx_size(const dte_llama_ctx *c);
/* Positions already in the KV cache. */
uint32_t dte_llama_ctx_pos(const dte_llama_ctx *c);
void dte_llama_ctx_reset(dte_llama_ctx *c);
/* Keep only the first n positions of the KV cache (n >= pos: no change); later evaluations overwrite the rest. */
void dte_llama_ctx_truncate(dte_llama_ctx *c, uint32_t n);

/* Run n tokens (n <= n_batch, pos + n <= n_ctx) at the next positions; writes the logits of the last token
 * (n_vocab floats) into logits. Returns 0, or -1 on bad arguments / a busy parallel_for. */
int dte_llama_eval(dte_llama_ctx *c, const int32_t *tokens, uint32_t n, float *logits);

#endif /* DTE_ENGINE_LLAMA_H */
