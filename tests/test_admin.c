/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests for admin: feature flags read, changed, persisted and
 * logged; a change spares operations already queued; the per-SR
 * attach-early policy vetoes early attach and persists; HOST.stat's
 * extension; the last migration per VM outlives its task.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "server.h"
#include "server_fixture.h"
#include "server_priv.h"
#include "task.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define VM SERVER_FIXTURE_VM
#define VM2 "9c0f7c55-1111-2222-3333-444455556667"
#define SR3 SERVER_FIXTURE_SR
#define SRX "5a3e0c3e-0000-4000-8000-0000000000aa"

struct fx {
    char dir[64];
    char *conf_d;
    struct config cfg;
    struct server *srv;
    struct admin *adm;
};

/* The admin, wired as main wires it. */
static void
admin_start(struct fx *f)
{
    struct admin_deps d;

    server_admin_deps(f->srv, &d);
    f->adm = admin_new(&d);
}

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    const char *top = getenv("top_srcdir");
    char *s;

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_admin.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    s = xasprintf("%s/db", f->dir);
    server_fixture_config(&f->cfg, s, SR3 ":5.0:20:1");
    free(s);
    f->conf_d = xasprintf("%s/conf.d", f->dir);
    server_fixture_set(&f->cfg, "config-dir", f->conf_d);
    s = xasprintf("%s/scripts/sm/v3", top ? top : ".");
    server_fixture_set(&f->cfg, "storage-script-root", s);
    free(s);
    f->srv = server_fixture_start(&f->cfg);
    admin_start(f);
    server_fixture_add_vm(f->srv, "{\"id\":\"" VM "\",\"name\":\"t\","
                          "\"memory_static_max\":1048576,\"vcpus\":1,"
                          "\"ty\":[\"PV\",{}]}");
    *state = f;
    return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    /* Before the server: it holds references to the server's tasks. */
    admin_free(f->adm);
    server_fixture_stop(f->srv, &f->cfg);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f->conf_d);
    free(f);
    return 0;
}

static char *
fragment_path(struct fx *f)
{
    return xasprintf("%s/%s", f->conf_d, ADMIN_FLAGS_FRAGMENT);
}

/* The admin these tests drive. */
#define ADM(f) ((f)->adm)

static bool
exists(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0;
}

/* ---- flags ---- */

static void
test_admin_features_json_lists_flags(void **state)
{
    struct fx *f = *state;
    char *text = admin_features_json(ADM(f));

    assert_string_equal(text, "{\"vbd-plug-unplug-legacy\":true}");
    free(text);
    server_set_legacy(f->srv, false);
    text = admin_features_json(ADM(f));
    assert_string_equal(text, "{\"vbd-plug-unplug-legacy\":false}");
    free(text);
}

/* The change is written to the fragment, applied, reported; the next start
 * reads it back from the config dir. */
static void
test_admin_set_feature_persists_and_applies(void **state)
{
    struct fx *f = *state;
    char *res = NULL, *path = fragment_path(f);
    struct config c;
    yajl_val v;

    assert_int_equal(admin_set_feature(ADM(f), "vbd-plug-unplug-legacy",
                                       "false", 1000, &res), 0);
    assert_false(server_legacy(f->srv));
    v = server_fixture_parse(res);
    assert_string_equal(json_get_str(v, "name"), "vbd-plug-unplug-legacy");
    assert_string_equal(json_get_str(v, "key"),
                        "xenopsd-vbd-plug-unplug-legacy");
    assert_true(YAJL_IS_TRUE(json_get(v, "old")));
    assert_true(YAJL_IS_FALSE(json_get(v, "new")));
    assert_string_equal(json_get_str(v, "fragment"), path);
    yajl_tree_free(v);
    free(res);

    config_defaults(&c);
    assert_true(c.vbd_plug_unplug_legacy);
    assert_int_equal(config_load(&c, NULL, f->conf_d), 0);
    assert_false(c.vbd_plug_unplug_legacy);
    config_dispose(&c);
    free(path);
}

