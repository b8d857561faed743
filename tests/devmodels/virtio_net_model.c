/* Simulated virtio-net PCI function (see virtio_net_model.h). Offsets come from virtio 1.2: 4.1.4 (struct
 * virtio_pci_cap and the cfg_type values), 4.1.4.3 (struct virtio_pci_common_cfg), 4.1.4.4 (notify capability),
 * 2.1 (status bits), 3.1.1 (initialization order), 2.7 (split virtqueue layout), 5.1.4 / 5.1.6 (net config, header). */
#define _GNU_SOURCE
#include "virtio_net_model.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mmio_trap.h"
#include "violation_log.h"

#define BAR_SIZE 0x4000u
#define COMMON_AT 0x0000u
#define ISR_AT 0x1000u
#define DEVICE_AT 0x2000u
#define NOTIFY_AT 0x3000u
#define NOTIFY_MULT 4u
#define BAR_INDEX 4
#define NQUEUES 2
#define TX_SLOTS 64
#define FRAME_MAX 2048
#define HDR 12u

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 64, S_FAILED = 128 };
#define F_VERSION_1 (1ull << 32)

struct mqueue {
    uint16_t size;
    uint16_t enabled;
    uint64_t desc, driver, device;
    uint16_t last_avail;
    uint16_t used_idx;
};

struct vnet_model {
    struct vnet_model_config cfg;
    uint8_t config[4096];
    uint8_t *bar;
    uint32_t bar_lo, bar_hi;           /* BAR4/5 register contents (sizing writes land here) */
    uint8_t status;
    uint32_t dev_sel, drv_sel;
    uint64_t driver_features;
    bool features_written;
    uint16_t queue_sel;
    struct mqueue q[NQUEUES];
    uint8_t tx[TX_SLOTS][FRAME_MAX];
    size_t tx_len[TX_SLOTS];
    unsigned tx_head, tx_count;
    struct violation_log violations;
};

