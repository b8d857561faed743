/* Tokenizer "llama": SentencePiece BPE with scores, as llama.cpp's llm_tokenizer_spm (src/llama-vocab.cpp):
 * spaces become U+2581, a space is prefixed when add_space_prefix (default true), adjacent symbols merge by the
 * highest score (ties: leftmost), symbols left without a vocabulary entry fall back to <0xXX> byte tokens.
 * Platform-free.
 */
#ifndef DTE_ENGINE_TOKENIZER_H
#define DTE_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

/* GGUF tokenizer.ggml.token_type values (llama.cpp llama_token_type). */
enum { DTE_TOK_NORMAL = 1, DTE_TOK_UNKNOWN = 2, DTE_TOK_CONTROL = 3, DTE_TOK_USER_DEFINED = 4, DTE_TOK_UNUSED = 5,
       DTE_TOK_BYTE = 6 };

typedef struct {
    uint32_t n_vocab;
    dte_str *text;
    float *score;
    uint8_t *type;
    uint32_t *slots; /* open-addressing hash of text -> id + 1 */
    uint32_t slot_mask;
    int32_t byte_token[256];
    int32_t bos, eos, unk;
    bool add_bos, add_space_prefix;
    /* tokenize workspace, grown on demand */
    void *work;
    size_t work_cap;
} dte_tokenizer;

/* Read tokenizer.ggml.* from the GGUF (model must be "llama"). Returns 0 or negative with a message. */
int dte_tokenizer_load(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen);

/* Tokenize len bytes of UTF-8. Writes up to max_out ids; returns the number of ids the text needs (which may
 * exceed max_out: call again with a bigger buffer), or -1 when out of memory. */
int64_t dte_tokenize(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out);

/* The UTF-8 bytes of one token as llama.cpp's token_to_piece (special tokens render as nothing). Returns the
 * byte count (which may exceed cap: then only cap bytes were written). */
int dte_token_piece(const dte_tokenizer *tk, int32_t id, char *buf, int cap);

/* Id of a piece given as text, or -1. */
int32_t dte_token_lookup(const dte_tokenizer *tk, const char *text, size_t len);

#endif /* DTE_ENGINE_TOKENIZER_H */
