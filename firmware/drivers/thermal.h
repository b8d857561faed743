/* CPU temperature and package power, per vendor, behind one small interface (docs/thermal.md).
 *
 * AMD Zen (family 17h and later): Tctl from the SMU's THM_TCON_CUR_TMP register at SMN 0x00059800, read through
 * the root complex's SMN index/data pair (PCI 00:00.0 config 0x60 / 0x64), decoded as Linux's k10temp does
 * (bits 31:21 in 1/8 degree; minus 49 degrees when the range-select bit 19 or both TJ_SEL bits 17:16 are set;
 * per-model Tctl offsets); per-CCD temperatures at SMN 0x00059954 + ccd_offset + 4 * ccd (bit 11 valid, bits 10:0
 * in 1/8 degree minus 49). Package energy from MSR 0xC001029B (Core::X86::Msr::PKG_ENERGY_STAT), its unit from
 * MSR 0xC0010299 (RAPL_PWR_UNIT bits 12:8: 1/2^ESU joules), when CPUID Fn8000_0007 EDX bit 14 says RAPL exists.
 * Intel: IA32_PACKAGE_THERM_STATUS (0x1B1) or IA32_THERM_STATUS (0x19C) bits 22:16 = degrees below TjMax, TjMax
 * from MSR_TEMPERATURE_TARGET (0x1A2) bits 23:16 (SDM Vol. 3B section 15.8 / 16.8, Vol. 4 table 2-2); package
 * energy from MSR_PKG_ENERGY_STATUS (0x611) in units of MSR_RAPL_POWER_UNIT (0x606) bits 12:8 (SDM 3B 15.10.1).
 *
 * Every read is guarded: the caller's rdmsr hook returns -1 instead of faulting (boot/thermal_fw.c recovers the
 * #GP), and a CPU, hypervisor or chipset without the register makes the sensor `unavailable` with the reason.
 * Integers only: millidegrees Celsius and milliwatts. Platform-free: PCI through drivers/pci.h, MSRs and CPUID
 * facts through dte_thermal_cpu, so hosted tests replay recorded register values. */
#ifndef DTE_DRIVERS_THERMAL_H
#define DTE_DRIVERS_THERMAL_H

#include <stdbool.h>
#include <stdint.h>

#define DTE_THERMAL_MAX_CCDS 12

/* What the caller knows about the CPU (CPUID) and how it reads an MSR without faulting. */
typedef struct {
    char vendor[13];             /* "AuthenticAMD", "GenuineIntel", ... */
    char brand[49];              /* CPUID 8000_0002..4 brand string (Tctl offsets are per model name) */
    unsigned family, model;      /* display family / model */
    bool hypervisor;             /* CPUID.01H:ECX bit 31 */
    uint32_t leaf6_eax;          /* CPUID.06H:EAX (Intel: bit 0 digital sensor, bit 6 package thermal) */
    uint32_t ext7_edx;           /* CPUID Fn8000_0007 EDX (AMD: bit 14 RAPL) */
    int (*rdmsr)(void *ctx, uint32_t msr, uint64_t *value);   /* 0, or -1 when the read faulted */
    void *ctx;
} dte_thermal_cpu;

enum dte_thermal_kind { DTE_THERMAL_NONE = 0, DTE_THERMAL_AMD_ZEN = 1, DTE_THERMAL_INTEL = 2 };

typedef struct {
    const dte_thermal_cpu *cpu;
    uint8_t kind;                 /* enum dte_thermal_kind: which temperature source, NONE when unavailable */
    bool power;                   /* an energy counter was found */
    const char *temp_reason;      /* why the temperature is unavailable (NULL when available) */
    const char *power_reason;     /* why the power is unavailable (NULL when available) */
    int32_t tctl_offset_mc;       /* AMD: Tdie = Tctl - offset */
    uint32_t ccd_offset;          /* AMD: SMN offset of the CCD temperature block (0: none known) */
    uint16_t ccd_present;         /* AMD: bit i set when CCD i reported valid at probe */
    int32_t tjmax_mc;             /* Intel */
    uint32_t energy_msr;
    uint32_t energy_shift;        /* one count = 1 / 2^shift joules */
    uint32_t last_energy;
    uint64_t last_ns;
    bool have_last;
} dte_thermal;

typedef struct {
    bool temp_ok;
    int32_t tctl_mc;              /* AMD Tctl, or Intel package temperature */
    int32_t tdie_mc;              /* Tctl minus the model's offset (Intel: the same value) */
    uint8_t n_ccd;
    int32_t ccd_mc[DTE_THERMAL_MAX_CCDS];
    bool power_ok;                /* false on the first read (a rate needs two) or without a counter */
    uint32_t pkg_mw;
} dte_thermal_sample;

/* Choose the sources for this CPU; never faults. Returns the kind (DTE_THERMAL_NONE: temperature unavailable,
 * t->temp_reason says why; power may still be available). */
int dte_thermal_probe(dte_thermal *t, const dte_thermal_cpu *cpu);

/* One reading at time now_ns (monotonic); power is the energy delta since the previous read. */
void dte_thermal_read(dte_thermal *t, uint64_t now_ns, dte_thermal_sample *s);

/* Decoders, exposed for tests against recorded register values. */
int32_t dte_thermal_zen_tctl_mc(uint32_t reg);
bool dte_thermal_zen_ccd_mc(uint32_t reg, int32_t *mc);
int32_t dte_thermal_zen_offset_mc(const char *brand, unsigned family);
uint32_t dte_thermal_power_mw(uint32_t e0, uint32_t e1, uint32_t shift, uint64_t dt_ns);

#endif /* DTE_DRIVERS_THERMAL_H */
