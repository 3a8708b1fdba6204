/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Golden tests of the message interface: the request/response pairs of
 * tests/data/rpc/ (format in its README.md) replayed in file-name order
 * against one in-process server started as the daemon starts it, over its
 * Unix socket, in both encodings. Replies are compared by structure, with
 * the "<any>" / "<any:NAME>" wildcards and ${NAME} substitutions of the
 * README. Then a few tests of the socket's encoding choice and of the
 * XML-RPC client, and of the matcher itself.
 *
 * A failing case prints the reply it got (as JSON) and where it differs,
 * which is also how a new case's expected file is written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>

#include "admin.h"
#include "config.h"
#include "migrate/migrate.h"
#include "rpc/rpc.h"
#include "rpc/rpc_methods.h"
#include "server.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "util/xmlrpc.h"

#define SR3 "5a3e0c3e-0000-4000-8000-000000000003"
#define SR1 "5a3e0c3e-0000-4000-8000-000000000001"
/* Only a guard against a hung server, never a speed assertion. */
#define GUARD_SEC 60
#define MAX_FILE (16 * 1024 * 1024)
#define MAX_VARS 64

struct golden_var {
    char *name;
    char *json;             /* the bound value as JSON text */
};

struct golden {
    char tmpdir[64];
    char *sock;
    char *datadir;
    struct config cfg;
    struct server *srv;
    struct rpc_server *rpc;
    struct rpc_methods_ctx mctx;
    struct migrate *mig;
    struct admin *adm;
    struct golden_var vars[MAX_VARS];
    size_t n_vars;
};

/* One case: <name>.request.<ext> and <name>.response.<ext>. */
struct golden_case {
    char *name;             /* file name of the request */
    bool xml;
};

static struct golden *G;

/* ---- files and variables ---- */

/* A whole file, NUL-terminated, or NULL when it cannot be read. */
static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long size;

    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 &&
        size <= MAX_FILE && fseek(f, 0, SEEK_SET) == 0) {
        buf = xmalloc((size_t)size + 1);
        if (fread(buf, 1, (size_t)size, f) != (size_t)size) {
            free(buf);
            buf = NULL;
        } else {
            buf[size] = '\0';
        }
    }
    fclose(f);
    return buf;
}

static const struct golden_var *
var_find(const struct golden *g, const char *name, size_t len)
{
    for (size_t i = 0; i < g->n_vars; i++) {
        if (strlen(g->vars[i].name) == len &&
            strncmp(g->vars[i].name, name, len) == 0)
            return &g->vars[i];
    }
    return NULL;
}

static void
var_bind(struct golden *g, const char *name, yajl_val v)
{
    struct golden_var *slot = (struct golden_var *)var_find(g, name,
                                                            strlen(name));

    if (!slot) {
        assert_true(g->n_vars < MAX_VARS);
        slot = &g->vars[g->n_vars++];
        slot->name = xstrdup(name);
    } else {
        free(slot->json);
    }
    slot->json = json_tree_to_string(v);
}

/* Text with every ${NAME} replaced by its value: a string's characters
 * as they are, anything else as JSON text. Fails the test on an unbound
 * name. */
static char *
substitute(const struct golden *g, const char *text)
{
    size_t cap = strlen(text) + 1;
    char *out = xmalloc(cap);
    size_t n = 0;

    for (const char *p = text; *p;) {
        const char *end = strncmp(p, "${", 2) == 0 ? strchr(p, '}') : NULL;
        const struct golden_var *v = NULL;
        yajl_val tree = NULL;
        char *value = NULL;
        size_t vlen;

        if (!end) {
            out[n++] = *p++;
            continue;
        }
        v = var_find(g, p + 2, (size_t)(end - p - 2));
        if (!v)
            fprintf(stderr, "unbound variable '%.*s'\n", (int)(end - p + 1),
                    p);
        assert_non_null(v);
        assert_int_equal(json_parse(v->json, strlen(v->json), &tree), 0);
        value = YAJL_IS_STRING(tree) ? xstrdup(tree->u.string)
                                     : xstrdup(v->json);
        vlen = strlen(value);
        cap += vlen;
        out = xrealloc(out, cap);
        memcpy(out + n, value, vlen);
        n += vlen;
        free(value);
        yajl_tree_free(tree);
        p = end + 1;
    }
    out[n] = '\0';
    return out;
}

/* ---- the matcher ---- */

