/* SMP bring-up: MADT → INIT-SIPI-SIPI per AP (Intel SDM Vol. 3A §9.4.4.1 "Typical BSP initialization
 * sequence", §11.6.1 ICR; AMD APM Vol. 2 §16.5 "Interprocessor interrupts") → trampoline → ap_main → worker
 * loop. APs are started one at a time: each takes its stack and argument from the trampoline page with an
 * atomic exchange, so a late riser after a timeout finds nothing and parks. */
#include "boot/smp.h"

#include <stdbool.h>

#include "boot/alloc.h"
#include "boot/cpu.h"
#include "boot/io.h"
#include "boot/smp_apic.h"
#include "boot/smp_trampoline.h"
#include "boot/status.h"
#include "boot/timer.h"
#include "drivers/acpi.h"
#include "drivers/madt.h"
#include "dte_config.h"

#ifndef DTE_USE_SMT
#define DTE_USE_SMT 0
#endif
#define SMP_MAX_CPUS 512
#define AP_STACK_BYTES (256u * 1024u)
#define INIT_DELAY_NS 10000000ULL     /* SDM §9.4.4.1: 10 ms after INIT */
#define SIPI_DELAY_NS 200000ULL       /* 200 µs after each SIPI */
/* A core answers in microseconds; under QEMU TCG on a busy host its vCPU thread may wait for a host core. */
#define CHECKIN_TIMEOUT_NS (DTE_PLATFORM_QEMU ? 2000000000ULL : 100000000ULL)
#define CLAIMED_TIMEOUT_NS 1000000000ULL
#define LOW_PAGES 2                   /* trampoline page + top-level page-table copy */
#define LOW_LIMIT 0x9FFFFULL          /* below the EBDA/VGA hole: a SIPI vector page */

_Static_assert(offsetof(struct tramp_data, gdtr_limit) == TD_GDTR, "TD_GDTR");
_Static_assert(offsetof(struct tramp_data, far32_offset) == TD_FAR32, "TD_FAR32");
_Static_assert(offsetof(struct tramp_data, far64_offset) == TD_FAR64, "TD_FAR64");
_Static_assert(offsetof(struct tramp_data, cr3_low) == TD_CR3_LOW, "TD_CR3_LOW");
_Static_assert(offsetof(struct tramp_data, efer) == TD_EFER, "TD_EFER");
_Static_assert(offsetof(struct tramp_data, cr3) == TD_CR3, "TD_CR3");
_Static_assert(offsetof(struct tramp_data, bsp_gdtr_limit) == TD_BSP_GDTR, "TD_BSP_GDTR");
_Static_assert(offsetof(struct tramp_data, bsp_idtr_limit) == TD_BSP_IDTR, "TD_BSP_IDTR");
_Static_assert(offsetof(struct tramp_data, cs) == TD_CS, "TD_CS");
_Static_assert(offsetof(struct tramp_data, arg) == TD_ARG, "TD_ARG");

enum cpu_state { CPU_WAKING, CPU_ONLINE, CPU_BAD_XCR0 };

struct smp_cpu {
    uint32_t apic_id;
    int worker;
    int state;            /* enum cpu_state, written by the AP */
    uint64_t xcr0;        /* what the AP enabled */
};

static uint64_t low_base;                   /* the two reserved pages (0: none) */
static struct smp_cpu cpus[SMP_MAX_CPUS];   /* [0] is the BSP */
static int online;                          /* workers checked in, BSP included */
static uint64_t bsp_xcr0;
static uint32_t bsp_mxcsr;
static bool stopping;

int dte_smp_reserve_low_memory(efi_boot_services *bs)
{
    efi_physical_addr base = LOW_LIMIT;
    /* EfiLoaderCode: OVMF's NX policy leaves code pages executable (the 64-bit stage runs from here). */
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateMaxAddress, EfiLoaderCode, LOW_PAGES, &base))) {
        return -1;
    }
    low_base = base;
    return 0;
}

