/* The UEFI memory map: summary, reserving the board's regions, and ExitBootServices. */
#ifndef DTE_BOOT_MEMMAP_H
#define DTE_BOOT_MEMMAP_H

#include <stdint.h>

#include "boot/efi.h"

struct memmap_summary {
    uint64_t usable_bytes;         /* conventional + boot services + loader memory: ours after EBS */
    uint64_t largest_free_bytes;   /* largest EfiConventionalMemory range right now */
    unsigned descriptors;
};

/* Reads the current map into the module's buffer; EFI_SUCCESS or the GetMemoryMap error. */
efi_status memmap_read(efi_boot_services *bs, struct memmap_summary *summary);

/* Reserves every region of DTE_REGIONS (dte_config.h) with AllocatePages, as large as wanted, else the
 * largest free range down to its minimum; registers each with the allocator and prints a `region` line.
 * On too little RAM: dte_fail("RAM too small: ..."). */
void memmap_reserve_regions(efi_boot_services *bs);

/* GetMemoryMap + ExitBootServices with its key, retrying with a fresh map while the key is stale
 * (UEFI 2.10 §7.4.6). Returns the number of tries, or 0 when it never succeeded. Nothing but
 * GetMemoryMap and ExitBootServices is called in between. */
unsigned memmap_exit_boot_services(efi_boot_services *bs, efi_handle image);

#endif /* DTE_BOOT_MEMMAP_H */
