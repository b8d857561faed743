/* ACPI table lookup from the RSDP (which UEFI publishes in its configuration table under ACPI_20_TABLE_GUID), and
 * the MCFG decoder for PCI Express ECAM. ACPI 6.5 section 5.2 (RSDP 5.2.5.3, SDT header 5.2.6, RSDT 5.2.7,
 * XSDT 5.2.8); MCFG from the PCI Firmware Specification 3.0 section 4.1.2. Tables are read in place (identity
 * mapped), with checksums verified. */
#ifndef DTE_DRIVERS_ACPI_H
#define DTE_DRIVERS_ACPI_H

#include <stdint.h>

#define ACPI_SDT_HEADER_BYTES 36u

/* The RSDP from the UEFI configuration table (UEFI 2.10 section 4.6: an array of {EFI_GUID, VOID *} entries,
 * 24 bytes each): the ACPI 2.0+ entry (EFI_ACPI_20_TABLE_GUID) if present, else the ACPI 1.0 one; NULL if neither.
 * Call before ExitBootServices, keep the pointer (the tables stay in ACPI reclaim memory). */
const void *acpi_rsdp_from_uefi(const void *configuration_table, uint64_t entries);

/* The first table with signature `sig` (4 chars, e.g. "MCFG", "APIC" for the MADT) reachable from the XSDT
 * (ACPI 2.0+ RSDP) or the RSDT (revision 0 RSDP), whose checksum is valid; NULL if none or the RSDP is bad.
 * The result points at the table's 36-byte header; its length is acpi_table_length(). */
const void *acpi_find_table(const void *rsdp, const char *sig);
uint32_t acpi_table_length(const void *table);

struct acpi_mcfg_entry {
    uint64_t base;       /* ECAM base address (bus 0 of this segment) */
    uint16_t segment;
    uint8_t bus_start;
    uint8_t bus_end;
};

/* Entry `index` of an MCFG table: 1 when it exists, 0 otherwise. */
int acpi_mcfg_entry(const void *mcfg, int index, struct acpi_mcfg_entry *out);

#endif /* DTE_DRIVERS_ACPI_H */
