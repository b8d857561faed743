/* lib/cstr.h: string equality and substring search without libc. */
#include "lib/cstr.h"

bool dte_cstr_eq(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return *a == *b;
}

bool dte_cstr_contains(const char *haystack, const char *needle)
{
    do {
        const char *h = haystack, *n = needle;
        while (*n && *h == *n) {
            h++;
            n++;
        }
        if (!*n) {
            return true;
        }
    } while (*haystack++);
    return false;
}
