/* The panic path: CPU exceptions (after idt_install) and software panics end here, print a `dte: panic`
 * line and leave with DTE_EXIT_PANIC (QEMU rc 37) or halt on metal. */
#ifndef DTE_BOOT_PANIC_H
#define DTE_BOOT_PANIC_H

#include <stdint.h>

/* Names the code now running (e.g. "engine", "nvme"); the panic line reports it. Keep the string alive. */
void dte_set_subsystem(const char *name);

/* Installs an IDT whose 32 exception vectors all panic. Call with interrupts off, after ExitBootServices. */
void idt_install(void);

__attribute__((noreturn)) void dte_panic(const char *reason);

/* Guarded instructions (boot core only, interrupts off): code stores the address of one 2-byte instruction that
 * may raise #GP (rdmsr of an MSR the CPU may lack) in dte_gp_guard_rip right before it; a #GP at exactly that
 * address sets dte_gp_guard_hit and resumes after the instruction instead of panicking. Clear the guard after. */
extern volatile uint64_t dte_gp_guard_rip;
extern volatile int dte_gp_guard_hit;

#endif /* DTE_BOOT_PANIC_H */
