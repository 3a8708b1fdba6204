/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests of the SM layer (sm/sm.c): datapaths, their persisted
 * table, and the in-process test driver. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "sm/sm.h"
#include "sm/sm_testdrv.h"
#include "util/errors.h"
#include "util/xalloc.h"

#define SR3 "5a3e0c3e-0000-4000-8000-000000000003"
#define SR1 "5a3e0c3e-0000-4000-8000-000000000001"

struct fixture {
    struct sm *sm;
    struct sm_testdrv *v3;
    struct sm_testdrv *v1;
};

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    assert_int_equal(sm_new(&f->sm), 0);
    f->v3 = sm_testdrv_new("5.0");
    f->v1 = sm_testdrv_new("1.0");
    assert_int_equal(sm_register_sr(f->sm, SR3, &sm_testdrv_ops, f->v3), 0);
    assert_int_equal(sm_register_sr(f->sm, SR1, &sm_testdrv_ops, f->v1), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    sm_free(f->sm);
    free(f);
    xo_err_clear();
    return 0;
}

static void
vdi_disk(struct model_disk *d, const char *sr, const char *vdi)
{
    memset(d, 0, sizeof(*d));
    d->kind = MODEL_DISK_VDI;
    d->sr = xstrdup(sr);
    d->vdi = xstrdup(vdi);
    d->path = xasprintf("%s/%s", sr, vdi);
}

/* The driver's calls, joined with "|". */
static char *
calls(struct sm_testdrv *d)
{
    size_t n;
    char **c = sm_testdrv_calls(d, &n);
    char *out = xstrdup("");

    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s%s", out, i ? "|" : "", c[i]);

        free(out);
        out = next;
    }
    sm_testdrv_calls_free(c, n);
    return out;
}

static void
test_sm_attach_activate_sequence(void **state)
{
    struct fixture *f = *state;
    struct model_disk d;
    char *params = NULL, *log;
    bool att, act;

    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvda", &d, "3", true, &params),
                     0);
    assert_string_equal(params, "/dev/sm-test/" SR3 "/vdi-a");
    assert_int_equal(sm_activate(f->sm, "vbd/3/xvda"), 0);
    sm_dp_state(f->sm, "vbd/3/xvda", &att, &act);
    assert_true(att && act);
    assert_int_equal(sm_dp_destroy(f->sm, "vbd/3/xvda"), 0);
    sm_dp_state(f->sm, "vbd/3/xvda", &att, &act);
    assert_false(att || act);
    log = calls(f->v3);
    assert_string_equal(log, "attach vbd/3/xvda vdi-a 3|activate vbd/3/xvda "
                             "vdi-a 3|deactivate vbd/3/xvda vdi-a 3|detach "
                             "vbd/3/xvda vdi-a 3");
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    assert_int_equal(sm_testdrv_active(f->v3), 0);
    free(log);
    free(params);
    model_disk_dispose(&d);
}

/* Two datapaths of one VDI on a host (localhost migration): one driver
 * attach, exclusive activation, and tearing one down leaves the other. */
static void
test_sm_two_datapaths_keep_their_own_state(void **state)
{
    struct fixture *f = *state;
    struct model_disk d;
    char *p1 = NULL, *p2 = NULL;
    bool att, act;

    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvda", &d, "3", true, &p1), 0);
    assert_int_equal(sm_activate(f->sm, "vbd/3/xvda"), 0);
    assert_int_equal(sm_attach(f->sm, "vbd/4/xvda", &d, "4", true, &p2), 0);
    assert_string_equal(p1, p2);
    assert_int_equal(sm_testdrv_attached(f->v3), 1);

    /* The VDI is active for vbd/3: vbd/4 may not activate it too. */
    assert_int_equal(sm_activate(f->sm, "vbd/4/xvda"), XO_EBACKEND);
    xo_err_clear();

    /* The source goes away: the destination's attach stays. */
    assert_int_equal(sm_dp_destroy(f->sm, "vbd/3/xvda"), 0);
    sm_dp_state(f->sm, "vbd/4/xvda", &att, &act);
    assert_true(att);
    assert_false(act);
    assert_int_equal(sm_testdrv_attached(f->v3), 1);
    assert_int_equal(sm_activate(f->sm, "vbd/4/xvda"), 0);
    assert_int_equal(sm_testdrv_active(f->v3), 1);
    assert_int_equal(sm_dp_destroy(f->sm, "vbd/4/xvda"), 0);
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    free(p1);
    free(p2);
    model_disk_dispose(&d);
}

