/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests of sm/sm_exec.c: running one driver command safely. The
 * test scripts are written into a temp dir at run time (their modes
 * matter), all /bin/sh. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sm/sm_exec.h"
#include "sm_fixture.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

static int
setup(void **state)
{
    *state = sm_fixture_new("test_sm_exec", false);
    return 0;
}

static int
teardown(void **state)
{
    sm_fixture_free(*state);
    unsetenv("SM_EXEC_TEST_SECRET");
    return 0;
}

static char *
script(struct sm_fixture *f, const char *name, const char *body,
       mode_t mode)
{
    char *path = xasprintf("%s/%s", f->dir, name);

    sm_fixture_write_file(path, body, mode);
    return path;
}

static void
init_call(struct sm_exec_call *c, const char *path, const char *const *argv)
{
    memset(c, 0, sizeof(*c));
    c->driver = "TestSR";
    c->command = "vdi_attach";
    c->vdi = "vdi-1";
    c->path = path;
    c->argv = argv;
    c->timeout_ms = 20000;
}

/* The thread's error detail must be Storage_backend_error [code, p] with
 * p = [driver, command, vdi, reason, ...]; returns the reason. */
static char *
expect_error(int rc, const char *code)
{
    yajl_val tree = NULL;
    yajl_val params = sm_fixture_script_error(rc, code, "TestSR",
                                              "vdi_attach", "vdi-1", &tree);
    char *reason = xstrdup(json_array_at(params, 3)->u.string);

    yajl_tree_free(tree);
    return reason;
}

static void
test_sm_exec_argv_exact(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "args.sh",
                        "#!/bin/sh\nfor a in \"$@\"; do printf '[%s]\\n' "
                        "\"$a\"; done\n", 0755);
    char *pwned = xasprintf("%s/pwned", f->dir);
    char *evil = xasprintf("$(touch %s)", pwned);
    const char *argv[] = { path, "two words", "", "*", evil, "a\nb",
                           "'q'", NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *expect = xasprintf("[two words]\n[]\n[*]\n[%s]\n[a\nb]\n['q']\n",
                             evil);

    init_call(&c, path, argv);
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_int_equal(r.exit_status, 0);
    assert_string_equal(r.out, expect);
    /* No shell saw the arguments. */
    assert_int_equal(access(pwned, F_OK), -1);
    sm_exec_result_dispose(&r);
    free(expect);
    free(evil);
    free(pwned);
    free(path);
}

static void
test_sm_exec_env_scrubbed(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "env.sh", "#!/bin/sh\ntr '\\0' '\\n' < "
                        "/proc/$$/environ | sort\n", 0755);
    const char *argv[] = { path, NULL };
    const char *env[] = { "ORIGINATOR=SM", NULL };
    const char *env2[] = { "XO_SM_TEST_KNOB=override", NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;

    setenv("XO_SM_TEST_KNOB", "42", 1);
    setenv("SM_EXEC_TEST_SECRET", "do-not-pass", 1);
    init_call(&c, path, argv);
    c.env = env;
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_string_equal(r.out, "ORIGINATOR=SM\n"
                        "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                        "XO_SM_TEST_KNOB=42\n");
    sm_exec_result_dispose(&r);
    /* The caller's explicit value wins over the inherited knob. */
    c.env = env2;
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_string_equal(r.out, "PATH=/usr/sbin:/usr/bin:/sbin:/bin\n"
                        "XO_SM_TEST_KNOB=override\n");
    sm_exec_result_dispose(&r);
    free(path);
}

static void
test_sm_exec_stdin_delivered(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "cat.sh", "#!/bin/sh\nexec cat\n", 0755);
    const char *argv[] = { path, NULL };
    size_t n = 300 * 1024;
    char *input = xmalloc(n + 1);
    struct sm_exec_call c;
    struct sm_exec_result r;

    for (size_t i = 0; i < n; i++)
        input[i] = (char)('a' + i % 26);
    input[n] = '\0';
    init_call(&c, path, argv);
    /* Larger than a pipe buffer: stdin is fed while stdout drains. */
    c.input = input;
    c.input_len = n;
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_int_equal(r.out_len, n);
    assert_memory_equal(r.out, input, n);
    sm_exec_result_dispose(&r);
    /* No input: /dev/null, so cat ends at once with nothing. */
    c.input = NULL;
    c.input_len = 0;
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_int_equal(r.out_len, 0);
    sm_exec_result_dispose(&r);
    free(input);
    free(path);
}

static pid_t
read_pid(const char *file)
{
    FILE *fp = fopen(file, "r");
    int pid = 0;

    assert_non_null(fp);
    assert_int_equal(fscanf(fp, "%d", &pid), 1);
    fclose(fp);
    return (pid_t)pid;
}

