/* SPDX-License-Identifier: LGPL-2.1-only */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_gen.h>

#include "admin.h"
#include "migrate/migrate.h"
#include "model.h"
#include "rpc/rpc_methods.h"
#include "server.h"
#include "task.h"
#include "updates.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

/* UPDATES.get never blocks a connection thread longer than this, so the
 * daemon can always stop. xapi asks for 30 s and loops. */
#define RPC_UPDATES_MAX_WAIT_S 60

#define SRV(ctx) (((struct rpc_methods_ctx *)(ctx))->srv)
#define MIG(ctx) (((struct rpc_methods_ctx *)(ctx))->mig)
#define ADM(ctx) (((struct rpc_methods_ctx *)(ctx))->admin)

/* ---- argument decoding ---- */

static int
arg_str(const struct rpc_request *req, const char *name, const char **r)
{
    *r = json_get_str(req->params, name);
    if (!*r)
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be a "
                                    "string", name);
    return 0;
}

static const char *
arg_dbg(const struct rpc_request *req)
{
    const char *d = json_get_str(req->params, "debug_info");

    return d ? d : "";
}

/* A VM id argument, validated. */
static int
arg_vm(const struct rpc_request *req, const char *name, const char **r)
{
    int rc = arg_str(req, name, r);

    return rc ? rc : ids_check_vm(*r);
}

/* A device id argument: [vm, dev], both validated. */
static int
arg_dev(const struct rpc_request *req, const char *name, const char **vm,
        const char **dev)
{
    yajl_val v = json_get(req->params, name);
    yajl_val a = json_array_at(v, 0), b = json_array_at(v, 1);
    int rc;

    if (json_array_len(v) != 2 || !YAJL_IS_STRING(a) || !YAJL_IS_STRING(b))
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be "
                                    "[vm, device]", name);
    *vm = a->u.string;
    *dev = b->u.string;
    rc = ids_check_vm(*vm);
    return rc ? rc : ids_check_dev(*dev);
}

static int
arg_obj(const struct rpc_request *req, const char *name, yajl_val *r)
{
    *r = json_get(req->params, name);
    if (!*r || !YAJL_IS_OBJECT(*r))
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be an "
                                    "object", name);
    return 0;
}

/* A required argument (present, not null) of each scalar kind. */
static yajl_val
arg_present(const struct rpc_request *req, const char *name)
{
    yajl_val v = json_get(req->params, name);

    return v && !YAJL_IS_NULL(v) ? v : NULL;
}

static int
arg_int(const struct rpc_request *req, const char *name, int64_t *r)
{
    if (json_to_int64(arg_present(req, name), r))
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be an "
                                    "integer", name);
    return 0;
}

static int
arg_double(const struct rpc_request *req, const char *name, double *r)
{
    if (json_to_double(arg_present(req, name), r))
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be a "
                                    "number", name);
    return 0;
}

static int
arg_bool(const struct rpc_request *req, const char *name, bool *r)
{
    yajl_val v = arg_present(req, name);

    if (!v || !(YAJL_IS_TRUE(v) || YAJL_IS_FALSE(v)))
        return xo_err_internal_code(XO_EINVAL, "argument '%s' must be a "
                                    "bool", name);
    *r = YAJL_IS_TRUE(v);
    return 0;
}

/* Any JSON value, as text for the server to decode (server_queue_op
 * canonicalises atom arguments). */
static int
arg_json(const struct rpc_request *req, const char *name, char **text_r)
{
    yajl_val v = arg_present(req, name);

    *text_r = NULL;
    if (!v)
        return xo_err_internal_code(XO_EINVAL, "argument '%s' missing",
                                    name);
    *text_r = json_tree_to_string(v);
    return 0;
}

static char *
json_string(const char *s)
{
    yajl_gen g = json_gen_new();

    json_gen_str(g, s);
    return json_gen_take(g);
}

static char *
json_bool(bool b)
{
    return xstrdup(b ? "true" : "false");
}

