/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc_bench: what the message interface costs, measured on the real
 * daemon. Spawns xenopsd-c on the simulator in a temporary directory, then
 *
 *   1. reads its resident memory (VmRSS) with no VM,
 *   2. adds --vms halted VMs with VM.add and reads VmRSS again,
 *   3. runs VM.stat over the socket from 1 client, then from 8 concurrent
 *      clients, --requests calls per client, each call one rpc_call (a
 *      connection per call, as xapi's XML-RPC client and xenopsctl do),
 *
 * prints a table and the command line that reproduces it, and stops the
 * daemon with DEBUG.shutdown. Numbers are for comparing runs on one
 * machine (the 8/1 ratio, the per-VM cost), not absolute claims; see
 * bench/README.md. Not part of `make check`.
 *
 * The temporary directory is under /dev/shm when it exists: xenopsd keeps
 * its database on tmpfs (/var/run/nonpersistent) on real hosts.
 * The daemon is killed and the directory removed on every exit path,
 * SIGINT/SIGTERM included.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/utsname.h>

#include "../tests/testutil.h"
#include "rpc/rpc.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define BENCH_MAX_CLIENTS 8
#define BENCH_START_GUARD_MS 30000
#define BENCH_CALL_TIMEOUT_MS 30000

struct bench_opts {
    const char *daemon;
    long requests;              /* per client */
    long vms;
};

/* The one daemon and directory; cleanup may run from the signal thread. */
static pthread_mutex_t bench_lock = PTHREAD_MUTEX_INITIALIZER;
static struct testutil_daemon bench_daemon;

static int64_t
bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Kill the daemon if it still runs and remove the directory; idempotent. */
static void
bench_cleanup(void)
{
    pthread_mutex_lock(&bench_lock);
    testutil_daemon_kill(&bench_daemon, SIGKILL);
    testutil_daemon_cleanup(&bench_daemon);
    pthread_mutex_unlock(&bench_lock);
}

/* SIGINT/SIGTERM are blocked everywhere and taken here, so the cleanup
 * runs in a normal thread rather than a signal handler. */
static void *
bench_signal_main(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;

    if (sigwait(set, &sig) == 0) {
        fprintf(stderr, "rpc_bench: signal %d, cleaning up\n", sig);
        /* The clients' calls fail from here on; that is expected. */
        log_set_level(LOG_LVL_ERROR);
        bench_cleanup();
        _exit(128 + sig);
    }
    return NULL;
}

static int
bench_signals(void)
{
    static sigset_t set;
    pthread_t t;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    errno = pthread_sigmask(SIG_BLOCK, &set, NULL);
    if (!errno)
        errno = pthread_create(&t, NULL, bench_signal_main, &set);
    if (errno) {
        LOGE(ERROR, "cannot set up signal handling");
        return -1;
    }
    pthread_detach(t);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* Spawn the daemon in a fresh directory and wait for its socket. */
static int
bench_spawn(const char *daemon)
{
    static const char *const extra[] = { "--loglevel", "warn", NULL };
    /* The database on tmpfs, as xenopsd keeps it on real hosts. */
    const struct testutil_daemon_opts o = {
        .bin = daemon,
        .parent_dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp",
        .name = "xenops-bench",
        .extra_argv = extra,
        .log_to_file = true,
    };
    int rc;

    /* Under the lock, so that a signal's cleanup finds the daemon and its
     * directory either not yet there or recorded. */
    pthread_mutex_lock(&bench_lock);
    rc = testutil_daemon_start(&bench_daemon, &o);
    pthread_mutex_unlock(&bench_lock);
    if (!rc)
        rc = testutil_daemon_wait_ready(&bench_daemon, BENCH_START_GUARD_MS);
    return rc;
}

/* Bytes in the regular files of the database (nftw has no user data). */
static long long bench_db_bytes_sum;

static int
bench_db_add(const char *path, const struct stat *st, int flag,
             struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        bench_db_bytes_sum += st->st_size;
    return 0;
}

static long long
bench_db_bytes(void)
{
    bench_db_bytes_sum = 0;
    if (nftw(bench_daemon.db, bench_db_add, 16, FTW_PHYS) != 0)
        bench_db_bytes_sum = -1;
    return bench_db_bytes_sum;
}

/* VmRSS of the daemon in KiB, or -1. */
static long
bench_rss_kib(void)
{
    char path[64];
    char line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)bench_daemon.pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    }
    fclose(f);
    return kib;
}

