/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * json: small helpers over yajl (trees for reading, yajl_gen for writing)
 * that follow rpclib's rules where they matter: object keys are matched
 * case-insensitively on input; ints and floats may come as decimal strings.
 *
 * Ownership: json_parse returns a tree freed with yajl_tree_free(); lookups
 * return borrowed pointers into the tree. json_gen_take returns a malloc'd
 * NUL-terminated copy of the generated text and frees the generator.
 */
#ifndef XENOPS_JSON_H
#define XENOPS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_tree.h>

/* Deepest nesting json_parse accepts; deeper input is refused (a bound on
 * the recursion in yajl_tree_free and in our walkers). */
#define JSON_MAX_DEPTH 64

/*
 * Parse len bytes (need not be NUL-terminated). Returns 0, or XO_EINVAL with
 * an Internal_error detail naming the problem (syntax, depth, not UTF-8).
 */
int json_parse(const char *text, size_t len, yajl_val *tree_r);

/*
 * Whether len bytes are well-formed UTF-8 as RFC 3629 section 4 defines it:
 * no overlong forms, no encoded surrogates (U+D800..U+DFFF), nothing above
 * U+10FFFF, no sequence cut short by len. A NUL byte is U+0000 and valid.
 */
bool json_utf8_valid(const char *s, size_t len);

/* Member of an object by case-insensitive key; NULL if absent or obj is not
 * an object. */
yajl_val json_get(yajl_val obj, const char *key);
/* String member or NULL (absent or not a string). */
const char *json_get_str(yajl_val obj, const char *key);

/*
 * Typed members. Absent (or JSON null) gives dflt and 0; present with the
 * wrong type gives XO_EINVAL with a detail naming the key.
 */
int json_get_bool(yajl_val obj, const char *key, bool dflt, bool *r);
int json_get_int64(yajl_val obj, const char *key, int64_t dflt, int64_t *r);
int json_get_double(yajl_val obj, const char *key, double dflt, double *r);
/* Value conversions with the same rules. */
int json_to_int64(yajl_val v, int64_t *r);
int json_to_double(yajl_val v, double *r);

bool json_is_array(yajl_val v);
size_t json_array_len(yajl_val v);
yajl_val json_array_at(yajl_val v, size_t i);

/* A generator configured for compact output with UTF-8 validation. */
yajl_gen json_gen_new(void);
/* Finish: returns the text (caller frees) and frees g. */
char *json_gen_take(yajl_gen g);
void json_gen_str(yajl_gen g, const char *s);
void json_gen_int(yajl_gen g, long long v);
void json_gen_double(yajl_gen g, double v);
/* A number with a fixed count of decimals (0..9), for measurements. */
void json_gen_fixed(yajl_gen g, double v, int decimals);
void json_gen_bool(yajl_gen g, bool v);
void json_gen_null(yajl_gen g);
/* Emit a parsed tree as-is. */
void json_gen_tree(yajl_gen g, yajl_val v);
/* Emit already-serialised JSON text (parsed, so malformed text is refused
 * with XO_EINVAL and nothing is emitted). */
int json_gen_raw(yajl_gen g, const char *text);

/* Serialise a tree to a malloc'd string. */
char *json_tree_to_string(yajl_val v);

/* Structural equality (object member order ignored). */
bool json_equal(yajl_val a, yajl_val b);

#endif
