/* SentencePiece-BPE tokenizer (llama.cpp src/llama-vocab.cpp, llm_tokenizer_spm / token_to_piece). */
#include "tokenizer.h"

#include "../lib/fmt.h"
#include "platform.h"

static int fail(char *err, size_t errlen, const char *what) {
    if (err && errlen) dte_fmt(err, errlen, "tokenizer: %s", what);
    return -30;
}

static uint32_t hash_bytes(const char *p, size_t n) {
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)p[i]) * 16777619u;
    return h;
}

static bool bytes_eq(dte_str s, const char *p, size_t n) {
    if (s.len != n) return false;
    for (size_t i = 0; i < n; i++)
        if (s.ptr[i] != p[i]) return false;
    return true;
}

int32_t dte_token_lookup(const dte_tokenizer *tk, const char *text, size_t len) {
    uint32_t h = hash_bytes(text, len) & tk->slot_mask;
    while (tk->slots[h]) {
        uint32_t id = tk->slots[h] - 1;
        if (bytes_eq(tk->text[id], text, len)) return (int32_t)id;
        h = (h + 1) & tk->slot_mask;
    }
    return -1;
}

/* Insert id; a later duplicate replaces an earlier one (llama.cpp fills token_to_id in order). */
static void index_token(dte_tokenizer *tk, uint32_t id) {
    dte_str s = tk->text[id];
    uint32_t h = hash_bytes(s.ptr, (size_t)s.len) & tk->slot_mask;
    while (tk->slots[h]) {
        if (bytes_eq(tk->text[tk->slots[h] - 1], s.ptr, (size_t)s.len)) break;
        h = (h + 1) & tk->slot_mask;
    }
    tk->slots[h] = id + 1;
}

static int read_vocab(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen) {
    uint64_t n, n_scores, n_types;
    const uint8_t *tokens, *scores, *types = 0;
    if (!dte_gguf_get_arr(g, "tokenizer.ggml.tokens", DTE_GGUF_STRING, &n, &tokens))
        return fail(err, errlen, "tokenizer.ggml.tokens missing");
    if (n == 0 || n > 0x7fffffff) return fail(err, errlen, "vocabulary size out of range");
    if (!dte_gguf_get_arr(g, "tokenizer.ggml.scores", DTE_GGUF_F32, &n_scores, &scores) || n_scores != n)
        return fail(err, errlen, "tokenizer.ggml.scores missing or of the wrong length");
    if (dte_gguf_get_arr(g, "tokenizer.ggml.token_type", DTE_GGUF_I32, &n_types, &types) && n_types != n)
        return fail(err, errlen, "tokenizer.ggml.token_type has the wrong length");
    tk->n_vocab = (uint32_t)n;
    uint32_t cap = 1;
    while (cap < 2 * n) cap <<= 1;
    tk->slot_mask = cap - 1;
    tk->text = dte_alloc(n * sizeof(dte_str), 8);
    tk->score = dte_alloc(n * sizeof(float), 8);
    tk->type = dte_alloc(n, 8);
    tk->slots = dte_alloc((size_t)cap * sizeof(uint32_t), 8);
    if (!tk->text || !tk->score || !tk->type || !tk->slots) return fail(err, errlen, "out of memory");
    const uint8_t *cur = tokens;
    for (uint32_t i = 0; i < n; i++) {
        tk->text[i] = dte_gguf_next_str(&cur);
        tk->score[i] = dte_load_f32(scores + 4 * (uint64_t)i);
        tk->type[i] = types ? (uint8_t)dte_load_u32(types + 4 * (uint64_t)i) : DTE_TOK_NORMAL;
        index_token(tk, i);
    }
    return 0;
}

static int32_t special_id(const dte_gguf *g, const char *key, int32_t fallback, uint32_t n_vocab) {
    uint32_t v;
    return dte_gguf_get_u32(g, key, &v) && v < n_vocab ? (int32_t)v : fallback;
}

