/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The datapath table. Three lists under one mutex:
 *   SRs       uuid -> driver (+ cached required_api_version verdict)
 *   VDIs      (sr, vdi) -> holders, params, which dp is active, busy flag
 *   datapaths dp -> its VDI, domain, rw, active
 * A VDI entry exists exactly while some datapath holds it attached. Driver
 * calls happen with the mutex released and the VDI marked busy, so other
 * VDIs progress meanwhile and this VDI sees one call at a time.
 *
 * Persistence (sm_open_table): <dir>/datapaths.json, written crash-safely
 * (atomicfile.h) after every change, holds what the drivers MAY hold:
 *   {"version": 1, "datapaths": {"vbd/3/xvda": {"sr": u, "vdi": v,
 *     "domain": "3", "rw": true, "active": false, "params": p}}}
 * An attach or activate is written BEFORE the driver is called (an
 * attach in flight has no "params"; an activate in flight says "active"),
 * a deactivate or detach AFTER it returns. So after a crash at any point
 * the file lists every attach and activation a driver may still hold, and
 * start-up reconciliation can release them (deactivate and detach are
 * idempotent in the drivers). Writes never hold the table mutex: a
 * snapshot is taken under it, numbered, and written under save_lock
 * unless a newer snapshot is on disk already (it includes this one).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_gen.h>

#include "sm/sm.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define SM_TABLE_FILE "datapaths.json"
#define SM_TABLE_VERSION 1
#define SM_TABLE_MAX_BYTES (16u * 1024 * 1024)
#define SM_DP_ID_MAX 128

struct sm_sr {
    char uuid[37];
    const struct sm_driver_ops *ops;
    void *priv;
    int early;              /* -1 not asked yet, 0 no, 1 yes */
    uint64_t stamp;         /* the driver's stamp when early was set */
    bool stamp_ok;          /* stamp is valid */
    int users;              /* calls using it outside the lock */
    struct sm_sr *next;
};

struct sm_vdi {
    struct sm_sr *sr;
    char *vdi;
    int holders;
    char *params;
    char *active_dp;        /* the datapath holding it active, or NULL */
    bool busy;
    struct sm_vdi *next;
};

struct sm_dp {
    char *id;
    struct sm_vdi *vdi;
    char *domain;
    bool rw;
    bool active;
    bool attaching;         /* the driver attach is in flight (no params) */
    bool activating;        /* the driver activate is in flight */
    struct sm_dp *next;
};

struct sm {
    pthread_mutex_t lock;
    pthread_cond_t idle;    /* a VDI stopped being busy */
    struct sm_sr *srs;
    struct sm_vdi *vdis;
    struct sm_dp *dps;
    char *dir;              /* where the table persists; NULL: memory only */
    uint64_t seq;           /* snapshots taken (under lock) */
    pthread_mutex_t save_lock;  /* one writer of the file at a time */
    uint64_t saved_seq;     /* newest snapshot on disk (under save_lock) */
};

int
sm_new(struct sm **sm_r)
{
    struct sm *sm = xcalloc(1, sizeof(*sm));

    pthread_mutex_init(&sm->lock, NULL);
    pthread_mutex_init(&sm->save_lock, NULL);
    pthread_cond_init(&sm->idle, NULL);
    *sm_r = sm;
    return 0;
}

/* Forget every datapath and VDI (no driver calls). */
static void
clear_table(struct sm *sm)
{
    while (sm->dps) {
        struct sm_dp *d = sm->dps;

        sm->dps = d->next;
        free(d->id);
        free(d->domain);
        free(d);
    }
    while (sm->vdis) {
        struct sm_vdi *v = sm->vdis;

        sm->vdis = v->next;
        free(v->vdi);
        free(v->params);
        free(v->active_dp);
        free(v);
    }
}

void
sm_free(struct sm *sm)
{
    if (!sm)
        return;
    clear_table(sm);
    while (sm->srs) {
        struct sm_sr *s = sm->srs;

        sm->srs = s->next;
        if (s->ops->free)
            s->ops->free(s->priv);
        free(s);
    }
    pthread_cond_destroy(&sm->idle);
    pthread_mutex_destroy(&sm->save_lock);
    pthread_mutex_destroy(&sm->lock);
    free(sm->dir);
    free(sm);
}