/* One call that must succeed. */
static int
bench_call(const char *sock, const char *method, const char *params)
{
    char *res = NULL, *err = NULL;
    int rc;

    rc = rpc_call(sock, method, params, BENCH_CALL_TIMEOUT_MS, &res, &err);
    if (!rc && err) {
        LOG(ERROR, "%s failed: %s", method, err);
        rc = -1;
    }
    free(res);
    free(err);
    return rc;
}

static void
bench_vm_id(long i, char out[37])
{
    /* --vms is bounded well below 10^12, so the id stays a UUID. */
    snprintf(out, 37, "b0000000-0000-4000-8000-%012lu",
             (unsigned long)i % 1000000000000ul);
}

static int
bench_add_vms(const char *sock, long n)
{
    char id[37];

    for (long i = 0; i < n; i++) {
        char *p;
        int rc;

        bench_vm_id(i, id);
        p = xasprintf("{\"debug_info\":\"bench\",\"vm\":{\"id\":\"%s\","
                      "\"name\":\"bench-%ld\",\"memory_static_max\":1048576,"
                      "\"memory_dynamic_max\":1048576,"
                      "\"memory_dynamic_min\":1048576,\"vcpu_max\":1,"
                      "\"vcpus\":1,\"ty\":[\"PV\",{}]}}", id, i);
        rc = bench_call(sock, "VM.add", p);
        free(p);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the VM.stat load ---- */

struct bench_run {
    const char *sock;
    long requests;
    long vms;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int ready;
    bool go;
    long failed;
    char *first_error;          /* text of the first failure */
};

struct bench_client {
    struct bench_run *run;
    int index;
};

struct bench_result {
    double rate;                /* answered calls per second */
    long failed;
    char *first_error;
};

/* One VM.stat; NULL, or the failure as text (caller frees). */
static char *
bench_stat_once(const char *sock, const char *id)
{
    char *p = xasprintf("{\"debug_info\":\"bench\",\"id\":\"%s\"}", id);
    char *res = NULL, *err = NULL;
    int rc;

    rc = rpc_call(sock, "VM.stat", p, BENCH_CALL_TIMEOUT_MS, &res, &err);
    if (rc)
        err = xo_err_take_json(rc);
    free(p);
    free(res);
    return err;
}

static void *
bench_client_main(void *arg)
{
    struct bench_client *c = arg;
    struct bench_run *r = c->run;
    char *first = NULL;
    char id[37];
    long failed = 0;

    /* Start together: the clock runs from the release to the last join. */
    pthread_mutex_lock(&r->lock);
    r->ready++;
    pthread_cond_broadcast(&r->cond);
    while (!r->go)
        pthread_cond_wait(&r->cond, &r->lock);
    pthread_mutex_unlock(&r->lock);
    for (long k = 0; k < r->requests; k++) {
        char *err;

        bench_vm_id((c->index * r->requests + k) % r->vms, id);
        err = bench_stat_once(r->sock, id);
        if (!err)
            continue;
        failed++;
        if (!first)
            first = err;
        else
            free(err);
    }
    pthread_mutex_lock(&r->lock);
    r->failed += failed;
    if (!r->first_error) {
        r->first_error = first;
        first = NULL;
    }
    pthread_mutex_unlock(&r->lock);
    free(first);
    return NULL;
}

/* n clients, each `requests` VM.stat calls. Failed calls are counted, not
 * fatal: how often the daemon refuses under load is part of the result.
 * Returns -1 only when the clients could not be started. */
static int
bench_stat_rate(const char *sock, int n, long requests, long vms,
                struct bench_result *res)
{
    struct bench_run r = {
        .sock = sock, .requests = requests, .vms = vms,
        .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER,
    };
    struct bench_client c[BENCH_MAX_CLIENTS];
    pthread_t t[BENCH_MAX_CLIENTS];
    enum log_level saved = log_get_level();
    int started = 0;
    int64_t t0, t1;

    memset(res, 0, sizeof(*res));
    /* A refused call is counted and its first text kept; one log line per
     * failure would swamp the table. */
    log_set_level(LOG_LVL_ERROR);
    for (int i = 0; i < n; i++) {
        c[i].run = &r;
        c[i].index = i;
        if (pthread_create(&t[i], NULL, bench_client_main, &c[i]) != 0)
            break;
        started++;
    }
    pthread_mutex_lock(&r.lock);
    while (r.ready < started)
        pthread_cond_wait(&r.cond, &r.lock);
    t0 = bench_now_ns();
    r.go = true;
    pthread_cond_broadcast(&r.cond);
    pthread_mutex_unlock(&r.lock);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    t1 = bench_now_ns();
    log_set_level(saved);
    if (started < n) {
        LOG(ERROR, "only %d of %d client threads started", started, n);
        free(r.first_error);
        return -1;
    }
    res->rate = (double)((long)n * requests - r.failed) /
                ((double)(t1 - t0) / 1e9);
    res->failed = r.failed;
    res->first_error = r.first_error;
    return 0;
}

/* ---- report ---- */

static void
bench_machine(char *out, size_t len)
{
    char line[256], model[128] = "unknown cpu";
    struct utsname u;
    FILE *f = fopen("/proc/cpuinfo", "r");
    char *colon;

    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "model name", 10) == 0 &&
            (colon = strchr(line, ':'))) {
            snprintf(model, sizeof(model), "%s", colon + 2);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    }
    if (f)
        fclose(f);
    if (uname(&u) < 0)
        snprintf(u.release, sizeof(u.release), "?");
    snprintf(out, len, "%ld cpus online (%s), Linux %s",
             sysconf(_SC_NPROCESSORS_ONLN), model, u.release);
}

