/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests for the foundation modules: json (parsing bounds, rpclib-style
 * lookups, generation), errors (exact wire JSON of Errors.error, the
 * thread-local detail) and ids (what may become a path or a key).
 */

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/xalloc.h"

#define UUID "9c0f7c55-1a2b-4c3d-8e4f-0123456789ab"

static yajl_val
parse_ok(const char *text)
{
    yajl_val v = NULL;

    if (json_parse(text, strlen(text), &v) != 0)
        fail_msg("json_parse refused '%s'", text);
    return v;
}

/* The thread's wire error for rc must be exactly want. */
static void
assert_wire(int rc, const char *want)
{
    char *json = xo_err_take_json(rc);

    assert_non_null(json);
    assert_string_equal(json, want);
    free(json);
}

/* Nested arrays: depth '[' then depth ']'. */
static char *
nested(size_t depth)
{
    char *s = xmalloc(2 * depth + 1);

    memset(s, '[', depth);
    memset(s + depth, ']', depth);
    s[2 * depth] = '\0';
    return s;
}

/* ---- json ---- */

static void
test_json_parse_ok(void **state)
{
    yajl_val v = parse_ok("{\"a\": [1, 2, {\"b\": \"c\"}], \"d\": true}");
    yajl_val a = json_get(v, "a");

    assert_true(YAJL_IS_OBJECT(v));
    assert_true(json_is_array(a));
    assert_int_equal(json_array_len(a), 3);
    assert_int_equal(YAJL_GET_INTEGER(json_array_at(a, 1)), 2);
    assert_string_equal(json_get_str(json_array_at(a, 2), "b"), "c");
    assert_null(json_array_at(a, 3));
    assert_true(YAJL_IS_TRUE(json_get(v, "d")));
    yajl_tree_free(v);
}

static void
test_json_parse_uses_len_not_nul(void **state)
{
    static const char buf[] = "[1,2]garbage";
    yajl_val v = NULL;

    assert_int_equal(json_parse(buf, 5, &v), 0);
    assert_int_equal(json_array_len(v), 2);
    yajl_tree_free(v);
}

static void
test_json_parse_malformed(void **state)
{
    static const char *const bad[] = {
        "", "{", "[1,]", "[1] 2", "{\"a\" 1}", "{'a': 1}", "tru",
        "\"unterminated", "[1, 2", "{\"a\":}",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        static struct yajl_val_s sentinel;
        yajl_val v = &sentinel;
        char *json;

        if (json_parse(bad[i], strlen(bad[i]), &v) != XO_EINVAL)
            fail_msg("json_parse accepted '%s'", bad[i]);
        assert_null(v);
        json = xo_err_take_json(XO_EINVAL);
        if (!strstr(json, "[\"Internal_error\",\"malformed JSON"))
            fail_msg("'%s': detail %s", bad[i], json);
        free(json);
    }
}

/* json_parse must refuse len bytes of text with exactly this detail. */
static void
assert_refused(const char *text, size_t len, const char *detail)
{
    static struct yajl_val_s sentinel;
    yajl_val v = &sentinel;
    char *want = xasprintf("[\"Internal_error\",\"%s\"]", detail);
    char *json;

    if (json_parse(text, len, &v) != XO_EINVAL)
        fail_msg("json_parse accepted '%.*s'", (int)len, text);
    assert_null(v);
    json = xo_err_take_json(XO_EINVAL);
    if (strcmp(json, want) != 0)
        fail_msg("'%.*s': detail %s, want %s", (int)len, text, json, want);
    free(json);
    free(want);
}

/* The one string in the array text must parse to want. */
static void
assert_string_parses(const char *text, const char *want)
{
    yajl_val v = parse_ok(text);
    yajl_val s = json_array_at(v, 0);

    assert_non_null(s);
    assert_true(YAJL_IS_STRING(s));
    assert_string_equal(s->u.string, want);
    yajl_tree_free(v);
}

#define NOT_UTF8 "JSON is not valid UTF-8"
#define NUL_ESCAPE "JSON string contains \\\\u0000"
#define LONE_SURROGATE "JSON string has an unpaired surrogate escape"