static struct sm_sr *
find_sr(struct sm *sm, const char *uuid)
{
    for (struct sm_sr *s = sm->srs; s; s = s->next)
        if (strcmp(s->uuid, uuid) == 0)
            return s;
    return NULL;
}

static struct sm_dp *
find_dp(struct sm *sm, const char *id)
{
    for (struct sm_dp *d = sm->dps; d; d = d->next)
        if (strcmp(d->id, id) == 0)
            return d;
    return NULL;
}

int
sm_register_sr(struct sm *sm, const char *sr_uuid,
               const struct sm_driver_ops *ops, void *priv)
{
    struct sm_sr *s;
    int rc = 0;

    pthread_mutex_lock(&sm->lock);
    if (find_sr(sm, sr_uuid)) {
        rc = xo_err_already_exists("SR", sr_uuid);
        goto out;
    }
    s = xcalloc(1, sizeof(*s));
    xstrlcpy(s->uuid, sr_uuid, sizeof(s->uuid));
    s->ops = ops;
    s->priv = priv;
    s->early = -1;
    s->next = sm->srs;
    sm->srs = s;
    LOG(INFO, "registered SR '%s' with driver '%s'", sr_uuid, ops->name);
out:
    pthread_mutex_unlock(&sm->lock);
    return rc;
}

int
sm_unregister_sr(struct sm *sm, const char *sr_uuid)
{
    struct sm_sr *s = NULL, **p;
    int rc = 0;

    pthread_mutex_lock(&sm->lock);
    for (p = &sm->srs; *p; p = &(*p)->next) {
        if (strcmp((*p)->uuid, sr_uuid) == 0) {
            s = *p;
            break;
        }
    }
    if (!s) {
        rc = xo_err_does_not_exist("SR", sr_uuid);
        goto out;
    }
    /* A query or epoch call may be using the driver right now. */
    while (s->users > 0)
        pthread_cond_wait(&sm->idle, &sm->lock);
    for (struct sm_vdi *v = sm->vdis; v; v = v->next) {
        if (v->sr == s) {
            LOG(WARN, "SR '%s' still has attached VDI '%s'", sr_uuid,
                v->vdi);
            rc = xo_err_tag(XO_ECONNECTED, "Device_is_connected");
            goto out;
        }
    }
    *p = s->next;
    if (s->ops->free)
        s->ops->free(s->priv);
    free(s);
    LOG(INFO, "unregistered SR '%s'", sr_uuid);
out:
    pthread_mutex_unlock(&sm->lock);
    return rc;
}

/* "3.0" >= "3.0", "5.0" yes, "1.0" no; anything unparsable is no. */
static bool
version_at_least_3(const char *v)
{
    char *end;
    long major = strtol(v, &end, 10);

    return end != v && (*end == '\0' || *end == '.') && major >= 3;
}

/* The driver's stamp; *ok_r false when it has none or it failed. */
static uint64_t
sr_stamp(const struct sm_sr *s, bool *ok_r)
{
    uint64_t stamp = 0;

    *ok_r = s->ops->stamp && s->ops->stamp(s->priv, &stamp) == 0;
    if (s->ops->stamp && !*ok_r)
        xo_err_clear();
    return stamp;
}

