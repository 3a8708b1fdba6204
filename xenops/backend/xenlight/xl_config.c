/* SPDX-License-Identifier: LGPL-2.1-only */
#include "backend/xenlight/xl_config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

/* ["Tag", value] -> Tag, value; NULL tag if v is not such a pair. */
static const char *
variant(yajl_val v, yajl_val *value_r)
{
    *value_r = NULL;
    if (!json_is_array(v) || json_array_len(v) < 1 ||
        !YAJL_IS_STRING(json_array_at(v, 0)))
        return NULL;
    if (json_array_len(v) > 1)
        *value_r = json_array_at(v, 1);
    return YAJL_GET_STRING(json_array_at(v, 0));
}

static int
parse_builder(yajl_val ty, struct xl_vm_config *c)
{
    yajl_val info, direct;
    const char *tag = variant(ty, &info), *boot, *s;

    if (!tag)
        return xo_err_internal_code(XO_EINVAL, "Vm.t field 'ty' is not a "
                                    "builder variant");
    if (strcmp(tag, "PV") == 0)
        c->builder = XL_BUILDER_PV;
    else if (strcmp(tag, "PVH") == 0)
        c->builder = XL_BUILDER_PVH;
    else
        return xo_err_internal_code(XO_EUNSUPPORTED, "Vm.t ty '%s': the "
                                    "xenlight backend builds PV and PVH "
                                    "domains only", tag);
    boot = variant(json_get(info, "boot"), &direct);
    if (!boot || strcmp(boot, "Direct") != 0)
        return xo_err_internal_code(XO_EUNSUPPORTED, "Vm.t ty.boot '%s': "
                                    "the xenlight backend boots a kernel "
                                    "directly only",
                                    boot ? boot : "(missing)");
    s = json_get_str(direct, "kernel");
    if (!s || !s[0] || s[0] != '/')
        return xo_err_internal_code(XO_EINVAL, "Vm.t ty.boot Direct "
                                    "'kernel' must be an absolute path in "
                                    "dom0");
    c->kernel = xstrdup(s);
    s = json_get_str(direct, "cmdline");
    c->cmdline = xstrdup(s ? s : "");
    s = json_get_str(direct, "ramdisk");
    if (s && s[0] != '/')
        return xo_err_internal_code(XO_EINVAL, "Vm.t ty.boot Direct "
                                    "'ramdisk' must be an absolute path in "
                                    "dom0");
    c->ramdisk = s ? xstrdup(s) : NULL;
    return 0;
}

static int
parse_tsc_mode(yajl_val platformdata, int *mode_r)
{
    const char *s = json_get_str(platformdata, "tsc_mode");

    *mode_r = -1;
    if (!s)
        return 0;
    if (strlen(s) != 1 || s[0] < '0' || s[0] > '3')
        return xo_err_internal_code(XO_EINVAL, "platformdata tsc_mode '%s' "
                                    "is not 0, 1, 2 or 3", s);
    *mode_r = s[0] - '0';
    return 0;
}

static int
parse_kib(yajl_val vm, const char *key, int64_t *kib_r)
{
    int64_t bytes;
    int rc = json_get_int64(vm, key, -1, &bytes);

    if (rc || bytes < (1 << 20))
        return xo_err_internal_code(XO_EINVAL, "Vm.t %s must be at least "
                                    "1 MiB", key);
    *kib_r = bytes / 1024;
    return 0;
}

