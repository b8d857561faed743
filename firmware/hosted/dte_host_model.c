/* dte_host_model_describe / dte_host_supported_types (see dte_host_model.h): the GGUF keys a user asks about
 * (llama.cpp's llama_model_loader prints the same: general.architecture, tokenizer.ggml.model / .pre, the
 * vocabulary size, tokenizer.chat_template) plus the engine's verdict from dte_host_model_check. */
#define _POSIX_C_SOURCE 200809L
#include "dte_host_model.h"

#include <stdio.h>
#include <string.h>

#include "dte_host.h"
#include "engine/engine.h"
#include "engine/gguf.h"
#include "engine/quants.h"
#include "platform_hosted.h"

static void copy_str(char *dst, size_t cap, dte_str s)
{
    size_t n = s.len < cap - 1 ? (size_t)s.len : cap - 1;
    memcpy(dst, s.ptr, n);
    dst[n] = 0;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)dst[i] < 0x20 || dst[i] == 0x7f) {
            dst[i] = '?'; /* keep control bytes off terminals */
        }
    }
}

/* <arch>.<suffix> as an integer, or -1. */
static int64_t arch_int(const dte_gguf *g, const char *arch, const char *suffix)
{
    char key[128];
    uint64_t v;
    if (!arch[0] || snprintf(key, sizeof key, "%s.%s", arch, suffix) >= (int)sizeof key) {
        return -1;
    }
    return dte_gguf_get_u64(g, key, &v) && v <= INT64_MAX ? (int64_t)v : -1;
}

/* Where the text of token `key` (a token id) lies in the buffer. */
static void token_text(const dte_gguf *g, const char *key, uint64_t *at, uint64_t *len)
{
    uint32_t id;
    uint64_t count;
    const uint8_t *cur;
    if (!dte_gguf_get_u32(g, key, &id) ||
        !dte_gguf_get_arr(g, "tokenizer.ggml.tokens", DTE_GGUF_STRING, &count, &cur) || id >= count) {
        return;
    }
    dte_str s = dte_gguf_next_str(&cur);
    for (uint32_t i = 0; i < id; i++) {
        s = dte_gguf_next_str(&cur);
    }
    *at = (uint64_t)((const uint8_t *)s.ptr - g->buf);
    *len = s.len;
}

static void read_keys(const dte_gguf *g, dte_host_model_desc *out)
{
    dte_str s;
    if (dte_gguf_get_str(g, "general.architecture", &s)) {
        copy_str(out->architecture, sizeof out->architecture, s);
    }
    if (dte_gguf_get_str(g, "tokenizer.ggml.model", &s)) {
        copy_str(out->tokenizer, sizeof out->tokenizer, s);
    }
    if (dte_gguf_get_str(g, "tokenizer.ggml.pre", &s)) {
        copy_str(out->pre_tokenizer, sizeof out->pre_tokenizer, s);
    }
    uint64_t count;
    const uint8_t *data;
    bool tokens = dte_gguf_get_arr(g, "tokenizer.ggml.tokens", DTE_GGUF_STRING, &count, &data);
    out->n_vocab = tokens ? (int64_t)count : -1;
    out->has_chat_template = dte_gguf_get_str(g, "tokenizer.chat_template", &s) && s.len > 0;
    if (out->has_chat_template) {
        out->chat_template_at = (uint64_t)((const uint8_t *)s.ptr - g->buf);
        out->chat_template_len = s.len;
    }
    token_text(g, "tokenizer.ggml.bos_token_id", &out->bos_at, &out->bos_len);
    token_text(g, "tokenizer.ggml.eos_token_id", &out->eos_at, &out->eos_len);
    out->n_layer = arch_int(g, out->architecture, "block_count");
    out->n_embd = arch_int(g, out->architecture, "embedding_length");
    out->n_ctx_train = arch_int(g, out->architecture, "context_length");
    const uint32_t n_types = sizeof out->type_counts / sizeof out->type_counts[0];
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        if (g->tensors[i].type < n_types) {
            out->type_counts[g->tensors[i].type]++;
        }
    }
    out->version = g->version;
    out->n_tensors = g->n_tensors;
    out->n_kv = g->n_kv;
}

int dte_host_model_describe(const void *buf, uint64_t size, dte_host_model_desc *out)
{
    memset(out, 0, sizeof *out);
    out->n_vocab = out->n_layer = out->n_embd = out->n_ctx_train = -1;
    dte_gguf g;
    dte_arena arena = {0};
    dte_arena *prev = dte_hosted_arena_enter(&arena);
    int rc = dte_gguf_parse(buf, size, &g, out->reason, sizeof out->reason);
    if (rc == 0) {
        read_keys(&g, out);
    }
    dte_hosted_arena_enter(prev);
    dte_hosted_arena_free(&arena);
    if (rc) {
        return rc;
    }
    out->runs = dte_host_model_check(buf, size, out->reason, sizeof out->reason) == 0;
    if (out->runs) {
        out->reason[0] = 0;
    }
    return 0;
}

int dte_host_supported_types(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap) {
        buf[0] = 0;
    }
    for (uint32_t t = 0; t < DTE_TYPE_COUNT; t++) {
        if (!dte_type_is_weight(t)) {
            continue;
        }
        int n = snprintf(buf + len, cap > len ? cap - len : 0, "%s%s", len ? ", " : "", dte_type_name(t));
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
    return (int)len;
}

int dte_host_supported_archs(char *buf, size_t cap)
{
    size_t len = 0;
    if (cap) {
        buf[0] = 0;
    }
    const char *name;
    bool runs;
    for (uint32_t i = 0; (name = dte_engine_arch_name(i, &runs)) != 0; i++) {
        if (!runs) {
            continue;
        }
        int n = snprintf(buf + len, cap > len ? cap - len : 0, "%s%s", len ? ", " : "", name);
        if (n < 0) {
            break;
        }
        len += (size_t)n;
    }
    return (int)len;
}
