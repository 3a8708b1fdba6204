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
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "admin.h"
#include "atom.h"
#include "atomicfile.h"
#include "backend.h"
#include "config.h"
#include "errors.h"
#include "exec.h"
#include "expand.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "metadata.h"
#include "migrate.h"
#include "migrate_http.h"
#include "queue.h"
#include "rpc.h"
#include "rpc_json.h"
#include "server_priv.h"
#include "task.h"
#include "updates.h"
#include "vmextra.h"
#include "xalloc.h"

/* How long each side waits for the other at a handshake. Phase A attaches
 * every early VBD, so the first wait is generous. */
#define HS_TIMEOUT_MS (5 * 60 * 1000)
#define RPC_TIMEOUT_MS 60000
#define MEM_RENDEZVOUS_MS 60000
/* How long the sender keeps asking a receiver it lost past the point of
 * no return whether the VM runs there, before it leaves the VM paused. */
#define PROBE_WINDOW_MS 60000
#define RPC_BODY_MAX (16u * 1024 * 1024)
/* Workers of the pool that runs the Parallel groups of migrations: one
 * chunk of VBDs for each half of a localhost migration. The switch-over
 * activates (and deactivates) every VBD inside the downtime; on the
 * shared parallel pool (worker-pool-size, 4 by default) 16 VBDs took four
 * rounds of activation latency instead of two, and another VM's
 * operations could make a downtime longer. */
#define MIGRATE_POOL_WORKERS (2 * EXEC_CHUNK)

/* ---- clock ---- */

static int64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double
wall_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double
ms_since(int64_t t0, int64_t t1)
{
    return (double)(t1 - t0) / 1e6;
}

/* ---- receiver state: the memory-channel rendezvous ---- */

struct mem_slot {
    char id[37];
    int fd;
    bool taken;
    bool done;
    struct mem_slot *next;
};

struct migrate_state {
    struct queue_pool *pool;    /* Parallel groups of migrations */
    struct exec_env env;        /* srv->env with that pool */
    struct migrate_listener *tcp;
    struct migrate_listener *fwd;
    const struct rpc_method *methods;
    size_t n_methods;
    void *methods_ctx;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct mem_slot *slots;
};

/* The /migrate/mem route parks its fd here until the receive takes it. */
static void
mem_park(struct migrate_state *m, const char *id, int fd)
{
    struct mem_slot s;
    struct timespec dl;

    memset(&s, 0, sizeof(s));
    xstrlcpy(s.id, id, sizeof(s.id));
    s.fd = fd;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += MEM_RENDEZVOUS_MS / 1000;
    pthread_mutex_lock(&m->lock);
    s.next = m->slots;
    m->slots = &s;
    pthread_cond_broadcast(&m->cond);
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

/* True once the VM channel has anything to read: before "1-mem ACK" the
 * sender sends nothing on it, so that is its close or a broken link. */
static bool
channel_closed(int vm_fd)
{
    struct pollfd p = { vm_fd, POLLIN | POLLRDHUP, 0 };

    return poll(&p, 1, 0) > 0;
}

/* The receive claims the parked fd for id (waits up to the rendezvous
 * limit, less if the VM channel vm_fd closes); -1 if none came. */
static int
mem_claim(struct migrate_state *m, const char *id, int vm_fd)
{
    int64_t end = now_ns() + (int64_t)MEM_RENDEZVOUS_MS * 1000000;
    int fd = -1;

    pthread_mutex_lock(&m->lock);
    for (;;) {
        struct timespec dl;

        for (struct mem_slot *s = m->slots; s; s = s->next) {
            if (!s->taken && strcmp(s->id, id) == 0) {
                s->taken = true;
                fd = s->fd;
                break;
            }
        }
        if (fd >= 0 || now_ns() >= end || channel_closed(vm_fd))
            break;
        /* Short slices: the VM channel is polled between them. */
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_nsec += 200 * 1000000L;
        if (dl.tv_nsec >= 1000000000L) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&m->cond, &m->lock, &dl);
    }
    pthread_mutex_unlock(&m->lock);
    return fd;
}

