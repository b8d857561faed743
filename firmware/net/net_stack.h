/* A tiny polled IPv4 stack: Ethernet II, ARP (RFC 826), IPv4 (RFC 791, no fragments), ICMP echo (RFC 792),
 * UDP (RFC 768) to one port. One instance per NIC; all state lives in the dte_net_stack the caller provides.
 *
 * Use (the appliance's network loop):
 *     dte_net_init(&stack, &config, &nic, dte_proto_udp_input, &server);
 *     server config .send = dte_net_send_to, .send_ctx = &stack;
 *     for (;;) { dte_net_poll(&stack, 16); dte_proto_service(&server); }
 */
#ifndef DTE_NET_NET_STACK_H
#define DTE_NET_NET_STACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "netif.h"

#define DTE_NET_FRAME_MAX 2048u     /* receive/transmit buffer: one 1514-byte frame with room to spare */
#define DTE_NET_NEIGHBOURS 16u      /* IPv4 -> MAC cache entries */

/* Addresses are host-order integers: 192.0.2.10 is 0xC000020A. */
typedef struct dte_net_config {
    uint32_t ipv4;
    uint32_t netmask;
    uint32_t gateway;                 /* 0: no gateway (on-link peers only) */
    uint16_t udp_port;                /* the token protocol port */
    uint8_t mac[DTE_ETH_ADDR_SIZE];   /* all zero: use the NIC's own MAC (board `mac = "nic"`) */
} dte_net_config;

/* Counter order is part of the protocol's STATS answer (docs/protocol.md, counters 11..18). */
enum dte_net_counter {
    DTE_NET_RX_FRAMES,
    DTE_NET_TX_FRAMES,
    DTE_NET_DROPPED,
    DTE_NET_BAD_CHECKSUM,
    DTE_NET_FRAGMENTS,
    DTE_NET_ARP_REPLIES,
    DTE_NET_ICMP_REPLIES,
    DTE_NET_TX_ERRORS,
    DTE_NET_COUNTER_COUNT
};

/* Called for each UDP datagram to config.udp_port; data points into the stack's receive buffer. */
typedef void (*dte_udp_handler)(void *ctx, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size);

typedef struct dte_net_neighbour {
    uint32_t ipv4;   /* 0: unused */
    uint8_t mac[DTE_ETH_ADDR_SIZE];
    uint32_t last_used;
} dte_net_neighbour;

typedef struct dte_net_stack {
    dte_net_config config;
    const dte_netif *nic;
    uint8_t mac[DTE_ETH_ADDR_SIZE];
    dte_udp_handler udp_handler;
    void *udp_ctx;
    dte_net_neighbour neighbours[DTE_NET_NEIGHBOURS];
    uint32_t clock;        /* ticks per neighbour use, for least-recently-used replacement */
    uint16_t next_ip_id;
    uint64_t counters[DTE_NET_COUNTER_COUNT];
    uint8_t rx[DTE_NET_FRAME_MAX];
    uint8_t tx[DTE_NET_FRAME_MAX];
} dte_net_stack;

/* Calls nic->init. 0 on success, negative when the NIC fails to start or the config is unusable. */
int dte_net_init(dte_net_stack *stack, const dte_net_config *config, const dte_netif *nic, dte_udp_handler handler,
                 void *handler_ctx);
/* Receive and handle up to max_frames frames; returns how many were handled. */
int dte_net_poll(dte_net_stack *stack, int max_frames);
/* Handle one received Ethernet frame (dte_net_poll calls this; tests may call it directly). */
void dte_net_input(dte_net_stack *stack, const uint8_t *frame, size_t size);
/* Send one UDP datagram from config.udp_port. 0 on success, negative when the next hop's MAC is unknown
 * (an ARP request is sent then) or the NIC refuses the frame. */
int dte_net_udp_send(dte_net_stack *stack, uint32_t dst_ip, uint16_t dst_port, const uint8_t *data, size_t size);
/* dte_net_udp_send with a void * stack: the shape of the token protocol's send callback. */
int dte_net_send_to(void *stack, uint32_t dst_ip, uint16_t dst_port, const uint8_t *data, size_t size);
/* RFC 1071 Internet checksum of data, starting from a partial sum (0 for none); returns the folded complement. */
uint16_t dte_inet_checksum(const uint8_t *data, size_t size, uint32_t partial_sum);

#endif
