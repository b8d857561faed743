/* Token protocol server, version 2. The checks and their order are docs/protocol.md "Checks, in order"; the
 * session table, cookie and replay window are in proto_session.c. */
#include "proto.h"

#include "bytes.h"
#include "proto_session.h"

static const uint8_t frame_magic[4] = {'D', 'T', 'E', '1'};

/* ---- sending ------------------------------------------------------------------------------------------ */

static uint8_t *payload_area(dte_proto_server *s)
{
    return s->tx + DTE_PROTO_HEADER_SIZE;
}

/* Header + tag around the payload already written at payload_area(), then out to ip:port. */
static void respond(dte_proto_server *s, uint64_t session_id, uint32_t ip, uint16_t port, uint8_t type, uint16_t flags,
                    size_t payload_size)
{
    uint8_t *h = s->tx;
    dte_copy_bytes(h, frame_magic, sizeof frame_magic);
    h[4] = DTE_PROTO_VERSION;
    h[5] = type;
    dte_put_be16(h + 6, (uint16_t)(flags | DTE_PROTO_FLAG_RESPONSE));
    dte_put_be64(h + 8, session_id);
    dte_put_be64(h + 16, ++s->tx_sequence);
    dte_put_be32(h + 24, (uint32_t)payload_size);
    size_t body = DTE_PROTO_HEADER_SIZE + payload_size;
    dte_hmac_sha256(&s->key, s->tx, body, s->tx + body);
    s->config.send(s->config.send_ctx, ip, port, s->tx, body + DTE_PROTO_TAG_SIZE);
}

static void respond_session(dte_proto_server *s, int index, uint8_t type, uint16_t flags, size_t payload_size)
{
    const dte_proto_session *session = &s->sessions[index];
    respond(s, session->id, session->peer_ip, session->peer_port, type, flags, payload_size);
}

/* The ERROR payload, its message cut so the payload is at most `limit` bytes (>= 2). */
static size_t write_error(dte_proto_server *s, uint16_t code, const char *message, size_t limit)
{
    uint8_t *p = payload_area(s);
    dte_put_be16(p, code);
    size_t size = 2;
    while (*message != '\0' && size < 2 + 200 && size < limit) {
        p[size++] = (uint8_t)*message++;
    }
    return size;
}

static void send_error(dte_proto_server *s, int index, uint16_t code, const char *message)
{
    if (code == DTE_ERR_BUSY) {
        s->counters[DTE_PC_BUSY]++;
    }
    respond_session(s, index, DTE_MSG_ERROR, 0, write_error(s, code, message, DTE_PROTO_MAX_PAYLOAD));
}

static void send_done(dte_proto_server *s, int index, const dte_proto_result *result)
{
    uint8_t *p = payload_area(s);
    p[0] = result->reason;
    p[1] = p[2] = p[3] = 0;
    dte_put_be32(p + 4, result->prompt_tokens);
    dte_put_be32(p + 8, result->generated_tokens);
    dte_put_be64(p + 12, result->prompt_ns);
    dte_put_be64(p + 20, result->generate_ns);
    dte_put_be32(p + 28, result->reused_tokens);
    dte_put_be32(p + 32, result->context_used);
    respond_session(s, index, DTE_MSG_DONE, 0, 36);
}

static void send_token(dte_proto_server *s, int index, const dte_proto_token *token)
{
    uint8_t *p = payload_area(s);
    size_t piece = token->piece_size;
    if (piece > DTE_PROTO_MAX_PAYLOAD - 12) {
        piece = DTE_PROTO_MAX_PAYLOAD - 12;
    }
    dte_put_be32(p, token->is_prompt ? token->position : s->generated_index++);
    dte_put_be16(p + 4, 1);
    dte_put_be32(p + 6, token->id);
    dte_put_be16(p + 10, (uint16_t)piece);
    dte_copy_bytes(p + 12, token->piece, piece);
    respond_session(s, index, DTE_MSG_TOKENS, token->is_prompt ? DTE_PROTO_FLAG_PROMPT_TOKENS : 0, 12 + piece);
}

/* ---- requests on a session ------------------------------------------------------------------------------ */

