/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The immediate calls of the server: records (VM, VBD, VIF: add, remove,
 * stat, list), HOST.stat, VM.generate_state_string and the metadata calls.
 * Records are canonicalised by model.c when added; stat and list
 * canonicalise again on the way out, so a record stored before canonical
 * storage still comes out complete.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "atoms/atom.h"
#include "atoms/exec.h"
#include "backend/backend.h"
#include "metadata.h"
#include "model.h"
#include "server.h"
#include "server_priv.h"
#include "sm/sm.h"
#include "updates.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* ---- VM records ---- */

static int
vm_set_fn(struct vmextra_doc *doc, void *json)
{
    vmextra_doc_set_vm(doc, json);
    return 0;
}

int
server_vm_add(struct server *srv, yajl_val v, char **id_r)
{
    struct model_vm *vm = NULL;
    int rc;

    *id_r = NULL;
    rc = model_vm_from_tree(v, &vm);
    if (rc)
        goto out;
    /* xapi re-adds VMs it already knows (resync): replace the Vm.t and
     * keep the devices. */
    rc = vmextra_update(srv->store, vm->id, VMEXTRA_UPDATE_CREATE,
                        vm_set_fn, vm->json);
    if (rc)
        goto out;
    updates_add(srv->updates, UPDATES_VM, vm->id, NULL);
    *id_r = xstrdup(vm->id);
out:
    model_vm_free(vm);
    return rc;
}

int
server_vm_remove(struct server *srv, const char *id)
{
    struct exec_op op;
    struct atom *a;
    int rc;

    rc = ids_check_vm(id);
    if (rc)
        return rc;
    if (!vmextra_exists(srv->store, id))
        return xo_err_does_not_exist("VM", id);
    /* xenopsd runs VM.remove immediately, not on the VM's queue. */
    a = atom_new(ATOM_VM_REMOVE, id);
    exec_op_init(&op, &srv->env, NULL, server_legacy(srv));
    rc = exec_run(&op, a);
    exec_op_dispose(&op);
    atom_free(a);
    return rc;
}

static void
gen_vm_state(yajl_gen g, const struct backend_vm_state *st,
             const struct model_vm *vm)
{
    yajl_gen_map_open(g);
    json_gen_str(g, "power_state");
    json_gen_str(g, backend_power_name(st->power));
    json_gen_str(g, "domids");
    yajl_gen_array_open(g);
    if (st->domid >= 0)
        json_gen_int(g, st->domid);
    yajl_gen_array_close(g);
    json_gen_str(g, "consoles");
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    json_gen_str(g, "memory_target");
    json_gen_int(g, st->domid >= 0 ? st->memory_target : 0);
    json_gen_str(g, "memory_actual");
    json_gen_int(g, st->domid >= 0 ? st->memory_target : 0);
    json_gen_str(g, "memory_limit");
    json_gen_int(g, st->domid >= 0 ? vm->memory_static_max : 0);
    json_gen_str(g, "vcpu_target");
    json_gen_int(g, st->domid >= 0 ? st->vcpus : 0);
    json_gen_str(g, "shadow_multiplier_target");
    json_gen_double(g, 1.0);
    json_gen_str(g, "rtc_timeoffset");
    json_gen_str(g, "");
    json_gen_str(g, "uncooperative_balloon_driver");
    json_gen_bool(g, false);
    json_gen_str(g, "guest_agent");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    json_gen_str(g, "xsdata_state");
    yajl_gen_map_open(g);
    yajl_gen_map_close(g);
    json_gen_str(g, "pv_drivers_detected");
    json_gen_bool(g, false);
    json_gen_str(g, "last_start_time");
    json_gen_double(g, st->last_start_time);
    json_gen_str(g, "hvm");
    json_gen_bool(g, vm->hvm);
    json_gen_str(g, "nomigrate");
    json_gen_bool(g, false);
    json_gen_str(g, "nested_virt");
    json_gen_bool(g, false);
    json_gen_str(g, "domain_type");
    json_gen_str(g, st->domid < 0 ? "Domain_undefined"
                    : vm->hvm ? "Domain_HVM" : "Domain_PV");
    json_gen_str(g, "featureset");
    json_gen_str(g, "");
    yajl_gen_map_close(g);
}

