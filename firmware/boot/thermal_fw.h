/* The thermal envelope on bare metal (docs/thermal.md): probes the CPU's sensors once the PCI configuration
 * space is reachable, then the boot core samples them between pieces of work (from dte_parallel_for, at most once
 * per sample period) and applies the governor: fewer active workers above the target, a full stop above the
 * critical temperature until it cools below target - hysteresis. Decisions are status lines
 * `dte: thermal tctl_c=... pkg_w=... workers=... state=...`. Without sensors (QEMU, hypervisors) it reports
 * `state=unavailable reason=...` once and never paces. */
#ifndef DTE_BOOT_THERMAL_FW_H
#define DTE_BOOT_THERMAL_FW_H

#include <stdint.h>

void thermal_fw_start(void);
/* Called by the boot core before each dte_parallel_for job; cheap when no sample is due. */
void thermal_fw_tick(void);

typedef struct {
    uint8_t state;           /* enum dte_governor_state */
    int32_t tctl_mc;         /* last temperature (0 when unavailable) */
    uint32_t pkg_mw;         /* last package power (0 when unavailable) */
    uint32_t workers;        /* workers allowed now */
    uint32_t samples, paced_samples, critical_trips;
} thermal_fw_stats;

void thermal_fw_get_stats(thermal_fw_stats *out);

/* rdmsr that returns -1 instead of faulting (a guarded instruction: panic.h, dte_gp_guard_rip). */
int dte_rdmsr_safe(uint32_t msr, uint64_t *value);

#endif /* DTE_BOOT_THERMAL_FW_H */
