/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The receiving half of a live migration, as a chain of phases over one
 * struct receive, in the order they run (migrate.h has the protocol):
 *
 *   receive_begin         marker, the VM's devices
 *   receive_prepare       phase A: VM_create, VIFs, early attaches;
 *                         handshake 1
 *   receive_memory        phase B: the memory channel, the backend's
 *                         stream into the paused domain, VM_build
 *   receive_all_clear     handshake 3 from the sender: from here the
 *                         receiver must complete
 *   receive_switch        phase C: VM_rename to the final id, VBD
 *                         activation, VM_unpause (the downtime ends)
 *   receive_done          handshake 4, the guest's downtime, the stats
 *
 * Any failure ends in receive_fail, which undoes everything (the
 * executor's journal, then expand_migrate_receive_abort) and tells the
 * sender: at once in phase A, after the cleanup in phase C (the VM's name
 * and disks must be free when the sender takes the VM back).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "atoms/expand.h"
#include "migrate/migrate_http.h"
#include "migrate/migrate_priv.h"
#include "queue.h"
#include "task.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

enum receive_stage {
    RECEIVE_A,          /* sender waits for handshake 1 */
    RECEIVE_B,          /* memory; the sender may still give up */
    RECEIVE_C,          /* past the sender's point of no return */
};

struct receive {
    /* caller fills in */
    struct migrate *m;
    int fd;                     /* the VM channel, borrowed */
    char id[37];                /* temporary id */
    char final_id[37];
    bool compress;
    bool legacy;
    struct task *task;
    /* state */
    enum receive_stage stage;
    const char *cur;            /* the id the VM has now */
    struct exec_op op;
    struct expand_vm vm;        /* its devices (vm.id follows cur) */
    bool have_vm;
    char *marker;
    int mem_fd;
    size_t n_early;
    /* results */
    int64_t t_a, t_a_end, t_c, t_unpause, attach_in_ns;
    double unpaused_at;
    struct backend_migrate_stats ms;
    uint64_t guest_downtime_ns;
    /* the route thread waits for the end */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool finished;
};

static int
receive_begin(struct receive *r)
{
    struct migrate *m = r->m;
    char *json;
    int rc;

    r->marker = xasprintf("receive-%s.json", r->id);
    json = xasprintf("{\"tmp\":\"%s\",\"final\":\"%s\","
                     "\"final_existed\":%s}", r->id, r->final_id,
                     vmextra_exists(m->deps.store, r->final_id)
                         ? "true" : "false");
    migrate_journal_put(m, r->marker, json);
    free(json);
    r->t_a = migrate_now_ns();
    rc = m->deps.vm_view_load(m->deps.ctx, r->id, &r->vm);
    r->have_vm = rc == 0;
    return rc;
}

/* Phase A: the VM still runs on the source. */
static int
receive_prepare(struct receive *r)
{
    int rc;

    for (size_t i = 0; !r->legacy && i < r->vm.n_vbds; i++)
        r->n_early += r->vm.vbds[i].can_attach_early &&
                      r->vm.vbds[i].has_backend;
    rc = migrate_run(&r->op, expand_migrate_receive_prepare(
                                 &r->vm, r->final_id, r->legacy));
    if (rc)
        return rc;
    r->t_a_end = migrate_now_ns();
    r->stage = RECEIVE_B;
    if (migrate_handshake_send(r->fd, NULL))
        return xo_err_internal_code(XO_EIO, "sender went away after "
                                    "phase A");
    return 0;
}

static int
receive_memory_channel(struct receive *r)
{
    char *err = NULL;
    int rc = 0;

    rc = migrate_mem_claim(r->m, r->id, r->fd, r->task, &r->mem_fd);
    if (rc == XO_ECANCELLED)
        return task_check_cancel(r->task);
    if (rc == XO_EIO)
        return xo_err_internal_code(XO_EIO, "sender went away before the "
                                    "memory channel");
    if (rc == XO_ETIMEDOUT)
        return xo_err_internal_code(XO_ETIMEDOUT, "no memory channel came");
    if (rc)
        return rc;
    if (migrate_handshake_send(r->mem_fd, NULL) ||
        migrate_handshake_recv(r->fd, MIGRATE_HS_TIMEOUT_MS, &err) || err)
        rc = xo_err_internal_code(XO_EIO, "memory channel set-up failed");
    free(err);
    return rc;
}

/* Phase B: the memory, into the paused domain. */
static int
receive_memory(struct receive *r)
{
    struct backend *b = r->m->deps.backend;
    struct backend_migrate_opts o;
    int rc;

    rc = receive_memory_channel(r);
    if (rc)
        return rc;
    migrate_stream_opts(r->m, &o, r->compress, NULL);
    rc = b->ops->vm_migrate_receive(b, r->id, r->mem_fd, &o, &r->ms);
    if (rc)
        return rc;
    /* The received image is a built domain (VM_restore does the same). */
    return migrate_run(&r->op, atom_new(ATOM_VM_BUILD, r->id));
}

/* The sender has paused, deactivated and renamed its VM. */
static int
receive_all_clear(struct receive *r)
{
    char *err = NULL;
    int rc = 0;

    if (migrate_handshake_recv(r->fd, MIGRATE_HS_TIMEOUT_MS, &err) || err)
        rc = xo_err_internal_code(XO_EIO, "sender did not give the all "
                                  "clear");
    free(err);
    if (!rc)
        r->stage = RECEIVE_C;
    return rc;
}

/* Phase C: the downtime. */
static int
receive_switch(struct receive *r)
{
    int rc;

    r->t_c = migrate_now_ns();
    rc = migrate_run(&r->op, expand_migrate_rename(r->id, r->final_id));
    if (rc)
        return rc;
    r->cur = r->final_id;
    r->vm.id = r->final_id;
    r->attach_in_ns = migrate_now_ns();
    rc = migrate_run(&r->op, expand_vm_restore_devices(&r->vm, r->legacy,
                                                       true));
    r->attach_in_ns = migrate_now_ns() - r->attach_in_ns;
    if (rc)
        return rc;
    rc = migrate_run(&r->op, expand_migrate_receive_unpause(r->final_id));
    r->t_unpause = migrate_now_ns();
    r->unpaused_at = migrate_wall_now();
    return rc;
}

static char *
receive_stats_json(const struct receive *r)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "phase_a_ms");
    json_gen_fixed(g, migrate_ms_since(r->t_a, r->t_a_end), 3);
    json_gen_str(g, "phase_c_ms");
    json_gen_fixed(g, migrate_ms_since(r->t_c, r->t_unpause), 3);
    json_gen_str(g, "vbd_inside_downtime_ms");
    json_gen_fixed(g, (double)r->attach_in_ns / 1e6, 3);
    json_gen_str(g, "guest_downtime_ms");
    json_gen_fixed(g, (double)r->guest_downtime_ns / 1e6, 3);
    json_gen_str(g, "unpaused_at");
    json_gen_fixed(g, r->unpaused_at, 6);
    json_gen_str(g, "early_attached");
    json_gen_int(g, (long long)r->n_early);
    json_gen_str(g, "final_round_ms");
    json_gen_fixed(g, (double)r->ms.final_ns / 1e6, 3);
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

