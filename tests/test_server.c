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

#include "backend/sim/backend_sim.h"
#include "backend/sim/backend_sim_priv.h"
#include "backend/sim/xstree.h"
#include "config.h"
#include "server.h"
#include "server_fixture.h"
#include "server_priv.h"
#include "sm/sm.h"
#include "task.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define VM SERVER_FIXTURE_VM
#define SR3 SERVER_FIXTURE_SR

struct fx {
    struct config cfg;
    struct server *srv;
};

static int
setup(void **state)
{
    struct fx *f = xcalloc(1, sizeof(*f));

    server_fixture_config(&f->cfg, NULL, SR3 ":5.0:20:1");
    f->srv = server_fixture_start(&f->cfg);
    server_fixture_add_vm(f->srv, "{\"id\":\"" VM "\",\"name\":\"t\","
                          "\"memory_static_max\":1048576,\"vcpus\":1,"
                          "\"vcpu_max\":4,\"ty\":[\"PV\",{}]}");
    server_fixture_add(f->srv, server_vbd_add,
                       "{\"id\":[\"" VM "\",\"xvdb\"],\"mode\":\"ReadOnly\","
                       "\"backend\":[\"Local\",\"/dev/null\"]}");
    server_fixture_add(f->srv, server_vif_add, "{\"id\":[\"" VM "\",\"0\"]}");
    /* An empty CD drive. */
    server_fixture_add(f->srv, server_vbd_add,
                       "{\"id\":[\"" VM "\",\"xvdd\"],\"ty\":\"CDROM\","
                       "\"mode\":\"ReadOnly\"}");
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    server_fixture_stop(f->srv, &f->cfg);
    free(f);
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
    v = server_fixture_parse(json);
    ps = xstrdup(json_get_str(json_array_at(v, 1), "power_state"));
    yajl_tree_free(v);
    free(json);
    return ps;
}

static void
test_server_start_shutdown(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .flag = false, .timeout = -1 };
    char *stat = run_op(f, &a, NULL), *ps, *vbd = NULL;
    yajl_val v = server_fixture_parse(stat);

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
    v = server_fixture_parse(stat);
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
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .flag = false, .timeout = -1 };
    char *stat = run_op(f, &a, NULL);
    yajl_val v;

    free(stat);
    stat = run_op(f, &a, NULL);
    v = server_fixture_parse(stat);
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
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .flag = false, .timeout = -1 };
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
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .flag = true, .timeout = -1 };
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
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .flag = false, .timeout = -1 };
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
    struct server_op_args a = { .kind = SERVER_OP_VM_START,
                                .timeout = -1 };
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
        yajl_val v = server_fixture_parse("{\"id\":[\"9c0f7c55-1111-2222-3333-"
                                          "000000000000\",\"xvda\"]}");

        assert_int_equal(server_vbd_add(f->srv, v, &out), XO_ENOTFOUND);
        yajl_tree_free(v);
        assert_int_equal(server_vm_exists(f->srv, "9c0f7c55-1111-2222-3333-"
                                          "000000000000", &e), 0);
        assert_false(e);
    }
    xo_err_clear();
}


/* ---- canonical records ---- */

/* The stat of a record as a parsed [record, state] pair. */
static yajl_val
stat_pair(struct fx *f, int (*fn)(struct server *, const char *,
                                  const char *, char **),
          const char *dev, char **text_r)
{
    char *json = NULL;
    yajl_val v;

    assert_int_equal(fn(f->srv, VM, dev, &json), 0);
    v = server_fixture_parse(json);
    if (text_r)
        *text_r = json;
    else
        free(json);
    return v;
}

static void
assert_json_field(yajl_val rec, const char *key, const char *expect)
{
    assert_non_null(json_get(rec, key));
    if (!testutil_json_tree_same(json_get(rec, key), expect))
        fail_msg("field '%s' differs", key);
}

/* A record comes back complete, defaults filled in, tags and keys in
 * their declared case, unknown fields dropped. */
