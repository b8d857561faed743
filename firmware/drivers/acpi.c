/* ACPI RSDP -> XSDT/RSDT -> table walk and MCFG decoding (see acpi.h for the sections cited). */
#include "drivers/acpi.h"

#include <stdbool.h>
#include <stddef.h>

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t rd64(const uint8_t *p)
{
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}

/* ACPI checksums: all bytes of the structure sum to zero (mod 256). */
static bool checksum_ok(const uint8_t *p, uint32_t len)
{
    uint8_t sum = 0;
    for (uint32_t i = 0; i < len; i++) {
        sum = (uint8_t)(sum + p[i]);
    }
    return sum == 0;
}

static bool same4(const uint8_t *a, const char *b)
{
    return a[0] == (uint8_t)b[0] && a[1] == (uint8_t)b[1] && a[2] == (uint8_t)b[2] && a[3] == (uint8_t)b[3];
}

uint32_t acpi_table_length(const void *table)
{
    return rd32((const uint8_t *)table + 4); /* SDT header: Length at offset 4 */
}

static const uint8_t *valid_table(uint64_t addr)
{
    const uint8_t *t = (const uint8_t *)(uintptr_t)addr;
    if (!t) {
        return NULL;
    }
    uint32_t len = rd32(t + 4);
    if (len < ACPI_SDT_HEADER_BYTES || len > (1u << 24) || !checksum_ok(t, len)) {
        return NULL;
    }
    return t;
}

const void *acpi_find_table(const void *rsdp_ptr, const char *sig)
{
    const uint8_t *rsdp = rsdp_ptr;
    static const char magic[8] = {'R', 'S', 'D', ' ', 'P', 'T', 'R', ' '};
    if (!rsdp || !sig) {
        return NULL;
    }
    for (int i = 0; i < 8; i++) {
        if (rsdp[i] != (uint8_t)magic[i]) {
            return NULL;
        }
    }
    if (!checksum_ok(rsdp, 20)) { /* the ACPI 1.0 part: first 20 bytes */
        return NULL;
    }
    uint8_t revision = rsdp[15];
    const uint8_t *root;
    uint32_t entry_size;
    if (revision >= 2 && checksum_ok(rsdp, rd32(rsdp + 20) >= 36 ? rd32(rsdp + 20) : 36) && rd64(rsdp + 24)) {
        root = valid_table(rd64(rsdp + 24)); /* XSDT: 64-bit entries */
        entry_size = 8;
        if (root && !same4(root, "XSDT")) {
            root = NULL;
        }
    } else {
        root = valid_table(rd32(rsdp + 16)); /* RSDT: 32-bit entries */
        entry_size = 4;
        if (root && !same4(root, "RSDT")) {
            root = NULL;
        }
    }
    if (!root) {
        return NULL;
    }
    uint32_t n = (rd32(root + 4) - ACPI_SDT_HEADER_BYTES) / entry_size;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = root + ACPI_SDT_HEADER_BYTES + i * entry_size;
        uint64_t addr = entry_size == 8 ? rd64(e) : rd32(e);
        const uint8_t *t = (const uint8_t *)(uintptr_t)addr;
        if (t && same4(t, sig) && valid_table(addr)) {
            return t;
        }
    }
    return NULL;
}

/* EFI_ACPI_20_TABLE_GUID 8868e871-e4f1-11d3-bc22-0080c73c8881 and ACPI_TABLE_GUID (1.0)
 * eb9d2d30-2d88-11d3-9a16-0090273fc14d, in their in-memory (little-endian fields) byte order. */
static const uint8_t acpi20_guid[16] = {0x71, 0xe8, 0x68, 0x88, 0xf1, 0xe4, 0xd3, 0x11,
                                        0xbc, 0x22, 0x00, 0x80, 0xc7, 0x3c, 0x88, 0x81};
static const uint8_t acpi10_guid[16] = {0x30, 0x2d, 0x9d, 0xeb, 0x88, 0x2d, 0xd3, 0x11,
                                        0x9a, 0x16, 0x00, 0x90, 0x27, 0x3f, 0xc1, 0x4d};

static bool same_guid(const uint8_t *a, const uint8_t *b)
{
    for (int i = 0; i < 16; i++) {
        if (a[i] != b[i]) {
            return false;
        }
    }
    return true;
}

const void *acpi_rsdp_from_uefi(const void *configuration_table, uint64_t entries)
{
    const uint8_t *t = configuration_table;
    const void *v1 = NULL;
    for (uint64_t i = 0; t && i < entries; i++) {
        const uint8_t *e = t + 24u * i;
        const void *table = (const void *)(uintptr_t)rd64(e + 16);
        if (same_guid(e, acpi20_guid)) {
            return table;
        }
        if (same_guid(e, acpi10_guid)) {
            v1 = table;
        }
    }
    return v1;
}

int acpi_mcfg_entry(const void *mcfg, int index, struct acpi_mcfg_entry *out)
{
    /* MCFG: SDT header (36) + 8 reserved bytes, then 16-byte allocations: base u64, segment u16, start bus u8,
     * end bus u8, 4 reserved (PCI Firmware 3.0 Table 4-3). */
    const uint8_t *t = mcfg;
    if (!t || index < 0 || !same4(t, "MCFG")) {
        return 0;
    }
    uint32_t len = acpi_table_length(t);
    uint32_t off = ACPI_SDT_HEADER_BYTES + 8u + 16u * (uint32_t)index;
    if (off + 16u > len) {
        return 0;
    }
    out->base = rd64(t + off);
    out->segment = (uint16_t)(t[off + 8] | (t[off + 9] << 8));
    out->bus_start = t[off + 10];
    out->bus_end = t[off + 11];
    return 1;
}
