/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Import is two steps so that bad input is refused before anything is
 * queued or written: metadata_parse decodes and validates everything into
 * canonical records (the async import re-parses its canonical text on the
 * VM's queue), metadata_import writes them in one store commit.
 */
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "metadata.h"
#include "model.h"
#include "updates.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

struct metadata {
    char id[IDS_UUID_LEN + 1];
    char *vm_json;
    struct vmextra_rec *vbds;
    size_t n_vbds;
    struct vmextra_rec *vifs;
    size_t n_vifs;
    char *domains;              /* the "domains" string, or NULL */
    bool has_start_time;
    double last_start_time;
    char *json;
};

static char *
json_str_text(const char *s)
{
    yajl_gen g = json_gen_new();

    json_gen_str(g, s);
    return json_gen_take(g);
}

/* A member that is present and not null. */
static yajl_val
member(yajl_val obj, const char *key)
{
    yajl_val m = json_get(obj, key);

    return m && !YAJL_IS_NULL(m) ? m : NULL;
}

/* Keys of maps are data (VDI names, device numbers): matched exactly. */
static yajl_val
map_lookup(yajl_val map, const char *key)
{
    if (!map || !YAJL_IS_OBJECT(map))
        return NULL;
    for (size_t i = 0; i < map->u.object.len; i++)
        if (strcmp(map->u.object.keys[i], key) == 0)
            return map->u.object.values[i];
    return NULL;
}

void
metadata_free(struct metadata *md)
{
    if (!md)
        return;
    free(md->vm_json);
    for (size_t i = 0; i < md->n_vbds; i++)
        free(md->vbds[i].json);
    free(md->vbds);
    for (size_t i = 0; i < md->n_vifs; i++)
        free(md->vifs[i].json);
    free(md->vifs);
    free(md->domains);
    free(md->json);
    free(md);
}

const char *
metadata_vm_id(const struct metadata *md)
{
    return md->id;
}

const char *
metadata_json(const struct metadata *md)
{
    return md->json;
}

/* ---- parse ---- */

/*
 * The Vm.t, with the host's featureset added to platformdata when it has
 * none (a VM from a host without CPU levelling gets everything this host
 * offers, as in xenopsd).
 */
static int
parse_vm(yajl_val v, const char *fs_pv, const char *fs_hvm,
         struct metadata *md)
{
    struct model_vm *vm = NULL, *vm2 = NULL;
    yajl_val c = NULL;
    const char *fs;
    char *text = NULL;
    int rc;

    rc = model_vm_from_tree(v, &vm);
    if (rc)
        goto out;
    fs = vm->pv ? fs_pv : fs_hvm;
    if (fs) {
        rc = json_parse(vm->json, strlen(vm->json), &c);
        if (rc)
            goto out;
        if (!json_get_str(json_get(c, "platformdata"), "featureset")) {
            text = json_str_text(fs);
            rc = model_tree_set_json(json_get(c, "platformdata"),
                                     "featureset", text);
            if (!rc)
                rc = model_vm_from_tree(c, &vm2);
            if (rc)
                goto out;
            model_vm_free(vm);
            vm = vm2;
            vm2 = NULL;
        }
    }
    memcpy(md->id, vm->id, sizeof(md->id));
    md->vm_json = vm->json;
    vm->json = NULL;
out:
    free(text);
    yajl_tree_free(c);
    model_vm_free(vm);
    model_vm_free(vm2);
    return rc;
}

/* xenopsd upgrades the hd* names of VMs from old hosts to xvd*. */
static char *
upgrade_dev(const char *dev, bool vbd)
{
    if (vbd && strncmp(dev, "hd", 2) == 0)
        return xasprintf("xvd%s", dev + 2);
    return xstrdup(dev);
}

/* One Vbd.t / Vif.t: id rewritten to [vm, dev], then canonicalised. */
static int
parse_dev(yajl_val el, const char *vm, bool vbd, struct vmextra_rec *rec)
{
    struct model_vbd *b = NULL;
    struct model_vif *f = NULL;
    yajl_val dev = json_array_at(json_get(el, "id"), 1);
    char *name = NULL, *id = NULL;
    int rc;

    if (!el || !YAJL_IS_OBJECT(el) || !dev || !YAJL_IS_STRING(dev)) {
        rc = xo_err_internal_code(XO_EINVAL, "metadata: each %s must be an "
                                  "object with id [vm, device]",
                                  vbd ? "VBD" : "VIF");
        goto out;
    }
    name = upgrade_dev(dev->u.string, vbd);
    rc = ids_check_dev(name);
    if (rc)
        goto out;
    id = model_dev_id_json(vm, name);
    rc = model_tree_set_json(el, "id", id);
    if (rc)
        goto out;
    rc = vbd ? model_vbd_from_tree(el, &b) : model_vif_from_tree(el, &f);
    if (rc)
        goto out;
    xstrlcpy(rec->dev, name, sizeof(rec->dev));
    rec->json = vbd ? b->json : f->json;
    if (vbd)
        b->json = NULL;
    else
        f->json = NULL;
out:
    model_vbd_free(b);
    model_vif_free(f);
    free(name);
    free(id);
    return rc;
}

static int
parse_devs(yajl_val list, const char *vm, bool vbd,
           struct vmextra_rec **recs_r, size_t *n_r)
{
    const char *what = vbd ? "vbds" : "vifs";
    size_t n = json_array_len(list);
    int rc = 0;

    *recs_r = NULL;
    *n_r = 0;
    if (!list)
        return 0;
    if (!json_is_array(list) || n > VMEXTRA_MAX_RECORDS)
        return xo_err_internal_code(XO_EINVAL, "metadata: '%s' must be a "
                                    "list of at most %d records", what,
                                    VMEXTRA_MAX_RECORDS);
    *recs_r = xcalloc(n + 1, sizeof(**recs_r));
    for (size_t i = 0; i < n && !rc; i++) {
        rc = parse_dev(json_array_at(list, i), vm, vbd, &(*recs_r)[i]);
        if (rc)
            break;
        /* Counted at once so that metadata_free frees it. */
        (*n_r)++;
        for (size_t j = 0; j < i && !rc; j++)
            if (strcmp((*recs_r)[j].dev, (*recs_r)[i].dev) == 0)
                rc = xo_err_internal_code(XO_EINVAL, "metadata: device "
                                          "'%s' appears twice in '%s'",
                                          (*recs_r)[i].dev, what);
    }
    return rc;
}

/* Devices this daemon has no support for: absent or empty only. */
static int
parse_unsupported(yajl_val md, const char *key)
{
    yajl_val v = member(md, key);

    if (!v)
        return 0;
    if (!json_is_array(v))
        return xo_err_internal_code(XO_EINVAL, "metadata: '%s' must be a "
                                    "list", key);
    if (json_array_len(v) > 0) {
        LOG(WARN, "metadata with %zu %s refused: not supported",
            json_array_len(v), key);
        return xo_err_unimplemented(key);
    }
    return 0;
}

static int
parse_domains(yajl_val v, struct metadata *md)
{
    yajl_val t = NULL;
    int rc;

    if (!v)
        return 0;
    if (!YAJL_IS_STRING(v))
        return xo_err_internal_code(XO_EINVAL, "metadata: 'domains' must "
                                    "be a string");
    rc = json_parse(v->u.string, strlen(v->u.string), &t);
    if (!rc && !YAJL_IS_OBJECT(t))
        rc = xo_err_internal_code(XO_EINVAL, "metadata: 'domains' must "
                                  "hold a JSON object");
    if (!rc && member(t, "last_start_time")) {
        rc = json_get_double(t, "last_start_time", 0,
                             &md->last_start_time);
        md->has_start_time = rc == 0;
    }
    if (!rc)
        md->domains = xstrdup(v->u.string);
    yajl_tree_free(t);
    return rc;
}

static void
gen_recs(yajl_gen g, const char *key, const struct vmextra_rec *recs,
         size_t n)
{
    json_gen_str(g, key);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        json_gen_raw(g, recs[i].json);
    yajl_gen_array_close(g);
}

static void
gen_empty_list(yajl_gen g, const char *key)
{
    json_gen_str(g, key);
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
}

static char *
metadata_gen(const struct metadata *md)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "vm");
    json_gen_raw(g, md->vm_json);
    gen_recs(g, "vbds", md->vbds, md->n_vbds);
    gen_recs(g, "vifs", md->vifs, md->n_vifs);
    gen_empty_list(g, "pcis");
    gen_empty_list(g, "vgpus");
    gen_empty_list(g, "vusbs");
    if (md->domains) {
        json_gen_str(g, "domains");
        json_gen_str(g, md->domains);
    }
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

