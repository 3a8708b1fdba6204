/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc: HTTP/1.1 on a Unix socket, one thread per connection.
 *
 * Layers, each knowing nothing of the next:
 *
 *   accept thread   accept4, SO_PEERCRED, connection cap (503)
 *   conn thread     rpc_read_request: one request, bounded in size and time
 *                   rpc_codec_pick: the body's encoding, by Content-Type or
 *                     first non-blank body byte ('<': XML-RPC, rpc_xml.h;
 *                     otherwise JSON-RPC, rpc_json.h)
 *                   rpc_dispatch: uid check, method lookup, handler call
 *                   http_write_response
 *
 * Example exchange (keep-alive unless the client says otherwise):
 *
 *   POST / HTTP/1.1\r\nContent-Length: <n>\r\n\r\n
 *   {"method":"VM.exists","params":[{"dbg":"x","id":"<uuid>"}],"id":1}
 *   ->
 *   HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n
 *   Content-Length: 35\r\n\r\n{"result":true,"error":null,"id":0}
 *
 * Every failure after the HTTP framing was understood is a 200 whose body
 * carries the error member, as xenopsd does; broken framing gets a 4xx with
 * the same kind of body and the connection is closed, because after a
 * framing error nothing says where the next request would start.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "rpc/rpc.h"
#include "rpc/rpc_json.h"
#include "rpc/rpc_xml.h"
#include "util/errors.h"
#include "util/http.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define RPC_HDR_MAX (16 * 1024)
#define RPC_DEFAULT_IO_TIMEOUT_MS 10000
#define RPC_DEFAULT_IDLE_TIMEOUT_MS 60000
#define RPC_CLIENT_DEFAULT_TIMEOUT_MS 30000
#define RPC_CLIENT_CONNECT_MAX_MS 30000
#define RPC_CLIENT_MAX_REPLY (64u * 1024 * 1024)
#define RPC_LISTEN_BACKLOG 128
/* How long a new connection may wait for a slot before a 503. */
#define RPC_SLOT_WAIT_MS 500

/* ---- encodings ---- */

struct rpc_codec {
    const char *content_type;
    /* Whether this codec claims a request (body may be NULL before the
     * body was read); the last codec of the table takes the rest. */
    bool (*matches)(const char *content_type, const char *body, size_t len);
    /* On success *state_r owns what method/params point into. */
    int (*decode)(const char *body, size_t len, void **state_r,
                  const char **method_r, yajl_val *params_r);
    void (*free_state)(void *state);
    char *(*encode_reply)(const char *result_json, const char *error_json);
    /* Client side: NULL when params_json is not a JSON object text. */
    char *(*encode_request)(const char *method, const char *params_json);
    int (*decode_reply)(const char *body, size_t len, char **result_r,
                        char **error_r);
};

/* Whether a Content-Type value names type, ignoring parameters. */
static bool
rpc_content_type_is(const char *content_type, const char *type)
{
    size_t n = strlen(type);

    return strncasecmp(content_type, type, n) == 0 &&
           (content_type[n] == '\0' || content_type[n] == ';' ||
            content_type[n] == ' ' || content_type[n] == '\t');
}

/* XML-RPC when the Content-Type says XML; JSON when it says JSON; else
 * by the first non-blank byte of the body, which no JSON text starts with
 * '<'. Before the body is read (body NULL) only the header decides. */
static bool
rpc_xml_matches(const char *content_type, const char *body, size_t len)
{
    size_t i = 0;

    if (rpc_content_type_is(content_type, "text/xml") ||
        rpc_content_type_is(content_type, "application/xml"))
        return true;
    if (rpc_content_type_is(content_type, "application/json") || !body)
        return false;
    while (i < len && (body[i] == ' ' || body[i] == '\t' ||
                       body[i] == '\r' || body[i] == '\n'))
        i++;
    return i < len && body[i] == '<';
}

static int
rpc_xml_decode(const char *body, size_t len, void **state_r,
               const char **method_r, yajl_val *params_r)
{
    struct rpc_xml_request *req;
    int rc;

    rc = rpc_xml_decode_request(body, len, &req, method_r, params_r);
    *state_r = req;
    return rc;
}

static void
rpc_xml_free_state(void *state)
{
    rpc_xml_request_free(state);
}

static const struct rpc_codec rpc_codec_xml = {
    .content_type = "text/xml",
    .matches = rpc_xml_matches,
    .decode = rpc_xml_decode,
    .free_state = rpc_xml_free_state,
    .encode_reply = rpc_xml_encode_reply,
    .encode_request = rpc_xml_encode_request,
    .decode_reply = rpc_xml_decode_reply,
};

static bool
rpc_json_matches(const char *content_type, const char *body, size_t len)
{
    (void)content_type;
    (void)body;
    (void)len;
    return true;
}

