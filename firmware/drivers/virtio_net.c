/* virtio-net driver (see virtio_net.h for the spec sections). Split virtqueues with one fixed buffer per descriptor:
 * RX (queue 0) keeps every descriptor posted, device-writable; TX (queue 1) takes descriptors from a free stack and
 * returns them when the device puts them in the used ring. */
#include "drivers/virtio_net.h"

#include "drivers/drvlog.h"
#include "drivers/mmio.h"

#include "runtime/platform.h"

/* virtio 1.2 section 4.1.4: struct virtio_pci_cap (cfg_type values in 4.1.4.x). */
#define CAP_CFG_TYPE 3
#define CAP_BAR 4
#define CAP_OFFSET 8
#define CAP_LENGTH 12
#define CAP_NOTIFY_MULTIPLIER 16          /* struct virtio_pci_notify_cap */
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR 3
#define CFG_DEVICE 4

/* Section 4.1.4.3: struct virtio_pci_common_cfg. */
#define CC_DEVICE_FEATURE_SELECT 0x00
#define CC_DEVICE_FEATURE 0x04
#define CC_DRIVER_FEATURE_SELECT 0x08
#define CC_DRIVER_FEATURE 0x0C
#define CC_NUM_QUEUES 0x12
#define CC_DEVICE_STATUS 0x14
#define CC_QUEUE_SELECT 0x16
#define CC_QUEUE_SIZE 0x18
#define CC_QUEUE_ENABLE 0x1C
#define CC_QUEUE_NOTIFY_OFF 0x1E
#define CC_QUEUE_DESC 0x20
#define CC_QUEUE_DRIVER 0x28
#define CC_QUEUE_DEVICE 0x30
#define COMMON_CFG_MIN_LENGTH 0x38

/* Section 2.1: device status bits. */
#define STATUS_ACKNOWLEDGE 1u
#define STATUS_DRIVER 2u
#define STATUS_DRIVER_OK 4u
#define STATUS_FEATURES_OK 8u
#define STATUS_NEEDS_RESET 64u
#define STATUS_FAILED 128u

/* Section 6 (reserved feature bits) and 5.1.3 (network device feature bits). */
#define F_NET_MAC (1ull << 5)
#define F_NET_STATUS (1ull << 16)
#define F_VERSION_1 (1ull << 32)
#define WANTED_FEATURES (F_VERSION_1 | F_NET_MAC | F_NET_STATUS)

/* Section 5.1.4: struct virtio_net_config. */
#define NETCFG_MAC 0
#define NETCFG_STATUS 6
#define NET_S_LINK_UP 1u

#define NET_HDR_SIZE 12u                  /* struct virtio_net_hdr with num_buffers (5.1.6, VERSION_1) */
#define BUF_SIZE 2048u                    /* header + 1514-byte frame, with room */
#define RX_QUEUE 0
#define TX_QUEUE 1
#define RESET_TIMEOUT_NS 1000000000ull

/* Section 2.7.5 / 2.7.6 / 2.7.8: descriptor table, available ring, used ring. */
#define DESC_F_WRITE 2u
struct vq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
struct vq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq {
    uint16_t size;
    uint16_t avail_idx;                   /* next avail->idx to publish */
    uint16_t last_used;                   /* used->idx already consumed */
    struct vq_desc *desc;
    volatile uint16_t *avail;             /* flags, idx, ring[size], used_event */
    volatile uint16_t *used;              /* flags, idx, then struct vq_used_elem ring[size] */
    volatile uint8_t *notify;
    uint8_t *buffers;                     /* size x BUF_SIZE */
    uint16_t free_count;                  /* TX: descriptors not in flight */
    uint16_t free_ids[VIRTIO_NET_QUEUE_MAX];
};

struct virtio_net {
    const struct pci_device *pci;
    volatile uint8_t *common, *notify_base, *isr, *device;
    uint32_t notify_multiplier;
    uint64_t features;
    bool ready;
    uint8_t mac[DTE_ETH_ADDR_SIZE];
    struct virtq rx, tx;
};

