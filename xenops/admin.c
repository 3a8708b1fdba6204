/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Worked example of a flag change (HOST.set_feature {name:
 * "vbd-plug-unplug-legacy", value: "false"} from uid 0, config dir
 * /etc/xenopsd.conf.d):
 *   1. validate name and value (nothing is touched on error);
 *   2. under the admin lock, write /etc/xenopsd.conf.d/99-xenops-c-flags.conf
 *      holding every flag's new value, e.g.
 *        xenopsd-vbd-plug-unplug-legacy = false
 *      (temp file, fsync, rename, fsync dir);
 *   3. server_set_legacy(false): operations queued from now on run split;
 *      one already queued or running keeps the value it was queued with;
 *   4. log "feature 'vbd-plug-unplug-legacy' changed from 'true' to
 *      'false' by uid 0 (persisted in '...')".
 * If step 2 fails the running value is unchanged, so the file and the
 * daemon never disagree about a change that was reported as done.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yajl/yajl_gen.h>

#include "admin.h"
#include "config.h"
#include "sm/sr.h"
#include "task.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

/* How much of an untrusted name goes into a message. */
#define ADMIN_SHOWN_MAX 64

struct admin_flag {
    const char *name;       /* HOST.get_features / xenopsctl name */
    const char *key;        /* the xenopsd.conf key it persists as */
    bool (*get)(const struct admin_deps *d);
    void (*set)(const struct admin_deps *d, bool value);
};

static bool
admin_get_legacy(const struct admin_deps *d)
{
    return d->get_legacy(d->ctx);
}

static void
admin_set_legacy(const struct admin_deps *d, bool value)
{
    d->set_legacy(d->ctx, value);
}

static const struct admin_flag admin_flags[] = {
    { "vbd-plug-unplug-legacy", "xenopsd-vbd-plug-unplug-legacy",
      admin_get_legacy, admin_set_legacy },
};

#define ADMIN_N_FLAGS (sizeof(admin_flags) / sizeof(admin_flags[0]))

struct admin_migration {
    char vm[IDS_UUID_LEN + 1];
    struct task *task;              /* a reference */
    struct admin_migration *next;   /* newest first */
};

struct admin {
    struct admin_deps deps;
    pthread_mutex_t flags_lock;
    pthread_mutex_t mig_lock;
    struct admin_migration *migs;
    size_t n_migs;
};

static const char *const admin_fragment_header =
    "Feature flags of xenopsd-c, written by the daemon when they are\n"
    "changed at run time (HOST.set_feature, \"xenopsctl flag set\", the\n"
    "xenops-flags XAPI plugin). Rewritten whole on every change: change\n"
    "the flags with those tools rather than by editing this file.";

struct admin *
admin_new(const struct admin_deps *deps)
{
    struct admin *a = xcalloc(1, sizeof(*a));

    a->deps = *deps;
    pthread_mutex_init(&a->flags_lock, NULL);
    pthread_mutex_init(&a->mig_lock, NULL);
    return a;
}

void
admin_free(struct admin *a)
{
    if (!a)
        return;
    while (a->migs) {
        struct admin_migration *m = a->migs;

        a->migs = m->next;
        task_unref(m->task);
        free(m);
    }
    pthread_mutex_destroy(&a->mig_lock);
    pthread_mutex_destroy(&a->flags_lock);
    free(a);
}

/* Copy at most ADMIN_SHOWN_MAX printable characters of s for a message. */
static void
admin_shown(const char *s, char *out, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; s[i] && j + 1 < n && i < ADMIN_SHOWN_MAX; i++)
        out[j++] = isprint((unsigned char)s[i]) ? s[i] : '?';
    out[j] = '\0';
}

static const struct admin_flag *
admin_flag_find(const char *name)
{
    for (size_t i = 0; i < ADMIN_N_FLAGS; i++)
        if (strcmp(admin_flags[i].name, name) == 0 ||
            strcmp(admin_flags[i].key, name) == 0)
            return &admin_flags[i];
    return NULL;
}

static void
admin_gen_features(yajl_gen g, struct admin *a)
{
    yajl_gen_map_open(g);
    for (size_t i = 0; i < ADMIN_N_FLAGS; i++) {
        json_gen_str(g, admin_flags[i].name);
        json_gen_bool(g, admin_flags[i].get(&a->deps));
    }
    yajl_gen_map_close(g);
}

char *
admin_features_json(struct admin *a)
{
    yajl_gen g = json_gen_new();

    admin_gen_features(g, a);
    return json_gen_take(g);
}

