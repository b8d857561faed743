/* GGUF v2/v3 parser (ggml docs/gguf.md). Every read goes through a bounds-checked cursor. */
#include "gguf.h"

#include "lib/fmt.h"
#include "quants.h"
#include "runtime/platform.h"

typedef struct {
    const uint8_t *buf;
    uint64_t size;
    uint64_t pos;
    char *err;
    size_t errlen;
} cursor;

uint32_t dte_load_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t dte_load_u64(const uint8_t *p)
{
    return (uint64_t)dte_load_u32(p) | (uint64_t)dte_load_u32(p + 4) << 32;
}

float dte_load_f32(const uint8_t *p)
{
    union {
        uint32_t u;
        float f;
    } v = {dte_load_u32(p)};
    return v.f;
}

static double load_f64(const uint8_t *p)
{
    union {
        uint64_t u;
        double d;
    } v = {dte_load_u64(p)};
    return v.d;
}

static int fail(cursor *c, int code, const char *what)
{
    if (c->err && c->errlen) {
        dte_fmt(c->err, c->errlen, "gguf: %s (at byte %llu)", what, (unsigned long long)c->pos);
    }
    return code;
}

static bool take(cursor *c, uint64_t n, const uint8_t **p)
{
    if (n > c->size - c->pos) {
        return false;
    }
    *p = c->buf + c->pos;
    c->pos += n;
    return true;
}

static bool read_u32(cursor *c, uint32_t *v)
{
    const uint8_t *p;
    if (!take(c, 4, &p)) {
        return false;
    }
    *v = dte_load_u32(p);
    return true;
}

static bool read_u64(cursor *c, uint64_t *v)
{
    const uint8_t *p;
    if (!take(c, 8, &p)) {
        return false;
    }
    *v = dte_load_u64(p);
    return true;
}

static bool read_str(cursor *c, dte_str *s)
{
    uint64_t len;
    const uint8_t *p;
    if (!read_u64(c, &len) || !take(c, len, &p)) {
        return false;
    }
    s->ptr = (const char *)p;
    s->len = len;
    return true;
}

/* Encoded size of a scalar of the given type; 0 for strings/arrays/unknown. */
static uint64_t scalar_size(uint32_t type)
{
    switch (type) {
    case DTE_GGUF_U8:
    case DTE_GGUF_I8:
    case DTE_GGUF_BOOL: return 1;
    case DTE_GGUF_U16:
    case DTE_GGUF_I16: return 2;
    case DTE_GGUF_U32:
    case DTE_GGUF_I32:
    case DTE_GGUF_F32: return 4;
    case DTE_GGUF_U64:
    case DTE_GGUF_I64:
    case DTE_GGUF_F64: return 8;
    default: return 0;
    }
}

/* Skip an array body of `count` elements of `type`, checking every element lies in the buffer. */
static int skip_array(cursor *c, uint32_t type, uint64_t count)
{
    if (type == DTE_GGUF_STRING) {
        for (uint64_t i = 0; i < count; i++) {
            dte_str s;
            if (!read_str(c, &s)) {
                return fail(c, DTE_E_TRUNCATED, "string array runs past the end");
            }
        }
        return DTE_OK;
    }
    uint64_t esz = scalar_size(type);
    if (esz == 0) {
        return fail(c, DTE_E_TYPE, "array of unsupported element type");
    }
    const uint8_t *p;
    if (count > (c->size - c->pos) / esz || !take(c, count * esz, &p)) {
        return fail(c, DTE_E_TRUNCATED, "array runs past the end");
    }
    return DTE_OK;
}

