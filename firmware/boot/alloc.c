/* Bump allocator over the reserved regions. */
#include "boot/alloc.h"
#include "lib/cstr.h"

#include <stdbool.h>

#define MAX_REGIONS 8

static struct dte_region regions[MAX_REGIONS];
static int region_count;

void *memset(void *dst, int value, size_t n);

void alloc_add_region(const char *name, uint64_t base, uint64_t size)
{
    if (region_count < MAX_REGIONS) {
        regions[region_count++] = (struct dte_region){name, base, size, 0};
    }
}

static struct dte_region *find(const char *name)
{
    for (int i = 0; i < region_count; i++) {
        if (dte_cstr_eq(regions[i].name, name)) {
            return &regions[i];
        }
    }
    return NULL;
}

const struct dte_region *dte_region_find(const char *name)
{
    return find(name);
}

static void *bump(struct dte_region *r, size_t size, size_t align)
{
    if (align == 0) {
        align = 1;
    }
    uint64_t start = (r->base + r->used + (align - 1)) & ~(uint64_t)(align - 1);
    if (start < r->base || start - r->base > r->size || size > r->size - (start - r->base)) {
        return NULL;
    }
    r->used = start - r->base + size;
    void *p = (void *)(uintptr_t)start;
    memset(p, 0, size);
    return p;
}

void *dte_region_alloc(const char *name, size_t size, size_t align)
{
    struct dte_region *r = find(name);
    return r ? bump(r, size, align) : NULL;
}

void *alloc_any(size_t size, size_t align)
{
    static const char *const order[] = {"runtime", "scratch", "kv_cache", "weights"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        void *p = dte_region_alloc(order[i], size, align);
        if (p) {
            return p;
        }
    }
    return NULL;
}
