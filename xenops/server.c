/* SPDX-License-Identifier: LGPL-2.1-only */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "admin.h"
#include "atoms/exec.h"
#include "atoms/expand.h"
#include "backend/backend.h"
#include "backend/sim/backend_sim.h"
#ifdef HAVE_XEN
#include "backend/xenlight/backend_xenlight.h"
#endif
#include "config.h"
#include "migrate/migrate.h"
#include "model.h"
#include "queue.h"
#include "server.h"
#include "server_priv.h"
#include "sm/sm.h"
#include "sm/sm_testdrv.h"
#include "sm/sr.h"
#include "task.h"
#include "updates.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

/* A queued operation, owned by the work item. */
struct server_job {
    struct server *srv;
    struct server_op_args args;     /* strings below are owned copies */
    char *vm;
    char *dev;
    char *path;
    char *text;
    bool legacy;
    struct task *task;
};

static void
make_instance_id(char *out)
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "re");

    if (!f || fread(b, 1, sizeof(b), f) != sizeof(b))
        memset(b, 0x5a, sizeof(b));
    if (f)
        fclose(f);
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, 37,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x",
             b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
             b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Whether id is in the n strings of list. */
static bool
str_in(char *const *list, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], id) == 0)
            return true;
    return false;
}

/*
 * Drop every attach record of VM id when it has no domain; add the
 * datapaths of a VM that has one to *needed (n_needed entries).
 */
static void
reconcile_vm(struct server *srv, const char *id, char ***needed,
             size_t *n_needed)
{
    struct vmextra_doc *doc = NULL;
    struct backend_vm_state st;
    size_t n;

    if (srv->backend->ops->vm_get_state(srv->backend, id, &st) ||
        vmextra_load(srv->store, id, &doc)) {
        LOG(WARN, "reconcile: cannot read VM '%s'; its attach records "
            "stay", id);
        xo_err_clear();
        goto out;
    }
    if (st.domid >= 0) {
        for (size_t i = 0; i < doc->n_attached; i++) {
            if (!doc->attached[i].dp[0])
                continue;
            *needed = xrealloc(*needed, (*n_needed + 1) * sizeof(**needed));
            (*needed)[(*n_needed)++] = xstrdup(doc->attached[i].dp);
        }
        goto out;
    }
    n = doc->n_attached;
    if (n == 0)
        goto out;
    /* No domain, so none of its VBDs is plugged: the records describe
     * attaches of a domain that is gone. Their datapaths are released
     * below (they are in the persisted table); a record kept here would
     * make a later VBD_activate trust a datapath that no longer exists. */
    while (doc->n_attached > 0)
        vmextra_doc_del_attached(doc, doc->attached[0].dev);
    if (vmextra_commit(srv->store, doc)) {
        LOG(ERROR, "reconcile: cannot drop the attach records of VM '%s'",
            id);
        xo_err_clear();
        goto out;
    }
    LOGVM(INFO, id, "reconcile: no domain; dropped %zu attach record(s)",
          n);
out:
    vmextra_doc_free(doc);
}

/*
 * Start-up reconciliation (design invariant 2): after a restart no
 * datapath stays attached or active that no VBD needs, and no attach
 * record outlives its domain.
 *
 * A datapath is needed when a VM that still has a domain holds an attach
 * record naming it; every other datapath of the persisted table (an old
 * domain's, a record already dropped, an attach that was in flight at a
 * crash) is destroyed through its driver: deactivate, then detach.
 *
 * On the simulator the domains lived in the previous daemon's memory, so
 * after a restart no VM has one: every attach record is dropped and every
 * datapath released. With a backend whose domains outlive the daemon
 * (xenlight) running VMs keep theirs.
 *
 * Runs in server_new, before any operation can. Failures are logged and
 * start-up goes on: a datapath whose release failed stays in the
 * persisted table, so the next start tries again.
 */
