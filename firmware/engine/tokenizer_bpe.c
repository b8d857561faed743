/* Merging tokenizers over one text fragment: SentencePiece (llama.cpp src/llama-vocab.cpp llm_tokenizer_spm_session:
 * merge the adjacent pair whose joined text is the highest-scoring token) and byte-level BPE
 * (llm_tokenizer_bpe_session: pre-tokenize, then within each word merge the adjacent pair with the lowest rank in
 * tokenizer.ggml.merges). Both take the best pair from a heap, ties to the leftmost, and skip pairs that went stale.
 * BPE symbols carry token ids: a merge table keyed by (left id, right id) gives the rank and the merged id, so a
 * word never needs string hashing (every merge must name vocabulary pieces, checked at load). */
#include "tokenizer.h"

#include "errors.h"
#include "lib/fmt.h"
#include "runtime/platform.h"
#include "unicode.h"

/* ---- workspace ---- */

void *dte_tokenizer_scratch(void **buf, size_t *cap, size_t need)
{
    if (need <= *cap) {
        return *buf;
    }
    size_t grow = *cap * 2 > need ? *cap * 2 : need;
    void *w = dte_alloc(grow, 64);
    if (!w) {
        return 0;
    }
    *buf = w;
    *cap = grow;
    return w;
}

/* ---- heap of candidate pairs ---- */

typedef struct {
    int32_t prev, next;
    uint32_t off, n; /* bytes of the fragment / encoded word */
    int32_t id;      /* BPE: the symbol's token (-1: a byte with no token) */
} symbol;

typedef struct {
    int32_t left, right;
    float key;       /* higher first: SPM score, BPE -rank */
    uint32_t size;   /* bytes of both symbols when queued: stale when they changed */
    int32_t result;  /* BPE: merged token */
} pair;

static bool before(const pair *a, const pair *b)
{
    return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(pair *heap, uint32_t *n, pair b)
{
    uint32_t i = (*n)++;
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (!before(&b, &heap[parent])) {
            break;
        }
        heap[i] = heap[parent];
        i = parent;
    }
    heap[i] = b;
}

static pair heap_pop(pair *heap, uint32_t *n)
{
    pair top = heap[0], last = heap[--(*n)];
    uint32_t i = 0;
    for (;;) {
        uint32_t child = 2 * i + 1;
        if (child >= *n) {
            break;
        }
        if (child + 1 < *n && before(&heap[child + 1], &heap[child])) {
            child++;
        }
        if (!before(&heap[child], &last)) {
            break;
        }
        heap[i] = heap[child];
        i = child;
    }
    if (*n > 0) {
        heap[i] = last;
    }
    return top;
}

typedef struct {
    dte_tokenizer *tk;
    const char *text;
    symbol *sym;
    pair *heap;
    uint32_t n_heap;
} merger;

static int64_t emit(int32_t id, int64_t count, int32_t *out, int64_t max_out)
{
    if (count < max_out) {
        out[count] = id;
    }
    return count + 1;
}

/* Merge until no candidate is left; the symbols stay linked from index 0. */
static void run_merges(merger *m, void (*add)(merger *, int32_t, int32_t))
{
    while (m->n_heap > 0) {
        pair b = heap_pop(m->heap, &m->n_heap);
        symbol *l = &m->sym[b.left], *r = &m->sym[b.right];
        if (l->n == 0 || r->n == 0 || l->n + r->n != b.size) {
            continue; /* stale */
        }
        l->n += r->n;
        l->id = b.result;
        r->n = 0;
        l->next = r->next;
        if (r->next >= 0) {
            m->sym[r->next].prev = b.left;
        }
        add(m, l->prev, b.left);
        add(m, b.left, l->next);
    }
}

/* ---- SentencePiece ---- */

static void spm_add(merger *m, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return;
    }
    uint32_t off = m->sym[left].off, n = m->sym[left].n + m->sym[right].n;
    int32_t id = dte_token_lookup(m->tk, m->text + off, n);
    if (id < 0) {
        return;
    }
    heap_push(m->heap, &m->n_heap, (pair){left, right, m->tk->score[id], n, id});
}

static uint32_t split_chars(symbol *sym, const char *text, uint32_t n)
{
    uint32_t ns = 0;
    for (uint32_t off = 0; off < n; ns++) {
        uint32_t k = (uint32_t)dte_utf8_len((uint8_t)text[off]);
        if (k > n - off) {
            k = n - off;
        }
        sym[ns] = (symbol){(int32_t)ns - 1, off + k == n ? -1 : (int32_t)ns + 1, off, k, -1};
        off += k;
    }
    return ns;
}

