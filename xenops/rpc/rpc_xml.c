/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * XML-RPC framing (reference/interfaces.md 1.3). Worked example:
 *
 *   request  <methodCall><methodName>VM.exists</methodName><params><param>
 *            <value><struct>
 *             <member><name>debug_info</name><value>x</value></member>
 *             <member><name>id</name><value>9c0f...</value></member>
 *            </struct></value></param></params></methodCall>
 *   reply    <methodResponse><params><param><value><struct>
 *             <member><name>Status</name><value><string>Success</string>
 *             </value></member>
 *             <member><name>Value</name><value><boolean>1</boolean>
 *             </value></member>
 *            </struct></value></param></params></methodResponse>
 *   failure  the same with Status "Failure" and ErrorDescription
 *            ["Does_not_exist", ["VM", "9c0f..."]] as nested arrays.
 *
 * The handlers only know JSON, so a request goes XML -> JSON text -> tree
 * and a reply JSON text -> XML. Everything here is a pure function: the
 * transport (rpc.c) owns sockets, logging and the method table.
 */

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "rpc/rpc_xml.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "util/xmlrpc.h"

#define RPC_XML_METHOD_MAX 128

struct rpc_xml_request {
    char *method;
    yajl_val params;        /* the params array; [0] is the struct */
};

/* The same rule as JSON-RPC: names end up in logs and error texts. */
static bool
rpc_xml_method_ok(const char *m)
{
    size_t n = strlen(m);

    if (n == 0 || n > RPC_XML_METHOD_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (m[i] < 0x21 || m[i] > 0x7e)
            return false;
    }
    return true;
}

void
rpc_xml_request_free(struct rpc_xml_request *req)
{
    if (!req)
        return;
    free(req->method);
    yajl_tree_free(req->params);
    free(req);
}

int
rpc_xml_decode_request(const char *body, size_t len,
                       struct rpc_xml_request **req_r,
                       const char **method_r, yajl_val *params_r)
{
    struct rpc_xml_request *req = xcalloc(1, sizeof(*req));
    char *params_json = NULL;
    yajl_val first;
    int rc;

    *req_r = NULL;
    *method_r = NULL;
    *params_r = NULL;
    rc = xmlrpc_parse_call(body, len, &req->method, &params_json);
    if (rc)
        goto out;
    if (!rpc_xml_method_ok(req->method)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "XML-RPC methodName must be 1 to %d "
                                  "printable ASCII characters",
                                  RPC_XML_METHOD_MAX);
        goto out;
    }
    rc = json_parse(params_json, strlen(params_json), &req->params);
    if (rc)
        goto out;
    first = json_array_at(req->params, 0);
    if (json_array_len(req->params) != 1 || !YAJL_IS_OBJECT(first)) {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "XML-RPC call must have exactly one param, "
                                  "a struct of named arguments");
        goto out;
    }
    *method_r = req->method;
    *params_r = first;
    *req_r = req;
    req = NULL;
out:
    rpc_xml_request_free(req);
    free(params_json);
    return rc;
}

/* {Status, Value | ErrorDescription} as JSON; NULL when an input is not
 * JSON. */
static char *
rpc_xml_reply_json(const char *result_json, const char *error_json)
{
    yajl_gen g = json_gen_new();
    char *json = NULL;
    int rc = 0;

    yajl_gen_map_open(g);
    json_gen_str(g, "Status");
    json_gen_str(g, error_json ? "Failure" : "Success");
    json_gen_str(g, error_json ? "ErrorDescription" : "Value");
    if (error_json)
        rc = json_gen_raw(g, error_json);
    else if (result_json)
        rc = json_gen_raw(g, result_json);
    else
        json_gen_null(g);
    if (rc)
        goto out;
    yajl_gen_map_close(g);
    json = json_gen_take(g);
    g = NULL;
out:
    if (g) {
        yajl_gen_free(g);
        xo_err_clear();
    }
    return json;
}

char *
rpc_xml_encode_reply(const char *result_json, const char *error_json)
{
    char *json = rpc_xml_reply_json(result_json, error_json);
    char *xml = NULL;

    if (json && xmlrpc_encode_response(json, &xml) == 0) {
        free(json);
        return xml;
    }
    free(json);
    xo_err_clear();
    /* A handler produced text that is not JSON (or not expressible in
     * XML-RPC): the caller still gets a well-formed reply. */
    return xstrdup("<?xml version=\"1.0\"?><methodResponse><params><param>"
                   "<value><struct><member><name>Status</name><value>"
                   "<string>Failure</string></value></member><member>"
                   "<name>ErrorDescription</name><value><array><data>"
                   "<value><string>Internal_error</string></value><value>"
                   "<string>server produced a malformed reply</string>"
                   "</value></data></array></value></member></struct>"
                   "</value></param></params></methodResponse>");
}

char *
rpc_xml_encode_request(const char *method, const char *params_json)
{
    yajl_val params = NULL;
    char *array = NULL;
    char *xml = NULL;

    if (params_json) {
        if (json_parse(params_json, strlen(params_json), &params) ||
            !YAJL_IS_OBJECT(params))
            goto out;
    }
    array = xasprintf("[%s]", params_json ? params_json : "{}");
    if (xmlrpc_encode_call(method, array, &xml))
        xml = NULL;
out:
    /* The header promises NULL, not a detail, for bad params. */
    xo_err_clear();
    yajl_tree_free(params);
    free(array);
    return xml;
}

/* A <fault> as an Errors.error, so callers see one error shape. */
static char *
rpc_xml_fault_error(yajl_val fault)
{
    yajl_val code = json_get(fault, "faultCode");
    const char *text = json_get_str(fault, "faultString");
    yajl_gen g = json_gen_new();
    char *msg;

    msg = xasprintf("XML-RPC fault %s: %s",
                    code && YAJL_IS_NUMBER(code) ? code->u.number.r : "?",
                    text ? text : "");
    yajl_gen_array_open(g);
    json_gen_str(g, "Internal_error");
    json_gen_str(g, msg);
    yajl_gen_array_close(g);
    free(msg);
    return json_gen_take(g);
}

int
rpc_xml_decode_reply(const char *body, size_t len, char **result_r,
                     char **error_r)
{
    yajl_val tree = NULL;
    yajl_val member;
    const char *status;
    char *json = NULL;
    bool fault;
    int rc;

    *result_r = NULL;
    *error_r = NULL;
    rc = xmlrpc_parse_response(body, len, &json, &fault);
    if (rc)
        goto out;
    rc = json_parse(json, strlen(json), &tree);
    if (rc)
        goto out;
    if (fault) {
        *error_r = rpc_xml_fault_error(tree);
        goto out;
    }
    status = json_get_str(tree, "Status");
    if (status && strcmp(status, "Success") == 0) {
        member = json_get(tree, "Value");
        *result_r = member ? json_tree_to_string(member) : xstrdup("null");
    } else if (status && strcmp(status, "Failure") == 0 &&
               (member = json_get(tree, "ErrorDescription"))) {
        *error_r = json_tree_to_string(member);
    } else {
        rc = xo_err_internal_code(XO_EINVAL,
                                  "XML-RPC reply must be a struct with "
                                  "Status Success or Failure");
    }
out:
    yajl_tree_free(tree);
    free(json);
    return rc;
}
