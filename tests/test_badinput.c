/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Bad input on the message interface, against the real xenopsd-c binary.
 * Each case spawns a daemon holding one valid halted VM, starts a
 * well-formed client that calls VM.list in a loop, and then sends one kind
 * of bad request over the socket: truncated, oversized, deeply nested,
 * non-UTF-8, wrong argument types, unknown method, garbage bytes, a path in
 * place of a VM id, or a peer that is not root. Every bad request must get
 * an error (a JSON-RPC reply whose error member is set, or an HTTP error
 * status), or for a request the client abandons, no success; after each one
 * the looping client must get further answers. At the end the daemon is
 * still running, VM.list is what it was before, and the only file under
 * the database path is the valid VM's.
 *
 * Run as a user other than root, the daemon is told to answer that uid too
 * (rpc-allowed-uids), and the non-root peer case, which needs root to
 * change uid, is skipped (CI runs as root).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/capability.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"
#include "util/json.h"
#include "util/xalloc.h"

#define SR_UUID TESTUTIL_SR
#define VM_A "9c0f7c55-1111-2222-3333-444455556666"
#define NOBODY 65534
#define GUARD_MS TESTUTIL_GUARD_MS
#define REPLY_MAX (1024 * 1024)
#define VM_LIST "{\"debug_info\":\"test\",\"unit\":null}"

struct client;

struct daemon {
    struct testutil_daemon h;
    yajl_val baseline;          /* VM.list before any bad input */
    struct client *client;
};

/* The well-formed client: VM.list in a loop, each answer compared with
 * the baseline. */
struct client {
    const struct daemon *d;
    struct testutil_daemon_loop loop; /* its lock guards the counters */
    long answers;
    long failures;              /* transport failures or error replies */
    long mismatches;            /* answers that differ from the baseline */
};

static void client_stop(struct client *c);

/* ---- spawning and stopping the daemon ---- */

static bool
daemon_alive(struct daemon *d)
{
    return d->h.pid > 0 && waitpid(d->h.pid, NULL, WNOHANG) == 0;
}

/* DEBUG.shutdown; the daemon must then exit 0 (under a sanitizer build
 * that includes its leak check). */
