/* Trap-and-single-step MMIO emulation (see mmio_trap.h). */
#define _GNU_SOURCE
#include "mmio_trap.h"

#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>

#define MAX_REGIONS 16
#define EFLAGS_TF 0x100ull
#define PF_ERROR_WRITE 0x2ull            /* x86 page-fault error code bit 1 */

struct region {
    uint8_t *base;
    size_t size;
    mmio_trap_hook before, after;
    void *ctx;
};

static struct region regions[MAX_REGIONS];
static struct sigaction old_segv, old_trap;
static bool installed;
static __thread struct region *stepping;
static __thread uint32_t stepping_offset;
static __thread bool stepping_write;

static void chain(const struct sigaction *old, int sig, siginfo_t *info, void *uc)
{
    if (old->sa_flags & SA_SIGINFO && old->sa_sigaction) {
        old->sa_sigaction(sig, info, uc);
        return;
    }
    if (old->sa_handler != SIG_IGN && old->sa_handler != SIG_DFL && old->sa_handler) {
        old->sa_handler(sig);
        return;
    }
    signal(sig, SIG_DFL);                /* re-executing the instruction faults again, fatally */
}

static void on_segv(int sig, siginfo_t *info, void *ucv)
{
    ucontext_t *uc = ucv;
    uint8_t *addr = info->si_addr;
    for (int i = 0; i < MAX_REGIONS; i++) {
        struct region *r = &regions[i];
        if (r->base && addr >= r->base && addr < r->base + r->size) {
            mprotect(r->base, r->size, PROT_READ | PROT_WRITE);
            stepping = r;
            stepping_offset = (uint32_t)(addr - r->base);
            stepping_write = (uc->uc_mcontext.gregs[REG_ERR] & PF_ERROR_WRITE) != 0;
            if (r->before)
                r->before(r->ctx, stepping_offset, stepping_write);
            uc->uc_mcontext.gregs[REG_EFL] |= EFLAGS_TF;
            return;
        }
    }
    chain(&old_segv, sig, info, ucv);
}

static void on_trap(int sig, siginfo_t *info, void *ucv)
{
    ucontext_t *uc = ucv;
    struct region *r = stepping;
    if (!r) {
        chain(&old_trap, sig, info, ucv);
        return;
    }
    uc->uc_mcontext.gregs[REG_EFL] &= ~EFLAGS_TF;
    stepping = NULL;
    if (r->after)
        r->after(r->ctx, stepping_offset, stepping_write);
    if (r->base)
        mprotect(r->base, r->size, PROT_NONE);
}

static void install(void)
{
    if (installed)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sa.sa_sigaction = on_segv;
    sigaction(SIGSEGV, &sa, &old_segv);
    sa.sa_sigaction = on_trap;
    sigaction(SIGTRAP, &sa, &old_trap);
    installed = true;
}

void *mmio_trap_alloc(size_t size)
{
    size_t align = 4096;
    while (align < size)
        align <<= 1;
    uint8_t *raw = mmap(NULL, 2 * align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        return NULL;
    uint8_t *base = (uint8_t *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    if (base > raw)
        munmap(raw, (size_t)(base - raw));
    munmap(base + size, (size_t)(raw + 2 * align - (base + size)));
    return base;
}

void mmio_trap_free(void *base, size_t size)
{
    if (base)
        munmap(base, size);
}

int mmio_trap_register(void *base, size_t size, mmio_trap_hook before, mmio_trap_hook after, void *ctx)
{
    install();
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (!regions[i].base) {
            regions[i] = (struct region){base, size, before, after, ctx};
            mprotect(base, size, PROT_NONE);
            return 0;
        }
    }
    return -1;
}

void mmio_trap_unregister(void *base)
{
    for (int i = 0; i < MAX_REGIONS; i++) {
        if (regions[i].base == base) {
            mprotect(base, regions[i].size, PROT_READ | PROT_WRITE);
            regions[i] = (struct region){0};
        }
    }
}
