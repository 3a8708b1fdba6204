/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * XML-RPC <-> JSON (reference/interfaces.md 1.3, 1.4). Worked example:
 *
 *   <methodCall><methodName>VM.stat</methodName><params><param>
 *    <value><struct>
 *     <member><name>id</name><value>9c0f7c55-...</value></member>
 *     <member><name>n</name><value><i4>4</i4></value></member>
 *    </struct></value>
 *   </param></params></methodCall>
 *   -> method "VM.stat", params [{"id":"9c0f7c55-...","n":4}]
 *
 * Decoding streams: expat's callbacks drive a yajl generator, so the
 * document is never held as a tree. A stack of open elements checks the
 * grammar as it goes (which element may hold which, and how many), so a
 * document that gets to its end is a valid XML-RPC document and the JSON
 * built from it is complete. Text is collected between two tags and used
 * when the element that owns it closes; anywhere else only whitespace may
 * appear between tags.
 *
 * <value>text</value> (no type element) is a string, as the spec says and
 * as rpclib reads it; rpclib writes its ints that way, so the consumers of
 * the JSON accept integers given as decimal strings (json.h).
 *
 * Encoding writes strings with XML escapes. XML 1.0 cannot carry the C0
 * controls other than tab, LF and CR, nor U+FFFE/U+FFFF: like rpclib, the
 * encoder drops them rather than fail a whole reply over one character.
 * CR is written as "&#13;" so that XML's line-end normalisation keeps it.
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <expat.h>
#include <yajl/yajl_gen.h>

#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "util/xmlrpc.h"

/*
 * Deepest legitimate element nesting: methodResponse/params/param/value is
 * 4 levels, every JSON container below adds three (value/struct/member or
 * value/array/data) and a scalar type element closes it. JSON depth is
 * checked on its own; this bounds the element stack.
 */
#define XR_MAX_ELEMS (3 * JSON_MAX_DEPTH + 8)
/* How much of an offending text goes into an error message. */
#define XR_SHOWN 48

enum xr_elem {
    XR_METHOD_CALL,
    XR_METHOD_RESPONSE,
    XR_METHOD_NAME,
    XR_PARAMS,
    XR_PARAM,
    XR_FAULT,
    XR_VALUE,
    XR_INT,
    XR_I4,
    XR_I8,
    XR_DOUBLE,
    XR_BOOLEAN,
    XR_STRING,
    XR_NIL,
    XR_BASE64,
    XR_DATETIME,
    XR_ARRAY,
    XR_DATA,
    XR_STRUCT,
    XR_MEMBER,
    XR_NAME,
    XR_N_ELEMS,
};

static const char *const xr_elem_names[XR_N_ELEMS] = {
    [XR_METHOD_CALL] = "methodCall",
    [XR_METHOD_RESPONSE] = "methodResponse",
    [XR_METHOD_NAME] = "methodName",
    [XR_PARAMS] = "params",
    [XR_PARAM] = "param",
    [XR_FAULT] = "fault",
    [XR_VALUE] = "value",
    [XR_INT] = "int",
    [XR_I4] = "i4",
    [XR_I8] = "i8",
    [XR_DOUBLE] = "double",
    [XR_BOOLEAN] = "boolean",
    [XR_STRING] = "string",
    [XR_NIL] = "nil",
    [XR_BASE64] = "base64",
    [XR_DATETIME] = "dateTime.iso8601",
    [XR_ARRAY] = "array",
    [XR_DATA] = "data",
    [XR_STRUCT] = "struct",
    [XR_MEMBER] = "member",
    [XR_NAME] = "name",
};

/* An open element; seen counts what it already holds, per element kind
 * (e.g. member: 1 after <name>, 2 after <value>). */
struct xr_frame {
    enum xr_elem elem;
    unsigned seen;
};

struct xr_parser {
    XML_Parser xp;
    yajl_gen g;
    bool want_call;             /* methodCall, else methodResponse */
    struct xr_frame stack[XR_MAX_ELEMS];
    size_t depth;
    int json_depth;
    char *text;                 /* character data since the last tag */
    size_t text_len;
    size_t text_cap;
    char *method;
    bool fault;
    char *err;                  /* first refusal; parsing stops there */
};

