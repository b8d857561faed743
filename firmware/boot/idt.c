/* Exception handling: a 64-bit IDT (Intel SDM Vol. 3A §6.14.1, 16-byte gate descriptors) whose 32
 * exception vectors go to one panic routine. Vectors that push an error code (SDM Vol. 3A Table 6-1):
 * 8, 10-14, 17, 21, 29, 30; the stubs push a 0 for the others so every frame has the same layout. */
#include <stdint.h>

#include "boot/cpu.h"
#include "boot/io.h"
#include "boot/panic.h"
#include "boot/smp.h"
#include "boot/status.h"

#define EXCEPTION_VECTORS 32
#define STUB_BYTES 16
#define GATE_INTERRUPT_PRESENT 0x8E   /* P=1, DPL=0, type 0xE: 64-bit interrupt gate */

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

struct idt_pointer {
    uint16_t limit;
    uint64_t base;
} __attribute__((packed));

/* What the stubs leave on the stack: our vector and error code, then the CPU's interrupt frame. */
struct exception_frame {
    uint64_t vector;
    uint64_t error_code;
    uint64_t rip;
    uint64_t cs;
    uint64_t rflags;
    uint64_t rsp;
    uint64_t ss;
};

static struct idt_gate idt[EXCEPTION_VECTORS] __attribute__((aligned(16)));
volatile uint64_t dte_gp_guard_rip;
volatile int dte_gp_guard_hit;
static const char *subsystem = "boot";
static int panicking;          /* 1 + APIC id of the core that panicked first; 0: none */

void dte_exception_panic(const struct exception_frame *frame);

/* 32 stubs of STUB_BYTES each, then the common path: pass the frame (MS x64 ABI: first argument in RCX)
 * to dte_exception_panic on a 16-byte aligned stack with 32 bytes of shadow space. */
__asm__(".text\n"
        ".macro DTE_ISR_NOERR n\n"
        "  .balign 16\n"
        "  pushq $0\n"
        "  pushq $\\n\n"
        "  jmp dte_isr_common\n"
        ".endm\n"
        ".macro DTE_ISR_ERR n\n"
        "  .balign 16\n"
        "  pushq $\\n\n"
        "  jmp dte_isr_common\n"
        ".endm\n"
        ".balign 16\n"
        "dte_isr_stubs:\n"
        "DTE_ISR_NOERR 0\n DTE_ISR_NOERR 1\n DTE_ISR_NOERR 2\n DTE_ISR_NOERR 3\n"
        "DTE_ISR_NOERR 4\n DTE_ISR_NOERR 5\n DTE_ISR_NOERR 6\n DTE_ISR_NOERR 7\n"
        "DTE_ISR_ERR 8\n DTE_ISR_NOERR 9\n DTE_ISR_ERR 10\n DTE_ISR_ERR 11\n"
        "DTE_ISR_ERR 12\n DTE_ISR_ERR 13\n DTE_ISR_ERR 14\n DTE_ISR_NOERR 15\n"
        "DTE_ISR_NOERR 16\n DTE_ISR_ERR 17\n DTE_ISR_NOERR 18\n DTE_ISR_NOERR 19\n"
        "DTE_ISR_NOERR 20\n DTE_ISR_ERR 21\n DTE_ISR_NOERR 22\n DTE_ISR_NOERR 23\n"
        "DTE_ISR_NOERR 24\n DTE_ISR_NOERR 25\n DTE_ISR_NOERR 26\n DTE_ISR_NOERR 27\n"
        "DTE_ISR_NOERR 28\n DTE_ISR_ERR 29\n DTE_ISR_ERR 30\n DTE_ISR_NOERR 31\n"
        ".balign 16\n"
        "dte_isr_common:\n"
        /* #GP at the guarded instruction (panic.h, dte_gp_guard_rip): flag it, resume after its 2 bytes and return.
     * Touches only RAX (restored) and the frame, so the interrupted code runs on unharmed. */
        "  cmpq $13, (%rsp)\n"
        "  jne 2f\n"
        "  pushq %rax\n"
        "  movq dte_gp_guard_rip(%rip), %rax\n"
        "  cmpq %rax, 24(%rsp)\n" /* stack: saved RAX, vector, error code, RIP */
        "  jne 3f\n"
        "  addq $2, 24(%rsp)\n"
        "  movl $1, dte_gp_guard_hit(%rip)\n"
        "  popq %rax\n"
        "  addq $16, %rsp\n"
        "  iretq\n"
        "3:\n"
        "  popq %rax\n"
        "2:\n"
        "  movq %rsp, %rcx\n"
        "  andq $-16, %rsp\n"
        "  subq $32, %rsp\n"
        "  call dte_exception_panic\n"
        "1:\n"
        "  cli\n"
        "  hlt\n"
        "  jmp 1b\n");

extern const uint8_t dte_isr_stubs[];

void dte_set_subsystem(const char *name)
{
    subsystem = name;
}

static uint16_t code_selector(void)
{
    uint16_t cs;
    __asm__ volatile("mov %%cs, %0" : "=r"(cs));
    return cs;
}

void idt_install(void)
{
    uint16_t cs = code_selector();
    for (int v = 0; v < EXCEPTION_VECTORS; v++) {
        uint64_t handler = (uint64_t)(uintptr_t)(dte_isr_stubs + v * STUB_BYTES);
        idt[v] = (struct idt_gate){
            .offset_low = (uint16_t)handler,
            .selector = cs,
            .ist = 0,
            .type_attr = GATE_INTERRUPT_PRESENT,
            .offset_mid = (uint16_t)(handler >> 16),
            .offset_high = (uint32_t)(handler >> 32),
        };
    }
    struct idt_pointer pointer = {sizeof idt - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(pointer) : "memory");
}

/* The first panicking core reports; it stops the others first (smp.c: stop flag + NMI, whose vector-2 entry
 * lands here and halts). A second fault on the reporting core itself leaves without printing. */
static void claim_panic(void)
{
    int me = (int)cpu_apic_id() + 1;
    int expected = 0;
    if (!__atomic_compare_exchange_n(&panicking, &expected, me, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        if (expected == me) {
            dte_exit(DTE_EXIT_PANIC); /* a fault while reporting a fault */
        }
        cpu_halt_forever(); /* another core reports: this one stops */
    }
    dte_smp_stop_others();
}

void dte_exception_panic(const struct exception_frame *frame)
{
    claim_panic();
    dte_status("panic vector=%llu error=0x%llx rip=0x%llx cr2=0x%llx core=%u worker=%d subsystem=%s",
               (unsigned long long)frame->vector, (unsigned long long)frame->error_code, (unsigned long long)frame->rip,
               (unsigned long long)cpu_read_cr2(), cpu_apic_id(), dte_smp_current_worker(), subsystem);
    dte_status("exit status=panic");
    dte_exit(DTE_EXIT_PANIC);
}

void dte_panic(const char *reason)
{
    char escaped[256];
    claim_panic();
    dte_status("panic text=\"%s\" core=%u worker=%d subsystem=%s", status_escape(escaped, sizeof escaped, reason),
               cpu_apic_id(), dte_smp_current_worker(), subsystem);
    dte_status("exit status=panic");
    dte_exit(DTE_EXIT_PANIC);
}