/* ---- generic ---- */

static int
m_query(void *ctx, const struct rpc_request *req, char **res)
{
    *res = server_query_json(SRV(ctx));
    return 0;
}

static int
m_get_diagnostics(void *ctx, const struct rpc_request *req, char **res)
{
    char *d = server_diagnostics_json(SRV(ctx));

    /* xenopsd returns a string. */
    *res = json_string(d);
    free(d);
    return 0;
}

/* ---- tasks ---- */

static int
m_task_stat(void *ctx, const struct rpc_request *req, char **res)
{
    struct task *t;
    const char *id;
    int rc = arg_str(req, "id", &id);

    if (rc)
        return rc;
    t = task_find(server_tasks(SRV(ctx)), id);
    if (!t)
        return xo_err_does_not_exist("task", id);
    *res = task_stat_json(t);
    task_unref(t);
    return 0;
}

static int
m_task_by_id(void *ctx, const struct rpc_request *req,
             int (*fn)(struct task_registry *, const char *))
{
    const char *id;
    int rc = arg_str(req, "id", &id);

    return rc ? rc : fn(server_tasks(SRV(ctx)), id);
}

static int
m_task_cancel(void *ctx, const struct rpc_request *req, char **res)
{
    return m_task_by_id(ctx, req, task_cancel);
}

static int
m_task_destroy(void *ctx, const struct rpc_request *req, char **res)
{
    return m_task_by_id(ctx, req, task_destroy);
}

static int
m_task_destroy_on_finish(void *ctx, const struct rpc_request *req,
                         char **res)
{
    return m_task_by_id(ctx, req, task_destroy_on_finish);
}

static int
m_task_list(void *ctx, const struct rpc_request *req, char **res)
{
    *res = task_list_json(server_tasks(SRV(ctx)));
    return 0;
}

static int
m_host_stat(void *ctx, const struct rpc_request *req, char **res)
{
    char *ext = admin_host_json(ADM(ctx));
    int rc = server_host_stat(SRV(ctx), ext, res);

    free(ext);
    return rc;
}

static int
m_host_set_worker_pool_size(void *ctx, const struct rpc_request *req,
                            char **res)
{
    int64_t n;
    int rc = json_get_int64(req->params, "pool_size", -1, &n);

    if (rc)
        return rc;
    if (n < 1 || n > 256)
        return xo_err_internal_code(XO_EINVAL, "argument 'pool_size' must "
                                    "be 1..256");
    return server_set_worker_pool_size(SRV(ctx), (int)n);
}

/* ---- VM records ---- */

static int
m_vm_add(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val vm;
    char *id = NULL;
    int rc = arg_obj(req, "vm", &vm);

    if (!rc)
        rc = server_vm_add(SRV(ctx), vm, &id);
    if (!rc)
        *res = json_string(id);
    free(id);
    return rc;
}

static int
m_vm_remove(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    int rc = arg_vm(req, "id", &id);

    return rc ? rc : server_vm_remove(SRV(ctx), id);
}

static int
m_vm_stat(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    int rc = arg_vm(req, "id", &id);

    return rc ? rc : server_vm_stat(SRV(ctx), id, res);
}

static int
m_vm_exists(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    bool e;
    int rc = arg_vm(req, "id", &id);

    if (!rc)
        rc = server_vm_exists(SRV(ctx), id, &e);
    if (!rc)
        *res = json_bool(e);
    return rc;
}

static int
m_vm_list(void *ctx, const struct rpc_request *req, char **res)
{
    return server_vm_list(SRV(ctx), res);
}

/* ---- queued VM and device operations ---- */

static int
queue(void *ctx, const struct rpc_request *req,
      const struct server_op_args *a, char **res)
{
    char *task = NULL;
    int rc = server_queue_op(SRV(ctx), arg_dbg(req), a, &task);

    if (!rc)
        *res = json_string(task);
    free(task);
    return rc;
}