/* Workspace sizes: SPM for a fragment of len bytes; BPE per text (len bytes) and per word (longest code points). */
static size_t spm_need(size_t len)
{
    size_t esc_len = 3 * (len + 1), n_sym = esc_len;
    return esc_len + 64 + n_sym * sizeof(symbol) + 3 * n_sym * sizeof(pair);
}
static size_t bpe_text_need(size_t len)
{
    return (len + 1) * (4 + 2 + 4 + 4) + 256;
}
static size_t bpe_word_need(size_t longest)
{
    size_t n_sym = 4 * longest + 1;
    return 8 * longest + 128 + n_sym * sizeof(symbol) + 3 * n_sym * sizeof(pair);
}

bool dte_merge_reserve(dte_tokenizer *tk, size_t len)
{
    if (tk->kind == DTE_TOKENIZER_SPM) {
        return dte_tokenizer_scratch(&tk->word_work, &tk->word_work_cap, spm_need(len));
    }
    return dte_tokenizer_scratch(&tk->work, &tk->work_cap, bpe_text_need(len)) &&
           dte_tokenizer_scratch(&tk->word_work, &tk->word_work_cap, bpe_word_need(len));
}

int64_t dte_spm_fragment(dte_tokenizer *tk, const char *text, size_t len, bool prefix_space, int32_t *out,
                         int64_t max_out, int64_t count)
{
    if (len > (1u << 28)) {
        return -1;
    }
    size_t esc_len = 3 * (len + 1), n_sym = esc_len;
    char *esc = dte_tokenizer_scratch(&tk->word_work, &tk->word_work_cap, spm_need(len));
    if (!esc) {
        return -1;
    }
    uint32_t e = 0;
    for (size_t i = 0; i < len + prefix_space; i++) {
        char c = prefix_space ? (i == 0 ? ' ' : text[i - 1]) : text[i];
        if (c == ' ') {
            esc[e++] = (char)0xe2;
            esc[e++] = (char)0x96;
            esc[e++] = (char)0x81;
        } else {
            esc[e++] = c;
        }
    }
    if (e == 0) {
        return count;
    }
    merger m = {tk, esc, (symbol *)(((uintptr_t)(esc + esc_len) + 63) & ~(uintptr_t)63), 0, 0};
    m.heap = (pair *)(m.sym + n_sym);
    uint32_t ns = split_chars(m.sym, esc, e);
    for (uint32_t i = 1; i < ns; i++) {
        spm_add(&m, (int32_t)i - 1, (int32_t)i);
    }
    run_merges(&m, spm_add);
    for (int32_t i = 0; i != -1; i = m.sym[i].next) {
        int32_t id = dte_token_lookup(tk, esc + m.sym[i].off, m.sym[i].n);
        if (id >= 0) {
            count = emit(id, count, out, max_out);
            continue;
        }
        for (uint32_t j = 0; j < m.sym[i].n; j++) {
            count = emit(tk->byte_token[(uint8_t)esc[m.sym[i].off + j]], count, out, max_out);
        }
    }
    return count;
}

/* ---- byte-level BPE: merges ---- */

static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return k;
}

static int32_t merge_find(const dte_bpe_merges *mg, int32_t a, int32_t b, uint32_t *rank)
{
    if (!mg->keys) {
        return -1;
    }
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    for (uint32_t h = (uint32_t)mix64(key) & mg->mask; mg->keys[h]; h = (h + 1) & mg->mask) {
        if (mg->keys[h] == key) {
            *rank = mg->rank[h];
            return mg->result[h];
        }
    }
    return -1;
}

/* The GPT-2 byte-to-code-point map (bytes_to_unicode): printable Latin-1 bytes stand for themselves, the others
 * for U+0100 upwards in byte order. */
static uint32_t gpt2_codepoint(int byte)
{
    bool self = (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae);
    if (self) {
        return (uint32_t)byte;
    }
    uint32_t n = 0;
    for (int b = 0; b < byte; b++) {
        n += !((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae));
    }
    return 256 + n;
}

static int32_t lookup_pair(const dte_tokenizer *tk, const char *a, size_t na, const char *b, size_t nb, char *buf)
{
    for (size_t i = 0; i < na; i++) {
        buf[i] = a[i];
    }
    for (size_t i = 0; i < nb; i++) {
        buf[na + i] = b[i];
    }
    return dte_token_lookup(tk, buf, na + nb);
}

static int merge_error(char *err, size_t errlen, uint64_t i, const char *what)
{
    if (err && errlen) {
        dte_fmt(err, errlen, "tokenizer: merge %llu of tokenizer.ggml.merges %s", (unsigned long long)i, what);
    }
    return DTE_E_TOKENIZER;
}

