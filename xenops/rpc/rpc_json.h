/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc_json: JSON-RPC v1 framing as xapi/xenopsd use it
 * (reference/interfaces.md 1.2): request {"method", "params": [{named}],
 * "id"}; reply {"result", "error", "id": 0}. Pure functions, no I/O.
 */
#ifndef XENOPS_RPC_JSON_H
#define XENOPS_RPC_JSON_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

/*
 * Decode a request body. On success *tree_r owns the parse tree (free with
 * yajl_tree_free), *method_r and *params_r point into it; params_r is the
 * first element of "params" (an object) or NULL when params is [] or
 * absent. "id" must be present (any type); "method" is 1-128 printable
 * ASCII characters; the body must be strict UTF-8 (no overlong forms or
 * surrogates). Returns XO_EINVAL with detail otherwise.
 * Also accepts "jsonrpc":"2.0" requests whose params is an object.
 */
int rpc_json_decode_request(const char *body, size_t len, yajl_val *tree_r,
                            const char **method_r, yajl_val *params_r);

/* Encode a reply; exactly one of result_json / error_json is non-NULL
 * (result NULL and error NULL = unit result). Caller frees. Text that is not
 * JSON is replaced by an Internal_error reply, so the result is always
 * well-formed. */
char *rpc_json_encode_reply(const char *result_json, const char *error_json);

/* Encode a request with params [params_json] (NULL = [{}]). Caller frees.
 * NULL when params_json is not valid JSON. */
char *rpc_json_encode_request(const char *method, const char *params_json,
                              long id);

/*
 * Decode a reply body. On success sets exactly one of *result_r (the result
 * JSON text, "null" for unit) or *error_r (a non-null error member), both
 * malloc'd. Returns XO_EINVAL with detail when the body is not a JSON object
 * with a "result" or "error" member.
 */
int rpc_json_decode_reply(const char *body, size_t len, char **result_r,
                          char **error_r);

#endif
