/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the SMAPIv3 adapter (sm/v3/smapiv3.c) against the real sample
 * plugins in scripts/sm/v3, linked into a temp plugin root next to a temp
 * SR directory. The plugins' call log (XO_SM_LOG) gives the exact
 * sequence and arguments; XO_SM_* knobs inject failures. Small shell
 * plugins written at run time produce the error shapes the sample
 * plugins never print.
 *
 * The loop-device group needs root and /dev/loop-control; without them it
 * is skipped (exit 77 after the other group passed) with the reason
 * printed. Every loop device bound to a file of the test's temp dir is
 * detached in teardown, whatever happened.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/loop.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "sm/sm.h"
#include "sm/v3/smapiv3.h"
#include "sm_fixture.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define SR "d9a3e0c3-0000-4000-8000-000000000003"
#define PLUGIN "org.xen.xapi.storage.xo-file"

static void
link_plugin(const char *root, const char *kind, const char *name)
{
    char *src = sm_fixture_srcdir_path("scripts/sm/v3");
    char *target = xasprintf("%s/%s/%s", src, kind, name);
    char *link = xasprintf("%s/%s/%s", root, kind, name);

    assert_int_equal(symlink(target, link), 0);
    free(src);
    free(target);
    free(link);
}

/* A plugin root with the xo-file volume plugin and the given datapath
 * plugins (NULL-terminated). */
static char *
make_root(struct sm_fixture *f, const char *name, const char *const *dps)
{
    char *root = xasprintf("%s/%s", f->dir, name);
    char *sub;

    assert_int_equal(mkdir(root, 0755), 0);
    sub = xasprintf("%s/volume", root);
    assert_int_equal(mkdir(sub, 0755), 0);
    free(sub);
    sub = xasprintf("%s/datapath", root);
    assert_int_equal(mkdir(sub, 0755), 0);
    free(sub);
    link_plugin(root, "volume", PLUGIN);
    for (size_t i = 0; dps[i]; i++)
        link_plugin(root, "datapath", dps[i]);
    return root;
}

static int
setup_with(void **state, const char *const *dps)
{
    struct sm_fixture *f = sm_fixture_new("test_smapiv3", true);

    f->drivers = make_root(f, "root", dps);
    sm_fixture_make_vdi(f, "vol1");
    sm_fixture_make_vdi(f, "vol2");
    assert_int_equal(smapiv3_sr_attach(f->drivers, "xo-file", f->dconf,
                                       30000, &f->sr_uri), 0);
    assert_int_equal(smapiv3_driver_new(f->drivers, "xo-file", f->sr_uri,
                                        30000, &f->ops, &f->priv), 0);
    /* The tests read the log from here on. */
    assert_int_equal(unlink(f->log), 0);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    static const char *const dps[] = { "file", NULL };

    return setup_with(state, dps);
}

static int
setup_loop(void **state)
{
    static const char *const dps[] = { "loop+file", "file", NULL };

    return setup_with(state, dps);
}

/* The loop device bound to a file under dir, if any ("loopN"). */
static bool
find_loop(const char *dir, char *name, size_t len)
{
    DIR *d = opendir("/sys/block");
    struct dirent *e;
    bool found = false;

    while (d && !found && (e = readdir(d)) != NULL) {
        char path[PATH_MAX], backing[PATH_MAX] = "";
        FILE *fp;

        if (strncmp(e->d_name, "loop", 4) != 0)
            continue;
        snprintf(path, sizeof(path), "/sys/block/%s/loop/backing_file",
                 e->d_name);
        fp = fopen(path, "r");
        if (!fp)
            continue;
        if (fgets(backing, sizeof(backing), fp) &&
            strncmp(backing, dir, strlen(dir)) == 0 &&
            backing[strlen(dir)] == '/') {
            xstrlcpy(name, e->d_name, len);
            found = true;
        }
        fclose(fp);
    }
    if (d)
        closedir(d);
    return found;
}

