/* netserve: the C token-protocol server (firmware/net) on the hosted loopnic with a fake engine, for tests.
 *
 *   netserve KEYHEX [delay_us] [seconds] [exact] [idle_timeout_ms] [epoch]
 * prints "netserve proto_port=P raw_port=R" once listening, serves until `seconds` pass (default 60).
 * exact=1: each received frame is copied into a heap block of exactly its size before dte_net_input, so
 * AddressSanitizer catches any read past the frame (instead of dte_net_poll's 2048-byte buffer).
 *
 * Fake engine (tests replicate it in Python) over the real conversation bookkeeping (engine/conversation.c)
 * and a fake KV cache of FAKE_CTX positions that holds token ids: a turn's new tokens are its text's bytes
 * (id = byte value, piece = the byte), appended to the session's transcript (APPEND) or starting it over;
 * the fake cache is truncated to the kept prefix and the rest of the transcript "evaluated" into it; generated
 * token i has id 97 + (seed + 7*i + sum of the ids in the fake cache after the prefill) % 26, piece = that
 * letter, and is "evaluated" into the cache before the next one. So a turn's tokens depend on exactly what
 * the cache holds: a bookkeeping error changes them. It sleeps delay_us before each generated token;
 * prompt_ns = 1000 per evaluated prompt token, generate_ns = 2000 per generated token; a prompt of exactly
 * "FAIL" fails to start. Attestation blob: "FAKEATT1" + SHA-256(nonce).
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/conversation.h"
#include "loopnic.h"
#include "net_stack.h"
#include "proto.h"
#include "sha256.h"

#define STACK_IP 0x0A00020Fu   /* 10.0.2.15 */
#define FAKE_CTX 2048u

typedef struct fake_engine {
    dte_conversations conv;
    int32_t transcripts[DTE_PROTO_SESSIONS * (FAKE_CTX + 1)];
    int32_t cached[FAKE_CTX];
    int32_t kv[FAKE_CTX];          /* the fake KV cache: the ids "evaluated" at each position */
    uint32_t kv_pos;
    dte_conv_turn turn;
    unsigned slot;
    uint32_t prompt_sent;
    uint32_t kv_sum;               /* sum of kv[0 .. kv_pos) after the prefill */
    uint32_t n_predict;
    uint32_t generated;
    int32_t last;                  /* the last generated id, not yet evaluated */
    uint64_t seed;
    uint8_t piece;
    bool prefilled;
    unsigned delay_us;
} fake_engine;

static int fake_start(void *ctx, const dte_proto_request *request)
{
    fake_engine *e = ctx;
    if (request->text_size == 4 && memcmp(request->text, "FAIL", 4) == 0)
        return DTE_ENGINE_START_FAILED;
    int32_t ids[DTE_PROTO_MAX_PAYLOAD];
    for (size_t i = 0; i < request->text_size; i++)
        ids[i] = request->text[i];
    bool continues = request->append && e->conv.owner[request->slot] == request->session;
    if (dte_conv_begin(&e->conv, request->slot, request->session, continues, ids, (uint32_t)request->text_size,
                       &e->turn) != 0)
        return DTE_ENGINE_CONTEXT_FULL;
    if (e->kv_pos > e->turn.keep)
        e->kv_pos = e->turn.keep;   /* dte_llama_ctx_truncate */
    uint32_t used = e->turn.keep + e->turn.n_eval;
    e->slot = request->slot;
    e->prompt_sent = 0;
    e->n_predict = request->n_predict < FAKE_CTX - used ? request->n_predict : FAKE_CTX - used;
    e->generated = 0;
    e->seed = request->seed;
    e->prefilled = false;
    return 0;
}

static void fake_eval(fake_engine *e, const int32_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n && e->kv_pos < FAKE_CTX; i++)
        e->kv[e->kv_pos++] = ids[i];
}

static int fake_step(void *ctx, dte_proto_token *out)
{
    fake_engine *e = ctx;
    uint32_t len;
    const int32_t *ids = dte_conv_transcript(&e->conv, e->slot, &len);
    uint32_t n_new = e->turn.keep + e->turn.n_eval - e->turn.first;
    if (e->prompt_sent < n_new) {
        uint32_t position = e->turn.first + e->prompt_sent++;
        e->piece = (uint8_t)ids[position];
        *out = (dte_proto_token){.id = e->piece, .piece = &e->piece, .piece_size = 1, .is_prompt = true,
                                 .position = position};
        return DTE_ENGINE_STEP_TOKEN;
    }
    if (!e->prefilled) {
        fake_eval(e, e->turn.eval, e->turn.n_eval);
        e->kv_sum = 0;
        for (uint32_t i = 0; i < e->kv_pos; i++)
            e->kv_sum += (uint32_t)e->kv[i];
        e->prefilled = true;
    }
    if (e->generated >= e->n_predict)
        return DTE_ENGINE_STEP_FINISHED;
    if (e->generated > 0)
        fake_eval(e, &e->last, 1);
    if (e->delay_us)
        usleep(e->delay_us);
    e->piece = (uint8_t)(97 + (e->seed + 7u * e->generated + e->kv_sum) % 26);
    e->last = e->piece;
    e->generated++;
    dte_conv_push(&e->conv, e->slot, e->last);
    *out = (dte_proto_token){.id = e->piece, .piece = &e->piece, .piece_size = 1, .is_prompt = false};
    return DTE_ENGINE_STEP_TOKEN;
}