static void
test_sm_can_attach_early_follows_api_version(void **state)
{
    struct fixture *f = *state;
    struct model_disk v3, v1, other, local = { MODEL_DISK_LOCAL, NULL,
                                               NULL, NULL };

    vdi_disk(&v3, SR3, "a");
    vdi_disk(&v1, SR1, "b");
    vdi_disk(&other, "5a3e0c3e-0000-4000-8000-0000000000ff", "c");
    assert_true(sm_can_attach_early(f->sm, &v3));
    assert_false(sm_can_attach_early(f->sm, &v1));
    assert_false(sm_can_attach_early(f->sm, &other));
    assert_false(sm_can_attach_early(f->sm, &local));
    /* Cached: asking again gives the same answers. */
    assert_true(sm_can_attach_early(f->sm, &v3));
    model_disk_dispose(&v3);
    model_disk_dispose(&v1);
    model_disk_dispose(&other);
}

/* A driver whose version and stamp the test changes (an upgrade). */
struct stamped_drv {
    const char *version;
    uint64_t stamp;
    int queries;
};

static int
stamped_query(void *priv, char **api_version_r)
{
    struct stamped_drv *d = priv;

    d->queries++;
    *api_version_r = xstrdup(d->version);
    return 0;
}

static int
stamped_stamp(void *priv, uint64_t *stamp_r)
{
    *stamp_r = ((struct stamped_drv *)priv)->stamp;
    return 0;
}

static void
stamped_free(void *priv)
{
    free(priv);
}

static void
test_sm_can_attach_early_requeries_changed_driver(void **state)
{
    /* Static: the SM layer keeps the ops until sm_free in teardown. */
    static struct sm_driver_ops ops;
    const char *sr = "5a3e0c3e-0000-4000-8000-000000000005";
    struct fixture *f = *state;
    struct stamped_drv *d = xcalloc(1, sizeof(*d));
    struct model_disk disk;

    ops = sm_testdrv_ops;
    ops.name = "stamped";
    ops.query = stamped_query;
    ops.stamp = stamped_stamp;
    ops.free = stamped_free;
    d->version = "1.0";
    d->stamp = 1;
    vdi_disk(&disk, sr, "a");
    assert_int_equal(sm_register_sr(f->sm, sr, &ops, d), 0);
    assert_false(sm_can_attach_early(f->sm, &disk));
    assert_false(sm_can_attach_early(f->sm, &disk));
    assert_int_equal(d->queries, 1);
    /* The driver file changed: asked again, new verdict, cached again. */
    d->version = "5.0";
    d->stamp = 2;
    assert_true(sm_can_attach_early(f->sm, &disk));
    assert_true(sm_can_attach_early(f->sm, &disk));
    assert_int_equal(d->queries, 2);
    model_disk_dispose(&disk);
}

static void
test_sm_failed_attach_leaves_nothing(void **state)
{
    struct fixture *f = *state;
    struct model_disk d;
    char *params = NULL, *json;
    bool att, act;

    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_testdrv_fail(f->v3, "attach", "vdi-a", 1), 0);
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvda", &d, "3", true, &params),
                     XO_EBACKEND);
    json = xo_err_take_json(XO_EBACKEND);
    assert_non_null(strstr(json, "SR_BACKEND_FAILURE_46"));
    free(json);
    assert_null(params);
    sm_dp_state(f->sm, "vbd/3/xvda", &att, &act);
    assert_false(att);
    json = sm_dump_json(f->sm);
    assert_string_equal(json, "{}");
    free(json);
    /* The failure was one-shot: a retry attaches. */
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvda", &d, "3", true, &params),
                     0);
    assert_int_equal(sm_dp_destroy(f->sm, "vbd/3/xvda"), 0);
    free(params);
    model_disk_dispose(&d);
}

static void
test_sm_activate_needs_attach(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(sm_activate(f->sm, "vbd/3/xvdz"), XO_EINVAL);
    xo_err_clear();
    /* Deactivate and destroy of unknown datapaths are no-ops. */
    assert_int_equal(sm_deactivate(f->sm, "vbd/3/xvdz"), 0);
    assert_int_equal(sm_dp_destroy(f->sm, "vbd/3/xvdz"), 0);
}

