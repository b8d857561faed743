/* The engine platform interface (firmware/runtime/platform.h) on bare metal, after ExitBootServices:
 * memory from the bump allocator, logging to COM1, time from the TSC. dte_parallel_for and
 * dte_worker_count live in parallel_fw.c. */
#include "runtime/platform.h"

#include "boot/alloc.h"
#include "boot/status.h"
#include "boot/timer.h"

void *dte_alloc(size_t size, size_t align)
{
    return alloc_any(size, align);
}

void dte_log(const char *line)
{
    status_write_line(line);
}

uint64_t dte_time_ns(void)
{
    return timer_ns();
}