static int
rpc_json_decode(const char *body, size_t len, void **state_r,
                const char **method_r, yajl_val *params_r)
{
    yajl_val tree;
    int rc;

    rc = rpc_json_decode_request(body, len, &tree, method_r, params_r);
    *state_r = tree;
    return rc;
}

static void
rpc_json_free_state(void *state)
{
    yajl_tree_free(state);
}

/* xenopsd never echoes the id, so any will do. */
static char *
rpc_json_request(const char *method, const char *params_json)
{
    return rpc_json_encode_request(method, params_json, 1);
}

static const struct rpc_codec rpc_codec_json = {
    .content_type = "application/json",
    .matches = rpc_json_matches,
    .decode = rpc_json_decode,
    .free_state = rpc_json_free_state,
    .encode_reply = rpc_json_encode_reply,
    .encode_request = rpc_json_request,
    .decode_reply = rpc_json_decode_reply,
};

static const struct rpc_codec *const rpc_codecs[] = {
    &rpc_codec_xml,
    &rpc_codec_json,
};

static const struct rpc_codec *
rpc_codec_pick(const char *content_type, const char *body, size_t len)
{
    size_t n = sizeof(rpc_codecs) / sizeof(rpc_codecs[0]);

    for (size_t i = 0; i + 1 < n; i++) {
        if (rpc_codecs[i]->matches(content_type, body, len))
            return rpc_codecs[i];
    }
    return rpc_codecs[n - 1];
}

/* A growable receive buffer; bytes past the current request (pipelining)
 * stay in it for the next one. */
struct rpc_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Read once, at most up to limit bytes held in total: bytes read (> 0),
 * 0 on EOF, XO_ETIMEDOUT or XO_EIO. */
static ssize_t
rpc_buf_fill(struct rpc_buf *b, int fd, size_t limit, int64_t deadline)
{
    ssize_t r;
    int rc;

    if (limit <= b->len)
        return XO_EIO;
    /* limit is already bounded by the header or body limit. */
    if (b->cap < limit) {
        b->cap = limit;
        b->data = xrealloc(b->data, b->cap);
    }
    for (;;) {
        rc = http_wait(fd, POLLIN, deadline);
        if (rc)
            return rc;
        r = recv(fd, b->data + b->len, limit - b->len, 0);
        if (r >= 0)
            break;
        if (errno != EINTR && errno != EAGAIN)
            return XO_EIO;
    }
    b->len += (size_t)r;
    return r;
}

static void
rpc_buf_consume(struct rpc_buf *b, size_t n)
{
    if (n == 0)
        return;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    /* An idle keep-alive connection should not pin a large body's buffer. */
    if (b->cap > 4 * RPC_HDR_MAX && b->len <= RPC_HDR_MAX) {
        b->cap = RPC_HDR_MAX;
        b->data = xrealloc(b->data, b->cap);
    }
}

/* ---- server ---- */

enum rpc_slot_state {
    RPC_SLOT_FREE = 0,
    RPC_SLOT_RUNNING,
    RPC_SLOT_DONE,      /* thread finished, waiting to be joined */
};

struct rpc_slot {
    enum rpc_slot_state state;
    pthread_t thread;
    int fd;             /* owned by the connection thread; -1 once closed */
};

struct rpc_server {
    char *path;
    size_t max_body;
    uid_t *allowed_uids;
    size_t n_allowed_uids;
    int io_timeout_ms;
    int idle_timeout_ms;
    const struct rpc_method *table;
    size_t n_methods;
    void *ctx;

    int listen_fd;
    dev_t sock_dev;     /* the socket file we created, so stop never */
    ino_t sock_ino;     /* unlinks a successor's */
    int wake_fds[2];    /* self-pipe: stop wakes the accept thread */
    pthread_t accept_thread;
    atomic_bool stopping;

    /* lock guards slots[] (state and fd). */
    pthread_mutex_t lock;
    pthread_cond_t slot_freed;  /* a connection thread finished */
    struct rpc_slot slots[RPC_MAX_CONNS];
};

struct rpc_conn {
    struct rpc_server *srv;
    struct rpc_slot *slot;
    int fd;
    uid_t uid;
    pid_t pid;
    struct rpc_buf buf;
};

/* What rpc_read_request understood of one request. */
struct rpc_http_req {
    int status;             /* 200 = dispatch; 0 = close quietly; else error */
    const char *why;        /* reason for a non-200 status, for the log */
    bool keep_alive;
    bool expect_continue;
    size_t head_len;
    size_t body_len;
    char content_type[64];
};

