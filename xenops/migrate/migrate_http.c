/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * A receive, as it reaches us over TCP:
 *
 *   PUT /services/xenops/migrate/vm/<tmp-id>?token=<t> HTTP/1.1
 *   Cookie: instance_id=..; final_id=<id>; dbg=..; mem_migration=1
 *   <blank line>
 *                      <- HTTP/1.1 200 OK  (migrate_http_send_ok)
 *   ... from here the socket is raw: handshakes and streams ...
 *
 * The listener parses the head (bounded, with a deadline), checks the
 * token, and calls the route on a thread of its own with the socket.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate_http.h"
#include "rpc/rpc.h"
#include "rpc/rpc_json.h"
#include "util/errors.h"
#include "util/http.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define HEAD_TIMEOUT_MS 10000
#define FORWARD_MSG_MAX (64 * 1024)
#define RPC_REPLY_MAX (64 * 1024 * 1024)

/*
 * A peer that vanishes without closing (the link is cut, the host is
 * gone) must not hold a migration for TCP's default of about 15 minutes
 * of retransmissions, nor for the 5-minute handshake waits: unacknowledged
 * data fails the socket after TCP_USER_TIMEOUT, and an idle one (a side
 * waiting for a handshake while the other attaches disks) is probed by
 * keepalives. A live peer's kernel answers the probes however long its
 * daemon takes.
 */
#define TCP_DEAD_AFTER_MS 8000
#define TCP_KEEPIDLE_S 3
#define TCP_KEEPINTVL_S 1
#define TCP_KEEPCNT_N 5

/* ---- small I/O helpers ---- */