static void xr_fail(struct xr_parser *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
xr_fail(struct xr_parser *p, const char *fmt, ...)
{
    va_list ap;

    if (p->err)
        return;
    va_start(ap, fmt);
    p->err = xvasprintf(fmt, ap);
    va_end(ap);
    XML_StopParser(p->xp, XML_FALSE);
}

static bool
xr_is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    }
    return true;
}

static bool
xr_is_leaf(enum xr_elem e)
{
    return (e >= XR_INT && e <= XR_DATETIME) || e == XR_NAME ||
           e == XR_METHOD_NAME;
}

static bool
xr_is_type(enum xr_elem e)
{
    return e >= XR_INT && e <= XR_STRUCT && e != XR_DATA;
}

/* The current text, trimmed of XML whitespace, NUL-terminated in place. */
static char *
xr_trimmed_text(struct xr_parser *p)
{
    char *s = p->text;
    size_t n = p->text_len;

    while (n > 0 && xr_is_blank(s, 1)) {
        s++;
        n--;
    }
    while (n > 0 && xr_is_blank(s + n - 1, 1))
        n--;
    s[n] = '\0';
    return s;
}

static void
xr_gen_check(struct xr_parser *p, yajl_gen_status st)
{
    if (st != yajl_gen_status_ok)
        xr_fail(p, "cannot convert the document to JSON (yajl status %d)",
                (int)st);
}

static void
xr_emit_string(struct xr_parser *p, const char *s, size_t n)
{
    xr_gen_check(p, yajl_gen_string(p->g, (const unsigned char *)s, n));
}

/* Decimal, optional sign, within int64: <int>, <i4> and <i8> alike, as
 * rpclib reads them all as int64. */
static void
xr_emit_int(struct xr_parser *p, const char *tag)
{
    char *s = xr_trimmed_text(p);
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (!*d || d[strspn(d, "0123456789")] != '\0' || errno || *end) {
        xr_fail(p, "bad <%s> value '%.*s'", tag, XR_SHOWN, s);
        return;
    }
    xr_gen_check(p, yajl_gen_integer(p->g, v));
}

/* The shortest %g form that reads back as d, marked as a float. */
static void
xr_format_double(double d, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (buf[strspn(buf, "-0123456789")] == '\0')
        strncat(buf, ".0", n - strlen(buf) - 1);
}

static void
xr_emit_double(struct xr_parser *p)
{
    char *s = xr_trimmed_text(p);
    char buf[40];
    char *end;
    double d;

    /* strtod alone would also take "inf", "nan" and hex forms. */
    errno = 0;
    d = *s && s[strspn(s, "0123456789+-.eE")] == '\0' ? strtod(s, &end)
                                                       : NAN;
    if (isnan(d) || errno || *end || !isfinite(d)) {
        xr_fail(p, "bad <double> value '%.*s'", XR_SHOWN, s);
        return;
    }
    xr_format_double(d, buf, sizeof(buf));
    xr_gen_check(p, yajl_gen_number(p->g, buf, strlen(buf)));
}

static void
xr_emit_bool(struct xr_parser *p)
{
    char *s = xr_trimmed_text(p);

    if (strcmp(s, "0") != 0 && strcmp(s, "1") != 0) {
        xr_fail(p, "bad <boolean> value '%.*s'", XR_SHOWN, s);
        return;
    }
    xr_gen_check(p, yajl_gen_bool(p->g, s[0] == '1'));
}

/* A JSON container opens: bound the nesting as json_parse does. */
static bool
xr_json_push(struct xr_parser *p)
{
    if (++p->json_depth > JSON_MAX_DEPTH) {
        xr_fail(p, "XML-RPC value nested deeper than %d", JSON_MAX_DEPTH);
        return false;
    }
    return true;
}

/*
 * Whether child may open inside parent now; counts it in parent->seen.
 * Sets the error otherwise.
 */
