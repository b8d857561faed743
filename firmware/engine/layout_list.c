/* dte_layout_list (engine/layout.h): the tensors a weight layout transforms, from the GGUF's tensor infos (the
 * engine's own parser, engine/gguf.h) filtered by dte_layout_applies, in file order. Platform-free: the image
 * builder lists them through the hosted library (dte_layout_ranges), the firmware to hash a laid-out model in GGUF
 * order (boot/attest.c). */
#include "engine/gguf.h"
#include "engine/layout.h"

/* Insertion sort by offset: GGUF writers list tensors in file order, so this is one pass in practice. */
static void sort_by_offset(dte_layout_range *r, int64_t n)
{
    for (int64_t i = 1; i < n; i++) {
        dte_layout_range x = r[i];
        int64_t j = i;
        for (; j > 0 && r[j - 1].offset > x.offset; j--) {
            r[j] = r[j - 1];
        }
        r[j] = x;
    }
}

static int64_t collect(const dte_gguf *g, uint32_t layout, dte_layout_range *out, int64_t max)
{
    int64_t n = 0;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const dte_gguf_tensor *t = &g->tensors[i];
        if (dte_layout_applies(layout, t->type, t->n_dims, t->ne[1])) {
            if (n < max) {
                out[n] = (dte_layout_range){.offset = g->data_offset + t->offset,
                                            .size = t->n_bytes,
                                            .type = t->type,
                                            .n_cols = t->ne[0],
                                            .n_rows = t->ne[1]};
            }
            n++;
        }
    }
    return n;
}

int64_t dte_layout_list(const void *gguf, uint64_t avail, uint64_t file_size, uint32_t layout, dte_layout_range *out,
                        int64_t max)
{
    dte_gguf g;
    char err[8];
    int64_t n = dte_gguf_parse_prefix(gguf, avail, file_size, &g, err, sizeof err);
    if (n == 0) {
        n = collect(&g, layout, out, max);
        /* sorting needs them all: with a short out, the caller asks again with room for n */
        if (n <= max) {
            sort_by_offset(out, n);
        }
    }
    return n;
}
