/* Driver log lines: printf-style through dte_fmt (firmware/lib/fmt.h), emitted with dte_log.
 * Lines follow the status-line convention of docs/design.md: `dte: <word> key=value key="text"`. */
#ifndef DTE_DRIVERS_DRVLOG_H
#define DTE_DRIVERS_DRVLOG_H

void drv_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* DTE_DRIVERS_DRVLOG_H */
