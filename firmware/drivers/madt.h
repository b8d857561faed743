/* MADT (Multiple APIC Description Table, signature "APIC") decoding: which processors the platform has.
 * ACPI 6.5 §5.2.12: header + Local Interrupt Controller Address (u32 @36) + Flags (u32 @40), then interrupt
 * controller structures from offset 44, each {u8 type, u8 length, ...}. Platform-free (hosted-testable). */
#ifndef DTE_DRIVERS_MADT_H
#define DTE_DRIVERS_MADT_H

#include <stdint.h>

#define MADT_CPU_ENABLED 0x1u          /* Local APIC Flags bit 0 (ACPI 6.5 Table 5.23) */
#define MADT_CPU_ONLINE_CAPABLE 0x2u   /* bit 1: can be enabled at runtime */

struct madt_cpu {
    uint32_t apic_id;    /* local APIC id (type 0) or x2APIC id (type 9) */
    uint32_t uid;        /* ACPI processor UID */
    uint32_t flags;      /* MADT_CPU_* */
    uint8_t x2apic;      /* 1: from a Processor Local x2APIC structure (type 9) */
};

struct madt_info {
    uint64_t lapic_base;   /* 32-bit field, or the Local APIC Address Override (type 5) when present */
    int listed;            /* usable processors in the table (may exceed what fitted in the caller's array) */
};

/* Decode the usable processors (enabled or online-capable; ids 0xFF / 0xFFFFFFFF and duplicates skipped) of
 * `madt` into cpus[0..cap), in table order. Returns how many were stored, -1 when `madt` is not a MADT. */
int madt_parse(const void *madt, struct madt_cpu *cpus, int cap, struct madt_info *info);

#endif /* DTE_DRIVERS_MADT_H */
