/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the simulator: the xenstore-shaped tree, the simulated guest
 * (heartbeat, pause, dirty tracking, save/restore) and the backend ops.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/backend.h"
#include "backend/sim/backend_sim.h"
#include "backend/sim/backend_sim_priv.h"
#include "backend/sim/sim_guest.h"
#include "backend/sim/xstree.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define VM_A "11111111-2222-3333-4444-555555555555"
#define VM_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define VM_C "0000000a-0000-0000-0000-000000000001"
#define VM_D "0000000d-0000-0000-0000-000000000002"

/* Deadlock guard for waits on the guest thread; never a timing check. */
#define WAIT_LIMIT_MS 20000

/* Wait until the guest has ticked at least target times. */
static void
wait_heartbeat(struct sim_guest *g, uint64_t target)
{
    assert_true(testutil_wait_heartbeat(g, target, WAIT_LIMIT_MS));
}

static char *
tmpdir_new(void)
{
    char *dir = xstrdup("/tmp/test_sim.XXXXXX");

    assert_non_null(mkdtemp(dir));
    return dir;
}

static int
tmpfile_open(const char *dir, const char *name, char **path_r)
{
    char *path = xasprintf("%s/%s", dir, name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    *path_r = path;
    return fd;
}

static void
tmp_cleanup(char *dir, char *file)
{
    unlink(file);
    rmdir(dir);
    free(file);
    free(dir);
}

/* ---- xstree ---- */

static void
test_xstree_write_read_rm(void **state)
{
    struct xstree *t;
    char *v = NULL;

    xstree_new(&t);
    assert_int_equal(xstree_write(t, "/a/b/c", "x"), 0);
    assert_int_equal(xstree_read(t, "/a/b/c", &v), 0);
    assert_string_equal(v, "x");
    free(v);
    /* Parents are created with empty values. */
    assert_int_equal(xstree_read(t, "/a/b", &v), 0);
    assert_string_equal(v, "");
    free(v);
    assert_int_equal(xstree_write(t, "/a/b/c", ""), 0);
    assert_int_equal(xstree_read(t, "/a/b/c", &v), 0);
    assert_string_equal(v, "");
    free(v);
    assert_int_equal(xstree_read(t, "/a/nope", &v), XO_ENOTFOUND);

    assert_int_equal(xstree_write(t, "/a/d", "y"), 0);
    assert_int_equal(xstree_rm(t, "/a/b"), 0);
    assert_false(xstree_exists(t, "/a/b/c"));
    assert_false(xstree_exists(t, "/a/b"));
    assert_true(xstree_exists(t, "/a/d"));
    assert_int_equal(xstree_rm(t, "/a/b"), 0);
    assert_int_equal(xstree_rm(t, "/"), XO_EINVAL);
    assert_true(xstree_exists(t, "/"));
    xstree_free(t);
}

static void
test_xstree_directory_sorted(void **state)
{
    struct xstree *t;
    char **names = NULL;
    size_t n = 0;

    xstree_new(&t);
    xstree_write(t, "/d/zeta", "1");
    xstree_write(t, "/d/alpha", "2");
    xstree_write(t, "/d/mid/x", "3");
    xstree_write(t, "/d/Beta", "4");
    assert_int_equal(xstree_directory(t, "/d", &names, &n), 0);
    assert_int_equal(n, 4);
    assert_string_equal(names[0], "Beta");
    assert_string_equal(names[1], "alpha");
    assert_string_equal(names[2], "mid");
    assert_string_equal(names[3], "zeta");
    assert_null(names[4]);
    xstree_strv_free(names);

    assert_int_equal(xstree_directory(t, "/", &names, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(names[0], "d");
    xstree_strv_free(names);

    assert_int_equal(xstree_directory(t, "/d/zeta", &names, &n), 0);
    assert_int_equal(n, 0);
    xstree_strv_free(names);
    assert_int_equal(xstree_directory(t, "/missing", &names, &n),
                     XO_ENOTFOUND);
    xstree_free(t);
}

static void
test_xstree_move_subtree(void **state)
{
    struct xstree *t;
    char *v = NULL;

    xstree_new(&t);
    xstree_write(t, "/vm/A", "top");
    xstree_write(t, "/vm/A/x", "1");
    xstree_write(t, "/vm/A/y/z", "2");
    assert_int_equal(xstree_move_subtree(t, "/vm/A", "/new/place/B"), 0);
    assert_false(xstree_exists(t, "/vm/A"));
    assert_true(xstree_exists(t, "/vm"));
    assert_int_equal(xstree_read(t, "/new/place/B", &v), 0);
    assert_string_equal(v, "top");
    free(v);
    assert_int_equal(xstree_read(t, "/new/place/B/y/z", &v), 0);
    assert_string_equal(v, "2");
    free(v);

    /* Target exists: refused, nothing moves. */
    xstree_write(t, "/vm/C/k", "3");
    assert_int_equal(xstree_move_subtree(t, "/vm/C", "/new/place/B"),
                     XO_EEXISTS);
    assert_true(xstree_exists(t, "/vm/C/k"));
    assert_true(xstree_exists(t, "/new/place/B/x"));
    assert_false(xstree_exists(t, "/new/place/B/k"));

    assert_int_equal(xstree_move_subtree(t, "/vm/none", "/vm/E"),
                     XO_ENOTFOUND);
    assert_false(xstree_exists(t, "/vm/E"));
    assert_int_equal(xstree_move_subtree(t, "/vm/C", "/vm/C/sub"),
                     XO_EINVAL);
    assert_int_equal(xstree_move_subtree(t, "/vm/C", "/vm/C"), XO_EINVAL);
    assert_true(xstree_exists(t, "/vm/C/k"));
    xstree_free(t);
}

static void
test_xstree_txn_all_or_nothing(void **state)
{
    struct xstree *t;
    struct xstree_txn *x;
    char *v = NULL;

    xstree_new(&t);
    xstree_write(t, "/src/a", "1");
    xstree_write(t, "/dst", "taken");
    xstree_write(t, "/keep", "old");

    xstree_txn_new(&x);
    xstree_txn_write(x, "/t/a", "1");
    xstree_txn_rm(x, "/keep");
    xstree_txn_move(x, "/src", "/dst", false);
    assert_int_equal(xstree_txn_commit(t, x), XO_EEXISTS);
    xstree_txn_free(x);
    assert_false(xstree_exists(t, "/t"));
    assert_true(xstree_exists(t, "/keep"));
    assert_true(xstree_exists(t, "/src/a"));

    /* A bad path anywhere refuses the whole transaction. */
    xstree_txn_new(&x);
    xstree_txn_write(x, "/t/a", "1");
    xstree_txn_write(x, "/t/b c", "2");
    assert_int_equal(xstree_txn_commit(t, x), XO_EINVAL);
    xstree_txn_free(x);
    assert_false(xstree_exists(t, "/t"));

    xstree_txn_new(&x);
    xstree_txn_move(x, "/src", "/moved", false);
    xstree_txn_move(x, "/absent", "/elsewhere", true);
    xstree_txn_write(x, "/moved/b", "2");
    xstree_txn_rm(x, "/keep");
    assert_int_equal(xstree_txn_commit(t, x), 0);
    xstree_txn_free(x);
    assert_false(xstree_exists(t, "/src"));
    assert_false(xstree_exists(t, "/elsewhere"));
    assert_false(xstree_exists(t, "/keep"));
    assert_int_equal(xstree_read(t, "/moved/a", &v), 0);
    assert_string_equal(v, "1");
    free(v);
    assert_true(xstree_exists(t, "/moved/b"));
    xstree_free(t);
}

static void
test_xstree_path_validation(void **state)
{
    static const char *const bad[] = {
        "", "a", "a/b", "/a//b", "/a/", "//", "/a b", "/a/$", "/a/\n",
        "/a/b\\c", "/a/é",
    };
    struct xstree *t;
    char *p, *v, **names;
    char *dump;

    xstree_new(&t);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(xstree_write(t, bad[i], "v"), XO_EINVAL);
        assert_int_equal(xstree_read(t, bad[i], &v), XO_EINVAL);
        assert_int_equal(xstree_rm(t, bad[i]), XO_EINVAL);
        assert_int_equal(xstree_directory(t, bad[i], &names, NULL),
                         XO_EINVAL);
        assert_false(xstree_exists(t, bad[i]));
    }
    assert_int_equal(xstree_write(t, NULL, "v"), XO_EINVAL);
    assert_int_equal(xstree_write(t, "/", "v"), XO_EINVAL);
    assert_int_equal(xstree_write(t, "/ok", NULL), XO_EINVAL);
    assert_true(xstree_path_ok("/A-z_0.9:x@y", false));
    assert_int_equal(xstree_write(t, "/A-z_0.9:x@y", "v"), 0);
    assert_int_equal(xstree_rm(t, "/A-z_0.9:x@y"), 0);

    /* Exactly XSTREE_PATH_MAX is fine, one more is not. */
    p = xmalloc(XSTREE_PATH_MAX + 2);
    p[0] = '/';
    memset(p + 1, 'x', XSTREE_PATH_MAX - 1);
    p[XSTREE_PATH_MAX] = '\0';
    assert_int_equal(xstree_write(t, p, "v"), 0);
    assert_int_equal(xstree_rm(t, p), 0);
    p[XSTREE_PATH_MAX] = 'x';
    p[XSTREE_PATH_MAX + 1] = '\0';
    assert_int_equal(xstree_write(t, p, "v"), XO_EINVAL);
    free(p);

    v = xmalloc(XSTREE_VALUE_MAX + 2);
    memset(v, 'v', XSTREE_VALUE_MAX + 1);
    v[XSTREE_VALUE_MAX + 1] = '\0';
    assert_int_equal(xstree_write(t, "/big", v), XO_EINVAL);
    v[XSTREE_VALUE_MAX] = '\0';
    assert_int_equal(xstree_write(t, "/big", v), 0);
    assert_int_equal(xstree_rm(t, "/big"), 0);
    free(v);

    /* A move must keep every path within bounds. */
    p = xmalloc(XSTREE_PATH_MAX + 1);
    p[0] = '/';
    memset(p + 1, 'y', XSTREE_PATH_MAX - 3);
    p[XSTREE_PATH_MAX - 2] = '\0';
    xstree_write(t, "/s/abcd", "1");
    assert_int_equal(xstree_move_subtree(t, "/s", p), XO_EINVAL);
    assert_true(xstree_exists(t, "/s/abcd"));
    xstree_rm(t, "/s");
    free(p);

    dump = xstree_dump_json(t, "/");
    assert_string_equal(dump, "{}");
    free(dump);
    xstree_free(t);
}

static void
test_xstree_dump_json(void **state)
{
    struct xstree *t;
    yajl_val tree = NULL;
    char *dump;

    xstree_new(&t);
    xstree_write(t, "/vm/A/name", "a \"quoted\" name");
    xstree_write(t, "/local/domain/1/vm", "/vm/A");
    dump = xstree_dump_json(t, "/");
    assert_int_equal(json_parse(dump, strlen(dump), &tree), 0);
    assert_string_equal(json_get_str(tree, "/vm/A/name"),
                        "a \"quoted\" name");
    assert_string_equal(json_get_str(tree, "/local/domain/1/vm"), "/vm/A");
    assert_string_equal(json_get_str(tree, "/vm"), "");
    yajl_tree_free(tree);
    free(dump);

    dump = xstree_dump_json(t, "/vm/A");
    assert_string_equal(dump,
                        "{\"/vm/A\":\"\",\"/vm/A/name\":"
                        "\"a \\\"quoted\\\" name\"}");
    free(dump);
    dump = xstree_dump_json(t, "/none");
    assert_string_equal(dump, "{}");
    free(dump);
    xstree_free(t);
}

struct xs_worker {
    struct xstree *t;
    int id;
};

static void *
xs_worker_main(void *arg)
{
    struct xs_worker *w = arg;
    char path[64];

    for (int i = 0; i < 200; i++) {
        snprintf(path, sizeof(path), "/w/%d/%d", w->id, i);
        xstree_write(w->t, path, "v");
        if (i % 2)
            xstree_rm(w->t, path);
    }
    return NULL;
}

static void
test_xstree_concurrent_writers(void **state)
{
    struct xs_worker w[4];
    pthread_t th[4];
    struct xstree *t;
    char path[32];
    char **names;
    size_t n;

    xstree_new(&t);
    for (int i = 0; i < 4; i++) {
        w[i].t = t;
        w[i].id = i;
        assert_int_equal(pthread_create(&th[i], NULL, xs_worker_main, &w[i]),
                         0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "/w/%d", i);
        assert_int_equal(xstree_directory(t, path, &names, &n), 0);
        assert_int_equal(n, 100);
        xstree_strv_free(names);
    }
    xstree_free(t);
}

/* ---- sim_guest ---- */

static void
test_sim_guest_heartbeat_runs_and_pauses(void **state)
{
    struct sim_guest *g;
    uint64_t hb;

    assert_int_equal(sim_guest_new(64 * 1024, 1000, 1, &g), 0);
    assert_true(sim_guest_is_paused(g));
    assert_int_equal(sim_guest_heartbeat(g), 0);
    sim_guest_unpause(g);
    wait_heartbeat(g, 3);
    assert_true(sim_guest_last_tick_ns(g) > 0);
    sim_guest_pause(g);
    hb = sim_guest_heartbeat(g);
    testutil_sleep_ms(30);
    assert_int_equal(sim_guest_heartbeat(g), hb);
    sim_guest_unpause(g);
    wait_heartbeat(g, hb + 1);
    sim_guest_free(g);
}

static void
test_sim_guest_gap_covers_pause(void **state)
{
    struct sim_guest *g;
    uint64_t hb;

    assert_int_equal(sim_guest_new(8192, 0, 1, &g), 0);
    sim_guest_unpause(g);
    wait_heartbeat(g, 2);
    sim_guest_pause(g);
    sim_guest_reset_max_gap(g);
    assert_int_equal(sim_guest_max_gap_ns(g), 0);
    hb = sim_guest_heartbeat(g);
    testutil_sleep_ms(50);
    sim_guest_unpause(g);
    wait_heartbeat(g, hb + 1);
    /* The guest saw at least the time it was paused. */
    assert_true(sim_guest_max_gap_ns(g) >= 50 * 1000000ULL);
    sim_guest_free(g);
}

static void
test_sim_guest_pause_stops_memory_writes(void **state)
{
    struct sim_guest *g;
    uint64_t sum;

    assert_int_equal(sim_guest_new(64 * 4096, 100000, 1, &g), 0);
    sim_guest_unpause(g);
    wait_heartbeat(g, 2);
    sim_guest_pause(g);
    sum = sim_guest_checksum(g);
    testutil_sleep_ms(20);
    assert_true(sim_guest_checksum(g) == sum);
    sim_guest_free(g);
}

static void
test_sim_guest_dirty_tracking(void **state)
{
    struct sim_guest *g;
    uint64_t *bm;
    size_t words, count, bits = 0;

    assert_int_equal(sim_guest_new(256 * 4096, 50000, 1, &g), 0);
    assert_int_equal(sim_guest_n_pages(g), 256);
    assert_null(sim_guest_page(g, 256));
    words = sim_guest_bitmap_words(g);
    assert_int_equal(words, 4);
    bm = xcalloc(words, sizeof(*bm));

    sim_guest_dirty_enable(g);
    sim_guest_unpause(g);
    wait_heartbeat(g, 3);
    sim_guest_pause(g);
    count = sim_guest_dirty_collect(g, bm);
    assert_true(count > 0);
    for (size_t i = 0; i < 256; i++) {
        uint64_t word;
        bool dirty = bm[i / 64] & ((uint64_t)1 << (i % 64));

        memcpy(&word, sim_guest_page(g, i) + 8, sizeof(word));
        bits += dirty;
        /* Tracking was on from the start: a written page is marked, an
         * unmarked page is still zero. */
        if (dirty)
            assert_int_equal(word, i);
        else
            assert_int_equal(word, 0);
    }
    assert_int_equal(bits, count);
    /* Collecting cleared the bitmap. */
    assert_int_equal(sim_guest_dirty_collect(g, bm), 0);

    /* Disabled tracking marks nothing. */
    sim_guest_dirty_disable(g);
    sim_guest_unpause(g);
    wait_heartbeat(g, sim_guest_heartbeat(g) + 2);
    sim_guest_pause(g);
    assert_int_equal(sim_guest_dirty_collect(g, bm), 0);
    free(bm);
    sim_guest_free(g);
}

struct saver {
    struct sim_guest *g;
    int fd;
    int rc;
};

static void *
saver_main(void *arg)
{
    struct saver *s = arg;

    s->rc = sim_guest_save(s->g, s->fd, NULL);
    close(s->fd);
    return NULL;
}

static void
test_sim_guest_save_restore_identical(void **state)
{
    struct sim_guest *a, *b, *c;
    struct saver sv;
    pthread_t th;
    uint64_t zero_sum;
    int fds[2];

    assert_int_equal(sim_guest_new(300 * 4096, 100000, 1, &a), 0);
    assert_int_equal(sim_guest_new(300 * 4096, 0, 1, &b), 0);
    zero_sum = sim_guest_checksum(b);
    sim_guest_unpause(a);
    wait_heartbeat(a, 3);
    sim_guest_pause(a);
    assert_true(sim_guest_checksum(a) != zero_sum);

    /* Through a non-blocking pipe smaller than the image: short writes
     * and EAGAIN on the saving side. */
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(fcntl(fds[1], F_SETFL, O_NONBLOCK), 0);
    sv.g = a;
    sv.fd = fds[1];
    sv.rc = -1;
    assert_int_equal(pthread_create(&th, NULL, saver_main, &sv), 0);
    assert_int_equal(sim_guest_restore(b, fds[0], NULL), 0);
    pthread_join(th, NULL);
    close(fds[0]);
    assert_int_equal(sv.rc, 0);
    assert_true(sim_guest_checksum(b) == sim_guest_checksum(a));
    assert_int_equal(sim_guest_heartbeat(b), sim_guest_heartbeat(a));
    assert_true(sim_guest_last_tick_ns(b) == sim_guest_last_tick_ns(a));

    /* A restored guest keeps counting from the image's heartbeat. */
    sim_guest_unpause(b);
    wait_heartbeat(b, sim_guest_heartbeat(a) + 1);
    sim_guest_pause(b);

    /* Saving or restoring a running guest is refused. */
    assert_int_equal(sim_guest_new(4096, 0, 1, &c), 0);
    sim_guest_unpause(c);
    assert_int_equal(sim_guest_save(c, -1, NULL), XO_EINVAL);
    assert_int_equal(sim_guest_restore(c, -1, NULL), XO_EINVAL);
    sim_guest_free(c);
    sim_guest_free(a);
    sim_guest_free(b);
}

static void
test_sim_guest_restore_refuses_bad_image(void **state)
{
    struct sim_guest *a, *b, *small;
    char *dir = tmpdir_new(), *file;
    int fd = tmpfile_open(dir, "img", &file);
    uint64_t sum;
    char *err;

    assert_int_equal(sim_guest_new(16 * 4096, 100000, 1, &a), 0);
    assert_int_equal(sim_guest_new(16 * 4096, 0, 1, &b), 0);
    assert_int_equal(sim_guest_new(8 * 4096, 0, 1, &small), 0);
    sim_guest_unpause(a);
    wait_heartbeat(a, 2);
    sim_guest_pause(a);
    sum = sim_guest_checksum(b);
    assert_int_equal(sim_guest_save(a, fd, NULL), 0);

    /* Wrong page count. */
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(sim_guest_restore(small, fd, NULL), XO_EINVAL);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, "pages"));
    free(err);

    /* Corrupt magic: refused before memory is touched. */
    assert_int_equal(pwrite(fd, "XOSIMG99", 8, 0), 8);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(sim_guest_restore(b, fd, NULL), XO_EINVAL);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, "magic"));
    free(err);
    assert_true(sim_guest_checksum(b) == sum);
    assert_int_equal(sim_guest_heartbeat(b), 0);

    /* Truncated image. */
    assert_int_equal(pwrite(fd, SIM_GUEST_MAGIC, 8, 0), 8);
    assert_int_equal(ftruncate(fd, SIM_GUEST_HEADER_SIZE + 4096), 0);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(sim_guest_restore(b, fd, NULL), XO_EIO);
    assert_int_equal(sim_guest_heartbeat(b), 0);
    xo_err_clear();

    close(fd);
    tmp_cleanup(dir, file);
    sim_guest_free(a);
    sim_guest_free(b);
    sim_guest_free(small);
}