static void
test_admin_set_feature_accepts_full_key(void **state)
{
    struct fx *f = *state;
    char *res = NULL;

    assert_int_equal(admin_set_feature(ADM(f),
                                       "xenopsd-vbd-plug-unplug-legacy",
                                       "false", 0, &res), 0);
    assert_false(server_legacy(f->srv));
    free(res);
    assert_int_equal(admin_set_feature(ADM(f),
                                       "xenopsd-vbd-plug-unplug-legacy",
                                       "true", 0, &res), 0);
    assert_true(server_legacy(f->srv));
    free(res);
}

static void
test_admin_set_feature_bad_input_changes_nothing(void **state)
{
    struct fx *f = *state;
    const char *bad[][2] = {
        { "no-such-flag", "false" },
        { "VBD-PLUG-UNPLUG-LEGACY", "false" },
        { "vbd-plug-unplug-legacy", "False" },
        { "vbd-plug-unplug-legacy", "0" },
        { "vbd-plug-unplug-legacy", "" },
        { NULL, "false" },
        { "vbd-plug-unplug-legacy", NULL },
    };
    char *res = NULL, *path = fragment_path(f);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(admin_set_feature(ADM(f), bad[i][0], bad[i][1], 0,
                                           &res), XO_EINVAL);
        assert_null(res);
        xo_err_clear();
    }
    assert_true(server_legacy(f->srv));
    assert_false(exists(path));
    free(path);
}

/* No config dir: refused with a message saying why, nothing changes. */
static void
test_admin_set_feature_without_config_dir_refused(void **state)
{
    struct fx *f = *state;
    char *res = NULL, *err;

    free(f->cfg.config_dir);
    f->cfg.config_dir = NULL;
    assert_int_equal(admin_set_feature(ADM(f), "vbd-plug-unplug-legacy",
                                       "false", 0, &res), XO_EINVAL);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, "no config dir"));
    free(err);
    assert_null(res);
    assert_true(server_legacy(f->srv));
}

/* The fragment cannot be written: the running value stays as it was. */
static void
test_admin_set_feature_write_failure_changes_nothing(void **state)
{
    struct fx *f = *state;
    char *res = NULL, *tmp;

    assert_int_equal(mkdir(f->conf_d, 0700), 0);
    tmp = xasprintf("%s/.%s.tmp", f->conf_d, ADMIN_FLAGS_FRAGMENT);
    assert_int_equal(mkdir(tmp, 0700), 0);
    assert_int_equal(admin_set_feature(ADM(f), "vbd-plug-unplug-legacy",
                                       "false", 0, &res), XO_EIO);
    xo_err_clear();
    assert_null(res);
    assert_true(server_legacy(f->srv));
    free(tmp);
}

/* Queue and return the task (a reference). */
static struct task *
queue(struct fx *f, enum server_op_kind kind, const char *dev)
{
    struct server_op_args a = { .kind = kind, .vm = VM, .dev = dev,
                                .timeout = -1 };
    struct task *t;
    char *id = NULL;

    assert_int_equal(server_queue_op(f->srv, "test", &a, &id), 0);
    t = task_find(server_tasks(f->srv), id);
    assert_non_null(t);
    free(id);
    return t;
}

/* Whether the finished task t ran an atom whose name starts with atom. */
static bool
ran(struct task *t, const char *atom)
{
    char *text = task_stat_json(t);
    yajl_val v = server_fixture_parse(text), subs = json_get(v, "subtasks");
    bool found = false;

    for (size_t i = 0; subs && i < subs->u.object.len; i++)
        found |= strncmp(subs->u.object.keys[i], atom, strlen(atom)) == 0;
    yajl_tree_free(v);
    free(text);
    return found;
}

/* An operation queued before the change runs with the old value (however
 * far it got), the next one with the new. */