static bool
xr_child_ok(struct xr_parser *p, struct xr_frame *parent, enum xr_elem child)
{
    bool ok = false;

    switch (parent->elem) {
    case XR_METHOD_CALL:
        ok = (child == XR_METHOD_NAME && parent->seen == 0) ||
             (child == XR_PARAMS && parent->seen == 1);
        break;
    case XR_METHOD_RESPONSE:
        ok = (child == XR_PARAMS || child == XR_FAULT) && parent->seen == 0;
        break;
    case XR_PARAMS:
        /* A response carries exactly one param. */
        ok = child == XR_PARAM && (p->want_call || parent->seen == 0);
        break;
    case XR_PARAM:
    case XR_FAULT:
        ok = child == XR_VALUE && parent->seen == 0;
        break;
    case XR_VALUE:
        ok = xr_is_type(child) && parent->seen == 0;
        break;
    case XR_ARRAY:
        ok = child == XR_DATA && parent->seen == 0;
        break;
    case XR_DATA:
        ok = child == XR_VALUE;
        break;
    case XR_STRUCT:
        ok = child == XR_MEMBER;
        break;
    case XR_MEMBER:
        ok = (child == XR_NAME && parent->seen == 0) ||
             (child == XR_VALUE && parent->seen == 1);
        break;
    default:
        break;
    }
    if (!ok) {
        xr_fail(p, "unexpected <%s> in <%s>", xr_elem_names[child],
                xr_elem_names[parent->elem]);
        return false;
    }
    parent->seen++;
    return true;
}

/* What an element does when it opens. */
static void
xr_open(struct xr_parser *p, enum xr_elem e)
{
    switch (e) {
    case XR_PARAMS:
        if (p->want_call && xr_json_push(p))
            xr_gen_check(p, yajl_gen_array_open(p->g));
        break;
    case XR_FAULT:
        p->fault = true;
        break;
    case XR_ARRAY:
        if (xr_json_push(p))
            xr_gen_check(p, yajl_gen_array_open(p->g));
        break;
    case XR_STRUCT:
        if (xr_json_push(p))
            xr_gen_check(p, yajl_gen_map_open(p->g));
        break;
    default:
        break;
    }
}

static void XMLCALL
xr_on_start(void *ud, const XML_Char *name, const XML_Char **attrs)
{
    struct xr_parser *p = ud;
    struct xr_frame *parent = p->depth ? &p->stack[p->depth - 1] : NULL;
    enum xr_elem e = XR_N_ELEMS;

    (void)attrs;
    if (p->err)
        return;
    for (int i = 0; i < XR_N_ELEMS; i++) {
        if (strcmp(name, xr_elem_names[i]) == 0)
            e = (enum xr_elem)i;
    }
    if (e == XR_N_ELEMS) {
        xr_fail(p, "unknown element <%.*s>", XR_SHOWN, name);
        return;
    }
    if (p->depth == XR_MAX_ELEMS) {
        xr_fail(p, "XML nested deeper than %d elements", XR_MAX_ELEMS);
        return;
    }
    if (!parent) {
        if (e != (p->want_call ? XR_METHOD_CALL : XR_METHOD_RESPONSE))
            xr_fail(p, "expected <%s>, got <%s>",
                    p->want_call ? "methodCall" : "methodResponse",
                    xr_elem_names[e]);
    } else if (xr_is_leaf(parent->elem)) {
        xr_fail(p, "<%s> cannot hold elements", xr_elem_names[parent->elem]);
    } else if (!xr_is_blank(p->text, p->text_len)) {
        xr_fail(p, "unexpected text in <%s>", xr_elem_names[parent->elem]);
    } else if (xr_child_ok(p, parent, e) && parent->elem == XR_VALUE &&
               p->depth >= 2 && p->stack[p->depth - 2].elem == XR_FAULT &&
               e != XR_STRUCT) {
        /* faultCode/faultString live in a struct. */
        xr_fail(p, "a <fault> value must be a <struct>");
    }
    if (p->err)
        return;
    p->stack[p->depth].elem = e;
    p->stack[p->depth].seen = 0;
    p->depth++;
    p->text_len = 0;
    xr_open(p, e);
}

