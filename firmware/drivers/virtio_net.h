/* virtio-net over the virtio 1.2 modern PCI transport, polled, behind the dte_netif interface (firmware/net/netif.h).
 *
 * Specification: Virtual I/O Device (VIRTIO) Version 1.2 — section 4.1 (PCI transport: capabilities, common
 * configuration, notifications), 2.7 (split virtqueues), 3.1 (device initialization), 5.1 (network device).
 * Features negotiated: VIRTIO_F_VERSION_1 (required), VIRTIO_NET_F_MAC, VIRTIO_NET_F_STATUS; no offloads, no
 * mergeable buffers, so every buffer carries the 12-byte struct virtio_net_hdr (section 5.1.6) then one frame.
 *
 * Use:
 *     struct virtio_net *vn = virtio_net_probe(pci_find_id(0x1AF4, 0x1041, 0));   (or virtio_net_find(0))
 *     dte_netif nic; virtio_net_netif(vn, &nic);   then nic.init(nic.ctx) (dte_net_init does that).
 */
#ifndef DTE_DRIVERS_VIRTIO_NET_H
#define DTE_DRIVERS_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "drivers/pci.h"
#include "net/netif.h"

#define VIRTIO_PCI_VENDOR 0x1AF4
#define VIRTIO_PCI_ID_NET_MODERN 0x1041   /* 0x1040 + device type 1 (section 4.1.2.1) */
#define VIRTIO_PCI_ID_NET_TRANSITION 0x1000   /* transitional; accepted when it has the modern capabilities */

#define VIRTIO_NET_QUEUE_MAX 256u             /* ring entries used per queue (fewer when the device offers fewer) */

enum virtio_net_error {
    VIRTIO_NET_OK = 0,
    VIRTIO_NET_ERR_NO_DEVICE = -1,     /* no device, or not a modern one (capabilities missing) */
    VIRTIO_NET_ERR_FEATURES = -2,      /* VERSION_1 not offered, or FEATURES_OK not kept by the device */
    VIRTIO_NET_ERR_QUEUE = -3,         /* a queue the device lacks or sizes at 0 */
    VIRTIO_NET_ERR_NO_MEMORY = -4,
    VIRTIO_NET_ERR_TIMEOUT = -5,       /* reset not acknowledged */
    VIRTIO_NET_ERR_STATE = -6,         /* used before init, or the device asked for a reset */
    VIRTIO_NET_ERR_FULL = -7,          /* transmit ring full (frames still in flight) */
    VIRTIO_NET_ERR_TOO_LARGE = -8,
};

struct virtio_net;

/* Read the virtio capabilities of a PCI function and enable it (memory decode, bus mastering); NULL (with a log
 * line) when the function is not a modern virtio-net device. Touches no device register yet. */
struct virtio_net *virtio_net_probe(const struct pci_device *dev);
/* probe() on the nth virtio-net function in enumeration order (modern IDs first, then transitional). */
struct virtio_net *virtio_net_find(int nth);
/* The device bring-up (section 3.1.1): reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK, queues, DRIVER_OK. */
int virtio_net_init(struct virtio_net *vn);
bool virtio_net_link_up(struct virtio_net *vn);
int virtio_net_transmit(struct virtio_net *vn, const uint8_t *frame, size_t size);
size_t virtio_net_poll_receive(struct virtio_net *vn, uint8_t *buf, size_t capacity);
void virtio_net_mac(struct virtio_net *vn, uint8_t out[DTE_ETH_ADDR_SIZE]);
/* Features the driver accepted (valid after init). */
uint64_t virtio_net_features(const struct virtio_net *vn);
const char *virtio_net_error_name(int err);
/* Fill a dte_netif whose calls go to vn. */
void virtio_net_netif(struct virtio_net *vn, dte_netif *out);

#endif /* DTE_DRIVERS_VIRTIO_NET_H */