static int
gen_vm_pair(struct server *srv, yajl_gen g, const struct vmextra_doc *doc)
{
    struct backend_vm_state st;
    struct model_vm *vm = NULL;
    int rc;

    if (!doc->vm_json)
        return xo_err_does_not_exist("VM", doc->id);
    rc = model_vm_parse(doc->vm_json, &vm);
    if (rc)
        return rc;
    rc = srv->backend->ops->vm_get_state(srv->backend, doc->id, &st);
    if (!rc) {
        yajl_gen_array_open(g);
        json_gen_raw(g, vm->json);
        gen_vm_state(g, &st, vm);
        yajl_gen_array_close(g);
    }
    model_vm_free(vm);
    return rc;
}

int
server_vm_stat(struct server *srv, const char *id, char **json_r)
{
    struct vmextra_doc *doc = NULL;
    yajl_gen g = NULL;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(id);
    if (rc)
        goto out;
    rc = vmextra_load(srv->store, id, &doc);
    if (rc)
        goto out;
    g = json_gen_new();
    rc = gen_vm_pair(srv, g, doc);
    if (rc)
        goto out;
    *json_r = json_gen_take(g);
    g = NULL;
out:
    if (g)
        yajl_gen_free(g);
    vmextra_doc_free(doc);
    return rc;
}

int
server_vm_exists(struct server *srv, const char *id, bool *r)
{
    int rc = ids_check_vm(id);

    if (!rc)
        *r = vmextra_exists(srv->store, id);
    return rc;
}

int
server_vm_list(struct server *srv, char **json_r)
{
    struct vmextra_doc *doc;
    char **ids = NULL;
    size_t n = 0;
    yajl_gen g;
    int rc;

    rc = vmextra_list(srv->store, &ids, &n);
    if (rc)
        return rc;
    g = json_gen_new();
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        /* A VM removed between list and load is simply not listed. */
        if (vmextra_load(srv->store, ids[i], &doc)) {
            xo_err_clear();
            continue;
        }
        if (doc->vm_json && gen_vm_pair(srv, g, doc))
            xo_err_clear();
        vmextra_doc_free(doc);
    }
    yajl_gen_array_close(g);
    vmextra_list_free(ids, n);
    *json_r = json_gen_take(g);
    return 0;
}

/* ---- devices ---- */

enum dev_kind { DEV_VBD, DEV_VIF };

struct dev_set_arg {
    enum dev_kind kind;
    const char *dev;
    const char *json;   /* NULL: delete */
};

static int
dev_set_fn(struct vmextra_doc *doc, void *arg)
{
    struct dev_set_arg *d = arg;

    if (!d->json)
        return d->kind == DEV_VBD ? vmextra_doc_del_vbd(doc, d->dev)
                                  : vmextra_doc_del_vif(doc, d->dev);
    if (d->kind == DEV_VBD)
        vmextra_doc_set_vbd(doc, d->dev, d->json);
    else
        vmextra_doc_set_vif(doc, d->dev, d->json);
    return 0;
}

static int
update_doc(struct server *srv, const char *vm,
           int (*fn)(struct vmextra_doc *, void *), void *arg)
{
    struct exec_op op;
    int rc;

    exec_op_init(&op, &srv->env, NULL, false);
    rc = exec_update_doc(&op, vm, fn, arg);
    exec_op_dispose(&op);
    return rc;
}

static int
dev_add(struct server *srv, enum dev_kind kind, const char *vm,
        const char *dev, const char *json, char **id_json_r)
{
    struct dev_set_arg d = { kind, dev, json };
    int rc;

    if (!vmextra_exists(srv->store, vm))
        return xo_err_does_not_exist("VM", vm);
    rc = update_doc(srv, vm, dev_set_fn, &d);
    if (rc)
        return rc;
    updates_add(srv->updates, kind == DEV_VBD ? UPDATES_VBD : UPDATES_VIF,
                vm, dev);
    *id_json_r = model_dev_id_json(vm, dev);
    return 0;
}

/*
 * A Vbd.t without can_attach_early leaves it to the SR's driver (SMAPIv3
 * attaches early): the stored record, always complete, gets the driver's
 * answer. An explicit value is kept (false vetoes early attach; true
 * still needs the driver to agree when the VM migrates).
 */