static void
test_sm_exec_timeout_kills_group(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "hang.sh", "#!/bin/sh\nsleep 1000 &\n"
                        "echo $! > \"$1.tmp\"; mv \"$1.tmp\" \"$1\"\n"
                        "echo started\nsleep 1000\n", 0755);
    char *pidfile = xasprintf("%s/grandchild.pid", f->dir);
    const char *argv[] = { path, pidfile, NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *reason;
    pid_t gc;
    int rc;

    init_call(&c, path, argv);
    c.timeout_ms = 1500;
    rc = sm_exec_run(&c, &r);
    reason = expect_error(rc, "SCRIPT_TIMEOUT");
    assert_non_null(strstr(reason, "1500 ms"));
    assert_true(r.timed_out);
    assert_string_equal(r.out, "started\n");
    gc = read_pid(pidfile);
    /* SIGKILL is asynchronous: wait for the grandchild to die (10 s is a
     * deadlock guard, not a timing assertion). */
    for (int i = 0; i < 1000 && !sm_fixture_process_dead(gc); i++)
        usleep(10000);
    assert_true(sm_fixture_process_dead(gc));
    sm_exec_result_dispose(&r);
    free(reason);
    free(pidfile);
    free(path);
}

static void
test_sm_exec_child_exit_ends_call(void **state)
{
    struct sm_fixture *f = *state;
    /* The grandchild keeps stdout open after the driver exits. */
    char *path = script(f, "bg.sh", "#!/bin/sh\nsleep 1000 &\n"
                        "echo $! > \"$1\"\necho done\n", 0755);
    char *pidfile = xasprintf("%s/bg.pid", f->dir);
    const char *argv[] = { path, pidfile, NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;

    init_call(&c, path, argv);
    c.timeout_ms = 60000;
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_false(r.timed_out);
    assert_int_equal(r.exit_status, 0);
    assert_string_equal(r.out, "done\n");
    kill(read_pid(pidfile), SIGKILL);
    sm_exec_result_dispose(&r);
    free(pidfile);
    free(path);
}

static void
test_sm_exec_signal_is_failure(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "crash.sh", "#!/bin/sh\necho dying >&2\n"
                        "kill -SEGV $$\n", 0755);
    const char *argv[] = { path, NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *reason;

    init_call(&c, path, argv);
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_FAILED");
    assert_string_equal(reason, "signalled: SIGSEGV");
    assert_int_equal(r.signal, SIGSEGV);
    assert_string_equal(r.err, "dying\n");
    sm_exec_result_dispose(&r);
    free(reason);
    free(path);
}

static void
test_sm_exec_nonzero_exit_returned(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "exit.sh", "#!/bin/sh\necho out\necho err >&2\n"
                        "exit 3\n", 0755);
    const char *argv[] = { path, NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *json;
    int rc;

    init_call(&c, path, argv);
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_int_equal(r.exit_status, 3);
    assert_int_equal(r.signal, 0);
    assert_string_equal(r.out, "out\n");
    assert_string_equal(r.err, "err\n");
    /* The adapter's verdict carries both streams. */
    rc = sm_exec_error(&c, &r, "SCRIPT_FAILED", "non-zero exit 3");
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",[\"SCRIPT_FAILED\","
                        "[\"TestSR\",\"vdi_attach\",\"vdi-1\","
                        "\"non-zero exit 3\",\"out\\n\",\"err\\n\"]]]");
    free(json);
    sm_exec_result_dispose(&r);
    free(path);
}

static void
test_sm_exec_oversized_output(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "big.sh", "#!/bin/sh\nhead -c 100000 /dev/zero "
                        ">&$1\nsleep 1000\n", 0755);
    const char *argv_out[] = { path, "1", NULL };
    const char *argv_err[] = { path, "2", NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *reason;

    init_call(&c, path, argv_out);
    c.max_output = 1000;
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_OUTPUT_TOO_LARGE");
    assert_string_equal(reason, "output over 1000 bytes; process group "
                        "killed");
    assert_true(r.out_len <= 1000);
    sm_exec_result_dispose(&r);
    free(reason);
    c.argv = argv_err;
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_OUTPUT_TOO_LARGE");
    assert_true(r.err_len <= 1000);
    sm_exec_result_dispose(&r);
    free(reason);
    free(path);
}