static void
reconcile_domains(struct server *srv)
{
    char **vms = NULL;
    size_t n = 0;

    if (srv->backend->ops->list_domains(srv->backend, &vms, &n)) {
        LOG(WARN, "reconcile: cannot list the backend's domains");
        xo_err_clear();
        return;
    }
    /* A domain we hold no records for is not ours to destroy (another
     * toolstack's, or a record lost by hand): say so and leave it. */
    for (size_t i = 0; i < n; i++)
        if (!vmextra_exists(srv->store, vms[i]))
            LOGVM(WARN, vms[i], "reconcile: a domain without records; "
                  "left alone");
    backend_list_free(vms, n);
}

static void
server_reconcile(struct server *srv)
{
    char **ids = NULL, **dps = NULL, **needed = NULL;
    size_t n_ids = 0, n_dps = 0, n_needed = 0;

    if (vmextra_list(srv->store, &ids, &n_ids)) {
        LOG(ERROR, "reconcile: cannot list VMs; keeping every datapath");
        xo_err_clear();
        return;
    }
    for (size_t i = 0; i < n_ids; i++)
        reconcile_vm(srv, ids[i], &needed, &n_needed);
    sm_dp_list(srv->sm, &dps, &n_dps);
    for (size_t i = 0; i < n_dps; i++) {
        if (str_in(needed, n_needed, dps[i]))
            continue;
        LOG(INFO, "reconcile: no VBD needs datapath '%s': releasing it",
            dps[i]);
        if (sm_dp_destroy(srv->sm, dps[i])) {
            LOG(ERROR, "reconcile: datapath '%s' could not be released; "
                "retrying at the next start", dps[i]);
            xo_err_clear();
        }
    }
    sm_dp_list_free(dps, n_dps);
    sm_dp_list_free(needed, n_needed);
    vmextra_list_free(ids, n_ids);
    reconcile_domains(srv);
}

static bool
admin_legacy_get(void *ctx)
{
    return server_legacy(ctx);
}

static void
admin_legacy_set(void *ctx, bool value)
{
    server_set_legacy(ctx, value);
}

/* The backend the configuration names (config_validate has checked that
 * it is built in). */
static int
server_backend_new(const struct config *cfg, struct backend **b_r)
{
    if (strcmp(cfg->backend, "simulator") == 0) {
        struct backend_sim_config sc;

        memset(&sc, 0, sizeof(sc));
        sc.memory_cap_bytes = cfg->sim_memory_cap_mib << 20;
        sc.dirty_pages_per_sec = cfg->sim_dirty_pages_per_sec;
        sc.heartbeat_ms = (int)cfg->sim_heartbeat_ms;
        return backend_sim_new(&sc, b_r);
    }
#ifdef HAVE_XEN
    if (strcmp(cfg->backend, "xenlight") == 0) {
        struct backend_xenlight_config xc = {
            cfg->xenlight_cpuid, (double)cfg->xenlight_unplug_timeout_s };

        return backend_xenlight_new(&xc, b_r);
    }
#endif
    LOG(ERROR, "backend '%s' is not built into this binary", cfg->backend);
    return xo_err_unimplemented(cfg->backend);
}

