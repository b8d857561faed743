/* The thermal governor (docs/thermal.md): between samples it decides how many workers may run.
 *
 *   critical: Tctl >= critical_mc            -> stop generating (0 workers) until Tctl <= target - hysteresis
 *   hot:      Tctl >= target_mc or power > limit -> cut workers by a quarter (at least 1, never below min)
 *   cool:     Tctl <= target - hysteresis and power <= 95 % of the limit -> add max/16 workers (at least 1)
 *   between:  hold (the deadband keeps it from oscillating)
 * Without any sensor the governor stays `unavailable` and never paces. Platform-free and integer-only, so the
 * hosted tests drive it with a simulated heat curve. */
#ifndef DTE_DRIVERS_THERMAL_GOVERNOR_H
#define DTE_DRIVERS_THERMAL_GOVERNOR_H

#include <stdbool.h>
#include <stdint.h>

#include "drivers/thermal.h"

typedef struct {
    int32_t target_mc, critical_mc, hysteresis_mc;
    uint32_t power_limit_mw;   /* 0: no power limit */
    uint32_t max_workers, min_workers;
} dte_governor_config;

enum dte_governor_state {
    DTE_GOV_UNAVAILABLE = 0,   /* no temperature and no power reading */
    DTE_GOV_NORMAL = 1,        /* every worker runs */
    DTE_GOV_PACED = 2,         /* fewer workers */
    DTE_GOV_CRITICAL = 3,      /* generation stopped until it cools */
};

typedef struct {
    dte_governor_config cfg;
    uint8_t state;             /* enum dte_governor_state */
    uint32_t workers;          /* workers allowed now (0 in CRITICAL) */
    uint32_t samples, paced_samples, critical_trips, changes;
} dte_governor;

void dte_governor_init(dte_governor *g, const dte_governor_config *cfg);
/* Feed one sample; true when the state or the worker count changed (worth a status line). */
bool dte_governor_update(dte_governor *g, const dte_thermal_sample *s);
const char *dte_governor_state_name(uint8_t state);

#endif /* DTE_DRIVERS_THERMAL_GOVERNOR_H */
