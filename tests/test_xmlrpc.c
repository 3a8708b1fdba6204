/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests for xmlrpc (XML-RPC documents <-> JSON) and rpc_xml (the XML-RPC
 * framing of the message interface): the value mapping both ways, faults,
 * rpclib's untyped values, member order, nesting, and every refusal
 * (size, depth, DOCTYPE/entities, malformed documents, non-UTF-8).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc/rpc_xml.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "util/xmlrpc.h"

#define HDR "<?xml version=\"1.0\"?>"
#define RESP(v) HDR "<methodResponse><params><param>" v \
    "</param></params></methodResponse>"
#define CALL(m, p) HDR "<methodCall><methodName>" m "</methodName><params>" \
    p "</params></methodCall>"

static void
assert_json_same(const char *actual, const char *expected)
{
    assert_true(testutil_json_same(actual, expected));
}

/* The JSON of a methodResponse's value; fails the test on error. */
static char *
response_value(const char *xml, bool *fault_r)
{
    char *json = NULL;
    bool fault = true;
    int rc = xmlrpc_parse_response(xml, strlen(xml), &json, &fault);

    if (rc) {
        char *err = xo_err_take_json(rc);

        fprintf(stderr, "refused: %s\n%s\n", err, xml);
        free(err);
    }
    assert_int_equal(rc, 0);
    if (fault_r)
        *fault_r = fault;
    else
        assert_false(fault);
    return json;
}

static void
check_value(const char *value_xml, const char *expected_json)
{
    char *xml = xasprintf(RESP("%s"), value_xml);
    char *json = response_value(xml, NULL);

    assert_json_same(json, expected_json);
    free(json);
    free(xml);
}

/* A refusal: XO_EINVAL, no output, and an Internal_error detail that
 * contains want (when given). */
static void
check_refused_response(const char *xml, size_t len, const char *want)
{
    char *json = (char *)1;
    bool fault = true;
    char *err;

    assert_int_equal(xmlrpc_parse_response(xml, len, &json, &fault),
                     XO_EINVAL);
    assert_null(json);
    assert_false(fault);
    err = xo_err_take_json(XO_EINVAL);
    if (!strstr(err, "Internal_error") || (want && !strstr(err, want)))
        fprintf(stderr, "detail '%s' lacks '%s' for:\n%.300s\n", err,
                want ? want : "Internal_error", xml);
    assert_non_null(strstr(err, "Internal_error"));
    if (want)
        assert_non_null(strstr(err, want));
    free(err);
}

static void
check_refused_call(const char *xml, const char *want)
{
    char *method = (char *)1, *params = (char *)1;
    char *err;

    assert_int_equal(xmlrpc_parse_call(xml, strlen(xml), &method, &params),
                     XO_EINVAL);
    assert_null(method);
    assert_null(params);
    err = xo_err_take_json(XO_EINVAL);
    if (want && !strstr(err, want))
        fprintf(stderr, "detail '%s' lacks '%s'\n", err, want);
    if (want)
        assert_non_null(strstr(err, want));
    free(err);
}

static char *
encode_value(const char *json)
{
    char *xml = NULL;

    assert_int_equal(xmlrpc_encode_value(json, &xml), 0);
    return xml;
}

/* ---- XML -> JSON ---- */

static void
test_xmlrpc_parse_scalars(void **state)
{
    check_value("<value><int>42</int></value>", "42");
    check_value("<value><i4>-7</i4></value>", "-7");
    check_value("<value><i8>9000000000</i8></value>", "9000000000");
    check_value("<value><int> +5 </int></value>", "5");
    check_value("<value><double>0.84</double></value>", "0.84");
    check_value("<value><double>-1.5e3</double></value>", "-1500.0");
    check_value("<value><boolean>1</boolean></value>", "true");
    check_value("<value><boolean>0</boolean></value>", "false");
    check_value("<value><string>a b</string></value>", "\"a b\"");
    check_value("<value><string></string></value>", "\"\"");
    check_value("<value><string/></value>", "\"\"");
    check_value("<value><nil/></value>", "null");
    check_value("<value><base64>aGk=</base64></value>", "\"aGk=\"");
    check_value("<value><dateTime.iso8601>20250101T00:00:00"
                "</dateTime.iso8601></value>", "\"20250101T00:00:00\"");
}

