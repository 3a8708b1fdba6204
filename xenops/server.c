/* SPDX-License-Identifier: LGPL-2.1-only */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "backend.h"
#include "backend_sim.h"
#include "config.h"
#include "errors.h"
#include "exec.h"
#include "expand.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "model.h"
#include "queue.h"
#include "server.h"
#include "sm.h"
#include "sm_testdrv.h"
#include "task.h"
#include "updates.h"
#include "vmextra.h"
#include "xalloc.h"

struct server {
    const struct config *cfg;
    struct vmextra_store *store;
    struct backend *backend;
    struct sm *sm;
    struct updates *updates;
    struct task_registry *tasks;
    struct queue_pool *pool_default;
    struct queue_pool *pool_parallel;
    struct queue_pool *pool_nested;
    struct queue_pool *pool_receive;
    struct exec_env env;
    atomic_bool legacy;
    char instance_id[37];
};

/* A queued operation, owned by the work item. */
struct server_job {
    struct server *srv;
    struct server_op_args args;     /* strings below are owned copies */
    char *vm;
    char *dev;
    char *path;
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

int
server_new(const struct config *cfg, struct backend *backend,
           struct server **srv_r)
{
    struct server *srv = xcalloc(1, sizeof(*srv));
    struct backend_sim_config simcfg;
    int n = cfg->worker_pool_size;
    int rc;