static bool parse_prompt(const uint8_t *payload, size_t size, dte_proto_request *out)
{
    if (size <= DTE_PROTO_PROMPT_FIXED) {
        return false;
    }
    union {
        uint32_t bits;
        float value;
    } temperature, top_p;   /* IEEE 754 binary32 bit patterns */
    out->n_predict = dte_get_be32(payload);
    temperature.bits = dte_get_be32(payload + 4);
    out->top_k = dte_get_be32(payload + 8);
    top_p.bits = dte_get_be32(payload + 12);
    out->seed = dte_get_be64(payload + 16);
    out->temperature = temperature.value;
    out->top_p = top_p.value;
    out->text = payload + DTE_PROTO_PROMPT_FIXED;
    out->text_size = size - DTE_PROTO_PROMPT_FIXED;
    bool temperature_ok = out->temperature >= 0.0f && out->temperature <= 100.0f;   /* false for NaN */
    bool top_p_ok = out->top_p >= 0.0f && out->top_p <= 1.0f;
    return out->n_predict >= 1 && out->n_predict <= DTE_PROTO_MAX_N_PREDICT && temperature_ok && top_p_ok &&
           dte_proto_text_ok(out->text, out->text_size);
}

static void handle_prompt(dte_proto_server *s, int index, uint16_t flags, const uint8_t *payload, size_t size)
{
    dte_proto_request request;
    if (!parse_prompt(payload, size, &request)) {
        send_error(s, index, DTE_ERR_BAD_REQUEST,
                   "PROMPT payload does not parse, values out of range, or text not UTF-8 / holds NUL");
        return;
    }
    if (s->sessions[index].state != DTE_SESSION_IDLE) {
        send_error(s, index, DTE_ERR_WRONG_STATE, "this session already has a PROMPT queued or running");
        return;
    }
    if (s->queue_count == DTE_PROTO_QUEUE) {
        send_error(s, index, DTE_ERR_BUSY, "generation queue is full; retry later");
        return;
    }
    dte_proto_queued *slot = &s->queue[s->queue_count++];
    slot->session = index;
    slot->flags = flags;
    slot->payload_size = (uint32_t)size;
    dte_copy_bytes(slot->payload, payload, size);
    s->sessions[index].state = DTE_SESSION_QUEUED;
    if (s->running >= 0 || s->queue_count > 1) {
        dte_put_be32(payload_area(s), s->queue_count);
        respond_session(s, index, DTE_MSG_QUEUED, 0, 4);
    }
}

static void queue_remove(dte_proto_server *s, unsigned position)
{
    for (unsigned i = position; i + 1 < s->queue_count; i++) {
        s->queue[i] = s->queue[i + 1];
    }
    s->queue_count--;
}

static void cancel_running(dte_proto_server *s, bool answer)
{
    dte_proto_result result = {0};
    int index = s->running;
    s->config.engine.finish(s->config.engine.ctx, &result);
    result.reason = DTE_DONE_CANCELLED;
    s->running = -1;
    s->sessions[index].state = DTE_SESSION_IDLE;
    s->counters[DTE_PC_CANCELLED]++;
    s->counters[DTE_PC_GENERATIONS]++;
    if (answer) {
        send_done(s, index, &result);
    }
}

/* Stops the session's running or queued generation; false when it has none. */
static bool cancel_session(dte_proto_server *s, int index, bool answer)
{
    if (s->running == index) {
        cancel_running(s, answer);
        return true;
    }
    for (unsigned i = 0; i < s->queue_count; i++) {
        if (s->queue[i].session != index) {
            continue;
        }
        queue_remove(s, i);
        s->sessions[index].state = DTE_SESSION_IDLE;
        s->counters[DTE_PC_CANCELLED]++;
        dte_proto_result nothing = {.reason = DTE_DONE_CANCELLED};
        if (answer) {
            send_done(s, index, &nothing);
        }
        return true;
    }
    return false;
}

static void handle_cancel(dte_proto_server *s, int index)
{
    if (!cancel_session(s, index, true)) {
        send_error(s, index, DTE_ERR_NOT_RUNNING, "nothing to cancel in this session");
    }
}

static void handle_close(dte_proto_server *s, int index)
{
    cancel_session(s, index, false);
    respond_session(s, index, DTE_MSG_GONE, 0, 0);
    s->sessions[index] = (dte_proto_session){0};
}

static void handle_stats(dte_proto_server *s, int index)
{
    uint8_t *p = payload_area(s);
    uint16_t count = 0;
    for (unsigned i = 0; i < DTE_PC_COUNT; i++, count++) {
        dte_put_be64(p + 2 + 8u * count, s->counters[i]);
    }
    if (s->config.refresh_counters) {
        s->config.refresh_counters(s->config.refresh_ctx);
    }
    for (unsigned i = 0; i < s->config.extra_counter_count; i++, count++) {
        dte_put_be64(p + 2 + 8u * count, s->config.extra_counters[i]);
    }
    dte_put_be16(p, count);
    respond_session(s, index, DTE_MSG_STATS, 0, 2 + 8u * count);
}

