/* The engine's one interface (the only engine header boot code and the hosted library need, with generate.h,
 * sampler.h and identity.h): open a GGUF held in memory, and the engine alone parses it, validates it, builds the
 * model view for its architecture (arch.c), the tokenizer and the KV cache. Callers never see engine structures.
 *
 *     dte_engine *e;
 *     if (dte_engine_open(buf, size, &params, &hooks, &e, err, sizeof err) != 0) ... one line in err
 *     dte_engine_tokenize(e, text, len, add_bos, ids, cap);
 *     dte_engine_eval(e, ids, n, logits);
 *
 * Weights larger than memory (the firmware's streaming loader, boot/weights_stream.c): params.resident_bytes
 * says how much of the buffer is in memory. Vectors past it are read at open through hooks.read; matrices past it
 * are left absent, and before each part runs (layer il < n_layer, or the output head at n_layer) the engine calls
 * hooks.ensure_resident, which fills them with dte_engine_place using what dte_engine_part_weight lists.
 * Platform-free.
 */
#ifndef DTE_ENGINE_ENGINE_H
#define DTE_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "layout.h"

typedef struct dte_engine dte_engine;

typedef struct {
    uint32_t n_ctx;           /* positions the KV cache holds; 0: the model's training context */
    uint32_t n_batch;         /* tokens per forward pass (dte_engine_eval splits longer runs); 0: min(n_ctx, 512) */
    bool gguf_only;           /* parse and validate the GGUF container only (fuzzing the parser) */
    bool vocab_only;          /* tokenizer only: no model view, no KV cache */
    bool no_context;          /* model and tokenizer, checked, but no KV cache (build-time checks, fuzzing) */
    uint64_t resident_bytes;  /* bytes of the buffer in memory; 0: all of it */
    /* DTE_LAYOUT_* (layout.h) of the matrices' bytes in buf and in what the streaming loader places: GGUF (0, as
     * in the file) is repacked to ROWS4 in place when the session gets a KV cache (at open for the resident part,
     * in dte_engine_place for streamed weights), so buf must then be writable; ROWS4: already laid out (an image
     * written by `dte build`). */
    uint32_t weights_layout;
} dte_engine_params;

typedef struct {
    /* Read `bytes` at `offset` of the file into dst; 0 on success. Needed when resident_bytes < size. */
    int (*read)(void *user, uint64_t offset, uint64_t bytes, void *dst);
    /* Make part `part`'s streamed weights present (dte_engine_place); 0 on success, else the eval fails. */
    int (*ensure_resident)(void *user, uint32_t part);
    void *user;
} dte_engine_hooks;

typedef struct {
    char arch[24];            /* general.architecture */
    uint32_t n_vocab, n_embd, n_layer, n_head, n_head_kv, head_dim, n_ff, n_ctx_train, n_swa;
    uint32_t n_ctx, n_batch;  /* of the KV cache (0 without one) */
    int32_t bos, eos;
    bool add_bos;
} dte_engine_info;

/* One streamed-weight slot of a part: the tensor it shows, where its bytes are in the file. */
typedef struct {
    char name[64];            /* the GGUF tensor name */
    uint32_t type;            /* ggml type */
    uint64_t offset, bytes;   /* in the file */
    bool resident;            /* inside resident_bytes: used in place, nothing to fill */
} dte_weight_ref;

/* Open a session over buf[0, size) (which must outlive it). hooks may be NULL when everything is resident.
 * Returns 0, or a negative DTE_E_* with one line in err naming the key or tensor at fault. */
int dte_engine_open(const void *buf, uint64_t size, const dte_engine_params *params, const dte_engine_hooks *hooks,
                    dte_engine **out, char *err, size_t errlen);

/* Bytes of memory the KV cache and scratch of n_ctx positions take for this model (nothing allocated): for the
 * build-time check that a board's memory holds the model and its context. */
uint64_t dte_engine_context_bytes(const dte_engine *e, uint32_t n_ctx, uint32_t n_batch);

void dte_engine_get_info(const dte_engine *e, dte_engine_info *info);

/* Parts are the layers (0 .. n_layer - 1) and the output head (n_layer). */
uint32_t dte_engine_parts(const dte_engine *e);
/* The i-th weight matrix of a part: 0 and *out filled, 1 past the last one. */
int dte_engine_part_weight(const dte_engine *e, uint32_t part, uint32_t i, dte_weight_ref *out);
/* Point the i-th weight of a part at data (its bytes, as in the file: in params.weights_layout, repacked in place
 * when that is GGUF and the session evaluates), or NULL to mark it absent again. */
void dte_engine_place(dte_engine *e, uint32_t part, uint32_t i, const void *data);

/* Run n tokens at the next positions (split into n_batch pieces); the last token's logits into the session's
 * buffer (dte_engine_logits). 0, or a negative DTE_E_* (DTE_E_CONTEXT when they do not fit). */
int dte_engine_eval(dte_engine *e, const int32_t *ids, int64_t n);
/* n_vocab floats: the logits of the last evaluated token. */
float *dte_engine_logits(dte_engine *e);
uint32_t dte_engine_pos(const dte_engine *e);
/* Forget the KV cache. */
void dte_engine_reset(dte_engine *e);
/* Keep only the first n positions of the KV cache (n >= pos: no change); returns the positions kept, which is
 * less than min(n, pos) (0) when a sliding-window layer's ring no longer holds what position n needs. */
uint32_t dte_engine_truncate(dte_engine *e, uint32_t n);

/* Tokenize len bytes of UTF-8: writes up to max_out ids and returns how many the text needs (may exceed max_out),
 * or -1 when out of memory. */
int64_t dte_engine_tokenize(dte_engine *e, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out);
/* The same as llama_tokenize(add_special = add_bos, parse_special): control tokens written as text become their
 * ids when parse_special. */
int64_t dte_engine_tokenize_special(dte_engine *e, const char *text, size_t len, bool add_bos, bool parse_special,
                                    int32_t *out, int64_t max_out);
/* Grow the tokenizer's workspaces so texts up to len bytes never allocate (false: out of memory). */
bool dte_engine_tokenize_reserve(dte_engine *e, size_t len);
/* Whether generation stops at this id (EOS and the vocabulary's other end-of-generation ids). */
bool dte_engine_is_eog(const dte_engine *e, int32_t id);
/* One token's text with control tokens rendered as their text (token_to_piece(special = true)). */
int32_t dte_engine_piece_special(const dte_engine *e, int32_t id, char *buf, int32_t cap);
/* One token's text (llama.cpp token_to_piece): its byte count, which may exceed cap (then cap bytes were written). */
int32_t dte_engine_piece(const dte_engine *e, int32_t id, char *buf, int32_t cap);

/* Entry i of the architecture table (general.architecture names), NULL past its end; *runs (may be NULL) says
 * whether dte runs it or refuses it with a reason (for listing what dte supports). */
const char *dte_engine_arch_name(uint32_t i, bool *runs);

#endif /* DTE_ENGINE_ENGINE_H */