const char *virtio_net_error_name(int err)
{
    switch (err) {
    case VIRTIO_NET_OK: return "ok";
    case VIRTIO_NET_ERR_NO_DEVICE: return "no_device";
    case VIRTIO_NET_ERR_FEATURES: return "features";
    case VIRTIO_NET_ERR_QUEUE: return "queue";
    case VIRTIO_NET_ERR_NO_MEMORY: return "no_memory";
    case VIRTIO_NET_ERR_TIMEOUT: return "timeout";
    case VIRTIO_NET_ERR_STATE: return "state";
    case VIRTIO_NET_ERR_FULL: return "full";
    case VIRTIO_NET_ERR_TOO_LARGE: return "too_large";
    default: return "unknown";
    }
}

static int fail(struct virtio_net *vn, int err, const char *what)
{
    drv_logf("dte: virtio_net error=%s text=\"%s\" dev=%02x:%02x.%x", virtio_net_error_name(err), what, vn->pci->bus,
             vn->pci->dev, vn->pci->fn);
    return err;
}

/* --- capabilities (section 4.1.4) --------------------------------------------------------------------------- */

static uint32_t cap_read(const struct pci_device *d, uint8_t cap, uint8_t off)
{
    return pci_config_read32(d->bus, d->dev, d->fn, (uint16_t)(cap + off));
}

/* The first capability of each type wins (section 4.1.4: "the driver SHOULD use the first instance"). */
static volatile uint8_t *map_cap(const struct pci_device *d, uint8_t cap, uint32_t min_length)
{
    uint8_t bar = (uint8_t)cap_read(d, cap, CAP_BAR);
    uint32_t offset = cap_read(d, cap, CAP_OFFSET), length = cap_read(d, cap, CAP_LENGTH);
    if (bar > 5 || d->bars[bar].is_io || d->bars[bar].base == 0 || length < min_length ||
        (uint64_t)offset + length > d->bars[bar].size) {
        return 0;
    }
    return (volatile uint8_t *)(uintptr_t)(d->bars[bar].base + offset);
}

static bool read_capabilities(struct virtio_net *vn)
{
    const struct pci_device *d = vn->pci;
    for (int n = 0;; n++) {
        uint8_t cap = pci_find_capability(d, PCI_CAP_ID_VENDOR, n);
        if (!cap) {
            break;
        }
        uint8_t type = (uint8_t)(cap_read(d, cap, 0) >> (8 * CAP_CFG_TYPE));
        if (type == CFG_COMMON && !vn->common) {
            vn->common = map_cap(d, cap, COMMON_CFG_MIN_LENGTH);
        } else if (type == CFG_NOTIFY && !vn->notify_base) {
            vn->notify_base = map_cap(d, cap, 2);
            vn->notify_multiplier = cap_read(d, cap, CAP_NOTIFY_MULTIPLIER);
        } else if (type == CFG_ISR && !vn->isr) {
            vn->isr = map_cap(d, cap, 1);
        } else if (type == CFG_DEVICE && !vn->device) {
            vn->device = map_cap(d, cap, 8);
        }
    }
    return vn->common && vn->notify_base && vn->isr && vn->device;
}

struct virtio_net *virtio_net_probe(const struct pci_device *dev)
{
    if (!dev || dev->vendor_id != VIRTIO_PCI_VENDOR ||
        (dev->device_id != VIRTIO_PCI_ID_NET_MODERN && dev->device_id != VIRTIO_PCI_ID_NET_TRANSITION)) {
        return 0;
    }
    struct virtio_net *vn = dte_alloc(sizeof *vn, 64);
    if (!vn) {
        return 0;
    }
    vn->pci = dev;
    if (!read_capabilities(vn)) {
        fail(vn, VIRTIO_NET_ERR_NO_DEVICE, "no modern virtio capabilities (common/notify/isr/device)");
        return 0;
    }
    pci_enable(dev);
    return vn;
}