/* A restore reading from a socket, on a thread. */
struct restore_run {
    struct sim_guest *g;
    int fd;
    atomic_bool cancel;
    int rc;
};

static void *
restore_thread(void *arg)
{
    struct restore_run *r = arg;

    r->rc = sim_guest_restore(r->g, r->fd, &r->cancel);
    return NULL;
}

/* Write the first len bytes of g's saved image to fd. */
static void
send_image_start(struct sim_guest *g, int fd, size_t len)
{
    char *dir = tmpdir_new(), *file;
    int img = tmpfile_open(dir, "img", &file);
    uint8_t *head = xmalloc(len);

    assert_int_equal(sim_guest_save(g, img, NULL), 0);
    assert_int_equal(pread(img, head, len, 0), (ssize_t)len);
    assert_int_equal(write(fd, head, len), (ssize_t)len);
    free(head);
    close(img);
    tmp_cleanup(dir, file);
}

/* The writer stops inside the first chunk and never sends the rest (the
 * gate is never released); cancelling and shutting the socket down, as
 * the restore atom's cancel callback does, ends the blocked read with
 * Cancelled, not with a short image. */
static void
test_sim_guest_restore_woken_by_cancel(void **state)
{
    struct restore_run r = { .rc = 1 };
    struct sim_guest *a;
    pthread_t th;
    int sv[2], queued = -1;

    (void)state;
    assert_int_equal(sim_guest_new(128 * 4096, 0, 1, &a), 0);
    assert_int_equal(sim_guest_new(128 * 4096, 0, 1, &r.g), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r.fd = sv[1];
    /* A whole image's header and one page of the first chunk. */
    send_image_start(a, sv[0], SIM_GUEST_HEADER_SIZE + SIM_GUEST_PAGE_SIZE);
    assert_int_equal(pthread_create(&th, NULL, restore_thread, &r), 0);
    /* Once all of it is read, the restore is inside the first chunk. */
    while (queued != 0) {
        assert_int_equal(ioctl(sv[1], FIONREAD, &queued), 0);
        if (queued)
            sched_yield();
    }
    r.cancel = true;
    assert_int_equal(shutdown(sv[1], SHUT_RDWR), 0);
    pthread_join(th, NULL);
    assert_int_equal(r.rc, XO_ECANCELLED);
    xo_err_clear();
    close(sv[0]);
    close(sv[1]);
    sim_guest_free(a);
    sim_guest_free(r.g);
}

static void
test_sim_guest_cancel_honoured(void **state)
{
    struct sim_guest *a, *b;
    char *dir = tmpdir_new(), *file;
    int fd = tmpfile_open(dir, "img", &file);
    atomic_bool cancel = true;
    uint64_t sum;

    assert_int_equal(sim_guest_new(128 * 4096, 100000, 1, &a), 0);
    assert_int_equal(sim_guest_new(128 * 4096, 0, 1, &b), 0);
    sum = sim_guest_checksum(b);
    assert_int_equal(sim_guest_save(a, fd, &cancel), XO_ECANCELLED);
    assert_int_equal(lseek(fd, 0, SEEK_END), 0);

    cancel = false;
    assert_int_equal(ftruncate(fd, 0), 0);
    lseek(fd, 0, SEEK_SET);
    sim_guest_unpause(a);
    wait_heartbeat(a, 2);
    sim_guest_pause(a);
    assert_int_equal(sim_guest_save(a, fd, &cancel), 0);
    cancel = true;
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(sim_guest_restore(b, fd, &cancel), XO_ECANCELLED);
    assert_true(sim_guest_checksum(b) == sum);
    xo_err_clear();

    close(fd);
    tmp_cleanup(dir, file);
    sim_guest_free(a);
    sim_guest_free(b);
}

static void
test_sim_guest_bad_arguments(void **state)
{
    struct sim_guest *g = NULL;

    assert_int_equal(sim_guest_new(0, 0, 1, &g), XO_EINVAL);
    assert_int_equal(sim_guest_new(4096, 0, 0, &g), XO_EINVAL);
    assert_int_equal(sim_guest_new(4096, 0, SIM_GUEST_HEARTBEAT_MS_MAX + 1,
                                   &g), XO_EINVAL);
    assert_null(g);
    assert_int_equal(sim_guest_new(1, 0, 1, &g), 0);
    /* Rounded up to a whole page. */
    assert_int_equal(sim_guest_n_pages(g), 1);
    assert_int_equal(sim_guest_mem_bytes(g), 4096);
    xo_err_clear();
    sim_guest_free(g);
    sim_guest_free(NULL);
}

/* ---- backend ---- */

static struct backend *
sim_new(void)
{
    struct backend_sim_config cfg = {
        .memory_cap_bytes = 64 * 4096,
        .dirty_pages_per_sec = 50000,
        .heartbeat_ms = 1,
    };
    struct backend *b = NULL;

    assert_int_equal(backend_sim_new(&cfg, &b), 0);
    assert_true(backend_sim_is(b));
    return b;
}

static const struct backend_vm_config vm_cfg = {
    .memory_bytes = 1024 * 1024 * 1024,
    .vcpus = 2,
    .hvm = false,
    .final_id = NULL,
};

static void
get_state(struct backend *b, const char *vm, struct backend_vm_state *st)
{
    assert_int_equal(b->ops->vm_get_state(b, vm, st), 0);
}

static char *
xs_read(struct backend *b, const char *path)
{
    char *v = NULL;

    if (xstree_read(backend_sim_xstree(b), path, &v))
        return NULL;
    return v;
}

static void
assert_xs(struct backend *b, const char *path, const char *want)
{
    char *v = xs_read(b, path);

    assert_non_null(v);
    assert_string_equal(v, want);
    free(v);
}

static void
test_sim_lifecycle(void **state)
{
    struct backend *b = sim_new();
    struct backend_vm_state st;
    struct sim_guest *g;
    char path[64];

    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_HALTED);
    assert_int_equal(st.domid, -1);

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    assert_int_equal(st.domid, 1);
    assert_false(st.built);
    assert_string_equal(st.action_request, "poweroff");
    assert_int_equal(st.memory_bytes, vm_cfg.memory_bytes);
    assert_true(st.last_start_time > 0);
    assert_xs(b, "/local/domain/1/vm", "/vm/" VM_A);
    assert_xs(b, "/local/domain/1/domid", "1");
    assert_xs(b, "/vm/" VM_A "/uuid", VM_A);
    /* The guest owns min(memory, cap). */
    assert_int_equal(backend_sim_guest(b, VM_A, &g), 0);
    assert_int_equal(sim_guest_mem_bytes(g), 64 * 4096);

    assert_int_equal(b->ops->vm_set_action_request(b, VM_A, NULL), 0);
    get_state(b, VM_A, &st);
    assert_string_equal(st.action_request, "");

    assert_int_equal(b->ops->vm_build(b, VM_A, false), 0);
    assert_int_equal(b->ops->vm_unpause(b, VM_A), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_RUNNING);
    assert_true(st.built);
    wait_heartbeat(g, 2);
    /* Unpausing a running domain succeeds. */
    assert_int_equal(b->ops->vm_unpause(b, VM_A), 0);
    assert_int_equal(b->ops->vm_pause(b, VM_A), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    assert_true(st.heartbeat >= 2);
    assert_true(sim_guest_is_paused(g));

    assert_int_equal(b->ops->vm_destroy(b, VM_A), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_HALTED);
    assert_int_equal(st.domid, -1);
    assert_false(xstree_exists(backend_sim_xstree(b), "/local/domain/1"));
    assert_false(xstree_exists(backend_sim_xstree(b), "/vm/" VM_A));
    assert_int_equal(backend_sim_guest(b, VM_A, &g), XO_ENOTFOUND);
    /* No domain is fine. */
    assert_int_equal(b->ops->vm_destroy(b, VM_A), 0);

    /* Domids are never reused. */
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.domid, 2);
    snprintf(path, sizeof(path), "/vm/%s/domains/2", VM_A);
    assert_xs(b, path, "/local/domain/2");
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_domain_not_built(void **state)
{
    struct backend *b = sim_new();
    struct backend_vm_state st;
    char *err;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_unpause(b, VM_A), XO_ENOTBUILT);
    err = xo_err_take_json(XO_ENOTBUILT);
    assert_non_null(strstr(err, "Domain_not_built"));
    free(err);
    assert_int_equal(b->ops->vm_pause(b, VM_A), XO_ENOTBUILT);
    xo_err_clear();
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);

    /* No domain at all: Does_not_exist. */
    assert_int_equal(b->ops->vm_build(b, VM_B, false), XO_ENOTFOUND);
    assert_int_equal(b->ops->vm_unpause(b, VM_B), XO_ENOTFOUND);
    err = xo_err_take_json(XO_ENOTFOUND);
    assert_non_null(strstr(err, "Does_not_exist"));
    free(err);
    b->ops->destroy(b);
}

