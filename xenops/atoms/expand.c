/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * expand: xenopsd's atomics_of_operation in C (reference/xenopsd-behaviour.md
 * 1.3, 1.4 and 2.4 step 3). Pure functions: no I/O, no globals; the legacy
 * flag is an argument.
 *
 * What is kept and what is dropped. Every step of xenopsd's expansions that
 * uses an atom we have is kept, in xenopsd's order. Steps we have no atom for
 * are dropped: PCI_dequarantine, PCI_plug/unplug, VGPU_*, VUSB_*, the
 * VM_hook_script calls and VM_create_device_model/VM_destroy_device_model.
 * Where a dropped step was one member of a group (the VGPU/PCI Serial inside
 * "Devices.plug (no qemu)", "VGPUs.activate" in VM_restore_devices), the
 * group simply has one member less; collect_into then behaves as it would
 * in xenopsd for a VM without such devices.
 *
 * Builders, as in xenopsd:
 * - collect_into (parallel, nested_parallel, serial and their _map/_concat
 *   forms): no atoms -> no group; one atom -> that atom, unwrapped; two or
 *   more -> the combinator. Their description is "<name> VM=<id>".
 * - vbd_plug / vbd_unplug build their Serial directly, so its description
 *   is the bare "VBD.attach_and_activate" / "VBD.deactivate_and_detach",
 *   with no " VM=" suffix, exactly as in xenopsd.
 * - The root. xenopsd runs an operation as a flat list of atoms
 *   (perform_atomics); we return one tree, so each expand_* function wraps
 *   that list in a root Serial named after the operation, with the same
 *   suffix: "VM_start VM=<id>", "VBD_hotplug xvda VM=<id>". The root always
 *   wraps (serial_of), so its children are exactly xenopsd's list; an
 *   empty list gives NULL. expand_early_attach is not an operation but the
 *   fragment xenopsd splices into the receiver's phase A, so it returns
 *   the fragment itself (the Parallel, a lone Serial, or NULL).
 *
 * The descriptions are xenopsd's strings, except that its typo
 * "VBDs.acticate_epoch_and_plug" is spelled "activate" here. The names of
 * the per-device Serials ("VBD.activate_epoch_and_plug RW",
 * "VIF.activate_and_plug", "VBD.epoch_and_deactivate", ...) follow
 * xenopsd's name_one strings.
 *
 * Worked example, VM_start of a VM with one RW disk xvda, split plug:
 *
 *   Serial "VM_start VM=<id>"
 *     VM_create
 *     VM_build
 *     Serial "VBD.activate_epoch_and_plug RW VM=<id>"   <- collect_into
 *       VBD_set_active xvda true                           flattened the
 *       VBD_epoch_begin xvda persistent                    one-member
 *       Serial "VBD.attach_and_activate"                   Devices.plug,
 *         VBD_attach xvda                                  RW+RO and RW
 *         VBD_activate xvda                                groups
 *     VM_set_domain_action_request none
 *
 * Early attach. A VBD attaches early (receiver phase A: set_active +
 * attach; phase C: activate only) iff !legacy && can_attach_early &&
 * has_backend. xenopsd tests can_attach_early alone; xapi never sets it for
 * an empty CD drive, but a VBD without a backend has nothing to attach, so
 * we also require has_backend. The same predicate decides both halves
 * (expand_early_attach and expand_vm_restore_devices), so a VBD is never
 * activated without having been attached.
 *
 * VM_shutdown_domain carries "Halt" (VM_shutdown, VM_poweroff) or "Reboot"
 * (VM_reboot) and the timeout; a negative timeout means "none given" (hard
 * shutdown) and omits the atom, as xenopsd does for timeout = None.
 */

#include <stdlib.h>

#include "atoms/expand.h"
#include "util/xalloc.h"

/* A list of sibling atoms being built (an OCaml atom list). */
struct expand_list {
    struct atom **v;
    size_t n;
};

/* Append a; NULL (an empty group from collect_into) adds nothing. */
static void
list_push(struct expand_list *l, struct atom *a)
{
    if (!a)
        return;
    l->v = xrealloc(l->v, (l->n + 1) * sizeof(*l->v));
    l->v[l->n++] = a;
}

/* Wrap every atom of l in a new combinator; l is consumed. */
static struct atom *
wrap(enum atom_kind kind, const char *vm, const char *description,
     struct expand_list *l)
{
    struct atom *g = atom_new_group(kind, vm, description);

