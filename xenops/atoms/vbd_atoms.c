/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * VBD atoms. A plug is VBD_attach (SM attach: slow, may be shared between
 * hosts and domains) then VBD_activate (SM activate + the block device in
 * the domain: fast, exclusive). The hand-off between them is the VM's
 * attached_vdis record, keyed by device id only, holding the datapath id
 * and what the attach produced.
 *
 * Difference from xenopsd, on purpose: the record lives from VBD_attach to
 * VBD_detach (xenopsd drops it inside VBD_activate and later recovers the
 * datapath from xenstore). Keeping it means deactivate/detach and crash
 * reconciliation always know which datapath a VBD holds, including VBDs
 * that were attached early and never activated, which xenopsd leaks when a
 * migration fails before the downtime.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atoms/atoms_priv.h"
#include "backend/backend.h"
#include "model.h"
#include "sm/sm.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

struct record_arg {
    const struct vmextra_attached *set;   /* add/replace, or */
    const char *del_dev;                  /* remove (missing is fine) */
};

static int
record_fn(struct vmextra_doc *doc, void *arg)
{
    struct record_arg *r = arg;

    if (r->set) {
        vmextra_doc_set_attached(doc, r->set);
        return 0;
    }
    return vmextra_doc_del_attached(doc, r->del_dev) == 0 ? 0 : 1;
}

/* A private copy of the attach record of dev, or NULL. */
static struct vmextra_attached *
record_get(struct exec_op *op, const char *vm, const char *dev)
{
    struct vmextra_doc *doc = NULL;
    const struct vmextra_attached *a;
    struct vmextra_attached *copy = NULL;

    if (vmextra_load(op->env->store, vm, &doc)) {
        xo_err_clear();
        return NULL;
    }
    a = vmextra_doc_attached(doc, dev);
    if (a) {
        copy = xcalloc(1, sizeof(*copy));
        *copy = *a;
        copy->dp = xstrdup(a->dp);
        copy->attach_info = xstrdup(a->attach_info);
    }
    vmextra_doc_free(doc);
    return copy;
}

static void
record_free(struct vmextra_attached *a)
{
    if (!a)
        return;
    free(a->dp);
    free(a->attach_info);
    free(a);
}

/* attach_info is {"params": "..."}; returns a copy of params or NULL. */
static char *
record_params(const struct vmextra_attached *a)
{
    yajl_val t = NULL;
    const char *p;
    char *out = NULL;

    if (json_parse(a->attach_info, strlen(a->attach_info), &t) == 0) {
        p = json_get_str(t, "params");
        out = p ? xstrdup(p) : NULL;
    }
    xo_err_clear();
    yajl_tree_free(t);
    return out;
}

/*
 * VBD_set_active (vm, dev, value): marks the VBD active (or not) in the
 * backend, which refuses to plug a VBD that is not active. Idempotent.
 * Undone by VBD_set_active false.
 */
int
vbd_atom_set_active(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vbd_set_active(b, a->vm, a->dev, a->flag);

    if (!rc)
        atoms_signal_vbd(op, a->vm, a->dev);
    return rc;
}

/*
 * Attach: SM attach for datapath vbd/<domid>/<dev> and the attach record.
 * Skips a VBD that is not active and an empty drive, as xenopsd does.
 * Idempotent (the SM layer returns the same params for the same dp).
 */
static int do_deactivate(struct exec_op *op, const char *vm,
                         const char *dev, bool force);
static int do_detach(struct exec_op *op, const char *vm, const char *dev);

/* What the journal runs to undo an attach and an activation. */
static int
undo_attach(struct exec_op *op, const char *vm, const char *dev)
{
    return do_detach(op, vm, dev);
}

static int
undo_activate(struct exec_op *op, const char *vm, const char *dev)
{
    return do_deactivate(op, vm, dev, true);
}

int
vbd_release(struct exec_op *op, const char *vm, const char *dev)
{
    return do_detach(op, vm, dev);
}

