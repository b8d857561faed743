/* The dte token protocol server, version 2 (docs/protocol.md): frame checks, HMAC-SHA256, the cookie
 * round-trip that opens a session (server-issued session ids, never reused within a boot, bound to the
 * address that proved it receives), per-session replay windows, the session table (idle timeout,
 * least-recently-used eviction, GONE for a session that is no more), and the generation queue.
 * Transport-free: datagrams come in through dte_proto_input, frames go out through config.send; the engine
 * is reached only through dte_proto_engine, so the whole server is testable hosted with a fake engine
 * (tests/devmodels/netserve.c). The cookie follows the stateless-retry idea of DTLS HelloVerifyRequest
 * (RFC 6347 §4.2.1) and QUIC Retry (RFC 9000 §8.1); the replay window is RFC 4303 §3.4.3's.
 */
#ifndef DTE_NET_PROTO_H
#define DTE_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/hmac_sha256.h"

#define DTE_PROTO_VERSION 2u
#define DTE_PROTO_HEADER_SIZE 28u
#define DTE_PROTO_TAG_SIZE 32u
#define DTE_PROTO_MIN_FRAME (DTE_PROTO_HEADER_SIZE + DTE_PROTO_TAG_SIZE)                     /* 60 */
#define DTE_PROTO_MAX_FRAME 1472u                                                          /* 1500 - 20 - 8 */
#define DTE_PROTO_MAX_PAYLOAD (DTE_PROTO_MAX_FRAME - DTE_PROTO_MIN_FRAME)                  /* 1412 */
#define DTE_PROTO_PROMPT_FIXED 24u
#define DTE_PROTO_MAX_N_PREDICT 4096u
#define DTE_PROTO_SESSIONS 16u
#define DTE_PROTO_QUEUE 4u             /* PROMPTs waiting behind the running generation */
#define DTE_PROTO_MAX_NONCE 64u
#define DTE_PROTO_MAX_PING 64u
#define DTE_PROTO_CLIENT_NONCE 16u
#define DTE_PROTO_COOKIE 16u
#define DTE_PROTO_COOKIE_PAYLOAD (8u + DTE_PROTO_CLIENT_NONCE + DTE_PROTO_COOKIE)          /* 40: HELLO >= it */
#define DTE_PROTO_OPEN_WINDOW 256u     /* an OPEN must name one of the last 256 session ids offered */
#define DTE_PROTO_OPENED_PAYLOAD 12u
#define DTE_PROTO_MAX_MODEL_NAME 255u  /* INFO: the model's name, cut to this many bytes */

enum dte_proto_type {
    DTE_MSG_PROMPT = 1,
    DTE_MSG_TOKENS = 2,
    DTE_MSG_DONE = 3,
    DTE_MSG_CANCEL = 4,
    DTE_MSG_ERROR = 5,
    DTE_MSG_STATS_REQUEST = 6,
    DTE_MSG_STATS = 7,
    DTE_MSG_ATTEST_REQUEST = 8,
    DTE_MSG_ATTEST = 9,
    DTE_MSG_PING = 10,
    DTE_MSG_PONG = 11,
    DTE_MSG_QUEUED = 12,
    DTE_MSG_HELLO = 13,
    DTE_MSG_COOKIE = 14,
    DTE_MSG_OPEN = 15,
    DTE_MSG_OPENED = 16,
    DTE_MSG_GONE = 17,
    DTE_MSG_CLOSE = 18,
    DTE_MSG_INFO_REQUEST = 19,
    DTE_MSG_INFO = 20,
};

#define DTE_PROTO_FLAG_PROMPT_TOKENS 0x0001u   /* TOKENS: the prompt's tokens rather than generated ones */
#define DTE_PROTO_FLAG_APPEND 0x0002u          /* PROMPT: continue the session's transcript */
#define DTE_PROTO_FLAG_CHAT 0x0004u            /* PROMPT: the text is a user turn for the chat template */
#define DTE_PROTO_FLAG_RESPONSE 0x8000u

enum dte_proto_error {
    DTE_ERR_BUSY = 1,
    DTE_ERR_BAD_REQUEST = 2,
    DTE_ERR_WRONG_STATE = 3,
    DTE_ERR_ENGINE = 4,
    DTE_ERR_UNSUPPORTED = 5,
    DTE_ERR_NOT_RUNNING = 6,
    DTE_ERR_CONTEXT_FULL = 7,
};