bool
sm_can_attach_early(struct sm *sm, const struct model_disk *disk)
{
    struct sm_sr *s;
    char *version = NULL;
    uint64_t stamp;
    bool early = false, cached, stamp_ok;
    int rc;

    if (disk->kind != MODEL_DISK_VDI)
        return false;
    pthread_mutex_lock(&sm->lock);
    s = find_sr(sm, disk->sr);
    if (s)
        s->users++;
    pthread_mutex_unlock(&sm->lock);
    if (!s)
        return false;
    /* s->users keeps the SR registered while we use it unlocked; two
     * racing queries both store a verdict for the stamp they saw. */
    stamp = sr_stamp(s, &stamp_ok);
    pthread_mutex_lock(&sm->lock);
    cached = s->early >= 0 &&
             (!s->ops->stamp || (stamp_ok && s->stamp_ok &&
                                 s->stamp == stamp));
    early = s->early == 1;
    pthread_mutex_unlock(&sm->lock);
    if (cached)
        goto out;
    rc = s->ops->query(s->priv, &version);
    if (rc) {
        LOG(WARN, "query of SR '%s' failed; no early attach", disk->sr);
        xo_err_clear();
        early = false;
        goto out;
    }
    early = version_at_least_3(version);
    pthread_mutex_lock(&sm->lock);
    s->early = early;
    s->stamp = stamp;
    s->stamp_ok = stamp_ok;
    pthread_mutex_unlock(&sm->lock);
    LOG(DEBUG, "SR '%s' required_api_version '%s': early attach %s",
        disk->sr, version, early ? "yes" : "no");
    free(version);
out:
    pthread_mutex_lock(&sm->lock);
    s->users--;
    pthread_cond_broadcast(&sm->idle);
    pthread_mutex_unlock(&sm->lock);
    return early;
}

static void
wait_idle(struct sm *sm, struct sm_vdi *v)
{
    while (v->busy)
        pthread_cond_wait(&sm->idle, &sm->lock);
}

static void
set_idle(struct sm *sm, struct sm_vdi *v)
{
    v->busy = false;
    pthread_cond_broadcast(&sm->idle);
}

static void
unlink_vdi(struct sm *sm, struct sm_vdi *v)
{
    for (struct sm_vdi **p = &sm->vdis; *p; p = &(*p)->next) {
        if (*p == v) {
            *p = v->next;
            break;
        }
    }
    free(v->vdi);
    free(v->params);
    free(v->active_dp);
    free(v);
}

static void
unlink_dp(struct sm *sm, struct sm_dp *d)
{
    for (struct sm_dp **p = &sm->dps; *p; p = &(*p)->next) {
        if (*p == d) {
            *p = d->next;
            break;
        }
    }
    free(d->id);
    free(d->domain);
    free(d);
}

static int
no_driver(const char *sr)
{
    const char *p[] = { sr };

    LOG(ERROR, "no storage driver registered for SR '%s'", sr);
    return xo_err_storage("SR_NOT_ATTACHED", p, 1);
}

/* The table as JSON: {"<dp>": {"sr", "vdi", "domain", "rw", "active",
 * "params"}}, with what the drivers may hold (see the top of the file).
 * Called with the lock held. */
static void
gen_table_locked(struct sm *sm, yajl_gen g)
{
    yajl_gen_map_open(g);
    for (struct sm_dp *d = sm->dps; d; d = d->next) {
        json_gen_str(g, d->id);
        yajl_gen_map_open(g);
        json_gen_str(g, "sr");
        json_gen_str(g, d->vdi->sr->uuid);
        json_gen_str(g, "vdi");
        json_gen_str(g, d->vdi->vdi);
        json_gen_str(g, "domain");
        json_gen_str(g, d->domain);
        json_gen_str(g, "rw");
        json_gen_bool(g, d->rw);
        json_gen_str(g, "active");
        json_gen_bool(g, d->active || d->activating);
        if (!d->attaching && d->vdi->params) {
            json_gen_str(g, "params");
            json_gen_str(g, d->vdi->params);
        }
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
}

/*
 * Write the table as it is now. Called without the lock. Returns 0 once a
 * file holding this state (or a newer one) is on disk.
 */
static int
save(struct sm *sm)
{
    yajl_gen g;
    char *text;
    uint64_t seq;
    int rc = 0;

    if (!sm->dir)
        return 0;
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "version");
    json_gen_int(g, SM_TABLE_VERSION);
    json_gen_str(g, "datapaths");
    pthread_mutex_lock(&sm->lock);
    gen_table_locked(sm, g);
    seq = ++sm->seq;
    pthread_mutex_unlock(&sm->lock);
    yajl_gen_map_close(g);
    text = json_gen_take(g);
    pthread_mutex_lock(&sm->save_lock);
    if (seq > sm->saved_seq) {
        rc = files_write(sm->dir, SM_TABLE_FILE, text, strlen(text));
        if (!rc)
            sm->saved_seq = seq;
    }
    pthread_mutex_unlock(&sm->save_lock);
    free(text);
    return rc;
}