static int
vbd_fill_attach_early(struct server *srv, struct model_vbd **vbd_r)
{
    struct model_vbd *filled = NULL;
    yajl_val t = NULL;
    int rc;

    if ((*vbd_r)->can_attach_early_given ||
        !sm_can_attach_early(srv->sm, &(*vbd_r)->backend))
        return 0;
    rc = json_parse((*vbd_r)->json, strlen((*vbd_r)->json), &t);
    if (!rc)
        rc = model_tree_set_json(t, "can_attach_early", "true");
    if (!rc)
        rc = model_vbd_from_tree(t, &filled);
    yajl_tree_free(t);
    if (rc)
        return rc;
    model_vbd_free(*vbd_r);
    *vbd_r = filled;
    return 0;
}

int
server_vbd_add(struct server *srv, yajl_val v, char **id_json_r)
{
    struct model_vbd *vbd = NULL;
    int rc;

    *id_json_r = NULL;
    rc = model_vbd_from_tree(v, &vbd);
    if (!rc)
        rc = vbd_fill_attach_early(srv, &vbd);
    if (!rc)
        rc = dev_add(srv, DEV_VBD, vbd->vm, vbd->dev, vbd->json, id_json_r);
    model_vbd_free(vbd);
    return rc;
}

int
server_vif_add(struct server *srv, yajl_val v, char **id_json_r)
{
    struct model_vif *vif = NULL;
    int rc;

    *id_json_r = NULL;
    rc = model_vif_from_tree(v, &vif);
    if (!rc)
        rc = dev_add(srv, DEV_VIF, vif->vm, vif->dev, vif->json, id_json_r);
    model_vif_free(vif);
    return rc;
}

static int
check_dev_id(const char *vm, const char *dev)
{
    int rc = ids_check_vm(vm);

    return rc ? rc : ids_check_dev(dev);
}

static int
dev_remove(struct server *srv, enum dev_kind kind, const char *vm,
           const char *dev)
{
    struct backend *b = srv->backend;
    struct backend_vbd_state vst;
    struct dev_set_arg d = { kind, dev, NULL };
    bool active = false, plugged = false;
    int rc;

    rc = check_dev_id(vm, dev);
    if (rc)
        return rc;
    if (kind == DEV_VBD) {
        rc = b->ops->vbd_get_state(b, vm, dev, &vst);
        plugged = vst.plugged;
    } else {
        rc = b->ops->vif_get_state(b, vm, dev, &active, &plugged);
    }
    if (rc)
        return rc;
    if (plugged)
        return xo_err_tag(XO_ECONNECTED, "Device_is_connected");
    rc = update_doc(srv, vm, dev_set_fn, &d);
    if (rc == XO_ENOTFOUND) {
        char *id = xasprintf("%s.%s", vm, dev);

        rc = xo_err_does_not_exist(kind == DEV_VBD ? "VBD" : "VIF", id);
        free(id);
    }
    if (rc)
        return rc;
    updates_remove(srv->updates, kind == DEV_VBD ? UPDATES_VBD : UPDATES_VIF,
                   vm, dev);
    return 0;
}

int
server_vbd_remove(struct server *srv, const char *vm, const char *dev)
{
    return dev_remove(srv, DEV_VBD, vm, dev);
}

int
server_vif_remove(struct server *srv, const char *vm, const char *dev)
{
    return dev_remove(srv, DEV_VIF, vm, dev);
}

/* [record, state]: the VBD's state adds backend_present, the media of a
 * plugged drive (xapi derives VBD.empty from it). */