static void
mem_release(struct migrate_state *m, int fd)
{
    pthread_mutex_lock(&m->lock);
    for (struct mem_slot *s = m->slots; s; s = s->next)
        if (s->taken && s->fd == fd)
            s->done = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

/* ---- helpers shared by both sides ---- */

/* The executor environment of migrations (the server's when the receiver
 * was not started, as in unit tests). */
static const struct exec_env *
mig_env(struct server *srv)
{
    return srv->mig ? &srv->mig->env : &srv->env;
}

static bool
is_activation(const struct atom *a)
{
    return a->kind == ATOM_VBD_ACTIVATE || a->kind == ATOM_VBD_DEACTIVATE;
}

/* Regroup a's children into Parallels of at most EXEC_CHUNK, level by
 * level, until a has at most EXEC_CHUNK children. */
static void
fan_out(struct atom *a)
{
    while (a->n_children > EXEC_CHUNK) {
        struct atom **kids = a->children;
        size_t n = a->n_children;

        a->children = NULL;
        a->n_children = 0;
        for (size_t i = 0; i < n; i += EXEC_CHUNK) {
            struct atom *g = atom_new_group(ATOM_PARALLEL, a->vm, a->text);

            for (size_t k = i; k < n && k < i + EXEC_CHUNK; k++)
                atom_add(g, kids[k]);
            atom_add(a, g);
        }
        free(kids);
    }
}

/*
 * The switch-over (de)activates all of a paused VM's VBDs, and the
 * downtime lasts until the last one is done. The executor runs a Parallel
 * in chunks of EXEC_CHUNK, one chunk after the other (xenopsd's
 * max_parallel_atoms, which bounds bursts of SM attach and plug work), so
 * 16 VBDs paid two rounds of activation latency. A Parallel made only of
 * VBD_activate / VBD_deactivate leaves is light work and is regrouped so
 * that every chunk runs at once; anything else (VBD_plug in legacy mode,
 * attaches) keeps xenopsd's chunking.
 */
static struct atom *
spread_activations(struct atom *a)
{
    bool only = a && a->kind == ATOM_PARALLEL &&
                a->n_children > EXEC_CHUNK;

    if (!a || !atom_is_group(a))
        return a;
    for (size_t i = 0; only && i < a->n_children; i++)
        only = is_activation(a->children[i]);
    if (only)
        fan_out(a);
    else
        for (size_t i = 0; i < a->n_children; i++)
            spread_activations(a->children[i]);
    return a;
}

/* Run a tree in op (journalled); NULL tree is nothing to do. */
static int
run_tree(struct exec_op *op, struct atom *tree)
{
    int rc = tree ? exec_run(op, tree) : 0;

    atom_free(tree);
    return rc;
}

static struct atom *
leaf(enum atom_kind kind, const char *vm, const char *text)
{
    struct atom *a = atom_new(kind, vm);

    atom_set_text(a, text);
    return a;
}

static void
fill_mig_opts(struct server *srv, struct backend_migrate_opts *o,
              bool compress, struct task *task)
{
    memset(o, 0, sizeof(*o));
    o->max_downtime_ms = (uint64_t)srv->cfg->migration_max_downtime_ms;
    o->max_iterations = (unsigned)srv->cfg->migration_max_iterations;
    o->abort_on_downtime = srv->cfg->migration_downtime_abort;
    o->compress = compress;
    o->cancel = task ? task_cancel_flag(task) : NULL;
}

/* ---- receiver ---- */

struct receive_job {
    struct server *srv;
    int fd;
    char id[37];
    char final_id[37];
    bool compress;
    bool legacy;
    struct task *task;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool finished;
};

static struct atom *
best_effort(struct atom *a)
{
    struct atom *g = atom_new_group(ATOM_BEST_EFFORT, a->vm, NULL);

    atom_add(g, a);
    return g;
}

/* Once the VM is gone under vm (no records here), the backend forgets
 * it too: a temporary id's leftovers would block the VM's next migration
 * from this host. */
static void
forget_backend_records(struct server *srv, const char *vm)
{
    if (vmextra_exists(srv->store, vm))
        return;
    if (srv->backend->ops->vm_forget(srv->backend, vm))
        xo_err_clear();
}

/* ---- crash journal ----
 *
 * A daemon killed mid-migration loses its simulated domains, but its
 * records survive: the receiver's VM under the temporary or (in phase C)
 * the final id, the sender's under its temporary id. Each half keeps a
 * marker in <database-path>/migrations while it is in flight, and the next
 * start (migrate_receiver_start) settles what a marker names, touching
 * only VMs without a domain:
 *   receive-<tmp>.json {"tmp", "final", "final_existed"}: until the
 *     receiver unpaused the VM, it never ran here: its records go (under
 *     both ids; the final id's only if this receive created it);
 *   send-<vm>.json {"vm", "tmp"}: the VM's definition stays: the
 *     temporary id is renamed back to the VM's, or dropped if the VM's id
 *     exists (a localhost migration's receiver brought it back).
 * Receive markers are settled first, so a localhost migration ends with
 * the sender's record under the VM's id.
 */

static char *
journal_dir(struct server *srv)
{
    if (!srv->cfg->persist || !srv->cfg->database_path)
        return NULL;
    return xasprintf("%s/migrations", srv->cfg->database_path);
}

/* Best effort: without the marker a crash leaves records to tidy by
 * hand, which is logged, but the migration itself is unaffected. */
static void
journal_put(struct server *srv, const char *name, const char *json)
{
    char *dir = journal_dir(srv);

    if (dir && (atomicfile_mkdirs(dir) ||
                atomicfile_write(dir, name, json, strlen(json)))) {
        LOG(WARN, "cannot write migration marker '%s'", name);
        xo_err_clear();
    }
    free(dir);
}

static void
journal_drop(struct server *srv, const char *name)
{
    char *dir = journal_dir(srv);

    if (dir && atomicfile_remove(dir, name))
        xo_err_clear();
    free(dir);
}

/* True if vm has records and no domain. */
static bool
halted_record(struct server *srv, const char *vm)
{
    struct backend_vm_state st;

    if (!vmextra_exists(srv->store, vm))
        return false;
    if (srv->backend->ops->vm_get_state(srv->backend, vm, &st)) {
        xo_err_clear();
        return false;
    }
    if (st.power != BACKEND_HALTED) {
        LOGVM(WARN, vm, "interrupted migration: has a domain, left alone");
        return false;
    }
    return true;
}

static void
recover_run(struct server *srv, struct atom *a, const char *what)
{
    struct exec_op op;

    exec_op_init(&op, mig_env(srv), NULL, server_legacy(srv));
    if (exec_run(&op, a)) {
        LOGVM(ERROR, a->vm, "interrupted migration: cannot %s", what);
        xo_err_clear();
    } else {
        LOGVM(INFO, a->vm, "interrupted migration: %s", what);
    }
    exec_commit(&op);
    exec_op_dispose(&op);
    atom_free(a);
}

static void
recover_receive(struct server *srv, yajl_val m)
{
    const char *tmp = json_get_str(m, "tmp");
    const char *fin = json_get_str(m, "final");
    yajl_val ex = json_get(m, "final_existed");
    const char *ids[2] = { tmp, YAJL_IS_FALSE(ex) ? fin : NULL };

    for (int i = 0; i < 2; i++) {
        if (!ids[i] || ids_check_vm(ids[i])) {
            xo_err_clear();
            continue;
        }
        if (!halted_record(srv, ids[i]))
            continue;
        recover_run(srv, atom_new(ATOM_VM_REMOVE, ids[i]),
                    "removed the receiver's records");
        forget_backend_records(srv, ids[i]);
    }
}

static void
recover_send(struct server *srv, yajl_val m)
{
    const char *vm = json_get_str(m, "vm");
    const char *tmp = json_get_str(m, "tmp");

    if (!vm || !tmp || ids_check_vm(vm) || ids_check_vm(tmp)) {
        xo_err_clear();
        return;
    }
    if (!halted_record(srv, tmp))
        return;
    if (vmextra_exists(srv->store, vm)) {
        recover_run(srv, atom_new(ATOM_VM_REMOVE, tmp),
                    "dropped the sender's temporary records");
        forget_backend_records(srv, tmp);
    } else {
        recover_run(srv, leaf(ATOM_VM_RENAME, tmp, vm),
                    "renamed the sender's VM back");
    }
}

/* Settle the markers of migrations a crash interrupted (receives first). */
static void
migrate_recover(struct server *srv)
{
    char *dir = journal_dir(srv);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;

    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "send-", 5) != 0 &&
            strncmp(e->d_name, "receive-", 8) != 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(e->d_name);
    }
    if (d)
        closedir(d);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool recv = names[i][0] == 'r';
            char *text = NULL;
            yajl_val m = NULL;
            size_t len;

            if (recv != (pass == 0))
                continue;
            if (atomicfile_read(dir, names[i], 4096, &text, &len) ||
                json_parse(text, len, &m)) {
                LOG(WARN, "unreadable migration marker '%s' dropped",
                    names[i]);
                xo_err_clear();
            } else if (recv) {
                recover_receive(srv, m);
            } else {
                recover_send(srv, m);
            }
            yajl_tree_free(m);
            free(text);
            journal_drop(srv, names[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir);
}

