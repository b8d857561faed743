/* NVMe controller bring-up: reset, enable, Identify, I/O queue creation.
 * NVM Express Base Specification 2.0: section 3.5.1 (memory-based controller initialization), 3.1.3 (properties),
 * 5.17 (Identify), 5.27.1.5 (Number of Queues), 5.4/5.5 (Create I/O CQ/SQ). */
#include "drivers/drvlog.h"
#include "drivers/mmio.h"
#include "drivers/nvme_internal.h"

#include "runtime/platform.h"

#define DEFAULT_QUEUE_DEPTH 64u
#define DEFAULT_TIMEOUT_MS 5000u
#define MS 1000000ull

static uint64_t timeout_after(uint64_t ns)
{
    return dte_time_ns() + ns;
}

/* Wait until CSTS.RDY == want (section 3.5.1: bounded by CAP.TO). */
static int wait_ready(struct nvme_ctrl *c, uint32_t want)
{
    uint64_t deadline = timeout_after(c->ready_timeout_ns);
    for (;;) {
        uint32_t csts = mmio_read32(c->bar, NVME_REG_CSTS);
        if (csts == 0xFFFFFFFFu) {
            return nvme_fail(c, NVME_ERR_NO_DEVICE, "controller registers read all-ones");
        }
        if ((csts & NVME_CSTS_CFS) && want) {
            return nvme_fail(c, NVME_ERR_FATAL, "controller fatal status (CSTS.CFS) during enable");
        }
        if ((csts & NVME_CSTS_RDY) == want) {
            return NVME_OK;
        }
        if (dte_time_ns() > deadline) {
            drv_logf("dte: nvme error=not_ready want_rdy=%u csts=0x%x timeout_ms=%llu", want, csts,
                     (unsigned long long)(c->ready_timeout_ns / MS));
            c->failed = true;
            return NVME_ERR_NOT_READY;
        }
        cpu_relax();
    }
}

static int reset_controller(struct nvme_ctrl *c)
{
    uint32_t cc = mmio_read32(c->bar, NVME_REG_CC);
    if (cc & NVME_CC_EN) {
        /* Section 3.5.2: if EN=1 but RDY=0 the controller is still coming up; let it finish before clearing EN. */
        uint32_t csts = mmio_read32(c->bar, NVME_REG_CSTS);
        if (!(csts & NVME_CSTS_RDY) && !(csts & NVME_CSTS_CFS)) {
            int rc = wait_ready(c, NVME_CSTS_RDY);
            if (rc != NVME_OK) {
                return rc;
            }
        }
        mmio_write32(c->bar, NVME_REG_CC, cc & ~NVME_CC_EN);
    }
    return wait_ready(c, 0);
}

/* CC.MPS = the controller's smallest page size, 2^(12 + CAP.MPSMIN): 4 KiB on every controller seen so far. */
static int choose_page_size(struct nvme_ctrl *c)
{
    uint32_t min_shift = 12u + NVME_CAP_MPSMIN(c->cap);
    if (min_shift > 16u) {
        return nvme_fail(c, NVME_ERR_UNSUPPORTED, "controller minimum page size above 64 KiB");
    }
    c->page_shift = min_shift;
    c->info.page_bytes = 1u << c->page_shift;
    return NVME_OK;
}

