/* The small NIC interface the network stack drives (docs/protocol.md "Transport"): polled, no interrupts.
 *
 * Implemented by firmware/drivers/virtio_net.c, firmware/drivers/mlx5.c and, for hosted tests,
 * tests/devmodels/loopnic.c. Frames are whole Ethernet II frames (destination MAC first) without the FCS.
 */
#ifndef DTE_NET_NETIF_H
#define DTE_NET_NETIF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DTE_ETH_ADDR_SIZE 6

typedef struct dte_netif {
    void *ctx;   /* the driver's own state, passed back to every call */
    /* Bring the device up (rings posted, receive enabled). 0 on success, negative on failure. */
    int (*init)(void *ctx);
    /* Current link state. */
    bool (*link_up)(void *ctx);
    /* Queue one frame for sending (the driver pads to the 60-byte Ethernet minimum if it must).
     * The frame may be reused as soon as this returns. 0 on success, negative when it cannot be sent. */
    int (*transmit)(void *ctx, const uint8_t *frame, size_t size);
    /* Copy one received frame into buf and return its size; 0 when no frame is waiting. A frame larger than
     * capacity is dropped by the driver (and 0 returned). Never blocks. */
    size_t (*poll_receive)(void *ctx, uint8_t *buf, size_t capacity);
    /* The device's MAC address. */
    void (*mac)(void *ctx, uint8_t out[DTE_ETH_ADDR_SIZE]);
} dte_netif;

#endif
