/* SPDX-License-Identifier: LGPL-2.1-only */
/* Unit tests of the SM layer (sm/sm.c) and the in-process test driver. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "model.h"
#include "sm.h"
#include "sm_testdrv.h"
#include "xalloc.h"

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

int
main(void)
{
    const struct CMUnitTest tests[] = {
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
        cmocka_unit_test(test_sm_register_spec),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
