/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The SMAPIv3 adapter. Worked example: attach of VDI "vol1" for datapath
 * "vbd/5/xvda" on an xo-file SR whose SR.attach returned
 * "file:///srv/sr":
 *
 *   volume/org.xen.xapi.storage.xo-file/Volume.stat --json
 *     stdin  {"dbg":"vbd/5/xvda","sr":"file:///srv/sr","key":"vol1"}
 *     stdout {"key":"vol1",...,"uri":["loop+file:///srv/sr/vol1",
 *             "file:///srv/sr/vol1"],...}
 *   datapath/loop+file exists, so:
 *   datapath/loop+file/Datapath.attach --json
 *     stdin  {"dbg":"vbd/5/xvda","uri":"loop+file:///srv/sr/vol1",
 *             "domain":"5"}
 *     stdout {"implementations":[["XenDisk",{"params":"/dev/loop3",...}],
 *             ["BlockDevice",{"path":"/dev/loop3"}]]}
 *   -> params "/dev/loop3"; later Datapath.activate with the same
 *      uri and domain, without another Volume.stat.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sm/sm_driver.h"
#include "sm/sm_exec.h"
#include "sm/v3/smapiv3.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define V3_DBG "xenopsd-c"

struct smapiv3 {
    char *volume_dir;
    char *datapath_root;
    char *driver;           /* the volume plugin's name, for errors */
    char *sr_uri;
    int timeout_ms;
    struct sm_driver_vdis vdis;     /* what attach learnt about a VDI */
};

/* The resolved target of a datapath call. */
struct v3_target {
    char *uri;
    char *dp_dir;
    bool rw;
};

static void
target_dispose(struct v3_target *t)
{
    free(t->uri);
    free(t->dp_dir);
    t->uri = t->dp_dir = NULL;
}

/* A JSON value as a string param: strings as they are, others as JSON. */
static char *
param_text(yajl_val v)
{
    if (YAJL_IS_STRING(v))
        return xstrdup(v->u.string);
    return json_tree_to_string(v);
}

/* A non-zero exit: stdout should be {"code", "params", "backtrace"}. */
static int
v3_error(const struct sm_exec_call *call, const struct sm_exec_result *res)
{
    yajl_val v = NULL, params;
    const char *code;
    char **p = NULL;
    size_t n = 0;
    char *why;
    int rc;

    if (!res->out || json_parse(res->out, res->out_len, &v) != 0 ||
        !(code = json_get_str(v, "code")) || !*code ||
        !json_is_array(params = json_get(v, "params"))) {
        xo_err_clear();
        why = xasprintf("non-zero exit %d and bad json on stdout",
                        res->exit_status);
        rc = sm_exec_error(call, res, "SCRIPT_FAILED", why);
        free(why);
        goto out;
    }
    n = json_array_len(params);
    p = xcalloc(n + 1, sizeof(*p));
    for (size_t i = 0; i < n; i++)
        p[i] = param_text(json_array_at(params, i));
    LOG(ERROR, "driver '%s' command '%s' vdi '%s' failed: %s '%s'",
        call->driver, call->command, call->vdi ? call->vdi : "", code,
        n > 1 ? p[1] : n ? p[0] : "");
    /* As xapi-storage-script: this pair is its own error. */
    if (n == 2 && strcmp(p[0], "Activated_on_another_host") == 0)
        rc = xo_err_storage(p[0], (const char *const *)p + 1, 1);
    else
        rc = xo_err_storage(code, (const char *const *)p, n);
out:
    for (size_t i = 0; p && i < n; i++)
        free(p[i]);
    free(p);
    if (v)
        yajl_tree_free(v);
    return rc;
}

