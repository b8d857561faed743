/* CPUID decoding (Intel SDM Vol. 2A "CPUID"; AMD APM Vol. 3 appendix E) and XSAVE state enabling
 * (Intel SDM Vol. 1 §13.3 "Enabling the XSAVE feature set"). */
#include "boot/cpu.h"

#include "boot/io.h"

#define CR4_OSXSAVE (1ULL << 18)

static void copy_register(char *dst, uint32_t reg)
{
    for (int i = 0; i < 4; i++) {
        dst[i] = (char)(reg >> (8 * i));
    }
}

void cpu_identify(struct cpu_info *info)
{
    *info = (struct cpu_info){0};
    struct cpuid_regs leaf0 = cpu_cpuid(0, 0);
    copy_register(info->vendor, leaf0.ebx);   /* vendor string order: EBX, EDX, ECX */
    copy_register(info->vendor + 4, leaf0.edx);
    copy_register(info->vendor + 8, leaf0.ecx);
    info->vendor[12] = '\0';

    struct cpuid_regs leaf1 = cpu_cpuid(1, 0);
    unsigned base_family = (leaf1.eax >> 8) & 0xF;
    unsigned base_model = (leaf1.eax >> 4) & 0xF;
    info->stepping = leaf1.eax & 0xF;
    info->family = base_family == 0xF ? base_family + ((leaf1.eax >> 20) & 0xFF) : base_family;
    info->model =
        (base_family == 0x6 || base_family == 0xF) ? base_model | (((leaf1.eax >> 16) & 0xF) << 4) : base_model;
    info->sse42 = (leaf1.ecx >> 20) & 1;
    info->xsave = (leaf1.ecx >> 26) & 1;
    info->avx = (leaf1.ecx >> 28) & 1;
    info->fma = (leaf1.ecx >> 12) & 1;

    if (leaf0.eax >= 7) {
        struct cpuid_regs leaf7 = cpu_cpuid(7, 0);
        info->avx2 = (leaf7.ebx >> 5) & 1;
        info->avx512f = (leaf7.ebx >> 16) & 1;
        info->avx512vnni = (leaf7.ecx >> 11) & 1;
    }
    if (leaf0.eax >= 0xD && info->xsave) {
        struct cpuid_regs leafd = cpu_cpuid(0xD, 0);
        info->xcr0_supported = ((uint64_t)leafd.edx << 32) | leafd.eax;
    }
}

uint64_t cpu_enable_avx(const struct cpu_info *info)
{
    if (!info->xsave) {
        return 0;
    }
    cpu_write_cr4(cpu_read_cr4() | CR4_OSXSAVE);
    uint64_t want = XCR0_X87 | XCR0_SSE;
    if (info->avx) {
        want |= XCR0_AVX;
    }
    if (info->avx512f && (info->xcr0_supported & XCR0_AVX512) == XCR0_AVX512) {
        want |= XCR0_AVX512;
    }
    cpu_xsetbv(0, want & info->xcr0_supported);
    return cpu_xgetbv(0);
}

unsigned cpu_apic_id(void)
{
    return cpu_cpuid(1, 0).ebx >> 24;
}
