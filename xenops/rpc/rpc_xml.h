/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc_xml: XML-RPC framing as xapi/xenopsd use it on the Unix socket
 * (reference/interfaces.md 1.3): the request is a methodCall whose only
 * param is a struct of the named arguments (the same names as in JSON-RPC);
 * the reply is a single-param methodResponse holding
 * {Status: "Success", Value: R} or {Status: "Failure", ErrorDescription: E},
 * with R and E the JSON-RPC result and error converted value by value
 * (xmlrpc.h). Pure functions, no I/O; the mirror of rpc_json.h.
 */
#ifndef XENOPS_RPC_XML_H
#define XENOPS_RPC_XML_H

#include <stddef.h>

#include <yajl/yajl_tree.h>

/* A decoded request: owns what the method name and params point into. */
struct rpc_xml_request;

/*
 * Decode a request body. On success *req_r owns the result (free with
 * rpc_xml_request_free), *method_r and *params_r point into it: params_r
 * is the struct param as a JSON object. The method name follows the
 * JSON-RPC rules (1-128 printable ASCII characters). Returns XO_EINVAL
 * with detail for a malformed, oversized, too deep or non-UTF-8 document,
 * a DOCTYPE, and a methodCall without exactly one struct param.
 */
int rpc_xml_decode_request(const char *body, size_t len,
                           struct rpc_xml_request **req_r,
                           const char **method_r, yajl_val *params_r);
void rpc_xml_request_free(struct rpc_xml_request *req);

/* Encode a reply; exactly one of result_json / error_json is non-NULL
 * (both NULL = unit result, Value <nil/>). Caller frees. Text that is not
 * JSON is replaced by an Internal_error Failure, so the result is always
 * a well-formed methodResponse. */
char *rpc_xml_encode_reply(const char *result_json, const char *error_json);

/* Encode a request with the one struct param params_json (NULL = {}).
 * Caller frees. NULL when params_json is not a JSON object. */
char *rpc_xml_encode_request(const char *method, const char *params_json);

/*
 * Decode a reply body. On success sets exactly one of *result_r (the Value
 * as JSON text, "null" for <nil/>) or *error_r (the ErrorDescription as
 * JSON text; an XML-RPC <fault> becomes ["Internal_error", "XML-RPC fault
 * <code>: <string>"]), both malloc'd. Returns XO_EINVAL with detail when
 * the body is not such a methodResponse.
 */
int rpc_xml_decode_reply(const char *body, size_t len, char **result_r,
                         char **error_r);

#endif
