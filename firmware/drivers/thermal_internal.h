/* Shared between the thermal sensor files (thermal.c, thermal_amd.c, thermal_intel.c); not for other callers. */
#ifndef DTE_DRIVERS_THERMAL_INTERNAL_H
#define DTE_DRIVERS_THERMAL_INTERNAL_H

#include "drivers/thermal.h"
#include "lib/cstr.h"

/* Reads the energy unit and a first counter value; the reason when unavailable, else NULL (sets t->power). */
const char *thermal_probe_energy(dte_thermal *t, uint32_t unit_msr, uint32_t energy_msr);

void thermal_amd_probe(dte_thermal *t);
void thermal_amd_read(dte_thermal *t, dte_thermal_sample *s);
void thermal_intel_probe(dte_thermal *t);
void thermal_intel_read(dte_thermal *t, dte_thermal_sample *s);

#endif /* DTE_DRIVERS_THERMAL_INTERNAL_H */
