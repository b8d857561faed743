/* dte_parallel_for on bare metal: a cooperative pool of one worker per core woken by smp.c. No scheduler:
 * the caller (BSP) posts a job by bumping a generation counter, every worker runs its contiguous share of
 * [0, n) and counts down `remaining`; everyone spins with `pause`. Nested or concurrent calls are rejected
 * with -1 (a `busy` flag taken by compare-exchange), never waited on, so they cannot deadlock. */
#include "boot/io.h"
#include "boot/smp.h"
#include "boot/thermal_fw.h"
#include "runtime/platform.h"

#define CACHE_LINE 64

/* The word every idle worker polls (generation) and the one every worker writes (remaining) sit on separate
 * cache lines, so finishing workers do not invalidate the line the others spin on. */
struct pool {
    _Alignas(CACHE_LINE) uint64_t generation;   /* bumped once per job; workers wait for it to move */
    _Alignas(CACHE_LINE) int remaining;         /* APs still running the current job */
    _Alignas(CACHE_LINE) int busy;              /* a dte_parallel_for is in progress */
    int stop;              /* a panic: everyone halts */
    int workers;           /* BSP + APs that checked in */
    int active;            /* how many of them take work (the thermal governor's pacing); <= workers */
    int job_workers;       /* the current job's split, published with the generation bump */
    dte_range_fn fn;
    void *arg;
    int64_t n;
};

static struct pool pool = {.workers = 1, .active = 1 << 30};

static inline void cpu_pause(void)
{
    __asm__ volatile("pause" ::: "memory");
}

/* Worker w's rows: the first n % workers workers take one extra row. */
static void run_share(int worker, int workers, int64_t n)
{
    int64_t per = n / workers, extra = n % workers;
    int64_t begin = worker * per + (worker < extra ? worker : extra);
    int64_t end = begin + per + (worker < extra ? 1 : 0);
    if (begin < end) {
        pool.fn(pool.arg, begin, end, worker);
    }
}

static void halt_if_stopped(void)
{
    if (__atomic_load_n(&pool.stop, __ATOMIC_ACQUIRE)) {
        cpu_halt_forever();
    }
}

void parallel_worker_loop(int worker)
{
    uint64_t seen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE);
    for (;;) {
        uint64_t now;
        while ((now = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE)) == seen) {
            halt_if_stopped();
            cpu_pause();
        }
        seen = now;
        if (worker < pool.job_workers) {
            run_share(worker, pool.job_workers, pool.n);
        }
        __atomic_fetch_sub(&pool.remaining, 1, __ATOMIC_RELEASE);
    }
}

void parallel_set_workers(int workers)
{
    __atomic_store_n(&pool.workers, workers < 1 ? 1 : workers, __ATOMIC_RELEASE);
}

/* The thermal governor's cap: jobs are split over at most `workers` cores; the rest idle in their `pause` loop.
 * dte_worker_count() is unchanged (callers size per-worker scratch by it). */
void parallel_set_active(int workers)
{
    __atomic_store_n(&pool.active, workers < 1 ? 1 : workers, __ATOMIC_RELEASE);
}

void parallel_stop(void)
{
    __atomic_store_n(&pool.stop, 1, __ATOMIC_RELEASE);
}

int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    int expected = 0;
    if (!__atomic_compare_exchange_n(&pool.busy, &expected, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) {
        return -1;   /* nested (from inside fn) or concurrent (another core): rejected */
    }
    thermal_fw_tick();   /* may pace (fewer workers) or, above the critical temperature, wait here */
    if (n > 0) {
        int active = __atomic_load_n(&pool.active, __ATOMIC_ACQUIRE);
        int workers = pool.workers < active ? pool.workers : active;
        pool.job_workers = workers;
        pool.fn = fn;
        pool.arg = arg;
        pool.n = n;
        if (workers == 1 || n == 1) {
            fn(arg, 0, n, 0);
        } else {
            __atomic_store_n(&pool.remaining, pool.workers - 1, __ATOMIC_RELAXED);   /* idle APs answer too */
            __atomic_fetch_add(&pool.generation, 1, __ATOMIC_RELEASE);   /* publishes fn, arg, n */
            run_share(0, workers, n);
            while (__atomic_load_n(&pool.remaining, __ATOMIC_ACQUIRE) != 0) {
                halt_if_stopped();   /* a worker panicked: it reports, we stop */
                cpu_pause();
            }
        }
    }
    __atomic_store_n(&pool.busy, 0, __ATOMIC_RELEASE);
    return 0;
}

int dte_worker_count(void)
{
    return __atomic_load_n(&pool.workers, __ATOMIC_ACQUIRE);
}