int
metadata_parse(const char *text, const char *featureset_pv,
               const char *featureset_hvm, struct metadata **md_r)
{
    struct metadata *md = NULL;
    yajl_val t = NULL, vm;
    int rc;

    *md_r = NULL;
    if (!text) {
        rc = xo_err_internal_code(XO_EINVAL, "metadata missing");
        goto out;
    }
    rc = json_parse(text, strlen(text), &t);
    if (rc)
        goto out;
    vm = member(t, "vm");
    if (!YAJL_IS_OBJECT(t) || !vm) {
        rc = xo_err_internal_code(XO_EINVAL, "metadata must be an object "
                                  "with a 'vm' record");
        goto out;
    }
    md = xcalloc(1, sizeof(*md));
    rc = parse_vm(vm, featureset_pv, featureset_hvm, md);
    if (!rc)
        rc = parse_devs(member(t, "vbds"), md->id, true, &md->vbds,
                        &md->n_vbds);
    if (!rc)
        rc = parse_devs(member(t, "vifs"), md->id, false, &md->vifs,
                        &md->n_vifs);
    if (!rc)
        rc = parse_unsupported(t, "pcis");
    if (!rc)
        rc = parse_unsupported(t, "vgpus");
    if (!rc)
        rc = parse_unsupported(t, "vusbs");
    if (!rc)
        rc = parse_domains(member(t, "domains"), md);
    if (rc)
        goto out;
    md->json = metadata_gen(md);
    *md_r = md;
    md = NULL;
out:
    yajl_tree_free(t);
    metadata_free(md);
    return rc;
}

