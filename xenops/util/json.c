/* SPDX-License-Identifier: LGPL-2.1-only */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

/*
 * Everything json_parse refuses before yajl sees the text, found in one
 * pass over it. yajl_tree_parse falls short in four ways:
 * - it has no depth limit: it builds the tree without recursion, but
 *   freeing and walking it recurse, so brackets outside strings are counted;
 * - it accepts comments, which JSON has none of and which could hide a
 *   quote from this scan, so a '/' outside a string is refused;
 * - it checks only the shape of UTF-8 sequences, letting overlong forms
 *   ("\xc0\xaf" for '/'), encoded surrogates and code points above
 *   U+10FFFF through, so every byte is checked here (outside strings JSON
 *   is ASCII, so checking everywhere costs nothing in strictness);
 * - it decodes "\u0000" into the C string, silently cutting it short, and
 *   turns an unpaired surrogate escape into invalid UTF-8 in the tree.
 * A NUL byte is refused for the same reason as "\u0000".
 */
enum json_scan {
    JSON_SCAN_OK = 0,
    JSON_SCAN_NUL_BYTE,
    JSON_SCAN_TOO_DEEP,
    JSON_SCAN_COMMENT,
    JSON_SCAN_BAD_UTF8,
    JSON_SCAN_NUL_ESCAPE,
    JSON_SCAN_LONE_SURROGATE,
};

/*
 * Length of the UTF-8 sequence starting at s[0] >= 0x80, or 0 if it is not
 * one. The second byte's range follows the UTF8-2..UTF8-4 rules of RFC 3629
 * section 4: it is what excludes overlong forms (E0, F0), surrogates (ED)
 * and code points above U+10FFFF (F4). C0, C1 and F5..FF never start one.
 */
static size_t
json_utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xbf;
    size_t n;

    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (s[k] < 0x80 || s[k] > 0xbf)
            return 0;
    return n;
}

bool
json_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    size_t n;

    while (i < len) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        n = json_utf8_len(s + i, len - i);
        if (n == 0)
            return false;
        i += n;
    }
    return true;
}

/* The UTF-16 code unit written as four hex digits at s, or -1. */
static long
json_hex4(const unsigned char *s, size_t avail)
{
    long u = 0;

    if (avail < 4)
        return -1;
    for (size_t k = 0; k < 4; k++) {
        if (!isxdigit(s[k]))
            return -1;
        u = u * 16 + (isdigit(s[k]) ? s[k] - '0' : (s[k] | 0x20) - 'a' + 10);
    }
    return u;
}

/*
 * The escape at s[0] == '\\' inside a string: sets *len_r to the bytes it
 * covers (a "\uD8xx\uDCxx" pair counts as one). A malformed escape is left
 * for yajl to refuse: only its backslash is consumed, so the bytes after it
 * are still checked by the caller.
 */
static enum json_scan
json_escape_check(const unsigned char *s, size_t avail, size_t *len_r)
{
    long u;
    long low;

    *len_r = 1;
    if (avail < 2)
        return JSON_SCAN_OK;
    if (s[1] != 'u') {
        if (s[1] != '\0' && strchr("\"\\/bfnrt", s[1]))
            *len_r = 2;
        return JSON_SCAN_OK;
    }
    u = json_hex4(s + 2, avail - 2);
    if (u < 0)
        return JSON_SCAN_OK;
    if (u == 0)
        return JSON_SCAN_NUL_ESCAPE;
    if (u >= 0xdc00 && u <= 0xdfff)
        return JSON_SCAN_LONE_SURROGATE;
    *len_r = 6;
    if (u < 0xd800 || u > 0xdbff)
        return JSON_SCAN_OK;
    /* A high surrogate: the low half must follow at once. */
    if (avail < 12 || s[6] != '\\' || s[7] != 'u')
        return JSON_SCAN_LONE_SURROGATE;
    low = json_hex4(s + 8, avail - 8);
    if (low < 0xdc00 || low > 0xdfff)
        return JSON_SCAN_LONE_SURROGATE;
    *len_r = 12;
    return JSON_SCAN_OK;
}

