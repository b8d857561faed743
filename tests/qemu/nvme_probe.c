/* Test-only UEFI application: runs the NVMe driver against QEMU's NVMe controller, with boot services still up
 * (the driver takes the controller from OVMF's driver by resetting it). Reads the probe header at byte 0 of the
 * first NVMe namespace, then loads and CRC32C-verifies the payload it describes with storage_load, and exits QEMU
 * through isa-debug-exit (0x10 ok, 0x11 failure).
 *
 * Before that, the same bytes are read through UEFI's own EFI_BLOCK_IO_PROTOCOL (OVMF's NVMe driver) and both
 * throughputs are printed: `dte: bench uefi_mib_per_s=.. dte_mib_per_s=.. ratio=.. same=1`.
 *
 * Header (little-endian, written by tests/test_nvme_qemu.py): char magic[8] = "DTEPROBE"; u64 payload_offset;
 * u64 payload_size; u32 chunk_size; u32 chunk_count; u32 crc32c[chunk_count]. */
#include <stdbool.h>

#include "boot/efi.h"
#include "drivers/acpi.h"
#include "drivers/storage.h"
#include "lib/fmt.h"
#include "probe_platform.h"

#define HEAP_BYTES (32ull << 20)
#ifndef PROBE_QUEUE_DEPTH
#define PROBE_QUEUE_DEPTH 0 /* driver default */
#endif

static void logf_line(const char *fmt, unsigned long long a, unsigned long long b)
{
    char line[160];
    dte_fmt(line, sizeof line, fmt, a, b);
    dte_log(line);
}

struct probe_header {
    char magic[8];
    uint64_t payload_offset;
    uint64_t payload_size;
    uint32_t chunk_size;
    uint32_t chunk_count;
    uint32_t crc32c[];
};

/* UEFI 2.10 section 13.9 EFI_BLOCK_IO_PROTOCOL and its media record. */
struct block_io_media {
    uint32_t media_id;
    uint8_t removable, present, logical_partition, read_only, write_caching;
    uint32_t block_size;
    uint32_t io_align;
    uint64_t last_block;
};

struct block_io {
    uint64_t revision;
    struct block_io_media *media;
    void *reset;
    efi_status(EFIAPI *read_blocks)(struct block_io *self, uint32_t media_id, uint64_t lba, efi_uintn bytes,
                                    void *buffer);
};

typedef efi_status(EFIAPI *locate_handle_buffer_fn)(int search_type, const efi_guid *protocol, void *key,
                                                    efi_uintn *count, efi_handle **handles);

/* Read [offset, offset + size) through UEFI Block I/O into dst (block-aligned scratch `tmp` of size + 2 blocks). */
static uint64_t uefi_read(struct block_io *bio, uint64_t offset, uint64_t size, uint8_t *tmp)
{
    uint32_t bs = bio->media->block_size;
    uint64_t first = offset / bs, last = (offset + size + bs - 1) / bs;
    uint64_t t0 = dte_time_ns();
    for (uint64_t lba = first; lba < last;) {
        uint64_t n = last - lba < (4u << 20) / bs ? last - lba : (4u << 20) / bs;
        if (EFI_IS_ERROR(bio->read_blocks(bio, bio->media->media_id, lba, n * bs, tmp + (lba - first) * bs)))
            return 0;
        lba += n;
    }
    return dte_time_ns() - t0;
}

static int load(const void *rsdp, uint64_t offset, uint64_t size, void *dst, const struct probe_header *h,
                uint64_t *read_ns)
{
    struct storage_load req = {.pci = STORAGE_PCI_ACPI, .rsdp = rsdp, .select = "first", .byte_offset = offset,
                               .bytes = size, .dst = dst, .queue_depth = PROBE_QUEUE_DEPTH};
    if (h) {
        req.chunk_size = h->chunk_size;
        req.chunk_count = h->chunk_count;
        req.crc32c = h->crc32c;
    }
    struct storage_result res;
    int rc = storage_load(&req, &res);
    *read_ns = res.read_ns;
    return rc;
}

static void *pages(efi_boot_services *bs, uint64_t bytes)
{
    efi_physical_addr p = 0;
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateAnyPages, EfiLoaderData, (bytes + 4095) / 4096, &p)))
        probe_exit(0x11);
    return (void *)(uintptr_t)p;
}

