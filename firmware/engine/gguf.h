/* GGUF v2/v3 reader over a byte buffer (the weights region on metal, an mmap of the file hosted).
 *
 * Layout (ggml docs/gguf.md): magic "GGUF", u32 version, u64 tensor_count, u64 kv_count, the key/value pairs,
 * the tensor infos, padding to general.alignment (default 32), then tensor data. Everything little-endian.
 * The parser trusts nothing: every count, length, offset, dimension and type is checked against the buffer and
 * for overflow; a malformed file yields a negative DTE_E_* code and a message, never an out-of-bounds read.
 * Platform-free; allocates its tables with dte_alloc.
 */
#ifndef DTE_ENGINE_GGUF_H
#define DTE_ENGINE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* Value types (ggml gguf.h enum gguf_type). */
enum dte_gguf_type {
    DTE_GGUF_U8 = 0,
    DTE_GGUF_I8 = 1,
    DTE_GGUF_U16 = 2,
    DTE_GGUF_I16 = 3,
    DTE_GGUF_U32 = 4,
    DTE_GGUF_I32 = 5,
    DTE_GGUF_F32 = 6,
    DTE_GGUF_BOOL = 7,
    DTE_GGUF_STRING = 8,
    DTE_GGUF_ARRAY = 9,
    DTE_GGUF_U64 = 10,
    DTE_GGUF_I64 = 11,
    DTE_GGUF_F64 = 12,
    DTE_GGUF_TYPE_COUNT = 13
};

/* Errors: DTE_E_* (errors.h). */

#define DTE_GGUF_MAX_DIMS 4

typedef struct {
    const char *ptr; /* not NUL-terminated */
    uint64_t len;
} dte_str;

typedef struct {
    dte_str key;
    uint32_t type;       /* enum dte_gguf_type */
    uint32_t arr_type;   /* element type when type == DTE_GGUF_ARRAY */
    uint64_t arr_count;  /* element count when type == DTE_GGUF_ARRAY */
    const uint8_t *value; /* the encoded value (for arrays: the first element) */
} dte_gguf_kv;

typedef struct {
    dte_str name;
    uint32_t n_dims;
    int64_t ne[DTE_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length; unused dims are 1 */
    uint32_t type;                 /* enum dte_type */
    uint64_t offset;               /* relative to the data section */
    uint64_t n_bytes;
    const uint8_t *data;
} dte_gguf_tensor;

typedef struct {
    const uint8_t *buf;
    uint64_t size;
    uint32_t version;
    uint64_t n_kv;
    uint64_t n_tensors;
    uint64_t alignment;
    uint64_t data_offset;
    dte_gguf_kv *kv;
    dte_gguf_tensor *tensors;
} dte_gguf;

/* Parse and validate; on failure returns a DTE_E_* code and writes a one-line message into err. */
int dte_gguf_parse(const void *buf, uint64_t size, dte_gguf *out, char *err, size_t errlen);
/* The same for a file of `size` bytes of which only the first `avail` are in buf: the header must lie inside them
 * (else DTE_E_TRUNCATED); tensor data is checked against size, and tensor data pointers past avail must not be
 * read. */
int dte_gguf_parse_prefix(const void *buf, uint64_t avail, uint64_t size, dte_gguf *out, char *err, size_t errlen);

bool dte_str_eq(dte_str s, const char *cstr);
const dte_gguf_kv *dte_gguf_find(const dte_gguf *g, const char *key);
const dte_gguf_tensor *dte_gguf_find_tensor(const dte_gguf *g, const char *name);

/* Typed getters: true when the key exists and converts without loss of range (any integer type for ints,
 * F32/F64 for floats). */
bool dte_gguf_get_u64(const dte_gguf *g, const char *key, uint64_t *out);
bool dte_gguf_get_u32(const dte_gguf *g, const char *key, uint32_t *out);
bool dte_gguf_get_f32(const dte_gguf *g, const char *key, float *out);
bool dte_gguf_get_bool(const dte_gguf *g, const char *key, bool *out);
bool dte_gguf_get_str(const dte_gguf *g, const char *key, dte_str *out);
/* An array of the given element type; *data points at the first encoded element. */
bool dte_gguf_get_arr(const dte_gguf *g, const char *key, uint32_t elem_type, uint64_t *count, const uint8_t **data);
/* Walk a validated string array: reads the string at *cursor and advances it. */
dte_str dte_gguf_next_str(const uint8_t **cursor);

/* Little-endian loads (unaligned-safe). */
uint32_t dte_load_u32(const uint8_t *p);
uint64_t dte_load_u64(const uint8_t *p);
float dte_load_f32(const uint8_t *p);

#endif /* DTE_ENGINE_GGUF_H */
