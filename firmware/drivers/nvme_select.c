/* Choosing the NVMe controller named by the board file (storage.select) among the enumerated PCI functions. */
#include "drivers/drvlog.h"
#include "drivers/nvme.h"
#include "drivers/pci.h"
#include "lib/cstr.h"

#define NVME_CLASS 0x01u    /* mass storage (PCI Code and ID Assignment 1.11, section 1.2) */
#define NVME_SUBCLASS 0x08u /* non-volatile memory controller */
#define NVME_PROG_IF 0x02u  /* NVM Express I/O controller */

static bool starts_with(const char *s, const char *prefix)
{
    while (*prefix) {
        if (*s++ != *prefix++) {
            return false;
        }
    }
    return true;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* "BB:DD.F" -> bus, dev, fn; false when malformed. */
static bool parse_pci_address(const char *s, uint8_t *bus, uint8_t *dev, uint8_t *fn)
{
    unsigned v[3] = {0, 0, 0};
    const char seps[3] = {':', '.', '\0'};
    for (int part = 0; part < 3; part++) {
        int digits = 0;
        for (; hex_digit(*s) >= 0; s++, digits++) {
            v[part] = v[part] * 16u + (unsigned)hex_digit(*s);
        }
        if (!digits || digits > 2 || *s != seps[part]) {
            return false;
        }
        if (part < 2) {
            s++;
        }
    }
    if (v[1] > 31u || v[2] > 7u) {
        return false;
    }
    *bus = (uint8_t)v[0];
    *dev = (uint8_t)v[1];
    *fn = (uint8_t)v[2];
    return true;
}

static int open_device(const struct pci_device *d, const struct nvme_config *cfg, struct nvme_ctrl **out)
{
    const struct pci_bar *bar0 = &d->bars[0];
    drv_logf("dte: nvme controller=%02x:%02x.%x id=%04x:%04x bar0=0x%llx bar0_size=0x%llx", d->bus, d->dev, d->fn,
             d->vendor_id, d->device_id, (unsigned long long)bar0->base, (unsigned long long)bar0->size);
    if (bar0->is_io || bar0->base == 0 || bar0->size < 0x1000u) {
        drv_logf("dte: nvme error=no_device text=\"BAR0 is not an assigned memory BAR\" controller=%02x:%02x.%x",
                 d->bus, d->dev, d->fn);
        return NVME_ERR_NO_DEVICE;
    }
    pci_enable(d);
    return nvme_open((volatile void *)(uintptr_t)bar0->base, cfg, out);
}

int nvme_open_selected(const char *select, const struct nvme_config *cfg, struct nvme_ctrl **out)
{
    uint8_t bus = 0, dev = 0, fn = 0;
    bool by_pci = select && starts_with(select, "pci:");
    bool by_serial = select && starts_with(select, "serial:");
    *out = 0;
    if (by_pci && !parse_pci_address(select + 4, &bus, &dev, &fn)) {
        drv_logf("dte: nvme error=bad_argument text=\"storage.select wants pci:BB:DD.F\" select=%s", select);
        return NVME_ERR_ARGUMENT;
    }
    if (select && *select && !by_pci && !by_serial && !dte_cstr_eq(select, "first")) {
        drv_logf("dte: nvme error=bad_argument text=\"storage.select is first, pci:BB:DD.F or serial:SN\" "
                 "select=%s",
                 select);
        return NVME_ERR_ARGUMENT;
    }
    int rc = NVME_ERR_NO_DEVICE;
    const struct pci_device *d;
    for (int nth = 0; (d = pci_find_class(NVME_CLASS, NVME_SUBCLASS, NVME_PROG_IF, nth)) != 0; nth++) {
        if (by_pci && !(d->bus == bus && d->dev == dev && d->fn == fn)) {
            continue;
        }
        rc = open_device(d, cfg, out);
        if (rc != NVME_OK || !by_serial) {
            return rc;
        }
        if (dte_cstr_eq(nvme_get_info(*out)->serial, select + 7)) {
            return NVME_OK;
        }
        nvme_disable(*out);
        *out = 0;
        rc = NVME_ERR_NO_DEVICE;
    }
    drv_logf("dte: nvme error=no_device text=\"no NVMe controller (PCI class 01.08.02) matches\" select=%s "
             "pci_functions=%d",
             select && *select ? select : "first", pci_device_count());
    return rc;
}
