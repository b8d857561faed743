/* Test glue: one C network stack (firmware/net/net_stack.c) on top of a NIC driver, driven from Python. */
#include <stddef.h>
#include <stdint.h>

#include "../../firmware/drivers/virtio_net.h"
#include "../../firmware/net/net_stack.h"

static dte_net_stack stack;
static dte_netif nic;

static void ignore_udp(void *ctx, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size)
{
    (void)ctx; (void)src_ip; (void)src_port; (void)data; (void)size;
}

/* Bring up the stack (which calls the driver's init) at ipv4 (host order), /24, the NIC's own MAC. */
int glue_stack_open_virtio(struct virtio_net *vn, uint32_t ipv4)
{
    virtio_net_netif(vn, &nic);
    dte_net_config cfg = {.ipv4 = ipv4, .netmask = 0xFFFFFF00u, .gateway = 0, .udp_port = 7777};
    return dte_net_init(&stack, &cfg, &nic, ignore_udp, NULL);
}

int glue_stack_poll(int max_frames)
{
    return dte_net_poll(&stack, max_frames);
}
