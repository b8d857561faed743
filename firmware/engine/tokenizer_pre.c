/* BPE pre-tokenizers (see tokenizer_pre.h). Follows llama.cpp src/llama-vocab.cpp (llm_tokenizer_bpe: the regex
 * list of each pre type; load(): the names that select each type) and src/unicode.cpp (unicode_regex_split and
 * its custom splitters unicode_regex_split_custom_gpt2 / _llama3 / _qwen2 / _qwen35 / _newlines). Where llama.cpp
 * falls back to std::regex, the stage here reproduces that pattern's ECMAScript match: the leftmost position
 * where it matches, greedy, with the same "collapsed" character classes (\s is White_Space; \p{X} is a General
 * Category group). */
#include "tokenizer_pre.h"

#include <stdbool.h>

#include "unicode.h"

enum stage {
    ST_GPT2 = 1,      /* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) (custom) */
    ST_LLAMA3, /* (?i:'s|...)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    ST_QWEN2, /* the same with \p{N} */
    ST_QWEN35, /* the same with [\p{L}\p{M}]+ and [^\s\p{L}\p{M}\p{N}] */
    ST_NEWLINES, /* [^\n]+|[\n]+ */
    ST_NUM_ONE, /* \p{N} */
    ST_NUM_RUN, /* \p{N}+ */
    ST_DIGITS3, /* [0-9][0-9][0-9] */
    ST_PUNCT_FALCON, /* [\p{P}\$\+<=>\^~\|`]+ */
    ST_PUNCT_DEFAULT, /* [\p{P}\$\+<=>\^~\|]+ */
    ST_CRLF, /* [\r\n] */
    ST_WS_LETTERS, /* \s?\p{L}+ */
    ST_WS_PUNCTS, /* \s?\p{P}+ */
    ST_CJK, /* [一-龥ࠀ-一가-퟿]+ */
    ST_DS_LETTERS, /* \s?[A-Za-zµÀ-Ö...𞤀-𞥃]+ (deepseek-llm's cased-letter list) */
    ST_DS_PUNCTS, /* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
    ST_TRAILING_WS, /* \s+$ */
    ST_TEKKEN, /* [^\r\n\p{L}\p{N}]?U*Lo+|[^\r\n\p{L}\p{N}]?U+Lo*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
                       * with U = a letter not in [a-z], Lo = a letter not in [A-Z] (std::regex) */
    ST_GPT4O, /* the same with an optional contraction after each letter alternative and \p{N}{1,3} */
    ST_BLOOM, /* ' ?[^(\s|.,!?…。，、।۔،)]+' */
};

/* ---- names ---- */

typedef struct {
    const char *names; /* '|'-separated */
    uint8_t stages[DTE_PRE_MAX_STAGES];
    uint8_t flags;
} pre_def;

static const pre_def PRE_DEFS[] = {
    {"default", {ST_PUNCT_DEFAULT, ST_GPT2, ST_NUM_RUN, ST_DIGITS3}, 0},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2|jina-v5-nano",
     {ST_LLAMA3},
     DTE_PRE_IGNORE_MERGES | DTE_PRE_ADD_BOS},
    {"dbrx|smaug-bpe", {ST_LLAMA3}, 0},
    {"deepseek-llm", {ST_CRLF, ST_DS_LETTERS, ST_DS_PUNCTS, ST_TRAILING_WS, ST_CJK, ST_NUM_RUN}, 0},
    {"deepseek-coder", {ST_CRLF, ST_WS_LETTERS, ST_WS_PUNCTS, ST_CJK, ST_NUM_ONE}, 0},
    {"falcon", {ST_PUNCT_FALCON, ST_GPT2, ST_DIGITS3}, 0},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b|mellum2", {ST_NUM_ONE, ST_GPT2}, 0},
    {"gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v2-es|jina-v2-de|a.x-4.0|mellum|modern-bert|mpt|olmo|jais|"
     "trillion|granite-docling|exaone4",
     {ST_GPT2},
     0},
    {"qwen2|deepseek-r1-qwen|kormo|f2llmv2|stablelm2|megrez|hunyuan|solar-open", {ST_QWEN2}, 0},
    {"qwen35", {ST_QWEN35}, 0},
    {"tekken", {ST_TEKKEN}, DTE_PRE_IGNORE_MERGES | DTE_PRE_ADD_BOS},
    {"gpt-4o|llama4|kanana2|talkie|minimax-m2", {ST_GPT4O}, 0},
    {"bloom|gpt3-finnish|poro-chat", {ST_BLOOM}, 0},
    {"viking", {ST_BLOOM, ST_NUM_ONE}, 0},
    {"chatglm-bpe", {ST_LLAMA3}, DTE_PRE_NO_BOS_ID},
    {"glm4|glm5", {ST_LLAMA3}, DTE_PRE_NO_BOS_ID | DTE_PRE_IGNORE_MERGES},
    {"gemma4", {ST_NEWLINES}, DTE_PRE_RAW_UTF8 | DTE_PRE_ADD_BOS},
};

