/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the SMAPIv1 adapter (sm/v1/smapiv1.c) against the real sample
 * driver scripts/sm/v1/XoFileSR, on a temp SR directory. The driver's call
 * log (XO_SM_LOG) gives the exact sequence and arguments; its XO_SM_*
 * knobs inject faults, hangs, garbage, crashes and exits.
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

#include "model.h"
#include "sm/sm.h"
#include "sm/v1/smapiv1.h"
#include "sm_fixture.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define SR "d9a3e0c3-0000-4000-8000-000000000001"

static int
setup(void **state)
{
    struct sm_fixture *f = sm_fixture_new("test_smapiv1", true);

    f->drivers = sm_fixture_srcdir_path("scripts/sm/v1");
    sm_fixture_make_vdi(f, "disk1");
    sm_fixture_make_vdi(f, "disk2");
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", SR, f->dconf,
                                        30000, &f->ops, &f->priv), 0);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    sm_fixture_free(*state);
    return 0;
}

static char *
take_err(int rc)
{
    assert_int_not_equal(rc, 0);
    return xo_err_take_json(rc);
}

/* The error of the sample driver XoFileSR: see sm_fixture.h. */
static yajl_val
script_error(int rc, const char *code, const char *command,
             const char *vdi, yajl_val *tree_r)
{
    return sm_fixture_script_error(rc, code, "XoFileSR", command, vdi,
                                   tree_r);
}

static void
test_smapiv1_driver_lookup(void **state)
{
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    void *priv;
    char *json;
    int rc;

    /* The type matches <Type>SR case-insensitively. */
    assert_int_equal(smapiv1_driver_new(f->drivers, "xofile", SR, NULL, 1000,
                                        &ops, &priv), 0);
    assert_non_null(strstr(smapiv1_driver_path(priv), "/XoFileSR"));
    ops->free(priv);
    rc = smapiv1_driver_new(f->drivers, "nosuch", SR, NULL, 1000, &ops,
                            &priv);
    assert_int_equal(rc, XO_ENOTFOUND);
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Does_not_exist\",[\"SR driver\","
                        "\"nosuch\"]]");
    free(json);
    /* Bad input changes nothing and gets XO_EINVAL. */
    assert_int_equal(smapiv1_driver_new(f->drivers, "../v1/XoFile", SR, NULL,
                                        1000, &ops, &priv), XO_EINVAL);
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", "not-a-uuid",
                                        NULL, 1000, &ops, &priv), XO_EINVAL);
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", SR, "[1]",
                                        1000, &ops, &priv), XO_EINVAL);
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", SR,
                                        "{\"path\": 1}", 1000, &ops, &priv),
                     XO_EINVAL);
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", SR, NULL, 0,
                                        &ops, &priv), XO_EINVAL);
    xo_err_clear();
    /* Nothing ran. */
    assert_int_equal(access(f->log, F_OK), -1);
}

static void
test_smapiv1_query_driver_info(void **state)
{
    struct sm_fixture *f = *state;
    char *version = NULL, *s;

    assert_int_equal(f->ops->query(f->priv, &version), 0);
    assert_string_equal(version, "1.0");
    s = sm_fixture_log_calls(f, false);
    assert_string_equal(s, "sr_get_driver_info");
    free(s);
    /* As xapi discovers drivers: no SR, no session. */
    s = sm_fixture_log_args(f, 0);
    assert_string_equal(s, "{\"host_ref\":\"OpaqueRef:NULL\",\"command\":"
                        "\"sr_get_driver_info\",\"args\":[],"
                        "\"device_config\":{}}");
    free(s);
    free(version);
}

