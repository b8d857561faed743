/* Chat turns from the compiled-in per-role strings (see chat.h). The whitespace stripped for a template that
 * trims contents is ASCII's (space, \t \n \v \f \r and \x1c-\x1f, what Python's str.strip removes below 0x80). */
#include "engine/chat.h"

struct text_out {
    char *buf;
    size_t cap;
    size_t len;   /* full length, also past cap */
};

static void put(struct text_out *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++, o->len++) {
        if (o->len + 1 < o->cap) {
            o->buf[o->len] = s[i];
        }
    }
}

static size_t length(const char *s)
{
    size_t n = 0;
    while (s && s[n]) {
        n++;
    }
    return n;
}

static void put_str(struct text_out *o, const char *s)
{
    put(o, s, length(s));
}

static bool is_space(char c)
{
    unsigned char u = (unsigned char)c;
    return u == ' ' || (u >= '\t' && u <= '\r') || (u >= 0x1c && u <= 0x1f);
}

static void put_content(struct text_out *o, const char *s, size_t n, bool strip)
{
    if (strip) {
        while (n && is_space(*s)) {
            s++;
            n--;
        }
        while (n && is_space(s[n - 1])) {
            n--;
        }
    }
    put(o, s, n);
}

static size_t finish(struct text_out *o)
{
    if (o->cap) {
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
    }
    return o->len;
}

size_t dte_chat_first_turn(const dte_chat_format *f, const char *system, size_t system_len, const char *user,
                           size_t user_len, char *out, size_t cap)
{
    struct text_out o = {out, cap, 0};
    if (system && f->prefix_system) {
        put_str(&o, f->prefix_system);
        put_content(&o, system, system_len, f->strip_system);
        put_str(&o, f->system_end);
    } else {
        put_str(&o, f->prefix);
    }
    put_content(&o, user, user_len, f->strip_user);
    put_str(&o, f->user_end);
    return finish(&o);
}

size_t dte_chat_next_turn(const dte_chat_format *f, const char *user, size_t user_len, char *out, size_t cap)
{
    struct text_out o = {out, cap, 0};
    put_str(&o, f->assistant_end);
    put_content(&o, user, user_len, f->strip_user);
    put_str(&o, f->user_end);
    return finish(&o);
}