static void find_byte_tokens(dte_tokenizer *tk) {
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = dte_token_lookup(tk, name, 6);
        if (id < 0) { /* llama.cpp byte_to_token: fall back to the byte itself as a piece */
            char one = (char)b;
            id = dte_token_lookup(tk, &one, 1);
        }
        tk->byte_token[b] = id >= 0 ? id : tk->unk;
    }
}

int dte_tokenizer_load(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen) {
    *tk = (dte_tokenizer){0};
    dte_str model;
    if (!dte_gguf_get_str(g, "tokenizer.ggml.model", &model)) return fail(err, errlen, "tokenizer.ggml.model missing");
    if (!dte_str_eq(model, "llama")) return fail(err, errlen, "unsupported tokenizer.ggml.model (only \"llama\")");
    int rc = read_vocab(g, tk, err, errlen);
    if (rc) return rc;
    tk->bos = special_id(g, "tokenizer.ggml.bos_token_id", 1, tk->n_vocab);
    tk->eos = special_id(g, "tokenizer.ggml.eos_token_id", 2, tk->n_vocab);
    tk->unk = special_id(g, "tokenizer.ggml.unknown_token_id", 0, tk->n_vocab);
    if (!dte_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &tk->add_bos)) tk->add_bos = true;
    if (!dte_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &tk->add_space_prefix)) tk->add_space_prefix = true;
    find_byte_tokens(tk);
    return 0;
}

/* ---- tokenize ---- */

typedef struct {
    int64_t prev, next;
    uint64_t off, n;
} symbol;

typedef struct {
    int64_t left, right;
    float score;
    uint64_t size;
} bigram;

/* Max-heap order of llama.cpp's llm_bigram_spm::comparator: higher score first, then the leftmost. */
static bool before(const bigram *a, const bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

static void heap_push(bigram *heap, int64_t *n, bigram b) {
    int64_t i = (*n)++;
    while (i > 0) {
        int64_t parent = (i - 1) / 2;
        if (!before(&b, &heap[parent])) break;
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = b;
}

static bigram heap_pop(bigram *heap, int64_t *n) {
    bigram top = heap[0], last = heap[--(*n)];
    int64_t i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= *n) break;
        if (child + 1 < *n && before(&heap[child + 1], &heap[child])) child++;
        if (!before(&heap[child], &last)) break;
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) heap[i] = last;
    return top;
}

typedef struct {
    const dte_tokenizer *tk;
    const char *text;
    symbol *sym;
    bigram *heap;
    int64_t n_heap;
} spm_state;

static void try_add_bigram(spm_state *s, int64_t left, int64_t right) {
    if (left < 0 || right < 0) return;
    uint64_t off = s->sym[left].off, n = s->sym[left].n + s->sym[right].n;
    int32_t id = dte_token_lookup(s->tk, s->text + off, (size_t)n);
    if (id < 0) return;
    bigram b = {left, right, s->tk->score[id], n};
    heap_push(s->heap, &s->n_heap, b);
}

static uint64_t utf8_len(uint8_t c) {
    static const uint8_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return lookup[c >> 4];
}

static bool ensure_work(dte_tokenizer *tk, size_t need) {
    if (need <= tk->work_cap) return true;
    void *w = dte_alloc(need, 64);
    if (!w) return false;
    tk->work = w;
    tk->work_cap = need;
    return true;
}

static void emit(int32_t id, int64_t *count, int32_t *out, int64_t max_out) {
    if (*count < max_out) out[*count] = id;
    (*count)++;
}

