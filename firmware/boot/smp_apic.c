/* Local APIC interprocessor interrupts (Intel SDM Vol. 3A §11.6.1 "Interrupt Command Register", §11.12.9
 * "ICR operation in x2APIC mode"; AMD APM Vol. 2 §16.5). */
#include "boot/smp_apic.h"

#include "boot/io.h"

#define MSR_APIC_BASE 0x1Bu
#define APIC_BASE_EXTD (1ULL << 10)    /* x2APIC mode */
#define APIC_BASE_EN (1ULL << 11)
#define MSR_X2APIC_ICR 0x830u
#define XAPIC_ICR_LOW 0x300u
#define XAPIC_ICR_HIGH 0x310u
#define ICR_DELIVERY_PENDING (1u << 12)
#define ICR_LEVEL_ASSERT (1u << 14)
#define ICR_INIT (5u << 8)
#define ICR_STARTUP (6u << 8)
#define ICR_NMI (4u << 8)

static bool x2apic;
static uint64_t xapic_base;

static volatile uint32_t *xapic_reg(uint32_t offset)
{
    return (volatile uint32_t *)(uintptr_t)(xapic_base + offset);
}

bool apic_init_bsp(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    xapic_base = base & 0x000FFFFFFFFFF000ULL;
    bool supported = (cpu_cpuid(1, 0).ecx >> 21) & 1;
    if (supported && !(base & APIC_BASE_EXTD)) {
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);   /* xAPIC → x2APIC (§11.12.5) */
    }
    x2apic = supported;
    return x2apic;
}

void apic_enable_on_ap(void)
{
    uint64_t base = rdmsr(MSR_APIC_BASE);
    if (x2apic && !(base & APIC_BASE_EXTD)) {
        wrmsr(MSR_APIC_BASE, base | APIC_BASE_EN | APIC_BASE_EXTD);
    }
}

uint32_t apic_current_id(void)
{
    if (cpu_cpuid(0, 0).eax >= 0xB) {
        struct cpuid_regs r = cpu_cpuid(0xB, 0);
        if (r.ebx != 0) {   /* leaf 0BH valid: EDX = x2APIC id */
            return r.edx;
        }
    }
    return cpu_cpuid(1, 0).ebx >> 24;
}

static void send_ipi(uint32_t apic_id, uint32_t command)
{
    if (x2apic) {
        wrmsr(MSR_X2APIC_ICR, ((uint64_t)apic_id << 32) | command);   /* one 64-bit write, no pending bit */
        return;
    }
    while (*xapic_reg(XAPIC_ICR_LOW) & ICR_DELIVERY_PENDING) {
        __asm__ volatile("pause");
    }
    *xapic_reg(XAPIC_ICR_HIGH) = apic_id << 24;
    *xapic_reg(XAPIC_ICR_LOW) = command;   /* the low write sends */
    while (*xapic_reg(XAPIC_ICR_LOW) & ICR_DELIVERY_PENDING) {
        __asm__ volatile("pause");
    }
}

void apic_send_init(uint32_t apic_id)
{
    send_ipi(apic_id, ICR_INIT | ICR_LEVEL_ASSERT);
}

void apic_send_sipi(uint32_t apic_id, uint8_t vector)
{
    send_ipi(apic_id, ICR_STARTUP | ICR_LEVEL_ASSERT | vector);
}

void apic_send_nmi(uint32_t apic_id)
{
    send_ipi(apic_id, ICR_NMI | ICR_LEVEL_ASSERT);
}