const char *dte_pre_names(void)
{
    return "default, llama-bpe (llama3), dbrx, smaug-bpe, deepseek-llm, deepseek-coder, falcon, starcoder, "
           "refact, command-r, smollm, gpt-2, mpt, olmo, qwen2, qwen35, stablelm2, tekken, gpt-4o (llama4), "
           "chatglm-bpe, "
           "glm4, bloom, viking, gemma4 and their aliases";
}

static int name_in(const char *names, const char *name, size_t len)
{
    const char *p = names;
    while (*p) {
        size_t i = 0;
        while (p[i] && p[i] != '|') {
            i++;
        }
        if (i == len) {
            size_t k = 0;
            while (k < len && p[k] == name[k]) {
                k++;
            }
            if (k == len) {
                return 1;
            }
        }
        p += i + (p[i] == '|');
    }
    return 0;
}

int dte_pre_lookup(const char *name, size_t len, dte_pre_tokenizer *out)
{
    if (!name || len == 0) {
        name = "default", len = 7;
    }
    for (size_t d = 0; d < sizeof PRE_DEFS / sizeof PRE_DEFS[0]; d++) {
        if (!name_in(PRE_DEFS[d].names, name, len)) {
            continue;
        }
        *out = (dte_pre_tokenizer){0};
        for (int i = 0; i < DTE_PRE_MAX_STAGES && PRE_DEFS[d].stages[i]; i++) {
            out->stage[out->n_stages++] = PRE_DEFS[d].stages[i];
        }
        out->flags = PRE_DEFS[d].flags;
        return 0;
    }
    return -1;
}

/* ---- one piece of text ---- */

typedef struct {
    const uint32_t *cpt;
    const uint16_t *flags;
    size_t ini, end; /* the piece */
    size_t prev_end; /* end of the last word emitted */
    uint32_t *out;
    size_t n_out;
} piece;

#define OUT_OF_RANGE 0xffffffffu

static uint32_t cpt_at(const piece *p, size_t i)
{
    return i >= p->ini && i < p->end ? p->cpt[i] : OUT_OF_RANGE;
}
static uint16_t flags_at(const piece *p, size_t i)
{
    return i >= p->ini && i < p->end ? p->flags[i] : 0;
}

/* Close a word at `end` (nothing when empty); returns its length. */
static size_t add_word(piece *p, size_t end)
{
    size_t len = end - p->prev_end;
    if (len > 0) {
        p->out[p->n_out++] = (uint32_t)len;
    }
    p->prev_end = end;
    return len;
}

