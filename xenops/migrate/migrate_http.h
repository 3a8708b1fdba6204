/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * migrate_http: the wire around a live migration (reference/
 * xenopsd-behaviour.md 2.2, interfaces.md 1.8). Owns:
 * - the receiver's entry points: a TCP listener (config migration-listen)
 *   that requires the shared token, and <sockets-path>/xenopsd.forwarded,
 *   which takes an accepted connection by SCM_RIGHTS with the JSON of the
 *   HTTP request, as xapi hands it over. Both parse the request and hand
 *   the connection to a route callback;
 * - the sender's side: connect to a xenops URL, PUT a migration path with
 *   xenopsd's cookies, read the receiver's "200 OK";
 * - the handshakes: 2-byte big-endian length, 0 = success, otherwise that
 *   many bytes of error text (a JSON Errors.error when possible).
 *
 * Token: the TCP listener refuses any request whose query does not carry
 * token=<the contents of migration-token-file> (compared in constant time);
 * the forwarded socket is trusted (peer uid 0, as xapi). The token is never
 * logged.
 *
 * Bounds: request head <= 16 KiB, read within 10 s; at most 32 cookies;
 * at most MIGRATE_HTTP_MAX_CONNS connections at once.
 */
#ifndef XENOPS_MIGRATE_HTTP_H
#define XENOPS_MIGRATE_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define MIGRATE_HTTP_HEAD_MAX (16 * 1024)
#define MIGRATE_HTTP_MAX_COOKIES 32
/* Connections served at once per listener; more get 503 and are closed
 * (the head, and so the token, is read on the connection's own thread). */
#define MIGRATE_HTTP_MAX_CONNS 64

struct migrate_kv {
    char *key;
    char *value;
};

/* A parsed request; everything is owned by the struct. */
struct migrate_http_req {
    char method[16];
    char *path;                 /* without the query, e.g.
                                   /services/xenops/migrate/vm/<id> */
    char *query;                /* raw query or "" */
    struct migrate_kv *cookies;
    size_t n_cookies;
    long long content_length;   /* -1 when the head has none */
    char *body;                 /* the forwarded request's body, if any
                                   (TCP: the head is read exactly, the
                                   rest stays in the socket) */
    size_t body_len;
};

void migrate_http_req_dispose(struct migrate_http_req *req);
/* The value of cookie key, or NULL. */
const char *migrate_http_cookie(const struct migrate_http_req *req,
                                const char *key);

/*
 * Route callback: takes ownership of fd (the connection, positioned just
 * after the request head) and of nothing else; req is valid during the
 * call. Runs on a thread of its own per connection.
 */
typedef void (*migrate_route_fn)(void *ctx, int fd,
                                 const struct migrate_http_req *req);

struct migrate_listener;

/*
 * Listen on "host:port" (IPv4 or [IPv6]) and serve until stopped. token
 * (copied) must be non-empty. Requests with a missing or wrong token get
 * 403 and are closed; malformed ones 400.
 */
int migrate_listener_start(const char *addr, const char *token,
                           migrate_route_fn route, void *ctx,
                           struct migrate_listener **l_r);
/* The port actually bound (useful with port 0 in tests). */
int migrate_listener_port(struct migrate_listener *l);

/* Serve <path> (a Unix socket, mode 0600): each message carries one fd
 * (SCM_RIGHTS) and the JSON {path, query, cookie, additional_headers,
 * body} of the HTTP request xapi accepted. */
int migrate_forwarded_start(const char *path, migrate_route_fn route,
                            void *ctx, struct migrate_listener **l_r);

/* Stop accepting; wait for running route threads to return. */
void migrate_listener_stop(struct migrate_listener *l);

/*
 * Serve a POST whose head is req: read Content-Length bytes (at most
 * max_body), decode JSON-RPC, call the matching method of table with ctx
 * (as uid 0: the caller checked the token) and write the reply. Errors are
 * answered (400/413 or a JSON-RPC error) and logged.
 */
struct rpc_method;
int migrate_http_serve_rpc(int fd, const struct migrate_http_req *req,
                           const struct rpc_method *table, size_t n,
                           void *ctx, size_t max_body);

/* Answer a route's request before switching to the raw stream. */
int migrate_http_send_ok(int fd);
int migrate_http_send_status(int fd, int status, const char *reason);

/* ---- sender ---- */

/* A parsed xenops URL: http://host:port/path?query (no TLS). */
struct migrate_url {
    char *host;
    char *port;
    char *path;         /* e.g. /services/xenops */
    char *query;        /* may be "" */
};

int migrate_url_parse(const char *url, struct migrate_url *u);
void migrate_url_dispose(struct migrate_url *u);

/* Connect (TCP, with timeout) to the URL's host and port. */
int migrate_http_connect(const struct migrate_url *u, int timeout_ms,
                         int *fd_r);
/*
 * PUT <u->path><suffix>?<u->query> with the cookies, then read the
 * response head: 0 for a 200, else XO_EFAIL with a detail carrying the
 * status. After 0, fd is the raw channel.
 */
int migrate_http_put(int fd, const struct migrate_url *u,
                     const char *suffix, const struct migrate_kv *cookies,
                     size_t n_cookies, int timeout_ms);
/* POST a JSON-RPC call to the URL and return its reply, as rpc_call. */
int migrate_http_rpc(const struct migrate_url *u, const char *method,
                     const char *params_json, int timeout_ms,
                     char **result_r, char **error_r);

/* ---- handshakes ---- */

/* error NULL = success. */
int migrate_handshake_send(int fd, const char *error);
/* 0 with *error_r NULL on success; 0 with *error_r set (malloc'd) when the
 * peer reported an error; XO_EIO / XO_ETIMEDOUT on a broken channel. */
int migrate_handshake_recv(int fd, int timeout_ms, char **error_r);

/* Read the token file: first line, trimmed, 16..4096 bytes. */
int migrate_token_load(const char *path, char **token_r);

#endif