/* Run <dir>/<method> --json with args on stdin; *result_r is stdout. */
static int
v3_call(const char *dir, const char *driver, const char *method,
        const char *vdi, const char *args_json, int timeout_ms,
        yajl_val *result_r)
{
    char *path = NULL, *input = xasprintf("%s\n", args_json);
    const char *argv[3] = { NULL, "--json", NULL };
    struct sm_exec_call call = {
        .driver = driver, .command = method, .vdi = vdi, .argv = argv,
        .input = input, .input_len = strlen(input),
        .timeout_ms = timeout_ms,
    };
    struct sm_exec_result res = { 0 };
    int rc;

    *result_r = NULL;
    sm_exec_find(dir, method, &path);
    call.path = argv[0] = path;
    rc = sm_exec_run(&call, &res);
    if (rc)
        goto out;
    if (res.exit_status != 0) {
        rc = v3_error(&call, &res);
        goto out;
    }
    rc = sm_exec_json(&call, &res, res.out, res.out_len,
                      "bad json on stdout", result_r);
out:
    sm_exec_result_dispose(&res);
    free(path);
    free(input);
    return rc;
}

/* A result of the wrong shape. */
static int
v3_bad_result(const char *driver, const char *method, const char *vdi,
              const char *what)
{
    struct sm_exec_call call = { .driver = driver, .command = method,
                                 .vdi = vdi };
    char *why = xasprintf("%s result: %s", method, what);
    int rc = sm_exec_error(&call, NULL, "SCRIPT_FAILED", why);

    free(why);
    return rc;
}

static bool
is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
is_file(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* "0" (dom0) is named after the datapath, as xapi-storage-script does. */
static char *
v3_domain(const char *domain, const char *dp)
{
    char *d;

    if (strcmp(domain, "0") != 0)
        return xstrdup(domain);
    d = xasprintf("u0-%s", dp);
    for (char *c = d + 3; *c; c++)
        if (*c == '/' || *c == '-')
            *c = '_';
    return d;
}

/* {"dbg": dbg, "<k1>": v1, ...}: pairs of strings, NULL-terminated. */
static char *
v3_args(const char *dbg, const char *const *kv)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "dbg");
    json_gen_str(g, dbg);
    for (size_t i = 0; kv[i]; i += 2) {
        json_gen_str(g, kv[i]);
        json_gen_str(g, kv[i + 1]);
    }
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

/* The datapath plugin dir for a URI's scheme, if it has one. */
static char *
scheme_dir(const struct smapiv3 *d, const char *uri)
{
    size_t n = strspn(uri, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                      "xyz0123456789+.-");
    char *scheme, *dir;

    if (n == 0 || uri[n] != ':' || uri[0] == '.' || uri[0] == '+' ||
        uri[0] == '-')
        return NULL;
    scheme = xstrndup(uri, n);
    dir = xasprintf("%s/%s", d->datapath_root, scheme);
    free(scheme);
    if (is_dir(dir))
        return dir;
    free(dir);
    return NULL;
}

/* Volume.stat, then the first URI with a datapath plugin. */
static int
v3_resolve(struct smapiv3 *d, const char *dp, const char *vdi,
           struct v3_target *t)
{
    const char *kv[] = { "sr", d->sr_uri, "key", vdi, NULL };
    char *args = v3_args(dp, kv);
    yajl_val vol = NULL, uris;
    int rc;

    rc = v3_call(d->volume_dir, d->driver, "Volume.stat", vdi, args,
                 d->timeout_ms, &vol);
    if (rc)
        goto out;
    uris = json_get(vol, "uri");
    if (!json_is_array(uris)) {
        rc = v3_bad_result(d->driver, "Volume.stat", vdi, "no uri list");
        goto out;
    }
    for (size_t i = 0; i < json_array_len(uris) && !t->uri; i++) {
        yajl_val u = json_array_at(uris, i);

        if (YAJL_IS_STRING(u) && (t->dp_dir = scheme_dir(d, u->u.string)))
            t->uri = xstrdup(u->u.string);
    }
    if (!t->uri) {
        struct sm_exec_call call = { .driver = d->driver,
                                     .command = "Volume.stat", .vdi = vdi };

        rc = sm_exec_error(&call, NULL, "MISSING_URI", "no URI of the "
                           "volume has a datapath plugin");
    }
out:
    if (vol)
        yajl_tree_free(vol);
    free(args);
    return rc;
}