static int
gen_dev_pair(struct server *srv, yajl_gen g, enum dev_kind kind,
             const char *vm, const char *dev, const char *json)
{
    struct backend *b = srv->backend;
    struct backend_vbd_state vst;
    struct model_vbd *vbd = NULL;
    struct model_vif *vif = NULL;
    bool active = false, plugged = false;
    char *disk = NULL;
    int rc;

    memset(&vst, 0, sizeof(vst));
    rc = kind == DEV_VBD ? model_vbd_parse(json, &vbd)
                         : model_vif_parse(json, &vif);
    if (rc)
        return rc;
    if (kind == DEV_VBD) {
        if (b->ops->vbd_get_state(b, vm, dev, &vst))
            xo_err_clear();
        active = vst.active;
        plugged = vst.plugged;
    } else if (b->ops->vif_get_state(b, vm, dev, &active, &plugged)) {
        xo_err_clear();
    }
    yajl_gen_array_open(g);
    json_gen_raw(g, vbd ? vbd->json : vif->json);
    yajl_gen_map_open(g);
    json_gen_str(g, "active");
    json_gen_bool(g, active);
    json_gen_str(g, "plugged");
    json_gen_bool(g, plugged);
    if (vbd && plugged && vbd->backend.kind != MODEL_DISK_NONE) {
        disk = model_disk_to_json(&vbd->backend);
        json_gen_str(g, "backend_present");
        json_gen_raw(g, disk);
    }
    if (vif) {
        json_gen_str(g, "kthread_pid");
        json_gen_int(g, 0);
        json_gen_str(g, "media_present");
        json_gen_bool(g, plugged);
        json_gen_str(g, "pvs_rules_active");
        json_gen_bool(g, false);
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    free(disk);
    model_vbd_free(vbd);
    model_vif_free(vif);
    return 0;
}

static int
dev_stat(struct server *srv, enum dev_kind kind, const char *vm,
         const char *dev, char **json_r)
{
    struct vmextra_doc *doc = NULL;
    const char *json;
    yajl_gen g;
    int rc;

    *json_r = NULL;
    rc = check_dev_id(vm, dev);
    if (rc)
        goto out;
    rc = vmextra_load(srv->store, vm, &doc);
    if (rc)
        goto out;
    json = kind == DEV_VBD ? vmextra_doc_vbd(doc, dev)
                           : vmextra_doc_vif(doc, dev);
    if (!json) {
        char *id = xasprintf("%s.%s", vm, dev);

        rc = xo_err_does_not_exist(kind == DEV_VBD ? "VBD" : "VIF", id);
        free(id);
        goto out;
    }
    g = json_gen_new();
    rc = gen_dev_pair(srv, g, kind, vm, dev, json);
    if (rc)
        yajl_gen_free(g);
    else
        *json_r = json_gen_take(g);
out:
    vmextra_doc_free(doc);
    return rc;
}

int
server_vbd_stat(struct server *srv, const char *vm, const char *dev,
                char **json_r)
{
    return dev_stat(srv, DEV_VBD, vm, dev, json_r);
}

int
server_vif_stat(struct server *srv, const char *vm, const char *dev,
                char **json_r)
{
    return dev_stat(srv, DEV_VIF, vm, dev, json_r);
}

static int
dev_list(struct server *srv, enum dev_kind kind, const char *vm,
         char **json_r)
{
    struct vmextra_doc *doc = NULL;
    struct vmextra_rec *recs;
    size_t n;
    yajl_gen g;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    rc = vmextra_load(srv->store, vm, &doc);
    if (rc)
        return rc;
    recs = kind == DEV_VBD ? doc->vbds : doc->vifs;
    n = kind == DEV_VBD ? doc->n_vbds : doc->n_vifs;
    g = json_gen_new();
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        /* A record that no longer decodes is left out, not fatal. */
        if (gen_dev_pair(srv, g, kind, vm, recs[i].dev, recs[i].json)) {
            LOGVM(WARN, vm, "skipping undecodable record of '%s'",
                  recs[i].dev);
            xo_err_clear();
        }
    }
    yajl_gen_array_close(g);
    *json_r = json_gen_take(g);
    vmextra_doc_free(doc);
    return 0;
}

int
server_vbd_list(struct server *srv, const char *vm, char **json_r)
{
    return dev_list(srv, DEV_VBD, vm, json_r);
}

int
server_vif_list(struct server *srv, const char *vm, char **json_r)
{
    return dev_list(srv, DEV_VIF, vm, json_r);
}

/* ---- HOST.stat ---- */

/*
 * Xen's featureset: CPUID words in Xen's order (1d, 1c, e1d, e1c, Da1,
 * 7b0, 7c0, e7d, e8b, 7d0), "%08x" joined by '-', as xenopsd prints
 * them. The simulator offers the host's own CPU to every guest type.
 */
char *
server_host_featureset(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned w[10] = { 0 };
    unsigned a, b, c, d, max, emax;

    max = __get_cpuid_max(0, NULL);
    emax = __get_cpuid_max(0x80000000, NULL);
    if (max >= 1) {
        __cpuid(1, a, b, c, d);
        w[0] = d;
        w[1] = c;
    }
    if (emax >= 0x80000001) {
        __cpuid(0x80000001, a, b, c, d);
        w[2] = d;
        w[3] = c;
    }
    if (max >= 0xd) {
        __cpuid_count(0xd, 1, a, b, c, d);
        w[4] = a;
    }
    if (max >= 7) {
        __cpuid_count(7, 0, a, b, c, d);
        w[5] = b;
        w[6] = c;
        w[9] = d;
    }
    if (emax >= 0x80000007) {
        __cpuid(0x80000007, a, b, c, d);
        w[7] = d;
    }
    if (emax >= 0x80000008) {
        __cpuid(0x80000008, a, b, c, d);
        w[8] = b;
    }
    return xasprintf("%08x-%08x-%08x-%08x-%08x-%08x-%08x-%08x-%08x-%08x",
                     w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8],
                     w[9]);