/* A <double> stays a float in JSON even when it is integral, so the type
 * survives a round trip. */
static void
test_xmlrpc_parse_double_keeps_float(void **state)
{
    char *json = response_value(RESP("<value><double>3</double></value>"),
                                NULL);
    yajl_val v = NULL;

    assert_int_equal(json_parse(json, strlen(json), &v), 0);
    assert_true(YAJL_IS_DOUBLE(v));
    assert_false(YAJL_IS_INTEGER(v));
    yajl_tree_free(v);
    free(json);
}

/* rpclib writes ints and strings without a type element: untyped text is a
 * string, and is not trimmed. */
static void
test_xmlrpc_parse_rpclib_untyped(void **state)
{
    check_value("<value>42</value>", "\"42\"");
    check_value("<value>Halted</value>", "\"Halted\"");
    check_value("<value></value>", "\"\"");
    check_value("<value/>", "\"\"");
    check_value("<value>  x  </value>", "\"  x  \"");
    check_value("<value><struct><member><name>memory</name>"
                "<value>2147483648</value></member></struct></value>",
                "{\"memory\":\"2147483648\"}");
}

static void
test_xmlrpc_parse_struct_keeps_member_order(void **state)
{
    char *json = response_value(
        RESP("<value><struct>"
             "<member><name>z</name><value><int>1</int></value></member>"
             "<member><name>a</name><value><int>2</int></value></member>"
             "<member><name>m</name><value><int>3</int></value></member>"
             "</struct></value>"), NULL);

    /* Text comparison on purpose: the order is the point. */
    assert_string_equal(json, "{\"z\":1,\"a\":2,\"m\":3}");
    free(json);
}

static void
test_xmlrpc_parse_nested(void **state)
{
    check_value("<value><array><data>"
                "<value>Vbd</value>"
                "<value><array><data><value>vm</value><value>xvda</value>"
                "</data></array></value>"
                "<value><struct><member><name>k</name><value><array><data/>"
                "</array></value></member><member><name>e</name><value>"
                "<struct/></value></member></struct></value>"
                "</data></array></value>",
                "[\"Vbd\",[\"vm\",\"xvda\"],{\"k\":[],\"e\":{}}]");
}

/* Python's xmlrpc.client and pretty printers put line breaks between
 * elements. */
static void
test_xmlrpc_parse_whitespace_between_elements(void **state)
{
    char *json = response_value(
        "<?xml version='1.0'?>\n<methodResponse>\n<params>\n<param>\n"
        "<value><struct>\n<member>\n<name>status</name>\n"
        "<value><string>ok</string></value>\n</member>\n"
        "<member>\n<name>list</name>\n<value><array><data>\n"
        "<value><int>1</int></value>\n</data></array></value>\n"
        "</member>\n</struct></value>\n</param>\n</params>\n"
        "</methodResponse>\n", NULL);

    assert_json_same(json, "{\"status\":\"ok\",\"list\":[1]}");
    free(json);
}

static void
test_xmlrpc_parse_escapes_and_cdata(void **state)
{
    check_value("<value><string>a&amp;b&lt;c&gt;&quot;&apos;&#65;&#x42;"
                "</string></value>", "\"a&b<c>\\\"'AB\"");
    check_value("<value><string><![CDATA[<x>&]]></string></value>",
                "\"<x>&\"");
    check_value("<value><string>\xc3\xa9\xe2\x82\xac</string></value>",
                "\"\xc3\xa9\xe2\x82\xac\"");
    /* Comments and processing instructions carry no data. */
    check_value("<value><!-- c --><int>1</int><?pi x?></value>", "1");
}

static void
test_xmlrpc_parse_call(void **state)
{
    const char *xml = CALL("VM.stat", "<param><value><struct>"
                           "<member><name>id</name><value>v</value></member>"
                           "</struct></value></param>"
                           "<param><value><int>2</int></value></param>");
    char *method = NULL, *params = NULL;

    assert_int_equal(xmlrpc_parse_call(xml, strlen(xml), &method, &params),
                     0);
    assert_string_equal(method, "VM.stat");
    assert_json_same(params, "[{\"id\":\"v\"},2]");
    free(method);
    free(params);
}