/* The remembered target, or a fresh Volume.stat (writable assumed, as
 * for a disk attached before a daemon restart). */
static int
v3_target(struct smapiv3 *d, const char *dp, const char *vdi,
          struct v3_target *t)
{
    memset(t, 0, sizeof(*t));
    if (sm_driver_vdis_recall(&d->vdis, vdi, &t->rw, &t->uri, &t->dp_dir))
        return 0;
    t->rw = true;
    return v3_resolve(d, dp, vdi, t);
}

static int
v3_check_vdi(const char *vdi)
{
    return sm_driver_check_vdi(vdi, "VDI key", "SMAPIv3 plugin");
}

/* Datapath.<method> {dbg, uri, domain}; *result_r may be NULL. */
static int
v3_datapath(struct smapiv3 *d, const struct v3_target *t,
            const char *method, const char *dp, const char *vdi,
            const char *domain, yajl_val *result_r)
{
    char *dom = v3_domain(domain, dp);
    const char *kv[] = { "uri", t->uri, "domain", dom, NULL };
    char *args = v3_args(dp, kv);
    yajl_val v = NULL;
    int rc;

    /* Errors name the datapath plugin: its script is what failed. */
    rc = v3_call(t->dp_dir, strrchr(t->dp_dir, '/') + 1, method, vdi, args,
                 d->timeout_ms, &v);
    if (result_r)
        *result_r = v;
    else if (v)
        yajl_tree_free(v);
    free(args);
    free(dom);
    return rc;
}

/* The params for the backend from a Datapath.attach result. */
static const char *
backend_params(yajl_val backend)
{
    static const char *const pref[][2] = {
        { "XenDisk", "params" }, { "BlockDevice", "path" },
        { "File", "path" }, { "Nbd", "uri" },
    };
    yajl_val impls = json_get(backend, "implementations");

    for (size_t k = 0; k < 4; k++) {
        for (size_t i = 0; i < json_array_len(impls); i++) {
            yajl_val impl = json_array_at(impls, i);
            yajl_val kind = json_array_at(impl, 0);
            const char *s;

            if (json_array_len(impl) == 2 && YAJL_IS_STRING(kind) &&
                strcmp(kind->u.string, pref[k][0]) == 0 &&
                (s = json_get_str(json_array_at(impl, 1), pref[k][1])) &&
                *s)
                return s;
        }
    }
    return NULL;
}

static int
v3_query(void *priv, char **api_version_r)
{
    struct smapiv3 *d = priv;
    const char *kv[] = { NULL };
    char *args = v3_args(V3_DBG, kv);
    const char *version;
    yajl_val v = NULL;
    int rc;

    *api_version_r = NULL;
    rc = v3_call(d->volume_dir, d->driver, "Plugin.Query", NULL, args,
                 d->timeout_ms, &v);
    if (rc)
        goto out;
    version = json_get_str(v, "required_api_version");
    if (version)
        *api_version_r = xstrdup(version);
    else
        rc = v3_bad_result(d->driver, "Plugin.Query", NULL,
                           "no required_api_version");
out:
    if (v)
        yajl_tree_free(v);
    free(args);
    return rc;
}

static int
v3_attach(void *priv, const char *dp, const char *sr, const char *vdi,
          const char *domain, bool rw, char **params_r)
{
    struct smapiv3 *d = priv;
    struct v3_target t = { .rw = rw };
    yajl_val backend = NULL;
    const char *params;
    int rc;

    (void)sr;
    *params_r = NULL;
    rc = v3_check_vdi(vdi);
    if (!rc)
        rc = v3_resolve(d, dp, vdi, &t);
    if (!rc)
        rc = v3_datapath(d, &t, "Datapath.attach", dp, vdi, domain,
                         &backend);
    if (rc)
        goto out;
    params = backend_params(backend);
    if (!params) {
        rc = v3_bad_result(strrchr(t.dp_dir, '/') + 1, "Datapath.attach",
                           vdi, "no usable implementation");
        goto out;
    }
    *params_r = xstrdup(params);
    sm_driver_vdis_remember(&d->vdis, vdi, t.rw, t.uri, t.dp_dir);
out:
    if (backend)
        yajl_tree_free(backend);
    target_dispose(&t);
    return rc;
}

