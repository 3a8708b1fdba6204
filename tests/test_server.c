/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Server tests: records, queued operations end to end on the simulator,
 * one operation per VM, the legacy flag fixed at queue time, and id
 * validation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "errors.h"
#include "json.h"
#include "server.h"
#include "task.h"
#include "xalloc.h"

#define VM "9c0f7c55-1111-2222-3333-444455556666"
#define SR3 "5a3e0c3e-0000-4000-8000-000000000003"

struct fx {
    struct config cfg;
    struct server *srv;
};

static yajl_val
parse(const char *text)
{
    yajl_val v = NULL;

    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    return v;
}

static void
add_json(struct fx *f, int (*fn)(struct server *, yajl_val, char **),
         const char *text)
{
    yajl_val v = parse(text);
    char *id = NULL;

    assert_int_equal(fn(f->srv, v, &id), 0);
    free(id);
    yajl_tree_free(v);
}

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));

    config_defaults(&f->cfg);
    assert_int_equal(config_set(&f->cfg, "persist", "false", "test"), 0);
    assert_int_equal(config_set(&f->cfg, "database-path", "/nonexistent",
                                "test"), 0);
    assert_int_equal(config_set(&f->cfg, "sim-srs", SR3 ":5.0:20:1",
                                "test"), 0);
    assert_int_equal(config_set(&f->cfg, "sim-memory-cap-mib", "1", "test"),
                     0);
    assert_int_equal(server_new(&f->cfg, NULL, &f->srv), 0);
    add_json(f, server_vm_add,
             "{\"id\":\"" VM "\",\"name\":\"t\",\"memory_static_max\":"
             "1048576,\"vcpus\":1,\"ty\":[\"PV\",{}]}");
    add_json(f, server_vbd_add,
             "{\"id\":[\"" VM "\",\"xvda\"],\"backend\":[\"VDI\",\"" SR3
             "/a\"]}");
    add_json(f, server_vbd_add,
             "{\"id\":[\"" VM "\",\"xvdb\"],\"mode\":\"ReadOnly\","
             "\"backend\":[\"Local\",\"/dev/null\"]}");
    add_json(f, server_vif_add, "{\"id\":[\"" VM "\",\"0\"]}");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    server_free(f->srv);
    config_dispose(&f->cfg);
    free(f);
    xo_err_clear();
    return 0;
}

/* Queue, wait, and return the Task.t JSON (caller frees). */
static char *
run_op(struct fx *f, const struct server_op_args *a, char **task_id_r)
{
    struct task *t;
    char *id = NULL, *stat;

    assert_int_equal(server_queue_op(f->srv, "test", a, &id), 0);
    t = task_find(server_tasks(f->srv), id);
    assert_non_null(t);
    assert_int_equal(task_wait(t, 60), 0);
    stat = task_stat_json(t);
    task_unref(t);
    if (task_id_r)
        *task_id_r = id;
    else
        free(id);
    return stat;
}

static const char *
state_tag(yajl_val stat)
{
    yajl_val tag = json_array_at(json_get(stat, "state"), 0);

    return tag && YAJL_IS_STRING(tag) ? tag->u.string : "?";
}

static char *
power_state(struct fx *f)
{
    char *json = NULL;
    yajl_val v;
    char *ps;

    assert_int_equal(server_vm_stat(f->srv, VM, &json), 0);
    v = parse(json);
    ps = xstrdup(json_get_str(json_array_at(v, 1), "power_state"));
    yajl_tree_free(v);
    free(json);
    return ps;
}

static void
test_server_start_shutdown(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { SERVER_OP_VM_START, VM, NULL, false, -1,
                                NULL, 0 };
    char *stat = run_op(f, &a, NULL), *ps, *vbd = NULL;
    yajl_val v = parse(stat);

    assert_string_equal(state_tag(v), "Completed");
    yajl_tree_free(v);
    free(stat);
    ps = power_state(f);
    assert_string_equal(ps, "Running");
    free(ps);
    assert_int_equal(server_vbd_stat(f->srv, VM, "xvda", &vbd), 0);
    assert_non_null(strstr(vbd, "\"plugged\":true"));
    free(vbd);
    /* A plugged VBD cannot be removed. */
    assert_int_equal(server_vbd_remove(f->srv, VM, "xvda"), XO_ECONNECTED);
    xo_err_clear();

    a.kind = SERVER_OP_VM_SHUTDOWN;
    stat = run_op(f, &a, NULL);
    v = parse(stat);
    assert_string_equal(state_tag(v), "Completed");
    yajl_tree_free(v);
    free(stat);
    ps = power_state(f);
    assert_string_equal(ps, "Halted");
    free(ps);
    assert_int_equal(server_vbd_remove(f->srv, VM, "xvda"), 0);
    assert_int_equal(server_vm_remove(f->srv, VM), 0);
}

/* Starting a running VM fails with Bad_power_state and changes nothing. */
static void
test_server_start_twice_is_bad_power_state(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { SERVER_OP_VM_START, VM, NULL, false, -1,
                                NULL, 0 };
    char *stat = run_op(f, &a, NULL);
    yajl_val v;

    free(stat);
    stat = run_op(f, &a, NULL);
    v = parse(stat);
    assert_string_equal(state_tag(v), "Failed");
    assert_non_null(strstr(stat, "Bad_power_state"));
    yajl_tree_free(v);
    free(stat);
    stat = power_state(f);
    assert_string_equal(stat, "Running");
    free(stat);
    /* VM.remove of a running VM is refused. */
    assert_int_equal(server_vm_remove(f->srv, VM), XO_EPOWERSTATE);
    xo_err_clear();
}

