/* Weight layouts: how a matrix's bytes are arranged in memory for the kernels (docs/kernels.md "Weight layouts").
 *
 * DTE_LAYOUT_GGUF: the tensor bytes exactly as in the GGUF (row after row, ggml-common.h blocks).
 * DTE_LAYOUT_ROWS4: a 2-D tensor of a type with a rows layout (the 32-element types Q8_0 Q4_0 Q4_1 Q5_0 Q5_1) and
 * at least 4 rows is stored as groups of 4 consecutive rows. Group g occupies exactly the bytes rows 4g..4g+3
 * occupy in the GGUF (same offset, same size: the GGUF header and tensor offsets stay valid). Inside a group,
 * block b of the 4 rows are side by side (a "group-block" of 4 blocks' bytes at offset 4 * b * block_bytes) with
 * their fields grouped: field f of the block (offset o_f, size s_f in the ggml block) of row r is at
 * 4 * o_f + r * s_f. Q4_0: 4 fp16 d, then 4 x 16 nibble bytes; Q4_1: 4 d, 4 m, 4 x 16 qs; Q5_0: 4 d, 4 x 4 qh,
 * 4 x 16 qs; Q5_1: 4 d, 4 m, 4 x 4 qh, 4 x 16 qs; Q8_0: 4 d, 4 x 32 qs. Rows past the last full group
 * (n_rows mod 4) stay plain. Which tensors are laid out is a pure function of the GGUF tensor info
 * (dte_layout_applies), so the image builder and the engine agree without a list.
 *
 * Platform-free (firmware and hosted; the hosted library exports pack/unpack/ranges to `dte build`).
 */
#ifndef DTE_ENGINE_LAYOUT_H
#define DTE_ENGINE_LAYOUT_H

#include <stdint.h>

#define DTE_LAYOUT_GGUF 0u
#define DTE_LAYOUT_ROWS4 1u
#define DTE_LAYOUT_GROUP_ROWS 4

/* A tensor a layout transforms, for the image builder (hosted dte_layout_ranges): its bytes in the file. */
typedef struct {
    uint64_t offset;        /* of the tensor data, from the start of the file */
    uint64_t size;          /* bytes */
    uint32_t type;          /* enum dte_type */
    int64_t n_cols, n_rows; /* ne[0], ne[1] */
} dte_layout_range;

/* The tensors `layout` transforms in the GGUF whose first `avail` bytes are at gguf (the whole header among them)
 * and which is file_size bytes long, in file order (engine/layout_list.c): writes at most max ranges to out and
 * returns how many there are (may exceed max: call again with room for them), or a negative DTE_E_* when the GGUF
 * does not parse. Allocates the parse's tables with dte_alloc. */
int64_t dte_layout_list(const void *gguf, uint64_t avail, uint64_t file_size, uint32_t layout, dte_layout_range *out,
                        int64_t max);

/* 1 when `layout` stores a tensor of this type and shape differently from the GGUF (ROWS4: a type with a rows
 * layout, n_dims == 2, n_rows >= 4), else 0. */
int dte_layout_applies(uint32_t layout, uint32_t type, uint32_t n_dims, int64_t n_rows);

/* GGUF bytes (src) -> layout bytes (dst) of n_rows rows of n_cols elements, and back. src and dst do not overlap.
 * Full groups are transformed, the n_rows mod 4 remainder copied, so a tensor can be processed in pieces of whole
 * groups. DTE_LAYOUT_GGUF, or a type without a rows layout: a plain copy. 0, or -1 for a bad type/shape. */
int dte_layout_pack(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *src, void *dst);
int dte_layout_unpack(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *src, void *dst);
/* The same in place, through tmp (dte_layout_tmp_bytes bytes: one group). */
int dte_layout_pack_inplace(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, void *data, void *tmp);
int64_t dte_layout_tmp_bytes(uint32_t type, int64_t n_cols);

/* Row `row` of a tensor held in `layout`, dequantized to n_cols floats (get_rows / the embedding lookup). */
void dte_layout_dequantize_row(uint32_t layout, uint32_t type, int64_t n_cols, int64_t n_rows, const void *data,
                               int64_t row, float *dst);
/* Row r's (0..3) block of a ROWS4 group-block, as the plain ggml block (dte_type_block_bytes bytes). */
void dte_layout_block(uint32_t type, const void *group_block, int r, void *block);

#endif