    *srv_r = NULL;
    srv->cfg = cfg;
    atomic_store(&srv->legacy, cfg->vbd_plug_unplug_legacy);
    make_instance_id(srv->instance_id);
    rc = vmextra_store_open(cfg->database_path, cfg->persist, &srv->store);
    if (rc)
        goto out;
    if (backend) {
        srv->backend = backend;
    } else if (strcmp(cfg->backend, "simulator") == 0) {
        memset(&simcfg, 0, sizeof(simcfg));
        simcfg.memory_cap_bytes = cfg->sim_memory_cap_mib << 20;
        simcfg.dirty_pages_per_sec = cfg->sim_dirty_pages_per_sec;
        simcfg.heartbeat_ms = (int)cfg->sim_heartbeat_ms;
        rc = backend_sim_new(&simcfg, &srv->backend);
        if (rc)
            goto out;
    } else {
        LOG(ERROR, "backend '%s' is not built into this binary",
            cfg->backend);
        rc = xo_err_unimplemented(cfg->backend);
        goto out;
    }
    rc = sm_new(&srv->sm);
    if (rc)
        goto out;
    if (cfg->sim_srs) {
        rc = sm_testdrv_register_spec(srv->sm, cfg->sim_srs);
        if (rc)
            goto out;
    }
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
    sm_free(srv->sm);
    if (srv->backend)
        srv->backend->ops->destroy(srv->backend);
    if (srv->store)
        vmextra_store_close(srv->store);
    free(srv);
}

struct sm *
server_sm(struct server *srv)
{
    return srv->sm;
}

struct backend *
server_backend(struct server *srv)
{
    return srv->backend;
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

/* ---- records ---- */

static int
vm_set_fn(struct vmextra_doc *doc, const char *json)
{
    vmextra_doc_set_vm(doc, json);
    return 0;
}

int
server_vm_add(struct server *srv, yajl_val v, char **id_r)
{
    struct model_vm *vm = NULL;
    struct vmextra_doc *doc = NULL;
    int rc;

    *id_r = NULL;
    rc = model_vm_from_tree(v, &vm);
    if (rc)
        goto out;
    /* xapi re-adds VMs it already knows (resync): replace the Vm.t and
     * keep the devices. A conflict means a racing writer: retry once. */
    for (int i = 0; i < 2; i++) {
        vmextra_doc_free(doc);
        doc = NULL;
        rc = vmextra_load(srv->store, vm->id, &doc);
        if (rc == XO_ENOTFOUND) {
            xo_err_clear();
            rc = vmextra_doc_new(vm->id, &doc);
        }
        if (rc)
            goto out;
        vm_set_fn(doc, vm->json);
        rc = vmextra_commit(srv->store, doc);
        if (rc != XO_ECONFLICT && rc != XO_EEXISTS)
            break;
    }
    if (rc)
        goto out;
    updates_add(srv->updates, UPDATES_VM, vm->id, NULL);
    *id_r = xstrdup(vm->id);
out:
    vmextra_doc_free(doc);
    model_vm_free(vm);
    return rc;
}

int
server_vm_remove(struct server *srv, const char *id)
{
    struct exec_op op;
    struct atom *a;
    int rc;

    rc = ids_check_vm(id);
    if (rc)
        return rc;
    if (!vmextra_exists(srv->store, id))
        return xo_err_does_not_exist("VM", id);
    /* xenopsd runs VM.remove immediately, not on the VM's queue. */
    a = atom_new(ATOM_VM_REMOVE, id);
    exec_op_init(&op, &srv->env, NULL, server_legacy(srv));
    rc = exec_run(&op, a);
    exec_op_dispose(&op);
    atom_free(a);
    return rc;
}

static void
gen_vm_state(yajl_gen g, const struct backend_vm_state *st,
             const struct model_vm *vm)
{
    yajl_gen_map_open(g);
    json_gen_str(g, "power_state");
    json_gen_str(g, backend_power_name(st->power));
    json_gen_str(g, "domids");
    yajl_gen_array_open(g);
    if (st->domid >= 0)
        json_gen_int(g, st->domid);
    yajl_gen_array_close(g);
    json_gen_str(g, "consoles");
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    json_gen_str(g, "memory_target");
    json_gen_int(g, st->domid >= 0 ? vm->memory_dynamic_max : 0);
    json_gen_str(g, "memory_actual");
    json_gen_int(g, st->domid >= 0 ? vm->memory_dynamic_max : 0);
    json_gen_str(g, "memory_limit");
    json_gen_int(g, st->domid >= 0 ? vm->memory_static_max : 0);
    json_gen_str(g, "vcpu_target");
    json_gen_int(g, st->domid >= 0 ? vm->vcpus : 0);
    json_gen_str(g, "shadow_multiplier_target");
    json_gen_double(g, 1.0);
    json_gen_str(g, "rtc_timeoffset");
    json_gen_str(g, "");
    json_gen_str(g, "uncooperative_balloon_driver");
    json_gen_bool(g, false);
    json_gen_str(g, "guest_agent");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    json_gen_str(g, "xsdata_state");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    json_gen_str(g, "pv_drivers_detected");
    json_gen_bool(g, false);
    json_gen_str(g, "last_start_time");
    json_gen_double(g, st->last_start_time);
    json_gen_str(g, "hvm");
    json_gen_bool(g, vm->hvm);
    json_gen_str(g, "nomigrate");
    json_gen_bool(g, false);
    json_gen_str(g, "nested_virt");
    json_gen_bool(g, false);
    json_gen_str(g, "domain_type");
    json_gen_str(g, st->domid < 0 ? "Domain_undefined"
                    : vm->hvm ? "Domain_HVM" : "Domain_PV");
    json_gen_str(g, "featureset");
    json_gen_str(g, "");
    yajl_gen_map_close(g);
}

static int
gen_vm_pair(struct server *srv, yajl_gen g, const struct vmextra_doc *doc)
{
    struct backend_vm_state st;
    struct model_vm *vm = NULL;
    int rc;

    if (!doc->vm_json)
        return xo_err_does_not_exist("VM", doc->id);
    rc = model_vm_parse(doc->vm_json, &vm);
    if (rc)
        return rc;
    rc = srv->backend->ops->vm_get_state(srv->backend, doc->id, &st);
    if (!rc) {
        yajl_gen_array_open(g);
        json_gen_raw(g, doc->vm_json);
        gen_vm_state(g, &st, vm);
        yajl_gen_array_close(g);
    }
    model_vm_free(vm);
    return rc;
}

int
server_vm_stat(struct server *srv, const char *id, char **json_r)
{
    struct vmextra_doc *doc = NULL;
    yajl_gen g = NULL;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(id);
    if (rc)
        goto out;
    rc = vmextra_load(srv->store, id, &doc);
    if (rc)
        goto out;
    g = json_gen_new();
    rc = gen_vm_pair(srv, g, doc);
    if (rc)
        goto out;
    *json_r = json_gen_take(g);
    g = NULL;
out:
    if (g)
        yajl_gen_free(g);
    vmextra_doc_free(doc);
    return rc;
}

int
server_vm_exists(struct server *srv, const char *id, bool *r)
{
    int rc = ids_check_vm(id);

    if (!rc)
        *r = vmextra_exists(srv->store, id);
    return rc;
}

int
server_vm_list(struct server *srv, char **json_r)
{
    struct vmextra_doc *doc;
    char **ids = NULL;
    size_t n = 0;
    yajl_gen g;
    int rc;

    rc = vmextra_list(srv->store, &ids, &n);
    if (rc)
        return rc;
    g = json_gen_new();
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        /* A VM removed between list and load is simply not listed. */
        if (vmextra_load(srv->store, ids[i], &doc)) {
            xo_err_clear();
            continue;
        }
        if (doc->vm_json && gen_vm_pair(srv, g, doc))
            xo_err_clear();
        vmextra_doc_free(doc);
    }
    yajl_gen_array_close(g);
    vmextra_list_free(ids, n);
    *json_r = json_gen_take(g);
    return 0;
}

/* ---- devices ---- */

enum dev_kind { DEV_VBD, DEV_VIF };

struct dev_set_arg {
    enum dev_kind kind;
    const char *dev;
    const char *json;   /* NULL: delete */
};

static int
dev_set_fn(struct vmextra_doc *doc, void *arg)
{
    struct dev_set_arg *d = arg;

    if (!d->json)
        return d->kind == DEV_VBD ? vmextra_doc_del_vbd(doc, d->dev)
                                  : vmextra_doc_del_vif(doc, d->dev);
    if (d->kind == DEV_VBD)
        vmextra_doc_set_vbd(doc, d->dev, d->json);
    else
        vmextra_doc_set_vif(doc, d->dev, d->json);
    return 0;
}

static int
update_doc(struct server *srv, const char *vm,
           int (*fn)(struct vmextra_doc *, void *), void *arg)
{
    struct exec_op op;
    int rc;

    exec_op_init(&op, &srv->env, NULL, false);
    rc = exec_update_doc(&op, vm, fn, arg);
    exec_op_dispose(&op);
    return rc;
}

static int
dev_add(struct server *srv, enum dev_kind kind, const char *vm,
        const char *dev, const char *json, char **id_json_r)
{
    struct dev_set_arg d = { kind, dev, json };
    int rc;

    if (!vmextra_exists(srv->store, vm))
        return xo_err_does_not_exist("VM", vm);
    rc = update_doc(srv, vm, dev_set_fn, &d);
    if (rc)
        return rc;
    updates_add(srv->updates, kind == DEV_VBD ? UPDATES_VBD : UPDATES_VIF,
                vm, dev);
    *id_json_r = model_dev_id_json(vm, dev);
    return 0;
}

int
server_vbd_add(struct server *srv, yajl_val v, char **id_json_r)
{
    struct model_vbd *vbd = NULL;
    int rc;

    *id_json_r = NULL;
    rc = model_vbd_from_tree(v, &vbd);
    if (!rc)
        rc = dev_add(srv, DEV_VBD, vbd->vm, vbd->dev, vbd->json, id_json_r);
    model_vbd_free(vbd);
    return rc;
}

int
server_vif_add(struct server *srv, yajl_val v, char **id_json_r)
{
    struct model_vif *vif = NULL;
    int rc;

    *id_json_r = NULL;
    rc = model_vif_from_tree(v, &vif);
    if (!rc)
        rc = dev_add(srv, DEV_VIF, vif->vm, vif->dev, vif->json, id_json_r);
    model_vif_free(vif);
    return rc;
}

static int
check_dev_id(const char *vm, const char *dev)
{
    int rc = ids_check_vm(vm);

    return rc ? rc : ids_check_dev(dev);
}

static int
dev_remove(struct server *srv, enum dev_kind kind, const char *vm,
           const char *dev)
{
    struct backend *b = srv->backend;
    struct backend_vbd_state vst;
    struct dev_set_arg d = { kind, dev, NULL };
    bool active = false, plugged = false;
    int rc;

    rc = check_dev_id(vm, dev);
    if (rc)
        return rc;
    if (kind == DEV_VBD) {
        rc = b->ops->vbd_get_state(b, vm, dev, &vst);
        plugged = vst.plugged;
    } else {
        rc = b->ops->vif_get_state(b, vm, dev, &active, &plugged);
    }
    if (rc)
        return rc;
    if (plugged)
        return xo_err_tag(XO_ECONNECTED, "Device_is_connected");
    rc = update_doc(srv, vm, dev_set_fn, &d);
    if (rc == XO_ENOTFOUND) {
        char *id = xasprintf("%s.%s", vm, dev);

        rc = xo_err_does_not_exist(kind == DEV_VBD ? "VBD" : "VIF", id);
        free(id);
    }
    if (rc)
        return rc;
    updates_remove(srv->updates, kind == DEV_VBD ? UPDATES_VBD : UPDATES_VIF,
                   vm, dev);
    return 0;
}

int
server_vbd_remove(struct server *srv, const char *vm, const char *dev)
{
    return dev_remove(srv, DEV_VBD, vm, dev);
}

int
server_vif_remove(struct server *srv, const char *vm, const char *dev)
{
    return dev_remove(srv, DEV_VIF, vm, dev);
}

static void
gen_dev_pair(struct server *srv, yajl_gen g, enum dev_kind kind,
             const char *vm, const char *dev, const char *json)
{
    struct backend *b = srv->backend;
    struct backend_vbd_state vst;
    bool active = false, plugged = false;

    memset(&vst, 0, sizeof(vst));
    if (kind == DEV_VBD) {
        if (b->ops->vbd_get_state(b, vm, dev, &vst))
            xo_err_clear();
        active = vst.active;
        plugged = vst.plugged;
    } else if (b->ops->vif_get_state(b, vm, dev, &active, &plugged)) {
        xo_err_clear();
    }
    yajl_gen_array_open(g);
    json_gen_raw(g, json);
    yajl_gen_map_open(g);
    json_gen_str(g, "active");
    json_gen_bool(g, active);
    json_gen_str(g, "plugged");
    json_gen_bool(g, plugged);
    if (kind == DEV_VIF) {
        json_gen_str(g, "kthread_pid");
        json_gen_int(g, 0);
        json_gen_str(g, "media_present");
        json_gen_bool(g, plugged);
        json_gen_str(g, "pvs_rules_active");
        json_gen_bool(g, false);
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
}

static int
dev_stat(struct server *srv, enum dev_kind kind, const char *vm,
         const char *dev, char **json_r)
{
    struct vmextra_doc *doc = NULL;
    const char *json;
    yajl_gen g;
    int rc;

    *json_r = NULL;
    rc = check_dev_id(vm, dev);
    if (rc)
        goto out;
    rc = vmextra_load(srv->store, vm, &doc);
    if (rc)
        goto out;
    json = kind == DEV_VBD ? vmextra_doc_vbd(doc, dev)
                           : vmextra_doc_vif(doc, dev);
    if (!json) {
        char *id = xasprintf("%s.%s", vm, dev);

        rc = xo_err_does_not_exist(kind == DEV_VBD ? "VBD" : "VIF", id);
        free(id);
        goto out;
    }
    g = json_gen_new();
    gen_dev_pair(srv, g, kind, vm, dev, json);
    *json_r = json_gen_take(g);
out:
    vmextra_doc_free(doc);
    return rc;
}

int
server_vbd_stat(struct server *srv, const char *vm, const char *dev,
                char **json_r)
{
    return dev_stat(srv, DEV_VBD, vm, dev, json_r);
}

int
server_vif_stat(struct server *srv, const char *vm, const char *dev,
                char **json_r)
{
    return dev_stat(srv, DEV_VIF, vm, dev, json_r);
}

static int
dev_list(struct server *srv, enum dev_kind kind, const char *vm,
         char **json_r)
{
    struct vmextra_doc *doc = NULL;
    struct vmextra_rec *recs;
    size_t n;
    yajl_gen g;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    rc = vmextra_load(srv->store, vm, &doc);
    if (rc)
        return rc;
    recs = kind == DEV_VBD ? doc->vbds : doc->vifs;
    n = kind == DEV_VBD ? doc->n_vbds : doc->n_vifs;
    g = json_gen_new();
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        gen_dev_pair(srv, g, kind, vm, recs[i].dev, recs[i].json);
    yajl_gen_array_close(g);
    *json_r = json_gen_take(g);
    vmextra_doc_free(doc);
    return 0;
}

int
server_vbd_list(struct server *srv, const char *vm, char **json_r)
{
    return dev_list(srv, DEV_VBD, vm, json_r);
}

int
server_vif_list(struct server *srv, const char *vm, char **json_r)
{
    return dev_list(srv, DEV_VIF, vm, json_r);
}

/* ---- operations ---- */

/* What the expansions need from the VM's records, read now. */
struct vm_view {
    struct expand_vm vm;
    struct expand_vbd *vbds;
    struct expand_vif *vifs;
};

static void
vm_view_dispose(struct vm_view *v)
{
    free(v->vbds);
    free(v->vifs);
}

static int
vm_view_load(struct server *srv, const char *id, struct vm_view *v)
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
        /* The driver decides; an explicit false in the Vbd.t vetoes. */
        e->can_attach_early =
            sm_can_attach_early(srv->sm, &vbd->backend) &&
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
        vm_view_dispose(v);
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
    struct vm_view v;
    struct atom_data data = { ATOM_DATA_DISK, (char *)a->path, -1 };
    struct atom *plan = NULL;
    int rc;

    *plan_r = NULL;
    if (a->kind == SERVER_OP_ATOMIC) {
        plan = atom_new(a->atomic, a->vm);
        plan->flag = a->flag;
        *plan_r = plan;
        return 0;
    }
    rc = vm_view_load(srv, a->vm, &v);
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
    vm_view_dispose(&v);
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
        char *err = xo_err_take_json(rc);

        LOGVM(WARN, job->vm, "task %s failed: %s; rolling back",
              task_id(job->task), err);
        exec_rollback(&op);
        xo_err_set_json(rc, err);
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

int
server_queue_op(struct server *srv, const char *dbg,
                const struct server_op_args *args, char **task_id_r)
{
    struct server_job *job;
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
    if (!vmextra_exists(srv->store, args->vm))
        return xo_err_does_not_exist("VM", args->vm);
    job = xcalloc(1, sizeof(*job));
    job->srv = srv;
    job->args = *args;
    job->vm = xstrdup(args->vm);
    job->dev = args->dev ? xstrdup(args->dev) : NULL;
    job->path = args->path ? xstrdup(args->path) : NULL;
    job->args.vm = job->vm;
    job->args.dev = job->dev;
    job->args.path = job->path;
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