/* ---- import ---- */

static bool
has_dev(const struct vmextra_rec *recs, size_t n, const char *dev)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].dev, dev) == 0)
            return true;
    return false;
}

struct removed {
    char **vbds;
    size_t n_vbds;
    char **vifs;
    size_t n_vifs;
};

static void
removed_dispose(struct removed *r)
{
    for (size_t i = 0; i < r->n_vbds; i++)
        free(r->vbds[i]);
    for (size_t i = 0; i < r->n_vifs; i++)
        free(r->vifs[i]);
    free(r->vbds);
    free(r->vifs);
    memset(r, 0, sizeof(*r));
}

/* Replace the records of doc with md's; attach records stay. */
static void
apply(struct vmextra_doc *doc, const struct metadata *md, struct removed *r)
{
    removed_dispose(r);
    r->vbds = xcalloc(doc->n_vbds + 1, sizeof(*r->vbds));
    for (size_t i = 0; i < doc->n_vbds; i++)
        if (!has_dev(md->vbds, md->n_vbds, doc->vbds[i].dev))
            r->vbds[r->n_vbds++] = xstrdup(doc->vbds[i].dev);
    r->vifs = xcalloc(doc->n_vifs + 1, sizeof(*r->vifs));
    for (size_t i = 0; i < doc->n_vifs; i++)
        if (!has_dev(md->vifs, md->n_vifs, doc->vifs[i].dev))
            r->vifs[r->n_vifs++] = xstrdup(doc->vifs[i].dev);
    for (size_t i = 0; i < r->n_vbds; i++)
        vmextra_doc_del_vbd(doc, r->vbds[i]);
    for (size_t i = 0; i < r->n_vifs; i++)
        vmextra_doc_del_vif(doc, r->vifs[i]);
    vmextra_doc_set_vm(doc, md->vm_json);
    for (size_t i = 0; i < md->n_vbds; i++)
        vmextra_doc_set_vbd(doc, md->vbds[i].dev, md->vbds[i].json);
    for (size_t i = 0; i < md->n_vifs; i++)
        vmextra_doc_set_vif(doc, md->vifs[i].dev, md->vifs[i].json);
    if (md->has_start_time)
        doc->last_start_time = md->last_start_time;
}

struct apply_arg {
    const struct metadata *md;
    struct removed *r;
};

static int
apply_fn(struct vmextra_doc *doc, void *arg)
{
    struct apply_arg *aa = arg;

    apply(doc, aa->md, aa->r);
    return 0;
}

