/* loopnic: see loopnic.h. Builds its own IPv4/UDP headers and checksums (RFC 791, RFC 768, RFC 1071) rather than
 * reusing the stack's, so a checksum bug in the stack cannot hide itself. */
#define _DEFAULT_SOURCE
#include "loopnic.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static const uint8_t peer_mac[DTE_ETH_ADDR_SIZE] = {0x52, 0x55, 0x0a, 0x00, 0x02, 0x02};

static uint16_t checksum_fold(uint32_t sum, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < size; i++)
        sum += (i & 1) ? data[i] : (uint32_t)data[i] << 8;
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }

static int bind_local(uint16_t port, uint16_t *bound)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0 || getsockname(fd, (struct sockaddr *)&addr, &len) != 0) {
        close(fd);
        return -1;
    }
    *bound = ntohs(addr.sin_port);
    return fd;
}

int loopnic_open(loopnic *n, uint16_t proto_port, uint16_t raw_port, const uint8_t mac[DTE_ETH_ADDR_SIZE],
                 uint32_t stack_ip, uint16_t stack_port)
{
    memset(n, 0, sizeof *n);
    n->proto_fd = bind_local(proto_port, &n->proto_port);
    n->raw_fd = n->proto_fd < 0 ? -1 : bind_local(raw_port, &n->raw_port);
    if (n->raw_fd < 0) {
        if (n->proto_fd >= 0)
            close(n->proto_fd);
        return -1;
    }
    memcpy(n->mac, mac, DTE_ETH_ADDR_SIZE);
    n->stack_ip = stack_ip;
    n->stack_port = stack_port;
    n->next_ip_id = 1;
    return 0;
}

/* A client's datagram as the Ethernet/IPv4/UDP frame the stack would get from 10.0.2.2. */
static size_t wrap_datagram(loopnic *n, const uint8_t *data, size_t size, uint16_t src_port, uint8_t *frame)
{
    memcpy(frame, n->mac, 6);
    memcpy(frame + 6, peer_mac, 6);
    put16(frame + 12, 0x0800);
    uint8_t *ip = frame + 14, *udp = frame + 34;
    memset(ip, 0, 20);
    ip[0] = 0x45;
    put16(ip + 2, (uint16_t)(28 + size));
    put16(ip + 4, n->next_ip_id++);
    ip[8] = 64;
    ip[9] = 17;
    put32(ip + 12, LOOPNIC_PEER_IP);
    put32(ip + 16, n->stack_ip);
    put16(ip + 10, checksum_fold(0, ip, 20));
    put16(udp, src_port);
    put16(udp + 2, n->stack_port);
    put16(udp + 4, (uint16_t)(8 + size));
    put16(udp + 6, 0);
    memcpy(udp + 8, data, size);
    uint32_t pseudo = (LOOPNIC_PEER_IP >> 16) + (LOOPNIC_PEER_IP & 0xffff) + (n->stack_ip >> 16) +
                      (n->stack_ip & 0xffff) + 17 + (uint32_t)(8 + size);
    uint16_t sum = checksum_fold(pseudo, udp, 8 + size);
    put16(udp + 6, sum == 0 ? 0xffff : sum);
    return 42 + size;
}

static size_t receive_protocol(loopnic *n, uint8_t *buf, size_t capacity)
{
    static uint8_t datagram[65536];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t got = recvfrom(n->proto_fd, datagram, sizeof datagram, MSG_DONTWAIT, (struct sockaddr *)&from, &len);
    if (got < 0 || (size_t)got + 42 > capacity)
        return 0;   /* nothing waiting, or too big for the stack's buffer: dropped like a NIC would */
    return wrap_datagram(n, datagram, (size_t)got, ntohs(from.sin_port), buf);
}

static size_t receive_raw(loopnic *n, uint8_t *buf, size_t capacity)
{
    static uint8_t frame[65536];
    struct sockaddr_in from;
    socklen_t len = sizeof from;
    ssize_t got = recvfrom(n->raw_fd, frame, sizeof frame, MSG_DONTWAIT, (struct sockaddr *)&from, &len);
    if (got <= 0 || (size_t)got > capacity)
        return 0;
    n->raw_peer = from;
    n->have_raw_peer = 1;
    memcpy(buf, frame, (size_t)got);
    return (size_t)got;
}

static size_t loopnic_poll_receive(void *ctx, uint8_t *buf, size_t capacity)
{
    loopnic *n = ctx;
    size_t size = receive_protocol(n, buf, capacity);
    return size != 0 ? size : receive_raw(n, buf, capacity);
}

static int loopnic_transmit(void *ctx, const uint8_t *frame, size_t size)
{
    loopnic *n = ctx;
    bool to_peer = size >= 42 && get16(frame + 12) == 0x0800 && frame[23] == 17 && get32(frame + 30) == LOOPNIC_PEER_IP;
    if (to_peer) {
        size_t ihl = (size_t)(frame[14] & 0x0f) * 4;
        const uint8_t *udp = frame + 14 + ihl;
        uint16_t udp_len = get16(udp + 4);
        if (14 + ihl + udp_len > size || udp_len < 8)
            return -1;
        struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(get16(udp + 2))};
        to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sendto(n->proto_fd, udp + 8, udp_len - 8u, 0, (struct sockaddr *)&to, sizeof to) < 0 ? -1 : 0;
    }
    if (!n->have_raw_peer)
        return 0;   /* nobody listening: the wire eats it */
    return sendto(n->raw_fd, frame, size, 0, (struct sockaddr *)&n->raw_peer, sizeof n->raw_peer) < 0 ? -1 : 0;
}

static bool loopnic_link_up(void *ctx) { (void)ctx; return true; }

static void loopnic_mac(void *ctx, uint8_t out[DTE_ETH_ADDR_SIZE]) { memcpy(out, ((loopnic *)ctx)->mac, 6); }

void loopnic_netif(loopnic *n, dte_netif *out)
{
    *out = (dte_netif){.ctx = n, .init = NULL, .link_up = loopnic_link_up, .transmit = loopnic_transmit,
                       .poll_receive = loopnic_poll_receive, .mac = loopnic_mac};
}

void loopnic_wait(loopnic *n, int timeout_ms)
{
    struct pollfd fds[2] = {{.fd = n->proto_fd, .events = POLLIN}, {.fd = n->raw_fd, .events = POLLIN}};
    while (poll(fds, 2, timeout_ms) < 0 && errno == EINTR) {
    }
}

void loopnic_close(loopnic *n)
{
    close(n->proto_fd);
    close(n->raw_fd);
}
