/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * One driver command as a child process. The parent prepares everything
 * that allocates (argv, envp, descriptors) before fork(), because the
 * child of a multi-threaded process may only make async-signal-safe calls
 * until execve. The child reports an execve failure through a
 * close-on-exec pipe (EOF there means the exec succeeded).
 *
 * The parent then runs one poll loop with the call's deadline: it feeds
 * stdin, drains stdout/stderr into bounded buffers and watches for the
 * child's exit through a pidfd (kernels without pidfd_open: a short poll
 * tick and waitpid(WNOHANG)). The loop ends when the child has exited,
 * not when the pipes close: a grandchild that keeps them open cannot
 * stall the call. At the deadline, or when an output bound is exceeded,
 * the whole process group gets SIGKILL before the child is reaped, so the
 * group id cannot be reused while we signal it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sm/sm_exec.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* Bounds on what reaches the log and the error params. */
#define EXEC_LOG_LINES 16
#define EXEC_LOG_LINE_MAX 512
#define EXEC_EXCERPT_MAX 2048
/* Without a pidfd the loop re-checks the child this often. */
#define EXEC_TICK_MS 20

extern char **environ;

struct exec_buf {
    char *data;
    size_t len;
    size_t cap;
};

void
sm_exec_result_dispose(struct sm_exec_result *res)
{
    if (!res)
        return;
    free(res->out);
    free(res->err);
    res->out = NULL;
    res->err = NULL;
    res->out_len = 0;
    res->err_len = 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. */
static size_t
utf8_seq_len(const unsigned char *s, size_t n)
{
    size_t len;
    unsigned int cp;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

char *
sm_exec_printable(const char *s, size_t len, size_t max)
{
    const unsigned char *u = (const unsigned char *)s;
    char *out = xmalloc((len < max ? len : max) + 1);
    size_t i = 0, o = 0;

    while (i < len && o < max) {
        size_t n = utf8_seq_len(u + i, len - i);

        if (n == 0 || (n == 1 && u[i] < 0x20 && u[i] != '\n' &&
                       u[i] != '\t') || u[i] == 0x7f) {
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n > max)
            break;
        memcpy(out + o, u + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return out;
}

int
sm_exec_error(const struct sm_exec_call *call,
              const struct sm_exec_result *res, const char *code,
              const char *reason)
{
    char *out = NULL, *err = NULL;
    const char *vdi = call->vdi ? call->vdi : "";
    size_t skip = 0;
    int rc;

    if (res && res->out)
        out = sm_exec_printable(res->out, res->out_len, EXEC_EXCERPT_MAX);
    /* The end of stderr is where a traceback says what went wrong. */
    if (res && res->err) {
        if (res->err_len > EXEC_EXCERPT_MAX)
            skip = res->err_len - EXEC_EXCERPT_MAX;
        err = sm_exec_printable(res->err + skip, res->err_len - skip,
                                EXEC_EXCERPT_MAX);
    }
    {
        const char *p[] = { call->driver, call->command, vdi, reason,
                            out ? out : "", err ? err : "" };

        LOG(ERROR, "driver '%s' command '%s' vdi '%s': %s (%s)",
            call->driver, call->command, vdi, reason, code);
        rc = xo_err_storage(code, p, 6);
    }
    free(out);
    free(err);
    return rc;
}

int
sm_exec_json(const struct sm_exec_call *call,
             const struct sm_exec_result *res, const char *text, size_t len,
             const char *reason, yajl_val *value_r)
{
    *value_r = NULL;
    if (!text || json_parse(text, len, value_r) != 0) {
        /* The parser's own detail is replaced by the call's. */
        xo_err_clear();
        return sm_exec_error(call, res, "SCRIPT_FAILED", reason);
    }
    return 0;
}

int
sm_exec_find(const char *dir, const char *name, char **path_r)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char *best = NULL;

    while (d && (e = readdir(d)) != NULL) {
        if (strcasecmp(e->d_name, name) != 0)
            continue;
        if (strcmp(e->d_name, name) == 0) {
            free(best);
            best = xstrdup(e->d_name);
            break;
        }
        if (!best || strcmp(e->d_name, best) < 0) {
            free(best);
            best = xstrdup(e->d_name);
        }
    }
    if (d)
        closedir(d);
    *path_r = xasprintf("%s/%s", dir, best ? best : name);
    free(best);
    return 0;
}

int
sm_exec_stamp(const char *path, uint64_t *stamp_r)
{
    struct stat st;
    uint64_t h = 1469598103934665603ULL;
    uint64_t parts[5];

    if (stat(path, &st) < 0)
        return XO_ENOTFOUND;
    parts[0] = (uint64_t)st.st_ino;
    parts[1] = (uint64_t)st.st_dev;
    parts[2] = (uint64_t)st.st_size;
    parts[3] = (uint64_t)st.st_mtim.tv_sec;
    parts[4] = (uint64_t)st.st_mtim.tv_nsec;
    /* FNV-1a over the fields: any change gives another value. */
    for (size_t i = 0; i < 5; i++) {
        for (int b = 0; b < 8; b++) {
            h ^= (parts[i] >> (8 * b)) & 0xff;
            h *= 1099511628211ULL;
        }
    }
    *stamp_r = h;
    return 0;
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* envp: PATH, the caller's entries, then XO_SM_* from our environment
 * (unless the caller set the same name). Strings are borrowed. */
static const char **
build_env(const struct sm_exec_call *call)
{
    size_t n = 1, k = 0;
    const char **envp;

    for (size_t i = 0; call->env && call->env[i]; i++)
        n++;
    for (char **e = environ; e && *e; e++)
        n++;
    envp = xcalloc(n + 1, sizeof(*envp));
    envp[k++] = SM_EXEC_PATH;
    for (size_t i = 0; call->env && call->env[i]; i++)
        envp[k++] = call->env[i];
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        bool dup = false;

        if (!eq || strncmp(*e, SM_EXEC_KNOB_PREFIX,
                           strlen(SM_EXEC_KNOB_PREFIX)) != 0)
            continue;
        for (size_t i = 1; i < k && !dup; i++)
            dup = strncmp(envp[i], *e, (size_t)(eq - *e) + 1) == 0;
        if (!dup)
            envp[k++] = *e;
    }
    return envp;
}

/* Move fd to a number >= 3 (close-on-exec) so that the child's dup2 onto
 * 0-2 never overwrites one of its own sources. */
static int
fd_above_stdio(int fd)
{
    int nfd;

    if (fd < 0 || fd > 2)
        return fd;
    nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

static int
set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);

    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* In the child: async-signal-safe calls only. */
static void __attribute__((noreturn))
child_exec(const char *path, char *const argv[], char *const envp[],
           int in_fd, int out_fd, int err_fd, int report_fd)
{
    /* An all-zero kernel sigaction is SIG_DFL, no flags, empty mask on
     * every architecture, whatever its field order. */
    static const unsigned long dfl[8];
    sigset_t none;
    int e;

    setpgid(0, 0);
    /* The daemon ignores SIGPIPE and blocks signals in worker threads;
     * both would otherwise be inherited across execve. The raw call also
     * resets the signals libc reserves (32, 33), which sigaction()
     * refuses to touch but an ancestor may have ignored. */
    for (int sig = 1; sig < NSIG; sig++)
        syscall(SYS_rt_sigaction, sig, dfl, NULL, (size_t)8);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        goto fail;
    if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
        long max = sysconf(_SC_OPEN_MAX);

        if (max < 0 || max > 65536)
            max = 65536;
        for (int fd = 3; fd < max; fd++)
            fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    execve(path, argv, envp);
fail:
    e = errno;
    if (write(report_fd, &e, sizeof(e)) < 0)
        _exit(126);
    _exit(127);
}

static int
buf_drain(int fd, struct exec_buf *b, size_t max, bool *open, bool *over)
{
    char chunk[16384];

    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (r <= 0) {
            *open = false;
            return 0;
        }
        if (b->len + (size_t)r > max) {
            *over = true;
            return 0;
        }
        if (b->len + (size_t)r + 1 > b->cap) {
            b->cap = (b->len + (size_t)r + 1) * 2;
            b->data = xrealloc(b->data, b->cap);
        }
        memcpy(b->data + b->len, chunk, (size_t)r);
        b->len += (size_t)r;
        b->data[b->len] = '\0';
    }
}

static void
log_stderr(const struct sm_exec_call *call, const struct exec_buf *b)
{
    const char *p = b->data, *end = b->data + b->len;
    int lines = 0;

    while (p && p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line;

        if (lines == EXEC_LOG_LINES) {
            LOG(INFO, "driver '%s' command '%s' stderr: (more lines "
                "omitted)", call->driver, call->command);
            break;
        }
        line = sm_exec_printable(p, n, EXEC_LOG_LINE_MAX);
        LOG(INFO, "driver '%s' command '%s' stderr: '%s'", call->driver,
            call->command, line);
        free(line);
        lines++;
        p += n + 1;
    }
}

/* Check before forking: the common failures get a precise error. */
static int
check_executable(const struct sm_exec_call *call)
{
    struct stat st;
    char *why;
    int rc;

    if (stat(call->path, &st) < 0 || !S_ISREG(st.st_mode)) {
        why = xasprintf("'%s' is not a file; check that it exists and has "
                        "the right permissions", call->path);
        rc = sm_exec_error(call, NULL, "SCRIPT_MISSING", why);
        free(why);
        return rc;
    }
    if (access(call->path, X_OK) < 0) {
        why = xasprintf("'%s' is not executable: %s", call->path,
                        strerror(errno));
        rc = sm_exec_error(call, NULL, "SCRIPT_NOT_EXECUTABLE", why);
        free(why);
        return rc;
    }
    return 0;
}

static int
exec_failed(const struct sm_exec_call *call, int e)
{
    char *why;
    int rc;

    if (e == ENOENT) {
        why = xasprintf("cannot execute '%s': %s (missing interpreter?)",
                        call->path, strerror(e));
        rc = sm_exec_error(call, NULL, "SCRIPT_NOT_EXECUTABLE", why);
    } else if (e == EACCES || e == ENOEXEC || e == EPERM) {
        why = xasprintf("cannot execute '%s': %s", call->path, strerror(e));
        rc = sm_exec_error(call, NULL, "SCRIPT_NOT_EXECUTABLE", why);
    } else {
        why = xasprintf("cannot start '%s': %s", call->path, strerror(e));
        rc = sm_exec_error(call, NULL, "SCRIPT_FAILED", why);
    }
    free(why);
    return rc;
}

static void
kill_group(pid_t pid)
{
    if (kill(-pid, SIGKILL) < 0)
        kill(pid, SIGKILL);
}

static void
reap(pid_t pid, int *status_r)
{
    while (waitpid(pid, status_r, 0) < 0 && errno == EINTR)
        ;
}

struct exec_state {
    const struct sm_exec_call *call;
    pid_t pid;
    int in_fd, out_fd, err_fd, pidfd;
    size_t in_off;
    struct exec_buf out, err;
    bool out_open, err_open, over, exited;
    int status;
};

/* Feed stdin without blocking; a child that does not read it is fine. */
static void
feed_input(struct exec_state *s)
{
    const struct sm_exec_call *c = s->call;

    while (s->in_off < c->input_len) {
        ssize_t r = send(s->in_fd, c->input + s->in_off,
                         c->input_len - s->in_off,
                         MSG_NOSIGNAL | MSG_DONTWAIT);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r < 0)
            break;
        s->in_off += (size_t)r;
    }
    close(s->in_fd);
    s->in_fd = -1;
}

static void
check_exit(struct exec_state *s)
{
    pid_t r = waitpid(s->pid, &s->status, WNOHANG);

    if (r == s->pid) {
        s->exited = true;
    } else if (r < 0 && errno == ECHILD) {
        /* Reaped behind our back (SIGCHLD ignored): status unknown. */
        s->exited = true;
        s->status = -1;
    }
}

/*
 * The poll loop. Returns 0 when the child exited by itself (s->status
 * set), 1 at the deadline, 2 when an output bound was exceeded; in the
 * last two cases the child is still to be killed and reaped.
 */
static int
exec_loop(struct exec_state *s, int64_t deadline, size_t max)
{
    for (;;) {
        struct pollfd pfd[4];
        int n = 0, wait_ms;
        int64_t left = deadline - now_ms();

        if (s->exited) {
            /* Everything the child wrote is in the pipes now. */
            if (s->out_open)
                buf_drain(s->out_fd, &s->out, max, &s->out_open, &s->over);
            if (s->err_open)
                buf_drain(s->err_fd, &s->err, max, &s->err_open, &s->over);
            return s->over ? 2 : 0;
        }
        if (left <= 0)
            return 1;
        wait_ms = left > 60000 ? 60000 : (int)left;
        if (s->pidfd < 0 && wait_ms > EXEC_TICK_MS)
            wait_ms = EXEC_TICK_MS;
        if (s->out_open)
            pfd[n++] = (struct pollfd){ .fd = s->out_fd, .events = POLLIN };
        if (s->err_open)
            pfd[n++] = (struct pollfd){ .fd = s->err_fd, .events = POLLIN };
        if (s->in_fd >= 0)
            pfd[n++] = (struct pollfd){ .fd = s->in_fd, .events = POLLOUT };
        if (s->pidfd >= 0)
            pfd[n++] = (struct pollfd){ .fd = s->pidfd, .events = POLLIN };
        if (poll(pfd, (nfds_t)n, wait_ms) < 0 && errno != EINTR)
            return 1;
        if (s->in_fd >= 0)
            feed_input(s);
        if (s->out_open)
            buf_drain(s->out_fd, &s->out, max, &s->out_open, &s->over);
        if (s->err_open)
            buf_drain(s->err_fd, &s->err, max, &s->err_open, &s->over);
        if (s->over)
            return 2;
        check_exit(s);
    }
}

static int
pidfd_for(pid_t pid)
{
#ifdef SYS_pidfd_open
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);

    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
#else
    (void)pid;
    return -1;
#endif
}