static bool has_magic(const struct probe_header *h)
{
    static const char magic[8] = {'D', 'T', 'E', 'P', 'R', 'O', 'B', 'E'};
    for (int i = 0; i < 8; i++)
        if (h->magic[i] != magic[i])
            return false;
    return true;
}

static double mib_per_s(uint64_t bytes, uint64_t ns)
{
    return ns ? (double)bytes / (double)ns * 1e9 / 1048576.0 : 0.0;
}

/* The whole-disk Block I/O device whose first bytes hold the probe header (read into `uh`), or NULL. */
static struct block_io *find_data_disk(efi_boot_services *bs, struct probe_header *uh)
{
    static const efi_guid block_io_guid = {0x964e5b21, 0x6459, 0x11d2,
                                           {0x8e, 0x39, 0x00, 0xa0, 0xc9, 0x69, 0x72, 0x3b}};
    efi_uintn count = 0;
    efi_handle *handles = 0;
    if (EFI_IS_ERROR(((locate_handle_buffer_fn)bs->locate_handle_buffer)(2 /* ByProtocol */, &block_io_guid, 0,
                                                                          &count, &handles)))
        return 0;
    for (efi_uintn i = 0; i < count; i++) {
        struct block_io *bio = 0;
        if (EFI_IS_ERROR(bs->handle_protocol(handles[i], &block_io_guid, (void **)&bio)) || !bio->media->present ||
            bio->media->logical_partition)
            continue;
        if (uefi_read(bio, 0, 8192, (uint8_t *)uh) && has_magic(uh))
            return bio;
    }
    return 0;
}

efi_status EFIAPI efi_main(efi_handle image, efi_system_table *st)
{
    (void)image;
    efi_boot_services *bs = st->boot_services;
    probe_init(st, HEAP_BYTES);
    const void *rsdp = acpi_rsdp_from_uefi(st->configuration_table, st->number_of_table_entries);
    logf_line("dte: probe rsdp=0x%llx tsc_mhz=%llu", (unsigned long long)(uintptr_t)rsdp, probe_tsc_mhz());

    /* 1. UEFI Block I/O (OVMF's NVMe driver), while it still owns the controller. */
    struct probe_header *uh = dte_alloc(8192, 4096);
    struct block_io *bio = uh ? find_data_disk(bs, uh) : 0;
    uint8_t *theirs = 0;
    uint64_t uefi_ns = 0;
    if (!bio) {
        dte_log("dte: probe error=uefi text=\"no Block I/O device holds the probe header\"");
    } else {
        theirs = pages(bs, uh->payload_size + 2u * bio->media->block_size);
        uefi_ns = uefi_read(bio, uh->payload_offset, uh->payload_size, theirs);
        theirs += uh->payload_offset % bio->media->block_size;
        if (!uefi_ns)
            dte_log("dte: probe error=uefi text=\"payload read through Block I/O failed\"");
    }

    /* 2. Our driver: reset the controller, read the header, then the payload with CRC32C checks. */
    uint64_t ns = 0;
    struct probe_header *h = dte_alloc(8192, 4096);
    if (!h || load(rsdp, 0, 8192, h, 0, &ns) != 0)
        probe_exit(0x11);
    if (!has_magic(h)) {
        dte_log("dte: probe error=header text=\"no DTEPROBE header at byte 0\"");
        probe_exit(0x11);
    }
    uint8_t *ours = pages(bs, h->payload_size);
    logf_line("dte: probe payload_offset=%llu payload_size=%llu", h->payload_offset, h->payload_size);
    int rc = load(rsdp, h->payload_offset, h->payload_size, ours, h, &ns);

    if (theirs && rc == 0) {
        int same = 1;
        for (uint64_t i = 0; same && i < h->payload_size; i++)
            same = theirs[i] == ours[i];
        double uefi = mib_per_s(h->payload_size, uefi_ns), dte = mib_per_s(h->payload_size, ns);
        char line[200];
        dte_fmt(line, sizeof line, "dte: bench uefi_mib_per_s=%.1f dte_mib_per_s=%.1f ratio=%.2f same=%d", uefi, dte,
                uefi > 0 ? dte / uefi : 0.0, same);
        dte_log(line);
    }
    probe_exit(rc == 0 ? 0x10 : 0x11);
}