enum dte_proto_done_reason {
    DTE_DONE_LENGTH = 0,
    DTE_DONE_END_OF_SEQUENCE = 1,
    DTE_DONE_CANCELLED = 2,
    DTE_DONE_ENGINE_ERROR = 3,
    DTE_DONE_CONTEXT_FULL = 4,
};

/* STATS counters 0..17 (docs/protocol.md); the stack's counters follow them in the answer. */
enum dte_proto_counter {
    DTE_PC_RX_FRAMES,
    DTE_PC_MALFORMED,
    DTE_PC_TOO_LARGE,
    DTE_PC_BAD_TAG,
    DTE_PC_REPLAY,
    DTE_PC_UNKNOWN_TYPE,
    DTE_PC_SERVED,
    DTE_PC_BUSY,
    DTE_PC_CANCELLED,
    DTE_PC_GENERATIONS,
    DTE_PC_TOKENS_GENERATED,
    DTE_PC_COOKIES,
    DTE_PC_BAD_COOKIE,
    DTE_PC_OPENED,
    DTE_PC_GONE,
    DTE_PC_WRONG_PEER,
    DTE_PC_EVICTED,
    DTE_PC_EXPIRED,
    DTE_PC_COUNT
};

typedef struct dte_proto_request {
    const uint8_t *text;   /* UTF-8 without NUL (checked), not NUL-terminated; valid only during engine.start */
    size_t text_size;
    uint32_t n_predict;
    float temperature;
    uint32_t top_k;
    float top_p;
    uint64_t seed;
    unsigned slot;         /* the session's table index: 0 .. DTE_PROTO_SESSIONS-1 */
    uint64_t session;      /* its id: never reused within a boot, so a new id in a slot is a new session */
    bool append;           /* continue the session's transcript (else start it over) */
    bool chat;             /* format the text as a user turn with the model's chat template */
} dte_proto_request;

typedef struct dte_proto_token {
    uint32_t id;
    const uint8_t *piece;  /* the token's text (UTF-8 fragment); valid until the next engine call */
    size_t piece_size;
    bool is_prompt;        /* a token of the prompt's tokenization rather than a generated one */
    uint32_t position;     /* prompt tokens: the position in the session's transcript */
} dte_proto_token;

typedef struct dte_proto_result {
    uint8_t reason;        /* enum dte_proto_done_reason; the server sets CANCELLED itself */
    uint32_t prompt_tokens;     /* tokens evaluated before the first sample (the reused ones not counted) */
    uint32_t generated_tokens;
    uint64_t prompt_ns;
    uint64_t generate_ns;
    uint32_t reused_tokens;     /* transcript tokens whose KV entries were kept, not recomputed */
    uint32_t context_used;      /* the session's transcript length after this turn */
} dte_proto_result;

#define DTE_ENGINE_STEP_TOKEN 1
#define DTE_ENGINE_STEP_FINISHED 0
#define DTE_ENGINE_START_FAILED (-1)
#define DTE_ENGINE_CONTEXT_FULL (-2)   /* start: the turn does not fit the context; the session is unchanged */

typedef struct dte_proto_engine {
    void *ctx;
    /* Begin a generation (tokenize; prefill may happen here or in step). 0, or DTE_ENGINE_START_FAILED /
     * DTE_ENGINE_CONTEXT_FULL. */
    int (*start)(void *ctx, const dte_proto_request *request);
    /* Produce the next token: first the prompt's tokens (is_prompt), then generated ones.
     * DTE_ENGINE_STEP_TOKEN with *out filled, DTE_ENGINE_STEP_FINISHED at the end, negative on failure. */
    int (*step)(void *ctx, dte_proto_token *out);
    /* End the generation (normally, on failure or on cancel) and report counts and times; called once for
     * every start that returned 0. */
    void (*finish)(void *ctx, dte_proto_result *out);
} dte_proto_engine;

/* Writes the attestation blob for `nonce` into out; returns its size (0: none available). */
typedef size_t (*dte_proto_attest_fn)(void *ctx, const uint8_t *nonce, size_t nonce_size, uint8_t *out,
                                      size_t capacity);