static int
start_child(struct exec_state *s, const char **envp, int *child_in,
            int *child_out, int *child_err, int *report)
{
    const struct sm_exec_call *c = s->call;
    int e = 0;
    ssize_t r;

    s->pid = fork();
    if (s->pid < 0) {
        char *why = xasprintf("cannot fork: %s", strerror(errno));
        int rc = sm_exec_error(c, NULL, "SCRIPT_FAILED", why);

        free(why);
        return rc;
    }
    if (s->pid == 0)
        child_exec(c->path, (char *const *)c->argv, (char *const *)envp,
                   *child_in, *child_out, *child_err, report[1]);
    /* Also here, so that a kill of the group at an early deadline cannot
     * miss a child that has not run setpgid yet. */
    setpgid(s->pid, s->pid);
    close(*child_in);
    close(*child_out);
    close(*child_err);
    close(report[1]);
    *child_in = *child_out = *child_err = report[1] = -1;
    do {
        r = read(report[0], &e, sizeof(e));
    } while (r < 0 && errno == EINTR);
    if (r == (ssize_t)sizeof(e)) {
        reap(s->pid, &s->status);
        s->pid = -1;
        return exec_failed(c, e);
    }
    return 0;
}

static int
finish(struct exec_state *s, int how, struct sm_exec_result *res)
{
    const struct sm_exec_call *c = s->call;
    char *why = NULL;
    int rc = 0;

    /* Only a child not yet reaped: once reaped, its pid (the group id)
     * may name someone else. */
    if (how != 0 && !s->exited) {
        kill_group(s->pid);
        reap(s->pid, &s->status);
    }
    if (s->err.len)
        log_stderr(c, &s->err);
    res->out = s->out.data;
    res->out_len = s->out.len;
    res->err = s->err.data;
    res->err_len = s->err.len;
    s->out.data = s->err.data = NULL;
    if (how == 1) {
        res->timed_out = true;
        why = xasprintf("no answer within %d ms; process group killed",
                        c->timeout_ms);
        rc = sm_exec_error(c, res, "SCRIPT_TIMEOUT", why);
    } else if (how == 2) {
        why = xasprintf("output over %zu bytes; process group killed",
                        c->max_output ? c->max_output : SM_EXEC_MAX_OUTPUT);
        rc = sm_exec_error(c, res, "SCRIPT_OUTPUT_TOO_LARGE", why);
    } else if (WIFSIGNALED(s->status)) {
        res->signal = WTERMSIG(s->status);
        why = xasprintf("signalled: SIG%s", sigabbrev_np(res->signal)
                        ? sigabbrev_np(res->signal) : "?");
        rc = sm_exec_error(c, res, "SCRIPT_FAILED", why);
    } else if (s->status != -1 && WIFEXITED(s->status)) {
        res->exit_status = WEXITSTATUS(s->status);
    } else {
        rc = sm_exec_error(c, res, "SCRIPT_FAILED", "exit status unknown "
                           "(the child was reaped elsewhere)");
    }
    free(why);
    return rc;
}