/*
 * Save after a change the driver has already made (a release) or that
 * needs no driver: a failure is logged and otherwise ignored, because the
 * file then still lists more than the drivers hold, which reconciliation
 * handles; failing the call would not undo the driver's work.
 */
static void
save_lagging(struct sm *sm)
{
    if (save(sm)) {
        LOG(WARN, "datapath table file in '%s' lags behind; it is "
            "rewritten at the next change", sm->dir);
        xo_err_clear();
    }
}

/* Undo a successful attach whose claim could not be written (failure
 * rc, whose detail is kept). */
static void
release_claim(struct sm *sm, const char *dp, int rc, char **params_r)
{
    struct xo_err_saved saved;

    xo_err_preserve(rc, &saved);
    if (sm_dp_destroy(sm, dp))
        xo_err_clear();
    xo_err_restore(&saved);
    free(*params_r);
    *params_r = NULL;
}

int
sm_attach(struct sm *sm, const char *dp, const struct model_disk *disk,
          const char *domain, bool rw, char **params_r)
{
    struct sm_sr *s;
    struct sm_vdi *v = NULL;
    struct sm_dp *d;
    char *params = NULL;
    bool changed = false, shared = false;
    int rc = 0;

    *params_r = NULL;
    if (disk->kind == MODEL_DISK_LOCAL) {
        *params_r = xstrdup(disk->path);
        return 0;
    }
    if (disk->kind != MODEL_DISK_VDI)
        return xo_err_internal_code(XO_EINVAL, "cannot attach an empty "
                                    "drive");
    pthread_mutex_lock(&sm->lock);
    d = find_dp(sm, dp);
    if (d) {
        if (d->vdi->sr != find_sr(sm, disk->sr) ||
            strcmp(d->vdi->vdi, disk->vdi) != 0) {
            LOG(ERROR, "datapath '%s' already holds another VDI", dp);
            rc = xo_err_already_exists("datapath", dp);
            goto out;
        }
        if (d->attaching || !d->vdi->params) {
            /* Only a table loaded after a crash has such an entry, and
             * reconciliation destroys it before any operation runs. */
            LOG(ERROR, "datapath '%s' has an unfinished attach", dp);
            rc = xo_err_internal("datapath %s has an unfinished attach",
                                 dp);
            goto out;
        }
        *params_r = xstrdup(d->vdi->params);
        goto out;
    }
    s = find_sr(sm, disk->sr);
    if (!s) {
        rc = no_driver(disk->sr);
        goto out;
    }
    for (v = sm->vdis; v; v = v->next)
        if (v->sr == s && strcmp(v->vdi, disk->vdi) == 0)
            break;
    if (!v) {
        v = xcalloc(1, sizeof(*v));
        v->sr = s;
        v->vdi = xstrdup(disk->vdi);
        v->next = sm->vdis;
        sm->vdis = v;
    }
    /* Hold the entry while the mutex is released below. */
    v->holders++;
    wait_idle(sm, v);
    d = xcalloc(1, sizeof(*d));
    d->id = xstrdup(dp);
    d->vdi = v;
    d->domain = xstrdup(domain);
    d->rw = rw;
    d->attaching = !v->params;
    d->next = sm->dps;
    sm->dps = d;
    changed = true;
    shared = !d->attaching;
    if (d->attaching) {
        v->busy = true;
        pthread_mutex_unlock(&sm->lock);
        /* The intent is on disk before the driver acts, so a crash
         * during the call leaves an entry that reconciliation detaches. */
        rc = save(sm);
        if (!rc)
            rc = s->ops->attach(s->priv, dp, s->uuid, disk->vdi, domain, rw,
                                &params);
        pthread_mutex_lock(&sm->lock);
        set_idle(sm, v);
        if (rc) {
            unlink_dp(sm, d);
            if (--v->holders == 0)
                unlink_vdi(sm, v);
            goto out;
        }
        v->params = params;
        params = NULL;
        d->attaching = false;
    }
    *params_r = xstrdup(v->params);
out:
    pthread_mutex_unlock(&sm->lock);
    if (shared) {
        /* No driver call, but the claim must be on disk before the caller
         * records this datapath for its VBD: a table without it would let
         * reconciliation detach the VDI with the other holder's
         * datapath while this VBD still uses it. */
        rc = save(sm);
        if (rc)
            release_claim(sm, dp, rc, params_r);
    } else if (changed) {
        save_lagging(sm);
    }
    free(params);
    return rc;
}

