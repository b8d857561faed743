/* NVMe driver (NVM Express Base Specification 2.0): polled, no interrupts, reads only.
 *
 * Use:
 *     struct nvme_config cfg = { .io_queues = workers, .queue_depth = 64 };
 *     struct nvme_ctrl *c;
 *     if (nvme_open(bar0, &cfg, &c) == NVME_OK)
 *         rc = nvme_read(c, 1, lba, bytes, dst);        -- qid 1..io_queues, one queue per reading core
 *
 * A queue is used by one core at a time; different queues may be used concurrently without locks.
 * DMA buffers must be identity-mapped (pointer == physical address), as on the firmware after boot.
 */
#ifndef DTE_DRIVERS_NVME_H
#define DTE_DRIVERS_NVME_H

#include <stddef.h>
#include <stdint.h>

enum nvme_error {
    NVME_OK = 0,
    NVME_ERR_NOT_READY = -1,    /* CSTS.RDY did not follow CC.EN within CAP.TO */
    NVME_ERR_FATAL = -2,        /* CSTS.CFS: controller fatal status */
    NVME_ERR_TIMEOUT = -3,      /* a command did not complete within the command timeout */
    NVME_ERR_COMMAND = -4,      /* a command completed with a non-zero status (logged by name) */
    NVME_ERR_NO_MEMORY = -5,
    NVME_ERR_ARGUMENT = -6,     /* bad queue id, misaligned buffer, range beyond the namespace */
    NVME_ERR_UNSUPPORTED = -7,  /* no NVM command set, page size, no namespace */
    NVME_ERR_NO_DEVICE = -8,    /* registers read all-ones: nothing decodes the BAR */
    NVME_ERR_FAILED = -9,       /* controller was marked failed by an earlier error */
};

struct nvme_config {
    uint32_t io_queues;          /* I/O queue pairs to create (>= 1; fewer if the controller grants fewer) */
    uint32_t queue_depth;        /* commands in flight per queue; 0 = 64; clamped to CAP.MQES */
    uint32_t command_timeout_ms; /* no-progress timeout for commands; 0 = 5000 */
    uint32_t nsid;               /* namespace to read; 0 = first active namespace */
};

struct nvme_info {
    char serial[21];             /* Identify Controller SN, trailing spaces removed */
    char model[41];              /* MN */
    char firmware[9];            /* FR */
    uint16_t vendor_id;
    uint32_t version;            /* VS register */
    uint32_t nsid;
    uint64_t namespace_blocks;   /* NSZE */
    uint32_t block_bytes;        /* 2^LBADS of the formatted LBA format */
    uint32_t max_transfer_bytes; /* per command: MDTS, capped by one PRP list page */
    uint32_t page_bytes;         /* memory page size chosen for CC.MPS */
    uint32_t doorbell_stride;    /* bytes between doorbells: 4 << CAP.DSTRD */
    uint32_t max_queue_entries;  /* CAP.MQES + 1 */
    uint32_t ready_timeout_ms;   /* CAP.TO * 500 */
    uint32_t io_queues;          /* I/O queue pairs created */
    uint32_t queue_depth;        /* commands in flight per I/O queue */
};

struct nvme_ctrl;

/* Reset the controller behind `bar0`, bring it up, identify it and its namespace and create the I/O queues. */
int nvme_open(volatile void *bar0, const struct nvme_config *cfg, struct nvme_ctrl **out);

const struct nvme_info *nvme_get_info(const struct nvme_ctrl *ctrl);

/* Read `byte_count` bytes starting at logical block `lba` into `dst` (4-byte aligned) on I/O queue `qid`
 * (1..io_queues). Splits into max_transfer_bytes commands, keeps up to queue_depth in flight; a byte count that is
 * not a multiple of the block size reads the last block into a bounce buffer and copies the part asked for. */
int nvme_read(struct nvme_ctrl *ctrl, uint32_t qid, uint64_t lba, uint64_t byte_count, void *dst);

/* Read `bytes` at namespace byte offset `byte_offset` into dst on queue `qid`: like nvme_read, and a start inside a
 * block is read through the queue's bounce buffer too. byte_offset and dst must be multiples of 4 (dword PRPs). */
int nvme_read_at(struct nvme_ctrl *ctrl, uint32_t qid, uint64_t byte_offset, uint64_t bytes, void *dst);

/* Clear CC.EN and wait for CSTS.RDY = 0 (bounded by CAP.TO). The controller can be opened again afterwards. */
int nvme_disable(struct nvme_ctrl *ctrl);

/* "NVME_ERR_TIMEOUT" etc. */
const char *nvme_error_name(int err);

/* Name of a completion status (Base 2.0 Figures 94-101), e.g. "LBA Out of Range"; "Unknown Status" otherwise. */
const char *nvme_status_name(uint8_t sct, uint8_t sc);

/* Find the controller the board's `storage.select` names among enumerated PCI functions of class 01h/08h/02h
 * (mass storage / NVM / NVMe), enable memory decode + bus mastering, and nvme_open it through BAR0.
 * select: "first" (or NULL/""), "pci:BB:DD.F" (hex, segment 0), or "serial:TEXT" (Identify Controller SN).
 * Call pci_enumerate() first. Logs which controller was chosen, or why none was. */
int nvme_open_selected(const char *select, const struct nvme_config *cfg, struct nvme_ctrl **out);

#endif /* DTE_DRIVERS_NVME_H */
