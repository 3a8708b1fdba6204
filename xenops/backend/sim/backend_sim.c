/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Design: every public operation validates its ids, takes the table lock,
 * and runs a *_locked helper with one exit, so the lock is released in one
 * place. Changes to the xstree that belong together (a domain's records, a
 * device's frontend and backend, a rename) are one xstree transaction:
 * all or nothing. Lock order: table, then xstree.
 *
 * Save and restore do fd I/O without the table lock: they take a
 * reference on the domain record, so a destroy meanwhile only unlinks it and
 * the last reference frees the guest.
 *
 * The memory of a domain is min(VM memory, cap) of real pages: enough to
 * make migration copy something that changes, without needing the VM's
 * real size.
 */

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend/sim/backend_sim.h"
#include "backend/sim/backend_sim_priv.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

static const struct backend_ops sim_ops;

/* The domain's records under /vm/<uuid>; the rest (devices) stays. */
static const char *const sim_vm_keys[] = {
    "uuid", "memory", "vcpus", "domains", "final-uuid",
};

static void
sim_path(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Paths are built from validated ids, so they always fit. */
static void
sim_path(char *buf, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, SIM_PATH_MAX, fmt, ap);
    va_end(ap);
}

static double
sim_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the domain table (lock held) ---- */

static struct sim_dom *
sim_find(struct sim *s, const char *vm)
{
    for (size_t i = 0; i < s->n_doms; i++)
        if (strcmp(s->doms[i]->vm, vm) == 0)
            return s->doms[i];
    return NULL;
}

static int
sim_find_err(struct sim *s, const char *vm, struct sim_dom **d_r)
{
    *d_r = sim_find(s, vm);
    if (*d_r)
        return 0;
    LOGVM(WARN, vm, "no domain");
    return xo_err_does_not_exist("domain", vm);
}

static void
sim_unlink(struct sim *s, struct sim_dom *d)
{
    for (size_t i = 0; i < s->n_doms; i++) {
        if (s->doms[i] == d) {
            s->doms[i] = s->doms[--s->n_doms];
            return;
        }
    }
}

/* Drop a reference; returns d when the caller must free it (after
 * unlocking: freeing joins the guest's thread). */
static struct sim_dom *
sim_unref(struct sim_dom *d)
{
    return --d->refs == 0 ? d : NULL;
}

static void
sim_dom_free(struct sim_dom *d)
{
    if (!d)
        return;
    sim_guest_free(d->guest);
    free(d);
}

static int
sim_require_built(const struct sim_dom *d)
{
    if (d->built)
        return 0;
    LOGVM(WARN, d->vm, "domain not built");
    return xo_err_tag(XO_ENOTBUILT, "Domain_not_built");
}

/* ---- VM operations ---- */

/* The records of a new domain, as xenopsd's Domain.make writes them. */
static void
sim_create_records(struct xstree_txn *x, const struct sim_dom *d,
                   const char *final_id)
{
    char p[SIM_PATH_MAX], v[SIM_PATH_MAX];

    sim_path(p, "/vm/%s/uuid", d->vm);
    xstree_txn_write(x, p, d->vm);
    sim_path(p, "/vm/%s/memory", d->vm);
    sim_path(v, "%lld", (long long)d->memory_bytes);
    xstree_txn_write(x, p, v);
    sim_path(p, "/vm/%s/vcpus", d->vm);
    sim_path(v, "%d", d->vcpus);
    xstree_txn_write(x, p, v);
    sim_path(p, "/vm/%s/domains/%d", d->vm, d->domid);
    sim_path(v, "/local/domain/%d", d->domid);
    xstree_txn_write(x, p, v);
    if (final_id) {
        sim_path(p, "/vm/%s/final-uuid", d->vm);
        xstree_txn_write(x, p, final_id);
    }
    sim_path(p, "/local/domain/%d/vm", d->domid);
    sim_path(v, "/vm/%s", d->vm);
    xstree_txn_write(x, p, v);
    sim_path(p, "/local/domain/%d/name", d->domid);
    xstree_txn_write(x, p, d->vm);
    sim_path(p, "/local/domain/%d/domid", d->domid);
    sim_path(v, "%d", d->domid);
    xstree_txn_write(x, p, v);
    sim_path(p, "/local/domain/%d/memory/target", d->domid);
    sim_path(v, "%lld", (long long)(d->memory_bytes / 1024));
    xstree_txn_write(x, p, v);
}

static int
sim_create_locked(struct sim *s, const char *vm,
                  const struct backend_vm_config *cfg,
                  struct sim_guest **g, struct xstree_txn *x)
{
    struct sim_dom *d = NULL;
    int rc = 0;

    if (sim_find(s, vm)) {
        LOGVM(WARN, vm, "a domain exists already");
        rc = xo_err_already_exists("domain", vm);
        goto out;
    }
    d = xcalloc(1, sizeof(*d));
    memcpy(d->vm, vm, IDS_UUID_LEN + 1);
    d->domid = s->next_domid++;
    d->paused = true;
    /* Like xenopsd: a domain that fails half-way is powered off by
     * check_state until the creator clears the request. */
    xstrlcpy(d->action_request, "poweroff", sizeof(d->action_request));
    d->memory_bytes = cfg->memory_bytes;
    d->memory_target = cfg->memory_bytes;
    d->vcpus = cfg->vcpus;
    d->hvm = cfg->hvm;
    d->last_start_time = sim_now();
    d->refs = 1;
    sim_create_records(x, d, cfg->final_id);
    rc = xstree_txn_commit(s->xs, x);
    if (rc)
        goto out;

    if (s->n_doms == s->cap_doms) {
        s->cap_doms = s->cap_doms ? 2 * s->cap_doms : 8;
        s->doms = xrealloc(s->doms, s->cap_doms * sizeof(*s->doms));
    }
    d->guest = *g;
    *g = NULL;
    s->doms[s->n_doms++] = d;
    LOGVM(INFO, vm, "created domain %d", d->domid);
    d = NULL;
out:
    free(d);
    return rc;
}

static int
sim_vm_create(struct backend *b, const char *vm,
              const struct backend_vm_config *cfg)
{
    struct sim *s = b->priv;
    struct sim_guest *g = NULL;
    struct xstree_txn *x = NULL;
    int64_t bytes;
    int rc;

    rc = ids_check_vm(vm);
    if (!rc && cfg->final_id)
        rc = ids_check_vm(cfg->final_id);
    if (rc)
        goto out;
    if (cfg->memory_bytes <= 0 || cfg->vcpus < 0) {
        LOGVM(WARN, vm, "invalid domain config: memory %lld, vcpus %d",
              (long long)cfg->memory_bytes, cfg->vcpus);
        rc = xo_err_internal_code(XO_EINVAL, "invalid domain config: "
                                  "memory %lld, vcpus %d",
                                  (long long)cfg->memory_bytes, cfg->vcpus);
        goto out;
    }
    bytes = cfg->memory_bytes < s->cfg.memory_cap_bytes
                ? cfg->memory_bytes : s->cfg.memory_cap_bytes;
    /* Map the memory before taking the lock: it may take a while. */
    rc = sim_guest_new((uint64_t)bytes, (uint64_t)s->cfg.dirty_pages_per_sec,
                       (unsigned)s->cfg.heartbeat_ms, &g);
    if (rc)
        goto out;
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_create_locked(s, vm, cfg, &g, x);
    pthread_mutex_unlock(&s->lock);
out:
    xstree_txn_free(x);
    sim_guest_free(g);
    return rc;
}

static int
sim_vm_build(struct backend *b, const char *vm, bool force)
{
    struct sim *s = b->priv;
    struct sim_dom *d;
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (!rc)
        d->built = true;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_vm_set_paused(struct backend *b, const char *vm, bool paused)
{
    struct sim *s = b->priv;
    struct sim_dom *d;
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (!rc)
        rc = sim_require_built(d);
    if (!rc && paused) {
        /* Short: the guest parks as soon as its current tick ends. */
        sim_guest_pause(d->guest);
    } else if (!rc) {
        sim_guest_unpause(d->guest);
        /* A suspended domain that is unpaused again (a cancelled
         * migration) is simply running. */
        d->suspended = false;
    }
    if (!rc)
        d->paused = paused;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_vm_pause(struct backend *b, const char *vm)
{
    return sim_vm_set_paused(b, vm, true);
}

static int
sim_vm_unpause(struct backend *b, const char *vm)
{
    return sim_vm_set_paused(b, vm, false);
}

/* Remove the domain's records; device active flags stay (their atoms own
 * them), and /vm/<uuid> goes only when nothing else is left in it. */
static int
sim_destroy_locked(struct sim *s, struct sim_dom *d, struct xstree_txn *x)
{
    char p[SIM_PATH_MAX];
    char **left = NULL;
    size_t n_left = 0;
    int rc;

    sim_path(p, "/local/domain/%d", d->domid);
    xstree_txn_rm(x, p);
    sim_path(p, "/local/domain/0/backend/vbd/%d", d->domid);
    xstree_txn_rm(x, p);
    sim_path(p, "/local/domain/0/backend/vif/%d", d->domid);
    xstree_txn_rm(x, p);
    for (size_t i = 0; i < sizeof(sim_vm_keys) / sizeof(*sim_vm_keys); i++) {
        sim_path(p, "/vm/%s/%s", d->vm, sim_vm_keys[i]);
        xstree_txn_rm(x, p);
    }
    rc = xstree_txn_commit(s->xs, x);
    if (rc)
        goto out;
    sim_path(p, "/vm/%s", d->vm);
    if (xstree_directory(s->xs, p, &left, &n_left) == 0 && n_left == 0)
        xstree_rm(s->xs, p);
    xo_err_clear();
    sim_unlink(s, d);
    LOGVM(INFO, d->vm, "destroyed domain %d", d->domid);
out:
    xstree_strv_free(left);
    return rc;
}

static int
sim_vm_destroy(struct backend *b, const char *vm)
{
    struct sim *s = b->priv;
    struct sim_dom *d, *dead = NULL;
    struct xstree_txn *x = NULL;
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    d = sim_find(s, vm);
    if (d) {
        rc = sim_destroy_locked(s, d, x);
        if (!rc)
            dead = sim_unref(d);
    }
    pthread_mutex_unlock(&s->lock);
    sim_dom_free(dead);
    xstree_txn_free(x);
    return rc;
}

static int
sim_rename_locked(struct sim *s, const char *old_id, const char *new_id,
                  struct xstree_txn *x)
{
    struct sim_dom *d = sim_find(s, old_id);
    char p[SIM_PATH_MAX], q[SIM_PATH_MAX];
    char *final = NULL;
    int rc = 0;

    if (sim_find(s, new_id)) {
        LOGVM(WARN, old_id, "cannot rename to '%s': it has a domain",
              new_id);
        rc = xo_err_already_exists("domain", new_id);
        goto out;
    }
    sim_path(p, "/vm/%s", old_id);
    sim_path(q, "/vm/%s", new_id);
    xstree_txn_move(x, p, q, true);
    sim_path(p, "/xapi/%s", old_id);
    sim_path(q, "/xapi/%s", new_id);
    xstree_txn_move(x, p, q, true);
    if (d) {
        sim_path(p, "/vm/%s/uuid", new_id);
        xstree_txn_write(x, p, new_id);
        sim_path(p, "/local/domain/%d/vm", d->domid);
        sim_path(q, "/vm/%s", new_id);
        xstree_txn_write(x, p, q);
        sim_path(p, "/local/domain/%d/name", d->domid);
        xstree_txn_write(x, p, new_id);
        /* The domain has reached its final id (xenopsd's Post_migration
         * removes final-uuid). */
        sim_path(p, "/vm/%s/final-uuid", old_id);
        if (xstree_read(s->xs, p, &final) == 0 &&
            strcmp(final, new_id) == 0) {
            sim_path(p, "/vm/%s/final-uuid", new_id);
            xstree_txn_rm(x, p);
        }
        xo_err_clear();
    }
    rc = xstree_txn_commit(s->xs, x);
    if (rc)
        goto out;
    if (d) {
        memcpy(d->vm, new_id, IDS_UUID_LEN + 1);
        LOGVM(INFO, old_id, "renamed domain %d to '%s'", d->domid, new_id);
    }
out:
    free(final);
    return rc;
}

static int
sim_vm_rename(struct backend *b, const char *old_id, const char *new_id)
{
    struct sim *s = b->priv;
    struct xstree_txn *x = NULL;
    int rc;

    rc = ids_check_vm(old_id);
    if (!rc)
        rc = ids_check_vm(new_id);
    if (rc)
        return rc;
    if (strcmp(old_id, new_id) == 0) {
        LOGVM(WARN, old_id, "cannot rename a VM to itself");
        return xo_err_internal_code(XO_EINVAL, "cannot rename VM '%s' to "
                                    "itself", old_id);
    }
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_rename_locked(s, old_id, new_id, x);
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

/*
 * Take a reference on vm's domain for fd I/O (lock held). save: pause it
 * first. restore: it must be paused.
 */
static int
sim_io_begin_locked(struct sim *s, const char *vm, bool save,
                    struct sim_dom **d_r)
{
    struct sim_dom *d;
    int rc;

    rc = sim_find_err(s, vm, &d);
    if (rc)
        return rc;
    if (save) {
        sim_guest_pause(d->guest);
        d->paused = true;
    } else if (!d->paused) {
        LOGVM(WARN, vm, "cannot restore into a running domain");
        return xo_err_bad_power_state("Running", "Paused");
    }
    d->refs++;
    *d_r = d;
    return 0;
}

static int
sim_vm_io(struct sim *s, const char *vm, bool save, int fd,
          const atomic_bool *cancel)
{
    struct sim_dom *d = NULL, *dead = NULL;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = sim_io_begin_locked(s, vm, save, &d);
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return rc;

    rc = save ? sim_guest_save(d->guest, fd, cancel)
              : sim_guest_restore(d->guest, fd, cancel);

    pthread_mutex_lock(&s->lock);
    if (!rc && save)
        d->suspended = true;
    /* The image replaces building: the domain can be unpaused now. */
    if (!rc && !save)
        d->built = true;
    dead = sim_unref(d);
    pthread_mutex_unlock(&s->lock);
    sim_dom_free(dead);
    if (!rc)
        LOGVM(INFO, vm, "%s guest memory image",
              save ? "saved" : "restored");
    return rc;
}

static int
sim_vm_save(struct backend *b, const char *vm, int fd, unsigned flags,
            const atomic_bool *cancel)
{
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    if (flags & ~(unsigned)BACKEND_SAVE_LIVE) {
        LOGVM(WARN, vm, "unknown save flags 0x%x", flags);
        return xo_err_internal_code(XO_EINVAL, "unknown save flags 0x%x",
                                    flags);
    }
    return sim_vm_io(b->priv, vm, true, fd, cancel);
}

static int
sim_vm_restore(struct backend *b, const char *vm, int fd,
               const atomic_bool *cancel)
{
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    return sim_vm_io(b->priv, vm, false, fd, cancel);
}

/* Xenopsd's domain_action_request values. */
static bool
sim_request_ok(const char *r)
{
    static const char *const known[] = {
        "poweroff", "reboot", "suspend", "crashdump",
    };

    for (size_t i = 0; i < sizeof(known) / sizeof(*known); i++)
        if (strcmp(r, known[i]) == 0)
            return true;
    return false;
}

static int
sim_set_request(struct sim *s, const char *vm, const char *request,
                const char *reason)
{
    struct sim_dom *d;
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (!rc) {
        xstrlcpy(d->action_request, request ? request : "",
                 sizeof(d->action_request));
        if (reason)
            xstrlcpy(d->shutdown_reason, reason,
                     sizeof(d->shutdown_reason));
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_vm_set_action_request(struct backend *b, const char *vm,
                          const char *request)
{
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    if (request && !sim_request_ok(request)) {
        LOGVM(WARN, vm, "unknown domain action request");
        return xo_err_internal_code(XO_EINVAL, "unknown domain action "
                                    "request");
    }
    return sim_set_request(b->priv, vm, request, NULL);
}

static int
sim_vm_shutdown_domain(struct backend *b, const char *vm, const char *reason,
                       double timeout_s)
{
    static const struct {
        const char *reason;
        const char *request;
    } map[] = {
        { "Halt", "poweroff" },
        { "PowerOff", "poweroff" },
        { "Reboot", "reboot" },
        { "Suspend", "suspend" },
    };
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    /* The simulated guest obeys at once, so there is nothing to wait for. */
    for (size_t i = 0; reason && i < sizeof(map) / sizeof(*map); i++)
        if (strcmp(reason, map[i].reason) == 0)
            return sim_set_request(b->priv, vm, map[i].request, reason);
    LOGVM(WARN, vm, "unknown shutdown reason");
    return xo_err_internal_code(XO_EINVAL, "unknown shutdown reason");
}

static int
sim_vm_get_state(struct backend *b, const char *vm,
                 struct backend_vm_state *st)
{
    struct sim *s = b->priv;
    struct sim_dom *d;
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    memset(st, 0, sizeof(*st));
    st->power = BACKEND_HALTED;
    st->domid = -1;
    pthread_mutex_lock(&s->lock);
    d = sim_find(s, vm);
    if (d) {
        st->power = d->suspended ? BACKEND_SUSPENDED
                    : d->paused  ? BACKEND_PAUSED
                                 : BACKEND_RUNNING;
        st->domid = d->domid;
        st->built = d->built;
        xstrlcpy(st->action_request, d->action_request,
                 sizeof(st->action_request));
        st->memory_bytes = d->memory_bytes;
        st->memory_target = d->memory_target;
        st->vcpus = d->vcpus;
        st->last_start_time = d->last_start_time;
        st->heartbeat = sim_guest_heartbeat(d->guest);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* ---- live changes to a domain (optional operations) ---- */

/* Online vcpus are /local/domain/<domid>/cpu/<i>/availability, as
 * xenopsd's Domain.set_vcpu writes them. */
static int
sim_vm_set_vcpus(struct backend *b, const char *vm, int n)
{
    struct sim *s = b->priv;
    struct xstree_txn *x = NULL;
    struct sim_dom *d;
    char p[SIM_PATH_MAX];
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    if (n < 1) {
        LOGVM(WARN, vm, "cannot set %d vcpus", n);
        return xo_err_internal_code(XO_EINVAL, "invalid vcpu count %d", n);
    }
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (rc)
        goto out;
    for (int i = 0; i < (n > d->vcpus ? n : d->vcpus); i++) {
        sim_path(p, "/local/domain/%d/cpu/%d/availability", d->domid, i);
        xstree_txn_write(x, p, i < n ? "online" : "offline");
    }
    rc = xstree_txn_commit(s->xs, x);
    if (!rc) {
        LOGVM(INFO, vm, "domain %d: %d vcpus online", d->domid, n);
        d->vcpus = n;
    }
out:
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

/* The balloon keys xenopsd writes (KiB); the target follows the maximum,
 * as squeezed would set it on an otherwise idle host. */
static int
sim_vm_set_memory_dynamic_range(struct backend *b, const char *vm,
                                int64_t min, int64_t max)
{
    struct sim *s = b->priv;
    struct xstree_txn *x = NULL;
    struct sim_dom *d;
    char p[SIM_PATH_MAX], v[32];
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    if (min < 0 || max < min) {
        LOGVM(WARN, vm, "invalid memory range %lld..%lld", (long long)min,
              (long long)max);
        return xo_err_internal_code(XO_EINVAL, "invalid memory range "
                                    "%lld..%lld", (long long)min,
                                    (long long)max);
    }
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (rc)
        goto out;
    sim_path(p, "/local/domain/%d/memory/dynamic-min", d->domid);
    snprintf(v, sizeof(v), "%lld", (long long)(min / 1024));
    xstree_txn_write(x, p, v);
    sim_path(p, "/local/domain/%d/memory/dynamic-max", d->domid);
    snprintf(v, sizeof(v), "%lld", (long long)(max / 1024));
    xstree_txn_write(x, p, v);
    sim_path(p, "/local/domain/%d/memory/target", d->domid);
    xstree_txn_write(x, p, v);
    rc = xstree_txn_commit(s->xs, x);
    if (!rc)
        d->memory_target = max;
out:
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

static int
sim_vm_set_xsdata(struct backend *b, const char *vm,
                  const char *const *keys, const char *const *values,
                  size_t n)
{
    struct sim *s = b->priv;
    struct xstree_txn *x = NULL;
    struct sim_dom *d;
    char p[SIM_PATH_MAX];
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    for (size_t i = 0; !rc && i < n; i++) {
        /* Relative keys only: never outside the domain's own subtree. */
        if (strlen(keys[i]) >= SIM_PATH_MAX - 32 || keys[i][0] == '/' ||
            strstr(keys[i], "..")) {
            rc = XO_EINVAL;
        } else {
            sim_path(p, "/local/domain/%d/%s", d->domid, keys[i]);
            rc = xstree_path_ok(p, false) ? 0 : XO_EINVAL;
        }
        if (rc) {
            LOGVM(WARN, vm, "invalid xsdata key '%s'", keys[i]);
            rc = xo_err_internal_code(XO_EINVAL, "invalid xsdata key "
                                      "'%s'", keys[i]);
        } else {
            xstree_txn_write(x, p, values[i]);
        }
    }
    if (!rc)
        rc = xstree_txn_commit(s->xs, x);
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

/* xenopsd's simulator has no backend state to generate either. */
static int
sim_vm_generate_state_string(struct backend *b, const char *vm_json,
                             char **state_r)
{
    *state_r = xstrdup("");
    return 0;
}

/* ---- devices: kind is "vbd" or "vif" ---- */

static int
sim_dev_check(const char *vm, const char *dev)
{
    int rc = ids_check_vm(vm);

    return rc ? rc : ids_check_dev(dev);
}

static void
sim_active_path(char *p, const char *kind, const char *vm, const char *dev)
{
    sim_path(p, "/vm/%s/devices/%s/%s", vm, kind, dev);
}

static void
sim_front_path(char *p, const char *kind, int domid, const char *dev)
{
    sim_path(p, "/local/domain/%d/device/%s/%s", domid, kind, dev);
}

static void
sim_back_path(char *p, const char *kind, int domid, const char *dev)
{
    sim_path(p, "/local/domain/0/backend/%s/%d/%s", kind, domid, dev);
}

static int
sim_dev_set_active(struct sim *s, const char *kind, const char *vm,
                   const char *dev, bool active)
{
    char p[SIM_PATH_MAX];
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    sim_active_path(p, kind, vm, dev);
    /* Under the table lock so that it cannot interleave with a rename. */
    pthread_mutex_lock(&s->lock);
    rc = active ? xstree_write(s->xs, p, "1") : xstree_rm(s->xs, p);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* Active, domain present, not yet plugged: the device may be added. */
static int
sim_dev_plug_check(struct sim *s, const char *kind, const char *vm,
                   const char *dev, struct sim_dom **d_r)
{
    char p[SIM_PATH_MAX];
    int rc;

    sim_active_path(p, kind, vm, dev);
    if (!xstree_exists(s->xs, p)) {
        LOGVM(WARN, vm, "%s '%s' is not active", kind, dev);
        return xo_err_internal_code(XO_EINVAL, "%s '%s' of VM '%s' is not "
                                    "active", kind, dev, vm);
    }
    rc = sim_find_err(s, vm, d_r);
    if (rc)
        return rc;
    sim_front_path(p, kind, (*d_r)->domid, dev);
    if (xstree_exists(s->xs, p)) {
        LOGVM(WARN, vm, "%s '%s' is plugged already", kind, dev);
        sim_path(p, "%s.%s", vm, dev);
        return xo_err_already_exists(kind, p);
    }
    return 0;
}

/* Write frontend and backend nodes; params NULL for a VIF. */
static int
sim_dev_plug(struct sim *s, const char *kind, const char *vm,
             const char *dev, const char *params, bool rw)
{
    struct sim_dom *d;
    struct xstree_txn *x = NULL;
    char front[SIM_PATH_MAX], back[SIM_PATH_MAX], p[SIM_PATH_MAX];
    int rc;

    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    rc = sim_dev_plug_check(s, kind, vm, dev, &d);
    if (rc)
        goto out;
    sim_front_path(front, kind, d->domid, dev);
    sim_back_path(back, kind, d->domid, dev);
    sim_path(p, "%s/frontend", back);
    xstree_txn_write(x, p, front);
    if (params) {
        sim_path(p, "%s/params", back);
        xstree_txn_write(x, p, params);
        sim_path(p, "%s/mode", back);
        xstree_txn_write(x, p, rw ? "w" : "r");
    } else {
        sim_path(p, "%s/state", back);
        xstree_txn_write(x, p, "4");
    }
    sim_path(p, "%s/backend", front);
    xstree_txn_write(x, p, back);
    /* XenbusStateConnected. */
    sim_path(p, "%s/state", front);
    xstree_txn_write(x, p, "4");
    rc = xstree_txn_commit(s->xs, x);
    if (!rc)
        LOGVM(INFO, vm, "plugged %s '%s' into domain %d", kind, dev,
              d->domid);
out:
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

static int
sim_dev_unplug(struct sim *s, const char *kind, const char *vm,
               const char *dev)
{
    struct sim_dom *d;
    struct xstree_txn *x = NULL;
    char p[SIM_PATH_MAX];
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    xstree_txn_new(&x);
    pthread_mutex_lock(&s->lock);
    d = sim_find(s, vm);
    if (d) {
        sim_front_path(p, kind, d->domid, dev);
        xstree_txn_rm(x, p);
        sim_back_path(p, kind, d->domid, dev);
        xstree_txn_rm(x, p);
        rc = xstree_txn_commit(s->xs, x);
    }
    pthread_mutex_unlock(&s->lock);
    xstree_txn_free(x);
    return rc;
}

/* Active and plugged flags, and the backend params (params may be NULL). */
static int
sim_dev_state(struct sim *s, const char *kind, const char *vm,
              const char *dev, bool *active_r, bool *plugged_r,
              char *params, size_t params_len)
{
    struct sim_dom *d;
    char p[SIM_PATH_MAX];
    char *value = NULL;
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    sim_active_path(p, kind, vm, dev);
    *active_r = xstree_exists(s->xs, p);
    *plugged_r = false;
    d = sim_find(s, vm);
    if (d) {
        sim_front_path(p, kind, d->domid, dev);
        *plugged_r = xstree_exists(s->xs, p);
        sim_path(p, "/local/domain/0/backend/%s/%d/%s/params", kind,
                 d->domid, dev);
        if (params && xstree_read(s->xs, p, &value) == 0)
            xstrlcpy(params, value, params_len);
        xo_err_clear();
    }
    pthread_mutex_unlock(&s->lock);
    free(value);
    return 0;
}

static int
sim_vbd_set_active(struct backend *b, const char *vm, const char *dev,
                   bool active)
{
    return sim_dev_set_active(b->priv, "vbd", vm, dev, active);
}

static int
sim_vbd_add_device(struct backend *b, const char *vm, const char *dev,
                   const char *params, bool rw)
{
    struct backend_vbd_state *st = NULL;
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    /* Must fit backend_vbd_state.params when read back. */
    if (!params || strlen(params) >= sizeof(st->params)) {
        LOGVM(WARN, vm, "invalid params for vbd '%s'", dev);
        return xo_err_internal_code(XO_EINVAL, "invalid params for vbd "
                                    "'%s'", dev);
    }
    return sim_dev_plug(b->priv, "vbd", vm, dev, params, rw);
}

static int
sim_vbd_remove_device(struct backend *b, const char *vm, const char *dev,
                      bool force)
{
    return sim_dev_unplug(b->priv, "vbd", vm, dev);
}

static int
sim_vbd_get_state(struct backend *b, const char *vm, const char *dev,
                  struct backend_vbd_state *st)
{
    int rc;

    memset(st, 0, sizeof(*st));
    rc = sim_dev_state(b->priv, "vbd", vm, dev, &st->active, &st->plugged,
                       st->params, sizeof(st->params));
    /* A simulated device connects at once. */
    st->backend_state = st->plugged ? 4 : 0;
    return rc;
}

static int
sim_vif_set_active(struct backend *b, const char *vm, const char *dev,
                   bool active)
{
    return sim_dev_set_active(b->priv, "vif", vm, dev, active);
}

static int
sim_vif_plug(struct backend *b, const char *vm, const char *dev,
             const char *vif_json)
{
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    return sim_dev_plug(b->priv, "vif", vm, dev, NULL, true);
}

static int
sim_vif_unplug(struct backend *b, const char *vm, const char *dev,
               bool force)
{
    return sim_dev_unplug(b->priv, "vif", vm, dev);
}

static int
sim_vif_get_state(struct backend *b, const char *vm, const char *dev,
                  bool *active_r, bool *plugged_r)
{
    return sim_dev_state(b->priv, "vif", vm, dev, active_r, plugged_r, NULL,
                         0);
}

/* Write key of the VIF's backend node if it is plugged; else nothing. */
static int
sim_vif_write_backend(struct sim *s, const char *vm, const char *dev,
                      const char *key, const char *value)
{
    struct sim_dom *d;
    char p[SIM_PATH_MAX];
    int rc;

    rc = sim_dev_check(vm, dev);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    d = sim_find(s, vm);
    if (d) {
        sim_front_path(p, "vif", d->domid, dev);
        if (xstree_exists(s->xs, p)) {
            sim_path(p, "/local/domain/0/backend/vif/%d/%s/%s", d->domid,
                     dev, key);
            rc = xstree_write(s->xs, p, value);
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_vif_set_carrier(struct backend *b, const char *vm, const char *dev,
                    bool carrier)
{
    return sim_vif_write_backend(b->priv, vm, dev, "carrier",
                                 carrier ? "1" : "0");
}

static int
sim_vif_set_locking_mode(struct backend *b, const char *vm, const char *dev,
                         const char *mode_json)
{
    return sim_vif_write_backend(b->priv, vm, dev, "locking-mode",
                                 mode_json);
}

/* ---- host ---- */

static int
sim_host_info(struct backend *b, struct backend_host_info *hi)
{
    memset(hi, 0, sizeof(*hi));
    /* Shaped like a real Xen's answers, so xapi parses them as usual. */
    xstrlcpy(hi->hypervisor_version, "4.17.0-sim",
             sizeof(hi->hypervisor_version));
    xstrlcpy(hi->capabilities,
             "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64",
             sizeof(hi->capabilities));
    hi->iommu = false;
    hi->hvm = true;
    return 0;
}

/* ---- diagnostics and lifecycle ---- */

static void
sim_gen_dom(yajl_gen g, const struct sim_dom *d)
{
    yajl_gen_map_open(g);
    json_gen_str(g, "vm");
    json_gen_str(g, d->vm);
    json_gen_str(g, "domid");
    json_gen_int(g, d->domid);
    json_gen_str(g, "power");
    json_gen_str(g, backend_power_name(d->suspended ? BACKEND_SUSPENDED
                                       : d->paused  ? BACKEND_PAUSED
                                                    : BACKEND_RUNNING));
    json_gen_str(g, "built");
    json_gen_bool(g, d->built);
    json_gen_str(g, "action_request");
    json_gen_str(g, d->action_request);
    json_gen_str(g, "shutdown_reason");
    json_gen_str(g, d->shutdown_reason);
    json_gen_str(g, "memory_bytes");
    json_gen_int(g, d->memory_bytes);
    json_gen_str(g, "vcpus");
    json_gen_int(g, d->vcpus);
    json_gen_str(g, "memory_target");
    json_gen_int(g, d->memory_target);
    json_gen_str(g, "hvm");
    json_gen_bool(g, d->hvm);
    json_gen_str(g, "last_start_time");
    json_gen_double(g, d->last_start_time);
    json_gen_str(g, "guest_bytes");
    json_gen_int(g, (long long)sim_guest_mem_bytes(d->guest));
    json_gen_str(g, "heartbeat");
    json_gen_int(g, (long long)sim_guest_heartbeat(d->guest));
    json_gen_str(g, "max_gap_ns");
    json_gen_int(g, (long long)sim_guest_max_gap_ns(d->guest));
    yajl_gen_map_close(g);
}

static char *
sim_diagnostics(struct backend *b)
{
    struct sim *s = b->priv;
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "backend");
    json_gen_str(g, sim_ops.name);
    json_gen_str(g, "domains");
    yajl_gen_array_open(g);
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n_doms; i++)
        sim_gen_dom(g, s->doms[i]);
    pthread_mutex_unlock(&s->lock);
    yajl_gen_array_close(g);
    json_gen_str(g, "xenstore");
    xstree_gen_json(s->xs, g, "/");
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

/* ---- what migration and start-up need ---- */

int
backend_sim_dom_get(struct sim *s, const char *vm, struct sim_dom **d_r)
{
    int rc;

    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, d_r);
    if (!rc)
        (*d_r)->refs++;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void
backend_sim_dom_put(struct sim *s, struct sim_dom *d)
{
    struct sim_dom *dead;

    pthread_mutex_lock(&s->lock);
    dead = sim_unref(d);
    pthread_mutex_unlock(&s->lock);
    sim_dom_free(dead);
}

/*
 * Domain destruction keeps /vm/<id> while the devices' active flags are in
 * it (their atoms own them), and a temporary id's leftovers would block
 * the VM's next migration from this host (renaming to the id finds the
 * path taken); xenopsd's VM.remove drops them the same way.
 */
static int
sim_vm_forget(struct backend *b, const char *vm)
{
    static const char *const roots[] = { "/vm", "/xapi" };
    struct sim *s = b->priv;
    char p[SIM_PATH_MAX];
    int rc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    pthread_mutex_lock(&s->lock);
    if (sim_find(s, vm)) {
        LOGVM(WARN, vm, "cannot forget a VM that has a domain");
        rc = xo_err_already_exists("domain", vm);
    }
    for (size_t i = 0; !rc && i < sizeof(roots) / sizeof(*roots); i++) {
        sim_path(p, "%s/%s", roots[i], vm);
        if (xstree_exists(s->xs, p))
            rc = xstree_rm(s->xs, p);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int
sim_list_domains(struct backend *b, char ***vms_r, size_t *n_r)
{
    struct sim *s = b->priv;
    char **vms;
    size_t n;

    pthread_mutex_lock(&s->lock);
    n = s->n_doms;
    vms = xcalloc(n ? n : 1, sizeof(*vms));
    for (size_t i = 0; i < n; i++)
        vms[i] = xstrdup(s->doms[i]->vm);
    pthread_mutex_unlock(&s->lock);
    *vms_r = vms;
    *n_r = n;
    return 0;
}

static void
sim_destroy(struct backend *b)
{
    struct sim *s;

    if (!b)
        return;
    s = b->priv;
    for (size_t i = 0; i < s->n_doms; i++)
        sim_dom_free(s->doms[i]);
    free(s->doms);
    xstree_free(s->xs);
    pthread_mutex_destroy(&s->lock);
    free(s);
    free(b);
}

static const struct backend_ops sim_ops = {
    .name = "simulator",
    .destroy = sim_destroy,
    .vm_create = sim_vm_create,
    .vm_build = sim_vm_build,
    .vm_pause = sim_vm_pause,
    .vm_unpause = sim_vm_unpause,
    .vm_destroy = sim_vm_destroy,
    .vm_rename = sim_vm_rename,
    .vm_save = sim_vm_save,
    .vm_restore = sim_vm_restore,
    .vm_set_action_request = sim_vm_set_action_request,
    .vm_shutdown_domain = sim_vm_shutdown_domain,
    .vm_get_state = sim_vm_get_state,
    .vbd_set_active = sim_vbd_set_active,
    .vbd_add_device = sim_vbd_add_device,
    .vbd_remove_device = sim_vbd_remove_device,
    .vbd_get_state = sim_vbd_get_state,
    .vif_set_active = sim_vif_set_active,
    .vif_plug = sim_vif_plug,
    .vif_unplug = sim_vif_unplug,
    .vif_get_state = sim_vif_get_state,
    .vm_migrate_send = backend_sim_migrate_send,
    .vm_migrate_receive = backend_sim_migrate_receive,
    .vm_forget = sim_vm_forget,
    .list_domains = sim_list_domains,
    .vm_migrate_guest_downtime = backend_sim_migrate_guest_downtime,
    .diagnostics = sim_diagnostics,
    .host_info = sim_host_info,
    .vm_generate_state_string = sim_vm_generate_state_string,
    .vm_set_vcpus = sim_vm_set_vcpus,
    .vm_set_memory_dynamic_range = sim_vm_set_memory_dynamic_range,
    .vm_set_xsdata = sim_vm_set_xsdata,
    .vif_set_carrier = sim_vif_set_carrier,
    .vif_set_locking_mode = sim_vif_set_locking_mode,
};

int
backend_sim_new(const struct backend_sim_config *cfg, struct backend **b_r)
{
    struct backend *b;
    struct sim *s;

    if (cfg->memory_cap_bytes <= 0 || cfg->dirty_pages_per_sec < 0 ||
        cfg->heartbeat_ms < 1 ||
        cfg->heartbeat_ms > SIM_GUEST_HEARTBEAT_MS_MAX) {
        LOG(ERROR, "invalid simulator config: memory cap %lld, dirty rate "
            "%lld, heartbeat %d ms", (long long)cfg->memory_cap_bytes,
            (long long)cfg->dirty_pages_per_sec, cfg->heartbeat_ms);
        return xo_err_internal_code(XO_EINVAL, "invalid simulator config");
    }
    s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->next_domid = 1;
    s->cfg = *cfg;
    xstree_new(&s->xs);
    b = xmalloc(sizeof(*b));
    b->ops = &sim_ops;
    b->priv = s;
    *b_r = b;
    return 0;
}

bool
backend_sim_is(const struct backend *b)
{
    return b && b->ops == &sim_ops;
}

int
backend_sim_guest(struct backend *b, const char *vm, struct sim_guest **g_r)
{
    struct sim *s;
    struct sim_dom *d;
    int rc;

    if (!backend_sim_is(b))
        return xo_err_unimplemented("backend_sim_guest");
    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    s = b->priv;
    pthread_mutex_lock(&s->lock);
    rc = sim_find_err(s, vm, &d);
    if (!rc)
        *g_r = d->guest;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

struct xstree *
backend_sim_xstree(struct backend *b)
{
    if (!backend_sim_is(b))
        return NULL;
    return ((struct sim *)b->priv)->xs;
}