/* Detach every loop device over a file of ours, whatever the test did. */
static void
release_loops(const char *dir)
{
    char name[64], dev[80];

    for (int i = 0; i < 64 && find_loop(dir, name, sizeof(name)); i++) {
        int fd;

        snprintf(dev, sizeof(dev), "/dev/%s", name);
        fd = open(dev, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            ioctl(fd, LOOP_CLR_FD, 0);
            close(fd);
        }
        /* LOOP_CLR_FD is lazy while the device is open elsewhere. */
        usleep(10000);
    }
}

static int
teardown(void **state)
{
    struct sm_fixture *f = *state;

    release_loops(f->dir);
    sm_fixture_free(f);
    return 0;
}

static char *
read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    char buf[4096] = "";

    if (!fp)
        return NULL;
    if (!fgets(buf, sizeof(buf), fp))
        buf[0] = '\0';
    fclose(fp);
    return xstrdup(buf);
}

static void
test_smapiv3_sr_attach_and_lookup(void **state)
{
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    char *uri = NULL, *expect, *json, *s;
    void *priv;
    int rc;

    expect = xasprintf("file://%s", f->sr_dir);
    assert_string_equal(f->sr_uri, expect);
    free(expect);
    /* Either name of the plugin, any case. */
    assert_int_equal(smapiv3_driver_new(f->drivers, "XO-File", f->sr_uri, 1000,
                                        &ops, &priv), 0);
    ops->free(priv);
    assert_int_equal(smapiv3_driver_new(f->drivers, PLUGIN, f->sr_uri, 1000,
                                        &ops, &priv), 0);
    ops->free(priv);
    rc = smapiv3_driver_new(f->drivers, "nosuch", f->sr_uri, 1000, &ops,
                            &priv);
    assert_int_equal(rc, XO_ENOTFOUND);
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Does_not_exist\",[\"SR driver\","
                        "\"nosuch\"]]");
    free(json);
    assert_int_equal(smapiv3_driver_new(f->drivers, "../volume", f->sr_uri,
                                        1000, &ops, &priv), XO_EINVAL);
    assert_int_equal(smapiv3_sr_attach(f->drivers, "xo-file", "{\"path\": []}",
                                       1000, &uri), XO_EINVAL);
    xo_err_clear();
    /* Nothing ran so far. */
    assert_int_equal(access(f->log, F_OK), -1);
    /* The plugin's own error, mapped. */
    rc = smapiv3_sr_attach(f->drivers, "xo-file",
                           "{\"path\": \"/nonexistent\"}", 30000, &uri);
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",["
                        "\"SR_BACKEND_FAILURE\",[\"SRUnavailable\","
                        "\"'/nonexistent' is not a directory\"]]]");
    free(json);
    assert_null(uri);
    s = sm_fixture_log_args(f, 0);
    assert_string_equal(s, "{\"dbg\":\"xenopsd-c\",\"configuration\":"
                        "{\"path\":\"/nonexistent\"}}");
    free(s);
}

static void
test_smapiv3_query(void **state)
{
    struct sm_fixture *f = *state;
    char *version = NULL, *s;

    assert_int_equal(f->ops->query(f->priv, &version), 0);
    assert_string_equal(version, "5.0");
    s = sm_fixture_log_calls(f, true);
    assert_string_equal(s, PLUGIN ":Plugin.Query");
    free(s);
    s = sm_fixture_log_args(f, 0);
    assert_string_equal(s, "{\"dbg\":\"xenopsd-c\"}");
    free(s);
    free(version);
}