static void
test_sm_local_and_unknown_sr(void **state)
{
    struct fixture *f = *state;
    struct model_disk local = { MODEL_DISK_LOCAL, (char *)"/dev/loop7",
                                NULL, NULL };
    struct model_disk d;
    char *params = NULL;

    assert_int_equal(sm_attach(f->sm, "vbd/3/hda", &local, "3", false,
                               &params), 0);
    assert_string_equal(params, "/dev/loop7");
    free(params);
    vdi_disk(&d, "5a3e0c3e-0000-4000-8000-0000000000ff", "x");
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvdb", &d, "3", true, &params),
                     XO_EBACKEND);
    xo_err_clear();
    model_disk_dispose(&d);
}

struct attach_arg {
    struct sm *sm;
    char dp[32];
    struct model_disk disk;
    int rc;
};

static void *
attach_thread(void *p)
{
    struct attach_arg *a = p;
    char *params = NULL;

    a->rc = sm_attach(a->sm, a->dp, &a->disk, "3", true, &params);
    free(params);
    return NULL;
}

/* Attaches of different VDIs run at the same time in the driver. */
static void
test_sm_attaches_of_different_vdis_overlap(void **state)
{
    struct fixture *f = *state;
    struct attach_arg args[4];
    pthread_t th[4];

    assert_int_equal(sm_testdrv_set_latency(f->v3, "attach", 200), 0);
    for (int i = 0; i < 4; i++) {
        char vdi[16];

        args[i].sm = f->sm;
        snprintf(args[i].dp, sizeof(args[i].dp), "vbd/3/xvd%c", 'a' + i);
        snprintf(vdi, sizeof(vdi), "vdi-%d", i);
        vdi_disk(&args[i].disk, SR3, vdi);
        pthread_create(&th[i], NULL, attach_thread, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, 0);
        model_disk_dispose(&args[i].disk);
    }
    assert_true(sm_testdrv_max_inflight(f->v3) > 1);
    assert_int_equal(sm_testdrv_attached(f->v3), 4);
}

struct destroy_arg {
    struct sm *sm;
    int rc;
};

static void *
destroy_thread(void *p)
{
    struct destroy_arg *a = p;

    a->rc = sm_dp_destroy(a->sm, "vbd/3/xvda");
    return NULL;
}

/* An attach that waits for a detach of the same VDI (one VM shuts down
 * while another starts on the disk) attaches again afterwards. */
static void
test_sm_attach_after_concurrent_detach_reattaches(void **state)
{
    struct fixture *f = *state;
    struct destroy_arg arg = { f->sm, -1 };
    struct model_disk d;
    char *params = NULL, **c;
    size_t n = 0;
    bool detaching = false;
    pthread_t th;

    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_attach(f->sm, "vbd/3/xvda", &d, "3", true, &params),
                     0);
    free(params);
    assert_int_equal(sm_testdrv_set_latency(f->v3, "detach", 300), 0);
    pthread_create(&th, NULL, destroy_thread, &arg);
    /* Wait (bounded, as a deadlock guard) until the detach is in the
     * driver, then attach the VDI for another datapath. */
    for (int i = 0; i < 5000 && !detaching; i++) {
        c = sm_testdrv_calls(f->v3, &n);
        detaching = n == 2 && strncmp(c[1], "detach", 6) == 0;
        sm_testdrv_calls_free(c, n);
        if (!detaching)
            usleep(1000);
    }
    assert_true(detaching);
    assert_int_equal(sm_attach(f->sm, "vbd/4/xvda", &d, "4", true, &params),
                     0);
    pthread_join(th, NULL);
    assert_int_equal(arg.rc, 0);
    assert_int_equal(sm_testdrv_attached(f->v3), 1);
    c = sm_testdrv_calls(f->v3, &n);
    assert_int_equal(n, 3);
    assert_string_equal(c[2], "attach vbd/4/xvda vdi-a 4");
    sm_testdrv_calls_free(c, n);
    free(params);
    model_disk_dispose(&d);
}