static void copy_bytes(void *dst, const void *src, size_t n)
{
    uint8_t *d = dst;
    const uint8_t *s = src;
    for (size_t i = 0; i < n; i++) {
        d[i] = s[i];
    }
}

struct descriptor_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

static uint64_t read_cr0(void)
{
    uint64_t v;
    __asm__ volatile("mov %%cr0, %0" : "=r"(v));
    return v;
}

/* Fill the trampoline page: code, temporary GDT, far pointers and the BSP's control state to copy. */
static struct tramp_data *prepare_trampoline(void)
{
    uint8_t *page = (uint8_t *)(uintptr_t)low_base;
    size_t code_bytes = (size_t)(smp_tramp_end - smp_tramp_start);
    copy_bytes(page, smp_tramp_start, code_bytes);
    struct tramp_data *td = (struct tramp_data *)(page + TRAMP_DATA);
    *td = (struct tramp_data){0};
    td->gdt[1] = 0x00CF9A000000FFFFULL;   /* 32-bit code, base 0, 4 GiB (SDM Vol. 3A §3.4.5) */
    td->gdt[2] = 0x00CF92000000FFFFULL;   /* 32-bit data */
    td->gdt[3] = 0x00AF9A000000FFFFULL;   /* 64-bit code (L=1) */
    td->gdtr_limit = sizeof td->gdt - 1;
    td->gdtr_base = (uint32_t)(low_base + TRAMP_DATA + TD_GDT);
    td->far32_offset = (uint32_t)(low_base + (uint64_t)(smp_tramp32 - smp_tramp_start));
    td->far32_selector = 0x08;
    td->far64_offset = (uint32_t)(low_base + (uint64_t)(smp_tramp64 - smp_tramp_start));
    td->far64_selector = 0x18;

    uint64_t cr3 = cpu_read_cr3(), cr4 = cpu_read_cr4();
    uint64_t table_copy = low_base + EFI_PAGE_SIZE;
    copy_bytes((void *)(uintptr_t)table_copy, (const void *)(uintptr_t)(cr3 & PAGE_ADDR_MASK), 4096);
    td->cr3_low = (uint32_t)table_copy;
    td->cr4_low = (uint32_t)(CR4_PAE | (cr4 & CR4_LA57));
    td->efer = (uint32_t)((1u << 8) | (rdmsr(MSR_EFER) & ((1u << 11) | 1u)));   /* LME | NXE | SCE */
    td->cr3 = cr3;
    td->cr4 = cr4;
    td->cr0 = read_cr0();
    struct descriptor_pointer gdtr, idtr;
    __asm__ volatile("sgdt %0; sidt %1" : "=m"(gdtr), "=m"(idtr));
    td->bsp_gdtr_limit = gdtr.limit;
    td->bsp_gdtr_base = gdtr.base;
    td->bsp_idtr_limit = idtr.limit;
    td->bsp_idtr_base = idtr.base;
    uint16_t cs, ds;
    __asm__ volatile("mov %%cs, %0; mov %%ds, %1" : "=r"(cs), "=r"(ds));
    td->cs = cs;
    td->ds = ds;
    return td;
}

/* First C code on an AP (MS x64 ABI, called by the trampoline on its own stack). */
static __attribute__((noreturn)) void ap_main(struct smp_cpu *cpu)
{
    __asm__ volatile("fninit; ldmxcsr %0" : : "m"(bsp_mxcsr));   /* same FP environment as the BSP */
    apic_enable_on_ap();
    struct cpu_info info;
    cpu_identify(&info);
    cpu->xcr0 = cpu_enable_avx(&info);
    int state = cpu->xcr0 == bsp_xcr0 ? CPU_ONLINE : CPU_BAD_XCR0;
    __atomic_store_n(&cpu->state, state, __ATOMIC_RELEASE);
    if (state != CPU_ONLINE) {
        cpu_halt_forever();
    }
    parallel_worker_loop(cpu->worker);
}

