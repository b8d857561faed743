/* What runs after ExitBootServices: the single hook later stages (NVMe load, engine) plug into. */
#ifndef DTE_BOOT_APPLIANCE_H
#define DTE_BOOT_APPLIANCE_H

#include <stdint.h>

#include "boot/cpu.h"

struct dte_boot_info {
    struct cpu_info cpu;
    uint64_t xcr0;
    uint64_t tsc_hz;
    uint64_t usable_bytes;
};

/* Runs with interrupts off, the panic IDT installed, the regions reserved, no firmware services.
 * Returns 0 on success (efi_main then prints `dte: exit status=ok`), non-zero on failure. */
int dte_main_after_exit(const struct dte_boot_info *info);

#endif /* DTE_BOOT_APPLIANCE_H */