/* Queue one atom on the VM's queue; a fills in its arguments. */
static int
queue_atomic(void *ctx, const struct rpc_request *req,
             struct server_op_args *a, enum atom_kind kind, char **res)
{
    a->kind = SERVER_OP_ATOMIC;
    a->atomic = kind;
    return queue(ctx, req, a, res);
}

/* A disk argument that must be ["Local", path]: the simulator has no VDI
 * to suspend to. The caller disposes d either way. */
static int
arg_local_disk(const struct rpc_request *req, const char *name,
               struct model_disk *d)
{
    int rc = model_disk_parse(json_get(req->params, name), d);

    if (!rc && d->kind != MODEL_DISK_LOCAL)
        rc = xo_err_unimplemented("suspend to a VDI on the simulator; use "
                                  "[\"Local\", path]");
    return rc;
}

/* The one argument a queued_method takes besides its id. */
enum queued_arg {
    QARG_NONE,
    QARG_FLAG,          /* optional bool -> flag, default flag_default */
    QARG_FLAG_REQUIRED, /* bool -> flag */
    QARG_INT,           /* integer -> ints[0] */
    QARG_DELAY,         /* optional number -> timeout, default -1 (none) */
    QARG_JSON,          /* any JSON value -> text */
    QARG_LOCAL_DISK,    /* ["Local", path] -> path */
};

/*
 * A queued method that takes an id (a VM id, or [vm, device] when dev)
 * and at most one more argument. m_queued finds the row by the request's
 * wire name, so each row's method is also its rpc_methods_table name.
 */
struct queued_method {
    const char *method;
    enum server_op_kind kind;
    enum atom_kind atomic;      /* kind SERVER_OP_ATOMIC only */
    bool dev;
    enum queued_arg arg;
    const char *arg_name;
    bool flag_default;
};

static const struct queued_method queued_methods[] = {
    { "VM.create", SERVER_OP_ATOMIC, .atomic = ATOM_VM_CREATE },
    { "VM.destroy", SERVER_OP_ATOMIC, .atomic = ATOM_VM_DESTROY },
    { "VM.pause", SERVER_OP_ATOMIC, .atomic = ATOM_VM_PAUSE },
    { "VM.unpause", SERVER_OP_ATOMIC, .atomic = ATOM_VM_UNPAUSE },
    { "VM.set_vcpus", SERVER_OP_ATOMIC, .atomic = ATOM_VM_SET_VCPUS,
      .arg = QARG_INT, .arg_name = "vcpus" },
    { "VM.set_xsdata", SERVER_OP_ATOMIC, .atomic = ATOM_VM_SET_XSDATA,
      .arg = QARG_JSON, .arg_name = "xsdata" },
    { "VM.start", SERVER_OP_VM_START,
      .arg = QARG_FLAG, .arg_name = "paused", .flag_default = true },
    { "VM.shutdown", SERVER_OP_VM_SHUTDOWN,
      .arg = QARG_DELAY, .arg_name = "delay" },
    { "VM.reboot", SERVER_OP_VM_REBOOT,
      .arg = QARG_DELAY, .arg_name = "delay" },
    { "VM.suspend", SERVER_OP_VM_SUSPEND,
      .arg = QARG_LOCAL_DISK, .arg_name = "suspend_vdi" },
    { "VM.resume", SERVER_OP_VM_RESUME,
      .arg = QARG_LOCAL_DISK, .arg_name = "suspend_vdi" },
    { "VBD.plug", SERVER_OP_VBD_PLUG, .dev = true },
    { "VBD.unplug", SERVER_OP_VBD_UNPLUG, .dev = true,
      .arg = QARG_FLAG, .arg_name = "force" },
    { "VBD.insert", SERVER_OP_ATOMIC, .atomic = ATOM_VBD_INSERT, .dev = true,
      .arg = QARG_JSON, .arg_name = "disk" },
    { "VBD.eject", SERVER_OP_ATOMIC, .atomic = ATOM_VBD_EJECT, .dev = true },
    { "VIF.plug", SERVER_OP_VIF_PLUG, .dev = true },
    { "VIF.unplug", SERVER_OP_VIF_UNPLUG, .dev = true,
      .arg = QARG_FLAG, .arg_name = "force" },
    { "VIF.set_carrier", SERVER_OP_ATOMIC,
      .atomic = ATOM_VIF_SET_CARRIER, .dev = true,
      .arg = QARG_FLAG_REQUIRED, .arg_name = "carrier" },
    { "VIF.set_locking_mode", SERVER_OP_ATOMIC,
      .atomic = ATOM_VIF_SET_LOCKING_MODE,
      .dev = true, .arg = QARG_JSON, .arg_name = "locking_mode" },
};

