/* HMAC-SHA256 (RFC 2104, FIPS 198-1), freestanding and platform-free.
 *
 * A key is prepared once (dte_hmac_sha256_setkey precomputes the inner and outer pad states), then each
 * message costs only its own blocks plus one outer block: that is what the token protocol does per frame.
 */
#ifndef DTE_LIB_HMAC_SHA256_H
#define DTE_LIB_HMAC_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/sha256.h"

typedef struct dte_hmac_sha256_key {
    dte_sha256_ctx inner;   /* state after hashing K xor ipad */
    dte_sha256_ctx outer;   /* state after hashing K xor opad */
} dte_hmac_sha256_key;

typedef struct dte_hmac_sha256_ctx {
    dte_sha256_ctx inner;
    dte_sha256_ctx outer;
} dte_hmac_sha256_ctx;

/* Any key length; keys longer than 64 bytes are hashed first (RFC 2104 §2). */
void dte_hmac_sha256_setkey(dte_hmac_sha256_key *prepared, const uint8_t *key, size_t key_size);
void dte_hmac_sha256_start(dte_hmac_sha256_ctx *ctx, const dte_hmac_sha256_key *prepared);
void dte_hmac_sha256_update(dte_hmac_sha256_ctx *ctx, const void *data, size_t size);
void dte_hmac_sha256_finish(dte_hmac_sha256_ctx *ctx, uint8_t tag[DTE_SHA256_DIGEST_SIZE]);

/* One-shot tag with a prepared key. */
void dte_hmac_sha256(const dte_hmac_sha256_key *prepared, const void *data, size_t size,
                     uint8_t tag[DTE_SHA256_DIGEST_SIZE]);
/* True when `tag` is the tag of data; compares in constant time. */
bool dte_hmac_sha256_verify(const dte_hmac_sha256_key *prepared, const void *data, size_t size,
                            const uint8_t tag[DTE_SHA256_DIGEST_SIZE]);
/* Constant-time equality of two byte strings of the same size (no early exit on the first difference). */
bool dte_bytes_equal_ct(const uint8_t *a, const uint8_t *b, size_t size);

#endif
