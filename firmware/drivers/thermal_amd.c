/* AMD Zen sensors (drivers/thermal.h): Tctl and CCD temperatures through the SMN index/data pair of the root
 * complex, package energy through the RAPL MSRs. Register facts as Linux's drivers/hwmon/k10temp.c and
 * arch/x86/kernel/amd_nb.c use them (AMD PPR for family 19h model 11h, "SMU::THM" and "MSRC001_029B"). */
#include "drivers/thermal_internal.h"

#include "drivers/pci.h"

#define AMD_ROOT_VENDOR 0x1022u
#define SMN_INDEX 0x60u                 /* root complex config: SMN address */
#define SMN_DATA 0x64u                  /* root complex config: SMN data */
#define SMN_THM_TCON_CUR_TMP 0x00059800u
#define CUR_TEMP_SHIFT 21
#define CUR_TEMP_RANGE_SEL (1u << 19)   /* reading is offset by 49 degrees (-49..206 range) */
#define CUR_TEMP_TJ_SEL (3u << 16)
#define RANGE_OFFSET_MC 49000
#define CCD_TEMP_BASE 0x00059954u       /* + ccd_offset + 4 * ccd */
#define CCD_TEMP_VALID (1u << 11)
#define CCD_TEMP_MASK 0x7FFu
#define MSR_RAPL_PWR_UNIT 0xC0010299u
#define MSR_PKG_ENERGY_STAT 0xC001029Bu
#define CPUID_8000_0007_EDX_RAPL (1u << 14)

int32_t dte_thermal_zen_tctl_mc(uint32_t reg)
{
    int32_t mc = (int32_t)(reg >> CUR_TEMP_SHIFT) * 125;   /* 11 bits of 1/8 degree */
    if ((reg & CUR_TEMP_RANGE_SEL) || (reg & CUR_TEMP_TJ_SEL) == CUR_TEMP_TJ_SEL) {
        mc -= RANGE_OFFSET_MC;
    }
    return mc;
}

bool dte_thermal_zen_ccd_mc(uint32_t reg, int32_t *mc)
{
    if (!(reg & CCD_TEMP_VALID)) {
        return false;
    }
    *mc = (int32_t)(reg & CCD_TEMP_MASK) * 125 - RANGE_OFFSET_MC;
    return true;
}

/* Models whose Tctl reads higher than the die (k10temp's tctl_offset_table; family 17h only). */
int32_t dte_thermal_zen_offset_mc(const char *brand, unsigned family)
{
    static const struct {
        const char *name;
        int32_t mc;
    } table[] = {
        {"AMD Ryzen 5 1600X", 20000}, {"AMD Ryzen 7 1700X", 20000},         {"AMD Ryzen 7 1800X", 20000},
        {"AMD Ryzen 7 2700X", 10000}, {"AMD Ryzen Threadripper 19", 27000}, {"AMD Ryzen Threadripper 29", 27000},
    };
    if (family != 0x17) {
        return 0;
    }
    for (unsigned i = 0; i < sizeof table / sizeof table[0]; i++) {
        if (dte_cstr_contains(brand, table[i].name)) {
            return table[i].mc;
        }
    }
    return 0;
}

static uint32_t smn_read(uint32_t address)
{
    pci_config_write32(0, 0, 0, SMN_INDEX, address);
    return pci_config_read32(0, 0, 0, SMN_DATA);
}

/* Where the family/model keeps its CCD temperature block and how many CCDs it can have (k10temp_probe). */
static void ccd_layout(unsigned family, unsigned model, uint32_t *offset, unsigned *count)
{
    *offset = 0;
    *count = 0;
    if (family == 0x17 && (model == 0x31 || model == 0x60 || model == 0x68 || model == 0x71)) {
        *offset = 0x154, *count = 8;
    } else if (family == 0x19 &&
               (model <= 0x01 || model == 0x08 || model == 0x21 || (model >= 0x50 && model <= 0x5F))) {
        *offset = 0x154, *count = 8;
    } else if (family == 0x19 && model >= 0x60 && model <= 0x7F) {
        *offset = 0x308, *count = 8;
    } else if (family == 0x19 && ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF))) {
        *offset = 0x300, *count = DTE_THERMAL_MAX_CCDS;   /* Genoa / Bergamo: up to 12 CCDs */
    }
}

static const char *probe_temperature(dte_thermal *t)
{
    const dte_thermal_cpu *cpu = t->cpu;
    if (cpu->family < 0x17) {
        return "amd_family_before_zen";
    }
    if ((pci_config_read32(0, 0, 0, 0) & 0xFFFFu) != AMD_ROOT_VENDOR) {
        return "no_amd_root_complex_at_00:00.0";
    }
    uint32_t reg = smn_read(SMN_THM_TCON_CUR_TMP);
    if (reg == 0 || reg == 0xFFFFFFFFu) {
        return "smn_tctl_reads_nothing";
    }
    t->tctl_offset_mc = dte_thermal_zen_offset_mc(cpu->brand, cpu->family);
    unsigned count;
    ccd_layout(cpu->family, cpu->model, &t->ccd_offset, &count);
    for (unsigned i = 0; i < count && t->ccd_offset; i++) {
        int32_t mc;
        if (dte_thermal_zen_ccd_mc(smn_read(CCD_TEMP_BASE + t->ccd_offset + 4 * i), &mc)) {
            t->ccd_present |= (uint16_t)(1u << i);
        }
    }
    t->kind = DTE_THERMAL_AMD_ZEN;
    return 0;
}

static const char *probe_power(dte_thermal *t)
{
    if (!(t->cpu->ext7_edx & CPUID_8000_0007_EDX_RAPL)) {
        return "no_rapl_in_cpuid_8000_0007";
    }
    return thermal_probe_energy(t, MSR_RAPL_PWR_UNIT, MSR_PKG_ENERGY_STAT);
}

void thermal_amd_probe(dte_thermal *t)
{
    t->temp_reason = probe_temperature(t);
    t->power_reason = probe_power(t);
}

void thermal_amd_read(dte_thermal *t, dte_thermal_sample *s)
{
    uint32_t reg = smn_read(SMN_THM_TCON_CUR_TMP);
    s->temp_ok = true;
    s->tctl_mc = dte_thermal_zen_tctl_mc(reg);
    s->tdie_mc = s->tctl_mc - t->tctl_offset_mc;
    for (unsigned i = 0; i < DTE_THERMAL_MAX_CCDS; i++) {
        int32_t mc;
        if ((t->ccd_present >> i & 1) && dte_thermal_zen_ccd_mc(smn_read(CCD_TEMP_BASE + t->ccd_offset + 4 * i), &mc)) {
            s->ccd_mc[s->n_ccd++] = mc;
        }
    }
}
