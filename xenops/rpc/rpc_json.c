/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * JSON-RPC v1 framing (reference/interfaces.md 1.2). Worked example:
 *
 *   request  {"method": "VM.stat", "params": [{"dbg": "x", "id": "<uuid>"}],
 *             "id": 7}
 *   reply    {"result": [<Vm.t>, <Vm.state>], "error": null, "id": 0}
 *   failure  {"result": null, "error": ["Does_not_exist", ["VM", "<uuid>"]],
 *             "id": 0}
 *
 * xenopsd answers "id": 0 whatever the request said, and its client never
 * checks the id, so neither do we. Everything here is a pure function: the
 * transport (rpc.c) owns sockets, logging and the method table.
 */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_json.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define RPC_JSON_METHOD_MAX 128

/* Method names end up in logs and error texts: keep them short and plain. */
static bool
rpc_json_method_ok(const char *m)
{
    size_t n = strlen(m);

    if (n == 0 || n > RPC_JSON_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (m[i] < 0x21 || m[i] > 0x7e)
            return false;
    }
    return true;
}

/* "jsonrpc" absent or "1.0" is v1; "2.0" is v2; anything else is refused
 * rather than guessed at. */
static int
rpc_json_version(yajl_val tree, bool *v2_r)
{
    yajl_val v = json_get(tree, "jsonrpc");

    *v2_r = false;
    if (!v)
        return 0;
    if (YAJL_IS_STRING(v) && strcmp(v->u.string, "1.0") == 0)
        return 0;
    if (YAJL_IS_STRING(v) && strcmp(v->u.string, "2.0") == 0) {
        *v2_r = true;
        return 0;
    }
    return xo_err_internal_code(XO_EINVAL,
                                "unsupported JSON-RPC version in request");
}

static int
rpc_json_params(yajl_val params, bool v2, yajl_val *params_r)
{
    yajl_val first;

    *params_r = NULL;
    if (!params)
        return 0;
    if (v2 && YAJL_IS_OBJECT(params)) {
        *params_r = params;
        return 0;
    }
    if (!YAJL_IS_ARRAY(params))
        return xo_err_internal_code(XO_EINVAL,
                                    "JSON-RPC 'params' must be an array");
    if (params->u.array.len == 0)
        return 0;
    if (params->u.array.len > 1)
        return xo_err_internal_code(XO_EINVAL,
                                    "JSON-RPC 'params' must hold one object "
                                    "of named arguments");
    first = params->u.array.values[0];
    if (!YAJL_IS_OBJECT(first))
        return xo_err_internal_code(XO_EINVAL,
                                    "JSON-RPC 'params[0]' must be an object");
    *params_r = first;
    return 0;
}

/*
 * Backwards compatibility xenopsd keeps (interfaces.md 1.2): `query` and
 * `VM.import_metadata` are also accepted with positional params
 * [dbg, second_arg]. Such a request is rewritten into the named form, as a
 * new tree; 0 with *out_r NULL when the request is not of that shape.
 */
static int
rpc_json_positional(yajl_val tree, const char *method, yajl_val *out_r)
{
    static const struct {
        const char *method;
        const char *second;
    } compat[] = {
        { "query", "unit" },
        { "VM.import_metadata", "metadata" },
    };
    yajl_val params = json_get(tree, "params");
    yajl_val dbg = json_array_at(params, 0);
    const char *second = NULL;
    yajl_gen g;
    char *text;
    int rc;

    *out_r = NULL;
    for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]); i++)
        if (strcmp(method, compat[i].method) == 0)
            second = compat[i].second;
    if (!second || json_array_len(params) != 2 || !YAJL_IS_STRING(dbg))
        return 0;
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "method");
    json_gen_str(g, method);
    json_gen_str(g, "params");
    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    json_gen_str(g, "debug_info");
    json_gen_str(g, dbg->u.string);
    json_gen_str(g, second);
    json_gen_tree(g, json_array_at(params, 1));
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    json_gen_str(g, "id");
    json_gen_tree(g, json_get(tree, "id"));
    yajl_gen_map_close(g);
    text = json_gen_take(g);
    rc = json_parse(text, strlen(text), out_r);
    free(text);
    return rc;
}