/* Sends one frame as a UDP datagram to ip:port. 0 on success. */
typedef int (*dte_proto_send_fn)(void *ctx, uint32_t ip, uint16_t port, const uint8_t *frame, size_t size);
/* Monotonic nanoseconds. */
typedef uint64_t (*dte_proto_clock_fn)(void);

typedef struct dte_proto_config {
    const uint8_t *key;            /* the appliance key (docs/protocol.md "Key"), normally 32 bytes */
    size_t key_size;
    uint32_t epoch;                /* per boot, never the same twice in a row (random): high half of session ids */
    dte_proto_engine engine;
    dte_proto_send_fn send;
    void *send_ctx;
    dte_proto_attest_fn attest;    /* NULL: ATTEST_REQUEST answers ERROR UNSUPPORTED */
    void *attest_ctx;
    const uint64_t *extra_counters;   /* appended to STATS (the stack's counters); may be NULL */
    uint16_t extra_counter_count;
    void (*refresh_counters)(void *ctx);   /* called before a STATS answer reads extra_counters; may be NULL */
    void *refresh_ctx;
    dte_proto_clock_fn now_ns;     /* NULL: sessions never expire by time (only by eviction) */
    uint64_t idle_timeout_ns;      /* an idle session unused this long is closed; 0: never */
    uint32_t context_size;         /* reported in OPENED (0: unknown) */
    const char *model_name;        /* INFO: the model's name (NUL-terminated UTF-8); NULL or "": unknown */
    const uint8_t *model_sha256;   /* INFO: the weights' SHA-256 (32 bytes); NULL: unknown (zeros sent) */
} dte_proto_config;

enum dte_proto_session_state {
    DTE_SESSION_FREE,
    DTE_SESSION_IDLE,
    DTE_SESSION_QUEUED,
    DTE_SESSION_GENERATING,
};

typedef struct dte_proto_session {
    uint64_t id;
    uint8_t state;                 /* enum dte_proto_session_state */
    uint32_t peer_ip;              /* the address the OPEN's cookie proved: the only one answered */
    uint16_t peer_port;
    uint64_t rx_highest;           /* replay window, RFC 4303 §3.4.3 */
    uint64_t rx_bitmap;
    uint64_t last_used;            /* LRU tick */
    uint64_t last_ns;              /* clock at the last frame or DONE, for the idle timeout */
} dte_proto_session;

typedef struct dte_proto_queued {
    int session;                   /* index into sessions */
    uint16_t flags;                /* the PROMPT's APPEND / CHAT flags */
    uint32_t payload_size;
    uint8_t payload[DTE_PROTO_MAX_PAYLOAD];
} dte_proto_queued;

typedef struct dte_proto_server {
    dte_proto_config config;
    dte_hmac_sha256_key key;
    dte_proto_session sessions[DTE_PROTO_SESSIONS];
    uint64_t clock;                /* ticks per authenticated frame, for least-recently-used eviction */
    uint64_t tx_sequence;          /* one counter for every frame sent: increasing within each session */
    uint32_t offered;              /* session ids offered in COOKIEs so far (low half of the last id) */
    uint64_t opened[DTE_PROTO_OPEN_WINDOW / 64];   /* bit i: id offered-i was opened (no second OPEN) */
    int running;                   /* session index generating, or -1 */
    uint32_t generated_index;      /* next TOKENS index of the running generation's generated tokens */
    dte_proto_queued queue[DTE_PROTO_QUEUE];   /* FIFO, oldest first */
    unsigned queue_count;
    uint64_t counters[DTE_PC_COUNT];
    uint8_t tx[DTE_PROTO_MAX_FRAME];
} dte_proto_server;

/* 0 on success, negative when the config lacks a key, a send function or engine callbacks. */
int dte_proto_init(dte_proto_server *server, const dte_proto_config *config);
/* One UDP datagram received on the protocol port. */
void dte_proto_input(dte_proto_server *server, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size);
/* dte_proto_input with a void * server: the shape of the stack's UDP handler. */
void dte_proto_udp_input(void *server, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size);
/* Do one unit of generation work: start the next queued PROMPT, or run one engine step and send its token.
 * Returns true while a generation is running or queued (call again soon), false when idle. */
bool dte_proto_service(dte_proto_server *server);

/* true when text is well-formed UTF-8 (RFC 3629: no overlongs, no surrogates, <= U+10FFFF) without NUL. */
bool dte_proto_text_ok(const uint8_t *text, size_t size);

#endif
