/* Driver-internal NVMe state shared by nvme.c (bring-up), nvme_queue.c (submission/completion) and nvme_read.c. */
#ifndef DTE_DRIVERS_NVME_INTERNAL_H
#define DTE_DRIVERS_NVME_INTERNAL_H

#include <stdbool.h>

#include "drivers/nvme.h"
#include "drivers/nvme_spec.h"

#define NVME_ADMIN_ENTRIES 32u

/* One outstanding command: what it asked for, for error reports. */
struct nvme_slot {
    uint64_t lba;
    uint32_t blocks;
    uint8_t opcode;
    bool busy;
};

/* A submission/completion queue pair (Base 2.0 section 3.3: circular queues, phase tag in each CQE). */
struct nvme_queue {
    struct nvme_ctrl *ctrl;
    uint16_t qid;
    uint16_t entries;            /* slots in SQ and CQ; at most entries - 1 commands in flight */
    volatile struct nvme_sqe *sq;
    volatile struct nvme_cqe *cq;
    uint32_t sq_tail_doorbell;   /* BAR offsets */
    uint32_t cq_head_doorbell;
    uint16_t sq_tail;
    uint16_t cq_head;
    uint16_t phase;              /* phase tag value that marks a new CQE */
    uint16_t in_flight;
    uint16_t max_in_flight;
    uint16_t free_count;
    uint16_t *free_cids;         /* stack of free command identifiers */
    struct nvme_slot *slots;     /* indexed by CID */
    uint64_t *prp_lists;         /* one page of PRP entries per CID */
    uint8_t *bounce;             /* one block, for reads whose byte count ends inside a block */
    uint32_t last_dw0;           /* DW0 of the last completion (admin results) */
    int error;                   /* first error seen while reaping (NVME_ERR_*), 0 if none */
};

struct nvme_ctrl {
    volatile void *bar;
    uint64_t cap;
    uint64_t timeout_ns;         /* command no-progress timeout */
    uint64_t ready_timeout_ns;   /* CAP.TO */
    uint32_t page_shift;
    bool failed;
    struct nvme_info info;
    struct nvme_queue admin;
    struct nvme_queue *io;       /* io[0] is qid 1 */
    uint8_t *identify_buf;       /* one page */
};

int nvme_queue_init(struct nvme_ctrl *c, struct nvme_queue *q, uint16_t qid, uint16_t entries, bool with_io_buffers);
/* Place a command (CID filled in) in the SQ; does not ring the doorbell. Needs a free CID. */
uint16_t nvme_queue_push(struct nvme_queue *q, struct nvme_sqe *cmd, uint64_t lba, uint32_t blocks);
void nvme_queue_ring(struct nvme_queue *q);
/* Reap completions until at most `target_in_flight` remain; no-progress deadline is the controller's timeout.
 * Returns NVME_OK or the first error (q->error also holds it). */
int nvme_queue_drain_to(struct nvme_queue *q, uint16_t target_in_flight);
/* Submit one admin command and wait for it. */
int nvme_admin_sync(struct nvme_ctrl *c, struct nvme_sqe *cmd);
/* Fill PRP1/PRP2 for `len` bytes at `buf`, using `list` (one page) when more than two pages are touched. */
void nvme_build_prps(const struct nvme_ctrl *c, struct nvme_sqe *cmd, uint64_t buf, uint64_t len, uint64_t *list);
/* Log the controller as failed with a reason and return `err`. */
int nvme_fail(struct nvme_ctrl *c, int err, const char *what);

#endif /* DTE_DRIVERS_NVME_INTERNAL_H */