static void
daemon_shutdown_cleanly(struct daemon *d)
{
    int status = 0;

    assert_int_equal(testutil_daemon_shutdown(&d->h, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static int
daemon_stop(void **state)
{
    struct daemon *d = *state;

    if (!d)
        return 0;
    client_stop(d->client);
    d->client = NULL;
    testutil_daemon_cleanup(&d->h);
    yajl_tree_free(d->baseline);
    free(d);
    return 0;
}

/* ---- well-formed calls ---- */

/* A well-formed call that must get an error reply (not a transport
 * failure, not a result). */
static void
call_must_fail(const struct daemon *d, const char *method,
               const char *params)
{
    char *res = NULL, *err = NULL;
    yajl_val t = NULL;

    assert_int_equal(testutil_daemon_call(&d->h, method, params, &res, &err),
                     0);
    if (res)
        fail_msg("%s %s: expected an error, got %s", method, params, res);
    assert_int_equal(json_parse(err, strlen(err), &t), 0);
    assert_false(YAJL_IS_NULL(t));
    yajl_tree_free(t);
    free(err);
}

/* ---- the well-formed client ---- */

/* One VM.list, compared with the baseline and counted. */
static bool
client_step(void *arg)
{
    struct client *c = arg;
    char *res = NULL, *err = NULL;
    yajl_val t = NULL;
    bool same = false;
    int rc;

    rc = testutil_daemon_call(&c->d->h, "VM.list",
                              "{\"debug_info\":\"client\",\"unit\":null}",
                              &res, &err);
    if (rc == 0 && res && json_parse(res, strlen(res), &t) == 0)
        same = json_equal(t, c->d->baseline);
    pthread_mutex_lock(&c->loop.lock);
    if (rc || !res)
        c->failures++;
    else if (!same)
        c->mismatches++;
    else
        c->answers++;
    pthread_cond_broadcast(&c->loop.cond);
    pthread_mutex_unlock(&c->loop.lock);
    yajl_tree_free(t);
    free(res);
    free(err);
    /* Pace the loop: a steady stream of answers is the point, not
     * saturating a shared machine. */
    testutil_sleep_ms(1);
    return true;
}

static void
client_stop(struct client *c)
{
    if (!c)
        return;
    testutil_daemon_loop_stop(&c->loop);
    free(c);
}

/* Wait until the client got two more good answers than it had: at least
 * one of them was asked after whatever the caller just did. */
static void
client_wait_progress(struct client *c, const char *after)
{
    struct timespec end;
    long want;

    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += GUARD_MS / 1000;
    pthread_mutex_lock(&c->loop.lock);
    want = c->answers + 2;
    while (c->answers < want && !c->failures && !c->mismatches) {
        if (pthread_cond_timedwait(&c->loop.cond, &c->loop.lock,
                                   &end) == ETIMEDOUT)
            break;
    }
    if (c->answers < want) {
        long f = c->failures, m = c->mismatches;

        pthread_mutex_unlock(&c->loop.lock);
        fail_msg("after %s the client got no answer (failures %ld, "
                 "changed answers %ld)", after, f, m);
    }
    pthread_mutex_unlock(&c->loop.lock);
}

/* ---- setup and final checks ---- */

static char *
vm_record(const char *id)
{
    return xasprintf(
        "{\"debug_info\":\"test\",\"vm\":{\"id\":\"%s\",\"name\":\"bad\","
        "\"memory_static_max\":1048576,\"memory_dynamic_max\":1048576,"
        "\"memory_dynamic_min\":1048576,\"vcpu_max\":1,\"vcpus\":1,"
        "\"ty\":[\"PV\",{}]}}", id);
}

/* Setup: a daemon. On failure everything is cleaned up here: cmocka runs
 * no teardown after a failed setup. */
static int
setup(void **state)
{
    struct daemon *d = xcalloc(1, sizeof(*d));

    if (testutil_daemon_spawn(&d->h, "xenops-bad")) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* The start of every test: VM_A (halted, one VBD), the baseline VM.list,
 * and the looping client already answering. In the test body, so that a
 * failure here still gets the teardown. */
static struct daemon *
begin(void **state)
{
    static const char vbd[] =
        "{\"debug_info\":\"test\",\"vbd\":{\"id\":[\"" VM_A "\",\"xvda\"],"
        "\"backend\":[\"VDI\",\"" SR_UUID "/vdi-a\"]}}";
    struct daemon *d = *state;
    struct client *c;
    char *p;

    p = vm_record(VM_A);
    assert_int_equal(testutil_daemon_call_json(&d->h, "VM.add", p, NULL), 0);
    free(p);
    assert_int_equal(testutil_daemon_call_json(&d->h, "VBD.add", vbd, NULL), 0);
    assert_int_equal(testutil_daemon_call_json(&d->h, "VM.list", VM_LIST,
                                               &d->baseline), 0);
    assert_int_equal(json_array_len(d->baseline), 1);

    c = xcalloc(1, sizeof(*c));
    c->d = d;
    assert_int_equal(testutil_daemon_loop_start(&c->loop, client_step, c), 0);
    d->client = c;
    client_wait_progress(c, "start-up");
    return d;
}

/* Paths under the test dir that are neither the config, the socket, the
 * valid VM's document nor their directories. nftw has no user argument. */
static const char *unexpected_root;
static char unexpected[4096];

static int
note_unexpected(const char *path, const struct stat *st, int flag,
                struct FTW *ftw)
{
    static const char *const allowed[] = {
        "", "/xenopsd.conf", "/run", "/run/xenopsd",
        "/run/xenopsd.forwarded", "/db", "/db/sr", "/db/" VM_A ".json",
    };
    const char *rel = path + strlen(unexpected_root);

    (void)st;
    (void)flag;
    (void)ftw;
    for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
        if (strcmp(rel, allowed[i]) == 0)
            return 0;
    }
    if (strlen(unexpected) + strlen(rel) + 2 < sizeof(unexpected)) {
        strcat(unexpected, " ");
        strcat(unexpected, rel);
    }
    return 0;
}

/* The daemon still runs, the looping client never failed, the state is
 * what it was, no stray file appeared, and the daemon stops cleanly. */
static void
final_checks(struct daemon *d)
{
    struct client *c = d->client;
    long answers, failures, mismatches;
    yajl_val t;

    client_wait_progress(c, "the last bad request");
    d->client = NULL;
    pthread_mutex_lock(&c->loop.lock);
    answers = c->answers;
    failures = c->failures;
    mismatches = c->mismatches;
    pthread_mutex_unlock(&c->loop.lock);
    client_stop(c);
    assert_true(answers > 0);
    assert_int_equal(failures, 0);
    assert_int_equal(mismatches, 0);
    assert_true(daemon_alive(d));
    assert_int_equal(testutil_daemon_call_json(&d->h, "VM.list", VM_LIST, &t),
                     0);
    assert_true(json_equal(t, d->baseline));
    yajl_tree_free(t);

    unexpected_root = d->h.dir;
    unexpected[0] = '\0';
    assert_int_equal(nftw(d->h.dir, note_unexpected, 16, FTW_PHYS), 0);
    if (unexpected[0])
        fail_msg("unexpected files under the test dir:%s", unexpected);
    daemon_shutdown_cleanly(d);
}

/* ---- raw requests ---- */

struct raw_reply {
    int status;                 /* HTTP status; 0 = closed without one */
    char *body;                 /* NUL-terminated, or NULL */
};

static int
raw_connect(const char *path)
{
    int fd = testutil_unix_connect(path);

    assert_true(fd >= 0);
    return fd;
}

/* Read whatever comes back until EOF or a complete reply. */
static void
raw_read_reply(int fd, struct raw_reply *r)
{
    char *buf = xmalloc(REPLY_MAX + 1);
    size_t len = 0;
    int64_t end = testutil_now_ms() + GUARD_MS;
    char *head_end;

    memset(r, 0, sizeof(*r));
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int left = (int)(end - testutil_now_ms());
        ssize_t n;

        if (left <= 0)
            fail_msg("no reply and no close from the daemon");
        if (poll(&pfd, 1, left) <= 0)
            continue;
        /* read, not recv: this also reads the non-root peer's pipe. */
        n = read(fd, buf + len, REPLY_MAX - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        buf[len] = '\0';
        head_end = strstr(buf, "\r\n\r\n");
        if (head_end) {
            const char *cl = strcasestr(buf, "\r\nContent-Length:");
            size_t want = cl ? strtoul(cl + 17, NULL, 10) : 0;

            if (len >= (size_t)(head_end + 4 - buf) + want)
                break;
        }
        if (len == REPLY_MAX)
            break;
    }
    buf[len] = '\0';
    if (len > 12 && strncmp(buf, "HTTP/1.", 7) == 0)
        r->status = atoi(buf + 9);
    head_end = strstr(buf, "\r\n\r\n");
    if (head_end && head_end[4])
        r->body = xstrdup(head_end + 4);
    free(buf);
}

/* Send data (all of it, unless the daemon closes first), optionally end
 * our side, and read the reply. */
static void
raw_exchange(const struct daemon *d, const char *data, size_t len,
             bool end_input, struct raw_reply *r)
{
    int fd = raw_connect(d->h.sock);
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

        if (n < 0)
            break;
        off += (size_t)n;
    }
    if (end_input)
        shutdown(fd, SHUT_WR);
    raw_read_reply(fd, r);
    close(fd);
}

/* A POST of len bytes of body (any bytes, NULs included). */
static char *
http_post(const char *body, size_t len, size_t *len_r)
{
    char *head = xasprintf("POST / HTTP/1.1\r\n"
                           "Content-Type: application/json\r\n"
                           "Content-Length: %zu\r\nConnection: close\r\n"
                           "\r\n", len);
    size_t h = strlen(head);
    char *req = xmalloc(h + len + 1);

    memcpy(req, head, h);
    memcpy(req + h, body, len);
    req[h + len] = '\0';
    *len_r = h + len;
    free(head);
    return req;
}

/* A reply is a well-formed error: an HTTP error status, or a 200 whose
 * JSON-RPC error member is set and result is null. */
static void
assert_error_reply(const struct raw_reply *r, const char *what)
{
    yajl_val t = NULL;

    if (r->status >= 400 && r->status < 600) {
        /* Error bodies, when there is one, are JSON-RPC errors too. */
        if (r->body && *r->body) {
            if (json_parse(r->body, strlen(r->body), &t))
                fail_msg("%s: HTTP %d with a body that is not JSON: %s",
                         what, r->status, r->body);
            assert_false(YAJL_IS_NULL(json_get(t, "error")));
        }
        yajl_tree_free(t);
        return;
    }
    if (r->status != 200 || !r->body)
        fail_msg("%s: no error reply (status %d)", what, r->status);
    if (json_parse(r->body, strlen(r->body), &t))
        fail_msg("%s: reply is not JSON: %s", what, r->body);
    if (!json_get(t, "error") || YAJL_IS_NULL(json_get(t, "error")) ||
        !YAJL_IS_NULL(json_get(t, "result")))
        fail_msg("%s: not an error reply: %s", what, r->body);
    yajl_tree_free(t);
}

static void
raw_reply_dispose(struct raw_reply *r)
{
    free(r->body);
    r->body = NULL;
}

/* POST one JSON-RPC body (any bytes) and require an error reply. */
static void
post_must_fail(struct daemon *d, const char *body, size_t len,
               const char *what)
{
    size_t req_len;
    char *req = http_post(body, len, &req_len);
    struct raw_reply r;

    raw_exchange(d, req, req_len, false, &r);
    assert_error_reply(&r, what);
    raw_reply_dispose(&r);
    free(req);
    client_wait_progress(d->client, what);
}

/* ---- tests ---- */

static void
test_badinput_truncated_request_is_dropped(void **state)
{
    struct daemon *d = begin(state);
    static const char *const cuts[] = {
        /* body shorter than announced */
        "POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"method\":\"VM.li",
        /* header block cut short */
        "POST / HTTP/1.1\r\nContent-Le",
        /* request line cut short */
        "POS",
    };
    struct raw_reply r;

    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        /* The client ends its side: the daemon must not answer with a
         * result (it cannot have run anything), only close or refuse. */
        raw_exchange(d, cuts[i], strlen(cuts[i]), true, &r);
        if (r.status != 0)
            assert_error_reply(&r, cuts[i]);
        raw_reply_dispose(&r);
        client_wait_progress(d->client, "a truncated request");
    }
    /* And the rude version: send half a request, then close. */
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        int fd = raw_connect(d->h.sock);

        assert_true(send(fd, cuts[i], strlen(cuts[i]), MSG_NOSIGNAL) > 0);
        close(fd);
    }
    client_wait_progress(d->client, "closed truncated requests");
    final_checks(d);
}