    for (size_t i = 0; i < l->n; i++)
        atom_add(g, l->v[i]);
    free(l->v);
    l->v = NULL;
    l->n = 0;
    return g;
}

/* xenopsd's collect_into with the "<name> VM=<id>" description; l is
 * consumed. */
static struct atom *
collect_into(enum atom_kind kind, const char *vm, const char *name,
             struct expand_list *l)
{
    struct atom *a = NULL;
    char *description = NULL;

    if (l->n >= 2) {
        description = xasprintf("%s VM=%s", name, vm);
        a = wrap(kind, vm, description, l);
        free(description);
        return a;
    }
    if (l->n == 1)
        a = l->v[0];
    free(l->v);
    l->v = NULL;
    l->n = 0;
    return a;
}

/* The root Serial of an operation (see the top comment); l is consumed. */
static struct atom *
root_of(const char *vm, const char *operation, struct expand_list *l)
{
    struct atom *a = NULL;
    char *description = NULL;

    if (l->n == 0) {
        free(l->v);
        return NULL;
    }
    description = xasprintf("%s VM=%s", operation, vm);
    a = wrap(ATOM_SERIAL, vm, description, l);
    free(description);
    return a;
}

static struct atom *
serial2(const char *vm, const char *description, struct atom *a,
        struct atom *b)
{
    struct atom *g = atom_new_group(ATOM_SERIAL, vm, description);

    atom_add(g, a);
    atom_add(g, b);
    return g;
}

/* vbd_plug: the one legacy atom, or attach then activate. */
static struct atom *
vbd_plug(const char *vm, const char *dev, bool legacy)
{
    if (legacy)
        return atom_new_dev(ATOM_VBD_PLUG, vm, dev, false);
    return serial2(vm, "VBD.attach_and_activate",
                   atom_new_dev(ATOM_VBD_ATTACH, vm, dev, false),
                   atom_new_dev(ATOM_VBD_ACTIVATE, vm, dev, false));
}

/* vbd_unplug: the one legacy atom, or deactivate then detach. */
static struct atom *
vbd_unplug(const char *vm, const char *dev, bool legacy, bool force)
{
    if (legacy)
        return atom_new_dev(ATOM_VBD_UNPLUG, vm, dev, force);
    return serial2(vm, "VBD.deactivate_and_detach",
                   atom_new_dev(ATOM_VBD_DEACTIVATE, vm, dev, force),
                   atom_new_dev(ATOM_VBD_DETACH, vm, dev, false));
}

static bool
attaches_early(const struct expand_vbd *vbd, bool legacy)
{
    return !legacy && vbd->can_attach_early && vbd->has_backend;
}

static const char *
rw_name(bool rw)
{
    return rw ? "RW" : "RO";
}

/* VM_set_domain_action_request None: the domain is now survivable. */
static struct atom *
clear_action_request(const char *vm)
{
    return atom_new(ATOM_VM_SET_DOMAIN_ACTION_REQUEST, vm);
}

static struct atom *
shutdown_domain(const char *vm, const char *request, double timeout)
{
    struct atom *a = atom_new(ATOM_VM_SHUTDOWN_DOMAIN, vm);

    atom_set_text(a, request);
    a->number = timeout;
    return a;
}

/* One set (RW or RO) of VM_start's VBDs: a Nested_parallel of
 * Serial [set_active; epoch_begin if backend; vbd_plug] per VBD. */
static struct atom *
start_vbd_set(const struct expand_vm *vm, bool legacy, bool rw)
{
    struct expand_list set = {NULL, 0};
    char *one = xasprintf("VBD.activate_epoch_and_plug %s", rw_name(rw));
    char *multi = xasprintf("VBDs.activate_epoch_and_plug %s", rw_name(rw));
    struct atom *a = NULL;

    for (size_t i = 0; i < vm->n_vbds; i++) {
        const struct expand_vbd *vbd = &vm->vbds[i];
        struct expand_list l = {NULL, 0};

        if (vbd->rw != rw)
            continue;
        list_push(&l,
                  atom_new_dev(ATOM_VBD_SET_ACTIVE, vm->id, vbd->dev, true));
        if (vbd->has_backend)
            list_push(&l, atom_new_dev(ATOM_VBD_EPOCH_BEGIN, vm->id, vbd->dev,
                                   vbd->persistent));
        list_push(&l, vbd_plug(vm->id, vbd->dev, legacy));
        list_push(&set, collect_into(ATOM_SERIAL, vm->id, one, &l));
    }
    a = collect_into(ATOM_NESTED_PARALLEL, vm->id, multi, &set);
    free(one);
    free(multi);
    return a;
}

