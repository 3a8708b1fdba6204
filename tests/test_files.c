/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the files module: mkdir -p, the bounded read and the
 * crash-safe write, including what a failed write leaves behind.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/errors.h"
#include "util/files.h"
#include "util/xalloc.h"

static int
setup(void **state)
{
    char *dir = xstrdup("/tmp/test_files.XXXXXX");

    assert_non_null(mkdtemp(dir));
    *state = dir;
    return 0;
}

static int
teardown(void **state)
{
    char *dir = *state;
    char *p;

    /* Only what the tests create: a few files and directories. */
    p = xasprintf("%s/a/b/c", dir);
    rmdir(p);
    free(p);
    p = xasprintf("%s/a/b", dir);
    rmdir(p);
    free(p);
    p = xasprintf("%s/a", dir);
    rmdir(p);
    free(p);
    rmdir(dir);
    free(dir);
    xo_err_clear();
    return 0;
}

static bool
exists(const char *dir, const char *name)
{
    char *p = xasprintf("%s/%s", dir, name);
    struct stat st;
    bool r = lstat(p, &st) == 0;

    free(p);
    return r;
}

static void
test_files_write_read_round_trip(void **state)
{
    const char *dir = *state;
    char *text = NULL;
    size_t len = 0;

    assert_int_equal(files_write(dir, "f.json", "{\"a\":1}", 7), 0);
    assert_int_equal(files_write(dir, "f.json", "{}", 2), 0);
    assert_int_equal(files_read(dir, "f.json", 64, &text, &len), 0);
    assert_string_equal(text, "{}");
    assert_int_equal(len, 2);
    assert_false(exists(dir, ".f.json.tmp"));
    free(text);
    assert_int_equal(files_remove(dir, "f.json"), 0);
    assert_int_equal(files_remove(dir, "f.json"), XO_ENOTFOUND);
    assert_int_equal(files_read(dir, "f.json", 64, &text, &len),
                     XO_ENOTFOUND);
    assert_null(text);
}

/* A rename that fails (the target is a directory) keeps the old state
 * and leaves no temp file behind. */
static void
test_files_failed_rename_leaves_no_temp(void **state)
{
    const char *dir = *state;
    char *sub = xasprintf("%s/busy", dir), *inner;

    assert_int_equal(mkdir(sub, 0700), 0);
    inner = xasprintf("%s/x", sub);
    assert_int_equal(files_write(sub, "x", "1", 1), 0);
    assert_int_equal(files_write(dir, "busy", "new", 3), XO_EIO);
    assert_false(exists(dir, ".busy.tmp"));
    assert_true(exists(sub, "x"));
    assert_int_equal(unlink(inner), 0);
    assert_int_equal(rmdir(sub), 0);
    free(inner);
    free(sub);
}

struct crash {
    const char *at;
    int hits;
};

static int
crash_at(void *opaque, const char *point)
{
    struct crash *c = opaque;

    c->hits++;
    return strcmp(point, c->at) == 0 ? XO_EINJECTED : 0;
}

/* A crash before the rename leaves the old file and the temp file (for
 * the caller's recovery); one after it leaves the new file. */
static void
test_files_crash_points(void **state)
{
    const char *dir = *state;
    struct crash c = { "temp-written", 0 };
    struct files_hooks h = { crash_at, &c };
    int dfd = open(dir, O_RDONLY | O_DIRECTORY);
    char *text = NULL;

    assert_true(dfd >= 0);
    assert_int_equal(files_write_at(dfd, dir, "d", "old", 3, NULL), 0);
    assert_int_equal(files_write_at(dfd, dir, "d", "new", 3, &h),
                     XO_EINJECTED);
    assert_true(exists(dir, ".d.tmp"));
    assert_int_equal(files_read_at(dfd, dir, "d", 16, &text, NULL), 0);
    assert_string_equal(text, "old");
    free(text);
    c.at = "renamed";
    c.hits = 0;
    assert_int_equal(files_write_at(dfd, dir, "d", "new", 3, &h),
                     XO_EINJECTED);
    assert_int_equal(c.hits, 2);
    assert_false(exists(dir, ".d.tmp"));
    assert_int_equal(files_read_at(dfd, dir, "d", 16, &text, NULL), 0);
    assert_string_equal(text, "new");
    free(text);
    assert_int_equal(files_remove_at(dfd, dir, "d"), 0);
    close(dfd);
}

static void
test_files_read_is_bounded_and_regular_only(void **state)
{
    const char *dir = *state;
    char *text = NULL, *fifo = xasprintf("%s/fifo", dir);

    assert_int_equal(files_write(dir, "big", "0123456789", 10), 0);
    assert_int_equal(files_read(dir, "big", 9, &text, NULL), XO_EINVAL);
    assert_null(text);
    assert_int_equal(files_read(dir, "big", 10, &text, NULL), 0);
    free(text);
    assert_int_equal(files_remove(dir, "big"), 0);
    /* A FIFO neither hangs the reader nor is read. */
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(files_read(dir, "fifo", 10, &text, NULL), XO_EINVAL);
    assert_int_equal(files_read_path(fifo, 10, &text, NULL), XO_EINVAL);
    assert_int_equal(unlink(fifo), 0);
    free(fifo);
}

static void
test_files_bad_names_refused(void **state)
{
    const char *dir = *state;
    const char *bad[] = { "", ".", "..", "a/b", "../x" };
    char *text = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(files_write(dir, bad[i], "x", 1), XO_EINVAL);
        assert_int_equal(files_read(dir, bad[i], 8, &text, NULL),
                         XO_EINVAL);
        assert_int_equal(files_remove(dir, bad[i]), XO_EINVAL);
    }
    xo_err_clear();
}

static void
test_files_mkdirs_makes_every_level(void **state)
{
    const char *dir = *state;
    char *deep = xasprintf("%s/a/b/c", dir);
    struct stat st;

    assert_int_equal(files_mkdirs(deep), 0);
    assert_int_equal(stat(deep, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Existing levels are fine. */
    assert_int_equal(files_mkdirs(deep), 0);
    free(deep);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_files_write_read_round_trip,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_files_failed_rename_leaves_no_temp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_crash_points, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_files_read_is_bounded_and_regular_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_files_bad_names_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_files_mkdirs_makes_every_level,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
