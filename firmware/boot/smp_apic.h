/* Local APIC access for SMP bring-up: x2APIC through MSRs when the CPU has it (CPUID.01H:ECX[21]),
 * xAPIC through MMIO otherwise (Intel SDM Vol. 3A §11.4 xAPIC, §11.12 x2APIC; AMD APM Vol. 2 §16.3). */
#ifndef DTE_BOOT_SMP_APIC_H
#define DTE_BOOT_SMP_APIC_H

#include <stdbool.h>
#include <stdint.h>

#define MSR_EFER 0xC0000080u

static inline uint64_t rdmsr(uint32_t msr)
{
    uint32_t lo, hi;
    __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
    return ((uint64_t)hi << 32) | lo;
}

static inline void wrmsr(uint32_t msr, uint64_t value)
{
    __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)value), "d"((uint32_t)(value >> 32)) : "memory");
}

/* On the BSP: pick the mode (switch to x2APIC when supported), remember the xAPIC MMIO base. Returns true
 * for x2APIC. */
bool apic_init_bsp(void);

/* On an AP: the same mode as the BSP. */
void apic_enable_on_ap(void);

/* The calling core's APIC id from CPUID (leaf 0BH x2APIC id, else leaf 01H EBX[31:24]): any mode, any core. */
uint32_t apic_current_id(void);

void apic_send_init(uint32_t apic_id);                    /* INIT, level assert */
void apic_send_sipi(uint32_t apic_id, uint8_t vector);    /* Start-up: CS:IP = vector<<8 : 0 */
void apic_send_nmi(uint32_t apic_id);                     /* NMI to one core */

#endif /* DTE_BOOT_SMP_APIC_H */
