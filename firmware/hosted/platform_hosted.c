/* The engine platform interface on a POSIX host (firmware/runtime/platform.h): calloc-backed allocations
 * recorded in per-thread arenas, stderr logging, CLOCK_MONOTONIC, and a persistent pthreads pool for
 * dte_parallel_for (workers spin briefly on a generation counter, then sleep on a condition variable; the range
 * is cut into a few contiguous chunks per thread that any thread, the caller included, may claim). */
#define _POSIX_C_SOURCE 200809L
#include "platform_hosted.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/platform.h"

/* ---- memory ---- */

typedef struct alloc_header {
    struct alloc_header *next;
    void *raw;
} alloc_header;

static _Thread_local dte_arena *current_arena;

dte_arena *dte_hosted_arena_enter(dte_arena *arena)
{
    dte_arena *prev = current_arena;
    current_arena = arena;
    return prev;
}

void dte_hosted_arena_free(dte_arena *arena)
{
    alloc_header *h = arena->head;
    while (h) {
        alloc_header *next = h->next;
        free(h->raw);
        h = next;
    }
    arena->head = NULL;
}

void *dte_alloc(size_t size, size_t align)
{
    if (align < sizeof(void *)) {
        align = sizeof(void *);
    }
    if ((align & (align - 1)) != 0) {
        return NULL;
    }
    size_t extra = align + sizeof(alloc_header);
    if (size > SIZE_MAX - extra) {
        return NULL;
    }
    uint8_t *raw = calloc(1, size + extra);
    if (!raw) {
        return NULL;
    }
    uintptr_t p = ((uintptr_t)raw + sizeof(alloc_header) + align - 1) & ~(uintptr_t)(align - 1);
    alloc_header *h = (alloc_header *)(p - sizeof(alloc_header));
    h->raw = raw;
    if (current_arena) {
        h->next = current_arena->head;
        current_arena->head = h;
    }
    return (void *)p;
}

void dte_log(const char *line)
{
    fprintf(stderr, "%s\n", line);
}

uint64_t dte_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- thread pool ---- */

#define MAX_THREADS 256
#define SPIN_ROUNDS 20000
#define CHUNKS_PER_THREAD 4

/* Work is handed out in chunks through one atomic ticket: job id (32 bits) | chunk count (16) | next chunk (16).
 * Whoever claims a chunk by compare-and-swap runs it, so a worker the OS has not scheduled yet cannot hold the
 * caller up (it finds the job done and goes back to waiting), as in ggml's chunked mul_mat. */
typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t threads[MAX_THREADS];
    int n_threads;               /* including the caller */
    atomic_uint_fast64_t generation;
    atomic_uint_fast64_t ticket;
    atomic_int done;             /* chunks finished in the current job */
    atomic_int busy;             /* a parallel_for is in progress */
    atomic_int stop;
    int sleepers;
    uint64_t created_generation; /* generation when the workers were started (constant while they live) */
    dte_range_fn fn;             /* read only after claiming a chunk of the job they belong to */
    void *arg;
    int64_t n;
} pool_t;

static pool_t pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .n_threads = 1};

/* Claim and run chunks of job `job` until none are left. */
static void run_chunks(uint32_t job, int worker)
{
    for (;;) {
        uint64_t t = atomic_load_explicit(&pool.ticket, memory_order_acquire);
        uint64_t chunks = (t >> 16) & 0xffff, next = t & 0xffff;
        if ((uint32_t)(t >> 32) != job || next >= chunks) {
            return;
        }
        if (!atomic_compare_exchange_weak_explicit(&pool.ticket, &t, t + 1, memory_order_acq_rel,
                                                   memory_order_relaxed)) {
            continue;
        }
        int64_t begin = (int64_t)next * pool.n / (int64_t)chunks, end = (int64_t)(next + 1) * pool.n / (int64_t)chunks;
        if (begin < end) {
            pool.fn(pool.arg, begin, end, worker);
        }
        atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    }
}

static void *worker_main(void *arg)
{
    int worker = (int)(intptr_t)arg;
    uint64_t seen = pool.created_generation; /* not pool.generation: a job may already have been posted */
    for (;;) {
        int spins = 0;
        while (atomic_load_explicit(&pool.generation, memory_order_acquire) == seen && !atomic_load(&pool.stop)) {
            if (++spins < SPIN_ROUNDS) {
                continue;
            }
            pthread_mutex_lock(&pool.lock);
            pool.sleepers++;
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop)) {
                pthread_cond_wait(&pool.wake, &pool.lock);
            }
            pool.sleepers--;
            pthread_mutex_unlock(&pool.lock);
        }
        if (atomic_load(&pool.stop)) {
            return NULL;
        }
        seen = atomic_load_explicit(&pool.generation, memory_order_acquire);
        run_chunks((uint32_t)seen, worker);
    }
}

static void stop_pool(void)
{
    pthread_mutex_lock(&pool.lock);
    atomic_store(&pool.stop, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    for (int i = 1; i < pool.n_threads; i++) {
        pthread_join(pool.threads[i], NULL);
    }
    atomic_store(&pool.stop, 0);
    pool.n_threads = 1;
}

int dte_hosted_set_threads(int n_threads)
{
    if (n_threads < 1) {
        n_threads = 1;
    }
    if (n_threads > MAX_THREADS) {
        n_threads = MAX_THREADS;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool.busy, &expected, 1)) {
        return -1;
    }
    if (n_threads != pool.n_threads) {
        stop_pool();
        pool.created_generation = atomic_load(&pool.generation);
        for (int i = 1; i < n_threads; i++) {
            if (pthread_create(&pool.threads[i], NULL, worker_main, (void *)(intptr_t)i) != 0) {
                break;
            }
            pool.n_threads = i + 1;
        }
    }
    atomic_store(&pool.busy, 0);
    return 0;
}

int dte_worker_count(void)
{
    return pool.n_threads;
}

int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&pool.busy, &expected, 1)) {
        return -1;
    }
    if (n > 0 && (pool.n_threads == 1 || n == 1)) {
        fn(arg, 0, n, 0);
    } else if (n > 0) {
        int64_t chunks = (int64_t)pool.n_threads * CHUNKS_PER_THREAD;
        if (chunks > n) {
            chunks = n;
        }
        pool.fn = fn;
        pool.arg = arg;
        pool.n = n;
        atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
        uint64_t gen = atomic_load(&pool.generation) + 1;
        uint32_t job = (uint32_t)gen;
        atomic_store_explicit(&pool.ticket, (uint64_t)job << 32 | (uint64_t)chunks << 16, memory_order_release);
        pthread_mutex_lock(&pool.lock);
        atomic_store_explicit(&pool.generation, gen, memory_order_release);
        if (pool.sleepers) {
            pthread_cond_broadcast(&pool.wake);
        }
        pthread_mutex_unlock(&pool.lock);
        run_chunks(job, 0);
        while (atomic_load_explicit(&pool.done, memory_order_acquire) != (int)chunks) {
            sched_yield();
        }
    }
    atomic_store(&pool.busy, 0);
    return 0;
}