int64_t dte_tokenize(dte_tokenizer *tk, const char *text, size_t len, bool add_bos, int32_t *out, int64_t max_out) {
    int64_t count = 0;
    if (add_bos) emit(tk->bos, &count, out, max_out);
    if (len == 0) return count;
    size_t esc_len = 3 * (len + 1);                    /* every byte may become U+2581 (3 bytes) */
    size_t n_sym = esc_len, n_big = 3 * n_sym; /* invalid UTF-8 can split escapes: <= one symbol per byte */
    if (len > ((size_t)-1) / 64) return -1;
    if (!ensure_work(tk, esc_len + 16 + n_sym * sizeof(symbol) + n_big * sizeof(bigram))) return -1;
    char *esc = tk->work;
    size_t e = 0;
    if (tk->add_space_prefix) { esc[e++] = (char)0xe2; esc[e++] = (char)0x96; esc[e++] = (char)0x81; }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') { esc[e++] = (char)0xe2; esc[e++] = (char)0x96; esc[e++] = (char)0x81; }
        else esc[e++] = text[i];
    }
    spm_state s = {tk, esc, (symbol *)((uintptr_t)(esc + esc_len + 15) & ~(uintptr_t)15), 0, 0};
    s.heap = (bigram *)(s.sym + n_sym);
    int64_t ns = 0;
    for (size_t off = 0; off < e; ns++) {
        uint64_t n = utf8_len((uint8_t)esc[off]);
        if (n > e - off) n = e - off;
        s.sym[ns] = (symbol){ns - 1, off + n == e ? -1 : ns + 1, off, n};
        off += n;
    }
    for (int64_t i = 1; i < ns; i++) try_add_bigram(&s, i - 1, i);
    while (s.n_heap > 0) {
        bigram b = heap_pop(s.heap, &s.n_heap);
        symbol *l = &s.sym[b.left], *r = &s.sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) continue; /* outdated */
        l->n += r->n;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) s.sym[r->next].prev = b.left;
        try_add_bigram(&s, l->prev, b.left);
        try_add_bigram(&s, b.left, l->next);
    }
    for (int64_t i = 0; i != -1; i = s.sym[i].next) {
        int32_t id = dte_token_lookup(tk, esc + s.sym[i].off, (size_t)s.sym[i].n);
        if (id >= 0) { emit(id, &count, out, max_out); continue; }
        for (uint64_t j = 0; j < s.sym[i].n; j++) emit(tk->byte_token[(uint8_t)esc[s.sym[i].off + j]], &count, out, max_out);
    }
    return count;
}

/* ---- detokenize ---- */

static int put(char *buf, int cap, int n, char c) {
    if (n < cap) buf[n] = c;
    return n + 1;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

int dte_token_piece(const dte_tokenizer *tk, int32_t id, char *buf, int cap) {
    if (id < 0 || (uint32_t)id >= tk->n_vocab) return 0;
    dte_str t = tk->text[id];
    int n = 0;
    switch (tk->type[id]) {
    case DTE_TOK_NORMAL:
        for (uint64_t i = 0; i < t.len; i++) { /* llama_unescape_whitespace: U+2581 -> ' ' */
            if (i + 2 < t.len && (uint8_t)t.ptr[i] == 0xe2 && (uint8_t)t.ptr[i + 1] == 0x96 && (uint8_t)t.ptr[i + 2] == 0x81) {
                n = put(buf, cap, n, ' ');
                i += 2;
            } else {
                n = put(buf, cap, n, t.ptr[i]);
            }
        }
        return n;
    case DTE_TOK_USER_DEFINED:
        for (uint64_t i = 0; i < t.len; i++) n = put(buf, cap, n, t.ptr[i]);
        return n;
    case DTE_TOK_UNKNOWN: /* U+2585, llama.cpp's rendering of <unk> */
        n = put(buf, cap, n, (char)0xe2);
        n = put(buf, cap, n, (char)0x96);
        return put(buf, cap, n, (char)0x85);
    case DTE_TOK_BYTE:
        if (t.len == 6 && t.ptr[0] == '<' && hex_value(t.ptr[3]) >= 0 && hex_value(t.ptr[4]) >= 0)
            return put(buf, cap, 0, (char)(hex_value(t.ptr[3]) * 16 + hex_value(t.ptr[4])));
        return 0;
    default: /* control and unused tokens render as nothing */
        return 0;
    }
}