int
xl_vm_config_parse(const char *vm_json, struct xl_vm_config *c)
{
    yajl_val vm = NULL;
    const char *id;
    int64_t n;
    int rc;

    memset(c, 0, sizeof(*c));
    if (!vm_json)
        return xo_err_internal_code(XO_EINVAL, "no Vm.t");
    rc = json_parse(vm_json, strlen(vm_json), &vm);
    if (rc)
        goto out;
    id = json_get_str(vm, "id");
    if (!id || strlen(id) != 36) {
        rc = xo_err_internal_code(XO_EINVAL, "Vm.t has no uuid 'id'");
        goto out;
    }
    memcpy(c->id, id, 37);
    rc = parse_builder(json_get(vm, "ty"), c);
    if (!rc)
        rc = parse_kib(vm, "memory_static_max", &c->max_kib);
    if (!rc)
        rc = parse_kib(vm, "memory_dynamic_max", &c->target_kib);
    if (rc)
        goto out;
    if (c->target_kib > c->max_kib)
        c->target_kib = c->max_kib;
    rc = json_get_int64(vm, "vcpu_max", -1, &n);
    if (rc || n < 1 || n > 128) {
        rc = xo_err_internal_code(XO_EINVAL, "Vm.t vcpu_max must be 1..128");
        goto out;
    }
    c->vcpu_max = (int)n;
    rc = json_get_int64(vm, "vcpus", -1, &n);
    if (rc || n < 1 || n > c->vcpu_max) {
        rc = xo_err_internal_code(XO_EINVAL, "Vm.t vcpus must be "
                                  "1..vcpu_max");
        goto out;
    }
    c->vcpus = (int)n;
    rc = parse_tsc_mode(json_get(vm, "platformdata"), &c->tsc_mode);
out:
    yajl_tree_free(vm);
    if (rc)
        xl_vm_config_dispose(c);
    return rc;
}

void
xl_vm_config_dispose(struct xl_vm_config *c)
{
    free(c->kernel);
    free(c->ramdisk);
    free(c->cmdline);
    c->kernel = c->ramdisk = c->cmdline = NULL;
}

int
xl_cpuid_parse(libxl_cpuid_policy_list *policy, const char *s)
{
    char *copy = xstrdup(s), *save = NULL;
    char *item = strtok_r(copy, ",", &save);
    int rc = 0;

    /* xl.cfg's string form: "host" first, then name=value items, which
     * libxl parses one at a time. */
    if (!item || strcmp(item, "host") != 0)
        rc = -1;
    while (!rc && (item = strtok_r(NULL, ",", &save)))
        rc = libxl_cpuid_parse_config(policy, item) ? -1 : 0;
    free(copy);
    return rc;
}

size_t
xl_domid_history_parse(const char *text, uint32_t *out, size_t max)
{
    size_t n = 0;

    while (text && *text && n < max) {
        unsigned long secs, domid;
        int used = 0;

        if (sscanf(text, "%lu %lu%n", &secs, &domid, &used) == 2 &&
            (text[used] == '\n' || !text[used]) && domid > 0 &&
            domid < 0x7FF0)
            out[n++] = (uint32_t)domid;
        text = strchr(text, '\n');
        if (text)
            text++;
    }
    return n;
}

/* The first n of a bitmap of size bits set (libxl_bitmap_dispose frees
 * map with free()). */
static void
bitmap_first(libxl_bitmap *bm, int size, int n)
{
    bm->size = (uint32_t)((size + 7) / 8);
    bm->map = xcalloc(bm->size, 1);
    for (int i = 0; i < n; i++)
        bm->map[i / 8] |= (uint8_t)(1u << (i % 8));
}