static void
test_server_records_are_canonical(void **state)
{
    struct fx *f = *state;
    char *text = NULL;
    yajl_val v, rec;

    server_fixture_add(f->srv, server_vbd_add,
                       "{\"ID\":[\"" VM "\",\"xvdc\"],\"MODE\":\"readonly\","
                       "\"ty\":\"cdrom\",\"Bogus\":1,\"persistent\":false}");
    v = stat_pair(f, server_vbd_stat, "xvdc", &text);
    rec = json_array_at(v, 0);
    assert_non_null(strstr(text, "\"mode\":\"ReadOnly\""));
    assert_non_null(strstr(text, "\"ty\":\"CDROM\""));
    assert_null(strstr(text, "Bogus"));
    assert_null(strstr(text, "MODE"));
    assert_null(strstr(text, "\"backend\""));
    assert_json_field(rec, "id", "[\"" VM "\",\"xvdc\"]");
    assert_json_field(rec, "unpluggable", "true");
    assert_json_field(rec, "persistent", "false");
    assert_json_field(rec, "extra_backend_keys", "{}");
    assert_json_field(rec, "extra_private_keys", "{}");
    assert_json_field(rec, "can_attach_early", "false");
    assert_int_equal(rec->u.object.len, 8);
    yajl_tree_free(v);
    free(text);

    v = stat_pair(f, server_vif_stat, "0", NULL);
    rec = json_array_at(v, 0);
    assert_json_field(rec, "position", "0");
    assert_json_field(rec, "mac", "\"fe:ff:ff:ff:ff:ff\"");
    assert_json_field(rec, "carrier", "true");
    assert_json_field(rec, "mtu", "1500");
    assert_json_field(rec, "backend", "[\"Local\",\"xenbr0\"]");
    assert_json_field(rec, "locking_mode", "\"Unlocked\"");
    assert_json_field(rec, "ipv4_configuration", "\"Unspecified4\"");
    assert_json_field(rec, "ipv6_configuration", "\"Unspecified6\"");
    assert_json_field(rec, "other_config", "{}");
    assert_null(json_get(rec, "rate"));
    assert_json_field(json_array_at(v, 1), "plugged", "false");
    yajl_tree_free(v);

    assert_int_equal(server_vm_stat(f->srv, VM, &text), 0);
    v = server_fixture_parse(text);
    rec = json_array_at(v, 0);
    assert_json_field(rec, "name", "\"t\"");
    assert_json_field(rec, "memory_dynamic_max", "1048576");
    assert_json_field(rec, "memory_dynamic_min", "1048576");
    assert_json_field(rec, "vcpu_max", "4");
    assert_json_field(rec, "on_softreboot", "[\"Softreboot\"]");
    assert_json_field(rec, "has_vendor_device", "false");
    assert_json_field(rec, "xsdata", "{}");
    assert_json_field(rec, "scheduler_params", "{\"affinity\":[]}");
    assert_json_field(rec, "ty", "[\"PV\",{\"boot\":[\"Direct\",{\"kernel\":"
                      "\"\",\"cmdline\":\"\"}],\"framebuffer\":true,"
                      "\"vncterm\":true,\"pci_passthrough\":false}]");
    assert_null(json_get(rec, "generation_id"));
    yajl_tree_free(v);
    free(text);
}

/* HVM defaults and rpclib's input rules: decimal-string ints, unknown
 * video card -> Cirrus. */
