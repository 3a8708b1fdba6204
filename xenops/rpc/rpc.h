/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc: the message interface transport. An HTTP/1.1 server on a Unix
 * socket (xenopsd's "<sockets-path>/xenopsd") that takes POST requests with
 * a Content-Length body, decodes JSON-RPC v1 (rpc_json.h) or XML-RPC
 * (rpc_xml.h, chosen by Content-Type or a leading '<'), checks the peer
 * with SO_PEERCRED, dispatches through one method table and writes the
 * response; plus the matching client used by xenopsctl and tests.
 *
 * Contract:
 * - The socket is created mode 0600; a stale socket file is replaced.
 * - One thread per connection, at most RPC_MAX_CONNS at once (more are
 *   accepted and closed with 503). Keep-alive is honoured.
 * - Bounds: header block <= 16 KiB, body <= cfg->max_body (413 beyond),
 *   a request must arrive within cfg->io_timeout_ms (408 / close).
 * - A malformed request (HTTP, JSON, missing method), an unknown method or
 *   a handler error is answered with a well-formed error and never stops
 *   the server nor reaches a handler with bad framing.
 * - Peers whose uid is not in cfg->allowed_uids get an error reply
 *   (["Internal_error", "permission denied ..."]) and the handler is not
 *   called.
 * - Handlers run on the connection's thread; they may block (UPDATES.get),
 *   but must bound their own waits: rpc_server_stop wakes connections that
 *   are reading, yet waits for every running handler to return.
 * - Idle keep-alive connections are closed after cfg->idle_timeout_ms.
 */
#ifndef XENOPS_RPC_H
#define XENOPS_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <yajl/yajl_tree.h>

#define RPC_MAX_CONNS 64
#define RPC_DEFAULT_MAX_BODY (16u * 1024 * 1024)

struct rpc_request {
    const char *method;
    /* The named-arguments object (params[0]); an empty object when the
     * request had none. Borrowed for the handler call. */
    yajl_val params;
    uid_t peer_uid;
};

/*
 * A handler returns 0 and sets *result_json_r to the JSON text of the
 * result (malloc'd, taken by the server; NULL means unit -> null), or
 * returns an xo_err with the thread's wire detail set (errors.h), which the
 * server encodes as the error member.
 */
typedef int (*rpc_handler)(void *ctx, const struct rpc_request *req,
                           char **result_json_r);

struct rpc_method {
    const char *name;       /* exact wire name, e.g. "VM.stat" */
    rpc_handler fn;
};

struct rpc_server_config {
    const char *path;           /* socket path */
    size_t max_body;            /* 0 = RPC_DEFAULT_MAX_BODY */
    const uid_t *allowed_uids;  /* NULL/0 = uid 0 only */
    size_t n_allowed_uids;
    int io_timeout_ms;          /* 0 = 10000 */
    int idle_timeout_ms;        /* keep-alive idle limit; 0 = 60000 */
};

struct rpc_server;

/* Bind, listen and start the accept thread. The table and ctx must outlive
 * the server. */
int rpc_server_start(const struct rpc_server_config *cfg,
                     const struct rpc_method *table, size_t n_methods,
                     void *ctx, struct rpc_server **srv_r);
/* Stop accepting, close the socket file, wait for connection threads
 * (waking those blocked in a read). Not from a handler: it joins them. */
void rpc_server_stop(struct rpc_server *srv);

/*
 * Client: one JSON-RPC call over a new connection. params_json is the
 * named-arguments object text (NULL = {}). On success returns 0 and sets
 * exactly one of *result_r (result JSON text, "null" for unit) or *error_r
 * (error JSON text, a reply with a non-null error member), both malloc'd.
 * Transport failures return XO_EIO (cannot connect, timeout, bad reply);
 * params_json that is not a JSON object gives XO_EINVAL. timeout_ms bounds
 * the whole call: 0 = 30 s, negative = no limit (long UPDATES.get waits).
 */
int rpc_call(const char *path, const char *method, const char *params_json,
             int timeout_ms, char **result_r, char **error_r);
/* The same call with XML-RPC on the wire (rpc_xml.h), as xapi speaks it on
 * this socket; same contract as rpc_call. */
int rpc_call_xml(const char *path, const char *method,
                 const char *params_json, int timeout_ms, char **result_r,
                 char **error_r);

#endif
