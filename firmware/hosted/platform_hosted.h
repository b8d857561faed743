/* Hosted-only extensions of the engine platform (firmware/runtime/platform.h) for the pthreads build. */
#ifndef DTE_HOSTED_PLATFORM_HOSTED_H
#define DTE_HOSTED_PLATFORM_HOSTED_H

/* Every dte_alloc made by this thread while an arena is current is recorded in it, so a model can be unloaded. */
typedef struct dte_arena {
    void *head;
} dte_arena;

/* Make `arena` current for this thread (NULL: allocations are untracked) and return the previous one. */
dte_arena *dte_hosted_arena_enter(dte_arena *arena);
/* Free everything recorded in the arena. */
void dte_hosted_arena_free(dte_arena *arena);

/* Size the worker pool: n_threads total including the caller (>= 1). Returns 0, -1 while a parallel_for runs. */
int dte_hosted_set_threads(int n_threads);

#endif