static void delay_ns(uint64_t ns)
{
    uint64_t end = timer_ns() + ns;
    while (timer_ns() < end) {
        __asm__ volatile("pause");
    }
}

static bool wait_state(struct smp_cpu *cpu, uint64_t timeout_ns)
{
    uint64_t end = timer_ns() + timeout_ns;
    while (timer_ns() < end) {
        if (__atomic_load_n(&cpu->state, __ATOMIC_ACQUIRE) != CPU_WAKING) {
            return true;
        }
        __asm__ volatile("pause");
    }
    return __atomic_load_n(&cpu->state, __ATOMIC_ACQUIRE) != CPU_WAKING;
}

/* The claim word (8-byte aligned inside the page; the packed struct cannot say so). */
static uint64_t *tramp_arg(struct tramp_data *td)
{
    return (uint64_t *)(void *)((uint8_t *)td + TD_ARG);
}

/* How waking one AP ended; wake_name gives the status word the console prints. */
enum wake_result { WAKE_OK, WAKE_TIMEOUT, WAKE_STUCK, WAKE_XCR0_MISMATCH };

static const char *wake_name(enum wake_result r)
{
    switch (r) {
    case WAKE_OK: return "ok";
    case WAKE_TIMEOUT: return "timeout";
    case WAKE_STUCK: return "stuck";
    case WAKE_XCR0_MISMATCH: return "xcr0_mismatch";
    }
    return "unknown";
}

/* Wake one AP with INIT-SIPI-SIPI and wait for it to check in. */
static enum wake_result wake_ap(struct tramp_data *td, struct smp_cpu *cpu, uint64_t stack_top)
{
    uint8_t vector = (uint8_t)(low_base >> 12);
    td->stack = stack_top;
    td->entry = (uint64_t)(uintptr_t)ap_main;
    __atomic_store_n(tramp_arg(td), (uint64_t)(uintptr_t)cpu, __ATOMIC_RELEASE);
#ifdef DTE_TEST_AP_SILENT
    bool silent = cpu->apic_id == (uint32_t)DTE_TEST_AP_SILENT;   /* test builds: this CPU never answers */
#else
    bool silent = false;
#endif
    if (!silent) {
        apic_send_init(cpu->apic_id);
        delay_ns(INIT_DELAY_NS);
        for (int i = 0; i < 2; i++) {   /* SDM: two SIPIs; a started AP ignores the second */
            apic_send_sipi(cpu->apic_id, vector);
            delay_ns(SIPI_DELAY_NS);
        }
    }
    if (!wait_state(cpu, CHECKIN_TIMEOUT_NS)) {
        if (__atomic_exchange_n(tramp_arg(td), 0, __ATOMIC_ACQ_REL) != 0) {
            return WAKE_TIMEOUT;   /* never took its parameters: a late start parks */
        }
        if (!wait_state(cpu, CLAIMED_TIMEOUT_NS)) {
            return WAKE_STUCK;     /* took its stack but never checked in */
        }
    }
    return cpu->state == CPU_ONLINE ? WAKE_OK : WAKE_XCR0_MISMATCH;
}

/* Bits of the APIC id that number SMT threads within a core (CPUID leaf 0BH level type 1, Intel SDM Vol. 2A;
 * AMD: leaf 8000001EH EBX[15:8] threads per core - 1). 0 when unknown or no SMT. */
static unsigned smt_bits(void)
{
    uint32_t max = cpu_cpuid(0, 0).eax;
    if (max >= 0xB) {
        struct cpuid_regs r = cpu_cpuid(0xB, 0);
        if (((r.ecx >> 8) & 0xFF) == 1) {
            return r.eax & 0x1F;
        }
    }
    if (cpu_cpuid(0x80000000u, 0).eax >= 0x8000001Eu) {
        unsigned threads = ((cpu_cpuid(0x8000001Eu, 0).ebx >> 8) & 0xFF) + 1;
        return threads > 1 ? 1 : 0;
    }
    return 0;
}

