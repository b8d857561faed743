/* The protocol-violation log every device model keeps: one line per broken rule, in order, and a count
 * (the count goes on when the text is full). Read from Python through <model>_violations (devmodels/nic.py). */
#ifndef DTE_TESTS_VIOLATION_LOG_H
#define DTE_TESTS_VIOLATION_LOG_H

#include <stdarg.h>
#include <stddef.h>

struct violation_log {
    char text[8192];
    size_t len;
    int count;
};

/* Append one formatted line (at most 255 characters) and count it. */
void violation_log_addv(struct violation_log *log, const char *fmt, va_list ap);
/* The text into buf (NUL-terminated, truncated to cap - 1); returns the count. */
int violation_log_copy(const struct violation_log *log, char *buf, size_t cap);

#endif
