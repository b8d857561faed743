/* The engine platform interface (docs/design.md, "Engine platform interface").
 *
 * The engine calls only these functions to reach the machine. Two implementations exist:
 * firmware/boot/platform_fw.c (bare metal, after ExitBootServices) and firmware/hosted/platform_hosted.c
 * (pthreads, for the hosted library the Python tools load).
 */
#ifndef DTE_ENGINE_PLATFORM_H
#define DTE_ENGINE_PLATFORM_H

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

/* Split [0, n) into contiguous ranges, one per worker; the caller works too. Returns 0 when done,
 * -1 when called while another parallel_for is running (nested/concurrent calls are rejected). */
int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg);

/* How many workers dte_parallel_for uses (>= 1). */
int dte_worker_count(void);

#endif /* DTE_ENGINE_PLATFORM_H */
