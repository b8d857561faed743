/* NVMe queue mechanics: submission, polled completion with phase tags, PRPs, status names.
 * NVM Express Base Specification 2.0, sections 3.3 (queue mechanics), 4.2-4.6 (entries), 4.3 (PRPs). */
#include "drivers/drvlog.h"
#include "drivers/mmio.h"
#include "drivers/nvme_internal.h"

#include "runtime/platform.h"

int nvme_queue_init(struct nvme_ctrl *c, struct nvme_queue *q, uint16_t qid, uint16_t entries, bool with_io_buffers)
{
    uint32_t page = 1u << c->page_shift;
    uint32_t stride = c->info.doorbell_stride;
    uint16_t depth = (uint16_t)(entries - 1);

    q->ctrl = c;
    q->qid = qid;
    q->entries = entries;
    q->sq = dte_alloc((size_t)entries * sizeof(struct nvme_sqe), page);
    q->cq = dte_alloc((size_t)entries * sizeof(struct nvme_cqe), page);
    q->slots = dte_alloc((size_t)depth * sizeof(struct nvme_slot), 64);
    q->free_cids = dte_alloc((size_t)depth * sizeof(uint16_t), 64);
    if (!q->sq || !q->cq || !q->slots || !q->free_cids) {
        return NVME_ERR_NO_MEMORY;
    }
    if (with_io_buffers) {
        q->prp_lists = dte_alloc((size_t)depth * page, page);
        q->bounce = dte_alloc(c->info.block_bytes > page ? c->info.block_bytes : page, page);
        if (!q->prp_lists || !q->bounce) {
            return NVME_ERR_NO_MEMORY;
        }
    }
    /* Doorbells (section 3.1.3.x, Figure 33): SQ y tail at 1000h + 2y*stride, CQ y head at 1000h + (2y+1)*stride. */
    q->sq_tail_doorbell = NVME_REG_DOORBELL_BASE + (2u * qid) * stride;
    q->cq_head_doorbell = NVME_REG_DOORBELL_BASE + (2u * qid + 1u) * stride;
    q->sq_tail = 0;
    q->cq_head = 0;
    q->phase = 1; /* CQ memory starts zeroed; the controller posts the first pass with P = 1 (section 4.6) */
    q->in_flight = 0;
    q->max_in_flight = depth;
    for (uint16_t i = 0; i < depth; i++) {
        q->free_cids[i] = (uint16_t)(depth - 1 - i);
    }
    q->free_count = depth;
    q->error = NVME_OK;
    return NVME_OK;
}

uint16_t nvme_queue_push(struct nvme_queue *q, struct nvme_sqe *cmd, uint64_t lba, uint32_t blocks)
{
    uint16_t cid = q->free_cids[--q->free_count];
    struct nvme_slot *slot = &q->slots[cid];

    slot->lba = lba;
    slot->blocks = blocks;
    slot->opcode = (uint8_t)(cmd->cdw0 & 0xFFu);
    slot->busy = true;
    cmd->cdw0 = (cmd->cdw0 & 0xFFFFu) | ((uint32_t)cid << 16);
    q->sq[q->sq_tail] = *cmd;
    q->sq_tail = (uint16_t)((q->sq_tail + 1u) % q->entries);
    q->in_flight++;
    return cid;
}

void nvme_queue_ring(struct nvme_queue *q)
{
    mmio_write32(q->ctrl->bar, q->sq_tail_doorbell, q->sq_tail);
}

static void log_command_error(struct nvme_queue *q, const struct nvme_slot *slot, uint16_t cid, uint16_t status)
{
    drv_logf("dte: nvme error=command status=\"%s\" sct=0x%x sc=0x%x qid=%u cid=%u opcode=0x%x lba=%llu blocks=%u",
             nvme_status_name(NVME_STATUS_SCT(status), NVME_STATUS_SC(status)), NVME_STATUS_SCT(status),
             NVME_STATUS_SC(status), q->qid, cid, slot->opcode, (unsigned long long)slot->lba, slot->blocks);
}