static void
test_badinput_oversized_content_length_gets_413(void **state)
{
    struct daemon *d = begin(state);
    /* Twice rpc-max-request-bytes (16 MiB); the body never comes. */
    static const char req[] =
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 33554432\r\n\r\n{\"method\":\"VM.list\"";
    static const char huge[] =
        "POST / HTTP/1.1\r\nContent-Length: "
        "99999999999999999999999999999999\r\n\r\n{";
    struct raw_reply r;

    raw_exchange(d, req, strlen(req), false, &r);
    assert_int_equal(r.status, 413);
    assert_error_reply(&r, "Content-Length 32 MiB");
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "Content-Length 32 MiB");

    raw_exchange(d, huge, strlen(huge), false, &r);
    assert_true(r.status == 413 || r.status == 400);
    assert_error_reply(&r, "Content-Length beyond 64 bits");
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "Content-Length beyond 64 bits");
    final_checks(d);
}

/* prefix, depth times open, depth times close, suffix. */
static char *
nested(const char *prefix, const char *open, const char *close, int depth,
       const char *suffix)
{
    size_t o = strlen(open), c = strlen(close);
    char *out = xmalloc(strlen(prefix) + (o + c) * (size_t)depth +
                        strlen(suffix) + 1);
    char *p = stpcpy(out, prefix);

    for (int i = 0; i < depth; i++)
        p = stpcpy(p, open);
    for (int i = 0; i < depth; i++)
        p = stpcpy(p, close);
    strcpy(p, suffix);
    return out;
}

