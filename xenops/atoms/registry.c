/* SPDX-License-Identifier: LGPL-2.1-only */
/* The one table of leaf atoms. */
#include <stddef.h>

#include "atoms/atoms_priv.h"

static const struct atom_ops atom_table[] = {
    { ATOM_VM_CREATE, vm_atom_create, 1 },
    { ATOM_VM_BUILD, vm_atom_build, 1 },
    { ATOM_VM_PAUSE, vm_atom_pause, 1 },
    { ATOM_VM_UNPAUSE, vm_atom_unpause, 1 },
    { ATOM_VM_DESTROY, vm_atom_destroy, 1 },
    { ATOM_VM_REMOVE, vm_atom_remove, 1 },
    { ATOM_VM_RENAME, vm_atom_rename, 1 },
    { ATOM_VM_SAVE, vm_atom_save, 10 },
    { ATOM_VM_RESTORE, vm_atom_restore, 10 },
    { ATOM_VM_SET_DOMAIN_ACTION_REQUEST,
      vm_atom_set_domain_action_request, 1 },
    { ATOM_VM_SHUTDOWN_DOMAIN, vm_atom_shutdown_domain, 1 },
    { ATOM_VM_DELAY, vm_atom_delay, 1 },
    { ATOM_VM_SET_VCPUS, vm_atom_set_vcpus, 1 },
    { ATOM_VM_SET_MEMORY_DYNAMIC_RANGE, vm_atom_set_memory_dynamic_range,
      1 },
    { ATOM_VM_SET_XSDATA, vm_atom_set_xsdata, 1 },
    { ATOM_VM_IMPORT_METADATA, vm_atom_import_metadata, 1 },
    { ATOM_VBD_SET_ACTIVE, vbd_atom_set_active, 1 },
    { ATOM_VBD_ATTACH, vbd_atom_attach, 1 },
    { ATOM_VBD_ACTIVATE, vbd_atom_activate, 1 },
    { ATOM_VBD_PLUG, vbd_atom_plug, 1 },
    { ATOM_VBD_DEACTIVATE, vbd_atom_deactivate, 1 },
    { ATOM_VBD_DETACH, vbd_atom_detach, 1 },
    { ATOM_VBD_UNPLUG, vbd_atom_unplug, 1 },
    { ATOM_VBD_EPOCH_BEGIN, vbd_atom_epoch_begin, 1 },
    { ATOM_VBD_EPOCH_END, vbd_atom_epoch_end, 1 },
    { ATOM_VBD_INSERT, vbd_atom_insert, 1 },
    { ATOM_VBD_EJECT, vbd_atom_eject, 1 },
    { ATOM_VIF_PLUG, vif_atom_plug, 1 },
    { ATOM_VIF_UNPLUG, vif_atom_unplug, 1 },
    { ATOM_VIF_SET_ACTIVE, vif_atom_set_active, 1 },
    { ATOM_VIF_SET_CARRIER, vif_atom_set_carrier, 1 },
    { ATOM_VIF_SET_LOCKING_MODE, vif_atom_set_locking_mode, 1 },
};

const struct atom_ops *
atom_ops_find(enum atom_kind kind)
{
    for (size_t i = 0; i < sizeof(atom_table) / sizeof(atom_table[0]); i++)
        if (atom_table[i].kind == kind)
            return &atom_table[i];
    return NULL;
}
