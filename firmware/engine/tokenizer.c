/* Tokenizer loading (llama.cpp src/llama-vocab.cpp llama_vocab::impl::load): vocabulary, token attributes,
 * special ids, the special-token list tokenizer_st_partition scans, and special_eog_ids with its name
 * heuristics. */
#include "tokenizer.h"

#include "errors.h"
#include "lib/fmt.h"
#include "runtime/platform.h"

static int fail(char *err, size_t errlen, const char *what)
{
    if (err && errlen) {
        dte_fmt(err, errlen, "tokenizer: %s", what);
    }
    return DTE_E_TOKENIZER;
}

static uint32_t hash_bytes(const char *p, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (uint8_t)p[i]) * 16777619u;
    }
    return h;
}

static bool bytes_eq(dte_str s, const char *p, size_t n)
{
    if (s.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (s.ptr[i] != p[i]) {
            return false;
        }
    }
    return true;
}

int32_t dte_token_lookup(const dte_tokenizer *tk, const char *text, size_t len)
{
    uint32_t h = hash_bytes(text, len) & tk->slot_mask;
    while (tk->slots[h]) {
        uint32_t id = tk->slots[h] - 1;
        if (bytes_eq(tk->text[id], text, len)) {
            return (int32_t)id;
        }
        h = (h + 1) & tk->slot_mask;
    }
    return -1;
}

static int32_t lookup_cstr(const dte_tokenizer *tk, const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return dte_token_lookup(tk, s, n);
}

/* Insert id; a later duplicate replaces an earlier one (llama.cpp fills token_to_id in order). */
static void index_token(dte_tokenizer *tk, uint32_t id)
{
    dte_str s = tk->text[id];
    uint32_t h = hash_bytes(s.ptr, (size_t)s.len) & tk->slot_mask;
    while (tk->slots[h]) {
        if (bytes_eq(tk->text[tk->slots[h] - 1], s.ptr, (size_t)s.len)) {
            break;
        }
        h = (h + 1) & tk->slot_mask;
    }
    tk->slots[h] = id + 1;
}

static uint16_t attr_of_type(uint32_t type)
{
    switch (type) {
    case DTE_TOK_UNKNOWN: return DTE_ATTR_UNKNOWN;
    case DTE_TOK_UNUSED: return DTE_ATTR_UNUSED;
    case DTE_TOK_NORMAL: return DTE_ATTR_NORMAL;
    case DTE_TOK_CONTROL: return DTE_ATTR_CONTROL;
    case DTE_TOK_USER_DEFINED: return DTE_ATTR_USER_DEFINED;
    case DTE_TOK_BYTE: return DTE_ATTR_BYTE;
    default: return 0;
    }
}

static int read_vocab(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen)
{
    uint64_t n, n_scores, n_types;
    const uint8_t *tokens, *scores = 0, *types = 0;
    if (!dte_gguf_get_arr(g, "tokenizer.ggml.tokens", DTE_GGUF_STRING, &n, &tokens)) {
        return fail(err, errlen, "tokenizer.ggml.tokens missing");
    }
    if (n == 0 || n > 0x7fffffff) {
        return fail(err, errlen, "vocabulary size out of range");
    }
    if (dte_gguf_get_arr(g, "tokenizer.ggml.scores", DTE_GGUF_F32, &n_scores, &scores) && n_scores < n) {
        return fail(err, errlen, "tokenizer.ggml.scores is shorter than the vocabulary");
    }
    if (tk->kind == DTE_TOKENIZER_SPM && !scores) {
        return fail(err, errlen, "tokenizer.ggml.scores missing");
    }
    if (dte_gguf_get_arr(g, "tokenizer.ggml.token_type", DTE_GGUF_I32, &n_types, &types) && n_types < n) {
        return fail(err, errlen, "tokenizer.ggml.token_type is shorter than the vocabulary");
    }
    tk->n_vocab = (uint32_t)n;
    uint32_t cap = 1;
    while (cap < 2 * n) {
        cap <<= 1;
    }
    tk->slot_mask = cap - 1;
    tk->text = dte_alloc(n * sizeof(dte_str), 8);
    tk->score = dte_alloc(n * sizeof(float), 8);
    tk->attr = dte_alloc(n * sizeof(uint16_t), 8);
    tk->slots = dte_alloc((size_t)cap * sizeof(uint32_t), 8);
    if (!tk->text || !tk->score || !tk->attr || !tk->slots) {
        return fail(err, errlen, "out of memory");
    }
    for (uint32_t i = 0; i < cap; i++) {
        tk->slots[i] = 0;
    }
    const uint8_t *cur = tokens;
    for (uint32_t i = 0; i < n; i++) {
        tk->text[i] = dte_gguf_next_str(&cur);
        tk->score[i] = scores ? dte_load_f32(scores + 4 * (uint64_t)i) : 0.0f;
        tk->attr[i] = types ? attr_of_type(dte_load_u32(types + 4 * (uint64_t)i)) : DTE_ATTR_NORMAL;
        if (tk->text[i].len > 0) {
            index_token(tk, i);
        }
    }
    return 0;
}