static void
test_sm_exec_missing_or_not_executable(void **state)
{
    struct sm_fixture *f = *state;
    char *missing = xasprintf("%s/NoSuchSR", f->dir);
    char *plain = script(f, "plain.sh", "#!/bin/sh\necho hi\n", 0644);
    char *nointerp = script(f, "nointerp.sh", "#!/nonexistent/interp\n",
                            0755);
    const char *argv[] = { "x", NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    char *reason;

    init_call(&c, missing, argv);
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_MISSING");
    assert_non_null(strstr(reason, missing));
    sm_exec_result_dispose(&r);
    free(reason);
    /* A directory is not a script either. */
    c.path = f->dir;
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_MISSING");
    sm_exec_result_dispose(&r);
    free(reason);
    /* root passes access(X_OK) only if some x bit is set: 0644 fails for
     * everyone. */
    c.path = plain;
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_NOT_EXECUTABLE");
    sm_exec_result_dispose(&r);
    free(reason);
    c.path = nointerp;
    reason = expect_error(sm_exec_run(&c, &r), "SCRIPT_NOT_EXECUTABLE");
    assert_non_null(strstr(reason, "missing interpreter"));
    sm_exec_result_dispose(&r);
    free(reason);
    free(nointerp);
    free(plain);
    free(missing);
}

static void
test_sm_exec_descriptors_and_signals_reset(void **state)
{
    struct sm_fixture *f = *state;
    char *path = script(f, "fds.sh", "#!/bin/sh\n"
                        "[ -e /proc/$$/fd/$1 ] && echo open || echo closed\n"
                        "while read -r l; do case $l in SigBlk*|SigIgn*) "
                        "echo \"$l\";; esac; done < /proc/$$/status\n",
                        0755);
    int fd = open("/dev/null", O_RDONLY);    /* no O_CLOEXEC on purpose */
    char num[16];
    const char *argv[] = { path, num, NULL };
    struct sm_exec_call c;
    struct sm_exec_result r;
    sigset_t block, old;
    void (*old_pipe)(int) = signal(SIGPIPE, SIG_IGN);

    assert_true(fd > 2);
    snprintf(num, sizeof(num), "%d", fd);
    /* What the daemon's worker threads look like. (The script reads its
     * own status with builtins only: a shell blocks signals around a
     * fork, so a forked reader could see that mask.) */
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    init_call(&c, path, argv);
    assert_int_equal(sm_exec_run(&c, &r), 0);
    assert_string_equal(r.out, "closed\nSigBlk:\t0000000000000000\n"
                        "SigIgn:\t0000000000000000\n");
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, old_pipe);
    sm_exec_result_dispose(&r);
    close(fd);
    free(path);
}

static void
test_sm_exec_find_case_insensitive(void **state)
{
    struct sm_fixture *f = *state;
    char *a = script(f, "Plugin.Query", "", 0755);
    char *b = script(f, "datapath.attach", "", 0755);
    char *c = script(f, "Datapath.Attach", "", 0755);
    char *p;

    assert_int_equal(sm_exec_find(f->dir, "plugin.query", &p), 0);
    assert_string_equal(p, a);
    free(p);
    /* Exact match wins over a case-insensitive one. */
    assert_int_equal(sm_exec_find(f->dir, "datapath.attach", &p), 0);
    assert_string_equal(p, b);
    free(p);
    /* Otherwise the smallest name: "Datapath.Attach" < "datapath.attach". */
    assert_int_equal(sm_exec_find(f->dir, "DATAPATH.ATTACH", &p), 0);
    assert_string_equal(p, c);
    free(p);
    assert_int_equal(sm_exec_find(f->dir, "Volume.stat", &p), 0);
    assert_non_null(strstr(p, "/Volume.stat"));
    free(p);
    free(a);
    free(b);
    free(c);
}

static void
test_sm_exec_stamp_follows_file(void **state)
{
    struct sm_fixture *f = *state;
    char *p = script(f, "XSR", "#!/bin/sh\n", 0755);
    char *tmp = NULL;
    uint64_t s1, s2, s3;

    assert_int_equal(sm_exec_stamp(p, &s1), 0);
    assert_int_equal(sm_exec_stamp(p, &s2), 0);
    assert_true(s1 == s2);
    /* A replaced file (new inode, other size) is another driver. */
    tmp = script(f, "XSR.new", "#!/bin/sh\necho v2\n", 0755);
    assert_int_equal(rename(tmp, p), 0);
    assert_int_equal(sm_exec_stamp(p, &s3), 0);
    assert_true(s3 != s1);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(sm_exec_stamp(p, &s3), XO_ENOTFOUND);
    free(tmp);
    free(p);
}

static void
test_sm_exec_printable(void **state)
{
    char *s;

    (void)state;
    s = sm_exec_printable("ok\n\tq\x01\xff\xc3\xa9\xe2\x82", 11, 100);
    assert_string_equal(s, "ok\n\tq??\xc3\xa9??");
    free(s);
    /* The bound never splits a character. */
    s = sm_exec_printable("a\xc3\xa9", 3, 2);
    assert_string_equal(s, "a");
    free(s);
    s = sm_exec_printable("a\0b", 3, 10);
    assert_string_equal(s, "a?b");
    free(s);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sm_exec_argv_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_env_scrubbed, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_stdin_delivered, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_timeout_kills_group,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_child_exit_ends_call,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_signal_is_failure,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_nonzero_exit_returned,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_oversized_output,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_exec_missing_or_not_executable, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_exec_descriptors_and_signals_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_find_case_insensitive,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_exec_stamp_follows_file,
                                        setup, teardown),
        cmocka_unit_test(test_sm_exec_printable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