static void fake_finish(void *ctx, dte_proto_result *out)
{
    fake_engine *e = ctx;
    dte_conv_end(&e->conv, e->slot, e->kv_pos);
    uint32_t len;
    dte_conv_transcript(&e->conv, e->slot, &len);
    uint32_t evaluated = e->prefilled ? e->turn.n_eval : 0;
    *out = (dte_proto_result){.reason = len >= FAKE_CTX ? DTE_DONE_CONTEXT_FULL : DTE_DONE_LENGTH,
                              .prompt_tokens = evaluated, .generated_tokens = e->generated,
                              .prompt_ns = 1000u * evaluated, .generate_ns = 2000u * e->generated,
                              .reused_tokens = e->turn.keep, .context_used = len};
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static size_t fake_attest(void *ctx, const uint8_t *nonce, size_t nonce_size, uint8_t *out, size_t capacity)
{
    (void)ctx;
    if (capacity < 8 + DTE_SHA256_DIGEST_SIZE)
        return 0;
    memcpy(out, "FAKEATT1", 8);
    dte_sha256(nonce, nonce_size, out + 8);
    return 8 + DTE_SHA256_DIGEST_SIZE;
}

static int parse_key(const char *hex, uint8_t key[32])
{
    if (strlen(hex) != 64)
        return -1;
    for (int i = 0; i < 32; i++) {
        unsigned byte;
        if (sscanf(hex + 2 * i, "%2x", &byte) != 1)
            return -1;
        key[i] = (uint8_t)byte;
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static dte_net_stack stack;
static dte_proto_server server;
static fake_engine engine;
static loopnic nic;

static int receive_exact(const dte_netif *netif)
{
    static uint8_t frame[DTE_NET_FRAME_MAX];
    size_t size = netif->poll_receive(netif->ctx, frame, sizeof frame);
    if (size == 0)
        return 0;
    uint8_t *copy = malloc(size);
    memcpy(copy, frame, size);
    dte_net_input(&stack, copy, size);
    free(copy);
    return 1;
}

int main(int argc, char **argv)
{
    uint8_t key[32];
    if (argc < 2 || parse_key(argv[1], key) != 0) {
        fprintf(stderr, "usage: netserve KEYHEX [delay_us] [seconds] [exact] [idle_timeout_ms] [epoch|-] "
                        "[model_name] [model_sha256_hex]\n");
        return 2;
    }
    engine.delay_us = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    double seconds = argc > 3 ? atof(argv[3]) : 60.0;
    int exact = argc > 4 && atoi(argv[4]) != 0;
    uint64_t idle_ms = argc > 5 ? strtoull(argv[5], NULL, 10) : 0;
    uint32_t epoch = argc > 6 && strcmp(argv[6], "-") != 0 ? (uint32_t)strtoul(argv[6], NULL, 10) : (uint32_t)now_ns();
    const char *model_name = argc > 7 ? argv[7] : NULL;   /* INFO's answer (docs/protocol.md) */
    static uint8_t model_sha256[32];
    if (argc > 8 && parse_key(argv[8], model_sha256) != 0) {   /* 64 hex digits, like a key */
        fprintf(stderr, "netserve: model_sha256_hex must be 64 hex digits\n");
        return 2;
    }
    dte_conv_init(&engine.conv, FAKE_CTX, DTE_PROTO_SESSIONS, engine.transcripts, engine.cached);
    static const uint8_t nic_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    if (loopnic_open(&nic, 0, 0, nic_mac, STACK_IP, 7777) != 0) {
        perror("netserve: loopnic_open");
        return 1;
    }
    dte_netif netif;
    loopnic_netif(&nic, &netif);
    dte_net_config net_config = {.ipv4 = STACK_IP, .netmask = 0xFFFFFF00u, .gateway = LOOPNIC_PEER_IP,
                                 .udp_port = 7777};
    dte_proto_config proto_config = {
        .key = key, .key_size = sizeof key,
        .engine = {.ctx = &engine, .start = fake_start, .step = fake_step, .finish = fake_finish},
        .send = dte_net_send_to, .send_ctx = &stack, .attest = fake_attest, .attest_ctx = NULL,
        .extra_counters = stack.counters, .extra_counter_count = DTE_NET_COUNTER_COUNT,
        .epoch = epoch, .now_ns = now_ns, .idle_timeout_ns = idle_ms * 1000000u, .context_size = FAKE_CTX,
        .model_name = model_name, .model_sha256 = argc > 8 ? model_sha256 : NULL,
    };
    if (dte_net_init(&stack, &net_config, &netif, dte_proto_udp_input, &server) != 0 ||
        dte_proto_init(&server, &proto_config) != 0) {
        fprintf(stderr, "netserve: init failed\n");
        return 1;
    }
    printf("netserve proto_port=%u raw_port=%u\n", nic.proto_port, nic.raw_port);
    fflush(stdout);
    double deadline = now_s() + seconds;
    while (now_s() < deadline) {
        int frames = exact ? receive_exact(&netif) : dte_net_poll(&stack, 16);
        bool busy = dte_proto_service(&server);
        if (frames == 0 && !busy)
            loopnic_wait(&nic, 20);
    }
    loopnic_close(&nic);
    return 0;
}