/* The first reason to refuse text, or JSON_SCAN_OK. */
static enum json_scan
json_scan(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    enum json_scan rc;
    int depth = 0;
    bool in_str = false;
    size_t i = 0;
    size_t n;

    while (i < len) {
        unsigned char c = s[i];

        if (c == '\0')
            return JSON_SCAN_NUL_BYTE;
        if (c >= 0x80) {
            n = json_utf8_len(s + i, len - i);
            if (n == 0)
                return JSON_SCAN_BAD_UTF8;
            i += n;
            continue;
        }
        if (in_str && c == '\\') {
            rc = json_escape_check(s + i, len - i, &n);
            if (rc)
                return rc;
            i += n;
            continue;
        }
        if (c == '"') {
            in_str = !in_str;
        } else if (!in_str && c == '/') {
            return JSON_SCAN_COMMENT;
        } else if (!in_str && (c == '[' || c == '{')) {
            if (++depth > JSON_MAX_DEPTH)
                return JSON_SCAN_TOO_DEEP;
        } else if (!in_str && (c == ']' || c == '}')) {
            depth--;
        }
        i++;
    }
    return JSON_SCAN_OK;
}

/* Sets the Internal_error detail for a refusal found by json_scan and
 * returns XO_EINVAL. */
static int
json_scan_error(enum json_scan why)
{
    switch (why) {
    case JSON_SCAN_NUL_BYTE:
        return xo_err_internal_code(XO_EINVAL,
                                    "JSON input contains a NUL byte");
    case JSON_SCAN_TOO_DEEP:
        return xo_err_internal_code(XO_EINVAL, "JSON nested deeper than %d",
                                    JSON_MAX_DEPTH);
    case JSON_SCAN_COMMENT:
        return xo_err_internal_code(XO_EINVAL, "malformed JSON: comments are "
                                    "not allowed");
    case JSON_SCAN_BAD_UTF8:
        return xo_err_internal_code(XO_EINVAL, "JSON is not valid UTF-8");
    case JSON_SCAN_NUL_ESCAPE:
        return xo_err_internal_code(XO_EINVAL,
                                    "JSON string contains \\u0000");
    case JSON_SCAN_LONE_SURROGATE:
        return xo_err_internal_code(XO_EINVAL, "JSON string has an unpaired "
                                    "surrogate escape");
    case JSON_SCAN_OK:
        break;
    }
    return XO_EINVAL;
}

int
json_parse(const char *text, size_t len, yajl_val *tree_r)
{
    char errbuf[256];
    char *copy = NULL;
    enum json_scan why;
    yajl_val tree;
    int rc;

    *tree_r = NULL;
    why = json_scan(text, len);
    if (why != JSON_SCAN_OK) {
        rc = json_scan_error(why);
        goto out;
    }
    copy = xstrndup(text, len);
    errbuf[0] = '\0';
    tree = yajl_tree_parse(copy, errbuf, sizeof(errbuf));
    if (!tree) {
        /* yajl's message spans lines; keep the first. */
        errbuf[strcspn(errbuf, "\n")] = '\0';
        rc = xo_err_internal_code(XO_EINVAL, "malformed JSON: %s",
                                  errbuf[0] ? errbuf : "parse error");
        goto out;
    }
    *tree_r = tree;
    rc = 0;
out:
    free(copy);
    return rc;
}

yajl_val
json_get(yajl_val obj, const char *key)
{
    if (!obj || !YAJL_IS_OBJECT(obj))
        return NULL;
    for (size_t i = 0; i < obj->u.object.len; i++) {
        if (strcasecmp(obj->u.object.keys[i], key) == 0)
            return obj->u.object.values[i];
    }
    return NULL;
}

