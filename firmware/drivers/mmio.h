/* Register access for drivers: volatile MMIO loads/stores of 8/16/32/64 bits and x86 port I/O.
 *
 * Drivers take a BAR as a plain pointer. On the firmware memory is identity-mapped, so the BAR's physical address
 * is the pointer; in hosted tests the "BAR" is ordinary memory watched by a device model thread. The compiler
 * barrier in each accessor keeps DMA-buffer writes ordered before a doorbell store (x86 keeps stores in order).
 */
#ifndef DTE_DRIVERS_MMIO_H
#define DTE_DRIVERS_MMIO_H

#include <stdint.h>

#define MMIO_BARRIER() __asm__ __volatile__("" ::: "memory")

static inline uint8_t mmio_read8(const volatile void *base, uint32_t off)
{
    MMIO_BARRIER();
    return *(const volatile uint8_t *)((const volatile uint8_t *)base + off);
}

static inline uint16_t mmio_read16(const volatile void *base, uint32_t off)
{
    MMIO_BARRIER();
    return *(const volatile uint16_t *)((const volatile uint8_t *)base + off);
}

static inline uint32_t mmio_read32(const volatile void *base, uint32_t off)
{
    MMIO_BARRIER();
    return *(const volatile uint32_t *)((const volatile uint8_t *)base + off);
}

/* Two 32-bit halves, low first: a 64-bit register may be read as two dwords (NVMe 2.0 section 3.1.3 allows
 * either; PCIe config space is dword-only). */
static inline uint64_t mmio_read64(const volatile void *base, uint32_t off)
{
    uint64_t lo = mmio_read32(base, off);
    uint64_t hi = mmio_read32(base, off + 4);
    return lo | (hi << 32);
}

static inline void mmio_write8(volatile void *base, uint32_t off, uint8_t v)
{
    MMIO_BARRIER();
    *(volatile uint8_t *)((volatile uint8_t *)base + off) = v;
    MMIO_BARRIER();
}

static inline void mmio_write16(volatile void *base, uint32_t off, uint16_t v)
{
    MMIO_BARRIER();
    *(volatile uint16_t *)((volatile uint8_t *)base + off) = v;
    MMIO_BARRIER();
}

static inline void mmio_write32(volatile void *base, uint32_t off, uint32_t v)
{
    MMIO_BARRIER();
    *(volatile uint32_t *)((volatile uint8_t *)base + off) = v;
    MMIO_BARRIER();
}

static inline void mmio_write64(volatile void *base, uint32_t off, uint64_t v)
{
    mmio_write32(base, off, (uint32_t)v);
    mmio_write32(base, off + 4, (uint32_t)(v >> 32));
}

static inline void cpu_relax(void)
{
    __asm__ __volatile__("pause" ::: "memory");
}

static inline void port_out32(uint16_t port, uint32_t v)
{
    __asm__ __volatile__("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint32_t port_in32(uint16_t port)
{
    uint32_t v;
    __asm__ __volatile__("inl %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

#endif /* DTE_DRIVERS_MMIO_H */
