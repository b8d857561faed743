/* HMAC-SHA256: H((K ^ opad) || H((K ^ ipad) || message)), RFC 2104 §2 with B = 64, L = 32. */
#include "lib/hmac_sha256.h"

#define IPAD 0x36u
#define OPAD 0x5cu

static void hash_padded_key(dte_sha256_ctx *ctx, const uint8_t block_key[DTE_SHA256_BLOCK_SIZE], uint8_t pad)
{
    uint8_t padded[DTE_SHA256_BLOCK_SIZE];
    for (unsigned i = 0; i < DTE_SHA256_BLOCK_SIZE; i++) {
        padded[i] = (uint8_t)(block_key[i] ^ pad);
    }
    dte_sha256_init(ctx);
    dte_sha256_update(ctx, padded, sizeof padded);
}

void dte_hmac_sha256_setkey(dte_hmac_sha256_key *prepared, const uint8_t *key, size_t key_size)
{
    uint8_t block_key[DTE_SHA256_BLOCK_SIZE];
    for (unsigned i = 0; i < DTE_SHA256_BLOCK_SIZE; i++) {
        block_key[i] = 0;
    }
    if (key_size > DTE_SHA256_BLOCK_SIZE) {
        dte_sha256(key, key_size, block_key);   /* RFC 2104 §2: K = H(K) when longer than B */
    } else {
        for (size_t i = 0; i < key_size; i++) {
            block_key[i] = key[i];
        }
    }
    hash_padded_key(&prepared->inner, block_key, IPAD);
    hash_padded_key(&prepared->outer, block_key, OPAD);
}

void dte_hmac_sha256_start(dte_hmac_sha256_ctx *ctx, const dte_hmac_sha256_key *prepared)
{
    ctx->inner = prepared->inner;
    ctx->outer = prepared->outer;
}

void dte_hmac_sha256_update(dte_hmac_sha256_ctx *ctx, const void *data, size_t size)
{
    dte_sha256_update(&ctx->inner, data, size);
}

void dte_hmac_sha256_finish(dte_hmac_sha256_ctx *ctx, uint8_t tag[DTE_SHA256_DIGEST_SIZE])
{
    uint8_t inner_digest[DTE_SHA256_DIGEST_SIZE];
    dte_sha256_final(&ctx->inner, inner_digest);
    dte_sha256_update(&ctx->outer, inner_digest, sizeof inner_digest);
    dte_sha256_final(&ctx->outer, tag);
}

void dte_hmac_sha256(const dte_hmac_sha256_key *prepared, const void *data, size_t size,
                     uint8_t tag[DTE_SHA256_DIGEST_SIZE])
{
    dte_hmac_sha256_ctx ctx;
    dte_hmac_sha256_start(&ctx, prepared);
    dte_hmac_sha256_update(&ctx, data, size);
    dte_hmac_sha256_finish(&ctx, tag);
}

bool dte_bytes_equal_ct(const uint8_t *a, const uint8_t *b, size_t size)
{
    volatile uint8_t difference = 0;
    for (size_t i = 0; i < size; i++) {
        difference = (uint8_t)(difference | (a[i] ^ b[i]));
    }
    return difference == 0;
}

bool dte_hmac_sha256_verify(const dte_hmac_sha256_key *prepared, const void *data, size_t size,
                            const uint8_t tag[DTE_SHA256_DIGEST_SIZE])
{
    uint8_t expected[DTE_SHA256_DIGEST_SIZE];
    dte_hmac_sha256(prepared, data, size, expected);
    return dte_bytes_equal_ct(expected, tag, DTE_SHA256_DIGEST_SIZE);
}
