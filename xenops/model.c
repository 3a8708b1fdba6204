/* SPDX-License-Identifier: LGPL-2.1-only */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "errors.h"
#include "ids.h"
#include "json.h"
#include "log.h"
#include "model.h"
#include "xalloc.h"

void
model_disk_dispose(struct model_disk *d)
{
    if (!d)
        return;
    free(d->path);
    free(d->sr);
    free(d->vdi);
    memset(d, 0, sizeof(*d));
}

int
model_disk_parse(yajl_val v, struct model_disk *d)
{
    yajl_val tag, arg;
    const char *slash;

    memset(d, 0, sizeof(*d));
    if (!v || YAJL_IS_NULL(v))
        return 0;
    tag = json_array_at(v, 0);
    arg = json_array_at(v, 1);
    if (json_array_len(v) != 2 || !YAJL_IS_STRING(tag) ||
        !YAJL_IS_STRING(arg) || !arg->u.string[0])
        return xo_err_internal_code(XO_EINVAL,
                                    "disk must be [\"Local\", path] or "
                                    "[\"VDI\", \"sr/vdi\"]");
    if (strcasecmp(tag->u.string, "Local") == 0) {
        d->kind = MODEL_DISK_LOCAL;
        d->path = xstrdup(arg->u.string);
        return 0;
    }
    if (strcasecmp(tag->u.string, "VDI") != 0)
        return xo_err_internal_code(XO_EINVAL, "unknown disk kind '%s'",
                                    tag->u.string);
    /* xapi builds "<SR uuid>/<VDI location>" and splits at the first '/'. */
    slash = strchr(arg->u.string, '/');
    if (!slash || slash == arg->u.string || !slash[1])
        return xo_err_internal_code(XO_EINVAL,
                                    "VDI disk '%s' is not \"sr/vdi\"",
                                    arg->u.string);
    d->kind = MODEL_DISK_VDI;
    d->path = xstrdup(arg->u.string);
    d->sr = xstrndup(arg->u.string, (size_t)(slash - arg->u.string));
    d->vdi = xstrdup(slash + 1);
    return 0;
}

char *
model_disk_to_json(const struct model_disk *d)
{
    yajl_gen g = json_gen_new();

    if (d->kind == MODEL_DISK_NONE) {
        json_gen_null(g);
    } else {
        yajl_gen_array_open(g);
        json_gen_str(g, d->kind == MODEL_DISK_LOCAL ? "Local" : "VDI");
        json_gen_str(g, d->path);
        yajl_gen_array_close(g);
    }
    return json_gen_take(g);
}

char *
model_dev_id_json(const char *vm, const char *dev)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, vm);
    json_gen_str(g, dev);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

/* id = [vm, dev] with both validated. */
static int
parse_dev_id(yajl_val rec, char *vm, char *dev)
{
    yajl_val id = json_get(rec, "id");
    yajl_val a = json_array_at(id, 0), b = json_array_at(id, 1);
    int rc;

    if (json_array_len(id) != 2 || !YAJL_IS_STRING(a) || !YAJL_IS_STRING(b))
        return xo_err_internal_code(XO_EINVAL,
                                    "device 'id' must be [vm, device]");
    rc = ids_check_vm(a->u.string);
    if (rc)
        return rc;
    rc = ids_check_dev(b->u.string);
    if (rc)
        return rc;
    memcpy(vm, a->u.string, IDS_UUID_LEN + 1);
    xstrlcpy(dev, b->u.string, IDS_DEV_MAX + 1);
    return 0;
}

static int
parse_int(yajl_val rec, const char *key, bool required, int64_t dflt,
          int64_t min, int64_t max, int64_t *r)
{
    int rc;

    if (required && !json_get(rec, key))
        return xo_err_internal_code(XO_EINVAL, "missing field '%s'", key);
    rc = json_get_int64(rec, key, dflt, r);
    if (rc)
        return rc;
    if (*r < min || *r > max)
        return xo_err_internal_code(XO_EINVAL, "'%s' out of range", key);
    return 0;
}

int
model_vm_from_tree(yajl_val v, struct model_vm **vm_r)
{
    struct model_vm *vm = NULL;
    const char *id, *name;
    yajl_val ty;
    int64_t n;
    int rc;

    *vm_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VM record must be an object");
        goto out;
    }
    id = json_get_str(v, "id");
    if (!id) {
        rc = xo_err_internal_code(XO_EINVAL, "VM record has no 'id'");
        goto out;
    }
    rc = ids_check_vm(id);
    if (rc)
        goto out;
    vm = xcalloc(1, sizeof(*vm));
    memcpy(vm->id, id, IDS_UUID_LEN + 1);
    name = json_get_str(v, "name");
    vm->name = xstrdup(name ? name : "unnamed");
    rc = parse_int(v, "memory_static_max", true, 0, 1, INT64_MAX,
                   &vm->memory_static_max);
    if (rc)
        goto out;
    rc = parse_int(v, "memory_dynamic_max", false, vm->memory_static_max, 1,
                   INT64_MAX, &vm->memory_dynamic_max);
    if (rc)
        goto out;
    rc = parse_int(v, "memory_dynamic_min", false, vm->memory_dynamic_max, 1,
                   INT64_MAX, &vm->memory_dynamic_min);
    if (rc)
        goto out;
    rc = parse_int(v, "vcpus", true, 1, 1, 4096, &n);
    if (rc)
        goto out;
    vm->vcpus = (int)n;
    rc = parse_int(v, "vcpu_max", false, vm->vcpus, vm->vcpus, 4096, &n);
    if (rc)
        goto out;
    vm->vcpu_max = (int)n;
    /* builder_info: ["HVM", {...}] or ["PV"|"PVH"|"PVinPVH", {...}]. */
    ty = json_array_at(json_get(v, "ty"), 0);
    vm->hvm = ty && YAJL_IS_STRING(ty) && strcasecmp(ty->u.string, "HVM") == 0;
    vm->json = json_tree_to_string(v);
    *vm_r = vm;
    vm = NULL;
    rc = 0;
