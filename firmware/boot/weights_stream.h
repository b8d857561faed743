/* Weights larger than the weights region: the resident prefix (whole 1 MiB chunks, loaded and verified by
 * weights_load) is used in place; every weight matrix that lies past it is read from NVMe into a streaming
 * window just before its part runs (the engine's ensure_resident hook, engine/engine.h), one layer (or the
 * output head) at a time. The engine says which weights each part has (dte_engine_part_weight); this file only
 * reads bytes and places them (dte_engine_place): it never touches engine structures and has no per-layer
 * capacity. The window keeps the last part read, so a model whose only streamed part is one layer reads it once.
 * Small vectors past the prefix (norms) are read once by the engine at open through the read hook.
 * The whole tail was CRC32C-checked once by weights_load; re-reads trust the drive. */
#ifndef DTE_BOOT_WEIGHTS_STREAM_H
#define DTE_BOOT_WEIGHTS_STREAM_H

#include "boot/weights_load.h"
#include "engine/engine.h"

/* Before dte_engine_open: the resident size and the read / ensure_resident hooks for these weights. */
void weights_stream_hooks(const struct weights_loaded *w, dte_engine_params *params, dte_engine_hooks *hooks);

/* After dte_engine_open: list the streamed matrices per part and size the window. 0, or -1 when out of memory. */
int weights_stream_attach(dte_engine *e);

/* `dte: stream reads=.. bytes=.. ms=.. mib_per_s=..` */
void weights_stream_report(void);

#endif /* DTE_BOOT_WEIGHTS_STREAM_H */
