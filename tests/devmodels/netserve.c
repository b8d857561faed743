/* netserve: the C token-protocol server (firmware/net) on the hosted loopnic with a fake engine, for tests.
 *
 *   netserve KEYHEX [delay_us] [seconds] [exact]
 * prints "netserve proto_port=P raw_port=R" once listening, serves until `seconds` pass (default 60).
 * exact=1: each received frame is copied into a heap block of exactly its size before dte_net_input, so
 * AddressSanitizer catches any read past the frame (instead of dte_net_poll's 2048-byte buffer).
 *
 * Fake engine (tests replicate it in Python): the prompt's tokens are its bytes (id = byte value, piece = the
 * byte); generated token i has id 97 + (seed + 7*i + sum of prompt bytes) % 26, piece = that letter; it sleeps
 * delay_us before each generated token; prompt_ns = 1000 per prompt token, generate_ns = 2000 per generated
 * token; a prompt of exactly "FAIL" fails to start. Attestation blob: "FAKEATT1" + SHA-256(nonce).
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "loopnic.h"
#include "net_stack.h"
#include "proto.h"
#include "sha256.h"

#define STACK_IP 0x0A00020Fu   /* 10.0.2.15 */

typedef struct fake_engine {
    uint8_t prompt[DTE_PROTO_MAX_PAYLOAD];
    size_t prompt_size;
    size_t prompt_pos;
    uint32_t prompt_sum;
    uint32_t n_predict;
    uint32_t generated;
    uint64_t seed;
    uint8_t piece;
    unsigned delay_us;
} fake_engine;

static int fake_start(void *ctx, const dte_proto_request *request)
{
    fake_engine *e = ctx;
    if (request->text_size == 4 && memcmp(request->text, "FAIL", 4) == 0)
        return -1;
    memcpy(e->prompt, request->text, request->text_size);
    e->prompt_size = request->text_size;
    e->prompt_pos = 0;
    e->prompt_sum = 0;
    for (size_t i = 0; i < e->prompt_size; i++)
        e->prompt_sum += e->prompt[i];
    e->n_predict = request->n_predict;
    e->generated = 0;
    e->seed = request->seed;
    return 0;
}

static int fake_step(void *ctx, dte_proto_token *out)
{
    fake_engine *e = ctx;
    if (e->prompt_pos < e->prompt_size) {
        e->piece = e->prompt[e->prompt_pos++];
        *out = (dte_proto_token){.id = e->piece, .piece = &e->piece, .piece_size = 1, .is_prompt = true};
        return DTE_ENGINE_STEP_TOKEN;
    }
    if (e->generated >= e->n_predict)
        return DTE_ENGINE_STEP_FINISHED;
    if (e->delay_us)
        usleep(e->delay_us);
    e->piece = (uint8_t)(97 + (e->seed + 7u * e->generated + e->prompt_sum) % 26);
    e->generated++;
    *out = (dte_proto_token){.id = e->piece, .piece = &e->piece, .piece_size = 1, .is_prompt = false};
    return DTE_ENGINE_STEP_TOKEN;
}

static void fake_finish(void *ctx, dte_proto_result *out)
{
    fake_engine *e = ctx;
    *out = (dte_proto_result){.reason = DTE_DONE_LENGTH, .prompt_tokens = (uint32_t)e->prompt_size,
                              .generated_tokens = e->generated, .prompt_ns = 1000u * e->prompt_size,
                              .generate_ns = 2000u * e->generated};
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
        fprintf(stderr, "usage: netserve KEYHEX [delay_us] [seconds]\n");
        return 2;
    }
    engine.delay_us = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
    double seconds = argc > 3 ? atof(argv[3]) : 60.0;
    int exact = argc > 4 && atoi(argv[4]) != 0;
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