static const struct queued_method *
queued_find(const char *method)
{
    size_t n = sizeof(queued_methods) / sizeof(queued_methods[0]);

    for (size_t i = 0; i < n; i++) {
        if (strcmp(queued_methods[i].method, method) == 0)
            return &queued_methods[i];
    }
    return NULL;
}

/* Decode q's extra argument into a; text and disk are the caller's. */
static int
queued_arg(const struct rpc_request *req, const struct queued_method *q,
           struct server_op_args *a, char **text_r, struct model_disk *disk)
{
    switch (q->arg) {
    case QARG_NONE:
        return 0;
    case QARG_FLAG:
        return json_get_bool(req->params, q->arg_name, q->flag_default,
                             &a->flag);
    case QARG_FLAG_REQUIRED:
        return arg_bool(req, q->arg_name, &a->flag);
    case QARG_INT:
        return arg_int(req, q->arg_name, &a->ints[0]);
    case QARG_DELAY:
        return json_get_double(req->params, q->arg_name, -1, &a->timeout);
    case QARG_JSON:
        return arg_json(req, q->arg_name, text_r);
    case QARG_LOCAL_DISK:
        return arg_local_disk(req, q->arg_name, disk);
    }
    return xo_err_internal("queued method '%s' has an unknown argument kind",
                           q->method);
}

static int
m_queued(void *ctx, const struct rpc_request *req, char **res)
{
    const struct queued_method *q = queued_find(req->method);
    struct server_op_args a;
    struct model_disk disk;
    char *text = NULL;
    int rc;

    if (!q)
        return xo_err_internal("method '%s' is not a queued method",
                               req->method);
    memset(&a, 0, sizeof(a));
    memset(&disk, 0, sizeof(disk));
    a.kind = q->kind;
    a.atomic = q->atomic;
    /* An operation's delay defaults to none; an atom's number to 0. */
    a.timeout = q->kind == SERVER_OP_ATOMIC ? 0 : -1;
    rc = q->dev ? arg_dev(req, "id", &a.vm, &a.dev)
                : arg_vm(req, "id", &a.vm);
    if (!rc)
        rc = queued_arg(req, q, &a, &text, &disk);
    a.text = text;
    a.path = disk.path;
    if (!rc)
        rc = queue(ctx, req, &a, res);
    free(text);
    model_disk_dispose(&disk);
    return rc;
}

/* Not a queued_methods row: "force" is decoded before the id. */
static int
m_vm_build(void *ctx, const struct rpc_request *req, char **res)
{
    struct server_op_args a;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = json_get_bool(req->params, "force", false, &a.flag);
    if (!rc)
        rc = arg_vm(req, "id", &a.vm);
    return rc ? rc : queue_atomic(ctx, req, &a, ATOM_VM_BUILD, res);
}

static int
m_vm_set_memory_dynamic_range(void *ctx, const struct rpc_request *req,
                              char **res)
{
    struct server_op_args a;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = arg_vm(req, "id", &a.vm);
    if (!rc)
        rc = arg_int(req, "minimum", &a.ints[0]);
    if (!rc)
        rc = arg_int(req, "maximum", &a.ints[1]);
    return rc ? rc
              : queue_atomic(ctx, req, &a, ATOM_VM_SET_MEMORY_DYNAMIC_RANGE,
                             res);
}