static void
test_server_vm_record_hvm_defaults(void **state)
{
    struct fx *f = *state;
    char *text = NULL;
    yajl_val v, ty;

    server_fixture_add(f->srv, server_vm_add,
                       "{\"id\":\"" VM "\",\"memory_static_max\":\"2097152\","
                       "\"vcpus\":2,\"ty\":[\"hvm\",{\"video\":\"Matrox\","
                       "\"firmware\":[\"uefi\",{}]}],"
                       "\"on_crash\":[\"coredump\"]}");
    assert_int_equal(server_vm_stat(f->srv, VM, &text), 0);
    v = server_fixture_parse(text);
    assert_json_field(json_array_at(v, 0), "memory_static_max", "2097152");
    assert_json_field(json_array_at(v, 0), "on_crash", "[\"Coredump\"]");
    ty = json_array_at(json_get(json_array_at(v, 0), "ty"), 1);
    assert_string_equal(json_array_at(json_get(json_array_at(v, 0), "ty"),
                                      0)->u.string, "HVM");
    assert_json_field(ty, "video", "\"Cirrus\"");
    assert_json_field(ty, "video_mib", "4");
    assert_json_field(ty, "shadow_multiplier", "1.0");
    assert_json_field(ty, "firmware", "[\"Uefi\",{\"on_boot\":\"Persist\","
                      "\"backend\":\"xapidb\"}]");
    assert_null(json_get(ty, "tpm"));
    assert_json_field(json_array_at(v, 1), "hvm", "true");
    yajl_tree_free(v);
    free(text);
}

static void
add_fails(struct fx *f, int (*fn)(struct server *, yajl_val, char **),
          const char *text, int expect)
{
    yajl_val v = server_fixture_parse(text);
    char *id = NULL;

    assert_int_equal(fn(f->srv, v, &id), expect);
    assert_null(id);
    yajl_tree_free(v);
    xo_err_clear();
}

/* Wrong types, unknown tags and missing required fields are refused. */
static void
test_server_records_reject_bad_fields(void **state)
{
    struct fx *f = *state;
    char *text = NULL;

    add_fails(f, server_vbd_add, "{\"id\":[\"" VM "\",\"xvde\"],"
              "\"unpluggable\":\"yes\"}", XO_EINVAL);
    add_fails(f, server_vbd_add, "{\"id\":[\"" VM "\",\"xvde\"],"
              "\"mode\":\"WriteOnly\"}", XO_EINVAL);
    add_fails(f, server_vbd_add, "{\"id\":[\"" VM "\",\"xvde\"],"
              "\"qos\":[\"Ionice\",[\"RealTime\",\"Fastest\"]]}", XO_EINVAL);
    add_fails(f, server_vbd_add, "{\"id\":[\"" VM "\",\"xvde\"],"
              "\"position\":[\"Xen\",0]}", XO_EINVAL);
    add_fails(f, server_vif_add, "{\"id\":[\"" VM "\",\"1\"],"
              "\"locking_mode\":[\"Locked\",{\"ipv4\":[]}]}", XO_EINVAL);
    add_fails(f, server_vif_add, "{\"id\":[\"" VM "\",\"1\"],"
              "\"mtu\":1.5}", XO_EINVAL);
    add_fails(f, server_vm_add, "{\"id\":\"" VM "\",\"vcpus\":1,"
              "\"memory_static_max\":\"lots\"}", XO_EINVAL);
    add_fails(f, server_vm_add, "{\"id\":\"" VM "\",\"vcpus\":1,"
              "\"memory_static_max\":1,\"ty\":[\"Bogus\",{}]}", XO_EINVAL);
    add_fails(f, server_vm_add, "{\"id\":\"" VM "\",\"vcpus\":1}",
              XO_EINVAL);
    add_fails(f, server_vm_add, "{\"id\":\"" VM "\",\"vcpus\":1,"
              "\"memory_static_max\":1,\"ssidref\":4294967296}", XO_EINVAL);
    /* Nothing changed. */
    assert_int_equal(server_vbd_stat(f->srv, VM, "xvde", &text),
                     XO_ENOTFOUND);
    xo_err_clear();
    assert_int_equal(server_vm_stat(f->srv, VM, &text), 0);
    assert_non_null(strstr(text, "\"memory_static_max\":1048576"));
    free(text);
}

/* Without the field, the SR's driver decides (SR3 is SMAPIv3); an
 * explicit false is kept. */