/* Options of every migration TCP connection (either end). */
static void
tcp_tune(int fd)
{
    int one = 1, idle = TCP_KEEPIDLE_S, intvl = TCP_KEEPINTVL_S;
    int cnt = TCP_KEEPCNT_N;
    unsigned int user = TCP_DEAD_AFTER_MS;

    /* Best effort: a connection without them still works. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl,
                   sizeof(intvl)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) < 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user,
                   sizeof(user)) < 0)
        LOG(DEBUG, "cannot set the dead-peer timeouts of a migration "
            "connection");
}

/*
 * Read an HTTP head (through the blank line), one byte at a time: right
 * after it the socket carries raw handshakes and streams, and not one byte
 * of those may be consumed here. Heads are a few hundred bytes.
 * Returns 0, XO_EINVAL (too long), XO_EIO (closed), XO_ETIMEDOUT.
 */
static int
read_head(int fd, int64_t deadline, char **head_r)
{
    char *buf = xmalloc(MIGRATE_HTTP_HEAD_MAX + 1);
    size_t len = 0;
    int rc;

    *head_r = NULL;
    for (;;) {
        if (len >= 4 && memcmp(buf + len - 4, "\r\n\r\n", 4) == 0)
            break;
        if (len >= MIGRATE_HTTP_HEAD_MAX) {
            rc = XO_EINVAL;
            goto out;
        }
        rc = http_recv_exact(fd, buf + len, 1, deadline);
        if (rc)
            goto out;
        len++;
    }
    buf[len] = '\0';
    *head_r = buf;
    buf = NULL;
    rc = 0;
out:
    free(buf);
    return rc;
}

/* ---- requests ---- */

void
migrate_http_req_dispose(struct migrate_http_req *req)
{
    free(req->path);
    free(req->query);
    for (size_t i = 0; i < req->n_cookies; i++) {
        free(req->cookies[i].key);
        free(req->cookies[i].value);
    }
    free(req->cookies);
    free(req->body);
    memset(req, 0, sizeof(*req));
}

const char *
migrate_http_cookie(const struct migrate_http_req *req, const char *key)
{
    for (size_t i = 0; i < req->n_cookies; i++)
        if (strcmp(req->cookies[i].key, key) == 0)
            return req->cookies[i].value;
    return NULL;
}

static int
add_cookie(struct migrate_http_req *req, const char *k, size_t kl,
           const char *v, size_t vl)
{
    if (req->n_cookies >= MIGRATE_HTTP_MAX_COOKIES)
        return XO_EINVAL;
    req->cookies = xrealloc(req->cookies,
                            (req->n_cookies + 1) * sizeof(*req->cookies));
    req->cookies[req->n_cookies].key = xstrndup(k, kl);
    req->cookies[req->n_cookies].value = xstrndup(v, vl);
    req->n_cookies++;
    return 0;
}

/* "a=b; c=d" */
static int
parse_cookies(struct migrate_http_req *req, const char *s)
{
    while (*s) {
        const char *end, *eq;

        while (*s == ' ' || *s == ';')
            s++;
        if (!*s)
            break;
        end = s + strcspn(s, ";");
        eq = memchr(s, '=', (size_t)(end - s));
        if (!eq || eq == s)
            return XO_EINVAL;
        if (add_cookie(req, s, (size_t)(eq - s), eq + 1,
                       (size_t)(end - eq - 1)))
            return XO_EINVAL;
        s = end;
    }
    return 0;
}

/* One header line: cookies, and the framing rules of http.h (the route
 * that reads a body bounds it: migrate_http_serve_rpc answers 413). */
static int
parse_header(struct migrate_http_req *req, char *line,
             struct http_framing *framing)
{
    const char *why = NULL;
    char *name, *value;

    if (!http_split_header(line, &name, &value))
        return XO_EINVAL;
    if (http_framing_header(name, value, (size_t)LLONG_MAX, framing,
                            &why)) {
        LOG(WARN, "refused a migration request: %s", why);
        return XO_EINVAL;
    }
    if (strcasecmp(name, "Cookie") == 0 && parse_cookies(req, value))
        return XO_EINVAL;
    return 0;
}

/* Parse "METHOD target HTTP/1.x\r\nHeaders...\r\n\r\n". */
static int
parse_head(char *head, struct migrate_http_req *req)
{
    struct http_framing framing = { false, 0 };
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char *sp1, *sp2, *q;

    if (!line)
        return XO_EINVAL;
    sp1 = strchr(line, ' ');
    sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || (size_t)(sp1 - line) >= sizeof(req->method) ||
        strncmp(sp2 + 1, "HTTP/1.", 7) != 0)
        return XO_EINVAL;
    memcpy(req->method, line, (size_t)(sp1 - line));
    req->method[sp1 - line] = '\0';
    *sp2 = '\0';
    q = strchr(sp1 + 1, '?');
    if (q) {
        *q = '\0';
        req->query = xstrdup(q + 1);
    } else {
        req->query = xstrdup("");
    }
    req->path = xstrdup(sp1 + 1);
    if (req->path[0] != '/')
        return XO_EINVAL;
    req->content_length = -1;
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        if (parse_header(req, line, &framing))
            return XO_EINVAL;
    }
    if (framing.have_len)
        req->content_length = (long long)framing.len;
    return 0;
}

/* Constant time in the length of the expected token. */
static bool
token_equal(const char *expected, const char *given, size_t given_len)
{
    size_t n = strlen(expected);
    unsigned char diff = (unsigned char)(n != given_len);

    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(expected[i] ^
                                (i < given_len ? given[i] : 0));
    return diff == 0;
}

/* Find token=<v> in the raw query. */
static bool
query_has_token(const char *query, const char *token)
{
    const char *p = query;

    while (*p) {
        const char *end = p + strcspn(p, "&");

        if (strncmp(p, "token=", 6) == 0)
            return token_equal(token, p + 6, (size_t)(end - p - 6));
        p = *end ? end + 1 : end;
    }
    return false;
}

int
migrate_http_send_status(int fd, int status, const char *reason)
{
    char *msg = xasprintf("HTTP/1.1 %d %s\r\nContent-Length: 0\r\n"
                          "Connection: close\r\n\r\n", status, reason);
    int rc = http_send_all(fd, msg, strlen(msg),
                           http_deadline(HEAD_TIMEOUT_MS));

    free(msg);
    return rc;
}