/* Everything the receiver did is undone: datapaths (early attaches
 * included), the domain, the devices' active flags (v's devices; v may be
 * NULL) and the VM's records under whichever id. */
static void
receive_cleanup(struct server *srv, struct exec_op *op, const char *vm,
                const struct server_vm_view *v)
{
    struct atom *rm;

    exec_rollback(op);
    rm = atom_new(ATOM_VM_DESTROY, vm);
    if (exec_run(op, rm))
        xo_err_clear();
    atom_free(rm);
    /* Phase A marked the devices active; left behind, the flags keep the
     * id's records alive in the backend after the VM is gone. */
    rm = atom_new_group(ATOM_SERIAL, vm, "Devices.deactivate");
    for (size_t i = 0; v && i < v->vm.n_vbds; i++)
        atom_add(rm, best_effort(atom_new_dev(ATOM_VBD_SET_ACTIVE, vm,
                                              v->vm.vbds[i].dev, false)));
    for (size_t i = 0; v && i < v->vm.n_vifs; i++)
        atom_add(rm, best_effort(atom_new_dev(ATOM_VIF_SET_ACTIVE, vm,
                                              v->vm.vifs[i].dev, false)));
    if (exec_run(op, rm))
        xo_err_clear();
    atom_free(rm);
    rm = atom_new(ATOM_VM_REMOVE, vm);
    if (exec_run(op, rm))
        xo_err_clear();
    atom_free(rm);
    forget_backend_records(srv, vm);
    exec_commit(op);
    LOGVM(INFO, vm, "receive cleaned up");
}

/* Send an error handshake carrying the wire error of rc. */
static void
hs_error(int fd, int rc)
{
    char *err = xo_err_take_json(rc);

    if (migrate_handshake_send(fd, err))
        LOG(DEBUG, "error handshake not delivered");
    xo_err_set_json(rc, err);
}