/* Request line: METHOD SP target SP HTTP/1.x. */
static void
rpc_parse_request_line(char *line, struct rpc_http_req *req)
{
    char *target = strchr(line, ' ');
    char *version = target ? strchr(target + 1, ' ') : NULL;

    if (!target || !version || version == target + 1 ||
        strchr(version + 1, ' ')) {
        req->status = 400;
        req->why = "malformed request line";
        return;
    }
    *target = '\0';
    if (strcmp(version + 1, "HTTP/1.1") == 0) {
        req->keep_alive = true;
    } else if (strcmp(version + 1, "HTTP/1.0") == 0) {
        req->keep_alive = false;
    } else {
        req->status = strncmp(version + 1, "HTTP/", 5) == 0 ? 505 : 400;
        req->why = "unsupported HTTP version";
        return;
    }
    if (strcmp(line, "POST") != 0) {
        req->status = 404;
        req->why = "method is not POST";
        return;
    }
    req->status = 200;
}

/* One header line into req; sets req->status on a refusal. */
static void
rpc_parse_header(struct rpc_server *srv, char *line,
                 struct rpc_http_req *req, struct http_framing *framing)
{
    const char *why = NULL;
    char *name, *value;
    int status;

    if (!http_split_header(line, &name, &value)) {
        req->status = 400;
        req->why = "malformed header line";
    } else if ((status = http_framing_header(name, value, srv->max_body,
                                             framing, &why))) {
        req->status = status;
        req->why = why;
    } else if (strcasecmp(name, "Connection") == 0) {
        if (http_has_token(value, "close"))
            req->keep_alive = false;
        else if (http_has_token(value, "keep-alive"))
            req->keep_alive = true;
    } else if (strcasecmp(name, "Content-Type") == 0) {
        xstrlcpy(req->content_type, value, sizeof(req->content_type));
    } else if (strcasecmp(name, "Expect") == 0) {
        req->expect_continue = strcasecmp(value, "100-continue") == 0;
    }
}

static void
rpc_parse_head(struct rpc_server *srv, const char *head, size_t len,
               struct rpc_http_req *req)
{
    char *copy = xstrndup(head, len);
    char *p = copy;
    struct http_framing framing = { false, 0 };
    char *line;

    if (memchr(head, '\0', len)) {
        req->status = 400;
        req->why = "NUL byte in header block";
        goto out;
    }
    line = http_next_line(&p);
    rpc_parse_request_line(line ? line : p, req);
    while (req->status == 200 && (line = http_next_line(&p)) && *line)
        rpc_parse_header(srv, line, req, &framing);
    req->body_len = framing.len;
    if (req->status == 200 && !framing.have_len) {
        req->status = 411;
        req->why = "Content-Length is required";
    }
out:
    free(copy);
}

/*
 * Read one request into c->buf: head_len header bytes, then body_len body
 * bytes. The idle limit applies until the first byte; from then on the
 * whole request must arrive within the I/O limit.
 */
static void
rpc_read_request(struct rpc_conn *c, struct rpc_http_req *req)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct rpc_server *srv = c->srv;
    int64_t deadline;
    size_t skip = 0;
    ssize_t r;

    memset(req, 0, sizeof(*req));
    /* Tolerate stray line ends between requests (RFC 9112 2.2). */
    while (skip < c->buf.len && (c->buf.data[skip] == '\r' ||
                                 c->buf.data[skip] == '\n'))
        skip++;
    rpc_buf_consume(&c->buf, skip);
    if (c->buf.len == 0) {
        r = rpc_buf_fill(&c->buf, c->fd, RPC_HDR_MAX,
                         http_deadline(srv->idle_timeout_ms));
        if (r <= 0) {
            req->why = r == XO_ETIMEDOUT ? "idle" : "closed by peer";
            return;
        }
    }
    deadline = http_deadline(srv->io_timeout_ms);
    while (!(req->head_len = http_header_end(c->buf.data, c->buf.len))) {
        if (c->buf.len >= RPC_HDR_MAX) {
            req->status = 431;
            req->why = "header block larger than 16 KiB";
            return;
        }
        r = rpc_buf_fill(&c->buf, c->fd, RPC_HDR_MAX, deadline);
        if (r <= 0)
            goto short_read;
    }
    rpc_parse_head(srv, c->buf.data, req->head_len, req);
    if (req->status != 200)
        return;
    /* curl waits a second for this before sending a larger body. */
    if (req->expect_continue && c->buf.len < req->head_len + req->body_len &&
        http_send_all(c->fd, cont, sizeof(cont) - 1, deadline)) {
        req->status = 0;
        req->why = "cannot send 100 Continue";
        return;
    }
    while (c->buf.len < req->head_len + req->body_len) {
        r = rpc_buf_fill(&c->buf, c->fd, req->head_len + req->body_len,
                         deadline);
        if (r <= 0)
            goto short_read;
    }
    return;
short_read:
    if (r == XO_ETIMEDOUT) {
        req->status = 408;
        req->why = "request not received in time";
    } else {
        req->status = 0;
        req->why = "truncated request";
    }
}