static void
test_smapiv1_call_sequence_and_args(void **state)
{
    struct sm_fixture *f = *state;
    struct sm *sm;
    struct model_disk d;
    char *params = NULL, *s, *expect, *statefile;
    FILE *fp;
    char buf[256] = "";

    sm_fixture_vdi_disk(&d, SR, "disk1");
    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR, f->ops, f->priv), 0);
    f->priv = NULL;     /* sm owns it now */
    assert_int_equal(sm_epoch_begin(sm, &d, "5", false), 0);
    assert_int_equal(sm_attach(sm, "vbd/5/xvda", &d, "5", true, &params), 0);
    expect = xasprintf("%s/disk1", f->sr_dir);
    assert_string_equal(params, expect);
    free(expect);
    assert_int_equal(sm_activate(sm, "vbd/5/xvda"), 0);
    /* What the driver holds now. */
    statefile = xasprintf("%s/.xo-state/disk1.json", f->sr_dir);
    fp = fopen(statefile, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, sizeof(buf), fp));
    fclose(fp);
    assert_string_equal(buf, "{\"epoch\": \"reset\", \"attached\": true, "
                        "\"writable\": true, \"active\": true}");
    assert_int_equal(sm_dp_destroy(sm, "vbd/5/xvda"), 0);
    assert_int_equal(sm_epoch_end(sm, &d, "5"), 0);
    s = sm_fixture_log_calls(f, false);
    assert_string_equal(s, "vdi_epoch_begin|vdi_attach|vdi_activate|"
                        "vdi_deactivate|vdi_detach|vdi_epoch_end");
    free(s);
    /* The struct xapi sends, members in xapi's order. */
    s = sm_fixture_log_args(f, 1);
    expect = xasprintf(
        "{\"host_ref\":\"OpaqueRef:NULL\",\"command\":\"vdi_attach\","
        "\"args\":[\"true\"],\"device_config\":{\"SRmaster\":\"true\","
        "\"path\":\"%s\"},\"session_ref\":\"OpaqueRef:NULL\","
        "\"sr_ref\":\"OpaqueRef:" SR "\",\"sr_uuid\":\"" SR "\","
        "\"vdi_ref\":\"OpaqueRef:disk1\",\"vdi_location\":\"disk1\","
        "\"vdi_uuid\":\"disk1\",\"vdi_on_boot\":\"persist\","
        "\"vdi_allow_caching\":\"false\"}", f->sr_dir);
    assert_string_equal(s, expect);
    free(expect);
    free(s);
    s = sm_fixture_log_args(f, 0);
    assert_non_null(strstr(s, "\"command\":\"vdi_epoch_begin\",\"args\":[]"));
    assert_non_null(strstr(s, "\"vdi_on_boot\":\"reset\""));
    free(s);
    s = sm_fixture_log_args(f, 2);
    assert_non_null(strstr(s, "\"command\":\"vdi_activate\",\"args\":"
                           "[\"true\"]"));
    free(s);
    s = sm_fixture_log_args(f, 4);
    assert_non_null(strstr(s, "\"command\":\"vdi_detach\",\"args\":[]"));
    free(s);
    /* The driver holds nothing any more. */
    assert_int_equal(access(statefile, F_OK), -1);
    free(statefile);
    free(params);
    model_disk_dispose(&d);
    sm_free(sm);
}

static void
test_smapiv1_readonly_attach_and_activate(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL, *s;

    assert_int_equal(f->ops->attach(f->priv, "vbd/7/hdd", SR, "disk2", "7",
                                    false, &params), 0);
    assert_int_equal(f->ops->activate(f->priv, "vbd/7/hdd", SR, "disk2",
                                      "7"), 0);
    s = sm_fixture_log_args(f, 0);
    assert_non_null(strstr(s, "\"command\":\"vdi_attach\",\"args\":"
                           "[\"false\"]"));
    free(s);
    /* vdi_activate repeats how the VDI was attached. */
    s = sm_fixture_log_args(f, 1);
    assert_non_null(strstr(s, "\"command\":\"vdi_activate\",\"args\":"
                           "[\"false\"]"));
    free(s);
    assert_int_equal(f->ops->deactivate(f->priv, "vbd/7/hdd", SR, "disk2",
                                        "7"), 0);
    assert_int_equal(f->ops->detach(f->priv, "vbd/7/hdd", SR, "disk2", "7"),
                     0);
    free(params);
}