static void handle_attest(dte_proto_server *s, int index, const uint8_t *nonce, size_t size)
{
    if (size > DTE_PROTO_MAX_NONCE) {
        send_error(s, index, DTE_ERR_BAD_REQUEST, "nonce longer than 64 bytes");
        return;
    }
    uint8_t *p = payload_area(s);
    size_t blob = 0;
    if (s->config.attest != NULL) {
        blob = s->config.attest(s->config.attest_ctx, nonce, size, p + 2 + size, DTE_PROTO_MAX_PAYLOAD - 2 - size);
    }
    if (blob == 0 || blob > DTE_PROTO_MAX_PAYLOAD - 2 - size) {
        send_error(s, index, DTE_ERR_UNSUPPORTED, "no attestation available");
        return;
    }
    dte_put_be16(p, (uint16_t)size);
    dte_copy_bytes(p + 2, nonce, size);
    respond_session(s, index, DTE_MSG_ATTEST, 0, 2 + size + blob);
}

/* INFO: the weights' SHA-256 (zeros: unknown), u8 name length, the model's name (docs/protocol.md). */
static void handle_info(dte_proto_server *s, int index)
{
    uint8_t *p = payload_area(s);
    for (unsigned i = 0; i < 32; i++) {
        p[i] = s->config.model_sha256 ? s->config.model_sha256[i] : 0;
    }
    size_t length = 0;
    const char *name = s->config.model_name;
    while (name != NULL && name[length] != '\0' && length < DTE_PROTO_MAX_MODEL_NAME) {
        p[33 + length] = (uint8_t)name[length];
        length++;
    }
    p[32] = (uint8_t)length;
    respond_session(s, index, DTE_MSG_INFO, 0, 33 + length);
}

static void handle_ping(dte_proto_server *s, int index, const uint8_t *payload, size_t size)
{
    if (size > DTE_PROTO_MAX_PING) {
        send_error(s, index, DTE_ERR_BAD_REQUEST, "PING payload longer than 64 bytes");
        return;
    }
    dte_copy_bytes(payload_area(s), payload, size);
    respond_session(s, index, DTE_MSG_PONG, 0, size);
}

static bool is_session_request(uint8_t type)
{
    return type == DTE_MSG_PROMPT || type == DTE_MSG_CANCEL || type == DTE_MSG_STATS_REQUEST ||
           type == DTE_MSG_ATTEST_REQUEST || type == DTE_MSG_PING || type == DTE_MSG_CLOSE ||
           type == DTE_MSG_INFO_REQUEST;
}

static void dispatch(dte_proto_server *s, int index, uint8_t type, uint16_t flags, const uint8_t *payload, size_t size)
{
    s->counters[DTE_PC_SERVED]++;
    switch (type) {
    case DTE_MSG_PROMPT: handle_prompt(s, index, flags, payload, size); break;
    case DTE_MSG_CANCEL: handle_cancel(s, index); break;
    case DTE_MSG_STATS_REQUEST: handle_stats(s, index); break;
    case DTE_MSG_ATTEST_REQUEST: handle_attest(s, index, payload, size); break;
    case DTE_MSG_CLOSE: handle_close(s, index); break;
    case DTE_MSG_INFO_REQUEST: handle_info(s, index); break;
    default: handle_ping(s, index, payload, size); break;
    }
}

/* ---- requests before a session: HELLO, PING, OPEN (answers never larger than the request) ------------- */

static void handle_hello(dte_proto_server *s, uint32_t ip, uint16_t port, const uint8_t *payload, size_t size)
{
    if (size < DTE_PROTO_COOKIE_PAYLOAD) {   /* the COOKIE would be larger than the HELLO */
        s->counters[DTE_PC_MALFORMED]++;
        return;
    }
    uint64_t id = dte_proto_offer_id(s);
    if (id == 0) {
        return;   /* 2^32 ids offered this boot: no more */
    }
    s->counters[DTE_PC_COOKIES]++;
    s->counters[DTE_PC_SERVED]++;
    uint8_t *p = payload_area(s);
    dte_put_be64(p, id);
    dte_copy_bytes(p + 8, payload, DTE_PROTO_CLIENT_NONCE);
    dte_proto_cookie(s, id, ip, port, payload, p + 8 + DTE_PROTO_CLIENT_NONCE);
    respond(s, 0, ip, port, DTE_MSG_COOKIE, 0, DTE_PROTO_COOKIE_PAYLOAD);
}

