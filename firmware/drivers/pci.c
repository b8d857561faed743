/* PCI configuration access, bus walk and BAR sizing (see pci.h for the specs cited). */
#include "drivers/pci.h"

#include "drivers/drvlog.h"
#include "drivers/mmio.h"

enum pci_method { PCI_NONE, PCI_ECAM, PCI_PORTS, PCI_CUSTOM };

static struct {
    enum pci_method method;
    uint64_t ecam_base;
    uint8_t bus_start, bus_end;
    pci_read32_fn read32;
    pci_write32_fn write32;
    void *ctx;
    int count;
    struct pci_device devices[PCI_MAX_DEVICES];
    uint8_t visited[256 / 8];
} pci;

static void set_method(enum pci_method m, uint8_t bus_start, uint8_t bus_end)
{
    pci.method = m;
    pci.bus_start = bus_start;
    pci.bus_end = bus_end;
    pci.count = 0;
}

void pci_init_ecam(uint64_t base, uint8_t bus_start, uint8_t bus_end)
{
    pci.ecam_base = base;
    set_method(PCI_ECAM, bus_start, bus_end);
}

void pci_init_ports(void)
{
    set_method(PCI_PORTS, 0, 255);
}

void pci_init_custom(pci_read32_fn read32, pci_write32_fn write32, void *ctx, uint8_t bus_start, uint8_t bus_end)
{
    pci.read32 = read32;
    pci.write32 = write32;
    pci.ctx = ctx;
    set_method(PCI_CUSTOM, bus_start, bus_end);
}

static volatile void *ecam_function(uint8_t bus, uint8_t dev, uint8_t fn)
{
    uint64_t addr = pci.ecam_base + ((uint64_t)bus << 20) + ((uint64_t)(dev & 31u) << 15) + ((uint64_t)(fn & 7u) << 12);
    return (volatile void *)(uintptr_t)addr;
}

static uint32_t port_address(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    /* Bit 31 enable, 23:16 bus, 15:11 device, 10:8 function, 7:2 dword register. */
    return 0x80000000u | ((uint32_t)bus << 16) | ((uint32_t)(dev & 31u) << 11) | ((uint32_t)(fn & 7u) << 8) |
           (off & 0xFCu);
}

uint32_t pci_config_read32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    if (bus < pci.bus_start || bus > pci.bus_end) {
        return 0xFFFFFFFFu;
    }
    switch (pci.method) {
    case PCI_ECAM: return mmio_read32(ecam_function(bus, dev, fn), off & 0xFFCu);
    case PCI_PORTS:
        if (off >= 256u) {
            return 0xFFFFFFFFu;
        }
        port_out32(0xCF8, port_address(bus, dev, fn, off));
        return port_in32(0xCFC);
    case PCI_CUSTOM: return pci.read32(pci.ctx, bus, dev, fn, off & 0xFFCu);
    default: return 0xFFFFFFFFu;
    }
}

void pci_config_write32(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t value)
{
    if (bus < pci.bus_start || bus > pci.bus_end) {
        return;
    }
    switch (pci.method) {
    case PCI_ECAM: mmio_write32(ecam_function(bus, dev, fn), off & 0xFFCu, value); break;
    case PCI_PORTS:
        if (off < 256u) {
            port_out32(0xCF8, port_address(bus, dev, fn, off));
            port_out32(0xCFC, value);
        }
        break;
    case PCI_CUSTOM: pci.write32(pci.ctx, bus, dev, fn, off & 0xFFCu, value); break;
    default: break;
    }
}

static uint8_t config_byte(uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    return (uint8_t)(pci_config_read32(bus, dev, fn, off & ~3u) >> (8u * (off & 3u)));
}