int
server_new(const struct config *cfg, struct backend *backend,
           struct server **srv_r)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    int n = cfg->worker_pool_size;
    int rc;

    *srv_r = NULL;
    srv->cfg = cfg;
    atomic_store(&srv->legacy, cfg->vbd_plug_unplug_legacy);
    make_instance_id(srv->instance_id);
    srv->featureset = server_host_featureset();
    srv->cpuinfo_path = "/proc/cpuinfo";
    rc = vmextra_store_open(cfg->database_path, cfg->persist, &srv->store);
    if (rc)
        goto out;
    if (backend)
        srv->backend = backend;
    else
        rc = server_backend_new(cfg, &srv->backend);
    if (rc)
        goto out;
    rc = sm_new(&srv->sm);
    if (rc)
        goto out;
    if (cfg->sim_srs) {
        rc = sm_testdrv_register_spec(srv->sm, cfg->sim_srs);
        if (rc)
            goto out;
    }
    {
        struct sr_config sc = { cfg->database_path, cfg->persist,
                                cfg->sm_dir, cfg->storage_script_root,
                                (int)cfg->sm_timeout_ms };

        rc = sr_registry_open(&sc, srv->sm, &srv->srs);
        if (rc)
            goto out;
    }
    /* After the SRs: loaded datapaths are bound to their drivers. */
    rc = sm_open_table(srv->sm, cfg->database_path, cfg->persist);
    if (rc)
        goto out;
    server_reconcile(srv);
    srv->updates = updates_new();
    srv->tasks = task_registry_new(srv->updates);
    srv->pool_default = queue_pool_new("default", n);
    srv->pool_parallel = queue_pool_new("parallel", n);
    srv->pool_nested = queue_pool_new("nested", n);
    srv->pool_receive = queue_pool_new("receive", n);
    srv->env.store = srv->store;
    srv->env.backend = srv->backend;
    srv->env.sm = srv->sm;
    srv->env.updates = srv->updates;
    srv->env.parallel_pool = srv->pool_parallel;
    srv->env.nested_pool = srv->pool_nested;
    *srv_r = srv;
    srv = NULL;
out:
    if (srv) {
        if (srv->backend && srv->backend != backend)
            srv->backend->ops->destroy(srv->backend);
        srv->backend = NULL;
        server_free(srv);
    }
    return rc;
}

void
server_free(struct server *srv)
{
    if (!srv)
        return;
    /* Operations first: they use everything else. */
    if (srv->pool_default)
        queue_pool_free(srv->pool_default);
    if (srv->pool_receive)
        queue_pool_free(srv->pool_receive);
    if (srv->pool_parallel)
        queue_pool_free(srv->pool_parallel);
    if (srv->pool_nested)
        queue_pool_free(srv->pool_nested);
    if (srv->tasks)
        task_registry_free(srv->tasks);
    if (srv->updates)
        updates_free(srv->updates);
    sr_registry_close(srv->srs);
    sm_free(srv->sm);
    if (srv->backend)
        srv->backend->ops->destroy(srv->backend);
    if (srv->store)
        vmextra_store_close(srv->store);
    free(srv->featureset);
    free(srv);
}

struct sm *
server_sm(struct server *srv)
{
    return srv->sm;
}

void
server_admin_deps(struct server *srv, struct admin_deps *d)
{
    memset(d, 0, sizeof(*d));
    d->cfg = srv->cfg;
    d->srs = srv->srs;
    d->tasks = srv->tasks;
    d->ctx = srv;
    d->get_legacy = admin_legacy_get;
    d->set_legacy = admin_legacy_set;
}

struct backend *
server_backend(struct server *srv)
{
    return srv->backend;
}

void
server_set_cpuinfo_path(struct server *srv, const char *path)
{
    srv->cpuinfo_path = path;
}

struct task_registry *
server_tasks(struct server *srv)
{
    return srv->tasks;
}

struct updates *
server_updates(struct server *srv)
{
    return srv->updates;
}

bool
server_legacy(struct server *srv)
{
    return atomic_load(&srv->legacy);
}

void
server_set_legacy(struct server *srv, bool legacy)
{
    atomic_store(&srv->legacy, legacy);
}

int
server_set_worker_pool_size(struct server *srv, int n)
{
    if (n < 1 || n > 256)
        return xo_err_internal_code(XO_EINVAL, "worker pool size %d out "
                                    "of range 1..256", n);
    queue_pool_resize(srv->pool_default, n);
    queue_pool_resize(srv->pool_parallel, n);
    queue_pool_resize(srv->pool_nested, n);
    queue_pool_resize(srv->pool_receive, n);
    return 0;
}

/* ---- what live migration needs from the server ---- */