int
sm_exec_run(const struct sm_exec_call *call, struct sm_exec_result *res)
{
    struct exec_state s = { .call = call, .pid = -1, .in_fd = -1,
                            .out_fd = -1, .err_fd = -1, .pidfd = -1,
                            .out_open = true, .err_open = true };
    const char **envp = NULL;
    int in[2] = { -1, -1 }, out[2] = { -1, -1 }, err[2] = { -1, -1 };
    int report[2] = { -1, -1 };
    size_t max = call->max_output ? call->max_output : SM_EXEC_MAX_OUTPUT;
    int64_t deadline = now_ms() + call->timeout_ms;
    int rc, how;

    memset(res, 0, sizeof(*res));
    res->exit_status = -1;
    if (call->timeout_ms <= 0) {
        rc = sm_exec_error(call, NULL, "SCRIPT_FAILED", "no timeout given");
        goto out;
    }
    rc = check_executable(call);
    if (rc)
        goto out;
    if (call->input) {
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in) < 0)
            in[0] = in[1] = -1;
    } else {
        in[0] = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    if (pipe2(out, O_CLOEXEC) < 0 || pipe2(err, O_CLOEXEC) < 0 ||
        pipe2(report, O_CLOEXEC) < 0 || in[0] < 0) {
        char *why = xasprintf("cannot create pipes: %s", strerror(errno));

        rc = sm_exec_error(call, NULL, "SCRIPT_FAILED", why);
        free(why);
        goto out;
    }
    for (int i = 0; i < 2; i++) {
        in[i] = fd_above_stdio(in[i]);
        out[i] = fd_above_stdio(out[i]);
        err[i] = fd_above_stdio(err[i]);
        report[i] = fd_above_stdio(report[i]);
    }
    envp = build_env(call);
    rc = start_child(&s, envp, &in[0], &out[1], &err[1], report);
    if (rc)
        goto out;
    s.in_fd = in[1];
    s.out_fd = out[0];
    s.err_fd = err[0];
    in[1] = out[0] = err[0] = -1;
    if (s.in_fd >= 0)
        set_nonblock(s.in_fd);
    set_nonblock(s.out_fd);
    set_nonblock(s.err_fd);
    s.pidfd = pidfd_for(s.pid);
    how = exec_loop(&s, deadline, max);
    rc = finish(&s, how, res);
out:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
        if (report[i] >= 0)
            close(report[i]);
    }
    if (s.in_fd >= 0)
        close(s.in_fd);
    if (s.out_fd >= 0)
        close(s.out_fd);
    if (s.err_fd >= 0)
        close(s.err_fd);
    if (s.pidfd >= 0)
        close(s.pidfd);
    free(s.out.data);
    free(s.err.data);
    free(envp);
    return rc;
}