/* BAR sizing (PCI 3.0 section 6.2.5.1): with decode off, write all ones, read back the writable bits, restore. */
static int size_bar(struct pci_device *d, int index)
{
    uint16_t off = (uint16_t)(PCI_CFG_BAR0 + 4 * index);
    uint32_t orig = pci_config_read32(d->bus, d->dev, d->fn, off);
    struct pci_bar *bar = &d->bars[index];
    pci_config_write32(d->bus, d->dev, d->fn, off, 0xFFFFFFFFu);
    uint32_t mask = pci_config_read32(d->bus, d->dev, d->fn, off);
    pci_config_write32(d->bus, d->dev, d->fn, off, orig);

    if (orig & 1u) { /* I/O space: bits 31:2 address; the upper 16 bits may be hardwired to 0 */
        uint32_t m = mask & ~3u;
        bar->is_io = true;
        bar->base = orig & ~3u;
        bar->size = m ? (uint32_t)(~(m | 0xFFFF0000u) + 1u) : 0;
        return 1;
    }
    bar->prefetchable = (orig >> 3) & 1u;
    bar->base = orig & ~0xFull;
    uint64_t m = mask & ~0xFull;
    if (((orig >> 1) & 3u) == 2u && index < 5) { /* type 10b: 64-bit, the next BAR holds bits 63:32 */
        uint16_t off_hi = (uint16_t)(off + 4);
        uint32_t orig_hi = pci_config_read32(d->bus, d->dev, d->fn, off_hi);
        pci_config_write32(d->bus, d->dev, d->fn, off_hi, 0xFFFFFFFFu);
        uint32_t mask_hi = pci_config_read32(d->bus, d->dev, d->fn, off_hi);
        pci_config_write32(d->bus, d->dev, d->fn, off_hi, orig_hi);
        bar->is_64 = true;
        bar->base |= (uint64_t)orig_hi << 32;
        m |= (uint64_t)mask_hi << 32;
        bar->size = m ? ~m + 1u : 0;
        return 2;
    }
    bar->size = m ? (uint32_t)(~(uint32_t)m + 1u) : 0;
    return 1;
}

static void size_bars(struct pci_device *d)
{
    int n = d->header_type == 0 ? 6 : (d->header_type == 1 ? 2 : 0);
    uint32_t cmd = pci_config_read32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND);
    /* Turn decoding off while BARs hold all-ones, so no stray window appears on the bus. */
    pci_config_write32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND, cmd & 0xFFFFu & ~(PCI_COMMAND_IO | PCI_COMMAND_MEMORY));
    for (int i = 0; i < n;) {
        i += size_bar(d, i);
    }
    pci_config_write32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND, cmd & 0xFFFFu);
}

static void scan_bus(uint8_t bus, int depth);

static void add_function(uint8_t bus, uint8_t dev, uint8_t fn, uint32_t id, int depth)
{
    if (pci.count >= PCI_MAX_DEVICES) {
        return;
    }
    struct pci_device *d = &pci.devices[pci.count++];
    uint32_t class_reg = pci_config_read32(bus, dev, fn, PCI_CFG_REVISION);
    *d = (struct pci_device){0};
    d->bus = bus;
    d->dev = dev;
    d->fn = fn;
    d->vendor_id = (uint16_t)id;
    d->device_id = (uint16_t)(id >> 16);
    d->revision = (uint8_t)class_reg;
    d->prog_if = (uint8_t)(class_reg >> 8);
    d->subclass = (uint8_t)(class_reg >> 16);
    d->class_code = (uint8_t)(class_reg >> 24);
    d->header_type = config_byte(bus, dev, fn, PCI_CFG_HEADER_TYPE) & 0x7Fu;
    size_bars(d);
    if (d->header_type == 1) {
        d->secondary_bus = config_byte(bus, dev, fn, PCI_CFG_SECONDARY_BUS);
        d->subordinate_bus = config_byte(bus, dev, fn, PCI_CFG_SUBORDINATE);
        /* Follow the bridge to the bus the firmware gave it (never backwards: guards against loops). */
        if (d->secondary_bus > bus && depth < 32) {
            scan_bus(d->secondary_bus, depth + 1);
        }
    }
}