static void
test_sim_create_already_exists(void **state)
{
    struct backend *b = sim_new();
    struct backend_vm_state st;
    char *err;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), XO_EEXISTS);
    err = xo_err_take_json(XO_EEXISTS);
    assert_non_null(strstr(err, "Already_exists"));
    free(err);
    get_state(b, VM_A, &st);
    assert_int_equal(st.domid, 1);
    assert_false(xstree_exists(backend_sim_xstree(b), "/local/domain/2"));
    b->ops->destroy(b);
}

static void
test_sim_rename_moves_domain_and_records(void **state)
{
    struct backend *b = sim_new();
    struct xstree *xs = backend_sim_xstree(b);
    struct backend_vm_state st;
    struct backend_vbd_state vst;
    struct backend_vm_config cfg = vm_cfg;
    struct sim_guest *g, *g2;

    cfg.final_id = VM_B;
    assert_int_equal(b->ops->vm_create(b, VM_A, &cfg), 0);
    assert_xs(b, "/vm/" VM_A "/final-uuid", VM_B);
    assert_int_equal(b->ops->vm_build(b, VM_A, false), 0);
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvda", true), 0);
    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/x", true),
                     0);
    assert_int_equal(xstree_write(xs, "/xapi/" VM_A "/private/vdis/xvda",
                                  "{}"), 0);
    assert_int_equal(backend_sim_guest(b, VM_A, &g), 0);

    assert_int_equal(b->ops->vm_rename(b, VM_A, VM_B), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_HALTED);
    assert_int_equal(st.domid, -1);
    get_state(b, VM_B, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    assert_int_equal(st.domid, 1);
    assert_true(st.built);
    assert_int_equal(backend_sim_guest(b, VM_B, &g2), 0);
    assert_ptr_equal(g, g2);

    assert_false(xstree_exists(xs, "/vm/" VM_A));
    assert_false(xstree_exists(xs, "/xapi/" VM_A));
    assert_true(xstree_exists(xs, "/vm/" VM_B "/devices/vbd/xvda"));
    assert_true(xstree_exists(xs, "/xapi/" VM_B "/private/vdis/xvda"));
    assert_xs(b, "/vm/" VM_B "/uuid", VM_B);
    assert_xs(b, "/local/domain/1/vm", "/vm/" VM_B);
    assert_xs(b, "/local/domain/1/name", VM_B);
    /* Reached its final id. */
    assert_false(xstree_exists(xs, "/vm/" VM_B "/final-uuid"));
    assert_int_equal(b->ops->vbd_get_state(b, VM_B, "xvda", &vst), 0);
    assert_true(vst.active);
    assert_true(vst.plugged);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_false(vst.active);
    assert_false(vst.plugged);

    /* The new id has a domain: refused, nothing moves. */
    assert_int_equal(b->ops->vm_create(b, VM_C, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_rename(b, VM_B, VM_C), XO_EEXISTS);
    get_state(b, VM_B, &st);
    assert_int_equal(st.domid, 1);
    assert_true(xstree_exists(xs, "/vm/" VM_B "/devices/vbd/xvda"));
    assert_xs(b, "/local/domain/1/vm", "/vm/" VM_B);
    assert_int_equal(b->ops->vm_rename(b, VM_B, VM_B), XO_EINVAL);
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_rename_without_domain_moves_flags(void **state)
{
    struct backend *b = sim_new();
    struct xstree *xs = backend_sim_xstree(b);
    struct backend_vbd_state vst;
    bool active, plugged;

    assert_int_equal(b->ops->vbd_set_active(b, VM_C, "xvdb", true), 0);
    assert_int_equal(b->ops->vif_set_active(b, VM_C, "0", true), 0);
    assert_int_equal(b->ops->vm_rename(b, VM_C, VM_D), 0);
    assert_false(xstree_exists(xs, "/vm/" VM_C));
    assert_int_equal(b->ops->vbd_get_state(b, VM_D, "xvdb", &vst), 0);
    assert_true(vst.active);
    assert_false(vst.plugged);
    assert_int_equal(b->ops->vif_get_state(b, VM_D, "0", &active, &plugged),
                     0);
    assert_true(active);
    /* Nothing at all to move is fine too. */
    assert_int_equal(b->ops->vm_rename(b, VM_A, VM_B), 0);

    /* A /vm subtree at the target makes the rename fail as a whole. */
    assert_int_equal(b->ops->vbd_set_active(b, VM_C, "xvdc", true), 0);
    assert_int_equal(xstree_write(xs, "/xapi/" VM_C "/x", "1"), 0);
    assert_int_equal(b->ops->vm_rename(b, VM_C, VM_D), XO_EEXISTS);
    assert_true(xstree_exists(xs, "/vm/" VM_C "/devices/vbd/xvdc"));
    assert_true(xstree_exists(xs, "/xapi/" VM_C "/x"));
    assert_false(xstree_exists(xs, "/xapi/" VM_D));
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_vbd_add_refused_when_not_active(void **state)
{
    struct backend *b = sim_new();
    struct backend_vbd_state vst;
    char *err;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/x", true),
                     XO_EINVAL);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, "not active"));
    free(err);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_false(vst.plugged);
    assert_false(xstree_exists(backend_sim_xstree(b),
                               "/local/domain/1/device"));
    assert_false(xstree_exists(backend_sim_xstree(b),
                               "/local/domain/0/backend"));
    b->ops->destroy(b);
}

