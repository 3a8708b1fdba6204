/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * atoms_priv: the leaf-atom registry shared by exec.c and the atom family
 * files (vm_atoms.c, vbd_atoms.c, vif_atoms.c). Each atom is a plain
 * synchronous function; its header comment in the family file says what it
 * does, what state it reads and writes, which SM calls it makes, whether it
 * is idempotent and which atom undoes it.
 */
#ifndef XENOPS_ATOMS_PRIV_H
#define XENOPS_ATOMS_PRIV_H

#include "atoms/atom.h"
#include "atoms/exec.h"

typedef int (*atom_run_fn)(struct exec_op *op, const struct atom *a);

struct atom_ops {
    enum atom_kind kind;
    atom_run_fn run;
    /* Progress weight, as xenopsd: VM_save / VM_restore 10, others 1. */
    int weight;
};

/* The registry entry for a leaf kind, or NULL for combinators. */
const struct atom_ops *atom_ops_find(enum atom_kind kind);

/* Family entry points (defined in the family files). */
int vm_atom_create(struct exec_op *op, const struct atom *a);
int vm_atom_build(struct exec_op *op, const struct atom *a);
int vm_atom_pause(struct exec_op *op, const struct atom *a);
int vm_atom_unpause(struct exec_op *op, const struct atom *a);
int vm_atom_destroy(struct exec_op *op, const struct atom *a);
int vm_atom_remove(struct exec_op *op, const struct atom *a);
int vm_atom_rename(struct exec_op *op, const struct atom *a);
int vm_atom_save(struct exec_op *op, const struct atom *a);
int vm_atom_restore(struct exec_op *op, const struct atom *a);
int vm_atom_set_domain_action_request(struct exec_op *op,
                                      const struct atom *a);
int vm_atom_shutdown_domain(struct exec_op *op, const struct atom *a);
int vm_atom_delay(struct exec_op *op, const struct atom *a);
int vm_atom_set_vcpus(struct exec_op *op, const struct atom *a);
int vm_atom_set_memory_dynamic_range(struct exec_op *op,
                                     const struct atom *a);
int vm_atom_set_xsdata(struct exec_op *op, const struct atom *a);
int vm_atom_import_metadata(struct exec_op *op, const struct atom *a);

int vbd_atom_set_active(struct exec_op *op, const struct atom *a);
int vbd_atom_attach(struct exec_op *op, const struct atom *a);
int vbd_atom_activate(struct exec_op *op, const struct atom *a);
int vbd_atom_plug(struct exec_op *op, const struct atom *a);
int vbd_atom_deactivate(struct exec_op *op, const struct atom *a);
int vbd_atom_detach(struct exec_op *op, const struct atom *a);
int vbd_atom_unplug(struct exec_op *op, const struct atom *a);
int vbd_atom_epoch_begin(struct exec_op *op, const struct atom *a);
int vbd_atom_epoch_end(struct exec_op *op, const struct atom *a);
int vbd_atom_insert(struct exec_op *op, const struct atom *a);
int vbd_atom_eject(struct exec_op *op, const struct atom *a);

int vif_atom_set_active(struct exec_op *op, const struct atom *a);
int vif_atom_plug(struct exec_op *op, const struct atom *a);
int vif_atom_unplug(struct exec_op *op, const struct atom *a);
int vif_atom_set_carrier(struct exec_op *op, const struct atom *a);
int vif_atom_set_locking_mode(struct exec_op *op, const struct atom *a);

/* Detach the datapath of (vm, dev) and drop its attach record, as
 * VBD_detach does (vbd_atoms.c; VM_destroy releases a VM's disks with
 * it). */
int vbd_release(struct exec_op *op, const char *vm, const char *dev);

#endif

/* ---- helpers shared by the atom families (vm_atoms.c) ---- */
struct model_vbd;
struct model_vm;
struct vmextra_doc;

/* The VBD record of (vm, dev) from the store: Does_not_exist ["VBD", ...]
 * if missing. */
int atoms_load_vbd(struct exec_op *op, const char *vm, const char *dev,
                   struct model_vbd **vbd_r);
/* The Vm.t of vm: Does_not_exist ["VM", vm] if missing. */
int atoms_load_vm(struct exec_op *op, const char *vm,
                  struct model_vm **vm_r);
/* Running or Paused, else Bad_power_state [found, Running] (xenopsd's
 * check in VBD_insert / VBD_eject). */
int atoms_require_live(struct exec_op *op, const char *vm);
/* The domid of the VM's domain; Bad_power_state [Halted, Running] if it
 * has none. */
int atoms_domid(struct exec_op *op, const char *vm, int *domid_r);
/*
 * Read-modify-write of the VM's document (vmextra_update): conflicts come
 * from Parallel siblings of the same operation updating one document.
 * fn returns 0 to commit, 1 to leave the document unchanged, or an error.
 */
typedef int (*atoms_doc_fn)(struct vmextra_doc *doc, void *arg);
int atoms_update_doc(struct exec_op *op, const char *vm, atoms_doc_fn fn,
                     void *arg);
/* Signal ["Vm", vm] / ["Vbd", [vm, dev]] / ["Vif", ...] on UPDATES. */
void atoms_signal_vm(struct exec_op *op, const char *vm);
void atoms_signal_vbd(struct exec_op *op, const char *vm, const char *dev);
void atoms_signal_vif(struct exec_op *op, const char *vm, const char *dev);