static int worker_cap(int max_workers)
{
    int cap = DTE_MAX_WORKERS;
    if (DTE_THREADS > 0 && DTE_THREADS < cap) {
        cap = DTE_THREADS;
    }
    if (max_workers > 0 && max_workers < cap) {
        cap = max_workers;
    }
    return cap < SMP_MAX_CPUS ? cap : SMP_MAX_CPUS;
}

static void wake_all(const struct madt_cpu *list, int count, int cap, unsigned smt_mask)
{
    struct tramp_data *td = prepare_trampoline();
    uint64_t stack = 0;
    for (int i = 0; i < count && online < cap; i++) {
        if (list[i].apic_id == cpus[0].apic_id || (!DTE_USE_SMT && (list[i].apic_id & smt_mask))) {
            continue;
        }
        if (!stack) {
            uint8_t *block = alloc_any(AP_STACK_BYTES, 16);
            if (!block) {
                dte_status("smp cpu=%d apic=%u status=no_stack_memory", i, list[i].apic_id);
                return;
            }
            stack = (uint64_t)(uintptr_t)(block + AP_STACK_BYTES);
        }
        struct smp_cpu *cpu = &cpus[online];
        *cpu = (struct smp_cpu){.apic_id = list[i].apic_id, .worker = online, .state = CPU_WAKING};
        enum wake_result result = wake_ap(td, cpu, stack);
        if (result == WAKE_OK) {
            online++;
            stack = 0;
        } else {
            dte_status("smp cpu=%d apic=%u status=%s", i, list[i].apic_id, wake_name(result));
            if (result == WAKE_STUCK) {
                return;   /* it may still use the trampoline: wake no one else */
            }
            stack = cpu->state == CPU_BAD_XCR0 ? 0 : stack;
        }
    }
}

int dte_smp_start(const void *rsdp, int max_workers)
{
    static struct madt_cpu list[SMP_MAX_CPUS];
    struct madt_info madt = {0};
    bsp_xcr0 = cpu_xgetbv(0);
    __asm__ volatile("stmxcsr %0" : "=m"(bsp_mxcsr));
    bool x2apic = apic_init_bsp();
    cpus[0] = (struct smp_cpu){.apic_id = apic_current_id(), .worker = 0, .state = CPU_ONLINE};
    online = 1;
    int cap = worker_cap(max_workers);
    int count = madt_parse(acpi_find_table(rsdp, "APIC"), list, SMP_MAX_CPUS, &madt);
    unsigned smt_mask = (1u << smt_bits()) - 1u;
    if (count < 0) {
        dte_status("smp error=no_madt");
    } else if (!low_base) {
        dte_status("smp error=no_low_memory");
    } else if (cap > 1) {
        wake_all(list, count, cap, smt_mask);
    }
    parallel_set_workers(online);
    dte_status("smp cpus=%d listed=%d cap=%d bsp_apic=%u mode=%s smt_bits=%u use_smt=%d", online,
               count < 0 ? 0 : madt.listed, cap, cpus[0].apic_id, x2apic ? "x2apic" : "xapic",
               smt_mask ? (unsigned)__builtin_popcount(smt_mask) : 0u, DTE_USE_SMT);
    smp_selftest();
    return online;
}

int dte_smp_current_worker(void)
{
    uint32_t id = apic_current_id();
    for (int i = 0; i <= online && i < SMP_MAX_CPUS; i++) {   /* <= : an AP checking in right now */
        if (cpus[i].apic_id == id) {
            return i;
        }
    }
    return -1;
}

void dte_smp_stop_others(void)
{
    parallel_stop();
    if (online < 2 || __atomic_exchange_n(&stopping, true, __ATOMIC_ACQ_REL)) {
        return;
    }
    /* Only our workers: parked SMT siblings and CPUs that timed out still run the firmware's AP loop and IDT. */
    uint32_t self = apic_current_id();
    for (int i = 0; i < online; i++) {
        if (cpus[i].apic_id != self) {
            apic_send_nmi(cpus[i].apic_id);
        }
    }
}