static void
test_badinput_deeply_nested_json_gets_error(void **state)
{
    struct daemon *d = begin(state);
    char *b;

    b = nested("{\"method\":\"VM.list\",\"params\":", "[", "]", 10000,
               ",\"id\":1}");
    post_must_fail(d, b, strlen(b), "10000 nested arrays as params");
    free(b);
    b = nested("{\"method\":\"VM.stat\",\"params\":[{\"id\":", "{\"a\":",
               "}", 10000, "}],\"id\":1}");
    post_must_fail(d, b, strlen(b), "10000 nested objects as an argument");
    free(b);
    /* Unclosed: the parser must stop at its depth bound, not at the end. */
    b = nested("{\"method\":\"VM.list\",\"params\":", "[", "", 10000, "");
    post_must_fail(d, b, strlen(b), "10000 unclosed arrays");
    free(b);
    final_checks(d);
}

static void
test_badinput_non_utf8_json_gets_error(void **state)
{
    struct daemon *d = begin(state);
    static const char *const bodies[] = {
        "{\"method\":\"VM.list\",\"params\":[{\"debug_info\":\"\xff\xfe\"}],"
        "\"id\":1}",
        /* overlong '/' */
        "{\"method\":\"VM.stat\",\"params\":[{\"id\":\"\xc0\xaf\"}],"
        "\"id\":1}",
        /* UTF-16 surrogate encoded as UTF-8 */
        "{\"method\":\"VM.list\",\"params\":[{\"debug_info\":\"\xed\xa0\x80"
        "\"}],\"id\":1}",
        /* a lone surrogate escape */
        "{\"method\":\"VM.list\",\"params\":[{\"debug_info\":\"\\ud800\"}],"
        "\"id\":1}",
        /* invalid bytes in the method name */
        "{\"method\":\"VM.li\x80st\",\"params\":[{}],\"id\":1}",
    };

    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
        post_must_fail(d, bodies[i], strlen(bodies[i]), bodies[i]);
    final_checks(d);
}