static void handle_open(dte_proto_server *s, uint64_t id, uint64_t sequence, uint32_t ip, uint16_t port,
                        const uint8_t *payload, size_t size)
{
    uint8_t expected[DTE_PROTO_COOKIE];
    if (size != DTE_PROTO_CLIENT_NONCE + DTE_PROTO_COOKIE) {
        s->counters[DTE_PC_MALFORMED]++;
        return;
    }
    dte_proto_cookie(s, id, ip, port, payload, expected);
    if (!dte_bytes_equal_ct(expected, payload + DTE_PROTO_CLIENT_NONCE, DTE_PROTO_COOKIE) ||
        !dte_proto_take_offer(s, id)) {
        s->counters[DTE_PC_BAD_COOKIE]++;   /* another address, a replayed OPEN, or an id offered too long ago */
        return;
    }
    int index = dte_proto_add_session(s, id, ip, port);
    if (index < 0) {   /* the peer proved its address: an ERROR no larger than the OPEN */
        s->counters[DTE_PC_BUSY]++;
        respond(s, id, ip, port, DTE_MSG_ERROR, 0,
                write_error(s, DTE_ERR_BUSY, "all sessions are active; retry later", size));
        return;
    }
    dte_proto_window_accept(&s->sessions[index], sequence);
    s->counters[DTE_PC_OPENED]++;
    s->counters[DTE_PC_SERVED]++;
    uint8_t *p = payload_area(s);
    dte_put_be32(p, s->config.context_size);
    dte_put_be32(p + 4, (uint32_t)(s->config.idle_timeout_ns / 1000000000u));
    dte_put_be32(p + 8, DTE_PROTO_SESSIONS);
    respond_session(s, index, DTE_MSG_OPENED, 0, DTE_PROTO_OPENED_PAYLOAD);
}

/* A session frame that passed checks 1-4; its session id is not 0. */
static void session_input(dte_proto_server *s, uint32_t ip, uint16_t port, const uint8_t *data, size_t size)
{
    uint64_t session_id = dte_get_be64(data + 8);
    uint64_t sequence = dte_get_be64(data + 16);
    const uint8_t *payload = data + DTE_PROTO_HEADER_SIZE;
    size_t payload_size = size - DTE_PROTO_MIN_FRAME;
    if (data[5] == DTE_MSG_OPEN) {
        handle_open(s, session_id, sequence, ip, port, payload, payload_size);
        return;
    }
    int index = dte_proto_find_session(s, session_id);
    if (index < 0) {   /* closed, evicted, expired, or of another boot: a GONE of the smallest frame's size */
        s->counters[DTE_PC_GONE]++;
        respond(s, session_id, ip, port, DTE_MSG_GONE, 0, 0);
        return;
    }
    dte_proto_session *session = &s->sessions[index];
    if (session->peer_ip != ip || session->peer_port != port) {
        s->counters[DTE_PC_WRONG_PEER]++;
        return;
    }
    if (!dte_proto_window_accept(session, sequence)) {
        s->counters[DTE_PC_REPLAY]++;
        return;
    }
    dte_proto_touch(s, index);
    if (!is_session_request(data[5])) {
        s->counters[DTE_PC_UNKNOWN_TYPE]++;
        return;
    }
    dispatch(s, index, data[5], dte_get_be16(data + 6), payload, payload_size);
}

/* Checks 1-4 of docs/protocol.md: the counter to bump, or DTE_PC_COUNT when the frame is authentic. */
static unsigned check_frame(const dte_proto_server *s, const uint8_t *data, size_t size)
{
    if (size > DTE_PROTO_MAX_FRAME) {
        return DTE_PC_TOO_LARGE;
    }
    if (size < DTE_PROTO_MIN_FRAME || !dte_same_bytes(data, frame_magic, 4) || data[4] != DTE_PROTO_VERSION ||
        (uint64_t)dte_get_be32(data + 24) + DTE_PROTO_MIN_FRAME != size) {
        return DTE_PC_MALFORMED;
    }
    size_t body = size - DTE_PROTO_TAG_SIZE;
    if (!dte_hmac_sha256_verify(&s->key, data, body, data + body)) {
        return DTE_PC_BAD_TAG;
    }
    uint16_t allowed = data[5] == DTE_MSG_PROMPT ? DTE_PROTO_FLAG_APPEND | DTE_PROTO_FLAG_CHAT : 0;
    if ((dte_get_be16(data + 6) & ~allowed) != 0 || dte_get_be64(data + 16) == 0) {
        return DTE_PC_MALFORMED;
    }
    return DTE_PC_COUNT;
}

