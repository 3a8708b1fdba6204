/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The two halves of a live migration and the clock around them. Worked
 * example (split mode, 2 VBDs on a v3 SR that attach in 300 ms):
 *
 *   sender (id U)                       receiver
 *   import_metadata(U->T1) ---------->  VM T1 stored
 *   PUT /migrate/vm/T1  ------------->  [receive pool, tag T1]
 *                                       A: VM_create T1, VIFs,
 *                                          VBD_attach xvda, xvdb (300 ms,
 *                                          in parallel, VM still runs)
 *                       <-------------  handshake 1
 *   PUT /migrate/mem/T1 ------------->  (fd handed to T1's receive)
 *                       <-------------  "1-mem"
 *   "1-mem ACK" --------------------->
 *   pre-copy rounds  ================>  B: pages into T1's guest
 *   pause U  (downtime starts)
 *   last pages, end  ================>
 *   VBD_deactivate xvda, xvdb (source)
 *   VM_rename U -> T0
 *   handshake 3 (point of no return) ->
 *                                       C: VM_rename T1 -> U,
 *                                          VBD_activate xvda, xvdb,
 *                                          VM_unpause U (downtime ends)
 *                       <-------------  handshake 4, stats message
 *   shutdown + remove T0
 *
 * Only activation (~10 ms per VBD) sits inside the downtime; in legacy
 * mode the 300 ms attaches do too.
 *
 * This file: the module's lifecycle, the routes of the receiver's entry
 * points and the rendezvous of the memory channel with its receive. The
 * halves are migrate_send.c and migrate_receive.c, the crash journal
 * migrate_journal.c.
 */
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "migrate/migrate_http.h"
#include "migrate/migrate_priv.h"
#include "queue.h"
#include "task.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

/* Workers of the pool that runs the Parallel groups of migrations: one
 * chunk of VBDs for each half of a localhost migration. The switch-over
 * activates (and deactivates) every VBD inside the downtime; on the
 * shared parallel pool (worker-pool-size, 4 by default) 16 VBDs took four
 * rounds of activation latency instead of two, and another VM's
 * operations could make a downtime longer. */
#define MIGRATE_POOL_WORKERS (2 * EXEC_CHUNK)

/* ---- clock and shared helpers ---- */

int64_t
migrate_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double
migrate_wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

double
migrate_ms_since(int64_t t0, int64_t t1)
{
    return (double)(t1 - t0) / 1e6;
}

void
migrate_op_init(struct migrate *m, struct exec_op *op, struct task *t,
                bool legacy)
{
    exec_op_init(op, &m->env, t, legacy);
    op->activations_at_once = true;
}

int
migrate_run(struct exec_op *op, struct atom *tree)
{
    int rc = tree ? exec_run(op, tree) : 0;

    atom_free(tree);
    return rc;
}

void
migrate_stream_opts(struct migrate *m, struct backend_migrate_opts *o,
                    bool compress, struct task *task)
{
    const struct config *cfg = m->deps.cfg;

    memset(o, 0, sizeof(*o));
    o->max_downtime_ms = (uint64_t)cfg->migration_max_downtime_ms;
    o->max_iterations = (unsigned)cfg->migration_max_iterations;
    o->abort_on_downtime = cfg->migration_downtime_abort;
    o->compress = compress;
    o->cancel = task ? task_cancel_flag(task) : NULL;
}

void
migrate_forget(struct migrate *m, const char *vm)
{
    struct backend *b = m->deps.backend;

    if (vmextra_exists(m->deps.store, vm))
        return;
    if (b->ops->vm_forget(b, vm))
        xo_err_clear();
}

bool
migrate_channel_closed(int vm_fd)
{
    struct pollfd p = { vm_fd, POLLIN | POLLRDHUP, 0 };

    return poll(&p, 1, 0) > 0;
}

void
migrate_hs_error(int fd, int rc)
{
    struct xo_err_saved saved;

    xo_err_preserve(rc, &saved);
    if (migrate_handshake_send(fd, saved.json))
        LOG(DEBUG, "error handshake not delivered");
    xo_err_restore(&saved);
}

/* ---- the memory-channel rendezvous ---- */

struct mem_slot {
    char id[37];
    int fd;
    bool taken;
    bool done;
    struct mem_slot *next;
};

/* One receive waiting in migrate_mem_claim: woken by a parked channel
 * (mem_park), by its task's cancel, or by its VM channel closing. */
struct mem_claim {
    int wake_fd;                /* eventfd, readable once woken */
    struct mem_claim *next;
};

static void
claim_wake(struct mem_claim *c)
{
    uint64_t one = 1;

    /* An eventfd write fails only when the counter would overflow, and
     * then the waiter is woken already. */
    if (write(c->wake_fd, &one, sizeof(one)) < 0)
        LOG(DEBUG, "memory channel wake-up already pending");
}

/* The /migrate/mem route parks its fd here until the receive takes it. */
static void
mem_park(struct migrate *m, const char *id, int fd)
{
    struct mem_slot s;
    struct timespec dl;

    memset(&s, 0, sizeof(s));
    xstrlcpy(s.id, id, sizeof(s.id));
    s.fd = fd;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += MIGRATE_MEM_RENDEZVOUS_MS / 1000;
    pthread_mutex_lock(&m->lock);
    s.next = m->slots;
    m->slots = &s;
    for (struct mem_claim *c = m->claims; c; c = c->next)
        claim_wake(c);
    /* Until the receive has taken it, the wait is bounded; once taken,
     * the receive owns the stream and says when it is done with it. */
    while (!s.done) {
        if (!s.taken) {
            if (pthread_cond_timedwait(&m->cond, &m->lock, &dl) ==
                ETIMEDOUT && !s.taken)
                break;
        } else {
            pthread_cond_wait(&m->cond, &m->lock);
        }
    }
    for (struct mem_slot **p = &m->slots; *p; p = &(*p)->next) {
        if (*p == &s) {
            *p = s.next;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (!s.taken)
        LOG(WARN, "memory channel for '%s' was never claimed", id);
    close(fd);
}

static int
mem_take_locked(struct migrate *m, const char *id)
{
    for (struct mem_slot *s = m->slots; s; s = s->next) {
        if (!s->taken && strcmp(s->id, id) == 0) {
            s->taken = true;
            return s->fd;
        }
    }
    return -1;
}

static void
claim_wake_on_cancel(void *arg)
{
    claim_wake(arg);
}

static void
claim_link(struct migrate *m, struct mem_claim *c, bool link)
{
    pthread_mutex_lock(&m->lock);
    if (link) {
        c->next = m->claims;
        m->claims = c;
    }
    for (struct mem_claim **p = &m->claims; !link && *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

/* Wait, without the lock, until c is woken, vm_fd closes or end. */
static void
claim_sleep(struct mem_claim *c, int vm_fd, int64_t end)
{
    struct pollfd p[2] = {
        { .fd = c->wake_fd, .events = POLLIN },
        { .fd = vm_fd, .events = POLLIN | POLLRDHUP },
    };
    int64_t left_ms = (end - migrate_now_ns()) / 1000000 + 1;
    uint64_t n;

    if (left_ms > 0 && poll(p, 2, (int)left_ms) > 0 &&
        (p[0].revents & POLLIN) && read(c->wake_fd, &n, sizeof(n)) < 0)
        LOG(DEBUG, "memory channel wake-up lost");
}

int
migrate_mem_claim(struct migrate *m, const char *id, int vm_fd,
                  struct task *task, int *fd_r)
{
    int64_t end = migrate_now_ns() +
                  (int64_t)MIGRATE_MEM_RENDEZVOUS_MS * 1000000;
    struct mem_claim c = { .wake_fd = -1 };
    int fd = -1, rc = 0;

    *fd_r = -1;
    c.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c.wake_fd < 0) {
        LOGE(ERROR, "cannot wait for the memory channel of '%s'", id);
        return xo_err_internal_code(XO_EFAIL, "cannot wait for the "
                                    "memory channel");
    }
    claim_link(m, &c, true);
    if (task)
        task_on_cancel(task, claim_wake_on_cancel, &c);
    for (;;) {
        pthread_mutex_lock(&m->lock);
        fd = mem_take_locked(m, id);
        pthread_mutex_unlock(&m->lock);
        if (fd >= 0)
            break;
        if (task && task_is_cancelling(task)) {
            rc = XO_ECANCELLED;
            break;
        }
        if (migrate_channel_closed(vm_fd)) {
            rc = XO_EIO;
            break;
        }
        if (migrate_now_ns() >= end) {
            rc = XO_ETIMEDOUT;
            break;
        }
        claim_sleep(&c, vm_fd, end);
    }
    if (task)
        task_on_cancel_remove(task, claim_wake_on_cancel, &c);
    claim_link(m, &c, false);
    close(c.wake_fd);
    *fd_r = fd;
    return rc;
}

void
migrate_mem_release(struct migrate *m, int fd)
{
    pthread_mutex_lock(&m->lock);
    for (struct mem_slot *s = m->slots; s; s = s->next)
        if (s->taken && s->fd == fd)
            s->done = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* ---- routes ---- */

/* /services/xenops/migrate/vm/<id>: run the receive and keep the
 * connection until it is done. */
static void
route_receive(struct migrate *m, int fd, const char *id,
              const struct migrate_http_req *req)
{
    const char *final_id = migrate_http_cookie(req, "final_id");
    const char *compress = migrate_http_cookie(req, "compress");
    struct migrate_receive_args a = {
        .fd = fd,
        .id = id,
        .final_id = final_id ? final_id : id,
        .dbg = migrate_http_cookie(req, "dbg"),
        .compress = compress && strcmp(compress, "zstd") == 0,
    };

    if (ids_check_vm(a.id) || ids_check_vm(a.final_id) ||
        !vmextra_exists(m->deps.store, a.id)) {
        xo_err_clear();
        LOG(WARN, "refused a receive for unknown or bad id");
        migrate_http_send_status(fd, 404, "Not Found");
    } else {
        migrate_receive(m, &a);
    }
    close(fd);
}

/* POST /services/xenops: one JSON-RPC request through the method table
 * (the remote half of VM.import_metadata and friends). */
static void
route_rpc(struct migrate *m, int fd, const struct migrate_http_req *req)
{
    if (migrate_http_serve_rpc(fd, req, m->deps.methods, m->deps.n_methods,
                               m->deps.methods_ctx,
                               (size_t)m->deps.cfg->rpc_max_request_bytes))
        xo_err_clear();
    close(fd);
}

static void
route(void *ctx, int fd, const struct migrate_http_req *req)
{
    struct migrate *m = ctx;
    const char *p = req->path;
    const char *base = "/services/xenops";
    size_t bl = strlen(base);

    if (strncmp(p, base, bl) != 0) {
        migrate_http_send_status(fd, 404, "Not Found");
        close(fd);
        return;
    }
    p += bl;
    if (strcmp(req->method, "POST") == 0 && (*p == '\0' || strcmp(p, "/")
                                             == 0)) {
        route_rpc(m, fd, req);
    } else if (strncmp(p, "/migrate/vm/", 12) == 0) {
        route_receive(m, fd, p + 12, req);
    } else if (strncmp(p, "/memory/", 8) == 0) {
        route_receive(m, fd, p + 8, req);
    } else if (strncmp(p, "/migrate/mem/", 13) == 0 &&
               ids_is_uuid(p + 13)) {
        if (migrate_http_send_ok(fd) == 0)
            mem_park(m, p + 13, fd);
        else
            close(fd);
    } else {
        migrate_http_send_status(fd, 404, "Not Found");
        close(fd);
    }
}

/* ---- sender entry ---- */

/* The queue runs the send; migrate_free waits for every send to end. */
struct send_slot {
    struct migrate *m;
    struct migrate_send *s;
};

static void
send_slot_run(void *arg)
{
    struct send_slot *slot = arg;
    struct migrate *m = slot->m;

    migrate_send_run(slot->s);
    free(slot);
    pthread_mutex_lock(&m->lock);
    m->sends--;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

int
migrate_queue_send(struct migrate *m, const char *dbg,
                   const struct migrate_send_args *a, char **task_id_r)
{
    struct send_slot *slot;
    struct migrate_send *s = NULL;
    int rc;

    *task_id_r = NULL;
    rc = migrate_send_new(m, dbg, a, &s);
    if (rc)
        return rc;
    *task_id_r = xstrdup(migrate_send_task_id(s));
    slot = xmalloc(sizeof(*slot));
    slot->m = m;
    slot->s = s;
    pthread_mutex_lock(&m->lock);
    m->sends++;
    pthread_mutex_unlock(&m->lock);
    queue_push(m->deps.pool_default, a->vm, send_slot_run, slot);
    return 0;
}

/* ---- lifecycle ---- */

static int
start_listeners(struct migrate *m)
{
    const struct config *cfg = m->deps.cfg;
    char *tok = NULL, *fwd;
    int rc;

    fwd = xasprintf("%s/xenopsd.forwarded", cfg->sockets_path);
    rc = migrate_forwarded_start(fwd, route, m, &m->fwd);
    if (rc || !cfg->migration_listen)
        goto out;
    if (!cfg->migration_token_file) {
        LOG(ERROR, "migration-listen needs migration-token-file");
        rc = xo_err_internal_code(XO_EINVAL, "migration-listen needs "
                                  "migration-token-file");
        goto out;
    }
    rc = migrate_token_load(cfg->migration_token_file, &tok);
    if (!rc)
        rc = migrate_listener_start(cfg->migration_listen, tok, route, m,
                                    &m->tcp);
out:
    free(tok);
    free(fwd);
    return rc;
}

int
migrate_new(const struct migrate_deps *deps, struct migrate **m_r)
{
    struct migrate *m = xcalloc(1, sizeof(*m));
    int rc;

    *m_r = NULL;
    m->deps = *deps;
    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->pool = queue_pool_new("migrate", MIGRATE_POOL_WORKERS);
    m->env = *deps->env;
    m->env.parallel_pool = m->pool;
    migrate_recover(m);
    rc = start_listeners(m);
    if (rc) {
        migrate_free(m);
        return rc;
    }
    *m_r = m;
    return 0;
}

void
migrate_free(struct migrate *m)
{
    if (!m)
        return;
    /* Receives run on the route threads, which these join. */
    migrate_listener_stop(m->tcp);
    migrate_listener_stop(m->fwd);
    pthread_mutex_lock(&m->lock);
    while (m->sends > 0)
        pthread_cond_wait(&m->cond, &m->lock);
    pthread_mutex_unlock(&m->lock);
    queue_pool_free(m->pool);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
