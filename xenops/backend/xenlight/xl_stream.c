/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The xenlight backend's streams: save and restore to a file or socket,
 * and both halves of a live migration, all as libxl's stream (v2).
 *
 * Sender: libxl_domain_suspend(LIVE) runs on a helper thread; the calling
 * thread watches the domain and calls the switch-over callback as soon as
 * the guest has suspended for the last round (libxl has no hook there),
 * so the downtime the migration reports starts when the guest stopped.
 * Receiver: libxl_domain_create_restore with the domid VM_create reserved.
 */
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <linux/tcp.h>

#include "backend/xenlight/xl_priv.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Bytes the peer acknowledged on a TCP fd; 0 for anything else. */
static uint64_t
tcp_bytes(int fd, bool sent)
{
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    memset(&ti, 0, sizeof(ti));
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
        return 0;
    return sent ? ti.tcpi_bytes_acked : ti.tcpi_bytes_received;
}

static int
cancelled(const atomic_bool *cancel)
{
    if (cancel && atomic_load(cancel))
        return xo_err_internal_code(XO_ECANCELLED, "cancelled");
    return 0;
}

int
xl_vm_save(struct backend *b, const char *vm, int fd, unsigned flags,
           const atomic_bool *cancel)
{
    struct xl *x = b->priv;
    uint32_t domid;
    int rc, lrc;

    if (!xl_domain_of(x, vm, &domid, NULL))
        return xo_err_tag(XO_ENOTBUILT, "Domain_not_built");
    rc = cancelled(cancel);
    if (rc)
        return rc;
    lrc = libxl_domain_suspend(x->ctx, domid, fd,
                               flags & BACKEND_SAVE_LIVE ? LIBXL_SUSPEND_LIVE
                                                         : 0, NULL);
    if (lrc)
        return xl_fail(vm, lrc, "saving the domain");
    LOGVM(INFO, vm, "domain %u saved", domid);
    return 0;
}

/* Create vm's domain from the stream on fd (paused, as libxl leaves it). */
static int
restore_from(struct xl *x, const char *vm, int fd)
{
    libxl_domain_restore_params params;
    libxl_domain_config d;
    uint32_t domid, got;
    int rc, lrc;

    if (xl_domain_of(x, vm, &domid, NULL))
        return xo_err_already_exists("domain", vm);
    rc = xl_domid_reserved(x, vm, &domid);
    if (rc)
        return rc;
    libxl_domain_config_init(&d);
    libxl_domain_restore_params_init(&params);
    params.checkpointed_stream = LIBXL_CHECKPOINTED_STREAM_NONE;
    params.stream_version = 2;
    rc = xl_vm_libxl_config(x, vm, domid, &d);
    if (rc)
        goto out;
    got = domid;
    lrc = libxl_domain_create_restore(x->ctx, &d, &got, fd, -1, &params,
                                      NULL, NULL);
    if (lrc) {
        rc = xl_fail(vm, lrc, "restoring the domain");
        goto out;
    }
    rc = xl_mark_built(x, vm, got);
out:
    libxl_domain_restore_params_dispose(&params);
    libxl_domain_config_dispose(&d);
    return rc;
}

int
xl_vm_restore(struct backend *b, const char *vm, int fd,
              const atomic_bool *cancel)
{
    int rc = cancelled(cancel);

    if (!rc)
        rc = restore_from(b->priv, vm, fd);
    if (!rc)
        LOGVM(INFO, vm, "domain restored");
    return rc;
}

/* ---- live migration, sender ---- */

struct send {
    struct xl *x;
    uint32_t domid;
    int fd;
    int lrc;
    bool done;
    pthread_mutex_t lock;
    pthread_cond_t cond;
};