static int enable_controller(struct nvme_ctrl *c)
{
    struct nvme_queue *aq = &c->admin;
    uint16_t entries = NVME_ADMIN_ENTRIES;
    if (entries > c->info.max_queue_entries) {
        entries = (uint16_t)c->info.max_queue_entries;
    }
    int rc = nvme_queue_init(c, aq, 0, entries, false);
    if (rc != NVME_OK) {
        return nvme_fail(c, rc, "out of memory for the admin queue");
    }

    /* Section 3.5.1 steps 3-5: AQA sizes are 0's based; ASQ/ACQ page aligned. Interrupts stay masked (polled). */
    mmio_write32(c->bar, NVME_REG_INTMS, 0xFFFFFFFFu);
    mmio_write32(c->bar, NVME_REG_AQA, ((uint32_t)(entries - 1) << 16) | (uint32_t)(entries - 1));
    mmio_write64(c->bar, NVME_REG_ASQ, (uint64_t)(uintptr_t)aq->sq);
    mmio_write64(c->bar, NVME_REG_ACQ, (uint64_t)(uintptr_t)aq->cq);
    uint32_t cc = NVME_CC_CSS_NVM | NVME_CC_MPS(c->page_shift) | NVME_CC_AMS_RR | NVME_CC_IOSQES(NVME_SQES_SHIFT) |
                  NVME_CC_IOCQES(NVME_CQES_SHIFT);
    mmio_write32(c->bar, NVME_REG_CC, cc);
    mmio_write32(c->bar, NVME_REG_CC, cc | NVME_CC_EN);
    return wait_ready(c, NVME_CSTS_RDY);
}

