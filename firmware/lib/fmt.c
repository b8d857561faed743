/* dte_fmt: printf-style formatting without libc (see fmt.h for what is supported). */
#include "lib/fmt.h"

#include <stdbool.h>
#include <stdint.h>

struct out {
    char *buf;
    size_t cap;
    size_t len;   /* what the full output would be */
};

struct spec {
    bool zero_pad;
    bool left;
    int width;
    int precision;   /* -1: none given */
    int length;      /* 0: int, 1: long, 2: long long, 3: size_t */
};

static void put(struct out *o, char c)
{
    if (o->len + 1 < o->cap) {
        o->buf[o->len] = c;
    }
    o->len++;
}

static void pad(struct out *o, int count, char c)
{
    while (count-- > 0) {
        put(o, c);
    }
}

static void put_field(struct out *o, const char *text, size_t n, const struct spec *s, bool numeric)
{
    int fill = s->width > (int)n ? s->width - (int)n : 0;
    if (!s->left) {
        bool zeros = s->zero_pad && numeric;
        if (zeros && n > 0 && text[0] == '-') {   /* sign goes before the zeros */
            put(o, '-');
            text++;
            n--;
        }
        pad(o, fill, zeros ? '0' : ' ');
    }
    for (size_t i = 0; i < n; i++) {
        put(o, text[i]);
    }
    if (s->left) {
        pad(o, fill, ' ');
    }
}

/* Digits of v in `base` into the end of tmp; returns the start. */
static char *unsigned_digits(char *end, unsigned long long v, unsigned base, bool upper)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char *p = end;
    do {
        *--p = digits[v % base];
        v /= base;
    } while (v);
    return p;
}

static void put_integer(struct out *o, unsigned long long magnitude, bool negative, unsigned base, bool upper,
                        const struct spec *s)
{
    char tmp[24];
    char *end = tmp + sizeof tmp;
    char *p = unsigned_digits(end, magnitude, base, upper);
    if (negative) {
        *--p = '-';
    }
    put_field(o, p, (size_t)(end - p), s, true);
}

static void put_double(struct out *o, double v, const struct spec *s)
{
    char tmp[48];
    size_t n = 0;
    int precision = s->precision < 0 ? 6 : (s->precision > 9 ? 9 : s->precision);
    if (v != v) {
        put_field(o, "nan", 3, s, false);
        return;
    }
    if (v < 0) {
        tmp[n++] = '-';
        v = -v;
    }
    if (v > 1.8e19) {
        tmp[n++] = 'i', tmp[n++] = 'n', tmp[n++] = 'f';
        put_field(o, tmp, n, s, false);
        return;
    }
    unsigned long long scale = 1;
    for (int i = 0; i < precision; i++) {
        scale *= 10;
    }
    unsigned long long whole = (unsigned long long)v;
    double scaled = (v - (double)whole) * (double)scale;
    unsigned long long frac_digits = (unsigned long long)scaled;
    double rest = scaled - (double)frac_digits;
    unsigned long long last_digit = precision > 0 ? frac_digits : whole;
    if (rest > 0.5 || (rest == 0.5 && (last_digit & 1))) {   /* round half to even, like printf */
        frac_digits++;
    }
    if (frac_digits >= scale) {   /* rounding carried into the integer part */
        whole++;
        frac_digits -= scale;
    }
    char digits[24];
    char *end = digits + sizeof digits;
    for (char *p = unsigned_digits(end, whole, 10, false); p < end; p++) {
        tmp[n++] = *p;
    }
    if (precision > 0) {
        tmp[n++] = '.';
        for (int i = precision - 1; i >= 0; i--) {
            tmp[n + (size_t)i] = (char)('0' + frac_digits % 10);
            frac_digits /= 10;
        }
        n += (size_t)precision;
    }
    put_field(o, tmp, n, s, true);
}

static const char *parse_spec(const char *f, struct spec *s)
{
    *s = (struct spec){.precision = -1};
    for (;; f++) {
        if (*f == '0') {
            s->zero_pad = true;
        } else if (*f == '-') {
            s->left = true;
        } else {
            break;
        }
    }
    while (*f >= '0' && *f <= '9') {
        s->width = s->width * 10 + (*f++ - '0');
    }
    if (*f == '.') {
        s->precision = 0;
        while (*++f >= '0' && *f <= '9') {
            s->precision = s->precision * 10 + (*f - '0');
        }
    }
    if (*f == 'z') {
        s->length = 3;
        f++;
    } else {
        while (*f == 'l' && s->length < 2) {
            s->length++;
            f++;
        }
    }
    return f;
}

static unsigned long long take_unsigned(va_list *args, int length)
{
    switch (length) {
    case 1: return va_arg(*args, unsigned long);
    case 2: return va_arg(*args, unsigned long long);
    case 3: return va_arg(*args, size_t);
    default: return va_arg(*args, unsigned int);
    }
}

static long long take_signed(va_list *args, int length)
{
    switch (length) {
    case 1: return va_arg(*args, long);
    case 2: return va_arg(*args, long long);
    case 3: return (long long)va_arg(*args, size_t);
    default: return va_arg(*args, int);
    }
}

static void put_string(struct out *o, const char *str, const struct spec *s)
{
    if (!str) {
        str = "(null)";
    }
    size_t n = 0;
    while (str[n] && (s->precision < 0 || n < (size_t)s->precision)) {
        n++;
    }
    put_field(o, str, n, s, false);
}

static void convert(struct out *o, char conv, const struct spec *s, va_list *args)
{
    switch (conv) {
    case 'd':
    case 'i': {
        long long v = take_signed(args, s->length);
        unsigned long long magnitude = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
        put_integer(o, magnitude, v < 0, 10, false, s);
        break;
    }
    case 'u': put_integer(o, take_unsigned(args, s->length), false, 10, false, s); break;
    case 'x': put_integer(o, take_unsigned(args, s->length), false, 16, false, s); break;
    case 'X': put_integer(o, take_unsigned(args, s->length), false, 16, true, s); break;
    case 'p': {
        put(o, '0');
        put(o, 'x');
        put_integer(o, (unsigned long long)(uintptr_t)va_arg(*args, void *), false, 16, false, s);
        break;
    }
    case 'c': {
        char c = (char)va_arg(*args, int);
        put_field(o, &c, 1, s, false);
        break;
    }
    case 's': put_string(o, va_arg(*args, const char *), s); break;
    case 'f': put_double(o, va_arg(*args, double), s); break;
    case '%': put(o, '%'); break;
    default:   /* unknown conversion: show it verbatim so the mistake is visible */
        put(o, '%');
        put(o, conv);
        break;
    }
}

size_t dte_vfmt(char *buf, size_t cap, const char *fmt, va_list args)
{
    struct out o = {buf, cap, 0};
    va_list ap;
    va_copy(ap, args);
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            put(&o, *f);
            continue;
        }
        struct spec s;
        f = parse_spec(f + 1, &s);
        if (!*f) {
            break;
        }
        convert(&o, *f, &s, &ap);
    }
    va_end(ap);
    if (cap > 0) {
        buf[o.len < cap ? o.len : cap - 1] = '\0';
    }
    return o.len;
}

size_t dte_fmt(char *buf, size_t cap, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    size_t n = dte_vfmt(buf, cap, fmt, args);
    va_end(args);
    return n;
}
