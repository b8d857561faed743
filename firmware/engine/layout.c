/* Weight layouts (layout.h, docs/kernels.md "Weight layouts"): the ROWS4 transform between GGUF rows and groups of
 * 4 rows with their blocks side by side and their fields grouped, in both directions, and row reads from it.
 * Block layouts are ggml's (ggml-common.h block_q4_0 ... block_q8_0, quants_blocks.h). No libc. */
#include "layout.h"

#include "quants.h"
#include "quants_blocks.h"

#include <stdbool.h>

#define ROWS DTE_LAYOUT_GROUP_ROWS

/* The fields of a ggml block in order (sizes in bytes; offsets follow): a type has a rows layout iff it has a
 * field list. */
typedef struct {
    int n;
    int size[4];
} fields;

static bool fields_of(uint32_t type, fields *f)
{
    switch (type) {
    case DTE_TYPE_Q4_0: *f = (fields){2, {2, 16, 0, 0}}; return true;     /* d, qs */
    case DTE_TYPE_Q4_1: *f = (fields){3, {2, 2, 16, 0}}; return true;     /* d, m, qs */
    case DTE_TYPE_Q5_0: *f = (fields){3, {2, 4, 16, 0}}; return true;     /* d, qh, qs */
    case DTE_TYPE_Q5_1: *f = (fields){4, {2, 2, 4, 16}}; return true;     /* d, m, qh, qs */
    case DTE_TYPE_Q8_0: *f = (fields){2, {2, 32, 0, 0}}; return true;     /* d, qs */
    default: return false;
    }
}

int dte_layout_applies(uint32_t layout, uint32_t type, uint32_t n_dims, int64_t n_rows)
{
    fields f;
    return layout == DTE_LAYOUT_ROWS4 && fields_of(type, &f) && n_dims == 2 && n_rows >= ROWS;
}

/* One group (ROWS rows of nb blocks, row_bytes apart in `plain`) between the plain and the grouped form. Called
 * with literal field sizes so that every copy is a fixed-size move. */
static inline __attribute__((always_inline)) void move_group(uint8_t *plain, uint8_t *grouped, int64_t nb,
                                                             int64_t row_bytes, int bb, int nf, int s0, int s1, int s2,
                                                             int s3, bool pack)
{
    const int size[4] = {s0, s1, s2, s3};
    for (int64_t b = 0; b < nb; ++b) {
        uint8_t *gb = grouped + b * ROWS * bb;
        for (int r = 0; r < ROWS; ++r) {
            uint8_t *blk = plain + r * row_bytes + b * bb;
            int o = 0;
            for (int k = 0; k < nf; ++k) {
                uint8_t *g = gb + ROWS * o + r * size[k];
                if (pack) {
                    __builtin_memcpy(g, blk + o, (size_t)size[k]);
                } else {
                    __builtin_memcpy(blk + o, g, (size_t)size[k]);
                }
                o += size[k];
            }
        }
    }
}

static void move_group_type(uint32_t type, uint8_t *plain, uint8_t *grouped, int64_t nb, int64_t row_bytes, bool pack)
{
    switch (type) {
    case DTE_TYPE_Q4_0: move_group(plain, grouped, nb, row_bytes, 18, 2, 2, 16, 0, 0, pack); break;
    case DTE_TYPE_Q4_1: move_group(plain, grouped, nb, row_bytes, 20, 3, 2, 2, 16, 0, pack); break;
    case DTE_TYPE_Q5_0: move_group(plain, grouped, nb, row_bytes, 22, 3, 2, 4, 16, 0, pack); break;
    case DTE_TYPE_Q5_1: move_group(plain, grouped, nb, row_bytes, 24, 4, 2, 2, 4, 16, pack); break;
    case DTE_TYPE_Q8_0: move_group(plain, grouped, nb, row_bytes, 34, 2, 2, 32, 0, 0, pack); break;
    default: break;
    }
}

