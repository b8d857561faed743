/* Test-only UEFI application: runs the virtio-net driver and the C network stack against QEMU's virtio-net-pci
 * device (user networking). It leaves boot services (so OVMF's own virtio-net/SNP driver stops touching the
 * device), finds ECAM through ACPI MCFG, enumerates PCI, brings the NIC up with dte_net_init, logs
 * `dte: probe listening ...`, then echoes UDP datagrams on port 7777 back to their sender with "echo:" in front
 * (the host reaches it through hostfwd), and exits QEMU through isa-debug-exit (0x10 after `ECHO_COUNT` echoes,
 * 0x11 on failure or after PROBE_SECONDS). Platform functions: probe_platform.c (shared by probes). */
#include <stdbool.h>

#include "drivers/acpi.h"
#include "drivers/pci.h"
#include "drivers/virtio_net.h"
#include "lib/fmt.h"
#include "net/net_stack.h"
#include "probe_platform.h"

#define HEAP_BYTES (8ull << 20)
#define PROBE_SECONDS 60u
#define ECHO_COUNT 3
#define GUEST_IP 0x0A00020Fu   /* 10.0.2.15, QEMU user networking's guest address */
#define GATEWAY 0x0A000202u    /* 10.0.2.2 */
#define PORT 7777

static void fail(const char *line)
{
    dte_log(line);
    probe_exit(0x11);
}

struct echo {
    dte_net_stack *stack;
    int echoed;
    uint32_t ip;
    uint16_t port;
    uint8_t reply[600];
    size_t size;                 /* pending reply (0: none) */
};

static void on_udp(void *ctx, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size)
{
    struct echo *e = ctx;
    if (size + 5 > sizeof e->reply)
        return;
    const char *prefix = "echo:";
    for (int i = 0; i < 5; i++)
        e->reply[i] = (uint8_t)prefix[i];
    for (size_t i = 0; i < size; i++)
        e->reply[5 + i] = data[i];
    e->size = size + 5;
    e->ip = src_ip;
    e->port = src_port;
}

efi_status EFIAPI efi_main(efi_handle image, efi_system_table *st)
{
    probe_init(st, HEAP_BYTES);
    const void *rsdp = acpi_rsdp_from_uefi(st->configuration_table, st->number_of_table_entries);
    if (probe_exit_boot_services(image, st->boot_services) != 0)
        fail("dte: probe error=exit_boot_services");
    struct acpi_mcfg_entry ecam;
    const void *mcfg = rsdp ? acpi_find_table(rsdp, "MCFG") : 0;
    if (!mcfg || !acpi_mcfg_entry(mcfg, 0, &ecam))
        fail("dte: probe error=no_mcfg");
    pci_init_ecam(ecam.base, ecam.bus_start, ecam.bus_end);
    pci_enumerate();
    pci_log_devices();
    struct virtio_net *vn = virtio_net_find(0);
    if (!vn)
        fail("dte: probe error=no_virtio_net");
    static dte_netif nic;
    static dte_net_stack stack;
    static struct echo echo;
    echo.stack = &stack;
    virtio_net_netif(vn, &nic);
    dte_net_config cfg = {.ipv4 = GUEST_IP, .netmask = 0xFFFFFF00u, .gateway = GATEWAY, .udp_port = PORT};
    if (dte_net_init(&stack, &cfg, &nic, on_udp, &echo) != 0)
        fail("dte: probe error=net_init");
    char line[160];
    dte_fmt(line, sizeof line, "dte: probe listening ip=10.0.2.15 port=%d link=%d", PORT, nic.link_up(nic.ctx) ? 1 : 0);
    dte_log(line);
    uint64_t deadline = dte_time_ns() + PROBE_SECONDS * 1000000000ull;
    while (dte_time_ns() < deadline) {
        dte_net_poll(&stack, 16);
        if (echo.size && dte_net_udp_send(&stack, echo.ip, echo.port, echo.reply, echo.size) == 0) {
            echo.size = 0;
            dte_fmt(line, sizeof line, "dte: probe echoed n=%d", ++echo.echoed);
            dte_log(line);
            if (echo.echoed == ECHO_COUNT) {
                uint64_t drain = dte_time_ns() + 200000000ull;   /* let the device send it */
                while (dte_time_ns() < drain)
                    dte_net_poll(&stack, 16);
                probe_exit(0x10);
            }
        }
    }
    fail("dte: probe error=timeout");
    return 0;
}
