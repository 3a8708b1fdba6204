/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * VM atoms, and the helpers every atom family shares. Each atom reads the
 * VM's document from the store and calls the backend; none keeps state of
 * its own.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "atoms/atoms_priv.h"
#include "backend/backend.h"
#include "metadata.h"
#include "model.h"
#include "sm/sm.h"
#include "task.h"
#include "updates.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

/* ---- shared helpers ---- */

int
atoms_load_vbd(struct exec_op *op, const char *vm, const char *dev,
               struct model_vbd **vbd_r)
{
    struct vmextra_doc *doc = NULL;
    const char *json;
    int rc;

    *vbd_r = NULL;
    rc = vmextra_load(op->env->store, vm, &doc);
    if (rc)
        goto out;
    json = vmextra_doc_vbd(doc, dev);
    if (!json) {
        char *id = xasprintf("%s.%s", vm, dev);

        rc = xo_err_does_not_exist("VBD", id);
        free(id);
        goto out;
    }
    rc = model_vbd_parse(json, vbd_r);
out:
    vmextra_doc_free(doc);
    return rc;
}

int
atoms_load_vm(struct exec_op *op, const char *vm, struct model_vm **vm_r)
{
    struct vmextra_doc *doc = NULL;
    int rc;

    *vm_r = NULL;
    rc = vmextra_load(op->env->store, vm, &doc);
    if (rc)
        goto out;
    if (!doc->vm_json) {
        rc = xo_err_does_not_exist("VM", vm);
        goto out;
    }
    rc = model_vm_parse(doc->vm_json, vm_r);
out:
    vmextra_doc_free(doc);
    return rc;
}

int
atoms_require_live(struct exec_op *op, const char *vm)
{
    struct backend *b = op->env->backend;
    struct backend_vm_state st;
    int rc = b->ops->vm_get_state(b, vm, &st);

    if (rc)
        return rc;
    if (st.power != BACKEND_RUNNING && st.power != BACKEND_PAUSED) {
        LOGVM(WARN, vm, "needs a running or paused domain, is '%s'",
              backend_power_name(st.power));
        return xo_err_bad_power_state(backend_power_name(st.power),
                                      "Running");
    }
    return 0;
}

int
atoms_domid(struct exec_op *op, const char *vm, int *domid_r)
{
    struct backend *b = op->env->backend;
    struct backend_vm_state st;
    int rc = b->ops->vm_get_state(b, vm, &st);

    if (rc)
        return rc;
    if (st.domid < 0)
        return xo_err_bad_power_state("Halted", "Running");
    *domid_r = st.domid;
    return 0;
}

int
atoms_update_doc(struct exec_op *op, const char *vm, atoms_doc_fn fn,
                 void *arg)
{
    return vmextra_update(op->env->store, vm, 0, fn, arg);
}

int
exec_update_doc(struct exec_op *op, const char *vm,
                int (*fn)(struct vmextra_doc *, void *), void *arg)
{
    return atoms_update_doc(op, vm, fn, arg);
}

void
atoms_signal_vm(struct exec_op *op, const char *vm)
{
    if (op->env->updates)
        updates_add(op->env->updates, UPDATES_VM, vm, NULL);
}

void
atoms_signal_vbd(struct exec_op *op, const char *vm, const char *dev)
{
    if (op->env->updates)
        updates_add(op->env->updates, UPDATES_VBD, vm, dev);
}

void
atoms_signal_vif(struct exec_op *op, const char *vm, const char *dev)
{
    if (op->env->updates)
        updates_add(op->env->updates, UPDATES_VIF, vm, dev);
}

static double
now_epoch(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- VM atoms ---- */

static int
set_start_time(struct vmextra_doc *doc, void *arg)
{
    doc->last_start_time = *(double *)arg;
    return 0;
}

static int release_records(struct exec_op *op, const char *vm);

/* What the journal runs to undo VM_create: dev is unused. */
static int
undo_create(struct exec_op *op, const char *vm, const char *dev)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vm_destroy(b, vm);

    return rc ? rc : release_records(op, vm);
}