/* A <value> closes: untyped text is a string. */
static void
xr_close_value(struct xr_parser *p, const struct xr_frame *f)
{
    if (f->seen) {
        if (!xr_is_blank(p->text, p->text_len))
            xr_fail(p, "unexpected text in <value>");
        return;
    }
    if (p->depth >= 2 && p->stack[p->depth - 2].elem == XR_FAULT) {
        xr_fail(p, "a <fault> value must be a <struct>");
        return;
    }
    xr_emit_string(p, p->text, p->text_len);
}

/* A scalar type element, <name>, <methodName> or <value> closes: its
 * text is the data. False for any other element. */
static bool
xr_close_text(struct xr_parser *p, const struct xr_frame *f)
{
    switch (f->elem) {
    case XR_INT:
    case XR_I4:
    case XR_I8:
        xr_emit_int(p, xr_elem_names[f->elem]);
        return true;
    case XR_DOUBLE:
        xr_emit_double(p);
        return true;
    case XR_BOOLEAN:
        xr_emit_bool(p);
        return true;
    case XR_STRING:
    case XR_BASE64:
    case XR_DATETIME:
    case XR_NAME:
        /* A <name> is the member's key: the generator is in a map. */
        xr_emit_string(p, p->text, p->text_len);
        return true;
    case XR_METHOD_NAME:
        p->method = xstrndup(p->text, p->text_len);
        return true;
    case XR_VALUE:
        xr_close_value(p, f);
        return true;
    default:
        return false;
    }
}

/* What an element does when it closes; f is still on the stack. */
static void
xr_close(struct xr_parser *p, const struct xr_frame *f)
{
    if (xr_close_text(p, f))
        return;
    if (!xr_is_blank(p->text, p->text_len)) {
        xr_fail(p, "unexpected text in <%s>", xr_elem_names[f->elem]);
        return;
    }
    switch (f->elem) {
    case XR_NIL:
        xr_gen_check(p, yajl_gen_null(p->g));
        break;
    case XR_ARRAY:
        if (!f->seen)
            xr_fail(p, "<array> without <data>");
        else
            xr_gen_check(p, yajl_gen_array_close(p->g));
        p->json_depth--;
        break;
    case XR_STRUCT:
        xr_gen_check(p, yajl_gen_map_close(p->g));
        p->json_depth--;
        break;
    case XR_MEMBER:
        if (f->seen != 2)
            xr_fail(p, "<member> needs a <name> and a <value>");
        break;
    case XR_PARAM:
    case XR_FAULT:
        if (!f->seen)
            xr_fail(p, "<%s> without a <value>", xr_elem_names[f->elem]);
        break;
    case XR_PARAMS:
        if (p->want_call)
            xr_gen_check(p, yajl_gen_array_close(p->g));
        else if (!f->seen)
            xr_fail(p, "a methodResponse must hold exactly one <param>");
        break;
    case XR_METHOD_CALL:
        if (!f->seen) {
            xr_fail(p, "<methodCall> without <methodName>");
        } else if (f->seen == 1) {
            /* No <params> at all: an empty list. */
            xr_gen_check(p, yajl_gen_array_open(p->g));
            xr_gen_check(p, yajl_gen_array_close(p->g));
        }
        break;
    case XR_METHOD_RESPONSE:
        if (!f->seen)
            xr_fail(p, "empty <methodResponse>");
        break;
    default:
        break;
    }
}

static void XMLCALL
xr_on_end(void *ud, const XML_Char *name)
{
    struct xr_parser *p = ud;

    (void)name;
    if (p->err || p->depth == 0)
        return;
    xr_close(p, &p->stack[p->depth - 1]);
    p->depth--;
    p->text_len = 0;
}