#else
    return xstrdup("");
#endif
}

/* What /proc/cpuinfo tells about the CPUs (first processor's identity). */
struct cpuinfo {
    int cpu_count;
    int socket_count;
    int siblings;
    int cores;
    char *vendor, *speed, *modelname, *family, *model, *stepping, *flags;
};

static void
cpuinfo_dispose(struct cpuinfo *ci)
{
    free(ci->vendor);
    free(ci->speed);
    free(ci->modelname);
    free(ci->family);
    free(ci->model);
    free(ci->stepping);
    free(ci->flags);
}

/* "key<spaces>: value" -> value if key matches; NULL otherwise. */
static const char *
cpuinfo_value(const char *line, const char *key)
{
    size_t n = strlen(key);

    if (strncmp(line, key, n) != 0)
        return NULL;
    line += n;
    while (*line == ' ' || *line == '\t')
        line++;
    if (*line != ':')
        return NULL;
    line++;
    while (*line == ' ')
        line++;
    return line;
}

static void
cpuinfo_take(char **field, const char *line, const char *key)
{
    const char *v = cpuinfo_value(line, key);

    if (v && !*field)
        *field = xstrdup(v);
}

static void
cpuinfo_line(struct cpuinfo *ci, const char *line, unsigned char *sockets)
{
    const char *v;

    if (cpuinfo_value(line, "processor"))
        ci->cpu_count++;
    if ((v = cpuinfo_value(line, "physical id")) &&
        isdigit((unsigned char)*v) && atoi(v) < 256 && !sockets[atoi(v)]) {
        sockets[atoi(v)] = 1;
        ci->socket_count++;
    }
    if ((v = cpuinfo_value(line, "siblings")) && !ci->siblings)
        ci->siblings = atoi(v);
    if ((v = cpuinfo_value(line, "cpu cores")) && !ci->cores)
        ci->cores = atoi(v);
    cpuinfo_take(&ci->vendor, line, "vendor_id");
    cpuinfo_take(&ci->speed, line, "cpu MHz");
    cpuinfo_take(&ci->modelname, line, "model name");
    cpuinfo_take(&ci->family, line, "cpu family");
    cpuinfo_take(&ci->model, line, "model");
    cpuinfo_take(&ci->stepping, line, "stepping");
    cpuinfo_take(&ci->flags, line, "flags");
}

/* An unreadable file leaves the counts to sysconf and strings empty. */
static void
cpuinfo_read(const char *path, struct cpuinfo *ci)
{
    unsigned char sockets[256] = { 0 };
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    FILE *f = fopen(path, "re");

    memset(ci, 0, sizeof(*ci));
    if (!f)
        LOGE(WARN, "cannot read '%s'", path);
    while (f && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] == '\n')
            line[len - 1] = '\0';
        cpuinfo_line(ci, line, sockets);
    }
    free(line);
    if (f)
        fclose(f);
    if (ci->cpu_count < 1) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);

        ci->cpu_count = n > 0 ? (int)n : 1;
    }
    if (ci->socket_count < 1)
        ci->socket_count = 1;
}

static void
gen_kv(yajl_gen g, const char *key, const char *value)
{
    json_gen_str(g, key);
    json_gen_str(g, value ? value : "");
}

static void
gen_cpu_info(yajl_gen g, const struct cpuinfo *ci, const char *features)
{
    static const char *const policies[] = {
        "features", "features_pv", "features_hvm", "features_pv_host",
        "features_hvm_host",
    };

    yajl_gen_map_open(g);
    json_gen_str(g, "cpu_count");
    json_gen_int(g, ci->cpu_count);
    json_gen_str(g, "socket_count");
    json_gen_int(g, ci->socket_count);
    json_gen_str(g, "threads_per_core");
    json_gen_int(g, ci->cores > 0 && ci->siblings >= ci->cores
                        ? ci->siblings / ci->cores : 1);
    gen_kv(g, "vendor", ci->vendor);
    gen_kv(g, "speed", ci->speed);
    gen_kv(g, "modelname", ci->modelname);
    gen_kv(g, "family", ci->family);
    gen_kv(g, "model", ci->model);
    gen_kv(g, "stepping", ci->stepping);
    gen_kv(g, "flags", ci->flags);
    for (size_t i = 0; i < sizeof(policies) / sizeof(*policies); i++)
        gen_kv(g, policies[i], features);
    yajl_gen_map_close(g);
}