int
sm_activate(struct sm *sm, const char *dp)
{
    struct sm_dp *d;
    struct sm_vdi *v;
    bool changed = false;
    int rc = 0;

    pthread_mutex_lock(&sm->lock);
    d = find_dp(sm, dp);
    if (!d || d->attaching) {
        LOG(ERROR, "activate of datapath '%s' that is not attached", dp);
        rc = xo_err_internal_code(XO_EINVAL, "datapath '%s' is not "
                                  "attached", dp);
        goto out;
    }
    v = d->vdi;
    wait_idle(sm, v);
    /* d cannot vanish while we waited: only its owner's atoms touch it,
     * and they are serialised by the per-VM queue. */
    if (d->active)
        goto out;
    if (v->active_dp) {
        const char *p[] = { "", "VDI is active for another datapath",
                            v->active_dp };

        LOG(ERROR, "VDI '%s' is already active for '%s'; refusing '%s'",
            v->vdi, v->active_dp, dp);
        rc = xo_err_storage("VDI_IN_USE", p, 3);
        goto out;
    }
    v->busy = true;
    d->activating = true;
    pthread_mutex_unlock(&sm->lock);
    /* As for attach: the activation is on disk before the driver acts. */
    rc = save(sm);
    if (!rc)
        rc = v->sr->ops->activate(v->sr->priv, dp, v->sr->uuid, v->vdi,
                                  d->domain);
    pthread_mutex_lock(&sm->lock);
    set_idle(sm, v);
    d->activating = false;
    if (rc) {
        changed = true;
        goto out;
    }
    d->active = true;
    v->active_dp = xstrdup(dp);
out:
    pthread_mutex_unlock(&sm->lock);
    if (changed)
        save_lagging(sm);
    return rc;
}

/* Called with the lock held; returns with it held. *changed_r is set
 * when the table changed. */
static int
deactivate_locked(struct sm *sm, struct sm_dp *d, bool *changed_r)
{
    struct sm_vdi *v = d->vdi;
    int rc;

    wait_idle(sm, v);
    if (!d->active)
        return 0;
    v->busy = true;
    pthread_mutex_unlock(&sm->lock);
    rc = v->sr->ops->deactivate(v->sr->priv, d->id, v->sr->uuid, v->vdi,
                                d->domain);
    pthread_mutex_lock(&sm->lock);
    set_idle(sm, v);
    if (rc)
        return rc;
    d->active = false;
    free(v->active_dp);
    v->active_dp = NULL;
    *changed_r = true;
    return 0;
}

int
sm_deactivate(struct sm *sm, const char *dp)
{
    struct sm_dp *d;
    bool changed = false;
    int rc = 0;

    pthread_mutex_lock(&sm->lock);
    d = find_dp(sm, dp);
    if (d)
        rc = deactivate_locked(sm, d, &changed);
    pthread_mutex_unlock(&sm->lock);
    if (changed)
        save_lagging(sm);
    return rc;
}