static bool golden_match(struct golden *g, yajl_val exp, yajl_val act,
                         bool xml, char *where, size_t len);

static bool
is_marker(yajl_val v, const char *marker)
{
    return v && YAJL_IS_STRING(v) && strcmp(v->u.string, marker) == 0;
}

/*
 * Whether the elements of act can be paired one to one with exp's from
 * index first on (an "<unordered>" array): a small backtracking search,
 * without bindings, as a failed pairing must leave nothing behind.
 */
static bool
match_unordered(yajl_val exp, size_t first, yajl_val act, bool xml,
                bool *used)
{
    char where[256];

    if (first == exp->u.array.len)
        return true;
    for (size_t j = 0; j < act->u.array.len; j++) {
        where[0] = '\0';
        if (used[j] || !golden_match(NULL, exp->u.array.values[first],
                                     act->u.array.values[j], xml, where,
                                     sizeof(where)))
            continue;
        used[j] = true;
        if (match_unordered(exp, first + 1, act, xml, used))
            return true;
        used[j] = false;
    }
    return false;
}

/*
 * Whether act matches exp: equal JSON (object member order ignored),
 * except that the string "<any>" in exp matches any value, "<any:NAME>"
 * matches any value and binds NAME to it (unless g is NULL), and an array
 * whose first element is "<unordered>" matches an array of the other
 * elements in any order. With xml, an integer and a decimal string of the
 * same value are equal: rpclib writes integers untyped, so on the XML-RPC
 * wire the two cannot be told apart (reference/interfaces.md 1.3). On a
 * mismatch the JSON path of the first difference is written to where.
 */
static bool
golden_match(struct golden *g, yajl_val exp, yajl_val act, bool xml,
             char *where, size_t len)
{
    size_t used = strlen(where);

    if (is_marker(exp, "<any>"))
        return act != NULL;
    if (exp && YAJL_IS_STRING(exp) &&
        strncmp(exp->u.string, "<any:", 5) == 0 &&
        exp->u.string[strlen(exp->u.string) - 1] == '>') {
        char *name = xstrndup(exp->u.string + 5,
                              strlen(exp->u.string) - 6);

        if (g)
            var_bind(g, name, act);
        free(name);
        return act != NULL;
    }
    if (exp && act && YAJL_IS_ARRAY(exp) && YAJL_IS_ARRAY(act) &&
        is_marker(json_array_at(exp, 0), "<unordered>")) {
        bool *pairs = xcalloc(act->u.array.len + 1, sizeof(bool));
        bool ok = act->u.array.len + 1 == exp->u.array.len &&
                  match_unordered(exp, 1, act, xml, pairs);

        free(pairs);
        if (!ok)
            snprintf(where + used, len - used, " (unordered elements)");
        return ok;
    }
    if (exp && act && YAJL_IS_OBJECT(exp) && YAJL_IS_OBJECT(act)) {
        if (exp->u.object.len != act->u.object.len) {
            snprintf(where + used, len - used, " (member count)");
            return false;
        }
        for (size_t i = 0; i < exp->u.object.len; i++) {
            const char *k = exp->u.object.keys[i];
            yajl_val a = NULL;

            for (size_t j = 0; j < act->u.object.len && !a; j++) {
                if (strcmp(act->u.object.keys[j], k) == 0)
                    a = act->u.object.values[j];
            }
            snprintf(where + used, len - used, ".%s", k);
            if (!a || !golden_match(g, exp->u.object.values[i], a, xml,
                                    where, len))
                return false;
        }
        where[used] = '\0';
        return true;
    }
    if (exp && act && YAJL_IS_ARRAY(exp) && YAJL_IS_ARRAY(act)) {
        if (exp->u.array.len != act->u.array.len) {
            snprintf(where + used, len - used, " (length)");
            return false;
        }
        for (size_t i = 0; i < exp->u.array.len; i++) {
            snprintf(where + used, len - used, "[%zu]", i);
            if (!golden_match(g, exp->u.array.values[i],
                              act->u.array.values[i], xml, where, len))
                return false;
        }
        where[used] = '\0';
        return true;
    }
    if (xml && exp && act && YAJL_IS_INTEGER(exp) != YAJL_IS_INTEGER(act)) {
        int64_t a, b;

        return json_to_int64(exp, &a) == 0 && json_to_int64(act, &b) == 0 &&
               a == b;
    }
    return json_equal(exp, act);
}

