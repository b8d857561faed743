/* Monotonic time from the TSC, calibrated once against the UEFI Stall service before ExitBootServices. */
#ifndef DTE_BOOT_TIMER_H
#define DTE_BOOT_TIMER_H

#include <stdint.h>

#include "boot/efi.h"

/* Measures TSC ticks across a 10 ms Stall; returns the TSC frequency in Hz. */
uint64_t timer_calibrate(efi_boot_services *bs);

/* Nanoseconds since timer_calibrate ran (0 before). */
uint64_t timer_ns(void);

#endif /* DTE_BOOT_TIMER_H */