static struct atom *
vif_activate_and_plug(const char *vm, const char *dev)
{
    struct expand_list l = {NULL, 0};

    list_push(&l, atom_new_dev(ATOM_VIF_SET_ACTIVE, vm, dev, true));
    list_push(&l, atom_new_dev(ATOM_VIF_PLUG, vm, dev, false));
    return collect_into(ATOM_SERIAL, vm, "VIF.activate_and_plug", &l);
}

/* VM_start (id, force=false) minus the steps we have no atoms for. */
static void
start_atoms(struct expand_list *out, const struct expand_vm *vm, bool legacy)
{
    struct expand_list devices = {NULL, 0};
    struct expand_list vbds = {NULL, 0};

    list_push(out, atom_new(ATOM_VM_CREATE, vm->id));
    list_push(out, atom_new(ATOM_VM_BUILD, vm->id));
    /* RW before RO: the storage layer cannot upgrade an RO attach. */
    list_push(&vbds, start_vbd_set(vm, legacy, true));
    list_push(&vbds, start_vbd_set(vm, legacy, false));
    list_push(&devices, collect_into(ATOM_SERIAL, vm->id,
                                     "VBDs.activate_epoch_and_plug RW+RO",
                                     &vbds));
    for (size_t i = 0; i < vm->n_vifs; i++)
        list_push(&devices, vif_activate_and_plug(vm->id, vm->vifs[i].dev));
    list_push(out, collect_into(ATOM_PARALLEL, vm->id,
                                "Devices.plug (no qemu)", &devices));
    list_push(out, clear_action_request(vm->id));
}

/* VM_shutdown (id, timeout): timeout < 0 stands for None. */
static void
shutdown_atoms(struct expand_list *out, const struct expand_vm *vm,
               bool legacy, double timeout)
{
    struct expand_list unplug = {NULL, 0};
    struct atom *best_effort = NULL;

    if (timeout >= 0)
        list_push(out, shutdown_domain(vm->id, "Halt", timeout));
    /* CA-315450: pause first so nothing interferes with the teardown
     * when no clean shutdown was asked for. */
    best_effort = atom_new_group(ATOM_BEST_EFFORT, vm->id, NULL);
    atom_add(best_effort, atom_new(ATOM_VM_PAUSE, vm->id));
    list_push(out, best_effort);
    for (size_t i = 0; i < vm->n_vbds; i++)
        list_push(&unplug, vbd_unplug(vm->id, vm->vbds[i].dev, legacy, true));
    for (size_t i = 0; i < vm->n_vifs; i++)
        list_push(&unplug,
                  atom_new_dev(ATOM_VIF_UNPLUG, vm->id, vm->vifs[i].dev, true));
    list_push(out,
              collect_into(ATOM_PARALLEL, vm->id, "Devices.unplug", &unplug));
    list_push(out, atom_new(ATOM_VM_DESTROY, vm->id));
}

/* VM_restore_vifs atoms: one Parallel (or lone Serial, or nothing). */
static struct atom *
restore_vifs_atom(const struct expand_vm *vm)
{
    struct expand_list l = {NULL, 0};

    for (size_t i = 0; i < vm->n_vifs; i++)
        list_push(&l, vif_activate_and_plug(vm->id, vm->vifs[i].dev));
    return collect_into(ATOM_PARALLEL, vm->id, "VIFs.activate_and_plug", &l);
}

