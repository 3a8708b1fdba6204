/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Metadata tests: export/import round trip, the migration id swap, import
 * over an existing VM (records replaced, attach records kept), device name
 * upgrade, featureset, remapping on export, the async import, and bad
 * input that must change nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "metadata.h"
#include "server.h"
#include "server_fixture.h"
#include "task.h"
#include "updates.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

#define VM SERVER_FIXTURE_VM
#define TMP "9c0f7c55-1111-2222-3333-444400000001"
#define OTHER "0b1c0000-aaaa-4bbb-8ccc-000000000002"
#define SR3 SERVER_FIXTURE_SR

/* A minimal Metadata.t for VM with the given vbds and extra members. */
#define MD(vbds, extra)                                                     \
    "{\"vm\":{\"id\":\"" VM "\",\"memory_static_max\":1048576,"            \
    "\"vcpus\":1},\"vbds\":" vbds extra "}"

struct fx {
    struct config cfg;
    struct server *srv;
    struct vmextra_store *store;
};

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));

    server_fixture_config(&f->cfg, NULL, SR3 ":5.0:0:0");
    f->srv = server_fixture_start(&f->cfg);
    assert_int_equal(vmextra_store_open("/nonexistent", false, &f->store),
                     0);
    server_fixture_add_vm(f->srv, "{\"id\":\"" VM "\",\"name\":\"m\","
                          "\"memory_static_max\":1048576,\"vcpus\":1,"
                          "\"platformdata\":{\"featureset\":\"ab\"},"
                          "\"ty\":[\"PV\",{\"boot\":[\"Indirect\","
                          "{\"devices\":[[\"VDI\",\"" SR3 "/boot\"]]}]}]}");
    server_fixture_add(f->srv, server_vbd_add,
                       "{\"id\":[\"" VM "\",\"xvdb\"],\"mode\":\"ReadOnly\","
                       "\"backend\":[\"Local\",\"/dev/null\"]}");
    server_fixture_add(f->srv, server_vif_add,
                       "{\"id\":[\"" VM "\",\"0\"],\"mac\":"
                       "\"aa:bb:cc:dd:ee:ff\"}");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    vmextra_store_close(f->store);
    server_fixture_stop(f->srv, &f->cfg);
    free(f);
    return 0;
}

static char *
export(struct fx *f, const char *id)
{
    char *md = NULL;

    assert_int_equal(server_vm_export_metadata(f->srv, id, &md), 0);
    return md;
}

/* Everything a VM's records say: VM.stat's Vm.t plus the device lists'
 * records (states left out: they depend on the domain). */
static yajl_val
records_of(struct fx *f, const char *id)
{
    char *vm = NULL, *vbds = NULL, *vifs = NULL, *all;
    yajl_val v;

    assert_int_equal(server_vm_stat(f->srv, id, &vm), 0);
    assert_int_equal(server_vbd_list(f->srv, id, &vbds), 0);
    assert_int_equal(server_vif_list(f->srv, id, &vifs), 0);
    all = xasprintf("[%s,%s,%s]", vm, vbds, vifs);
    v = server_fixture_parse(all);
    /* Drop the states: keep [Vm.t, [Vbd.t...], [Vif.t...]]. */
    free(all);
    free(vm);
    free(vbds);
    free(vifs);
    return v;
}

static void
assert_records_equal(yajl_val a, yajl_val b)
{
    assert_true(json_equal(json_array_at(json_array_at(a, 0), 0),
                           json_array_at(json_array_at(b, 0), 0)));
    for (size_t k = 1; k <= 2; k++) {
        yajl_val la = json_array_at(a, k), lb = json_array_at(b, k);

        assert_int_equal(json_array_len(la), json_array_len(lb));
        for (size_t i = 0; i < json_array_len(la); i++)
            assert_true(json_equal(json_array_at(json_array_at(la, i), 0),
                                   json_array_at(json_array_at(lb, i), 0)));
    }
}

/* Export has xenopsd's shape; importing it back gives the same records. */
static void
test_metadata_round_trip(void **state)
{
    struct fx *f = *state;
    char *md = export(f, VM), *id = NULL;
    yajl_val before = records_of(f, VM), after, dom;
    yajl_val t = server_fixture_parse(md);

    assert_int_equal(json_array_len(json_get(t, "vbds")), 2);
    assert_int_equal(json_array_len(json_get(t, "vifs")), 1);
    assert_int_equal(json_array_len(json_get(t, "pcis")), 0);
    assert_int_equal(json_array_len(json_get(t, "vgpus")), 0);
    assert_int_equal(json_array_len(json_get(t, "vusbs")), 0);
    assert_string_equal(json_get_str(json_get(t, "vm"), "id"), VM);
    assert_non_null(json_get_str(t, "domains"));
    dom = server_fixture_parse(json_get_str(t, "domains"));
    assert_non_null(json_get(dom, "last_start_time"));
    yajl_tree_free(dom);
    yajl_tree_free(t);

    assert_int_equal(server_vbd_remove(f->srv, VM, "xvda"), 0);
    assert_int_equal(server_vm_remove(f->srv, VM), 0);
    assert_int_equal(server_vm_import_metadata(f->srv, md, &id), 0);
    assert_string_equal(id, VM);
    after = records_of(f, VM);
    assert_records_equal(before, after);
    yajl_tree_free(before);
    yajl_tree_free(after);
    free(id);
    free(md);
}