int
migrate_http_serve_rpc(int fd, const struct migrate_http_req *req,
                       const struct rpc_method *table, size_t n, void *ctx,
                       size_t max_body)
{
    int64_t deadline = http_now_ms() + HEAD_TIMEOUT_MS;
    struct rpc_request rreq;
    const char *method = NULL;
    yajl_val tree = NULL, params = NULL;
    char *body = NULL, *result = NULL, *err = NULL, *reply = NULL, *head;
    rpc_handler fn = NULL;
    int rc;

    if (req->content_length < 0 || (size_t)req->content_length > max_body) {
        LOG(WARN, "migration listener: RPC without a usable length");
        return migrate_http_send_status(fd, req->content_length < 0 ? 411
                                                                    : 413,
                                        "Bad Length");
    }
    body = xmalloc((size_t)req->content_length + 1);
    rc = http_recv_exact(fd, body, (size_t)req->content_length, deadline);
    if (rc)
        goto out;
    rc = rpc_json_decode_request(body, (size_t)req->content_length, &tree,
                                 &method, &params);
    for (size_t i = 0; !rc && i < n; i++)
        if (strcmp(table[i].name, method) == 0)
            fn = table[i].fn;
    if (!rc && !fn)
        rc = xo_err_internal_code(XO_EINVAL, "unknown method '%s'", method);
    if (!rc) {
        static struct yajl_val_s empty = { .type = yajl_t_object };

        memset(&rreq, 0, sizeof(rreq));
        rreq.method = method;
        rreq.params = params ? params : &empty;
        rreq.peer_uid = 0;
        rc = fn(ctx, &rreq, &result);
    }
    if (rc)
        err = xo_err_take_json(rc);
    reply = rpc_json_encode_reply(rc ? NULL : result, err);
    head = xasprintf("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                     strlen(reply));
    rc = http_send_all(fd, head, strlen(head), deadline);
    if (!rc)
        rc = http_send_all(fd, reply, strlen(reply), deadline);
    free(head);
out:
    yajl_tree_free(tree);
    free(body);
    free(result);
    free(err);
    free(reply);
    return rc;
}

int
migrate_http_send_ok(int fd)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\n\r\n";

    return http_send_all(fd, ok, sizeof(ok) - 1,
                         http_deadline(HEAD_TIMEOUT_MS));
}

/* ---- listeners ---- */

enum listener_kind { LISTEN_TCP, LISTEN_FORWARDED };

struct migrate_listener {
    enum listener_kind kind;
    int fd;
    int wake[2];
    char *token;
    char *path;                 /* forwarded socket path */
    int port;
    migrate_route_fn route;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t idle;
    int active;                 /* connection threads running */
    atomic_bool stopping;
};

struct conn {
    struct migrate_listener *l;
    int fd;
    struct migrate_http_req req;
};

static void
conn_done(struct migrate_listener *l)
{
    pthread_mutex_lock(&l->lock);
    l->active--;
    pthread_cond_broadcast(&l->idle);
    pthread_mutex_unlock(&l->lock);
}

/* TCP: read and check the head, then route. */
static void *
tcp_conn_main(void *arg)
{
    struct conn *c = arg;
    struct migrate_listener *l = c->l;
    char *head = NULL;
    int rc;

    rc = read_head(c->fd, http_now_ms() + HEAD_TIMEOUT_MS, &head);
    if (!rc)
        rc = parse_head(head, &c->req);
    if (rc) {
        LOG(WARN, "migration listener: bad request (%s)", xo_strerror(rc));
        if (rc == XO_EINVAL)
            migrate_http_send_status(c->fd, 400, "Bad Request");
        close(c->fd);
    } else if (!query_has_token(c->req.query, l->token)) {
        LOG(WARN, "migration listener: refused '%s %s': missing or wrong "
            "token", c->req.method, c->req.path);
        migrate_http_send_status(c->fd, 403, "Forbidden");
        close(c->fd);
    } else {
        l->route(l->ctx, c->fd, &c->req);
    }
    free(head);
    migrate_http_req_dispose(&c->req);
    free(c);
    conn_done(l);
    return NULL;
}