/*
 * VM_create (vm, final_id): an empty paused domain sized from the Vm.t.
 * The backend leaves the domain's action request at "poweroff" until
 * VM_set_domain_action_request clears it, so a half-built domain is
 * recognisable after a crash. Undone by VM_destroy.
 */
int
vm_atom_create(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct vmextra_doc *doc = NULL;
    struct model_vm *vm = NULL;
    struct backend_vm_config cfg;
    double now = now_epoch();
    int rc;

    rc = vmextra_load(op->env->store, a->vm, &doc);
    if (rc)
        goto out;
    if (!doc->vm_json) {
        rc = xo_err_does_not_exist("VM", a->vm);
        goto out;
    }
    rc = model_vm_parse(doc->vm_json, &vm);
    if (rc)
        goto out;
    memset(&cfg, 0, sizeof(cfg));
    cfg.memory_bytes = vm->memory_static_max;
    cfg.vcpus = vm->vcpus;
    cfg.hvm = vm->hvm;
    cfg.final_id = a->text;
    cfg.vm_json = vm->json;
    rc = b->ops->vm_create(b, a->vm, &cfg);
    if (rc)
        goto out;
    exec_journal(op, undo_create, "destroying the domain", a->vm, NULL);
    rc = atoms_update_doc(op, a->vm, set_start_time, &now);
    if (rc)
        goto out;
    atoms_signal_vm(op, a->vm);
out:
    model_vm_free(vm);
    vmextra_doc_free(doc);
    return rc;
}

/* VM_build (vm, force): boot the domain (the simulator marks it built). */
int
vm_atom_build(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;

    return b->ops->vm_build(b, a->vm, a->flag);
}

static int
set_paused(struct exec_op *op, const struct atom *a, bool paused)
{
    struct backend *b = op->env->backend;
    int rc = paused ? b->ops->vm_pause(b, a->vm)
                    : b->ops->vm_unpause(b, a->vm);

    if (!rc)
        atoms_signal_vm(op, a->vm);
    return rc;
}

/* VM_pause (vm). Needs a built domain. Undone by VM_unpause. */
int
vm_atom_pause(struct exec_op *op, const struct atom *a)
{
    return set_paused(op, a, true);
}

/* VM_unpause (vm). A running domain is left alone (xenopsd). */
int
vm_atom_unpause(struct exec_op *op, const struct atom *a)
{
    return set_paused(op, a, false);
}

/* Detach every datapath the VM's records still hold. */
static int
release_records(struct exec_op *op, const char *vm)
{
    struct vmextra_doc *doc = NULL;
    char **devs = NULL;
    size_t n = 0;
    int rc = 0;

    if (vmextra_load(op->env->store, vm, &doc)) {
        xo_err_clear();
        return 0;
    }
    devs = xcalloc(doc->n_attached + 1, sizeof(*devs));
    for (size_t i = 0; i < doc->n_attached; i++)
        devs[n++] = xstrdup(doc->attached[i].dev);
    vmextra_doc_free(doc);
    for (size_t i = 0; i < n; i++) {
        int r = vbd_release(op, vm, devs[i]);

        if (r && !rc)
            rc = r;
        else if (r)
            xo_err_clear();
    }
    for (size_t i = 0; i < n; i++)
        free(devs[i]);
    free(devs);
    return rc;
}

/*
 * VM_destroy (vm): destroy the domain, then release every datapath the
 * VM's attach records still hold (VBDs attached early for a migration that
 * never activated them have no device, and xenopsd leaks them here).
 * No domain is fine. Idempotent.
 */
int
vm_atom_destroy(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vm_destroy(b, a->vm);

    if (rc)
        return rc;
    rc = release_records(op, a->vm);
    if (rc)
        return rc;
    exec_unjournal(op, undo_create, a->vm, NULL);
    atoms_signal_vm(op, a->vm);
    return 0;
}

/*
 * VM_remove (vm): forget the VM: only when Halted or Suspended
 * (Bad_power_state otherwise). Deletes its document with every record,
 * and the backend's records (vm_forget).
 */
