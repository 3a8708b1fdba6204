/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Persisted form of one SR, <db>/sr/<uuid>.json:
 *   {"uuid": u, "type": t, "api": "SMAPIv1"|"SMAPIv3",
 *    "device_config": {...}, "sr_uri": s (v3 only)}
 * On start-up each file is re-registered without re-running SR.attach
 * (the SR URI is kept), so a restart does not disturb attached VDIs.
 */
#include <dirent.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <yajl/yajl_gen.h>

#include "model.h"
#include "sm/sm.h"
#include "sm/sr.h"
#include "sm/v1/smapiv1.h"
#include "sm/v3/smapiv3.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define SR_FILE_MAX (1024 * 1024)
#define SR_TYPE_MAX 64

enum sr_api { SR_API_V1, SR_API_V3 };

struct sr_entry {
    char uuid[37];
    char *type;
    enum sr_api api;
    char *driver;           /* v1: the driver file name; v3: plugin dir */
    char *device_config;    /* JSON object text */
    char *sr_uri;           /* v3 */
    bool available;         /* registered with the SM layer */
    bool never_early;       /* attach-early policy "never" (else "auto") */
    struct sr_entry *next;
};

struct sr_registry {
    struct sr_config cfg;
    char *dir;              /* <db>/sr, or NULL when not persisting */
    struct sm *sm;
    pthread_mutex_t lock;
    struct sr_entry *srs;
};

static void
entry_free(struct sr_entry *e)
{
    if (!e)
        return;
    free(e->type);
    free(e->driver);
    free(e->device_config);
    free(e->sr_uri);
    free(e);
}

static bool
type_ok(const char *t)
{
    size_t n = strlen(t);

    if (n == 0 || n > SR_TYPE_MAX || t[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];

        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') &&
            !(c >= '0' && c <= '9') && c != '_' && c != '.' && c != '-')
            return false;
    }
    return true;
}

/* Entry of dir whose name equals want, ignoring case; malloc'd or NULL. */
static char *
find_ci(const char *dir, const char *want, bool want_dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char *found = NULL;

    if (!d)
        return NULL;
    while (!found && (de = readdir(d))) {
        struct stat st;
        char *path;

        if (strcasecmp(de->d_name, want) != 0)
            continue;
        path = xasprintf("%s/%s", dir, de->d_name);
        if (stat(path, &st) == 0 &&
            (want_dir ? S_ISDIR(st.st_mode) : S_ISREG(st.st_mode)))
            found = xstrdup(de->d_name);
        free(path);
    }
    closedir(d);
    return found;
}

/* Which driver serves type: fills e->api and e->driver. */
static int
resolve(struct sr_registry *reg, struct sr_entry *e)
{
    char *want = xasprintf("%sSR", e->type);
    char *voldir = xasprintf("%s/volume", reg->cfg.script_root);
    char *name;

    name = find_ci(reg->cfg.sm_dir, want, false);
    free(want);
    if (name) {
        e->api = SR_API_V1;
        e->driver = name;
        free(voldir);
        return 0;
    }
    want = xasprintf("org.xen.xapi.storage.%s", e->type);
    name = find_ci(voldir, want, true);
    free(want);
    if (!name)
        name = find_ci(voldir, e->type, true);
    free(voldir);
    if (name) {
        e->api = SR_API_V3;
        e->driver = name;
        return 0;
    }
    LOG(ERROR, "no SMAPIv1 driver '%sSR' in '%s' and no SMAPIv3 plugin "
        "'%s' under '%s/volume'", e->type, reg->cfg.sm_dir, e->type,
        reg->cfg.script_root);
    return xo_err_does_not_exist("SR driver", e->type);
}