/* Each is invalid UTF-8 on its own and inside a JSON string. */
static const char *const bad_utf8[] = {
    "\xff\xfe",
    "caf\xe9",                             /* Latin-1, not UTF-8 */
    "\x80",                                /* lone continuation byte */
    "\xc3",                                /* truncated */
    "\xe2\x82",
    "\xf0\x9f\x98",
    "\xc3\xa9\xa9",                        /* one continuation too many */
    /* Overlong forms: yajl alone accepts these. */
    "\xc0\xaf",                            /* '/' */
    "\xc0\x80",                            /* NUL */
    "\xc1\xbf",
    "\xe0\x80\xaf",
    "\xe0\x9f\xbf",                        /* U+07FF in three bytes */
    "\xf0\x80\x80\xaf",
    "\xf0\x8f\xbf\xbf",                    /* U+FFFF in four bytes */
    /* UTF-16 surrogates encoded as UTF-8. */
    "\xed\xa0\x80",                        /* U+D800 */
    "\xed\xbf\xbf",                        /* U+DFFF */
    "\xed\xa0\xbd\xed\xb8\x80",            /* a "pair", CESU-8 style */
    /* Beyond U+10FFFF, and the old 5- and 6-byte forms. */
    "\xf4\x90\x80\x80",
    "\xf5\x80\x80\x80",
    "\xf7\xbf\xbf\xbf",
    "\xf8\x88\x80\x80\x80",
    "\xfc\x84\x80\x80\x80\x80",
};

/* The first and last code point of each length, either side of the
 * surrogates, and the highest one. */
static const char *const utf8_edges[] = {
    "\x7f", "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf",
    "\xee\x80\x80", "\xef\xbf\xbf", "\xf0\x90\x80\x80",
    "\xf4\x8f\xbf\xbf",
};

static void
test_json_parse_invalid_utf8(void **state)
{
    /* In a key, and outside any string. */
    static const char *const elsewhere[] = {
        "{\"\xfe\":1}",
        "[1]\xff",
        "[\xc0\xaf]",
    };
    /* A sequence cut by len, though the buffer goes on with the rest. */
    static const char cut[] = "[\"\xe2\x82\xac\"]";

    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        char *text = xasprintf("[\"%s\"]", bad_utf8[i]);

        assert_refused(text, strlen(text), NOT_UTF8);
        free(text);
    }
    for (size_t i = 0; i < sizeof(elsewhere) / sizeof(elsewhere[0]); i++)
        assert_refused(elsewhere[i], strlen(elsewhere[i]), NOT_UTF8);
    assert_refused(cut, 4, NOT_UTF8);
}

static void
test_json_parse_valid_utf8(void **state)
{
    yajl_val v = NULL;

    for (size_t i = 0; i < sizeof(utf8_edges) / sizeof(utf8_edges[0]); i++) {
        char *text = xasprintf("[\"%s\"]", utf8_edges[i]);

        assert_string_parses(text, utf8_edges[i]);
        free(text);
    }
    /* é € 😀, raw, in a value and in a key. */
    assert_string_parses("[\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"]",
                         "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    v = parse_ok("{\"\xc3\xa9\":\"\xe2\x82\xac\"}");
    assert_string_equal(json_get_str(v, "\xc3\xa9"), "\xe2\x82\xac");
    yajl_tree_free(v);
}

static void
test_json_utf8_valid_refuses_malformed(void **state)
{
    static const char euro[] = "\xe2\x82\xac";

    for (size_t i = 0; i < sizeof(bad_utf8) / sizeof(bad_utf8[0]); i++) {
        if (json_utf8_valid(bad_utf8[i], strlen(bad_utf8[i])))
            fail_msg("invalid UTF-8 #%zu accepted", i);
    }
    /* Cut short by len, though the buffer goes on with the rest. */
    assert_false(json_utf8_valid(euro, 2));
    assert_true(json_utf8_valid(euro, 3));
}

static void
test_json_utf8_valid_accepts_edges(void **state)
{
    for (size_t i = 0; i < sizeof(utf8_edges) / sizeof(utf8_edges[0]); i++)
        assert_true(json_utf8_valid(utf8_edges[i], strlen(utf8_edges[i])));
    /* NUL is U+0000; an empty buffer is valid; ASCII around a sequence. */
    assert_true(json_utf8_valid("a\0b", 3));
    assert_true(json_utf8_valid("", 0));
    assert_true(json_utf8_valid("x\xc3\xa9y", 4));
}

static void
test_json_parse_refuses_nul_escape(void **state)
{
    static const char *const bad[] = {
        "[\"x\\u0000y\"]",                  /* yajl would give "x" */
        "[\"\\u0000\"]",
        "{\"a\\u0000b\":1}",
        "[\"\\\\\", \"\\u0000\"]",          /* after an escaped backslash */
        "[\"\\ud83d\\ude00\\u0000\"]",      /* after a surrogate pair */
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i], strlen(bad[i]), NUL_ESCAPE);
    /* An escaped backslash then "u0000" is plain text, not an escape. */
    assert_string_parses("[\"\\\\u0000\"]", "\\u0000");
}