static bool
mig_legacy(void *ctx)
{
    return server_legacy(ctx);
}

static int
mig_vm_view_load(void *ctx, const char *id, struct expand_vm *vm_r)
{
    struct server_vm_view v;
    int rc = server_vm_view_load(ctx, id, &v);

    if (!rc)
        *vm_r = v.vm;
    return rc;
}

static void
mig_vm_view_dispose(void *ctx, struct expand_vm *vm)
{
    /* The arrays are the view's own (server_vm_view_load). */
    free((struct expand_vbd *)vm->vbds);
    free((struct expand_vif *)vm->vifs);
    memset(vm, 0, sizeof(*vm));
}

void
server_migrate_deps(struct server *srv, struct migrate_deps *d)
{
    memset(d, 0, sizeof(*d));
    d->cfg = srv->cfg;
    d->store = srv->store;
    d->backend = srv->backend;
    d->tasks = srv->tasks;
    d->pool_default = srv->pool_default;
    d->pool_receive = srv->pool_receive;
    d->env = &srv->env;
    d->instance_id = srv->instance_id;
    d->ctx = srv;
    d->legacy = mig_legacy;
    d->vm_view_load = mig_vm_view_load;
    d->vm_view_dispose = mig_vm_view_dispose;
}

/* ---- operations ---- */

void
server_vm_view_dispose(struct server_vm_view *v)
{
    free(v->vbds);
    free(v->vifs);
}

int
server_vm_view_load(struct server *srv, const char *id,
                    struct server_vm_view *v)
{
    struct vmextra_doc *doc = NULL;
    struct model_vbd *vbd = NULL;
    int rc;

    memset(v, 0, sizeof(*v));
    v->vm.id = id;
    rc = vmextra_load(srv->store, id, &doc);
    if (rc)
        goto out;
    v->vbds = xcalloc(doc->n_vbds + 1, sizeof(*v->vbds));
    for (size_t i = 0; i < doc->n_vbds; i++) {
        struct expand_vbd *e = &v->vbds[i];

        rc = model_vbd_parse(doc->vbds[i].json, &vbd);
        if (rc)
            goto out;
        xstrlcpy(e->dev, vbd->dev, sizeof(e->dev));
        e->rw = vbd->rw;
        e->has_backend = vbd->backend.kind != MODEL_DISK_NONE;
        e->persistent = vbd->persistent;
        /* The driver decides; an explicit false in the Vbd.t or the SR's
         * attach-early policy "never" vetoes. */
        e->can_attach_early =
            sm_can_attach_early(srv->sm, &vbd->backend) &&
            sr_attach_early_allowed(srv->srs, vbd->backend.sr) &&
            !(vbd->can_attach_early_given && !vbd->can_attach_early);
        model_vbd_free(vbd);
        vbd = NULL;
    }
    v->vm.vbds = v->vbds;
    v->vm.n_vbds = doc->n_vbds;
    v->vifs = xcalloc(doc->n_vifs + 1, sizeof(*v->vifs));
    for (size_t i = 0; i < doc->n_vifs; i++)
        xstrlcpy(v->vifs[i].dev, doc->vifs[i].dev, sizeof(v->vifs[i].dev));
    v->vm.vifs = v->vifs;
    v->vm.n_vifs = doc->n_vifs;
out:
    model_vbd_free(vbd);
    vmextra_doc_free(doc);
    if (rc)
        server_vm_view_dispose(v);
    return rc;
}

static int
power_of(struct server *srv, const char *vm, enum backend_power *p)
{
    struct backend_vm_state st;
    int rc = srv->backend->ops->vm_get_state(srv->backend, vm, &st);

    *p = st.power;
    return rc;
}

/* xenopsd's perform checks: VM_start needs Halted; reboot and device
 * hot-plug need Running/Paused; resume needs Suspended/Halted. */
