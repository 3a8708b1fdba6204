/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * testutil: what the tests share. Small helpers (comparing JSON, the
 * clock, sleeping, waiting for a simulated guest's heartbeat), and
 * running the real xenopsd-c binary for an end-to-end test or a bench (testutil_daemon_*).
 *
 * testutil_daemon_* run the real xenopsd-c binary. It owns one temporary
 * directory per daemon (an empty config file, the sockets path and the
 * database path inside it), the daemon's process
 * and the calls that start, wait for, stop and remove them. It does not
 * own what a caller does with the daemon: calls that must succeed or fail
 * are the caller's assertions. No cmocka here, so the bench links it too.
 *
 * Contract:
 * - The caller owns the struct; a zeroed one is "nothing started".
 *   Whatever testutil_daemon_start returns, testutil_daemon_cleanup undoes it;
 *   cleanup is idempotent.
 * - The paths live in the struct, not on the heap: a signal thread may
 *   run cleanup while other threads still read d->sock (their calls then
 *   fail, nothing is freed under them).
 * - Not thread-safe: a caller that cleans up from another thread locks
 *   around start, reap and cleanup itself.
 * - Errors are enum xo_err codes, logged once (log.h) where detected.
 * - The daemon gets PR_SET_PDEATHSIG: it never outlives its caller.
 */
#ifndef XENOPS_TESTS_TESTUTIL_H
#define XENOPS_TESTS_TESTUTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <yajl/yajl_tree.h>

struct sim_guest;

/* Structural JSON comparison (json_equal: member order ignored) of a
 * tree or a text against the expected text. False, with both printed on
 * stderr, if they differ or a text does not parse; actual may be NULL
 * (differs). Callers assert on the result. */
bool testutil_json_same(const char *actual, const char *expected);
bool testutil_json_tree_same(yajl_val actual, const char *expected);

/* CLOCK_MONOTONIC milliseconds. */
int64_t testutil_now_ms(void);
/* Sleep ms milliseconds, resuming after signals. Never use it to make it
 * "likely" that another thread is blocked: wait for a state instead. */
void testutil_sleep_ms(long ms);
/* Wait (at most limit_ms) until the guest has ticked target times; true
 * if it did. Safe on any thread; no cmocka here. */
bool testutil_wait_heartbeat(struct sim_guest *g, uint64_t target,
                             int limit_ms);

/* A connected stream socket to the Unix socket path, or -1 (errno set):
 * for tests that write raw HTTP. */
int testutil_unix_connect(const char *path);

/* Deadlock guards only: nothing is expected to come near them. */
#define TESTUTIL_GUARD_MS 30000
#define TESTUTIL_CALL_TIMEOUT_MS 20000
/* The one simulated SR every daemon started here has. */
#define TESTUTIL_SR "5a3e0c3e-0000-4000-8000-000000000003"

struct testutil_daemon {
    char dir[64];               /* the temporary directory, "" if none */
    char sock[108];             /* <dir>/run/xenopsd; sun_path's size */
    char db[128];               /* <dir>/db, the database path */
    char log[128];              /* the daemon's stderr file, "" if none */
    pid_t pid;                  /* <= 0: not running or already reaped */
};

struct testutil_daemon_opts {
    /* The binary; NULL means $top_builddir/xenopsd-c ("." if unset). */
    const char *bin;
    /* Where the temporary directory goes; NULL means /tmp. */
    const char *parent_dir;
    /* The directory's name before the mkdtemp suffix, e.g. "xenops-api". */
    const char *name;
    /* NULL, or a NULL-terminated list appended to the standard arguments. */
    const char *const *extra_argv;
    /* The daemon's stderr to <dir>/daemon.log, replayed if it fails to
     * start; otherwise it shares the caller's stderr. */
    bool log_to_file;
};

/*
 * Create the directory and an empty config file (so the host's
 * /etc/xenopsd.conf cannot change what runs), then fork and exec the
 * daemon on the simulator with one simulated SR, legacy VBD plug off and,
 * when not root, this uid allowed on the socket. Does not wait for the
 * socket: see testutil_daemon_wait_ready. Returns 0, XO_EINVAL if the
 * directory name does not fit, or XO_EIO.
 */
int testutil_daemon_start(struct testutil_daemon *d,
                          const struct testutil_daemon_opts *o);

/* Start with the defaults but the directory name, and wait for the socket
 * within the guard. 0, or an error after cleaning up whatever started. */
int testutil_daemon_spawn(struct testutil_daemon *d, const char *name);

/* Wait up to timeout_ms for the socket to accept a connection. 0, or
 * XO_EFAIL if the daemon exited first (left for cleanup to reap), or
 * XO_ETIMEDOUT. */
int testutil_daemon_wait_ready(const struct testutil_daemon *d,
                               int timeout_ms);

/* rpc_call on the daemon's socket with TESTUTIL_CALL_TIMEOUT_MS: the
 * same results and ownership (*result_r or *error_r, caller frees). */
int testutil_daemon_call(const struct testutil_daemon *d, const char *method,
                         const char *params, char **result_r, char **error_r);

/* A call that must succeed: 0 and its parsed result in *result_r (may be
 * NULL; else freed with yajl_tree_free), or the transport's error, XO_EFAIL
 * for an error reply, XO_EINVAL for a result that is not JSON. */
int testutil_daemon_call_json(const struct testutil_daemon *d,
                              const char *method, const char *params,
                              yajl_val *result_r);

/* Wait up to timeout_ms (0: just look) for the daemon to exit. 0 and its
 * wait status in *status_r (may be NULL), pid then -1; XO_ETIMEDOUT if it
 * still runs; XO_EFAIL if there is no such child. */
int testutil_daemon_reap(struct testutil_daemon *d, int timeout_ms,
                         int *status_r);

/* DEBUG.shutdown, which must answer null, then reap within the guard.
 * 0 and the wait status in *status_r; otherwise an error and the daemon
 * is left for cleanup. */
int testutil_daemon_shutdown(struct testutil_daemon *d, int *status_r);

/* Send sig and reap; SIGKILL if the daemon outlives the guard. No-op when
 * it is not running. */
void testutil_daemon_kill(struct testutil_daemon *d, int sig);

/* Stop the daemon (SIGTERM, then SIGKILL after the guard) if it runs and
 * remove the directory tree. Idempotent. */
void testutil_daemon_cleanup(struct testutil_daemon *d);

/*
 * A thread that repeats step(arg) until the step returns false or the loop
 * is stopped: a client that keeps calling the daemon while a test does
 * something else. The step runs without the lock; the caller keeps its
 * counters under lock and broadcasts cond when they change.
 */
struct testutil_daemon_loop {
    pthread_t thread;
    pthread_mutex_t lock;       /* stop, and the caller's counters */
    pthread_cond_t cond;
    bool stop;
    bool (*step)(void *arg);
    void *arg;
};

/* Initialise lock and cond and start the thread. 0, or XO_EFAIL (nothing
 * left to stop). */
int testutil_daemon_loop_start(struct testutil_daemon_loop *l,
                               bool (*step)(void *arg), void *arg);
/* Let the current step finish, join the thread, destroy lock and cond. */
void testutil_daemon_loop_stop(struct testutil_daemon_loop *l);

#endif
