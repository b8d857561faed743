/* The vendor-neutral part of drivers/thermal.h: choosing the sources, and package power from two energy counter
 * readings (the counters are 32-bit and wrap: the difference is taken modulo 2^32). */
#include "drivers/thermal_internal.h"

const char *thermal_probe_energy(dte_thermal *t, uint32_t unit_msr, uint32_t energy_msr)
{
    uint64_t unit, energy;
    if (t->cpu->rdmsr(t->cpu->ctx, unit_msr, &unit) != 0) {
        return "rdmsr_energy_unit_faulted";
    }
    if (t->cpu->rdmsr(t->cpu->ctx, energy_msr, &energy) != 0) {
        return "rdmsr_energy_status_faulted";
    }
    t->energy_msr = energy_msr;
    t->energy_shift = (uint32_t)(unit >> 8) & 0x1F;   /* energy status units, bits 12:8 */
    t->power = true;
    return 0;
}

uint32_t dte_thermal_power_mw(uint32_t e0, uint32_t e1, uint32_t shift, uint64_t dt_ns)
{
    uint64_t dt_us = dt_ns / 1000;                          /* sample periods are milliseconds: < 0.1 % lost */
    if (dt_us == 0) {
        return 0;
    }
    uint64_t counts = (uint32_t)(e1 - e0);                  /* modulo 2^32: one wrap between reads is fine */
    uint64_t uj = (counts * 1000000ull) >> shift;           /* counts < 2^32: the product is < 2^52 */
    uint64_t mw = uj * 1000ull / dt_us;                     /* uj < 2^52: uj * 1000 < 2^62 */
    return mw > 0xFFFFFFFFull ? 0xFFFFFFFFu : (uint32_t)mw;
}

int dte_thermal_probe(dte_thermal *t, const dte_thermal_cpu *cpu)
{
    *t = (dte_thermal){.cpu = cpu};
    if (cpu->hypervisor) {
        t->temp_reason = t->power_reason = "hypervisor_hides_sensors";
    } else if (dte_cstr_eq(cpu->vendor, "AuthenticAMD") || dte_cstr_eq(cpu->vendor, "HygonGenuine")) {
        thermal_amd_probe(t);
    } else if (dte_cstr_eq(cpu->vendor, "GenuineIntel")) {
        thermal_intel_probe(t);
    } else {
        t->temp_reason = t->power_reason = "unknown_cpu_vendor";
    }
    return t->kind;
}

void dte_thermal_read(dte_thermal *t, uint64_t now_ns, dte_thermal_sample *s)
{
    *s = (dte_thermal_sample){0};
    if (t->kind == DTE_THERMAL_AMD_ZEN) {
        thermal_amd_read(t, s);
    } else if (t->kind == DTE_THERMAL_INTEL) {
        thermal_intel_read(t, s);
    }
    uint64_t energy;
    if (t->power && t->cpu->rdmsr(t->cpu->ctx, t->energy_msr, &energy) == 0) {
        uint32_t e = (uint32_t)energy;
        if (t->have_last && now_ns > t->last_ns) {
            s->power_ok = true;
            s->pkg_mw = dte_thermal_power_mw(t->last_energy, e, t->energy_shift, now_ns - t->last_ns);
        }
        t->last_energy = e;
        t->last_ns = now_ns;
        t->have_last = true;
    }
}