int
vm_atom_remove(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct backend_vm_state st;
    struct vmextra_doc *doc = NULL;
    int rc;

    rc = b->ops->vm_get_state(b, a->vm, &st);
    if (rc)
        goto out;
    if (st.power != BACKEND_HALTED && st.power != BACKEND_SUSPENDED) {
        rc = xo_err_bad_power_state(backend_power_name(st.power),
                                    "Halted");
        goto out;
    }
    rc = release_records(op, a->vm);
    if (rc)
        goto out;
    rc = vmextra_load(op->env->store, a->vm, &doc);
    if (rc)
        goto out;
    rc = vmextra_remove(op->env->store, a->vm);
    if (rc)
        goto out;
    /* The backend's own records of the VM (device flags; with xenlight
     * in xenstore, where they would outlive the daemon) go with it. */
    if (st.power == BACKEND_HALTED) {
        rc = b->ops->vm_forget(b, a->vm);
        if (rc)
            goto out;
    }
    if (op->env->updates) {
        for (size_t i = 0; i < doc->n_vbds; i++)
            updates_remove(op->env->updates, UPDATES_VBD, a->vm,
                           doc->vbds[i].dev);
        for (size_t i = 0; i < doc->n_vifs; i++)
            updates_remove(op->env->updates, UPDATES_VIF, a->vm,
                           doc->vifs[i].dev);
        updates_remove(op->env->updates, UPDATES_VM, a->vm, NULL);
    }
out:
    vmextra_doc_free(doc);
    return rc;
}

/*
 * VM_rename (old, new): every piece of per-VM state moves, or none: the
 * store's rename is all-or-nothing on its own; if the backend then fails,
 * the store is renamed back.
 */
int
vm_atom_rename(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    const char *new_id = a->text;
    int rc;

    if (!new_id || strcmp(new_id, a->vm) == 0)
        return xo_err_internal_code(XO_EINVAL, "VM_rename needs two "
                                    "different ids");
    rc = ids_check_vm(new_id);
    if (rc)
        return rc;
    rc = vmextra_rename(op->env->store, a->vm, new_id);
    if (rc)
        return rc;
    rc = b->ops->vm_rename(b, a->vm, new_id);
    if (rc) {
        struct xo_err_saved saved;

        xo_err_preserve(rc, &saved);
        if (vmextra_rename(op->env->store, new_id, a->vm))
            LOGVM(ERROR, a->vm, "cannot undo store rename to '%s'", new_id);
        return xo_err_restore(&saved);
    }
    if (op->env->updates) {
        updates_remove(op->env->updates, UPDATES_VM, a->vm, NULL);
        updates_add(op->env->updates, UPDATES_VM, new_id, NULL);
    }
    LOGVM(INFO, a->vm, "renamed to '%s'", new_id);
    return 0;
}

static int
open_data(const struct atom_data *d, bool write, int *fd_r, bool *own_r)
{
    int fd;

    *own_r = false;
    if (d->kind == ATOM_DATA_FD) {
        *fd_r = d->fd;
        return 0;
    }
    if (d->kind != ATOM_DATA_DISK || !d->path)
        return xo_err_internal_code(XO_EINVAL, "no suspend image given");
    fd = write ? open(d->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                      0600)
               : open(d->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        LOGE(ERROR, "cannot open suspend image '%s'", d->path);
        return xo_err_internal_code(XO_EIO, "cannot open '%s': %s", d->path,
                                    strerror(errno));
    }
    *fd_r = fd;
    *own_r = true;
    return 0;
}

/*
 * VM_save (vm, data, live): write the memory image; the domain ends up
 * suspended. The task stops being cancellable just before, as in xenopsd:
 * past this point the image is the VM.
 */
int
vm_atom_save(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    bool own;
    int fd = -1, rc;

    rc = open_data(&a->data, true, &fd, &own);
    if (rc)
        return rc;
    if (op->task)
        task_set_cancellable(op->task, false);
    rc = b->ops->vm_save(b, a->vm, fd, a->flag ? BACKEND_SAVE_LIVE : 0,
                         NULL);
    if (!rc && own && fsync(fd) < 0) {
        LOGE(ERROR, "fsync of suspend image '%s'", a->data.path);
        rc = xo_err_internal_code(XO_EIO, "cannot write the suspend image");
    }
    if (own)
        close(fd);
    if (!rc)
        atoms_signal_vm(op, a->vm);
    return rc;
}

