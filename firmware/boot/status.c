/* Status lines to COM1 (+ ConOut before ExitBootServices) and the ways the firmware ends. */
#include "boot/status.h"

#include <stdarg.h>
#include <stdint.h>

#include "boot/io.h"
#include "boot/serial.h"
#include "dte_config.h"
#include "lib/fmt.h"

#define LINE_MAX_CHARS 512
#define ISA_DEBUG_EXIT_PORT 0xF4   /* QEMU -device isa-debug-exit,iobase=0xf4: rc = (value << 1) | 1 */

static efi_simple_text_output *conout;

void status_attach_conout(efi_simple_text_output *con_out)
{
    conout = con_out;
}

void status_detach_conout(void)
{
    conout = NULL;
}

/* ASCII to UCS-2 in chunks (UEFI strings are CHAR16, §2.3.1). */
static void conout_write(const char *text)
{
    efi_char16 chunk[65];
    size_t n = 0;
    for (const char *p = text;; p++) {
        if (*p == '\0' || n == 64) {
            chunk[n] = 0;
            conout->output_string(conout, chunk);
            n = 0;
            if (*p == '\0') {
                break;
            }
        }
        chunk[n++] = (efi_char16)(unsigned char)*p;
    }
}

static size_t text_length(const char *s)
{
    size_t n = 0;
    while (s[n]) {
        n++;
    }
    return n;
}

static void write_line(const char *line, const char *screen_prefix, size_t serial_skip)
{
    serial_write(line, text_length(line));
    serial_write("\n", 1);
    if (conout) {
        conout_write(screen_prefix);
        conout_write(line + serial_skip);
        conout_write("\r\n");
    }
}

void status_write_line(const char *line)
{
    write_line(line, "", 0);
}

void dte_status(const char *fmt, ...)
{
    char line[LINE_MAX_CHARS] = "dte: ";
    va_list args;
    va_start(args, fmt);
    dte_vfmt(line + 5, sizeof line - 5, fmt, args);
    va_end(args);
    write_line(line, "dte ", 5);
}

const char *status_escape(char *out, size_t cap, const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p && n + 3 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = *p;
        } else if (*p == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else {
            out[n++] = *p;
        }
    }
    if (cap > 0) {
        out[n < cap ? n : cap - 1] = '\0';
    }
    return out;
}

void dte_fail(const char *fmt, ...)
{
    char message[LINE_MAX_CHARS / 2];
    char escaped[LINE_MAX_CHARS - 32];
    va_list args;
    va_start(args, fmt);
    dte_vfmt(message, sizeof message, fmt, args);
    va_end(args);
    dte_status("error text=\"%s\"", status_escape(escaped, sizeof escaped, message));
    dte_status("exit status=fail");
    dte_exit(DTE_EXIT_FAIL);
}

void dte_exit(enum dte_exit_code code)
{
#if DTE_PLATFORM_QEMU
    io_out32(ISA_DEBUG_EXIT_PORT, (uint32_t)code);
#else
    (void)code;
#endif
    cpu_halt_forever();   /* metal boards, or a QEMU without isa-debug-exit */
}