/* The id a key names when present and in range, else the default (itself dropped when out of range). */
static int32_t special_id(const dte_gguf *g, const char *key, int32_t fallback, uint32_t n_vocab)
{
    uint32_t v;
    if (fallback >= 0 && (uint32_t)fallback >= n_vocab) {
        fallback = -1;
    }
    return dte_gguf_get_u32(g, key, &v) && v < n_vocab ? (int32_t)v : fallback;
}

static void find_byte_tokens(dte_tokenizer *tk)
{
    static const char hex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; b++) {
        char name[6] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>'};
        int32_t id = dte_token_lookup(tk, name, 6);
        if (id < 0 && tk->kind == DTE_TOKENIZER_SPM) { /* llama.cpp byte_to_token: the byte itself as a piece */
            char one = (char)b;
            id = dte_token_lookup(tk, &one, 1);
        }
        tk->byte_token[b] = id >= 0 ? id : tk->kind == DTE_TOKENIZER_SPM ? tk->unk : -1;
    }
}

/* ---- end of generation and special-token attributes ---- */

static const char *const EOT_NAMES[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "<|end_of_text|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "<\xef\xbd\x9c"
                                        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                        "<end_of_utterance>",
                                        0};
static const char *const EOM_NAMES[] = {"<|eom_id|>", 0};
static const char *const FIM_PRE_NAMES[] = {"<|fim_prefix|>",
                                            "<fim-prefix>",
                                            "<fim_prefix>",
                                            "<\xef\xbd\x9c"
                                            "fim\xe2\x96\x81"
                                            "begin\xef\xbd\x9c>",
                                            "<PRE>",
                                            "\xe2\x96\x81<PRE>",
                                            "<|code_prefix|>",
                                            "<|prefix|>",
                                            0};
static const char *const FIM_SUF_NAMES[] = {"<|fim_suffix|>",
                                            "<fim-suffix>",
                                            "<fim_suffix>",
                                            "<\xef\xbd\x9c"
                                            "fim\xe2\x96\x81hole\xef\xbd\x9c>",
                                            "<SUF>",
                                            "\xe2\x96\x81<SUF>",
                                            "<|code_suffix|>",
                                            "<|suffix|>",
                                            0};
static const char *const FIM_MID_NAMES[] = {"<|fim_middle|>",
                                            "<fim-middle>",
                                            "<fim_middle>",
                                            "<\xef\xbd\x9c"
                                            "fim\xe2\x96\x81"
                                            "end\xef\xbd\x9c>",
                                            "<MID>",
                                            "\xe2\x96\x81<MID>",
                                            "<|code_middle|>",
                                            "<|middle|>",
                                            0};