/* Cancelling a restore shuts its stream down, which wakes a backend
 * blocked reading it (a disk image is no socket and never blocks). */
static void
restore_wake(void *arg)
{
    shutdown(*(const int *)arg, SHUT_RDWR);
}

/* VM_restore (vm, data): load a memory image into the created domain. */
int
vm_atom_restore(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    bool own;
    int fd = -1, rc;

    rc = open_data(&a->data, false, &fd, &own);
    if (rc)
        return rc;
    if (op->task)
        task_on_cancel(op->task, restore_wake, &fd);
    rc = b->ops->vm_restore(b, a->vm, fd,
                            op->task ? task_cancel_flag(op->task) : NULL);
    if (op->task)
        task_on_cancel_remove(op->task, restore_wake, &fd);
    if (own)
        close(fd);
    if (!rc)
        atoms_signal_vm(op, a->vm);
    return rc;
}

/* VM_set_domain_action_request (vm, request or NULL to clear). */
int
vm_atom_set_domain_action_request(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;

    return b->ops->vm_set_action_request(b, a->vm, a->text);
}

/* VM_shutdown_domain (vm, reason, timeout): ask the guest. */
int
vm_atom_shutdown_domain(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;

    return b->ops->vm_shutdown_domain(b, a->vm, a->text ? a->text : "Halt",
                                      a->number);
}

/* A sleep that a cancel cuts short: the task's cancel callback signals
 * it, so nothing polls the flag. */
struct delay_wait {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool woken;
};

