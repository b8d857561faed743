/* The engine platform interface (firmware/runtime/platform.h) for test-only UEFI probe applications: a bump heap
 * from boot-services pages, serial-port logging (COM1, usable after ExitBootServices), a TSC clock calibrated with
 * Stall, one worker; plus the isa-debug-exit used to end QEMU (0x10 ok -> rc 33, 0x11 failure -> rc 35). */
#ifndef DTE_TESTS_PROBE_PLATFORM_H
#define DTE_TESTS_PROBE_PLATFORM_H

#include <stdint.h>

#include "boot/efi.h"
#include "runtime/platform.h"

/* Calibrate the clock and take `heap_bytes` of boot-services pages for dte_alloc; exits QEMU (0x11) on failure. */
void probe_init(efi_system_table *st, uint64_t heap_bytes);
/* The calibrated TSC rate in MHz (ticks per microsecond); 1000 before probe_init. */
uint64_t probe_tsc_mhz(void);
/* Log `dte: exit status=ok|failed` and leave QEMU through isa-debug-exit. */
__attribute__((noreturn)) void probe_exit(uint32_t code);
/* ExitBootServices with a fresh memory map (retried when the map key goes stale). 0 on success. */
int probe_exit_boot_services(efi_handle image, efi_boot_services *bs);

#endif