static void
test_json_parse_refuses_unpaired_surrogate(void **state)
{
    static const char *const bad[] = {
        "[\"\\ud800\"]",                    /* high alone */
        "[\"\\uDBFF\"]",
        "[\"\\udc00\"]",                    /* low alone */
        "[\"\\uDFFF\"]",
        "[\"\\ud800x\"]",                   /* high, then not an escape */
        "[\"\\ud800\\u0041\"]",             /* high, then not a low */
        "[\"\\ud800\\ud800\"]",
        "[\"\\ud800\\n\\udc00\"]",
        "[\"\\ud800\\uZZZZ\"]",
        "[\"\\udc00\\ud800\"]",             /* the pair reversed */
        "[\"\\ud83d\\ude00\\ude00\"]",      /* a pair, then a low */
        "{\"\\ud800\":1}",
        "[\"\\ud800",                       /* at the end of the text */
        "[\"\\ud800\\udc",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_refused(bad[i], strlen(bad[i]), LONE_SURROGATE);
}

static void
test_json_parse_valid_escapes(void **state)
{
    assert_string_parses("[\"\\ud83d\\ude00\"]", "\xf0\x9f\x98\x80");
    assert_string_parses("[\"\\uD83D\\uDE00\"]", "\xf0\x9f\x98\x80");
    assert_string_parses("[\"\\udbff\\udfff\"]", "\xf4\x8f\xbf\xbf");
    assert_string_parses("[\"\\u00e9\"]", "\xc3\xa9");
    assert_string_parses("[\"\\u0001\"]", "\x01");
    assert_string_parses("[\"\\ud7ff\\ue000\"]", "\xed\x9f\xbf\xee\x80\x80");
    assert_string_parses("[\"a\\/b\\\"\\\\\\b\\f\\n\\r\\t\"]",
                         "a/b\"\\\b\f\n\r\t");
}

static void
test_json_parse_depth_bounded(void **state)
{
    char *ok = nested(JSON_MAX_DEPTH);
    char *deep = nested(JSON_MAX_DEPTH + 1);
    yajl_val v = NULL;
    char *json;

    assert_int_equal(json_parse(ok, strlen(ok), &v), 0);
    yajl_tree_free(v);
    assert_int_equal(json_parse(deep, strlen(deep), &v), XO_EINVAL);
    assert_null(v);
    json = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(json, "deeper"));
    free(json);
    free(deep);
    free(ok);
}

static void
test_json_parse_depth_counts_objects(void **state)
{
    size_t n = JSON_MAX_DEPTH + 1;
    char *s = xmalloc(6 * n + 2);
    size_t o = 0;
    yajl_val v = NULL;

    /* {"a":{"a":...[]...}} with the innermost array one level too deep. */
    for (size_t i = 0; i + 1 < n; i++) {
        memcpy(s + o, "{\"a\":", 5);
        o += 5;
    }
    s[o++] = '[';
    s[o++] = ']';
    memset(s + o, '}', n - 1);
    o += n - 1;
    s[o] = '\0';
    assert_int_equal(json_parse(s, o, &v), XO_EINVAL);
    xo_err_clear();
    free(s);
}

static void
test_json_parse_brackets_in_strings_not_counted(void **state)
{
    size_t n = 3 * JSON_MAX_DEPTH;
    char *s = xmalloc(n + 16);
    yajl_val v = NULL;

    /* An escaped quote must not end the string early. */
    memcpy(s, "[\"\\\"", 4);
    memset(s + 4, '[', n);
    memcpy(s + 4 + n, "\"]", 3);
    assert_int_equal(json_parse(s, strlen(s), &v), 0);
    assert_true(YAJL_IS_STRING(json_array_at(v, 0)));
    assert_int_equal(strlen(json_array_at(v, 0)->u.string), n + 1);
    yajl_tree_free(v);
    free(s);
}

static void
test_json_parse_embedded_nul(void **state)
{
    static const char text[] = "[\"a\0b\"]";
    yajl_val v = NULL;
    char *json;

    assert_int_equal(json_parse(text, sizeof(text) - 1, &v), XO_EINVAL);
    assert_null(v);
    json = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(json, "NUL"));
    free(json);
}

static void
test_json_get_case_insensitive(void **state)
{
    yajl_val v = parse_ok("{\"Name\": \"x\", \"n\": 1}");
    yajl_val arr = parse_ok("[\"Name\"]");

    assert_string_equal(json_get_str(v, "name"), "x");
    assert_string_equal(json_get_str(v, "NAME"), "x");
    assert_non_null(json_get(v, "N"));
    assert_null(json_get(v, "nam"));
    assert_null(json_get(v, "names"));
    /* Not a string, or not an object. */
    assert_null(json_get_str(v, "n"));
    assert_null(json_get(arr, "Name"));
    assert_null(json_get(NULL, "Name"));
    yajl_tree_free(arr);
    yajl_tree_free(v);
}