/* Forwarded: one message with the fd and the request JSON. */
static int
recv_forwarded(int ctl, int *fd_r, char **json_r)
{
    char *buf = xmalloc(FORWARD_MSG_MAX + 1);
    char cbuf[CMSG_SPACE(sizeof(int))];
    struct iovec iov = { buf, FORWARD_MSG_MAX };
    struct msghdr msg;
    struct cmsghdr *cm;
    size_t len = 0;
    ssize_t n;
    int fd = -1;

    *fd_r = -1;
    *json_r = NULL;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    if (http_wait(ctl, POLLIN, http_now_ms() + HEAD_TIMEOUT_MS) ||
        (n = recvmsg(ctl, &msg, MSG_CMSG_CLOEXEC)) <= 0)
        goto bad;
    for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(&fd, CMSG_DATA(cm), sizeof(int));
    }
    len = (size_t)n;
    /* The JSON may span several reads after the first message. */
    while (len < FORWARD_MSG_MAX) {
        if (http_wait(ctl, POLLIN, http_now_ms() + 200))
            break;
        n = recv(ctl, buf + len, FORWARD_MSG_MAX - len, MSG_DONTWAIT);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    if (fd < 0 || (msg.msg_flags & MSG_CTRUNC))
        goto bad;
    buf[len] = '\0';
    *fd_r = fd;
    *json_r = buf;
    return 0;
bad:
    if (fd >= 0)
        close(fd);
    free(buf);
    return XO_EINVAL;
}

/* {"path": s, "query": {k: v}, "cookie": {k: v}, "body": s?} */
static int
parse_forwarded(const char *json, struct migrate_http_req *req)
{
    yajl_val t = NULL, cookie, query;
    const char *path, *body;
    int rc = json_parse(json, strlen(json), &t);

    if (rc)
        goto out;
    path = json_get_str(t, "path");
    if (!path || path[0] != '/') {
        rc = XO_EINVAL;
        goto out;
    }
    xstrlcpy(req->method, "PUT", sizeof(req->method));
    req->path = xstrdup(path);
    req->query = xstrdup("");
    cookie = json_get(t, "cookie");
    for (size_t i = 0; cookie && YAJL_IS_OBJECT(cookie) &&
                       i < cookie->u.object.len; i++) {
        yajl_val v = cookie->u.object.values[i];
        const char *k = cookie->u.object.keys[i];

        if (!YAJL_IS_STRING(v) ||
            add_cookie(req, k, strlen(k), v->u.string, strlen(v->u.string))) {
            rc = XO_EINVAL;
            goto out;
        }
    }
    query = json_get(t, "query");
    (void)query;    /* xapi passes session_id etc.; nothing we need */
    body = json_get_str(t, "body");
    if (body) {
        req->body = xstrdup(body);
        req->body_len = strlen(body);
    }
out:
    if (rc)
        xo_err_clear();
    yajl_tree_free(t);
    return rc;
}

static void *
fwd_conn_main(void *arg)
{
    struct conn *c = arg;
    struct migrate_listener *l = c->l;
    char *json = NULL;
    int fd = -1;

    if (recv_forwarded(c->fd, &fd, &json) || parse_forwarded(json,
                                                            &c->req)) {
        LOG(WARN, "forwarded socket: malformed hand-over refused");
        if (fd >= 0) {
            migrate_http_send_status(fd, 400, "Bad Request");
            close(fd);
        }
    } else {
        /* xapi hands over the TCP connection from the sender. */
        tcp_tune(fd);
        l->route(l->ctx, fd, &c->req);
    }
    close(c->fd);
    free(json);
    migrate_http_req_dispose(&c->req);
    free(c);
    conn_done(l);
    return NULL;
}