/* ---- the server and a raw HTTP client ---- */

static void
golden_server_start(struct golden *g)
{
    struct rpc_server_config rcfg;
    struct migrate_deps md;
    struct admin_deps ad;
    uid_t uids[2] = { 0, getuid() };
    char *srs = xasprintf(SR3 ":3.0:1:1," SR1 ":1.0:1:1");

    config_defaults(&g->cfg);
    assert_int_equal(config_set(&g->cfg, "persist", "false", "test"), 0);
    assert_int_equal(config_set(&g->cfg, "database-path", "/nonexistent",
                                "test"), 0);
    assert_int_equal(config_set(&g->cfg, "sim-srs", srs, "test"), 0);
    assert_int_equal(config_set(&g->cfg, "sim-memory-cap-mib", "1", "test"),
                     0);
    assert_int_equal(config_set(&g->cfg, "sockets-path", g->tmpdir, "test"),
                     0);
    free(srs);
    assert_int_equal(server_new(&g->cfg, NULL, &g->srv), 0);
    /* No shutdown callback: DEBUG.shutdown is answered, nothing stops. */
    g->mctx.srv = g->srv;
    /* Wired as main does (VM.migrate checks its arguments, HOST.stat has
     * its extension). */
    server_admin_deps(g->srv, &ad);
    g->adm = admin_new(&ad);
    g->mctx.admin = g->adm;
    server_migrate_deps(g->srv, &md);
    md.methods = rpc_methods_table;
    md.n_methods = rpc_methods_count;
    md.methods_ctx = &g->mctx;
    md.note_migration = admin_note_migration_cb;
    md.note_ctx = g->adm;
    assert_int_equal(migrate_new(&md, &g->mig), 0);
    g->mctx.mig = g->mig;
    memset(&rcfg, 0, sizeof(rcfg));
    rcfg.path = g->sock;
    /* The daemon allows root only; the test runs as whoever runs it. */
    rcfg.allowed_uids = uids;
    rcfg.n_allowed_uids = 2;
    assert_int_equal(rpc_server_start(&rcfg, rpc_methods_table,
                                      rpc_methods_count, &g->mctx, &g->rpc),
                     0);
}

struct http_reply {
    char *content_type;
    char *body;
    size_t len;
};

