/* After ExitBootServices: the GGUF from the weights LBA into the weights region with our NVMe driver
 * (drivers/storage.h), every 1 MiB chunk checked against /DTE/WEIGHTS.MAN's CRC32C. When the model is larger
 * than the region, the prefix that fits stays resident, the rest is verified once now and streamed later
 * (boot/weights_stream.h). */
#ifndef DTE_BOOT_WEIGHTS_LOAD_H
#define DTE_BOOT_WEIGHTS_LOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/weights_manifest.h"

struct nvme_ctrl;

struct weights_loaded {
    const uint8_t *data;        /* the GGUF's first resident_bytes bytes, in the weights region */
    uint64_t model_size;
    uint64_t resident_bytes;    /* == model_size unless streaming */
    uint32_t layout;            /* DTE_LAYOUT_* of the bytes (WEIGHTS.MAN): the engine's weights_layout */
    bool streaming;
    struct nvme_ctrl *ctrl;     /* the open controller (for streaming reads, I/O queue 1) */
    uint64_t byte_offset;       /* where the GGUF starts on the namespace */
    uint64_t read_ns, verify_ns;
};

/* 0 when the weights are in memory and verified; otherwise logs `dte: weights status=missing|corrupt|unreadable
 * ...` and returns -1. Takes what the weights region has left; the NVMe driver logs its own lines. */
int weights_load(const struct weights_manifest *man, const void *rsdp, struct weights_loaded *out);

#endif /* DTE_BOOT_WEIGHTS_LOAD_H */