/* Build the driver for e and register it with the SM layer. */
static int
attach_driver(struct sr_registry *reg, struct sr_entry *e)
{
    const struct sm_driver_ops *ops = NULL;
    void *priv = NULL;
    int rc;

    if (e->api == SR_API_V1) {
        const char *type = e->driver;
        char *t = xstrndup(type, strlen(type) - 2);   /* drop "SR" */

        rc = smapiv1_driver_new(reg->cfg.sm_dir, t, e->uuid,
                                e->device_config, reg->cfg.timeout_ms, &ops,
                                &priv);
        free(t);
    } else {
        rc = smapiv3_driver_new(reg->cfg.script_root, e->driver, e->sr_uri,
                                reg->cfg.timeout_ms, &ops, &priv);
    }
    if (rc)
        return rc;
    rc = sm_register_sr(reg->sm, e->uuid, ops, priv);
    if (rc) {
        if (ops->free)
            ops->free(priv);
        return rc;
    }
    e->available = true;
    return 0;
}

static char *
entry_json(const struct sr_entry *e)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "uuid");
    json_gen_str(g, e->uuid);
    json_gen_str(g, "type");
    json_gen_str(g, e->type);
    json_gen_str(g, "api");
    json_gen_str(g, e->api == SR_API_V1 ? "SMAPIv1" : "SMAPIv3");
    json_gen_str(g, "driver");
    json_gen_str(g, e->driver);
    json_gen_str(g, "device_config");
    json_gen_raw(g, e->device_config);
    if (e->sr_uri) {
        json_gen_str(g, "sr_uri");
        json_gen_str(g, e->sr_uri);
    }
    json_gen_str(g, "attach_early_policy");
    json_gen_str(g, e->never_early ? "never" : "auto");
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

static int
persist(struct sr_registry *reg, const struct sr_entry *e)
{
    char *text, *name;
    int rc;

    if (!reg->dir)
        return 0;
    text = entry_json(e);
    name = xasprintf("%s.json", e->uuid);
    rc = files_write(reg->dir, name, text, strlen(text));
    free(name);
    free(text);
    return rc;
}

/* device_config must be an object of strings (what SM drivers take). */
static int
check_device_config(const char *json, char **norm_r)
{
    yajl_val t = NULL;
    int rc;

    *norm_r = NULL;
    if (!json)
        json = "{}";
    rc = json_parse(json, strlen(json), &t);
    if (rc)
        goto out;
    if (!YAJL_IS_OBJECT(t) || t->u.object.len > 256) {
        rc = xo_err_internal_code(XO_EINVAL, "device_config must be an "
                                  "object of at most 256 strings");
        goto out;
    }
    for (size_t i = 0; i < t->u.object.len; i++) {
        if (!YAJL_IS_STRING(t->u.object.values[i])) {
            rc = xo_err_internal_code(XO_EINVAL, "device_config value of "
                                      "'%s' must be a string",
                                      t->u.object.keys[i]);
            goto out;
        }
    }
    *norm_r = json_tree_to_string(t);
out:
    yajl_tree_free(t);
    return rc;
}

static struct sr_entry *
find(struct sr_registry *reg, const char *uuid)
{
    for (struct sr_entry *e = reg->srs; e; e = e->next)
        if (strcasecmp(e->uuid, uuid) == 0)
            return e;
    return NULL;
}

/* Rebuild an entry from its file; NULL (logged) if unusable. */
static struct sr_entry *
load_one(struct sr_registry *reg, const char *file)
{
    struct sr_entry *e = NULL;
    char *text = NULL;
    yajl_val t = NULL;
    const char *uuid, *type, *api, *driver, *uri, *policy;

    if (files_read(reg->dir, file, SR_FILE_MAX, &text, NULL) ||
        json_parse(text, strlen(text), &t))
        goto bad;
    uuid = json_get_str(t, "uuid");
    type = json_get_str(t, "type");
    api = json_get_str(t, "api");
    driver = json_get_str(t, "driver");
    uri = json_get_str(t, "sr_uri");
    if (!uuid || !ids_is_uuid(uuid) || !type || !type_ok(type) || !api ||
        !driver || !type_ok(driver) || !json_get(t, "device_config"))
        goto bad;
    e = xcalloc(1, sizeof(*e));
    memcpy(e->uuid, uuid, sizeof(e->uuid));
    e->type = xstrdup(type);
    e->api = strcmp(api, "SMAPIv1") == 0 ? SR_API_V1 : SR_API_V3;
    e->driver = xstrdup(driver);
    e->device_config = json_tree_to_string(json_get(t, "device_config"));
    e->sr_uri = uri ? xstrdup(uri) : NULL;
    if (e->api == SR_API_V3 && !e->sr_uri)
        goto bad;
    /* Older records have no policy: "auto". An unknown one is read as
     * "never", the path that works with every driver. */
    policy = json_get_str(t, "attach_early_policy");
    e->never_early = policy && strcmp(policy, "auto") != 0;
    if (policy && e->never_early && strcmp(policy, "never") != 0)
        LOG(WARN, "SR record '%s/%s': unknown attach_early_policy, using "
            "'never'", reg->dir, file);
    goto out;
bad:
    LOG(ERROR, "ignoring unreadable SR record '%s/%s'", reg->dir, file);
    xo_err_clear();
    entry_free(e);
    e = NULL;
out:
    yajl_tree_free(t);
    free(text);
    return e;
}

