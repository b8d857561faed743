/* The platform interface (docs/design.md, "Engine platform interface"): the runtime layer the engine and the
 * drivers both sit on. It lives outside engine/ because drivers and boot code use it too; nothing here knows
 * about models.
 *
 * The engine and drivers call only these functions to reach the machine. Two implementations exist:
 * firmware/boot/platform_fw.c (bare metal, after ExitBootServices) and firmware/hosted/platform_hosted.c
 * (pthreads, for the hosted library the Python tools load).
 */
#ifndef DTE_RUNTIME_PLATFORM_H
#define DTE_RUNTIME_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

/* Zeroed memory aligned to `align` (a power of two); never freed (a bump allocator on metal).
 * NULL when out of memory. */
void *dte_alloc(size_t size, size_t align);

/* One line of log output; no trailing newline needed. */
void dte_log(const char *line);

/* Monotonic nanoseconds since an arbitrary start. */
uint64_t dte_time_ns(void);

typedef void (*dte_range_fn)(void *arg, int64_t begin, int64_t end, int worker);

/* Split [0, n) into contiguous ranges and call fn(arg, begin, end, worker) for each; the caller works too and
 * returns only after every range is done. Contract:
 *   - every index in [0, n) is covered exactly once; ranges never overlap;
 *   - `worker` is in [0, dte_worker_count()) and no two ranges running at the same time share a worker index,
 *     so per-worker scratch indexed by `worker` needs dte_worker_count() slots (read the count before the call:
 *     the hosted pool may be resized between calls, never during one);
 *   - fn must not call dte_parallel_for (nested calls are rejected) and must not allocate.
 * Returns 0 when done, -1 when called while another parallel_for is running (nested/concurrent calls are
 * rejected and fn is not called). */
int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg);

/* How many workers dte_parallel_for uses (>= 1), the caller included: worker indices are below this. */
int dte_worker_count(void);

#endif /* DTE_RUNTIME_PLATFORM_H */
