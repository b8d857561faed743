/* loopnic: a hosted NIC (dte_netif) joining the C network stack to UDP sockets on 127.0.0.1, for tests.
 * docs/protocol.md "Hosted test transport (loopnic)" describes the two sockets. */
#ifndef DTE_TESTS_LOOPNIC_H
#define DTE_TESTS_LOOPNIC_H

#include <netinet/in.h>
#include <stdint.h>

#include "netif.h"

#define LOOPNIC_PEER_IP 0x0A000202u   /* 10.0.2.2: where protocol-socket clients appear to come from */

typedef struct loopnic {
    int proto_fd;                    /* datagrams = token protocol frames, translated to/from Ethernet */
    int raw_fd;                      /* datagrams = whole Ethernet frames */
    uint16_t proto_port;
    uint16_t raw_port;
    struct sockaddr_in raw_peer;
    int have_raw_peer;
    uint8_t mac[DTE_ETH_ADDR_SIZE];
    uint32_t stack_ip;
    uint16_t stack_port;
    uint16_t next_ip_id;
} loopnic;

/* Binds both sockets to 127.0.0.1 (port 0: any free port; the bound ports are in proto_port/raw_port).
 * 0 on success, -1 with errno set. */
int loopnic_open(loopnic *nic, uint16_t proto_port, uint16_t raw_port, const uint8_t mac[DTE_ETH_ADDR_SIZE],
                 uint32_t stack_ip, uint16_t stack_port);
/* The dte_netif view of nic. */
void loopnic_netif(loopnic *nic, dte_netif *out);
/* Sleep until a datagram is waiting on either socket or timeout_ms passes. */
void loopnic_wait(loopnic *nic, int timeout_ms);
void loopnic_close(loopnic *nic);

#endif