static bool
rpc_uid_allowed(const struct rpc_server *srv, uid_t uid)
{
    for (size_t i = 0; i < srv->n_allowed_uids; i++) {
        if (srv->allowed_uids[i] == uid)
            return true;
    }
    return false;
}

static const struct rpc_method *
rpc_lookup(const struct rpc_server *srv, const char *name)
{
    for (size_t i = 0; i < srv->n_methods; i++) {
        if (strcmp(srv->table[i].name, name) == 0)
            return &srv->table[i];
    }
    return NULL;
}

/* Log a refused request without its body; the detail text is bounded. */
static char *
rpc_refuse(const struct rpc_conn *c, int rc)
{
    char *err = xo_err_take_json(rc);

    LOG(WARN, "refused request from pid %d uid %u: %.256s", (int)c->pid,
        (unsigned)c->uid, err);
    return err;
}

/* Decode, check and run one request; returns the encoded reply body. */
static char *
rpc_dispatch(struct rpc_conn *c, const struct rpc_codec *codec,
             const char *body, size_t len)
{
    static struct yajl_val_s empty_params = { .type = yajl_t_object };
    struct rpc_server *srv = c->srv;
    const struct rpc_method *m;
    struct rpc_request req = { .peer_uid = c->uid };
    void *state = NULL;
    char *result = NULL;
    char *err = NULL;
    char *reply;
    int rc;

    if (!rpc_uid_allowed(srv, c->uid)) {
        rc = xo_err_internal("permission denied for uid %u",
                             (unsigned)c->uid);
        err = rpc_refuse(c, rc);
        goto out;
    }
    rc = codec->decode(body, len, &state, &req.method, &req.params);
    if (rc) {
        err = rpc_refuse(c, rc);
        goto out;
    }
    m = rpc_lookup(srv, req.method);
    if (!m) {
        rc = xo_err_internal_code(XO_EINVAL, "unknown method '%s'",
                                  req.method);
        err = rpc_refuse(c, rc);
        goto out;
    }
    if (!req.params)
        req.params = &empty_params;
    /* A detail left over from an earlier request must not be mistaken for
     * this handler's. */
    xo_err_clear();
    rc = m->fn(srv->ctx, &req, &result);
    if (rc) {
        free(result);
        result = NULL;
        err = xo_err_take_json(rc);
    }
out:
    reply = codec->encode_reply(result, err);
    if (state)
        codec->free_state(state);
    free(result);
    free(err);
    return reply;
}

/* Answer a framing failure with an error body, as the codec would word it. */
static void
rpc_send_http_error(struct rpc_conn *c, const struct rpc_http_req *req)
{
    const struct rpc_codec *codec = rpc_codec_pick(req->content_type, NULL,
                                                   0);
    char *err = NULL;
    char *body = NULL;
    int rc;

    LOG(WARN, "refused request from pid %d uid %u: http %d: %s", (int)c->pid,
        (unsigned)c->uid, req->status, req->why);
    if (req->status == 404) {
        http_write_response(c->fd, 404, NULL, NULL, true,
                            http_deadline(c->srv->io_timeout_ms));
        return;
    }
    rc = xo_err_internal_code(XO_EINVAL, "%s", req->why);
    err = xo_err_take_json(rc);
    body = codec->encode_reply(NULL, err);
    http_write_response(c->fd, req->status, codec->content_type, body, true,
                        http_deadline(c->srv->io_timeout_ms));
    free(body);
    free(err);
}

static void
rpc_conn_serve(struct rpc_conn *c)
{
    struct rpc_http_req req;
    const struct rpc_codec *codec;
    const char *body;
    char *reply;
    bool keep;

    for (;;) {
        rpc_read_request(c, &req);
        if (req.status == 0) {
            if (c->buf.len > 0)
                LOG(WARN, "refused request from pid %d uid %u: %s",
                    (int)c->pid, (unsigned)c->uid, req.why);
            return;
        }
        if (req.status != 200) {
            rpc_send_http_error(c, &req);
            return;
        }
        body = c->buf.data + req.head_len;
        codec = rpc_codec_pick(req.content_type, body, req.body_len);
        reply = rpc_dispatch(c, codec, body, req.body_len);
        keep = req.keep_alive && !atomic_load(&c->srv->stopping);
        if (http_write_response(c->fd, 200, codec->content_type, reply,
                                !keep, http_deadline(c->srv->io_timeout_ms)))
            keep = false;
        free(reply);
        if (!keep)
            return;
        rpc_buf_consume(&c->buf, req.head_len + req.body_len);
    }
}

static void *
rpc_conn_main(void *arg)
{
    struct rpc_conn *c = arg;
    struct rpc_server *srv = c->srv;

    rpc_conn_serve(c);
    /* Close under the lock: stop shuts fds down under it, and must never
     * hit a number the kernel already gave to someone else. */
    pthread_mutex_lock(&srv->lock);
    close(c->fd);
    c->slot->fd = -1;
    c->slot->state = RPC_SLOT_DONE;
    pthread_cond_broadcast(&srv->slot_freed);
    pthread_mutex_unlock(&srv->lock);
    free(c->buf.data);
    free(c);
    return NULL;
}