int
sr_registry_open(const struct sr_config *cfg, struct sm *sm,
                 struct sr_registry **reg_r)
{
    struct sr_registry *reg = xcalloc(1, sizeof(*reg));
    struct dirent *de;
    DIR *d = NULL;
    int rc = 0;

    reg->cfg = *cfg;
    reg->sm = sm;
    pthread_mutex_init(&reg->lock, NULL);
    if (cfg->persist) {
        reg->dir = xasprintf("%s/sr", cfg->db_dir);
        rc = files_mkdirs(reg->dir);
        if (rc)
            goto out;
        d = opendir(reg->dir);
        while (d && (de = readdir(d))) {
            size_t n = strlen(de->d_name);
            struct sr_entry *e;

            if (de->d_name[0] == '.' || n < 6 ||
                strcmp(de->d_name + n - 5, ".json") != 0)
                continue;
            e = load_one(reg, de->d_name);
            if (!e)
                continue;
            if (attach_driver(reg, e)) {
                LOG(WARN, "SR '%s' (%s) is unavailable: its driver cannot "
                    "be set up", e->uuid, e->type);
                xo_err_clear();
            }
            e->next = reg->srs;
            reg->srs = e;
        }
    }
out:
    if (d)
        closedir(d);
    if (rc) {
        sr_registry_close(reg);
        reg = NULL;
    }
    *reg_r = reg;
    return rc;
}

void
sr_registry_close(struct sr_registry *reg)
{
    if (!reg)
        return;
    while (reg->srs) {
        struct sr_entry *e = reg->srs;

        reg->srs = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&reg->lock);
    free(reg->dir);
    free(reg);
}

int
sr_add(struct sr_registry *reg, const char *uuid, const char *type,
       const char *device_config_json)
{
    struct sr_entry *e = NULL;
    int rc;

    rc = ids_check_vm(uuid);
    if (rc)
        goto out;
    if (!type || !type_ok(type)) {
        rc = xo_err_internal_code(XO_EINVAL, "bad SR type");
        goto out;
    }
    e = xcalloc(1, sizeof(*e));
    memcpy(e->uuid, uuid, sizeof(e->uuid));
    e->type = xstrdup(type);
    rc = check_device_config(device_config_json, &e->device_config);
    if (rc)
        goto out;
    pthread_mutex_lock(&reg->lock);
    rc = find(reg, uuid) ? xo_err_already_exists("SR", uuid) : 0;
    pthread_mutex_unlock(&reg->lock);
    if (rc)
        goto out;
    rc = resolve(reg, e);
    if (rc)
        goto out;
    if (e->api == SR_API_V3) {
        rc = smapiv3_sr_attach(reg->cfg.script_root, e->driver,
                               e->device_config, reg->cfg.timeout_ms,
                               &e->sr_uri);
        if (rc)
            goto out;
    }
    rc = attach_driver(reg, e);
    if (rc)
        goto out;
    rc = persist(reg, e);
    if (rc) {
        sm_unregister_sr(reg->sm, e->uuid);
        goto out;
    }
    pthread_mutex_lock(&reg->lock);
    e->next = reg->srs;
    reg->srs = e;
    pthread_mutex_unlock(&reg->lock);
    LOG(INFO, "SR '%s' of type '%s' served by %s driver '%s'", uuid, type,
        e->api == SR_API_V1 ? "SMAPIv1" : "SMAPIv3", e->driver);
    e = NULL;
out:
    entry_free(e);
    return rc;
}