/* Checks shared by the transforms: row bytes (>= 0), or -1. */
static int64_t shape_bytes(uint32_t type, int64_t n_cols, int64_t n_rows)
{
    int64_t rb = dte_type_row_bytes(type, n_cols);
    if (rb < 0 || n_rows < 0 || (rb > 0 && n_rows > INT64_MAX / rb)) {
        return -1;
    }
    return rb;
}

static int transform(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *src, void *dst,
                     bool pack)
{
    const int64_t rb = shape_bytes(type, n_cols, n_rows);
    if (rb < 0) {
        return -1;
    }
    fields f;
    const int64_t full = layout == DTE_LAYOUT_ROWS4 && fields_of(type, &f) ? n_rows / ROWS * ROWS : 0;
    const int64_t nb = n_cols / dte_type_block_elems(type);
    uint8_t *out = dst;
    const uint8_t *in = src;
    for (int64_t r = 0; r < full; r += ROWS) {
        uint8_t *from = (uint8_t *)(uintptr_t)(in + r * rb); /* read only: the direction says which side is read */
        if (pack) {
            move_group_type(type, from, out + r * rb, nb, rb, true);
        } else {
            move_group_type(type, out + r * rb, from, nb, rb, false);
        }
    }
    if (n_rows > full) {
        __builtin_memcpy(out + full * rb, in + full * rb, (size_t)((n_rows - full) * rb));
    }
    return 0;
}

int dte_layout_pack(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *src, void *dst)
{
    return transform(layout, type, n_cols, n_rows, src, dst, true);
}

int dte_layout_unpack(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *src, void *dst)
{
    return transform(layout, type, n_cols, n_rows, src, dst, false);
}

int64_t dte_layout_tmp_bytes(uint32_t type, int64_t n_cols)
{
    const int64_t rb = dte_type_row_bytes(type, n_cols);
    return rb < 0 ? -1 : ROWS * rb;
}

int dte_layout_pack_inplace(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, void *data, void *tmp)
{
    const int64_t rb = shape_bytes(type, n_cols, n_rows);
    if (rb < 0) {
        return -1;
    }
    fields f;
    if (layout != DTE_LAYOUT_ROWS4 || !fields_of(type, &f)) {
        return 0;
    }
    uint8_t *d = data;
    for (int64_t r = 0; r + ROWS <= n_rows; r += ROWS) {
        __builtin_memcpy(tmp, d + r * rb, (size_t)(ROWS * rb));
        move_group_type(type, tmp, d + r * rb, rb / dte_type_block_bytes(type), rb, true);
    }
    return 0;
}

void dte_layout_block(uint32_t type, const void *group_block, int r, void *block)
{
    fields f;
    if (!fields_of(type, &f)) {
        return;
    }
    const uint8_t *gb = group_block;
    uint8_t *out = block;
    int o = 0;
    for (int k = 0; k < f.n; ++k) {
        for (int i = 0; i < f.size[k]; ++i) {
            out[o + i] = gb[ROWS * o + r * f.size[k] + i];
        }
        o += f.size[k];
    }
}

void dte_layout_dequantize_row(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *data,
                               int64_t row, float *dst)
{
    const int64_t rb = dte_type_row_bytes(type, n_cols);
    const uint8_t *d = data;
    fields f;
    if (rb < 0 || layout != DTE_LAYOUT_ROWS4 || !fields_of(type, &f) || row >= n_rows / ROWS * ROWS) {
        dte_dequantize_row(type, d + row * rb, dst, n_cols);
        return;
    }
    const int64_t be = dte_type_block_elems(type), bb = dte_type_block_bytes(type);
    const uint8_t *group = d + row / ROWS * ROWS * rb;
    uint8_t block[sizeof(dte_block_q8_0)];
    for (int64_t b = 0; b < n_cols / be; ++b) {
        dte_layout_block(type, group + b * ROWS * bb, (int)(row % ROWS), block);
        dte_dequantize_row(type, block, dst + b * be, be);
    }
}
