/* Loading the weights from NVMe after ExitBootServices: PCI discovery (ACPI MCFG -> ECAM, else 0xCF8 ports),
 * controller selection (board storage.select), parallel streaming reads (one I/O queue per worker) and the
 * per-chunk CRC32C check against /DTE/WEIGHTS.MAN (docs/design.md).
 *
 * Firmware use, after ExitBootServices (RSDP and WEIGHTS.MAN captured before it):
 *     struct storage_load req = { .pci = STORAGE_PCI_ACPI, .rsdp = rsdp, .select = DTE_STORAGE_SELECT,
 *         .byte_offset = weights_lba * 512, .bytes = model_size, .dst = weights_region,
 *         .chunk_size = man->chunk_size, .chunk_count = man->chunk_count, .crc32c = man->crc32c };
 *     struct storage_result res;
 *     if (storage_load(&req, &res) != 0) -> failure exit (lines were already logged)
 */
#ifndef DTE_DRIVERS_STORAGE_H
#define DTE_DRIVERS_STORAGE_H

#include <stdint.h>

#include "drivers/nvme.h"

enum storage_pci {
    STORAGE_PCI_ACPI = 0,          /* ECAM from the MCFG reachable from `rsdp`; ports when there is none */
    STORAGE_PCI_PORTS = 1,         /* legacy configuration mechanism #1 */
    STORAGE_PCI_ENUMERATED = 2,    /* the caller already ran pci_init_* + pci_enumerate (tests) */
};

struct storage_load {
    enum storage_pci pci;
    const void *rsdp;              /* ACPI RSDP from the UEFI configuration table */
    const char *select;            /* "first", "pci:BB:DD.F" or "serial:SN" */
    uint64_t byte_offset;          /* where the GGUF starts on the namespace, in bytes (weights_lba * 512) */
    uint64_t bytes;                /* model size */
    void *dst;                     /* 4-byte aligned, `bytes` long (the weights region) */
    uint32_t chunk_size;           /* CRC32C chunking (1 MiB); 0 = no verification */
    uint32_t chunk_count;
    const uint32_t *crc32c;        /* chunk_count expected values */
    uint32_t max_queues;           /* cap on I/O queues (0 = one per dte_worker_count() worker) */
    uint32_t queue_depth;          /* 0 = driver default */
};

struct storage_result {
    struct nvme_ctrl *ctrl;        /* open controller, for later streaming reads (weights larger than RAM) */
    uint64_t read_ns;
    uint64_t verify_ns;
    uint32_t queues;
    int64_t bad_chunk;             /* first chunk whose CRC32C differs, -1 if none */
};

/* 0 on success; a negative NVME_ERR_* when the drive could not be read; STORAGE_ERR_CORRUPT when a chunk's
 * CRC32C differs (the chunk number is logged). Every failure is logged as a `dte: ...` line. */
#define STORAGE_ERR_CORRUPT (-100)
#define STORAGE_ERR_NO_PCI (-101)
int storage_load(const struct storage_load *req, struct storage_result *out);

/* Read `bytes` at namespace byte offset `byte_offset` (any multiple of 4; the head and tail may fall inside a
 * block) into dst on I/O queue `qid`. For streaming weights after the initial load; allocates nothing (the
 * queue's bounce buffer takes partial blocks), so it can be called any number of times. Same as nvme_read_at. */
int storage_read_bytes(struct nvme_ctrl *ctrl, uint32_t qid, uint64_t byte_offset, uint64_t bytes, void *dst);

#endif /* DTE_DRIVERS_STORAGE_H */