static void
test_sim_vbd_plug_unplug(void **state)
{
    struct backend *b = sim_new();
    struct backend_vbd_state vst;

    /* Active without a domain, as xenopsd allows; no domain to plug into. */
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvda", true), 0);
    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/x", true),
                     XO_ENOTFOUND);
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/sm/x",
                                            false), 0);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_true(vst.active);
    assert_true(vst.plugged);
    assert_string_equal(vst.params, "/dev/sm/x");
    assert_xs(b, "/local/domain/0/backend/vbd/1/xvda/mode", "r");
    assert_xs(b, "/local/domain/0/backend/vbd/1/xvda/frontend",
              "/local/domain/1/device/vbd/xvda");
    assert_xs(b, "/local/domain/1/device/vbd/xvda/backend",
              "/local/domain/0/backend/vbd/1/xvda");
    assert_xs(b, "/local/domain/1/device/vbd/xvda/state", "4");

    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/y", true),
                     XO_EEXISTS);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_string_equal(vst.params, "/dev/sm/x");

    assert_int_equal(b->ops->vbd_remove_device(b, VM_A, "xvda", false), 0);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_true(vst.active);
    assert_false(vst.plugged);
    assert_string_equal(vst.params, "");
    assert_false(xstree_exists(backend_sim_xstree(b),
                               "/local/domain/0/backend/vbd/1/xvda"));
    assert_int_equal(b->ops->vbd_remove_device(b, VM_A, "xvda", true), 0);
    assert_int_equal(b->ops->vbd_remove_device(b, VM_B, "xvda", true), 0);
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvda", false), 0);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_false(vst.active);
    /* Params that would not fit the state are refused. */
    {
        char big[300];

        memset(big, 'p', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvdb", true), 0);
        assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvdb", big, true),
                         XO_EINVAL);
    }
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_destroy_removes_devices_keeps_flags(void **state)
{
    struct backend *b = sim_new();
    struct xstree *xs = backend_sim_xstree(b);
    struct backend_vbd_state vst;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvda", true), 0);
    assert_int_equal(b->ops->vbd_add_device(b, VM_A, "xvda", "/dev/x", true),
                     0);
    assert_int_equal(b->ops->vif_set_active(b, VM_A, "0", true), 0);
    assert_int_equal(b->ops->vif_plug(b, VM_A, "0", NULL), 0);
    assert_int_equal(b->ops->vm_destroy(b, VM_A), 0);
    assert_false(xstree_exists(xs, "/local/domain/1"));
    assert_false(xstree_exists(xs, "/local/domain/0/backend/vbd/1"));
    assert_false(xstree_exists(xs, "/local/domain/0/backend/vif/1"));
    assert_false(xstree_exists(xs, "/vm/" VM_A "/uuid"));
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "xvda", &vst), 0);
    assert_true(vst.active);
    assert_false(vst.plugged);
    b->ops->destroy(b);
}

