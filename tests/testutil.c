/* SPDX-License-Identifier: LGPL-2.1-only */

#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include "backend/sim/sim_guest.h"
#include "rpc/rpc.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/http.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

bool
testutil_json_tree_same(yajl_val actual, const char *expected)
{
    yajl_val e = NULL;
    char *got = NULL;
    bool same = false;

    if (json_parse(expected, strlen(expected), &e)) {
        xo_err_clear();
        fprintf(stderr, "expected JSON does not parse: %s\n", expected);
        goto out;
    }
    same = actual && json_equal(actual, e);
    if (!same) {
        got = actual ? json_tree_to_string(actual) : NULL;
        fprintf(stderr, "actual:   %s\nexpected: %s\n",
                got ? got : "(none)", expected);
    }
out:
    free(got);
    yajl_tree_free(e);
    return same;
}

bool
testutil_json_same(const char *actual, const char *expected)
{
    yajl_val a = NULL;
    bool same;

    if (actual && json_parse(actual, strlen(actual), &a)) {
        xo_err_clear();
        fprintf(stderr, "actual JSON does not parse: %s\n", actual);
        return false;
    }
    same = testutil_json_tree_same(a, expected);
    yajl_tree_free(a);
    return same;
}

int64_t
testutil_now_ms(void)
{
    return http_now_ms();
}