/* Consume every CQE whose phase tag is current; returns how many. */
static uint16_t reap(struct nvme_queue *q)
{
    uint16_t n = 0;
    for (;;) {
        volatile struct nvme_cqe *e = &q->cq[q->cq_head];
        uint16_t status = e->status;
        if (NVME_STATUS_PHASE(status) != q->phase) {
            break;
        }
        MMIO_BARRIER(); /* read the rest of the entry only after its phase tag (x86 keeps loads ordered) */
        uint16_t cid = e->cid;
        if (cid >= q->max_in_flight || !q->slots[cid].busy) {
            nvme_fail(q->ctrl, NVME_ERR_FATAL, "completion for a command that is not outstanding");
            q->error = q->error ? q->error : NVME_ERR_FATAL;
        } else {
            if ((status >> 1) != 0) {
                log_command_error(q, &q->slots[cid], cid, status);
                if (!q->error) {
                    q->error = NVME_ERR_COMMAND;
                }
            }
            q->last_dw0 = e->dw0;
            q->slots[cid].busy = false;
            q->free_cids[q->free_count++] = cid;
            q->in_flight--;
        }
        q->cq_head = (uint16_t)(q->cq_head + 1u);
        if (q->cq_head == q->entries) {
            q->cq_head = 0;
            q->phase ^= 1u;
        }
        n++;
    }
    if (n) {
        mmio_write32(q->ctrl->bar, q->cq_head_doorbell, q->cq_head);
    }
    return n;
}

static void log_timeout(struct nvme_queue *q)
{
    uint16_t oldest = 0;
    while (oldest < q->max_in_flight && !q->slots[oldest].busy) {
        oldest++;
    }
    const struct nvme_slot *slot = &q->slots[oldest < q->max_in_flight ? oldest : 0];
    drv_logf("dte: nvme error=timeout qid=%u in_flight=%u cid=%u opcode=0x%x lba=%llu timeout_ms=%llu", q->qid,
             q->in_flight, oldest, slot->opcode, (unsigned long long)slot->lba,
             (unsigned long long)(q->ctrl->timeout_ns / 1000000u));
}

int nvme_queue_drain_to(struct nvme_queue *q, uint16_t target_in_flight)
{
    struct nvme_ctrl *c = q->ctrl;
    uint64_t deadline = dte_time_ns() + c->timeout_ns;
    uint32_t idle_polls = 0;

    while (q->in_flight > target_in_flight) {
        if (reap(q)) {
            deadline = dte_time_ns() + c->timeout_ns;
            idle_polls = 0;
            continue;
        }
        if (q->error == NVME_ERR_FATAL) {
            return q->error;
        }
        /* A CSTS read is an uncached MMIO round trip: check for controller fatal status only now and then. */
        if ((++idle_polls & 0x3FFu) == 0) {
            uint32_t csts = mmio_read32(c->bar, NVME_REG_CSTS);
            if (csts == 0xFFFFFFFFu) {
                return q->error =
                           nvme_fail(c, NVME_ERR_NO_DEVICE, "controller stopped responding (CSTS reads all-ones)");
            }
            if (csts & NVME_CSTS_CFS) {
                return q->error = nvme_fail(c, NVME_ERR_FATAL, "controller fatal status (CSTS.CFS) while waiting");
            }
            if (dte_time_ns() > deadline) {
                log_timeout(q);
                c->failed = true;
                return q->error = NVME_ERR_TIMEOUT;
            }
        }
        cpu_relax();
    }
    return q->error;
}

int nvme_admin_sync(struct nvme_ctrl *c, struct nvme_sqe *cmd)
{
    struct nvme_queue *q = &c->admin;
    if (c->failed) {
        return NVME_ERR_FAILED;
    }
    q->error = NVME_OK;
    nvme_queue_push(q, cmd, 0, 0);
    nvme_queue_ring(q);
    return nvme_queue_drain_to(q, 0);
}