/* One set (RW or RO) of VM_restore_devices' VBDs. */
static struct atom *
restore_vbd_set(const struct expand_vm *vm, bool legacy, bool migration,
                bool rw)
{
    struct expand_list set = {NULL, 0};
    char *one = xasprintf("VBD.activate_and_plug %s", rw_name(rw));
    char *multi = xasprintf("VBDs.activate_and_plug %s", rw_name(rw));
    struct atom *a = NULL;

    for (size_t i = 0; i < vm->n_vbds; i++) {
        const struct expand_vbd *vbd = &vm->vbds[i];
        struct expand_list l = {NULL, 0};

        if (vbd->rw != rw)
            continue;
        if (migration && attaches_early(vbd, legacy)) {
            /* set_active + attach ran in phase A, before the downtime */
            list_push(&set, atom_new_dev(ATOM_VBD_ACTIVATE, vm->id, vbd->dev,
                                     false));
            continue;
        }
        list_push(&l,
                  atom_new_dev(ATOM_VBD_SET_ACTIVE, vm->id, vbd->dev, true));
        list_push(&l, vbd_plug(vm->id, vbd->dev, legacy));
        list_push(&set, collect_into(ATOM_SERIAL, vm->id, one, &l));
    }
    a = collect_into(ATOM_PARALLEL, vm->id, multi, &set);
    free(one);
    free(multi);
    return a;
}

static void
restore_devices_atoms(struct expand_list *out, const struct expand_vm *vm,
                      bool legacy, bool migration)
{
    list_push(out, restore_vbd_set(vm, legacy, migration, true));
    list_push(out, restore_vbd_set(vm, legacy, migration, false));
    /* On a migration the receiver plugged the VIFs in phase A. */
    if (!migration)
        list_push(out, restore_vifs_atom(vm));
}

/* VBD_epoch_end for a VBD with a backend, else NULL. */
static struct atom *
epoch_end(const char *vm, const struct expand_vbd *vbd)
{
    if (!vbd->has_backend)
        return NULL;
    return atom_new_dev(ATOM_VBD_EPOCH_END, vm, vbd->dev, false);
}

struct atom *
expand_vm_start(const struct expand_vm *vm, bool legacy, bool paused)
{
    struct expand_list l = {NULL, 0};

    start_atoms(&l, vm, legacy);
    if (!paused)
        list_push(&l, atom_new(ATOM_VM_UNPAUSE, vm->id));
    return root_of(vm->id, "VM_start", &l);
}

struct atom *
expand_vm_shutdown(const struct expand_vm *vm, bool legacy, double timeout)
{
    struct expand_list l = {NULL, 0};

    shutdown_atoms(&l, vm, legacy, timeout);
    return root_of(vm->id, "VM_shutdown", &l);
}

struct atom *
expand_vm_poweroff(const struct expand_vm *vm, bool legacy, double timeout)
{
    struct expand_list l = {NULL, 0};
    struct expand_list deactivate = {NULL, 0};

    shutdown_atoms(&l, vm, legacy, timeout);
    for (size_t i = 0; i < vm->n_vbds; i++) {
        const struct expand_vbd *vbd = &vm->vbds[i];
        struct expand_list one = {NULL, 0};

        list_push(&one, epoch_end(vm->id, vbd));
        list_push(&one,
                  atom_new_dev(ATOM_VBD_SET_ACTIVE, vm->id, vbd->dev, false));
        list_push(&deactivate, collect_into(ATOM_SERIAL, vm->id,
                                            "VBD.epoch_and_deactivate", &one));
    }
    for (size_t i = 0; i < vm->n_vifs; i++)
        list_push(&deactivate, atom_new_dev(ATOM_VIF_SET_ACTIVE, vm->id,
                                        vm->vifs[i].dev, false));
    list_push(&l, collect_into(ATOM_PARALLEL, vm->id, "Devices.deactivate",
                               &deactivate));
    return root_of(vm->id, "VM_poweroff", &l);
}

struct atom *
expand_vm_reboot(const struct expand_vm *vm, bool legacy, double timeout)
{
    struct expand_list l = {NULL, 0};
    struct expand_list ends = {NULL, 0};

    if (timeout >= 0)
        list_push(&l, shutdown_domain(vm->id, "Reboot", timeout));
    shutdown_atoms(&l, vm, legacy, -1);
    for (size_t i = 0; i < vm->n_vbds; i++)
        list_push(&ends, epoch_end(vm->id, &vm->vbds[i]));
    list_push(&l, collect_into(ATOM_PARALLEL, vm->id, "VBD.epoch_end", &ends));
    start_atoms(&l, vm, legacy);
    list_push(&l, atom_new(ATOM_VM_UNPAUSE, vm->id));
    return root_of(vm->id, "VM_reboot", &l);
}