/* activate, deactivate, detach: same shape. */
static int
v3_simple(struct smapiv3 *d, const char *what, const char *dp,
          const char *vdi, const char *domain)
{
    struct v3_target t;
    char *ro = NULL;
    const char *method = what;
    int rc = v3_check_vdi(vdi);

    if (rc)
        return rc;
    rc = v3_target(d, dp, vdi, &t);
    if (rc)
        goto out;
    if (strcmp(what, "Datapath.activate") == 0 && !t.rw) {
        sm_exec_find(t.dp_dir, "Datapath.activate_readonly", &ro);
        if (is_file(ro))
            method = "Datapath.activate_readonly";
    }
    rc = v3_datapath(d, &t, method, dp, vdi, domain, NULL);
    if (!rc && strcmp(what, "Datapath.detach") == 0)
        sm_driver_vdis_forget(&d->vdis, vdi);
out:
    target_dispose(&t);
    free(ro);
    return rc;
}

static int
v3_activate(void *priv, const char *dp, const char *sr, const char *vdi,
            const char *domain)
{
    (void)sr;
    return v3_simple(priv, "Datapath.activate", dp, vdi, domain);
}

static int
v3_deactivate(void *priv, const char *dp, const char *sr, const char *vdi,
              const char *domain)
{
    (void)sr;
    return v3_simple(priv, "Datapath.deactivate", dp, vdi, domain);
}

static int
v3_detach(void *priv, const char *dp, const char *sr, const char *vdi,
          const char *domain)
{
    (void)sr;
    return v3_simple(priv, "Datapath.detach", dp, vdi, domain);
}

static int
v3_epoch_begin(void *priv, const char *sr, const char *vdi,
               const char *domain, bool persistent)
{
    struct smapiv3 *d = priv;

    (void)sr;
    (void)domain;
    if (persistent)
        return 0;
    LOG(ERROR, "SR of plugin '%s': non-persistent VDI '%s' is not "
        "supported", d->driver, vdi);
    return xo_err_unimplemented("non-persistent VDI on a SMAPIv3 SR");
}

static int
v3_stamp(void *priv, uint64_t *stamp_r)
{
    struct smapiv3 *d = priv;
    char *path = NULL;
    int rc;

    sm_exec_find(d->volume_dir, "Plugin.Query", &path);
    rc = sm_exec_stamp(path, stamp_r);
    free(path);
    return rc;
}

static void
v3_free(void *priv)
{
    struct smapiv3 *d = priv;

    if (!d)
        return;
    sm_driver_vdis_destroy(&d->vdis);
    free(d->volume_dir);
    free(d->datapath_root);
    free(d->driver);
    free(d->sr_uri);
    free(d);
}

const struct sm_driver_ops smapiv3_ops = {
    .name = "smapiv3",
    .query = v3_query,
    .attach = v3_attach,
    .activate = v3_activate,
    .deactivate = v3_deactivate,
    .detach = v3_detach,
    .epoch_begin = v3_epoch_begin,
    .stamp = v3_stamp,
    .free = v3_free,
};

static bool
plugin_ok(const char *plugin)
{
    size_t n = plugin ? strlen(plugin) : 0;

    return n > 0 && n <= 64 && plugin[0] != '.' &&
           strspn(plugin, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvw"
                  "xyz0123456789_.-") == n;
}

/* <root>/volume/org.xen.xapi.storage.<plugin>, else <root>/volume/<plugin>
 * (each matched case-insensitively). */
