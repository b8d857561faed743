/* The weight layout functions `dte build` calls through ctypes (src/dte_build/layout.py): the engine's own
 * transform (engine/layout.h: dte_layout_pack / dte_layout_unpack, exported as they are) and the list of the
 * tensors a layout transforms, read with the engine's own GGUF parser. */
#ifndef DTE_HOSTED_DTE_HOST_LAYOUT_H
#define DTE_HOSTED_DTE_HOST_LAYOUT_H

#include <stdint.h>

#include "engine/layout.h"

/* The tensors `layout` transforms in the GGUF whose first `avail` bytes are at gguf (the whole header must be
 * among them) and which is file_size bytes long, in file order: writes at most max ranges to out and returns how
 * many there are (may exceed max), or a negative DTE_E_* when the GGUF does not parse. */
int64_t dte_layout_ranges(const void *gguf, uint64_t avail, uint64_t file_size, uint32_t layout, dte_layout_range *out,
                          int64_t max);

#endif
