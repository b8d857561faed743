/* CPU identification (CPUID) and enabling the AVX/AVX-512 register state. */
#ifndef DTE_BOOT_CPU_H
#define DTE_BOOT_CPU_H

/* XCR0 state-component bits (Intel SDM Vol. 1 §13.3, "Enabling the XSAVE feature set"). */
#define XCR0_X87 (1ULL << 0)
#define XCR0_SSE (1ULL << 1)
#define XCR0_AVX (1ULL << 2)
#define XCR0_AVX512 ((1ULL << 5) | (1ULL << 6) | (1ULL << 7))   /* opmask, ZMM_Hi256, Hi16_ZMM */

/* Paging (Intel SDM Vol. 3A §4.5): bits 51:12 of CR3 and of a paging-structure entry hold a 4 KiB-aligned
 * physical address; CR4.PAE (bit 5) and CR4.LA57 (bit 12) select the paging mode. */
#define PAGE_ADDR_MASK 0x000FFFFFFFFFF000ULL
#define CR4_PAE (1ULL << 5)
#define CR4_LA57 (1ULL << 12)

#include <stdbool.h>
#include <stdint.h>

struct cpu_info {
    char vendor[13];
    unsigned family;    /* display family (base + extended) */
    unsigned model;     /* display model (extended model folded in for family 6 and 15+) */
    unsigned stepping;
    bool sse42, xsave, avx, avx2, fma, avx512f, avx512vnni;
    uint64_t xcr0_supported;   /* CPUID.(EAX=0DH,ECX=0):EDX:EAX */
};

void cpu_identify(struct cpu_info *info);

/* Set CR4.OSXSAVE and XCR0 = x87|SSE|AVX (+ opmask|ZMM_Hi256|Hi16_ZMM when supported). OVMF leaves OSXSAVE
 * clear, so AVX instructions fault until this runs. Returns the XCR0 now in force, 0 when XSAVE is absent.
 * Every core that runs AVX code must call it. */
uint64_t cpu_enable_avx(const struct cpu_info *info);

/* Initial APIC id of the calling core (CPUID.01H:EBX[31:24]). */
unsigned cpu_apic_id(void);

#endif /* DTE_BOOT_CPU_H */
