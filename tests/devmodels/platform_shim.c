/* Test-only implementation of firmware/runtime/platform.h for the hosted driver tests: aligned heap memory (a
 * pointer is the "physical address" the device model DMAs to), a log the tests read back, a monotonic clock. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../firmware/runtime/platform.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_text[1 << 16];
static size_t log_len;

static size_t alloc_calls;

/* How many times dte_alloc was called (tests check that steady-state reads allocate nothing). */
size_t shim_alloc_calls(void)
{
    return __atomic_load_n(&alloc_calls, __ATOMIC_RELAXED);
}

void *dte_alloc(size_t size, size_t align)
{
    __atomic_add_fetch(&alloc_calls, 1, __ATOMIC_RELAXED);
    if (align < sizeof(void *))
        align = sizeof(void *);
    size_t rounded = (size + align - 1) / align * align;
    void *p = aligned_alloc(align, rounded ? rounded : align);
    if (p)
        memset(p, 0, rounded);
    return p;
}

void dte_log(const char *line)
{
    pthread_mutex_lock(&log_lock);
    size_t n = strlen(line);
    if (log_len + n + 2 < sizeof log_text) {
        memcpy(log_text + log_len, line, n);
        log_len += n;
        log_text[log_len++] = '\n';
        log_text[log_len] = '\0';
    }
    pthread_mutex_unlock(&log_lock);
    if (getenv("DTE_SHIM_LOG"))
        fprintf(stderr, "%s\n", line);
}

uint64_t dte_time_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int worker_count = 1;

struct range_task {
    dte_range_fn fn;
    void *arg;
    int64_t begin, end;
    int worker;
};

static void *run_task(void *p)
{
    struct range_task *t = p;
    if (t->begin < t->end)
        t->fn(t->arg, t->begin, t->end, t->worker);
    return NULL;
}

/* Contiguous ranges, one per worker, on real threads (worker 0 is the caller), as platform.h specifies. */
int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    static int running;
    if (__atomic_exchange_n(&running, 1, __ATOMIC_ACQUIRE))
        return -1;
    int w = worker_count;
    struct range_task tasks[64];
    pthread_t threads[64];
    for (int i = 0; i < w; i++)
        tasks[i] = (struct range_task){fn, arg, n * i / w, n * (i + 1) / w, i};
    for (int i = 1; i < w; i++)
        pthread_create(&threads[i], NULL, run_task, &tasks[i]);
    run_task(&tasks[0]);
    for (int i = 1; i < w; i++)
        pthread_join(threads[i], NULL);
    __atomic_store_n(&running, 0, __ATOMIC_RELEASE);
    return 0;
}

int dte_worker_count(void)
{
    return worker_count;
}

/* Tests choose how many workers dte_parallel_for uses (1..64). */
void shim_set_workers(int n)
{
    worker_count = n < 1 ? 1 : (n > 64 ? 64 : n);
}

/* Copy the log gathered so far into buf (NUL-terminated) and clear it; returns its length. */
size_t shim_take_log(char *buf, size_t cap)
{
    pthread_mutex_lock(&log_lock);
    size_t n = log_len < cap - 1 ? log_len : cap - 1;
    memcpy(buf, log_text, n);
    buf[n] = '\0';
    log_len = 0;
    log_text[0] = '\0';
    pthread_mutex_unlock(&log_lock);
    return n;
}