/* Join finished connection threads; called with srv->lock held. */
static void
rpc_reap(struct rpc_server *srv)
{
    for (size_t i = 0; i < RPC_MAX_CONNS; i++) {
        if (srv->slots[i].state == RPC_SLOT_DONE) {
            pthread_join(srv->slots[i].thread, NULL);
            srv->slots[i].state = RPC_SLOT_FREE;
        }
    }
}

static void
rpc_reject_busy(int fd, const struct ucred *cred)
{
    static const char busy[] =
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
        "Connection: close\r\n\r\n";

    LOG(WARN, "refused connection from pid %d uid %u: %d connections open",
        (int)cred->pid, (unsigned)cred->uid, RPC_MAX_CONNS);
    /* A fresh socket has room for this; never block the accept loop. */
    if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        LOGE(DEBUG, "cannot send 503");
    close(fd);
}

/* Hand an accepted connection to a thread, or refuse it. */
static void
rpc_accept_one(struct rpc_server *srv, int fd)
{
    struct ucred cred;
    socklen_t cred_len = sizeof(cred);
    struct rpc_slot *slot = NULL;
    struct rpc_conn *c;

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cred_len) < 0) {
        LOGE(WARN, "refused connection: cannot read peer credentials");
        close(fd);
        return;
    }
    pthread_mutex_lock(&srv->lock);
    /* A connection whose client already has its answer may still hold its
     * slot until its thread is scheduled: under bursts of short calls,
     * wait a little for one to finish before refusing (found by
     * bench/rpc with 8 clients). */
    for (int tries = 0; tries < 2 && !slot; tries++) {
        rpc_reap(srv);
        for (size_t i = 0; i < RPC_MAX_CONNS && !slot; i++) {
            if (srv->slots[i].state == RPC_SLOT_FREE)
                slot = &srv->slots[i];
        }
        if (!slot && tries == 0) {
            struct timespec dl;

            clock_gettime(CLOCK_REALTIME, &dl);
            dl.tv_nsec += RPC_SLOT_WAIT_MS * 1000000L;
            if (dl.tv_nsec >= 1000000000L) {
                dl.tv_sec++;
                dl.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&srv->slot_freed, &srv->lock, &dl);
        }
    }
    if (!slot) {
        pthread_mutex_unlock(&srv->lock);
        rpc_reject_busy(fd, &cred);
        return;
    }
    c = xcalloc(1, sizeof(*c));
    c->srv = srv;
    c->slot = slot;
    c->fd = fd;
    c->uid = cred.uid;
    c->pid = cred.pid;
    slot->fd = fd;
    slot->state = RPC_SLOT_RUNNING;
    errno = pthread_create(&slot->thread, NULL, rpc_conn_main, c);
    if (errno) {
        LOGE(WARN, "refused connection from pid %d: cannot start a thread",
             (int)cred.pid);
        slot->state = RPC_SLOT_FREE;
        slot->fd = -1;
        close(fd);
        free(c);
    }
    pthread_mutex_unlock(&srv->lock);
}

static void *
rpc_accept_main(void *arg)
{
    struct rpc_server *srv = arg;
    struct pollfd pfd[2] = {
        { .fd = srv->listen_fd, .events = POLLIN },
        { .fd = srv->wake_fds[0], .events = POLLIN },
    };
    int fd;

    while (!atomic_load(&srv->stopping)) {
        if (poll(pfd, 2, -1) < 0) {
            if (errno != EINTR)
                LOGE(ERROR, "poll on rpc socket failed");
            continue;
        }
        if (pfd[1].revents)
            break;
        if (!pfd[0].revents)
            continue;
        fd = accept4(srv->listen_fd, NULL, NULL,
                     SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            rpc_accept_one(srv, fd);
        } else if (errno == EMFILE || errno == ENFILE) {
            /* Out of descriptors: back off instead of spinning; the
             * pending client waits in the backlog. */
            LOGE(WARN, "cannot accept on '%s'", srv->path);
            poll(&pfd[1], 1, 100);
        } else if (errno != EINTR && errno != EAGAIN &&
                   errno != ECONNABORTED) {
            LOGE(WARN, "cannot accept on '%s'", srv->path);
        }
    }
    return NULL;
}

/* A socket file is stale when nobody accepts on it any more. */
static bool
rpc_socket_live(const struct sockaddr_un *addr)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    bool live;

    if (fd < 0)
        return false;
    live = connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) == 0 ||
           errno == EAGAIN;
    close(fd);
    return live;
}