static int parse_kv(cursor *c, dte_gguf_kv *kv)
{
    if (!read_str(c, &kv->key)) {
        return fail(c, DTE_E_TRUNCATED, "key runs past the end");
    }
    if (!read_u32(c, &kv->type)) {
        return fail(c, DTE_E_TRUNCATED, "value type runs past the end");
    }
    if (kv->type >= DTE_GGUF_TYPE_COUNT) {
        return fail(c, DTE_E_TYPE, "unknown value type");
    }
    if (kv->type == DTE_GGUF_ARRAY) {
        if (!read_u32(c, &kv->arr_type) || !read_u64(c, &kv->arr_count)) {
            return fail(c, DTE_E_TRUNCATED, "array header runs past the end");
        }
        if (kv->arr_type == DTE_GGUF_ARRAY || kv->arr_type >= DTE_GGUF_TYPE_COUNT) {
            return fail(c, DTE_E_TYPE, "unsupported array element type");
        }
        kv->value = c->buf + c->pos;
        return skip_array(c, kv->arr_type, kv->arr_count);
    }
    kv->value = c->buf + c->pos;
    if (kv->type == DTE_GGUF_STRING) {
        dte_str s;
        return read_str(c, &s) ? DTE_OK : fail(c, DTE_E_TRUNCATED, "string value runs past the end");
    }
    const uint8_t *p;
    return take(c, scalar_size(kv->type), &p) ? DTE_OK : fail(c, DTE_E_TRUNCATED, "value runs past the end");
}

static int parse_tensor_info(cursor *c, dte_gguf_tensor *t)
{
    if (!read_str(c, &t->name)) {
        return fail(c, DTE_E_TRUNCATED, "tensor name runs past the end");
    }
    if (!read_u32(c, &t->n_dims)) {
        return fail(c, DTE_E_TRUNCATED, "tensor info runs past the end");
    }
    if (t->n_dims == 0 || t->n_dims > DTE_GGUF_MAX_DIMS) {
        return fail(c, DTE_E_RANGE, "tensor dimension count out of range");
    }
    uint64_t elems = 1;
    for (uint32_t d = 0; d < DTE_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && !read_u64(c, &ne)) {
            return fail(c, DTE_E_TRUNCATED, "tensor dims run past the end");
        }
        if (ne == 0 || ne > (uint64_t)INT64_MAX / elems) {
            return fail(c, DTE_E_RANGE, "tensor dimension out of range");
        }
        elems *= ne;
        t->ne[d] = (int64_t)ne;
    }
    if (!read_u32(c, &t->type) || !read_u64(c, &t->offset)) {
        return fail(c, DTE_E_TRUNCATED, "tensor info runs past the end");
    }
    if (t->type >= DTE_TYPE_COUNT || dte_type_block_elems(t->type) <= 0) {
        return fail(c, DTE_E_TYPE, "unknown tensor type");
    }
    int64_t row = dte_type_row_bytes(t->type, t->ne[0]);
    if (row <= 0) {
        return fail(c, DTE_E_RANGE, "tensor row length is not a multiple of its block size");
    }
    uint64_t rows = elems / (uint64_t)t->ne[0];
    if (rows > (uint64_t)INT64_MAX / (uint64_t)row) {
        return fail(c, DTE_E_RANGE, "tensor size overflows");
    }
    t->n_bytes = rows * (uint64_t)row;
    return DTE_OK;
}

/* FNV-1a over a dte_str, for the duplicate checks. */
static uint64_t hash_str(dte_str s)
{
    uint64_t h = 1469598103934665603ULL;
    for (uint64_t i = 0; i < s.len; i++) {
        h = (h ^ (uint8_t)s.ptr[i]) * 1099511628211ULL;
    }
    return h;
}

static bool str_same(dte_str a, dte_str b)
{
    if (a.len != b.len) {
        return false;
    }
    for (uint64_t i = 0; i < a.len; i++) {
        if (a.ptr[i] != b.ptr[i]) {
            return false;
        }
    }
    return true;
}