void
testutil_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int
testutil_unix_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    memcpy(addr.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        int saved = errno;

        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

bool
testutil_wait_heartbeat(struct sim_guest *g, uint64_t target, int limit_ms)
{
    int64_t end = testutil_now_ms() + limit_ms;

    while (sim_guest_heartbeat(g) < target) {
        if (testutil_now_ms() >= end)
            return false;
        testutil_sleep_ms(1);
    }
    return true;
}

static int
testutil_daemon_rm_one(const char *path, const struct stat *st, int flag,
                       struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static bool
testutil_daemon_can_connect(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool ok;

    if (fd < 0)
        return false;
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    ok = connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0;
    close(fd);
    return ok;
}

/* Whether the daemon has exited, without reaping it (WNOWAIT), so that
 * waiting for readiness changes nothing a concurrent cleanup relies on. */
static bool
testutil_daemon_exited(const struct testutil_daemon *d)
{
    siginfo_t info = { .si_pid = 0 };

    if (d->pid <= 0)
        return true;
    if (waitid(P_PID, (id_t)d->pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
        return true;
    return info.si_pid != 0;
}

/* Copy the daemon's log, if it has one, to our stderr. */
static void
testutil_daemon_show_log(const struct testutil_daemon *d)
{
    FILE *f;

    if (!d->log[0] || !(f = fopen(d->log, "r")))
        return;
    fprintf(stderr, "---- %s ----\n", d->log);
    for (int c; (c = fgetc(f)) != EOF;)
        fputc(c, stderr);
    fclose(f);
}

/* The child: never returns. */
static void
testutil_daemon_exec(const struct testutil_daemon *d, pid_t parent,
                     const char *bin, const char **argv)
{
    sigset_t none;

    /* The daemon must not outlive its caller, even one that dies. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    /* A caller that takes its signals in one thread has them blocked, and
     * the mask survives exec: the daemon must get its SIGTERM. */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (d->log[0] && !freopen(d->log, "w", stderr))
        _exit(127);
    execv(bin, (char *const *)argv);
    _exit(127);
}

/* A fresh directory for the daemon (run/, db, an empty config file so a
 * host's /etc/xenopsd.conf cannot change what runs, the log); run and conf
 * receive their paths (128 bytes each). */
static int
testutil_daemon_dirs(struct testutil_daemon *d,
                     const struct testutil_daemon_opts *o, char *run,
                     char *conf)
{
    const char *parent_dir = o->parent_dir ? o->parent_dir : "/tmp";
    FILE *f;

    if (snprintf(d->dir, sizeof(d->dir), "%s/%s.XXXXXX", parent_dir,
                 o->name) >= (int)sizeof(d->dir)) {
        LOG(ERROR, "temporary directory name '%s/%s' is too long",
            parent_dir, o->name);
        d->dir[0] = '\0';
        return XO_EINVAL;
    }
    if (!mkdtemp(d->dir)) {
        LOGE(ERROR, "cannot create a directory under '%s'", parent_dir);
        d->dir[0] = '\0';
        return XO_EIO;
    }
    /* dir is at most 63 bytes, so none of these can be cut short. */
    snprintf(run, 128, "%s/run", d->dir);
    snprintf(conf, 128, "%s/xenopsd.conf", d->dir);
    snprintf(d->sock, sizeof(d->sock), "%s/run/xenopsd", d->dir);
    snprintf(d->db, sizeof(d->db), "%s/db", d->dir);
    if (o->log_to_file)
        snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir);
    f = fopen(conf, "w");
    if (!f || fclose(f) != 0) {
        LOGE(ERROR, "cannot write '%s'", conf);
        return XO_EIO;
    }
    return 0;
}

/* The daemon's command line (caller frees the array, not the strings;
 * uid_arg is a 16-byte buffer the array may point into). */
static const char **
testutil_daemon_argv(const struct testutil_daemon *d,
                     const struct testutil_daemon_opts *o, const char *bin,
                     const char *run, const char *conf, char *uid_arg)
{
    const char **argv;
    size_t n_extra = 0, n = 0;

    while (o->extra_argv && o->extra_argv[n_extra])
        n_extra++;
    argv = xcalloc(16 + n_extra, sizeof(*argv));
    argv[n++] = bin;
    argv[n++] = "--config";
    argv[n++] = conf;
    argv[n++] = "--sockets-path";
    argv[n++] = run;
    argv[n++] = "--database-path";
    argv[n++] = d->db;
    argv[n++] = "--sim-srs";
    argv[n++] = TESTUTIL_SR ":5.0:5:1";
    argv[n++] = "--sim-memory-cap-mib";
    argv[n++] = "1";
    argv[n++] = "--xenopsd-vbd-plug-unplug-legacy";
    argv[n++] = "false";
    /* As another user, ask the daemon to answer us too (it always answers
     * root). */
    if (geteuid() != 0) {
        snprintf(uid_arg, 16, "%u", (unsigned)geteuid());
        argv[n++] = "--rpc-allowed-uids";
        argv[n++] = uid_arg;
    }
    for (size_t i = 0; i < n_extra; i++)
        argv[n++] = o->extra_argv[i];
    argv[n] = NULL;
    return argv;
}

int
testutil_daemon_start(struct testutil_daemon *d,
                      const struct testutil_daemon_opts *o)
{
    const char *top = getenv("top_builddir");
    char *bin = NULL;
    const char **argv = NULL;
    char run[128], conf[128], uid_arg[16];
    pid_t parent = getpid();
    int rc;

    memset(d, 0, sizeof(*d));
    d->pid = -1;
    rc = testutil_daemon_dirs(d, o, run, conf);
    if (rc)
        goto out;
    bin = o->bin ? xstrdup(o->bin)
                 : xasprintf("%s/xenopsd-c", top ? top : ".");
    argv = testutil_daemon_argv(d, o, bin, run, conf, uid_arg);
    d->pid = fork();
    if (d->pid == 0)
        testutil_daemon_exec(d, parent, bin, argv);
    if (d->pid < 0) {
        LOGE(ERROR, "cannot fork");
        d->pid = -1;
        rc = XO_EIO;
        goto out;
    }
out:
    free(argv);
    free(bin);
    return rc;
}

int
testutil_daemon_spawn(struct testutil_daemon *d, const char *name)
{
    const struct testutil_daemon_opts o = { .name = name };
    int rc;

    rc = testutil_daemon_start(d, &o);
    if (!rc)
        rc = testutil_daemon_wait_ready(d, TESTUTIL_GUARD_MS);
    if (rc)
        testutil_daemon_cleanup(d);
    return rc;
}

int
testutil_daemon_wait_ready(const struct testutil_daemon *d, int timeout_ms)
{
    int64_t end = testutil_now_ms() + timeout_ms;

    while (!testutil_daemon_can_connect(d->sock)) {
        if (testutil_daemon_exited(d)) {
            LOG(ERROR, "xenopsd-c exited at start-up (is top_builddir "
                "set?)");
            testutil_daemon_show_log(d);
            return XO_EFAIL;
        }
        if (testutil_now_ms() > end) {
            LOG(ERROR, "xenopsd-c did not open its socket '%s'", d->sock);
            testutil_daemon_show_log(d);
            return XO_ETIMEDOUT;
        }
        testutil_sleep_ms(10);
    }
    return 0;
}

int
testutil_daemon_call(const struct testutil_daemon *d, const char *method,
                     const char *params, char **result_r, char **error_r)
{
    return rpc_call(d->sock, method, params, TESTUTIL_CALL_TIMEOUT_MS,
                    result_r, error_r);
}

int
testutil_daemon_call_json(const struct testutil_daemon *d, const char *method,
                          const char *params, yajl_val *result_r)
{
    char *res = NULL, *err = NULL;
    yajl_val t = NULL;
    int rc;

    if (result_r)
        *result_r = NULL;
    rc = testutil_daemon_call(d, method, params, &res, &err);
    if (rc) {
        LOG(ERROR, "'%s' %s: transport failure %d", method, params, rc);
        goto out;
    }
    if (err) {
        LOG(ERROR, "'%s' %s: error %s", method, params, err);
        rc = XO_EFAIL;
        goto out;
    }
    rc = json_parse(res, strlen(res), &t);
    if (rc) {
        LOG(ERROR, "'%s' answered with a result that is not JSON: %s",
            method, res);
        goto out;
    }
    if (result_r) {
        *result_r = t;
        t = NULL;
    }
out:
    yajl_tree_free(t);
    free(res);
    free(err);
    return rc;
}

int
testutil_daemon_reap(struct testutil_daemon *d, int timeout_ms, int *status_r)
{
    int64_t end = testutil_now_ms() + timeout_ms;
    int status = 0;
    pid_t r;

    if (d->pid <= 0)
        return XO_EFAIL;
    for (;;) {
        r = waitpid(d->pid, &status, WNOHANG);
        if (r == d->pid) {
            d->pid = -1;
            if (status_r)
                *status_r = status;
            return 0;
        }
        if (r < 0) {
            LOGE(ERROR, "cannot wait for xenopsd-c (pid %d)", (int)d->pid);
            return XO_EFAIL;
        }
        if (testutil_now_ms() >= end)
            return XO_ETIMEDOUT;
        testutil_sleep_ms(10);
    }
}

int
testutil_daemon_shutdown(struct testutil_daemon *d, int *status_r)
{
    char *res = NULL, *err = NULL;
    int rc;

    rc = testutil_daemon_call(d, "DEBUG.shutdown",
                              "{\"debug_info\":\"test\",\"unit\":null}", &res,
                              &err);
    if (rc) {
        LOG(ERROR, "DEBUG.shutdown failed: %s", xo_strerror(rc));
        goto out;
    }
    if (err || strcmp(res, "null") != 0) {
        LOG(ERROR, "DEBUG.shutdown answered '%s'", err ? err : res);
        rc = XO_EFAIL;
        goto out;
    }
    rc = testutil_daemon_reap(d, TESTUTIL_GUARD_MS, status_r);
    if (rc == XO_ETIMEDOUT)
        LOG(ERROR, "xenopsd-c still runs %d ms after DEBUG.shutdown",
            TESTUTIL_GUARD_MS);
out:
    free(res);
    free(err);
    return rc;
}

void
testutil_daemon_kill(struct testutil_daemon *d, int sig)
{
    if (d->pid <= 0)
        return;
    kill(d->pid, sig);
    if (testutil_daemon_reap(d, TESTUTIL_GUARD_MS, NULL) != 0 &&
        d->pid > 0) {
        kill(d->pid, SIGKILL);
        waitpid(d->pid, NULL, 0);
    }
    d->pid = -1;
}

void
testutil_daemon_cleanup(struct testutil_daemon *d)
{
    testutil_daemon_kill(d, SIGTERM);
    if (d->dir[0])
        nftw(d->dir, testutil_daemon_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    d->dir[0] = '\0';
}

static void *
testutil_daemon_loop_main(void *arg)
{
    struct testutil_daemon_loop *l = arg;
    bool stop;

    for (;;) {
        pthread_mutex_lock(&l->lock);
        stop = l->stop;
        pthread_mutex_unlock(&l->lock);
        if (stop || !l->step(l->arg))
            return NULL;
    }
}

int
testutil_daemon_loop_start(struct testutil_daemon_loop *l,
                           bool (*step)(void *arg), void *arg)
{
    int r;

    l->stop = false;
    l->step = step;
    l->arg = arg;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->cond, NULL);
    r = pthread_create(&l->thread, NULL, testutil_daemon_loop_main, l);
    if (r) {
        errno = r;
        LOGE(ERROR, "cannot start a client thread");
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->cond);
        return XO_EFAIL;
    }
    return 0;
}

void
testutil_daemon_loop_stop(struct testutil_daemon_loop *l)
{
    pthread_mutex_lock(&l->lock);
    l->stop = true;
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->cond);
}
