/* Status lines (docs/design.md, "Status lines"): `dte: <word> key=value ...` on COM1, parsed by `dte run`.
 * While boot services are up, a copy goes to the UEFI console (ConOut) for people, as `dte <word> ...`
 * (no colon) so that OVMF's ConOut-to-serial mirror is not parsed twice. */
#ifndef DTE_BOOT_STATUS_H
#define DTE_BOOT_STATUS_H

#include <stddef.h>

#include "boot/efi.h"

enum dte_exit_code {
    DTE_EXIT_OK = 0x10,      /* QEMU rc 33 */
    DTE_EXIT_FAIL = 0x11,    /* QEMU rc 35 */
    DTE_EXIT_PANIC = 0x12,   /* QEMU rc 37 */
};

void status_attach_conout(efi_simple_text_output *con_out);
void status_detach_conout(void);   /* before ExitBootServices: ConOut is gone after it */

/* One status line: "dte: " + the formatted text. */
void dte_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A raw line (no "dte: " prefix) to the same outputs. */
void status_write_line(const char *line);

/* Escape `text` as the value of text="..." (\" \\ \n); returns out. */
const char *status_escape(char *out, size_t cap, const char *text);

/* `dte: error text="..."`, then `dte: exit status=fail` and dte_exit(DTE_EXIT_FAIL). */
__attribute__((noreturn, format(printf, 1, 2))) void dte_fail(const char *fmt, ...);

/* Leave: isa-debug-exit (port 0xf4) on qemu boards, halt on metal. Prints nothing. */
__attribute__((noreturn)) void dte_exit(enum dte_exit_code code);

#endif /* DTE_BOOT_STATUS_H */
