/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The simulator's half of live migration: a simulated domain's state is
 * its guest's memory and clock, moved by the pre-copy engine of
 * migrate_mem.c. This file only adapts the backend interface to it: it
 * holds a reference on the domain while the stream runs (so a destroy
 * meanwhile cannot free the guest under it) and translates options,
 * progress and statistics.
 */
#include <string.h>

#include "backend/sim/backend_sim_priv.h"
#include "backend/sim/migrate_mem.h"
#include "util/errors.h"
#include "util/log.h"

static void
sim_mig_opts(const struct backend_migrate_opts *o,
             struct migrate_mem_opts *mo)
{
    memset(mo, 0, sizeof(*mo));
    mo->max_downtime_ms = o->max_downtime_ms;
    mo->max_iterations = o->max_iterations;
    mo->policy = o->abort_on_downtime ? MIGRATE_MEM_POLICY_ABORT
                                      : MIGRATE_MEM_POLICY_FORCE;
    mo->compress = o->compress;
    mo->cancel = o->cancel;
    mo->pause = o->pause;
    mo->pause_arg = o->pause_arg;
}

static void
sim_mig_stats(const struct migrate_mem_stats *ms,
              struct backend_migrate_stats *st)
{
    st->bytes = ms->bytes;
    st->rounds = ms->rounds;
    st->final_ns = ms->final_ns;
    st->paused = ms->paused;
}

/* migrate_mem's progress, passed on as the backend's. */
static void
sim_mig_progress(const struct migrate_mem_progress *p, void *arg)
{
    const struct backend_migrate_opts *o = arg;
    struct backend_migrate_progress bp = {
        .round = p->round,
        .bytes_sent = p->bytes_sent,
        .bytes_remaining = p->bytes_remaining,
        .dirty_rate = p->dirty_rate,
    };

    o->progress(&bp, o->progress_arg);
}

/* Run one side of the stream on vm's guest, holding a reference on the
 * domain meanwhile. */
static int
sim_mig_stream(struct sim *s, const char *vm, int fd, bool send,
               const struct backend_migrate_opts *o,
               struct backend_migrate_stats *st)
{
    struct migrate_mem_opts mo;
    struct migrate_mem_stats ms;
    struct sim_dom *d = NULL;
    int rc;

    memset(st, 0, sizeof(*st));
    rc = ids_check_vm(vm);
    if (!rc)
        rc = backend_sim_dom_get(s, vm, &d);
    if (rc)
        return rc;
    sim_mig_opts(o, &mo);
    if (send && o->progress) {
        mo.progress = sim_mig_progress;
        mo.progress_arg = (void *)o;
    }
    if (send) {
        rc = migrate_mem_send(d->guest, fd, &mo, &ms);
    } else {
        mo.pause = NULL;
        rc = migrate_mem_receive(d->guest, fd, &mo, &ms);
    }
    sim_mig_stats(&ms, st);
    if (!rc && !send) {
        pthread_mutex_lock(&s->lock);
        d->received = true;
        d->received_heartbeat = ms.heartbeat;
        pthread_mutex_unlock(&s->lock);
    }
    backend_sim_dom_put(s, d);
    return rc;
}

int
backend_sim_migrate_send(struct backend *b, const char *vm, int fd,
                         const struct backend_migrate_opts *o,
                         struct backend_migrate_stats *st)
{
    return sim_mig_stream(b->priv, vm, fd, true, o, st);
}

int
backend_sim_migrate_receive(struct backend *b, const char *vm, int fd,
                            const struct backend_migrate_opts *o,
                            struct backend_migrate_stats *st)
{
    return sim_mig_stream(b->priv, vm, fd, false, o, st);
}

int
backend_sim_migrate_guest_downtime(struct backend *b, const char *vm,
                                   const atomic_bool *cancel,
                                   uint64_t *ns_r)
{
    struct sim *s = b->priv;
    struct migrate_mem_opts mo;
    struct migrate_mem_stats ms;
    struct sim_dom *d = NULL;
    bool received;
    int rc;

    rc = ids_check_vm(vm);
    if (!rc)
        rc = backend_sim_dom_get(s, vm, &d);
    if (rc)
        return rc;
    memset(&mo, 0, sizeof(mo));
    memset(&ms, 0, sizeof(ms));
    mo.cancel = cancel;
    pthread_mutex_lock(&s->lock);
    received = d->received;
    ms.heartbeat = d->received_heartbeat;
    pthread_mutex_unlock(&s->lock);
    if (!received) {
        LOGVM(WARN, vm, "no migrated-in guest to measure");
        rc = xo_err_internal_code(XO_EINVAL, "VM '%s' was not migrated in",
                                  vm);
    } else {
        rc = migrate_mem_measure_downtime(d->guest, &mo, &ms);
    }
    if (!rc)
        *ns_r = ms.guest_downtime_ns;
    backend_sim_dom_put(s, d);
    return rc;
}
