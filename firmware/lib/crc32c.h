/* CRC-32C (Castagnoli), as used for the per-chunk weights checksums in /DTE/WEIGHTS.MAN (docs/design.md).
 *
 * `crc` is the running value, 0 to start; the result of one call continues the next (same convention as the
 * Python crc32c package's crc32c(data, value=prev)). crc32c_update("123456789") from 0 is 0xE3069283. */
#ifndef DTE_LIB_CRC32C_H
#define DTE_LIB_CRC32C_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Uses the SSE4.2 instruction when the CPU has it, the table otherwise. */
uint32_t crc32c_update(uint32_t crc, const void *data, size_t len);

/* The two implementations, callable directly (tests compare them; crc32c_update_sse42 needs SSE4.2). */
uint32_t crc32c_update_table(uint32_t crc, const void *data, size_t len);
uint32_t crc32c_update_sse42(uint32_t crc, const void *data, size_t len);
bool crc32c_cpu_has_sse42(void);

#endif /* DTE_LIB_CRC32C_H */
