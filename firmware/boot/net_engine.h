/* The token protocol's engine (firmware/net/proto.h dte_proto_engine) on the appliance's real engine.
 *
 * Sessions are conversations (engine/conversation.h): each protocol session slot keeps its transcript, one
 * KV cache serves them all, and a turn evaluates only what the cache does not already hold (a follow-up turn
 * of the session that ran last: just its new tokens). A PROMPT without APPEND starts the session's
 * transcript over: the text as sent, tokenized beginning with BOS, as on the boot prompt. With APPEND the
 * text's tokens (no BOS) are added after the transcript. With CHAT the text is a user turn formatted with the
 * model's compiled-in chat template (engine/chat.h via boot/chat_config.h: the first turn with the system
 * prompt and the generation prompt, a follow-up with the end of the previous reply first; plain text when the
 * build has no template). The sampler is re-seeded with each request's settings.
 *
 * The loop is the hosted engine's (engine/generate.h, pulled one token per step), so for the same model,
 * settings and tokens the ids equal `dte generate`'s. Per step, the evaluation of the previous token runs
 * first and the new token is returned right after it is sampled, so a token goes out on the wire before the
 * next forward pass begins. Nothing allocates per request.
 */
#ifndef DTE_BOOT_NET_ENGINE_H
#define DTE_BOOT_NET_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "boot/run_engine.h"
#include "engine/conversation.h"
#include "engine/generate.h"
#include "net/proto.h"

struct net_engine {
    struct engine_parts parts;
    dte_engine_info info;        /* n_ctx, add_bos */
    char *text;                  /* the turn's text as formatted */
    uint64_t text_cap;
    int32_t *new_ids;            /* the turn's tokens; capacity: the context size */
    dte_conversations conv;      /* transcripts of the DTE_PROTO_SESSIONS slots and the cache's tokens */
    dte_conv_turn turn;
    unsigned slot;               /* the running turn's session slot */
    uint32_t prompt_sent;        /* the turn's new tokens handed out so far */
    dte_generation run;          /* the generation loop; n_predict capped to the context's room */
    char piece[256];
};

/* 0 on success; -1 when run_engine has not built the engine or memory is short (logged). */
int net_engine_init(struct net_engine *ne);

/* The dte_proto_engine callbacks on `ne`. */
dte_proto_engine net_engine_callbacks(struct net_engine *ne);

/* The context size in tokens (for the protocol's OPENED answer). */
uint32_t net_engine_context(const struct net_engine *ne);

#endif /* DTE_BOOT_NET_ENGINE_H */