static void
test_sim_vif_plug_unplug(void **state)
{
    struct backend *b = sim_new();
    bool active, plugged;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vif_plug(b, VM_A, "0", NULL), XO_EINVAL);
    assert_int_equal(b->ops->vif_set_active(b, VM_A, "0", true), 0);
    assert_int_equal(b->ops->vif_get_state(b, VM_A, "0", &active, &plugged),
                     0);
    assert_true(active);
    assert_false(plugged);
    assert_int_equal(b->ops->vif_plug(b, VM_A, "0", NULL), 0);
    assert_int_equal(b->ops->vif_plug(b, VM_A, "0", NULL), XO_EEXISTS);
    assert_int_equal(b->ops->vif_get_state(b, VM_A, "0", &active, &plugged),
                     0);
    assert_true(plugged);
    assert_xs(b, "/local/domain/0/backend/vif/1/0/frontend",
              "/local/domain/1/device/vif/0");
    assert_int_equal(b->ops->vif_unplug(b, VM_A, "0", false), 0);
    assert_int_equal(b->ops->vif_get_state(b, VM_A, "0", &active, &plugged),
                     0);
    assert_false(plugged);
    assert_int_equal(b->ops->vif_unplug(b, VM_A, "0", false), 0);
    assert_int_equal(b->ops->vif_set_active(b, VM_A, "0", false), 0);
    assert_int_equal(b->ops->vif_get_state(b, VM_A, "0", &active, &plugged),
                     0);
    assert_false(active);
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_save_restore_between_vms(void **state)
{
    struct backend *b = sim_new();
    struct backend_vm_state st;
    struct sim_guest *ga, *gb;
    char *dir = tmpdir_new(), *file;
    int fd = tmpfile_open(dir, "img", &file);
    atomic_bool cancel = false;
    uint64_t sum;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_build(b, VM_A, false), 0);
    assert_int_equal(b->ops->vm_unpause(b, VM_A), 0);
    assert_int_equal(backend_sim_guest(b, VM_A, &ga), 0);
    wait_heartbeat(ga, 3);

    assert_int_equal(b->ops->vm_save(b, VM_A, fd, 0x8000, &cancel),
                     XO_EINVAL);
    assert_int_equal(b->ops->vm_save(b, VM_A, fd, BACKEND_SAVE_LIVE,
                                     &cancel), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_SUSPENDED);
    assert_true(sim_guest_is_paused(ga));
    sum = sim_guest_checksum(ga);

    assert_int_equal(b->ops->vm_restore(b, VM_B, fd, &cancel),
                     XO_ENOTFOUND);
    assert_int_equal(b->ops->vm_create(b, VM_B, &vm_cfg), 0);
    assert_int_equal(backend_sim_guest(b, VM_B, &gb), 0);
    assert_true(sim_guest_checksum(gb) != sum);
    /* Cancelled restore. */
    cancel = true;
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(b->ops->vm_restore(b, VM_B, fd, &cancel),
                     XO_ECANCELLED);
    get_state(b, VM_B, &st);
    assert_false(st.built);
    cancel = false;
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(b->ops->vm_restore(b, VM_B, fd, &cancel), 0);
    assert_true(sim_guest_checksum(gb) == sum);
    get_state(b, VM_B, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    assert_true(st.built);
    assert_int_equal(st.heartbeat, sim_guest_heartbeat(ga));
    /* Restoring replaces building: the domain may run. */
    assert_int_equal(b->ops->vm_unpause(b, VM_B), 0);
    wait_heartbeat(gb, sim_guest_heartbeat(ga) + 1);
    assert_int_equal(b->ops->vm_restore(b, VM_B, fd, &cancel),
                     XO_EPOWERSTATE);

    /* The suspended source, unpaused again, is simply running. */
    assert_int_equal(b->ops->vm_unpause(b, VM_A), 0);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_RUNNING);
    /* A cancelled save does not leave the domain suspended. */
    cancel = true;
    assert_int_equal(b->ops->vm_save(b, VM_A, fd, 0, &cancel),
                     XO_ECANCELLED);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    xo_err_clear();

    close(fd);
    tmp_cleanup(dir, file);
    b->ops->destroy(b);
}

