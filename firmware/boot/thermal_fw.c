/* The firmware side of the thermal envelope (boot/thermal_fw.h): CPUID facts for drivers/thermal.c, a #GP-safe
 * rdmsr, the board's envelope from dte_config.h ([thermal] in the board file), sampling and pacing. */
#include "boot/thermal_fw.h"

#include "boot/io.h"
#include "boot/panic.h"
#include "boot/smp.h"
#include "boot/status.h"
#include "boot/timer.h"
#include "drivers/thermal.h"
#include "drivers/thermal_governor.h"
#include "dte_config.h"
#include "runtime/platform.h"

__attribute__((noinline)) int dte_rdmsr_safe(uint32_t msr, uint64_t *value)
{
    uint32_t lo, hi;
    dte_gp_guard_hit = 0;
    __asm__ volatile("xorl %%eax, %%eax\n\t"
                     "xorl %%edx, %%edx\n\t"
                     "leaq 1f(%%rip), %%r11\n\t"
                     "movq %%r11, dte_gp_guard_rip(%%rip)\n"
                     "1:\n\t"
                     "rdmsr\n\t"                       /* 0F 32: the 2 bytes the #GP fixup skips */
                     "movq $0, dte_gp_guard_rip(%%rip)\n"
                     : "=&a"(lo), "=&d"(hi)
                     : "c"(msr)
                     : "r11", "memory");
    if (dte_gp_guard_hit) {
        return -1;
    }
    *value = ((uint64_t)hi << 32) | lo;
    return 0;
}

static int rdmsr_hook(void *ctx, uint32_t msr, uint64_t *value)
{
    (void)ctx;
    return dte_rdmsr_safe(msr, value);
}

static struct {
    dte_thermal_cpu cpu;
    dte_thermal sensors;
    dte_governor gov;
    dte_thermal_sample last;
    uint64_t next_ns;
    int started;
} th;

static void copy_regs(char *dst, const struct cpuid_regs *r, int count)
{
    const uint32_t words[4] = {r->eax, r->ebx, r->ecx, r->edx};
    for (int w = 0; w < count; w++) {
        for (int i = 0; i < 4; i++) {
            dst[4 * w + i] = (char)(words[w] >> (8 * i));
        }
    }
}

static void identify(dte_thermal_cpu *cpu)
{
    struct cpuid_regs leaf0 = cpu_cpuid(0, 0), leaf1 = cpu_cpuid(1, 0), ext0 = cpu_cpuid(0x80000000u, 0);
    const struct cpuid_regs vendor = {leaf0.ebx, leaf0.edx, leaf0.ecx, 0};   /* string order EBX, EDX, ECX */
    copy_regs(cpu->vendor, &vendor, 3);
    unsigned base_family = (leaf1.eax >> 8) & 0xF, base_model = (leaf1.eax >> 4) & 0xF;
    cpu->family = base_family == 0xF ? base_family + ((leaf1.eax >> 20) & 0xFF) : base_family;
    cpu->model =
        (base_family == 0x6 || base_family == 0xF) ? base_model | (((leaf1.eax >> 16) & 0xF) << 4) : base_model;
    cpu->hypervisor = (leaf1.ecx >> 31) & 1;
    cpu->leaf6_eax = leaf0.eax >= 6 ? cpu_cpuid(6, 0).eax : 0;
    cpu->ext7_edx = ext0.eax >= 0x80000007u ? cpu_cpuid(0x80000007u, 0).edx : 0;
    if (ext0.eax >= 0x80000004u) {
        for (uint32_t i = 0; i < 3; i++) {
            struct cpuid_regs r = cpu_cpuid(0x80000002u + i, 0);
            copy_regs(cpu->brand + 16 * i, &r, 4);
        }
    }
    cpu->rdmsr = rdmsr_hook;
}

static void report(void)
{
    const dte_thermal_sample *s = &th.last;
    dte_status("thermal tctl_c=%d.%d pkg_w=%u.%u workers=%u state=%s", (int)(s->tctl_mc / 1000),
               (int)((s->tctl_mc < 0 ? -s->tctl_mc : s->tctl_mc) % 1000 / 100), (unsigned)(s->pkg_mw / 1000),
               (unsigned)(s->pkg_mw % 1000 / 100), (unsigned)th.gov.workers, dte_governor_state_name(th.gov.state));
}

