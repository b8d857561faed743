/* The token protocol server's session table (docs/protocol.md "Sessions"): server-issued session ids and
 * the cookie that binds one to the address that asked for it, the per-session replay window (RFC 4303
 * §3.4.3), least-recently-used eviction and the idle timeout; and the prompt text check. Used by proto.c. */
#ifndef DTE_NET_PROTO_SESSION_H
#define DTE_NET_PROTO_SESSION_H

#include "proto.h"

/* The next session id to offer in a COOKIE: epoch << 32 | count; 0 when 2^32 - 1 were offered this boot. */
uint64_t dte_proto_offer_id(dte_proto_server *s);
/* The cookie for (id, ip, port, client nonce): the first 16 bytes of HMAC(key, "dte cookie" | fields). */
void dte_proto_cookie(const dte_proto_server *s, uint64_t id, uint32_t ip, uint16_t port,
                      const uint8_t nonce[DTE_PROTO_CLIENT_NONCE], uint8_t out[DTE_PROTO_COOKIE]);
/* true once per offered id, for one of the last DTE_PROTO_OPEN_WINDOW offered in this boot. */
bool dte_proto_take_offer(dte_proto_server *s, uint64_t id);
/* A table entry for a newly opened session: a free one, else the least recently used idle one (evicted);
 * -1 when every entry is queued or generating. */
int dte_proto_add_session(dte_proto_server *s, uint64_t id, uint32_t ip, uint16_t port);
/* The index of live session `id`, or -1. */
int dte_proto_find_session(const dte_proto_server *s, uint64_t id);
/* Mark the sequence when fresh; false for a replay or one older than the window. */
bool dte_proto_window_accept(dte_proto_session *session, uint64_t sequence);
/* The session was used now (LRU tick, idle clock). */
void dte_proto_touch(dte_proto_server *s, int index);
/* Close idle sessions unused for longer than the idle timeout. */
void dte_proto_expire(dte_proto_server *s);

#endif