static void
signal_all(struct updates *u, const struct metadata *md,
           const struct removed *r)
{
    if (!u)
        return;
    for (size_t i = 0; i < r->n_vbds; i++)
        updates_remove(u, UPDATES_VBD, md->id, r->vbds[i]);
    for (size_t i = 0; i < r->n_vifs; i++)
        updates_remove(u, UPDATES_VIF, md->id, r->vifs[i]);
    updates_add(u, UPDATES_VM, md->id, NULL);
    for (size_t i = 0; i < md->n_vbds; i++)
        updates_add(u, UPDATES_VBD, md->id, md->vbds[i].dev);
    for (size_t i = 0; i < md->n_vifs; i++)
        updates_add(u, UPDATES_VIF, md->id, md->vifs[i].dev);
}

int
metadata_import(struct vmextra_store *store, struct updates *updates,
                const struct metadata *md)
{
    struct removed r = { NULL, 0, NULL, 0 };
    struct apply_arg aa = { md, &r };
    int rc;

    /* A racing writer (another import, an atom) moves the generation on;
     * vmextra_update reloads and applies again. */
    rc = vmextra_update(store, md->id, VMEXTRA_UPDATE_CREATE, apply_fn, &aa);
    if (rc)
        goto out;
    LOGVM(INFO, md->id, "imported metadata: %zu VBDs, %zu VIFs, %zu "
          "removed", md->n_vbds, md->n_vifs, r.n_vbds + r.n_vifs);
    signal_all(updates, md, &r);
out:
    removed_dispose(&r);
    return rc;
}

/* ---- export ---- */

/* ["VDI", src] -> ["VDI", vdi_map[src]]; anything else unchanged. */
static int
remap_disk(yajl_val disk, yajl_val vdi_map)
{
    yajl_val tag = json_array_at(disk, 0), arg = json_array_at(disk, 1);
    yajl_val dst;

    if (!vdi_map || !tag || !YAJL_IS_STRING(tag) ||
        strcmp(tag->u.string, "VDI") != 0 || !arg || !YAJL_IS_STRING(arg))
        return 0;
    dst = map_lookup(vdi_map, arg->u.string);
    if (!dst)
        return 0;
    if (!YAJL_IS_STRING(dst))
        return xo_err_internal_code(XO_EINVAL, "vdi_map: the value for "
                                    "'%s' must be a string", arg->u.string);
    model_tree_set_string(arg, dst->u.string);
    return 0;
}

/* The PV bootloader's devices: ty = [_, {boot: ["Indirect", {devices}]}]. */
static int
remap_boot(yajl_val vm, yajl_val vdi_map)
{
    yajl_val info = json_array_at(json_get(vm, "ty"), 1);
    yajl_val boot = json_get(info, "boot");
    yajl_val tag = json_array_at(boot, 0);
    yajl_val devs = json_get(json_array_at(boot, 1), "devices");
    int rc = 0;

    if (!tag || !YAJL_IS_STRING(tag) ||
        strcmp(tag->u.string, "Indirect") != 0)
        return 0;
    for (size_t i = 0; i < json_array_len(devs) && !rc; i++)
        rc = remap_disk(json_array_at(devs, i), vdi_map);
    return rc;
}

/* Re-canonicalise a stored record (it may predate canonical storage),
 * remap it, and emit it. */
static int
gen_vm(yajl_gen g, const char *json, yajl_val vdi_map)
{
    struct model_vm *vm = NULL;
    yajl_val t = NULL;
    int rc = model_vm_parse(json, &vm);

    if (!rc)
        rc = json_parse(vm->json, strlen(vm->json), &t);
    if (!rc)
        rc = remap_boot(t, vdi_map);
    if (!rc)
        json_gen_tree(g, t);
    yajl_tree_free(t);
    model_vm_free(vm);
    return rc;
}

static int
remap_vif(yajl_val vif, const char *dev, yajl_val vif_map)
{
    yajl_val net = map_lookup(vif_map, dev);
    char *text = NULL;
    int rc;

    if (!net)
        return 0;
    rc = model_canonical(MODEL_T_NETWORK, net, "vif_map", &text);
    if (!rc)
        rc = model_tree_set_json(vif, "backend", text);
    free(text);
    return rc;
}

