/* Stress test of the hosted thread pool (firmware/hosted/platform_hosted.c) behind dte_parallel_for.
 * Every job fills out[i] = mix(i, job) through the pool; the driver checks each row against a plain loop,
 * that every row ran exactly once, that every call got a non-empty range [begin, end) inside [0, n) with a worker
 * index below the pool size, that no worker index ran two ranges at the same time (the engine keeps per-worker
 * scratch), that nested and concurrent calls return -1 while a job runs, and that the pool survives resizing.
 * (How [0, n) is cut is the pool's choice: one range per worker, or chunks claimed by whoever is free.)
 * Built plain and with -fsanitize=thread by tests/test_smp.py. argv[1]: work scale (default 10). Prints "ok ..."
 * and exits 0, or names the first failure and exits 1. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/platform.h"
#include "hosted/platform_hosted.h"

#define MAX_N 5000
#define MAX_WORKERS 16

struct job {
    int64_t n;
    uint64_t salt;
    uint64_t out[MAX_N];
    atomic_int hits[MAX_N];
    atomic_int inside[MAX_WORKERS];   /* 1 while that worker index runs fill */
    atomic_int bad_calls;             /* empty/out-of-range ranges, bad worker index, a worker running twice */
    atomic_int nested_ok;   /* nested calls that were (wrongly) accepted */
};

static uint64_t mix(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void noop(void *arg, int64_t b, int64_t e, int w) { (void)arg, (void)b, (void)e, (void)w; }

static void fill(void *arg, int64_t b, int64_t e, int w)
{
    struct job *j = arg;
    if (w < 0 || w >= dte_worker_count() || w >= MAX_WORKERS || b < 0 || e > j->n || b >= e) {
        atomic_fetch_add(&j->bad_calls, 1);
        return;
    }
    if (atomic_exchange(&j->inside[w], 1) != 0) atomic_fetch_add(&j->bad_calls, 1);
    if (dte_parallel_for(3, noop, NULL) != -1) atomic_fetch_add(&j->nested_ok, 1);
    for (int64_t i = b; i < e; i++) {
        j->out[i] = mix((uint64_t)i ^ j->salt);
        atomic_fetch_add(&j->hits[i], 1);
    }
    atomic_store(&j->inside[w], 0);
}

static int check(struct job *j, int workers, const char *what)
{
    for (int64_t i = 0; i < j->n; i++) {
        if (j->out[i] != mix((uint64_t)i ^ j->salt) || atomic_load(&j->hits[i]) != 1) {
            printf("FAIL %s: n=%lld workers=%d row %lld hits=%d\n", what, (long long)j->n, workers, (long long)i,
                   atomic_load(&j->hits[i]));
            return 1;
        }
    }
    if (atomic_load(&j->bad_calls) != 0 || atomic_load(&j->nested_ok) != 0) {
        printf("FAIL %s: n=%lld workers=%d bad calls %d, nested accepted %d\n", what, (long long)j->n, workers,
               atomic_load(&j->bad_calls), atomic_load(&j->nested_ok));
        return 1;
    }
    return 0;
}

static struct job job;
static atomic_int stop_rival, rival_rejected;

/* Another thread calling dte_parallel_for at the same time: each call either runs whole or returns -1. */
static void *rival(void *arg)
{
    (void)arg;
    static struct job mine;
    uint64_t round = 0;
    while (!atomic_load(&stop_rival)) {
        memset(&mine, 0, sizeof mine);
        mine.n = 97;
        mine.salt = ++round * 7919;
        int rc = dte_parallel_for(mine.n, fill, &mine);
        if (rc == -1) {
            atomic_fetch_add(&rival_rejected, 1);
        } else if (rc != 0 || check(&mine, MAX_WORKERS, "rival")) {
            exit(1);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int scale = argc > 1 ? atoi(argv[1]) : 10;   /* rounds per thread count = 30 * scale */
    static const int thread_counts[] = {1, 2, 3, 4, 7, 2};
    static const int64_t sizes[] = {0, 1, 2, 3, 5, 6, 7, 13, 64, 1000, 4999};
    unsigned seed = 12345;
    int jobs = 0;
    for (size_t t = 0; t < sizeof thread_counts / sizeof thread_counts[0]; t++) {
        int workers = thread_counts[t];
        if (dte_hosted_set_threads(workers) != 0 || dte_worker_count() != workers) {
            printf("FAIL set_threads(%d): worker count %d\n", workers, dte_worker_count());
            return 1;
        }
        for (int round = 0; round < 30 * scale; round++) {
            memset(&job, 0, sizeof job);
            seed = seed * 1103515245u + 12345u;
            job.n = round < 11 ? sizes[round] : (int64_t)((seed >> 8) % 40);   /* mostly small jobs */
            job.salt = (uint64_t)round * 0x10001ULL + (uint64_t)workers;
            if (dte_parallel_for(job.n, fill, &job) != 0 || check(&job, workers, "job")) return 1;
            jobs++;
        }
    }
    pthread_t other;
    pthread_create(&other, NULL, rival, NULL);
    for (int round = 0; round < 200 * scale; round++) {
        memset(&job, 0, sizeof job);
        job.n = 1 + round % 300;
        job.salt = (uint64_t)round;
        int rc = dte_parallel_for(job.n, fill, &job);
        if (rc == -1) continue;   /* the rival holds the pool: rejected, not queued */
        if (rc != 0 || check(&job, 2, "contended")) return 1;
        jobs++;
    }
    atomic_store(&stop_rival, 1);
    pthread_join(other, NULL);
    dte_hosted_set_threads(1);
    printf("ok jobs=%d rival_rejected=%d\n", jobs, atomic_load(&rival_rejected));
    return 0;
}