static void
test_sim_shutdown_and_action_requests(void **state)
{
    static const char *const reasons[][2] = {
        { "Halt", "poweroff" }, { "PowerOff", "poweroff" },
        { "Reboot", "reboot" }, { "Suspend", "suspend" },
    };
    struct backend *b = sim_new();
    struct backend_vm_state st;
    char *diag;

    assert_int_equal(b->ops->vm_shutdown_domain(b, VM_A, "Halt", 1.0),
                     XO_ENOTFOUND);
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(b->ops->vm_set_action_request(b, VM_A, NULL), 0);
        assert_int_equal(b->ops->vm_shutdown_domain(b, VM_A, reasons[i][0],
                                                    1.0), 0);
        get_state(b, VM_A, &st);
        assert_string_equal(st.action_request, reasons[i][1]);
    }
    diag = b->ops->diagnostics(b);
    assert_non_null(strstr(diag, "\"shutdown_reason\":\"Suspend\""));
    free(diag);
    assert_int_equal(b->ops->vm_shutdown_domain(b, VM_A, "Explode", 1.0),
                     XO_EINVAL);
    assert_int_equal(b->ops->vm_set_action_request(b, VM_A, "explode"),
                     XO_EINVAL);
    get_state(b, VM_A, &st);
    assert_string_equal(st.action_request, "suspend");
    assert_int_equal(b->ops->vm_set_action_request(b, VM_A, "reboot"), 0);
    get_state(b, VM_A, &st);
    assert_string_equal(st.action_request, "reboot");
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_bad_ids_change_nothing(void **state)
{
    struct backend *b = sim_new();
    struct backend_vm_config cfg = vm_cfg;
    struct backend_vm_state st;
    struct backend_vbd_state vst;
    struct backend_sim_config bad_cfg = { 0, 0, 1 };
    struct backend *b2 = NULL;
    struct sim_guest *g;
    char *dump;

    assert_int_equal(b->ops->vm_create(b, "not-a-uuid", &vm_cfg), XO_EINVAL);
    assert_int_equal(b->ops->vm_create(b, "../../etc", &vm_cfg), XO_EINVAL);
    cfg.final_id = "bad/final";
    assert_int_equal(b->ops->vm_create(b, VM_A, &cfg), XO_EINVAL);
    cfg.final_id = NULL;
    cfg.memory_bytes = 0;
    assert_int_equal(b->ops->vm_create(b, VM_A, &cfg), XO_EINVAL);
    get_state(b, VM_A, &st);
    assert_int_equal(st.domid, -1);
    assert_int_equal(b->ops->vm_get_state(b, "x", &st), XO_EINVAL);
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "../x", true),
                     XO_EINVAL);
    assert_int_equal(b->ops->vbd_set_active(b, "/vm", "xvda", true),
                     XO_EINVAL);
    assert_int_equal(b->ops->vbd_get_state(b, VM_A, "a/b", &vst), XO_EINVAL);
    assert_int_equal(b->ops->vm_rename(b, VM_A, "nope"), XO_EINVAL);
    assert_int_equal(b->ops->vm_destroy(b, ""), XO_EINVAL);
    assert_int_equal(b->ops->vm_save(b, "x", -1, 0, NULL), XO_EINVAL);
    assert_int_equal(b->ops->vm_restore(b, "x", -1, NULL), XO_EINVAL);
    assert_int_equal(backend_sim_guest(b, "x", &g), XO_EINVAL);

    dump = xstree_dump_json(backend_sim_xstree(b), "/");
    assert_string_equal(dump, "{}");
    free(dump);
    dump = b->ops->diagnostics(b);
    assert_non_null(strstr(dump, "\"domains\":[]"));
    free(dump);

    assert_int_equal(backend_sim_new(&bad_cfg, &b2), XO_EINVAL);
    assert_null(b2);
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_diagnostics(void **state)
{
    struct backend *b = sim_new();
    yajl_val tree = NULL, doms;
    char *diag;

    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    diag = b->ops->diagnostics(b);
    assert_int_equal(json_parse(diag, strlen(diag), &tree), 0);
    assert_string_equal(json_get_str(tree, "backend"), "simulator");
    doms = json_get(tree, "domains");
    assert_int_equal(json_array_len(doms), 1);
    assert_string_equal(json_get_str(json_array_at(doms, 0), "vm"), VM_A);
    assert_string_equal(json_get_str(json_array_at(doms, 0), "power"),
                        "Paused");
    assert_string_equal(json_get_str(json_get(tree, "xenstore"),
                                     "/local/domain/1/vm"), "/vm/" VM_A);
    yajl_tree_free(tree);
    free(diag);
    b->ops->destroy(b);
}