struct virtio_net *virtio_net_find(int nth)
{
    static const uint16_t ids[2] = {VIRTIO_PCI_ID_NET_MODERN, VIRTIO_PCI_ID_NET_TRANSITION};
    for (int i = 0; i < 2; i++) {
        for (int k = 0;; k++) {
            const struct pci_device *d = pci_find_id(VIRTIO_PCI_VENDOR, ids[i], k);
            if (!d) {
                break;
            }
            if (nth-- == 0) {
                return virtio_net_probe(d);
            }
        }
    }
    return 0;
}

/* --- status and features (sections 2.1, 2.2, 3.1.1) --------------------------------------------------------- */

static uint8_t get_status(struct virtio_net *vn)
{
    return mmio_read8(vn->common, CC_DEVICE_STATUS);
}

static void add_status(struct virtio_net *vn, uint8_t bits)
{
    mmio_write8(vn->common, CC_DEVICE_STATUS, (uint8_t)(get_status(vn) | bits));
}

/* Section 4.1.4.3.2: after writing 0 the driver waits until device_status reads back 0. */
static int reset_device(struct virtio_net *vn)
{
    mmio_write8(vn->common, CC_DEVICE_STATUS, 0);
    uint64_t deadline = dte_time_ns() + RESET_TIMEOUT_NS;
    while (get_status(vn) != 0) {
        if (dte_time_ns() > deadline) {
            return fail(vn, VIRTIO_NET_ERR_TIMEOUT, "device_status did not read 0 after reset");
        }
        cpu_relax();
    }
    return VIRTIO_NET_OK;
}

static uint64_t device_features(struct virtio_net *vn)
{
    mmio_write32(vn->common, CC_DEVICE_FEATURE_SELECT, 0);
    uint64_t lo = mmio_read32(vn->common, CC_DEVICE_FEATURE);
    mmio_write32(vn->common, CC_DEVICE_FEATURE_SELECT, 1);
    uint64_t hi = mmio_read32(vn->common, CC_DEVICE_FEATURE);
    return lo | hi << 32;
}

static int negotiate(struct virtio_net *vn)
{
    uint64_t offered = device_features(vn);
    if (!(offered & F_VERSION_1)) {
        return fail(vn, VIRTIO_NET_ERR_FEATURES, "device does not offer VIRTIO_F_VERSION_1");
    }
    vn->features = offered & WANTED_FEATURES;
    mmio_write32(vn->common, CC_DRIVER_FEATURE_SELECT, 0);
    mmio_write32(vn->common, CC_DRIVER_FEATURE, (uint32_t)vn->features);
    mmio_write32(vn->common, CC_DRIVER_FEATURE_SELECT, 1);
    mmio_write32(vn->common, CC_DRIVER_FEATURE, (uint32_t)(vn->features >> 32));
    add_status(vn, STATUS_FEATURES_OK);
    /* Section 3.1.1 step 6: re-read; a device that cannot work with these features leaves FEATURES_OK clear. */
    if (!(get_status(vn) & STATUS_FEATURES_OK)) {
        return fail(vn, VIRTIO_NET_ERR_FEATURES, "device did not accept the features (FEATURES_OK clear)");
    }
    return VIRTIO_NET_OK;
}

/* --- virtqueues (sections 2.7, 4.1.5.1.3) -------------------------------------------------------------------- */