static void
test_smapiv1_fault_mapping(void **state)
{
    static const struct {
        const char *knob;
        int rc;
        const char *json;
    } cases[] = {
        { "disk1:46", XO_EBACKEND,
          "[\"Storage_backend_error\",[\"SR_BACKEND_FAILURE_46\",[\"\","
          "\"The VDI is not available [opterr=injected failure "
          "(XO_SM_FAIL_ATTACH)]\",\"\"]]]" },
        { "disk1:39", XO_EBACKEND,
          "[\"Storage_backend_error\",[\"SR_NOT_EMPTY\",[]]]" },
        { "disk1:24", XO_EBACKEND,
          "[\"Storage_backend_error\",[\"VDI_IN_USE\",[]]]" },
        { "disk1:16", XO_EBACKEND,
          "[\"Storage_backend_error\",[\"SR_DEVICE_IN_USE\",[]]]" },
        { "disk1:144", XO_EBACKEND,
          "[\"Storage_backend_error\",[\"VDI_MISSING\",[\"OpaqueRef:" SR
          "\",\"OpaqueRef:disk1\"]]]" },
        { "disk1:38", XO_EUNSUPPORTED, "[\"Unimplemented\",\"vdi_attach\"]" },
    };
    struct sm_fixture *f = *state;
    char *params = NULL, *json;
    int rc;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        setenv("XO_SM_FAIL_ATTACH", cases[i].knob, 1);
        rc = f->ops->attach(f->priv, "vbd/5/xvda", SR, "disk1", "5", true,
                            &params);
        assert_int_equal(rc, cases[i].rc);
        assert_null(params);
        json = xo_err_take_json(rc);
        assert_string_equal(json, cases[i].json);
        free(json);
    }
    /* The knob names disk1 only: disk2 attaches. */
    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvdb", SR, "disk2", "5",
                                    true, &params), 0);
    free(params);
}

static void
test_smapiv1_driver_faults(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL, *json;
    int rc;

    /* No such VDI: the driver's own fault 46, its text kept. */
    rc = f->ops->attach(f->priv, "vbd/5/xvda", SR, "nodisk", "5", true,
                        &params);
    json = take_err(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",["
                        "\"SR_BACKEND_FAILURE_46\",[\"\",\"The VDI is not "
                        "available [opterr=no VDI 'nodisk']\",\"\"]]]");
    free(json);
    /* Detaching an active VDI: VDIInUse (24). */
    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvda", SR, "disk1", "5",
                                    true, &params), 0);
    assert_int_equal(f->ops->activate(f->priv, "vbd/5/xvda", SR, "disk1",
                                      "5"), 0);
    rc = f->ops->detach(f->priv, "vbd/5/xvda", SR, "disk1", "5");
    json = take_err(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",[\"VDI_IN_USE\","
                        "[]]]");
    free(json);
    assert_int_equal(f->ops->deactivate(f->priv, "vbd/5/xvda", SR, "disk1",
                                        "5"), 0);
    assert_int_equal(f->ops->detach(f->priv, "vbd/5/xvda", SR, "disk1",
                                    "5"), 0);
    free(params);
}

static void
test_smapiv1_hang_killed_at_timeout(void **state)
{
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    void *quick;
    yajl_val tree, params, e[8];
    int64_t pid = 0;
    size_t n;

    /* A second instance with a short timeout, for the hanging call only
     * (the driver keeps its state in files, so both see the same SR). */
    assert_int_equal(smapiv1_driver_new(f->drivers, "XoFile", SR, f->dconf,
                                        1000, &ops, &quick), 0);
    setenv("XO_SM_HANG_DEACTIVATE", "disk1", 1);
    params = script_error(ops->deactivate(quick, "vbd/5/xvda", SR, "disk1",
                                          "5"),
                          "SCRIPT_TIMEOUT", "vdi_deactivate", "disk1",
                          &tree);
    assert_string_equal(json_array_at(params, 3)->u.string,
                        "no answer within 1000 ms; process group killed");
    yajl_tree_free(tree);
    /* The driver that hung is dead (10 s: a deadlock guard only). */
    n = sm_fixture_read_log(f, e, 8);
    assert_int_equal(n, 1);
    assert_int_equal(json_get_int64(e[0], "pid", 0, &pid), 0);
    yajl_tree_free(e[0]);
    for (int i = 0; i < 1000 && !sm_fixture_process_dead((long)pid); i++)
        usleep(10000);
    assert_true(sm_fixture_process_dead((long)pid));
    ops->free(quick);
}