int
xl_vm_config_to_libxl(const struct xl_vm_config *c, uint32_t domid,
                      const char *cpuid, libxl_domain_config *d)
{
    libxl_domain_create_info *ci = &d->c_info;
    libxl_domain_build_info *bi = &d->b_info;
    libxl_domain_type type = c->builder == XL_BUILDER_PVH
                                 ? LIBXL_DOMAIN_TYPE_PVH
                                 : LIBXL_DOMAIN_TYPE_PV;

    ci->type = type;
    ci->name = xstrdup(c->id);
    ci->domid = domid;
    if (libxl_uuid_from_string(&ci->uuid, c->id))
        return xo_err_internal_code(XO_EINVAL, "VM id '%s' is not a uuid",
                                    c->id);
    libxl_domain_build_info_init_type(bi, type);
    bi->max_vcpus = c->vcpu_max;
    bitmap_first(&bi->avail_vcpus, c->vcpu_max, c->vcpus);
    bi->max_memkb = (uint64_t)c->max_kib;
    bi->target_memkb = (uint64_t)c->target_kib;
    if (c->tsc_mode >= 0)
        bi->tsc_mode = (libxl_tsc_mode)c->tsc_mode;
    bi->kernel = xstrdup(c->kernel);
    bi->cmdline = xstrdup(c->cmdline);
    bi->ramdisk = c->ramdisk ? xstrdup(c->ramdisk) : NULL;
    if (cpuid && cpuid[0] && xl_cpuid_parse(&bi->cpuid, cpuid))
        return xo_err_internal_code(XO_EINVAL, "cpuid policy '%s' does not "
                                    "parse (libxl's syntax, as in xl.cfg)",
                                    cpuid);
    /* The daemon's monitor decides what a shutdown means (xenopsd): the
     * domain stays until it is destroyed. */
    d->on_poweroff = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;
    d->on_reboot = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;
    d->on_watchdog = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;
    d->on_crash = LIBXL_ACTION_ON_SHUTDOWN_PRESERVE;
    return 0;
}

static bool
mac_valid(const char *s)
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* A Linux interface name: 1..15 of [A-Za-z0-9._-]. */
static bool
bridge_valid(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > 15)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("._-", s[i]))
            return false;
    return true;
}

int
xl_vif_config_parse(const char *vif_json, struct xl_vif_config *v)
{
    yajl_val t = NULL, net;
    const char *tag, *s;
    int64_t n;
    int rc;

    memset(v, 0, sizeof(*v));
    if (!vif_json)
        return xo_err_internal_code(XO_EINVAL, "no Vif.t");
    rc = json_parse(vif_json, strlen(vif_json), &t);
    if (rc)
        goto out;
    rc = json_get_int64(t, "position", 0, &n);
    if (rc || n < 0 || n > 255) {
        rc = xo_err_internal_code(XO_EINVAL, "Vif.t position must be "
                                  "0..255");
        goto out;
    }
    v->devid = (int)n;
    s = json_get_str(t, "mac");
    if (!s || !mac_valid(s)) {
        rc = xo_err_internal_code(XO_EINVAL, "Vif.t mac '%s' is not "
                                  "aa:bb:cc:dd:ee:ff", s ? s : "");
        goto out;
    }
    memcpy(v->mac, s, 18);
    rc = json_get_int64(t, "mtu", 1500, &n);
    if (rc || n < 68 || n > 65535) {
        rc = xo_err_internal_code(XO_EINVAL, "Vif.t mtu must be "
                                  "68..65535");
        goto out;
    }
    v->mtu = (int)n;
    tag = variant(json_get(t, "backend"), &net);
    if (!tag || strcmp(tag, "Local") != 0 || !YAJL_IS_STRING(net)) {
        rc = xo_err_internal_code(XO_EUNSUPPORTED, "Vif.t backend: the "
                                  "xenlight backend plugs VIFs on a local "
                                  "bridge only ([\"Local\", bridge])");
        goto out;
    }
    s = YAJL_GET_STRING(net);
    if (!bridge_valid(s)) {
        rc = xo_err_internal_code(XO_EINVAL, "Vif.t bridge '%s' is not an "
                                  "interface name", s);
        goto out;
    }
    snprintf(v->bridge, sizeof(v->bridge), "%s", s);
out:
    yajl_tree_free(t);
    return rc;
}

int
xl_vif_config_to_libxl(const struct xl_vif_config *v, libxl_device_nic *nic)
{
    unsigned m[6];

    nic->devid = v->devid;
    nic->backend_domid = 0;
    nic->bridge = xstrdup(v->bridge);
    nic->mtu = v->mtu;
    nic->nictype = LIBXL_NIC_TYPE_VIF;
    if (sscanf(v->mac, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3],
               &m[4], &m[5]) != 6)
        return xo_err_internal_code(XO_EINVAL, "bad mac '%s'", v->mac);
    for (int i = 0; i < 6; i++)
        nic->mac[i] = (uint8_t)m[i];
    return 0;
}
