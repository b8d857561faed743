/* Tokenizers of llama.cpp's src/llama-vocab.cpp, one code path for the firmware and the hosted library:
 *   "llama" (SentencePiece BPE with scores, llm_tokenizer_spm): spaces become U+2581, a space is prefixed to
 *           text that starts the input or follows a special token when add_space_prefix (default true),
 *           adjacent symbols merge by highest score, unknown symbols fall back to <0xXX> byte tokens.
 *   "gpt2"  (byte-level BPE, llm_tokenizer_bpe): the pre-tokenizer tokenizer.ggml.pre names splits the text
 *           into words (tokenizer_pre.h), each word's bytes map to GPT-2's printable code points, adjacent
 *           symbols merge by the lowest rank in tokenizer.ggml.merges.
 *   "gemma4" (BPE over raw UTF-8 with U+2581 for spaces, newline runs split off).
 * Special tokens (control, user-defined, unknown) are cut out of the text first (tokenizer_st_partition):
 * user-defined ones always, control/unknown ones only when the caller asks (parse_special). End-of-generation
 * ids follow special_eog_ids. Platform-free. */
#ifndef DTE_ENGINE_TOKENIZER_H
#define DTE_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "tokenizer_pre.h"

/* GGUF tokenizer.ggml.token_type values (llama.cpp llama_token_type). */
enum {
    DTE_TOK_NORMAL = 1,
    DTE_TOK_UNKNOWN = 2,
    DTE_TOK_CONTROL = 3,
    DTE_TOK_USER_DEFINED = 4,
    DTE_TOK_UNUSED = 5,
    DTE_TOK_BYTE = 6
};

/* Token attributes (llama.cpp llama_token_attr bits). */
enum {
    DTE_ATTR_UNKNOWN = 1,
    DTE_ATTR_UNUSED = 2,
    DTE_ATTR_NORMAL = 4,
    DTE_ATTR_CONTROL = 8,
    DTE_ATTR_USER_DEFINED = 16,
    DTE_ATTR_BYTE = 32,
    DTE_ATTR_LSTRIP = 128,
    DTE_ATTR_RSTRIP = 256
};

enum { DTE_TOKENIZER_SPM = 1, DTE_TOKENIZER_BPE = 2 };

#define DTE_MAX_EOG 32

typedef struct {
    uint64_t *keys;    /* (left id << 32 | right id) + 1; 0 = empty slot */
    uint32_t *rank;
    int32_t *result;   /* id of the merged piece */
    uint32_t mask;
} dte_bpe_merges;

typedef struct {
    uint8_t kind;               /* DTE_TOKENIZER_* */
    dte_pre_tokenizer pre;      /* BPE only */
    uint32_t n_vocab;
    dte_str *text;
    float *score;
    uint16_t *attr;             /* DTE_ATTR_* */
    uint32_t *slots;            /* open-addressing hash of text -> id + 1 */
    uint32_t slot_mask;
    int32_t byte_token[256];    /* SPM / raw-UTF-8 BPE byte fallback: <0xXX> */
    int32_t byte_symbol[256];   /* byte-level BPE: the token of each byte's GPT-2 code point, or -1 */
    dte_bpe_merges merges;
    int32_t *special;           /* control, user-defined and unknown ids, longest text first */
    uint32_t n_special;
    int32_t eog[DTE_MAX_EOG];   /* end-of-generation ids */
    uint32_t n_eog;
    int32_t bos, eos, unk, eot, eom;   /* -1: none */
    bool add_bos, add_eos, add_space_prefix;
    /* tokenize workspaces, grown on demand */
    void *work, *word_work, *frag_work;
    size_t work_cap, word_work_cap, frag_work_cap;
} dte_tokenizer;

/* Read tokenizer.ggml.* from the GGUF. Returns 0 or negative with a one-line message. */
int dte_tokenizer_load(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen);

/* Tokenize len bytes of UTF-8 as llama_tokenize(text, add_special = add_bos, parse_special). Writes up to max_out
 * ids; returns the number of ids the text needs (which may exceed max_out: call again with a bigger buffer), or
 * -1 when out of memory. add_bos also adds EOS where the model asks for it (add_eos_token). */
int64_t dte_tokenize_special(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, bool parse_special,
                             int32_t *out, int64_t max_out);
/* Grow every workspace to what a text of len bytes can need, so later calls up to len bytes never allocate
 * (the appliance does this once at boot). false when out of memory. */
bool dte_tokenizer_reserve(dte_tokenizer *tk, size_t len);
/* The same without special-token parsing (control tokens' text stays text). */
int64_t dte_tokenize(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out);

/* The UTF-8 bytes of one token as llama.cpp's token_to_piece(special = false): control and unknown tokens
 * render as nothing. Returns the byte count (which may exceed cap: then only cap bytes were written). */
int dte_token_piece(const dte_tokenizer *tk, int32_t id, char *buf, int cap);
/* The same with special = true: control tokens render as their text. */
int dte_token_piece_special(const dte_tokenizer *tk, int32_t id, char *buf, int cap);

/* Id of a piece given as text, or -1. */
int32_t dte_token_lookup(const dte_tokenizer *tk, const char *text, size_t len);

/* Does generation stop at this token (EOS, EOT, EOM, <|im_end|>-style end-of-turn tokens)? */
bool dte_token_is_eog(const dte_tokenizer *tk, int32_t id);

/* Streaming UTF-8: pieces go in, complete UTF-8 comes out; an incomplete multi-byte sequence at the end of a
 * piece waits for the next one. */
typedef struct {
    uint8_t held[4];
    uint8_t n_held;
} dte_utf8_stream;

/* Append piece to the held bytes and write into out (room: len + 4) everything up to the last complete
 * character; returns the byte count written. A sequence that can never complete is passed through as is. */
int dte_utf8_stream_push(dte_utf8_stream *s, const char *piece, int len, char *out);
/* Whatever is still held (an incomplete sequence at the end of the stream), into out (room 4). */
int dte_utf8_stream_flush(dte_utf8_stream *s, char *out);

/* Internal to the tokenizer files. */
int64_t dte_spm_fragment(dte_tokenizer *tk, const char *text, size_t len, bool prefix_space, int32_t *out,
                         int64_t max_out, int64_t count);
int64_t dte_bpe_fragment(dte_tokenizer *tk, const char *text, size_t len, int32_t *out, int64_t max_out, int64_t count);
int dte_bpe_load_merges(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen);
bool dte_merge_reserve(dte_tokenizer *tk, size_t len);
void *dte_tokenizer_scratch(void **buf, size_t *cap, size_t need);

#endif /* DTE_ENGINE_TOKENIZER_H */