static void
test_sm_register_spec(void **state)
{
    struct sm *sm;
    struct model_disk d;

    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_testdrv_register_spec(sm, SR3 ":5.0:10:1," SR1
                                              ":1.0:0:0"), 0);
    vdi_disk(&d, SR3, "a");
    assert_true(sm_can_attach_early(sm, &d));
    model_disk_dispose(&d);
    assert_int_equal(sm_testdrv_register_spec(sm, "nope:5.0:1:1"),
                     XO_EINVAL);
    xo_err_clear();
    assert_int_equal(sm_testdrv_register_spec(sm, SR3 ":5.0:x:1"),
                     XO_EINVAL);
    xo_err_clear();
    /* Registering an SR twice is refused. */
    assert_int_equal(sm_testdrv_register_spec(sm, SR1 ":1.0:0:0"),
                     XO_EEXISTS);
    xo_err_clear();
    sm_free(sm);
}

/* ---- the persisted datapath table ---- */

struct pfixture {
    char dir[64];
    struct sm *sm;
    struct sm_testdrv *v3;
};

static void
popen_sm(struct pfixture *p)
{
    assert_int_equal(sm_new(&p->sm), 0);
    p->v3 = sm_testdrv_new("5.0");
    assert_int_equal(sm_register_sr(p->sm, SR3, &sm_testdrv_ops, p->v3), 0);
    assert_int_equal(sm_open_table(p->sm, p->dir, true), 0);
}

static int
psetup(void **state)
{
    struct pfixture *p = xcalloc(1, sizeof(*p));

    strcpy(p->dir, "/tmp/test_sm.XXXXXX");
    assert_non_null(mkdtemp(p->dir));
    popen_sm(p);
    *state = p;
    return 0;
}

static char *
table_path(const struct pfixture *p)
{
    return xasprintf("%s/datapaths.json", p->dir);
}

static int
pteardown(void **state)
{
    struct pfixture *p = *state;
    char *path = table_path(p);

    sm_free(p->sm);
    unlink(path);
    free(path);
    assert_int_equal(rmdir(p->dir), 0);
    free(p);
    xo_err_clear();
    return 0;
}

/* The daemon stops (no driver calls) and starts again on the same dir. */
static void
restart(struct pfixture *p)
{
    sm_free(p->sm);
    popen_sm(p);
}

static void
write_table(const struct pfixture *p, const char *text)
{
    char *path = table_path(p);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    free(path);
}

static char *
read_table(const struct pfixture *p)
{
    char *path = table_path(p), *buf = xcalloc(1, 65536);
    FILE *f = fopen(path, "r");

    free(path);
    if (!f) {
        free(buf);
        return NULL;
    }
    assert_true(fread(buf, 1, 65535, f) > 0);
    fclose(f);
    return buf;
}

static void
test_sm_table_survives_restart(void **state)
{
    struct pfixture *p = *state;
    struct model_disk a, b;
    char *pa = NULL, *pb = NULL, *before, *after, *log;
    bool att, act;

    vdi_disk(&a, SR3, "vdi-a");
    vdi_disk(&b, SR3, "vdi-b");
    assert_int_equal(sm_attach(p->sm, "vbd/3/xvda", &a, "3", true, &pa), 0);
    assert_int_equal(sm_activate(p->sm, "vbd/3/xvda"), 0);
    assert_int_equal(sm_attach(p->sm, "vbd/3/xvdb", &b, "3", false, &pb),
                     0);
    before = sm_dump_json(p->sm);

    restart(p);
    after = sm_dump_json(p->sm);
    assert_string_equal(before, after);
    sm_dp_state(p->sm, "vbd/3/xvda", &att, &act);
    assert_true(att && act);
    sm_dp_state(p->sm, "vbd/3/xvdb", &att, &act);
    assert_true(att && !act);
    /* Loading called no driver; the loaded datapaths are bound to it. */
    log = calls(p->v3);
    assert_string_equal(log, "");
    free(log);
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/3/xvda"), 0);
    log = calls(p->v3);
    assert_string_equal(log, "deactivate vbd/3/xvda vdi-a 3|detach "
                             "vbd/3/xvda vdi-a 3");
    free(log);
    /* A second datapath on a loaded VDI shares its attach and params. */
    free(pa);
    assert_int_equal(sm_attach(p->sm, "vbd/4/xvdb", &b, "4", false, &pa),
                     0);
    assert_string_equal(pa, pb);

    /* The release was written too. */
    restart(p);
    sm_dp_state(p->sm, "vbd/3/xvda", &att, &act);
    assert_false(att || act);
    sm_dp_state(p->sm, "vbd/3/xvdb", &att, &act);
    assert_true(att && !act);
    sm_dp_state(p->sm, "vbd/4/xvdb", &att, &act);
    assert_true(att);
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/3/xvdb"), 0);
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/4/xvdb"), 0);
    log = calls(p->v3);
    assert_string_equal(log, "detach vbd/4/xvdb vdi-b 4");
    free(log);
    free(before);
    free(after);
    free(pa);
    free(pb);
    model_disk_dispose(&a);
    model_disk_dispose(&b);
}

