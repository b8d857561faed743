/* The appliance hooks: what runs just before and after ExitBootServices (NVMe load, engine plug in here). */
#ifndef DTE_BOOT_APPLIANCE_H
#define DTE_BOOT_APPLIANCE_H

#include <stdint.h>

#include "boot/cpu.h"
#include "boot/efi.h"

struct dte_boot_info {
    struct cpu_info cpu;
    uint64_t xcr0;
    uint64_t tsc_hz;
    uint64_t usable_bytes;
    const void *rsdp;       /* the ACPI RSDP from the UEFI configuration table (looked up once, in efi_main) */
};

/* Why the appliance stopped (dte_main_before_exit / dte_main_after_exit's non-zero returns; the boot code prints
 * "appliance stopped with code N"). */
enum dte_appliance_stop {
    APPLIANCE_NO_MANIFEST = 2,   /* /DTE/WEIGHTS.MAN missing or invalid */
    APPLIANCE_WEIGHTS = 3,       /* the weights did not load or did not match their hash */
    APPLIANCE_ENGINE = 4,        /* the engine refused the model or failed to generate */
    APPLIANCE_NET = 5,           /* the network server stopped */
};

/* Runs while boot services are still up, after the regions are reserved and before ExitBootServices:
 * the place for what needs UEFI protocols (e.g. reading /DTE/WEIGHTS.MAN through the Simple File System).
 * It may call any boot service and print; the memory map for ExitBootServices is read
 * afresh afterwards. Returns 0 to continue, non-zero to fail the boot. */
int dte_main_before_exit(efi_handle image, efi_system_table *system_table, struct dte_boot_info *info);

/* Runs with interrupts off, the panic IDT installed, the regions reserved, no firmware services.
 * Returns 0 on success (efi_main then prints `dte: exit status=ok`), non-zero on failure. */
int dte_main_after_exit(const struct dte_boot_info *info);

#endif /* DTE_BOOT_APPLIANCE_H */
