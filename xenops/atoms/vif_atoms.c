/* SPDX-License-Identifier: LGPL-2.1-only */
/* VIF atoms: thin calls into the backend, each signalling the VIF. */
#include "atoms_priv.h"
#include "backend.h"

/* VIF_set_active (vm, dev, value). Idempotent. */
int
vif_atom_set_active(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vif_set_active(b, a->vm, a->dev, a->flag);

    if (!rc)
        atoms_signal_vif(op, a->vm, a->dev);
    return rc;
}

/* VIF_plug (vm, dev): create the network device. Undone by VIF_unplug. */
int
vif_atom_plug(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vif_plug(b, a->vm, a->dev);

    if (!rc)
        atoms_signal_vif(op, a->vm, a->dev);
    return rc;
}

/* VIF_unplug (vm, dev, force): remove it; a missing device is fine. */
int
vif_atom_unplug(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc = b->ops->vif_unplug(b, a->vm, a->dev, a->flag);

    if (!rc)
        atoms_signal_vif(op, a->vm, a->dev);
    return rc;
}
