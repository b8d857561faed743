/* Layer-at-a-time weight streaming from NVMe (see weights_stream.h). */
#include "boot/weights_stream.h"

#include "boot/status.h"
#include "drivers/nvme.h"
#include "drivers/storage.h"
#include "runtime/platform.h"

#define WINDOW_ALIGN 64u

struct streamed_weight {
    uint32_t index;         /* the engine's weight index within its part */
    uint64_t file_offset;   /* from the start of the GGUF */
    uint64_t bytes;
    uint64_t window_offset;
};

struct stream_part {        /* one layer, or the output head (the last part) */
    struct streamed_weight *items;
    uint32_t count;
    uint64_t bytes;
};

static struct {
    const struct weights_loaded *w;
    dte_engine *engine;
    struct stream_part *parts;
    uint32_t n_parts;
    uint8_t *window;
    uint64_t window_bytes;
    int64_t current;        /* part in the window, -1 none */
    uint64_t reads, read_bytes, read_ns;
} stream = {.current = -1};

static int read_bytes(void *user, uint64_t offset, uint64_t bytes, void *dst)
{
    (void)user;
    int rc = storage_read_bytes(stream.w->ctrl, 1, stream.w->byte_offset + offset, bytes, dst);
    if (rc != NVME_OK) {
        dte_status("stream error=%s offset=%llu", nvme_error_name(rc), (unsigned long long)offset);
        return -1;
    }
    return 0;
}

static int ensure_resident(void *user, uint32_t index)
{
    (void)user;
    if (index >= stream.n_parts || (int64_t)index == stream.current || stream.parts[index].count == 0) {
        return 0;
    }
    if (stream.current >= 0) {   /* evict: the window is about to hold another part */
        struct stream_part *old = &stream.parts[stream.current];
        for (uint32_t i = 0; i < old->count; i++) {
            dte_engine_place(stream.engine, (uint32_t)stream.current, old->items[i].index, NULL);
        }
    }
    stream.current = -1;
    struct stream_part *part = &stream.parts[index];
    uint64_t t0 = dte_time_ns();
    for (uint32_t i = 0; i < part->count; i++) {
        struct streamed_weight *s = &part->items[i];
        uint8_t *dst = stream.window + s->window_offset;
        if (read_bytes(NULL, s->file_offset, s->bytes, dst) != 0) {
            return -1;
        }
        dte_engine_place(stream.engine, index, s->index, dst);
        stream.read_bytes += s->bytes;
    }
    stream.read_ns += dte_time_ns() - t0;
    stream.reads++;
    stream.current = index;
    return 0;
}

void weights_stream_hooks(const struct weights_loaded *w, dte_engine_params *params, dte_engine_hooks *hooks)
{
    stream.w = w;
    params->resident_bytes = w->streaming ? w->resident_bytes : 0;
    *hooks = (dte_engine_hooks){.read = read_bytes, .ensure_resident = w->streaming ? ensure_resident : NULL};
}

/* The streamed (non-resident) weights of one part, laid out one after another in the window. */
static int collect(struct stream_part *part, uint32_t index)
{
    dte_weight_ref ref;
    uint32_t n = 0;
    while (dte_engine_part_weight(stream.engine, index, n, &ref) == 0) {
        n++;
    }
    part->items = n ? dte_alloc(n * sizeof *part->items, 64) : NULL;
    if (n && !part->items) {
        return -1;
    }
    for (uint32_t i = 0; i < n; i++) {
        dte_engine_part_weight(stream.engine, index, i, &ref);
        if (ref.resident) {
            continue;
        }
        part->items[part->count++] = (struct streamed_weight){
            .index = i, .file_offset = ref.offset, .bytes = ref.bytes, .window_offset = part->bytes};
        part->bytes += (ref.bytes + WINDOW_ALIGN - 1) & ~(uint64_t)(WINDOW_ALIGN - 1);
    }
    return 0;
}

int weights_stream_attach(dte_engine *e)
{
    stream.engine = e;
    if (!stream.w->streaming) {
        return 0;
    }
    stream.n_parts = dte_engine_parts(e);
    stream.parts = dte_alloc(stream.n_parts * sizeof(struct stream_part), 64);
    if (!stream.parts) {
        return -1;
    }
    uint32_t streamed = 0;
    for (uint32_t p = 0; p < stream.n_parts; p++) {
        if (collect(&stream.parts[p], p) != 0) {
            return -1;
        }
        streamed += stream.parts[p].count ? 1u : 0u;
        stream.window_bytes = stream.parts[p].bytes > stream.window_bytes ? stream.parts[p].bytes : stream.window_bytes;
    }
    stream.window = stream.window_bytes ? dte_alloc(stream.window_bytes, 4096) : NULL;
    if (stream.window_bytes && !stream.window) {
        return -1;
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