static uint32_t ascii_lower(uint32_t c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos (case-insensitive when fold): the length matched, or 0. */
static size_t contraction(const piece *p, size_t pos, int fold)
{
    if (p->cpt[pos] != '\'' || pos + 1 >= p->end) {
        return 0;
    }
    uint32_t a = cpt_at(p, pos + 1), b = pos + 2 < p->end ? cpt_at(p, pos + 2) : 0;
    if (fold) {
        a = ascii_lower(a), b = ascii_lower(b);
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        return 2;
    }
    if (pos + 2 < p->end && ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l'))) {
        return 3;
    }
    return 0;
}

#define F_L DTE_UC_LETTER
#define F_N DTE_UC_NUMBER
#define F_WS DTE_UC_WHITESPACE

static size_t count_ws(const piece *p, size_t pos)
{
    size_t n = 0;
    while (flags_at(p, pos + n) & F_WS) {
        n++;
    }
    return n;
}

/* The end of the word at pos that starts with nws whitespace code points: '\s+(?!\S)' (all but the last one before
 * a non-space), else '\s+', else one code point of anything. */
static size_t ws_word_end(const piece *p, size_t pos, size_t nws)
{
    if (nws > 1 && cpt_at(p, pos + nws) != OUT_OF_RANGE) {
        return pos + nws - 1;
    }
    return pos + (nws > 0 ? nws : 1);
}

static void split_gpt2(piece *p)
{
    for (size_t pos = p->ini; pos < p->end;) {
        uint32_t c = p->cpt[pos];
        size_t k = contraction(p, pos, 0);
        if (k) {
            pos += add_word(p, pos + k);
            continue;
        }
        uint16_t f2 = c == ' ' ? flags_at(p, pos + 1) : p->flags[pos];
        uint16_t want = f2 & F_L ? F_L : f2 & F_N ? F_N : 0;
        if (want) { /* ' ?\p{F_L}+' or ' ?\p{F_N}+' */
            pos += c == ' ';
            while (flags_at(p, pos) & want) {
                pos++;
            }
            add_word(p, pos);
            continue;
        }
        if (!(f2 & (F_WS | F_L | F_N)) && f2) { /* ' ?[^\s\p{F_L}\p{F_N}]+' */
            pos += c == ' ';
            while (!(f2 & (F_WS | F_L | F_N)) && f2) {
                f2 = flags_at(p, ++pos);
            }
            add_word(p, pos);
            continue;
        }
        pos = ws_word_end(p, pos, count_ws(p, pos));
        add_word(p, pos);
    }
}

/* llama3 (max_digits 3, letters \p{F_L}), qwen2 (1, \p{F_L}), qwen35 (1, [\p{F_L}\p{M}]). */
static void split_llama3(piece *p, size_t max_digits, uint16_t letter)
{
    for (size_t pos = p->ini; pos < p->end;) {
        uint32_t c = p->cpt[pos];
        uint16_t f = p->flags[pos];
        size_t k = contraction(p, pos, 1);
        if (k) {
            pos += add_word(p, pos + k);
            continue;
        }
        if (!(c == '\r' || c == '\n' || (f & F_N)) && ((f & letter) || (flags_at(p, pos + 1) & letter))) {
            pos++; /* [^\r\n\p{F_L}\p{F_N}]?\p{F_L}+ */
            while (flags_at(p, pos) & letter) {
                pos++;
            }
            add_word(p, pos);
            continue;
        }
        if (f & F_N) { /* \p{F_N}{1,max} */
            size_t ini = pos;
            while (flags_at(p, pos) & F_N) {
                if (++pos - ini >= max_digits) {
                    add_word(p, pos);
                    ini = pos;
                }
            }
            add_word(p, pos);
            continue;
        }
        uint16_t other = F_WS | letter | F_N, f2 = c == ' ' ? flags_at(p, pos + 1) : f;
        if (!(f2 & other) && f) { /* ' ?[^\s\p{F_L}\p{F_N}]+[\r\n]*' */
            pos += c == ' ';
            while (!(f2 & other) && f2) {
                f2 = flags_at(p, ++pos);
            }
            for (uint32_t c2 = cpt_at(p, pos); c2 == '\r' || c2 == '\n'; c2 = cpt_at(p, ++pos)) {
            }
            add_word(p, pos);
            continue;
        }
        size_t nws = 0, last_rn = 0;
        while (flags_at(p, pos + nws) & F_WS) {
            uint32_t c2 = cpt_at(p, pos + nws);
            if (c2 == '\r' || c2 == '\n') {
                last_rn = pos + nws + 1;
            }
            nws++;
        }
        if (last_rn > 0) {
            pos = last_rn;
            add_word(p, pos);
            continue;
        } /* \s*[\r\n]+ */
        pos = ws_word_end(p, pos, nws);
        add_word(p, pos);
    }
}

static void split_newlines(piece *p)
{
    for (size_t pos = p->ini; pos < p->end;) {
        int nl = p->cpt[pos] == '\n';
        while (pos < p->end && (p->cpt[pos] == '\n') == nl) {
            pos++;
        }
        add_word(p, pos);
    }
}

/* ---- tekken (Mistral Nemo): llama.cpp runs its regex through std::regex; this is that match, alternative by
 * alternative, with ECMAScript's backtracking worked out ---- */

static int tk_letter(const piece *p, size_t i)
{
    return i < p->end && (p->flags[i] & F_L);
}
static int tk_upper(const piece *p, size_t i)
{
    return tk_letter(p, i) && !(p->cpt[i] >= 'a' && p->cpt[i] <= 'z');
}
static int tk_lower(const piece *p, size_t i)
{
    return tk_letter(p, i) && !(p->cpt[i] >= 'A' && p->cpt[i] <= 'Z');
}
static int tk_other(const piece *p, size_t i)
{
    return i < p->end && !(p->flags[i] & (F_WS | F_L | F_N));
}
static int tk_prefix(const piece *p, size_t i)
{
    return i < p->end && p->cpt[i] != '\r' && p->cpt[i] != '\n' && !(p->flags[i] & (F_L | F_N));
}

/* U*Lo+ from s: the end, or 0. Greedy U*, then give back one at a time until Lo+ can start. */
static size_t tk_upper_lower(const piece *p, size_t s)
{
    size_t k = s;
    while (tk_upper(p, k)) {
        k++;
    }
    size_t m = k;
    while (!tk_lower(p, m)) {
        if (m == s) {
            return 0;
        }
        m--;
    }
    size_t e = m;
    while (tk_lower(p, e)) {
        e++;
    }
    return e;
}

/* The match of the tekken regex (gpt4o: with contractions and \p{N}{1,3}) at i: its end, or 0 when no
 * alternative matches there. */
static size_t tekken_at(const piece *p, size_t i, int gpt4o)
{
    size_t s = tk_prefix(p, i) ? i + 1 : i, e;
    if ((e = tk_upper_lower(p, s)) != 0) { /* P?U*Lo+ */
        return gpt4o && e < p->end ? e + contraction(p, e, 1) : e;
    }
    if (tk_upper(p, s)) { /* P?U+Lo* */
        for (e = s; tk_upper(p, e); e++) {
        }
        while (tk_lower(p, e)) {
            e++;
        }
        return gpt4o && e < p->end ? e + contraction(p, e, 1) : e;
    }
    if (p->flags[i] & F_N) { /* \p{N} or \p{N}{1,3} */
        for (e = i + 1; gpt4o && e < i + 3 && e < p->end && (p->flags[e] & F_N); e++) {
        }
        return e;
    }
    s = p->cpt[i] == ' ' && tk_other(p, i + 1) ? i + 1 : i;
    if (tk_other(p, s)) { /* ' ?[^\s\p{L}\p{N}]+[\r\n/]*' */
        for (e = s; tk_other(p, e); e++) {
        }
        while (e < p->end && (p->cpt[e] == '\r' || p->cpt[e] == '\n' || p->cpt[e] == '/')) {
            e++;
        }
        return e;
    }
    size_t k = i, last_rn = 0;
    while (k < p->end && (p->flags[k] & F_WS)) {
        if (p->cpt[k] == '\r' || p->cpt[k] == '\n') {
            last_rn = k + 1;
        }
        k++;
    }
    if (last_rn) {
        return last_rn; /* \s*[\r\n]+ */
    }
    if (k == p->end && k > i) {
        return k; /* \s+(?!\S) at the end */
    }
    if (k - i >= 2) {
        return k - 1; /* \s+(?!\S) */
    }
    return k > i ? k : 0; /* \s+ */
}

static void split_tekken(piece *p, int gpt4o)
{
    size_t pos = p->ini;
    for (size_t i = p->ini; i < p->end;) {
        size_t e = tekken_at(p, i, gpt4o);
        if (!e) {
            i++;
            continue;
        }
        if (i > pos) {
            add_word(p, i);
        }
        add_word(p, e);
        pos = i = e;
    }
    add_word(p, p->end);
}

/* ---- std::regex stages: character classes and leftmost matching ---- */

typedef struct {
    uint32_t lo, hi;
} range;

static const range DS_LETTERS[] = {
    {0x41, 0x5a},       {0x61, 0x7a},       {0xb5, 0xb5},       {0xc0, 0xd6},       {0xd8, 0xf6},
    {0xf8, 0x1ba},      {0x1bc, 0x1bf},     {0x1c4, 0x293},     {0x295, 0x2af},     {0x370, 0x373},
    {0x376, 0x377},     {0x37b, 0x37d},     {0x37f, 0x37f},     {0x386, 0x386},     {0x388, 0x38a},
    {0x38c, 0x38c},     {0x38e, 0x3a1},     {0x3a3, 0x3f5},     {0x3f7, 0x481},     {0x48a, 0x52f},
    {0x531, 0x556},     {0x10a0, 0x10c5},   {0x13a0, 0x13f5},   {0x13f8, 0x13fd},   {0x1c90, 0x1cba},
    {0x1cbd, 0x1cbf},   {0x1d00, 0x1d2b},   {0x1d6b, 0x1d77},   {0x1d79, 0x1d9a},   {0x1e00, 0x1f15},
    {0x1f18, 0x1f1d},   {0x1f20, 0x1f45},   {0x1f48, 0x1f4d},   {0x1f50, 0x1f57},   {0x1f59, 0x1f59},
    {0x1f5b, 0x1f5b},   {0x1f5d, 0x1f5d},   {0x1f5f, 0x1f7d},   {0x1f80, 0x1fb4},   {0x1fb6, 0x1fbc},
    {0x1fbe, 0x1fbe},   {0x1fc2, 0x1fc4},   {0x1fc6, 0x1fcc},   {0x1fd0, 0x1fd3},   {0x1fd6, 0x1fdb},
    {0x1fe0, 0x1fec},   {0x1ff2, 0x1ff4},   {0x1ff6, 0x1ffc},   {0x2102, 0x2102},   {0x2107, 0x2107},
    {0x210a, 0x2113},   {0x2115, 0x2115},   {0x2119, 0x211d},   {0x2124, 0x2124},   {0x2126, 0x2126},
    {0x2128, 0x2128},   {0x212a, 0x212d},   {0x212f, 0x2134},   {0x2139, 0x2139},   {0x213c, 0x213f},
    {0x2145, 0x2149},   {0x214e, 0x214e},   {0x2183, 0x2184},   {0x2c00, 0x2c7b},   {0x2c7e, 0x2ce4},
    {0x2ceb, 0x2cee},   {0x2cf2, 0x2cf3},   {0xa640, 0xa66d},   {0xa680, 0xa69b},   {0xa722, 0xa76f},
    {0xa771, 0xa787},   {0xa78b, 0xa78e},   {0xab70, 0xabbf},   {0xfb00, 0xfb06},   {0xfb13, 0xfb17},
    {0xff21, 0xff3a},   {0xff41, 0xff5a},   {0x10400, 0x1044f}, {0x104b0, 0x104d3}, {0x104d8, 0x104fb},
    {0x10c80, 0x10cb2}, {0x10cc0, 0x10cf2}, {0x118a0, 0x118df}, {0x1e900, 0x1e943}, {0, 0}};
static const range DS_PUNCTS[] = {{0x21, 0x2f},     {0x3a, 0x7e}, {0xff01, 0xff0f}, {0xff1a, 0xff5e}, {0x2018, 0x201f},
                                  {0x3000, 0x3002}, {0, 0}};
static const range CJK[] = {{0x4e00, 0x9fa5}, {0x800, 0x4e00}, {0xac00, 0xd7ff}, {0, 0}};
static const range BLOOM_STOPS[] = {{'(', ')'},       {'|', '|'},
                                    {'.', '.'},       {',', ','},
                                    {'!', '!'},       {'?', '?'},
                                    {0x2026, 0x2026}, {0x3002, 0x3002},
                                    {0xff0c, 0xff0c}, {0x3001, 0x3001},
                                    {0x964, 0x964},   {0x6d4, 0x6d4},
                                    {0x60c, 0x60c},   {0, 0}};

static int in_ranges(const range *r, uint32_t c)
{
    for (; r->hi; r++) {
        if (c >= r->lo && c <= r->hi) {
            return 1;
        }
    }
    return 0;
}

static int in_ascii_set(const char *set, uint32_t c)
{
    for (; *set; set++) {
        if ((uint32_t)(uint8_t)*set == c) {
            return 1;
        }
    }
    return 0;
}

/* Is code point i of the piece in the stage's class? Literal-range classes see llama.cpp's wide text, where
 * non-ASCII whitespace was replaced by U+000B. */
static int in_class(const piece *p, int stage, size_t i)
{
    uint32_t c = p->cpt[i];
    uint16_t f = p->flags[i];
    uint32_t wide = c > 0x7f && (f & F_WS) ? 0x0b : c;
    switch (stage) {
    case ST_NUM_ONE:
    case ST_NUM_RUN: return (f & F_N) != 0;
    case ST_DIGITS3: return c >= '0' && c <= '9';
    case ST_PUNCT_FALCON: return (f & DTE_UC_PUNCTUATION) || in_ascii_set("$+<=>^~|`", c);
    case ST_PUNCT_DEFAULT: return (f & DTE_UC_PUNCTUATION) || in_ascii_set("$+<=>^~|", c);
    case ST_CRLF: return c == '\r' || c == '\n';
    case ST_WS_LETTERS: return (f & F_L) != 0;
    case ST_WS_PUNCTS: return (f & DTE_UC_PUNCTUATION) != 0;
    case ST_CJK: return in_ranges(CJK, wide);
    case ST_DS_LETTERS: return in_ranges(DS_LETTERS, wide);
    case ST_DS_PUNCTS: return in_ranges(DS_PUNCTS, wide);
    case ST_BLOOM: return !(f & F_WS) && !in_ranges(BLOOM_STOPS, c);
    default: return 0;
    }
}

/* The leftmost match at or after `from`: 1 with [*ms, *me), or 0. */
static int find_match(const piece *p, int stage, size_t from, size_t *ms, size_t *me)
{
    if (stage == ST_TRAILING_WS) {
        size_t t = p->end;
        while (t > from && (p->flags[t - 1] & F_WS)) {
            t--;
        }
        *ms = t, *me = p->end;
        return t < p->end;
    }
    if (stage == ST_DIGITS3) {
        for (size_t i = from; i + 3 <= p->end; i++) {
            if (in_class(p, stage, i) && in_class(p, stage, i + 1) && in_class(p, stage, i + 2)) {
                *ms = i, *me = i + 3;
                return 1;
            }
        }
        return 0;
    }
    int opt_ws = stage == ST_WS_LETTERS || stage == ST_WS_PUNCTS || stage == ST_DS_LETTERS || stage == ST_DS_PUNCTS;
    int single = stage == ST_NUM_ONE || stage == ST_CRLF;
    for (size_t i = from; i < p->end; i++) {
        size_t start = i;
        bool lead = stage == ST_BLOOM ? p->cpt[i] == ' ' : opt_ws && (p->flags[i] & F_WS);
        if (lead && i + 1 < p->end && in_class(p, stage, i + 1)) {
            i++;
        } else if (!in_class(p, stage, i)) {
            continue;
        }
        size_t j = i + 1;
        if (!single) {
            while (j < p->end && in_class(p, stage, j)) {
                j++;
            }
        }
        *ms = start, *me = j;
        return 1;
    }
    return 0;
}

static void split_regex(piece *p, int stage)
{
    size_t pos = p->ini, ms, me;
    while (pos < p->end && find_match(p, stage, pos, &ms, &me)) {
        add_word(p, ms); /* the text before the match, when any */
        add_word(p, me);
        pos = me;
    }
    add_word(p, p->end);
}

static void split_piece(piece *p, int stage)
{
    switch (stage) {
    case ST_GPT2: split_gpt2(p); break;
    case ST_LLAMA3: split_llama3(p, 3, F_L); break;
    case ST_QWEN2: split_llama3(p, 1, F_L); break;
    case ST_QWEN35: split_llama3(p, 1, F_L | DTE_UC_MARK); break;
    case ST_NEWLINES: split_newlines(p); break;
    case ST_TEKKEN: split_tekken(p, 0); break;
    case ST_GPT4O: split_tekken(p, 1); break;
    default: split_regex(p, stage); break;
    }
}

size_t dte_pre_split(const dte_pre_tokenizer *pre, const uint32_t *cpt, const uint16_t *flags, size_t n,
                     uint32_t *words, uint32_t *scratch)
{
    if (n == 0) {
        return 0;
    }
    /* Stage s reads the pieces in `in` and writes to `out`; the last stage must write to `words`. */
    uint32_t *in = (pre->n_stages % 2) ? scratch : words, *out = (pre->n_stages % 2) ? words : scratch;
    in[0] = (uint32_t)n;
    size_t n_in = 1;
    for (int s = 0; s < pre->n_stages; s++) {
        piece p = {cpt, flags, 0, 0, 0, out, 0};
        size_t start = 0;
        for (size_t k = 0; k < n_in; k++) {
            p.ini = p.prev_end = start;
            p.end = start + in[k];
            split_piece(&p, pre->stage[s]);
            start = p.end;
        }
        n_in = p.n_out;
        uint32_t *t = in;
        in = out;
        out = t;
    }
    if (pre->n_stages == 0) {
        return 1;
    }
    return n_in;
}