static void
test_admin_flag_change_spares_queued_op(void **state)
{
    struct fx *f = *state;
    struct task *start, *unplug;
    char *res = NULL;

    start = queue(f, SERVER_OP_VM_START, NULL);
    assert_int_equal(admin_set_feature(ADM(f), "vbd-plug-unplug-legacy",
                                       "false", 0, &res), 0);
    free(res);
    unplug = queue(f, SERVER_OP_VBD_UNPLUG, "xvda");
    assert_int_equal(task_wait(start, 60), 0);
    assert_int_equal(task_wait(unplug, 60), 0);
    assert_true(ran(start, "VBD_plug xvda"));
    assert_false(ran(start, "VBD_attach"));
    assert_true(ran(unplug, "VBD_deactivate xvda"));
    assert_true(ran(unplug, "VBD_detach xvda"));
    assert_false(ran(unplug, "VBD_unplug"));
    task_unref(start);
    task_unref(unplug);
}

/* ---- SR attach-early policy ---- */

static void
add_file_sr(struct fx *f)
{
    char *sr = xasprintf("%s/sr", f->dir);
    char *dc = xasprintf("{\"path\":\"%s\"}", sr);

    assert_int_equal(mkdir(sr, 0700), 0);
    assert_int_equal(server_sr_add(f->srv, SRX, "xo-file", dc), 0);
    free(dc);
    free(sr);
}

static bool
early(struct fx *f, const char *dev)
{
    struct server_vm_view v;
    bool r = false;

    assert_int_equal(server_vm_view_load(f->srv, VM, &v), 0);
    for (size_t i = 0; i < v.vm.n_vbds; i++)
        if (strcmp(v.vbds[i].dev, dev) == 0)
            r = v.vbds[i].can_attach_early;
    server_vm_view_dispose(&v);
    return r;
}

static void
test_admin_sr_policy_vetoes_early_attach(void **state)
{
    struct fx *f = *state;

    add_file_sr(f);
    server_fixture_add(f->srv, server_vbd_add,
                       "{\"id\":[\"" VM "\",\"xvdb\"],"
                       "\"backend\":[\"VDI\",\"" SRX "/vol\"]}");
    assert_true(early(f, "xvdb"));
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, "never", 0), 0);
    assert_false(early(f, "xvdb"));
    /* Another SR is not affected. */
    assert_true(early(f, "xvda"));
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, "auto", 0), 0);
    assert_true(early(f, "xvdb"));
}

static bool
sr_listed_early(struct fx *f, const char **policy_r)
{
    char *text = server_sr_list_json(f->srv);
    yajl_val v = server_fixture_parse(text), sr = json_array_at(v, 0);
    bool r = YAJL_IS_TRUE(json_get(sr, "attach_early"));
    static char policy[16];

    snprintf(policy, sizeof(policy), "%s",
             json_get_str(sr, "attach_early_policy"));
    *policy_r = policy;
    yajl_tree_free(v);
    free(text);
    return r;
}

/* The policy is kept with the SR across a restart. */
static void
test_admin_sr_policy_persists(void **state)
{
    struct fx *f = *state;
    const char *policy;

    add_file_sr(f);
    assert_true(sr_listed_early(f, &policy));
    assert_string_equal(policy, "auto");
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, "never", 0), 0);
    assert_false(sr_listed_early(f, &policy));
    assert_string_equal(policy, "never");
    admin_free(f->adm);
    server_free(f->srv);
    f->srv = server_fixture_start(&f->cfg);
    admin_start(f);
    assert_false(sr_listed_early(f, &policy));
    assert_string_equal(policy, "never");
}