void nvme_build_prps(const struct nvme_ctrl *c, struct nvme_sqe *cmd, uint64_t buf, uint64_t len, uint64_t *list)
{
    /* Section 4.3.1: PRP1 may start at any dword offset inside a page; every further entry is page aligned.
     * Two pages or fewer: PRP2 is the second page. More: PRP2 points to a PRP list (here one page, no chaining). */
    uint64_t page = 1ull << c->page_shift;
    uint64_t first = page - (buf & (page - 1));

    cmd->prp1 = buf;
    cmd->prp2 = 0;
    if (len <= first) {
        return;
    }
    uint64_t next = buf + first;
    uint64_t rest = len - first;
    if (rest <= page) {
        cmd->prp2 = next;
        return;
    }
    uint64_t n = (rest + page - 1) >> c->page_shift;
    for (uint64_t i = 0; i < n; i++) {
        list[i] = next + (i << c->page_shift);
    }
    cmd->prp2 = (uint64_t)(uintptr_t)list;
}

int nvme_fail(struct nvme_ctrl *c, int err, const char *what)
{
    drv_logf("dte: nvme error=%s text=\"%s\"", nvme_error_name(err), what);
    c->failed = true;
    return err;
}

const char *nvme_error_name(int err)
{
    switch (err) {
    case NVME_OK: return "ok";
    case NVME_ERR_NOT_READY: return "not_ready";
    case NVME_ERR_FATAL: return "controller_fatal";
    case NVME_ERR_TIMEOUT: return "timeout";
    case NVME_ERR_COMMAND: return "command_status";
    case NVME_ERR_NO_MEMORY: return "no_memory";
    case NVME_ERR_ARGUMENT: return "bad_argument";
    case NVME_ERR_UNSUPPORTED: return "unsupported";
    case NVME_ERR_NO_DEVICE: return "no_device";
    case NVME_ERR_FAILED: return "controller_failed";
    default: return "unknown";
    }
}

/* Generic Command Status values, SCT 0 (Base 2.0 Figure 101 and NVM CS 1.0 Figure 18). */
static const char *generic_status_name(uint8_t sc)
{
    switch (sc) {
    case 0x00: return "Successful Completion";
    case 0x01: return "Invalid Command Opcode";
    case 0x02: return "Invalid Field in Command";
    case 0x03: return "Command ID Conflict";
    case 0x04: return "Data Transfer Error";
    case 0x05: return "Commands Aborted due to Power Loss Notification";
    case 0x06: return "Internal Error";
    case 0x07: return "Command Abort Requested";
    case 0x08: return "Command Aborted due to SQ Deletion";
    case 0x0B: return "Invalid Namespace or Format";
    case 0x0C: return "Command Sequence Error";
    case 0x13: return "PRP Offset Invalid";
    case 0x80: return "LBA Out of Range";
    case 0x81: return "Capacity Exceeded";
    case 0x82: return "Namespace Not Ready";
    case 0x83: return "Reservation Conflict";
    case 0x84: return "Format In Progress";
    default: return "Unknown Status";
    }
}

/* Command Specific Status values, SCT 1 (Base 2.0 Figure 102) for the admin commands the driver sends. */
static const char *command_specific_status_name(uint8_t sc)
{
    switch (sc) {
    case 0x00: return "Completion Queue Invalid";
    case 0x01: return "Invalid Queue Identifier";
    case 0x02: return "Invalid Queue Size";
    case 0x08: return "Invalid Interrupt Vector";
    case 0x0B: return "Invalid Format";
    default: return "Unknown Status";
    }
}

/* Media and Data Integrity Errors, SCT 2 (Base 2.0 Figure 103, NVM CS 1.0 Figure 19). */
static const char *media_status_name(uint8_t sc)
{
    switch (sc) {
    case 0x80: return "Write Fault";
    case 0x81: return "Unrecovered Read Error";
    case 0x82: return "End-to-end Guard Check Error";
    case 0x83: return "End-to-end Application Tag Check Error";
    case 0x84: return "End-to-end Reference Tag Check Error";
    case 0x85: return "Compare Failure";
    case 0x86: return "Access Denied";
    case 0x87: return "Deallocated or Unwritten Logical Block";
    default: return "Unknown Status";
    }
}

const char *nvme_status_name(uint8_t sct, uint8_t sc)
{
    switch (sct) {
    case 0: return generic_status_name(sc);
    case 1: return command_specific_status_name(sc);
    case 2: return media_status_name(sc);
    case 3: return "Path Related Status";
    case 7: return "Vendor Specific";
    default: return "Unknown Status";
    }
}
