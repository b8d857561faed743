/* SHA-256 per FIPS 180-4 (section numbers below refer to it).
 *
 * Two block functions: portable C, and the x86 SHA extensions (Intel SDM Vol. 2, SHA256RNDS2/SHA256MSG1/
 * SHA256MSG2; CPUID.(EAX=7,ECX=0):EBX bit 29) used when the CPU has them. Both are tested against hashlib.
 */
#include "lib/sha256.h"

#include <stdbool.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* §4.2.2: the first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr32(uint32_t x, unsigned n)
{
    return (x >> n) | (x << (32u - n));
}

static uint32_t load_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* §6.2.2: process one 512-bit block. */
static void compress_block_generic(uint32_t state[8], const uint8_t block[DTE_SHA256_BLOCK_SIZE])
{
    uint32_t w[64];
    for (unsigned t = 0; t < 16; t++) {
        w[t] = load_be32(block + 4 * t);
    }
    for (unsigned t = 16; t < 64; t++) {
        uint32_t s0 = rotr32(w[t - 15], 7) ^ rotr32(w[t - 15], 18) ^ (w[t - 15] >> 3);   /* σ0, §4.1.2 */
        uint32_t s1 = rotr32(w[t - 2], 17) ^ rotr32(w[t - 2], 19) ^ (w[t - 2] >> 10);    /* σ1 */
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (unsigned t = 0; t < 64; t++) {
        uint32_t big_s1 = rotr32(e, 6) ^ rotr32(e, 11) ^ rotr32(e, 25);   /* Σ1 */
        uint32_t ch = (e & f) ^ (~e & g);
        uint32_t t1 = h + big_s1 + ch + round_constants[t] + w[t];
        uint32_t big_s0 = rotr32(a, 2) ^ rotr32(a, 13) ^ rotr32(a, 22);   /* Σ0 */
        uint32_t maj = (a & b) ^ (a & c) ^ (b & c);
        uint32_t t2 = big_s0 + maj;
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
    state[5] += f;
    state[6] += g;
    state[7] += h;
}

#if defined(__x86_64__)
#define SHA_TARGET __attribute__((target("sha,sse4.1,ssse3")))

/* The 64 rounds of §6.2.2 with SHA256RNDS2 (two rounds per instruction on the ABEF/CDGH state halves); the
 * message schedule of §6.2.2 step 1 with SHA256MSG1 (+ W[t-16] + σ0), PALIGNR (W[t-7]) and SHA256MSG2 (σ1). */
SHA_TARGET static void compress_blocks_shani(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    const __m128i byte_swap = _mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
    __m128i dcba = _mm_loadu_si128((const __m128i *)&state[0]);
    __m128i hgfe = _mm_loadu_si128((const __m128i *)&state[4]);
    __m128i cdab = _mm_shuffle_epi32(dcba, 0xB1);
    __m128i efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(cdab, efgh, 8);
    __m128i cdgh = _mm_blend_epi16(efgh, cdab, 0xF0);
    for (; blocks > 0; blocks--, data += DTE_SHA256_BLOCK_SIZE) {
        __m128i abef_in = abef, cdgh_in = cdgh, w[16];
        for (unsigned i = 0; i < 16; i++) {
            if (i < 4) {
                w[i] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * i)), byte_swap);
            } else {
                __m128i t = _mm_sha256msg1_epu32(w[i - 4], w[i - 3]);
                t = _mm_add_epi32(t, _mm_alignr_epi8(w[i - 1], w[i - 2], 4));
                w[i] = _mm_sha256msg2_epu32(t, w[i - 1]);
            }
            __m128i msg = _mm_add_epi32(w[i], _mm_loadu_si128((const __m128i *)&round_constants[4 * i]));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, msg);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(msg, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B);
    __m128i dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)&state[0], _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)&state[4], _mm_alignr_epi8(dchg, feba, 8));
}