static int
do_attach(struct exec_op *op, const char *vm, const char *dev)
{
    struct backend *b = op->env->backend;
    struct model_vbd *vbd = NULL;
    struct backend_vbd_state st;
    struct vmextra_attached rec;
    struct record_arg ra = { &rec, NULL };
    yajl_gen g;
    char *dp = NULL, *params = NULL, *info = NULL;
    char domain[16];
    int domid, rc;

    rc = atoms_load_vbd(op, vm, dev, &vbd);
    if (rc)
        goto out;
    if (vbd->backend.kind == MODEL_DISK_NONE) {
        LOGVM(DEBUG, vm, "VBD '%s' is an empty drive: nothing to attach",
              dev);
        goto out;
    }
    rc = b->ops->vbd_get_state(b, vm, dev, &st);
    if (rc)
        goto out;
    if (!st.active) {
        LOGVM(INFO, vm, "VBD '%s' is not active: not attaching", dev);
        goto out;
    }
    rc = atoms_domid(op, vm, &domid);
    if (rc)
        goto out;
    snprintf(domain, sizeof(domain), "%d", domid);
    dp = xasprintf("vbd/%d/%s", domid, dev);
    rc = sm_attach(op->env->sm, dp, &vbd->backend, domain, vbd->rw, &params);
    if (rc)
        goto out;
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "params");
    json_gen_str(g, params);
    json_gen_str(g, "disk");
    json_gen_str(g, vbd->backend.path);
    json_gen_str(g, "rw");
    json_gen_bool(g, vbd->rw);
    yajl_gen_map_close(g);
    info = json_gen_take(g);

    memset(&rec, 0, sizeof(rec));
    xstrlcpy(rec.dev, dev, sizeof(rec.dev));
    rec.dp = dp;
    rec.domid = 0;      /* backend domain: dom0 */
    rec.attach_info = info;
    rc = atoms_update_doc(op, vm, record_fn, &ra);
    if (rc) {
        /* Without the record nobody could find this datapath again. */
        sm_dp_destroy(op->env->sm, dp);
        goto out;
    }
    exec_journal(op, undo_attach, "detaching VBD", vm, dev);
    atoms_signal_vbd(op, vm, dev);
out:
    model_vbd_free(vbd);
    free(dp);
    free(params);
    free(info);
    return rc;
}

/*
 * Activate: SM activate of the recorded datapath, then the block device in
 * the domain. Without an attach record this is an error, not a silent
 * no-op (xenopsd logs and does nothing, leaving the disk unplugged).
 */
static int
do_activate(struct exec_op *op, const char *vm, const char *dev)
{
    struct backend *b = op->env->backend;
    struct model_vbd *vbd = NULL;
    struct vmextra_attached *rec = NULL;
    struct backend_vbd_state st;
    char *params = NULL, *expect_dp = NULL;
    int domid, rc;

    rc = atoms_load_vbd(op, vm, dev, &vbd);
    if (rc)
        goto out;
    if (vbd->backend.kind == MODEL_DISK_NONE)
        goto out;
    rc = b->ops->vbd_get_state(b, vm, dev, &st);
    if (rc)
        goto out;
    if (st.plugged)
        goto out;
    rec = record_get(op, vm, dev);
    if (!rec) {
        LOGVM(ERROR, vm, "VBD '%s' has no attach record; refusing to "
              "activate", dev);
        rc = xo_err_internal("VBD %s of VM %s has no attach record: "
                             "VBD_attach must run before VBD_activate",
                             dev, vm);
        goto out;
    }
    rc = atoms_domid(op, vm, &domid);
    if (rc)
        goto out;
    expect_dp = xasprintf("vbd/%d/%s", domid, dev);
    if (vbd->backend.kind == MODEL_DISK_VDI &&
        strcmp(expect_dp, rec->dp) != 0) {
        LOGVM(ERROR, vm, "attach record of VBD '%s' is for datapath '%s', "
              "not '%s'", dev, rec->dp, expect_dp);
        rc = xo_err_internal("attach record of VBD %s is stale (%s)", dev,
                             rec->dp);
        goto out;
    }
    params = record_params(rec);
    if (!params) {
        rc = xo_err_internal("attach record of VBD %s has no params", dev);
        goto out;
    }
    if (vbd->backend.kind == MODEL_DISK_VDI) {
        rc = sm_activate(op->env->sm, rec->dp);
        if (rc)
            goto out;
    }
    rc = b->ops->vbd_add_device(b, vm, dev, params, vbd->rw);
    if (rc) {
        /* Undo this atom's own SM step so the VDI is free for others. */
        if (vbd->backend.kind == MODEL_DISK_VDI &&
            sm_deactivate(op->env->sm, rec->dp))
            xo_err_clear();
        goto out;
    }
    exec_journal(op, undo_activate, "deactivating VBD", vm, dev);
    atoms_signal_vbd(op, vm, dev);
out:
    model_vbd_free(vbd);
    record_free(rec);
    free(params);
    free(expect_dp);
    return rc;
}

/* Remove the device, then deactivate the datapath. Missing is fine. */
static int
do_deactivate(struct exec_op *op, const char *vm, const char *dev,
              bool force)
{
    struct backend *b = op->env->backend;
    struct vmextra_attached *rec = NULL;
    int rc;

    rc = b->ops->vbd_remove_device(b, vm, dev, force);
    if (rc)
        goto out;
    rec = record_get(op, vm, dev);
    if (rec && rec->dp[0]) {
        rc = sm_deactivate(op->env->sm, rec->dp);
        if (rc)
            goto out;
    }
    exec_unjournal(op, undo_activate, vm, dev);
    atoms_signal_vbd(op, vm, dev);
out:
    record_free(rec);
    return rc;
}

