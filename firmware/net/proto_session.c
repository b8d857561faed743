/* Session table, session ids, cookies and replay windows of the token protocol server: see proto_session.h. */
#include "proto_session.h"

#include "bytes.h"

uint64_t dte_proto_offer_id(dte_proto_server *s)
{
    if (s->offered == UINT32_MAX) {
        return 0;
    }
    s->offered++;
    for (unsigned i = DTE_PROTO_OPEN_WINDOW / 64 - 1; i > 0; i--) {   /* bit i means "id offered - i" */
        s->opened[i] = (s->opened[i] << 1) | (s->opened[i - 1] >> 63);
    }
    s->opened[0] <<= 1;
    return (uint64_t)s->config.epoch << 32 | s->offered;
}

void dte_proto_cookie(const dte_proto_server *s, uint64_t id, uint32_t ip, uint16_t port,
                      const uint8_t nonce[DTE_PROTO_CLIENT_NONCE], uint8_t out[DTE_PROTO_COOKIE])
{
    static const uint8_t label[10] = {'d', 't', 'e', ' ', 'c', 'o', 'o', 'k', 'i', 'e'};
    uint8_t fields[8 + 4 + 2];
    dte_put_be64(fields, id);
    dte_put_be32(fields + 8, ip);
    dte_put_be16(fields + 12, port);
    dte_hmac_sha256_ctx ctx;
    uint8_t tag[DTE_SHA256_DIGEST_SIZE];
    dte_hmac_sha256_start(&ctx, &s->key);
    dte_hmac_sha256_update(&ctx, label, sizeof label);
    dte_hmac_sha256_update(&ctx, fields, sizeof fields);
    dte_hmac_sha256_update(&ctx, nonce, DTE_PROTO_CLIENT_NONCE);
    dte_hmac_sha256_finish(&ctx, tag);
    dte_copy_bytes(out, tag, DTE_PROTO_COOKIE);
}

bool dte_proto_take_offer(dte_proto_server *s, uint64_t id)
{
    uint32_t count = (uint32_t)id;
    if ((uint32_t)(id >> 32) != s->config.epoch || count == 0 || count > s->offered) {
        return false;
    }
    uint32_t age = s->offered - count;
    if (age >= DTE_PROTO_OPEN_WINDOW) {
        return false;
    }
    uint64_t bit = (uint64_t)1 << (age % 64);
    if (s->opened[age / 64] & bit) {
        return false;
    }
    s->opened[age / 64] |= bit;
    return true;
}

int dte_proto_add_session(dte_proto_server *s, uint64_t id, uint32_t ip, uint16_t port)
{
    int victim = -1;
    for (unsigned i = 0; i < DTE_PROTO_SESSIONS; i++) {
        const dte_proto_session *session = &s->sessions[i];
        if (session->state == DTE_SESSION_FREE) {
            victim = (int)i;
            break;
        }
        if (session->state == DTE_SESSION_IDLE && (victim < 0 || session->last_used < s->sessions[victim].last_used)) {
            victim = (int)i;
        }
    }
    if (victim < 0) {
        return -1;
    }
    if (s->sessions[victim].state != DTE_SESSION_FREE) {
        s->counters[DTE_PC_EVICTED]++;
    }
    s->sessions[victim] = (dte_proto_session){.id = id, .state = DTE_SESSION_IDLE, .peer_ip = ip, .peer_port = port};
    dte_proto_touch(s, victim);
    return victim;
}

int dte_proto_find_session(const dte_proto_server *s, uint64_t id)
{
    for (unsigned i = 0; i < DTE_PROTO_SESSIONS; i++) {
        if (s->sessions[i].state != DTE_SESSION_FREE && s->sessions[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

bool dte_proto_window_accept(dte_proto_session *session, uint64_t sequence)
{
    if (sequence > session->rx_highest) {
        uint64_t shift = sequence - session->rx_highest;
        session->rx_bitmap = shift < 64 ? (session->rx_bitmap << shift) | 1u : 1u;
        session->rx_highest = sequence;
        return true;
    }
    uint64_t offset = session->rx_highest - sequence;
    if (offset >= 64 || ((session->rx_bitmap >> offset) & 1u)) {
        return false;
    }
    session->rx_bitmap |= (uint64_t)1 << offset;
    return true;
}

void dte_proto_touch(dte_proto_server *s, int index)
{
    s->sessions[index].last_used = ++s->clock;
    if (s->config.now_ns != NULL) {
        s->sessions[index].last_ns = s->config.now_ns();
    }
}

void dte_proto_expire(dte_proto_server *s)
{
    if (s->config.now_ns == NULL || s->config.idle_timeout_ns == 0) {
        return;
    }
    uint64_t now = s->config.now_ns();
    for (unsigned i = 0; i < DTE_PROTO_SESSIONS; i++) {
        dte_proto_session *session = &s->sessions[i];
        if (session->state == DTE_SESSION_IDLE && now - session->last_ns > s->config.idle_timeout_ns) {
            *session = (dte_proto_session){0};
            s->counters[DTE_PC_EXPIRED]++;
        }
    }
}

/* RFC 3629 §4: the well-formed byte sequences. */
static size_t utf8_sequence(const uint8_t *p, size_t left)
{
    uint8_t b = p[0];
    if (b < 0x80) {
        return b != 0;   /* NUL refused */
    }
    size_t n = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
    if (n == 0 || n > left) {
        return 0;
    }
    uint8_t lo = 0x80, hi = 0xBF;   /* the second byte's range */
    if (b == 0xE0) {
        lo = 0xA0;
    }
    if (b == 0xED) {
        hi = 0x9F;       /* no surrogates */
    }
    if (b == 0xF0) {
        lo = 0x90;
    }
    if (b == 0xF4) {
        hi = 0x8F;       /* <= U+10FFFF */
    }
    if (p[1] < lo || p[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

bool dte_proto_text_ok(const uint8_t *text, size_t size)
{
    for (size_t i = 0; i < size;) {
        size_t n = utf8_sequence(text + i, size - i);
        if (n == 0) {
            return false;
        }
        i += n;
    }
    return true;
}