static void
test_sim_power_names(void **state)
{
    assert_string_equal(backend_power_name(BACKEND_HALTED), "Halted");
    assert_string_equal(backend_power_name(BACKEND_RUNNING), "Running");
    assert_string_equal(backend_power_name(BACKEND_PAUSED), "Paused");
    assert_string_equal(backend_power_name(BACKEND_SUSPENDED), "Suspended");
}

/* ---- what migration needs: stream out/in, forget, list ---- */

struct mig_send {
    struct backend *b;
    int fd;
    int rc;
    int pauses;
    int progress_calls;
    struct backend_migrate_stats st;
};

static int
mig_pause(void *arg)
{
    struct mig_send *m = arg;

    m->pauses++;
    return m->b->ops->vm_pause(m->b, VM_A);
}

static void
mig_progress(const struct backend_migrate_progress *p, void *arg)
{
    struct mig_send *m = arg;

    assert_true(p->bytes_sent > 0);
    m->progress_calls++;
}

static void *
mig_send_thread(void *arg)
{
    struct mig_send *m = arg;
    struct backend_migrate_opts o = {
        .max_downtime_ms = 300, .max_iterations = 5,
        .pause = mig_pause, .pause_arg = m,
        .progress = mig_progress, .progress_arg = m,
    };

    m->rc = m->b->ops->vm_migrate_send(m->b, VM_A, m->fd, &o, &m->st);
    return NULL;
}