static bool cpu_has_sha_extensions(void)
{
    uint32_t eax = 0, ebx, ecx = 0, edx;
    __asm__ __volatile__("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    if (eax < 7) {
        return false;
    }
    eax = 7;
    ecx = 0;
    __asm__ __volatile__("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    bool sha = (ebx >> 29) & 1u;            /* CPUID.(EAX=7,ECX=0):EBX.SHA[bit 29] */
    eax = 1;
    __asm__ __volatile__("cpuid" : "+a"(eax), "=b"(ebx), "+c"(ecx), "=d"(edx));
    bool sse41_ssse3 = ((ecx >> 19) & 1u) && ((ecx >> 9) & 1u);   /* CPUID.1:ECX SSE4.1[19], SSSE3[9] */
    return sha && sse41_ssse3;
}
#endif

/* 0: not yet decided, 1: portable C, 2: SHA extensions. */
static int block_function;

int dte_sha256_select(int which)
{
#if defined(__x86_64__)
    if (which == DTE_SHA256_AUTO) {
        which = cpu_has_sha_extensions() ? DTE_SHA256_SHA_EXTENSIONS : DTE_SHA256_PORTABLE;
    }
    if (which == DTE_SHA256_SHA_EXTENSIONS && !cpu_has_sha_extensions()) {
        which = DTE_SHA256_PORTABLE;
    }
#else
    which = DTE_SHA256_PORTABLE;
#endif
    block_function = which;
    return which;
}

static void compress_blocks(uint32_t state[8], const uint8_t *data, size_t blocks)
{
    if (block_function == 0) {
        dte_sha256_select(DTE_SHA256_AUTO);
    }
#if defined(__x86_64__)
    if (block_function == DTE_SHA256_SHA_EXTENSIONS) {
        compress_blocks_shani(state, data, blocks);
        return;
    }
#endif
    for (; blocks > 0; blocks--, data += DTE_SHA256_BLOCK_SIZE) {
        compress_block_generic(state, data);
    }
}

void dte_sha256_init(dte_sha256_ctx *ctx)
{
    /* §5.3.3: initial hash value. */
    static const uint32_t initial[8] = {
        0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
    };
    for (unsigned i = 0; i < 8; i++) {
        ctx->state[i] = initial[i];
    }
    ctx->total_bytes = 0;
    ctx->block_used = 0;
}

void dte_sha256_update(dte_sha256_ctx *ctx, const void *data, size_t size)
{
    const uint8_t *bytes = (const uint8_t *)data;
    ctx->total_bytes += size;
    if (ctx->block_used > 0) {
        while (size > 0 && ctx->block_used < DTE_SHA256_BLOCK_SIZE) {
            ctx->block[ctx->block_used++] = *bytes++;
            size--;
        }
        if (ctx->block_used < DTE_SHA256_BLOCK_SIZE) {
            return;
        }
        compress_blocks(ctx->state, ctx->block, 1);
        ctx->block_used = 0;
    }
    size_t whole = size / DTE_SHA256_BLOCK_SIZE;
    if (whole > 0) {
        compress_blocks(ctx->state, bytes, whole);
        bytes += whole * DTE_SHA256_BLOCK_SIZE;
        size -= whole * DTE_SHA256_BLOCK_SIZE;
    }
    while (size > 0) {
        ctx->block[ctx->block_used++] = *bytes++;
        size--;
    }
}

void dte_sha256_final(dte_sha256_ctx *ctx, uint8_t digest[DTE_SHA256_DIGEST_SIZE])
{
    /* §5.1.1: append 0x80, zero-pad to 56 mod 64, then the bit length as a 64-bit big-endian integer. */
    uint64_t bit_length = ctx->total_bytes * 8u;
    ctx->block[ctx->block_used++] = 0x80;
    if (ctx->block_used > 56) {
        while (ctx->block_used < DTE_SHA256_BLOCK_SIZE) {
            ctx->block[ctx->block_used++] = 0;
        }
        compress_blocks(ctx->state, ctx->block, 1);
        ctx->block_used = 0;
    }
    while (ctx->block_used < 56) {
        ctx->block[ctx->block_used++] = 0;
    }
    store_be32(ctx->block + 56, (uint32_t)(bit_length >> 32));
    store_be32(ctx->block + 60, (uint32_t)bit_length);
    compress_blocks(ctx->state, ctx->block, 1);
    for (unsigned i = 0; i < 8; i++) {
        store_be32(digest + 4 * i, ctx->state[i]);
    }
    ctx->block_used = 0;
}

void dte_sha256(const void *data, size_t size, uint8_t digest[DTE_SHA256_DIGEST_SIZE])
{
    dte_sha256_ctx ctx;
    dte_sha256_init(&ctx);
    dte_sha256_update(&ctx, data, size);
    dte_sha256_final(&ctx, digest);
}