static void
http_reply_dispose(struct http_reply *r)
{
    free(r->content_type);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/* POST body on a new connection; content_type NULL sends none. */
static void
http_post(const char *sock, const char *content_type, const char *body,
          size_t len, struct http_reply *reply)
{
    struct timeval tv = { .tv_sec = GUARD_SEC };
    size_t cap = 4096, n = 0, head_len;
    char *buf = xmalloc(cap);
    char *head, *p, *end;
    ssize_t r;
    int fd;

    memset(reply, 0, sizeof(*reply));
    fd = testutil_unix_connect(sock);
    assert_true(fd >= 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    head = xasprintf("POST / HTTP/1.1\r\nHost: localhost\r\n%s%s%s"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     content_type ? "Content-Type: " : "",
                     content_type ? content_type : "",
                     content_type ? "\r\n" : "", len);
    assert_int_equal(send(fd, head, strlen(head), MSG_NOSIGNAL),
                     (ssize_t)strlen(head));
    for (size_t off = 0; off < len; off += (size_t)r) {
        r = send(fd, body + off, len - off, MSG_NOSIGNAL);
        assert_true(r > 0);
    }
    free(head);
    /* Connection: close, so the reply ends at EOF. */
    while ((r = recv(fd, buf + n, cap - n - 1, 0)) > 0) {
        n += (size_t)r;
        if (n + 1 == cap) {
            cap *= 2;
            buf = xrealloc(buf, cap);
        }
    }
    assert_int_equal(r, 0);
    close(fd);
    buf[n] = '\0';
    assert_true(strncmp(buf, "HTTP/1.1 200 ", 13) == 0);
    end = strstr(buf, "\r\n\r\n");
    assert_non_null(end);
    head_len = (size_t)(end - buf) + 4;
    *end = '\0';
    p = strcasestr(buf, "\r\nContent-Type: ");
    if (p) {
        p += 16;
        reply->content_type = xstrndup(p, strcspn(p, "\r\n"));
    }
    reply->len = n - head_len;
    reply->body = xstrndup(buf + head_len, reply->len);
    free(buf);
}

/* ---- running a case ---- */

/* A reply or an expected file as JSON: itself, or for XML-RPC the value
 * of its methodResponse. */
static yajl_val
reply_tree(const char *text, size_t len, bool xml, const char *what)
{
    yajl_val v = NULL;
    char *json = NULL;
    bool fault = false;
    int rc;

    if (xml) {
        rc = xmlrpc_parse_response(text, len, &json, &fault);
        if (rc == 0)
            rc = json_parse(json, strlen(json), &v);
    } else {
        rc = json_parse(text, len, &v);
    }
    if (rc) {
        char *err = xo_err_take_json(rc);

        fprintf(stderr, "%s does not parse: %s\n%.2000s\n", what, err, text);
        free(err);
    }
    assert_int_equal(rc, 0);
    assert_false(fault);
    free(json);
    return v;
}

static const char *
request_method(const char *body, bool xml, char **method_r)
{
    char *params = NULL;
    yajl_val v = NULL;

    *method_r = NULL;
    if (xml) {
        assert_int_equal(xmlrpc_parse_call(body, strlen(body), method_r,
                                           &params), 0);
        free(params);
    } else {
        assert_int_equal(json_parse(body, strlen(body), &v), 0);
        if (json_get_str(v, "method"))
            *method_r = xstrdup(json_get_str(v, "method"));
        yajl_tree_free(v);
    }
    return *method_r ? *method_r : "";
}

/* The tag of a Task.t's state in a reply tree, or NULL. */
static const char *
task_state_tag(yajl_val reply, bool xml)
{
    yajl_val t = json_get(reply, xml ? "Value" : "result");
    yajl_val tag = json_array_at(json_get(t, "state"), 0);

    return tag && YAJL_IS_STRING(tag) ? tag->u.string : NULL;
}

/* Send a request and return its reply as a tree. */
static yajl_val
exchange(struct golden *g, const char *body, bool xml)
{
    struct http_reply reply;
    yajl_val v;

    http_post(g->sock, xml ? "text/xml" : "application/json", body,
              strlen(body), &reply);
    assert_non_null(reply.content_type);
    assert_string_equal(reply.content_type,
                        xml ? "text/xml" : "application/json");
    v = reply_tree(reply.body, reply.len, xml, "reply");
    http_reply_dispose(&reply);
    return v;
}

static void
test_rpc_golden_case(void **state)
{
    const struct golden_case *c = *state;
    struct golden *g = G;
    char *path = xasprintf("%s/%s", g->datadir, c->name);
    char *raw = read_file(path);
    char *body, *expected_raw, *expected_text, *method = NULL;
    char *dot;
    yajl_val expected, actual;
    const char *want_tag;
    char where[512] = "$";
    bool ok;

    assert_non_null(raw);
    body = substitute(g, raw);
    free(raw);
    dot = strstr(path, ".request.");
    *dot = '\0';
    dot = xasprintf("%s.response.%s", path, c->xml ? "xml" : "json");
    free(path);
    path = dot;
    expected_raw = read_file(path);
    if (!expected_raw)
        fprintf(stderr, "missing expected reply '%s'\n", path);
    expected_text = substitute(g, expected_raw ? expected_raw : "null");
    expected = reply_tree(expected_text, strlen(expected_text), c->xml,
                          "expected reply");
    actual = exchange(g, body, c->xml);
    /* An asynchronous operation is awaited by its Task.stat case: ask
     * again while the task is pending and the case expects it done (or
     * has no expected reply yet, so that the one it prints is useful). */
    want_tag = task_state_tag(expected, c->xml);
    if (strcmp(request_method(body, c->xml, &method), "Task.stat") == 0 &&
        (!expected_raw || (want_tag && strcmp(want_tag, "Pending") != 0))) {
        for (int i = 0; i < GUARD_SEC * 100; i++) {
            const char *tag = task_state_tag(actual, c->xml);

            if (!tag || strcmp(tag, "Pending") != 0)
                break;
            testutil_sleep_ms(10);
            yajl_tree_free(actual);
            actual = exchange(g, body, c->xml);
        }
    }
    ok = expected_raw && golden_match(g, expected, actual, c->xml, where,
                                      sizeof(where));
    if (!ok) {
        char *text = json_tree_to_string(actual);

        fprintf(stderr, "case '%s': reply differs at %s\ngot: %s\n",
                c->name, where, text);
        free(text);
    }
    yajl_tree_free(expected);
    yajl_tree_free(actual);
    free(method);
    free(expected_text);
    free(expected_raw);
    free(body);
    free(path);
    assert_true(ok);
}

/* ---- the socket's encoding choice and the XML-RPC client ---- */

#define XML_CALL \
    "<methodCall><methodName>VM.exists" \
    "</methodName><params><param><value><struct><member><name>id</name>" \
    "<value>9c0f7c55-0000-0000-0000-000000000000</value></member>" \
    "</struct></value></param></params></methodCall>"
#define XML_QUERY "<?xml version=\"1.0\"?>" XML_CALL

static void
check_xml_exists_reply(const struct http_reply *reply)
{
    yajl_val v;

    assert_string_equal(reply->content_type, "text/xml");
    v = reply_tree(reply->body, reply->len, true, "reply");
    assert_string_equal(json_get_str(v, "Status"), "Success");
    assert_true(YAJL_IS_FALSE(json_get(v, "Value")));
    yajl_tree_free(v);
}

/* No Content-Type: the first non-blank byte decides. */
static void
test_rpc_golden_xml_sniffed_without_content_type(void **state)
{
    struct http_reply reply;
    const char *json = "{\"method\":\"VM.exists\",\"params\":[{\"id\":"
                       "\"9c0f7c55-0000-0000-0000-000000000000\"}],"
                       "\"id\":1}";
    yajl_val v;

    /* XML allows blanks before the root element (not before a
     * declaration). */
    http_post(G->sock, NULL, "\r\n  " XML_CALL, strlen(XML_CALL) + 4,
              &reply);
    check_xml_exists_reply(&reply);
    http_reply_dispose(&reply);
    http_post(G->sock, NULL, XML_QUERY, strlen(XML_QUERY), &reply);
    check_xml_exists_reply(&reply);
    http_reply_dispose(&reply);
    /* A Content-Type with parameters still counts. */
    http_post(G->sock, "text/xml; charset=utf-8", XML_QUERY,
              strlen(XML_QUERY), &reply);
    check_xml_exists_reply(&reply);
    http_reply_dispose(&reply);
    http_post(G->sock, NULL, json, strlen(json), &reply);
    assert_string_equal(reply.content_type, "application/json");
    v = reply_tree(reply.body, reply.len, false, "reply");
    assert_true(YAJL_IS_FALSE(json_get(v, "result")));
    yajl_tree_free(v);
    http_reply_dispose(&reply);
}

/* Bad XML gets a well-formed XML-RPC Failure, and the server goes on. */
static void
test_rpc_golden_xml_bad_requests_get_failures(void **state)
{
    const char *bad[] = {
        "<methodCall>",
        "<?xml version=\"1.0\"?><!DOCTYPE a [<!ENTITY b \"c\">]>"
        "<methodCall><methodName>query</methodName></methodCall>",
        "<methodCall><methodName>query</methodName><params><param><value>"
        "x</value></param></params></methodCall>",
        "<methodCall><methodName>query</methodName></methodCall>",
        "<methodCall><methodName>No.such</methodName><params><param><value>"
        "<struct/></value></param></params></methodCall>",
        "<methodCall><methodName>VM.stat</methodName><params><param><value>"
        "<struct><member><name>id</name><value><int>3</int></value>"
        "</member></struct></value></param></params></methodCall>",
        "<methodCall><methodName>q\xff</methodName></methodCall>",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct http_reply reply;
        yajl_val v, err;

        http_post(G->sock, "text/xml", bad[i], strlen(bad[i]), &reply);
        v = reply_tree(reply.body, reply.len, true, "reply");
        assert_string_equal(json_get_str(v, "Status"), "Failure");
        err = json_get(v, "ErrorDescription");
        assert_true(json_is_array(err));
        assert_string_equal(json_array_at(err, 0)->u.string,
                            "Internal_error");
        yajl_tree_free(v);
        http_reply_dispose(&reply);
    }
    /* Framing errors are answered in the encoding the header names. */
    {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        const char *req = "POST / HTTP/1.1\r\nContent-Type: text/xml\r\n"
                          "\r\n";
        char buf[4096];
        size_t n = 0;
        ssize_t r;
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct timeval tv = { .tv_sec = GUARD_SEC };

        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        xstrlcpy(addr.sun_path, G->sock, sizeof(addr.sun_path));
        assert_int_equal(connect(fd, (struct sockaddr *)&addr,
                                 sizeof(addr)), 0);
        assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL),
                         (ssize_t)strlen(req));
        while (n < sizeof(buf) - 1 &&
               (r = recv(fd, buf + n, sizeof(buf) - 1 - n, 0)) > 0)
            n += (size_t)r;
        close(fd);
        buf[n] = '\0';
        assert_non_null(strstr(buf, "HTTP/1.1 411"));
        assert_non_null(strstr(buf, "Content-Type: text/xml"));
        assert_non_null(strstr(buf, "<methodResponse>"));
    }
}