static void
test_smapiv3_call_sequence_and_args(void **state)
{
    struct sm_fixture *f = *state;
    struct sm *sm;
    struct model_disk d;
    char *params = NULL, *s, *expect, *statefile;

    sm_fixture_vdi_disk(&d, SR, "vol1");
    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR, f->ops, f->priv), 0);
    f->priv = NULL;
    assert_true(sm_can_attach_early(sm, &d));
    assert_int_equal(sm_attach(sm, "vbd/5/xvda", &d, "5", true, &params), 0);
    expect = xasprintf("%s/vol1", f->sr_dir);
    assert_string_equal(params, expect);
    free(expect);
    assert_int_equal(sm_activate(sm, "vbd/5/xvda"), 0);
    statefile = xasprintf("%s/.xo-datapath/vol1.json", f->sr_dir);
    s = read_text(statefile);
    expect = xasprintf("{\"scheme\": \"file\", \"device\": \"%s/vol1\", "
                       "\"attached_domain\": \"5\", \"active_domain\": "
                       "\"5\", \"readonly\": false}", f->sr_dir);
    assert_string_equal(s, expect);
    free(expect);
    free(s);
    assert_int_equal(sm_dp_destroy(sm, "vbd/5/xvda"), 0);
    /* Volume.stat once: the URI is remembered from attach. */
    s = sm_fixture_log_calls(f, true);
    assert_string_equal(s, PLUGIN ":Plugin.Query|" PLUGIN ":Volume.stat|"
                        "file:Datapath.attach|file:Datapath.activate|"
                        "file:Datapath.deactivate|file:Datapath.detach");
    free(s);
    s = sm_fixture_log_args(f, 1);
    expect = xasprintf("{\"dbg\":\"vbd/5/xvda\",\"sr\":\"file://%s\","
                       "\"key\":\"vol1\"}", f->sr_dir);
    assert_string_equal(s, expect);
    free(expect);
    free(s);
    expect = xasprintf("{\"dbg\":\"vbd/5/xvda\",\"uri\":\"file://%s/vol1\","
                       "\"domain\":\"5\"}", f->sr_dir);
    for (size_t i = 2; i < 6; i++) {
        s = sm_fixture_log_args(f, i);
        assert_string_equal(s, expect);
        free(s);
    }
    free(expect);
    /* The plugin holds nothing any more. */
    assert_int_equal(access(statefile, F_OK), -1);
    free(statefile);
    free(params);
    model_disk_dispose(&d);
    sm_free(sm);
}

static void
test_smapiv3_dom0_domain_and_readonly(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL, *s, *expect;

    /* dom0 disks are named after the datapath, '/' and '-' made '_'. */
    assert_int_equal(f->ops->attach(f->priv, "xenopsd/task/ab-cd", SR,
                                    "vol2", "0", false, &params), 0);
    assert_int_equal(f->ops->activate(f->priv, "xenopsd/task/ab-cd", SR,
                                      "vol2", "0"), 0);
    s = sm_fixture_log_calls(f, true);
    /* Attached read-only: activate_readonly, the plugin has it. */
    assert_string_equal(s, PLUGIN ":Volume.stat|file:Datapath.attach|"
                        "file:Datapath.activate_readonly");
    free(s);
    expect = xasprintf("{\"dbg\":\"xenopsd/task/ab-cd\",\"uri\":"
                       "\"file://%s/vol2\",\"domain\":"
                       "\"u0-xenopsd_task_ab_cd\"}", f->sr_dir);
    s = sm_fixture_log_args(f, 2);
    assert_string_equal(s, expect);
    free(s);
    free(expect);
    assert_int_equal(f->ops->deactivate(f->priv, "xenopsd/task/ab-cd", SR,
                                        "vol2", "0"), 0);
    assert_int_equal(f->ops->detach(f->priv, "xenopsd/task/ab-cd", SR,
                                    "vol2", "0"), 0);
    free(params);
}

static void
test_smapiv3_restart_stats_again(void **state)
{
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    char *params = NULL, *s;
    void *fresh;

    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvda", SR, "vol1", "5",
                                    true, &params), 0);
    /* A new instance (as after a daemon restart) knows no URI yet. */
    assert_int_equal(smapiv3_driver_new(f->drivers, "xo-file", f->sr_uri,
                                        30000, &ops, &fresh), 0);
    assert_int_equal(ops->detach(fresh, "vbd/5/xvda", SR, "vol1", "5"), 0);
    s = sm_fixture_log_calls(f, true);
    assert_string_equal(s, PLUGIN ":Volume.stat|file:Datapath.attach|"
                        PLUGIN ":Volume.stat|file:Datapath.detach");
    free(s);
    ops->free(fresh);
    free(params);
}

