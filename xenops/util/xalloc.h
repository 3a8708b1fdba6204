/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xalloc: allocation that aborts on out-of-memory. A daemon that cannot
 * allocate cannot keep its promises; recovery after the abort comes from the
 * persistent store (vmextra) and reconciliation at start-up.
 * Every result is owned by the caller and released with free().
 */
#ifndef XENOPS_XALLOC_H
#define XENOPS_XALLOC_H

#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvasprintf(const char *fmt, va_list ap)
    __attribute__((format(printf, 1, 0)));

/* Copy src into dst of size n, always NUL-terminated. Returns 0, or -1 when
 * src did not fit (dst then holds a truncated copy). */
int xstrlcpy(char *dst, const char *src, size_t n);

#endif
