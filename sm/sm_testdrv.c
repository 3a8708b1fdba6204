/* SPDX-License-Identifier: LGPL-2.1-only */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sm/sm_testdrv.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xalloc.h"

enum { CMD_ATTACH, CMD_ACTIVATE, CMD_DEACTIVATE, CMD_DETACH, CMD_COUNT };

static const char *const cmd_names[CMD_COUNT] = {
    "attach", "activate", "deactivate", "detach"
};

#define TESTDRV_MAX_FAILS 16

struct testdrv_fail {
    int cmd;
    char *vdi;      /* NULL: any */
    int times;
};

struct sm_testdrv {
    pthread_mutex_t lock;
    char api_version[16];
    int latency_ms[CMD_COUNT];
    struct testdrv_fail fails[TESTDRV_MAX_FAILS];
    char **calls;
    size_t n_calls;
    int attached;
    int active;
    int inflight;
    int max_inflight;
    char *hold_path;          /* SM_TESTDRV_HOLD_ENV, or NULL */
};

static int
cmd_index(const char *name)
{
    for (int i = 0; i < CMD_COUNT; i++)
        if (strcmp(cmd_names[i], name) == 0)
            return i;
    return -1;
}

struct sm_testdrv *
sm_testdrv_new(const char *api_version)
{
    struct sm_testdrv *d = xcalloc(1, sizeof(*d));

    const char *hold = getenv(SM_TESTDRV_HOLD_ENV);

    pthread_mutex_init(&d->lock, NULL);
    xstrlcpy(d->api_version, api_version, sizeof(d->api_version));
    d->hold_path = hold && hold[0] ? xstrdup(hold) : NULL;
    return d;
}

static void
testdrv_free(void *priv)
{
    struct sm_testdrv *d = priv;

    sm_testdrv_clear_calls(d);
    for (int i = 0; i < TESTDRV_MAX_FAILS; i++)
        free(d->fails[i].vdi);
    pthread_mutex_destroy(&d->lock);
    free(d->hold_path);
    free(d);
}

int
sm_testdrv_set_latency(struct sm_testdrv *d, const char *command, int ms)
{
    int i = cmd_index(command);

    if (i < 0 || ms < 0)
        return xo_err_internal_code(XO_EINVAL, "bad latency setting '%s'",
                                    command);
    pthread_mutex_lock(&d->lock);
    d->latency_ms[i] = ms;
    pthread_mutex_unlock(&d->lock);
    return 0;
}

int
sm_testdrv_fail(struct sm_testdrv *d, const char *command, const char *vdi,
                int times)
{
    int i = cmd_index(command);
    int rc = XO_EINVAL;

    if (i < 0 || times < 1)
        return xo_err_internal_code(XO_EINVAL, "bad failure setting '%s'",
                                    command);
    pthread_mutex_lock(&d->lock);
    for (int k = 0; k < TESTDRV_MAX_FAILS; k++) {
        if (d->fails[k].times == 0) {
            free(d->fails[k].vdi);
            d->fails[k].cmd = i;
            d->fails[k].vdi = vdi ? xstrdup(vdi) : NULL;
            d->fails[k].times = times;
            rc = 0;
            break;
        }
    }
    pthread_mutex_unlock(&d->lock);
    if (rc)
        return xo_err_internal_code(rc, "too many pending failures");
    return 0;
}

char **
sm_testdrv_calls(struct sm_testdrv *d, size_t *n_r)
{
    char **out;

    pthread_mutex_lock(&d->lock);
    out = xcalloc(d->n_calls + 1, sizeof(*out));
    for (size_t i = 0; i < d->n_calls; i++)
        out[i] = xstrdup(d->calls[i]);
    *n_r = d->n_calls;
    pthread_mutex_unlock(&d->lock);
    return out;
}

void
sm_testdrv_calls_free(char **calls, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(calls[i]);
    free(calls);
}

void
sm_testdrv_clear_calls(struct sm_testdrv *d)
{
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < d->n_calls; i++)
        free(d->calls[i]);
    free(d->calls);
    d->calls = NULL;
    d->n_calls = 0;
    pthread_mutex_unlock(&d->lock);
}