static void
test_badinput_wrong_argument_types_get_errors(void **state)
{
    struct daemon *d = begin(state);
    static const char *const calls[][2] = {
        { "VM.stat", "{\"debug_info\":\"t\",\"id\":42}" },
        { "VM.stat", "{\"debug_info\":\"t\"}" },
        { "VBD.plug", "{\"debug_info\":\"t\",\"id\":\"x\"}" },
        { "VBD.plug", "{\"debug_info\":\"t\",\"id\":[\"" VM_A "\"]}" },
        { "VM.start", "{\"debug_info\":\"t\",\"id\":\"" VM_A "\","
                      "\"paused\":\"yes\"}" },
        { "VM.shutdown", "{\"debug_info\":\"t\",\"id\":\"" VM_A "\","
                         "\"delay\":\"soon\"}" },
        { "VM.add", "{\"debug_info\":\"t\",\"vm\":\"" VM_A "\"}" },
        { "VBD.add", "{\"debug_info\":\"t\",\"vbd\":[1,2]}" },
        { "UPDATES.get", "{\"debug_info\":\"t\",\"last_id\":\"never\"}" },
        { "Task.stat", "{\"debug_info\":\"t\",\"id\":{}}" },
        { "HOST.set_worker_pool_size", "{\"debug_info\":\"t\","
                                       "\"pool_size\":true}" },
    };
    /* Well-formed JSON-RPC whose params are not an object. */
    static const char params_not_object[] =
        "{\"method\":\"VM.list\",\"params\":[42],\"id\":1}";
    static const char no_method[] = "{\"params\":[{}],\"id\":1}";
    static const char method_not_string[] =
        "{\"method\":7,\"params\":[{}],\"id\":1}";

    for (size_t i = 0; i < sizeof(calls) / sizeof(calls[0]); i++) {
        call_must_fail(d, calls[i][0], calls[i][1]);
        client_wait_progress(d->client, calls[i][0]);
    }
    post_must_fail(d, params_not_object, strlen(params_not_object),
                   params_not_object);
    post_must_fail(d, no_method, strlen(no_method), no_method);
    post_must_fail(d, method_not_string, strlen(method_not_string),
                   method_not_string);
    final_checks(d);
}

static void
test_badinput_unknown_method_gets_error(void **state)
{
    struct daemon *d = begin(state);
    static const char *const names[] = {
        "VM.frobnicate", "vm.list", "", "Task.stat.extra",
        "VM.listXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX",
    };

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        call_must_fail(d, names[i], "{\"debug_info\":\"t\"}");
        client_wait_progress(d->client, names[i]);
    }
    final_checks(d);
}