static void
test_smapiv3_missing_uri(void **state)
{
    static const char *const none[] = { NULL };
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    char *root = make_root(f, "bare", none);
    char *params = NULL;
    yajl_val tree, p;
    void *priv;

    assert_int_equal(smapiv3_driver_new(root, "xo-file", f->sr_uri, 30000,
                                        &ops, &priv), 0);
    p = sm_fixture_script_error(ops->attach(priv, "vbd/5/xvda", SR, "vol1",
                                            "5", true, &params),
                                "MISSING_URI", PLUGIN, "Volume.stat", "vol1",
                                &tree);
    assert_string_equal(json_array_at(p, 3)->u.string,
                        "no URI of the volume has a datapath plugin");
    yajl_tree_free(tree);
    assert_null(params);
    ops->free(priv);
    free(root);
}

static void
test_smapiv3_error_mapping(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL, *json;
    int rc;

    setenv("XO_SM_FAIL_DATAPATH_ATTACH", "vol1:VDI_IN_USE", 1);
    rc = f->ops->attach(f->priv, "vbd/5/xvda", SR, "vol1", "5", true,
                        &params);
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",[\"VDI_IN_USE\","
                        "[\"InjectedFailure\",\"injected failure "
                        "(XO_SM_FAIL_ATTACH)\"]]]");
    free(json);
    assert_null(params);
    /* A volume that does not exist: the plugin's own error. */
    rc = f->ops->attach(f->priv, "vbd/5/xvda", SR, "nosuch", "5", true,
                        &params);
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",["
                        "\"SR_BACKEND_FAILURE\",[\"VolumeDoesNotExist\","
                        "\"volume 'nosuch' does not exist\"]]]");
    free(json);
    /* vol2 is not named by the knob. */
    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvdb", SR, "vol2", "5",
                                    true, &params), 0);
    assert_int_equal(f->ops->detach(f->priv, "vbd/5/xvdb", SR, "vol2", "5"),
                     0);
    free(params);
}

/* A datapath plugin "file" whose scripts print what the sample never
 * does. */
static char *
make_fake_root(struct sm_fixture *f)
{
    static const char *const none[] = { NULL };
    char *root = make_root(f, "fake", none);
    char *dir = xasprintf("%s/datapath/file", root);
    char *p;

    assert_int_equal(mkdir(dir, 0755), 0);
    p = xasprintf("%s/Datapath.attach", dir);
    sm_fixture_write_file(p, "#!/bin/sh\necho '{\"implementations\": "
                          "[[\"Nbd\", {\"uri\": \"nbd:unix:/run/x.sock:"
                          "exportname=vol1\"}]]}'\n", 0755);
    free(p);
    p = xasprintf("%s/Datapath.activate", dir);
    sm_fixture_write_file(p, "#!/bin/sh\necho '{\"code\": "
                          "\"SR_BACKEND_FAILURE\", \"params\": "
                          "[\"Activated_on_another_host\", \"host-2\"], "
                          "\"backtrace\": {}}'\nexit 1\n", 0755);
    free(p);
    p = xasprintf("%s/Datapath.activate_readonly", dir);
    sm_fixture_write_file(p, "#!/bin/sh\necho '{\"code\": \"ODD\", "
                          "\"params\": [\"a\", 1, {\"k\": true}]}'\n"
                          "exit 2\n", 0755);
    free(p);
    p = xasprintf("%s/Datapath.deactivate", dir);
    sm_fixture_write_file(p, "#!/bin/sh\necho oops >&2\nexit 1\n", 0755);
    free(p);
    free(dir);
    return root;
}