static int setup_queue(struct virtio_net *vn, struct virtq *q, uint16_t index, bool device_writes)
{
    mmio_write16(vn->common, CC_QUEUE_SELECT, index);
    uint16_t max = mmio_read16(vn->common, CC_QUEUE_SIZE);
    if (max == 0) {
        return fail(vn, VIRTIO_NET_ERR_QUEUE, device_writes ? "receive queue 0 missing" : "transmit queue 1 missing");
    }
    uint16_t size = VIRTIO_NET_QUEUE_MAX;
    while (size > max) {
        size >>= 1;                       /* split rings: a power of two no larger than the device's maximum */
    }
    q->size = size;
    q->desc = dte_alloc(16u * size, 16);                          /* section 2.7: alignment 16 */
    q->avail = dte_alloc(6u + 2u * size, 2);                      /* alignment 2 */
    q->used = dte_alloc(6u + 8u * size, 4);                       /* alignment 4 */
    q->buffers = dte_alloc((size_t)BUF_SIZE * size, 64);
    if (!q->desc || !q->avail || !q->used || !q->buffers) {
        return fail(vn, VIRTIO_NET_ERR_NO_MEMORY, "virtqueue memory");
    }
    for (uint16_t i = 0; i < size; i++) {
        q->desc[i].addr = (uint64_t)(uintptr_t)(q->buffers + (size_t)BUF_SIZE * i);
        q->desc[i].len = BUF_SIZE;
        q->desc[i].flags = device_writes ? DESC_F_WRITE : 0;
        q->free_ids[i] = (uint16_t)(size - 1 - i);
    }
    q->free_count = device_writes ? 0 : size;
    uint16_t notify_off = mmio_read16(vn->common, CC_QUEUE_NOTIFY_OFF);
    q->notify = vn->notify_base + (uint32_t)notify_off * vn->notify_multiplier;
    mmio_write16(vn->common, CC_QUEUE_SIZE, size);
    mmio_write64(vn->common, CC_QUEUE_DESC, (uint64_t)(uintptr_t)q->desc);
    mmio_write64(vn->common, CC_QUEUE_DRIVER, (uint64_t)(uintptr_t)q->avail);
    mmio_write64(vn->common, CC_QUEUE_DEVICE, (uint64_t)(uintptr_t)q->used);
    mmio_write16(vn->common, CC_QUEUE_ENABLE, 1);
    return VIRTIO_NET_OK;
}

/* Section 2.7.13: put the descriptor in the ring, then (after a write barrier) publish the new idx. */
static void publish(struct virtq *q, uint16_t id)
{
    q->avail[2 + (q->avail_idx & (q->size - 1))] = id;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    q->avail_idx++;
    q->avail[1] = q->avail_idx;
}

/* Section 4.1.5.2: without VIRTIO_F_NOTIFICATION_DATA the driver writes the queue index. */
static void kick(struct virtq *q, uint16_t index)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    mmio_write16(q->notify, 0, index);
}

static bool next_used(struct virtq *q, struct vq_used_elem *out)
{
    uint16_t idx = q->used[1];
    if (idx == q->last_used) {
        return false;
    }
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    const volatile struct vq_used_elem *ring = (const volatile struct vq_used_elem *)(q->used + 2);
    out->id = ring[q->last_used & (q->size - 1)].id;
    out->len = ring[q->last_used & (q->size - 1)].len;
    q->last_used++;
    return true;
}

/* --- bring-up and data path ---------------------------------------------------------------------------------- */

int virtio_net_init(struct virtio_net *vn)
{
    vn->ready = false;
    int rc = reset_device(vn);
    if (rc) {
        return rc;
    }
    add_status(vn, STATUS_ACKNOWLEDGE);
    add_status(vn, STATUS_DRIVER);
    if ((rc = negotiate(vn)) || (rc = setup_queue(vn, &vn->rx, RX_QUEUE, true)) ||
        (rc = setup_queue(vn, &vn->tx, TX_QUEUE, false))) {
        add_status(vn, STATUS_FAILED);
        return rc;
    }
    for (uint8_t i = 0; i < DTE_ETH_ADDR_SIZE; i++) {
        vn->mac[i] = (vn->features & F_NET_MAC) ? mmio_read8(vn->device, NETCFG_MAC + i) : 0;
    }
    for (uint16_t i = 0; i < vn->rx.size; i++) {
        publish(&vn->rx, i);
    }
    add_status(vn, STATUS_DRIVER_OK);
    kick(&vn->rx, RX_QUEUE);
    vn->ready = true;
    drv_logf("dte: virtio_net ready mac=%02x:%02x:%02x:%02x:%02x:%02x features=0x%llx rx=%u tx=%u link=%u", vn->mac[0],
             vn->mac[1], vn->mac[2], vn->mac[3], vn->mac[4], vn->mac[5], (unsigned long long)vn->features, vn->rx.size,
             vn->tx.size, virtio_net_link_up(vn) ? 1u : 0u);
    return VIRTIO_NET_OK;
}

