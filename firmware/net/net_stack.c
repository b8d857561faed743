/* Polled IPv4 stack: see net_stack.h. Field offsets are from the RFCs cited at each function. */
#include "net/net_stack.h"

#include "net/bytes.h"

#define ETH_HEADER 14u
#define ETH_MIN_FRAME 60u           /* IEEE 802.3 minimum without FCS */
#define ETHERTYPE_IPV4 0x0800u
#define ETHERTYPE_ARP 0x0806u
#define ARP_SIZE 28u                /* RFC 826 for Ethernet/IPv4 */
#define IPV4_HEADER 20u
#define IP_PROTO_ICMP 1u
#define IP_PROTO_UDP 17u
#define UDP_HEADER 8u
#define ICMP_ECHO_REQUEST 8u
#define ICMP_ECHO_REPLY 0u
#define DEFAULT_TTL 64u

static const uint8_t broadcast_mac[DTE_ETH_ADDR_SIZE] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

uint16_t dte_inet_checksum(const uint8_t *data, size_t size, uint32_t partial_sum)
{
    /* RFC 1071 §4.1: one's complement sum of 16-bit words, odd byte padded with zero, folded, complemented. */
    uint64_t sum = partial_sum;
    size_t i = 0;
    for (; i + 1 < size; i += 2) {
        sum += dte_get_be16(data + i);
    }
    if (i < size) {
        sum += (uint32_t)data[i] << 8;
    }
    while (sum >> 16) {
        sum = (sum & 0xffffu) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

static uint32_t udp_pseudo_header_sum(uint32_t src, uint32_t dst, uint16_t udp_length)
{
    /* RFC 768: source address, destination address, zero, protocol, UDP length. */
    return (src >> 16) + (src & 0xffffu) + (dst >> 16) + (dst & 0xffffu) + IP_PROTO_UDP + udp_length;
}

static bool on_link(const dte_net_stack *s, uint32_t ip)
{
    return (ip & s->config.netmask) == (s->config.ipv4 & s->config.netmask);
}

static uint32_t next_hop(const dte_net_stack *s, uint32_t ip)
{
    return (on_link(s, ip) || s->config.gateway == 0) ? ip : s->config.gateway;
}

static dte_net_neighbour *find_neighbour(dte_net_stack *s, uint32_t ip)
{
    for (unsigned i = 0; i < DTE_NET_NEIGHBOURS; i++) {
        if (s->neighbours[i].ipv4 == ip && ip != 0) {
            return &s->neighbours[i];
        }
    }
    return NULL;
}

static void learn_neighbour(dte_net_stack *s, uint32_t ip, const uint8_t mac[DTE_ETH_ADDR_SIZE])
{
    if (ip == 0 || ip == s->config.ipv4 || (mac[0] & 1u)) {   /* never learn multicast/broadcast MACs */
        return;
    }
    dte_net_neighbour *slot = find_neighbour(s, ip);
    if (slot == NULL) {
        slot = &s->neighbours[0];
        for (unsigned i = 1; i < DTE_NET_NEIGHBOURS; i++) {
            if (s->neighbours[i].last_used < slot->last_used) {
                slot = &s->neighbours[i];
            }
        }
        slot->ipv4 = ip;
    }
    dte_copy_bytes(slot->mac, mac, DTE_ETH_ADDR_SIZE);
    slot->last_used = ++s->clock;
}

static int transmit(dte_net_stack *s, size_t size)
{
    while (size < ETH_MIN_FRAME) {
        s->tx[size++] = 0;
    }
    if (s->nic->transmit(s->nic->ctx, s->tx, size) != 0) {
        s->counters[DTE_NET_TX_ERRORS]++;
        return -1;
    }
    s->counters[DTE_NET_TX_FRAMES]++;
    return 0;
}

static void write_eth_header(dte_net_stack *s, const uint8_t dst[DTE_ETH_ADDR_SIZE], uint16_t ethertype)
{
    dte_copy_bytes(s->tx, dst, DTE_ETH_ADDR_SIZE);
    dte_copy_bytes(s->tx + 6, s->mac, DTE_ETH_ADDR_SIZE);
    dte_put_be16(s->tx + 12, ethertype);
}

static void write_arp(dte_net_stack *s, uint16_t op, const uint8_t target_mac[DTE_ETH_ADDR_SIZE], uint32_t target_ip)
{
    /* RFC 826 packet: hrd=1 (Ethernet), pro=0x0800, hln=6, pln=4, op, sha, spa, tha, tpa. */
    uint8_t *arp = s->tx + ETH_HEADER;
    dte_put_be16(arp, 1);
    dte_put_be16(arp + 2, ETHERTYPE_IPV4);
    arp[4] = DTE_ETH_ADDR_SIZE;
    arp[5] = 4;
    dte_put_be16(arp + 6, op);
    dte_copy_bytes(arp + 8, s->mac, DTE_ETH_ADDR_SIZE);
    dte_put_be32(arp + 14, s->config.ipv4);
    dte_copy_bytes(arp + 18, target_mac, DTE_ETH_ADDR_SIZE);
    dte_put_be32(arp + 24, target_ip);
}

static void send_arp_request(dte_net_stack *s, uint32_t ip)
{
    static const uint8_t unknown_mac[DTE_ETH_ADDR_SIZE] = {0, 0, 0, 0, 0, 0};
    write_eth_header(s, broadcast_mac, ETHERTYPE_ARP);
    write_arp(s, 1, unknown_mac, ip);
    transmit(s, ETH_HEADER + ARP_SIZE);
}

static void handle_arp(dte_net_stack *s, const uint8_t *arp, size_t size)
{
    if (size < ARP_SIZE || dte_get_be16(arp) != 1 || dte_get_be16(arp + 2) != ETHERTYPE_IPV4 ||
        arp[4] != DTE_ETH_ADDR_SIZE || arp[5] != 4) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    uint16_t op = dte_get_be16(arp + 6);
    uint32_t sender_ip = dte_get_be32(arp + 14);
    uint32_t target_ip = dte_get_be32(arp + 24);
    if (target_ip != s->config.ipv4) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    learn_neighbour(s, sender_ip, arp + 8);   /* RFC 826 "merge" step */
    if (op != 1) {
        return;
    }
    uint8_t sender_mac[DTE_ETH_ADDR_SIZE];
    dte_copy_bytes(sender_mac, arp + 8, DTE_ETH_ADDR_SIZE);
    write_eth_header(s, sender_mac, ETHERTYPE_ARP);
    write_arp(s, 2, sender_mac, sender_ip);
    if (transmit(s, ETH_HEADER + ARP_SIZE) == 0) {
        s->counters[DTE_NET_ARP_REPLIES]++;
    }
}

/* RFC 791 §3.1 header with no options; the payload must already be at tx + 14 + 20. */
static void write_ipv4_header(dte_net_stack *s, uint8_t protocol, uint32_t dst_ip, size_t payload_size)
{
    uint8_t *ip = s->tx + ETH_HEADER;
    ip[0] = 0x45;                          /* version 4, IHL 5 */
    ip[1] = 0;
    dte_put_be16(ip + 2, (uint16_t)(IPV4_HEADER + payload_size));
    dte_put_be16(ip + 4, s->next_ip_id++);
    dte_put_be16(ip + 6, 0x4000);          /* DF, offset 0 */
    ip[8] = DEFAULT_TTL;
    ip[9] = protocol;
    dte_put_be16(ip + 10, 0);
    dte_put_be32(ip + 12, s->config.ipv4);
    dte_put_be32(ip + 16, dst_ip);
    dte_put_be16(ip + 10, dte_inet_checksum(ip, IPV4_HEADER, 0));
}

static void handle_icmp(dte_net_stack *s, const uint8_t *eth, uint32_t src_ip, const uint8_t *icmp, size_t size)
{
    /* RFC 792 echo: type, code, checksum, identifier, sequence, data; the reply echoes all but the type. */
    if (size < 8 || dte_inet_checksum(icmp, size, 0) != 0) {
        s->counters[DTE_NET_BAD_CHECKSUM]++;
        return;
    }
    if (icmp[0] != ICMP_ECHO_REQUEST || icmp[1] != 0 || size > DTE_NET_FRAME_MAX - ETH_HEADER - IPV4_HEADER) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    uint8_t *reply = s->tx + ETH_HEADER + IPV4_HEADER;
    dte_copy_bytes(reply, icmp, size);
    reply[0] = ICMP_ECHO_REPLY;
    dte_put_be16(reply + 2, 0);
    dte_put_be16(reply + 2, dte_inet_checksum(reply, size, 0));
    write_eth_header(s, eth + 6, ETHERTYPE_IPV4);   /* straight back to the sender's MAC */
    write_ipv4_header(s, IP_PROTO_ICMP, src_ip, size);
    if (transmit(s, ETH_HEADER + IPV4_HEADER + size) == 0) {
        s->counters[DTE_NET_ICMP_REPLIES]++;
    }
}

static void handle_udp(dte_net_stack *s, uint32_t src_ip, uint32_t dst_ip, const uint8_t *udp, size_t size)
{
    /* RFC 768: source port, destination port, length, checksum (0 = not computed). */
    if (size < UDP_HEADER || dte_get_be16(udp + 4) < UDP_HEADER || dte_get_be16(udp + 4) > size) {
        s->counters[DTE_NET_BAD_CHECKSUM]++;
        return;
    }
    uint16_t length = dte_get_be16(udp + 4);
    if (dte_get_be16(udp + 6) != 0 &&
        dte_inet_checksum(udp, length, udp_pseudo_header_sum(src_ip, dst_ip, length)) != 0) {
        s->counters[DTE_NET_BAD_CHECKSUM]++;
        return;
    }
    if (dte_get_be16(udp + 2) != s->config.udp_port || s->udp_handler == NULL) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    s->udp_handler(s->udp_ctx, src_ip, dte_get_be16(udp), udp + UDP_HEADER, length - UDP_HEADER);
}

static void handle_ipv4(dte_net_stack *s, const uint8_t *eth, const uint8_t *ip, size_t size)
{
    if (size < IPV4_HEADER || (ip[0] >> 4) != 4) {
        s->counters[DTE_NET_BAD_CHECKSUM]++;
        return;
    }
    size_t header = (size_t)(ip[0] & 0x0fu) * 4u;
    size_t total = dte_get_be16(ip + 2);
    if (header < IPV4_HEADER || total < header || total > size || dte_inet_checksum(ip, header, 0) != 0) {
        s->counters[DTE_NET_BAD_CHECKSUM]++;
        return;
    }
    if ((dte_get_be16(ip + 6) & 0x3fffu) != 0) {   /* MF set or a fragment offset: RFC 791 §3.2 */
        s->counters[DTE_NET_FRAGMENTS]++;
        return;
    }
    uint32_t src_ip = dte_get_be32(ip + 12);
    uint32_t dst_ip = dte_get_be32(ip + 16);
    if (dst_ip != s->config.ipv4) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    learn_neighbour(s, next_hop(s, src_ip), eth + 6);
    if (ip[9] == IP_PROTO_ICMP) {
        handle_icmp(s, eth, src_ip, ip + header, total - header);
    } else if (ip[9] == IP_PROTO_UDP) {
        handle_udp(s, src_ip, dst_ip, ip + header, total - header);
    } else {
        s->counters[DTE_NET_DROPPED]++;
    }
}

void dte_net_input(dte_net_stack *s, const uint8_t *frame, size_t size)
{
    s->counters[DTE_NET_RX_FRAMES]++;
    if (size < ETH_HEADER) {
        s->counters[DTE_NET_DROPPED]++;
        return;
    }
    bool for_us = dte_same_bytes(frame, s->mac, DTE_ETH_ADDR_SIZE);
    bool broadcast = dte_same_bytes(frame, broadcast_mac, DTE_ETH_ADDR_SIZE);
    uint16_t ethertype = dte_get_be16(frame + 12);
    if (ethertype == ETHERTYPE_ARP && (for_us || broadcast)) {
        handle_arp(s, frame + ETH_HEADER, size - ETH_HEADER);
    } else if (ethertype == ETHERTYPE_IPV4 && for_us) {
        handle_ipv4(s, frame, frame + ETH_HEADER, size - ETH_HEADER);
    } else {
        s->counters[DTE_NET_DROPPED]++;
    }
}

int dte_net_poll(dte_net_stack *s, int max_frames)
{
    int handled = 0;
    while (handled < max_frames) {
        size_t size = s->nic->poll_receive(s->nic->ctx, s->rx, sizeof s->rx);
        if (size == 0) {
            break;
        }
        dte_net_input(s, s->rx, size);
        handled++;
    }
    return handled;
}

int dte_net_udp_send(dte_net_stack *s, uint32_t dst_ip, uint16_t dst_port, const uint8_t *data, size_t size)
{
    if (size > DTE_NET_FRAME_MAX - ETH_HEADER - IPV4_HEADER - UDP_HEADER) {
        s->counters[DTE_NET_TX_ERRORS]++;
        return -1;
    }
    dte_net_neighbour *hop = find_neighbour(s, next_hop(s, dst_ip));
    if (hop == NULL) {
        s->counters[DTE_NET_TX_ERRORS]++;
        send_arp_request(s, next_hop(s, dst_ip));
        return -1;
    }
    hop->last_used = ++s->clock;
    uint8_t *udp = s->tx + ETH_HEADER + IPV4_HEADER;
    uint16_t length = (uint16_t)(UDP_HEADER + size);
    dte_put_be16(udp, s->config.udp_port);
    dte_put_be16(udp + 2, dst_port);
    dte_put_be16(udp + 4, length);
    dte_put_be16(udp + 6, 0);
    dte_copy_bytes(udp + UDP_HEADER, data, size);
    uint16_t checksum = dte_inet_checksum(udp, length, udp_pseudo_header_sum(s->config.ipv4, dst_ip, length));
    dte_put_be16(udp + 6, checksum == 0 ? 0xffffu : checksum);   /* RFC 768: a computed zero is sent as all ones */
    write_eth_header(s, hop->mac, ETHERTYPE_IPV4);
    write_ipv4_header(s, IP_PROTO_UDP, dst_ip, length);
    return transmit(s, ETH_HEADER + IPV4_HEADER + length);
}

int dte_net_send_to(void *stack, uint32_t dst_ip, uint16_t dst_port, const uint8_t *data, size_t size)
{
    return dte_net_udp_send((dte_net_stack *)stack, dst_ip, dst_port, data, size);
}

int dte_net_init(dte_net_stack *s, const dte_net_config *config, const dte_netif *nic, dte_udp_handler handler,
                 void *handler_ctx)
{
    static const uint8_t zero_mac[DTE_ETH_ADDR_SIZE] = {0, 0, 0, 0, 0, 0};
    if (config->ipv4 == 0 || config->udp_port == 0 || nic == NULL) {
        return -1;
    }
    s->config = *config;
    s->nic = nic;
    s->udp_handler = handler;
    s->udp_ctx = handler_ctx;
    s->clock = 0;
    s->next_ip_id = 1;
    for (unsigned i = 0; i < DTE_NET_NEIGHBOURS; i++) {
        s->neighbours[i] = (dte_net_neighbour){0};
    }
    for (unsigned i = 0; i < DTE_NET_COUNTER_COUNT; i++) {
        s->counters[i] = 0;
    }
    if (nic->init != NULL && nic->init(nic->ctx) != 0) {
        return -2;
    }
    if (dte_same_bytes(config->mac, zero_mac, DTE_ETH_ADDR_SIZE)) {
        nic->mac(nic->ctx, s->mac);
    } else {
        dte_copy_bytes(s->mac, config->mac, DTE_ETH_ADDR_SIZE);
    }
    return 0;
}