static void
test_smapiv3_plugin_error_shapes(void **state)
{
    struct sm_fixture *f = *state;
    char *root = make_fake_root(f);
    const struct sm_driver_ops *ops;
    char *params = NULL, *json;
    yajl_val tree, p;
    void *priv;
    int rc;

    assert_int_equal(smapiv3_driver_new(root, "xo-file", f->sr_uri, 30000,
                                        &ops, &priv), 0);
    /* An Nbd-only backend: its uri is the params. */
    assert_int_equal(ops->attach(priv, "vbd/5/xvda", SR, "vol1", "5", true,
                                 &params), 0);
    assert_string_equal(params, "nbd:unix:/run/x.sock:exportname=vol1");
    free(params);
    rc = ops->activate(priv, "vbd/5/xvda", SR, "vol1", "5");
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",["
                        "\"Activated_on_another_host\",[\"host-2\"]]]");
    free(json);
    /* Params that are not strings arrive as their JSON text. */
    assert_int_equal(ops->attach(priv, "vbd/5/xvdb", SR, "vol2", "5", false,
                                 &params), 0);
    free(params);
    rc = ops->activate(priv, "vbd/5/xvdb", SR, "vol2", "5");
    json = xo_err_take_json(rc);
    assert_string_equal(json, "[\"Storage_backend_error\",[\"ODD\",[\"a\","
                        "\"1\",\"{\\\"k\\\":true}\"]]]");
    free(json);
    p = sm_fixture_script_error(ops->deactivate(priv, "vbd/5/xvda", SR,
                                                "vol1", "5"),
                                "SCRIPT_FAILED", "file", "Datapath.deactivate",
                                "vol1", &tree);
    assert_string_equal(json_array_at(p, 3)->u.string,
                        "non-zero exit 1 and bad json on stdout");
    assert_string_equal(json_array_at(p, 5)->u.string, "oops\n");
    yajl_tree_free(tree);
    p = sm_fixture_script_error(ops->detach(priv, "vbd/5/xvda", SR, "vol1",
                                            "5"),
                                "SCRIPT_MISSING", "file", "Datapath.detach",
                                "vol1", &tree);
    yajl_tree_free(tree);
    ops->free(priv);
    free(root);
}

static void
test_smapiv3_hang_killed_at_timeout(void **state)
{
    struct sm_fixture *f = *state;
    const struct sm_driver_ops *ops;
    char *params = NULL;
    yajl_val tree, p, e[8];
    int64_t pid = 0;
    void *quick;
    size_t n;

    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvda", SR, "vol1", "5",
                                    true, &params), 0);
    free(params);
    assert_int_equal(smapiv3_driver_new(f->drivers, "xo-file", f->sr_uri, 1000,
                                        &ops, &quick), 0);
    setenv("XO_SM_HANG_ACTIVATE", "vol1", 1);
    p = sm_fixture_script_error(ops->activate(quick, "vbd/5/xvda", SR,
                                              "vol1", "5"),
                                "SCRIPT_TIMEOUT", "file", "Datapath.activate",
                                "vol1", &tree);
    assert_string_equal(json_array_at(p, 3)->u.string,
                        "no answer within 1000 ms; process group killed");
    yajl_tree_free(tree);
    /* Volume.stat, attach, stat (new instance), the hung activate. */
    n = sm_fixture_read_log(f, e, 8);
    assert_int_equal(n, 4);
    assert_string_equal(json_get_str(e[3], "command"), "Datapath.activate");
    assert_int_equal(json_get_int64(e[3], "pid", 0, &pid), 0);
    for (size_t i = 0; i < n; i++)
        yajl_tree_free(e[i]);
    for (int i = 0; i < 1000 && !sm_fixture_process_dead((long)pid); i++)
        usleep(10000);
    assert_true(sm_fixture_process_dead((long)pid));
    ops->free(quick);
    assert_int_equal(f->ops->detach(f->priv, "vbd/5/xvda", SR, "vol1", "5"),
                     0);
}

