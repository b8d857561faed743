/* TSC-based monotonic clock. Calibration uses EFI_BOOT_SERVICES.Stall (UEFI 2.10 §7.5.2), so it must run
 * before ExitBootServices; afterwards only the TSC is read. Assumes an invariant TSC (every x86-64 server
 * CPU of the last decade; CPUID.80000007H:EDX[8]). */
#include "boot/timer.h"

#include "boot/io.h"

#define CALIBRATION_US 10000ULL
#define NS_PER_S 1000000000ULL

static uint64_t tsc_hz;
static uint64_t tsc_start;

uint64_t timer_calibrate(efi_boot_services *bs)
{
    uint64_t before = cpu_rdtsc();
    bs->stall(CALIBRATION_US);
    uint64_t after = cpu_rdtsc();
    tsc_hz = (after - before) * (1000000ULL / CALIBRATION_US);
    if (tsc_hz == 0) {
        tsc_hz = 1;   /* never divide by zero, even on a broken TSC */
    }
    tsc_start = before;
    return tsc_hz;
}

uint64_t timer_ns(void)
{
    if (tsc_hz == 0) {
        return 0;
    }
    uint64_t ticks = cpu_rdtsc() - tsc_start;
    /* Split to stay within 64 bits (no 128-bit division in the freestanding build). */
    return (ticks / tsc_hz) * NS_PER_S + ((ticks % tsc_hz) * NS_PER_S) / tsc_hz;
}