static const char *const FIM_PAD_NAMES[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]", 0};
static const char *const FIM_REP_NAMES[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", 0};
static const char *const FIM_SEP_NAMES[] = {"<|file_sep|>", 0};
static const char *const EOG_NAMES[] = {"<|eot_id|>",
                                        "<|im_end|>",
                                        "<|end|>",
                                        "<|return|>",
                                        "<|call|>",
                                        "<|flush|>",
                                        "<|calls|>",
                                        "<end_of_turn>",
                                        "<|endoftext|>",
                                        "</s>",
                                        "<|eom_id|>",
                                        "<EOT>",
                                        "_<EOT>",
                                        "[EOT]",
                                        "[EOS]",
                                        "<|end_of_text|>",
                                        "<end_of_utterance>",
                                        "<eos>",
                                        "<turn|>",
                                        "<|tool_response>",
                                        "<\xef\xbd\x9c"
                                        "end\xe2\x96\x81of\xe2\x96\x81sentence\xef\xbd\x9c>",
                                        "[e~[",
                                        0};
static const char *const USER_DEFINED_NAMES[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>", 0};

/* The lowest id whose text is one of names, or -1. */
static int32_t first_named(const dte_tokenizer *tk, const char *const *names)
{
    int32_t best = -1;
    for (; *names; names++) {
        int32_t id = lookup_cstr(tk, *names);
        if (id >= 0 && (best < 0 || id < best)) {
            best = id;
        }
    }
    return best;
}

/* llama.cpp: an id from the GGUF key, else the name heuristic, which also marks the token as control. */
static int32_t keyed_or_named(dte_tokenizer *tk, const dte_gguf *g, const char *key, const char *const *names)
{
    int32_t id = special_id(g, key, -1, tk->n_vocab);
    if (id >= 0) {
        return id;
    }
    id = first_named(tk, names);
    if (id >= 0) {
        tk->attr[id] |= DTE_ATTR_CONTROL;
    }
    return id;
}

static void add_eog(dte_tokenizer *tk, int32_t id)
{
    if (id < 0 || dte_token_is_eog(tk, id) || tk->n_eog >= DTE_MAX_EOG) {
        return;
    }
    tk->eog[tk->n_eog++] = id;
}

static void remove_eog(dte_tokenizer *tk, int32_t id)
{
    for (uint32_t i = 0; i < tk->n_eog; i++) {
        if (tk->eog[i] == id) {
            tk->eog[i] = tk->eog[--tk->n_eog];
        }
    }
}

bool dte_token_is_eog(const dte_tokenizer *tk, int32_t id)
{
    for (uint32_t i = 0; i < tk->n_eog; i++) {
        if (tk->eog[i] == id) {
            return true;
        }
    }
    return false;
}

static bool eog_has(const dte_tokenizer *tk, const char *name, int32_t *id)
{
    int32_t t = lookup_cstr(tk, name);
    if (t >= 0 && dte_token_is_eog(tk, t)) {
        if (id) {
            *id = t;
        }
        return true;
    }
    return false;
}

static void find_eog(dte_tokenizer *tk, const dte_gguf *g)
{
    tk->eot = keyed_or_named(tk, g, "tokenizer.ggml.eot_token_id", EOT_NAMES);
    tk->eom = keyed_or_named(tk, g, "tokenizer.ggml.eom_token_id", EOM_NAMES);
    keyed_or_named(tk, g, "tokenizer.ggml.fim_pre_token_id", FIM_PRE_NAMES);
    keyed_or_named(tk, g, "tokenizer.ggml.fim_suf_token_id", FIM_SUF_NAMES);
    keyed_or_named(tk, g, "tokenizer.ggml.fim_mid_token_id", FIM_MID_NAMES);
    add_eog(tk, keyed_or_named(tk, g, "tokenizer.ggml.fim_pad_token_id", FIM_PAD_NAMES));
    add_eog(tk, keyed_or_named(tk, g, "tokenizer.ggml.fim_rep_token_id", FIM_REP_NAMES));
    add_eog(tk, keyed_or_named(tk, g, "tokenizer.ggml.fim_sep_token_id", FIM_SEP_NAMES));
    for (const char *const *name = EOG_NAMES; *name; name++) {
        int32_t id = lookup_cstr(tk, *name);
        if (id < 0) {
            continue;
        }
        add_eog(tk, id);
        tk->attr[id] |= DTE_ATTR_CONTROL;
    }
    for (const char *const *name = USER_DEFINED_NAMES; *name; name++) {
        int32_t id = lookup_cstr(tk, *name);
        if (id >= 0) {
            tk->attr[id] = DTE_ATTR_USER_DEFINED;
        }
    }
    add_eog(tk, tk->eos);
    add_eog(tk, tk->eot);
    add_eog(tk, tk->eom);
    int32_t end_id = -1, s_id = -1;
    bool has_end = eog_has(tk, "<|end|>", &end_id),
         has_call = eog_has(tk, "<|call|>", 0) || eog_has(tk, "<|calls|>", 0);
    if (has_end && has_call && (eog_has(tk, "<|return|>", 0) || eog_has(tk, "<|flush|>", 0))) { /* harmony */
        remove_eog(tk, end_id);
        tk->attr[end_id] = DTE_ATTR_USER_DEFINED;
    }
    if (eog_has(tk, "</s>", &s_id) && (eog_has(tk, "<|tool_response>", 0) || eog_has(tk, "<|plamo:eos|>", 0))) {
        remove_eog(tk, s_id);
        tk->attr[s_id] = DTE_ATTR_NORMAL;
    }
}

/* ---- the special-token list ---- */

static bool contains(dte_str s, const char *needle)
{
    size_t n = 0;
    while (needle[n]) {
        n++;
    }
    for (uint64_t i = 0; i + n <= s.len; i++) {
        if (bytes_eq((dte_str){s.ptr + i, n}, needle, n)) {
            return true;
        }
    }
    return false;
}

/* llama.cpp's per-model strip attributes: Phi-3 right-strips after special tokens. */
static void strip_attributes(dte_tokenizer *tk, const dte_gguf *g)
{
    dte_str name;
    char lower[128];
    if (!dte_gguf_get_str(g, "general.name", &name)) {
        return;
    }
    size_t n = name.len < sizeof lower ? (size_t)name.len : sizeof lower;
    for (size_t i = 0; i < n; i++) {
        lower[i] = (char)(name.ptr[i] >= 'A' && name.ptr[i] <= 'Z' ? name.ptr[i] + 32 : name.ptr[i]);
    }
    dte_str l = {lower, n};
    if (!contains(l, "phi-3") && !contains(l, "phi3")) {
        return;
    }
    for (uint32_t i = 0; i < tk->n_special; i++) {
        tk->attr[tk->special[i]] |= DTE_ATTR_RSTRIP;
    }
    int32_t id = lookup_cstr(tk, "</s>");
    if (id >= 0) {
        tk->attr[id] |= DTE_ATTR_RSTRIP;
    }
    static const char *const keep[] = {"<unk>", "<s>", "<|endoftext|>", 0};
    for (const char *const *k = keep; *k; k++) {
        if ((id = lookup_cstr(tk, *k)) >= 0) {
            tk->attr[id] &= (uint16_t)~DTE_ATTR_RSTRIP;
        }
    }
}

static int list_specials(dte_tokenizer *tk, char *err, size_t errlen)
{
    const uint16_t want = DTE_ATTR_CONTROL | DTE_ATTR_USER_DEFINED | DTE_ATTR_UNKNOWN;
    uint32_t n = 0;
    for (uint32_t i = 0; i < tk->n_vocab; i++) {
        n += (tk->attr[i] & want) && tk->text[i].len > 0;
    }
    tk->special = dte_alloc((size_t)(n ? n : 1) * sizeof(int32_t), 8);
    int32_t *tmp = dte_alloc((size_t)(n ? n : 1) * sizeof(int32_t), 8);
    if (!tk->special || !tmp) {
        return fail(err, errlen, "out of memory");
    }
    for (uint32_t i = 0; i < tk->n_vocab; i++) {
        if ((tk->attr[i] & want) && tk->text[i].len > 0) {
            tk->special[tk->n_special++] = (int32_t)i;
        }
    }
    /* stable merge sort, longest text first */
    for (uint32_t width = 1; width < n; width *= 2) {
        for (uint32_t lo = 0; lo < n; lo += 2 * width) {
            uint32_t mid = lo + width < n ? lo + width : n, hi = lo + 2 * width < n ? lo + 2 * width : n;
            uint32_t a = lo, b = mid, o = lo;
            while (a < mid || b < hi) {
                bool take_a = b >= hi || (a < mid && tk->text[tk->special[a]].len >= tk->text[tk->special[b]].len);
                tmp[o++] = tk->special[take_a ? a++ : b++];
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            tk->special[i] = tmp[i];
        }
    }
    return 0;
}

/* ---- load ---- */

static int read_model(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen)
{
    dte_str model, pre;
    if (!dte_gguf_get_str(g, "tokenizer.ggml.model", &model)) {
        return fail(err, errlen, "tokenizer.ggml.model missing");
    }
    bool has_pre = dte_gguf_get_str(g, "tokenizer.ggml.pre", &pre);
    if (dte_str_eq(model, "llama")) {
        tk->kind = DTE_TOKENIZER_SPM;
        return 0;
    }
    if (dte_str_eq(model, "gemma4")) {
        tk->kind = DTE_TOKENIZER_BPE;
        dte_pre_lookup("gemma4", 6, &tk->pre);
        return 0;
    }
    if (!dte_str_eq(model, "gpt2")) {
        return fail(err, errlen,
                    "unsupported tokenizer.ggml.model (dte runs \"llama\" (SentencePiece), \"gpt2\" (BPE) "
                    "and \"gemma4\")");
    }
    tk->kind = DTE_TOKENIZER_BPE;
    if (dte_pre_lookup(has_pre ? pre.ptr : 0, has_pre ? (size_t)pre.len : 0, &tk->pre) != 0) {
        char name[64];
        size_t n = pre.len < sizeof name - 1 ? (size_t)pre.len : sizeof name - 1;
        for (size_t i = 0; i < n; i++) {
            name[i] = pre.ptr[i] >= 0x20 && pre.ptr[i] < 0x7f ? pre.ptr[i] : '?';
        }
        name[n] = 0;
        if (err && errlen) {
            dte_fmt(err, errlen, "tokenizer: unknown pre-tokenizer \"%s\" (dte knows %s)", name, dte_pre_names());
        }
        return DTE_E_TOKENIZER;
    }
    return 0;
}

int dte_tokenizer_load(const dte_gguf *g, dte_tokenizer *tk, char *err, size_t errlen)
{
    *tk = (dte_tokenizer){0};
    int rc = read_model(g, tk, err, errlen);
    if (rc == 0) {
        rc = read_vocab(g, tk, err, errlen);
    }
    if (rc) {
        return rc;
    }
    bool spm = tk->kind == DTE_TOKENIZER_SPM;
    tk->bos = special_id(g, "tokenizer.ggml.bos_token_id",
                         spm                                   ? 1
                         : (tk->pre.flags & DTE_PRE_NO_BOS_ID) ? -1
                                                               : 11,
                         tk->n_vocab);
    tk->eos = special_id(g, "tokenizer.ggml.eos_token_id", spm ? 2 : 11, tk->n_vocab);
    tk->unk = special_id(g, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, tk->n_vocab);
    bool raw = (tk->pre.flags & DTE_PRE_RAW_UTF8) != 0;
    if (raw) {
        tk->bos = special_id(g, "tokenizer.ggml.bos_token_id", -1, tk->n_vocab),
        tk->eos = special_id(g, "tokenizer.ggml.eos_token_id", -1, tk->n_vocab);
    }
    tk->add_bos = spm || (tk->pre.flags & DTE_PRE_ADD_BOS);
    dte_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &tk->add_bos);
    if (raw) {
        tk->add_bos = true; /* llama.cpp forces it for Gemma 4 */
    }
    dte_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &tk->add_eos);
    tk->add_space_prefix = spm;
    dte_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &tk->add_space_prefix);
    if ((tk->add_bos && tk->bos < 0) || (tk->add_eos && tk->eos < 0)) {
        return fail(err, errlen, "the model adds BOS/EOS but has no such token");
    }
    find_byte_tokens(tk);
    if (!spm && (rc = dte_bpe_load_merges(g, tk, err, errlen)) != 0) {
        return rc;
    }
    find_eog(tk, g);
    if ((rc = list_specials(tk, err, errlen)) != 0) {
        return rc;
    }
    strip_attributes(tk, g);
    return 0;
}