static void
test_admin_sr_policy_bad_input(void **state)
{
    struct fx *f = *state;
    const char *policy;

    add_file_sr(f);
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, "sometimes", 0),
                     XO_EINVAL);
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, NULL, 0),
                     XO_EINVAL);
    assert_int_equal(admin_sr_set_attach_early(ADM(f), "../x", "never", 0),
                     XO_EINVAL);
    assert_int_equal(admin_sr_set_attach_early(ADM(f), SR3 "x", "never", 0),
                     XO_EINVAL);
    assert_int_equal(admin_sr_set_attach_early(ADM(f),
                                               "5a3e0c3e-0000-4000-8000-"
                                               "0000000000bb", "never", 0),
                     XO_ENOTFOUND);
    xo_err_clear();
    assert_true(sr_listed_early(f, &policy));
    assert_string_equal(policy, "auto");
}

/* ---- HOST.stat ---- */

static void
test_admin_host_json_reports_early_srs(void **state)
{
    struct fx *f = *state;
    char *text;
    yajl_val v;

    add_file_sr(f);
    text = admin_host_json(ADM(f));
    v = server_fixture_parse(text);
    assert_true(YAJL_IS_FALSE(json_get(v, "early_attach")));
    assert_int_equal(json_array_len(json_get(v, "attach_early_srs")), 0);
    assert_int_equal(json_array_len(json_get(v, "srs")), 1);
    assert_string_equal(json_get_str(json_array_at(json_get(v, "srs"), 0),
                                     "uuid"), SRX);
    assert_true(YAJL_IS_TRUE(json_get(json_get(v, "features"),
                                      "vbd-plug-unplug-legacy")));
    yajl_tree_free(v);
    free(text);

    server_set_legacy(f->srv, false);
    text = admin_host_json(ADM(f));
    v = server_fixture_parse(text);
    assert_true(YAJL_IS_TRUE(json_get(v, "early_attach")));
    assert_string_equal(json_array_at(json_get(v, "attach_early_srs"),
                                      0)->u.string, SRX);
    yajl_tree_free(v);
    free(text);

    assert_int_equal(admin_sr_set_attach_early(ADM(f), SRX, "never", 0), 0);
    text = admin_host_json(ADM(f));
    v = server_fixture_parse(text);
    assert_int_equal(json_array_len(json_get(v, "attach_early_srs")), 0);
    assert_string_equal(json_get_str(json_array_at(json_get(v, "srs"), 0),
                                     "attach_early_policy"), "never");
    yajl_tree_free(v);
    free(text);
}

static void
test_admin_host_stat_has_extension(void **state)
{
    struct fx *f = *state;
    char *text = NULL, *ext = admin_host_json(ADM(f));
    yajl_val v;

    assert_int_equal(server_host_stat(f->srv, ext, &text), 0);
    free(ext);
    v = server_fixture_parse(text);
    assert_non_null(json_get(v, "cpu_info"));
    assert_true(YAJL_IS_TRUE(json_get(json_get(json_get(v, "xenops_c"),
                                               "features"),
                                      "vbd-plug-unplug-legacy")));
    yajl_tree_free(v);
    free(text);
}

/* ---- last migration ---- */

static char *
stats(struct fx *f, const char *vm)
{
    char *text = NULL;

    assert_int_equal(admin_migration_stats(ADM(f), vm, &text), 0);
    return text;
}

/* The result stays readable after xapi destroys the task. */
static void
test_admin_migration_stats_outlive_task(void **state)
{
    struct fx *f = *state;
    struct task *t = task_create(server_tasks(f->srv), "mig");
    char *id = xstrdup(task_id(t)), *text;
    yajl_val v;

    admin_note_migration(ADM(f), VM, id);
    text = stats(f, VM);
    v = server_fixture_parse(text);
    assert_string_equal(json_get_str(v, "state"), "Pending");
    assert_string_equal(json_get_str(v, "task"), id);
    yajl_tree_free(v);
    free(text);

    task_complete(t, "{\"downtime_ms\":12.5,\"mode\":\"split\"}");
    assert_int_equal(task_destroy(server_tasks(f->srv), id), 0);
    task_unref(t);
    text = stats(f, VM);
    v = server_fixture_parse(text);
    assert_string_equal(json_get_str(v, "state"), "Completed");
    assert_string_equal(json_get_str(v, "dbg"), "mig");
    assert_string_equal(json_get_str(json_get(v, "result"), "mode"),
                        "split");
    assert_non_null(json_get(v, "duration"));
    yajl_tree_free(v);
    free(text);
    free(id);
}