static void
test_smapiv1_garbage_reported(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL;
    yajl_val tree, p;

    setenv("XO_SM_GARBAGE_ATTACH", "*", 1);
    p = script_error(f->ops->attach(f->priv, "vbd/5/xvda", SR, "disk1", "5",
                                    true, &params),
                     "SCRIPT_FAILED", "vdi_attach", "disk1", &tree);
    assert_null(params);
    assert_non_null(strstr(json_array_at(p, 3)->u.string,
                           "stdout is not an XML-RPC methodResponse: "));
    /* The garbage is quoted, made printable. */
    assert_string_equal(json_array_at(p, 4)->u.string,
                        "xo-sm injected garbage: <<not xml, not json>> ??\n");
    yajl_tree_free(tree);
}

static void
test_smapiv1_crash_and_exit_reported(void **state)
{
    struct sm_fixture *f = *state;
    yajl_val tree, p;

    setenv("XO_SM_CRASH_ACTIVATE", "disk1", 1);
    p = script_error(f->ops->activate(f->priv, "vbd/5/xvda", SR, "disk1",
                                      "5"),
                     "SCRIPT_FAILED", "vdi_activate", "disk1", &tree);
    assert_string_equal(json_array_at(p, 3)->u.string, "signalled: SIGSEGV");
    yajl_tree_free(tree);
    setenv("XO_SM_EXIT_VDI_DETACH", "*", 1);
    p = script_error(f->ops->detach(f->priv, "vbd/5/xvda", SR, "disk1", "5"),
                     "SCRIPT_FAILED", "vdi_detach", "disk1", &tree);
    assert_string_equal(json_array_at(p, 3)->u.string, "non-zero exit 3");
    assert_string_equal(json_array_at(p, 5)->u.string,
                        "xo-sm: injected exit (XO_SM_EXIT_DETACH)\n");
    yajl_tree_free(tree);
}

/* A shell driver answering sr_get_driver_info with a fixed version. */
static void
write_fake(const char *dir, const char *version)
{
    char *tmp = xasprintf("%s/FakeSR.tmp", dir);
    char *path = xasprintf("%s/FakeSR", dir);
    FILE *fp = fopen(tmp, "w");

    assert_non_null(fp);
    fprintf(fp, "#!/bin/sh\necho '<methodResponse><params><param><value>"
            "<struct><member><name>required_api_version</name><value>"
            "<string>%s</string></value></member></struct></value></param>"
            "</params></methodResponse>'\n", version);
    fclose(fp);
    assert_int_equal(chmod(tmp, 0755), 0);
    /* A new file, as a package upgrade installs one. */
    assert_int_equal(rename(tmp, path), 0);
    free(tmp);
    free(path);
}

static void
test_smapiv1_upgraded_driver_requeried(void **state)
{
    struct sm_fixture *f = *state;
    char *dir = xasprintf("%s/smdir", f->dir);
    const struct sm_driver_ops *ops;
    void *priv;
    struct sm *sm;
    struct model_disk d;

    assert_int_equal(mkdir(dir, 0755), 0);
    write_fake(dir, "1.0");
    assert_int_equal(smapiv1_driver_new(dir, "fake", SR, NULL, 30000, &ops,
                                        &priv), 0);
    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR, ops, priv), 0);
    sm_fixture_vdi_disk(&d, SR, "disk1");
    assert_false(sm_can_attach_early(sm, &d));
    write_fake(dir, "3.0");
    assert_true(sm_can_attach_early(sm, &d));
    model_disk_dispose(&d);
    sm_free(sm);
    free(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smapiv1_driver_lookup, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_query_driver_info,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_call_sequence_and_args,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_smapiv1_readonly_attach_and_activate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_fault_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_driver_faults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_hang_killed_at_timeout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_garbage_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv1_crash_and_exit_reported,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_smapiv1_upgraded_driver_requeried, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