/* Destroy the datapath (deactivate if needed, then detach) and drop the
 * record. A missing record is fine: there is nothing to detach. */
static int
do_detach(struct exec_op *op, const char *vm, const char *dev)
{
    struct vmextra_attached *rec = record_get(op, vm, dev);
    struct record_arg ra = { NULL, dev };
    int rc = 0;

    if (!rec) {
        LOGVM(DEBUG, vm, "VBD '%s' has no attach record: nothing to "
              "detach", dev);
        goto out;
    }
    if (rec->dp[0]) {
        rc = sm_dp_destroy(op->env->sm, rec->dp);
        if (rc)
            goto out;
    }
    rc = atoms_update_doc(op, vm, record_fn, &ra);
    if (rc == XO_ENOTFOUND) {
        /* The VM's document went away meanwhile: so did the record. */
        xo_err_clear();
        rc = 0;
    }
    if (rc)
        goto out;
    exec_unjournal(op, undo_attach, vm, dev);
    atoms_signal_vbd(op, vm, dev);
out:
    record_free(rec);
    return rc;
}

/* VBD_attach (vm, dev). Undone by VBD_detach. */
int
vbd_atom_attach(struct exec_op *op, const struct atom *a)
{
    return do_attach(op, a->vm, a->dev);
}

/* VBD_activate (vm, dev). Needs VBD_attach first. Undone by
 * VBD_deactivate. */
int
vbd_atom_activate(struct exec_op *op, const struct atom *a)
{
    return do_activate(op, a->vm, a->dev);
}

/* VBD_plug (vm, dev): the legacy combined attach + activate. */
int
vbd_atom_plug(struct exec_op *op, const struct atom *a)
{
    int rc = do_attach(op, a->vm, a->dev);

    return rc ? rc : do_activate(op, a->vm, a->dev);
}

/* VBD_deactivate (vm, dev, force). Undone by VBD_activate. */
int
vbd_atom_deactivate(struct exec_op *op, const struct atom *a)
{
    return do_deactivate(op, a->vm, a->dev, a->flag);
}

/* VBD_detach (vm, dev). Tolerates a missing attach record. */
int
vbd_atom_detach(struct exec_op *op, const struct atom *a)
{
    return do_detach(op, a->vm, a->dev);
}

/* VBD_unplug (vm, dev, force): the legacy combined teardown. */
int
vbd_atom_unplug(struct exec_op *op, const struct atom *a)
{
    int rc = do_deactivate(op, a->vm, a->dev, a->flag);

    return rc ? rc : do_detach(op, a->vm, a->dev);
}

static int
epoch(struct exec_op *op, const struct atom *a, bool begin)
{
    struct model_vbd *vbd = NULL;
    char domain[16];
    int domid, rc;

    rc = atoms_load_vbd(op, a->vm, a->dev, &vbd);
    if (rc || vbd->backend.kind != MODEL_DISK_VDI)
        goto out;
    /* After VM_destroy (poweroff's epoch_end) there is no domain; xenopsd
     * passes "" as the SM vm then. */
    domain[0] = '\0';
    if (atoms_domid(op, a->vm, &domid) == 0)
        snprintf(domain, sizeof(domain), "%d", domid);
    xo_err_clear();
    rc = begin ? sm_epoch_begin(op->env->sm, &vbd->backend, domain, a->flag)
               : sm_epoch_end(op->env->sm, &vbd->backend, domain);
out:
    model_vbd_free(vbd);
    return rc;
}

/* VBD_epoch_begin (vm, dev, persistent): SM epoch_begin; no-op for local
 * disks. */
int
vbd_atom_epoch_begin(struct exec_op *op, const struct atom *a)
{
    return epoch(op, a, true);
}

/* VBD_epoch_end (vm, dev). */
int
vbd_atom_epoch_end(struct exec_op *op, const struct atom *a)
{
    return epoch(op, a, false);
}

struct backend_arg {
    const char *dev;
    const char *disk_json;      /* NULL: no media */
};

/* Set the backend (the media) of the stored Vbd.t, re-canonicalised. */
static int
backend_fn(struct vmextra_doc *doc, void *arg)
{
    struct backend_arg *r = arg;
    const char *json = vmextra_doc_vbd(doc, r->dev);
    struct model_vbd *vbd = NULL;
    yajl_val t = NULL;
    int rc;

    if (!json) {
        char *id = xasprintf("%s.%s", doc->id, r->dev);

        rc = xo_err_does_not_exist("VBD", id);
        free(id);
        return rc;
    }
    rc = json_parse(json, strlen(json), &t);
    if (!rc)
        rc = model_tree_set_json(t, "backend",
                                 r->disk_json ? r->disk_json : "null");
    if (!rc)
        rc = model_vbd_from_tree(t, &vbd);
    if (!rc)
        vmextra_doc_set_vbd(doc, r->dev, vbd->json);
    model_vbd_free(vbd);
    yajl_tree_free(t);
    return rc;
}