/* The VM runs here now. */
static void
receive_done(struct receive *r)
{
    struct backend *b = r->m->deps.backend;
    char *stats;

    exec_commit(&r->op);
    /* A crash from here on must not remove it. */
    migrate_journal_drop(r->m, r->marker);
    migrate_handshake_send(r->fd, NULL);
    if (b->ops->vm_migrate_guest_downtime &&
        b->ops->vm_migrate_guest_downtime(b, r->final_id, NULL,
                                          &r->guest_downtime_ns))
        xo_err_clear();
    stats = receive_stats_json(r);
    migrate_handshake_send(r->fd, stats);
    LOGVM(INFO, r->final_id, "received; phase C %.1f ms",
          migrate_ms_since(r->t_c, r->t_unpause));
    task_complete(r->task, stats);
    free(stats);
}

/* Everything the receiver did is undone: datapaths (early attaches
 * included), the domain, the devices' active flags and the VM's records
 * under whichever id it has. */
static void
receive_cleanup(struct receive *r)
{
    struct expand_vm none = { .id = r->cur };

    exec_rollback(&r->op);
    r->vm.id = r->cur;
    if (migrate_run(&r->op, expand_migrate_receive_abort(
                                r->have_vm ? &r->vm : &none)))
        xo_err_clear();
    migrate_forget(r->m, r->cur);
    exec_commit(&r->op);
    LOGVM(INFO, r->cur, "receive cleaned up");
}