static int
m_vm_delay(void *ctx, const struct rpc_request *req, char **res)
{
    struct server_op_args a;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = arg_vm(req, "id", &a.vm);
    if (!rc)
        rc = arg_double(req, "delay", &a.timeout);
    if (!rc && !(a.timeout >= 0))
        rc = xo_err_internal_code(XO_EINVAL, "argument 'delay' must not be "
                                  "negative");
    return rc ? rc : queue_atomic(ctx, req, &a, ATOM_VM_DELAY, res);
}

static int
m_vm_generate_state_string(void *ctx, const struct rpc_request *req,
                           char **res)
{
    yajl_val vm;
    char *state = NULL;
    int rc = arg_obj(req, "vm", &vm);

    if (!rc)
        rc = server_vm_generate_state_string(SRV(ctx), vm, &state);
    if (!rc)
        *res = json_string(state);
    free(state);
    return rc;
}

static int
m_vm_export_metadata(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    char *md = NULL;
    int rc = arg_vm(req, "id", &id);

    /* The result is a string holding the Metadata.t JSON. */
    if (!rc)
        rc = server_vm_export_metadata(SRV(ctx), id, &md);
    if (!rc)
        *res = json_string(md);
    free(md);
    return rc;
}

static int
m_vm_import_metadata(void *ctx, const struct rpc_request *req, char **res)
{
    const char *md;
    char *id = NULL;
    int rc = arg_str(req, "metadata", &md);

    if (!rc)
        rc = server_vm_import_metadata(SRV(ctx), md, &id);
    if (!rc)
        *res = json_string(id);
    free(id);
    return rc;
}

static int
m_vm_import_metadata_async(void *ctx, const struct rpc_request *req,
                           char **res)
{
    const char *md;
    char *task = NULL;
    int rc = arg_str(req, "metadata", &md);

    if (!rc)
        rc = server_vm_import_metadata_async(SRV(ctx), arg_dbg(req), md,
                                             &task);
    if (!rc)
        *res = json_string(task);
    free(task);
    return rc;
}

/* VM.migrate (id, vdi_map, vif_map, pci_map, xenops_url, compress,
 * verify_dest, localhost_migration) -> task. */
static int
m_vm_migrate(void *ctx, const struct rpc_request *req, char **res)
{
    struct migrate_send_args a;
    yajl_val pci;
    char *task = NULL;
    int rc;

    memset(&a, 0, sizeof(a));
    rc = arg_vm(req, "id", &a.vm);
    if (!rc)
        rc = arg_str(req, "xenops_url", &a.url);
    if (!rc)
        rc = json_get_bool(req->params, "compress", false, &a.compress);
    if (!rc)
        rc = json_get_bool(req->params, "verify_dest", false,
                           &a.verify_dest);
    if (!rc)
        rc = json_get_bool(req->params, "localhost_migration", false,
                           &a.localhost);
    if (rc)
        return rc;
    a.vdi_map = json_get(req->params, "vdi_map");
    a.vif_map = json_get(req->params, "vif_map");
    pci = json_get(req->params, "pci_map");
    if ((a.vdi_map && !YAJL_IS_OBJECT(a.vdi_map)) ||
        (a.vif_map && !YAJL_IS_OBJECT(a.vif_map)))
        return xo_err_internal_code(XO_EINVAL, "vdi_map and vif_map must be "
                                    "objects");
    if (pci && YAJL_IS_OBJECT(pci) && pci->u.object.len > 0)
        return xo_err_unimplemented("migration of PCI devices");
    if (!MIG(ctx))
        return xo_err_internal("live migration is not ready yet");
    rc = migrate_queue_send(MIG(ctx), arg_dbg(req), &a, &task);
    if (!rc)
        admin_note_migration(ADM(ctx), a.vm, task);
    if (!rc)
        *res = json_string(task);
    free(task);
    return rc;
}

