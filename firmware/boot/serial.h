/* COM1 16550 UART, polled: usable before and after ExitBootServices. */
#ifndef DTE_BOOT_SERIAL_H
#define DTE_BOOT_SERIAL_H

#include <stddef.h>

void serial_init(void);
void serial_write(const char *text, size_t length);   /* '\n' goes out as "\r\n" */

#endif /* DTE_BOOT_SERIAL_H */