static int
rpc_check_existing(const char *path, const struct sockaddr_un *addr)
{
    struct stat st;

    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        LOGE(ERROR, "cannot stat '%s'", path);
        return xo_err_internal("cannot stat '%s'", path);
    }
    if (!S_ISSOCK(st.st_mode)) {
        LOG(ERROR, "refusing to replace '%s': not a socket", path);
        return xo_err_internal_code(XO_EEXISTS,
                                    "refusing to replace '%s': not a socket",
                                    path);
    }
    if (rpc_socket_live(addr)) {
        LOG(ERROR, "'%s' is in use by a running server", path);
        return xo_err_already_exists("socket", path);
    }
    return 0;
}

/*
 * Create the listening socket at srv->path, mode 0600 from the moment it
 * is reachable: bind inside a fresh 0700 directory next to the target,
 * chmod, then rename into place (which also replaces a stale socket
 * atomically). umask would do it too, but it is process-wide and other
 * threads create files meanwhile.
 */
static int
rpc_listen(struct rpc_server *srv)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    struct sockaddr_un tmp = { .sun_family = AF_UNIX };
    char *dir = NULL;
    char *slash;
    bool made_dir = false;
    struct stat st;
    int fd = -1;
    int rc;

    if (xstrlcpy(addr.sun_path, srv->path, sizeof(addr.sun_path)) < 0) {
        LOG(ERROR, "socket path '%s' is too long", srv->path);
        rc = xo_err_internal_code(XO_EINVAL, "socket path '%s' is too long",
                                  srv->path);
        goto out;
    }
    rc = rpc_check_existing(srv->path, &addr);
    if (rc)
        goto out;
    slash = strrchr(srv->path, '/');
    dir = slash ? xasprintf("%.*s/.rpcXXXXXX", (int)(slash - srv->path),
                            srv->path)
                : xstrdup(".rpcXXXXXX");
    if (strlen(dir) + 2 >= sizeof(tmp.sun_path)) {
        LOG(ERROR, "socket path '%s' is too long", srv->path);
        rc = xo_err_internal_code(XO_EINVAL, "socket path '%s' is too long",
                                  srv->path);
        goto out;
    }
    if (!mkdtemp(dir)) {
        LOGE(ERROR, "cannot create a directory next to '%s'", srv->path);
        rc = xo_err_internal("cannot create a directory next to '%s'",
                             srv->path);
        goto out;
    }
    made_dir = true;
    snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s/s", dir);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&tmp, sizeof(tmp)) < 0 ||
        chmod(tmp.sun_path, 0600) < 0 ||
        listen(fd, RPC_LISTEN_BACKLOG) < 0 ||
        rename(tmp.sun_path, srv->path) < 0 || stat(srv->path, &st) < 0) {
        LOGE(ERROR, "cannot listen on '%s'", srv->path);
        rc = xo_err_internal("cannot listen on '%s'", srv->path);
        goto out;
    }
    srv->sock_dev = st.st_dev;
    srv->sock_ino = st.st_ino;
    srv->listen_fd = fd;
    fd = -1;
    rc = 0;
out:
    if (made_dir) {
        unlink(tmp.sun_path);
        rmdir(dir);
    }
    if (fd >= 0)
        close(fd);
    free(dir);
    return rc;
}

static void
rpc_server_free(struct rpc_server *srv)
{
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    if (srv->wake_fds[0] >= 0)
        close(srv->wake_fds[0]);
    if (srv->wake_fds[1] >= 0)
        close(srv->wake_fds[1]);
    pthread_cond_destroy(&srv->slot_freed);
    pthread_mutex_destroy(&srv->lock);
    free(srv->allowed_uids);
    free(srv->path);
    free(srv);
}

static struct rpc_server *
rpc_server_new(const struct rpc_server_config *cfg,
               const struct rpc_method *table, size_t n_methods, void *ctx)
{
    struct rpc_server *srv = xcalloc(1, sizeof(*srv));

    srv->path = xstrdup(cfg->path);
    srv->max_body = cfg->max_body ? cfg->max_body : RPC_DEFAULT_MAX_BODY;
    if (cfg->allowed_uids && cfg->n_allowed_uids) {
        srv->n_allowed_uids = cfg->n_allowed_uids;
        srv->allowed_uids = xcalloc(cfg->n_allowed_uids, sizeof(uid_t));
        memcpy(srv->allowed_uids, cfg->allowed_uids,
               cfg->n_allowed_uids * sizeof(uid_t));
    } else {
        srv->n_allowed_uids = 1;
        srv->allowed_uids = xcalloc(1, sizeof(uid_t));
    }
    srv->io_timeout_ms = cfg->io_timeout_ms > 0 ? cfg->io_timeout_ms
                                                : RPC_DEFAULT_IO_TIMEOUT_MS;
    srv->idle_timeout_ms = cfg->idle_timeout_ms > 0
                               ? cfg->idle_timeout_ms
                               : RPC_DEFAULT_IDLE_TIMEOUT_MS;
    srv->table = table;
    srv->n_methods = n_methods;
    srv->ctx = ctx;
    srv->listen_fd = -1;
    srv->wake_fds[0] = srv->wake_fds[1] = -1;
    atomic_init(&srv->stopping, false);
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->slot_freed, NULL);
    for (size_t i = 0; i < RPC_MAX_CONNS; i++)
        srv->slots[i].fd = -1;
    return srv;
}