static void
test_sim_migrate_stream_moves_the_guest(void **state)
{
    struct backend *b = sim_new();
    struct backend_migrate_opts ro = { .max_iterations = 1 };
    struct backend_migrate_stats rst;
    struct backend_vm_state st;
    struct sim_guest *ga, *gb;
    struct mig_send m = { .b = b };
    pthread_t t;
    uint64_t gap = 0;
    int sv[2];

    (void)state;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_build(b, VM_A, false), 0);
    assert_int_equal(b->ops->vm_unpause(b, VM_A), 0);
    assert_int_equal(backend_sim_guest(b, VM_A, &ga), 0);
    wait_heartbeat(ga, 2);
    assert_int_equal(b->ops->vm_create(b, VM_B, &vm_cfg), 0);
    assert_int_equal(backend_sim_guest(b, VM_B, &gb), 0);
    /* Nothing was received yet: nothing to measure. */
    assert_int_equal(b->ops->vm_migrate_guest_downtime(b, VM_B, NULL, &gap),
                     XO_EINVAL);
    xo_err_clear();

    m.fd = sv[0];
    assert_int_equal(pthread_create(&t, NULL, mig_send_thread, &m), 0);
    assert_int_equal(b->ops->vm_migrate_receive(b, VM_B, sv[1], &ro, &rst),
                     0);
    pthread_join(t, NULL);
    assert_int_equal(m.rc, 0);
    assert_int_equal(m.pauses, 1);
    assert_true(m.progress_calls >= 1);
    assert_true(m.st.paused);
    assert_true(m.st.bytes > 0);
    assert_int_equal(rst.bytes, m.st.bytes);
    get_state(b, VM_A, &st);
    assert_int_equal(st.power, BACKEND_PAUSED);
    assert_true(sim_guest_checksum(ga) == sim_guest_checksum(gb));

    assert_int_equal(b->ops->vm_build(b, VM_B, false), 0);
    assert_int_equal(b->ops->vm_unpause(b, VM_B), 0);
    assert_int_equal(b->ops->vm_migrate_guest_downtime(b, VM_B, NULL, &gap),
                     0);
    assert_true(gap > 0);
    close(sv[0]);
    close(sv[1]);
    b->ops->destroy(b);
}

static void
test_sim_migrate_stream_needs_a_domain(void **state)
{
    struct backend *b = sim_new();
    struct backend_migrate_opts o = { .max_iterations = 1 };
    struct backend_migrate_stats st;

    (void)state;
    assert_int_equal(b->ops->vm_migrate_send(b, VM_A, -1, &o, &st),
                     XO_ENOTFOUND);
    assert_false(st.paused);
    assert_int_equal(b->ops->vm_migrate_receive(b, VM_A, -1, &o, &st),
                     XO_ENOTFOUND);
    assert_int_equal(b->ops->vm_migrate_send(b, "x", -1, &o, &st),
                     XO_EINVAL);
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_forget_drops_the_records_of_a_gone_domain(void **state)
{
    struct backend *b = sim_new();
    struct xstree *xs = backend_sim_xstree(b);

    (void)state;
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vbd_set_active(b, VM_A, "xvda", true), 0);
    /* A VM that still has a domain is not forgotten. */
    assert_int_equal(b->ops->vm_forget(b, VM_A), XO_EEXISTS);
    xo_err_clear();
    assert_true(xstree_exists(xs, "/vm/" VM_A));
    assert_int_equal(b->ops->vm_destroy(b, VM_A), 0);
    /* The active flag keeps /vm/<id> after the domain went. */
    assert_true(xstree_exists(xs, "/vm/" VM_A));
    assert_int_equal(b->ops->vm_forget(b, VM_A), 0);
    assert_false(xstree_exists(xs, "/vm/" VM_A));
    /* Nothing left to forget is fine; a bad id is refused. */
    assert_int_equal(b->ops->vm_forget(b, VM_A), 0);
    assert_int_equal(b->ops->vm_forget(b, "../x"), XO_EINVAL);
    xo_err_clear();
    b->ops->destroy(b);
}

static void
test_sim_list_domains(void **state)
{
    struct backend *b = sim_new();
    char **vms = NULL;
    size_t n = 9;

    (void)state;
    assert_int_equal(b->ops->list_domains(b, &vms, &n), 0);
    assert_int_equal(n, 0);
    backend_list_free(vms, n);
    assert_int_equal(b->ops->vm_create(b, VM_A, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_create(b, VM_B, &vm_cfg), 0);
    assert_int_equal(b->ops->vm_destroy(b, VM_A), 0);
    assert_int_equal(b->ops->list_domains(b, &vms, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(vms[0], VM_B);
    backend_list_free(vms, n);
    backend_list_free(NULL, 0);
    b->ops->destroy(b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xstree_write_read_rm),
        cmocka_unit_test(test_xstree_directory_sorted),
        cmocka_unit_test(test_xstree_move_subtree),
        cmocka_unit_test(test_xstree_txn_all_or_nothing),
        cmocka_unit_test(test_xstree_path_validation),
        cmocka_unit_test(test_xstree_dump_json),
        cmocka_unit_test(test_xstree_concurrent_writers),
        cmocka_unit_test(test_sim_guest_heartbeat_runs_and_pauses),
        cmocka_unit_test(test_sim_guest_gap_covers_pause),
        cmocka_unit_test(test_sim_guest_pause_stops_memory_writes),
        cmocka_unit_test(test_sim_guest_dirty_tracking),
        cmocka_unit_test(test_sim_guest_save_restore_identical),
        cmocka_unit_test(test_sim_guest_restore_refuses_bad_image),
        cmocka_unit_test(test_sim_guest_cancel_honoured),
        cmocka_unit_test(test_sim_guest_restore_woken_by_cancel),
        cmocka_unit_test(test_sim_guest_bad_arguments),
        cmocka_unit_test(test_sim_lifecycle),
        cmocka_unit_test(test_sim_domain_not_built),
        cmocka_unit_test(test_sim_create_already_exists),
        cmocka_unit_test(test_sim_rename_moves_domain_and_records),
        cmocka_unit_test(test_sim_rename_without_domain_moves_flags),
        cmocka_unit_test(test_sim_vbd_add_refused_when_not_active),
        cmocka_unit_test(test_sim_vbd_plug_unplug),
        cmocka_unit_test(test_sim_destroy_removes_devices_keeps_flags),
        cmocka_unit_test(test_sim_vif_plug_unplug),
        cmocka_unit_test(test_sim_save_restore_between_vms),
        cmocka_unit_test(test_sim_shutdown_and_action_requests),
        cmocka_unit_test(test_sim_bad_ids_change_nothing),
        cmocka_unit_test(test_sim_diagnostics),
        cmocka_unit_test(test_sim_power_names),
        cmocka_unit_test(test_sim_migrate_stream_moves_the_guest),
        cmocka_unit_test(test_sim_migrate_stream_needs_a_domain),
        cmocka_unit_test(test_sim_forget_drops_the_records_of_a_gone_domain),
        cmocka_unit_test(test_sim_list_domains),
    };

    /* Failures are the point of many cases: keep their log lines out. */
    log_set_level(getenv("SIM_TEST_VERBOSE") ? LOG_LVL_DEBUG
                                              : LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