int
sm_dp_destroy(struct sm *sm, const char *dp)
{
    struct sm_dp *d;
    struct sm_vdi *v;
    bool changed = false;
    int rc = 0;

    pthread_mutex_lock(&sm->lock);
    d = find_dp(sm, dp);
    if (!d)
        goto out;
    rc = deactivate_locked(sm, d, &changed);
    if (rc)
        goto out;
    v = d->vdi;
    if (v->holders > 1) {
        /* Another datapath still needs the VDI on this host: only this
         * datapath's claim goes. */
        v->holders--;
        unlink_dp(sm, d);
        changed = true;
        goto out;
    }
    wait_idle(sm, v);
    v->busy = true;
    pthread_mutex_unlock(&sm->lock);
    rc = v->sr->ops->detach(v->sr->priv, dp, v->sr->uuid, v->vdi,
                            d->domain);
    pthread_mutex_lock(&sm->lock);
    set_idle(sm, v);
    if (rc)
        goto out;
    /* An attach of another datapath may be waiting for this VDI (it holds
     * the entry): without params it attaches again instead of using the
     * device just detached. */
    free(v->params);
    v->params = NULL;
    unlink_dp(sm, d);
    if (--v->holders == 0)
        unlink_vdi(sm, v);
    changed = true;
out:
    pthread_mutex_unlock(&sm->lock);
    if (changed)
        save_lagging(sm);
    return rc;
}

static int
epoch(struct sm *sm, const struct model_disk *disk, const char *domain,
      bool begin, bool persistent)
{
    struct sm_sr *s;
    int rc = 0;

    if (disk->kind != MODEL_DISK_VDI)
        return 0;

    pthread_mutex_lock(&sm->lock);
    s = find_sr(sm, disk->sr);
    if (s)
        s->users++;
    pthread_mutex_unlock(&sm->lock);
    if (!s)
        return no_driver(disk->sr);
    if (begin && s->ops->epoch_begin)
        rc = s->ops->epoch_begin(s->priv, s->uuid, disk->vdi, domain,
                                 persistent);
    else if (!begin && s->ops->epoch_end)
        rc = s->ops->epoch_end(s->priv, s->uuid, disk->vdi, domain);
    pthread_mutex_lock(&sm->lock);
    s->users--;
    pthread_cond_broadcast(&sm->idle);
    pthread_mutex_unlock(&sm->lock);
    return rc;
}

int
sm_epoch_begin(struct sm *sm, const struct model_disk *disk,
               const char *domain, bool persistent)
{
    return epoch(sm, disk, domain, true, persistent);
}

int
sm_epoch_end(struct sm *sm, const struct model_disk *disk,
             const char *domain)
{
    return epoch(sm, disk, domain, false, false);
}

void
sm_dp_state(struct sm *sm, const char *dp, bool *attached_r, bool *active_r)
{
    struct sm_dp *d;

    pthread_mutex_lock(&sm->lock);
    d = find_dp(sm, dp);
    *attached_r = d && !d->attaching;
    *active_r = d && d->active;
    pthread_mutex_unlock(&sm->lock);
}

char *
sm_dump_json(struct sm *sm)
{
    yajl_gen g = json_gen_new();

    pthread_mutex_lock(&sm->lock);
    gen_table_locked(sm, g);
    pthread_mutex_unlock(&sm->lock);
    return json_gen_take(g);
}

int
sm_dp_list(struct sm *sm, char ***ids_r, size_t *n_r)
{
    char **ids = NULL;
    size_t n = 0;

    pthread_mutex_lock(&sm->lock);
    for (struct sm_dp *d = sm->dps; d; d = d->next)
        n++;
    ids = xcalloc(n + 1, sizeof(*ids));
    n = 0;
    for (struct sm_dp *d = sm->dps; d; d = d->next)
        ids[n++] = xstrdup(d->id);
    pthread_mutex_unlock(&sm->lock);
    *ids_r = ids;
    *n_r = n;
    return 0;
}

