/* Test-only UEFI application: runs the NVMe driver against QEMU's NVMe controller, with boot services still up
 * (the driver takes the controller from OVMF's driver by resetting it). Reads the probe header at byte 0 of the
 * first NVMe namespace, then loads and CRC32C-verifies the payload it describes with storage_load, and exits QEMU
 * through isa-debug-exit (0x10 ok, 0x11 failure).
 *
 * Header (little-endian, written by tests/test_nvme_qemu.py): char magic[8] = "DTEPROBE"; u64 payload_offset;
 * u64 payload_size; u32 chunk_size; u32 chunk_count; u32 crc32c[chunk_count]. */
#include "boot/efi.h"
#include "drivers/acpi.h"
#include "drivers/mmio.h"
#include "drivers/storage.h"
#include "engine/platform.h"
#include "lib/fmt.h"

#define HEAP_BYTES (32ull << 20)

static uint8_t *heap;
static uint64_t heap_used;
static uint64_t tsc_per_us = 1000;

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

void *dte_alloc(size_t size, size_t align)
{
    uint64_t start = (heap_used + align - 1) & ~(uint64_t)(align - 1);
    if (!heap || start + size > HEAP_BYTES)
        return 0;
    heap_used = start + size;
    for (size_t i = 0; i < size; i++)
        heap[start + i] = 0;
    return heap + start;
}

static void serial_byte(uint8_t c)
{
    for (int i = 0; i < 100000; i++) {
        uint8_t lsr;
        __asm__ __volatile__("inb %1, %0" : "=a"(lsr) : "Nd"((uint16_t)0x3FD));
        if (lsr & 0x20)
            break;
    }
    __asm__ __volatile__("outb %0, %1" : : "a"(c), "Nd"((uint16_t)0x3F8));
}

void dte_log(const char *line)
{
    while (*line)
        serial_byte((uint8_t)*line++);
    serial_byte('\r');
    serial_byte('\n');
}

uint64_t dte_time_ns(void)
{
    return rdtsc() * 1000u / tsc_per_us;
}

int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    fn(arg, 0, n, 0);
    return 0;
}

int dte_worker_count(void)
{
    return 1;
}

static void logf_line(const char *fmt, unsigned long long a, unsigned long long b)
{
    char line[160];
    dte_fmt(line, sizeof line, fmt, a, b);
    dte_log(line);
}

static __attribute__((noreturn)) void qemu_exit(uint32_t code)
{
    dte_log(code == 0x10 ? "dte: exit status=ok" : "dte: exit status=failed");
    port_out32(0xF4, code);
    for (;;)
        __asm__ __volatile__("hlt");
}

struct probe_header {
    char magic[8];
    uint64_t payload_offset;
    uint64_t payload_size;
    uint32_t chunk_size;
    uint32_t chunk_count;
    uint32_t crc32c[];
};

static int load(const void *rsdp, uint64_t offset, uint64_t size, void *dst, const struct probe_header *h)
{
    struct storage_load req = {.pci = STORAGE_PCI_ACPI, .rsdp = rsdp, .select = "first", .byte_offset = offset,
                               .bytes = size, .dst = dst};
    if (h) {
        req.chunk_size = h->chunk_size;
        req.chunk_count = h->chunk_count;
        req.crc32c = h->crc32c;
    }
    struct storage_result res;
    return storage_load(&req, &res);
}

efi_status EFIAPI efi_main(efi_handle image, efi_system_table *st)
{
    (void)image;
    efi_boot_services *bs = st->boot_services;
    bs->set_watchdog_timer(0, 0, 0, 0);
    uint64_t t0 = rdtsc();
    bs->stall(10000);
    tsc_per_us = (rdtsc() - t0) / 10000u;
    if (!tsc_per_us)
        tsc_per_us = 1;

    efi_physical_addr mem = 0;
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateAnyPages, EfiLoaderData, HEAP_BYTES / 4096, &mem)))
        qemu_exit(0x11);
    heap = (uint8_t *)(uintptr_t)mem;
    const void *rsdp = acpi_rsdp_from_uefi(st->configuration_table, st->number_of_table_entries);
    logf_line("dte: probe rsdp=0x%llx tsc_mhz=%llu", (unsigned long long)(uintptr_t)rsdp, tsc_per_us);

    struct probe_header *h = dte_alloc(8192, 4096);
    if (!h || load(rsdp, 0, 8192, h, 0) != 0)
        qemu_exit(0x11);
    static const char magic[8] = {'D', 'T', 'E', 'P', 'R', 'O', 'B', 'E'};
    for (int i = 0; i < 8; i++)
        if (h->magic[i] != magic[i]) {
            dte_log("dte: probe error=header text=\"no DTEPROBE header at byte 0\"");
            qemu_exit(0x11);
        }
    efi_physical_addr payload = 0;
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateAnyPages, EfiLoaderData, (h->payload_size + 4095) / 4096, &payload)))
        qemu_exit(0x11);
    logf_line("dte: probe payload_offset=%llu payload_size=%llu", h->payload_offset, h->payload_size);
    int rc = load(rsdp, h->payload_offset, h->payload_size, (void *)(uintptr_t)payload, h);
    qemu_exit(rc == 0 ? 0x10 : 0x11);
}