static void
test_smapiv3_garbage_reported(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL;
    yajl_val tree, p;

    setenv("XO_SM_GARBAGE_VOLUME_STAT", "*", 1);
    p = sm_fixture_script_error(f->ops->attach(f->priv, "vbd/5/xvda", SR,
                                               "vol1", "5", true, &params),
                                "SCRIPT_FAILED", PLUGIN, "Volume.stat", "vol1",
                                &tree);
    assert_string_equal(json_array_at(p, 3)->u.string, "bad json on stdout");
    assert_string_equal(json_array_at(p, 4)->u.string,
                        "xo-sm injected garbage: <<not xml, not json>> ??\n");
    yajl_tree_free(tree);
    assert_null(params);
}

static void
test_smapiv3_upgraded_plugin_requeried(void **state)
{
    struct sm_fixture *f = *state;
    char *dir = xasprintf("%s/qroot/volume/xo-q", f->dir);
    char *cmd = xasprintf("mkdir -p '%s' '%s/qroot/datapath'", dir, f->dir);
    char *root = xasprintf("%s/qroot", f->dir);
    char *q = xasprintf("%s/Plugin.Query", dir);
    char *tmp = xasprintf("%s/new", dir);
    const struct sm_driver_ops *ops;
    struct model_disk d;
    struct sm *sm;
    void *priv;

    assert_int_equal(system(cmd), 0);
    sm_fixture_write_file(q, "#!/bin/sh\necho '{\"required_api_version\": "
                          "\"1.0\"}'\n", 0755);
    assert_int_equal(smapiv3_driver_new(root, "xo-q", "x://sr", 30000, &ops,
                                        &priv), 0);
    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR, ops, priv), 0);
    sm_fixture_vdi_disk(&d, SR, "vol1");
    assert_false(sm_can_attach_early(sm, &d));
    sm_fixture_write_file(tmp, "#!/bin/sh\necho '{\"required_api_version\": "
                          "\"5.0\"}'\n", 0755);
    assert_int_equal(rename(tmp, q), 0);
    assert_true(sm_can_attach_early(sm, &d));
    model_disk_dispose(&d);
    sm_free(sm);
    free(tmp);
    free(q);
    free(root);
    free(cmd);
    free(dir);
}

/* ---- loop devices (root) ---- */

static char *
loop_backing(const char *params)
{
    char *path = xasprintf("/sys/block/%s/loop/backing_file",
                           strrchr(params, '/') + 1);
    char *s = read_text(path);

    free(path);
    if (s)
        s[strcspn(s, "\n")] = '\0';
    return s;
}

static void
test_smapiv3_loop_two_datapaths_keep_their_own_state(void **state)
{
    struct sm_fixture *f = *state;
    struct sm *sm;
    struct model_disk d;
    char *p1 = NULL, *p2 = NULL, *s, *expect, *statefile;
    char name[64];
    int rc;

    sm_fixture_vdi_disk(&d, SR, "vol1");
    assert_int_equal(sm_new(&sm), 0);
    assert_int_equal(sm_register_sr(sm, SR, f->ops, f->priv), 0);
    f->priv = NULL;
    assert_int_equal(sm_attach(sm, "vbd/5/xvda", &d, "5", true, &p1), 0);
    /* The first URI with a datapath plugin: loop+file, a real device. */
    assert_true(strncmp(p1, "/dev/loop", 9) == 0);
    s = loop_backing(p1);
    expect = xasprintf("%s/vol1", f->sr_dir);
    assert_string_equal(s, expect);
    free(s);
    free(expect);
    assert_int_equal(sm_activate(sm, "vbd/5/xvda"), 0);
    /* A second domain of the VM (localhost migration) on the same VDI. */
    assert_int_equal(sm_attach(sm, "vbd/6/xvda", &d, "6", true, &p2), 0);
    assert_string_equal(p1, p2);
    rc = sm_activate(sm, "vbd/6/xvda");
    assert_int_equal(rc, XO_EBACKEND);
    xo_err_clear();
    /* The source lets go: its activation goes, the attach stays. */
    assert_int_equal(sm_dp_destroy(sm, "vbd/5/xvda"), 0);
    statefile = xasprintf("%s/.xo-datapath/vol1.json", f->sr_dir);
    s = read_text(statefile);
    expect = xasprintf("{\"scheme\": \"loop+file\", \"device\": \"%s\", "
                       "\"attached_domain\": \"5\", \"active_domain\": null, "
                       "\"readonly\": false}", p1);
    assert_string_equal(s, expect);
    free(s);
    free(expect);
    assert_true(find_loop(f->dir, name, sizeof(name)));
    assert_int_equal(sm_activate(sm, "vbd/6/xvda"), 0);
    assert_int_equal(sm_dp_destroy(sm, "vbd/6/xvda"), 0);
    s = sm_fixture_log_calls(f, true);
    assert_string_equal(s, PLUGIN ":Volume.stat|"
                        "loop+file:Datapath.attach|"
                        "loop+file:Datapath.activate|"
                        "loop+file:Datapath.deactivate|"
                        "loop+file:Datapath.activate|"
                        "loop+file:Datapath.deactivate|"
                        "loop+file:Datapath.detach");
    free(s);
    s = sm_fixture_log_args(f, 4);
    expect = xasprintf("{\"dbg\":\"vbd/6/xvda\",\"uri\":\"loop+file://%s/"
                       "vol1\",\"domain\":\"6\"}", f->sr_dir);
    assert_string_equal(s, expect);
    free(s);
    free(expect);
    /* Detached: no loop device over our files, no state. */
    assert_false(find_loop(f->dir, name, sizeof(name)));
    assert_int_equal(access(statefile, F_OK), -1);
    free(statefile);
    free(p1);
    free(p2);
    model_disk_dispose(&d);
    sm_free(sm);
}

