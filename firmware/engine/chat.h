/* Chat turns on the appliance: the text of a conversation's first turn ([system,] user, generation prompt) and
 * of a follow-up user turn, glued from the per-role strings `dte build` cut out of the model's Jinja chat
 * template (src/dte_build/chat_template.py, ChatShape; the build checks that this glue reproduces the
 * template's own rendering of multi-turn conversations, as HF transformers / llama-cpp-python's
 * Jinja2ChatFormatter render it). The caller tokenizes the text with special tokens parsed and no BOS added
 * (the template writes the BOS text when the model wants one), as llama-cpp-python's chat handler does.
 * Platform-free: no allocation, the caller sizes the buffer. */
#ifndef DTE_ENGINE_CHAT_H
#define DTE_ENGINE_CHAT_H

#include <stdbool.h>
#include <stddef.h>

typedef struct dte_chat_format {
    const char *prefix;          /* before the first user content when there is no system message */
    const char *prefix_system;   /* before the system content; NULL: the template has no system message */
    const char *system_end;      /* between the system content and the first user content */
    const char *user_end;        /* after a user content: end of the user turn + the generation prompt */
    const char *assistant_end;   /* after a reply: end of the assistant turn + opening of the next user turn */
    bool strip_system;           /* the template trims the system content (Jinja `| trim`) */
    bool strip_user;             /* ... the user content */
} dte_chat_format;

/* The first turn: prefix_system + system + system_end + user + user_end, or prefix + user + user_end when
 * system is NULL or the format has no system message. Writes at most cap-1 bytes and a NUL (when cap > 0) and
 * returns the full length: call with cap 0 to size the buffer. */
size_t dte_chat_first_turn(const dte_chat_format *f, const char *system, size_t system_len, const char *user,
                           size_t user_len, char *out, size_t cap);

/* A follow-up turn, after the model's reply stopped at its end-of-turn token (which was not evaluated):
 * assistant_end + user + user_end. Same buffer rules. */
size_t dte_chat_next_turn(const dte_chat_format *f, const char *user, size_t user_len, char *out, size_t cap);

#endif /* DTE_ENGINE_CHAT_H */
