/* Before ExitBootServices: the binary weights manifest /DTE/WEIGHTS.MAN (docs/design.md, "Manifest") read from
 * the ESP the firmware was loaded from, and the ACPI RSDP (for the MCFG/ECAM lookup after ExitBootServices). */
#ifndef DTE_BOOT_WEIGHTS_MANIFEST_H
#define DTE_BOOT_WEIGHTS_MANIFEST_H

#include <stdint.h>

#include "boot/efi.h"

#define WEIGHTS_MAN_MAGIC "DTEWMAN2"
/* magic[8] u64 size, u64 lba, u32 chunk_size, u32 chunk_count, sha256[32], u32 layout, u32 reserved */
#define WEIGHTS_MAN_HEAD_BYTES 72u

struct weights_manifest {
    uint64_t model_size;      /* 0: the image has no model */
    uint64_t weights_lba;     /* in the image's sectors (DTE_SECTOR_SIZE bytes) */
    uint32_t chunk_size;
    uint32_t chunk_count;
    uint8_t sha256[32];       /* of the GGUF file (the model's identity), whatever the layout on disk */
    uint32_t layout;          /* DTE_LAYOUT_* (engine/layout.h): how the partition stores the tensors */
    const uint32_t *crc32c;   /* chunk_count values of the bytes on disk, kept in the runtime region */
};

/* Read and check \DTE\WEIGHTS.MAN through LoadedImage->DeviceHandle's Simple File System. Returns 0, or -1 after
 * logging why (`dte: manifest error=... text="..."`). */
int weights_manifest_read(efi_handle image, efi_system_table *st, struct weights_manifest *out);

/* Check a manifest held in memory (`bytes` long); fills `out` (crc32c points into `data`). 0 or -1 with a reason. */
int weights_manifest_parse(const uint8_t *data, uint64_t bytes, struct weights_manifest *out, const char **why);

#endif /* DTE_BOOT_WEIGHTS_MANIFEST_H */