/* ---- SRs (extension: a stand-alone xenopsd-c has no xapi SR layer) ---- */

/* SR.add {debug_info, sr: {uuid, type, device_config}} -> uuid */
static int
m_sr_add(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val sr, dc;
    const char *uuid, *type;
    char *dcj = NULL;
    int rc = arg_obj(req, "sr", &sr);

    if (rc)
        return rc;
    uuid = json_get_str(sr, "uuid");
    type = json_get_str(sr, "type");
    if (!uuid || !type)
        return xo_err_internal_code(XO_EINVAL, "sr needs 'uuid' and 'type' "
                                    "strings");
    dc = json_get(sr, "device_config");
    if (dc)
        dcj = json_tree_to_string(dc);
    rc = server_sr_add(SRV(ctx), uuid, type, dcj);
    free(dcj);
    if (!rc)
        *res = json_string(uuid);
    return rc;
}

static int
m_sr_remove(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    int rc = arg_str(req, "id", &id);

    return rc ? rc : server_sr_remove(SRV(ctx), id);
}

static int
m_sr_list(void *ctx, const struct rpc_request *req, char **res)
{
    *res = server_sr_list_json(SRV(ctx));
    return 0;
}

/* ---- devices ---- */

static int
m_vbd_add(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val v;
    int rc = arg_obj(req, "vbd", &v);

    return rc ? rc : server_vbd_add(SRV(ctx), v, res);
}

static int
m_vif_add(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val v;
    int rc = arg_obj(req, "vif", &v);

    return rc ? rc : server_vif_add(SRV(ctx), v, res);
}

static int
m_vbd_remove(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm, *dev;
    int rc = arg_dev(req, "id", &vm, &dev);

    return rc ? rc : server_vbd_remove(SRV(ctx), vm, dev);
}

static int
m_vif_remove(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm, *dev;
    int rc = arg_dev(req, "id", &vm, &dev);

    return rc ? rc : server_vif_remove(SRV(ctx), vm, dev);
}

static int
m_vbd_stat(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm, *dev;
    int rc = arg_dev(req, "id", &vm, &dev);

    return rc ? rc : server_vbd_stat(SRV(ctx), vm, dev, res);
}

static int
m_vif_stat(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm, *dev;
    int rc = arg_dev(req, "id", &vm, &dev);

    return rc ? rc : server_vif_stat(SRV(ctx), vm, dev, res);
}

static int
m_vbd_list(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm;
    int rc = arg_vm(req, "id", &vm);

    return rc ? rc : server_vbd_list(SRV(ctx), vm, res);
}

static int
m_vif_list(void *ctx, const struct rpc_request *req, char **res)
{
    const char *vm;
    int rc = arg_vm(req, "id", &vm);

    return rc ? rc : server_vif_list(SRV(ctx), vm, res);
}

/* ---- UPDATES ---- */

static int
m_updates_get(void *ctx, const struct rpc_request *req, char **res)
{
    int64_t from, timeout;
    int rc = json_get_int64(req->params, "last_id", -1, &from);

    if (!rc)
        rc = json_get_int64(req->params, "timeout", RPC_UPDATES_MAX_WAIT_S,
                            &timeout);
    if (rc)
        return rc;
    if (timeout < 0 || timeout > RPC_UPDATES_MAX_WAIT_S)
        timeout = RPC_UPDATES_MAX_WAIT_S;
    *res = updates_get(server_updates(SRV(ctx)), from, (double)timeout,
                       NULL);
    return 0;
}

static int
m_updates_last_id(void *ctx, const struct rpc_request *req, char **res)
{
    *res = xasprintf("%lld",
                     (long long)updates_last_id(server_updates(SRV(ctx))));
    return 0;
}

