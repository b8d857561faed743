/* COM1 16550 UART driver, polled (register map: PC16550D datasheet; COM1 at I/O port 0x3F8). */
#include "boot/serial.h"

#include <stdbool.h>
#include <stdint.h>

#include "boot/io.h"

#define COM1 0x3F8
#define REG_DATA 0          /* THR on write; DLL when LCR.DLAB=1 */
#define REG_IER 1           /* interrupt enable; DLM when LCR.DLAB=1 */
#define REG_FCR 2
#define REG_LCR 3
#define REG_MCR 4
#define REG_LSR 5
#define LSR_THR_EMPTY 0x20  /* bit 5: transmit holding register empty */
#define LCR_DLAB 0x80
#define LCR_8N1 0x03
#define SPIN_LIMIT 100000   /* give up on a byte rather than hang when no UART answers */

static bool serial_present = true;

void serial_init(void)
{
    if (io_in8(COM1 + REG_LSR) == 0xFF) {   /* floating bus: no UART at COM1 */
        serial_present = false;
        return;
    }
    io_out8(COM1 + REG_IER, 0x00);          /* polled: no interrupts */
    io_out8(COM1 + REG_LCR, LCR_DLAB);
    io_out8(COM1 + REG_DATA, 1);            /* divisor 1: 115200 baud from the 1.8432 MHz clock */
    io_out8(COM1 + REG_IER, 0);
    io_out8(COM1 + REG_LCR, LCR_8N1);
    io_out8(COM1 + REG_FCR, 0xC7);          /* enable + clear FIFOs, 14-byte trigger */
    io_out8(COM1 + REG_MCR, 0x03);          /* DTR + RTS */
}

static void serial_put_byte(uint8_t byte)
{
    for (int spin = 0; spin < SPIN_LIMIT; spin++) {
        if (io_in8(COM1 + REG_LSR) & LSR_THR_EMPTY) {
            break;
        }
    }
    io_out8(COM1 + REG_DATA, byte);
}

void serial_write(const char *text, size_t length)
{
    if (!serial_present) {
        return;
    }
    for (size_t i = 0; i < length; i++) {
        if (text[i] == '\n') {
            serial_put_byte('\r');
        }
        serial_put_byte((uint8_t)text[i]);
    }
}
