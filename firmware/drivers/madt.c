/* MADT decoding (ACPI 6.5 §5.2.12; Processor Local APIC §5.2.12.2, Local APIC Address Override §5.2.12.8,
 * Processor Local x2APIC §5.2.12.12). */
#include "drivers/madt.h"

#include "drivers/acpi.h"

#define MADT_ENTRIES_OFFSET 44u
#define TYPE_LOCAL_APIC 0u              /* length 8: uid u8 @2, apic id u8 @3, flags u32 @4 */
#define TYPE_LAPIC_ADDRESS_OVERRIDE 5u  /* length 12: address u64 @4 */
#define TYPE_LOCAL_X2APIC 9u            /* length 16: x2apic id u32 @4, flags u32 @8, uid u32 @12 */

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static int already_listed(const struct madt_cpu *cpus, int stored, uint32_t apic_id)
{
    for (int i = 0; i < stored; i++) {
        if (cpus[i].apic_id == apic_id) {
            return 1;
        }
    }
    return 0;
}

/* Stores one processor when it is usable and new; returns the new count of stored entries. */
static int add_cpu(struct madt_cpu *cpus, int cap, int stored, struct madt_info *info, struct madt_cpu cpu)
{
    if (!(cpu.flags & (MADT_CPU_ENABLED | MADT_CPU_ONLINE_CAPABLE))) {
        return stored;
    }
    if (already_listed(cpus, stored < cap ? stored : cap, cpu.apic_id)) {
        return stored;
    }
    info->listed++;
    if (stored < cap) {
        cpus[stored++] = cpu;
    }
    return stored;
}

int madt_parse(const void *madt, struct madt_cpu *cpus, int cap, struct madt_info *info)
{
    const uint8_t *t = madt;
    if (!t || t[0] != 'A' || t[1] != 'P' || t[2] != 'I' || t[3] != 'C') {
        return -1;
    }
    uint32_t length = acpi_table_length(t);
    if (length < MADT_ENTRIES_OFFSET) {
        return -1;
    }
    *info = (struct madt_info){.lapic_base = rd32(t + 36)};
    int stored = 0;
    for (uint32_t off = MADT_ENTRIES_OFFSET; off + 2 <= length;) {
        uint8_t type = t[off], len = t[off + 1];
        if (len < 2 || off + len > length) {
            break;   /* malformed: stop at what is readable */
        }
        const uint8_t *e = t + off;
        if (type == TYPE_LOCAL_APIC && len >= 8 && e[3] != 0xFF) {
            struct madt_cpu cpu = {.apic_id = e[3], .uid = e[2], .flags = rd32(e + 4) & 3u, .x2apic = 0};
            stored = add_cpu(cpus, cap, stored, info, cpu);
        } else if (type == TYPE_LOCAL_X2APIC && len >= 16 && rd32(e + 4) != 0xFFFFFFFFu) {
            struct madt_cpu cpu = {.apic_id = rd32(e + 4), .uid = rd32(e + 12), .flags = rd32(e + 8) & 3u, .x2apic = 1};
            stored = add_cpu(cpus, cap, stored, info, cpu);
        } else if (type == TYPE_LAPIC_ADDRESS_OVERRIDE && len >= 12) {
            info->lapic_base = (uint64_t)rd32(e + 4) | ((uint64_t)rd32(e + 8) << 32);
        }
        off += len;
    }
    return stored;
}