static void
test_server_vbd_can_attach_early_from_driver(void **state)
{
    struct fx *f = *state;
    yajl_val v;

    v = stat_pair(f, server_vbd_stat, "xvda", NULL);
    assert_json_field(json_array_at(v, 0), "can_attach_early", "true");
    yajl_tree_free(v);
    v = stat_pair(f, server_vbd_stat, "xvdb", NULL);
    assert_json_field(json_array_at(v, 0), "can_attach_early", "false");
    yajl_tree_free(v);
    server_fixture_add(f->srv, server_vbd_add,
                       "{\"id\":[\"" VM "\",\"xvde\"],\"backend\":"
                       "[\"VDI\",\"" SR3 "/e\"],\"can_attach_early\":false}");
    v = stat_pair(f, server_vbd_stat, "xvde", NULL);
    assert_json_field(json_array_at(v, 0), "can_attach_early", "false");
    yajl_tree_free(v);
}

/* ---- HOST.stat ---- */

static char *
data_path(const char *rel)
{
    const char *top = getenv("top_srcdir");

    return xasprintf("%s/tests/data/%s", top ? top : ".", rel);
}

static void
test_server_host_stat(void **state)
{
    struct fx *f = *state;
    char *path = data_path("server/cpuinfo-2s2c2t.txt"), *text = NULL;
    yajl_val v, cpu;

    server_set_cpuinfo_path(f->srv, path);
    assert_int_equal(server_host_stat(f->srv, NULL, &text), 0);
    v = server_fixture_parse(text);
    cpu = json_get(v, "cpu_info");
    assert_json_field(cpu, "cpu_count", "8");
    assert_json_field(cpu, "socket_count", "2");
    assert_json_field(cpu, "threads_per_core", "2");
    assert_json_field(cpu, "vendor", "\"GenuineIntel\"");
    assert_json_field(cpu, "speed", "\"2095.076\"");
    assert_json_field(cpu, "modelname",
                      "\"Intel(R) Xeon(R) Gold 6130 CPU @ 2.10GHz\"");
    assert_json_field(cpu, "family", "\"6\"");
    assert_json_field(cpu, "model", "\"85\"");
    assert_json_field(cpu, "stepping", "\"4\"");
    assert_json_field(cpu, "flags",
                      "\"fpu vme de pse tsc msr pae mce cx8 apic sep\"");
    assert_int_equal(cpu->u.object.len, 15);
    assert_non_null(json_get_str(cpu, "features_hvm"));
    assert_string_equal(json_get_str(cpu, "features_pv"),
                        json_get_str(cpu, "features_hvm"));
    assert_non_null(json_get_str(json_get(v, "hypervisor"), "version"));
    assert_non_null(json_get_str(json_get(v, "hypervisor"),
                                 "capabilities"));
    assert_json_field(json_get(v, "chipset_info"), "hvm", "true");
    yajl_tree_free(v);
    free(text);
    /* Without the file the CPUs are still counted. */
    server_set_cpuinfo_path(f->srv, "/nonexistent/cpuinfo");
    assert_int_equal(server_host_stat(f->srv, NULL, &text), 0);
    v = server_fixture_parse(text);
    assert_true(json_get(json_get(v, "cpu_info"), "cpu_count")->u.number.i
                >= 1);
    yajl_tree_free(v);
    free(text);
    free(path);
}

/* ---- atomic operations ---- */

/* Queue one atom, wait; returns the Task.t (caller frees). */
static char *
run_atomic(struct fx *f, enum atom_kind kind, const char *dev,
           const char *text, int64_t n0, int64_t n1, bool flag)
{
    struct server_op_args a = { .kind = SERVER_OP_ATOMIC, .vm = VM,
                                .dev = dev, .atomic = kind, .text = text,
                                .flag = flag, .timeout = -1 };

    a.ints[0] = n0;
    a.ints[1] = n1;
    return run_op(f, &a, NULL);
}

/* Queueing is refused at once (no task) with expect. */
static void
queue_fails(struct fx *f, enum atom_kind kind, const char *dev,
            const char *text, int expect)
{
    struct server_op_args a = { .kind = SERVER_OP_ATOMIC, .vm = VM,
                                .dev = dev, .atomic = kind, .text = text,
                                .timeout = -1 };
    char *id = NULL;

    assert_int_equal(server_queue_op(f->srv, "t", &a, &id), expect);
    assert_null(id);
    xo_err_clear();
}