static void *
accept_main(void *arg)
{
    struct migrate_listener *l = arg;
    struct pollfd p[2] = { { l->fd, POLLIN, 0 }, { l->wake[0], POLLIN, 0 } };

    while (!atomic_load(&l->stopping)) {
        struct conn *c;
        pthread_t th;
        int fd;

        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        if (l->kind == LISTEN_FORWARDED) {
            struct ucred cred;
            socklen_t cl = sizeof(cred);

            /* Only root (xapi) may hand over connections. */
            if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &cl) < 0 ||
                cred.uid != 0) {
                LOG(WARN, "forwarded socket: refused a non-root peer");
                close(fd);
                continue;
            }
        } else {
            tcp_tune(fd);
        }
        pthread_mutex_lock(&l->lock);
        if (l->active >= MIGRATE_HTTP_MAX_CONNS) {
            pthread_mutex_unlock(&l->lock);
            LOG(WARN, "migration listener: %d connections already; "
                "refusing one", MIGRATE_HTTP_MAX_CONNS);
            migrate_http_send_status(fd, 503, "Service Unavailable");
            close(fd);
            continue;
        }
        l->active++;
        pthread_mutex_unlock(&l->lock);
        c = xcalloc(1, sizeof(*c));
        c->l = l;
        c->fd = fd;
        if (pthread_create(&th, NULL, l->kind == LISTEN_TCP ? tcp_conn_main
                                                            : fwd_conn_main,
                           c) != 0) {
            LOG(ERROR, "cannot start a migration connection thread");
            close(fd);
            free(c);
            conn_done(l);
            continue;
        }
        pthread_detach(th);
    }
    return NULL;
}

static struct migrate_listener *
listener_new(enum listener_kind kind, migrate_route_fn route, void *ctx)
{
    struct migrate_listener *l = xcalloc(1, sizeof(*l));

    l->kind = kind;
    l->fd = -1;
    l->wake[0] = l->wake[1] = -1;
    l->route = route;
    l->ctx = ctx;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->idle, NULL);
    return l;
}

static int
listener_run(struct migrate_listener *l)
{
    if (pipe2(l->wake, O_CLOEXEC) < 0 ||
        pthread_create(&l->thread, NULL, accept_main, l) != 0) {
        LOGE(ERROR, "cannot start the migration listener");
        return xo_err_internal_code(XO_EIO, "cannot start listener");
    }
    return 0;
}

static void
listener_free(struct migrate_listener *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->wake[0] >= 0)
        close(l->wake[0]);
    if (l->wake[1] >= 0)
        close(l->wake[1]);
    pthread_cond_destroy(&l->idle);
    pthread_mutex_destroy(&l->lock);
    free(l->token);
    free(l->path);
    free(l);
}

/* "host:port", "[v6]:port" -> host, port (malloc'd). */
static int
split_host_port(const char *addr, char **host_r, char **port_r)
{
    const char *colon;

    if (addr[0] == '[') {
        const char *close_br = strchr(addr, ']');

        if (!close_br || close_br[1] != ':')
            return XO_EINVAL;
        *host_r = xstrndup(addr + 1, (size_t)(close_br - addr - 1));
        *port_r = xstrdup(close_br + 2);
        return 0;
    }
    colon = strrchr(addr, ':');
    if (!colon || colon == addr || !colon[1])
        return XO_EINVAL;
    *host_r = xstrndup(addr, (size_t)(colon - addr));
    *port_r = xstrdup(colon + 1);
    return 0;
}

int
migrate_listener_start(const char *addr, const char *token,
                       migrate_route_fn route, void *ctx,
                       struct migrate_listener **l_r)
{
    struct migrate_listener *l = listener_new(LISTEN_TCP, route, ctx);
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char *host = NULL, *port = NULL;
    int one = 1, rc;

    *l_r = NULL;
    if (!token || !token[0] || split_host_port(addr, &host, &port)) {
        rc = xo_err_internal_code(XO_EINVAL, "bad migration listener "
                                  "address or empty token");
        goto out;
    }
    l->token = xstrdup(token);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(host, port, &hints, &ai) != 0) {
        rc = xo_err_internal_code(XO_EINVAL, "cannot parse '%s'", addr);
        goto out;
    }
    l->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l->fd < 0 ||
        setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(l->fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(l->fd, 64) < 0 ||
        getsockname(l->fd, (struct sockaddr *)&ss, &sl) < 0) {
        LOGE(ERROR, "cannot listen on '%s'", addr);
        rc = xo_err_internal_code(XO_EIO, "cannot listen on %s", addr);
        goto out;
    }
    l->port = ntohs(ss.ss_family == AF_INET6
                        ? ((struct sockaddr_in6 *)&ss)->sin6_port
                        : ((struct sockaddr_in *)&ss)->sin_port);
    rc = listener_run(l);
    if (rc)
        goto out;
    LOG(INFO, "migration listener on '%s' (port %d)", addr, l->port);
    *l_r = l;
    l = NULL;