static void
test_json_get_int64(void **state)
{
    yajl_val v = parse_ok("{\"int\": 12, \"str\": \"34\", \"neg\": \"-7\","
                          " \"junk\": \"12x\", \"bool\": true,"
                          " \"null\": null, \"float\": 1.5, \"empty\": \"\","
                          " \"big\": \"99999999999999999999\","
                          " \"max\": 9223372036854775807}");
    static const char *const bad[] = { "junk", "bool", "float", "empty",
                                       "big" };
    int64_t r = 0;

    assert_int_equal(json_get_int64(v, "int", 0, &r), 0);
    assert_int_equal(r, 12);
    assert_int_equal(json_get_int64(v, "STR", 0, &r), 0);
    assert_int_equal(r, 34);
    assert_int_equal(json_get_int64(v, "neg", 0, &r), 0);
    assert_int_equal(r, -7);
    assert_int_equal(json_get_int64(v, "max", 0, &r), 0);
    assert_true(r == INT64_MAX);
    assert_int_equal(json_get_int64(v, "null", 5, &r), 0);
    assert_int_equal(r, 5);
    assert_int_equal(json_get_int64(v, "absent", 6, &r), 0);
    assert_int_equal(r, 6);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *want = xasprintf("[\"Internal_error\",\"'%s' must be an "
                               "integer\"]", bad[i]);

        assert_int_equal(json_get_int64(v, bad[i], 0, &r), XO_EINVAL);
        assert_wire(XO_EINVAL, want);
        free(want);
    }
    yajl_tree_free(v);
}

static void
test_json_get_bool_strict(void **state)
{
    yajl_val v = parse_ok("{\"t\": true, \"f\": false, \"s\": \"true\","
                          " \"one\": 1, \"null\": null}");
    bool r = false;

    assert_int_equal(json_get_bool(v, "t", false, &r), 0);
    assert_true(r);
    assert_int_equal(json_get_bool(v, "f", true, &r), 0);
    assert_false(r);
    assert_int_equal(json_get_bool(v, "null", true, &r), 0);
    assert_true(r);
    assert_int_equal(json_get_bool(v, "absent", false, &r), 0);
    assert_false(r);
    assert_int_equal(json_get_bool(v, "s", false, &r), XO_EINVAL);
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"'s' must be a boolean\"]");
    assert_int_equal(json_get_bool(v, "one", false, &r), XO_EINVAL);
    xo_err_clear();
    yajl_tree_free(v);
}

static void
test_json_get_double(void **state)
{
    yajl_val v = parse_ok("{\"i\": 3, \"d\": 1.5, \"s\": \"2.25\","
                          " \"inf\": \"inf\", \"nan\": \"nan\","
                          " \"junk\": \"1.5x\", \"b\": false}");
    double r = 0;

    assert_int_equal(json_get_double(v, "i", 0, &r), 0);
    assert_true(r == 3.0);
    assert_int_equal(json_get_double(v, "d", 0, &r), 0);
    assert_true(r == 1.5);
    assert_int_equal(json_get_double(v, "s", 0, &r), 0);
    assert_true(r == 2.25);
    assert_int_equal(json_get_double(v, "absent", 7.5, &r), 0);
    assert_true(r == 7.5);
    assert_int_equal(json_get_double(v, "inf", 0, &r), XO_EINVAL);
    assert_int_equal(json_get_double(v, "nan", 0, &r), XO_EINVAL);
    assert_int_equal(json_get_double(v, "junk", 0, &r), XO_EINVAL);
    assert_int_equal(json_get_double(v, "b", 0, &r), XO_EINVAL);
    xo_err_clear();
    yajl_tree_free(v);
}

