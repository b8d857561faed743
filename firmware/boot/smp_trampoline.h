/* The AP start-up trampoline: 16-bit real mode → 32-bit protected mode → 64-bit long mode → C
 * (Intel SDM Vol. 3A §9.4.4 MP initialization example, §10.8 "Software initialization for protected-mode
 * operation", §10.8.5 "Initializing IA-32e mode"). The code is copied to a page below 1 MiB whose number is
 * the SIPI vector; the parameters below live in the same page at TRAMP_DATA and are filled in by smp.c. */
#ifndef DTE_BOOT_SMP_TRAMPOLINE_H
#define DTE_BOOT_SMP_TRAMPOLINE_H

#include <stddef.h>
#include <stdint.h>

#define TRAMP_DATA 0x800   /* offset of struct tramp_data inside the trampoline page */

/* Byte offsets inside struct tramp_data, also used by the assembly (keep in step: _Static_asserts in smp.c). */
#define TD_GDT 0x00         /* u64[4]: null, 32-bit code (0x08), 32-bit data (0x10), 64-bit code (0x18) */
#define TD_GDTR 0x20        /* u16 limit + u32 base: the temporary GDT above (lgdtl from real mode) */
#define TD_FAR32 0x28       /* u32 offset + u16 selector: jump into 32-bit code */
#define TD_FAR64 0x30       /* u32 offset + u16 selector: jump into 64-bit code */
#define TD_CR3_LOW 0x38     /* u32: a copy of the BSP's top-level page table below 4 GiB */
#define TD_CR4_LOW 0x3C     /* u32: CR4.PAE (+ LA57 when the BSP uses 5-level paging) */
#define TD_EFER 0x40        /* u32: EFER.LME | the BSP's NXE/SCE */
#define TD_CR3 0x48         /* u64: the BSP's CR3 */
#define TD_CR4 0x50         /* u64: the BSP's CR4 */
#define TD_CR0 0x58         /* u64: the BSP's CR0 */
#define TD_BSP_GDTR 0x60    /* u16 + u64: the BSP's GDTR */
#define TD_BSP_IDTR 0x70    /* u16 + u64: the BSP's IDTR (the panic IDT) */
#define TD_CS 0x80          /* u64: the BSP's code selector */
#define TD_DS 0x88          /* u64: the BSP's data selector */
#define TD_STACK 0x90       /* u64: top of this AP's stack (16-byte aligned) */
#define TD_ENTRY 0x98       /* u64: void entry(void *arg) (MS x64 ABI) */
#define TD_ARG 0xA0         /* u64: entry's argument; the AP takes it with xchg (0 = nothing for you: park) */

struct __attribute__((packed)) tramp_data {
    uint64_t gdt[4];
    uint16_t gdtr_limit;
    uint32_t gdtr_base;
    uint16_t pad0;
    uint32_t far32_offset;
    uint16_t far32_selector;
    uint16_t pad1;
    uint32_t far64_offset;
    uint16_t far64_selector;
    uint16_t pad2;
    uint32_t cr3_low;
    uint32_t cr4_low;
    uint32_t efer;
    uint32_t pad3;
    uint64_t cr3, cr4, cr0;
    uint16_t bsp_gdtr_limit;
    uint64_t bsp_gdtr_base;
    uint8_t pad4[6];
    uint16_t bsp_idtr_limit;
    uint64_t bsp_idtr_base;
    uint8_t pad5[6];
    uint64_t cs, ds, stack, entry, arg;
};

/* The position-independent code, [smp_tramp_start, smp_tramp_end); smp_tramp32/64 are the far-jump targets. */
extern const uint8_t smp_tramp_start[], smp_tramp32[], smp_tramp64[], smp_tramp_end[];

#endif /* DTE_BOOT_SMP_TRAMPOLINE_H */