/* True when some name appears twice. names are reached through a stride so kv keys and tensor names share it. */
static int find_duplicates(const uint8_t *base, size_t stride, uint64_t n, bool *dup)
{
    *dup = false;
    if (n < 2) {
        return DTE_OK;
    }
    uint64_t cap = 1;
    while (cap < 2 * n) {
        cap <<= 1;
    }
    uint64_t *slots = dte_alloc(cap * sizeof(uint64_t), 8); /* index + 1; 0 = empty */
    if (!slots) {
        return DTE_E_NOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        dte_str s = *(const dte_str *)(base + i * stride);
        uint64_t h = hash_str(s) & (cap - 1);
        while (slots[h]) {
            if (str_same(*(const dte_str *)(base + (slots[h] - 1) * stride), s)) {
                *dup = true;
                return DTE_OK;
            }
            h = (h + 1) & (cap - 1);
        }
        slots[h] = i + 1;
    }
    return DTE_OK;
}

static int read_header(cursor *c, dte_gguf *g)
{
    const uint8_t *magic;
    if (!take(c, 4, &magic)) {
        return fail(c, DTE_E_TRUNCATED, "file shorter than the GGUF header");
    }
    if (magic[0] != 'G' || magic[1] != 'G' || magic[2] != 'U' || magic[3] != 'F') {
        return fail(c, DTE_E_MAGIC, "not a GGUF file (bad magic)");
    }
    if (!read_u32(c, &g->version) || !read_u64(c, &g->n_tensors) || !read_u64(c, &g->n_kv)) {
        return fail(c, DTE_E_TRUNCATED, "file shorter than the GGUF header");
    }
    if (g->version != 2 && g->version != 3) {
        return fail(c, DTE_E_VERSION, "unsupported GGUF version (want 2 or 3)");
    }
    /* Each kv needs >= 12 bytes (key length + type), each tensor info >= 28: bound the counts by the file. */
    uint64_t rest = c->size - c->pos;
    if (g->n_kv > rest / 12) {
        return fail(c, DTE_E_RANGE, "key/value count larger than the file");
    }
    if (g->n_tensors > rest / 28) {
        return fail(c, DTE_E_RANGE, "tensor count larger than the file");
    }
    return DTE_OK;
}

static int read_alignment(cursor *c, dte_gguf *g)
{
    g->alignment = 32;
    const dte_gguf_kv *kv = dte_gguf_find(g, "general.alignment");
    if (!kv) {
        return DTE_OK;
    }
    if (kv->type != DTE_GGUF_U32) {
        return fail(c, DTE_E_TYPE, "general.alignment is not a u32");
    }
    uint32_t a = dte_load_u32(kv->value);
    if (a == 0 || (a & (a - 1)) != 0) {
        return fail(c, DTE_E_RANGE, "general.alignment is not a power of two");
    }
    g->alignment = a;
    return DTE_OK;
}

static int place_tensors(cursor *c, dte_gguf *g)
{
    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    if (pad > c->size - c->pos) {
        if (g->n_tensors == 0) {
            g->data_offset = c->size;
            return DTE_OK;
        }
        return fail(c, DTE_E_TRUNCATED, "file ends before the tensor data");
    }
    g->data_offset = c->pos + pad;
    uint64_t data_size = c->size - g->data_offset;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        dte_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0) {
            return fail(c, DTE_E_RANGE, "tensor offset not aligned");
        }
        if (t->offset > data_size || t->n_bytes > data_size - t->offset) {
            return fail(c, DTE_E_TRUNCATED, "tensor data runs past the end of the file");
        }
        t->data = g->buf + g->data_offset + t->offset;
    }
    return DTE_OK;
}

/* Heap sort of tensor indices by data offset (no recursion, no libc). */
static void sift_down(const dte_gguf *g, uint64_t *idx, uint64_t root, uint64_t n)
{
    for (uint64_t child; (child = 2 * root + 1) < n; root = child) {
        if (child + 1 < n && g->tensors[idx[child + 1]].offset > g->tensors[idx[child]].offset) {
            child++;
        }
        if (g->tensors[idx[root]].offset >= g->tensors[idx[child]].offset) {
            return;
        }
        uint64_t t = idx[root];
        idx[root] = idx[child];
        idx[child] = t;
    }
}

