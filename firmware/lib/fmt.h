/* dte_fmt: a small printf-style formatter with no libc, shared by the firmware and the hosted build.
 *
 * Conversions: %d %i %u %x %X %s %c %p %f %%, with length modifiers l, ll, z (size_t), flags '0' and '-',
 * a field width, and a precision for %f (default 6) and %s (max chars). Note `long` is 32-bit on the
 * firmware's Windows-style target: print 64-bit values with %ll* (or %z* for size_t).
 */
#ifndef DTE_LIB_FMT_H
#define DTE_LIB_FMT_H

#include <stdarg.h>
#include <stddef.h>

/* Format into buf (always NUL-terminated when cap > 0). Returns the length the full output would have,
 * like snprintf: a result >= cap means it was truncated. */
size_t dte_fmt(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t dte_vfmt(char *buf, size_t cap, const char *fmt, va_list args) __attribute__((format(printf, 3, 0)));

#endif /* DTE_LIB_FMT_H */