static void
receive_run(void *arg)
{
    struct receive_job *j = arg;
    struct server *srv = j->srv;
    struct migrate_state *m = srv->mig;
    struct backend_migrate_opts mo;
    struct backend_migrate_stats ms;
    struct server_vm_view v;
    struct exec_op op;
    struct atom *a;
    uint64_t guest_downtime_ns = 0;
    int64_t t_a, t_a_end, t_c, t_unpause, t_attach_in = 0;
    double unpaused_at = 0;
    size_t n_early = 0;
    char *err = NULL, *stats = NULL, *marker = NULL;
    const char *cur = j->id;
    int mem_fd = -1, rc;
    bool view = false;

    exec_op_init(&op, mig_env(srv), j->task, j->legacy);
    marker = xasprintf("receive-%s.json", j->id);
    {
        char *json = xasprintf("{\"tmp\":\"%s\",\"final\":\"%s\","
                               "\"final_existed\":%s}", j->id, j->final_id,
                               vmextra_exists(srv->store, j->final_id)
                                   ? "true" : "false");

        journal_put(srv, marker, json);
        free(json);
    }
    t_a = now_ns();
    /* Phase A: the VM still runs on the source. */
    rc = server_vm_view_load(srv, j->id, &v);
    if (rc)
        goto fail_a;
    view = true;
    a = atom_new_group(ATOM_SERIAL, j->id, "VM_receive_memory phase A");
    {
        struct atom *c = leaf(ATOM_VM_CREATE, j->id, j->final_id);
        struct atom *vifs = expand_vm_restore_vifs(&v.vm);
        struct atom *early = expand_early_attach(&v.vm, j->legacy);

        for (size_t i = 0; !j->legacy && i < v.vm.n_vbds; i++)
            n_early += v.vbds[i].can_attach_early && v.vbds[i].has_backend;

        atom_add(a, c);
        if (vifs)
            atom_add(a, vifs);
        if (early)
            atom_add(a, early);
    }
    rc = run_tree(&op, a);
    if (rc)
        goto fail_a;
    t_a_end = now_ns();
    if (migrate_handshake_send(j->fd, NULL)) {
        rc = xo_err_internal_code(XO_EIO, "sender went away after phase A");
        goto fail;
    }

    /* Phase B: memory. */
    mem_fd = mem_claim(m, j->id, j->fd);
    if (mem_fd < 0 && channel_closed(j->fd)) {
        rc = xo_err_internal_code(XO_EIO, "sender went away before the "
                                  "memory channel");
        goto fail;
    }
    if (mem_fd < 0) {
        rc = xo_err_internal_code(XO_ETIMEDOUT, "no memory channel came");
        goto fail;
    }
    if (migrate_handshake_send(mem_fd, NULL) ||
        migrate_handshake_recv(j->fd, HS_TIMEOUT_MS, &err) || err) {
        rc = xo_err_internal_code(XO_EIO, "memory channel set-up failed");
        goto fail;
    }
    fill_mig_opts(srv, &mo, j->compress, NULL);
    rc = srv->backend->ops->vm_migrate_receive(srv->backend, j->id, mem_fd,
                                               &mo, &ms);
    if (rc)
        goto fail;
    /* The received image is a built domain (VM_restore does the same). */
    rc = run_tree(&op, atom_new(ATOM_VM_BUILD, j->id));
    if (rc)
        goto fail;
    /* The sender has paused, deactivated and renamed its VM. */
    if (migrate_handshake_recv(j->fd, HS_TIMEOUT_MS, &err) || err) {
        rc = xo_err_internal_code(XO_EIO, "sender did not give the all "
                                  "clear");
        goto fail;
    }

    /* Phase C: the downtime. From here the receiver must complete. */
    t_c = now_ns();
    a = atom_new_group(ATOM_SERIAL, j->id, "VM_receive_memory phase C");
    atom_add(a, leaf(ATOM_VM_RENAME, j->id, j->final_id));
    rc = run_tree(&op, a);
    if (rc)
        goto fail_c;
    cur = j->final_id;
    v.vm.id = j->final_id;
    a = spread_activations(expand_vm_restore_devices(&v.vm, j->legacy,
                                                     true));
    t_attach_in = now_ns();
    rc = run_tree(&op, a);
    t_attach_in = now_ns() - t_attach_in;
    if (rc)
        goto fail_c;
    a = atom_new_group(ATOM_SERIAL, j->final_id, "unpause");
    atom_add(a, atom_new(ATOM_VM_UNPAUSE, j->final_id));
    atom_add(a, leaf(ATOM_VM_SET_DOMAIN_ACTION_REQUEST, j->final_id, NULL));
    rc = run_tree(&op, a);
    t_unpause = now_ns();
    unpaused_at = wall_now();
    if (rc)
        goto fail_c;
    exec_commit(&op);
    /* The VM runs here now: a crash from here on must not remove it. */
    journal_drop(srv, marker);
    migrate_handshake_send(j->fd, NULL);
    if (srv->backend->ops->vm_migrate_guest_downtime &&
        srv->backend->ops->vm_migrate_guest_downtime(
            srv->backend, j->final_id, NULL, &guest_downtime_ns))
        xo_err_clear();
    {
        yajl_gen gen = json_gen_new();

        yajl_gen_map_open(gen);
        json_gen_str(gen, "phase_a_ms");
        json_gen_fixed(gen, ms_since(t_a, t_a_end), 3);
        json_gen_str(gen, "phase_c_ms");
        json_gen_fixed(gen, ms_since(t_c, t_unpause), 3);
        json_gen_str(gen, "vbd_inside_downtime_ms");
        json_gen_fixed(gen, (double)t_attach_in / 1e6, 3);
        json_gen_str(gen, "guest_downtime_ms");
        json_gen_fixed(gen, (double)guest_downtime_ns / 1e6, 3);
        json_gen_str(gen, "unpaused_at");
        json_gen_fixed(gen, unpaused_at, 6);
        json_gen_str(gen, "early_attached");
        json_gen_int(gen, (long long)n_early);
        json_gen_str(gen, "final_round_ms");
        json_gen_fixed(gen, (double)ms.final_ns / 1e6, 3);
        yajl_gen_map_close(gen);
        stats = json_gen_take(gen);
    }
    migrate_handshake_send(j->fd, stats);
    LOGVM(INFO, j->final_id, "received; phase C %.1f ms",
          ms_since(t_c, t_unpause));
    task_complete(j->task, stats);
    goto out;

fail_a:
    hs_error(j->fd, rc);
fail:
    receive_cleanup(srv, &op, cur, view ? &v : NULL);
    goto failed;
fail_c:
    /* Clean up first (the VM's name and disks must be free), then tell
     * the sender, which takes the VM back. */
    {
        char *e = xo_err_take_json(rc);

        receive_cleanup(srv, &op, cur, view ? &v : NULL);
        xo_err_set_json(rc, e);
    }
    hs_error(j->fd, rc);
failed:
    journal_drop(srv, marker);
    LOGVM(WARN, j->id, "receive failed: %s", xo_strerror(rc));
    task_fail(j->task, xo_err_take_json(rc));
out:
    if (mem_fd >= 0)
        mem_release(m, mem_fd);
    if (view)
        server_vm_view_dispose(&v);
    exec_op_dispose(&op);
    free(err);
    free(stats);
    free(marker);
    pthread_mutex_lock(&j->lock);
    j->finished = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

/* /services/xenops/migrate/vm/<id>: run the receive on the receive pool
 * (tag = the temporary id) and keep the connection until it is done. */
static void
route_receive(struct server *srv, int fd, const char *id,
              const struct migrate_http_req *req)
{
    const char *final_id = migrate_http_cookie(req, "final_id");
    const char *compress = migrate_http_cookie(req, "compress");
    const char *dbg = migrate_http_cookie(req, "dbg");
    struct receive_job j;

    if (!final_id)
        final_id = id;
    if (ids_check_vm(id) || ids_check_vm(final_id) ||
        !vmextra_exists(srv->store, id)) {
        xo_err_clear();
        LOG(WARN, "refused a receive for unknown or bad id");
        migrate_http_send_status(fd, 404, "Not Found");
        close(fd);
        return;
    }
    memset(&j, 0, sizeof(j));
    j.srv = srv;
    j.fd = fd;
    xstrlcpy(j.id, id, sizeof(j.id));
    xstrlcpy(j.final_id, final_id, sizeof(j.final_id));
    j.compress = compress && strcmp(compress, "zstd") == 0;
    j.legacy = server_legacy(srv);
    j.task = task_create(srv->tasks, dbg ? dbg : "VM.receive_memory");
    /* VM.migration_stats on this host then shows the receive too. */
    admin_note_migration(srv, j.final_id, task_id(j.task));
    pthread_mutex_init(&j.lock, NULL);
    pthread_cond_init(&j.cond, NULL);
    if (migrate_http_send_ok(fd)) {
        task_fail(j.task, xo_err_take_json(xo_err_internal_code(
                              XO_EIO, "sender went away")));
    } else {
        queue_push(srv->pool_receive, id, receive_run, &j);
        pthread_mutex_lock(&j.lock);
        while (!j.finished)
            pthread_cond_wait(&j.cond, &j.lock);
        pthread_mutex_unlock(&j.lock);
    }
    task_unref(j.task);
    pthread_cond_destroy(&j.cond);
    pthread_mutex_destroy(&j.lock);
    close(fd);
}

/* POST /services/xenops: one JSON-RPC request through the method table
 * (the remote half of VM.import_metadata and friends). */
static void
route_rpc(struct server *srv, int fd, const struct migrate_http_req *req)
{
    struct migrate_state *m = srv->mig;

    if (migrate_http_serve_rpc(fd, req, m->methods, m->n_methods,
                               m->methods_ctx,
                               (size_t)srv->cfg->rpc_max_request_bytes))
        xo_err_clear();
    close(fd);
}

void
migrate_route(void *ctx, int fd, const struct migrate_http_req *req)
{
    struct server *srv = ctx;
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
        route_rpc(srv, fd, req);
    } else if (strncmp(p, "/migrate/vm/", 12) == 0) {
        route_receive(srv, fd, p + 12, req);
    } else if (strncmp(p, "/memory/", 8) == 0) {
        route_receive(srv, fd, p + 8, req);
    } else if (strncmp(p, "/migrate/mem/", 13) == 0 &&
               ids_is_uuid(p + 13)) {
        if (migrate_http_send_ok(fd) == 0) {
            mem_park(srv->mig, p + 13, fd);
        } else {
            close(fd);
        }
    } else {
        migrate_http_send_status(fd, 404, "Not Found");
        close(fd);
    }
}