/* No two tensors' data may share a byte (llama.cpp reads each tensor's range independently; a crafted file could
 * alias a weight onto another). */
static int check_overlap(cursor *c, const dte_gguf *g)
{
    if (g->n_tensors < 2) {
        return DTE_OK;
    }
    uint64_t *idx = dte_alloc((size_t)g->n_tensors * sizeof(uint64_t), 8);
    if (!idx) {
        return fail(c, DTE_E_NOMEM, "out of memory");
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        idx[i] = i;
    }
    for (uint64_t i = g->n_tensors / 2; i-- > 0;) {
        sift_down(g, idx, i, g->n_tensors);
    }
    for (uint64_t n = g->n_tensors; n-- > 1;) {
        uint64_t t = idx[0];
        idx[0] = idx[n];
        idx[n] = t;
        sift_down(g, idx, 0, n);
    }
    for (uint64_t i = 0; i + 1 < g->n_tensors; i++) {
        const dte_gguf_tensor *a = &g->tensors[idx[i]], *b = &g->tensors[idx[i + 1]];
        if (a->n_bytes && b->n_bytes && b->offset < a->offset + a->n_bytes) {
            return fail(c, DTE_E_RANGE, "two tensors' data overlap");
        }
    }
    return DTE_OK;
}

int dte_gguf_parse(const void *buf, uint64_t size, dte_gguf *g, char *err, size_t errlen)
{
    return dte_gguf_parse_prefix(buf, size, size, g, err, errlen);
}

int dte_gguf_parse_prefix(const void *buf, uint64_t avail, uint64_t size, dte_gguf *g, char *err, size_t errlen)
{
    cursor c = {(const uint8_t *)buf, avail < size ? avail : size, 0, err, errlen};
    *g = (dte_gguf){0};
    g->buf = c.buf;
    g->size = size;
    int rc = read_header(&c, g);
    if (rc) {
        return rc;
    }
    g->kv = dte_alloc((size_t)(g->n_kv ? g->n_kv : 1) * sizeof(dte_gguf_kv), 8);
    g->tensors = dte_alloc((size_t)(g->n_tensors ? g->n_tensors : 1) * sizeof(dte_gguf_tensor), 8);
    if (!g->kv || !g->tensors) {
        return fail(&c, DTE_E_NOMEM, "out of memory for the GGUF tables");
    }
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if ((rc = parse_kv(&c, &g->kv[i])) != 0) {
            return rc;
        }
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if ((rc = parse_tensor_info(&c, &g->tensors[i])) != 0) {
            return rc;
        }
    }
    bool dup;
    if ((rc = find_duplicates((const uint8_t *)&g->kv[0].key, sizeof(dte_gguf_kv), g->n_kv, &dup)) != 0) {
        return fail(&c, rc, "out of memory");
    }
    if (dup) {
        return fail(&c, DTE_E_DUPLICATE, "a key appears twice");
    }
    if ((rc = find_duplicates((const uint8_t *)&g->tensors[0].name, sizeof(dte_gguf_tensor), g->n_tensors, &dup)) !=
        0) {
        return fail(&c, rc, "out of memory");
    }
    if (dup) {
        return fail(&c, DTE_E_DUPLICATE, "a tensor name appears twice");
    }
    if ((rc = read_alignment(&c, g)) != 0) {
        return rc;
    }
    c.size = size; /* the header is read: tensor data is checked against the whole file */
    if ((rc = place_tensors(&c, g)) != 0) {
        return rc;
    }
    return check_overlap(&c, g);
}