static void
test_badinput_garbage_bytes_get_http_error(void **state)
{
    struct daemon *d = begin(state);
    static const char garbage_line[] =
        "\x00\x01\x02\xff\xfe garbage \x7f\r\n\r\n";
    static const char no_length[] =
        "POST / HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{}";
    static const char bad_length[] =
        "POST / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n{}";
    static const char bad_version[] =
        "POST / HTTP/9.9\r\nContent-Length: 2\r\n\r\n{}";
    static const char not_post[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    static const char garbage_body[] = "\x00\xff\x13\x37 not json at all";
    char *long_header = xmalloc(64 * 1024 + 64);
    unsigned int seed = 42;
    char noise[4096];
    struct raw_reply r;

    raw_exchange(d, garbage_line, sizeof(garbage_line) - 1, false, &r);
    assert_int_equal(r.status, 400);
    assert_error_reply(&r, "garbage request line");
    raw_reply_dispose(&r);

    raw_exchange(d, no_length, strlen(no_length), false, &r);
    assert_error_reply(&r, "no Content-Length");
    raw_reply_dispose(&r);
    raw_exchange(d, bad_length, strlen(bad_length), false, &r);
    assert_error_reply(&r, "bad Content-Length");
    raw_reply_dispose(&r);
    raw_exchange(d, bad_version, strlen(bad_version), false, &r);
    assert_error_reply(&r, "HTTP/9.9");
    raw_reply_dispose(&r);
    raw_exchange(d, not_post, strlen(not_post), false, &r);
    assert_error_reply(&r, "GET");
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "malformed HTTP");

    /* A header block over the 16 KiB bound. */
    strcpy(long_header, "POST / HTTP/1.1\r\nX-Pad: ");
    memset(long_header + strlen(long_header), 'a', 64 * 1024);
    strcpy(long_header + strlen("POST / HTTP/1.1\r\nX-Pad: ") + 64 * 1024,
           "\r\n\r\n");
    raw_exchange(d, long_header, strlen(long_header), false, &r);
    assert_error_reply(&r, "64 KiB header");
    raw_reply_dispose(&r);
    free(long_header);

    post_must_fail(d, garbage_body, sizeof(garbage_body) - 1,
                   "garbage body");
    /* Random bytes, framed and unframed. */
    for (size_t i = 0; i < sizeof(noise); i++)
        noise[i] = (char)(rand_r(&seed) & 0xff);
    post_must_fail(d, noise, sizeof(noise), "random body");
    raw_exchange(d, noise, sizeof(noise), true, &r);
    if (r.status != 0)
        assert_error_reply(&r, "random bytes");
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "random bytes");
    final_checks(d);
}

static void
test_badinput_path_as_vm_id_is_refused(void **state)
{
    struct daemon *d = begin(state);
    static const char *const ids[] = {
        "../../etc/passwd", "../" VM_A, VM_A "/../x", "", ".",
        "9c0f7c55-1111-2222-3333-44445555666\xff",
    };
    struct stat st;
    bool had_tmp_etc = stat("/tmp/etc", &st) == 0;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        char *p = vm_record(ids[i]);
        char *q = xasprintf("{\"debug_info\":\"t\",\"vbd\":{\"id\":[\"%s\","
                            "\"xvda\"]}}", ids[i]);
        char *body = xasprintf("{\"method\":\"VM.add\",\"params\":[%s],"
                               "\"id\":1}", p);

        /* Through rpc_call where the text is UTF-8, raw otherwise. */
        post_must_fail(d, body, strlen(body), ids[i]);
        if (!strchr(ids[i], '\xff')) {
            call_must_fail(d, "VBD.add", q);
            free(q);
            q = xasprintf("{\"debug_info\":\"t\",\"id\":\"%s\"}", ids[i]);
            call_must_fail(d, "VM.stat", q);
            call_must_fail(d, "VM.remove", q);
        }
        free(body);
        free(q);
        free(p);
    }
    /* A device name is a path component too. */
    call_must_fail(d, "VBD.add", "{\"debug_info\":\"t\",\"vbd\":{\"id\":[\""
                   VM_A "\",\"../../x\"]}}");
    client_wait_progress(d->client, "path ids");
    /* db/../../etc/passwd.json would be /tmp/etc/passwd.json. */
    if (!had_tmp_etc)
        assert_int_equal(stat("/tmp/etc", &st), -1);
    final_checks(d);
}

/* ---- a peer that is not root ---- */