int
server_host_stat(struct server *srv, const char *ext_json, char **json_r)
{
    struct backend *b = srv->backend;
    struct backend_host_info hi;
    struct cpuinfo ci;
    yajl_gen g;
    int rc;

    *json_r = NULL;
    if (!b->ops->host_info) {
        LOG(WARN, "backend '%s' does not implement HOST.stat", b->ops->name);
        return xo_err_unimplemented("HOST.stat");
    }
    rc = b->ops->host_info(b, &hi);
    if (rc)
        return rc;
    cpuinfo_read(srv->cpuinfo_path, &ci);
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "cpu_info");
    gen_cpu_info(g, &ci, srv->featureset);
    json_gen_str(g, "hypervisor");
    yajl_gen_map_open(g);
    gen_kv(g, "version", hi.hypervisor_version);
    gen_kv(g, "capabilities", hi.capabilities);
    yajl_gen_map_close(g);
    json_gen_str(g, "chipset_info");
    yajl_gen_map_open(g);
    json_gen_str(g, "iommu");
    json_gen_bool(g, hi.iommu);
    json_gen_str(g, "hvm");
    json_gen_bool(g, hi.hvm);
    yajl_gen_map_close(g);
    /* Extension: xapi's Host.t decoder ignores extra members. */
    if (ext_json) {
        json_gen_str(g, "xenops_c");
        json_gen_raw(g, ext_json);
    }
    yajl_gen_map_close(g);
    *json_r = json_gen_take(g);
    cpuinfo_dispose(&ci);
    return 0;
}

/* ---- generate_state_string, metadata ---- */

int
server_vm_generate_state_string(struct server *srv, yajl_val v,
                                char **state_r)
{
    struct backend *b = srv->backend;
    struct model_vm *vm = NULL;
    int rc;

    *state_r = NULL;
    rc = model_vm_from_tree(v, &vm);
    if (rc)
        goto out;
    if (!b->ops->vm_generate_state_string) {
        LOG(WARN, "backend '%s' does not implement "
            "VM.generate_state_string", b->ops->name);
        rc = xo_err_unimplemented("VM.generate_state_string");
        goto out;
    }
    rc = b->ops->vm_generate_state_string(b, vm->json, state_r);
out:
    model_vm_free(vm);
    return rc;
}

int
server_vm_export_metadata(struct server *srv, const char *id, char **json_r)
{
    return metadata_export(srv->store, id, NULL, NULL, json_r);
}

static int
parse_metadata(struct server *srv, const char *text, struct metadata **md_r)
{
    /* The simulator's guests all see the host CPU (see featureset). */
    return metadata_parse(text, srv->featureset, srv->featureset, md_r);
}

int
server_vm_import_metadata(struct server *srv, const char *text, char **id_r)
{
    struct metadata *md = NULL;
    int rc;

    *id_r = NULL;
    rc = parse_metadata(srv, text, &md);
    if (!rc)
        rc = metadata_import(srv->store, srv->updates, md);
    if (!rc)
        *id_r = xstrdup(metadata_vm_id(md));
    metadata_free(md);
    return rc;
}

int
server_vm_import_metadata_async(struct server *srv, const char *dbg,
                                const char *text, char **task_id_r)
{
    struct server_op_args a;
    struct metadata *md = NULL;
    int rc;

    *task_id_r = NULL;
    rc = parse_metadata(srv, text, &md);
    if (rc)
        return rc;
    memset(&a, 0, sizeof(a));
    a.kind = SERVER_OP_ATOMIC;
    a.atomic = ATOM_VM_IMPORT_METADATA;
    a.vm = metadata_vm_id(md);
    a.timeout = -1;
    a.text = metadata_json(md);
    rc = server_queue_op(srv, dbg, &a, task_id_r);
    metadata_free(md);
    return rc;
}
