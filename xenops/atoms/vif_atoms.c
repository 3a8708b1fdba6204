/* SPDX-License-Identifier: LGPL-2.1-only */
/* VIF atoms: thin calls into the backend, each signalling the VIF. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "atoms/atoms_priv.h"
#include "backend/backend.h"
#include "model.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

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

/* VIF_plug (vm, dev): create the network device from the stored Vif.t.
 * Undone by VIF_unplug. */
int
vif_atom_plug(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    struct vmextra_doc *doc = NULL;
    const char *vif_json;
    int rc;

    rc = vmextra_load(op->env->store, a->vm, &doc);
    if (rc)
        goto out;
    vif_json = vmextra_doc_vif(doc, a->dev);
    if (!vif_json) {
        char *id = xasprintf("%s.%s", a->vm, a->dev);

        rc = xo_err_does_not_exist("VIF", id);
        free(id);
        goto out;
    }
    rc = b->ops->vif_plug(b, a->vm, a->dev, vif_json);
    if (!rc)
        atoms_signal_vif(op, a->vm, a->dev);
out:
    vmextra_doc_free(doc);
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

struct field_arg {
    const char *dev;
    const char *key;
    const char *value_json;
};

/* Set one field of the stored Vif.t, re-canonicalised. */
static int
field_fn(struct vmextra_doc *doc, void *arg)
{
    struct field_arg *f = arg;
    const char *json = vmextra_doc_vif(doc, f->dev);
    struct model_vif *vif = NULL;
    yajl_val t = NULL;
    int rc;

    if (!json) {
        char *id = xasprintf("%s.%s", doc->id, f->dev);

        rc = xo_err_does_not_exist("VIF", id);
        free(id);
        return rc;
    }
    rc = json_parse(json, strlen(json), &t);
    if (!rc)
        rc = model_tree_set_json(t, f->key, f->value_json);
    if (!rc)
        rc = model_vif_from_tree(t, &vif);
    if (!rc)
        vmextra_doc_set_vif(doc, f->dev, vif->json);
    model_vif_free(vif);
    yajl_tree_free(t);
    return rc;
}

static int
set_field(struct exec_op *op, const struct atom *a, const char *key,
          const char *value_json)
{
    struct field_arg f = { a->dev, key, value_json };

    return atoms_update_doc(op, a->vm, field_fn, &f);
}

static int
require_vif(struct exec_op *op, const struct atom *a, bool implemented,
            const char *what)
{
    struct vmextra_doc *doc = NULL;
    int rc = vmextra_load(op->env->store, a->vm, &doc);

    if (!rc && !vmextra_doc_vif(doc, a->dev)) {
        char *id = xasprintf("%s.%s", a->vm, a->dev);

        rc = xo_err_does_not_exist("VIF", id);
        free(id);
    }
    vmextra_doc_free(doc);
    if (!rc && !implemented) {
        LOGVM(WARN, a->vm, "backend '%s' does not implement %s",
              op->env->backend->ops->name, what);
        rc = xo_err_unimplemented(what);
    }
    return rc;
}

/*
 * VIF_set_carrier (vm, dev, carrier): the live device first, then the
 * Vif.t (xenopsd's order). A VIF that is not plugged only gets the record.
 * Undone by setting it back.
 */
int
vif_atom_set_carrier(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc;

    rc = require_vif(op, a, b->ops->vif_set_carrier != NULL,
                     "VIF.set_carrier");
    if (!rc)
        rc = b->ops->vif_set_carrier(b, a->vm, a->dev, a->flag);
    if (!rc)
        rc = set_field(op, a, "carrier", a->flag ? "true" : "false");
    atoms_signal_vif(op, a->vm, a->dev);
    return rc;
}

/*
 * VIF_set_locking_mode (vm, dev, mode): the Vif.t first, then the live
 * device (xenopsd's order: the hotplug scripts read the record). text is
 * a canonical Vif.locking_mode. Undone by setting it back.
 */
int
vif_atom_set_locking_mode(struct exec_op *op, const struct atom *a)
{
    struct backend *b = op->env->backend;
    int rc;

    rc = require_vif(op, a, b->ops->vif_set_locking_mode != NULL,
                     "VIF.set_locking_mode");
    if (!rc)
        rc = set_field(op, a, "locking_mode", a->text ? a->text : "null");
    if (!rc)
        rc = b->ops->vif_set_locking_mode(b, a->vm, a->dev, a->text);
    atoms_signal_vif(op, a->vm, a->dev);
    return rc;
}