static void XMLCALL
xr_on_text(void *ud, const XML_Char *s, int len)
{
    struct xr_parser *p = ud;
    size_t n = (size_t)len;

    if (p->err || p->depth == 0)
        return;
    if (p->text_len + n + 1 > p->text_cap) {
        p->text_cap = (p->text_len + n + 1) * 2;
        p->text = xrealloc(p->text, p->text_cap);
    }
    memcpy(p->text + p->text_len, s, n);
    p->text_len += n;
}

/* No DTD at all: that is where entity expansion (billion laughs) and
 * external references would come from. */
static void XMLCALL
xr_on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
              const XML_Char *pubid, int has_internal_subset)
{
    (void)name;
    (void)sysid;
    (void)pubid;
    (void)has_internal_subset;
    xr_fail(ud, "DOCTYPE declarations are not allowed");
}

static void XMLCALL
xr_on_entity(void *ud, const XML_Char *name, int is_param,
             const XML_Char *value, int value_len, const XML_Char *base,
             const XML_Char *sysid, const XML_Char *pubid,
             const XML_Char *notation)
{
    (void)name;
    (void)is_param;
    (void)value;
    (void)value_len;
    (void)base;
    (void)sysid;
    (void)pubid;
    (void)notation;
    xr_fail(ud, "entity declarations are not allowed");
}

/* The parser is told the text is UTF-8 whatever the document says; a
 * document that says otherwise would be misread, so it is refused. */
static void XMLCALL
xr_on_xmldecl(void *ud, const XML_Char *version, const XML_Char *encoding,
              int standalone)
{
    (void)version;
    (void)standalone;
    if (encoding && strcasecmp(encoding, "UTF-8") != 0 &&
        strcasecmp(encoding, "US-ASCII") != 0)
        xr_fail(ud, "the document must be UTF-8, not '%.*s'", XR_SHOWN,
                encoding);
}

/* Run the parser over xml; on success p->g holds the JSON. */
static int
xr_parse(struct xr_parser *p, const char *xml, size_t len)
{
    enum XML_Status st;

    if (len > XMLRPC_MAX_DOC)
        return xo_err_internal_code(XO_EINVAL, "XML-RPC document larger "
                                    "than %u bytes", XMLRPC_MAX_DOC);
    p->g = json_gen_new();
    /* Never NULL, so the text can always be terminated in place. */
    p->text_cap = 256;
    p->text = xmalloc(p->text_cap);
    p->xp = XML_ParserCreate("UTF-8");
    if (!p->xp)
        abort();
    XML_SetUserData(p->xp, p);
    XML_SetParamEntityParsing(p->xp, XML_PARAM_ENTITY_PARSING_NEVER);
    XML_SetStartDoctypeDeclHandler(p->xp, xr_on_doctype);
    XML_SetEntityDeclHandler(p->xp, xr_on_entity);
    XML_SetXmlDeclHandler(p->xp, xr_on_xmldecl);
    XML_SetElementHandler(p->xp, xr_on_start, xr_on_end);
    XML_SetCharacterDataHandler(p->xp, xr_on_text);
    st = XML_Parse(p->xp, xml, (int)len, XML_TRUE);
    if (p->err)
        return xo_err_internal_code(XO_EINVAL, "malformed XML-RPC: %s",
                                    p->err);
    if (st != XML_STATUS_OK)
        return xo_err_internal_code(
            XO_EINVAL, "malformed XML at line %lu column %lu: %s",
            (unsigned long)XML_GetCurrentLineNumber(p->xp),
            (unsigned long)XML_GetCurrentColumnNumber(p->xp),
            XML_ErrorString(XML_GetErrorCode(p->xp)));
    return 0;
}

static void
xr_parser_dispose(struct xr_parser *p)
{
    if (p->xp)
        XML_ParserFree(p->xp);
    if (p->g)
        yajl_gen_free(p->g);
    free(p->text);
    free(p->method);
    free(p->err);
}

int
xmlrpc_parse_call(const char *xml, size_t len, char **method_r,
                  char **params_json_r)
{
    struct xr_parser p = { .want_call = true };
    int rc;

    *method_r = NULL;
    *params_json_r = NULL;
    rc = xr_parse(&p, xml, len);
    if (rc)
        goto out;
    *params_json_r = json_gen_take(p.g);
    p.g = NULL;
    *method_r = p.method;
    p.method = NULL;
out:
    xr_parser_dispose(&p);
    return rc;
}

