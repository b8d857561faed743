/* Benchmark only (build option --bench-blockio): read the weights through the firmware's own
 * EFI_BLOCK_IO_PROTOCOL (UEFI 2.10 §13.9, e.g. OVMF's NVMe driver) before ExitBootServices, for the
 * "UEFI Block I/O vs our driver" comparison in docs/benchmarks.md. */
#ifndef DTE_BOOT_BLOCKIO_BENCH_H
#define DTE_BOOT_BLOCKIO_BENCH_H

#include <stdint.h>

#include "boot/efi.h"

struct blockio_bench {
    uint64_t bytes;      /* how much was read (0: not measured) */
    uint64_t ns;
    uint32_t block_size;
};

/* Read `bytes` starting at byte `offset` of the whole disk whose data at `offset` begins with "GGUF" into dst
 * (page-aligned, at least bytes + one block). Returns 0 and fills `out`, or -1 after logging why. */
int blockio_bench_read(efi_boot_services *bs, uint64_t offset, uint64_t bytes, uint8_t *dst, struct blockio_bench *out);

#endif /* DTE_BOOT_BLOCKIO_BENCH_H */