void dte_proto_input(dte_proto_server *s, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size)
{
    s->counters[DTE_PC_RX_FRAMES]++;
    unsigned verdict = check_frame(s, data, size);
    if (verdict != DTE_PC_COUNT) {
        s->counters[verdict]++;
        return;
    }
    dte_proto_expire(s);
    if (dte_get_be64(data + 8) != 0) {
        session_input(s, src_ip, src_port, data, size);
        return;
    }
    const uint8_t *payload = data + DTE_PROTO_HEADER_SIZE;
    size_t payload_size = size - DTE_PROTO_MIN_FRAME;
    if (data[5] == DTE_MSG_HELLO) {
        handle_hello(s, src_ip, src_port, payload, payload_size);
    } else if (data[5] == DTE_MSG_PING && payload_size <= DTE_PROTO_MAX_PING) {   /* PONG: the same size */
        s->counters[DTE_PC_SERVED]++;
        dte_copy_bytes(payload_area(s), payload, payload_size);
        respond(s, 0, src_ip, src_port, DTE_MSG_PONG, 0, payload_size);
    } else {
        s->counters[DTE_PC_UNKNOWN_TYPE]++;   /* nothing else exists without a session */
    }
}

void dte_proto_udp_input(void *server, uint32_t src_ip, uint16_t src_port, const uint8_t *data, size_t size)
{
    dte_proto_input((dte_proto_server *)server, src_ip, src_port, data, size);
}

/* ---- generation ---------------------------------------------------------------------------------------- */

static void start_next(dte_proto_server *s)
{
    dte_proto_queued *head = &s->queue[0];
    int index = head->session;
    dte_proto_request request;
    parse_prompt(head->payload, head->payload_size, &request);   /* validated when it was queued */
    request.slot = (unsigned)index;
    request.session = s->sessions[index].id;
    request.append = (head->flags & DTE_PROTO_FLAG_APPEND) != 0;
    request.chat = (head->flags & DTE_PROTO_FLAG_CHAT) != 0;
    int status = s->config.engine.start(s->config.engine.ctx, &request);
    queue_remove(s, 0);   /* request.text is not used after start */
    if (status != 0) {
        s->sessions[index].state = DTE_SESSION_IDLE;
        if (status == DTE_ENGINE_CONTEXT_FULL) {
            send_error(s, index, DTE_ERR_CONTEXT_FULL, "this turn does not fit the context; start over");
        } else {
            send_error(s, index, DTE_ERR_ENGINE, "the engine could not start this generation");
        }
        return;
    }
    s->sessions[index].state = DTE_SESSION_GENERATING;
    s->running = index;
    s->generated_index = 0;
}

static void run_step(dte_proto_server *s)
{
    dte_proto_token token = {0};
    int index = s->running;
    int status = s->config.engine.step(s->config.engine.ctx, &token);
    if (status == DTE_ENGINE_STEP_TOKEN) {
        if (!token.is_prompt) {
            s->counters[DTE_PC_TOKENS_GENERATED]++;
        }
        send_token(s, index, &token);
        return;
    }
    dte_proto_result result = {0};
    s->config.engine.finish(s->config.engine.ctx, &result);
    if (status < 0) {
        result.reason = DTE_DONE_ENGINE_ERROR;
    }
    s->running = -1;
    s->sessions[index].state = DTE_SESSION_IDLE;
    dte_proto_touch(s, index);
    s->counters[DTE_PC_GENERATIONS]++;
    send_done(s, index, &result);
}

bool dte_proto_service(dte_proto_server *s)
{
    if (s->running >= 0) {
        run_step(s);
    } else if (s->queue_count > 0) {
        start_next(s);
    }
    return s->running >= 0 || s->queue_count > 0;
}

int dte_proto_init(dte_proto_server *s, const dte_proto_config *config)
{
    const dte_proto_engine *engine = &config->engine;
    if (config->key == NULL || config->key_size == 0 || config->send == NULL || engine->start == NULL ||
        engine->step == NULL || engine->finish == NULL) {
        return -1;
    }
    *s = (dte_proto_server){.config = *config, .running = -1};
    dte_hmac_sha256_setkey(&s->key, config->key, config->key_size);
    return 0;
}