int
rpc_server_start(const struct rpc_server_config *cfg,
                 const struct rpc_method *table, size_t n_methods,
                 void *ctx, struct rpc_server **srv_r)
{
    struct rpc_server *srv = NULL;
    int rc;

    *srv_r = NULL;
    if (!cfg || !cfg->path || !cfg->path[0]) {
        rc = xo_err_internal_code(XO_EINVAL, "rpc socket path is not set");
        goto out;
    }
    srv = rpc_server_new(cfg, table, n_methods, ctx);
    if (pipe2(srv->wake_fds, O_CLOEXEC | O_NONBLOCK) < 0) {
        LOGE(ERROR, "cannot create a pipe");
        rc = xo_err_internal("cannot create a pipe");
        goto out;
    }
    rc = rpc_listen(srv);
    if (rc)
        goto out;
    errno = pthread_create(&srv->accept_thread, NULL, rpc_accept_main, srv);
    if (errno) {
        LOGE(ERROR, "cannot start the rpc accept thread");
        rc = xo_err_internal("cannot start the rpc accept thread");
        unlink(srv->path);
        goto out;
    }
    LOG(INFO, "listening on '%s'", srv->path);
    *srv_r = srv;
    srv = NULL;
out:
    if (srv)
        rpc_server_free(srv);
    return rc;
}