static void
assert_task(char *stat, const char *tag, const char *needle)
{
    yajl_val v = server_fixture_parse(stat);

    if (strcmp(state_tag(v), tag) != 0 ||
        (needle && !strstr(stat, needle))) {
        print_error("task %s: expected %s with %s\n", stat, tag,
                    needle ? needle : "-");
        fail();
    }
    yajl_tree_free(v);
    free(stat);
}

static void
start_vm(struct fx *f)
{
    struct server_op_args a = { .kind = SERVER_OP_VM_START, .vm = VM,
                                .timeout = -1 };

    assert_task(run_op(f, &a, NULL), "Completed", NULL);
}

static int64_t
vm_state_int(struct fx *f, const char *key)
{
    char *json = NULL;
    yajl_val v;
    int64_t n = -1;

    assert_int_equal(server_vm_stat(f->srv, VM, &json), 0);
    v = server_fixture_parse(json);
    assert_int_equal(json_get_int64(json_array_at(v, 1), key, -1, &n), 0);
    yajl_tree_free(v);
    free(json);
    return n;
}

/* Invalid_vcpus carries vcpu_max, as in xenopsd. */
static void
test_server_set_vcpus(void **state)
{
    struct fx *f = *state;

    /* No domain yet. */
    assert_task(run_atomic(f, ATOM_VM_SET_VCPUS, NULL, NULL, 2, 0, false),
                "Failed", "Does_not_exist");
    start_vm(f);
    assert_int_equal(vm_state_int(f, "vcpu_target"), 1);
    assert_task(run_atomic(f, ATOM_VM_SET_VCPUS, NULL, NULL, 3, 0, false),
                "Completed", "VM_set_vcpus 3");
    assert_int_equal(vm_state_int(f, "vcpu_target"), 3);
    assert_task(run_atomic(f, ATOM_VM_SET_VCPUS, NULL, NULL, 0, 0, false),
                "Failed", "[\"Invalid_vcpus\",4]");
    assert_task(run_atomic(f, ATOM_VM_SET_VCPUS, NULL, NULL, 5, 0, false),
                "Failed", "[\"Invalid_vcpus\",4]");
    assert_int_equal(vm_state_int(f, "vcpu_target"), 3);
}

static void
test_server_set_memory_dynamic_range(void **state)
{
    struct fx *f = *state;

    start_vm(f);
    assert_int_equal(vm_state_int(f, "memory_target"), 1048576);
    assert_task(run_atomic(f, ATOM_VM_SET_MEMORY_DYNAMIC_RANGE, NULL, NULL,
                           524288, 786432, false),
                "Completed", "VM_set_memory_dynamic_range 524288 786432");
    assert_int_equal(vm_state_int(f, "memory_target"), 786432);
    /* min > max, and max above memory_static_max. */
    assert_task(run_atomic(f, ATOM_VM_SET_MEMORY_DYNAMIC_RANGE, NULL, NULL,
                           786432, 524288, false), "Failed", "range");
    assert_task(run_atomic(f, ATOM_VM_SET_MEMORY_DYNAMIC_RANGE, NULL, NULL,
                           524288, 2097152, false), "Failed", "range");
    assert_int_equal(vm_state_int(f, "memory_target"), 786432);
}

static int
domid_of(struct fx *f)
{
    char *json = NULL;
    yajl_val v;
    int64_t d = -1;

    assert_int_equal(server_vm_stat(f->srv, VM, &json), 0);
    v = server_fixture_parse(json);
    assert_int_equal(json_to_int64(json_array_at(json_get(
                         json_array_at(v, 1), "domids"), 0), &d), 0);
    yajl_tree_free(v);
    free(json);
    return (int)d;
}