static void violation(struct vnet_model *m, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    violation_log_addv(&m->violations, fmt, ap);
    va_end(ap);
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static uint16_t get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* --- configuration space ------------------------------------------------------------------------------------ */

/* struct virtio_pci_cap (4.1.4): vndr 0x09, next, len, cfg_type, bar, id, pad[2], offset, length. */
static void add_cap(struct vnet_model *m, uint8_t at, uint8_t next, uint8_t len, uint8_t type, uint32_t offset,
                    uint32_t length)
{
    uint8_t *c = m->config + at;
    c[0] = 0x09; c[1] = next; c[2] = len; c[3] = type; c[4] = BAR_INDEX;
    put32(c + 8, offset);
    put32(c + 12, length);
}

static void build_config(struct vnet_model *m)
{
    uint8_t *c = m->config;
    put16(c + 0, 0x1AF4);
    put16(c + 2, m->cfg.device_id);
    put16(c + 6, 1u << 4);             /* Status: capabilities list */
    c[8] = 1;                          /* revision 1 (4.1.2.1: modern devices have revision >= 1) */
    c[0x0B] = 0x02;                    /* class: network controller, Ethernet */
    put16(c + 0x2C, 0x1AF4);
    put16(c + 0x2E, 0x0001);
    c[0x34] = 0x40;
    /* An MSI-X capability first (ID 0x11) so the driver must walk past a non-vendor entry. */
    c[0x40] = 0x11; c[0x41] = 0x4C;
    static const uint8_t types[4] = {1, 2, 3, 4};
    static const uint8_t at[4] = {0x4C, 0x5C, 0x70, 0x80};
    static const uint32_t offs[4] = {COMMON_AT, NOTIFY_AT, ISR_AT, DEVICE_AT};
    static const uint32_t lens[4] = {0x40, 0x1000, 4, 0x10};
    uint8_t prev = 0x40;
    for (int i = 0; i < 4; i++) {
        if (types[i] == m->cfg.omit_cfg_type)
            continue;
        m->config[prev + 1] = at[i];
        add_cap(m, at[i], 0, types[i] == 2 ? 20 : 16, types[i], offs[i], lens[i]);
        if (types[i] == 2)
            put32(m->config + at[i] + 16, NOTIFY_MULT);   /* notify_off_multiplier */
        prev = at[i];
    }
    m->config[prev + 1] = 0;
    m->bar_lo = (uint32_t)(uintptr_t)m->bar | 0xC;  /* 64-bit prefetchable memory BAR */
    m->bar_hi = (uint32_t)((uintptr_t)m->bar >> 32);
}

static bool ours(uint8_t bus, uint8_t dev, uint8_t fn)
{
    return bus == VNET_MODEL_BUS && dev == VNET_MODEL_DEV && fn == 0;
}

uint32_t vnet_model_cfg_read32(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off)
{
    struct vnet_model *m = ctx;
    if (!ours(bus, dev, fn) || off >= 4096)
        return 0xFFFFFFFFu;
    if (off == 0x10 + 4 * BAR_INDEX)
        return m->bar_lo;
    if (off == 0x14 + 4 * BAR_INDEX)
        return m->bar_hi;
    return get32(m->config + (off & ~3u));
}

void vnet_model_cfg_write32(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t value)
{
    struct vnet_model *m = ctx;
    if (!ours(bus, dev, fn))
        return;
    if (off == 0x10 + 4 * BAR_INDEX)                  /* PCI 3.0 6.2.5.1 sizing: low bits read-only */
        m->bar_lo = (value & ~(BAR_SIZE - 1)) | 0xC;
    else if (off == 0x14 + 4 * BAR_INDEX)
        m->bar_hi = value;
    else if (off == 0x04)
        put16(m->config + 4, (uint16_t)value);
}

/* --- virtqueues (2.7) -------------------------------------------------------------------------------------- */

static uint16_t avail_idx(struct mqueue *q) { return __atomic_load_n((uint16_t *)(uintptr_t)(q->driver + 2), __ATOMIC_ACQUIRE); }
static uint16_t avail_ring(struct mqueue *q, uint16_t i) { return get16((uint8_t *)(uintptr_t)(q->driver + 4 + 2u * (i % q->size))); }

static void push_used(struct mqueue *q, uint16_t id, uint32_t len)
{
    uint8_t *used = (uint8_t *)(uintptr_t)q->device;
    put32(used + 4 + 8u * (q->used_idx % q->size), id);
    put32(used + 8 + 8u * (q->used_idx % q->size), len);
    q->used_idx++;
    __atomic_store_n((uint16_t *)(used + 2), q->used_idx, __ATOMIC_RELEASE);
}

static uint8_t *desc_at(struct mqueue *q, uint16_t id) { return (uint8_t *)(uintptr_t)(q->desc + 16u * id); }

static void transmit_pending(struct vnet_model *m)
{
    struct mqueue *q = &m->q[1];
    while (q->last_avail != avail_idx(q)) {
        uint16_t head = avail_ring(q, q->last_avail++);
        uint8_t frame[FRAME_MAX + HDR];
        size_t total = 0;
        uint16_t id = head;
        for (int hops = 0; hops < q->size; hops++) {
            if (id >= q->size) {
                violation(m, "tx descriptor id %u >= queue size %u", id, q->size);
                return;
            }
            uint8_t *d = desc_at(q, id);
            uint32_t len = get32(d + 8);
            uint16_t flags = get16(d + 12);
            if (flags & 2)
                violation(m, "tx descriptor %u is device-writable", id);
            if (total + len > sizeof frame) {
                violation(m, "tx chain longer than %u bytes", (unsigned)sizeof frame);
                return;
            }
            memcpy(frame + total, (void *)(uintptr_t)get64(d), len);
            total += len;
            if (!(flags & 1))
                break;
            id = get16(d + 14);
        }
        push_used(q, head, 0);
        if (total < HDR) {
            violation(m, "tx buffer of %zu bytes has no virtio_net_hdr", total);
            continue;
        }
        for (unsigned i = 0; i < HDR; i++)
            if (frame[i])
                violation(m, "tx virtio_net_hdr byte %u is 0x%02x (no offloads were negotiated)", i, frame[i]);
        if (m->tx_count == TX_SLOTS) {
            violation(m, "test did not collect transmitted frames");
            continue;
        }
        unsigned slot = (m->tx_head + m->tx_count++) % TX_SLOTS;
        m->tx_len[slot] = total - HDR;
        memcpy(m->tx[slot], frame + HDR, total - HDR);
    }
}

/* --- BAR registers (4.1.4.3) -------------------------------------------------------------------------------- */

static void refresh(void *ctx, uint32_t off, bool is_write)
{
    (void)off; (void)is_write;
    struct vnet_model *m = ctx;
    uint8_t *cc = m->bar + COMMON_AT;
    put32(cc + 0x00, m->dev_sel);
    put32(cc + 0x04, m->dev_sel < 2 ? (uint32_t)(m->cfg.features >> (32 * m->dev_sel)) : 0);
    put32(cc + 0x08, m->drv_sel);
    put32(cc + 0x0C, m->drv_sel < 2 ? (uint32_t)(m->driver_features >> (32 * m->drv_sel)) : 0);
    put16(cc + 0x12, NQUEUES);
    cc[0x14] = m->status;
    put16(cc + 0x16, m->queue_sel);
    struct mqueue *q = m->queue_sel < NQUEUES ? &m->q[m->queue_sel] : NULL;
    put16(cc + 0x18, q ? q->size : 0);
    put16(cc + 0x1C, q ? q->enabled : 0);
    put16(cc + 0x1E, q ? m->queue_sel : 0);           /* queue_notify_off = queue index */
    put64(cc + 0x20, q ? q->desc : 0);
    put64(cc + 0x28, q ? q->driver : 0);
    put64(cc + 0x30, q ? q->device : 0);
    memcpy(m->bar + DEVICE_AT, m->cfg.mac, 6);
    put16(m->bar + DEVICE_AT + 6, m->cfg.link_up ? 1 : 0);
    put16(m->bar + DEVICE_AT + 8, 1);
}

static void reset(struct vnet_model *m)
{
    m->status = 0;
    m->driver_features = 0;
    m->features_written = false;
    m->dev_sel = m->drv_sel = 0;
    m->queue_sel = 0;
    for (int i = 0; i < NQUEUES; i++)
        m->q[i] = (struct mqueue){.size = m->cfg.queue_max};
}

static void write_status(struct vnet_model *m, uint8_t v)
{
    uint8_t old = m->status;
    if (v == 0) {
        reset(m);
        return;
    }
    if ((old & ~v) & ~S_FAILED)
        violation(m, "status 0x%02x clears bits of 0x%02x without a reset", v, old);
    uint8_t added = v & ~old;
    if ((added & S_DRIVER) && !(v & S_ACK))
        violation(m, "DRIVER set before ACKNOWLEDGE");
    if (added & S_FEATURES_OK) {
        if (!(v & S_DRIVER))
            violation(m, "FEATURES_OK set before DRIVER");
        if (!m->features_written)
            violation(m, "FEATURES_OK set before the driver wrote its features");
        if (!(m->driver_features & F_VERSION_1))
            violation(m, "FEATURES_OK without VIRTIO_F_VERSION_1 accepted");
        if (m->driver_features & ~m->cfg.features)
            violation(m, "driver accepted features 0x%llx that were not offered",
                      (unsigned long long)(m->driver_features & ~m->cfg.features));
        if (m->cfg.refuse_features_ok)
            v &= (uint8_t)~S_FEATURES_OK;
    }
    if ((added & S_DRIVER_OK) && !(v & S_FEATURES_OK))
        violation(m, "DRIVER_OK without FEATURES_OK");
    if ((added & S_DRIVER_OK) && !(m->q[0].enabled && m->q[1].enabled))
        violation(m, "DRIVER_OK before both queues were enabled");
    m->status = v;
}

static void write_queue_reg(struct vnet_model *m, uint32_t off)
{
    uint8_t *cc = m->bar + COMMON_AT;
    if (m->queue_sel >= NQUEUES) {
        violation(m, "queue register 0x%x written with queue_select %u (no such queue)", off, m->queue_sel);
        return;
    }
    struct mqueue *q = &m->q[m->queue_sel];
    if (!(m->status & S_FEATURES_OK) || (m->status & S_DRIVER_OK))
        violation(m, "queue %u configured outside FEATURES_OK..DRIVER_OK (status 0x%02x)", m->queue_sel, m->status);
    if (q->enabled && off != 0x1C)
        violation(m, "queue %u register 0x%x written while enabled", m->queue_sel, off);
    if (off == 0x18) {
        uint16_t size = get16(cc + 0x18);
        if (size == 0 || size > m->cfg.queue_max || (size & (size - 1)))
            violation(m, "queue_size %u: not a power of two up to %u", size, m->cfg.queue_max);
        q->size = size;
    } else if (off >= 0x20 && off < 0x38) {
        q->desc = get64(cc + 0x20);
        q->driver = get64(cc + 0x28);
        q->device = get64(cc + 0x30);
    } else if (off == 0x1C && get16(cc + 0x1C) == 1) {
        if (!q->desc || (q->desc & 15) || !q->driver || (q->driver & 1) || !q->device || (q->device & 3))
            violation(m, "queue %u enabled with bad ring addresses desc=0x%llx driver=0x%llx device=0x%llx",
                      m->queue_sel, (unsigned long long)q->desc, (unsigned long long)q->driver,
                      (unsigned long long)q->device);
        q->enabled = 1;
    }
}

static void common_write(struct vnet_model *m, uint32_t off)
{
    uint8_t *cc = m->bar + COMMON_AT;
    switch (off) {
    case 0x00: m->dev_sel = get32(cc); break;
    case 0x08: m->drv_sel = get32(cc + 0x08); break;
    case 0x0C:
        if (!(m->status & S_DRIVER) || (m->status & S_FEATURES_OK))
            violation(m, "driver_feature written with status 0x%02x", m->status);
        if (m->drv_sel < 2) {
            uint64_t half = (uint64_t)get32(cc + 0x0C) << (32 * m->drv_sel);
            uint64_t mask = 0xFFFFFFFFull << (32 * m->drv_sel);
            m->driver_features = (m->driver_features & ~mask) | half;
            m->features_written = true;
        }
        break;
    case 0x14: write_status(m, cc[0x14]); break;
    case 0x16: m->queue_sel = get16(cc + 0x16); break;
    case 0x04: case 0x12: case 0x1E:
        violation(m, "write to read-only common config register 0x%x", off);
        break;
    default:
        if (off >= 0x18 && off < 0x38)
            write_queue_reg(m, off);
    }
}

static void bar_written(void *ctx, uint32_t off, bool is_write)
{
    struct vnet_model *m = ctx;
    if (!is_write)
        return;
    if (off < COMMON_AT + 0x40) {
        common_write(m, off);
    } else if (off >= NOTIFY_AT && off < NOTIFY_AT + 0x1000) {
        uint16_t queue = get16(m->bar + off);
        if ((off - NOTIFY_AT) != NOTIFY_MULT * queue)
            violation(m, "queue %u notified at notify offset 0x%x", queue, off - NOTIFY_AT);
        if (!(m->status & S_DRIVER_OK))
            violation(m, "queue %u notified before DRIVER_OK", queue);
        else if (queue == 1)
            transmit_pending(m);
    } else if (off >= DEVICE_AT && off < DEVICE_AT + 0x10) {
        violation(m, "write to device config 0x%x", off - DEVICE_AT);
    }
}

/* --- public ----------------------------------------------------------------------------------------------- */

struct vnet_model *vnet_model_create(const struct vnet_model_config *cfg)
{
    struct vnet_model *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->cfg = *cfg;
    m->bar = mmio_trap_alloc(BAR_SIZE);
    if (!m->bar) {
        free(m);
        return NULL;
    }
    reset(m);
    build_config(m);
    mmio_trap_register(m->bar, BAR_SIZE, refresh, bar_written, m);
    return m;
}

void vnet_model_destroy(struct vnet_model *m)
{
    mmio_trap_unregister(m->bar);
    mmio_trap_free(m->bar, BAR_SIZE);
    free(m);
}

int vnet_model_inject(struct vnet_model *m, const uint8_t *frame, size_t size)
{
    struct mqueue *q = &m->q[0];
    if (!(m->status & S_DRIVER_OK) || !q->enabled || q->last_avail == avail_idx(q))
        return -1;
    uint16_t id = avail_ring(q, q->last_avail++);
    if (id >= q->size) {
        violation(m, "rx descriptor id %u >= queue size %u", id, q->size);
        return -1;
    }
    uint8_t *d = desc_at(q, id);
    if (!(get16(d + 12) & 2))
        violation(m, "rx descriptor %u is not device-writable", id);
    if (get32(d + 8) < HDR + size) {
        violation(m, "rx descriptor %u holds %u bytes, frame needs %zu", id, get32(d + 8), HDR + size);
        return -1;
    }
    uint8_t *buf = (uint8_t *)(uintptr_t)get64(d);
    memset(buf, 0, HDR);
    put16(buf + 10, 1);                /* num_buffers = 1 (5.1.6.4) */
    memcpy(buf + HDR, frame, size);
    push_used(q, id, (uint32_t)(HDR + size));
    return 0;
}

size_t vnet_model_take_tx(struct vnet_model *m, uint8_t *buf, size_t cap)
{
    if (!m->tx_count)
        return 0;
    size_t n = m->tx_len[m->tx_head];
    if (n > cap)
        n = cap;
    memcpy(buf, m->tx[m->tx_head], n);
    m->tx_head = (m->tx_head + 1) % TX_SLOTS;
    m->tx_count--;
    return n;
}

void vnet_model_set_link(struct vnet_model *m, uint32_t up) { m->cfg.link_up = up; }
uint8_t vnet_model_status(struct vnet_model *m) { return m->status; }
uint64_t vnet_model_driver_features(struct vnet_model *m) { return m->driver_features; }

int vnet_model_violations(struct vnet_model *m, char *buf, size_t cap)
{
    return violation_log_copy(&m->violations, buf, cap);
}
