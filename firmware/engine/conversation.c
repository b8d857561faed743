/* Conversations over one KV cache: see conversation.h. */
#include "conversation.h"

static int32_t *slot_ids(const dte_conversations *c, unsigned slot)
{
    return c->ids + (uint64_t)slot * (c->n_ctx + 1u);
}

uint64_t dte_conv_ids_bytes(uint32_t n_ctx, unsigned slots)
{
    return (uint64_t)slots * (n_ctx + 1u) * sizeof(int32_t);
}

void dte_conv_init(dte_conversations *c, uint32_t n_ctx, unsigned slots, int32_t *ids, int32_t *cached)
{
    *c = (dte_conversations){.n_ctx = n_ctx, .slots = slots, .ids = ids, .cached = cached};
}

int dte_conv_begin(dte_conversations *c, unsigned slot, uint64_t owner, bool append, const int32_t *new_ids,
                   uint32_t n_new, dte_conv_turn *out)
{
    uint32_t len = append && c->owner[slot] == owner ? c->len[slot] : 0;
    if (n_new == 0 || (uint64_t)len + n_new >= c->n_ctx) {
        return -1;
    }
    int32_t *ids = slot_ids(c, slot);
    for (uint32_t i = 0; i < n_new; i++) {
        ids[len + i] = new_ids[i];
    }
    c->owner[slot] = owner;
    c->len[slot] = len + n_new;
    uint32_t keep = 0;   /* longest common prefix with the cache, leaving one token to evaluate for logits */
    while (keep < c->n_cached && keep + 1 < c->len[slot] && c->cached[keep] == ids[keep]) {
        keep++;
    }
    c->n_cached = keep;
    *out = (dte_conv_turn){.first = len, .keep = keep, .eval = ids + keep, .n_eval = c->len[slot] - keep};
    return 0;
}

void dte_conv_push(dte_conversations *c, unsigned slot, int32_t id)
{
    if (c->len[slot] <= c->n_ctx) {
        slot_ids(c, slot)[c->len[slot]++] = id;
    }
}

void dte_conv_end(dte_conversations *c, unsigned slot, uint32_t n_pos)
{
    const int32_t *ids = slot_ids(c, slot);
    if (n_pos > c->len[slot]) {
        n_pos = c->len[slot];
    }
    for (uint32_t i = c->n_cached; i < n_pos; i++) {
        c->cached[i] = ids[i];
    }
    c->n_cached = n_pos;
}

void dte_conv_forget_cache(dte_conversations *c)
{
    c->n_cached = 0;
}

const int32_t *dte_conv_transcript(const dte_conversations *c, unsigned slot, uint32_t *len)
{
    *len = c->len[slot];
    return slot_ids(c, slot);
}
