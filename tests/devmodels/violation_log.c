/* The device models' violation log (see violation_log.h). */
#include "violation_log.h"

#include <stdio.h>
#include <string.h>

void violation_log_addv(struct violation_log *log, const char *fmt, va_list ap)
{
    char line[256];
    vsnprintf(line, sizeof line, fmt, ap);
    int n = snprintf(log->text + log->len, sizeof log->text - log->len, "%s\n", line);
    if (n > 0 && log->len + (size_t)n < sizeof log->text)
        log->len += (size_t)n;
    log->count++;
}

int violation_log_copy(const struct violation_log *log, char *buf, size_t cap)
{
    size_t n = log->len < cap - 1 ? log->len : cap - 1;
    memcpy(buf, log->text, n);
    buf[n] = '\0';
    return log->count;
}