static void
test_xmlrpc_parse_call_without_params(void **state)
{
    const char *a = HDR "<methodCall><methodName>m</methodName>"
                    "</methodCall>";
    const char *b = CALL("m", "");
    char *method = NULL, *params = NULL;

    assert_int_equal(xmlrpc_parse_call(a, strlen(a), &method, &params), 0);
    assert_string_equal(params, "[]");
    free(method);
    free(params);
    assert_int_equal(xmlrpc_parse_call(b, strlen(b), &method, &params), 0);
    assert_string_equal(params, "[]");
    free(method);
    free(params);
}

static void
test_xmlrpc_parse_fault(void **state)
{
    bool fault = false;
    char *json = response_value(
        HDR "<methodResponse><fault><value><struct>"
        "<member><name>faultCode</name><value><int>-1</int></value></member>"
        "<member><name>faultString</name><value><string>boom</string>"
        "</value></member></struct></value></fault></methodResponse>",
        &fault);

    assert_true(fault);
    assert_json_same(json, "{\"faultCode\":-1,\"faultString\":\"boom\"}");
    free(json);
}

/* ---- JSON -> XML ---- */

static void
test_xmlrpc_encode_types(void **state)
{
    struct {
        const char *json;
        const char *xml;
    } cases[] = {
        { "\"s\"", "<value><string>s</string></value>" },
        { "42", "<value><int>42</int></value>" },
        { "2147483647", "<value><int>2147483647</int></value>" },
        { "-2147483648", "<value><int>-2147483648</int></value>" },
        { "2147483648", "<value><i8>2147483648</i8></value>" },
        { "-4294967296", "<value><i8>-4294967296</i8></value>" },
        { "0.84", "<value><double>0.84</double></value>" },
        { "1735689600.25", "<value><double>1735689600.25</double></value>" },
        { "true", "<value><boolean>1</boolean></value>" },
        { "false", "<value><boolean>0</boolean></value>" },
        { "null", "<value><nil/></value>" },
        { "[]", "<value><array><data></data></array></value>" },
        { "{}", "<value><struct></struct></value>" },
        { "[\"Local\",\"/dev/x\"]",
          "<value><array><data><value><string>Local</string></value>"
          "<value><string>/dev/x</string></value></data></array></value>" },
        { "{\"b\":1,\"a\":[true]}",
          "<value><struct><member><name>b</name><value><int>1</int>"
          "</value></member><member><name>a</name><value><array><data>"
          "<value><boolean>1</boolean></value></data></array></value>"
          "</member></struct></value>" },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *xml = encode_value(cases[i].json);

        assert_string_equal(xml, cases[i].xml);
        free(xml);
    }
}

static void
test_xmlrpc_encode_escapes(void **state)
{
    char *xml = encode_value("{\"a<&>\":\"x\\\"<y>&z\"}");

    assert_string_equal(xml, "<value><struct><member><name>a&lt;&amp;&gt;"
                        "</name><value><string>x&quot;&lt;y&gt;&amp;z"
                        "</string></value></member></struct></value>");
    free(xml);
}

/* XML 1.0 cannot carry most C0 controls: they are dropped (as rpclib
 * does); CR is kept as a character reference so that a parser does not
 * turn it into LF; tab and LF pass. */
static void
test_xmlrpc_encode_control_characters(void **state)
{
    char *xml = encode_value("\"a\\u0001b\\tc\\nd\\re\\uffffe\"");
    char *doc, *json;

    assert_string_equal(xml, "<value><string>ab\tc\nd&#13;ee</string>"
                        "</value>");
    doc = xasprintf(RESP("%s"), xml);
    json = response_value(doc, NULL);
    assert_json_same(json, "\"ab\\tc\\nd\\ree\"");
    free(json);
    free(doc);
    free(xml);
}

/* Two-, three- and four-byte sequences pass whole; U+FFFD, just below the
 * two non-characters, is kept. */
static void
test_xmlrpc_encode_keeps_multibyte_utf8(void **state)
{
    char *xml = encode_value("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
                             "\xef\xbf\xbd\"");

    assert_string_equal(xml, "<value><string>\xc3\xa9\xe2\x82\xac"
                        "\xf0\x9f\x98\x80\xef\xbf\xbd</string></value>");
    free(xml);
}