/* ---- sender ---- */

struct send_job {
    struct server *srv;
    char vm[37];
    char tmp_src[37];
    char tmp_dest[37];
    char *url;
    char *vdi_map;              /* JSON text or NULL */
    char *vif_map;
    bool compress;
    bool legacy;
    struct task *task;
    int64_t t_pause;
    double paused_at;           /* wall clock, to line up with logs */
};

static void
send_job_free(struct send_job *j)
{
    task_unref(j->task);
    free(j->url);
    free(j->vdi_map);
    free(j->vif_map);
    free(j);
}

/* The backend's switch-over: pausing starts the downtime. */
static int
pause_source(void *arg)
{
    struct send_job *j = arg;
    struct backend *b = j->srv->backend;
    int rc = b->ops->vm_pause(b, j->vm);

    j->t_pause = now_ns();
    j->paused_at = wall_now();
    if (!rc)
        LOGVM(INFO, j->vm, "paused for the switch-over");
    return rc;
}

static void
on_progress(const struct backend_migrate_progress *p, void *arg)
{
    struct send_job *j = arg;
    char num[32];
    double done = p->bytes_sent + p->bytes_remaining
                      ? (double)p->bytes_sent /
                            (double)(p->bytes_sent + p->bytes_remaining)
                      : 0;

    /* Memory is most of the work: map it to 10%..90%. */
    task_set_progress(j->task, 0.1 + 0.8 * (done > 1 ? 1 : done));
    /* What Task.stat shows while the memory moves. */
    snprintf(num, sizeof(num), "%u", p->round);
    task_set_debug(j->task, "migration_round", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)p->bytes_sent);
    task_set_debug(j->task, "migration_bytes_sent", num);
    snprintf(num, sizeof(num), "%llu",
             (unsigned long long)p->bytes_remaining);
    task_set_debug(j->task, "migration_bytes_remaining", num);
    snprintf(num, sizeof(num), "%llu", (unsigned long long)p->dirty_rate);
    task_set_debug(j->task, "migration_dirty_pages_per_s", num);
    LOGVM(DEBUG, j->vm, "round %u: %llu bytes left, %llu pages/s dirtied",
          p->round, (unsigned long long)p->bytes_remaining,
          (unsigned long long)p->dirty_rate);
}

/* The VBDs that have a backend, as a Parallel of one leaf kind. */
static struct atom *
vbd_group(const struct server_vm_view *v, const char *vm,
          enum atom_kind kind, const char *desc)
{
    struct atom *p = atom_new_group(ATOM_PARALLEL, vm, desc);

    for (size_t i = 0; i < v->vm.n_vbds; i++)
        if (v->vbds[i].has_backend)
            atom_add(p, atom_new_dev(kind, vm, v->vbds[i].dev, false));
    if (p->n_children == 0) {
        atom_free(p);
        return NULL;
    }
    return p;
}

/*
 * Take the VM back on the source: its name (if it was renamed), its
 * disks, and unpause it. Used whenever the migration fails before the
 * receiver runs the VM.
 */
static void
source_resume(struct send_job *j, struct exec_op *op,
              const struct server_vm_view *v, bool renamed,
              bool deactivated)
{
    struct atom *t;

    if (renamed) {
        t = leaf(ATOM_VM_RENAME, j->tmp_src, j->vm);
        if (run_tree(op, t))
            LOGVM(ERROR, j->vm, "cannot rename '%s' back", j->tmp_src);
    }
    if (deactivated) {
        t = vbd_group(v, j->vm, ATOM_VBD_ACTIVATE, "VBDs.reactivate");
        if (run_tree(op, t))
            LOGVM(ERROR, j->vm, "cannot reactivate its disks");
    }
    t = atom_new(ATOM_VM_UNPAUSE, j->vm);
    if (run_tree(op, t))
        LOGVM(ERROR, j->vm, "cannot unpause after a failed migration");
    xo_err_clear();
    LOGVM(INFO, j->vm, "migration failed; running on the source again");
}

/*
 * Phase A can take long (every early attach): wait for the receiver's
 * handshake 1 on fd, but give up when the task is cancelled. Closing the
 * channel then makes the receiver clean up when its phase A ends.
 */