void
rpc_server_stop(struct rpc_server *srv)
{
    pthread_t threads[RPC_MAX_CONNS];
    size_t n = 0;
    struct stat st;

    if (!srv)
        return;
    atomic_store(&srv->stopping, true);
    if (write(srv->wake_fds[1], "x", 1) < 0)
        LOGE(DEBUG, "cannot wake the rpc accept thread");
    pthread_join(srv->accept_thread, NULL);
    if (lstat(srv->path, &st) == 0 && st.st_dev == srv->sock_dev &&
        st.st_ino == srv->sock_ino)
        unlink(srv->path);
    /* Wake connections blocked in a read. Only the read side is shut: a
     * handler still running (DEBUG.shutdown itself, for one) can write its
     * reply, and then sees `stopping` and closes. Handlers bound their
     * waits. No new slot can appear: the accept thread is gone. */
    pthread_mutex_lock(&srv->lock);
    for (size_t i = 0; i < RPC_MAX_CONNS; i++) {
        if (srv->slots[i].state == RPC_SLOT_FREE)
            continue;
        if (srv->slots[i].fd >= 0)
            shutdown(srv->slots[i].fd, SHUT_RD);
        threads[n++] = srv->slots[i].thread;
        srv->slots[i].state = RPC_SLOT_FREE;
    }
    pthread_mutex_unlock(&srv->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join(threads[i], NULL);
    LOG(INFO, "stopped listening on '%s'", srv->path);
    rpc_server_free(srv);
}

/* ---- client ---- */

/* Every client failure is a transport failure (XO_EIO): logged once here,
 * with the same text as the wire detail. */
static int
rpc_client_fail(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
rpc_client_fail(const char *path, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = xvasprintf(fmt, ap);
    va_end(ap);
    LOG(WARN, "rpc call to '%s' failed: %s", path, msg);
    xo_err_internal_code(XO_EIO, "rpc call to '%s' failed: %s", path, msg);
    free(msg);
    return XO_EIO;
}

static int
rpc_client_connect(const char *path, int64_t deadline, int *fd_r)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int64_t limit = http_now_ms() + RPC_CLIENT_CONNECT_MAX_MS;
    int fd = -1;
    int rc;

    *fd_r = -1;
    if (deadline >= 0 && deadline < limit)
        limit = deadline;
    if (xstrlcpy(addr.sun_path, path, sizeof(addr.sun_path)) < 0) {
        rc = rpc_client_fail(path, "socket path is too long");
        goto out;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rc = rpc_client_fail(path, "cannot create a socket: %s",
                             strerror(errno));
        goto out;
    }
    /* A full backlog answers EAGAIN on a non-blocking Unix socket: retry
     * briefly until the deadline rather than fail a busy server's client. */
    while (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        if ((errno != EAGAIN && errno != EINTR) || http_now_ms() >= limit) {
            rc = rpc_client_fail(path, "cannot connect: %s",
                                 strerror(errno));
            goto out;
        }
        poll(NULL, 0, 5);
    }
    *fd_r = fd;
    fd = -1;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

/* Status line and Content-Length of a response head. */
static int
rpc_client_parse_head(const char *path, const char *head, size_t len,
                      size_t *body_len_r)
{
    bool has_len = false;
    int status = 0;

    if (http_parse_response_head(head, len, RPC_CLIENT_MAX_REPLY, &status,
                                 body_len_r, &has_len))
        return rpc_client_fail(path, "malformed reply head '%.64s'", head);
    if (status != 200)
        return rpc_client_fail(path, "server answered %d", status);
    if (!has_len)
        return rpc_client_fail(path, "reply lacks a Content-Length");
    return 0;
}

static int
rpc_client_short_read(const char *path, ssize_t r)
{
    return rpc_client_fail(path, "no complete reply: %s",
                           r == XO_ETIMEDOUT ? "timed out"
                                             : "connection closed");
}

/* Send the request and read the whole response into resp. */
static int
rpc_client_exchange(const char *path, int fd, const char *content_type,
                    const char *body, int64_t deadline, struct rpc_buf *resp,
                    size_t *head_len_r, size_t *body_len_r)
{
    char *head = NULL, *hdrs = NULL;
    size_t head_len;
    ssize_t r;
    int rc;

    hdrs = xasprintf("Content-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n", content_type, strlen(body));
    head = http_request_head("POST", "/", "localhost", hdrs);
    rc = http_send_all(fd, head, strlen(head), deadline);
    if (rc == 0)
        rc = http_send_all(fd, body, strlen(body), deadline);
    if (rc) {
        rc = rpc_client_fail(path, "cannot send the request: %s",
                             xo_strerror(rc));
        goto out;
    }
    while (!(head_len = http_header_end(resp->data, resp->len))) {
        if (resp->len >= RPC_HDR_MAX) {
            rc = rpc_client_fail(path, "reply header block too large");
            goto out;
        }
        r = rpc_buf_fill(resp, fd, RPC_HDR_MAX, deadline);
        if (r <= 0) {
            rc = rpc_client_short_read(path, r);
            goto out;
        }
    }
    rc = rpc_client_parse_head(path, resp->data, head_len, body_len_r);
    if (rc)
        goto out;
    while (resp->len < head_len + *body_len_r) {
        r = rpc_buf_fill(resp, fd, head_len + *body_len_r, deadline);
        if (r <= 0) {
            rc = rpc_client_short_read(path, r);
            goto out;
        }
    }
    *head_len_r = head_len;
out:
    free(hdrs);
    free(head);
    return rc;
}

/* One call in the given encoding; the contract is rpc_call's. */
static int
rpc_call_codec(const struct rpc_codec *codec, const char *path,
               const char *method, const char *params_json, int timeout_ms,
               char **result_r, char **error_r)
{
    struct rpc_buf resp = { NULL, 0, 0 };
    int64_t deadline;
    yajl_val params = NULL;
    char *body = NULL;
    size_t head_len = 0;
    size_t body_len = 0;
    int fd = -1;
    int rc;

    *result_r = NULL;
    *error_r = NULL;
    deadline = http_deadline(timeout_ms == 0 ? RPC_CLIENT_DEFAULT_TIMEOUT_MS
                                            : timeout_ms);
    if (params_json) {
        rc = json_parse(params_json, strlen(params_json), &params);
        if (rc)
            goto out;
        if (!YAJL_IS_OBJECT(params)) {
            rc = xo_err_internal_code(XO_EINVAL,
                                      "call parameters must be an object");
            goto out;
        }
    }
    body = codec->encode_request(method, params_json);
    if (!body) {
        rc = xo_err_internal_code(XO_EINVAL, "cannot encode a call to '%s'",
                                  method);
        goto out;
    }
    rc = rpc_client_connect(path, deadline, &fd);
    if (rc)
        goto out;
    rc = rpc_client_exchange(path, fd, codec->content_type, body, deadline,
                             &resp, &head_len, &body_len);
    if (rc)
        goto out;
    rc = codec->decode_reply(resp.data + head_len, body_len, result_r,
                             error_r);
    if (rc)
        rc = rpc_client_fail(path, "malformed %s reply to '%s'",
                             codec->content_type, method);
out:
    if (fd >= 0)
        close(fd);
    yajl_tree_free(params);
    free(resp.data);
    free(body);
    return rc;
}

int
rpc_call(const char *path, const char *method, const char *params_json,
         int timeout_ms, char **result_r, char **error_r)
{
    return rpc_call_codec(&rpc_codec_json, path, method, params_json,
                          timeout_ms, result_r, error_r);
}

int
rpc_call_xml(const char *path, const char *method, const char *params_json,
             int timeout_ms, char **result_r, char **error_r)
{
    return rpc_call_codec(&rpc_codec_xml, path, method, params_json,
                          timeout_ms, result_r, error_r);
}