static int
m_updates_inject_barrier(void *ctx, const struct rpc_request *req,
                         char **res)
{
    const char *vm;
    int64_t id;
    int rc = arg_vm(req, "vm_id", &vm);

    if (!rc)
        rc = json_get_int64(req->params, "id", -1, &id);
    if (!rc && id < 0)
        rc = xo_err_internal_code(XO_EINVAL, "argument 'id' must be a "
                                  "non-negative integer");
    if (!rc)
        updates_inject_barrier(server_updates(SRV(ctx)), vm, id);
    return rc;
}

static int
m_updates_remove_barrier(void *ctx, const struct rpc_request *req,
                         char **res)
{
    int64_t id;
    int rc = json_get_int64(req->params, "id", -1, &id);

    return rc ? rc : updates_remove_barrier(server_updates(SRV(ctx)), id);
}

static int
m_updates_refresh_vm(void *ctx, const struct rpc_request *req, char **res)
{
    struct server *srv = SRV(ctx);
    const char *vm;
    char *list = NULL;
    yajl_val t = NULL;
    const char *vbds[64];
    int n = 0, rc;

    rc = arg_vm(req, "id", &vm);
    if (!rc)
        rc = server_vbd_list(srv, vm, &list);
    if (!rc)
        rc = json_parse(list, strlen(list), &t);
    if (rc)
        goto out;
    for (size_t i = 0; i < json_array_len(t) && n < 64; i++) {
        yajl_val id = json_get(json_array_at(json_array_at(t, i), 0), "id");
        yajl_val dev = json_array_at(id, 1);

        if (dev && YAJL_IS_STRING(dev))
            vbds[n++] = dev->u.string;
    }
    updates_refresh_vm(server_updates(srv), vm, vbds, n, NULL, 0);
out:
    yajl_tree_free(t);
    free(list);
    return rc;
}

/* ---- DEBUG ---- */

static int
m_debug_trigger(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val args = json_get(req->params, "args");
    yajl_val a0 = json_array_at(args, 0), a1 = json_array_at(args, 1);
    const char *cmd;
    int64_t n;
    int rc = arg_str(req, "cmd", &cmd);

    if (rc)
        return rc;
    if (strcmp(cmd, "set-cancel-trigger") == 0) {
        if (!a0 || !YAJL_IS_STRING(a0) || json_to_int64(a1, &n) || n < 1)
            return xo_err_internal_code(XO_EINVAL, "set-cancel-trigger "
                                        "takes [dbg, n]");
        task_registry_set_cancel_trigger(server_tasks(SRV(ctx)),
                                         a0->u.string, (int)n);
        return 0;
    }
    return xo_err_unimplemented(cmd);
}

static int
m_debug_shutdown(void *ctx, const struct rpc_request *req, char **res)
{
    struct rpc_methods_ctx *c = ctx;

    LOG(INFO, "DEBUG.shutdown requested by uid %u",
        (unsigned)req->peer_uid);
    if (c->shutdown)
        c->shutdown(c->shutdown_opaque);
    return 0;
}

/* ---- administration (extension: admin.h) ---- */

static int
m_host_get_features(void *ctx, const struct rpc_request *req, char **res)
{
    *res = admin_features_json(ADM(ctx));
    return 0;
}

/* HOST.set_feature {debug_info, name, value}: value "true" | "false" or a
 * JSON bool. */
static int
m_host_set_feature(void *ctx, const struct rpc_request *req, char **res)
{
    yajl_val v = arg_present(req, "value");
    const char *name, *value;
    int rc = arg_str(req, "name", &name);

    if (rc)
        return rc;
    if (v && YAJL_IS_TRUE(v))
        value = "true";
    else if (v && YAJL_IS_FALSE(v))
        value = "false";
    else if (v && YAJL_IS_STRING(v))
        value = v->u.string;
    else
        return xo_err_internal_code(XO_EINVAL, "argument 'value' must be "
                                    "true or false");
    return admin_set_feature(ADM(ctx), name, value,
                             req->peer_uid, res);
}