static int
wait_cancellable(int fd, struct task *task)
{
    int64_t end = now_ns() + (int64_t)HS_TIMEOUT_MS * 1000000;
    struct pollfd p = { fd, POLLIN, 0 };
    int rc;

    while ((rc = poll(&p, 1, 100)) <= 0) {
        if (rc < 0 && errno != EINTR)
            return xo_err_internal_code(XO_EIO, "poll: %s",
                                        strerror(errno));
        rc = task_check_cancel(task);
        if (rc)
            return rc;
        if (now_ns() >= end)
            return xo_err_internal_code(XO_ETIMEDOUT, "the receiver did "
                                        "not finish phase A");
    }
    return 0;
}

/* After a broken channel past the point of no return: does the VM run on
 * the receiver? 1 yes, 0 surely not, -1 unknown. */
static int
receiver_has_vm(const struct migrate_url *u, const char *vm)
{
    char *params = xasprintf("{\"debug_info\":\"migrate-probe\",\"id\":"
                             "\"%s\"}", vm);
    char *res = NULL, *err = NULL;
    int64_t end = now_ns() + (int64_t)PROBE_WINDOW_MS * 1000000;
    int verdict = -1;

    /* Until the window closes: a link that comes back within it settles
     * the outcome (and the source's cleanup) without anyone's help. */
    while (verdict < 0 && now_ns() < end) {
        if (migrate_http_rpc(u, "VM.stat", params, 5000, &res, &err)) {
            xo_err_clear();
            sleep(1);
            continue;
        }
        if (err)
            verdict = strstr(err, "Does_not_exist") ? 0 : -1;
        else
            verdict = strstr(res, "\"Running\"") ? 1 : 0;
        free(res);
        free(err);
        res = err = NULL;
        if (verdict < 0)
            sleep(1);
    }
    free(params);
    return verdict;
}

/* Append token=<ours> to the URL's query unless it names one. */
static void
add_token(struct server *srv, struct migrate_url *u)
{
    char *tok = NULL, *q;

    if (!srv->cfg->migration_token_file || strstr(u->query, "token="))
        return;
    if (migrate_token_load(srv->cfg->migration_token_file, &tok)) {
        xo_err_clear();
        return;
    }
    q = xasprintf("%s%stoken=%s", u->query, u->query[0] ? "&" : "", tok);
    free(u->query);
    u->query = q;
    free(tok);
}

static int
import_remote(struct send_job *j, const struct migrate_url *u)
{
    struct server *srv = j->srv;
    yajl_val vdi = NULL, vif = NULL;
    char *md = NULL, *md2 = NULL, *params = NULL, *res = NULL, *err = NULL;
    yajl_gen g;
    int rc = 0;

    if (j->vdi_map)
        rc = json_parse(j->vdi_map, strlen(j->vdi_map), &vdi);
    if (!rc && j->vif_map)
        rc = json_parse(j->vif_map, strlen(j->vif_map), &vif);
    if (!rc)
        rc = metadata_export(srv->store, j->vm, vdi, vif, &md);
    if (!rc)
        rc = metadata_set_vm_id(md, j->tmp_dest, &md2);
    if (rc)
        goto out;
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "debug_info");
    json_gen_str(g, task_dbg(j->task));
    json_gen_str(g, "metadata");
    json_gen_str(g, md2);
    yajl_gen_map_close(g);
    params = json_gen_take(g);
    rc = migrate_http_rpc(u, "VM.import_metadata", params, RPC_TIMEOUT_MS,
                          &res, &err);
    if (!rc && err) {
        LOGVM(ERROR, j->vm, "receiver refused the metadata: %s", err);
        rc = xo_err_set_json(XO_EFAIL, err);
        err = NULL;
    }
out:
    yajl_tree_free(vdi);
    yajl_tree_free(vif);
    free(md);
    free(md2);
    free(params);
    free(res);
    free(err);
    return rc;
}

static char *
result_json(struct send_job *j, const struct backend_migrate_stats *ms,
            int64_t t0, int64_t t_a, int64_t t_b, int64_t t_end,
            int64_t deact_ns, const char *rstats)
{
    yajl_val rs = NULL;
    yajl_gen g = json_gen_new();
    double v;

    if (rstats && json_parse(rstats, strlen(rstats), &rs))
        xo_err_clear();
    yajl_gen_map_open(g);
    json_gen_str(g, "downtime_ms");
    json_gen_fixed(g, ms_since(j->t_pause, t_end), 3);
    json_gen_str(g, "guest_downtime_ms");
    if (json_get_double(rs, "guest_downtime_ms", -1, &v) == 0 && v >= 0)
        json_gen_fixed(g, v, 3);
    else
        json_gen_null(g);
    json_gen_str(g, "paused_at");
    json_gen_fixed(g, j->paused_at, 6);
    json_gen_str(g, "mode");
    json_gen_str(g, j->legacy ? "legacy" : "split");
    json_gen_str(g, "bytes");
    json_gen_int(g, (long long)ms->bytes);
    json_gen_str(g, "rounds");
    json_gen_int(g, ms->rounds);
    json_gen_str(g, "total_ms");
    json_gen_fixed(g, ms_since(t0, t_end), 3);
    json_gen_str(g, "phase_a_ms");
    json_gen_fixed(g, ms_since(t0, t_a), 3);
    json_gen_str(g, "phase_b_ms");
    json_gen_fixed(g, ms_since(t_a, t_b), 3);
    json_gen_str(g, "final_round_ms");
    json_gen_fixed(g, (double)ms->final_ns / 1e6, 3);
    json_gen_str(g, "source_deactivate_ms");
    json_gen_fixed(g, (double)deact_ns / 1e6, 3);
    json_gen_str(g, "receiver");
    if (rs)
        json_gen_tree(g, rs);
    else
        json_gen_null(g);
    yajl_gen_map_close(g);
    yajl_tree_free(rs);
    return json_gen_take(g);
}