/*
 * VBD_insert (vm, dev, disk): put media (text: a canonical disk) into a
 * drive of a running or paused VM, else Bad_power_state. Media_present if
 * the drive holds some; Device_not_connected if the VBD is not active.
 * The Vbd.t's backend becomes the disk first (VBD_attach reads it), then
 * the disk is attached and activated as a plug would; on failure the
 * Vbd.t is emptied again and the operation's rollback releases the
 * datapath. Unlike xenopsd, which keeps the Vbd.t and reports the media
 * in Vbd.state.backend_present only, the Vbd.t follows the media, so
 * unplug, epoch and export act on the disk really in the drive. Undone by
 * VBD_eject.
 */
int
vbd_atom_insert(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct model_vbd *vbd = NULL;
    struct backend_vbd_state st;
    struct backend_arg arg = { a->dev, a->text };
    struct xo_err_saved saved;
    int rc;

    rc = atoms_load_vbd(op, a->vm, a->dev, &vbd);
    if (!rc)
        rc = atoms_require_live(op, a->vm);
    if (rc)
        goto out;
    if (vbd->backend.kind != MODEL_DISK_NONE) {
        LOGVM(WARN, a->vm, "VBD '%s' already holds media '%s'", a->dev,
              vbd->backend.path);
        rc = xo_err_tag(XO_EINVAL, "Media_present");
        goto out;
    }
    rc = b->ops->vbd_get_state(b, a->vm, a->dev, &st);
    if (rc)
        goto out;
    if (!st.active) {
        LOGVM(WARN, a->vm, "VBD '%s' is not plugged: cannot insert", a->dev);
        rc = xo_err_tag(XO_ENOTCONNECTED, "Device_not_connected");
        goto out;
    }
    rc = atoms_update_doc(op, a->vm, backend_fn, &arg);
    if (rc)
        goto out;
    rc = do_attach(op, a->vm, a->dev);
    if (!rc)
        rc = do_activate(op, a->vm, a->dev);
    if (rc) {
        xo_err_preserve(rc, &saved);
        arg.disk_json = NULL;
        if (atoms_update_doc(op, a->vm, backend_fn, &arg)) {
            LOGVM(ERROR, a->vm, "cannot empty VBD '%s' after a failed "
                  "insert", a->dev);
        }
        rc = xo_err_restore(&saved);
        goto out;
    }
    LOGVM(INFO, a->vm, "inserted '%s' into VBD '%s'", a->text, a->dev);
    atoms_signal_vbd(op, a->vm, a->dev);
out:
    model_vbd_free(vbd);
    return rc;
}

/*
 * VBD_eject (vm, dev): take the media out of a CD or floppy drive:
 * Media_not_ejectable for a disk, Bad_power_state unless running or
 * paused, Media_not_present for an empty drive. The media's device and
 * datapath go (deactivate, detach), then the Vbd.t's backend is cleared.
 * Undone by VBD_insert.
 */
int
vbd_atom_eject(struct exec_op *op, const struct atom *a)
{
    struct model_vbd *vbd = NULL;
    struct backend_arg arg = { a->dev, NULL };
    int rc;

    rc = atoms_load_vbd(op, a->vm, a->dev, &vbd);
    if (rc)
        goto out;
    if (vbd->ty == MODEL_VBD_DISK) {
        LOGVM(WARN, a->vm, "VBD '%s' is a disk: not ejectable", a->dev);
        rc = xo_err_tag(XO_EINVAL, "Media_not_ejectable");
        goto out;
    }
    rc = atoms_require_live(op, a->vm);
    if (rc)
        goto out;
    if (vbd->backend.kind == MODEL_DISK_NONE) {
        LOGVM(WARN, a->vm, "VBD '%s' holds no media", a->dev);
        rc = xo_err_tag(XO_EINVAL, "Media_not_present");
        goto out;
    }
    /* Media eject needs no guest cooperation. */
    rc = do_deactivate(op, a->vm, a->dev, true);
    if (!rc)
        rc = do_detach(op, a->vm, a->dev);
    if (!rc)
        rc = atoms_update_doc(op, a->vm, backend_fn, &arg);
    if (rc)
        goto out;
    LOGVM(INFO, a->vm, "ejected '%s' from VBD '%s'", vbd->backend.path,
          a->dev);
    atoms_signal_vbd(op, a->vm, a->dev);
out:
    model_vbd_free(vbd);
    return rc;
}