int
sm_testdrv_attached(struct sm_testdrv *d)
{
    int n;

    pthread_mutex_lock(&d->lock);
    n = d->attached;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int
sm_testdrv_active(struct sm_testdrv *d)
{
    int n;

    pthread_mutex_lock(&d->lock);
    n = d->active;
    pthread_mutex_unlock(&d->lock);
    return n;
}

int
sm_testdrv_max_inflight(struct sm_testdrv *d)
{
    int n;

    pthread_mutex_lock(&d->lock);
    n = d->max_inflight;
    pthread_mutex_unlock(&d->lock);
    return n;
}

static void
sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/*
 * A test holds attaches while it makes a change that must land during
 * one: the attach is then surely in flight, whatever the machine's load.
 * Bounded, so that a test that forgets to release cannot hang a daemon.
 */
static void
testdrv_hold(const struct sm_testdrv *d)
{
    for (int i = 0; d->hold_path && i < SM_TESTDRV_HOLD_MAX_MS / 5; i++) {
        if (access(d->hold_path, F_OK) != 0)
            return;
        sleep_ms(5);
    }
}

/*
 * Log the call, sleep its latency (without the lock, so calls for other
 * VDIs overlap), then apply an injected failure or the state change.
 */
static int
testdrv_call(struct sm_testdrv *d, int cmd, const char *dp, const char *sr,
             const char *vdi, const char *domain)
{
    int latency, rc = 0;

    pthread_mutex_lock(&d->lock);
    d->calls = xrealloc(d->calls, (d->n_calls + 1) * sizeof(*d->calls));
    d->calls[d->n_calls++] =
        xasprintf("%s %s %s %s", cmd_names[cmd], dp, vdi, domain);
    latency = d->latency_ms[cmd];
    if (++d->inflight > d->max_inflight)
        d->max_inflight = d->inflight;
    pthread_mutex_unlock(&d->lock);

    if (cmd == CMD_ATTACH)
        testdrv_hold(d);
    sleep_ms(latency);

    pthread_mutex_lock(&d->lock);
    d->inflight--;
    for (int k = 0; k < TESTDRV_MAX_FAILS; k++) {
        struct testdrv_fail *f = &d->fails[k];

        if (f->times > 0 && f->cmd == cmd &&
            (!f->vdi || strcmp(f->vdi, vdi) == 0)) {
            const char *p[] = { "", "The VDI is not available "
                                    "[opterr=injected by sm_testdrv]", "" };

            f->times--;
            pthread_mutex_unlock(&d->lock);
            LOG(ERROR, "test driver: %s of '%s/%s' failed (injected)",
                cmd_names[cmd], sr, vdi);
            return xo_err_storage("SR_BACKEND_FAILURE_46", p, 3);
        }
    }
    switch (cmd) {
    case CMD_ATTACH: d->attached++; break;
    case CMD_DETACH: d->attached--; break;
    case CMD_ACTIVATE: d->active++; break;
    case CMD_DEACTIVATE: d->active--; break;
    }
    pthread_mutex_unlock(&d->lock);
    return rc;
}

static int
testdrv_query(void *priv, char **api_version_r)
{
    struct sm_testdrv *d = priv;

    *api_version_r = xstrdup(d->api_version);
    return 0;
}

static int
testdrv_attach(void *priv, const char *dp, const char *sr, const char *vdi,
               const char *domain, bool rw, char **params_r)
{
    int rc = testdrv_call(priv, CMD_ATTACH, dp, sr, vdi, domain);

    *params_r = rc ? NULL : xasprintf("/dev/sm-test/%s/%s", sr, vdi);
    return rc;
}

static int
testdrv_activate(void *priv, const char *dp, const char *sr,
                 const char *vdi, const char *domain)
{
    return testdrv_call(priv, CMD_ACTIVATE, dp, sr, vdi, domain);
}

static int
testdrv_deactivate(void *priv, const char *dp, const char *sr,
                   const char *vdi, const char *domain)
{
    return testdrv_call(priv, CMD_DEACTIVATE, dp, sr, vdi, domain);
}

static int
testdrv_detach(void *priv, const char *dp, const char *sr, const char *vdi,
               const char *domain)
{
    return testdrv_call(priv, CMD_DETACH, dp, sr, vdi, domain);
}

const struct sm_driver_ops sm_testdrv_ops = {
    .name = "sm-testdrv",
    .query = testdrv_query,
    .attach = testdrv_attach,
    .activate = testdrv_activate,
    .deactivate = testdrv_deactivate,
    .detach = testdrv_detach,
    .free = testdrv_free,
};

/* One "<sr-uuid>:<api-version>:<attach-ms>:<activate-ms>" entry. */
static int
register_one(struct sm *sm, char *entry)
{
    char *fields[4];
    char *save = NULL, *end;
    struct sm_testdrv *d;
    long attach_ms, activate_ms;
    int n = 0, rc;

    for (char *f = strtok_r(entry, ":", &save); f && n < 4;
         f = strtok_r(NULL, ":", &save))
        fields[n++] = f;
    if (n != 4 || strtok_r(NULL, ":", &save) || !ids_is_uuid(fields[0]))
        return xo_err_internal_code(XO_EINVAL, "bad sim-srs entry");
    attach_ms = strtol(fields[2], &end, 10);
    if (*end || attach_ms < 0 || attach_ms > 600000)
        return xo_err_internal_code(XO_EINVAL, "bad sim-srs attach ms");
    activate_ms = strtol(fields[3], &end, 10);
    if (*end || activate_ms < 0 || activate_ms > 600000)
        return xo_err_internal_code(XO_EINVAL, "bad sim-srs activate ms");
    d = sm_testdrv_new(fields[1]);
    d->latency_ms[CMD_ATTACH] = (int)attach_ms;
    d->latency_ms[CMD_DETACH] = (int)attach_ms / 2;
    d->latency_ms[CMD_ACTIVATE] = (int)activate_ms;
    d->latency_ms[CMD_DEACTIVATE] = (int)activate_ms;
    rc = sm_register_sr(sm, fields[0], &sm_testdrv_ops, d);
    if (rc)
        testdrv_free(d);
    return rc;
}

int
sm_testdrv_register_spec(struct sm *sm, const char *spec)
{
    char *copy = xstrdup(spec);
    char *save = NULL;
    int rc = 0;

    for (char *e = strtok_r(copy, ",", &save); e && !rc;
         e = strtok_r(NULL, ",", &save))
        rc = register_one(sm, e);
    if (rc)
        LOG(ERROR, "cannot register sim-srs '%s'", spec);
    free(copy);
    return rc;
}
