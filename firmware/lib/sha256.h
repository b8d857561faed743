/* SHA-256 (FIPS 180-4), freestanding and platform-free: built into the firmware and the hosted library.
 *
 * Streaming use: dte_sha256_init, any number of dte_sha256_update calls, dte_sha256_final.
 * The context is a plain value: copying it forks the hash state (HMAC uses that for precomputed keys).
 */
#ifndef DTE_LIB_SHA256_H
#define DTE_LIB_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define DTE_SHA256_DIGEST_SIZE 32u
#define DTE_SHA256_BLOCK_SIZE 64u

typedef struct dte_sha256_ctx {
    uint32_t state[8];                     /* H0..H7, FIPS 180-4 §5.3.3 */
    uint64_t total_bytes;                  /* message length so far */
    uint8_t block[DTE_SHA256_BLOCK_SIZE];  /* partial block */
    uint32_t block_used;
} dte_sha256_ctx;

void dte_sha256_init(dte_sha256_ctx *ctx);
void dte_sha256_update(dte_sha256_ctx *ctx, const void *data, size_t size);
/* Writes the digest; the context must be re-initialised before reuse. */
void dte_sha256_final(dte_sha256_ctx *ctx, uint8_t digest[DTE_SHA256_DIGEST_SIZE]);
/* One-shot convenience. */
void dte_sha256(const void *data, size_t size, uint8_t digest[DTE_SHA256_DIGEST_SIZE]);

/* Which block function hashes: chosen automatically on first use (the x86 SHA extensions when CPUID reports
 * them, else portable C). Tests and benchmarks may force one; asking for SHA extensions on a CPU without them
 * gives portable C. Returns the one now in use. Not thread-safe: call before hashing on several cores. */
#define DTE_SHA256_AUTO 0
#define DTE_SHA256_PORTABLE 1
#define DTE_SHA256_SHA_EXTENSIONS 2
int dte_sha256_select(int which);

#endif