int dte_bpe_load_merges(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen)
{
    uint64_t n;
    const uint8_t *data;
    if (!dte_gguf_get_arr(g, "tokenizer.ggml.merges", DTE_GGUF_STRING, &n, &data)) {
        if (err && errlen) {
            dte_fmt(err, errlen, "tokenizer: tokenizer.ggml.merges missing (a BPE vocabulary needs it)");
        }
        return DTE_E_TOKENIZER;
    }
    if (n > 0x3fffffff) {
        return merge_error(err, errlen, n, "count is out of range");
    }
    for (int b = 0; b < 256; b++) {
        uint8_t enc[4];
        int k = dte_utf8_encode(gpt2_codepoint(b), enc);
        tk->byte_symbol[b] = dte_token_lookup(tk, (const char *)enc, (size_t)k);
    }
    dte_bpe_merges *mg = &tk->merges;
    uint32_t cap = 16;
    while (cap < n + n / 4) {
        cap <<= 1; /* load <= 0.8: Llama 3's 280k merges take 8 MiB */
    }
    mg->mask = cap - 1;
    mg->keys = dte_alloc((size_t)cap * sizeof(uint64_t), 64);
    mg->rank = dte_alloc((size_t)cap * sizeof(uint32_t), 64);
    mg->result = dte_alloc((size_t)cap * sizeof(int32_t), 64);
    char *buf = 0;
    size_t buf_cap = 0;
    if (!mg->keys || !mg->rank || !mg->result) {
        return merge_error(err, errlen, 0, "table: out of memory");
    }
    for (uint32_t i = 0; i < cap; i++) {
        mg->keys[i] = 0;
    }
    const uint8_t *cur = data;
    for (uint64_t i = 0; i < n; i++) {
        dte_str s = dte_gguf_next_str(&cur);
        uint64_t sp = 1;
        while (sp < s.len && s.ptr[sp] != ' ') {
            sp++;
        }
        if (sp >= s.len) {
            return merge_error(err, errlen, i, "is not two pieces separated by a space");
        }
        int32_t a = dte_token_lookup(tk, s.ptr, (size_t)sp),
                b = dte_token_lookup(tk, s.ptr + sp + 1, (size_t)(s.len - sp - 1));
        if (a < 0 || b < 0) {
            return merge_error(err, errlen, i, "names a piece that is not in the vocabulary");
        }
        if (!(buf = dte_tokenizer_scratch((void **)&buf, &buf_cap, (size_t)s.len))) {
            return merge_error(err, errlen, i, ": out of memory");
        }
        int32_t r = lookup_pair(tk, s.ptr, (size_t)sp, s.ptr + sp + 1, (size_t)(s.len - sp - 1), buf);
        if (r < 0) {
            return merge_error(err, errlen, i, "makes a piece that is not in the vocabulary");
        }
        uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
        uint32_t h = (uint32_t)mix64(key) & mg->mask;
        while (mg->keys[h] && mg->keys[h] != key) {
            h = (h + 1) & mg->mask;
        }
        if (mg->keys[h]) {
            continue; /* a repeated pair keeps its first rank (llama.cpp emplace) */
        }
        mg->keys[h] = key;
        mg->rank[h] = (uint32_t)i;
        mg->result[h] = r;
    }
    return 0;
}

/* ---- byte-level BPE: one fragment ---- */

static void bpe_add(merger *m, int32_t left, int32_t right)
{
    if (left < 0 || right < 0) {
        return;
    }
    uint32_t rank;
    int32_t r = merge_find(&m->tk->merges, m->sym[left].id, m->sym[right].id, &rank);
    if (r < 0) {
        return;
    }
    heap_push(m->heap, &m->n_heap, (pair){left, right, -(float)rank, m->sym[left].n + m->sym[right].n, r});
}

typedef struct {
    uint32_t *cpt;
    uint16_t *flags;
    uint32_t *words, *scratch;
} text_work;

/* Encode one word (code points) into m->text: GPT-2 code points per byte, or raw UTF-8 with U+2581 for spaces;
 * one symbol per encoded character. Returns the symbol count. */