static void
delay_wake(void *arg)
{
    struct delay_wait *w = arg;

    pthread_mutex_lock(&w->lock);
    w->woken = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* VM_delay (vm, seconds): sleep, staying cancellable. */
int
vm_atom_delay(struct exec_op *op, const struct atom *a)
{
    struct delay_wait w = { .woken = false };
    pthread_condattr_t ca;
    struct timespec end;
    double whole = floor(a->number);

    pthread_mutex_init(&w.lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w.cond, &ca);
    pthread_condattr_destroy(&ca);
    clock_gettime(CLOCK_MONOTONIC, &end);
    end.tv_sec += (time_t)whole;
    end.tv_nsec += (long)((a->number - whole) * 1e9);
    if (end.tv_nsec >= 1000000000L) {
        end.tv_sec++;
        end.tv_nsec -= 1000000000L;
    }
    if (op->task)
        task_on_cancel(op->task, delay_wake, &w);
    pthread_mutex_lock(&w.lock);
    while (!w.woken &&
           pthread_cond_timedwait(&w.cond, &w.lock, &end) != ETIMEDOUT)
        ;
    pthread_mutex_unlock(&w.lock);
    if (op->task)
        task_on_cancel_remove(op->task, delay_wake, &w);
    pthread_cond_destroy(&w.cond);
    pthread_mutex_destroy(&w.lock);
    return op->task ? task_check_cancel(op->task) : 0;
}

/* A missing optional backend operation: Unimplemented, logged once here. */
static int
unimplemented(struct exec_op *op, const char *vm, const char *what)
{
    LOGVM(WARN, vm, "backend '%s' does not implement %s",
          op->env->backend->ops->name, what);
    return xo_err_unimplemented(what);
}

/*
 * VM_set_vcpus (vm, n): bring n vcpus of the running domain online.
 * Invalid_vcpus [vcpu_max] unless 1 <= n <= vcpu_max (xenopsd reports
 * the maximum, not n). The Vm.t is not changed (xapi re-adds it). No undo:
 * set it back.
 */
int
vm_atom_set_vcpus(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct model_vm *vm = NULL;
    int rc;

    rc = atoms_load_vm(op, a->vm, &vm);
    if (rc)
        goto out;
    if (a->ints[0] <= 0 || a->ints[0] > vm->vcpu_max) {
        LOGVM(WARN, a->vm, "cannot set %lld vcpus: vcpu_max is %d",
              (long long)a->ints[0], vm->vcpu_max);
        rc = xo_err_set_json(XO_EINVAL, xasprintf("[\"Invalid_vcpus\",%d]",
                                                  vm->vcpu_max));
        goto out;
    }
    if (!b->ops->vm_set_vcpus) {
        rc = unimplemented(op, a->vm, "VM.set_vcpus");
        goto out;
    }
    rc = b->ops->vm_set_vcpus(b, a->vm, (int)a->ints[0]);
    if (!rc)
        atoms_signal_vm(op, a->vm);
out:
    model_vm_free(vm);
    return rc;
}

/*
 * VM_set_memory_dynamic_range (vm, min, max): the running domain's balloon
 * range. Needs 0 < min <= max <= memory_static_max (xenopsd passes any
 * values on; a target above the static maximum cannot be met). The Vm.t
 * is not changed.
 */
int
vm_atom_set_memory_dynamic_range(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct model_vm *vm = NULL;
    int64_t min = a->ints[0], max = a->ints[1];
    int rc;

    rc = atoms_load_vm(op, a->vm, &vm);
    if (rc)
        goto out;
    if (min <= 0 || min > max || max > vm->memory_static_max) {
        LOGVM(WARN, a->vm, "invalid dynamic range %lld..%lld (static max "
              "%lld)", (long long)min, (long long)max,
              (long long)vm->memory_static_max);
        rc = xo_err_internal_code(XO_EINVAL, "invalid memory dynamic range "
                                  "%lld..%lld: needs 0 < minimum <= maximum "
                                  "<= memory_static_max (%lld)",
                                  (long long)min, (long long)max,
                                  (long long)vm->memory_static_max);
        goto out;
    }
    if (!b->ops->vm_set_memory_dynamic_range) {
        rc = unimplemented(op, a->vm, "VM.set_memory_dynamic_range");
        goto out;
    }
    rc = b->ops->vm_set_memory_dynamic_range(b, a->vm, min, max);
    if (!rc)
        atoms_signal_vm(op, a->vm);
out:
    model_vm_free(vm);
    return rc;
}

/*
 * VM_set_xsdata (vm, xsdata): write the keys (text: a canonical string
 * map) under the running domain's xenstore path, all or none. The Vm.t is
 * not changed; no undo.
 */
int
vm_atom_set_xsdata(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    const char **keys = NULL, **values = NULL;
    yajl_val t = NULL;
    size_t n;
    int rc;

    rc = json_parse(a->text ? a->text : "", a->text ? strlen(a->text) : 0,
                    &t);
    if (!rc && !YAJL_IS_OBJECT(t))
        rc = xo_err_internal_code(XO_EINVAL, "xsdata must be an object");
    if (rc)
        goto out;
    n = t->u.object.len;
    keys = xcalloc(n + 1, sizeof(*keys));
    values = xcalloc(n + 1, sizeof(*values));
    for (size_t i = 0; i < n; i++) {
        keys[i] = t->u.object.keys[i];
        values[i] = YAJL_GET_STRING(t->u.object.values[i]);
        if (!values[i]) {
            rc = xo_err_internal_code(XO_EINVAL, "xsdata value of '%s' is "
                                      "not a string", keys[i]);
            goto out;
        }
    }
    if (!b->ops->vm_set_xsdata) {
        rc = unimplemented(op, a->vm, "VM.set_xsdata");
        goto out;
    }
    rc = b->ops->vm_set_xsdata(b, a->vm, keys, values, n);
out:
    free(keys);
    free(values);
    yajl_tree_free(t);
    return rc;
}

/*
 * VM_import_metadata (vm, Metadata.t): VM.import_metadata_async on the VM's
 * queue (see metadata.h). The text was validated when the call was made;
 * it is decoded again here because the atom carries text. No undo.
 */
int
vm_atom_import_metadata(struct exec_op *op, const struct atom *a)
{
    struct metadata *md = NULL;
    int rc;

    rc = metadata_parse(a->text, NULL, NULL, &md);
    if (!rc && strcmp(metadata_vm_id(md), a->vm) != 0)
        rc = xo_err_internal("metadata is for VM %s, not %s",
                             metadata_vm_id(md), a->vm);
    if (!rc)
        rc = metadata_import(op->env->store, op->env->updates, md);
    metadata_free(md);
    return rc;
}
