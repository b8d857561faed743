/* Unicode for the tokenizer: UTF-8 decoding the way llama.cpp's unicode_cpts_from_utf8 does it (src/unicode.cpp:
 * a malformed or truncated sequence becomes U+FFFD and consumes one byte), UTF-8 encoding, and code point flags
 * (General Category group + White_Space) from the generated tables in unicode_data.c
 * (src/dte_build/unicode_gen.py). Platform-free, no state. */
#ifndef DTE_ENGINE_UNICODE_H
#define DTE_ENGINE_UNICODE_H

#include <stddef.h>
#include <stdint.h>

enum {
    DTE_UC_UNDEFINED = 0x001,
    DTE_UC_NUMBER = 0x002,      /* \p{N} */
    DTE_UC_LETTER = 0x004,      /* \p{L} */
    DTE_UC_SEPARATOR = 0x008,   /* \p{Z} */
    DTE_UC_MARK = 0x010,        /* \p{M} */
    DTE_UC_PUNCTUATION = 0x020, /* \p{P} */
    DTE_UC_SYMBOL = 0x040,      /* \p{S} */
    DTE_UC_CONTROL = 0x080,     /* \p{C} */
    DTE_UC_WHITESPACE = 0x100,  /* \s: White_Space */
};

extern const uint32_t dte_unicode_ranges[];
extern const uint32_t dte_unicode_n_ranges;
extern const uint16_t dte_unicode_latin1[256];

/* Flags of a code point (never 0; DTE_UC_UNDEFINED above U+10FFFF). */
uint16_t dte_unicode_flags(uint32_t cpt);

/* Decode one code point at text[*pos] (len bytes in all), advancing *pos. */
uint32_t dte_utf8_decode(const uint8_t *text, size_t len, size_t *pos);

/* Encode cpt (<= U+10FFFF) into out (4 bytes room); returns the byte count. */
int dte_utf8_encode(uint32_t cpt, uint8_t *out);

/* Bytes in the UTF-8 sequence a lead byte starts (1 for continuation bytes, as llama.cpp's unicode_len_utf8). */
static inline int dte_utf8_len(uint8_t lead)
{
    return lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
}

#endif /* DTE_ENGINE_UNICODE_H */