int
rpc_json_decode_request(const char *body, size_t len, yajl_val *tree_r,
                        const char **method_r, yajl_val *params_r)
{
    yajl_val tree = NULL;
    yajl_val method;
    bool v2;
    int rc;

    *tree_r = NULL;
    *method_r = NULL;
    *params_r = NULL;
    /* json_parse refuses anything that is not strict UTF-8. */
    rc = json_parse(body, len, &tree);
    if (rc)
        goto out;
    if (!YAJL_IS_OBJECT(tree)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "JSON-RPC request must be an object");
        goto out;
    }
    rc = rpc_json_version(tree, &v2);
    if (rc)
        goto out;
    method = json_get(tree, "method");
    if (!method || !YAJL_IS_STRING(method)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "JSON-RPC request lacks a 'method' string");
        goto out;
    }
    if (!rpc_json_method_ok(method->u.string)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "JSON-RPC 'method' must be 1 to %d "
                                  "printable ASCII characters",
                                  RPC_JSON_METHOD_MAX);
        goto out;
    }
    if (!json_get(tree, "id")) {
        rc = xo_err_internal_code(XO_EINVAL, "JSON-RPC request lacks an 'id'");
        goto out;
    }
    {
        yajl_val named = NULL;

        rc = rpc_json_positional(tree, method->u.string, &named);
        if (rc)
            goto out;
        if (named) {
            yajl_tree_free(tree);
            tree = named;
            method = json_get(tree, "method");
        }
    }
    rc = rpc_json_params(json_get(tree, "params"), v2, params_r);
    if (rc)
        goto out;
    *method_r = method->u.string;
    *tree_r = tree;
    tree = NULL;
out:
    yajl_tree_free(tree);
    return rc;
}

/* {"result": R, "error": E, "id": 0}; NULL when R or E is not JSON. */
static char *
rpc_json_reply_gen(const char *result_json, const char *error_json)
{
    yajl_gen g = json_gen_new();
    char *reply = NULL;
    int rc = 0;

    yajl_gen_map_open(g);
    json_gen_str(g, "result");
    if (result_json)
        rc = json_gen_raw(g, result_json);
    else
        json_gen_null(g);
    if (rc)
        goto out;
    json_gen_str(g, "error");
    if (error_json)
        rc = json_gen_raw(g, error_json);
    else
        json_gen_null(g);
    if (rc)
        goto out;
    json_gen_str(g, "id");
    json_gen_int(g, 0);
    yajl_gen_map_close(g);
    reply = json_gen_take(g);
    g = NULL;
out:
    if (g) {
        yajl_gen_free(g);
        xo_err_clear();
    }
    return reply;
}

char *
rpc_json_encode_reply(const char *result_json, const char *error_json)
{
    char *reply;

    if (error_json)
        result_json = NULL;
    reply = rpc_json_reply_gen(result_json, error_json);
    if (reply)
        return reply;
    /* A handler produced text that is not JSON: the caller still gets a
     * well-formed reply, and the error says whose fault it is. */
    return xstrdup("{\"result\":null,\"error\":[\"Internal_error\","
                   "\"server produced a malformed JSON reply\"],\"id\":0}");
}

char *
rpc_json_encode_request(const char *method, const char *params_json, long id)
{
    yajl_gen g = json_gen_new();
    char *req = NULL;

    yajl_gen_map_open(g);
    json_gen_str(g, "method");
    json_gen_str(g, method);
    json_gen_str(g, "params");
    yajl_gen_array_open(g);
    if (!params_json) {
        yajl_gen_map_open(g);
        yajl_gen_map_close(g);
    } else if (json_gen_raw(g, params_json)) {
        goto out;
    }
    yajl_gen_array_close(g);
    json_gen_str(g, "id");
    json_gen_int(g, id);
    yajl_gen_map_close(g);
    req = json_gen_take(g);
    g = NULL;
out:
    if (g) {
        yajl_gen_free(g);
        xo_err_clear();
    }
    return req;
}

int
rpc_json_decode_reply(const char *body, size_t len, char **result_r,
                      char **error_r)
{
    yajl_val tree = NULL;
    yajl_val result, error;
    int rc;

    *result_r = NULL;
    *error_r = NULL;
    rc = json_parse(body, len, &tree);
    if (rc)
        goto out;
    result = json_get(tree, "result");
    error = json_get(tree, "error");
    if (!YAJL_IS_OBJECT(tree) || (!result && !error)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "JSON-RPC reply must be an object with "
                                  "'result' or 'error'");
        goto out;
    }
    if (error && !YAJL_IS_NULL(error))
        *error_r = json_tree_to_string(error);
    else
        *result_r = json_tree_to_string(result);
out:
    yajl_tree_free(tree);
    return rc;
}
