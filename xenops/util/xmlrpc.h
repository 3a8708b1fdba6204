/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xmlrpc: XML-RPC documents <-> JSON values, with expat. Used by the
 * message interface (XML-RPC on the xenopsd socket, xapi's encoding) and by
 * the SMAPIv1 adapter (drivers take a methodCall in argv[1] and print a
 * methodResponse or a fault).
 *
 * Value mapping (XML-RPC -> JSON): <int>/<i4>/<i8> -> integer; <double> ->
 * number; <boolean>0|1 -> false|true; <string> and untyped text -> string;
 * <nil/> -> null; <array> -> array; <struct> -> object (member order kept);
 * <base64> and <dateTime.iso8601> -> string (their text). JSON -> XML-RPC:
 * string -> <string>, integer -> <int> when it fits 32 bits else <i8>,
 * number -> <double> (%.16g), bool -> <boolean>, null -> <nil/>, array,
 * object -> <struct>. Readers elsewhere accept integers given as strings
 * (rpclib writes untyped ints), so decoding keeps untyped text a string.
 * XML 1.0 cannot carry C0 controls other than tab/LF/CR, nor U+FFFE/FFFF:
 * like rpclib, the encoder drops them; CR is written as "&#13;".
 *
 * Bounds: documents over XMLRPC_MAX_DOC bytes, nesting deeper than
 * JSON_MAX_DEPTH, DOCTYPE/entity declarations (billion laughs), unknown
 * tags and malformed XML are refused with XO_EINVAL and a detail.
 *
 * Ownership: every char ** result is malloc'd and freed by the caller.
 */
#ifndef XENOPS_XMLRPC_H
#define XENOPS_XMLRPC_H

#include <stdbool.h>
#include <stddef.h>

#define XMLRPC_MAX_DOC (64u * 1024 * 1024)

/* <methodCall>: the method name and the params as a JSON array text. */
int xmlrpc_parse_call(const char *xml, size_t len, char **method_r,
                      char **params_json_r);

/*
 * <methodResponse>: either the single param's value as JSON text
 * (*fault_r = false) or, for a <fault>, the fault struct as JSON text
 * {"faultCode": n, "faultString": s} (*fault_r = true).
 */
int xmlrpc_parse_response(const char *xml, size_t len, char **value_json_r,
                          bool *fault_r);

/* Documents from JSON texts; XO_EINVAL if a JSON text is malformed.
 * params_json must be a JSON array (one <param> per element). */
int xmlrpc_encode_call(const char *method, const char *params_json,
                       char **xml_r);
int xmlrpc_encode_response(const char *value_json, char **xml_r);
int xmlrpc_encode_fault(int code, const char *message, char **xml_r);

/* One <value>...</value> element from a JSON text. */
int xmlrpc_encode_value(const char *value_json, char **xml_r);

#endif
