/* Weights larger than the weights region: the resident prefix (whole 1 MiB chunks, loaded and verified by
 * weights_load) is used in place; every weight matrix that lies past it is read from NVMe into a streaming
 * window just before its layer runs (the engine's ensure_resident hook, engine/llama.h), one layer (or the
 * output head) at a time. The window keeps the last part read, so a model whose only streamed part is one
 * layer reads it once. Small vectors past the prefix (norms) are copied once into memory of their own.
 * The whole tail was CRC32C-checked once by weights_load; re-reads trust the drive. */
#ifndef DTE_BOOT_WEIGHTS_STREAM_H
#define DTE_BOOT_WEIGHTS_STREAM_H

#include "boot/weights_load.h"
#include "engine/gguf.h"
#include "engine/llama.h"

/* After dte_gguf_parse, before dte_llama_load: check that the metadata and token_embd are resident and copy the
 * non-resident vectors into memory. 0, or -1 when they do not fit. */
int weights_stream_prepare(dte_gguf *g, const struct weights_loaded *w);

/* After dte_llama_load: collect the streamed matrices per layer, size the window, install the engine hook.
 * 0, or -1 when out of memory. */
int weights_stream_attach(dte_llama_model *m);

/* `dte: stream parts=.. window_bytes=.. reads=.. bytes=.. ms=.. mib_per_s=..` */
void weights_stream_report(void);

#endif /* DTE_BOOT_WEIGHTS_STREAM_H */
