/* Boot-time check of the pool: every row of an uneven range computed through dte_parallel_for, then hashed
 * in order on the BSP. The checksum does not depend on the number of workers (tests compare it with an
 * independent Python computation); `active` counts the workers that ran a non-empty share. With 256-bit
 * builds every share also runs an AVX instruction, so an AP without AVX state enabled faults here. */
#include "boot/alloc.h"
#include "boot/smp.h"
#include "boot/status.h"
#include "dte_config.h"
#include "runtime/platform.h"

#define SELFTEST_ROWS 10007   /* prime: uneven shares at any worker count */
#define MAX_TRACKED_WORKERS 512

struct selftest {
    uint64_t *rows;
    uint8_t ran[MAX_TRACKED_WORKERS];
    int nested_rc;
};

/* splitmix64 (Steele, Lea, Flood 2014): the row's value. */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static void noop_range(void *arg, int64_t begin, int64_t end, int worker)
{
    (void)arg, (void)begin, (void)end, (void)worker;
}

static void fill_rows(void *arg, int64_t begin, int64_t end, int worker)
{
    struct selftest *t = arg;
#if DTE_VECTOR_BITS >= 256
    __asm__ volatile("vpxor %%ymm0, %%ymm0, %%ymm0" ::: "xmm0");   /* #UD unless XCR0/CR4.OSXSAVE are set here */
#endif
#ifdef DTE_TEST_AP_FAULT
    if (worker == 1) {
        __asm__ volatile("ud2");   /* test builds: an AP faults inside a job */
    }
#endif
    if (worker == 0) {
        t->nested_rc = dte_parallel_for(4, noop_range, NULL);   /* must be rejected, not deadlock */
    }
    for (int64_t i = begin; i < end; i++) {
        t->rows[i] = splitmix64((uint64_t)i);
    }
    if (worker < MAX_TRACKED_WORKERS) {
        t->ran[worker] = 1;
    }
}

void smp_selftest(void)
{
    static struct selftest t;
    t.rows = alloc_any(SELFTEST_ROWS * sizeof(uint64_t), 64);
    if (!t.rows) {
        dte_status("smp_selftest error=no_memory");
        return;
    }
    uint64_t start = dte_time_ns();
    int rc = dte_parallel_for(SELFTEST_ROWS, fill_rows, &t);
    uint64_t ns = dte_time_ns() - start;
    uint64_t hash = 0xCBF29CE484222325ULL;   /* FNV-1a 64 over the rows' little-endian bytes */
    for (int i = 0; i < SELFTEST_ROWS; i++) {
        for (int b = 0; b < 8; b++) {
            hash = (hash ^ ((t.rows[i] >> (8 * b)) & 0xFF)) * 0x100000001B3ULL;
        }
    }
    int active = 0;
    for (int w = 0; w < MAX_TRACKED_WORKERS; w++) {
        active += t.ran[w];
    }
    dte_status("smp_selftest rows=%d checksum=0x%llx workers=%d active=%d rc=%d nested_rc=%d us=%llu", SELFTEST_ROWS,
               (unsigned long long)hash, dte_worker_count(), active, rc, t.nested_rc, (unsigned long long)(ns / 1000));
}