const char *
json_get_str(yajl_val obj, const char *key)
{
    yajl_val v = json_get(obj, key);

    return (v && YAJL_IS_STRING(v)) ? v->u.string : NULL;
}

int
json_get_bool(yajl_val obj, const char *key, bool dflt, bool *r)
{
    yajl_val v = json_get(obj, key);

    if (!v || YAJL_IS_NULL(v)) {
        *r = dflt;
        return 0;
    }
    if (YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)) {
        *r = YAJL_IS_TRUE(v);
        return 0;
    }
    return xo_err_internal_code(XO_EINVAL, "'%s' must be a boolean", key);
}

int
json_to_int64(yajl_val v, int64_t *r)
{
    char *end;
    long long n;

    if (v && YAJL_IS_INTEGER(v)) {
        *r = YAJL_GET_INTEGER(v);
        return 0;
    }
    /* Digits with an optional '-': strtoll alone would take " 12", "+12". */
    if (v && YAJL_IS_STRING(v) &&
        (isdigit((unsigned char)v->u.string[0]) ||
         (v->u.string[0] == '-' && isdigit((unsigned char)v->u.string[1])))) {
        errno = 0;
        n = strtoll(v->u.string, &end, 10);
        if (errno == 0 && *end == '\0') {
            *r = n;
            return 0;
        }
    }
    return XO_EINVAL;
}

int
json_to_double(yajl_val v, double *r)
{
    char *end;
    double d;

    if (v && YAJL_IS_NUMBER(v)) {
        *r = YAJL_IS_INTEGER(v) ? (double)YAJL_GET_INTEGER(v)
                                : YAJL_GET_DOUBLE(v);
        return 0;
    }
    if (v && YAJL_IS_STRING(v) && v->u.string[0]) {
        errno = 0;
        d = strtod(v->u.string, &end);
        if (errno == 0 && *end == '\0' && isfinite(d)) {
            *r = d;
            return 0;
        }
    }
    return XO_EINVAL;
}

int
json_get_int64(yajl_val obj, const char *key, int64_t dflt, int64_t *r)
{
    yajl_val v = json_get(obj, key);

    if (!v || YAJL_IS_NULL(v)) {
        *r = dflt;
        return 0;
    }
    if (json_to_int64(v, r) == 0)
        return 0;
    return xo_err_internal_code(XO_EINVAL, "'%s' must be an integer", key);
}

int
json_get_double(yajl_val obj, const char *key, double dflt, double *r)
{
    yajl_val v = json_get(obj, key);

    if (!v || YAJL_IS_NULL(v)) {
        *r = dflt;
        return 0;
    }
    if (json_to_double(v, r) == 0)
        return 0;
    return xo_err_internal_code(XO_EINVAL, "'%s' must be a number", key);
}

bool
json_is_array(yajl_val v)
{
    return v && YAJL_IS_ARRAY(v);
}

size_t
json_array_len(yajl_val v)
{
    return json_is_array(v) ? v->u.array.len : 0;
}

yajl_val
json_array_at(yajl_val v, size_t i)
{
    return i < json_array_len(v) ? v->u.array.values[i] : NULL;
}

yajl_gen
json_gen_new(void)
{
    yajl_gen g = yajl_gen_alloc(NULL);

    if (!g)
        abort();
    yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    return g;
}

char *
json_gen_take(yajl_gen g)
{
    const unsigned char *buf;
    size_t len;
    char *s;

    yajl_gen_get_buf(g, &buf, &len);
    s = xstrndup((const char *)buf, len);
    yajl_gen_free(g);
    return s;
}

void
json_gen_str(yajl_gen g, const char *s)
{
    /* Invalid UTF-8 is refused by the generator; emit a placeholder rather
     * than an unterminated document. */
    if (yajl_gen_string(g, (const unsigned char *)s, strlen(s)) ==
        yajl_gen_invalid_string)
        yajl_gen_string(g, (const unsigned char *)"<invalid utf-8>", 15);
}

void
json_gen_int(yajl_gen g, long long v)
{
    yajl_gen_integer(g, v);
}