/* What the file said when the driver was called (peek driver). */
static struct {
    const char *dir;
    char *at_attach;
    char *at_activate;
} peek;

static char *
peek_file(void)
{
    char *path = xasprintf("%s/datapaths.json", peek.dir);
    char *buf = xcalloc(1, 65536);
    FILE *f = fopen(path, "r");

    if (f) {
        if (fread(buf, 1, 65535, f) == 0)
            buf[0] = '\0';
        fclose(f);
    }
    free(path);
    return buf;
}

static int
peek_attach(void *priv, const char *dp, const char *sr, const char *vdi,
            const char *domain, bool rw, char **params_r)
{
    free(peek.at_attach);
    peek.at_attach = peek_file();
    return sm_testdrv_ops.attach(priv, dp, sr, vdi, domain, rw, params_r);
}

static int
peek_activate(void *priv, const char *dp, const char *sr, const char *vdi,
              const char *domain)
{
    free(peek.at_activate);
    peek.at_activate = peek_file();
    return sm_testdrv_ops.activate(priv, dp, sr, vdi, domain);
}

/* Attach and activate are on disk before the driver acts, so a crash
 * inside the driver call still leaves them for reconciliation; a failed
 * attach is taken out again. */
static void
test_sm_table_written_before_driver_acts(void **state)
{
    static struct sm_driver_ops ops;
    const char *sr = "5a3e0c3e-0000-4000-8000-000000000007";
    struct pfixture *p = *state;
    struct sm_testdrv *drv = sm_testdrv_new("5.0");
    struct model_disk d;
    char *params = NULL, *text;

    ops = sm_testdrv_ops;
    ops.name = "peek";
    ops.attach = peek_attach;
    ops.activate = peek_activate;
    peek.dir = p->dir;
    assert_int_equal(sm_register_sr(p->sm, sr, &ops, drv), 0);
    vdi_disk(&d, sr, "vdi-p");
    assert_int_equal(sm_attach(p->sm, "vbd/5/xvdc", &d, "5", true, &params),
                     0);
    assert_non_null(strstr(peek.at_attach, "\"vbd/5/xvdc\":{\"sr\":\""));
    /* In flight: no params yet. */
    assert_null(strstr(peek.at_attach, "params"));
    assert_int_equal(sm_activate(p->sm, "vbd/5/xvdc"), 0);
    assert_non_null(strstr(peek.at_activate, "\"active\":true"));
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/5/xvdc"), 0);
    text = read_table(p);
    assert_null(strstr(text, "vbd/5/xvdc"));
    free(text);

    assert_int_equal(sm_testdrv_fail(drv, "attach", "vdi-p", 1), 0);
    free(params);
    assert_int_equal(sm_attach(p->sm, "vbd/5/xvdc", &d, "5", true, &params),
                     XO_EBACKEND);
    xo_err_clear();
    assert_non_null(strstr(peek.at_attach, "vbd/5/xvdc"));
    text = read_table(p);
    assert_string_equal(text, "{\"version\":1,\"datapaths\":{}}");
    free(text);
    free(peek.at_attach);
    free(peek.at_activate);
    memset(&peek, 0, sizeof(peek));
    model_disk_dispose(&d);
}

/* A table left by a crash during an attach: the entry is not usable, and
 * destroying it detaches (what the driver may hold). */