static void
test_json_equal_ignores_member_order(void **state)
{
    yajl_val a = parse_ok("{\"a\": 1, \"b\": [1, {\"x\": null, \"y\": \"s\"}],"
                          " \"c\": true}");
    yajl_val b = parse_ok("{\"c\": true, \"b\": [1, {\"y\": \"s\","
                          " \"x\": null}], \"a\": 1}");
    yajl_val swapped = parse_ok("{\"a\": 1, \"b\": [{\"x\": null,"
                                " \"y\": \"s\"}, 1], \"c\": true}");
    yajl_val other = parse_ok("{\"a\": 2, \"b\": [1, {\"x\": null,"
                              " \"y\": \"s\"}], \"c\": true}");
    yajl_val fewer = parse_ok("{\"a\": 1, \"c\": true}");
    yajl_val typed = parse_ok("{\"a\": \"1\", \"b\": [1, {\"x\": null,"
                              " \"y\": \"s\"}], \"c\": true}");

    assert_true(json_equal(a, b));
    assert_true(json_equal(b, a));
    assert_true(json_equal(a, a));
    /* Array order matters. */
    assert_false(json_equal(a, swapped));
    assert_false(json_equal(a, other));
    assert_false(json_equal(a, fewer));
    assert_false(json_equal(fewer, a));
    assert_false(json_equal(a, typed));
    assert_false(json_equal(a, NULL));
    assert_true(json_equal(NULL, NULL));
    yajl_tree_free(typed);
    yajl_tree_free(fewer);
    yajl_tree_free(other);
    yajl_tree_free(swapped);
    yajl_tree_free(b);
    yajl_tree_free(a);
}

static void
test_json_gen_round_trip(void **state)
{
    static const char want[] =
        "{\"s\":\"q\\\"b\\\\n\\n\",\"i\":-5,\"d\":1.5,\"t\":true,"
        "\"f\":false,\"n\":null,\"a\":[1,\"x\",[]],\"o\":{}}";
    yajl_gen g = json_gen_new();
    yajl_val v = NULL;
    yajl_val again = NULL;
    char *text;
    char *text2;

    yajl_gen_map_open(g);
    json_gen_str(g, "s");
    json_gen_str(g, "q\"b\\n\n");
    json_gen_str(g, "i");
    json_gen_int(g, -5);
    json_gen_str(g, "d");
    json_gen_double(g, 1.5);
    json_gen_str(g, "t");
    json_gen_bool(g, true);
    json_gen_str(g, "f");
    json_gen_bool(g, false);
    json_gen_str(g, "n");
    json_gen_null(g);
    json_gen_str(g, "a");
    assert_int_equal(json_gen_raw(g, "[1, \"x\", []]"), 0);
    json_gen_str(g, "o");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    text = json_gen_take(g);
    assert_string_equal(text, want);

    /* Parse and serialise again: same text, equal trees. */
    v = parse_ok(text);
    assert_string_equal(json_get_str(v, "s"), "q\"b\\n\n");
    text2 = json_tree_to_string(v);
    assert_string_equal(text2, want);
    again = parse_ok(text2);
    assert_true(json_equal(v, again));
    yajl_tree_free(again);
    yajl_tree_free(v);
    free(text2);
    free(text);
}

static void
test_json_gen_raw_refuses_malformed(void **state)
{
    yajl_gen g = json_gen_new();
    char *text;

    yajl_gen_array_open(g);
    assert_int_equal(json_gen_raw(g, "{\"a\":"), XO_EINVAL);
    xo_err_clear();
    assert_int_equal(json_gen_raw(g, "{\"a\":1}"), 0);
    yajl_gen_array_close(g);
    text = json_gen_take(g);
    /* Nothing of the refused text was emitted. */
    assert_string_equal(text, "[{\"a\":1}]");
    free(text);
}

static void
test_json_gen_never_emits_invalid(void **state)
{
    yajl_gen g = json_gen_new();
    yajl_val v = NULL;
    char *text;

    yajl_gen_array_open(g);
    json_gen_str(g, "ok\xff");
    json_gen_double(g, INFINITY);
    yajl_gen_array_close(g);
    text = json_gen_take(g);
    assert_string_equal(text, "[\"<invalid utf-8>\",0.0]");
    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    yajl_tree_free(v);
    free(text);
}

/* ---- errors ---- */