/* SR.set_attach_early {debug_info, id, value: "auto" | "never"} */
static int
m_sr_set_attach_early(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id, *value;
    int rc = arg_str(req, "id", &id);

    if (!rc)
        rc = arg_str(req, "value", &value);
    return rc ? rc : admin_sr_set_attach_early(ADM(ctx), id,
                                               value, req->peer_uid);
}

/* VM.migration_stats {debug_info, id}: the last migration of the VM. */
static int
m_vm_migration_stats(void *ctx, const struct rpc_request *req, char **res)
{
    const char *id;
    int rc = arg_vm(req, "id", &id);

    return rc ? rc : admin_migration_stats(ADM(ctx), id, res);
}

const struct rpc_method rpc_methods_table[] = {
    { "query", m_query },
    { "get_diagnostics", m_get_diagnostics },
    { "Task.stat", m_task_stat },
    { "Task.cancel", m_task_cancel },
    { "Task.destroy", m_task_destroy },
    { "Task.destroy_on_finish", m_task_destroy_on_finish },
    { "Task.list", m_task_list },
    { "HOST.stat", m_host_stat },
    { "HOST.set_worker_pool_size", m_host_set_worker_pool_size },
    { "VM.add", m_vm_add },
    { "VM.remove", m_vm_remove },
    { "VM.stat", m_vm_stat },
    { "VM.exists", m_vm_exists },
    { "VM.list", m_vm_list },
    { "VM.create", m_queued },
    { "VM.build", m_vm_build },
    { "VM.destroy", m_queued },
    { "VM.pause", m_queued },
    { "VM.unpause", m_queued },
    { "VM.start", m_queued },
    { "VM.shutdown", m_queued },
    { "VM.reboot", m_queued },
    { "VM.suspend", m_queued },
    { "VM.resume", m_queued },
    { "VM.migrate", m_vm_migrate },
    { "SR.add", m_sr_add },
    { "SR.remove", m_sr_remove },
    { "SR.list", m_sr_list },
    { "VM.set_vcpus", m_queued },
    { "VM.set_memory_dynamic_range", m_vm_set_memory_dynamic_range },
    { "VM.set_xsdata", m_queued },
    { "VM.delay", m_vm_delay },
    { "VM.generate_state_string", m_vm_generate_state_string },
    { "VM.export_metadata", m_vm_export_metadata },
    { "VM.import_metadata", m_vm_import_metadata },
    { "VM.import_metadata_async", m_vm_import_metadata_async },
    { "VBD.add", m_vbd_add },
    { "VBD.remove", m_vbd_remove },
    { "VBD.stat", m_vbd_stat },
    { "VBD.list", m_vbd_list },
    { "VBD.plug", m_queued },
    { "VBD.unplug", m_queued },
    { "VBD.insert", m_queued },
    { "VBD.eject", m_queued },
    { "VIF.add", m_vif_add },
    { "VIF.remove", m_vif_remove },
    { "VIF.stat", m_vif_stat },
    { "VIF.list", m_vif_list },
    { "VIF.plug", m_queued },
    { "VIF.unplug", m_queued },
    { "VIF.set_carrier", m_queued },
    { "VIF.set_locking_mode", m_queued },
    { "UPDATES.get", m_updates_get },
    { "UPDATES.last_id", m_updates_last_id },
    { "UPDATES.inject_barrier", m_updates_inject_barrier },
    { "UPDATES.remove_barrier", m_updates_remove_barrier },
    { "UPDATES.refresh_vm", m_updates_refresh_vm },
    { "DEBUG.trigger", m_debug_trigger },
    { "DEBUG.shutdown", m_debug_shutdown },
    { "HOST.get_features", m_host_get_features },
    { "HOST.set_feature", m_host_set_feature },
    { "SR.set_attach_early", m_sr_set_attach_early },
    { "VM.migration_stats", m_vm_migration_stats },
};

const size_t rpc_methods_count =
    sizeof(rpc_methods_table) / sizeof(rpc_methods_table[0]);