struct atom *
expand_vm_suspend(const struct expand_vm *vm, bool legacy,
                  const struct atom_data *data)
{
    struct expand_list l = {NULL, 0};
    struct atom *save = atom_new(ATOM_VM_SAVE, vm->id);

    /* xenopsd passes no flags: not Live, not Compress. */
    save->flag = false;
    if (data)
        atom_set_data(save, data);
    list_push(&l, save);
    shutdown_atoms(&l, vm, legacy, -1);
    return root_of(vm->id, "VM_suspend", &l);
}

struct atom *
expand_vm_resume(const struct expand_vm *vm, bool legacy,
                 const struct atom_data *data)
{
    struct expand_list l = {NULL, 0};
    struct atom *restore = atom_new(ATOM_VM_RESTORE, vm->id);

    if (data)
        atom_set_data(restore, data);
    list_push(&l, atom_new(ATOM_VM_CREATE, vm->id));
    list_push(&l, restore);
    restore_devices_atoms(&l, vm, legacy, false);
    /* No unpause: xapi unpauses a resumed VM itself. */
    list_push(&l, clear_action_request(vm->id));
    return root_of(vm->id, "VM_resume", &l);
}

struct atom *
expand_vm_restore_devices(const struct expand_vm *vm, bool legacy,
                          bool migration)
{
    struct expand_list l = {NULL, 0};

    restore_devices_atoms(&l, vm, legacy, migration);
    return root_of(vm->id, "VM_restore_devices", &l);
}

struct atom *
expand_vm_restore_vifs(const struct expand_vm *vm)
{
    struct expand_list l = {NULL, 0};

    list_push(&l, restore_vifs_atom(vm));
    return root_of(vm->id, "VM_restore_vifs", &l);
}

struct atom *
expand_early_attach(const struct expand_vm *vm, bool legacy)
{
    struct expand_list all = {NULL, 0};

    /* All VBDs in position order, RW and RO mixed: attach needs no RW/RO
     * ordering here because each VBD keeps its own mode. */
    for (size_t i = 0; i < vm->n_vbds; i++) {
        const struct expand_vbd *vbd = &vm->vbds[i];
        struct expand_list l = {NULL, 0};

        if (!attaches_early(vbd, legacy))
            continue;
        list_push(&l,
                  atom_new_dev(ATOM_VBD_SET_ACTIVE, vm->id, vbd->dev, true));
        list_push(&l, atom_new_dev(ATOM_VBD_ATTACH, vm->id, vbd->dev, false));
        list_push(&all, collect_into(ATOM_SERIAL, vm->id,
                                     "VBD.set_active_and_attach", &l));
    }
    return collect_into(ATOM_PARALLEL, vm->id, "VBDs.set_active_and_attach",
                        &all);
}

static struct atom *
device_root(const char *vm, const char *operation, const char *dev,
            struct atom *first, struct atom *second)
{
    struct expand_list l = {NULL, 0};
    char *name = xasprintf("%s %s", operation, dev);
    struct atom *a = NULL;

    list_push(&l, first);
    list_push(&l, second);
    a = root_of(vm, name, &l);
    free(name);
    return a;
}

struct atom *
expand_vbd_hotplug(const char *vm, const char *dev, bool legacy)
{
    return device_root(vm, "VBD_hotplug", dev,
                       atom_new_dev(ATOM_VBD_SET_ACTIVE, vm, dev, true),
                       vbd_plug(vm, dev, legacy));
}

struct atom *
expand_vbd_hotunplug(const char *vm, const char *dev, bool legacy,
                     bool force)
{
    return device_root(vm, "VBD_hotunplug", dev,
                       vbd_unplug(vm, dev, legacy, force),
                       atom_new_dev(ATOM_VBD_SET_ACTIVE, vm, dev, false));
}

struct atom *
expand_vif_hotplug(const char *vm, const char *dev)
{
    return device_root(vm, "VIF_hotplug", dev,
                       atom_new_dev(ATOM_VIF_SET_ACTIVE, vm, dev, true),
                       atom_new_dev(ATOM_VIF_PLUG, vm, dev, false));
}

struct atom *
expand_vif_hotunplug(const char *vm, const char *dev, bool force)
{
    return device_root(vm, "VIF_hotunplug", dev,
                       atom_new_dev(ATOM_VIF_UNPLUG, vm, dev, force),
                       atom_new_dev(ATOM_VIF_SET_ACTIVE, vm, dev, false));
}