static char *
xs_read(struct fx *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static char *
xs_read(struct fx *f, const char *fmt, ...)
{
    struct xstree *xs = backend_sim_xstree(server_backend(f->srv));
    char path[256], *value = NULL;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    if (xstree_read(xs, path, &value))
        xo_err_clear();
    return value;
}

static void
test_server_set_xsdata(void **state)
{
    struct fx *f = *state;
    char *value;
    int domid;

    start_vm(f);
    domid = domid_of(f);
    assert_task(run_atomic(f, ATOM_VM_SET_XSDATA, NULL,
                           "{\"vm-data/foo\":\"bar\",\"vm-data/n\":\"1\"}",
                           0, 0, false), "Completed", "VM_set_xsdata");
    value = xs_read(f, "/local/domain/%d/vm-data/foo", domid);
    assert_non_null(value);
    assert_string_equal(value, "bar");
    free(value);
    /* Bad input never becomes a task and writes nothing. */
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, "{\"../x\":\"y\"}", XO_EINVAL);
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, "{\"/abs\":\"y\"}", XO_EINVAL);
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, "{\"a//b\":\"y\"}", XO_EINVAL);
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, "{\"vm-data/x\":1}", XO_EINVAL);
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, "[\"vm-data/x\"]", XO_EINVAL);
    queue_fails(f, ATOM_VM_SET_XSDATA, NULL, NULL, XO_EINVAL);
    value = xs_read(f, "/local/domain/%d/vm-data/x", domid);
    assert_null(value);
}

static void
test_server_vm_delay(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { .kind = SERVER_OP_ATOMIC, .vm = VM,
                                .atomic = ATOM_VM_DELAY, .timeout = 0.01 };

    assert_task(run_op(f, &a, NULL), "Completed", "VM_delay 0.01");
}

/* A cancel wakes VM_delay at once, whenever it lands: before the atom,
 * while it sleeps (its cancel callback signals it) or in between. */
static void
test_server_vm_delay_cancel_wakes(void **state)
{
    struct fx *f = *state;
    struct server_op_args a = { .kind = SERVER_OP_ATOMIC, .vm = VM,
                                .atomic = ATOM_VM_DELAY, .timeout = 600 };
    char *id = NULL, *stat;
    struct task *t;

    assert_int_equal(server_queue_op(f->srv, "test", &a, &id), 0);
    t = task_find(server_tasks(f->srv), id);
    assert_non_null(t);
    for (int i = 0; i < 20000; i++) {
        stat = task_stat_json(t);
        if (strstr(stat, "VM_delay 600")) {
            free(stat);
            break;
        }
        free(stat);
        usleep(1000);
    }
    assert_int_equal(task_cancel(server_tasks(f->srv), id), 0);
    /* Far less than the 600 s the atom would sleep. */
    assert_int_equal(task_wait(t, 60), 0);
    assert_task(task_stat_json(t), "Failed", "Cancelled");
    task_unref(t);
    free(id);
}

/* The SM layer's view: does a datapath of dev exist? */
static bool
has_datapath(struct fx *f, const char *dev)
{
    char *dump = sm_dump_json(server_sm(f->srv));
    char *needle = xasprintf("/%s\"", dev);
    bool found = strstr(dump, needle) != NULL;

    free(needle);
    free(dump);
    return found;
}

