/* A simulated virtio-net PCI function (virtio 1.2 sections 4.1, 2.7, 5.1), written from the spec independently of
 * firmware/drivers/virtio_net.c: a 4 KiB configuration space with the modern vendor capabilities (served through
 * pci_init_custom), a BAR whose registers react synchronously (mmio_trap.h), and split virtqueues that move frames.
 * Every deviation from the spec's driver requirements is recorded as a violation line. */
#ifndef DTE_TESTS_VIRTIO_NET_MODEL_H
#define DTE_TESTS_VIRTIO_NET_MODEL_H

#include <stddef.h>
#include <stdint.h>

#define VNET_MODEL_BUS 0
#define VNET_MODEL_DEV 3

struct vnet_model_config {
    uint64_t features;          /* offered feature bits */
    uint8_t mac[6];
    uint16_t device_id;         /* 0x1041 modern, 0x1000 transitional */
    uint16_t queue_max;         /* queue_size the device reports for queues 0 and 1 */
    uint32_t refuse_features_ok;/* 1: never keep FEATURES_OK */
    uint32_t link_up;
    uint32_t omit_cfg_type;     /* leave out this capability type (1 common .. 4 device), 0 = none */
};

struct vnet_model;

struct vnet_model *vnet_model_create(const struct vnet_model_config *cfg);
void vnet_model_destroy(struct vnet_model *m);
/* pci_read32_fn / pci_write32_fn shaped accessors; ctx is the model. */
uint32_t vnet_model_cfg_read32(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off);
void vnet_model_cfg_write32(void *ctx, uint8_t bus, uint8_t dev, uint8_t fn, uint16_t off, uint32_t value);
/* Deliver a frame into the next posted receive buffer: 0, or -1 when the driver has none posted (or not ready). */
int vnet_model_inject(struct vnet_model *m, const uint8_t *frame, size_t size);
/* The oldest frame the driver transmitted (header removed), copied into buf: its size, 0 when none. */
size_t vnet_model_take_tx(struct vnet_model *m, uint8_t *buf, size_t cap);
void vnet_model_set_link(struct vnet_model *m, uint32_t up);
uint8_t vnet_model_status(struct vnet_model *m);
uint64_t vnet_model_driver_features(struct vnet_model *m);
/* Violations so far, one per line, into buf; returns how many. */
int vnet_model_violations(struct vnet_model *m, char *buf, size_t cap);

#endif