static void
test_rpc_golden_rpc_call_xml(void **state)
{
    char *result = NULL, *error = NULL;

    assert_int_equal(rpc_call_xml(G->sock, "VM.exists",
                                  "{\"debug_info\":\"t\",\"id\":"
                                  "\"9c0f7c55-0000-0000-0000-000000000000\"}",
                                  0, &result, &error), 0);
    assert_null(error);
    assert_string_equal(result, "false");
    free(result);
    assert_int_equal(rpc_call_xml(G->sock, "VM.stat",
                                  "{\"id\":\"9c0f7c55-0000-0000-0000-"
                                  "000000000000\"}", 0, &result, &error), 0);
    assert_null(result);
    assert_non_null(strstr(error, "Does_not_exist"));
    free(error);
    assert_int_equal(rpc_call_xml(G->sock, "query", NULL, 0, &result,
                                  &error), 0);
    assert_non_null(strstr(result, "\"xenops\""));
    free(result);
    /* Params are named arguments: an object. */
    assert_int_equal(rpc_call_xml(G->sock, "query", "[1]", 0, &result,
                                  &error), XO_EINVAL);
    assert_null(result);
    assert_null(error);
    xo_err_clear();
}

/* The matcher: wildcards, bindings, unordered arrays, XML-RPC's untyped
 * integers, and that a difference is caught. */
