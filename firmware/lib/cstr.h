/* NUL-terminated string comparisons for code with no libc (firmware, and the same files built hosted). */
#ifndef DTE_LIB_CSTR_H
#define DTE_LIB_CSTR_H

#include <stdbool.h>

/* a and b hold the same characters. */
bool dte_cstr_eq(const char *a, const char *b);
/* needle occurs in haystack (an empty needle always does). */
bool dte_cstr_contains(const char *haystack, const char *needle);

#endif /* DTE_LIB_CSTR_H */
