/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * expand: operations -> atom trees, as pure functions (no I/O, no globals),
 * following xenopsd's atomics_of_operation (reference/xenopsd-behaviour.md
 * 1.3-1.4 and 2.4) restricted to the atoms we have (no PCI/VGPU/VUSB, no
 * hook scripts, no device model).
 *
 * Rules kept from xenopsd:
 * - RW VBDs are always plugged before RO ones (the storage layer cannot
 *   upgrade an RO attach to RW).
 * - vbd_plug: legacy -> VBD_plug; split -> Serial "VBD.attach_and_activate"
 *   [VBD_attach; VBD_activate]. vbd_unplug: legacy -> VBD_unplug(force);
 *   split -> Serial "VBD.deactivate_and_detach" [VBD_deactivate(force);
 *   VBD_detach].
 * - collect_into: an empty list gives no atom, one gives the atom itself,
 *   two or more are wrapped in the combinator.
 * - Migration (receiver): VBDs with can_attach_early (and legacy false) get
 *   VBD_set_active + VBD_attach before the downtime and only VBD_activate
 *   inside it; every other VBD gets the full set_active + plug inside it.
 *
 * Shape: an operation's tree is a root Serial "<operation> VM=<id>" whose
 * children are exactly xenopsd's flat atom list for it (expand.c's top
 * comment has the naming rules and a worked example); expand_early_attach
 * returns a fragment instead (see there).
 *
 * Ownership: every function returns a new tree (caller frees with
 * atom_free), or NULL when the operation has no atoms at all.
 */
#ifndef XENOPS_EXPAND_H
#define XENOPS_EXPAND_H

#include <stdbool.h>
#include <stddef.h>

#include "atoms/atom.h"

struct expand_vbd {
    char dev[33];
    bool rw;                /* mode ReadWrite */
    bool has_backend;       /* false: empty CD drive */
    bool can_attach_early;  /* from the Vbd.t and the SR's driver */
    /*
     * xenopsd's Vbd.persistent ([@default true] in the interface): the
     * flag of VBD_epoch_begin. false means the SM resets the disk at every
     * start, so callers must copy it from the VBD record; a zeroed struct
     * means non-persistent.
     */
    bool persistent;
};

struct expand_vif {
    char dev[33];
};

/* What an expansion needs to know about a VM; vbds/vifs in position
 * order. */
struct expand_vm {
    const char *id;
    const struct expand_vbd *vbds;
    size_t n_vbds;
    const struct expand_vif *vifs;
    size_t n_vifs;
};

/* VM_start: VM_create, VM_build, Parallel "Devices.plug" [Serial of
 * Nested_parallel RW / RO VBD sets; VIFs], VM_set_domain_action_request
 * clear. The domain is left paused (xapi unpauses); paused=false appends
 * VM_unpause. */
struct atom *expand_vm_start(const struct expand_vm *vm, bool legacy,
                             bool paused);
/* VM_shutdown (internal): [VM_shutdown_domain Halt if timeout >= 0],
 * Best_effort VM_pause, Parallel "Devices.unplug", VM_destroy. */
struct atom *expand_vm_shutdown(const struct expand_vm *vm, bool legacy,
                                double timeout);
/* VM_poweroff = VM_shutdown + Parallel "Devices.deactivate" (VBD
 * epoch_end + set_active false, VIF set_active false). */
struct atom *expand_vm_poweroff(const struct expand_vm *vm, bool legacy,
                                double timeout);
/* VM_reboot: shutdown_domain Reboot if timeout >= 0, VM_shutdown, epoch
 * ends, VM_start, VM_unpause. */
struct atom *expand_vm_reboot(const struct expand_vm *vm, bool legacy,
                              double timeout);
/* VM_suspend: VM_save(data) then VM_shutdown. */
struct atom *expand_vm_suspend(const struct expand_vm *vm, bool legacy,
                               const struct atom_data *data);
/* VM_resume: VM_create, VM_restore(data), VM_restore_devices(false),
 * clear action request. */
struct atom *expand_vm_resume(const struct expand_vm *vm, bool legacy,
                              const struct atom_data *data);
/* VM_restore_devices: Parallel RW then RO; per VBD activate-only when
 * migration && !legacy && can_attach_early, else set_active + plug; then
 * the VIFs unless migration. */
struct atom *expand_vm_restore_devices(const struct expand_vm *vm,
                                       bool legacy, bool migration);
/* VM_restore_vifs: Parallel "VIFs.activate_and_plug" of Serial
 * [VIF_set_active true; VIF_plug] per VIF (receiver phase A; also the VIF
 * part of VM_restore_devices when not migrating). NULL without VIFs. */
struct atom *expand_vm_restore_vifs(const struct expand_vm *vm);
/* Receiver phase A: Parallel "VBDs.set_active_and_attach" of
 * Serial [VBD_set_active true; VBD_attach] for every early VBD (RW and RO
 * mixed, position order; early = !legacy && can_attach_early &&
 * has_backend); a lone early VBD gives its Serial unwrapped; NULL when
 * legacy or none can attach early. Not rooted: the caller splices it into
 * its own phase-A list. */
struct atom *expand_early_attach(const struct expand_vm *vm, bool legacy);
/* ---- live migration (expand_migrate.c, which says when each runs) ---- */
/* Receiver phase A: Serial "VM_receive_memory phase A" [VM_create (with
 * final_id); VM_restore_vifs; expand_early_attach]. */
struct atom *expand_migrate_receive_prepare(const struct expand_vm *vm,
                                            const char *final_id,
                                            bool legacy);
/* VM_rename vm -> new_id (either side). */
struct atom *expand_migrate_rename(const char *vm, const char *new_id);
/* Receiver phase C's end: Serial "unpause" [VM_unpause;
 * VM_set_domain_action_request clear]. */
struct atom *expand_migrate_receive_unpause(const char *vm);
/* Receiver failure: Serial of Best_effort VM_destroy, Serial
 * "Devices.deactivate" of Best_effort VBD/VIF_set_active false for every
 * device, Best_effort VM_remove. */
struct atom *expand_migrate_receive_abort(const struct expand_vm *vm);
/* Sender's switch-over: Parallel "VBDs.deactivate for migration" of
 * VBD_deactivate for every VBD with a backend; NULL if none. */
struct atom *expand_migrate_source_deactivate(const struct expand_vm *vm);
/* Sender's failure after it: Parallel "VBDs.reactivate" of VBD_activate
 * for the same VBDs; NULL if none. */
struct atom *expand_migrate_source_reactivate(const struct expand_vm *vm);
/* Sender's failure: VM_unpause. */
struct atom *expand_migrate_unpause_source(const char *vm);
/* Sender's success, for the VM under its temporary id: Serial "migration
 * cleanup" [VM_poweroff's plan without a timeout; VM_remove]. */
struct atom *expand_migrate_source_cleanup(const struct expand_vm *vm,
                                           bool legacy);

/* VBD.plug / VBD.unplug of one device. */
struct atom *expand_vbd_hotplug(const char *vm, const char *dev,
                                bool legacy);
struct atom *expand_vbd_hotunplug(const char *vm, const char *dev,
                                  bool legacy, bool force);
struct atom *expand_vif_hotplug(const char *vm, const char *dev);
struct atom *expand_vif_hotunplug(const char *vm, const char *dev,
                                  bool force);

#endif
