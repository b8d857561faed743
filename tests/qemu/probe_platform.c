/* Platform interface for QEMU probe applications (see probe_platform.h). */
#include "probe_platform.h"

#include "drivers/mmio.h"

static uint8_t *heap;
static uint64_t heap_size, heap_used;
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
    if (!heap || start + size > heap_size)
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

uint64_t probe_tsc_mhz(void)
{
    return tsc_per_us;
}

void probe_exit(uint32_t code)
{
    dte_log(code == 0x10 ? "dte: exit status=ok" : "dte: exit status=failed");
    port_out32(0xF4, code);
    for (;;)
        __asm__ __volatile__("hlt");
}

void probe_init(efi_system_table *st, uint64_t heap_bytes)
{
    efi_boot_services *bs = st->boot_services;
    bs->set_watchdog_timer(0, 0, 0, 0);
    uint64_t t0 = rdtsc();
    bs->stall(10000);
    tsc_per_us = (rdtsc() - t0) / 10000u;
    if (!tsc_per_us)
        tsc_per_us = 1;
    efi_physical_addr p = 0;
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateAnyPages, EfiLoaderData, (heap_bytes + 4095) / 4096, &p)))
        probe_exit(0x11);
    heap = (uint8_t *)(uintptr_t)p;
    heap_size = heap_bytes;
}

int probe_exit_boot_services(efi_handle image, efi_boot_services *bs)
{
    static uint8_t map[64 * 1024];
    for (int tries = 0; tries < 4; tries++) {
        efi_uintn size = sizeof map, key = 0, desc_size = 0;
        uint32_t desc_version = 0;
        if (EFI_IS_ERROR(bs->get_memory_map(&size, (efi_memory_descriptor *)map, &key, &desc_size, &desc_version)))
            return -1;
        if (!EFI_IS_ERROR(bs->exit_boot_services(image, key)))
            return 0;
    }
    return -1;
}
