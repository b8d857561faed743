/* Hosted C API over the engine (see dte_host.h): mmap the GGUF and open an engine session on it (engine/engine.h);
 * no engine structure is touched here. */
#define _POSIX_C_SOURCE 200809L
#define _DEFAULT_SOURCE
#include "dte_host.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/generate.h"
#include "engine/identity.h"
#include "engine/layout.h"
#include "engine/sampler.h"
#include "platform_hosted.h"
#include "runtime/platform.h"

struct dte_host {
    dte_arena arena;
    void *map;
    size_t map_size;
    dte_engine *engine;
    dte_engine_info info;
    int32_t threads;
    dte_identity identity; /* the sampler's identity stage (weight 0: off) */
};

static int set_err(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) {
        snprintf(err, errlen, "%s", msg);
    }
    return -1;
}

/* The whole file into anonymous memory, asking for transparent huge pages: the engine evaluates the weights in
 * place and repacks a plain GGUF's matrices there (engine.h weights_layout). Reading the weights through 2 MiB
 * pages instead of the 4 KiB pages a written private file mapping gets (copy-on-write) measured +25 % in generation
 * (docs/kernels.md "Weight layouts"); the resident size is the file's either way. */
static int read_file(int fd, dte_host *h)
{
    h->map = mmap(NULL, h->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (h->map == MAP_FAILED) {
        h->map = NULL;
        return -1;
    }
    madvise(h->map, h->map_size, MADV_HUGEPAGE); /* a hint: without THP the copy still works */
    for (size_t done = 0; done < h->map_size;) {
        size_t want = h->map_size - done < ((size_t)1 << 30) ? h->map_size - done : ((size_t)1 << 30);
        ssize_t n = pread(fd, (char *)h->map + done, want, (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

/* copy: read the file into memory (a model to evaluate); else map it read-only (the tokenizer alone). */
static int map_file(const char *path, dte_host *h, bool copy, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return set_err(err, errlen, "cannot open the model file");
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || st.st_size <= 0) {
        close(fd);
        return set_err(err, errlen, "model file is empty or unreadable");
    }
    h->map_size = (size_t)st.st_size;
    if (copy) {
        int rc = read_file(fd, h);
        close(fd);
        return rc ? set_err(err, errlen, "cannot read the model file into memory") : 0;
    }
    h->map = mmap(NULL, h->map_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (h->map == MAP_FAILED) {
        h->map = NULL;
        return set_err(err, errlen, "cannot mmap the model file");
    }
    return 0;
}

enum { BUILD_VOCAB = -1 }; /* n_batch value: tokenizer only (a vocabulary GGUF without tensors) */

static int build(dte_host *h, const void *buf, uint64_t size, int32_t n_ctx, int32_t n_batch, bool with_ctx,
                 uint32_t layout, char *err, size_t errlen)
{
    dte_engine_params params = {.n_ctx = n_ctx > 0 ? (uint32_t)n_ctx : 0,
                                .n_batch = n_batch > 0 ? (uint32_t)n_batch : 512,
                                .no_context = !with_ctx,
                                .vocab_only = n_batch == BUILD_VOCAB,
                                .weights_layout = layout};
    int rc = dte_engine_open(buf, size, &params, NULL, &h->engine, err, errlen);
    if (rc) {
        return rc;
    }
    dte_engine_get_info(h->engine, &h->info);
    return 0;
}

int dte_host_load(const char *path, int32_t n_ctx, int32_t n_batch, int32_t threads, dte_host **out, char *err,
                  size_t errlen)
{
    return dte_host_load_layout(path, n_ctx, n_batch, threads, DTE_LAYOUT_GGUF, out, err, errlen);
}

int dte_host_load_layout(const char *path, int32_t n_ctx, int32_t n_batch, int32_t threads, uint32_t weights_layout,
                         dte_host **out, char *err, size_t errlen)
{
    *out = NULL;
    if (dte_hosted_set_threads(threads > 0 ? threads : 1) != 0) {
        return set_err(err, errlen, "engine busy");
    }
    dte_host *h = calloc(1, sizeof *h);
    if (!h) {
        return set_err(err, errlen, "out of memory");
    }
    h->threads = threads > 0 ? threads : 1;
    dte_arena *prev = dte_hosted_arena_enter(&h->arena);
    int rc = map_file(path, h, n_batch != BUILD_VOCAB, err, errlen);
    if (rc == 0) {
        rc = build(h, h->map, h->map_size, n_ctx, n_batch, true, weights_layout, err, errlen);
    }
    dte_hosted_arena_enter(prev);
    if (rc) {
        dte_host_free(h);
        return rc < 0 ? rc : -1;
    }
    *out = h;
    return 0;
}

int dte_host_load_vocab(const char *path, dte_host **out, char *err, size_t errlen)
{
    return dte_host_load(path, 0, BUILD_VOCAB, 1, out, err, errlen);
}

void dte_host_free(dte_host *h)
{
    if (!h) {
        return;
    }
    dte_hosted_arena_free(&h->arena);
    if (h->map) {
        munmap(h->map, h->map_size);
    }
    free(h);
}

void dte_host_get_info(const dte_host *h, dte_host_info *info)
{
    const dte_engine_info *i = &h->info;
    *info = (dte_host_info){(int32_t)i->n_vocab,
                            (int32_t)i->n_embd,
                            (int32_t)i->n_layer,
                            (int32_t)i->n_head,
                            (int32_t)i->n_head_kv,
                            (int32_t)i->n_ff,
                            (int32_t)i->n_ctx_train,
                            (int32_t)i->n_ctx,
                            i->bos,
                            i->eos,
                            i->add_bos};
}

int64_t dte_host_tokenize(dte_host *h, const char *text, size_t len, int32_t add_bos, int32_t parse_special,
                          int32_t *ids, int64_t max_ids)
{
    dte_arena *prev = dte_hosted_arena_enter(&h->arena);
    int64_t n = dte_engine_tokenize_special(h->engine, text, len, add_bos != 0, parse_special != 0, ids, max_ids);
    dte_hosted_arena_enter(prev);
    return n;
}

int32_t dte_host_token_piece(dte_host *h, int32_t id, int32_t special, char *buf, int32_t cap)
{
    return special ? dte_engine_piece_special(h->engine, id, buf, cap) : dte_engine_piece(h->engine, id, buf, cap);
}

int32_t dte_host_token_is_eog(dte_host *h, int32_t id)
{
    return dte_engine_is_eog(h->engine, id);
}

void dte_host_reset(dte_host *h)
{
    dte_engine_reset(h->engine);
}
int32_t dte_host_pos(const dte_host *h)
{
    return (int32_t)dte_engine_pos(h->engine);
}

int dte_host_eval(dte_host *h, const int32_t *ids, int64_t n, float *logits, char *err, size_t errlen)
{
    if (n <= 0) {
        return set_err(err, errlen, "no tokens to evaluate");
    }
    if ((uint64_t)n > h->info.n_ctx - dte_engine_pos(h->engine)) {
        return set_err(err, errlen, "tokens do not fit in the context");
    }
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || (uint32_t)ids[i] >= h->info.n_vocab) {
            return set_err(err, errlen, "token id out of range");
        }
    }
    if (dte_hosted_set_threads(h->threads) != 0) {
        return set_err(err, errlen, "engine busy");
    }
    dte_arena *prev = dte_hosted_arena_enter(&h->arena); /* per-worker scratch may grow */
    int rc = dte_engine_eval(h->engine, ids, n);
    dte_hosted_arena_enter(prev);
    if (rc) {
        if (err && errlen) {
            snprintf(err, errlen, "evaluation failed (%s)", dte_err_name(rc));
        }
        return rc;
    }
    const float *out = dte_engine_logits(h->engine);
    if (logits) {
        for (uint32_t i = 0; i < h->info.n_vocab; i++) {
            logits[i] = out[i];
        }
    }
    return 0;
}

struct host_eval {
    dte_host *h;
    char *err;
    size_t errlen;
};

static int host_eval(void *user, const int32_t *ids, int64_t n)
{
    struct host_eval *e = user;
    return dte_host_eval(e->h, ids, n, NULL, e->err, e->errlen);
}

int dte_host_generate(dte_host *h, const int32_t *prompt, int64_t n_prompt, int32_t n_predict, float temp,
                      int32_t top_k, float top_p, uint64_t seed, dte_host_token_cb cb, void *user, int32_t *out_ids,
                      int32_t *n_out, double *prompt_seconds, double *gen_seconds, char *err, size_t errlen)
{
    *n_out = 0;
    *prompt_seconds = *gen_seconds = 0.0;
    dte_sampler s;
    dte_arena *prev = dte_hosted_arena_enter(&h->arena);
    int rc = dte_sampler_init(&s, h->info.n_vocab, temp, top_k, top_p, seed);
    dte_hosted_arena_enter(prev);
    if (rc) {
        return set_err(err, errlen, "out of memory for the sampler");
    }
    dte_identity_attach(&h->identity, &s);
    struct host_eval ev = {h, err, errlen};
    dte_generation g;
    dte_generation_begin(&g, &(dte_generation_setup){.engine = h->engine,
                                                     .sampler = &s,
                                                     .eval = host_eval,
                                                     .eval_user = &ev,
                                                     .prompt = prompt,
                                                     .n_prompt = n_prompt,
                                                     .n_predict = n_predict});
    rc = dte_generation_run(&g, out_ids, cb, user);
    *n_out = g.n_generated;
    if (g.prefilled) {
        *prompt_seconds = (double)(g.prompt_done_ns - g.start_ns) * 1e-9;
    }
    if (rc) {
        return rc;
    }
    *gen_seconds = (double)(g.end_ns - g.prompt_done_ns) * 1e-9;
    return 0;
}

void dte_host_set_identity(dte_host *h, const uint8_t *hash, float strength)
{
    dte_identity_init(&h->identity, hash, strength);
}

static int check_in_arena(const void *buf, uint64_t size, int what, char *err, size_t errlen)
{
    dte_host h = {0};
    dte_arena *prev = dte_hosted_arena_enter(&h.arena);
    dte_engine_params params = {.gguf_only = true, .no_context = true};
    int rc = what == 2   ? build(&h, buf, size, 0, BUILD_VOCAB, false, DTE_LAYOUT_GGUF, err, errlen)
             : what == 1 ? build(&h, buf, size, 0, 1, false, DTE_LAYOUT_GGUF, err, errlen)
                         : dte_engine_open(buf, size, &params, NULL, &h.engine, err, errlen);
    dte_hosted_arena_enter(prev);
    dte_hosted_arena_free(&h.arena);
    return rc;
}

uint64_t dte_host_context_bytes(const void *buf, uint64_t size, int32_t n_ctx, int32_t n_batch, int32_t *n_ctx_used)
{
    dte_host h = {0};
    char err[8];
    dte_arena *prev = dte_hosted_arena_enter(&h.arena);
    uint64_t bytes = 0;
    if (build(&h, buf, size, 0, 1, false, DTE_LAYOUT_GGUF, err, sizeof err) == 0) {
        uint32_t want = n_ctx > 0 ? (uint32_t)n_ctx : 0;
        *n_ctx_used = (int32_t)(want && want < h.info.n_ctx_train ? want : h.info.n_ctx_train);
        bytes = dte_engine_context_bytes(h.engine, (uint32_t)*n_ctx_used, n_batch > 0 ? (uint32_t)n_batch : 0);
    }
    dte_hosted_arena_enter(prev);
    dte_hosted_arena_free(&h.arena);
    return bytes;
}

int dte_host_gguf_check(const void *buf, uint64_t size, char *err, size_t errlen)
{
    return check_in_arena(buf, size, 0, err, errlen);
}

int dte_host_model_check(const void *buf, uint64_t size, char *err, size_t errlen)
{
    return check_in_arena(buf, size, 1, err, errlen);
}

int dte_host_vocab_check(const void *buf, uint64_t size, char *err, size_t errlen)
{
    return check_in_arena(buf, size, 2, err, errlen);
}