void
json_gen_double(yajl_gen g, double v)
{
    if (!isfinite(v))
        v = 0;
    yajl_gen_double(g, v);
}

void
json_gen_fixed(yajl_gen g, double v, int decimals)
{
    char buf[64];
    int n;

    if (!isfinite(v))
        v = 0;
    if (decimals < 0)
        decimals = 0;
    if (decimals > 9)
        decimals = 9;
    n = snprintf(buf, sizeof(buf), "%.*f", decimals, v);
    yajl_gen_number(g, buf, (size_t)n);
}

void
json_gen_bool(yajl_gen g, bool v)
{
    yajl_gen_bool(g, v);
}

void
json_gen_null(yajl_gen g)
{
    yajl_gen_null(g);
}

void
json_gen_tree(yajl_gen g, yajl_val v)
{
    if (!v) {
        yajl_gen_null(g);
        return;
    }
    switch (v->type) {
    case yajl_t_string:
        json_gen_str(g, v->u.string);
        break;
    case yajl_t_number:
        /* The original text: re-printing a double would change 0.1 into
         * 0.10000000000000000555, and big integers would overflow. */
        yajl_gen_number(g, v->u.number.r, strlen(v->u.number.r));
        break;
    case yajl_t_object:
        yajl_gen_map_open(g);
        for (size_t i = 0; i < v->u.object.len; i++) {
            json_gen_str(g, v->u.object.keys[i]);
            json_gen_tree(g, v->u.object.values[i]);
        }
        yajl_gen_map_close(g);
        break;
    case yajl_t_array:
        yajl_gen_array_open(g);
        for (size_t i = 0; i < v->u.array.len; i++)
            json_gen_tree(g, v->u.array.values[i]);
        yajl_gen_array_close(g);
        break;
    case yajl_t_true:
        yajl_gen_bool(g, 1);
        break;
    case yajl_t_false:
        yajl_gen_bool(g, 0);
        break;
    default:
        yajl_gen_null(g);
        break;
    }
}

int
json_gen_raw(yajl_gen g, const char *text)
{
    yajl_val v;
    int rc;

    rc = json_parse(text, strlen(text), &v);
    if (rc)
        return rc;
    json_gen_tree(g, v);
    yajl_tree_free(v);
    return 0;
}

char *
json_tree_to_string(yajl_val v)
{
    yajl_gen g = json_gen_new();

    json_gen_tree(g, v);
    return json_gen_take(g);
}

bool
json_equal(yajl_val a, yajl_val b)
{
    if (!a || !b)
        return a == b;
    if (YAJL_IS_TRUE(a) || YAJL_IS_FALSE(a) || YAJL_IS_NULL(a))
        return a->type == b->type;
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case yajl_t_string:
        return strcmp(a->u.string, b->u.string) == 0;
    case yajl_t_number:
        if (YAJL_IS_INTEGER(a) && YAJL_IS_INTEGER(b))
            return YAJL_GET_INTEGER(a) == YAJL_GET_INTEGER(b);
        return YAJL_GET_DOUBLE(a) == YAJL_GET_DOUBLE(b);
    case yajl_t_array:
        if (a->u.array.len != b->u.array.len)
            return false;
        for (size_t i = 0; i < a->u.array.len; i++)
            if (!json_equal(a->u.array.values[i], b->u.array.values[i]))
                return false;
        return true;
    case yajl_t_object:
        if (a->u.object.len != b->u.object.len)
            return false;
        for (size_t i = 0; i < a->u.object.len; i++) {
            yajl_val bv = NULL;

            for (size_t j = 0; j < b->u.object.len; j++) {
                if (strcmp(a->u.object.keys[i], b->u.object.keys[j]) == 0) {
                    bv = b->u.object.values[j];
                    break;
                }
            }
            if (!bv || !json_equal(a->u.object.values[i], bv))
                return false;
        }
        return true;
    default:
        return false;
    }
}