static void
test_admin_migration_stats_failed(void **state)
{
    struct fx *f = *state;
    struct task *t = task_create(server_tasks(f->srv), "mig");
    char *text;
    yajl_val v;

    admin_note_migration(ADM(f), VM, task_id(t));
    task_fail(t, xstrdup("[\"Internal_error\",\"boom\"]"));
    task_unref(t);
    text = stats(f, VM);
    v = server_fixture_parse(text);
    assert_string_equal(json_get_str(v, "state"), "Failed");
    assert_string_equal(json_array_at(json_get(v, "error"), 1)->u.string,
                        "boom");
    yajl_tree_free(v);
    free(text);
}

static void
test_admin_migration_stats_unknown_and_bad_id(void **state)
{
    struct fx *f = *state;
    char *text = NULL;

    assert_int_equal(admin_migration_stats(ADM(f), VM, &text),
                     XO_ENOTFOUND);
    assert_int_equal(admin_migration_stats(ADM(f), "../etc", &text),
                     XO_EINVAL);
    assert_null(text);
    /* An unknown task or a bad VM id is not remembered. */
    admin_note_migration(ADM(f), VM, "424242");
    admin_note_migration(ADM(f), "bad", "0");
    assert_int_equal(admin_migration_stats(ADM(f), VM, &text),
                     XO_ENOTFOUND);
    xo_err_clear();
}

/* One entry per VM, the newest wins; beyond ADMIN_MIGRATIONS_MAX VMs the
 * oldest is forgotten. */
static void
test_admin_migration_stats_replaced_and_bounded(void **state)
{
    struct fx *f = *state;
    struct task *a = task_create(server_tasks(f->srv), "first");
    struct task *b = task_create(server_tasks(f->srv), "second");
    char vm[40], *text = NULL;
    yajl_val v;

    admin_note_migration(ADM(f), VM, task_id(a));
    admin_note_migration(ADM(f), VM, task_id(b));
    text = stats(f, VM);
    v = server_fixture_parse(text);
    assert_string_equal(json_get_str(v, "dbg"), "second");
    yajl_tree_free(v);
    free(text);
    admin_note_migration(ADM(f), VM2, task_id(a));
    for (int i = 0; i < ADMIN_MIGRATIONS_MAX - 1; i++) {
        snprintf(vm, sizeof(vm), "00000000-0000-4000-8000-%012d", i);
        admin_note_migration(ADM(f), vm, task_id(a));
    }
    assert_int_equal(admin_migration_stats(ADM(f), VM, &text),
                     XO_ENOTFOUND);
    text = stats(f, VM2);
    free(text);
    xo_err_clear();
    task_unref(a);
    task_unref(b);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_admin_features_json_lists_flags),
        T(test_admin_set_feature_persists_and_applies),
        T(test_admin_set_feature_accepts_full_key),
        T(test_admin_set_feature_bad_input_changes_nothing),
        T(test_admin_set_feature_without_config_dir_refused),
        T(test_admin_set_feature_write_failure_changes_nothing),
        T(test_admin_flag_change_spares_queued_op),
        T(test_admin_sr_policy_vetoes_early_attach),
        T(test_admin_sr_policy_persists),
        T(test_admin_sr_policy_bad_input),
        T(test_admin_host_json_reports_early_srs),
        T(test_admin_host_stat_has_extension),
        T(test_admin_migration_stats_outlive_task),
        T(test_admin_migration_stats_failed),
        T(test_admin_migration_stats_unknown_and_bad_id),
        T(test_admin_migration_stats_replaced_and_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