static void
assert_dev_ids(yajl_val list, const char *vm)
{
    for (size_t i = 0; i < json_array_len(list); i++) {
        yajl_val id = json_get(json_array_at(json_array_at(list, i), 0),
                               "id");

        assert_string_equal(json_array_at(id, 0)->u.string, vm);
    }
}

/* Migration's swap: export, rewrite to a temporary id, import. */
static void
test_metadata_tmp_id_import(void **state)
{
    struct fx *f = *state;
    char *md = export(f, VM), *tmp_md = NULL, *id = NULL;
    yajl_val orig = records_of(f, VM), tmp, orig2;

    assert_int_equal(metadata_set_vm_id(md, TMP, &tmp_md), 0);
    assert_int_equal(server_vm_import_metadata(f->srv, tmp_md, &id), 0);
    assert_string_equal(id, TMP);
    tmp = records_of(f, TMP);
    assert_string_equal(json_get_str(json_array_at(json_array_at(tmp, 0), 0),
                                     "id"), TMP);
    assert_int_equal(json_array_len(json_array_at(tmp, 1)), 2);
    assert_int_equal(json_array_len(json_array_at(tmp, 2)), 1);
    assert_dev_ids(json_array_at(tmp, 1), TMP);
    assert_dev_ids(json_array_at(tmp, 2), TMP);
    /* The source is untouched. */
    orig2 = records_of(f, VM);
    assert_records_equal(orig, orig2);
    free(tmp_md);
    assert_int_equal(metadata_set_vm_id(md, "../x", &tmp_md), XO_EINVAL);
    assert_null(tmp_md);
    xo_err_clear();
    yajl_tree_free(orig);
    yajl_tree_free(orig2);
    yajl_tree_free(tmp);
    free(id);
    free(md);
    free(tmp_md);
}

static int
import_text(struct fx *f, const char *text)
{
    struct metadata *md = NULL;
    int rc = metadata_parse(text, "pv-fs", "hvm-fs", &md);

    if (!rc)
        rc = metadata_import(f->store, NULL, md);
    metadata_free(md);
    return rc;
}

/* Over an existing VM: Vm.t replaced, devices not named removed, others
 * replaced, attach records untouched. */
static void
test_metadata_import_replaces_keeps_attach_records(void **state)
{
    struct fx *f = *state;
    struct vmextra_doc *doc = NULL;
    struct vmextra_attached att = { "xvda", "vbd/7/xvda", 0,
                                    "{\"params\":\"/dev/sm/a\"}" };
    const struct vmextra_attached *got;
    struct updates *u = updates_new();
    struct metadata *md = NULL;
    char *ups;

    assert_int_equal(vmextra_doc_new(VM, &doc), 0);
    vmextra_doc_set_vm(doc, "{\"id\":\"" VM "\",\"memory_static_max\":1,"
                       "\"vcpus\":1}");
    vmextra_doc_set_vbd(doc, "xvda", "{\"id\":[\"" VM "\",\"xvda\"]}");
    vmextra_doc_set_vbd(doc, "xvdb", "{\"id\":[\"" VM "\",\"xvdb\"]}");
    vmextra_doc_set_attached(doc, &att);
    doc->last_start_time = 5;
    assert_int_equal(vmextra_commit(f->store, doc), 0);
    vmextra_doc_free(doc);
    doc = NULL;

    assert_int_equal(metadata_parse(
        MD("[{\"id\":[\"" VM "\",\"xvda\"],\"mode\":\"ReadOnly\"},"
           "{\"id\":[\"" VM "\",\"xvdc\"]}]",
           ",\"domains\":\"{\\\"last_start_time\\\":42.5}\""),
        NULL, NULL, &md), 0);
    assert_int_equal(metadata_import(f->store, u, md), 0);
    metadata_free(md);
    assert_int_equal(vmextra_load(f->store, VM, &doc), 0);
    assert_null(vmextra_doc_vbd(doc, "xvdb"));
    assert_non_null(vmextra_doc_vbd(doc, "xvdc"));
    assert_non_null(strstr(vmextra_doc_vbd(doc, "xvda"),
                           "\"mode\":\"ReadOnly\""));
    assert_non_null(strstr(doc->vm_json, "\"memory_static_max\":1048576"));
    got = vmextra_doc_attached(doc, "xvda");
    assert_non_null(got);
    assert_string_equal(got->dp, "vbd/7/xvda");
    assert_true(doc->last_start_time == 42.5);
    vmextra_doc_free(doc);
    /* Every change is signalled, the removal included. */
    ups = updates_get(u, -1, 0, NULL);
    assert_non_null(strstr(ups, "[\"Vbd\",[\"" VM "\",\"xvdb\"]]"));
    assert_non_null(strstr(ups, "[\"Vbd\",[\"" VM "\",\"xvdc\"]]"));
    assert_non_null(strstr(ups, "[\"Vm\",\"" VM "\"]"));
    free(ups);
    updates_free(u);
}

