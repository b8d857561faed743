/* Streaming reads: split into MDTS-sized Read commands (NVM CS 1.0 section 3.2.4), keep up to the queue depth in
 * flight, finish a partial last block through a bounce buffer. */
#include "drivers/drvlog.h"
#include "drivers/mmio.h"
#include "drivers/nvme_internal.h"

static int check_read(struct nvme_ctrl *c, uint32_t qid, uint64_t lba, uint64_t byte_count, const void *dst)
{
    if (c->failed) {
        return NVME_ERR_FAILED;
    }
    uint64_t blocks = (byte_count + c->info.block_bytes - 1u) / c->info.block_bytes;
    const char *why = 0;
    if (qid < 1u || qid > c->info.io_queues) {
        why = "queue id out of range";
    } else if (((uintptr_t)dst & 3u) != 0) { /* section 4.3.1: PRP1 offset must be dword aligned */
        why = "destination not 4-byte aligned";
    } else if (lba > c->info.namespace_blocks || blocks > c->info.namespace_blocks - lba) {
        why = "range beyond the end of the namespace";
    }
    if (!why) {
        return NVME_OK;
    }
    drv_logf("dte: nvme error=bad_argument text=\"%s\" qid=%u lba=%llu bytes=%llu", why, qid, (unsigned long long)lba,
             (unsigned long long)byte_count);
    return NVME_ERR_ARGUMENT;
}

static void push_read(struct nvme_queue *q, uint64_t lba, uint32_t blocks, uint64_t buf)
{
    struct nvme_ctrl *c = q->ctrl;
    struct nvme_sqe cmd = {0};
    cmd.cdw0 = NVME_NVM_READ;
    cmd.nsid = c->info.nsid;
    cmd.cdw10 = (uint32_t)lba;          /* SLBA */
    cmd.cdw11 = (uint32_t)(lba >> 32);
    cmd.cdw12 = blocks - 1u;            /* NLB, 0's based */
    /* The CID the push assigns selects the PRP list page, so peek at it first. */
    uint16_t cid = q->free_cids[q->free_count - 1u];
    uint64_t *list = q->prp_lists + ((size_t)cid << (c->page_shift - 3u));
    nvme_build_prps(c, &cmd, buf, (uint64_t)blocks * c->info.block_bytes, list);
    nvme_queue_push(q, &cmd, lba, blocks);
}

/* Read whole blocks [lba, lba + blocks) into dst, streaming. */
static int read_blocks(struct nvme_queue *q, uint64_t lba, uint64_t blocks, uint8_t *dst)
{
    struct nvme_ctrl *c = q->ctrl;
    uint32_t per_cmd = c->info.max_transfer_bytes / c->info.block_bytes;
    /* One PRP list page (page/8 entries) plus PRP1 covers max_transfer_bytes even from an unaligned dst. */
    if (per_cmd > 65536u) { /* NLB is 16 bits */
        per_cmd = 65536u;
    }

    while (blocks) {
        uint16_t pushed = 0;
        while (blocks && q->in_flight < q->max_in_flight) {
            uint32_t n = blocks < per_cmd ? (uint32_t)blocks : per_cmd;
            push_read(q, lba, n, (uint64_t)(uintptr_t)dst);
            lba += n;
            blocks -= n;
            dst += (uint64_t)n * c->info.block_bytes;
            pushed++;
        }
        if (pushed) {
            nvme_queue_ring(q);
        }
        /* Keep the pipe full: wait for at least one completion, not all of them. */
        int rc = nvme_queue_drain_to(q, blocks ? (uint16_t)(q->in_flight - 1u) : 0u);
        if (rc != NVME_OK) {
            if (rc == NVME_ERR_COMMAND) { /* let the rest finish so the queue is clean for the next call */
                nvme_queue_drain_to(q, 0);
            }
            return rc;
        }
    }
    return NVME_OK;
}

int nvme_read(struct nvme_ctrl *c, uint32_t qid, uint64_t lba, uint64_t byte_count, void *dst)
{
    int rc = check_read(c, qid, lba, byte_count, dst);
    if (rc != NVME_OK) {
        return rc;
    }
    struct nvme_queue *q = &c->io[qid - 1u];
    q->error = NVME_OK;
    uint64_t whole = byte_count / c->info.block_bytes;
    uint32_t tail = (uint32_t)(byte_count % c->info.block_bytes);

    rc = read_blocks(q, lba, whole, dst);
    if (rc != NVME_OK || tail == 0) {
        return rc;
    }
    rc = read_blocks(q, lba + whole, 1, q->bounce);
    if (rc != NVME_OK) {
        return rc;
    }
    uint8_t *out = (uint8_t *)dst + whole * c->info.block_bytes;
    for (uint32_t i = 0; i < tail; i++) {
        out[i] = q->bounce[i];
    }
    return NVME_OK;
}

int nvme_read_at(struct nvme_ctrl *c, uint32_t qid, uint64_t byte_offset, uint64_t bytes, void *dst)
{
    uint32_t block = c->info.block_bytes;
    uint64_t lba = byte_offset / block;
    uint32_t head = (uint32_t)(byte_offset % block);
    uint8_t *out = dst;
    if (head && bytes) { /* the first block starts before the data: read it whole into the queue's bounce buffer */
        int rc = check_read(c, qid, lba, block, dst);
        if (rc != NVME_OK) {
            return rc;
        }
        struct nvme_queue *q = &c->io[qid - 1u];
        q->error = NVME_OK;
        rc = read_blocks(q, lba, 1, q->bounce);
        if (rc != NVME_OK) {
            return rc;
        }
        uint64_t n = block - head < bytes ? block - head : bytes;
        for (uint64_t i = 0; i < n; i++) {
            out[i] = q->bounce[head + i];
        }
        out += n;
        bytes -= n;
        lba++;
    }
    return bytes ? nvme_read(c, qid, lba, bytes, out) : NVME_OK;
}