static void scan_bus(uint8_t bus, int depth)
{
    if (pci.visited[bus / 8] & (1u << (bus % 8))) {
        return;
    }
    pci.visited[bus / 8] |= (uint8_t)(1u << (bus % 8));
    for (uint8_t dev = 0; dev < 32; dev++) {
        uint32_t id = pci_config_read32(bus, dev, 0, PCI_CFG_VENDOR_ID);
        if ((id & 0xFFFFu) == 0xFFFFu || (id & 0xFFFFu) == 0) {
            continue;
        }
        uint8_t fns = (config_byte(bus, dev, 0, PCI_CFG_HEADER_TYPE) & 0x80u) ? 8 : 1;
        for (uint8_t fn = 0; fn < fns; fn++) {
            uint32_t fid = fn ? pci_config_read32(bus, dev, fn, PCI_CFG_VENDOR_ID) : id;
            if ((fid & 0xFFFFu) != 0xFFFFu && (fid & 0xFFFFu) != 0) {
                add_function(bus, dev, fn, fid, depth);
            }
        }
    }
}

int pci_enumerate(void)
{
    pci.count = 0;
    for (unsigned i = 0; i < sizeof pci.visited; i++) {
        pci.visited[i] = 0;
    }
    if (pci.method != PCI_NONE) {
        scan_bus(pci.bus_start, 0);
    }
    return pci.count;
}

int pci_device_count(void)
{
    return pci.count;
}

const struct pci_device *pci_device_at(int index)
{
    return index >= 0 && index < pci.count ? &pci.devices[index] : 0;
}

const struct pci_device *pci_find_class(uint8_t class_code, uint8_t subclass, uint8_t prog_if, int nth)
{
    for (int i = 0; i < pci.count; i++) {
        const struct pci_device *d = &pci.devices[i];
        if (d->class_code == class_code && d->subclass == subclass && (prog_if == 0xFF || d->prog_if == prog_if) &&
            nth-- == 0) {
            return d;
        }
    }
    return 0;
}

const struct pci_device *pci_find_id(uint16_t vendor_id, uint16_t device_id, int nth)
{
    for (int i = 0; i < pci.count; i++) {
        const struct pci_device *d = &pci.devices[i];
        if (d->vendor_id == vendor_id && d->device_id == device_id && nth-- == 0) {
            return d;
        }
    }
    return 0;
}

const struct pci_device *pci_find_address(uint8_t bus, uint8_t dev, uint8_t fn)
{
    for (int i = 0; i < pci.count; i++) {
        const struct pci_device *d = &pci.devices[i];
        if (d->bus == bus && d->dev == dev && d->fn == fn) {
            return d;
        }
    }
    return 0;
}

uint8_t pci_find_capability(const struct pci_device *d, uint8_t cap_id, int nth)
{
    if (!(pci_config_read32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND) >> 16 & PCI_STATUS_CAP_LIST)) {
        return 0;
    }
    uint8_t off = config_byte(d->bus, d->dev, d->fn, PCI_CFG_CAP_POINTER) & 0xFCu;
    for (int guard = 0; off >= 0x40 && guard < 48; guard++) {
        uint32_t head = pci_config_read32(d->bus, d->dev, d->fn, off);
        if ((head & 0xFFu) == cap_id && nth-- == 0) {
            return off;
        }
        off = (uint8_t)(head >> 8) & 0xFCu;
    }
    return 0;
}

void pci_enable(const struct pci_device *d)
{
    uint32_t cmd = pci_config_read32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND) & 0xFFFFu;
    pci_config_write32(d->bus, d->dev, d->fn, PCI_CFG_COMMAND, cmd | PCI_COMMAND_MEMORY | PCI_COMMAND_BUS_MASTER);
}

void pci_log_devices(void)
{
    for (int i = 0; i < pci.count; i++) {
        const struct pci_device *d = &pci.devices[i];
        drv_logf("dte: pci dev=%02x:%02x.%x id=%04x:%04x class=%02x.%02x.%02x", d->bus, d->dev, d->fn, d->vendor_id,
                 d->device_id, d->class_code, d->subclass, d->prog_if);
    }
}