static void
send_run(void *arg)
{
    struct send_job *j = arg;
    struct server *srv = j->srv;
    struct backend_vm_state st;
    struct backend_migrate_opts mo;
    struct backend_migrate_stats ms;
    struct server_vm_view v;
    struct migrate_url u;
    struct migrate_kv ck[5];
    struct exec_op op;
    char *err = NULL, *rstats = NULL, *res = NULL, *marker = NULL;
    int64_t t0 = now_ns(), t_a = 0, t_b = 0, t_end, deact = 0;
    int vm_fd = -1, mem_fd = -1, rc;
    bool view = false, have_url = false, renamed = false;
    bool deactivated = false, unknown = false;

    memset(&ms, 0, sizeof(ms));
    exec_op_init(&op, mig_env(srv), j->task, j->legacy);
    queue_alias(srv->pool_default, j->vm, j->tmp_src);
    rc = srv->backend->ops->vm_get_state(srv->backend, j->vm, &st);
    if (!rc && st.power != BACKEND_RUNNING && st.power != BACKEND_PAUSED)
        rc = xo_err_bad_power_state(backend_power_name(st.power),
                                    "Running");
    if (!rc)
        rc = server_vm_view_load(srv, j->vm, &v);
    if (rc)
        goto fail;
    view = true;
    rc = migrate_url_parse(j->url, &u);
    if (rc)
        goto fail;
    have_url = true;
    add_token(srv, &u);
    marker = xasprintf("send-%s.json", j->vm);
    {
        char *json = xasprintf("{\"vm\":\"%s\",\"tmp\":\"%s\"}", j->vm,
                               j->tmp_src);

        journal_put(srv, marker, json);
        free(json);
    }

    /* 0: metadata under the receiver's temporary id. */
    rc = import_remote(j, &u);
    if (rc)
        goto fail;
    /* 1: the VM channel; the receiver runs phase A. */
    ck[0] = (struct migrate_kv){ (char *)"instance_id",
                                 (char *)srv->instance_id };
    ck[1] = (struct migrate_kv){ (char *)"final_id", j->vm };
    ck[2] = (struct migrate_kv){ (char *)"dbg", (char *)"migrate" };
    ck[3] = (struct migrate_kv){ (char *)"mem_migration", (char *)"1" };
    ck[4] = (struct migrate_kv){ (char *)"compress", (char *)"zstd" };
    rc = migrate_http_connect(&u, RPC_TIMEOUT_MS, &vm_fd);
    if (rc)
        goto fail_remote;
    {
        char *suffix = xasprintf("/migrate/vm/%s", j->tmp_dest);

        rc = migrate_http_put(vm_fd, &u, suffix, ck, j->compress ? 5 : 4,
                              RPC_TIMEOUT_MS);
        free(suffix);
    }
    if (!rc)
        rc = wait_cancellable(vm_fd, j->task);
    if (!rc)
        rc = migrate_handshake_recv(vm_fd, HS_TIMEOUT_MS, &err);
    if (!rc && err)
        rc = xo_err_set_json(XO_EFAIL, err), err = NULL;
    if (rc)
        goto fail_remote;
    t_a = now_ns();
    rc = task_check_cancel(j->task);
    if (rc)
        goto fail_remote;

    /* 2: the memory channel, then pre-copy and the switch-over. */
    {
        char *suffix = xasprintf("/migrate/mem/%s", j->tmp_dest);

        rc = migrate_http_connect(&u, RPC_TIMEOUT_MS, &mem_fd);
        if (!rc)
            rc = migrate_http_put(mem_fd, &u, suffix, ck, 3,
                                  RPC_TIMEOUT_MS);
        free(suffix);
    }
    if (!rc)
        rc = migrate_handshake_recv(mem_fd, HS_TIMEOUT_MS, &err);
    if (!rc && err)
        rc = xo_err_set_json(XO_EFAIL, err), err = NULL;
    if (!rc)
        rc = migrate_handshake_send(vm_fd, NULL);
    if (rc)
        goto fail_remote;
    fill_mig_opts(srv, &mo, j->compress, j->task);
    mo.pause = pause_source;
    mo.pause_arg = j;
    mo.progress = on_progress;
    mo.progress_arg = j;
    rc = srv->backend->ops->vm_migrate_send(srv->backend, j->vm, mem_fd,
                                            &mo, &ms);
    t_b = now_ns();
    if (rc)
        goto fail_mem;
    /* Downtime: free the disks for the receiver, take the temporary name. */
    deact = now_ns();
    rc = run_tree(&op, spread_activations(vbd_group(
                           &v, j->vm, ATOM_VBD_DEACTIVATE,
                           "VBDs.deactivate for migration")));
    deact = now_ns() - deact;
    deactivated = true;
    if (!rc) {
        rc = run_tree(&op, leaf(ATOM_VM_RENAME, j->vm, j->tmp_src));
        renamed = rc == 0;
    }
    if (rc)
        goto fail_mem;

    /* 3: the point of no return. */
    task_set_cancellable(j->task, false);
    if (migrate_handshake_send(vm_fd, NULL)) {
        rc = xo_err_internal_code(XO_EIO, "receiver went away before the "
                                  "switch-over");
        goto fail_mem;
    }
    /* 4: the receiver runs the VM (or says why not). */
    rc = migrate_handshake_recv(vm_fd, HS_TIMEOUT_MS, &err);
    t_end = now_ns();
    if (!rc && err) {
        LOGVM(ERROR, j->vm, "receiver failed after the switch-over: %s",
              err);
        rc = xo_err_set_json(XO_EFAIL, err);
        err = NULL;
        goto fail_mem;
    }
    if (rc) {
        int has;

        xo_err_clear();
        LOGVM(WARN, j->vm, "lost the receiver past the point of no return; "
              "asking it whether the VM runs there");
        has = receiver_has_vm(&u, j->vm);

        if (has == 0) {
            rc = xo_err_internal_code(XO_EIO, "receiver lost before "
                                      "running the VM");
            goto fail_mem;
        }
        if (has < 0) {
            LOGVM(ERROR, j->vm, "outcome unknown: left paused as '%s'",
                  j->tmp_src);
            rc = xo_err_internal("migration outcome unknown: receiver "
                                 "unreachable; VM left paused as %s",
                                 j->tmp_src);
            /* A restart renames it back (the marker stays). */
            unknown = true;
            goto fail;
        }
        xo_err_clear();
    } else if (migrate_handshake_recv(vm_fd, 5000, &rstats) || !rstats) {
        xo_err_clear();
    }
    LOGVM(INFO, j->vm, "migrated; downtime %.1f ms",
          ms_since(j->t_pause, t_end));

    /* The VM runs on the receiver: clean up the source domain. */
    {
        struct server_vm_view sv;

        if (server_vm_view_load(srv, j->tmp_src, &sv) == 0) {
            struct atom *t = atom_new_group(ATOM_SERIAL, j->tmp_src,
                                            "migration cleanup");

            /* VM.shutdown's plan, as xenopsd's cleanup: the devices'
             * active flags go too, or the temporary id's records stay and
             * the VM's next migration from this host cannot take it. */
            atom_add(t, expand_vm_poweroff(&sv.vm, j->legacy, -1));
            atom_add(t, atom_new(ATOM_VM_REMOVE, j->tmp_src));
            if (run_tree(&op, t))
                LOGVM(ERROR, j->tmp_src, "source cleanup failed");
            else
                forget_backend_records(srv, j->tmp_src);
            server_vm_view_dispose(&sv);
        }
        xo_err_clear();
    }
    exec_commit(&op);
    journal_drop(srv, marker);
    res = result_json(j, &ms, t0, t_a, t_b, t_end, deact, rstats);
    task_complete(j->task, res);
    goto out;

fail_mem:
    if (ms.paused || deactivated || renamed) {
        char *e = xo_err_take_json(rc);

        source_resume(j, &op, &v, renamed, deactivated);
        xo_err_set_json(rc, e);
    }
fail_remote:
    /* Nothing of ours needs undoing; the receiver cleans up its side when
     * its channels close. */
fail:
    exec_rollback(&op);
    if (marker && !unknown)
        journal_drop(srv, marker);
    LOGVM(WARN, j->vm, "migration failed: %s", xo_strerror(rc));
    task_fail(j->task, xo_err_take_json(rc));
out:
    if (vm_fd >= 0)
        close(vm_fd);
    if (mem_fd >= 0)
        close(mem_fd);
    if (have_url)
        migrate_url_dispose(&u);
    if (view)
        server_vm_view_dispose(&v);
    exec_op_dispose(&op);
    free(err);
    free(rstats);
    free(res);
    free(marker);
    send_job_free(j);
}

