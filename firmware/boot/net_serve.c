/* The appliance's network loop (see net_serve.h): NIC selection, stack + protocol server set-up, the poll loop. */
#include "boot/net_serve.h"

#include <stdint.h>

#include "boot/attest.h"
#include "boot/net_engine.h"
#include "boot/panic.h"
#include "boot/status.h"
#include "boot/thermal_fw.h"
#include "drivers/mlx5.h"
#include "drivers/virtio_net.h"
#include "dte_config.h"
#include "net/net_stack.h"
#include "net/proto.h"
#include "runtime/platform.h"

/* Builds without a network (no `dte build --net`) still compile this file; net_serve_enabled() is 0 there. */
#ifndef DTE_NET_ENABLED
#define DTE_NET_ENABLED 0
#endif
#ifndef DTE_PROTO_HAS_KEY
#define DTE_PROTO_HAS_KEY 0
#endif
#if !DTE_PROTO_HAS_KEY
#undef DTE_PROTO_KEY
#define DTE_PROTO_KEY {0}
#endif
#ifndef DTE_NET_IPV4
#define DTE_NET_IPV4 0u
#define DTE_NET_NETMASK 0u
#define DTE_NET_GATEWAY 0u
#define DTE_NET_PORT 0u
#define DTE_NET_MAC {0}
#endif

#ifndef DTE_MODEL_NAME
#define DTE_MODEL_NAME ""   /* the model's name as the build knew it (INFO, docs/protocol.md) */
#endif

#define POLL_BATCH 16   /* frames handled per poll between two engine steps */
#ifndef DTE_NET_IDLE_TIMEOUT_S
#define DTE_NET_IDLE_TIMEOUT_S 600u   /* an idle session unused this long is closed */
#endif

static const uint8_t appliance_key[32] = DTE_PROTO_KEY;
static dte_net_stack stack;

/* STATS beyond the protocol's own counters (docs/protocol.md): the stack's, then the thermal governor's. */
enum { THERMAL_COUNTERS = 7, EXTRA_COUNTERS = DTE_NET_COUNTER_COUNT + THERMAL_COUNTERS };
static uint64_t extra_counters[EXTRA_COUNTERS];

static void refresh_counters(void *ctx)
{
    (void)ctx;
    for (unsigned i = 0; i < DTE_NET_COUNTER_COUNT; i++) {
        extra_counters[i] = stack.counters[i];
    }
    thermal_fw_stats t;
    thermal_fw_get_stats(&t);
    uint64_t *th = extra_counters + DTE_NET_COUNTER_COUNT;
    th[0] = t.state;
    th[1] = t.tctl_mc > 0 ? (uint64_t)t.tctl_mc : 0;
    th[2] = t.pkg_mw;
    th[3] = t.workers;
    th[4] = t.samples;
    th[5] = t.paced_samples;
    th[6] = t.critical_trips;
}
static dte_proto_server server;
static struct net_engine engine;

int net_serve_enabled(void)
{
    return DTE_NET_ENABLED && DTE_PROTO_HAS_KEY;
}

/* The session-id epoch of this boot (docs/protocol.md "Session ids"): RDRAND when the CPU has it (CPUID.1:ECX
 * bit 30; Intel SDM vol. 2 "RDRAND"), mixed with the time-stamp counter, so two boots differ. */
static uint32_t boot_epoch(void)
{
    uint32_t eax = 1, ebx, ecx = 0, edx;
    __asm__ volatile("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    uint32_t random = 0;
    if (ecx & (1u << 30)) {
        for (int tries = 0; tries < 10; tries++) {
            uint8_t ok;
            __asm__ volatile("rdrand %0; setc %1" : "=r"(random), "=qm"(ok));
            if (ok) {
                break;
            }
        }
    }
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return random ^ lo ^ (hi * 2654435761u);
}

static uint64_t clock_ns(void)
{
    return dte_time_ns();
}

/* virtio-net (QEMU, clouds) first, else the first ConnectX (mlx5). Returns the driver's name, NULL: none. */
static const char *find_nic(dte_netif *nic)
{
    struct virtio_net *vn = virtio_net_find(0);
    if (vn) {
        virtio_net_netif(vn, nic);
        return "virtio-net";
    }
    struct mlx5 *mx = mlx5_find(0, NULL);
    if (mx) {
        mlx5_netif(mx, nic);
        return "mlx5";
    }
    return NULL;
}

static void report_ready(const char *driver, const dte_netif *nic)
{
    uint32_t ip = stack.config.ipv4;
    const uint8_t *m = stack.mac;
    dte_status("net ready ip=%u.%u.%u.%u port=%u mac=%02x:%02x:%02x:%02x:%02x:%02x nic=%s link=%s", ip >> 24,
               (ip >> 16) & 0xFFu, (ip >> 8) & 0xFFu, ip & 0xFFu, (unsigned)stack.config.udp_port, m[0], m[1], m[2],
               m[3], m[4], m[5], driver, nic->link_up(nic->ctx) ? "up" : "down");
}

int net_serve(const uint8_t weights_sha256[32])
{
    dte_set_subsystem("net");
    static dte_netif nic;
    const char *driver = find_nic(&nic);
    if (!driver) {
        dte_status("net error=no_nic text=\"no virtio-net or ConnectX (mlx5) network function found\"");
        return -1;
    }
    if (net_engine_init(&engine) != 0) {
        return -1;
    }
    dte_proto_config proto = {.key = appliance_key,
                              .key_size = sizeof appliance_key,
                              .engine = net_engine_callbacks(&engine),
                              .send = dte_net_send_to,
                              .send_ctx = &stack,
                              .attest = attest_blob,
                              .extra_counters = extra_counters,
                              .extra_counter_count = EXTRA_COUNTERS,
                              .refresh_counters = refresh_counters,
                              .epoch = boot_epoch(),
                              .now_ns = clock_ns,
                              .idle_timeout_ns = DTE_NET_IDLE_TIMEOUT_S * 1000000000ull,
                              .context_size = net_engine_context(&engine),
                              .model_name = DTE_MODEL_NAME,
                              .model_sha256 = weights_sha256};
    if (dte_proto_init(&server, &proto) != 0) {
        dte_status("net error=proto text=\"the protocol server refused its configuration\"");
        return -1;
    }
    dte_net_config config = {.ipv4 = DTE_NET_IPV4,
                             .netmask = DTE_NET_NETMASK,
                             .gateway = DTE_NET_GATEWAY,
                             .udp_port = (uint16_t)DTE_NET_PORT,
                             .mac = DTE_NET_MAC};
    if (dte_net_init(&stack, &config, &nic, dte_proto_udp_input, &server) != 0) {
        dte_status("net error=nic text=\"%s did not start\"", driver);
        return -1;
    }
    report_ready(driver, &nic);
    for (;;) {   /* one poll between two engine steps: answers stay prompt while a generation runs */
        dte_net_poll(&stack, POLL_BATCH);
        dte_proto_service(&server);
    }
}
