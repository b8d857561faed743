/* PCI / PCI Express configuration space: ECAM (memory-mapped, base from ACPI MCFG) or the legacy 0xCF8/0xCFC ports,
 * a walk of the bus tree through bridges, BAR decoding and sizing, device lookup.
 *
 * Layouts: PCI Local Bus Specification 3.0 section 6.1 (type 0 header), PCI-to-PCI Bridge Architecture
 * Specification 1.2 section 3.2 (type 1 header), PCI Express Base 4.0 section 7.2.2 (ECAM).
 *
 * Use: pci_init_ecam(mcfg_base, start_bus, end_bus) (or pci_init_ports()), then pci_enumerate(), then
 * pci_find_class(0x01, 0x08, 0x02, 0) for the first NVMe controller, pci_enable(dev) before touching its BARs.
 * State (the access method and the device table) lives in pci.c; enumerate once, on one core.
 */
#ifndef DTE_DRIVERS_PCI_H
#define DTE_DRIVERS_PCI_H

#include <stdbool.h>
#include <stdint.h>

#define PCI_MAX_DEVICES 256

/* Type 0/1 header offsets (PCI 3.0 Figure 6-1, PCI-PCI Bridge 1.2 Figure 3-1). */
#define PCI_CFG_VENDOR_ID 0x00
#define PCI_CFG_DEVICE_ID 0x02
#define PCI_CFG_COMMAND 0x04
#define PCI_CFG_REVISION 0x08
#define PCI_CFG_PROG_IF 0x09
#define PCI_CFG_SUBCLASS 0x0A
#define PCI_CFG_CLASS 0x0B
#define PCI_CFG_HEADER_TYPE 0x0E   /* bits 6:0 layout (0 device, 1 bridge), bit 7 multi-function */
#define PCI_CFG_BAR0 0x10
#define PCI_CFG_STATUS 0x06
#define PCI_CFG_CAP_POINTER 0x34   /* type 0 and type 1 */

#define PCI_STATUS_CAP_LIST (1u << 4)
#define PCI_CAP_ID_VENDOR 0x09   /* vendor-specific (PCI 3.0 Appendix H); virtio 1.2 section 4.1.4 uses it */
#define PCI_CFG_SECONDARY_BUS 0x19   /* type 1 only */
#define PCI_CFG_SUBORDINATE 0x1A   /* type 1 only */

#define PCI_COMMAND_IO (1u << 0)
#define PCI_COMMAND_MEMORY (1u << 1)
#define PCI_COMMAND_BUS_MASTER (1u << 2)

struct pci_bar {
    uint64_t base;       /* bus address (memory: identity-mapped on the firmware); 0 when unassigned */
    uint64_t size;       /* bytes decoded; 0 = BAR not implemented (or the upper half of a 64-bit BAR) */
    bool is_io;
    bool is_64;
    bool prefetchable;
};

struct pci_device {
    uint8_t bus, dev, fn;
    uint8_t header_type;                  /* 0 or 1, multi-function bit removed */
    uint16_t vendor_id, device_id;
    uint8_t class_code, subclass, prog_if, revision;
    uint8_t secondary_bus, subordinate_bus; /* bridges */
    struct pci_bar bars[6];               /* 6 for type 0, 2 for type 1 */
};

typedef uint32_t (*pci_read32_fn)(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
typedef void (*pci_write32_fn)(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t value);

/* ECAM (PCIe 4.0 section 7.2.2, Table 7-1): register r of (b,d,f) at base + (b << 20 | d << 15 | f << 12 | r), where
 * `base` is the MCFG allocation's base address (PCI Firmware 3.0 Table 4-3), i.e. where bus 0 would be even when
 * the allocation starts at a later bus. Buses outside [bus_start, bus_end] read as absent. */
void pci_init_ecam(uint64_t base, uint8_t bus_start, uint8_t bus_end);
/* Configuration mechanism #1 (PCI 3.0 section 3.2.2.3.2): 0xCF8 address, 0xCFC data; first 256 bytes only. */
void pci_init_ports(void);
/* Any other accessor (hosted tests). */
void pci_init_custom(pci_read32_fn read32, pci_write32_fn write32, void *ctx, uint8_t bus_start, uint8_t bus_end);

uint32_t pci_config_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void pci_config_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t value);

/* Walk from the first bus through every bridge (bus numbers as the firmware assigned them); size the BARs.
 * Returns the number of functions found (at most PCI_MAX_DEVICES). */
int pci_enumerate(void);
int pci_device_count(void);
const struct pci_device *pci_device_at(int index);

/* nth (0-based) match in enumeration order, or NULL. prog_if 0xFF matches any. */
const struct pci_device *pci_find_class(uint8_t class_code, uint8_t subclass, uint8_t prog_if, int nth);
const struct pci_device *pci_find_id(uint16_t vendor_id, uint16_t device_id, int nth);
const struct pci_device *pci_find_address(uint8_t bus, uint8_t dev, uint8_t fn);

/* Capability list (PCI 3.0 section 6.7): the config offset of the nth (0-based) capability with ID cap_id, or 0
 * when there is none (or no list: Status bit 4 clear). Follows at most 48 entries, so a looped list ends. */
uint8_t pci_find_capability(const struct pci_device *d, uint8_t cap_id, int nth);

/* Set memory space decode and bus mastering in the command register (needed before MMIO and DMA). */
void pci_enable(const struct pci_device *d);

/* Log one status line per function: `dte: pci dev=BB:DD.F id=vvvv:dddd class=cc.ss.pp`. */
void pci_log_devices(void);

#endif /* DTE_DRIVERS_PCI_H */