static void
receive_fail(struct receive *r, int rc)
{
    struct xo_err_saved saved;

    if (r->stage == RECEIVE_A)
        migrate_hs_error(r->fd, rc);
    xo_err_preserve(rc, &saved);
    receive_cleanup(r);
    rc = xo_err_restore(&saved);
    /* The sender takes the VM back once it hears of the failure. */
    if (r->stage == RECEIVE_C)
        migrate_hs_error(r->fd, rc);
    migrate_journal_drop(r->m, r->marker);
    LOGVM(DEBUG, r->id, "receive failed: %s", xo_strerror(rc));
    task_fail(r->task, xo_err_take_json(rc));
}

static void
receive_run(void *arg)
{
    struct receive *r = arg;
    int rc;

    migrate_op_init(r->m, &r->op, r->task, r->legacy);
    rc = receive_begin(r);
    if (!rc)
        rc = receive_prepare(r);
    if (!rc)
        rc = receive_memory(r);
    if (!rc)
        rc = receive_all_clear(r);
    if (!rc)
        rc = receive_switch(r);
    if (!rc)
        receive_done(r);
    else
        receive_fail(r, rc);
    if (r->mem_fd >= 0)
        migrate_mem_release(r->m, r->mem_fd);
    if (r->have_vm)
        r->m->deps.vm_view_dispose(r->m->deps.ctx, &r->vm);
    exec_op_dispose(&r->op);
    free(r->marker);
    pthread_mutex_lock(&r->lock);
    r->finished = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

void
migrate_receive(struct migrate *m, const struct migrate_receive_args *a)
{
    struct receive r;

    memset(&r, 0, sizeof(r));
    r.m = m;
    r.fd = a->fd;
    r.mem_fd = -1;
    xstrlcpy(r.id, a->id, sizeof(r.id));
    xstrlcpy(r.final_id, a->final_id, sizeof(r.final_id));
    r.cur = r.id;
    r.compress = a->compress;
    r.legacy = m->deps.legacy(m->deps.ctx);
    r.task = task_create(m->deps.tasks, a->dbg ? a->dbg
                                                : "VM.receive_memory");
    /* VM.migration_stats on this host then shows the receive too. */
    if (m->deps.note_migration)
        m->deps.note_migration(m->deps.note_ctx, r.final_id,
                               task_id(r.task));
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.cond, NULL);
    if (migrate_http_send_ok(a->fd)) {
        task_fail(r.task, xo_err_take_json(xo_err_internal_code(
                              XO_EIO, "sender went away")));
    } else {
        /* On the receive pool under the temporary id; the route thread
         * keeps the connection until the receive ends. */
        queue_push(m->deps.pool_receive, r.id, receive_run, &r);
        pthread_mutex_lock(&r.lock);
        while (!r.finished)
            pthread_cond_wait(&r.cond, &r.lock);
        pthread_mutex_unlock(&r.lock);
    }
    task_unref(r.task);
    pthread_cond_destroy(&r.cond);
    pthread_mutex_destroy(&r.lock);
}