out:
    if (ai)
        freeaddrinfo(ai);
    if (l)
        listener_free(l);
    free(host);
    free(port);
    return rc;
}

int
migrate_listener_port(struct migrate_listener *l)
{
    return l->port;
}

int
migrate_forwarded_start(const char *path, migrate_route_fn route, void *ctx,
                        struct migrate_listener **l_r)
{
    struct migrate_listener *l = listener_new(LISTEN_FORWARDED, route, ctx);
    struct sockaddr_un sa;
    struct stat st;
    mode_t old;
    int r, rc;

    *l_r = NULL;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (xstrlcpy(sa.sun_path, path, sizeof(sa.sun_path))) {
        rc = xo_err_internal_code(XO_EINVAL, "socket path too long");
        goto out;
    }
    /* Replace a stale socket, never anything else. */
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    l->path = xstrdup(path);
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    old = umask(0177);
    r = l->fd < 0 ? -1 : bind(l->fd, (struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0 || listen(l->fd, 16) < 0) {
        LOGE(ERROR, "cannot listen on '%s'", path);
        rc = xo_err_internal_code(XO_EIO, "cannot listen on %s", path);
        goto out;
    }
    rc = listener_run(l);
    if (rc)
        goto out;
    *l_r = l;
    l = NULL;
out:
    if (l)
        listener_free(l);
    return rc;
}

void
migrate_listener_stop(struct migrate_listener *l)
{
    if (!l)
        return;
    atomic_store(&l->stopping, true);
    if (write(l->wake[1], "x", 1) < 0)
        LOGE(DEBUG, "wake of the migration listener");
    pthread_join(l->thread, NULL);
    pthread_mutex_lock(&l->lock);
    while (l->active > 0)
        pthread_cond_wait(&l->idle, &l->lock);
    pthread_mutex_unlock(&l->lock);
    if (l->path)
        unlink(l->path);
    listener_free(l);
}

/* ---- sender ---- */

void
migrate_url_dispose(struct migrate_url *u)
{
    free(u->host);
    free(u->port);
    free(u->path);
    free(u->query);
    memset(u, 0, sizeof(*u));
}

int
migrate_url_parse(const char *url, struct migrate_url *u)
{
    const char *p, *slash, *q;
    char *hostport = NULL;
    int rc = 0;

    memset(u, 0, sizeof(*u));
    if (strncmp(url, "http://", 7) != 0 || strlen(url) > 2048) {
        rc = xo_err_internal_code(XO_EINVAL, "xenops_url must be "
                                  "http://host:port/path");
        goto out;
    }
    p = url + 7;
    slash = strchr(p, '/');
    hostport = slash ? xstrndup(p, (size_t)(slash - p)) : xstrdup(p);
    if (strchr(hostport, '@') ||
        split_host_port(hostport, &u->host, &u->port)) {
        rc = xo_err_internal_code(XO_EINVAL, "xenops_url needs host:port");
        goto out;
    }
    slash = slash ? slash : "/";
    q = strchr(slash, '?');
    u->path = q ? xstrndup(slash, (size_t)(q - slash)) : xstrdup(slash);
    u->query = xstrdup(q ? q + 1 : "");
    /* The path and query end up in a request line: no spaces or CR/LF. */
    if (strpbrk(u->path, " \r\n\t") || strpbrk(u->query, " \r\n\t"))
        rc = xo_err_internal_code(XO_EINVAL, "bad characters in "
                                  "xenops_url");
out:
    free(hostport);
    if (rc)
        migrate_url_dispose(u);
    return rc;
}

int
migrate_http_connect(const struct migrate_url *u, int timeout_ms, int *fd_r)
{
    struct addrinfo hints, *ai = NULL;
    int64_t deadline = http_now_ms() + timeout_ms;
    int fd = -1, err = 0;
    socklen_t el = sizeof(err);
    int rc = 0;

    *fd_r = -1;
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    if (getaddrinfo(u->host, u->port, &hints, &ai) != 0) {
        rc = xo_err_internal_code(XO_EINVAL, "cannot parse address '%s'",
                                  u->host);
        goto out;
    }
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK,
                0);
    if (fd < 0 || (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 &&
                   errno != EINPROGRESS) ||
        http_wait(fd, POLLOUT, deadline) ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err) {
        LOG(ERROR, "cannot connect to '%s:%s'", u->host, u->port);
        rc = xo_err_internal_code(XO_EIO, "cannot connect to %s:%s",
                                  u->host, u->port);
        goto out;
    }
    /* Blocking from here; every read and write still has a deadline. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    tcp_tune(fd);
    *fd_r = fd;
    fd = -1;
out:
    if (fd >= 0)
        close(fd);
    if (ai)
        freeaddrinfo(ai);
    return rc;
}

/* "HTTP/1.1 200 ..." -> 200 */
/* The status of a response head read by read_head, with its body length
 * (*has_len false if none). -1 when the head is malformed or refused. */
static int
head_status(const char *head, size_t max_body, size_t *len_r,
            bool *has_len_r)
{
    int status;

    if (http_parse_response_head(head, strlen(head), max_body, &status,
                                 len_r, has_len_r))
        return -1;
    return status;
}

int
migrate_http_put(int fd, const struct migrate_url *u, const char *suffix,
                 const struct migrate_kv *cookies, size_t n_cookies,
                 int timeout_ms)
{
    int64_t deadline = http_now_ms() + timeout_ms;
    char *req, *head = NULL, *cookie = xstrdup(""), *target, *hdrs;
    size_t len;
    bool has_len;
    int rc, status;

    for (size_t i = 0; i < n_cookies; i++) {
        char *next = xasprintf("%s%s%s=%s", cookie, i ? "; " : "",
                               cookies[i].key, cookies[i].value);

        free(cookie);
        cookie = next;
    }
    target = xasprintf("%s%s%s%s", u->path, suffix, u->query[0] ? "?" : "",
                       u->query);
    hdrs = xasprintf("Cookie: %s\r\nConnection: keep-alive\r\n", cookie);
    req = http_request_head("PUT", target, u->host, hdrs);
    rc = http_send_all(fd, req, strlen(req), deadline);
    if (rc)
        goto out;
    rc = read_head(fd, deadline, &head);
    if (rc)
        goto out;
    status = head_status(head, SIZE_MAX, &len, &has_len);
    if (status != 200) {
        LOG(ERROR, "receiver answered %d to PUT '%s%s'", status, u->path,
            suffix);
        rc = xo_err_internal("receiver refused %s%s (HTTP %d)", u->path,
                             suffix, status);
    }
out:
    if (rc && rc != XO_EFAIL)
        rc = xo_err_internal_code(XO_EIO, "migration channel to %s:%s "
                                  "failed: %s", u->host, u->port,
                                  xo_strerror(rc));
    free(req);
    free(head);
    free(cookie);
    free(target);
    free(hdrs);
    return rc;
}

/* POST body to the URL on fd and read the whole reply body. */
static int
rpc_exchange(int fd, const struct migrate_url *u, const char *body,
             int64_t deadline, char **reply_r, size_t *len_r)
{
    char *target, *hdrs, *req, *head = NULL, *reply = NULL;
    size_t clen = 0;
    bool has_len = false;
    int rc;

    target = xasprintf("%s%s%s", u->path, u->query[0] ? "?" : "",
                       u->query);
    hdrs = xasprintf("Content-Type: application/json\r\nContent-Length: "
                     "%zu\r\nConnection: close\r\n", strlen(body));
    req = http_request_head("POST", target, u->host, hdrs);
    rc = http_send_all(fd, req, strlen(req), deadline);
    if (!rc)
        rc = http_send_all(fd, body, strlen(body), deadline);
    if (!rc)
        rc = read_head(fd, deadline, &head);
    if (!rc && (head_status(head, RPC_REPLY_MAX, &clen, &has_len) != 200 ||
                !has_len))
        rc = XO_EIO;
    if (!rc) {
        reply = xmalloc(clen + 1);
        rc = http_recv_exact(fd, reply, clen, deadline);
    }
    if (!rc) {
        reply[clen] = '\0';
        *reply_r = reply;
        *len_r = clen;
        reply = NULL;
    }
    free(reply);
    free(head);
    free(req);
    free(hdrs);
    free(target);
    return rc;
}

int
migrate_http_rpc(const struct migrate_url *u, const char *method,
                 const char *params_json, int timeout_ms, char **result_r,
                 char **error_r)
{
    int64_t deadline = http_now_ms() + timeout_ms;
    char *body = NULL, *reply = NULL;
    size_t len = 0;
    yajl_val t = NULL, res, err;
    int fd = -1, rc;

    *result_r = NULL;
    *error_r = NULL;
    body = rpc_json_encode_request(method, params_json, 1);
    if (!body) {
        rc = xo_err_internal_code(XO_EINVAL, "bad parameters for %s",
                                  method);
        goto out;
    }
    rc = migrate_http_connect(u, timeout_ms, &fd);
    if (rc)
        goto out;
    rc = rpc_exchange(fd, u, body, deadline, &reply, &len);
    if (!rc)
        rc = json_parse(reply, len, &t);
    if (rc) {
        LOG(ERROR, "remote call '%s' to '%s:%s' failed", method, u->host,
            u->port);
        rc = xo_err_internal_code(XO_EIO, "remote call %s to %s:%s failed",
                                  method, u->host, u->port);
        goto out;
    }
    res = json_get(t, "result");
    err = json_get(t, "error");
    if (err && !YAJL_IS_NULL(err))
        *error_r = json_tree_to_string(err);
    else
        *result_r = res ? json_tree_to_string(res) : xstrdup("null");
out:
    if (fd >= 0)
        close(fd);
    yajl_tree_free(t);
    free(body);
    free(reply);
    return rc;
}

/* ---- handshakes ---- */

int
migrate_handshake_send(int fd, const char *error)
{
    size_t len = error ? strlen(error) : 0;
    unsigned char hdr[2];
    int64_t deadline = http_now_ms() + HEAD_TIMEOUT_MS;
    int rc;

    if (len > 0xffff)
        len = 0xffff;
    hdr[0] = (unsigned char)(len >> 8);
    hdr[1] = (unsigned char)(len & 0xff);
    rc = http_send_all(fd, (const char *)hdr, 2, deadline);
    if (!rc && len)
        rc = http_send_all(fd, error, len, deadline);
    return rc;
}

int
migrate_handshake_recv(int fd, int timeout_ms, char **error_r)
{
    int64_t deadline = timeout_ms < 0 ? -1 : http_now_ms() + timeout_ms;
    unsigned char hdr[2];
    size_t len;
    char *msg;
    int rc;

    *error_r = NULL;
    rc = http_recv_exact(fd, hdr, 2, deadline);
    if (rc)
        return rc;
    len = ((size_t)hdr[0] << 8) | hdr[1];
    if (len == 0)
        return 0;
    msg = xmalloc(len + 1);
    rc = http_recv_exact(fd, msg, len, deadline);
    if (rc) {
        free(msg);
        return rc;
    }
    msg[len] = '\0';
    *error_r = msg;
    return 0;
}

int
migrate_token_load(const char *path, char **token_r)
{
    FILE *f = fopen(path, "re");
    char buf[4098];
    size_t n;

    *token_r = NULL;
    if (!f) {
        LOGE(ERROR, "cannot read migration token file '%s'", path);
        return xo_err_internal_code(XO_EIO, "cannot read %s", path);
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    n = strlen(buf);
    while (n > 0 && (buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        buf[--n] = '\0';
    if (n < 16 || n > 4096 || strpbrk(buf, "&? ")) {
        LOG(ERROR, "migration token in '%s' must be 16..4096 characters "
            "without '&', '?' or spaces", path);
        return xo_err_internal_code(XO_EINVAL, "bad migration token");
    }
    *token_r = xstrdup(buf);
    return 0;
}
