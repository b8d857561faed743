/* Conversations over one KV cache: each session slot keeps its transcript (token ids: prompts and generated
 * tokens, in order), and the cache remembers which tokens its entries hold. A turn appends its new tokens to
 * the slot's transcript (or starts it over), and only the part of the transcript past the longest prefix the
 * cache already holds is evaluated: a follow-up turn of the session that ran last evaluates just its new
 * tokens (plus the previous turn's last sampled token, which was never evaluated); a new request that starts
 * with the cached tokens (the same system prompt, a transcript re-sent) reuses them; any other session's turn
 * recomputes from the first differing token. This is llama.cpp server's prompt-cache reuse (the common prefix
 * of the cached tokens and the new prompt, tools/server "cache_prompt") with one cache shared by all slots.
 *
 * Context rule: a turn whose transcript would not leave room for one generated token is refused and the
 * session is left as it was (no shifting, no truncation): the client starts over. Platform-free; the caller
 * owns the memory (slots x (n_ctx + 1) transcript ids, n_ctx cache ids) and truncates the KV cache to `keep`.
 */
#ifndef DTE_ENGINE_CONVERSATION_H
#define DTE_ENGINE_CONVERSATION_H

#include <stdbool.h>
#include <stdint.h>

#define DTE_CONV_MAX_SLOTS 16u

typedef struct {
    uint32_t n_ctx;
    unsigned slots;
    int32_t *ids;                        /* slot s: ids + s * (n_ctx + 1) */
    uint32_t len[DTE_CONV_MAX_SLOTS];
    uint64_t owner[DTE_CONV_MAX_SLOTS];  /* the session id the transcript belongs to (0: none) */
    int32_t *cached;                     /* the tokens whose KV entries the cache holds, positions 0.. */
    uint32_t n_cached;
} dte_conversations;

typedef struct {
    uint32_t first;          /* transcript position of the turn's first new token */
    uint32_t keep;           /* KV positions kept: truncate the cache to this */
    const int32_t *eval;     /* the tokens to evaluate next: transcript[keep .. len) */
    uint32_t n_eval;
} dte_conv_turn;

/* Bytes of transcript memory for `slots` slots of n_ctx tokens. */
uint64_t dte_conv_ids_bytes(uint32_t n_ctx, unsigned slots);
void dte_conv_init(dte_conversations *c, uint32_t n_ctx, unsigned slots, int32_t *ids, int32_t *cached);
/* Start a turn of session `owner` in `slot` with n_new new tokens: appended to its transcript when `append`
 * and the slot still holds this session's transcript, else the transcript starts over with them. 0 with *out
 * filled, or -1 when the transcript would reach n_ctx (nothing changed). */
int dte_conv_begin(dte_conversations *c, unsigned slot, uint64_t owner, bool append, const int32_t *new_ids,
                   uint32_t n_new, dte_conv_turn *out);
/* A generated token joins the slot's transcript. */
void dte_conv_push(dte_conversations *c, unsigned slot, int32_t id);
/* The turn ended with the cache holding `n_pos` positions (transcript[0 .. n_pos) of `slot`). */
void dte_conv_end(dte_conversations *c, unsigned slot, uint32_t n_pos);
/* The cache's contents are unknown (an evaluation failed): nothing is reused next time. */
void dte_conv_forget_cache(dte_conversations *c);
/* The slot's transcript (len tokens). */
const int32_t *dte_conv_transcript(const dte_conversations *c, unsigned slot, uint32_t *len);

#endif /* DTE_ENGINE_CONVERSATION_H */
