/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sm_exec: run one storage-driver command as a child process. Every
 * SMAPIv1 and SMAPIv3 call leaves the daemon through here
 * (design/ARCHITECTURE.md section 5), so the rules live in one place:
 * - execve with an explicit argv, never a shell;
 * - a scrubbed environment: PATH=/usr/sbin:/usr/bin:/sbin:/bin, the
 *   caller's explicit "NAME=value" entries, and every variable of the
 *   daemon's own environment whose name starts with XO_SM_ (the knobs of
 *   the sample drivers in scripts/sm/, so tests and benchmarks can steer
 *   them through the daemon);
 * - stdin from a buffer or /dev/null; stdout and stderr captured, each
 *   bounded (beyond the bound the child is killed and the call fails);
 * - its own process group, killed as a whole (SIGKILL) at the timeout, so
 *   a hung driver cannot leave a grandchild behind; the child is reaped;
 * - signal dispositions and mask reset to defaults, every descriptor
 *   other than 0-2 closed at exec;
 * - stderr lines go to the log (bounded).
 *
 * Errors: every failure is XO_EBACKEND with a Storage_backend_error detail
 * [code, [driver, command, vdi, reason, stdout excerpt, stderr excerpt]]
 * where code names what happened: SCRIPT_MISSING, SCRIPT_NOT_EXECUTABLE,
 * SCRIPT_TIMEOUT, SCRIPT_FAILED (signal, failure to start; adapters also
 * use it for a non-zero exit or garbage output), SCRIPT_OUTPUT_TOO_LARGE.
 * The names follow xapi-storage-script (reference/interfaces.md 4).
 *
 * Threading: sm_exec_run is thread-safe and blocks only its caller (with
 * the deadline). It reads the process environment, so nobody may call
 * setenv() concurrently (the daemon never does; tests do it between runs).
 * The child is reaped with waitpid(pid): nothing else in the process may
 * reap children it did not start.
 */
#ifndef XENOPS_SM_EXEC_H
#define XENOPS_SM_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/json.h"

#define SM_EXEC_PATH "PATH=/usr/sbin:/usr/bin:/sbin:/bin"
#define SM_EXEC_KNOB_PREFIX "XO_SM_"
/* Default bound on each of stdout and stderr. */
#define SM_EXEC_MAX_OUTPUT (1024u * 1024u)

struct sm_exec_call {
    /* For errors and logs only. */
    const char *driver;     /* e.g. "XoFileSR" or a v3 plugin name */
    const char *command;    /* e.g. "vdi_attach", "Datapath.attach" */
    const char *vdi;        /* NULL or "" when the call has no VDI */
    /* What runs. */
    const char *path;                 /* the executable */
    const char *const *argv;          /* argv[0] included; NULL-ended */
    const char *const *env;           /* "NAME=value"; NULL-ended or NULL */
    const char *input;                /* stdin bytes; NULL: /dev/null */
    size_t input_len;
    int timeout_ms;                   /* > 0 */
    size_t max_output;                /* per stream; 0: SM_EXEC_MAX_OUTPUT */
};

struct sm_exec_result {
    int exit_status;        /* exit code, or -1 if the child did not exit */
    int signal;             /* the signal that ended it, or 0 */
    bool timed_out;
    char *out;              /* NUL-terminated (binary data may hold NULs) */
    size_t out_len;
    char *err;
    size_t err_len;
};

/*
 * Run the call. Returns 0 when the child ran and exited, whatever its exit
 * status (the adapter interprets it); otherwise XO_EBACKEND with the
 * detail above. res is always filled as far as the child got (output read
 * so far, signal, timed_out) and must be released with
 * sm_exec_result_dispose, also on error.
 */
int sm_exec_run(const struct sm_exec_call *call, struct sm_exec_result *res);
void sm_exec_result_dispose(struct sm_exec_result *res);

/*
 * Fail a call: log one line and set Storage_backend_error [code, [driver,
 * command, vdi, reason, stdout excerpt, stderr excerpt]] (excerpts bounded
 * and made valid UTF-8; empty when res is NULL). Returns XO_EBACKEND.
 * For adapters that find the output unacceptable (non-zero exit, garbage).
 */
int sm_exec_error(const struct sm_exec_call *call,
                  const struct sm_exec_result *res, const char *code,
                  const char *reason);

/*
 * Decode the JSON text (len bytes; NULL: none) a call answered with into
 * *value_r (freed with yajl_tree_free). Text that is not JSON fails the
 * call as sm_exec_error does, with SCRIPT_FAILED and reason.
 */
int sm_exec_json(const struct sm_exec_call *call,
                 const struct sm_exec_result *res, const char *text,
                 size_t len, const char *reason, yajl_val *value_r);

/*
 * The entry of dir whose name matches name case-insensitively (an exact
 * match wins, then the smallest name in byte order), as a malloc'd
 * "dir/entry". When nothing matches, "dir/name" (running it then fails
 * with SCRIPT_MISSING). Returns 0 (always; an unreadable dir is "no
 * match").
 */
int sm_exec_find(const char *dir, const char *name, char **path_r);

/*
 * A value that changes when the file at path changes (inode, size,
 * mtime; symbolic links followed). XO_ENOTFOUND (no detail) if it cannot
 * be stat'ed.
 */
int sm_exec_stamp(const char *path, uint64_t *stamp_r);

/* A copy of s of at most max bytes that is valid UTF-8 without control
 * characters other than '\n' and '\t' (others become '?'), for error
 * params and log lines. Caller frees. */
char *sm_exec_printable(const char *s, size_t len, size_t max);

#endif