/* Every JSON shape comes back the same through a response document. */
static void
test_xmlrpc_round_trip(void **state)
{
    const char *docs[] = {
        "{\"id\":\"42\",\"dbg\":\"OpaqueRef:5e1d\",\"ctime\":1735689600.25,"
        "\"state\":[\"Completed\",{\"duration\":0.84}],"
        "\"subtasks\":{\"VBD_attach\":[\"Completed\",{\"duration\":0.31}]},"
        "\"debug_info\":{\"cancel_points_seen\":\"3\"},\"backtrace\":\"()\","
        "\"cancellable\":true}",
        "[[[3,[[\"Vm\",\"v\"],[\"Vbd\",[\"v\",\"xvda\"]]]]],"
        "[[\"Task\",\"42\"]],121]",
        "[\"Bad_power_state\",[\"Halted\",\"Running\"]]",
        "null", "-9000000000", "\"\"", "[[],{},[[]],null,false]",
    };

    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        char *xml = NULL, *json;

        assert_int_equal(xmlrpc_encode_response(docs[i], &xml), 0);
        json = response_value(xml, NULL);
        assert_json_same(json, docs[i]);
        free(json);
        free(xml);
    }
}

static void
test_xmlrpc_encode_call_round_trip(void **state)
{
    char *xml = NULL, *method = NULL, *params = NULL;

    assert_int_equal(xmlrpc_encode_call("vdi_attach", "[{\"a\":1},\"x\"]",
                                        &xml), 0);
    assert_string_equal(xml, HDR "<methodCall><methodName>vdi_attach"
                        "</methodName><params><param><value><struct><member>"
                        "<name>a</name><value><int>1</int></value></member>"
                        "</struct></value></param><param><value><string>x"
                        "</string></value></param></params></methodCall>");
    assert_int_equal(xmlrpc_parse_call(xml, strlen(xml), &method, &params),
                     0);
    assert_string_equal(method, "vdi_attach");
    assert_json_same(params, "[{\"a\":1},\"x\"]");
    free(method);
    free(params);
    free(xml);
}

static void
test_xmlrpc_encode_fault(void **state)
{
    char *xml = NULL, *json;
    bool fault = false;

    assert_int_equal(xmlrpc_encode_fault(-32600, "bad <call> & co", &xml), 0);
    json = response_value(xml, &fault);
    assert_true(fault);
    assert_json_same(json, "{\"faultCode\":-32600,"
                     "\"faultString\":\"bad <call> & co\"}");
    free(json);
    free(xml);
}

static void
test_xmlrpc_encode_refuses_bad_input(void **state)
{
    char *xml = (char *)1;
    char *err;

    assert_int_equal(xmlrpc_encode_value("{\"a\":", &xml), XO_EINVAL);
    assert_null(xml);
    xo_err_clear();
    assert_int_equal(xmlrpc_encode_response("[1,]", &xml), XO_EINVAL);
    assert_null(xml);
    xo_err_clear();
    /* Call parameters are a list. */
    assert_int_equal(xmlrpc_encode_call("m", "{\"a\":1}", &xml), XO_EINVAL);
    assert_null(xml);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, "array"));
    free(err);
    /* Names and messages come from C strings: they must be UTF-8. */
    assert_int_equal(xmlrpc_encode_call("m\xff", "[]", &xml), XO_EINVAL);
    assert_null(xml);
    xo_err_clear();
    assert_int_equal(xmlrpc_encode_fault(1, "\xc0\xaf", &xml), XO_EINVAL);
    assert_null(xml);
    xo_err_clear();
    /* A number no XML-RPC type holds. */
    assert_int_equal(xmlrpc_encode_value("1e999", &xml), XO_EINVAL);
    assert_null(xml);
    xo_err_clear();
}

/* ---- refusals ---- */