/* Persist every flag, with f set to value; called under flags_lock. */
static int
admin_persist_locked(struct admin *a, const struct admin_flag *f,
                     bool value)
{
    struct config_pair pairs[ADMIN_N_FLAGS];

    for (size_t i = 0; i < ADMIN_N_FLAGS; i++) {
        bool v = &admin_flags[i] == f ? value : admin_flags[i].get(&a->deps);

        pairs[i].key = admin_flags[i].key;
        pairs[i].value = v ? "true" : "false";
    }
    return config_write_fragment(a->deps.cfg->config_dir,
                                 ADMIN_FLAGS_FRAGMENT,
                                 admin_fragment_header, pairs,
                                 ADMIN_N_FLAGS);
}

static char *
admin_set_result(const struct admin_flag *f, bool old, bool value,
                 const char *path)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "name");
    json_gen_str(g, f->name);
    json_gen_str(g, "key");
    json_gen_str(g, f->key);
    json_gen_str(g, "old");
    json_gen_bool(g, old);
    json_gen_str(g, "new");
    json_gen_bool(g, value);
    json_gen_str(g, "fragment");
    json_gen_str(g, path);
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

int
admin_set_feature(struct admin *a, const char *name, const char *value,
                  uid_t uid, char **json_r)
{
    char shown[ADMIN_SHOWN_MAX + 1];
    const struct admin_flag *f;
    char *path = NULL;
    bool b, old;
    int rc;

    *json_r = NULL;
    f = name ? admin_flag_find(name) : NULL;
    if (!f) {
        admin_shown(name ? name : "", shown, sizeof(shown));
        LOG(WARN, "uid %u asked to set unknown feature '%s'", (unsigned)uid,
            shown);
        return xo_err_internal_code(XO_EINVAL, "unknown feature '%s' "
                                    "(known: vbd-plug-unplug-legacy)",
                                    shown);
    }
    if (!value || config_parse_bool(value, &b)) {
        LOG(WARN, "uid %u gave feature '%s' a value that is not 'true' or "
            "'false'", (unsigned)uid, f->name);
        return xo_err_internal_code(XO_EINVAL, "value of feature '%s' must "
                                    "be 'true' or 'false'", f->name);
    }
    if (!a->deps.cfg->config_dir) {
        LOG(ERROR, "cannot change feature '%s': no config dir to persist it "
            "in", f->name);
        return xo_err_internal_code(XO_EINVAL, "cannot change feature '%s': "
                                    "no config dir to persist it in (start "
                                    "xenopsd-c with --config FILE or set "
                                    "config-dir)", f->name);
    }
    path = xasprintf("%s/%s", a->deps.cfg->config_dir,
                     ADMIN_FLAGS_FRAGMENT);
    pthread_mutex_lock(&a->flags_lock);
    old = f->get(&a->deps);
    rc = admin_persist_locked(a, f, b);
    if (!rc)
        f->set(&a->deps, b);
    pthread_mutex_unlock(&a->flags_lock);
    if (rc)
        goto out;
    LOG(INFO, "feature '%s' changed from '%s' to '%s' by uid %u (persisted "
        "in '%s')", f->name, old ? "true" : "false", b ? "true" : "false",
        (unsigned)uid, path);
    *json_r = admin_set_result(f, old, b, path);
out:
    free(path);
    return rc;
}

int
admin_sr_set_attach_early(struct admin *a, const char *sr,
                          const char *policy, uid_t uid)
{
    int rc = sr_set_attach_early(a->deps.srs, sr, policy);

    if (!rc)
        LOG(INFO, "SR '%s' attach-early policy set to '%s' by uid %u", sr,
            policy, (unsigned)uid);
    return rc;
}

/* One SR of SR.list, reduced to what HOST.stat reports; adds its uuid to
 * early when its VBDs attach early now. */
static void
admin_gen_sr(yajl_gen g, yajl_val sr, bool legacy, yajl_gen early)
{
    const char *uuid = json_get_str(sr, "uuid");
    const char *type = json_get_str(sr, "type");
    const char *policy = json_get_str(sr, "attach_early_policy");
    yajl_val ae = json_get(sr, "attach_early");
    bool attach_early = ae && YAJL_IS_TRUE(ae);

    if (!uuid)
        return;
    yajl_gen_map_open(g);
    json_gen_str(g, "uuid");
    json_gen_str(g, uuid);
    json_gen_str(g, "type");
    json_gen_str(g, type ? type : "");
    json_gen_str(g, "attach_early_policy");
    json_gen_str(g, policy ? policy : "auto");
    json_gen_str(g, "attach_early");
    json_gen_bool(g, attach_early);
    yajl_gen_map_close(g);
    if (attach_early && !legacy)
        json_gen_str(early, uuid);
}