static void
test_sm_table_attach_in_flight_is_released(void **state)
{
    struct pfixture *p = *state;
    struct model_disk d;
    char *params = NULL, *log;
    bool att, act;

    write_table(p, "{\"version\":1,\"datapaths\":{\"vbd/2/xvda\":{\"sr\":\""
                   SR3 "\",\"vdi\":\"vdi-a\",\"domain\":\"2\",\"rw\":true,"
                   "\"active\":false}}}");
    restart(p);
    sm_dp_state(p->sm, "vbd/2/xvda", &att, &act);
    assert_false(att || act);
    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_attach(p->sm, "vbd/2/xvda", &d, "2", true, &params),
                     XO_EFAIL);
    xo_err_clear();
    assert_null(params);
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/2/xvda"), 0);
    log = calls(p->v3);
    assert_string_equal(log, "detach vbd/2/xvda vdi-a 2");
    free(log);
    model_disk_dispose(&d);
}

/* A malformed table is refused and loads nothing; a datapath of an SR
 * without a driver is dropped; no file is fine. */
static void
test_sm_table_bad_input(void **state)
{
    struct pfixture *p = *state;
    const char *bad[] = {
        "not json",
        "{\"version\":2,\"datapaths\":{}}",
        "{\"version\":1}",
        "{\"version\":1,\"datapaths\":{\"vbd/1/xvda\":{\"sr\":\"x\","
        "\"vdi\":\"a\",\"domain\":\"1\"}}}",
        /* One VDI active for two datapaths: loaded half, then refused. */
        "{\"version\":1,\"datapaths\":{"
        "\"vbd/1/xvda\":{\"sr\":\"" SR3 "\",\"vdi\":\"a\",\"domain\":\"1\","
        "\"active\":true,\"params\":\"p\"},"
        "\"vbd/2/xvda\":{\"sr\":\"" SR3 "\",\"vdi\":\"a\",\"domain\":\"2\","
        "\"active\":true,\"params\":\"p\"}}}",
    };
    struct sm *sm;
    char *json, *path;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_table(p, bad[i]);
        assert_int_equal(sm_new(&sm), 0);
        assert_int_equal(sm_register_sr(sm, SR3, &sm_testdrv_ops,
                                        sm_testdrv_new("5.0")), 0);
        assert_int_equal(sm_open_table(sm, p->dir, true), XO_EINVAL);
        xo_err_clear();
        json = sm_dump_json(sm);
        assert_string_equal(json, "{}");
        free(json);
        sm_free(sm);
    }
    write_table(p, "{\"version\":1,\"datapaths\":{\"vbd/1/xvda\":{\"sr\":\""
                   "5a3e0c3e-0000-4000-8000-0000000000ff\",\"vdi\":\"a\","
                   "\"domain\":\"1\",\"rw\":true,\"active\":false,"
                   "\"params\":\"p\"}}}");
    restart(p);
    json = sm_dump_json(p->sm);
    assert_string_equal(json, "{}");
    free(json);
    path = table_path(p);
    unlink(path);
    free(path);
    restart(p);
    json = sm_dump_json(p->sm);
    assert_string_equal(json, "{}");
    free(json);
}

/* When the table cannot be written, nothing new is claimed: no driver
 * attach or activate, no shared claim; what is held stays. */
static void
test_sm_table_unwritable_refuses_new_claims(void **state)
{
    struct pfixture *p = *state;
    struct model_disk a;
    char *params = NULL, *log, *path = table_path(p), *json;
    bool att, act;

    vdi_disk(&a, SR3, "vdi-a");
    assert_int_equal(sm_attach(p->sm, "vbd/3/xvda", &a, "3", true, &params),
                     0);
    free(params);
    sm_testdrv_clear_calls(p->v3);
    /* The database directory vanishes under the daemon. */
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(p->dir), 0);

    assert_int_equal(sm_attach(p->sm, "vbd/4/xvda", &a, "4", true, &params),
                     XO_EIO);
    xo_err_clear();
    assert_null(params);
    assert_int_equal(sm_activate(p->sm, "vbd/3/xvda"), XO_EIO);
    xo_err_clear();
    log = calls(p->v3);
    assert_string_equal(log, "");
    free(log);
    sm_dp_state(p->sm, "vbd/4/xvda", &att, &act);
    assert_false(att);
    sm_dp_state(p->sm, "vbd/3/xvda", &att, &act);
    assert_true(att && !act);
    json = sm_dump_json(p->sm);
    assert_null(strstr(json, "vbd/4/xvda"));
    assert_null(strstr(json, "\"active\":true"));
    free(json);
    /* Releases still go to the driver. */
    assert_int_equal(sm_dp_destroy(p->sm, "vbd/3/xvda"), 0);
    assert_int_equal(sm_testdrv_attached(p->v3), 0);
    assert_int_equal(mkdir(p->dir, 0700), 0);
    free(path);
    model_disk_dispose(&a);
}