static void
test_rpc_golden_matcher(void **state)
{
    struct golden g;
    const char *pairs[][4] = {
        /* expected, actual, "x" for an XML-RPC case, "1" if they match */
        { "{\"a\":\"<any>\",\"b\":[1,2]}", "{\"b\":[1,2],\"a\":{\"x\":1}}",
          "", "1" },
        { "{\"a\":\"<any>\"}", "{\"b\":1}", "", "" },
        { "{\"a\":\"<any>\"}", "{\"a\":1,\"b\":1}", "", "" },
        { "[1,2]", "[2,1]", "", "" },
        { "[1,\"<any>\"]", "[1]", "", "" },
        { "1.5", "1.5", "", "1" },
        { "{\"s\":[\"Completed\",{\"duration\":\"<any>\"}]}",
          "{\"s\":[\"Completed\",{\"duration\":0.3}]}", "", "1" },
        { "[\"<unordered>\",1,[2],\"<any>\"]", "[[2],3,1]", "", "1" },
        { "[\"<unordered>\",1,\"<any>\"]", "[1,1]", "", "1" },
        { "[\"<unordered>\",1,2]", "[2,2]", "", "" },
        { "[\"<unordered>\",1,2]", "[1,2,3]", "", "" },
        { "[\"<unordered>\"]", "[]", "", "1" },
        /* An untyped XML-RPC integer reads as a string. */
        { "1", "\"1\"", "", "" },
        { "1", "\"1\"", "x", "1" },
        { "\"8\"", "8", "x", "1" },
        { "1", "\"2\"", "x", "" },
        { "1", "\"1.0\"", "x", "" },
        { "\"<any:t>\"", "\"17\"", "", "1" },
    };
    char *text;

    memset(&g, 0, sizeof(g));
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        yajl_val e = NULL, a = NULL;
        char where[128] = "$";

        assert_int_equal(json_parse(pairs[i][0], strlen(pairs[i][0]), &e),
                         0);
        assert_int_equal(json_parse(pairs[i][1], strlen(pairs[i][1]), &a),
                         0);
        if (golden_match(&g, e, a, pairs[i][2][0] == 'x', where,
                         sizeof(where)) != (pairs[i][3][0] == '1'))
            fail_msg("pair %zu: '%s' vs '%s'", i, pairs[i][0], pairs[i][1]);
        yajl_tree_free(e);
        yajl_tree_free(a);
    }
    /* <any:t> bound t to "17": substituted as its characters. */
    text = substitute(&g, "{\"id\":\"${t}\"}");
    assert_string_equal(text, "{\"id\":\"17\"}");
    free(text);
    for (size_t i = 0; i < g.n_vars; i++) {
        free(g.vars[i].name);
        free(g.vars[i].json);
    }
}