static int
check_power(struct server *srv, const struct server_op_args *a)
{
    enum backend_power p;
    int rc = power_of(srv, a->vm, &p);
    bool live = p == BACKEND_RUNNING || p == BACKEND_PAUSED;

    if (rc)
        return rc;
    switch (a->kind) {
    case SERVER_OP_VM_START:
        if (p != BACKEND_HALTED)
            return xo_err_bad_power_state(backend_power_name(p), "Halted");
        return 0;
    case SERVER_OP_VM_REBOOT:
    case SERVER_OP_VM_SUSPEND:
    case SERVER_OP_VBD_PLUG:
    case SERVER_OP_VBD_UNPLUG:
    case SERVER_OP_VIF_PLUG:
    case SERVER_OP_VIF_UNPLUG:
        if (!live)
            return xo_err_bad_power_state(backend_power_name(p), "Running");
        return 0;
    case SERVER_OP_VM_RESUME:
        if (live)
            return xo_err_bad_power_state(backend_power_name(p),
                                          "Suspended");
        return 0;
    default:
        return 0;
    }
}

static int
build_plan(struct server *srv, const struct server_op_args *a, bool legacy,
           struct atom **plan_r)
{
    struct server_vm_view v;
    struct atom_data data = { ATOM_DATA_DISK, (char *)a->path, -1 };
    struct atom *plan = NULL;
    int rc;

    *plan_r = NULL;
    if (a->kind == SERVER_OP_ATOMIC) {
        plan = a->dev ? atom_new_dev(a->atomic, a->vm, a->dev, a->flag)
                      : atom_new(a->atomic, a->vm);
        plan->flag = a->flag;
        plan->number = a->timeout;
        plan->ints[0] = a->ints[0];
        plan->ints[1] = a->ints[1];
        atom_set_text(plan, a->text);
        *plan_r = plan;
        return 0;
    }
    rc = server_vm_view_load(srv, a->vm, &v);
    if (rc)
        return rc;
    switch (a->kind) {
    case SERVER_OP_VM_START:
        plan = expand_vm_start(&v.vm, legacy, a->flag);
        break;
    case SERVER_OP_VM_SHUTDOWN:
        plan = expand_vm_poweroff(&v.vm, legacy, a->timeout);
        break;
    case SERVER_OP_VM_REBOOT:
        plan = expand_vm_reboot(&v.vm, legacy, a->timeout);
        break;
    case SERVER_OP_VM_SUSPEND:
        plan = expand_vm_suspend(&v.vm, legacy, &data);
        break;
    case SERVER_OP_VM_RESUME:
        plan = expand_vm_resume(&v.vm, legacy, &data);
        break;
    case SERVER_OP_VBD_PLUG:
    case SERVER_OP_VBD_UNPLUG: {
        bool found = false;

        for (size_t i = 0; i < v.vm.n_vbds; i++)
            found |= strcmp(v.vbds[i].dev, a->dev) == 0;
        if (!found) {
            char *id = xasprintf("%s.%s", a->vm, a->dev);

            rc = xo_err_does_not_exist("VBD", id);
            free(id);
            break;
        }
        plan = a->kind == SERVER_OP_VBD_PLUG
                   ? expand_vbd_hotplug(a->vm, a->dev, legacy)
                   : expand_vbd_hotunplug(a->vm, a->dev, legacy, a->flag);
        break;
    }
    case SERVER_OP_VIF_PLUG:
        plan = expand_vif_hotplug(a->vm, a->dev);
        break;
    case SERVER_OP_VIF_UNPLUG:
        plan = expand_vif_hotunplug(a->vm, a->dev, a->flag);
        break;
    default:
        rc = xo_err_internal("unknown operation");
        break;
    }
    server_vm_view_dispose(&v);
    *plan_r = plan;
    return rc;
}

int
server_plan(struct server *srv, const struct server_op_args *args,
            bool legacy, char **text_r)
{
    struct atom *plan = NULL;
    int rc = build_plan(srv, args, legacy, &plan);

    *text_r = NULL;
    if (!rc)
        *text_r = plan ? atom_format(plan) : xstrdup("");
    atom_free(plan);
    return rc;
}