bool virtio_net_link_up(struct virtio_net *vn)
{
    if (!vn->ready) {
        return false;
    }
    if (!(vn->features & F_NET_STATUS)) {
        return true;                      /* section 5.1.4: without STATUS the link is assumed up */
    }
    return mmio_read16(vn->device, NETCFG_STATUS) & NET_S_LINK_UP;
}

static void reclaim_tx(struct virtio_net *vn)
{
    struct vq_used_elem e;
    while (next_used(&vn->tx, &e)) {
        if (e.id < vn->tx.size && vn->tx.free_count < vn->tx.size) {
            vn->tx.free_ids[vn->tx.free_count++] = (uint16_t)e.id;
        }
    }
}

int virtio_net_transmit(struct virtio_net *vn, const uint8_t *frame, size_t size)
{
    if (!vn->ready) {
        return VIRTIO_NET_ERR_STATE;
    }
    if (size > BUF_SIZE - NET_HDR_SIZE) {
        return VIRTIO_NET_ERR_TOO_LARGE;
    }
    reclaim_tx(vn);
    if (vn->tx.free_count == 0) {
        return VIRTIO_NET_ERR_FULL;
    }
    uint16_t id = vn->tx.free_ids[--vn->tx.free_count];
    uint8_t *buf = vn->tx.buffers + (size_t)BUF_SIZE * id;
    for (uint32_t i = 0; i < NET_HDR_SIZE; i++) {
        buf[i] = 0;                       /* flags 0, gso_type VIRTIO_NET_HDR_GSO_NONE: no offloads */
    }
    for (size_t i = 0; i < size; i++) {
        buf[NET_HDR_SIZE + i] = frame[i];
    }
    vn->tx.desc[id].len = (uint32_t)(NET_HDR_SIZE + size);
    publish(&vn->tx, id);
    kick(&vn->tx, TX_QUEUE);
    return VIRTIO_NET_OK;
}

size_t virtio_net_poll_receive(struct virtio_net *vn, uint8_t *buf, size_t capacity)
{
    if (!vn->ready) {
        return 0;
    }
    struct vq_used_elem e;
    if (!next_used(&vn->rx, &e)) {
        return 0;
    }
    if (e.id >= vn->rx.size) {
        return 0;                         /* a device bug; the descriptor cannot be reposted */
    }
    size_t frame = e.len > NET_HDR_SIZE ? e.len - NET_HDR_SIZE : 0;
    if (frame > capacity || e.len > BUF_SIZE) {
        frame = 0;                        /* netif.h: oversized frames are dropped */
    }
    const uint8_t *src = vn->rx.buffers + (size_t)BUF_SIZE * e.id + NET_HDR_SIZE;
    for (size_t i = 0; i < frame; i++) {
        buf[i] = src[i];
    }
    publish(&vn->rx, (uint16_t)e.id);
    kick(&vn->rx, RX_QUEUE);
    return frame;
}

void virtio_net_mac(struct virtio_net *vn, uint8_t out[DTE_ETH_ADDR_SIZE])
{
    for (int i = 0; i < DTE_ETH_ADDR_SIZE; i++) {
        out[i] = vn->mac[i];
    }
}

uint64_t virtio_net_features(const struct virtio_net *vn)
{
    return vn->features;
}

static int nif_init(void *ctx)
{
    return virtio_net_init(ctx);
}
static bool nif_link_up(void *ctx)
{
    return virtio_net_link_up(ctx);
}
static int nif_transmit(void *ctx, const uint8_t *f, size_t n)
{
    return virtio_net_transmit(ctx, f, n);
}
static size_t nif_poll(void *ctx, uint8_t *b, size_t cap)
{
    return virtio_net_poll_receive(ctx, b, cap);
}
static void nif_mac(void *ctx, uint8_t out[DTE_ETH_ADDR_SIZE])
{
    virtio_net_mac(ctx, out);
}

void virtio_net_netif(struct virtio_net *vn, dte_netif *out)
{
    *out = (dte_netif){.ctx = vn,
                       .init = nif_init,
                       .link_up = nif_link_up,
                       .transmit = nif_transmit,
                       .poll_receive = nif_poll,
                       .mac = nif_mac};
}