/* Device ids take the VM's id; hd* becomes xvd*. */
static void
test_metadata_import_rewrites_device_ids(void **state)
{
    struct fx *f = *state;
    struct vmextra_doc *doc = NULL;

    assert_int_equal(import_text(f, MD("[{\"id\":[\"" OTHER "\",\"hda\"]}]",
                                       ",\"vifs\":[{\"id\":[\"x\",\"1\"]}]")),
                     0);
    assert_int_equal(vmextra_load(f->store, VM, &doc), 0);
    assert_null(vmextra_doc_vbd(doc, "hda"));
    assert_non_null(strstr(vmextra_doc_vbd(doc, "xvda"),
                           "\"id\":[\"" VM "\",\"xvda\"]"));
    assert_non_null(strstr(vmextra_doc_vif(doc, "1"),
                           "\"id\":[\"" VM "\",\"1\"]"));
    vmextra_doc_free(doc);
}

static char *
stored_vm(struct fx *f)
{
    struct vmextra_doc *doc = NULL;
    char *json;

    assert_int_equal(vmextra_load(f->store, VM, &doc), 0);
    json = xstrdup(doc->vm_json);
    vmextra_doc_free(doc);
    return json;
}

/* A Vm.t without featureset gets the host's, by builder; one with a
 * featureset keeps it. */
static void
test_metadata_import_adds_featureset(void **state)
{
    struct fx *f = *state;
    char *vm;

    assert_int_equal(import_text(f, MD("[]", "")), 0);
    vm = stored_vm(f);
    assert_non_null(strstr(vm, "\"platformdata\":{\"featureset\":"
                               "\"pv-fs\"}"));
    free(vm);
    assert_int_equal(import_text(f,
        "{\"vm\":{\"id\":\"" VM "\",\"memory_static_max\":1,\"vcpus\":1,"
        "\"ty\":[\"PVH\",{}]}}"), 0);
    vm = stored_vm(f);
    assert_non_null(strstr(vm, "\"featureset\":\"hvm-fs\""));
    free(vm);
    assert_int_equal(import_text(f,
        "{\"vm\":{\"id\":\"" VM "\",\"memory_static_max\":1,\"vcpus\":1,"
        "\"platformdata\":{\"featureset\":\"mine\",\"x\":\"y\"}}}"), 0);
    vm = stored_vm(f);
    assert_non_null(strstr(vm, "\"featureset\":\"mine\""));
    assert_null(strstr(vm, "pv-fs"));
    free(vm);
}

/* Bad input is refused and stores nothing. */
static void
test_metadata_bad_input_changes_nothing(void **state)
{
    struct fx *f = *state;
    static const struct {
        const char *text;
        int rc;
    } bad[] = {
        { "not json", XO_EINVAL },
        { "[]", XO_EINVAL },
        { "{\"vbds\":[]}", XO_EINVAL },
        { "{\"vm\":{\"id\":\"../x\",\"memory_static_max\":1,\"vcpus\":1}}",
          XO_EINVAL },
        { "{\"vm\":{\"id\":\"" VM "\",\"vcpus\":1}}", XO_EINVAL },
        { MD("{}", ""), XO_EINVAL },
        { MD("[1]", ""), XO_EINVAL },
        { MD("[{\"mode\":\"ReadOnly\"}]", ""), XO_EINVAL },
        { MD("[{\"id\":[\"" VM "\",\"../x\"]}]", ""), XO_EINVAL },
        { MD("[{\"id\":[\"" VM "\",\"xvda\"],\"mode\":\"Sideways\"}]", ""),
          XO_EINVAL },
        { MD("[{\"id\":[\"" VM "\",\"xvda\"]},{\"id\":[\"" VM "\",\"hda\"]}]",
             ""), XO_EINVAL },
        { MD("[]", ",\"vifs\":[{\"id\":[\"" VM "\",\"0\"],\"mtu\":\"x\"}]"),
          XO_EINVAL },
        { MD("[]", ",\"pcis\":[{}]"), XO_EUNSUPPORTED },
        { MD("[]", ",\"vgpus\":{}"), XO_EINVAL },
        { MD("[]", ",\"domains\":7"), XO_EINVAL },
        { MD("[]", ",\"domains\":\"[1]\""), XO_EINVAL },
        { MD("[]", ",\"domains\":\"{\\\"last_start_time\\\":\\\"x\\\"}\""),
          XO_EINVAL },
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = import_text(f, bad[i].text);

        if (rc != bad[i].rc)
            fail_msg("case %zu: %d, expected %d", i, rc, bad[i].rc);
        xo_err_clear();
        assert_false(vmextra_exists(f->store, VM));
    }
}

