/* AP trampoline code (see smp_trampoline.h). Entered by a SIPI in real mode at CS:IP = (page >> 4):0000
 * (Intel SDM Vol. 3A §9.4.4.1 / §11.6.1: the vector names the 4-KiB page). Every data access goes through the
 * page base: DS = CS in real mode, EBX = page base afterwards. */
#include "boot/smp_trampoline.h"

#define STR2(x) #x
#define STR(x) STR2(x)
#define D(field) STR(TRAMP_DATA + field)

__asm__(".text\n"
        ".balign 16\n"
        ".globl smp_tramp_start\n"
        "smp_tramp_start:\n"
        ".code16\n"
        "  cli\n"
        "  cld\n"
        "  xorl %ebx, %ebx\n"
        "  movw %cs, %bx\n"
        "  shll $4, %ebx\n"                       /* EBX = linear address of this page */
        "  movw %cs, %ax\n"
        "  movw %ax, %ds\n"
        "  lgdtl " D(
            TD_GDTR) "\n"
                     "  movl %cr0, %eax\n"
                     "  orl $1, %eax\n"                       /* CR0.PE */
                     "  movl %eax, %cr0\n"
                     "  ljmpl *" D(
                         TD_FAR32) "\n"             /* m16:32 far pointer: CS = 0x08 (32-bit code) */
                                   ".code32\n"
                                   ".globl smp_tramp32\n"
                                   "smp_tramp32:\n"
                                   "  movw $0x10, %ax\n"
                                   "  movw %ax, %ds\n"
                                   "  movw %ax, %es\n"
                                   "  movw %ax, %ss\n"
                                   "  movl " D(
                                       TD_CR4_LOW) "(%ebx), %eax\n"   /* PAE (+ LA57): SDM §10.8.5 step 2 */
                                                   "  movl %eax, %cr4\n"
                                                   "  movl " D(
                                                       TD_CR3_LOW) "(%ebx), %eax\n" /* step 3: top-level table below 4 GiB */
                                                                   "  movl %eax, %cr3\n"
                                                                   "  movl $0xC0000080, %ecx\n" /* IA32_EFER: step 4, LME (+ NXE so NX bits are legal) */
                                                                   "  movl " D(
                                                                       TD_EFER) "(%ebx), %eax\n"
                                                                                "  xorl %edx, %edx\n"
                                                                                "  wrmsr\n"
                                                                                "  movl %cr0, %eax\n"
                                                                                "  orl $0x80000001, %eax\n" /* step 5: CR0.PG (with PE) activates IA-32e mode */
                                                                                "  movl %eax, %cr0\n"
                                                                                "  ljmpl *" D(
                                                                                    TD_FAR64) "(%ebx)\n" /* CS = 0x18 (64-bit code) */
                                                                                              ".code64\n"
                                                                                              ".globl smp_tramp64\n"
                                                                                              "smp_tramp64:\n"
                                                                                              "  movl %ebx, %ebx\n" /* upper halves are undefined after the mode switch */
                                                                                              "  xorl %ecx, %ecx\n"
                                                                                              "  xchgq %rcx, " D(
                                                                                                  TD_ARG) "(%rbx)\n" /* claim the start parameters; 0: not meant for us */
                                                                                                          "  testq "
                                                                                                          "%rcx, %rcx\n"
                                                                                                          "  jz 2f\n"
                                                                                                          "  movq " D(
                                                                                                              TD_CR3) "(%rbx), %rax\n"
                                                                                                                      "  movq %rax, %cr3\n"
                                                                                                                      "  movq " D(
                                                                                                                          TD_CR4) "(%rbx), %rax\n"
                                                                                                                                  "  movq %rax, %cr4\n"
                                                                                                                                  "  movq " D(
                                                                                                                                      TD_CR0) "(%rbx), %rax\n"
                                                                                                                                              "  movq %rax, %cr0\n"
                                                                                                                                              "  lgdtq " D(
                                                                                                                                                  TD_BSP_GDTR) "(%rbx)\n"
                                                                                                                                                               "  lidtq " D(
                                                                                                                                                                   TD_BSP_IDTR) "(%rbx)\n"
                                                                                                                                                                                "  movq " D(
                                                                                                                                                                                    TD_DS) "(%rbx), %rax\n"
                                                                                                                                                                                           "  movw %ax, %ds\n"
                                                                                                                                                                                           "  movw %ax, %es\n"
                                                                                                                                                                                           "  movw %ax, %ss\n"
                                                                                                                                                                                           "  movw %ax, %fs\n"
                                                                                                                                                                                           "  movw %ax, %gs\n"
                                                                                                                                                                                           "  movq " D(
                                                                                                                                                                                               TD_STACK) "(%rbx), %rsp\n"
                                                                                                                                                                                                         "  movq " D(TD_ENTRY) "(%rbx), %rdx\n"
                                                                                                                                                                                                                               "  pushq " D(TD_CS) "(%rbx)\n"
                                                                                                                                                                                                                                                   "  leaq 1f(%rip), %rax\n"
                                                                                                                                                                                                                                                   "  pushq %rax\n"
                                                                                                                                                                                                                                                   "  lretq\n" /* reload CS with the BSP's selector */
                                                                                                                                                                                                                                                   "1:\n"
                                                                                                                                                                                                                                                   "  subq $32, %rsp\n" /* MS x64 shadow space; RCX = the argument */
                                                                                                                                                                                                                                                   "  callq *%rdx\n"
                                                                                                                                                                                                                                                   "2:\n"
                                                                                                                                                                                                                                                   "  cli\n"
                                                                                                                                                                                                                                                   "  hlt\n"
                                                                                                                                                                                                                                                   "  jmp 2b\n"
                                                                                                                                                                                                                                                   ".globl smp_tramp_end\n"
                                                                                                                                                                                                                                                   "smp_tramp_end:\n");
