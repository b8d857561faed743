/* dte_parallel_for on bare metal: one worker (the calling core) until SMP bring-up replaces this file. */
#include "engine/platform.h"

static int running;

int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    if (running) {
        return -1;   /* nested or concurrent call: rejected, as platform.h specifies */
    }
    running = 1;
    if (n > 0) {
        fn(arg, 0, n, 0);
    }
    running = 0;
    return 0;
}

int dte_worker_count(void)
{
    return 1;
}