int
migrate_queue_send(struct server *srv, const char *dbg,
                   const struct migrate_send_args *a, char **task_id_r)
{
    struct send_job *j;
    int rc;

    *task_id_r = NULL;
    rc = ids_check_vm(a->vm);
    if (rc)
        return rc;
    if (!a->url)
        return xo_err_internal_code(XO_EINVAL, "xenops_url is required");
    {
        struct migrate_url u;

        rc = migrate_url_parse(a->url, &u);
        if (rc)
            return rc;
        migrate_url_dispose(&u);
    }
    if (!vmextra_exists(srv->store, a->vm))
        return xo_err_does_not_exist("VM", a->vm);
    j = xcalloc(1, sizeof(*j));
    j->srv = srv;
    xstrlcpy(j->vm, a->vm, sizeof(j->vm));
    ids_tmp_id(a->vm, '0', j->tmp_src);
    ids_tmp_id(a->vm, '1', j->tmp_dest);
    j->url = xstrdup(a->url);
    j->vdi_map = a->vdi_map ? json_tree_to_string(a->vdi_map) : NULL;
    j->vif_map = a->vif_map ? json_tree_to_string(a->vif_map) : NULL;
    j->compress = a->compress;
    j->legacy = server_legacy(srv);
    j->task = task_create(srv->tasks, dbg ? dbg : "");
    *task_id_r = xstrdup(task_id(j->task));
    queue_push(srv->pool_default, j->vm, send_run, j);
    return 0;
}

/* ---- start/stop ---- */

int
migrate_receiver_start(struct server *srv, const struct rpc_method *table,
                       size_t n, void *ctx)
{
    struct migrate_state *m = xcalloc(1, sizeof(*m));
    char *tok = NULL, *fwd = NULL;
    int rc = 0;

    pthread_mutex_init(&m->lock, NULL);
    pthread_cond_init(&m->cond, NULL);
    m->pool = queue_pool_new("migrate", MIGRATE_POOL_WORKERS);
    m->env = srv->env;
    m->env.parallel_pool = m->pool;
    srv->mig = m;
    migrate_recover(srv);
    m->methods = table;
    m->n_methods = n;
    m->methods_ctx = ctx;
    fwd = xasprintf("%s/xenopsd.forwarded", srv->cfg->sockets_path);
    rc = migrate_forwarded_start(fwd, migrate_route, srv, &m->fwd);
    if (rc)
        goto out;
    if (srv->cfg->migration_listen) {
        if (!srv->cfg->migration_token_file) {
            LOG(ERROR, "migration-listen needs migration-token-file");
            rc = xo_err_internal_code(XO_EINVAL, "migration-listen needs "
                                      "migration-token-file");
            goto out;
        }
        rc = migrate_token_load(srv->cfg->migration_token_file, &tok);
        if (!rc)
            rc = migrate_listener_start(srv->cfg->migration_listen, tok,
                                        migrate_route, srv, &m->tcp);
    }
out:
    free(tok);
    free(fwd);
    if (rc)
        migrate_receiver_stop(srv);
    return rc;
}

void
migrate_receiver_stop(struct server *srv)
{
    struct migrate_state *m = srv->mig;

    if (!m)
        return;
    migrate_listener_stop(m->tcp);
    migrate_listener_stop(m->fwd);
    queue_pool_free(m->pool);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
    srv->mig = NULL;
}