static int
find_volume_dir(const char *root, const char *plugin, char **dir_r)
{
    char *vroot = xasprintf("%s/volume", root);
    char *name = xasprintf("org.xen.xapi.storage.%s", plugin);
    char *dir = NULL;
    int rc = 0;

    sm_exec_find(vroot, name, &dir);
    if (!is_dir(dir)) {
        free(dir);
        sm_exec_find(vroot, plugin, &dir);
    }
    if (!is_dir(dir)) {
        LOG(ERROR, "no SMAPIv3 volume plugin '%s' under '%s'", plugin,
            vroot);
        rc = xo_err_does_not_exist("SR driver", plugin);
        free(dir);
        dir = NULL;
    }
    *dir_r = dir;
    free(vroot);
    free(name);
    return rc;
}

static int
check_args(const char *root, const char *plugin, int timeout_ms)
{
    if (!root || !plugin_ok(plugin) || timeout_ms <= 0) {
        LOG(ERROR, "invalid SMAPIv3 SR (root, plugin or timeout)");
        return xo_err_internal_code(XO_EINVAL, "invalid SMAPIv3 SR plugin, "
                                    "root or timeout");
    }
    return 0;
}

/* {"dbg": ..., "configuration": {device_config}} after checking that
 * device_config is an object of strings. */
static int
sr_attach_args(const char *device_config_json, char **args_r)
{
    yajl_val v = NULL;
    yajl_gen g;
    int rc = sm_driver_device_config(device_config_json, &v);

    if (rc)
        return rc;
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "dbg");
    json_gen_str(g, V3_DBG);
    json_gen_str(g, "configuration");
    json_gen_tree(g, v);
    yajl_gen_map_close(g);
    *args_r = json_gen_take(g);
    yajl_tree_free(v);
    return 0;
}

int
smapiv3_sr_attach(const char *root, const char *plugin,
                  const char *device_config_json, int timeout_ms,
                  char **sr_uri_r)
{
    char *dir = NULL, *args = NULL;
    const char *driver;
    yajl_val v = NULL;
    int rc;

    *sr_uri_r = NULL;
    rc = check_args(root, plugin, timeout_ms);
    if (!rc)
        rc = sr_attach_args(device_config_json, &args);
    if (!rc)
        rc = find_volume_dir(root, plugin, &dir);
    if (rc)
        goto out;
    driver = strrchr(dir, '/') + 1;
    rc = v3_call(dir, driver, "SR.attach", NULL, args, timeout_ms, &v);
    if (rc)
        goto out;
    if (!YAJL_IS_STRING(v) || !*v->u.string) {
        rc = v3_bad_result(driver, "SR.attach", NULL, "not an SR string");
        goto out;
    }
    *sr_uri_r = xstrdup(v->u.string);
out:
    if (v)
        yajl_tree_free(v);
    free(dir);
    free(args);
    return rc;
}

int
smapiv3_driver_new(const char *root, const char *plugin, const char *sr_uri,
                   int timeout_ms, const struct sm_driver_ops **ops_r,
                   void **priv_r)
{
    struct smapiv3 *d;
    char *dir = NULL;
    int rc = check_args(root, plugin, timeout_ms);

    if (!rc && (!sr_uri || !*sr_uri)) {
        LOG(ERROR, "SMAPIv3 SR of plugin '%s' without an SR URI", plugin);
        rc = xo_err_internal_code(XO_EINVAL, "missing SR URI");
    }
    if (!rc)
        rc = find_volume_dir(root, plugin, &dir);
    if (rc)
        return rc;
    d = xcalloc(1, sizeof(*d));
    sm_driver_vdis_init(&d->vdis);
    d->volume_dir = dir;
    d->driver = xstrdup(strrchr(dir, '/') + 1);
    d->datapath_root = xasprintf("%s/datapath", root);
    d->sr_uri = xstrdup(sr_uri);
    d->timeout_ms = timeout_ms;
    *ops_r = &smapiv3_ops;
    *priv_r = d;
    return 0;
}
