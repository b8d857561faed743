/* UEFI entry point (UEFI 2.10 §4.1 EFI_IMAGE_ENTRY_POINT): identify the machine, enable AVX, reserve the
 * board's memory regions, leave boot services, install the panic IDT, then hand over to appliance.c. */
#include "boot/appliance.h"
#include "boot/cpu.h"
#include "boot/efi.h"
#include "boot/io.h"
#include "boot/memmap.h"
#include "boot/panic.h"
#include "boot/serial.h"
#include "boot/smp.h"
#include "boot/status.h"
#include "boot/timer.h"
#include "drivers/acpi.h"
#include "dte_config.h"

#define MIB (1024ULL * 1024ULL)

static void report_banner(void)
{
    dte_status("banner build=%s board=%s version=%s platform=%s", DTE_BUILD_ID, DTE_BOARD_NAME, DTE_VERSION,
               DTE_PLATFORM_QEMU ? "qemu" : "metal");
}

static void identify_cpu(struct dte_boot_info *info)
{
    struct cpu_info *cpu = &info->cpu;
    cpu_identify(cpu);
    dte_status("cpu vendor=%s family=%u model=%u sse42=%d avx2=%d avx512f=%d avx512vnni=%d", cpu->vendor, cpu->family,
               cpu->model, cpu->sse42, cpu->avx2, cpu->avx512f, cpu->avx512vnni);
    info->xcr0 = cpu_enable_avx(cpu);
    dte_status("xsave xcr0=0x%llx supported=0x%llx", (unsigned long long)info->xcr0,
               (unsigned long long)cpu->xcr0_supported);
#if DTE_VECTOR_BITS >= 256
    if (!cpu->avx2 || !(info->xcr0 & XCR0_AVX)) {
        dte_fail("this firmware was built for %d-bit vectors but the CPU lacks AVX2 (board %s)", DTE_VECTOR_BITS,
                 DTE_BOARD_NAME);
    }
#endif
#if DTE_VECTOR_BITS >= 512
    if (!cpu->avx512f || (info->xcr0 & XCR0_AVX512) != XCR0_AVX512) {
        dte_fail("this firmware was built for 512-bit vectors but the CPU lacks AVX-512F (board %s)", DTE_BOARD_NAME);
    }
#endif
}

static void survey_memory(efi_boot_services *bs, struct dte_boot_info *info)
{
    struct memmap_summary summary;
    efi_status status = memmap_read(bs, &summary);
    if (EFI_IS_ERROR(status)) {
        dte_fail("GetMemoryMap failed with status 0x%llx", (unsigned long long)status);
    }
    info->usable_bytes = summary.usable_bytes;
    dte_status("memory usable_mib=%llu largest_free_mib=%llu regions=%d descriptors=%u",
               (unsigned long long)(summary.usable_bytes / MIB), (unsigned long long)(summary.largest_free_bytes / MIB),
               DTE_REGION_COUNT, summary.descriptors);
}

#ifdef DTE_TEST_FAULT
/* Test builds only: make a canonical address unmapped (clear its PML4 entry; if the page tables are
 * write-protected the write itself faults) and touch it, to exercise the #PF (vector 14) panic path. */
static void trigger_test_fault(void)
{
    const uint64_t address = 0x00007FFFFFFFF000ULL;   /* PML4 index 255, top of the lower half */
    dte_set_subsystem("test");
    if (!(cpu_read_cr4() & CR4_LA57)) {                /* 4-level paging */
        volatile uint64_t *pml4 = (volatile uint64_t *)(uintptr_t)(cpu_read_cr3() & PAGE_ADDR_MASK);
        pml4[(address >> 39) & 511] &= ~1ULL;
        __asm__ volatile("mov %%cr3, %%rax; mov %%rax, %%cr3" ::: "rax", "memory");
    }
    *(volatile uint64_t *)(uintptr_t)address = 1;
}
#endif

efi_status EFIAPI efi_main(efi_handle image, efi_system_table *system_table)
{
    static struct dte_boot_info info;
    efi_boot_services *bs = system_table->boot_services;

    serial_init();
    status_attach_conout(system_table->con_out);
    bs->set_watchdog_timer(0, 0, 0, NULL);   /* §7.5.1: no 5-minute reset while we work */
    report_banner();
    identify_cpu(&info);
    info.tsc_hz = timer_calibrate(bs);
    dte_status("timer tsc_mhz=%llu", (unsigned long long)(info.tsc_hz / 1000000ULL));
    survey_memory(bs, &info);
    memmap_reserve_regions(bs);
    info.rsdp = acpi_rsdp_from_uefi(system_table->configuration_table, system_table->number_of_table_entries);
    if (dte_smp_reserve_low_memory(bs) != 0) {
        dte_status("smp error=low_memory_unavailable");   /* the APs stay parked; the BSP works alone */
    }
    dte_set_subsystem("appliance");
    int before = dte_main_before_exit(image, system_table, &info);
    if (before != 0) {
        dte_fail("appliance setup stopped with code %d", before);
    }

    /* After this, boot-services memory is ours: OVMF's GDT, page tables and this stack live there and stay
     * valid because nothing reuses it (the allocator hands out only the reserved regions). */
    status_detach_conout();
    unsigned tries = memmap_exit_boot_services(bs, image);
    if (tries == 0) {
        dte_fail("ExitBootServices failed");
    }
    cpu_interrupts_off();
    idt_install();
    dte_status("exit_boot_services ok tries=%u", tries);
    dte_set_subsystem("smp");
    dte_smp_start(info.rsdp, 0);   /* every core the board allows joins dte_parallel_for's pool */

#ifdef DTE_TEST_FAULT
    trigger_test_fault();
#endif
    dte_set_subsystem("appliance");
    int rc = dte_main_after_exit(&info);
    dte_set_subsystem("boot");
    if (rc != 0) {
        dte_fail("appliance stopped with code %d", rc);
    }
    dte_status("exit status=ok");
    dte_exit(DTE_EXIT_OK);
}