static void
test_json_err_wire_formats(void **state)
{
    static const char *const params[] = {
        "", "The VDI is not available", NULL,
    };

    assert_int_equal(xo_err_does_not_exist("VM", "id"), XO_ENOTFOUND);
    assert_wire(XO_ENOTFOUND, "[\"Does_not_exist\",[\"VM\",\"id\"]]");
    assert_int_equal(xo_err_already_exists("VBD", "xvda"), XO_EEXISTS);
    assert_wire(XO_EEXISTS, "[\"Already_exists\",[\"VBD\",\"xvda\"]]");
    assert_int_equal(xo_err_bad_power_state("Running", "Halted"),
                     XO_EPOWERSTATE);
    assert_wire(XO_EPOWERSTATE,
                "[\"Bad_power_state\",[\"Running\",\"Halted\"]]");
    /* A NULL parameter is sent as "". */
    assert_int_equal(xo_err_storage("SR_BACKEND_FAILURE_46", params, 3),
                     XO_EBACKEND);
    assert_wire(XO_EBACKEND,
                "[\"Storage_backend_error\",[\"SR_BACKEND_FAILURE_46\","
                "[\"\",\"The VDI is not available\",\"\"]]]");
    assert_int_equal(xo_err_storage("SR_BACKEND_FAILURE", NULL, 0),
                     XO_EBACKEND);
    assert_wire(XO_EBACKEND,
                "[\"Storage_backend_error\",[\"SR_BACKEND_FAILURE\",[]]]");
    assert_int_equal(xo_err_cancelled("42"), XO_ECANCELLED);
    assert_wire(XO_ECANCELLED, "[\"Cancelled\",\"42\"]");
    assert_int_equal(xo_err_unimplemented("VM.s3suspend"), XO_EUNSUPPORTED);
    assert_wire(XO_EUNSUPPORTED, "[\"Unimplemented\",\"VM.s3suspend\"]");
    assert_int_equal(xo_err_internal("bad %s %d", "thing", 7), XO_EFAIL);
    assert_wire(XO_EFAIL, "[\"Internal_error\",\"bad thing 7\"]");
    assert_int_equal(xo_err_internal_code(XO_EINVAL, "text"), XO_EINVAL);
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"text\"]");
    assert_int_equal(xo_err_tag(XO_ECONNECTED, "Device_is_connected"),
                     XO_ECONNECTED);
    assert_wire(XO_ECONNECTED, "\"Device_is_connected\"");
    /* Quotes in values are escaped, not spliced. */
    xo_err_does_not_exist("VM", "a\"],[\"b");
    assert_wire(XO_ENOTFOUND,
                "[\"Does_not_exist\",[\"VM\",\"a\\\"],[\\\"b\"]]");
}

static void
test_json_err_set_json_takes_ownership(void **state)
{
    assert_int_equal(xo_err_set_json(XO_EFAIL, xstrdup("\"Unknown_error\"")),
                     XO_EFAIL);
    assert_wire(XO_EFAIL, "\"Unknown_error\"");
}

static void
test_json_err_take_without_detail_defaults(void **state)
{
    xo_err_clear();
    assert_wire(XO_ECONNECTED, "\"Device_is_connected\"");
    assert_wire(XO_ENOTCONNECTED, "\"Device_not_connected\"");
    assert_wire(XO_ENOTBUILT, "\"Domain_not_built\"");
    assert_wire(XO_EIO, "\"IO_error\"");
    assert_wire(XO_ETIMEDOUT, "[\"Internal_error\",\"timed out\"]");
    assert_wire(XO_ENOTFOUND, "[\"Internal_error\",\"does not exist\"]");
}

static void
test_json_err_take_clears(void **state)
{
    xo_err_does_not_exist("VM", "id");
    assert_wire(XO_ENOTFOUND, "[\"Does_not_exist\",[\"VM\",\"id\"]]");
    /* Read once: the second take falls back to the default. */
    assert_wire(XO_ENOTFOUND, "[\"Internal_error\",\"does not exist\"]");
}

static void
test_json_err_other_code_detail_not_used(void **state)
{
    xo_err_does_not_exist("VM", "id");
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"invalid argument\"]");
    /* The stale detail was dropped, not kept for a later failure. */
    assert_wire(XO_ENOTFOUND, "[\"Internal_error\",\"does not exist\"]");
}

static void
test_json_err_setter_replaces_previous(void **state)
{
    xo_err_does_not_exist("VM", "first");
    xo_err_does_not_exist("VM", "second");
    assert_wire(XO_ENOTFOUND, "[\"Does_not_exist\",[\"VM\",\"second\"]]");
}

static void *
take_in_thread(void *arg)
{
    return xo_err_take_json(XO_ENOTFOUND);
}

static void
test_json_err_detail_is_per_thread(void **state)
{
    pthread_t t;
    void *json = NULL;

    xo_err_does_not_exist("VM", "mine");
    assert_int_equal(pthread_create(&t, NULL, take_in_thread, NULL), 0);
    assert_int_equal(pthread_join(t, &json), 0);
    assert_string_equal(json, "[\"Internal_error\",\"does not exist\"]");
    free(json);
    assert_wire(XO_ENOTFOUND, "[\"Does_not_exist\",[\"VM\",\"mine\"]]");
}

static void
test_json_err_strerror_never_null(void **state)
{
    for (int code = 5; code >= -20; code--)
        assert_non_null(xo_strerror(code));
    assert_string_equal(xo_strerror(XO_OK), "success");
    assert_string_equal(xo_strerror(12345), "unknown error");
}

/* ---- ids ---- */