/* vdi_map and vif_map rewrite backends and bootloader devices. */
static void
test_metadata_export_remaps(void **state)
{
    struct fx *f = *state;
    yajl_val vdi_map = server_fixture_parse("{\"" SR3 "/a\":\"" OTHER "/a2\","
                                            "\"" SR3 "/boot\":\"" OTHER
                                            "/boot2\"}");
    yajl_val vif_map = server_fixture_parse("{\"0\":[\"local\",\"xenbr9\"]}");
    yajl_val bad_map = server_fixture_parse("{\"" SR3 "/a\":1}");
    yajl_val bad_vif_map = server_fixture_parse("{\"0\":[\"Bridge\",\"x\"]}");
    struct vmextra_store *store = NULL;
    char *md = NULL;

    /* metadata_export takes the maps; a store of our own holds the VM. */
    md = export(f, VM);
    assert_int_equal(vmextra_store_open("/nonexistent", false, &store), 0);
    {
        struct metadata *m = NULL;

        assert_int_equal(metadata_parse(md, NULL, NULL, &m), 0);
        assert_int_equal(metadata_import(store, NULL, m), 0);
        metadata_free(m);
    }
    free(md);
    assert_int_equal(metadata_export(store, VM, vdi_map, vif_map, &md), 0);
    assert_non_null(strstr(md, "[\"VDI\",\"" OTHER "/a2\"]"));
    assert_non_null(strstr(md, "[\"VDI\",\"" OTHER "/boot2\"]"));
    assert_null(strstr(md, SR3 "/a\""));
    assert_non_null(strstr(md, "\"backend\":[\"Local\",\"xenbr9\"]"));
    assert_non_null(strstr(md, "[\"Local\",\"/dev/null\"]"));
    free(md);
    md = NULL;
    assert_int_equal(metadata_export(store, VM, bad_map, NULL, &md),
                     XO_EINVAL);
    assert_null(md);
    assert_int_equal(metadata_export(store, VM, NULL, bad_vif_map, &md),
                     XO_EINVAL);
    xo_err_clear();
    vmextra_store_close(store);
    yajl_tree_free(vdi_map);
    yajl_tree_free(vif_map);
    yajl_tree_free(bad_map);
    yajl_tree_free(bad_vif_map);
}

static void
test_metadata_export_errors(void **state)
{
    struct fx *f = *state;
    char *md = NULL;

    assert_int_equal(server_vm_export_metadata(f->srv, OTHER, &md),
                     XO_ENOTFOUND);
    assert_int_equal(server_vm_export_metadata(f->srv, "../x", &md),
                     XO_EINVAL);
    assert_null(md);
    xo_err_clear();
}

/* The async import validates at once and stores on the VM's queue. */
static void
test_metadata_import_async(void **state)
{
    struct fx *f = *state;
    char *md = export(f, VM), *tmp_md = NULL, *task_id = NULL;
    struct task *t;
    char *stat;
    bool e;

    assert_int_equal(metadata_set_vm_id(md, TMP, &tmp_md), 0);
    assert_int_equal(server_vm_import_metadata_async(f->srv, "t", "{}",
                                                     &task_id), XO_EINVAL);
    assert_null(task_id);
    xo_err_clear();
    assert_int_equal(server_vm_import_metadata_async(f->srv, "t", tmp_md,
                                                     &task_id), 0);
    t = task_find(server_tasks(f->srv), task_id);
    assert_non_null(t);
    assert_int_equal(task_wait(t, 60), 0);
    stat = task_stat_json(t);
    assert_non_null(strstr(stat, "\"Completed\""));
    assert_non_null(strstr(stat, "VM_import_metadata"));
    task_unref(t);
    assert_int_equal(server_vm_exists(f->srv, TMP, &e), 0);
    assert_true(e);
    free(stat);
    free(task_id);
    free(tmp_md);
    free(md);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_metadata_round_trip, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metadata_tmp_id_import, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_metadata_import_replaces_keeps_attach_records, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_metadata_import_rewrites_device_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_import_adds_featureset,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_metadata_bad_input_changes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metadata_export_remaps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metadata_export_errors, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_metadata_import_async, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