#ifdef DTE_TEST_GP_GUARD
/* Test build: QEMU TCG reads absent MSRs as 0 instead of raising #GP, so the guard is exercised with another
 * 2-byte instruction that always raises #GP: loading DS with a selector past the GDT's limit (SDM Vol. 3A 6.15,
 * "#GP(selector) if the segment selector index is outside the descriptor table limits"). */
static void test_gp_guard(void)
{
    uint16_t saved;
    __asm__ volatile("mov %%ds, %0" : "=r"(saved));
    dte_gp_guard_hit = 0;
    __asm__ volatile("movw $0xFFF8, %%ax\n\t"
                     "leaq 1f(%%rip), %%r11\n\t"
                     "movq %%r11, dte_gp_guard_rip(%%rip)\n"
                     "1:\n\t"
                     "movw %%ax, %%ds\n\t"              /* 8E D8 */
                     "movq $0, dte_gp_guard_rip(%%rip)\n" ::
                         : "rax", "r11", "memory");
    int hit = dte_gp_guard_hit;
    __asm__ volatile("mov %0, %%ds" ::"r"(saved));
    dte_status("thermal_test gp_guard_hit=%d", hit);
}
#endif

void thermal_fw_start(void)
{
#ifdef DTE_TEST_GP_GUARD
    test_gp_guard();
#endif
    identify(&th.cpu);
    dte_thermal_probe(&th.sensors, &th.cpu);
    int workers = dte_worker_count();
    dte_governor_config cfg = {
        .target_mc = DTE_THERMAL_TARGET_C * 1000,
        .critical_mc = DTE_THERMAL_CRITICAL_C * 1000,
        .hysteresis_mc = DTE_THERMAL_HYSTERESIS_C * 1000,
        .power_limit_mw = DTE_THERMAL_POWER_LIMIT_W * 1000u,
        .max_workers = (uint32_t)workers,
        .min_workers = 1,
    };
    dte_governor_init(&th.gov, &cfg);
    dte_thermal_read(&th.sensors, timer_ns(), &th.last);
    dte_governor_update(&th.gov, &th.last);
    if (th.gov.state == DTE_GOV_UNAVAILABLE) {
        dte_status("thermal state=unavailable reason=%s power_reason=%s", th.sensors.temp_reason,
                   th.sensors.power_reason ? th.sensors.power_reason : "none");
        return;   /* nothing to pace by: the tick stays a no-op */
    }
    dte_status("thermal sensor=%s ccds=%u target_c=%d critical_c=%d power_limit_w=%d",
               th.sensors.kind == DTE_THERMAL_AMD_ZEN ? "amd_zen"
               : th.sensors.kind == DTE_THERMAL_INTEL ? "intel"
                                                      : "power_only",
               (unsigned)th.last.n_ccd, DTE_THERMAL_TARGET_C, DTE_THERMAL_CRITICAL_C, DTE_THERMAL_POWER_LIMIT_W);
    report();
    th.next_ns = timer_ns() + DTE_THERMAL_SAMPLE_MS * 1000000ull;
    th.started = 1;
}

static void sample(void)
{
    dte_thermal_read(&th.sensors, timer_ns(), &th.last);
    if (dte_governor_update(&th.gov, &th.last)) {
        report();
        parallel_set_active((int)th.gov.workers);
    }
    th.next_ns = timer_ns() + DTE_THERMAL_SAMPLE_MS * 1000000ull;
}

void thermal_fw_tick(void)
{
    if (!th.started || timer_ns() < th.next_ns) {
        return;
    }
    sample();
    while (th.gov.state == DTE_GOV_CRITICAL) {   /* stop generating: every core idles until it cools */
        while (timer_ns() < th.next_ns) {
            __asm__ volatile("pause");
        }
        sample();
    }
}

void thermal_fw_get_stats(thermal_fw_stats *out)
{
    *out = (thermal_fw_stats){
        .state = th.gov.state,
        .tctl_mc = th.last.temp_ok ? th.last.tctl_mc : 0,
        .pkg_mw = th.last.power_ok ? th.last.pkg_mw : 0,
        .workers = th.gov.workers,
        .samples = th.gov.samples,
        .paced_samples = th.gov.paced_samples,
        .critical_trips = th.gov.critical_trips,
    };
}