/* ---- set-up ---- */

static int
golden_setup(void **state)
{
    struct golden *g = xcalloc(1, sizeof(*g));
    const char *top = getenv("top_srcdir");
    yajl_gen gen = json_gen_new();
    yajl_val v = NULL;
    char *s;

    strcpy(g->tmpdir, "/tmp/xo-golden-XXXXXX");
    assert_non_null(mkdtemp(g->tmpdir));
    g->sock = xasprintf("%s/xenopsd", g->tmpdir);
    g->datadir = xasprintf("%s/tests/data/rpc", top ? top : ".");
    golden_server_start(g);
    /* Cases write suspend images and such under ${tmpdir}. */
    json_gen_str(gen, g->tmpdir);
    s = json_gen_take(gen);
    assert_int_equal(json_parse(s, strlen(s), &v), 0);
    var_bind(g, "tmpdir", v);
    yajl_tree_free(v);
    free(s);
    G = g;
    return 0;
}

static void
remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char *p;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        p = xasprintf("%s/%s", dir, e->d_name);
        if (unlink(p) < 0 && errno == EISDIR)
            remove_tree(p);
        free(p);
    }
    closedir(d);
    rmdir(dir);
}

static int
golden_teardown(void **state)
{
    struct golden *g = G;

    rpc_server_stop(g->rpc);
    migrate_free(g->mig);
    admin_free(g->adm);
    server_free(g->srv);
    config_dispose(&g->cfg);
    remove_tree(g->tmpdir);
    for (size_t i = 0; i < g->n_vars; i++) {
        free(g->vars[i].name);
        free(g->vars[i].json);
    }
    free(g->sock);
    free(g->datadir);
    free(g);
    G = NULL;
    xo_err_clear();
    return 0;
}

static int
case_cmp(const void *a, const void *b)
{
    return strcmp(((const struct golden_case *)a)->name,
                  ((const struct golden_case *)b)->name);
}

static bool
ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

/* The cases of dir, in file-name order. */
static size_t
list_cases(const char *dir, struct golden_case **cases_r)
{
    DIR *d = opendir(dir);
    struct golden_case *cases = NULL;
    struct dirent *e;
    size_t n = 0;

    if (!d) {
        fprintf(stderr, "cannot open '%s': %s\n", dir, strerror(errno));
        *cases_r = NULL;
        return 0;
    }
    while ((e = readdir(d))) {
        bool json = ends_with(e->d_name, ".request.json");
        bool xml = ends_with(e->d_name, ".request.xml");

        if (!json && !xml)
            continue;
        cases = xrealloc(cases, (n + 1) * sizeof(*cases));
        cases[n].name = xstrdup(e->d_name);
        cases[n].xml = xml;
        n++;
    }
    closedir(d);
    if (n)
        qsort(cases, n, sizeof(*cases), case_cmp);
    *cases_r = cases;
    return n;
}

int
main(void)
{
    const char *top = getenv("top_srcdir");
    char *dir = xasprintf("%s/tests/data/rpc", top ? top : ".");
    struct golden_case *cases = NULL;
    size_t n = list_cases(dir, &cases);
    const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_rpc_golden_xml_sniffed_without_content_type),
        cmocka_unit_test(test_rpc_golden_xml_bad_requests_get_failures),
        cmocka_unit_test(test_rpc_golden_rpc_call_xml),
        cmocka_unit_test(test_rpc_golden_matcher),
    };
    size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
    struct CMUnitTest *tests = xcalloc(n + n_fixed, sizeof(*tests));
    int rc;

    free(dir);
    if (n == 0) {
        fprintf(stderr, "no golden cases found (is top_srcdir set?)\n");
        free(tests);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        tests[i].name = cases[i].name;
        tests[i].test_func = test_rpc_golden_case;
        tests[i].initial_state = &cases[i];
    }
    memcpy(tests + n, fixed, sizeof(fixed));
    rc = _cmocka_run_group_tests("rpc_golden", tests, n + n_fixed,
                                 golden_setup, golden_teardown);
    for (size_t i = 0; i < n; i++)
        free(cases[i].name);
    free(cases);
    free(tests);
    return rc;
}
