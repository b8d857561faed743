/* UTF-8 and code point flags for the tokenizer (see unicode.h; llama.cpp src/unicode.cpp
 * unicode_cpt_from_utf8, unicode_cpt_to_utf8, unicode_cpt_flags_from_cpt). */
#include "unicode.h"

#define FLAG_BITS 9
#define MAX_CODEPOINT 0x110000u

uint16_t dte_unicode_flags(uint32_t cpt)
{
    if (cpt < 256) {
        return dte_unicode_latin1[cpt];
    }
    if (cpt >= MAX_CODEPOINT) {
        return DTE_UC_UNDEFINED; /* as llama.cpp past its table */
    }
    uint32_t lo = 0, hi = dte_unicode_n_ranges; /* last entry with start <= cpt */
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if ((dte_unicode_ranges[mid] >> FLAG_BITS) <= cpt) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return (uint16_t)(dte_unicode_ranges[lo] & ((1u << FLAG_BITS) - 1));
}

static int continuation(const uint8_t *text, size_t len, size_t at)
{
    return at < len && (text[at] & 0xc0) == 0x80;
}

uint32_t dte_utf8_decode(const uint8_t *text, size_t len, size_t *pos)
{
    size_t p = *pos;
    uint8_t c = text[p];
    if (c < 0x80) {
        *pos = p + 1;
        return c;
    }
    /* Like llama.cpp: the lead byte's pattern picks the length; only the continuation bytes are checked
     * (overlong forms and surrogates pass through). */
    int n = (c & 0x40) == 0 ? 0 : (c & 0x20) == 0 ? 2 : (c & 0x10) == 0 ? 3 : (c & 0x08) == 0 ? 4 : 0;
    for (int i = 1; i < n; i++) {
        if (!continuation(text, len, p + (size_t)i)) {
            n = 0;
        }
    }
    if (n == 0) {
        *pos = p + 1;
        return 0xfffd;
    }
    uint32_t cpt = n == 2 ? (c & 0x1fu) : n == 3 ? (c & 0x0fu) : (c & 0x07u);
    for (int i = 1; i < n; i++) {
        cpt = (cpt << 6) | (text[p + (size_t)i] & 0x3fu);
    }
    *pos = p + (size_t)n;
    return cpt;
}

int dte_utf8_encode(uint32_t cpt, uint8_t *out)
{
    if (cpt < 0x80) {
        out[0] = (uint8_t)cpt;
        return 1;
    }
    if (cpt < 0x800) {
        out[0] = (uint8_t)(0xc0 | (cpt >> 6));
        out[1] = (uint8_t)(0x80 | (cpt & 0x3f));
        return 2;
    }
    if (cpt < 0x10000) {
        out[0] = (uint8_t)(0xe0 | (cpt >> 12));
        out[1] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3f));
        out[2] = (uint8_t)(0x80 | (cpt & 0x3f));
        return 3;
    }
    out[0] = (uint8_t)(0xf0 | (cpt >> 18));
    out[1] = (uint8_t)(0x80 | ((cpt >> 12) & 0x3f));
    out[2] = (uint8_t)(0x80 | ((cpt >> 6) & 0x3f));
    out[3] = (uint8_t)(0x80 | (cpt & 0x3f));
    return 4;
}
