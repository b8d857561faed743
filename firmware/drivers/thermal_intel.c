/* Intel sensors (drivers/thermal.h): the digital thermal sensor MSRs and the package RAPL energy counter
 * (Intel SDM Vol. 3B section 15.8.5 "Thermal Monitor" / 15.10 "Platform Specific Power Management Support",
 * Vol. 4 table 2-2 for IA32_THERM_STATUS 0x19C, IA32_PACKAGE_THERM_STATUS 0x1B1, MSR_TEMPERATURE_TARGET 0x1A2,
 * MSR_RAPL_POWER_UNIT 0x606, MSR_PKG_ENERGY_STATUS 0x611). */
#include "drivers/thermal_internal.h"

#define MSR_IA32_THERM_STATUS 0x19Cu
#define MSR_IA32_PACKAGE_THERM_STATUS 0x1B1u
#define MSR_TEMPERATURE_TARGET 0x1A2u
#define MSR_RAPL_POWER_UNIT 0x606u
#define MSR_PKG_ENERGY_STATUS 0x611u
#define CPUID6_DTS (1u << 0)
#define CPUID6_PTM (1u << 6)
#define THERM_READING_VALID (1ull << 31)   /* IA32_THERM_STATUS only */

static uint32_t status_msr(const dte_thermal *t)
{
    return (t->cpu->leaf6_eax & CPUID6_PTM) ? MSR_IA32_PACKAGE_THERM_STATUS : MSR_IA32_THERM_STATUS;
}

static const char *probe_temperature(dte_thermal *t)
{
    uint64_t target, status;
    if (!(t->cpu->leaf6_eax & CPUID6_DTS)) {
        return "no_digital_thermal_sensor_in_cpuid_6";
    }
    if (t->cpu->rdmsr(t->cpu->ctx, MSR_TEMPERATURE_TARGET, &target) != 0) {
        return "rdmsr_0x1a2_faulted";
    }
    t->tjmax_mc = (int32_t)((target >> 16) & 0xFF) * 1000;
    if (t->tjmax_mc == 0) {
        return "tjmax_is_zero";
    }
    if (t->cpu->rdmsr(t->cpu->ctx, status_msr(t), &status) != 0) {
        return "rdmsr_therm_status_faulted";
    }
    t->kind = DTE_THERMAL_INTEL;
    return 0;
}

void thermal_intel_probe(dte_thermal *t)
{
    t->temp_reason = probe_temperature(t);
    t->power_reason = thermal_probe_energy(t, MSR_RAPL_POWER_UNIT, MSR_PKG_ENERGY_STATUS);
}

void thermal_intel_read(dte_thermal *t, dte_thermal_sample *s)
{
    uint64_t status;
    uint32_t msr = status_msr(t);
    if (t->cpu->rdmsr(t->cpu->ctx, msr, &status) != 0) {
        return;
    }
    if (msr == MSR_IA32_THERM_STATUS && !(status & THERM_READING_VALID)) {
        return;
    }
    s->temp_ok = true;
    s->tctl_mc = t->tjmax_mc - (int32_t)((status >> 16) & 0x7F) * 1000;
    s->tdie_mc = s->tctl_mc;
}
