/* dte_layout_ranges (see dte_host_layout.h): engine/layout_list.c's dte_layout_list in an arena of its own. */
#include "dte_host_layout.h"

#include "platform_hosted.h"
#include "runtime/platform.h"

int64_t dte_layout_ranges(const void *gguf, uint64_t avail, uint64_t file_size, uint32_t layout, dte_layout_range *out,
                          int64_t max)
{
    dte_arena arena = {0};
    dte_arena *prev = dte_hosted_arena_enter(&arena);
    int64_t n = dte_layout_list(gguf, avail, file_size, layout, out, max);
    dte_hosted_arena_enter(prev);
    dte_hosted_arena_free(&arena);
    return n;
}