static void
job_free(struct server_job *job)
{
    if (job->task)
        task_unref(job->task);
    free(job->vm);
    free(job->dev);
    free(job->path);
    free(job->text);
    free(job);
}

static void
job_run(void *arg)
{
    struct server_job *job = arg;
    struct server *srv = job->srv;
    struct atom *plan = NULL;
    struct exec_op op;
    int rc;

    exec_op_init(&op, &srv->env, job->task, job->legacy);
    rc = task_check_cancel(job->task);
    if (rc)
        goto out;
    rc = check_power(srv, &job->args);
    if (rc)
        goto out;
    rc = build_plan(srv, &job->args, job->legacy, &plan);
    if (rc || !plan)
        goto out;
    op.leaves_total = (int)atom_count_leaves(plan);
    LOGVM(INFO, job->vm, "task %s: running plan (%s mode, %d atoms)",
          task_id(job->task), job->legacy ? "legacy" : "split",
          op.leaves_total);
    rc = exec_run(&op, plan);
    if (rc) {
        struct xo_err_saved saved;

        /* The atom that failed logged why; the rollback is news. */
        xo_err_preserve(rc, &saved);
        LOGVM(INFO, job->vm, "task %s failed; rolling back",
              task_id(job->task));
        LOGVM(DEBUG, job->vm, "task %s: %s", task_id(job->task),
              saved.json);
        exec_rollback(&op);
        rc = xo_err_restore(&saved);
    } else {
        exec_commit(&op);
    }
out:
    if (rc)
        task_fail(job->task, xo_err_take_json(rc));
    else
        task_complete(job->task, NULL);
    exec_op_dispose(&op);
    atom_free(plan);
    job_free(job);
}

/* A relative xenstore path: [A-Za-z0-9_.@-] components joined by '/',
 * none of them "." or "..". */
static bool
xsdata_key_ok(const char *key)
{
    size_t n = strlen(key);

    if (n == 0 || n > 256 || key[0] == '/' || key[n - 1] == '/' ||
        strstr(key, "//") || strspn(key, "abcdefghijklmnopqrstuvwxyz"
                                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                         "0123456789_.@-/") != n)
        return false;
    for (const char *c = key; c;) {
        size_t len = strcspn(c, "/");

        if (strspn(c, ".") >= len)
            return false;
        c = c[len] ? c + len + 1 : NULL;
    }
    return true;
}

/* Extra checks of a canonical atom argument t beyond its type. */
static int
check_atom_arg(enum atom_kind kind, yajl_val t)
{
    struct model_disk d;
    int rc = 0;

    if (kind == ATOM_VM_SET_XSDATA) {
        for (size_t i = 0; i < t->u.object.len; i++)
            if (!xsdata_key_ok(t->u.object.keys[i]))
                return xo_err_internal_code(XO_EINVAL, "invalid xsdata "
                                            "key '%s'",
                                            t->u.object.keys[i]);
    } else if (kind == ATOM_VBD_INSERT) {
        rc = model_disk_parse(t, &d);
        model_disk_dispose(&d);
    }
    return rc;
}

/*
 * The canonical form of an atom's JSON argument (text), checked before the
 * operation is queued so that bad input never becomes a task.
 */