static void
test_smapiv3_loop_failed_activate_keeps_attach(void **state)
{
    struct sm_fixture *f = *state;
    char *params = NULL;
    char name[64];
    int rc;

    setenv("XO_SM_FAIL_ACTIVATE", "*", 1);
    assert_int_equal(f->ops->attach(f->priv, "vbd/5/xvda", SR, "vol1", "5",
                                    true, &params), 0);
    rc = f->ops->activate(f->priv, "vbd/5/xvda", SR, "vol1", "5");
    assert_int_equal(rc, XO_EBACKEND);
    xo_err_clear();
    assert_true(find_loop(f->dir, name, sizeof(name)));
    /* The caller's undo: detach releases the device. */
    assert_int_equal(f->ops->detach(f->priv, "vbd/5/xvda", SR, "vol1", "5"),
                     0);
    assert_false(find_loop(f->dir, name, sizeof(name)));
    free(params);
}

/* Why the loop group cannot run here, or NULL. */
static const char *
loop_unsupported(void)
{
    if (geteuid() != 0)
        return "not root";
    if (access("/dev/loop-control", W_OK) != 0)
        return "no /dev/loop-control";
    if (access("/usr/sbin/losetup", X_OK) != 0 &&
        access("/sbin/losetup", X_OK) != 0)
        return "no losetup";
    return NULL;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_smapiv3_sr_attach_and_lookup,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_query, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_call_sequence_and_args,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_smapiv3_dom0_domain_and_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_restart_stats_again,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_missing_uri, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_error_mapping, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_plugin_error_shapes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_hang_killed_at_timeout,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_smapiv3_garbage_reported, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_smapiv3_upgraded_plugin_requeried, setup, teardown),
    };
    const struct CMUnitTest loop_tests[] = {
        cmocka_unit_test_setup_teardown(
            test_smapiv3_loop_two_datapaths_keep_their_own_state, setup_loop,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_smapiv3_loop_failed_activate_keeps_attach, setup_loop,
            teardown),
    };
    const char *why = loop_unsupported();
    int rc = cmocka_run_group_tests_name("smapiv3", tests, NULL, NULL);

    if (rc)
        return rc;
    if (why) {
        printf("skipping the loop-device tests: %s (they need root and "
               "loop devices)\n", why);
        return 77;
    }
    return cmocka_run_group_tests_name("smapiv3_loop", loop_tests, NULL,
                                       NULL);
}