static void
bench_print_command(int argc, char **argv)
{
    printf("command:");
    for (int i = 0; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
}

static void
bench_usage(FILE *f)
{
    fprintf(f,
            "usage: rpc_bench [--daemon PATH] [--requests N] [--vms N]\n"
            "  --daemon    xenopsd-c to run (default "
            "$top_builddir/xenopsd-c, else ./xenopsd-c)\n"
            "  --requests  VM.stat calls per client (default 5000)\n"
            "  --vms       halted VMs to add (default 1000, 1..1000000)\n");
}

static int
bench_parse(int argc, char **argv, struct bench_opts *o)
{
    static char fallback[4096];
    const char *top = getenv("top_builddir");

    snprintf(fallback, sizeof(fallback), "%s/xenopsd-c", top ? top : ".");
    o->daemon = fallback;
    o->requests = 5000;
    o->vms = 1000;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;

        if (strcmp(argv[i], "--help") == 0) {
            bench_usage(stdout);
            exit(0);
        }
        if (i + 1 >= argc) {
            bench_usage(stderr);
            return -1;
        }
        if (strcmp(argv[i], "--daemon") == 0) {
            o->daemon = argv[++i];
            continue;
        }
        if (strcmp(argv[i], "--requests") == 0)
            o->requests = strtol(argv[++i], &end, 10);
        else if (strcmp(argv[i], "--vms") == 0)
            o->vms = strtol(argv[++i], &end, 10);
        if (!end || *end || o->requests < 1 || o->vms < 1 ||
            o->requests > 100000000 || o->vms > 1000000) {
            bench_usage(stderr);
            return -1;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct bench_opts o;
    const char *sock = bench_daemon.sock;
    char machine[256], date[64];
    long rss0, rss1, rss2;
    long long db_bytes;
    struct bench_result r1 = { 0 }, r8 = { 0 };
    double add_s;
    int64_t t0;
    time_t now = time(NULL);
    int rc = 1;

    if (bench_parse(argc, argv, &o))
        return 2;
    log_set_level(LOG_LVL_WARN);
    if (bench_signals() || bench_spawn(o.daemon))
        goto out;
    if (bench_call(sock, "query", "{\"debug_info\":\"bench\",\"unit\":null}"))
        goto out;
    rss0 = bench_rss_kib();
    t0 = bench_now_ns();
    if (bench_add_vms(sock, o.vms))
        goto out;
    add_s = (double)(bench_now_ns() - t0) / 1e9;
    rss1 = bench_rss_kib();
    db_bytes = bench_db_bytes();
    if (bench_stat_rate(sock, 1, o.requests, o.vms, &r1) ||
        bench_stat_rate(sock, BENCH_MAX_CLIENTS, o.requests, o.vms, &r8))
        goto out;
    rss2 = bench_rss_kib();
    if (rss0 < 0 || rss1 < 0 || rss2 < 0)
        goto out;
    if (bench_call(sock, "DEBUG.shutdown",
                   "{\"debug_info\":\"bench\",\"unit\":null}"))
        goto out;

    bench_machine(machine, sizeof(machine));
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
    printf("xenopsd-c rpc bench, %s, %s\n\n", date, machine);
    printf("VM.stat over the socket, one connection per call, "
           "%ld calls per client\n", o.requests);
    printf("  clients  calls   failed    req/s\n");
    printf("  %7d  %6ld  %6ld  %7.0f\n", 1, o.requests, r1.failed,
           r1.rate);
    printf("  %7d  %6ld  %6ld  %7.0f\n", BENCH_MAX_CLIENTS,
           BENCH_MAX_CLIENTS * o.requests, r8.failed, r8.rate);
    printf("  ratio %d/1: %.2f\n", BENCH_MAX_CLIENTS, r8.rate / r1.rate);
    if (r1.first_error)
        printf("  first failure, 1 client: %s\n", r1.first_error);
    if (r8.first_error)
        printf("  first failure, %d clients: %s\n", BENCH_MAX_CLIENTS,
               r8.first_error);
    printf("\n");
    printf("resident memory of xenopsd-c (VmRSS)\n");
    printf("  halted VMs  KiB\n");
    printf("  %10d  %ld\n", 0, rss0);
    printf("  %10ld  %ld\n", o.vms, rss1);
    printf("  per VM: %.1f KiB (%ld VM.add calls took %.2f s)\n",
           (double)(rss1 - rss0) / (double)o.vms, o.vms, add_s);
    printf("  after the VM.stat runs: %ld KiB\n", rss2);
    /* On tmpfs these pages are the host's, not the daemon's VmRSS. */
    printf("  database files (%s, not in VmRSS): %lld KiB\n\n",
           strncmp(bench_daemon.dir, "/dev/shm/", 9) == 0 ? "tmpfs" : "disk",
           db_bytes / 1024);
    bench_print_command(argc, argv);
    rc = 0;
out:
    /* After DEBUG.shutdown the daemon exits by itself; give it the chance
     * before the cleanup's SIGKILL. */
    for (int i = 0; rc == 0 && i < 500; i++) {
        int r;

        pthread_mutex_lock(&bench_lock);
        r = testutil_daemon_reap(&bench_daemon, 0, NULL);
        pthread_mutex_unlock(&bench_lock);
        if (r != XO_ETIMEDOUT)
            break;
        testutil_sleep_ms(10);
    }
    bench_cleanup();
    free(r1.first_error);
    free(r8.first_error);
    return rc;
}