static uint32_t encode_word(merger *m, const uint32_t *cpt, uint32_t n, bool raw, uint32_t *bytes)
{
    char *out = (char *)m->text;
    uint32_t e = 0, ns = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint8_t u[4];
        int k = raw && cpt[i] == ' ' ? dte_utf8_encode(0x2581, u) : dte_utf8_encode(cpt[i], u);
        if (raw) {
            for (int j = 0; j < k; j++) {
                out[e + (uint32_t)j] = (char)u[j];
            }
            m->sym[ns] =
                (symbol){(int32_t)ns - 1, (int32_t)ns + 1, e, (uint32_t)k, dte_token_lookup(m->tk, out + e, (size_t)k)};
            e += (uint32_t)k, ns++;
            continue;
        }
        for (int j = 0; j < k; j++) {
            uint8_t enc[4];
            int ke = dte_utf8_encode(gpt2_codepoint(u[j]), enc);
            for (int q = 0; q < ke; q++) {
                out[e + (uint32_t)q] = (char)enc[q];
            }
            m->sym[ns] = (symbol){(int32_t)ns - 1, (int32_t)ns + 1, e, (uint32_t)ke, m->tk->byte_symbol[u[j]]};
            e += (uint32_t)ke, ns++;
        }
    }
    if (ns) {
        m->sym[ns - 1].next = -1;
    }
    *bytes = e;
    return ns;
}

static int64_t emit_symbol(merger *m, const symbol *s, bool raw, int32_t *out, int64_t max_out, int64_t count)
{
    if (s->id >= 0) {
        return emit(s->id, count, out, max_out);
    }
    for (uint32_t j = 0; j < s->n; j++) { /* llama.cpp: look each byte of the symbol's text up */
        uint8_t c = (uint8_t)m->text[s->off + j];
        int32_t id = raw ? m->tk->byte_token[c] : dte_token_lookup(m->tk, m->text + s->off + j, 1);
        if (id >= 0) {
            count = emit(id, count, out, max_out);
        }
    }
    return count;
}

static int64_t bpe_word(merger *m, const uint32_t *cpt, uint32_t n, int32_t *out, int64_t max_out, int64_t count)
{
    const dte_tokenizer *tk = m->tk;
    bool raw = (tk->pre.flags & DTE_PRE_RAW_UTF8) != 0;
    uint32_t bytes;
    uint32_t ns = encode_word(m, cpt, n, raw, &bytes);
    bool all_newlines = raw;
    for (uint32_t i = 0; i < n && all_newlines; i++) {
        all_newlines = cpt[i] == '\n';
    }
    if ((tk->pre.flags & DTE_PRE_IGNORE_MERGES) || all_newlines) {
        int32_t whole = dte_token_lookup(tk, m->text, bytes);
        if (whole >= 0) {
            return emit(whole, count, out, max_out);
        }
    }
    m->n_heap = 0;
    for (uint32_t i = 1; i < ns; i++) {
        bpe_add(m, (int32_t)i - 1, (int32_t)i);
    }
    run_merges(m, bpe_add);
    for (int32_t i = 0; i != -1 && ns; i = m->sym[i].next) {
        count = emit_symbol(m, &m->sym[i], raw, out, max_out, count);
    }
    return count;
}

int64_t dte_bpe_fragment(dte_tokenizer *tk, const char *text, size_t len, int32_t *out, int64_t max_out, int64_t count)
{
    if (len > (1u << 28)) {
        return -1;
    }
    size_t n1 = len + 1;
    uint8_t *w = dte_tokenizer_scratch(&tk->work, &tk->work_cap, bpe_text_need(len));
    if (!w) {
        return -1;
    }
    text_work t = {(uint32_t *)w, 0, (uint32_t *)(w + 4 * n1), (uint32_t *)(w + 8 * n1)};
    t.flags = (uint16_t *)(w + 12 * n1);
    uint32_t n = 0;
    for (size_t pos = 0; pos < len;) {
        t.cpt[n++] = dte_utf8_decode((const uint8_t *)text, len, &pos);
    }
    for (uint32_t i = 0; i < n; i++) {
        t.flags[i] = dte_unicode_flags(t.cpt[i]);
    }
    size_t n_words = dte_pre_split(&tk->pre, t.cpt, t.flags, n, t.words, t.scratch);
    uint32_t longest = 0;
    for (size_t i = 0; i < n_words; i++) {
        longest = t.words[i] > longest ? t.words[i] : longest;
    }
    size_t n_sym = 4 * (size_t)longest + 1, enc = 8 * (size_t)longest + 64;
    char *ww = dte_tokenizer_scratch(&tk->word_work, &tk->word_work_cap, bpe_word_need(longest));
    if (!ww) {
        return -1;
    }
    merger m = {tk, ww, (symbol *)(((uintptr_t)(ww + enc) + 63) & ~(uintptr_t)63), 0, 0};
    m.heap = (pair *)(m.sym + n_sym);
    uint32_t start = 0;
    for (size_t i = 0; i < n_words; i++) {
        count = bpe_word(&m, t.cpt + start, t.words[i], out, max_out, count);
        start += t.words[i];
    }
    return count;
}
