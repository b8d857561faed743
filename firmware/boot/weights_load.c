/* Loading + verifying the weights after ExitBootServices (see weights_load.h). */
#include "boot/weights_load.h"

#include "boot/alloc.h"
#include "boot/panic.h"
#include "boot/status.h"
#include "drivers/nvme.h"
#include "drivers/storage.h"
#include "dte_config.h"
#include "lib/crc32c.h"
#include "runtime/platform.h"

#ifndef DTE_STORAGE_SELECT
#define DTE_STORAGE_SELECT "first"
#endif

static uint64_t mib_per_s(uint64_t bytes, uint64_t ns)
{
    return ns ? (uint64_t)((double)bytes * 1e9 / (double)ns / 1048576.0) : 0;
}

/* The chunks beyond the resident prefix: read each once through a bounce buffer and check its CRC32C. */
static int verify_tail(const struct weights_manifest *man, struct weights_loaded *w, int64_t *bad_chunk)
{
    uint8_t *bounce = dte_alloc(man->chunk_size, 4096);
    if (!bounce) {
        dte_status("weights status=unreadable text=\"no memory for a %u-byte bounce buffer\"", man->chunk_size);
        return -1;
    }
    for (uint32_t chunk = (uint32_t)(w->resident_bytes / man->chunk_size); chunk < man->chunk_count; chunk++) {
        uint64_t start = (uint64_t)chunk * man->chunk_size;
        uint64_t len = man->model_size - start < man->chunk_size ? man->model_size - start : man->chunk_size;
        uint64_t t0 = dte_time_ns();
        int rc = storage_read_bytes(w->ctrl, 1, w->byte_offset + start, len, bounce);
        uint64_t t1 = dte_time_ns();
        w->read_ns += t1 - t0;
        if (rc != NVME_OK) {
            dte_status("weights status=unreadable error=%s chunk=%u", nvme_error_name(rc), chunk);
            return -1;
        }
        uint32_t got = crc32c_update(0, bounce, len);
        w->verify_ns += dte_time_ns() - t1;
        if (got != man->crc32c[chunk]) {
            dte_status("verify error=crc32c chunk=%u offset=%llu expected=0x%08x got=0x%08x", chunk,
                       (unsigned long long)start, man->crc32c[chunk], got);
            *bad_chunk = chunk;
            return -1;
        }
    }
    return 0;
}

static int refuse(int rc, int64_t bad_chunk)
{
    if (rc == STORAGE_ERR_CORRUPT || bad_chunk >= 0) {
        dte_status("weights status=corrupt chunk=%lld text=\"CRC32C of chunk %lld differs from WEIGHTS.MAN: "
                   "reflash the image\"",
                   (long long)bad_chunk, (long long)bad_chunk);
    } else if (rc == STORAGE_ERR_NO_PCI || rc == NVME_ERR_NO_DEVICE) {
        dte_status("weights status=unreadable error=no_nvme text=\"no NVMe controller found: attach the weights disk "
                   "as NVMe (storage.select=%s)\"",
                   DTE_STORAGE_SELECT);
    } else {
        dte_status("weights status=unreadable error=%s",
                   rc < 0 && rc > STORAGE_ERR_CORRUPT ? nvme_error_name(rc) : "storage");
    }
    return -1;
}

int weights_load(const struct weights_manifest *man, const void *rsdp, struct weights_loaded *out)
{
    *out = (struct weights_loaded){.model_size = man->model_size,
                                   .byte_offset = man->weights_lba * (uint64_t)DTE_SECTOR_SIZE};
    if (man->model_size == 0) {
        dte_status("weights status=missing text=\"this image has no model: build it with dte build --model FILE\"");
        return -1;
    }
    const struct dte_region *region = dte_region_find("weights");
    uint64_t room = region ? region->size - region->used : 0;
    out->resident_bytes = man->model_size;
    if (man->model_size > room) {   /* stream: keep whole chunks that fit, verify the rest as it is read */
        out->streaming = true;
        out->resident_bytes = room / man->chunk_size * man->chunk_size;
        if (out->resident_bytes == 0) {
            dte_status("weights status=too_large text=\"the weights region (%llu bytes) holds no 1 MiB chunk\"",
                       (unsigned long long)room);
            return -1;
        }
    }
    uint8_t *dst = dte_region_alloc("weights", out->resident_bytes, 4096);
    if (!dst) {
        dte_status("weights status=too_large text=\"no room for %llu bytes in the weights region\"",
                   (unsigned long long)out->resident_bytes);
        return -1;
    }
    out->data = dst;
    out->layout = man->layout;
    dte_set_subsystem("nvme");
    struct storage_load req = {.pci = STORAGE_PCI_ACPI,
                               .rsdp = rsdp,
                               .select = DTE_STORAGE_SELECT,
                               .byte_offset = out->byte_offset,
                               .bytes = out->resident_bytes,
                               .dst = dst,
                               .chunk_size = man->chunk_size,
                               .chunk_count = (uint32_t)((out->resident_bytes + man->chunk_size - 1) / man->chunk_size),
                               .crc32c = man->crc32c};
    struct storage_result res;
    int rc = storage_load(&req, &res);
    out->ctrl = res.ctrl;
    out->read_ns = res.read_ns;
    out->verify_ns = res.verify_ns;
    int64_t bad_chunk = res.bad_chunk;
    if (rc == 0 && out->streaming) {
        rc = verify_tail(man, out, &bad_chunk);
    }
    dte_set_subsystem("appliance");
    if (rc != 0) {
        return refuse(rc, bad_chunk);
    }
    dte_status("weights status=ok bytes=%llu resident_bytes=%llu streaming=%d load_ms=%llu verify_ms=%llu "
               "load_mib_per_s=%llu",
               (unsigned long long)man->model_size, (unsigned long long)out->resident_bytes, out->streaming ? 1 : 0,
               (unsigned long long)(out->read_ns / 1000000u), (unsigned long long)(out->verify_ns / 1000000u),
               (unsigned long long)mib_per_s(out->streaming ? man->model_size : out->resident_bytes, out->read_ns));
    return 0;
}
