/* Weights loading: PCI discovery, controller selection, parallel reads, CRC32C verification (see storage.h). */
#include "drivers/storage.h"

#include "drivers/acpi.h"
#include "drivers/drvlog.h"
#include "drivers/pci.h"
#include "lib/crc32c.h"
#include "runtime/platform.h"

static int init_pci(const struct storage_load *req)
{
    if (req->pci == STORAGE_PCI_ENUMERATED) {
        return pci_device_count() > 0 ? 0 : STORAGE_ERR_NO_PCI;
    }
    struct acpi_mcfg_entry ecam;
    const void *mcfg = req->pci == STORAGE_PCI_ACPI ? acpi_find_table(req->rsdp, "MCFG") : 0;
    if (mcfg && acpi_mcfg_entry(mcfg, 0, &ecam)) {
        pci_init_ecam(ecam.base, ecam.bus_start, ecam.bus_end);
        drv_logf("dte: pci access=ecam base=0x%llx buses=%u-%u", (unsigned long long)ecam.base, ecam.bus_start,
                 ecam.bus_end);
    } else {
        pci_init_ports();
        drv_logf("dte: pci access=ports text=\"%s\"", req->pci == STORAGE_PCI_ACPI ? "no ACPI MCFG table" : "asked");
    }
    int n = pci_enumerate();
    drv_logf("dte: pci functions=%d", n);
    return n > 0 ? 0 : STORAGE_ERR_NO_PCI;
}

int storage_read_bytes(struct nvme_ctrl *ctrl, uint32_t qid, uint64_t byte_offset, uint64_t bytes, void *dst)
{
    return nvme_read_at(ctrl, qid, byte_offset, bytes, dst);
}

struct load_job {
    const struct storage_load *req;
    struct nvme_ctrl *ctrl;
    uint64_t unit;            /* bytes per work item: chunk_size, or an even split */
    volatile int error;
    volatile int64_t bad_chunk;
};

/* One worker: read its run of units with its own queue (qid = worker + 1). */
static void load_range(void *arg, int64_t begin, int64_t end, int worker)
{
    struct load_job *job = arg;
    const struct storage_load *req = job->req;
    uint64_t start = (uint64_t)begin * job->unit;
    uint64_t stop = (uint64_t)end * job->unit < req->bytes ? (uint64_t)end * job->unit : req->bytes;
    if (start >= stop) {
        return;
    }
    int rc = storage_read_bytes(job->ctrl, (uint32_t)worker + 1u, req->byte_offset + start, stop - start,
                                (uint8_t *)req->dst + start);
    if (rc != NVME_OK) {
        job->error = rc;
    }
}

static void verify_range(void *arg, int64_t begin, int64_t end, int worker)
{
    (void)worker;
    struct load_job *job = arg;
    const struct storage_load *req = job->req;
    for (int64_t i = begin; i < end; i++) {
        uint64_t start = (uint64_t)i * req->chunk_size;
        uint64_t len = req->bytes - start < req->chunk_size ? req->bytes - start : req->chunk_size;
        uint32_t got = crc32c_update(0, (const uint8_t *)req->dst + start, len);
        if (got != req->crc32c[i]) {
            drv_logf("dte: verify error=crc32c chunk=%lld offset=%llu expected=0x%08x got=0x%08x", (long long)i,
                     (unsigned long long)start, req->crc32c[i], got);
            if (job->bad_chunk < 0 || i < job->bad_chunk) {
                job->bad_chunk = i;
            }
            return; /* one line per worker is enough to name the damage */
        }
    }
}

static int run_parallel(int64_t n, dte_range_fn fn, struct load_job *job, uint32_t queues)
{
    /* Workers beyond the queue count would share a queue; then read on the calling core alone. */
    if ((uint32_t)dte_worker_count() <= queues && dte_parallel_for(n, fn, job) == 0) {
        return 0;
    }
    fn(job, 0, n, 0);
    return 0;
}

static int verify(const struct storage_load *req, struct load_job *job, struct storage_result *out)
{
    uint64_t t0 = dte_time_ns();
    if (!req->chunk_size || !req->crc32c) {
        drv_logf("dte: verify skipped text=\"no checksums\"");
        return 0;
    }
    uint64_t needed = (req->bytes + req->chunk_size - 1u) / req->chunk_size;
    if (needed != req->chunk_count) {
        drv_logf("dte: verify error=manifest chunks=%u expected_chunks=%llu", req->chunk_count,
                 (unsigned long long)needed);
        return STORAGE_ERR_CORRUPT;
    }
    job->bad_chunk = -1;
    if (dte_parallel_for((int64_t)needed, verify_range, job) != 0) {
        verify_range(job, 0, (int64_t)needed, 0);
    }
    out->verify_ns = dte_time_ns() - t0;
    out->bad_chunk = job->bad_chunk;
    if (job->bad_chunk >= 0) {
        return STORAGE_ERR_CORRUPT;
    }
    uint64_t ms = out->verify_ns / 1000000u;
    drv_logf("dte: verify ok chunks=%llu ms=%llu", (unsigned long long)needed, (unsigned long long)ms);
    return 0;
}

int storage_load(const struct storage_load *req, struct storage_result *out)
{
    *out = (struct storage_result){.bad_chunk = -1};
    if (init_pci(req) != 0) {
        drv_logf("dte: nvme error=no_device text=\"no PCI functions found\"");
        return STORAGE_ERR_NO_PCI;
    }
    uint32_t workers = (uint32_t)dte_worker_count();
    struct nvme_config cfg = {.io_queues = req->max_queues && req->max_queues < workers ? req->max_queues : workers,
                              .queue_depth = req->queue_depth};
    int rc = nvme_open_selected(req->select, &cfg, &out->ctrl);
    if (rc != NVME_OK) {
        return rc;
    }
    const struct nvme_info *info = nvme_get_info(out->ctrl);
    out->queues = info->io_queues;

    struct load_job job = {.req = req, .ctrl = out->ctrl, .error = NVME_OK, .bad_chunk = -1};
    uint32_t parts = out->queues;
    /* Work items: the CRC chunks, or an even split in whole pages (keeps every worker's dst 4-byte aligned). */
    job.unit = req->chunk_size ? req->chunk_size : ((req->bytes / (parts ? parts : 1u)) + 4095u) & ~4095ull;
    if (!job.unit) {
        job.unit = 4096;
    }
    int64_t units = (int64_t)((req->bytes + job.unit - 1u) / job.unit);

    uint64_t t0 = dte_time_ns();
    run_parallel(units, load_range, &job, out->queues);
    out->read_ns = dte_time_ns() - t0;
    if (job.error != NVME_OK) {
        drv_logf("dte: load error=%s bytes=%llu", nvme_error_name(job.error), (unsigned long long)req->bytes);
        return job.error;
    }
    uint64_t us = out->read_ns / 1000u ? out->read_ns / 1000u : 1u;
    drv_logf("dte: load bytes=%llu ms=%llu mib_per_s=%llu queues=%u block_bytes=%u", (unsigned long long)req->bytes,
             (unsigned long long)(out->read_ns / 1000000u), (unsigned long long)((req->bytes * 1000000u / us) >> 20),
             out->queues, info->block_bytes);
    return verify(req, &job, out);
}
