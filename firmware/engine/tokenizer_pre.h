/* BPE pre-tokenizers: split text (as code points) into the words BPE merges within, the way llama.cpp's
 * unicode_regex_split does for each tokenizer.ggml.pre (src/llama-vocab.cpp llm_tokenizer_bpe, src/unicode.cpp).
 * No regex engine: each pre-tokenizer is a chain of hand-written stages, each applied inside every piece the
 * previous stage made. Stages are llama.cpp's custom splitters (gpt2, llama3/qwen2/qwen35, newlines) and exact
 * emulations of the std::regex patterns the other pre-tokenizers use (ECMAScript leftmost-first matching, text
 * between matches kept as its own piece). Platform-free, no state. */
#ifndef DTE_ENGINE_TOKENIZER_PRE_H
#define DTE_ENGINE_TOKENIZER_PRE_H

#include <stddef.h>
#include <stdint.h>

#define DTE_PRE_MAX_STAGES 6

enum {
    DTE_PRE_IGNORE_MERGES = 1, /* a word that is a whole token is that token (llama.cpp ignore_merges) */
    DTE_PRE_ADD_BOS = 2,       /* add_bos defaults to true */
    DTE_PRE_RAW_UTF8 = 4,      /* no GPT-2 byte encoding; spaces become U+2581 (Gemma 4) */
    DTE_PRE_NO_BOS_ID = 8,     /* no default BOS id (GLM) */
};

typedef struct {
    uint8_t flags;
    uint8_t n_stages;
    uint8_t stage[DTE_PRE_MAX_STAGES];
} dte_pre_tokenizer;

/* The pre-tokenizer tokenizer.ggml.pre names (len bytes; NULL: absent, llama.cpp's "default"). 0, or -1 when
 * dte does not know the name. */
int dte_pre_lookup(const char *name, size_t len, dte_pre_tokenizer *out);

/* Names dte accepts, comma-separated, for error hints. */
const char *dte_pre_names(void);

/* Split cpt[0..n) (flags[i] = dte_unicode_flags(cpt[i])) into words: their lengths in code points go to
 * words (room for n entries; scratch also n entries). Returns the number of words. */
size_t dte_pre_split(const dte_pre_tokenizer *pre, const uint32_t *cpt, const uint16_t *flags, size_t n,
                     uint32_t *words, uint32_t *scratch);

#endif /* DTE_ENGINE_TOKENIZER_PRE_H */
