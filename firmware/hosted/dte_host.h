/* The hosted engine's C API, loaded from Python with ctypes (src/dte_build/engine.py).
 * All functions return 0 on success and a negative value on failure with a one-line message in err. */
#ifndef DTE_HOSTED_DTE_HOST_H
#define DTE_HOSTED_DTE_HOST_H

#include <stddef.h>
#include <stdint.h>

typedef struct dte_host dte_host;

/* Called per generated token; return non-zero to stop. */
typedef int (*dte_host_token_cb)(void *user, int32_t id, const char *piece, int32_t piece_len);

typedef struct {
    int32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_ctx_train, n_ctx, bos, eos;
    int32_t add_bos;
} dte_host_info;

/* Map and parse the GGUF at path; n_ctx 0 = training context; n_batch = most tokens per eval. */
int dte_host_load(const char *path, int32_t n_ctx, int32_t n_batch, int32_t threads, dte_host **out, char *err,
                  size_t errlen);
/* The same for a file whose matrices are in weights_layout (engine/layout.h DTE_LAYOUT_*; dte_host_load: GGUF,
 * repacked in the private mapping at load). */
int dte_host_load_layout(const char *path, int32_t n_ctx, int32_t n_batch, int32_t threads, uint32_t weights_layout,
                         dte_host **out, char *err, size_t errlen);
void dte_host_free(dte_host *h);
void dte_host_get_info(const dte_host *h, dte_host_info *info);

/* Map a vocabulary-only GGUF (or any model GGUF): the tokenizer calls work, eval/generate do not. */
int dte_host_load_vocab(const char *path, dte_host **out, char *err, size_t errlen);

/* llama_tokenize(add_special = add_bos, parse_special): the number of ids the text needs (write at most
 * max_ids), or negative on error. */
int64_t dte_host_tokenize(dte_host *h, const char *text, size_t len, int32_t add_bos, int32_t parse_special,
                          int32_t *ids, int64_t max_ids);
/* Bytes of one token's text (may exceed cap: truncated); special: control tokens as their text. */
int32_t dte_host_token_piece(dte_host *h, int32_t id, int32_t special, char *buf, int32_t cap);
/* 1 when generation stops at this token. */
int32_t dte_host_token_is_eog(dte_host *h, int32_t id);

/* Forget the KV cache. */
void dte_host_reset(dte_host *h);
int32_t dte_host_pos(const dte_host *h);
/* Feed n tokens (any count: split into n_batch pieces) at the next positions; logits of the last token into
 * logits (n_vocab floats; may be NULL). */
int dte_host_eval(dte_host *h, const int32_t *ids, int64_t n, float *logits, char *err, size_t errlen);

/* Reset, evaluate the prompt, then sample up to n_predict tokens (stops at EOS) calling cb for each.
 * out_ids receives the generated ids (capacity n_predict); *n_out their count; timings in seconds. */
int dte_host_generate(dte_host *h, const int32_t *prompt, int64_t n_prompt, int32_t n_predict, float temp,
                      int32_t top_k, float top_p, uint64_t seed, dte_host_token_cb cb, void *user, int32_t *out_ids,
                      int32_t *n_out, double *prompt_seconds, double *gen_seconds, char *err, size_t errlen);

/* The identity sampler stage (engine/identity.h) for later dte_host_generate calls: `hash` is the persona's
 * 32-byte SHA-256; strength 0 turns the stage off. */
void dte_host_set_identity(dte_host *h, const uint8_t *hash, float strength);

/* Bytes of memory the engine allocates at open for the KV cache, scratch and logits of this model with a context
 * of n_ctx positions (0 or above the training context: the training context; the count used in *n_ctx_used) and
 * n_batch tokens per pass (0: the engine's default); 0 when the model does not load. For the build-time check
 * that a board holds the model and its context. */
uint64_t dte_host_context_bytes(const void *buf, uint64_t size, int32_t n_ctx, int32_t n_batch, int32_t *n_ctx_used);

/* Parse a GGUF held in memory (no model construction): 0 or a negative DTE_E_* code. For fuzzing. */
int dte_host_gguf_check(const void *buf, uint64_t size, char *err, size_t errlen);
/* Parse + build the llama model + tokenizer views from memory, without a KV cache. For fuzzing. */
int dte_host_model_check(const void *buf, uint64_t size, char *err, size_t errlen);
/* Parse + load the tokenizer alone from memory (a vocabulary GGUF). For fuzzing. */
int dte_host_vocab_check(const void *buf, uint64_t size, char *err, size_t errlen);

#endif
