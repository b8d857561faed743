/* The token protocol's engine (firmware/net/proto.h dte_proto_engine) on the appliance's real engine.
 *
 * Each PROMPT is an independent request: the KV cache is reset and the sampler re-seeded with the request's
 * settings, so nothing of one request (or of the boot prompt) leaks into the next. The loop is the one the
 * hosted engine runs (engine/generate.h, pulled one token per step): tokenize with BOS, evaluate the prompt in
 * one batch, sample / stop at EOS / emit / stop at n_predict or a full context / evaluate the token; so for the
 * same model and settings the ids equal `dte generate`'s. The build's system prompt (DTE_SYSTEM_PROMPT, the persona's),
 * when there is one, goes before the request text with a newline, as on the boot prompt.
 *
 * Per step, the evaluation of the previous token runs first and the new token is returned right after it is
 * sampled, so a token goes out on the wire before the next forward pass begins. Nothing allocates per request.
 */
#ifndef DTE_BOOT_NET_ENGINE_H
#define DTE_BOOT_NET_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/run_engine.h"
#include "engine/generate.h"
#include "net/proto.h"

struct net_engine {
    struct engine_parts parts;
    char *text;                  /* system prompt + '\n' + request text */
    uint64_t text_cap;
    int32_t *prompt_ids;         /* capacity: the context size */
    int64_t n_prompt;
    int64_t prompt_sent;         /* prompt tokens handed out so far */
    dte_generation run;          /* the generation loop; n_predict capped to the context's room */
    char piece[256];
};

/* 0 on success; -1 when run_engine has not built the engine or memory is short (logged). */
int net_engine_init(struct net_engine *ne);

/* The dte_proto_engine callbacks on `ne`. */
dte_proto_engine net_engine_callbacks(struct net_engine *ne);

#endif /* DTE_BOOT_NET_ENGINE_H */
