/* The appliance's main line: before ExitBootServices, read the weights manifest and the ACPI RSDP (and, when the
 * build asks for the benchmark, time the firmware's own Block I/O path); after it, load + verify the weights with
 * our NVMe driver and run the engine on the build-time prompt. */
#include "boot/appliance.h"

#include "boot/alloc.h"
#include "boot/attest.h"
#include "boot/blockio_bench.h"
#include "boot/io.h"
#include "boot/net_serve.h"
#include "boot/run_engine.h"
#include "boot/status.h"
#include "boot/thermal_fw.h"
#include "boot/timer.h"
#include "boot/weights_load.h"
#include "boot/weights_manifest.h"
#include "boot/weights_stream.h"
#include "drivers/acpi.h"
#include "dte_config.h"

#ifndef DTE_BENCH_BLOCKIO
#define DTE_BENCH_BLOCKIO 0
#endif

static struct weights_manifest manifest;
static struct blockio_bench blockio;
static uint64_t platform_ns;

/* Nanoseconds from CPU reset (TSC 0) to the firmware clock's start. */
static uint64_t since_reset_ns(uint64_t tsc_hz)
{
    uint64_t now_tsc = cpu_rdtsc(), now_ns = timer_ns();
    uint64_t total_ns = (now_tsc / tsc_hz) * 1000000000ULL + (now_tsc % tsc_hz) * 1000000000ULL / tsc_hz;
    return total_ns > now_ns ? total_ns - now_ns : 0;
}

static void bench_blockio(efi_boot_services *bs)
{
    const struct dte_region *region = dte_region_find("weights");
    if (!region || manifest.model_size == 0) {
        return;
    }
    uint64_t block_room = 4096;   /* the read rounds up to whole blocks */
    uint64_t bytes = manifest.model_size + block_room <= region->size ? manifest.model_size : region->size - block_room;
    /* Scratch use of the (still empty) weights region: our driver overwrites it after ExitBootServices. */
    blockio_bench_read(bs, manifest.weights_lba * (uint64_t)DTE_SECTOR_SIZE, bytes, (uint8_t *)(uintptr_t)region->base,
                       &blockio);
}

int dte_main_before_exit(efi_handle image, efi_system_table *system_table, struct dte_boot_info *info)
{
    platform_ns = since_reset_ns(info->tsc_hz);
    dte_status("acpi rsdp=0x%llx", (unsigned long long)(uintptr_t)info->rsdp);
    if (weights_manifest_read(image, system_table, &manifest) != 0) {
        return APPLIANCE_NO_MANIFEST;
    }
    attest_measure(image, system_table, info, &manifest, info->rsdp);   /* + TPM extend; before ExitBootServices */
    if (DTE_BENCH_BLOCKIO) {
        bench_blockio(system_table->boot_services);
    }
    return 0;
}

static void report_bench(const struct weights_loaded *w)
{
    double uefi = blockio.ns ? (double)blockio.bytes * 1e9 / (double)blockio.ns / 1048576.0 : 0.0;
    double ours = w->read_ns ? (double)w->resident_bytes * 1e9 / (double)w->read_ns / 1048576.0 : 0.0;
    dte_status("bench blockio_bytes=%llu blockio_ms=%llu blockio_mib_per_s=%.1f dte_bytes=%llu dte_ms=%llu "
               "dte_mib_per_s=%.1f ratio=%.2f",
               (unsigned long long)blockio.bytes, (unsigned long long)(blockio.ns / 1000000u), uefi,
               (unsigned long long)w->resident_bytes, (unsigned long long)(w->read_ns / 1000000u), ours,
               uefi > 0 ? ours / uefi : 0.0);
}

int dte_main_after_exit(const struct dte_boot_info *info)
{
    dte_status("ready");
    static struct weights_loaded weights;
    struct boot_times times = {.platform_ns = platform_ns, .firmware_ns = timer_ns()};
    if (weights_load(&manifest, info->rsdp, &weights) != 0) {
        return APPLIANCE_WEIGHTS;
    }
    if (attest_weights_loaded(weights.data, weights.resident_bytes, weights.model_size, weights.layout) != 0) {
        return APPLIANCE_WEIGHTS;
    }
    thermal_fw_start();   /* the PCI configuration space is up now (the storage driver brought it) */
    times.load_ns = weights.read_ns;
    times.verify_ns = weights.verify_ns;
    if (blockio.bytes) {
        report_bench(&weights);
    }
    if (run_engine(&weights, &times) != 0) {
        return APPLIANCE_ENGINE;
    }
    if (weights.streaming) {
        weights_stream_report();
    }
    if (net_serve_enabled() && net_serve(manifest.sha256) != 0) {   /* serves forever on success */
        return APPLIANCE_NET;
    }
    return 0;
}