static void
test_server_vbd_insert_eject(void **state)
{
    struct fx *f = *state;
    const char *cd = "[\"vdi\",\"" SR3 "/cd\"]";
    yajl_val v;

    /* A halted VM has no drive to change. */
    assert_task(run_atomic(f, ATOM_VBD_INSERT, "xvdd", cd, 0, 0, false),
                "Failed", "[\"Bad_power_state\",[\"Halted\",\"Running\"]]");
    start_vm(f);
    v = stat_pair(f, server_vbd_stat, "xvdd", NULL);
    assert_null(json_get(json_array_at(v, 0), "backend"));
    assert_null(json_get(json_array_at(v, 1), "backend_present"));
    yajl_tree_free(v);

    assert_task(run_atomic(f, ATOM_VBD_INSERT, "xvdd", cd, 0, 0, false),
                "Completed",
                "VBD_insert xvdd [\\\"VDI\\\",\\\"" SR3 "/cd\\\"]");
    v = stat_pair(f, server_vbd_stat, "xvdd", NULL);
    assert_json_field(json_array_at(v, 0), "backend",
                      "[\"VDI\",\"" SR3 "/cd\"]");
    assert_json_field(json_array_at(v, 1), "plugged", "true");
    assert_json_field(json_array_at(v, 1), "backend_present",
                      "[\"VDI\",\"" SR3 "/cd\"]");
    yajl_tree_free(v);
    assert_true(has_datapath(f, "xvdd"));
    assert_task(run_atomic(f, ATOM_VBD_INSERT, "xvdd", cd, 0, 0, false),
                "Failed", "Media_present");

    assert_task(run_atomic(f, ATOM_VBD_EJECT, "xvdd", NULL, 0, 0, false),
                "Completed", "VBD_eject xvdd");
    v = stat_pair(f, server_vbd_stat, "xvdd", NULL);
    assert_null(json_get(json_array_at(v, 0), "backend"));
    assert_null(json_get(json_array_at(v, 1), "backend_present"));
    yajl_tree_free(v);
    assert_false(has_datapath(f, "xvdd"));
    assert_task(run_atomic(f, ATOM_VBD_EJECT, "xvdd", NULL, 0, 0, false),
                "Failed", "Media_not_present");
    /* A disk is not ejectable, whatever the power state. */
    assert_task(run_atomic(f, ATOM_VBD_EJECT, "xvda", NULL, 0, 0, false),
                "Failed", "Media_not_ejectable");
    assert_true(has_datapath(f, "xvda"));
    assert_task(run_atomic(f, ATOM_VBD_EJECT, "xvdz", NULL, 0, 0, false),
                "Failed", "Does_not_exist");
    /* Bad disks and ids are refused before queueing. */
    queue_fails(f, ATOM_VBD_INSERT, "xvdd", "\"nope\"", XO_EINVAL);
    queue_fails(f, ATOM_VBD_INSERT, "xvdd", "[\"VDI\",\"no-slash\"]",
                XO_EINVAL);
    queue_fails(f, ATOM_VBD_INSERT, "xvdd", "[\"Floppy\",\"x\"]", XO_EINVAL);
    queue_fails(f, ATOM_VBD_INSERT, "../x", cd, XO_EINVAL);
}

/* A failed insert leaves the drive empty and no datapath behind. */
static void
test_server_vbd_insert_failure_leaves_drive_empty(void **state)
{
    struct fx *f = *state;
    yajl_val v;

    start_vm(f);
    /* No driver serves this SR: the attach fails. */
    assert_task(run_atomic(f, ATOM_VBD_INSERT, "xvdd",
                           "[\"VDI\",\"5a3e0c3e-0000-4000-8000-0000000000ff"
                           "/cd\"]", 0, 0, false), "Failed", NULL);
    v = stat_pair(f, server_vbd_stat, "xvdd", NULL);
    assert_null(json_get(json_array_at(v, 0), "backend"));
    assert_json_field(json_array_at(v, 1), "plugged", "false");
    yajl_tree_free(v);
    assert_false(has_datapath(f, "xvdd"));
}

