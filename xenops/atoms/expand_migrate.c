/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The atom trees of a live migration (migrate.c runs them, one per step,
 * because the protocol's handshakes sit between them). Pure, like the rest
 * of expand: the ids and the VM's devices come in as arguments.
 *
 * Order of use, sender (VM id U, temporary id T0):
 *   downtime:  expand_migrate_source_deactivate, expand_migrate_rename
 *              U -> T0;
 *   success:   expand_migrate_source_cleanup of T0;
 *   failure:   expand_migrate_rename T0 -> U (if renamed),
 *              expand_migrate_source_reactivate (if deactivated),
 *              expand_migrate_unpause_source.
 * Receiver (temporary id T1, final id U):
 *   phase A:   expand_migrate_receive_prepare of T1;
 *   phase B:   VM_build of T1 after the memory came;
 *   phase C:   expand_migrate_rename T1 -> U, expand_vm_restore_devices
 *              (migration) of U, expand_migrate_receive_unpause of U;
 *   failure:   expand_migrate_receive_abort under whichever id it has.
 *
 * Every VBD of the switch-over is activated (or deactivated) at once, not
 * in xenopsd's chunks of ten: that is the executor's policy for a
 * migration's operation (exec_op.activations_at_once), so the trees here
 * keep xenopsd's shape.
 */
#include <stdlib.h>

#include "atoms/expand.h"

/* The VBDs that have a backend, as a Parallel of one leaf kind; NULL when
 * there are none. */
static struct atom *
vbds_with_backend(const struct expand_vm *vm, enum atom_kind kind,
                  const char *desc)
{
    struct atom *p = atom_new_group(ATOM_PARALLEL, vm->id, desc);

    for (size_t i = 0; i < vm->n_vbds; i++)
        if (vm->vbds[i].has_backend)
            atom_add(p, atom_new_dev(kind, vm->id, vm->vbds[i].dev, false));
    if (p->n_children == 0) {
        atom_free(p);
        return NULL;
    }
    return p;
}

static struct atom *
best_effort(struct atom *a)
{
    struct atom *g = atom_new_group(ATOM_BEST_EFFORT, a->vm, NULL);

    atom_add(g, a);
    return g;
}

struct atom *
expand_migrate_receive_prepare(const struct expand_vm *vm,
                               const char *final_id, bool legacy)
{
    struct atom *a = atom_new_group(ATOM_SERIAL, vm->id,
                                    "VM_receive_memory phase A");
    struct atom *create = atom_new(ATOM_VM_CREATE, vm->id);
    struct atom *vifs = expand_vm_restore_vifs(vm);
    struct atom *early = expand_early_attach(vm, legacy);

    atom_set_text(create, final_id);
    atom_add(a, create);
    if (vifs)
        atom_add(a, vifs);
    if (early)
        atom_add(a, early);
    return a;
}

struct atom *
expand_migrate_rename(const char *vm, const char *new_id)
{
    struct atom *a = atom_new(ATOM_VM_RENAME, vm);

    atom_set_text(a, new_id);
    return a;
}

struct atom *
expand_migrate_receive_unpause(const char *vm)
{
    struct atom *a = atom_new_group(ATOM_SERIAL, vm, "unpause");

    atom_add(a, atom_new(ATOM_VM_UNPAUSE, vm));
    atom_add(a, atom_new(ATOM_VM_SET_DOMAIN_ACTION_REQUEST, vm));
    return a;
}

/*
 * Everything phase A (and later phases) made is gone afterwards: the
 * domain, the devices' active flags (left behind, they would keep the
 * id's records alive in the backend after the VM is gone) and the VM's
 * records. Each step is best effort: a step that fails must not keep the
 * next from running. The datapaths are the executor's rollback, which the
 * caller runs first.
 */
struct atom *
expand_migrate_receive_abort(const struct expand_vm *vm)
{
    struct atom *a = atom_new_group(ATOM_SERIAL, vm->id, "VM_receive abort");
    struct atom *dev = atom_new_group(ATOM_SERIAL, vm->id,
                                      "Devices.deactivate");

    atom_add(a, best_effort(atom_new(ATOM_VM_DESTROY, vm->id)));
    for (size_t i = 0; i < vm->n_vbds; i++)
        atom_add(dev, best_effort(atom_new_dev(ATOM_VBD_SET_ACTIVE, vm->id,
                                               vm->vbds[i].dev, false)));
    for (size_t i = 0; i < vm->n_vifs; i++)
        atom_add(dev, best_effort(atom_new_dev(ATOM_VIF_SET_ACTIVE, vm->id,
                                               vm->vifs[i].dev, false)));
    atom_add(a, dev);
    atom_add(a, best_effort(atom_new(ATOM_VM_REMOVE, vm->id)));
    return a;
}

struct atom *
expand_migrate_source_deactivate(const struct expand_vm *vm)
{
    return vbds_with_backend(vm, ATOM_VBD_DEACTIVATE,
                             "VBDs.deactivate for migration");
}

struct atom *
expand_migrate_source_reactivate(const struct expand_vm *vm)
{
    return vbds_with_backend(vm, ATOM_VBD_ACTIVATE, "VBDs.reactivate");
}

struct atom *
expand_migrate_unpause_source(const char *vm)
{
    return atom_new(ATOM_VM_UNPAUSE, vm);
}

/* VM.shutdown's plan, as xenopsd's cleanup: the devices' active flags go
 * too, or the temporary id's records stay and the VM's next migration
 * from this host cannot take it. */
struct atom *
expand_migrate_source_cleanup(const struct expand_vm *vm, bool legacy)
{
    struct atom *a = atom_new_group(ATOM_SERIAL, vm->id,
                                    "migration cleanup");

    atom_add(a, expand_vm_poweroff(vm, legacy, -1));
    atom_add(a, atom_new(ATOM_VM_REMOVE, vm->id));
    return a;
}
