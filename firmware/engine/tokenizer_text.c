/* Text in and out of the tokenizer: llama_vocab::impl::tokenize (special tokens cut out first by
 * tokenizer_st_partition, then each text fragment through SPM or BPE, BOS/EOS as the model asks), token_to_piece,
 * and a streaming UTF-8 joiner for pieces (llama.cpp src/llama-vocab.cpp). */
#include "tokenizer.h"

#include "runtime/platform.h"
#include "unicode.h"

typedef struct {
    uint32_t off, len;
    int32_t id; /* -1: raw text */
} fragment;

static bool c_isspace(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool active(const dte_tokenizer *tk, int32_t id, bool parse_special)
{
    return parse_special || !(tk->attr[id] & (DTE_ATTR_CONTROL | DTE_ATTR_UNKNOWN));
}

/* Next occurrence of needle in text[from, end), or end. */
static uint32_t find(const char *text, uint32_t from, uint32_t end, dte_str needle)
{
    uint32_t n = (uint32_t)needle.len;
    char first = needle.ptr[0];
    for (uint32_t i = from; i + n <= end; i++) {
        if (text[i] != first) {
            continue;
        }
        uint32_t k = 1;
        while (k < n && text[i + k] == needle.ptr[k]) {
            k++;
        }
        if (k == n) {
            return i;
        }
    }
    return end;
}

/* Cut every occurrence of one special token out of the raw fragments of in[0..n) into out; returns the count. */
static uint32_t cut_token(const dte_tokenizer *tk, int32_t id, const char *text, const fragment *in, uint32_t n,
                          fragment *out)
{
    dte_str t = tk->text[id];
    uint16_t attr = tk->attr[id];
    uint32_t m = 0;
    for (uint32_t f = 0; f < n; f++) {
        if (in[f].id >= 0) {
            out[m++] = in[f];
            continue;
        }
        uint32_t off = in[f].off, end = in[f].off + in[f].len;
        while (off < end) {
            uint32_t at = find(text, off, end, t);
            if (at == end) {
                out[m++] = (fragment){off, end - off, -1};
                break;
            }
            uint32_t left = at;
            if (attr & DTE_ATTR_LSTRIP) {
                while (left > off && c_isspace(text[left - 1])) {
                    left--;
                }
            }
            if (left > off) {
                out[m++] = (fragment){off, left - off, -1};
            }
            out[m++] = (fragment){at, (uint32_t)t.len, id};
            off = at + (uint32_t)t.len;
            if (attr & DTE_ATTR_RSTRIP) {
                while (off < end && c_isspace(text[off])) {
                    off++;
                }
            }
        }
    }
    return m;
}

static size_t frag_need(uint32_t len)
{
    return 2 * (size_t)(2 * len + 3) * sizeof(fragment);
}

bool dte_tokenizer_reserve(dte_tokenizer *tk, size_t len)
{
    return len <= (1u << 28) && dte_tokenizer_scratch(&tk->frag_work, &tk->frag_work_cap, frag_need((uint32_t)len)) &&
           dte_merge_reserve(tk, len);
}

/* The fragments of text: raw pieces and special tokens (*whole, the caller's, when there are none). Returns the
 * count, or -1 when out of memory. */
static int64_t partition(dte_tokenizer *tk, const char *text, uint32_t len, bool parse_special, fragment *whole,
                         fragment **result)
{
    *whole = (fragment){0, len, -1};
    fragment *a = whole, *b = 0;
    uint32_t n = len > 0;
    for (uint32_t s = 0; s < tk->n_special; s++) {
        int32_t id = tk->special[s];
        if (!active(tk, id, parse_special) || tk->text[id].len > len) {
            continue;
        }
        bool present = false;
        for (uint32_t f = 0; f < n && !present; f++) {
            present = a[f].id < 0 && find(text, a[f].off, a[f].off + a[f].len, tk->text[id]) < a[f].off + a[f].len;
        }
        if (!present) {
            continue;
        }
        if (!b) { /* the first special token in the text: room for every split (at most one raw + one token per byte) */
            uint32_t cap = 2 * len + 3;
            fragment *w = dte_tokenizer_scratch(&tk->frag_work, &tk->frag_work_cap, frag_need(len));
            if (!w) {
                return -1;
            }
            w[0] = *whole;
            a = w;
            b = w + cap;
        }
        n = cut_token(tk, id, text, a, n, b);
        fragment *t = a;
        a = b;
        b = t;
    }
    *result = a;
    return n;
}

static int64_t emit(int32_t id, int64_t count, int32_t *out, int64_t max_out)
{
    if (count < max_out) {
        out[count] = id;
    }
    return count + 1;
}

int64_t dte_tokenize_special(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, bool parse_special,
                             int32_t *out, int64_t max_out)
{
    if (len > (1u << 28)) {
        return -1;
    }
    fragment whole, *frag;
    int64_t n_frag = partition(tk, text, (uint32_t)len, parse_special, &whole, &frag);
    if (n_frag < 0) {
        return -1;
    }
    int64_t count = 0;
    if (add_bos && tk->add_bos) {
        count = emit(tk->bos, count, out, max_out);
    }
    bool prev_special = true; /* SPM: a space prefix before text that starts the input or follows a special token */
    for (int64_t f = 0; f < n_frag; f++) {
        if (frag[f].id >= 0) {
            count = emit(frag[f].id, count, out, max_out);
            prev_special = true;
            continue;
        }
        const char *t = text + frag[f].off;
        if (tk->kind == DTE_TOKENIZER_SPM) {
            count = dte_spm_fragment(tk, t, frag[f].len, tk->add_space_prefix && prev_special, out, max_out, count);
        } else {
            count = dte_bpe_fragment(tk, t, frag[f].len, out, max_out, count);
        }
        if (count < 0) {
            return -1;
        }
        prev_special = false;
    }
    if (add_bos && tk->add_eos) {
        count = emit(tk->eos, count, out, max_out);
    }
    return count;
}

int64_t dte_tokenize(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out)
{
    return dte_tokenize_special(tk, text, len, add_bos, false, out, max_out);
}

/* ---- detokenize ---- */

static int put(char *buf, int cap, int n, char c)
{
    if (n < cap) {
        buf[n] = c;
    }
    return n + 1;
}

static int put_text(char *buf, int cap, int n, dte_str t)
{
    for (uint64_t i = 0; i < t.len; i++) {
        n = put(buf, cap, n, t.ptr[i]);
    }
    return n;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* U+2581 -> ' ' (llama_unescape_whitespace). */
static int put_unescaped(char *buf, int cap, int n, dte_str t)
{
    for (uint64_t i = 0; i < t.len; i++) {
        if (i + 2 < t.len && (uint8_t)t.ptr[i] == 0xe2 && (uint8_t)t.ptr[i + 1] == 0x96 &&
            (uint8_t)t.ptr[i + 2] == 0x81) {
            n = put(buf, cap, n, ' ');
            i += 2;
        } else {
            n = put(buf, cap, n, t.ptr[i]);
        }
    }
    return n;
}

/* GPT-2 code points back to bytes (llama_decode_text). */
static int put_decoded(char *buf, int cap, int n, dte_str t)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t pos = 0; pos < t.len;) {
        size_t start = pos;
        uint32_t c = dte_utf8_decode((const uint8_t *)t.ptr, (size_t)t.len, &pos);
        int byte = -1;
        if ((c >= 0x21 && c <= 0x7e) || (c >= 0xa1 && c <= 0xac) || (c >= 0xae && c <= 0xff)) {
            byte = (int)c;
        } else if (c >= 256 && c < 256 + 68) { /* the 68 remapped bytes, in order */
            int k = (int)c - 256;
            for (int b = 0; b < 256 && byte < 0; b++) {
                if (!((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae) && k-- == 0) {
                    byte = b;
                }
            }
        }
        if (byte >= 0) {
            n = put(buf, cap, n, (char)byte);
            continue;
        }
        const char *tag = "[UNK_BYTE_0x";
        while (*tag) {
            n = put(buf, cap, n, *tag++);
        }
        uint8_t u[4];
        int k = dte_utf8_encode(c, u);
        for (int j = 0; j < k; j++) {
            n = put(buf, cap, n, hex[u[j] >> 4]), n = put(buf, cap, n, hex[u[j] & 15]);
        }
        n = put_text(buf, cap, n, t);
        n = put(buf, cap, n, ']');
        (void)start;
    }
    return n;
}

static int piece(const dte_tokenizer *tk, int32_t id, char *buf, int cap, bool special)
{
    if (id < 0 || (uint32_t)id >= tk->n_vocab) {
        return 0;
    }
    uint16_t attr = tk->attr[id];
    dte_str t = tk->text[id];
    if (!special && (attr & (DTE_ATTR_UNKNOWN | DTE_ATTR_CONTROL))) {
        return 0;
    }
    if (attr & (DTE_ATTR_UNKNOWN | DTE_ATTR_CONTROL | DTE_ATTR_USER_DEFINED)) {
        return put_text(buf, cap, 0, t);
    }
    if (attr & DTE_ATTR_NORMAL) {
        if (tk->kind == DTE_TOKENIZER_SPM || (tk->pre.flags & DTE_PRE_RAW_UTF8)) {
            return put_unescaped(buf, cap, 0, t);
        }
        return put_decoded(buf, cap, 0, t);
    }
    if ((attr & DTE_ATTR_BYTE) && t.len >= 5 && hex_value(t.ptr[3]) >= 0 && hex_value(t.ptr[4]) >= 0) {
        return put(buf, cap, 0, (char)(hex_value(t.ptr[3]) * 16 + hex_value(t.ptr[4])));
    }
    return 0;
}

int dte_token_piece(const dte_tokenizer *tk, int32_t id, char *buf, int cap)
{
    return piece(tk, id, buf, cap, false);
}

int dte_token_piece_special(const dte_tokenizer *tk, int32_t id, char *buf, int cap)
{
    return piece(tk, id, buf, cap, true);
}

/* ---- streaming UTF-8 ---- */

int dte_utf8_stream_push(dte_utf8_stream *s, const char *piece_text, int len, char *out)
{
    int n = 0;
    for (int i = 0; i < s->n_held; i++) {
        out[n++] = (char)s->held[i];
    }
    for (int i = 0; i < len; i++) {
        out[n++] = piece_text[i];
    }
    s->n_held = 0;
    /* The last lead byte among the final 3: hold it and its continuations when the sequence is not complete. */
    for (int back = 1; back <= 3 && back <= n; back++) {
        uint8_t c = (uint8_t)out[n - back];
        if ((c & 0xc0) == 0x80) {
            continue;
        }
        if (c >= 0xc0 && c < 0xf8 && dte_utf8_len(c) > back) {
            for (int i = 0; i < back; i++) {
                s->held[i] = (uint8_t)out[n - back + i];
            }
            s->n_held = (uint8_t)back;
            n -= back;
        }
        break;
    }
    return n;
}

int dte_utf8_stream_flush(dte_utf8_stream *s, char *out)
{
    int n = s->n_held;
    for (int i = 0; i < n; i++) {
        out[i] = (char)s->held[i];
    }
    s->n_held = 0;
    return n;
}