static void *
send_thread(void *arg)
{
    struct send *s = arg;
    int lrc = libxl_domain_suspend(s->x->ctx, s->domid, s->fd,
                                   LIBXL_SUSPEND_LIVE, NULL);

    pthread_mutex_lock(&s->lock);
    s->lrc = lrc;
    s->done = true;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Has the guest suspended for the last round? */
static bool
guest_suspended(struct xl *x, uint32_t domid)
{
    libxl_dominfo info;
    bool yes;

    libxl_dominfo_init(&info);
    yes = libxl_domain_info(x->ctx, &info, domid) == 0 && info.shutdown &&
          info.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND;
    libxl_dominfo_dispose(&info);
    return yes;
}

/* Wait for the stream to end, calling o->pause when the guest suspends.
 * Returns the pause callback's failure, if any. */
static int
send_watch(struct send *s, const struct backend_migrate_opts *o,
           struct backend_migrate_stats *st, uint64_t *paused_ns)
{
    int prc = 0;

    pthread_mutex_lock(&s->lock);
    while (!s->done) {
        struct timespec ts;

        if (!st->paused && !prc) {
            pthread_mutex_unlock(&s->lock);
            if (guest_suspended(s->x, s->domid)) {
                *paused_ns = clock_mono_ns();
                prc = o->pause(o->pause_arg);
                st->paused = prc == 0;
            }
            pthread_mutex_lock(&s->lock);
            if (s->done)
                break;
        }
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 5000000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cond, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return prc;
}

int
xl_vm_migrate_send(struct backend *b, const char *vm, int fd,
                   const struct backend_migrate_opts *o,
                   struct backend_migrate_stats *st)
{
    struct xl *x = b->priv;
    struct send s;
    pthread_t th;
    uint64_t t0 = clock_mono_ns(), paused_ns = 0, bytes0 = tcp_bytes(fd, true);
    int rc, prc;

    memset(st, 0, sizeof(*st));
    memset(&s, 0, sizeof(s));
    if (!xl_domain_of(x, vm, &s.domid, NULL))
        return xo_err_tag(XO_ENOTBUILT, "Domain_not_built");
    rc = cancelled(o->cancel);
    if (rc)
        return rc;
    s.x = x;
    s.fd = fd;
    pthread_mutex_init(&s.lock, NULL);
    pthread_cond_init(&s.cond, NULL);
    if (pthread_create(&th, NULL, send_thread, &s)) {
        rc = xo_err_internal("cannot start the stream thread");
        goto out;
    }
    prc = send_watch(&s, o, st, &paused_ns);
    pthread_join(th, NULL);
    /* The guest may have suspended in the very last moment. */
    if (!s.lrc && !st->paused && !prc) {
        paused_ns = clock_mono_ns();
        prc = o->pause(o->pause_arg);
        st->paused = prc == 0;
    }
    st->bytes = tcp_bytes(fd, true) - bytes0;
    st->final_ns = paused_ns ? clock_mono_ns() - paused_ns : 0;
    if (s.lrc) {
        rc = xl_fail(vm, s.lrc, "streaming the domain");
        /* Before the switch-over the guest runs on, untouched: take back
         * a suspend libxl started. */
        if (!st->paused && guest_suspended(x, s.domid) &&
            libxl_domain_resume(x->ctx, s.domid, 1, NULL))
            LOGVM(ERROR, vm, "and resuming the guest failed");
        goto out;
    }
    rc = prc;
    if (!rc)
        LOGVM(INFO, vm, "domain %u streamed in %.1f s (%.0f ms after the "
              "guest suspended)", s.domid, (double)(clock_mono_ns() - t0) / 1e9,
              (double)st->final_ns / 1e6);
out:
    pthread_cond_destroy(&s.cond);
    pthread_mutex_destroy(&s.lock);
    return rc;
}

/* ---- live migration, receiver ---- */

int
xl_vm_migrate_receive(struct backend *b, const char *vm, int fd,
                      const struct backend_migrate_opts *o,
                      struct backend_migrate_stats *st)
{
    uint64_t bytes0 = tcp_bytes(fd, false);
    int rc;

    memset(st, 0, sizeof(*st));
    rc = cancelled(o->cancel);
    if (!rc)
        rc = restore_from(b->priv, vm, fd);
    st->bytes = tcp_bytes(fd, false) - bytes0;
    if (!rc)
        LOGVM(INFO, vm, "domain received (%llu bytes)",
              (unsigned long long)st->bytes);
    return rc;
}
