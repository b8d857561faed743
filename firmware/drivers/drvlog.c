/* Driver log lines (see drvlog.h). */
#include "drivers/drvlog.h"

#include <stdarg.h>

#include "lib/fmt.h"
#include "runtime/platform.h"

void drv_logf(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    dte_vfmt(line, sizeof line, fmt, ap);
    va_end(ap);
    dte_log(line);
}