static void
test_server_vif_set_carrier_and_locking_mode(void **state)
{
    struct fx *f = *state;
    char *value;
    yajl_val v;
    int domid;

    /* Halted: only the record changes. */
    assert_task(run_atomic(f, ATOM_VIF_SET_CARRIER, "0", NULL, 0, 0, false),
                "Completed", "VIF_set_carrier 0 false");
    v = stat_pair(f, server_vif_stat, "0", NULL);
    assert_json_field(json_array_at(v, 0), "carrier", "false");
    yajl_tree_free(v);
    assert_task(run_atomic(f, ATOM_VIF_SET_LOCKING_MODE, "0",
                           "[\"locked\",{\"IPv4\":[\"10.0.0.2\"],"
                           "\"ipv6\":[]}]", 0, 0, false), "Completed", NULL);
    v = stat_pair(f, server_vif_stat, "0", NULL);
    assert_json_field(json_array_at(v, 0), "locking_mode",
                      "[\"Locked\",{\"ipv4\":[\"10.0.0.2\"],\"ipv6\":[]}]");
    yajl_tree_free(v);

    /* Plugged: the live device follows. */
    start_vm(f);
    domid = domid_of(f);
    assert_task(run_atomic(f, ATOM_VIF_SET_CARRIER, "0", NULL, 0, 0, true),
                "Completed", NULL);
    value = xs_read(f, "/local/domain/0/backend/vif/%d/0/carrier", domid);
    assert_non_null(value);
    assert_string_equal(value, "1");
    free(value);
    assert_task(run_atomic(f, ATOM_VIF_SET_LOCKING_MODE, "0", "\"disabled\"",
                           0, 0, false), "Completed",
                "VIF_set_locking_mode 0 \\\"Disabled\\\"");
    value = xs_read(f, "/local/domain/0/backend/vif/%d/0/locking-mode",
                    domid);
    assert_non_null(value);
    assert_string_equal(value, "\"Disabled\"");
    free(value);
    v = stat_pair(f, server_vif_stat, "0", NULL);
    assert_json_field(json_array_at(v, 0), "carrier", "true");
    assert_json_field(json_array_at(v, 0), "locking_mode", "\"Disabled\"");
    yajl_tree_free(v);

    assert_task(run_atomic(f, ATOM_VIF_SET_CARRIER, "7", NULL, 0, 0, false),
                "Failed", "Does_not_exist");
    queue_fails(f, ATOM_VIF_SET_LOCKING_MODE, "0", "\"Bogus\"", XO_EINVAL);
    queue_fails(f, ATOM_VIF_SET_LOCKING_MODE, "0", "[\"Locked\",{}]",
                XO_EINVAL);
    queue_fails(f, ATOM_VIF_SET_LOCKING_MODE, "0", NULL, XO_EINVAL);
}

static void
test_server_generate_state_string(void **state)
{
    struct fx *f = *state;
    yajl_val vm = server_fixture_parse("{\"id\":\"" VM "\","
                                       "\"memory_static_max\":1,"
                                       "\"vcpus\":1,\"ty\":[\"HVM\",{}]}");
    yajl_val bad = server_fixture_parse("{\"id\":\"" VM "\",\"vcpus\":\"one\","
                                        "\"memory_static_max\":1}");
    char *s = NULL;

    assert_int_equal(server_vm_generate_state_string(f->srv, vm, &s), 0);
    assert_string_equal(s, "");
    free(s);
    s = NULL;
    assert_int_equal(server_vm_generate_state_string(f->srv, bad, &s),
                     XO_EINVAL);
    assert_null(s);
    xo_err_clear();
    yajl_tree_free(vm);
    yajl_tree_free(bad);
}

/* Start-up leaves a domain it holds no records for alone. */
static void
test_server_reconcile_leaves_foreign_domains(void **state)
{
    struct backend_sim_config sc = { 1 << 20, 0, 5 };
    struct backend_vm_config vc = { 1 << 20, 1, false, NULL, NULL };
    struct backend_vm_state st;
    struct server *srv = NULL;
    struct backend *b = NULL;
    struct config cfg;

    (void)state;
    assert_int_equal(backend_sim_new(&sc, &b), 0);
    assert_int_equal(b->ops->vm_create(b, SERVER_FIXTURE_VM, &vc), 0);
    server_fixture_config(&cfg, NULL, SERVER_FIXTURE_SR ":5.0:20:1");
    assert_int_equal(server_new(&cfg, b, &srv), 0);
    assert_int_equal(b->ops->vm_get_state(b, SERVER_FIXTURE_VM, &st), 0);
    assert_int_not_equal(st.domid, -1);
    server_fixture_stop(srv, &cfg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_reconcile_leaves_foreign_domains),
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
        cmocka_unit_test_setup_teardown(test_server_records_are_canonical,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_vm_record_hvm_defaults,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_server_records_reject_bad_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_server_vbd_can_attach_early_from_driver, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_host_stat, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_set_vcpus, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_server_set_memory_dynamic_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_set_xsdata, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_vm_delay_cancel_wakes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_vm_delay, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_server_vbd_insert_eject, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_server_vbd_insert_failure_leaves_drive_empty, setup,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_server_vif_set_carrier_and_locking_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_generate_state_string,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
