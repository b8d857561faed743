/* Layer-at-a-time weight streaming from NVMe (see weights_stream.h). */
#include "boot/weights_stream.h"

#include "boot/panic.h"
#include "boot/status.h"
#include "drivers/nvme.h"
#include "drivers/storage.h"
#include "engine/platform.h"

#define WINDOW_ALIGN 64u

struct streamed_weight {
    dte_weight *weight;
    uint64_t file_offset;   /* from the start of the GGUF */
    uint64_t bytes;
    uint64_t window_offset;
};

struct stream_part {        /* one layer, or the output head (index n_layer) */
    struct streamed_weight items[8];
    int count;
    uint64_t bytes;
};

static struct {
    const struct weights_loaded *w;
    struct stream_part *parts;
    uint32_t n_parts;
    uint8_t *window;
    uint64_t window_bytes;
    int64_t current;        /* part in the window, -1 none */
    uint64_t reads, read_bytes, read_ns;
} stream = {.current = -1};

static bool is_resident(const struct weights_loaded *w, const uint8_t *data, uint64_t bytes)
{
    return data >= w->data && (uint64_t)(data - w->data) + bytes <= w->resident_bytes;
}

int weights_stream_prepare(dte_gguf *g, const struct weights_loaded *w)
{
    stream.w = w;
    const dte_gguf_tensor *embd = dte_gguf_find_tensor(g, "token_embd.weight");
    if (g->data_offset > w->resident_bytes || !embd || !is_resident(w, embd->data, embd->n_bytes)) {
        return -1;
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        dte_gguf_tensor *t = &g->tensors[i];
        if (is_resident(w, t->data, t->n_bytes) || t->ne[1] != 1) {
            continue;   /* resident, or a matrix (streamed by the hook) */
        }
        uint8_t *copy = dte_alloc(t->n_bytes, WINDOW_ALIGN);
        if (!copy || storage_read_bytes(w->ctrl, 1, w->byte_offset + (uint64_t)(t->data - w->data), t->n_bytes,
                                        copy) != NVME_OK) {
            return -1;
        }
        t->data = copy;
    }
    return 0;
}

/* Record `weight` in its part when it lies past the resident prefix; its data pointer is cleared until the hook
 * reads it (a use before that faults loudly instead of reading other memory). */
static void collect(struct stream_part *part, dte_weight *weight)
{
    uint64_t bytes = (uint64_t)weight->row_bytes * (uint64_t)weight->n_rows;
    if (!weight->data || is_resident(stream.w, weight->data, bytes) || part->count == 8) {
        return;
    }
    struct streamed_weight *s = &part->items[part->count++];
    s->weight = weight;
    s->file_offset = (uint64_t)(weight->data - stream.w->data);
    s->bytes = bytes;
    s->window_offset = part->bytes;
    part->bytes += (bytes + WINDOW_ALIGN - 1) & ~(uint64_t)(WINDOW_ALIGN - 1);
    weight->data = NULL;
}

static int ensure_resident(void *user, uint32_t index)
{
    (void)user;
    if (index >= stream.n_parts || (int64_t)index == stream.current || stream.parts[index].count == 0) {
        return 0;
    }
    if (stream.current >= 0) {   /* evict: the window is about to hold another part */
        struct stream_part *old = &stream.parts[stream.current];
        for (int i = 0; i < old->count; i++) {
            old->items[i].weight->data = NULL;
        }
    }
    stream.current = -1;
    struct stream_part *part = &stream.parts[index];
    uint64_t t0 = dte_time_ns();
    for (int i = 0; i < part->count; i++) {
        struct streamed_weight *s = &part->items[i];
        uint8_t *dst = stream.window + s->window_offset;
        int rc = storage_read_bytes(stream.w->ctrl, 1, stream.w->byte_offset + s->file_offset, s->bytes, dst);
        if (rc != NVME_OK) {
            dte_status("stream error=%s part=%u offset=%llu", nvme_error_name(rc), index,
                       (unsigned long long)s->file_offset);
            return -1;
        }
        s->weight->data = dst;
        stream.read_bytes += s->bytes;
    }
    stream.read_ns += dte_time_ns() - t0;
    stream.reads++;
    stream.current = index;
    return 0;
}

int weights_stream_attach(dte_llama_model *m)
{
    stream.n_parts = m->hp.n_layer + 1;
    stream.parts = dte_alloc(stream.n_parts * sizeof(struct stream_part), 64);
    if (!stream.parts) {
        return -1;
    }
    for (uint32_t il = 0; il < m->hp.n_layer; il++) {
        dte_layer *L = &m->layers[il];
        dte_weight *mats[] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int i = 0; i < 7; i++) {
            collect(&stream.parts[il], mats[i]);
        }
    }
    if (m->output.data != m->tok_embd.data) {   /* untied output head */
        collect(&stream.parts[m->hp.n_layer], &m->output);
    }
    for (uint32_t p = 0; p < stream.n_parts; p++) {
        stream.window_bytes = stream.parts[p].bytes > stream.window_bytes ? stream.parts[p].bytes : stream.window_bytes;
    }
    stream.window = stream.window_bytes ? dte_alloc(stream.window_bytes, 4096) : NULL;
    if (stream.window_bytes && !stream.window) {
        return -1;
    }
    m->ensure_resident = ensure_resident;
    m->ensure_user = NULL;
    uint32_t streamed = 0;
    for (uint32_t p = 0; p < stream.n_parts; p++) {
        streamed += stream.parts[p].count ? 1u : 0u;
    }
    dte_status("stream resident_bytes=%llu streamed_parts=%u window_bytes=%llu",
               (unsigned long long)stream.w->resident_bytes, streamed, (unsigned long long)stream.window_bytes);
    return 0;
}

void weights_stream_report(void)
{
    uint64_t us = stream.read_ns / 1000u ? stream.read_ns / 1000u : 1u;
    dte_status("stream reads=%llu bytes=%llu ms=%llu mib_per_s=%llu", (unsigned long long)stream.reads,
               (unsigned long long)stream.read_bytes, (unsigned long long)(stream.read_ns / 1000000u),
               (unsigned long long)((stream.read_bytes * 1000000u / us) >> 20));
}