static int
atom_arg_canonical(const struct server_op_args *a, char **text_r)
{
    enum model_type type;
    const char *what;
    yajl_val t = NULL;
    int rc;

    *text_r = NULL;
    switch (a->kind == SERVER_OP_ATOMIC ? a->atomic : ATOM_KIND_COUNT) {
    case ATOM_VM_SET_XSDATA:
        type = MODEL_T_STRING_MAP;
        what = "xsdata";
        break;
    case ATOM_VBD_INSERT:
        type = MODEL_T_DISK;
        what = "disk";
        break;
    case ATOM_VIF_SET_LOCKING_MODE:
        type = MODEL_T_LOCKING_MODE;
        what = "locking_mode";
        break;
    default:
        *text_r = a->text ? xstrdup(a->text) : NULL;
        return 0;
    }
    if (!a->text)
        return xo_err_internal_code(XO_EINVAL, "argument '%s' missing",
                                    what);
    rc = json_parse(a->text, strlen(a->text), &t);
    if (!rc)
        rc = model_canonical(type, t, what, text_r);
    yajl_tree_free(t);
    t = NULL;
    if (!rc)
        rc = json_parse(*text_r, strlen(*text_r), &t);
    if (!rc)
        rc = check_atom_arg(a->atomic, t);
    yajl_tree_free(t);
    if (rc) {
        free(*text_r);
        *text_r = NULL;
    }
    return rc;
}

int
server_queue_op(struct server *srv, const char *dbg,
                const struct server_op_args *args, char **task_id_r)
{
    struct server_job *job;
    char *text = NULL;
    int rc;

    *task_id_r = NULL;
    rc = ids_check_vm(args->vm);
    if (rc)
        return rc;
    if (args->dev) {
        rc = ids_check_dev(args->dev);
        if (rc)
            return rc;
    }
    /* An async import may create the VM: the one call without it. */
    if (!(args->kind == SERVER_OP_ATOMIC &&
          args->atomic == ATOM_VM_IMPORT_METADATA) &&
        !vmextra_exists(srv->store, args->vm))
        return xo_err_does_not_exist("VM", args->vm);
    rc = atom_arg_canonical(args, &text);
    if (rc)
        return rc;
    job = xcalloc(1, sizeof(*job));
    job->srv = srv;
    job->args = *args;
    job->vm = xstrdup(args->vm);
    job->dev = args->dev ? xstrdup(args->dev) : NULL;
    job->path = args->path ? xstrdup(args->path) : NULL;
    job->text = text;
    job->args.vm = job->vm;
    job->args.dev = job->dev;
    job->args.path = job->path;
    job->args.text = job->text;
    /* Fixed now: a flag change applies to operations queued after it. */
    job->legacy = server_legacy(srv);
    job->task = task_create(srv->tasks, dbg ? dbg : "");
    *task_id_r = xstrdup(task_id(job->task));
    queue_push(srv->pool_default, job->vm, job_run, job);
    return 0;
}

char *
server_query_json(struct server *srv)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "name");
    json_gen_str(g, "xenops");
    json_gen_str(g, "vendor");
    json_gen_str(g, "XCP");
    json_gen_str(g, "version");
    json_gen_str(g, "0.1");
    json_gen_str(g, "features");
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    json_gen_str(g, "instance_id");
    json_gen_str(g, srv->instance_id);
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

char *
server_diagnostics_json(struct server *srv)
{
    yajl_gen g = json_gen_new();
    char *s;

    yajl_gen_map_open(g);
    json_gen_str(g, "legacy");
    json_gen_bool(g, server_legacy(srv));
    json_gen_str(g, "queues");
    s = queue_dump_json(srv->pool_default);
    json_gen_raw(g, s);
    free(s);
    json_gen_str(g, "datapaths");
    s = sm_dump_json(srv->sm);
    json_gen_raw(g, s);
    free(s);
    if (srv->backend->ops->diagnostics) {
        json_gen_str(g, "backend");
        s = srv->backend->ops->diagnostics(srv->backend);
        if (json_gen_raw(g, s))
            json_gen_null(g);
        free(s);
    }
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

int
server_sr_add(struct server *srv, const char *uuid, const char *type,
              const char *device_config_json)
{
    return sr_add(srv->srs, uuid, type, device_config_json);
}

int
server_sr_remove(struct server *srv, const char *uuid)
{
    return sr_remove(srv->srs, uuid);
}

char *
server_sr_list_json(struct server *srv)
{
    return sr_list_json(srv->srs);
}