int
sr_remove(struct sr_registry *reg, const char *uuid)
{
    struct sr_entry *e, **p;
    char *name;
    int rc;

    rc = ids_check_vm(uuid);
    if (rc)
        return rc;
    pthread_mutex_lock(&reg->lock);
    for (p = &reg->srs; *p && strcasecmp((*p)->uuid, uuid) != 0;
         p = &(*p)->next)
        ;
    e = *p;
    if (!e) {
        rc = xo_err_does_not_exist("SR", uuid);
        goto out;
    }
    if (e->available) {
        rc = sm_unregister_sr(reg->sm, e->uuid);
        if (rc)
            goto out;
    }
    if (reg->dir) {
        name = xasprintf("%s.json", e->uuid);
        rc = files_remove(reg->dir, name);
        free(name);
        if (rc == XO_ENOTFOUND)
            rc = 0;
        if (rc)
            goto out;
    }
    *p = e->next;
    entry_free(e);
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

/* What the SM layer decides for a VDI of this SR (driver version). */
static bool
sr_attach_early(struct sr_registry *reg, const struct sr_entry *e)
{
    struct model_disk d = { MODEL_DISK_VDI, NULL, (char *)e->uuid,
                            (char *)"-" };

    return sm_can_attach_early(reg->sm, &d);
}

char *
sr_list_json(struct sr_registry *reg)
{
    yajl_gen g = json_gen_new();

    pthread_mutex_lock(&reg->lock);
    yajl_gen_array_open(g);
    for (struct sr_entry *e = reg->srs; e; e = e->next) {
        char *one = entry_json(e);
        yajl_val t = NULL;

        if (json_parse(one, strlen(one), &t) == 0) {
            yajl_gen_map_open(g);
            for (size_t i = 0; i < t->u.object.len; i++) {
                json_gen_str(g, t->u.object.keys[i]);
                json_gen_tree(g, t->u.object.values[i]);
            }
            json_gen_str(g, "available");
            json_gen_bool(g, e->available);
            json_gen_str(g, "attach_early");
            json_gen_bool(g, e->available && !e->never_early &&
                             sr_attach_early(reg, e));
            yajl_gen_map_close(g);
        }
        yajl_tree_free(t);
        free(one);
    }
    yajl_gen_array_close(g);
    pthread_mutex_unlock(&reg->lock);
    return json_gen_take(g);
}

int
sr_set_attach_early(struct sr_registry *reg, const char *uuid,
                    const char *policy)
{
    struct sr_entry *e;
    bool never, old;
    int rc;

    rc = ids_check_vm(uuid);
    if (rc)
        return rc;
    if (!policy || (strcmp(policy, "auto") != 0 &&
                    strcmp(policy, "never") != 0)) {
        LOG(ERROR, "bad attach-early policy for SR '%s'", uuid);
        return xo_err_internal_code(XO_EINVAL, "attach-early policy must "
                                    "be 'auto' or 'never'");
    }
    never = strcmp(policy, "never") == 0;
    pthread_mutex_lock(&reg->lock);
    e = find(reg, uuid);
    if (!e) {
        rc = xo_err_does_not_exist("SR", uuid);
        goto out;
    }
    old = e->never_early;
    e->never_early = never;
    rc = persist(reg, e);
    if (rc) {
        e->never_early = old;
        goto out;
    }
    LOG(INFO, "SR '%s': attach-early policy '%s' -> '%s'", e->uuid,
        old ? "never" : "auto", policy);
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

bool
sr_attach_early_allowed(struct sr_registry *reg, const char *sr_uuid)
{
    struct sr_entry *e;
    bool allowed;

    if (!reg || !sr_uuid)
        return true;
    pthread_mutex_lock(&reg->lock);
    e = find(reg, sr_uuid);
    allowed = !(e && e->never_early);
    pthread_mutex_unlock(&reg->lock);
    return allowed;
}