char *
admin_host_json(struct admin *a)
{
    char *list = sr_list_json(a->deps.srs);
    bool legacy = a->deps.get_legacy(a->deps.ctx);
    yajl_gen g = json_gen_new();
    yajl_gen early = json_gen_new();
    yajl_val srs = NULL;
    char *early_text;

    if (json_parse(list, strlen(list), &srs))
        xo_err_clear();
    yajl_gen_map_open(g);
    json_gen_str(g, "features");
    admin_gen_features(g, a);
    json_gen_str(g, "early_attach");
    json_gen_bool(g, !legacy);
    json_gen_str(g, "srs");
    yajl_gen_array_open(g);
    yajl_gen_array_open(early);
    for (size_t i = 0; i < json_array_len(srs); i++)
        admin_gen_sr(g, json_array_at(srs, i), legacy, early);
    yajl_gen_array_close(g);
    yajl_gen_array_close(early);
    early_text = json_gen_take(early);
    json_gen_str(g, "attach_early_srs");
    json_gen_raw(g, early_text);
    yajl_gen_map_close(g);
    free(early_text);
    yajl_tree_free(srs);
    free(list);
    return json_gen_take(g);
}

void
admin_note_migration(struct admin *a, const char *vm, const char *task_id)
{
    struct admin_migration *m, **p;
    struct task *t;

    if (!ids_is_uuid(vm))
        return;
    t = task_find(a->deps.tasks, task_id);
    if (!t)
        return;
    pthread_mutex_lock(&a->mig_lock);
    for (p = &a->migs; *p && strcasecmp((*p)->vm, vm) != 0; p = &(*p)->next)
        ;
    m = *p;
    if (m) {
        *p = m->next;
        task_unref(m->task);
        a->n_migs--;
    } else {
        m = xcalloc(1, sizeof(*m));
        memcpy(m->vm, vm, sizeof(m->vm));
    }
    m->task = t;
    m->next = a->migs;
    a->migs = m;
    a->n_migs++;
    if (a->n_migs > ADMIN_MIGRATIONS_MAX) {
        for (p = &a->migs; (*p)->next; p = &(*p)->next)
            ;
        task_unref((*p)->task);
        free(*p);
        *p = NULL;
        a->n_migs--;
    }
    pthread_mutex_unlock(&a->mig_lock);
}

/* Task.t -> the VM.migration_stats object. */
static char *
admin_migration_json(const char *vm, const char *task_text)
{
    yajl_gen g = json_gen_new();
    yajl_val t = NULL, state, tag, arg;
    const char *st;

    if (json_parse(task_text, strlen(task_text), &t))
        xo_err_clear();
    state = json_get(t, "state");
    tag = json_array_at(state, 0);
    arg = json_array_at(state, 1);
    st = tag && YAJL_IS_STRING(tag) ? tag->u.string : "Pending";
    yajl_gen_map_open(g);
    json_gen_str(g, "vm");
    json_gen_str(g, vm);
    json_gen_str(g, "task");
    json_gen_str(g, json_get_str(t, "id") ? json_get_str(t, "id") : "");
    json_gen_str(g, "dbg");
    json_gen_str(g, json_get_str(t, "dbg") ? json_get_str(t, "dbg") : "");
    json_gen_str(g, "state");
    json_gen_str(g, st);
    if (strcmp(st, "Completed") == 0) {
        yajl_val result = json_get(arg, "result");

        json_gen_str(g, "duration");
        json_gen_tree(g, json_get(arg, "duration"));
        json_gen_str(g, "result");
        if (result)
            json_gen_tree(g, result);
        else
            json_gen_null(g);
    } else if (strcmp(st, "Failed") == 0) {
        json_gen_str(g, "error");
        json_gen_tree(g, arg);
    } else {
        json_gen_str(g, "progress");
        json_gen_tree(g, arg);
    }
    yajl_gen_map_close(g);
    yajl_tree_free(t);
    return json_gen_take(g);
}

int
admin_migration_stats(struct admin *a, const char *vm, char **json_r)
{
    struct task *t = NULL;
    char *text;
    int rc;

    *json_r = NULL;
    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    pthread_mutex_lock(&a->mig_lock);
    for (struct admin_migration *m = a->migs; m && !t; m = m->next) {
        if (strcasecmp(m->vm, vm) == 0) {
            t = m->task;
            task_ref(t);
        }
    }
    pthread_mutex_unlock(&a->mig_lock);
    if (!t)
        return xo_err_does_not_exist("migration", vm);
    text = task_stat_json(t);
    task_unref(t);
    *json_r = admin_migration_json(vm, text);
    free(text);
    return 0;
}

void
admin_note_migration_cb(void *admin, const char *vm, const char *task_id)
{
    admin_note_migration(admin, vm, task_id);
}
