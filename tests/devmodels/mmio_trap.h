/* Synchronous MMIO emulation for hosted device models (x86-64 Linux only).
 *
 * A model's BAR is page-aligned memory kept PROT_NONE. Every load or store the driver makes to it faults; the SIGSEGV
 * handler calls the model's `before` hook (the model refreshes what the next read should see: a register selected by
 * an earlier write, a status bit), unprotects the BAR and single-steps the faulting instruction (EFLAGS.TF); the
 * SIGTRAP handler then calls `after` (the model reacts to the value just written: a doorbell, a status change) and
 * protects the BAR again. So a select-then-read register pair or a doorbell behaves as on hardware, with no model
 * thread and no races. Hooks run in signal context on the driver's thread: no locks, no allocation.
 */
#ifndef DTE_TESTS_MMIO_TRAP_H
#define DTE_TESTS_MMIO_TRAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*mmio_trap_hook)(void *ctx, uint32_t offset, bool is_write);

/* Zeroed memory of `size` bytes (a multiple of 4096), aligned to `size` rounded up to a power of two, so it can
 * stand in for a BAR whose sizing mask is ~(size - 1). NULL on failure. */
void *mmio_trap_alloc(size_t size);
void mmio_trap_free(void *base, size_t size);
/* Start trapping accesses to [base, base + size). `after` may be NULL. 0 on success, -1 when the table is full. */
int mmio_trap_register(void *base, size_t size, mmio_trap_hook before, mmio_trap_hook after, void *ctx);
/* Stop trapping (the memory is left readable and writable). */
void mmio_trap_unregister(void *base);

#endif