bool dte_str_eq(dte_str s, const char *cstr)
{
    uint64_t i = 0;
    for (; cstr[i]; i++) {
        if (i >= s.len || s.ptr[i] != cstr[i]) {
            return false;
        }
    }
    return i == s.len;
}

const dte_gguf_kv *dte_gguf_find(const dte_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++) {
        if (dte_str_eq(g->kv[i].key, key)) {
            return &g->kv[i];
        }
    }
    return 0;
}

const dte_gguf_tensor *dte_gguf_find_tensor(const dte_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (dte_str_eq(g->tensors[i].name, name)) {
            return &g->tensors[i];
        }
    }
    return 0;
}

bool dte_gguf_get_u64(const dte_gguf *g, const char *key, uint64_t *out)
{
    const dte_gguf_kv *kv = dte_gguf_find(g, key);
    if (!kv) {
        return false;
    }
    const uint8_t *p = kv->value;
    int64_t s;
    switch (kv->type) {
    case DTE_GGUF_U8: *out = p[0]; return true;
    case DTE_GGUF_U16: *out = (uint64_t)p[0] | (uint64_t)p[1] << 8; return true;
    case DTE_GGUF_U32: *out = dte_load_u32(p); return true;
    case DTE_GGUF_U64: *out = dte_load_u64(p); return true;
    case DTE_GGUF_I8: s = (int8_t)p[0]; break;
    case DTE_GGUF_I16: s = (int16_t)(uint16_t)((uint16_t)p[0] | (uint16_t)p[1] << 8); break;
    case DTE_GGUF_I32: s = (int32_t)dte_load_u32(p); break;
    case DTE_GGUF_I64: s = (int64_t)dte_load_u64(p); break;
    default: return false;
    }
    if (s < 0) {
        return false;
    }
    *out = (uint64_t)s;
    return true;
}

bool dte_gguf_get_u32(const dte_gguf *g, const char *key, uint32_t *out)
{
    uint64_t v;
    if (!dte_gguf_get_u64(g, key, &v) || v > 0xffffffffULL) {
        return false;
    }
    *out = (uint32_t)v;
    return true;
}

bool dte_gguf_get_f32(const dte_gguf *g, const char *key, float *out)
{
    const dte_gguf_kv *kv = dte_gguf_find(g, key);
    if (!kv) {
        return false;
    }
    if (kv->type == DTE_GGUF_F32) {
        *out = dte_load_f32(kv->value);
        return true;
    }
    if (kv->type == DTE_GGUF_F64) {
        *out = (float)load_f64(kv->value);
        return true;
    }
    return false;
}

bool dte_gguf_get_bool(const dte_gguf *g, const char *key, bool *out)
{
    const dte_gguf_kv *kv = dte_gguf_find(g, key);
    if (!kv || kv->type != DTE_GGUF_BOOL) {
        return false;
    }
    *out = kv->value[0] != 0;
    return true;
}

bool dte_gguf_get_str(const dte_gguf *g, const char *key, dte_str *out)
{
    const dte_gguf_kv *kv = dte_gguf_find(g, key);
    if (!kv || kv->type != DTE_GGUF_STRING) {
        return false;
    }
    const uint8_t *cur = kv->value;
    *out = dte_gguf_next_str(&cur);
    return true;
}

bool dte_gguf_get_arr(const dte_gguf *g, const char *key, uint32_t elem_type, uint64_t *count, const uint8_t **data)
{
    const dte_gguf_kv *kv = dte_gguf_find(g, key);
    if (!kv || kv->type != DTE_GGUF_ARRAY || kv->arr_type != elem_type) {
        return false;
    }
    *count = kv->arr_count;
    *data = kv->value;
    return true;
}

dte_str dte_gguf_next_str(const uint8_t **cursor_p)
{
    dte_str s;
    s.len = dte_load_u64(*cursor_p);
    s.ptr = (const char *)*cursor_p + 8;
    *cursor_p += 8 + s.len;
    return s;
}