static void
test_json_ids_is_uuid(void **state)
{
    static const char *const good[] = {
        UUID,
        "9C0F7C55-1A2B-4C3D-8E4F-0123456789AB",
        "9c0F7c55-1A2b-4c3D-8e4F-0123456789aB",
        "00000000-0000-0000-0000-000000000000",
    };
    static const char *const bad[] = {
        "", "../x", "../../../../etc/passwd-0000-0000-0000",
        UUID "0",                                   /* 37 characters */
        "9c0f7c55-1a2b-4c3d-8e4f-0123456789a",      /* 35 characters */
        "9c0f7c551a2b4c3d8e4f0123456789ab",         /* no dashes */
        "9c0f7c551-a2b-4c3d-8e4f-0123456789ab",     /* dash moved */
        "9c0f7c55-1a2b-4c3d-8e4f_0123456789ab",
        "9c0f7c55-1a2b-4c3d-8e4f-0123456789ag",     /* not hex */
        "9c0f7c55-1a2b-4c3d-8e4f-0123456789a ",
        " 9c0f7c55-1a2b-4c3d-8e4f-0123456789a",
        UUID "\n",
        "{9c0f7c55-1a2b-4c3d-8e4f-0123456789ab}",
        "9c0f7c55-1a2b-4c3d-8e4f-01234567/9ab",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ids_is_uuid(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ids_is_uuid(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(ids_is_uuid(NULL));
}

static void
test_json_ids_is_dev(void **state)
{
    static const char *const good[] = {
        "xvda", "hda", "0", "a.b_c-d", "XVDB",
        "0123456789abcdef0123456789abcdef",   /* IDS_DEV_MAX */
    };
    static const char *const bad[] = {
        "", ".", "..", ".x", "-x", "a/b", "../x", "a b", "x\n", "x:y",
        "0123456789abcdef0123456789abcdef0",  /* IDS_DEV_MAX + 1 */
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!ids_is_dev(good[i]))
            fail_msg("'%s' refused", good[i]);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ids_is_dev(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    assert_false(ids_is_dev(NULL));
}

static void
test_json_ids_check_vm_sets_detail(void **state)
{
    char *json;

    xo_err_clear();
    assert_int_equal(ids_check_vm(UUID), 0);
    /* Success leaves no detail behind. */
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"invalid argument\"]");

    assert_int_equal(ids_check_vm("../evil\n\x01x"), XO_EINVAL);
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"invalid VM id "
                           "'../evil??x': not a UUID\"]");

    /* High bytes would make the detail invalid UTF-8: they are masked. */
    assert_int_equal(ids_check_vm("vm-\xc3\xa9"), XO_EINVAL);
    assert_wire(XO_EINVAL, "[\"Internal_error\",\"invalid VM id "
                           "'vm-?" "?': not a UUID\"]");

    assert_int_equal(ids_check_vm(NULL), XO_EINVAL);
    json = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(json, "invalid VM id"));
    free(json);
}

static void
test_json_ids_check_vm_bounds_shown_id(void **state)
{
    char long_id[301];
    char *json;
    char *run65;

    memset(long_id, 'a', 300);
    long_id[300] = '\0';
    assert_int_equal(ids_check_vm(long_id), XO_EINVAL);
    json = xo_err_take_json(XO_EINVAL);
    run65 = xmalloc(66);
    memset(run65, 'a', 65);
    run65[65] = '\0';
    assert_non_null(strstr(json, "invalid VM id 'aaaa"));
    assert_null(strstr(json, run65));
    free(run65);
    free(json);
}

static void
test_json_ids_check_dev(void **state)
{
    assert_int_equal(ids_check_dev("xvda"), 0);
    assert_int_equal(ids_check_dev("../xvda"), XO_EINVAL);
    assert_wire(XO_EINVAL,
                "[\"Internal_error\",\"invalid device id '../xvda'\"]");
}

static void
test_json_ids_tmp_id(void **state)
{
    char out[IDS_UUID_LEN + 1];

    memset(out, 'X', sizeof(out));
    ids_tmp_id(UUID, '1', out);
    assert_string_equal(out, "9c0f7c55-1a2b-4c3d-8e4f-000000000001");
    assert_true(ids_is_uuid(out));
    ids_tmp_id(UUID, '0', out);
    assert_string_equal(out, "9c0f7c55-1a2b-4c3d-8e4f-000000000000");
    /* A uuid shaped like a temporary id must not get itself back. */
    ids_tmp_id("b0000000-0000-4000-8000-000000000001", '1', out);
    assert_string_equal(out, "b0000000-0000-4000-8000-fffffffffff1");
    ids_tmp_id("b0000000-0000-4000-8000-000000000000", '0', out);
    assert_string_equal(out, "b0000000-0000-4000-8000-fffffffffff0");
}

static void
test_json_parse_comment_cannot_hide_depth(void **state)
{
    char *deep = nested(JSON_MAX_DEPTH + 1);
    char *text = xasprintf("/* \" */ %s", deep);
    yajl_val v = NULL;

    assert_int_equal(json_parse(text, strlen(text), &v), XO_EINVAL);
    assert_null(v);
    xo_err_clear();
    free(text);
    free(deep);
}

/* yajl would accept a comment; JSON has none, and the scan must not be
 * fooled by one. */
static void
test_json_parse_rejects_comments(void **state)
{
    yajl_val v = NULL;
    const char *text = "[1, /* c */ 2]";

    assert_int_equal(json_parse(text, strlen(text), &v), XO_EINVAL);
    assert_null(v);
    xo_err_clear();
}

/* Numbers are re-emitted as written. */
static void
test_json_gen_tree_keeps_number_text(void **state)
{
    const char *text = "[0.1,12345678901234567890,-3]";
    yajl_val v = NULL;
    char *out;

    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    out = json_tree_to_string(v);
    assert_string_equal(out, text);
    free(out);
    yajl_tree_free(v);
}

/* A failure's error survives cleanup steps that set and clear their
 * own. */
static void
test_json_err_preserve_restore(void **state)
{
    struct xo_err_saved saved;
    char *json;
    int rc;

    (void)state;
    rc = xo_err_does_not_exist("VM", "x");
    xo_err_preserve(rc, &saved);
    xo_err_internal("cleanup step failed");
    xo_err_clear();
    assert_int_equal(xo_err_restore(&saved), XO_ENOTFOUND);
    assert_null(saved.json);
    json = xo_err_take_json(XO_ENOTFOUND);
    assert_string_equal(json, "[\"Does_not_exist\",[\"VM\",\"x\"]]");
    free(json);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_comment_cannot_hide_depth),
        cmocka_unit_test(test_json_parse_rejects_comments),
        cmocka_unit_test(test_json_gen_tree_keeps_number_text),
        cmocka_unit_test(test_json_parse_ok),
        cmocka_unit_test(test_json_parse_uses_len_not_nul),
        cmocka_unit_test(test_json_parse_malformed),
        cmocka_unit_test(test_json_parse_invalid_utf8),
        cmocka_unit_test(test_json_parse_valid_utf8),
        cmocka_unit_test(test_json_utf8_valid_refuses_malformed),
        cmocka_unit_test(test_json_utf8_valid_accepts_edges),
        cmocka_unit_test(test_json_parse_refuses_nul_escape),
        cmocka_unit_test(test_json_parse_refuses_unpaired_surrogate),
        cmocka_unit_test(test_json_parse_valid_escapes),
        cmocka_unit_test(test_json_parse_depth_bounded),
        cmocka_unit_test(test_json_parse_depth_counts_objects),
        cmocka_unit_test(test_json_parse_brackets_in_strings_not_counted),
        cmocka_unit_test(test_json_parse_embedded_nul),
        cmocka_unit_test(test_json_get_case_insensitive),
        cmocka_unit_test(test_json_get_int64),
        cmocka_unit_test(test_json_get_bool_strict),
        cmocka_unit_test(test_json_get_double),
        cmocka_unit_test(test_json_equal_ignores_member_order),
        cmocka_unit_test(test_json_gen_round_trip),
        cmocka_unit_test(test_json_gen_raw_refuses_malformed),
        cmocka_unit_test(test_json_gen_never_emits_invalid),
        cmocka_unit_test(test_json_err_wire_formats),
        cmocka_unit_test(test_json_err_set_json_takes_ownership),
        cmocka_unit_test(test_json_err_take_without_detail_defaults),
        cmocka_unit_test(test_json_err_take_clears),
        cmocka_unit_test(test_json_err_other_code_detail_not_used),
        cmocka_unit_test(test_json_err_setter_replaces_previous),
        cmocka_unit_test(test_json_err_detail_is_per_thread),
        cmocka_unit_test(test_json_err_strerror_never_null),
        cmocka_unit_test(test_json_ids_is_uuid),
        cmocka_unit_test(test_json_ids_is_dev),
        cmocka_unit_test(test_json_ids_check_vm_sets_detail),
        cmocka_unit_test(test_json_ids_check_vm_bounds_shown_id),
        cmocka_unit_test(test_json_ids_check_dev),
        cmocka_unit_test(test_json_ids_tmp_id),
        cmocka_unit_test(test_json_err_preserve_restore),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