enum peer_outcome {
    PEER_REPLIED = 10,          /* connected; the reply is on the pipe */
    PEER_REFUSED = 11,          /* connect failed: EACCES */
    PEER_NO_CAPS = 12,          /* could not keep CAP_DAC_OVERRIDE */
    PEER_ERROR = 13,
};

/*
 * Runs in a child forked from a threaded process: only async-signal-safe
 * calls. Drops to NOBODY (keeping CAP_DAC_OVERRIDE when asked, so that the
 * socket's file mode does not stop it and the daemon's own SO_PEERCRED
 * check is what answers), connects and sends req; the reply goes to out.
 */
static void
peer_child(const struct sockaddr_un *addr, const char *req, size_t len,
           bool keep_dac_override, int out)
{
    struct __user_cap_header_struct h = {
        .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0,
    };
    struct __user_cap_data_struct caps[2];
    static char buf[65536];
    ssize_t n;
    int fd;

    memset(caps, 0, sizeof(caps));
    caps[0].effective = caps[0].permitted = 1u << CAP_DAC_OVERRIDE;
    if (keep_dac_override && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
        _exit(PEER_NO_CAPS);
    if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
        setresuid(NOBODY, NOBODY, NOBODY) < 0)
        _exit(PEER_ERROR);
    if (keep_dac_override && syscall(SYS_capset, &h, caps) < 0)
        _exit(PEER_NO_CAPS);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        _exit(PEER_ERROR);
    if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0)
        _exit(errno == EACCES ? PEER_REFUSED : PEER_ERROR);
    if (write(fd, req, len) != (ssize_t)len)
        _exit(PEER_ERROR);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        if (write(out, buf, (size_t)n) != n)
            _exit(PEER_ERROR);
    }
    _exit(PEER_REPLIED);
}

/* Run peer_child; its exit code, and what it read in *r. */
static int
peer_run(struct daemon *d, const char *req, bool keep_dac_override,
         struct raw_reply *r)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int p[2];
    int status;
    pid_t pid;

    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", d->h.sock);
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        peer_child(&addr, req, strlen(req), keep_dac_override, p[1]);
    }
    close(p[1]);
    raw_read_reply(p[0], r);
    close(p[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void
test_badinput_non_root_peer_is_refused(void **state)
{
    struct daemon *d;
    static const char body[] =
        "{\"method\":\"VM.remove\",\"params\":[{\"debug_info\":\"t\","
        "\"id\":\"" VM_A "\"}],\"id\":1}";
    size_t req_len;
    char *req = http_post(body, strlen(body), &req_len);
    struct raw_reply r;
    int outcome;

    if (geteuid() != 0) {
        printf("SKIP: changing to uid %d needs root; this test runs as "
               "uid %u\n", NOBODY, (unsigned)geteuid());
        free(req);
        skip();
    }
    d = begin(state);
    /* Plain nobody: the 0600 root socket (in a 0700 dir) keeps it out. */
    outcome = peer_run(d, req, false, &r);
    if (outcome == PEER_REPLIED)
        assert_error_reply(&r, "VM.remove from uid 65534");
    else
        assert_int_equal(outcome, PEER_REFUSED);
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "a non-root peer");

    /* Nobody with CAP_DAC_OVERRIDE gets through the file mode; the
     * daemon's SO_PEERCRED check must answer with an error. */
    outcome = peer_run(d, req, true, &r);
    if (outcome == PEER_NO_CAPS) {
        printf("note: cannot keep CAP_DAC_OVERRIDE across setresuid here; "
               "the SO_PEERCRED half of this test was not run\n");
    } else {
        assert_int_equal(outcome, PEER_REPLIED);
        assert_error_reply(&r, "VM.remove from uid 65534 past the mode");
        assert_non_null(strstr(r.body, "permission denied"));
    }
    raw_reply_dispose(&r);
    client_wait_progress(d->client, "a non-root peer past the file mode");
    free(req);
    final_checks(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_badinput_truncated_request_is_dropped, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_oversized_content_length_gets_413, setup,
            daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_deeply_nested_json_gets_error, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_non_utf8_json_gets_error, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_wrong_argument_types_get_errors, setup,
            daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_unknown_method_gets_error, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_garbage_bytes_get_http_error, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_path_as_vm_id_is_refused, setup, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_badinput_non_root_peer_is_refused, setup, daemon_stop),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
