/* Test-only UEFI application: runs the virtio-net driver and the C network stack against QEMU's virtio-net-pci
 * device (user networking). It leaves boot services (so OVMF's own virtio-net/SNP driver stops touching the
 * device), finds ECAM through ACPI MCFG, enumerates PCI, brings the NIC up with dte_net_init, logs
 * `dte: probe listening ...`, then echoes UDP datagrams on port 7777 back to their sender with "echo:" in front
 * (the host reaches it through hostfwd), and exits QEMU through isa-debug-exit (0x10 after `ECHO_COUNT` echoes,
 * 0x11 on failure or after PROBE_SECONDS). */
#include <stdbool.h>

#include "boot/efi.h"
#include "drivers/acpi.h"
#include "drivers/mmio.h"
#include "drivers/pci.h"
#include "drivers/virtio_net.h"
#include "engine/platform.h"
#include "lib/fmt.h"
#include "net/net_stack.h"

#define HEAP_BYTES (8ull << 20)
#define PROBE_SECONDS 60u
#define ECHO_COUNT 3
#define GUEST_IP 0x0A00020Fu   /* 10.0.2.15, QEMU user networking's guest address */
#define GATEWAY 0x0A000202u    /* 10.0.2.2 */
#define PORT 7777

static uint8_t *heap;
static uint64_t heap_used;
static uint64_t tsc_per_us = 1000;

static uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

void *dte_alloc(size_t size, size_t align)
{
    uint64_t start = (heap_used + align - 1) & ~(uint64_t)(align - 1);
    if (!heap || start + size > HEAP_BYTES)
        return 0;
    heap_used = start + size;
    for (size_t i = 0; i < size; i++)
        heap[start + i] = 0;
    return heap + start;
}

static void serial_byte(uint8_t c)
{
    for (int i = 0; i < 100000; i++) {
        uint8_t lsr;
        __asm__ __volatile__("inb %1, %0" : "=a"(lsr) : "Nd"((uint16_t)0x3FD));
        if (lsr & 0x20)
            break;
    }
    __asm__ __volatile__("outb %0, %1" : : "a"(c), "Nd"((uint16_t)0x3F8));
}

void dte_log(const char *line)
{
    while (*line)
        serial_byte((uint8_t)*line++);
    serial_byte('\r');
    serial_byte('\n');
}

uint64_t dte_time_ns(void)
{
    return rdtsc() * 1000u / tsc_per_us;
}

int dte_parallel_for(int64_t n, dte_range_fn fn, void *arg)
{
    fn(arg, 0, n, 0);
    return 0;
}

int dte_worker_count(void)
{
    return 1;
}

static __attribute__((noreturn)) void qemu_exit(uint32_t code)
{
    dte_log(code == 0x10 ? "dte: exit status=ok" : "dte: exit status=failed");
    port_out32(0xF4, code);
    for (;;)
        __asm__ __volatile__("hlt");
}

static void fail(const char *line)
{
    dte_log(line);
    qemu_exit(0x11);
}

static int leave_boot_services(efi_handle image, efi_boot_services *bs)
{
    static uint8_t map[64 * 1024];
    for (int tries = 0; tries < 4; tries++) {
        efi_uintn size = sizeof map, key = 0, desc_size = 0;
        uint32_t desc_version = 0;
        if (EFI_IS_ERROR(bs->get_memory_map(&size, (efi_memory_descriptor *)map, &key, &desc_size, &desc_version)))
            return -1;
        if (!EFI_IS_ERROR(bs->exit_boot_services(image, key)))
            return 0;
    }
    return -1;
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
    efi_boot_services *bs = st->boot_services;
    bs->set_watchdog_timer(0, 0, 0, 0);
    uint64_t t0 = rdtsc();
    bs->stall(10000);
    tsc_per_us = (rdtsc() - t0) / 10000u;
    if (!tsc_per_us)
        tsc_per_us = 1;
    efi_physical_addr p = 0;
    if (EFI_IS_ERROR(bs->allocate_pages(AllocateAnyPages, EfiLoaderData, HEAP_BYTES / 4096, &p)))
        qemu_exit(0x11);
    heap = (uint8_t *)(uintptr_t)p;
    const void *rsdp = acpi_rsdp_from_uefi(st->configuration_table, st->number_of_table_entries);
    if (leave_boot_services(image, bs) != 0)
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
                qemu_exit(0x10);
            }
        }
    }
    fail("dte: probe error=timeout");
    return 0;
}