static int
gen_devs(yajl_gen g, const char *key, const struct vmextra_rec *recs,
         size_t n, bool vbd, yajl_val map)
{
    struct model_vbd *b = NULL;
    struct model_vif *f = NULL;
    yajl_val t = NULL;
    int rc = 0;

    json_gen_str(g, key);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n && !rc; i++) {
        rc = vbd ? model_vbd_parse(recs[i].json, &b)
                 : model_vif_parse(recs[i].json, &f);
        if (!rc)
            rc = vbd ? json_parse(b->json, strlen(b->json), &t)
                     : json_parse(f->json, strlen(f->json), &t);
        if (!rc)
            rc = vbd ? remap_disk(json_get(t, "backend"), map)
                     : remap_vif(t, recs[i].dev, map);
        if (!rc)
            json_gen_tree(g, t);
        yajl_tree_free(t);
        t = NULL;
        model_vbd_free(b);
        b = NULL;
        model_vif_free(f);
        f = NULL;
    }
    yajl_gen_array_close(g);
    return rc;
}

static char *
domains_text(const struct vmextra_doc *doc)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "last_start_time");
    json_gen_double(g, doc->last_start_time);
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

static int
check_map(yajl_val map, const char *name)
{
    if (map && !YAJL_IS_OBJECT(map))
        return xo_err_internal_code(XO_EINVAL, "'%s' must be an object",
                                    name);
    return 0;
}

int
metadata_export(struct vmextra_store *store, const char *id,
                yajl_val vdi_map, yajl_val vif_map, char **json_r)
{
    struct vmextra_doc *doc = NULL;
    yajl_gen g = NULL;
    char *domains = NULL;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(id);
    if (!rc)
        rc = check_map(vdi_map, "vdi_map");
    if (!rc)
        rc = check_map(vif_map, "vif_map");
    if (!rc)
        rc = vmextra_load(store, id, &doc);
    if (rc)
        goto out;
    if (!doc->vm_json) {
        rc = xo_err_does_not_exist("VM", id);
        goto out;
    }
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "vm");
    rc = gen_vm(g, doc->vm_json, vdi_map);
    if (!rc)
        rc = gen_devs(g, "vbds", doc->vbds, doc->n_vbds, true, vdi_map);
    if (!rc)
        rc = gen_devs(g, "vifs", doc->vifs, doc->n_vifs, false, vif_map);
    if (rc)
        goto out;
    gen_empty_list(g, "pcis");
    gen_empty_list(g, "vgpus");
    gen_empty_list(g, "vusbs");
    domains = domains_text(doc);
    json_gen_str(g, "domains");
    json_gen_str(g, domains);
    yajl_gen_map_close(g);
    *json_r = json_gen_take(g);
    g = NULL;
out:
    if (g)
        yajl_gen_free(g);
    free(domains);
    vmextra_doc_free(doc);
    return rc;
}

/* ---- id rewrite ---- */

static int
set_dev_ids(yajl_val list, const char *new_id)
{
    for (size_t i = 0; i < json_array_len(list); i++) {
        yajl_val vm = json_array_at(json_get(json_array_at(list, i), "id"),
                                    0);

        if (!vm || !YAJL_IS_STRING(vm))
            return xo_err_internal_code(XO_EINVAL, "metadata: device %zu "
                                        "has no id [vm, device]", i);
        model_tree_set_string(vm, new_id);
    }
    return 0;
}

int
metadata_set_vm_id(const char *text, const char *new_id, char **json_r)
{
    yajl_val t = NULL, id;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(new_id);
    if (!rc)
        rc = text ? json_parse(text, strlen(text), &t)
                  : xo_err_internal_code(XO_EINVAL, "metadata missing");
    if (rc)
        goto out;
    id = json_get(json_get(t, "vm"), "id");
    if (!id || !YAJL_IS_STRING(id)) {
        rc = xo_err_internal_code(XO_EINVAL, "metadata has no vm.id");
        goto out;
    }
    model_tree_set_string(id, new_id);
    rc = set_dev_ids(member(t, "vbds"), new_id);
    if (!rc)
        rc = set_dev_ids(member(t, "vifs"), new_id);
    if (!rc)
        *json_r = json_tree_to_string(t);
out:
    yajl_tree_free(t);
    return rc;
}