static void copy_ascii(char *dst, const uint8_t *src, unsigned n)
{
    unsigned len = 0;
    for (unsigned i = 0; i < n; i++) {
        uint8_t ch = src[i];
        dst[i] = (ch >= 0x20 && ch < 0x7F && ch != '"' && ch != '\\') ? (char)ch : '?';
        if (ch != ' ' && ch != 0) {
            len = i + 1;
        }
    }
    dst[len] = '\0';
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t le64(const uint8_t *p)
{
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

static int identify(struct nvme_ctrl *c, uint32_t cns, uint32_t nsid)
{
    struct nvme_sqe cmd = {0};
    cmd.cdw0 = NVME_ADMIN_IDENTIFY;
    cmd.nsid = nsid;
    cmd.cdw10 = cns;
    nvme_build_prps(c, &cmd, (uint64_t)(uintptr_t)c->identify_buf, 4096, 0);
    return nvme_admin_sync(c, &cmd);
}

static int identify_controller(struct nvme_ctrl *c)
{
    int rc = identify(c, NVME_CNS_CONTROLLER, 0);
    if (rc != NVME_OK) {
        return rc;
    }
    const uint8_t *d = c->identify_buf;
    c->info.vendor_id = (uint16_t)(d[NVME_IDC_VID] | (d[NVME_IDC_VID + 1] << 8));
    copy_ascii(c->info.serial, d + NVME_IDC_SN, 20);
    copy_ascii(c->info.model, d + NVME_IDC_MN, 40);
    copy_ascii(c->info.firmware, d + NVME_IDC_FR, 8);

    /* One PRP list page holds page/8 entries; with PRP1 that covers at least page/8 full pages of data. */
    uint64_t limit = (uint64_t)(c->info.page_bytes / 8u) << c->page_shift;
    uint8_t mdts = d[NVME_IDC_MDTS];
    if (mdts) {
        uint64_t mdts_bytes = 1ull << (12u + NVME_CAP_MPSMIN(c->cap) + mdts);
        if (mdts_bytes < limit) {
            limit = mdts_bytes;
        }
    }
    c->info.max_transfer_bytes = (uint32_t)limit;
    return NVME_OK;
}

static int pick_namespace(struct nvme_ctrl *c, uint32_t wanted)
{
    if (wanted) {
        c->info.nsid = wanted;
        return NVME_OK;
    }
    int rc = identify(c, NVME_CNS_ACTIVE_NS_LIST, 0);
    if (rc != NVME_OK) {
        return rc;
    }
    c->info.nsid = le32(c->identify_buf);
    if (!c->info.nsid) {
        return nvme_fail(c, NVME_ERR_UNSUPPORTED, "controller reports no active namespace");
    }
    return NVME_OK;
}

static int identify_namespace(struct nvme_ctrl *c)
{
    int rc = identify(c, NVME_CNS_NAMESPACE, c->info.nsid);
    if (rc != NVME_OK) {
        return rc;
    }
    const uint8_t *d = c->identify_buf;
    uint8_t flbas = d[NVME_IDN_FLBAS];
    uint32_t index = flbas & 0xFu;
    if (d[NVME_IDN_NLBAF] >= 16u) { /* NVM CS 1.0 Figure 97: FLBAS bits 6:5 are the high index bits past 16 formats */
        index |= ((flbas >> 5) & 0x3u) << 4;
    }
    uint32_t lbaf = le32(d + NVME_IDN_LBAF0 + 4u * index);
    uint32_t lbads = (lbaf >> 16) & 0xFFu;
    c->info.namespace_blocks = le64(d + NVME_IDN_NSZE);
    if (lbads < 9u || lbads > c->page_shift || c->info.namespace_blocks == 0) {
        drv_logf("dte: nvme error=unsupported text=\"namespace format\" nsid=%u lbads=%u nsze=%llu", c->info.nsid,
                 lbads, (unsigned long long)c->info.namespace_blocks);
        c->failed = true;
        return NVME_ERR_UNSUPPORTED;
    }
    if ((lbaf & 0xFFFFu) != 0 && (flbas & 0x10u)) { /* extended LBAs interleave metadata with data */
        return nvme_fail(c, NVME_ERR_UNSUPPORTED, "namespace uses extended LBAs with metadata");
    }
    c->info.block_bytes = 1u << lbads;
    return NVME_OK;
}

/* Set Features / Number of Queues (section 5.27.1.5): ask for n pairs, learn how many were granted. */
static int request_queues(struct nvme_ctrl *c, uint32_t wanted)
{
    struct nvme_sqe cmd = {0};
    cmd.cdw0 = NVME_ADMIN_SET_FEATURES;
    cmd.cdw10 = NVME_FEAT_NUMBER_OF_QUEUES;
    cmd.cdw11 = ((wanted - 1u) << 16) | (wanted - 1u);
    int rc = nvme_admin_sync(c, &cmd);
    if (rc != NVME_OK) {
        return rc;
    }
    uint32_t nsqa = (c->admin.last_dw0 & 0xFFFFu) + 1u;
    uint32_t ncqa = (c->admin.last_dw0 >> 16) + 1u;
    uint32_t granted = nsqa < ncqa ? nsqa : ncqa;
    c->info.io_queues = granted < wanted ? granted : wanted;
    return NVME_OK;
}

/* Create I/O CQ (05h, section 5.4) then I/O SQ (01h, section 5.5): physically contiguous, interrupts off. */
static int create_io_queue(struct nvme_ctrl *c, struct nvme_queue *q, uint16_t qid)
{
    int rc = nvme_queue_init(c, q, qid, (uint16_t)(c->info.queue_depth + 1u), true);
    if (rc != NVME_OK) {
        return nvme_fail(c, rc, "out of memory for an I/O queue");
    }
    uint32_t size_field = ((uint32_t)(q->entries - 1u) << 16) | qid;

    struct nvme_sqe cmd = {0};
    cmd.cdw0 = NVME_ADMIN_CREATE_IO_CQ;
    cmd.prp1 = (uint64_t)(uintptr_t)q->cq;
    cmd.cdw10 = size_field;
    cmd.cdw11 = 1u; /* PC = 1, IEN = 0 */
    rc = nvme_admin_sync(c, &cmd);
    if (rc != NVME_OK) {
        return rc;
    }

    struct nvme_sqe sq = {0};
    sq.cdw0 = NVME_ADMIN_CREATE_IO_SQ;
    sq.prp1 = (uint64_t)(uintptr_t)q->sq;
    sq.cdw10 = size_field;
    sq.cdw11 = ((uint32_t)qid << 16) | 1u; /* CQID, PC = 1, QPRIO urgent/ignored under round robin */
    return nvme_admin_sync(c, &sq);
}

static int create_io_queues(struct nvme_ctrl *c, const struct nvme_config *cfg)
{
    uint32_t depth = cfg->queue_depth ? cfg->queue_depth : DEFAULT_QUEUE_DEPTH;
    if (depth > c->info.max_queue_entries - 1u) {
        depth = c->info.max_queue_entries - 1u;
    }
    c->info.queue_depth = depth;
    int rc = request_queues(c, cfg->io_queues ? cfg->io_queues : 1u);
    if (rc != NVME_OK) {
        return rc;
    }
    c->io = dte_alloc(sizeof(struct nvme_queue) * c->info.io_queues, 64);
    if (!c->io) {
        return nvme_fail(c, NVME_ERR_NO_MEMORY, "out of memory for I/O queues");
    }
    for (uint32_t i = 0; i < c->info.io_queues; i++) {
        rc = create_io_queue(c, &c->io[i], (uint16_t)(i + 1u));
        if (rc != NVME_OK) {
            return rc;
        }
    }
    return NVME_OK;
}

static void log_ready(const struct nvme_ctrl *c)
{
    drv_logf("dte: nvme ready model=\"%s\" serial=\"%s\" nsid=%u blocks=%llu block_bytes=%u max_transfer=%u "
             "queues=%u depth=%u",
             c->info.model, c->info.serial, c->info.nsid, (unsigned long long)c->info.namespace_blocks,
             c->info.block_bytes, c->info.max_transfer_bytes, c->info.io_queues, c->info.queue_depth);
}

static int bring_up(struct nvme_ctrl *c, const struct nvme_config *cfg)
{
    int rc;
    if (c->cap == ~0ull) {
        return nvme_fail(c, NVME_ERR_NO_DEVICE, "controller registers read all-ones");
    }
    if (!(NVME_CAP_CSS(c->cap) & NVME_CAP_CSS_NVM)) {
        return nvme_fail(c, NVME_ERR_UNSUPPORTED, "controller lacks the NVM command set (CAP.CSS)");
    }
    if ((rc = choose_page_size(c)) != NVME_OK || (rc = reset_controller(c)) != NVME_OK ||
        (rc = enable_controller(c)) != NVME_OK || (rc = identify_controller(c)) != NVME_OK ||
        (rc = pick_namespace(c, cfg->nsid)) != NVME_OK || (rc = identify_namespace(c)) != NVME_OK ||
        (rc = create_io_queues(c, cfg)) != NVME_OK) {
        return rc;
    }
    log_ready(c);
    return NVME_OK;
}

int nvme_open(volatile void *bar0, const struct nvme_config *cfg, struct nvme_ctrl **out)
{
    *out = 0;
    struct nvme_ctrl *c = dte_alloc(sizeof *c, 64);
    if (!c) {
        return NVME_ERR_NO_MEMORY;
    }
    c->identify_buf = dte_alloc(4096, 4096);
    if (!c->identify_buf) {
        return NVME_ERR_NO_MEMORY;
    }
    c->bar = bar0;
    c->cap = mmio_read64(bar0, NVME_REG_CAP);
    c->info.version = mmio_read32(bar0, NVME_REG_VS);
    c->info.max_queue_entries = NVME_CAP_MQES(c->cap) + 1u;
    c->info.doorbell_stride = 4u << NVME_CAP_DSTRD(c->cap);
    c->info.ready_timeout_ms = NVME_CAP_TO(c->cap) * 500u;
    /* CAP.TO = 0 would mean "no time at all"; give such a controller one 500 ms unit. */
    c->ready_timeout_ns = (uint64_t)(c->info.ready_timeout_ms ? c->info.ready_timeout_ms : 500u) * MS;
    c->timeout_ns = (uint64_t)(cfg->command_timeout_ms ? cfg->command_timeout_ms : DEFAULT_TIMEOUT_MS) * MS;
    *out = c;
    return bring_up(c, cfg);
}

const struct nvme_info *nvme_get_info(const struct nvme_ctrl *ctrl)
{
    return &ctrl->info;
}

int nvme_disable(struct nvme_ctrl *ctrl)
{
    uint32_t cc = mmio_read32(ctrl->bar, NVME_REG_CC);
    mmio_write32(ctrl->bar, NVME_REG_CC, cc & ~NVME_CC_EN);
    ctrl->failed = true; /* queues are gone; nvme_open again to use the controller */
    return wait_ready(ctrl, 0);
}