/* persist=false writes nothing. */
static void
test_sm_table_memory_only(void **state)
{
    struct pfixture *p = *state;
    struct sm *sm;
    struct model_disk d;
    char *params = NULL, *text;

    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR3, &sm_testdrv_ops,
                                    sm_testdrv_new("5.0")), 0);
    assert_int_equal(sm_open_table(sm, p->dir, false), 0);
    vdi_disk(&d, SR3, "vdi-a");
    assert_int_equal(sm_attach(sm, "vbd/3/xvda", &d, "3", true, &params), 0);
    sm_free(sm);
    free(params);
    model_disk_dispose(&d);
    /* The fixture's table has seen no change, so it has no file; the
     * memory-only table wrote none either. */
    text = read_table(p);
    assert_null(text);
}

struct held_attach {
    struct sm *sm;
    int rc;
};

static void *
held_attach_main(void *arg)
{
    struct held_attach *h = arg;
    struct model_disk d;
    char *params = NULL;

    vdi_disk(&d, SR3, "vdi-h");
    h->rc = sm_attach(h->sm, "vbd/3/xvdh", &d, "3", true, &params);
    free(params);
    model_disk_dispose(&d);
    return NULL;
}

/* While the hold file exists an attach stays in flight; removing it lets
 * the attach finish. No timing: the test waits for the driver's state. */
static void
test_sm_testdrv_hold_keeps_attach_in_flight(void **state)
{
    char dir[] = "/tmp/test_sm_hold.XXXXXX";
    struct held_attach h = { 0 };
    struct sm_testdrv *d;
    pthread_t t;
    char *hold;
    FILE *fp;

    (void)state;
    assert_non_null(mkdtemp(dir));
    hold = xasprintf("%s/hold", dir);
    fp = fopen(hold, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(setenv(SM_TESTDRV_HOLD_ENV, hold, 1), 0);
    assert_int_equal(sm_new(&h.sm), 0);
    d = sm_testdrv_new("5.0");
    assert_int_equal(unsetenv(SM_TESTDRV_HOLD_ENV), 0);
    assert_int_equal(sm_register_sr(h.sm, SR3, &sm_testdrv_ops, d), 0);
    assert_int_equal(pthread_create(&t, NULL, held_attach_main, &h), 0);
    while (sm_testdrv_max_inflight(d) < 1)
        usleep(1000);
    /* Counted in flight and held: not attached, whatever the load. */
    assert_int_equal(sm_testdrv_attached(d), 0);
    assert_int_equal(unlink(hold), 0);
    pthread_join(t, NULL);
    assert_int_equal(h.rc, 0);
    assert_int_equal(sm_testdrv_attached(d), 1);
    sm_free(h.sm);
    rmdir(dir);
    free(hold);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sm_testdrv_hold_keeps_attach_in_flight),
        cmocka_unit_test_setup_teardown(test_sm_attach_activate_sequence,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_two_datapaths_keep_their_own_state, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_can_attach_early_follows_api_version, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_can_attach_early_requeries_changed_driver, setup,
            teardown),
        cmocka_unit_test_setup_teardown(test_sm_failed_attach_leaves_nothing,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_sm_activate_needs_attach, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sm_local_and_unknown_sr, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_attaches_of_different_vdis_overlap, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_sm_attach_after_concurrent_detach_reattaches, setup,
            teardown),
        cmocka_unit_test(test_sm_register_spec),
        cmocka_unit_test_setup_teardown(test_sm_table_survives_restart,
                                        psetup, pteardown),
        cmocka_unit_test_setup_teardown(
            test_sm_table_written_before_driver_acts, psetup, pteardown),
        cmocka_unit_test_setup_teardown(
            test_sm_table_attach_in_flight_is_released, psetup, pteardown),
        cmocka_unit_test_setup_teardown(test_sm_table_bad_input, psetup,
                                        pteardown),
        cmocka_unit_test_setup_teardown(
            test_sm_table_unwritable_refuses_new_claims, psetup, pteardown),
        cmocka_unit_test_setup_teardown(test_sm_table_memory_only, psetup,
                                        pteardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
