/* UEFI memory map handling (UEFI 2.10 §7.2 GetMemoryMap/AllocatePages, §7.4.6 ExitBootServices). */
#include "boot/memmap.h"

#include "boot/alloc.h"
#include "boot/status.h"
#include "dte_config.h"

#define MIB (1024ULL * 1024ULL)
#define PAGES_PER_MIB (MIB / EFI_PAGE_SIZE)
#define EBS_MAX_TRIES 8

/* A static buffer: reading the map must not allocate (that would change the map and its key). */
static uint8_t map_buffer[128 * 1024] __attribute__((aligned(16)));
static efi_uintn map_size, map_key, descriptor_size;

static const efi_memory_descriptor *descriptor(efi_uintn index)
{
    return (const efi_memory_descriptor *)(map_buffer + index * descriptor_size);
}

static efi_status read_map(efi_boot_services *bs)
{
    uint32_t version;
    map_size = sizeof map_buffer;
    return bs->get_memory_map(&map_size, (efi_memory_descriptor *)map_buffer, &map_key, &descriptor_size, &version);
}

static int usable_after_exit(uint32_t type)
{
    return type == EfiConventionalMemory || type == EfiBootServicesCode || type == EfiBootServicesData ||
           type == EfiLoaderCode || type == EfiLoaderData;
}

efi_status memmap_read(efi_boot_services *bs, struct memmap_summary *summary)
{
    efi_status status = read_map(bs);
    *summary = (struct memmap_summary){0};
    if (EFI_IS_ERROR(status)) {
        return status;
    }
    summary->descriptors = (unsigned)(map_size / descriptor_size);
    for (efi_uintn i = 0; i < summary->descriptors; i++) {
        const efi_memory_descriptor *d = descriptor(i);
        uint64_t bytes = d->number_of_pages * EFI_PAGE_SIZE;
        if (usable_after_exit(d->type)) {
            summary->usable_bytes += bytes;
        }
        if (d->type == EfiConventionalMemory && bytes > summary->largest_free_bytes) {
            summary->largest_free_bytes = bytes;
        }
    }
    return EFI_SUCCESS;
}

static uint64_t largest_free_mib(efi_boot_services *bs)
{
    struct memmap_summary summary;
    if (EFI_IS_ERROR(memmap_read(bs, &summary))) {
        return 0;
    }
    return summary.largest_free_bytes / MIB;
}

/* Allocates `mib` MiB as loader data; the base address, or 0 when AllocatePages refused. */
static uint64_t allocate_mib(efi_boot_services *bs, uint64_t mib)
{
    efi_physical_addr base = 0;
    efi_status status = bs->allocate_pages(AllocateAnyPages, EfiLoaderData, mib * PAGES_PER_MIB, &base);
    return EFI_IS_ERROR(status) ? 0 : base;
}

static void reserve_region(efi_boot_services *bs, const char *name, uint64_t wanted_mib, uint64_t min_mib)
{
    uint64_t size_mib = wanted_mib;
    uint64_t base = allocate_mib(bs, size_mib);
    if (!base) {
        uint64_t largest = largest_free_mib(bs);
        size_mib = largest < wanted_mib ? largest : wanted_mib;
        base = size_mib >= min_mib ? allocate_mib(bs, size_mib) : 0;
        if (!base) {
            dte_fail("RAM too small: region %s needs %llu MiB, largest free %llu MiB", name,
                     (unsigned long long)min_mib, (unsigned long long)largest);
        }
    }
    alloc_add_region(name, base, size_mib * MIB);
    dte_status("region name=%s base=0x%llx size_mib=%llu wanted_mib=%llu", name, (unsigned long long)base,
               (unsigned long long)size_mib, (unsigned long long)wanted_mib);
}

void memmap_reserve_regions(efi_boot_services *bs)
{
#define DTE_RESERVE(name, wanted_mib, min_mib) reserve_region(bs, name, wanted_mib, min_mib);
    DTE_REGIONS(DTE_RESERVE)
#undef DTE_RESERVE
}

unsigned memmap_exit_boot_services(efi_boot_services *bs, efi_handle image)
{
    for (unsigned tries = 1; tries <= EBS_MAX_TRIES; tries++) {
        if (EFI_IS_ERROR(read_map(bs))) {
            return 0;
        }
        efi_status status = bs->exit_boot_services(image, map_key);
        if (status == EFI_SUCCESS) {
            return tries;
        }
        if (status != EFI_INVALID_PARAMETER) {   /* only a stale key is worth another try */
            return 0;
        }
    }
    return 0;
}
