/* SMP bring-up after ExitBootServices (Intel SDM Vol. 3A §9.4 "Multiple-processor (MP) initialization";
 * AMD APM Vol. 2 §15.x / §16 "Advanced Programmable Interrupt Controller") and the bare-metal worker pool
 * behind dte_parallel_for (firmware/runtime/platform.h). */
#ifndef DTE_BOOT_SMP_H
#define DTE_BOOT_SMP_H

#include <stdint.h>

#include "boot/efi.h"

/* Before ExitBootServices: reserve the two pages below 1 MiB the AP trampoline needs (a SIPI vector names a
 * page under 1 MiB). Returns 0, or -1 when the firmware has no such pages free (then SMP stays off). */
int dte_smp_reserve_low_memory(efi_boot_services *bs);

/* After ExitBootServices, with interrupts off and the panic IDT installed on the BSP: read the MADT from
 * `rsdp`, wake every usable application processor with INIT-SIPI-SIPI (up to the worker cap: board cores,
 * `dte build --threads`, and `max_workers` when > 0), park each one in the worker loop, print
 * `dte: smp cpu=N apic=X status=...` for each CPU that does not come up and `dte: smp cpus=N ...`, then run the
 * pool self-test (`dte: smp_selftest ...`). Returns the number of workers (>= 1, the BSP included). */
int dte_smp_start(const void *rsdp, int max_workers);

/* The worker index (0 = BSP) of the calling core, -1 when it is not a worker. */
int dte_smp_current_worker(void);

/* Panic path: ask every other core to stop (pool stop flag + an NMI to all but this core). Idempotent. */
void dte_smp_stop_others(void);

/* --- between smp.c and parallel_fw.c --- */

/* An AP's life after check-in: wait for jobs, run its share, never return (halts when the pool stops). */
__attribute__((noreturn)) void parallel_worker_loop(int worker);

/* Publish the number of workers that checked in (BSP included); called once by dte_smp_start. */
void parallel_set_workers(int workers);
/* The thermal governor's cap on how many workers take each job (boot/thermal_fw.c). */
void parallel_set_active(int workers);

/* Set the stop flag the workers (and a BSP waiting in dte_parallel_for) poll; they halt. */
void parallel_stop(void);

/* The pool self-test (smp_selftest.c): prints `dte: smp_selftest ...`. */
void smp_selftest(void);

#endif /* DTE_BOOT_SMP_H */
