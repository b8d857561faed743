/* The thermal governor's decision rule (drivers/thermal_governor.h). */
#include "drivers/thermal_governor.h"

void dte_governor_init(dte_governor *g, const dte_governor_config *cfg)
{
    *g = (dte_governor){.cfg = *cfg, .state = DTE_GOV_UNAVAILABLE, .workers = cfg->max_workers};
    if (g->cfg.min_workers < 1) {
        g->cfg.min_workers = 1;
    }
    if (g->cfg.min_workers > g->cfg.max_workers) {
        g->cfg.min_workers = g->cfg.max_workers;
    }
}

const char *dte_governor_state_name(uint8_t state)
{
    static const char *const names[] = {"unavailable", "normal", "paced", "critical"};
    return state < sizeof names / sizeof names[0] ? names[state] : "invalid";
}

static bool too_hot(const dte_governor *g, const dte_thermal_sample *s)
{
    bool power_high = s->power_ok && g->cfg.power_limit_mw && s->pkg_mw > g->cfg.power_limit_mw;
    return (s->temp_ok && s->tctl_mc >= g->cfg.target_mc) || power_high;
}

static bool cool_enough(const dte_governor *g, const dte_thermal_sample *s)
{
    bool temp_low = !s->temp_ok || s->tctl_mc <= g->cfg.target_mc - g->cfg.hysteresis_mc;
    bool power_low =
        !s->power_ok || !g->cfg.power_limit_mw || (uint64_t)s->pkg_mw * 100 <= (uint64_t)g->cfg.power_limit_mw * 95;
    return temp_low && power_low;
}

static uint32_t step_down(const dte_governor *g)
{
    uint32_t cut = g->workers / 4 ? g->workers / 4 : 1;
    return g->workers > g->cfg.min_workers + cut ? g->workers - cut : g->cfg.min_workers;
}

static uint32_t step_up(const dte_governor *g)
{
    uint32_t add = g->cfg.max_workers / 16 ? g->cfg.max_workers / 16 : 1;
    return g->workers + add < g->cfg.max_workers ? g->workers + add : g->cfg.max_workers;
}

static void decide(dte_governor *g, const dte_thermal_sample *s)
{
    if (!s->temp_ok && !s->power_ok) {
        g->state = DTE_GOV_UNAVAILABLE;
        g->workers = g->cfg.max_workers;
        return;
    }
    if (s->temp_ok && s->tctl_mc >= g->cfg.critical_mc) {
        g->critical_trips += g->state != DTE_GOV_CRITICAL;
        g->state = DTE_GOV_CRITICAL;
        g->workers = 0;
        return;
    }
    if (g->state == DTE_GOV_CRITICAL) {   /* recover only below target - hysteresis, at half strength */
        if (!cool_enough(g, s)) {
            return;
        }
        g->workers = g->cfg.max_workers / 2 > g->cfg.min_workers ? g->cfg.max_workers / 2 : g->cfg.min_workers;
    } else if (too_hot(g, s)) {
        g->workers = step_down(g);
    } else if (cool_enough(g, s)) {
        g->workers = step_up(g);
    }
    g->state = g->workers >= g->cfg.max_workers ? DTE_GOV_NORMAL : DTE_GOV_PACED;
}

bool dte_governor_update(dte_governor *g, const dte_thermal_sample *s)
{
    uint8_t state = g->state;
    uint32_t workers = g->workers;
    decide(g, s);
    g->samples++;
    g->paced_samples += g->state == DTE_GOV_PACED || g->state == DTE_GOV_CRITICAL;
    bool changed = state != g->state || workers != g->workers;
    g->changes += changed;
    return changed;
}