int
xmlrpc_parse_response(const char *xml, size_t len, char **value_json_r,
                      bool *fault_r)
{
    struct xr_parser p = { .want_call = false };
    int rc;

    *value_json_r = NULL;
    *fault_r = false;
    rc = xr_parse(&p, xml, len);
    if (rc)
        goto out;
    *value_json_r = json_gen_take(p.g);
    p.g = NULL;
    *fault_r = p.fault;
out:
    xr_parser_dispose(&p);
    return rc;
}

/* ---- encoding ---- */

struct xr_buf {
    char *data;
    size_t len;
    size_t cap;
};

static void
xr_put_n(struct xr_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = xrealloc(b->data, b->cap);
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void
xr_put(struct xr_buf *b, const char *s)
{
    xr_put_n(b, s, strlen(s));
}

/* Text content with XML escapes; XO_EINVAL on invalid UTF-8. */
static int
xr_put_text(struct xr_buf *b, const char *text)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t len = strlen(text);
    size_t i = 0;
    size_t n;

    if (!json_utf8_valid(text, len))
        return xo_err_internal_code(XO_EINVAL, "text for XML-RPC is not "
                                    "valid UTF-8");
    while (i < len) {
        const char *esc = NULL;

        if (s[i] >= 0x80) {
            /* Valid (checked above), so the lead byte gives the length. */
            n = s[i] >= 0xf0 ? 4 : s[i] >= 0xe0 ? 3 : 2;
            /* U+FFFE and U+FFFF are not XML characters. */
            if (!(n == 3 && s[i] == 0xef && s[i + 1] == 0xbf &&
                  s[i + 2] >= 0xbe))
                xr_put_n(b, (const char *)s + i, n);
            i += n;
            continue;
        }
        switch (s[i]) {
        case '&': esc = "&amp;"; break;
        case '<': esc = "&lt;"; break;
        case '>': esc = "&gt;"; break;
        case '"': esc = "&quot;"; break;
        case '\r': esc = "&#13;"; break;
        case '\t':
        case '\n': break;
        default:
            if (s[i] < 0x20)
                esc = "";
            break;
        }
        if (esc)
            xr_put(b, esc);
        else
            xr_put_n(b, (const char *)s + i, 1);
        i++;
    }
    return 0;
}

static int
xr_put_number(struct xr_buf *b, yajl_val v)
{
    char buf[64];
    long long i;

    if (YAJL_IS_INTEGER(v)) {
        i = YAJL_GET_INTEGER(v);
        snprintf(buf, sizeof(buf), i >= INT32_MIN && i <= INT32_MAX
                                       ? "<int>%lld</int>"
                                       : "<i8>%lld</i8>", i);
    } else if (YAJL_IS_DOUBLE(v) && isfinite(YAJL_GET_DOUBLE(v))) {
        /* rpclib's format: at most 16 significant digits. */
        snprintf(buf, sizeof(buf), "<double>%.16g</double>",
                 YAJL_GET_DOUBLE(v));
    } else {
        return xo_err_internal_code(XO_EINVAL, "number '%.*s' cannot be "
                                    "written in XML-RPC", XR_SHOWN,
                                    v->u.number.r);
    }
    xr_put(b, buf);
    return 0;
}