static void
test_xmlrpc_refuses_doctype_and_entities(void **state)
{
    const char *laughs =
        "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">"
        "<!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">"
        "<!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">]>"
        "<methodResponse><params><param><value>&lol3;</value></param>"
        "</params></methodResponse>";
    const char *external =
        "<?xml version=\"1.0\"?><!DOCTYPE r SYSTEM \"file:///etc/passwd\">"
        RESP("<value>x</value>");
    const char *plain = "<!DOCTYPE methodResponse>"
        "<methodResponse><params><param><value>x</value></param></params>"
        "</methodResponse>";
    const char *undefined = RESP("<value>&xxe;</value>");

    check_refused_response(laughs, strlen(laughs), "DOCTYPE");
    check_refused_response(external, strlen(external), NULL);
    check_refused_response(plain, strlen(plain), "DOCTYPE");
    check_refused_response(undefined, strlen(undefined), "entity");
}

/* Nesting: JSON_MAX_DEPTH containers parse, one more is refused; the
 * params array of a call counts as one. */
static void
test_xmlrpc_refuses_deep_nesting(void **state)
{
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        size_t cap = (size_t)depth * 64 + 256;
        char *xml = xmalloc(cap);
        char *json = NULL;
        bool fault;
        size_t n = 0;
        int rc;

        n += (size_t)snprintf(xml, cap, HDR
                              "<methodResponse><params><param>");
        for (int i = 0; i < depth; i++)
            n += (size_t)snprintf(xml + n, cap - n, "<value><array><data>");
        for (int i = 0; i < depth; i++)
            n += (size_t)snprintf(xml + n, cap - n, "</data></array></value>");
        snprintf(xml + n, cap - n, "</param></params></methodResponse>");
        rc = xmlrpc_parse_response(xml, strlen(xml), &json, &fault);
        if (depth <= JSON_MAX_DEPTH) {
            assert_int_equal(rc, 0);
            free(json);
        } else {
            assert_int_equal(rc, XO_EINVAL);
            check_refused_response(xml, strlen(xml), "nested deeper");
        }
        free(xml);
    }
}

/* Deep element nesting that is not even valid XML-RPC stops at the
 * element cap, long before memory is at stake. */
static void
test_xmlrpc_refuses_deep_elements(void **state)
{
    size_t depth = 100000;
    char *xml = xmalloc(depth * 7 + 256);
    size_t n = 0;

    n += (size_t)sprintf(xml, HDR "<methodResponse><params><param>");
    for (size_t i = 0; i < depth; i++)
        n += (size_t)sprintf(xml + n, "<value>");
    check_refused_response(xml, n, NULL);
    free(xml);
}

static void
test_xmlrpc_refuses_oversized(void **state)
{
    size_t len = XMLRPC_MAX_DOC + 1;
    char *xml = xmalloc(len);
    const char *head = RESP("<value>");

    memset(xml, ' ', len);
    memcpy(xml, head, strlen(head));
    check_refused_response(xml, len, "larger than");
    free(xml);
}

