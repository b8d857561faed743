/* Bump allocation over the memory regions reserved before ExitBootServices (runtime, scratch, weights,
 * kv_cache). Nothing is ever freed. */
#ifndef DTE_BOOT_ALLOC_H
#define DTE_BOOT_ALLOC_H

#include <stddef.h>
#include <stdint.h>

struct dte_region {
    const char *name;
    uint64_t base;
    uint64_t size;
    uint64_t used;
};

void alloc_add_region(const char *name, uint64_t base, uint64_t size);

/* The named region, or NULL. */
const struct dte_region *dte_region_find(const char *name);

/* Zeroed memory from the named region; NULL when it is missing or full. `align` is a power of two. */
void *dte_region_alloc(const char *name, size_t size, size_t align);

/* Zeroed memory from the general-purpose regions (runtime, scratch, kv_cache, then weights). */
void *alloc_any(size_t size, size_t align);

#endif /* DTE_BOOT_ALLOC_H */
