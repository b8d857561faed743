/* The appliance's one job after the weights are in: parse the GGUF, build the model, tokenize the build-time
 * prompt (DTE_PROMPT), generate DTE_N_PREDICT tokens with the build-time sampling settings, stream the text to
 * the serial console and report ids and speeds as status lines. */
#ifndef DTE_BOOT_RUN_ENGINE_H
#define DTE_BOOT_RUN_ENGINE_H

#include <stdint.h>

#include "boot/weights_load.h"
#include "engine/engine.h"
#include "engine/sampler.h"

/* Times (timer_ns) that make up boot-to-first-token, filled in by the appliance. */
struct boot_times {
    uint64_t platform_ns;   /* CPU reset (TSC 0) to efi_main's clock start: platform firmware + boot loader */
    uint64_t firmware_ns;   /* efi_main's clock start to the weights load (CPU, regions, manifest, EBS, PCI) */
    uint64_t load_ns;       /* NVMe reads */
    uint64_t verify_ns;     /* CRC32C */
};

/* 0 on success; -1 after logging `dte: engine error=... text="..."`. */
int run_engine(const struct weights_loaded *weights, const struct boot_times *times);

/* The engine session run_engine opened and its sampler, for the network server (boot/net_engine.c). Returns -1
 * when run_engine has not succeeded. */
struct engine_parts {
    dte_engine *engine;
    dte_sampler *sampler;
};
int run_engine_parts(struct engine_parts *out);

#endif /* DTE_BOOT_RUN_ENGINE_H */
