/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The SMAPIv1 adapter: each op builds the struct xapi would send, wraps
 * it in a methodCall, runs the driver with it as argv[1] and reads a
 * methodResponse (value or fault) from stdout. Worked example, vdi_attach
 * of VDI "disk1" on SR d9a3... (device_config {"path": "/srv/sr"}):
 *
 *   argv = ["<sm-dir>/XoFileSR", "<methodCall><methodName>vdi_attach
 *           </methodName><params><param><value><struct>
 *           host_ref=OpaqueRef:NULL, command=vdi_attach, args=["true"],
 *           device_config={SRmaster: "true", path: "/srv/sr"},
 *           session_ref=OpaqueRef:NULL, sr_ref=OpaqueRef:d9a3...,
 *           sr_uuid=d9a3..., vdi_ref=OpaqueRef:disk1, vdi_location=disk1,
 *           vdi_uuid=disk1, vdi_on_boot=persist, vdi_allow_caching=false
 *           </struct></value></param></params></methodCall>"]
 *   stdout: <methodResponse><params><param><value><struct>
 *           params=/srv/sr/disk1, ...</struct>...</methodResponse>
 *   -> params "/srv/sr/disk1"
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sm/sm_driver.h"
#include "sm/sm_exec.h"
#include "sm/v1/smapiv1.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "util/xmlrpc.h"

#define V1_NULL_REF "OpaqueRef:NULL"

struct smapiv1 {
    char *path;             /* the driver executable */
    char *driver;           /* its file name, for errors */
    char sr_uuid[IDS_UUID_LEN + 1];
    yajl_val dconf;         /* device_config: an object of strings */
    int timeout_ms;
    /* Whether a VDI was attached writable: vdi_activate repeats it. */
    struct sm_driver_vdis vdis;
};

/* One command: what goes into the struct besides the SR's fields. */
struct v1_req {
    const char *command;
    const char *args[1];
    size_t n_args;
    const char *vdi;        /* NULL: no VDI fields */
    const char *on_boot;    /* vdi_on_boot; NULL: "persist" */
    bool info;              /* sr_get_driver_info: the minimal struct */
};

static void
gen_kv(yajl_gen g, const char *k, const char *v)
{
    json_gen_str(g, k);
    json_gen_str(g, v);
}

/* device_config as xapi passes it: SRmaster first, then the SR's keys. */
static void
gen_device_config(yajl_gen g, const struct smapiv1 *d, bool info)
{
    yajl_gen_map_open(g);
    if (!info) {
        gen_kv(g, "SRmaster", "true");
        for (size_t i = 0; i < d->dconf->u.object.len; i++) {
            const char *k = d->dconf->u.object.keys[i];

            if (strcmp(k, "SRmaster") != 0)
                gen_kv(g, k, d->dconf->u.object.values[i]->u.string);
        }
    }
    yajl_gen_map_close(g);
}

/* The methodCall's params: a one-element array holding the struct. */
static char *
v1_params_json(const struct smapiv1 *d, const struct v1_req *q)
{
    yajl_gen g = json_gen_new();
    char *ref;

    yajl_gen_array_open(g);
    yajl_gen_map_open(g);
    gen_kv(g, "host_ref", V1_NULL_REF);
    gen_kv(g, "command", q->command);
    json_gen_str(g, "args");
    yajl_gen_array_open(g);
    for (size_t i = 0; i < q->n_args; i++)
        json_gen_str(g, q->args[i]);
    yajl_gen_array_close(g);
    json_gen_str(g, "device_config");
    gen_device_config(g, d, q->info);
    if (!q->info) {
        gen_kv(g, "session_ref", V1_NULL_REF);
        ref = xasprintf("OpaqueRef:%s", d->sr_uuid);
        gen_kv(g, "sr_ref", ref);
        free(ref);
        gen_kv(g, "sr_uuid", d->sr_uuid);
    }
    if (q->vdi) {
        ref = xasprintf("OpaqueRef:%s", q->vdi);
        gen_kv(g, "vdi_ref", ref);
        free(ref);
        gen_kv(g, "vdi_location", q->vdi);
        gen_kv(g, "vdi_uuid", q->vdi);
        gen_kv(g, "vdi_on_boot", q->on_boot ? q->on_boot : "persist");
        gen_kv(g, "vdi_allow_caching", "false");
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

/* A <fault>, mapped as xapi's Sm_exec does. */
static int
v1_fault(const struct smapiv1 *d, const struct v1_req *q,
         const struct sm_exec_call *call, const struct sm_exec_result *res,
         const char *fault_json)
{
    yajl_val v = NULL;
    int64_t code = 0;
    const char *msg = NULL;
    char *text = NULL, *err = NULL, *sr_ref = NULL, *vdi_ref = NULL;
    int rc;

    if (json_parse(fault_json, strlen(fault_json), &v) != 0 ||
        json_get_int64(v, "faultCode", 0, &code) != 0 ||
        !json_get(v, "faultCode")) {
        xo_err_clear();
        rc = sm_exec_error(call, res, "SCRIPT_FAILED",
                           "malformed XML-RPC fault on stdout");
        goto out;
    }
    msg = json_get_str(v, "faultString");
    msg = msg ? msg : "";
    LOG(ERROR, "driver '%s' command '%s' vdi '%s' failed: fault %lld '%s'",
        d->driver, q->command, q->vdi ? q->vdi : "", (long long)code, msg);
    switch (code) {
    case 38:
        rc = xo_err_unimplemented(q->command);
        break;
    case 39:
        rc = xo_err_storage("SR_NOT_EMPTY", NULL, 0);
        break;
    case 24:
        rc = xo_err_storage("VDI_IN_USE", NULL, 0);
        break;
    case 16:
        rc = xo_err_storage("SR_DEVICE_IN_USE", NULL, 0);
        break;
    case 144: {
        const char *p[2];

        sr_ref = xasprintf("OpaqueRef:%s", d->sr_uuid);
        vdi_ref = q->vdi ? xasprintf("OpaqueRef:%s", q->vdi) : xstrdup("");
        p[0] = sr_ref;
        p[1] = vdi_ref;
        rc = xo_err_storage("VDI_MISSING", p, 2);
        break;
    }
    default: {
        const char *p[3];

        text = xasprintf("SR_BACKEND_FAILURE_%lld", (long long)code);
        err = sm_exec_printable(res->err ? res->err : "", res->err_len,
                                4096);
        p[0] = "";
        p[1] = msg;
        p[2] = err;
        rc = xo_err_storage(text, p, 3);
        break;
    }
    }
out:
    if (v)
        yajl_tree_free(v);
    free(text);
    free(err);
    free(sr_ref);
    free(vdi_ref);
    return rc;
}

/* Run one command; *value_r is the methodResponse's value. */
static int
v1_call(const struct smapiv1 *d, const struct v1_req *q, yajl_val *value_r)
{
    static const char *const env[] = { "ORIGINATOR=SM", NULL };
    char *params = v1_params_json(d, q);
    char *xml = NULL, *value = NULL, *why = NULL, *detail = NULL;
    const char *argv[3] = { d->path, NULL, NULL };
    struct sm_exec_call call = {
        .driver = d->driver, .command = q->command, .vdi = q->vdi,
        .path = d->path, .argv = argv, .env = env,
        .timeout_ms = d->timeout_ms,
    };
    struct sm_exec_result res = { 0 };
    bool fault = false;
    int rc;

    *value_r = NULL;
    rc = xmlrpc_encode_call(q->command, params, &xml);
    if (rc)
        goto out;
    argv[1] = xml;
    rc = sm_exec_run(&call, &res);
    if (rc)
        goto out;
    if (res.exit_status != 0) {
        why = xasprintf("non-zero exit %d", res.exit_status);
        rc = sm_exec_error(&call, &res, "SCRIPT_FAILED", why);
        goto out;
    }
    rc = xmlrpc_parse_response(res.out ? res.out : "", res.out_len, &value,
                               &fault);
    if (rc) {
        detail = xo_err_take_json(rc);
        why = xasprintf("stdout is not an XML-RPC methodResponse: %s",
                        detail);
        rc = sm_exec_error(&call, &res, "SCRIPT_FAILED", why);
        goto out;
    }
    if (fault) {
        rc = v1_fault(d, q, &call, &res, value);
        goto out;
    }
    rc = sm_exec_json(&call, &res, value, strlen(value),
                      "methodResponse value cannot be decoded", value_r);
out:
    sm_exec_result_dispose(&res);
    free(params);
    free(xml);
    free(value);
    free(why);
    free(detail);
    return rc;
}

/* A string field of a result struct, or SCRIPT_FAILED naming it. */
static int
v1_result_str(const struct smapiv1 *d, const struct v1_req *q, yajl_val v,
              const char *field, char **r)
{
    const char *s = json_get_str(v, field);
    struct sm_exec_call call = { .driver = d->driver, .command = q->command,
                                 .vdi = q->vdi };
    char *why;
    int rc;

    if (s) {
        *r = xstrdup(s);
        return 0;
    }
    why = xasprintf("%s result has no string '%s'", q->command, field);
    rc = sm_exec_error(&call, NULL, "SCRIPT_FAILED", why);
    free(why);
    return rc;
}

static int
v1_check_vdi(const char *vdi)
{
    return sm_driver_check_vdi(vdi, "VDI location", "SMAPIv1 driver");
}

static int
v1_unit(struct smapiv1 *d, const char *command, const char *vdi,
        const char *arg, const char *on_boot)
{
    struct v1_req q = { .command = command, .vdi = vdi,
                        .on_boot = on_boot };
    yajl_val v = NULL;
    int rc = v1_check_vdi(vdi);

    if (rc)
        return rc;
    if (arg) {
        q.args[0] = arg;
        q.n_args = 1;
    }
    rc = v1_call(d, &q, &v);
    if (v)
        yajl_tree_free(v);
    return rc;
}

/* Unknown (e.g. attached before a daemon restart): writable, as xapi's
 * default for a disk. */
static bool
recall_rw(struct smapiv1 *d, const char *vdi)
{
    bool rw = true;

    sm_driver_vdis_recall(&d->vdis, vdi, &rw, NULL, NULL);
    return rw;
}

static int
v1_query(void *priv, char **api_version_r)
{
    struct smapiv1 *d = priv;
    struct v1_req q = { .command = "sr_get_driver_info", .info = true };
    yajl_val v = NULL;
    int rc;

    *api_version_r = NULL;
    rc = v1_call(d, &q, &v);
    if (!rc)
        rc = v1_result_str(d, &q, v, "required_api_version", api_version_r);
    if (v)
        yajl_tree_free(v);
    return rc;
}

static int
v1_attach(void *priv, const char *dp, const char *sr, const char *vdi,
          const char *domain, bool rw, char **params_r)
{
    struct smapiv1 *d = priv;
    struct v1_req q = { .command = "vdi_attach", .vdi = vdi,
                        .args = { rw ? "true" : "false" }, .n_args = 1 };
    const char *params;
    yajl_val v = NULL;
    int rc;

    (void)dp;
    (void)sr;
    (void)domain;
    *params_r = NULL;
    rc = v1_check_vdi(vdi);
    if (!rc)
        rc = v1_call(d, &q, &v);
    if (rc)
        goto out;
    params = json_get_str(v, "params");
    if (params && *params) {
        *params_r = xstrdup(params);
    } else {
        rc = v1_result_str(d, &q, v, "params_nbd", params_r);
        if (rc)
            goto out;
    }
    sm_driver_vdis_remember(&d->vdis, vdi, rw, NULL, NULL);
out:
    if (v)
        yajl_tree_free(v);
    return rc;
}

static int
v1_activate(void *priv, const char *dp, const char *sr, const char *vdi,
            const char *domain)
{
    struct smapiv1 *d = priv;

    (void)dp;
    (void)sr;
    (void)domain;
    return v1_unit(d, "vdi_activate", vdi,
                   recall_rw(d, vdi) ? "true" : "false", NULL);
}

static int
v1_deactivate(void *priv, const char *dp, const char *sr, const char *vdi,
              const char *domain)
{
    (void)dp;
    (void)sr;
    (void)domain;
    return v1_unit(priv, "vdi_deactivate", vdi, NULL, NULL);
}

static int
v1_detach(void *priv, const char *dp, const char *sr, const char *vdi,
          const char *domain)
{
    struct smapiv1 *d = priv;
    int rc;

    (void)dp;
    (void)sr;
    (void)domain;
    rc = v1_unit(d, "vdi_detach", vdi, NULL, NULL);
    if (!rc)
        sm_driver_vdis_forget(&d->vdis, vdi);
    return rc;
}

static int
v1_epoch_begin(void *priv, const char *sr, const char *vdi,
               const char *domain, bool persistent)
{
    (void)sr;
    (void)domain;
    return v1_unit(priv, "vdi_epoch_begin", vdi, NULL,
                   persistent ? "persist" : "reset");
}

static int
v1_epoch_end(void *priv, const char *sr, const char *vdi,
             const char *domain)
{
    (void)sr;
    (void)domain;
    return v1_unit(priv, "vdi_epoch_end", vdi, NULL, NULL);
}

static int
v1_stamp(void *priv, uint64_t *stamp_r)
{
    return sm_exec_stamp(((struct smapiv1 *)priv)->path, stamp_r);
}

static void
v1_free(void *priv)
{
    struct smapiv1 *d = priv;

    if (!d)
        return;
    sm_driver_vdis_destroy(&d->vdis);
    if (d->dconf)
        yajl_tree_free(d->dconf);
    free(d->path);
    free(d->driver);
    free(d);
}

const struct sm_driver_ops smapiv1_ops = {
    .name = "smapiv1",
    .query = v1_query,
    .attach = v1_attach,
    .activate = v1_activate,
    .deactivate = v1_deactivate,
    .detach = v1_detach,
    .epoch_begin = v1_epoch_begin,
    .epoch_end = v1_epoch_end,
    .stamp = v1_stamp,
    .free = v1_free,
};

static bool
type_ok(const char *type)
{
    size_t n = strlen(type);

    if (n == 0 || n > 64)
        return false;
    return strspn(type, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                  "0123456789_.-") == n;
}

int
smapiv1_driver_new(const char *sm_dir, const char *type,
                   const char *sr_uuid, const char *device_config_json,
                   int timeout_ms, const struct sm_driver_ops **ops_r,
                   void **priv_r)
{
    struct smapiv1 *d = NULL;
    char *name = NULL;
    struct stat st;
    int rc;

    if (!sm_dir || !type || !type_ok(type) || !sr_uuid ||
        !ids_is_uuid(sr_uuid) || timeout_ms <= 0) {
        LOG(ERROR, "invalid SMAPIv1 SR (type, uuid or timeout)");
        return xo_err_internal_code(XO_EINVAL, "invalid SMAPIv1 SR type, "
                                    "uuid or timeout");
    }
    d = xcalloc(1, sizeof(*d));
    sm_driver_vdis_init(&d->vdis);
    rc = sm_driver_device_config(device_config_json, &d->dconf);
    if (rc)
        goto out;
    name = xasprintf("%sSR", type);
    sm_exec_find(sm_dir, name, &d->path);
    if (stat(d->path, &st) < 0 || !S_ISREG(st.st_mode)) {
        LOG(ERROR, "no SMAPIv1 driver '%s' in '%s'", name, sm_dir);
        rc = xo_err_does_not_exist("SR driver", type);
        goto out;
    }
    d->driver = xstrdup(strrchr(d->path, '/') + 1);
    xstrlcpy(d->sr_uuid, sr_uuid, sizeof(d->sr_uuid));
    d->timeout_ms = timeout_ms;
    *ops_r = &smapiv1_ops;
    *priv_r = d;
    d = NULL;
out:
    v1_free(d);
    free(name);
    return rc;
}

const char *
smapiv1_driver_path(const void *priv)
{
    return ((const struct smapiv1 *)priv)->path;
}