static void
test_xmlrpc_refuses_malformed(void **state)
{
    const char *bad[] = {
        "",
        "   ",
        "not xml",
        HDR "<methodResponse><params><param><value>x</value>",
        RESP("<value>x</value>") "<extra/>",
        RESP("<value>x</value>") "junk",
        /* wrong root for a response */
        CALL("m", ""),
        HDR "<methodResponse/>",
        HDR "<methodResponse></methodResponse>",
        HDR "<methodResponse><params></params></methodResponse>",
        RESP("<value>1</value></param><param><value>2</value>"),
        HDR "<methodResponse><params><param></param></params>"
            "</methodResponse>",
        RESP("<value><int>1</int><int>2</int></value>"),
        RESP("<value>x<int>1</int></value>"),
        RESP("<value><int>1</int>x</value>"),
        RESP("<value><bogus>1</bogus></value>"),
        RESP("<value><struct>text</struct></value>"),
        RESP("<value><struct><value>x</value></struct></value>"),
        RESP("<value><struct><member><value>x</value></member></struct>"
             "</value>"),
        RESP("<value><struct><member><value>x</value><name>a</name>"
             "</member></struct></value>"),
        RESP("<value><struct><member><name>a</name></member></struct>"
             "</value>"),
        RESP("<value><struct><member><name>a</name><value>1</value>"
             "<value>2</value></member></struct></value>"),
        RESP("<value><array></array></value>"),
        RESP("<value><array><value>1</value></array></value>"),
        RESP("<value><array><data/><data/></array></value>"),
        RESP("<value><data></data></value>"),
        RESP("<value><int><i4>1</i4></int></value>"),
        RESP("<value><nil>x</nil></value>"),
        RESP("<value><string><b>x</b></string></value>"),
        RESP("<value><name>x</name></value>"),
        HDR "<methodResponse><fault><value>oops</value></fault>"
            "</methodResponse>",
        HDR "<methodResponse><fault><value><array><data/></array></value>"
            "</fault></methodResponse>",
        HDR "<methodResponse><fault></fault></methodResponse>",
        HDR "<methodResponse><params><param><value>x</value></param>"
            "</params><fault/></methodResponse>",
        HDR "<methodResponse><params><param><value></param></params>"
            "</methodResponse>",
        "<ns:methodResponse xmlns:ns=\"x\"/>",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_refused_response(bad[i], strlen(bad[i]), NULL);
}

static void
test_xmlrpc_refuses_bad_scalars(void **state)
{
    const char *bad[] = {
        "<int></int>", "<int>x</int>", "<int>1.5</int>", "<int>0x10</int>",
        "<int>- 1</int>", "<i8>9223372036854775808</i8>", "<i4>1 2</i4>",
        "<double></double>", "<double>inf</double>", "<double>nan</double>",
        "<double>0x1p3</double>", "<double>1e999</double>",
        "<double>1.5x</double>", "<boolean>2</boolean>",
        "<boolean>true</boolean>", "<boolean></boolean>",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *xml = xasprintf(RESP("<value>%s</value>"), bad[i]);

        check_refused_response(xml, strlen(xml), "bad <");
        free(xml);
    }
}

static void
test_xmlrpc_refuses_non_utf8(void **state)
{
    const char *bad[] = {
        RESP("<value>\xff</value>"),
        RESP("<value>caf\xe9</value>"),
        /* overlong '/', an encoded surrogate, above U+10FFFF */
        RESP("<value>\xc0\xaf</value>"),
        RESP("<value>\xed\xa0\x80</value>"),
        RESP("<value>\xf4\x90\x80\x80</value>"),
        /* a control character is not an XML character */
        RESP("<value>\x01</value>"),
        RESP("<value>&#1;</value>"),
        RESP("<value>&#0;</value>"),
    };
    const char nul[] = RESP("<value>a\0b</value>");
    const char *latin1 = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>"
        "<methodResponse><params><param><value>x</value></param></params>"
        "</methodResponse>";
    const char utf16[] = "\xff\xfe<\0m\0";

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        check_refused_response(bad[i], strlen(bad[i]), NULL);
    check_refused_response(nul, sizeof(nul) - 1, NULL);
    /* Declared in another encoding: refused rather than misread. */
    check_refused_response(latin1, strlen(latin1), "UTF-8");
    check_refused_response(utf16, sizeof(utf16) - 1, NULL);
}

static void
test_xmlrpc_refuses_bad_calls(void **state)
{
    check_refused_call(RESP("<value>x</value>"), "methodCall");
    check_refused_call(HDR "<methodCall><params/></methodCall>", NULL);
    check_refused_call(HDR "<methodCall/>", "methodName");
    check_refused_call(HDR "<methodCall><methodName>a</methodName>"
                       "<methodName>b</methodName></methodCall>", NULL);
    check_refused_call(HDR "<methodCall><methodName>a<b/></methodName>"
                       "</methodCall>", NULL);
    check_refused_call(CALL("m", "<value>x</value>"), NULL);
    check_refused_call(CALL("m", "<param><value>1</value><value>2</value>"
                            "</param>"), NULL);
    check_refused_call(CALL("m", "<param/>"), NULL);
}

/* A call may have many params (SMAPIv1 style); only a response is
 * limited to one. */
static void
test_xmlrpc_parse_call_many_params(void **state)
{
    const char *xml = CALL("m", "<param><value>a</value></param>"
                           "<param><value>b</value></param>"
                           "<param><value>c</value></param>");
    char *method = NULL, *params = NULL;

    assert_int_equal(xmlrpc_parse_call(xml, strlen(xml), &method, &params),
                     0);
    assert_json_same(params, "[\"a\",\"b\",\"c\"]");
    free(method);
    free(params);
}

/* ---- rpc_xml: the message-interface framing ---- */

static void
test_rpc_xml_decode_request(void **state)
{
    const char *xml = CALL("VM.exists", "<param><value><struct>"
                           "<member><name>debug_info</name><value>d</value>"
                           "</member><member><name>id</name><value>v</value>"
                           "</member></struct></value></param>");
    struct rpc_xml_request *req = NULL;
    const char *method = NULL;
    yajl_val params = NULL;

    assert_int_equal(rpc_xml_decode_request(xml, strlen(xml), &req, &method,
                                            &params), 0);
    assert_string_equal(method, "VM.exists");
    assert_true(YAJL_IS_OBJECT(params));
    assert_string_equal(json_get_str(params, "id"), "v");
    assert_string_equal(json_get_str(params, "debug_info"), "d");
    rpc_xml_request_free(req);
    rpc_xml_request_free(NULL);
}

static void
test_rpc_xml_decode_request_refusals(void **state)
{
    const char *bad[] = {
        CALL("VM.list", ""),
        CALL("VM.list", "<param><value>dbg</value></param>"),
        CALL("VM.list", "<param><value><array><data/></array></value>"
             "</param>"),
        CALL("VM.list", "<param><value><struct/></value></param>"
             "<param><value><struct/></value></param>"),
        CALL("", "<param><value><struct/></value></param>"),
        CALL("VM list", "<param><value><struct/></value></param>"),
        CALL("VM\xc3\xa9", "<param><value><struct/></value></param>"),
        "{\"method\":\"VM.list\",\"params\":[{}],\"id\":1}",
        "<!DOCTYPE x>" CALL("m", "<param><value><struct/></value></param>"),
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct rpc_xml_request *req = (struct rpc_xml_request *)1;
        const char *method = "x";
        yajl_val params = (yajl_val)1;
        char *err;

        assert_int_equal(rpc_xml_decode_request(bad[i], strlen(bad[i]), &req,
                                                &method, &params),
                         XO_EINVAL);
        assert_null(req);
        assert_null(method);
        assert_null(params);
        err = xo_err_take_json(XO_EINVAL);
        assert_non_null(strstr(err, "Internal_error"));
        free(err);
    }
}

static void
check_reply(const char *result, const char *error, const char *expected)
{
    char *xml = rpc_xml_encode_reply(result, error);
    char *json = response_value(xml, NULL);

    assert_json_same(json, expected);
    free(json);
    free(xml);
}

static void
test_rpc_xml_encode_reply(void **state)
{
    check_reply("\"9c0f\"", NULL,
                "{\"Status\":\"Success\",\"Value\":\"9c0f\"}");
    check_reply(NULL, NULL, "{\"Status\":\"Success\",\"Value\":null}");
    check_reply("[\"Vm\",\"x\"]", NULL,
                "{\"Status\":\"Success\",\"Value\":[\"Vm\",\"x\"]}");
    check_reply(NULL, "[\"Does_not_exist\",[\"VM\",\"v\"]]",
                "{\"Status\":\"Failure\",\"ErrorDescription\":"
                "[\"Does_not_exist\",[\"VM\",\"v\"]]}");
    /* An error wins over a result. */
    check_reply("1", "\"Device_is_connected\"",
                "{\"Status\":\"Failure\",\"ErrorDescription\":"
                "\"Device_is_connected\"}");
    /* A handler's malformed text still gives a well-formed reply. */
    check_reply("{oops", NULL,
                "{\"Status\":\"Failure\",\"ErrorDescription\":"
                "[\"Internal_error\",\"server produced a malformed reply\"]}");
}

static void
test_rpc_xml_request_round_trip(void **state)
{
    char *xml = rpc_xml_encode_request("VBD.plug",
                                       "{\"id\":[\"v\",\"xvda\"]}");
    struct rpc_xml_request *req = NULL;
    const char *method = NULL;
    yajl_val params = NULL;
    char *text;

    assert_non_null(xml);
    assert_int_equal(rpc_xml_decode_request(xml, strlen(xml), &req, &method,
                                            &params), 0);
    assert_string_equal(method, "VBD.plug");
    text = json_tree_to_string(params);
    assert_json_same(text, "{\"id\":[\"v\",\"xvda\"]}");
    free(text);
    rpc_xml_request_free(req);
    free(xml);
    xml = rpc_xml_encode_request("query", NULL);
    assert_non_null(xml);
    assert_non_null(strstr(xml, "<struct></struct>"));
    free(xml);
    /* Params are named: an object, nothing else. */
    assert_null(rpc_xml_encode_request("m", "[1]"));
    assert_null(rpc_xml_encode_request("m", "{"));
}

static void
test_rpc_xml_decode_reply(void **state)
{
    char *result = NULL, *error = NULL;
    char *xml = rpc_xml_encode_reply("{\"a\":[1,2.5]}", NULL);
    const char *fault = HDR "<methodResponse><fault><value><struct>"
        "<member><name>faultCode</name><value><int>3</int></value></member>"
        "<member><name>faultString</name><value>no</value></member>"
        "</struct></value></fault></methodResponse>";
    const char *odd = RESP("<value><struct><member><name>Status</name>"
                           "<value>Maybe</value></member></struct></value>");

    assert_int_equal(rpc_xml_decode_reply(xml, strlen(xml), &result, &error),
                     0);
    assert_null(error);
    assert_json_same(result, "{\"a\":[1,2.5]}");
    free(result);
    free(xml);
    xml = rpc_xml_encode_reply(NULL, NULL);
    assert_int_equal(rpc_xml_decode_reply(xml, strlen(xml), &result, &error),
                     0);
    assert_string_equal(result, "null");
    free(result);
    free(xml);
    xml = rpc_xml_encode_reply(NULL, "[\"Cancelled\",\"4\"]");
    assert_int_equal(rpc_xml_decode_reply(xml, strlen(xml), &result, &error),
                     0);
    assert_null(result);
    assert_json_same(error, "[\"Cancelled\",\"4\"]");
    free(error);
    free(xml);
    assert_int_equal(rpc_xml_decode_reply(fault, strlen(fault), &result,
                                          &error), 0);
    assert_json_same(error, "[\"Internal_error\",\"XML-RPC fault 3: no\"]");
    free(error);
    assert_int_equal(rpc_xml_decode_reply(odd, strlen(odd), &result, &error),
                     XO_EINVAL);
    assert_null(result);
    assert_null(error);
    xo_err_clear();
}

static int
teardown(void **state)
{
    xo_err_clear();
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, teardown)
        T(test_xmlrpc_parse_scalars),
        T(test_xmlrpc_parse_double_keeps_float),
        T(test_xmlrpc_parse_rpclib_untyped),
        T(test_xmlrpc_parse_struct_keeps_member_order),
        T(test_xmlrpc_parse_nested),
        T(test_xmlrpc_parse_whitespace_between_elements),
        T(test_xmlrpc_parse_escapes_and_cdata),
        T(test_xmlrpc_parse_call),
        T(test_xmlrpc_parse_call_without_params),
        T(test_xmlrpc_parse_call_many_params),
        T(test_xmlrpc_parse_fault),
        T(test_xmlrpc_encode_types),
        T(test_xmlrpc_encode_escapes),
        T(test_xmlrpc_encode_control_characters),
        T(test_xmlrpc_encode_keeps_multibyte_utf8),
        T(test_xmlrpc_round_trip),
        T(test_xmlrpc_encode_call_round_trip),
        T(test_xmlrpc_encode_fault),
        T(test_xmlrpc_encode_refuses_bad_input),
        T(test_xmlrpc_refuses_doctype_and_entities),
        T(test_xmlrpc_refuses_deep_nesting),
        T(test_xmlrpc_refuses_deep_elements),
        T(test_xmlrpc_refuses_oversized),
        T(test_xmlrpc_refuses_malformed),
        T(test_xmlrpc_refuses_bad_scalars),
        T(test_xmlrpc_refuses_non_utf8),
        T(test_xmlrpc_refuses_bad_calls),
        T(test_rpc_xml_decode_request),
        T(test_rpc_xml_decode_request_refusals),
        T(test_rpc_xml_encode_reply),
        T(test_rpc_xml_request_round_trip),
        T(test_rpc_xml_decode_reply),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