out:
    model_vm_free(vm);
    return rc;
}

static int
parse_text(const char *json, yajl_val *tree_r)
{
    if (!json)
        return xo_err_internal_code(XO_EINVAL, "missing record");
    return json_parse(json, strlen(json), tree_r);
}

int
model_vm_parse(const char *json, struct model_vm **vm_r)
{
    yajl_val t = NULL;
    int rc;

    *vm_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vm_from_tree(t, vm_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vm_free(struct model_vm *vm)
{
    if (!vm)
        return;
    free(vm->name);
    free(vm->json);
    free(vm);
}

/* A variant without arguments: "Tag" (rpclib also accepts ["Tag"]). */
static const char *
variant_tag(yajl_val v)
{
    if (v && YAJL_IS_STRING(v))
        return v->u.string;
    v = json_array_at(v, 0);
    return (v && YAJL_IS_STRING(v)) ? v->u.string : NULL;
}

int
model_vbd_from_tree(yajl_val v, struct model_vbd **vbd_r)
{
    struct model_vbd *vbd = NULL;
    yajl_val mode, ty, cae;
    const char *tag;
    int rc;

    *vbd_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VBD record must be an object");
        goto out;
    }
    vbd = xcalloc(1, sizeof(*vbd));
    rc = parse_dev_id(v, vbd->vm, vbd->dev);
    if (rc)
        goto out;
    vbd->rw = true;
    mode = json_get(v, "mode");
    if (mode && !YAJL_IS_NULL(mode)) {
        tag = variant_tag(mode);
        if (tag && strcasecmp(tag, "ReadOnly") == 0) {
            vbd->rw = false;
        } else if (!tag || strcasecmp(tag, "ReadWrite") != 0) {
            rc = xo_err_internal_code(XO_EINVAL,
                                      "VBD 'mode' must be ReadWrite or "
                                      "ReadOnly");
            goto out;
        }
    }
    rc = model_disk_parse(json_get(v, "backend"), &vbd->backend);
    if (rc)
        goto out;
    vbd->ty = MODEL_VBD_DISK;
    ty = json_get(v, "ty");
    if (ty && !YAJL_IS_NULL(ty)) {
        tag = variant_tag(ty);
        if (tag && strcasecmp(tag, "CDROM") == 0) {
            vbd->ty = MODEL_VBD_CDROM;
        } else if (tag && strcasecmp(tag, "Floppy") == 0) {
            vbd->ty = MODEL_VBD_FLOPPY;
        } else if (!tag || strcasecmp(tag, "Disk") != 0) {
            rc = xo_err_internal_code(XO_EINVAL,
                                      "VBD 'ty' must be Disk, CDROM or "
                                      "Floppy");
            goto out;
        }
    }
    rc = json_get_bool(v, "unpluggable", true, &vbd->unpluggable);
    if (rc)
        goto out;
    rc = json_get_bool(v, "persistent", true, &vbd->persistent);
    if (rc)
        goto out;
    cae = json_get(v, "can_attach_early");
    vbd->can_attach_early_given = cae && !YAJL_IS_NULL(cae);
    rc = json_get_bool(v, "can_attach_early", false, &vbd->can_attach_early);
    if (rc)
        goto out;
    vbd->json = json_tree_to_string(v);
    *vbd_r = vbd;
    vbd = NULL;
out:
    model_vbd_free(vbd);
    return rc;
}

int
model_vbd_parse(const char *json, struct model_vbd **vbd_r)
{
    yajl_val t = NULL;
    int rc;

    *vbd_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vbd_from_tree(t, vbd_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vbd_free(struct model_vbd *vbd)
{
    if (!vbd)
        return;
    model_disk_dispose(&vbd->backend);
    free(vbd->json);
    free(vbd);
}

int
model_vif_from_tree(yajl_val v, struct model_vif **vif_r)
{
    struct model_vif *vif = NULL;
    int64_t pos;
    int rc;

    *vif_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VIF record must be an object");
        goto out;
    }
    vif = xcalloc(1, sizeof(*vif));
    rc = parse_dev_id(v, vif->vm, vif->dev);
    if (rc)
        goto out;
    rc = parse_int(v, "position", false, 0, 0, 65535, &pos);
    if (rc)
        goto out;
    vif->position = (int)pos;
    vif->json = json_tree_to_string(v);
    *vif_r = vif;
    vif = NULL;
out:
    model_vif_free(vif);
    return rc;
}

int
model_vif_parse(const char *json, struct model_vif **vif_r)
{
    yajl_val t = NULL;
    int rc;

    *vif_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vif_from_tree(t, vif_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vif_free(struct model_vif *vif)
{
    if (!vif)
        return;
    free(vif->json);
    free(vif);
}