void
sm_dp_list_free(char **ids, size_t n)
{
    if (!ids)
        return;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* ---- loading the persisted table ---- */

static int
bad_table(const char *dir, const char *why, const char *dp)
{
    LOG(ERROR, "datapath table '%s/%s' is malformed (%s%s%s); refusing to "
        "guess what the drivers hold: repair or move it away", dir,
        SM_TABLE_FILE, why, dp ? " at " : "", dp ? dp : "");
    return xo_err_internal_code(XO_EINVAL, "datapath table %s/%s is "
                                "malformed: %s", dir, SM_TABLE_FILE, why);
}

/* Add one persisted datapath e (named id) to the table. Called with the
 * lock held. A datapath of an SR without a driver now is dropped, loudly:
 * nothing could release it. */
static int
load_dp_locked(struct sm *sm, const char *dir, const char *id, yajl_val e)
{
    const char *sr = json_get_str(e, "sr");
    const char *vdi = json_get_str(e, "vdi");
    const char *domain = json_get_str(e, "domain");
    const char *params = json_get_str(e, "params");
    yajl_val pv = json_get(e, "params");
    struct sm_sr *s;
    struct sm_vdi *v;
    struct sm_dp *d;
    bool rw, active;

    if (!YAJL_IS_OBJECT(e) || !id[0] || strlen(id) > SM_DP_ID_MAX ||
        !sr || !ids_is_uuid(sr) || !vdi || !vdi[0] || !domain ||
        (pv && !params) || json_get_bool(e, "rw", false, &rw) ||
        json_get_bool(e, "active", false, &active)) {
        xo_err_clear();
        return bad_table(dir, "bad datapath entry", id);
    }
    if (find_dp(sm, id))
        return bad_table(dir, "datapath listed twice", id);
    s = find_sr(sm, sr);
    if (!s) {
        LOG(ERROR, "datapath '%s' holds VDI '%s' of SR '%s', which has no "
            "driver now: forgetting it (release it by hand)", id, vdi, sr);
        return 0;
    }
    for (v = sm->vdis; v; v = v->next)
        if (v->sr == s && strcmp(v->vdi, vdi) == 0)
            break;
    if (!v) {
        v = xcalloc(1, sizeof(*v));
        v->sr = s;
        v->vdi = xstrdup(vdi);
        v->next = sm->vdis;
        sm->vdis = v;
    }
    if (active && v->active_dp)
        return bad_table(dir, "VDI active for two datapaths", id);
    d = xcalloc(1, sizeof(*d));
    d->id = xstrdup(id);
    d->vdi = v;
    d->domain = xstrdup(domain);
    d->rw = rw;
    d->active = active;
    /* No params: the attach was in flight when the daemon stopped. */
    d->attaching = !params;
    d->next = sm->dps;
    sm->dps = d;
    v->holders++;
    if (params && !v->params)
        v->params = xstrdup(params);
    if (active)
        v->active_dp = xstrdup(id);
    return 0;
}

int
sm_open_table(struct sm *sm, const char *dir, bool persist)
{
    char *text = NULL;
    yajl_val t = NULL, dps;
    int64_t version;
    int rc = 0;

    if (!persist)
        return 0;
    rc = files_mkdirs(dir);
    if (rc)
        return rc;
    rc = files_read(dir, SM_TABLE_FILE, SM_TABLE_MAX_BYTES, &text,
                         NULL);
    if (rc == XO_ENOTFOUND) {
        xo_err_clear();
        rc = 0;
        goto done;
    }
    if (rc)
        goto out;
    if (json_parse(text, strlen(text), &t)) {
        xo_err_clear();
        rc = bad_table(dir, "not JSON", NULL);
        goto out;
    }
    if (json_get_int64(t, "version", -1, &version) ||
        version != SM_TABLE_VERSION) {
        xo_err_clear();
        rc = bad_table(dir, "unknown version", NULL);
        goto out;
    }
    dps = json_get(t, "datapaths");
    if (!YAJL_IS_OBJECT(dps)) {
        rc = bad_table(dir, "no datapaths object", NULL);
        goto out;
    }
    pthread_mutex_lock(&sm->lock);
    /* Backwards: entries are prepended, so the table keeps its order. */
    for (size_t i = dps->u.object.len; !rc && i > 0; i--)
        rc = load_dp_locked(sm, dir, dps->u.object.keys[i - 1],
                            dps->u.object.values[i - 1]);
    /* Bad input changes nothing: no half-loaded table. */
    if (rc)
        clear_table(sm);
    pthread_mutex_unlock(&sm->lock);
    if (rc)
        goto out;
    LOG(INFO, "loaded %zu datapath(s) from '%s/%s'", dps->u.object.len,
        dir, SM_TABLE_FILE);
done:
    sm->dir = xstrdup(dir);
out:
    yajl_tree_free(t);
    free(text);
    return rc;
}