/* The flag is read when the operation is queued: a change made while it
 * waits does not affect it. */
static void
test_server_legacy_flag_fixed_at_queue_time(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { SERVER_OP_VM_START, VM, NULL, false, -1,
                                NULL, 0 };
    char *stat;

    server_set_legacy(f->srv, true);
    stat = run_op(f, &a, NULL);
    assert_non_null(strstr(stat, "VBD_plug xvda"));
    assert_null(strstr(stat, "VBD_attach"));
    free(stat);
    a.kind = SERVER_OP_VBD_UNPLUG;
    a.dev = "xvda";
    server_set_legacy(f->srv, false);
    stat = run_op(f, &a, NULL);
    assert_non_null(strstr(stat, "VBD_deactivate xvda"));
    assert_non_null(strstr(stat, "VBD_detach xvda"));
    free(stat);
}

static void
test_server_plan_shows_both_modes(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { SERVER_OP_VM_START, VM, NULL, true, -1,
                                NULL, 0 };
    char *legacy = NULL, *split = NULL;

    assert_int_equal(server_plan(f->srv, &a, true, &legacy), 0);
    assert_int_equal(server_plan(f->srv, &a, false, &split), 0);
    assert_non_null(strstr(legacy, "VBD_plug xvda"));
    assert_non_null(strstr(split, "VBD_attach xvda"));
    assert_non_null(strstr(split, "VBD_activate xvda"));
    free(legacy);
    free(split);
}

/* Suspend writes the guest's memory to a file and shuts the domain down;
 * resume creates a domain and loads it back, devices replugged. */
static void
test_server_suspend_resume_round_trip(void **state)
{
    struct fx *f = *state;
    char dir[] = "/tmp/xenops-test-suspend.XXXXXX";
    struct server_op_args a = { SERVER_OP_VM_START, VM, NULL, false, -1,
                                NULL, 0 };
    char *stat, *path, *ps, *vbd = NULL;
    struct stat sb;

    assert_non_null(mkdtemp(dir));
    path = xasprintf("%s/image", dir);
    free(run_op(f, &a, NULL));
    a.kind = SERVER_OP_VM_SUSPEND;
    a.path = path;
    stat = run_op(f, &a, NULL);
    assert_non_null(strstr(stat, "\"Completed\""));
    assert_non_null(strstr(stat, "VM_save"));
    free(stat);
    assert_int_equal(lstat(path, &sb), 0);
    /* The image holds the guest's memory (1 MiB cap) plus a header. */
    assert_true(sb.st_size >= 1048576);
    ps = power_state(f);
    assert_string_equal(ps, "Halted");
    free(ps);
    a.kind = SERVER_OP_VM_RESUME;
    stat = run_op(f, &a, NULL);
    assert_non_null(strstr(stat, "\"Completed\""));
    assert_non_null(strstr(stat, "VM_restore"));
    free(stat);
    ps = power_state(f);
    assert_string_not_equal(ps, "Halted");
    free(ps);
    assert_int_equal(server_vbd_stat(f->srv, VM, "xvda", &vbd), 0);
    assert_non_null(strstr(vbd, "\"plugged\":true"));
    free(vbd);
    unlink(path);
    rmdir(dir);
    free(path);
}

static void
test_server_rejects_bad_ids(void **state)
{
    struct fx *f = *state;
    static const char *bad[] = { "../x", "", "not-a-uuid",
                                 VM "0", "9c0f7c55/1111-2222-3333-44445555" };
    struct server_op_args a = { SERVER_OP_VM_START, NULL, NULL, false, -1,
                                NULL, 0 };
    char *out = NULL;
    bool e;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(server_vm_stat(f->srv, bad[i], &out), XO_EINVAL);
        assert_int_equal(server_vm_exists(f->srv, bad[i], &e), XO_EINVAL);
        a.vm = bad[i];
        assert_int_equal(server_queue_op(f->srv, "t", &a, &out), XO_EINVAL);
        assert_null(out);
    }
    {
        static const char *bad_dev[] = { "../x", "", "a/b", ".hidden",
                                         "0123456789012345678901234567890123" };

        for (size_t i = 0; i < sizeof(bad_dev) / sizeof(bad_dev[0]); i++)
            assert_int_equal(server_vbd_stat(f->srv, VM, bad_dev[i], &out),
                             XO_EINVAL);
    }
    xo_err_clear();
    /* A VBD of an unknown VM is refused and creates nothing. */
    {
        yajl_val v = parse("{\"id\":[\"9c0f7c55-1111-2222-3333-"
                           "000000000000\",\"xvda\"]}");

        assert_int_equal(server_vbd_add(f->srv, v, &out), XO_ENOTFOUND);
        yajl_tree_free(v);
        assert_int_equal(server_vm_exists(f->srv, "9c0f7c55-1111-2222-3333-"
                                          "000000000000", &e), 0);
        assert_false(e);
    }
    xo_err_clear();
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_server_start_shutdown, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_server_start_twice_is_bad_power_state, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_server_legacy_flag_fixed_at_queue_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_plan_shows_both_modes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_server_suspend_resume_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_rejects_bad_ids, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