/* One <value> element for v; json_parse bounded the recursion depth. */
static int
xr_put_value(struct xr_buf *b, yajl_val v)
{
    int rc = 0;

    xr_put(b, "<value>");
    switch (v->type) {
    case yajl_t_string:
        xr_put(b, "<string>");
        rc = xr_put_text(b, v->u.string);
        xr_put(b, "</string>");
        break;
    case yajl_t_number:
        rc = xr_put_number(b, v);
        break;
    case yajl_t_true:
    case yajl_t_false:
        xr_put(b, YAJL_IS_TRUE(v) ? "<boolean>1</boolean>"
                                  : "<boolean>0</boolean>");
        break;
    case yajl_t_array:
        xr_put(b, "<array><data>");
        for (size_t i = 0; i < v->u.array.len && !rc; i++)
            rc = xr_put_value(b, v->u.array.values[i]);
        xr_put(b, "</data></array>");
        break;
    case yajl_t_object:
        xr_put(b, "<struct>");
        for (size_t i = 0; i < v->u.object.len && !rc; i++) {
            xr_put(b, "<member><name>");
            rc = xr_put_text(b, v->u.object.keys[i]);
            xr_put(b, "</name>");
            if (!rc)
                rc = xr_put_value(b, v->u.object.values[i]);
            xr_put(b, "</member>");
        }
        xr_put(b, "</struct>");
        break;
    default:
        xr_put(b, "<nil/>");
        break;
    }
    xr_put(b, "</value>");
    return rc;
}

/* Parse json_text and append its <value>. */
static int
xr_put_json(struct xr_buf *b, const char *json_text)
{
    yajl_val v = NULL;
    int rc;

    rc = json_parse(json_text, strlen(json_text), &v);
    if (rc)
        return rc;
    rc = xr_put_value(b, v);
    yajl_tree_free(v);
    return rc;
}

/* Hand over the buffer on success, free it otherwise. */
static int
xr_finish(struct xr_buf *b, int rc, char **xml_r)
{
    if (rc) {
        free(b->data);
        return rc;
    }
    *xml_r = b->data;
    return 0;
}

int
xmlrpc_encode_call(const char *method, const char *params_json,
                   char **xml_r)
{
    struct xr_buf b = { NULL, 0, 0 };
    yajl_val params = NULL;
    int rc;

    *xml_r = NULL;
    rc = json_parse(params_json, strlen(params_json), &params);
    if (rc)
        goto out;
    if (!YAJL_IS_ARRAY(params)) {
        rc = xo_err_internal_code(XO_EINVAL, "XML-RPC call parameters must "
                                  "be a JSON array");
        goto out;
    }
    xr_put(&b, "<?xml version=\"1.0\"?><methodCall><methodName>");
    rc = xr_put_text(&b, method);
    if (rc)
        goto out;
    xr_put(&b, "</methodName><params>");
    for (size_t i = 0; i < params->u.array.len && !rc; i++) {
        xr_put(&b, "<param>");
        rc = xr_put_value(&b, params->u.array.values[i]);
        xr_put(&b, "</param>");
    }
    xr_put(&b, "</params></methodCall>");
out:
    yajl_tree_free(params);
    return xr_finish(&b, rc, xml_r);
}

int
xmlrpc_encode_response(const char *value_json, char **xml_r)
{
    struct xr_buf b = { NULL, 0, 0 };
    int rc;

    *xml_r = NULL;
    xr_put(&b, "<?xml version=\"1.0\"?><methodResponse><params><param>");
    rc = xr_put_json(&b, value_json);
    xr_put(&b, "</param></params></methodResponse>");
    return xr_finish(&b, rc, xml_r);
}

int
xmlrpc_encode_fault(int code, const char *message, char **xml_r)
{
    struct xr_buf b = { NULL, 0, 0 };
    char num[32];
    int rc;

    *xml_r = NULL;
    snprintf(num, sizeof(num), "%d", code);
    xr_put(&b, "<?xml version=\"1.0\"?><methodResponse><fault><value>"
               "<struct><member><name>faultCode</name><value><int>");
    xr_put(&b, num);
    xr_put(&b, "</int></value></member><member><name>faultString</name>"
               "<value><string>");
    rc = xr_put_text(&b, message);
    xr_put(&b, "</string></value></member></struct></value></fault>"
               "</methodResponse>");
    return xr_finish(&b, rc, xml_r);
}

int
xmlrpc_encode_value(const char *value_json, char **xml_r)
{
    struct xr_buf b = { NULL, 0, 0 };

    *xml_r = NULL;
    return xr_finish(&b, xr_put_json(&b, value_json), xml_r);
}
