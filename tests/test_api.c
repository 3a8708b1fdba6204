/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The message interface end to end: the real xenopsd-c binary is spawned
 * on the simulator and driven only through its socket with rpc_call, as
 * xapi would drive it. One scenario walks a VM with two VBDs (one VDI on a
 * simulated SR, one Local) through add, start, hot-unplug, re-plug,
 * shutdown and remove while a second thread follows UPDATES.get by chaining
 * next_id; every object that changed must show up in that stream. Another
 * checks barriers. Both stop the daemon with DEBUG.shutdown and check its
 * exit status.
 *
 * The daemon binary is $top_builddir/xenopsd-c (make check sets it; "."
 * otherwise), run by testutil: as a user other than root, the daemon
 * is told to answer that uid too (rpc-allowed-uids).
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "testutil.h"
#include "util/json.h"
#include "util/xalloc.h"

#define SR_UUID TESTUTIL_SR
#define VM_A "9c0f7c55-1111-2222-3333-444455556666"
#define VM_B "9c0f7c55-1111-2222-3333-777788889999"
#define GUARD_MS TESTUTIL_GUARD_MS

struct follower;

struct daemon {
    struct testutil_daemon h;
    /* Running UPDATES follower, stopped by the teardown if a test failed
     * while it ran. */
    struct follower *follower;
};

static void follower_stop(struct follower *f);

/* ---- spawning and stopping the daemon ---- */

static int
daemon_stop(void **state)
{
    struct daemon *d = *state;

    if (!d)
        return 0;
    follower_stop(d->follower);
    d->follower = NULL;
    testutil_daemon_cleanup(&d->h);
    free(d);
    return 0;
}

/* Spawn the daemon and wait for its socket. On failure everything is
 * cleaned up here: cmocka runs no teardown after a failed setup. */
static int
daemon_start(void **state)
{
    struct daemon *d = xcalloc(1, sizeof(*d));

    if (testutil_daemon_spawn(&d->h, "xenops-api")) {
        free(d);
        return -1;
    }
    *state = d;
    return 0;
}

/* DEBUG.shutdown, then the daemon must exit 0 and remove its socket. */
static void
daemon_shutdown_cleanly(struct daemon *d)
{
    struct stat st;
    int status = 0;

    assert_int_equal(testutil_daemon_shutdown(&d->h, &status), 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(lstat(d->h.sock, &st), -1);
}

/* ---- calls ---- */

/* A call that must succeed; returns its parsed result (caller frees). */
static yajl_val
call_ok(const struct daemon *d, const char *method, const char *params)
{
    yajl_val t = NULL;

    if (testutil_daemon_call_json(&d->h, method, params, &t))
        fail_msg("%s %s failed (see the log above)", method, params);
    return t;
}

/* A call that must fail with an error reply; returns the error's tag. */
static char *
call_err(const struct daemon *d, const char *method, const char *params)
{
    char *res = NULL, *err = NULL;
    yajl_val t = NULL;
    yajl_val tag;
    char *out;

    assert_int_equal(testutil_daemon_call(&d->h, method, params, &res, &err),
                     0);
    if (res)
        fail_msg("%s %s: expected an error, got %s", method, params, res);
    assert_int_equal(json_parse(err, strlen(err), &t), 0);
    tag = YAJL_IS_STRING(t) ? t : json_array_at(t, 0);
    assert_true(tag && YAJL_IS_STRING(tag));
    out = xstrdup(tag->u.string);
    yajl_tree_free(t);
    free(err);
    return out;
}

static void
call_unit(const struct daemon *d, const char *method, const char *params)
{
    yajl_val t = call_ok(d, method, params);

    assert_true(YAJL_IS_NULL(t));
    yajl_tree_free(t);
}

/* A call whose result is a task id; returns it (caller frees). */
static char *
call_task(const struct daemon *d, const char *method, const char *params)
{
    yajl_val t = call_ok(d, method, params);
    char *id;

    assert_true(YAJL_IS_STRING(t));
    id = xstrdup(t->u.string);
    yajl_tree_free(t);
    return id;
}

/* Poll Task.stat until the task leaves Pending; it must have Completed.
 * Then destroy it. */
static void
task_wait_completed(const struct daemon *d, const char *task)
{
    char *params = xasprintf("{\"debug_info\":\"test\",\"id\":\"%s\"}",
                             task);
    int64_t end = testutil_now_ms() + GUARD_MS;
    char *gone;

    for (;;) {
        yajl_val t = call_ok(d, "Task.stat", params);
        yajl_val st = json_get(t, "state");
        yajl_val tag = json_array_at(st, 0);

        assert_true(tag && YAJL_IS_STRING(tag));
        assert_string_equal(json_get_str(t, "id"), task);
        if (strcmp(tag->u.string, "Pending") != 0) {
            char *text = json_tree_to_string(st);

            if (strcmp(tag->u.string, "Completed") != 0)
                fail_msg("task '%s' ended %s", task, text);
            free(text);
            yajl_tree_free(t);
            break;
        }
        yajl_tree_free(t);
        if (testutil_now_ms() > end)
            fail_msg("task '%s' still pending", task);
        testutil_sleep_ms(5);
    }
    call_unit(d, "Task.destroy", params);
    /* Destroyed means gone. */
    gone = call_err(d, "Task.stat", params);
    assert_string_equal(gone, "Does_not_exist");
    free(gone);
    free(params);
}

static char *
vm_power_state(const struct daemon *d, const char *vm)
{
    char *params = xasprintf("{\"debug_info\":\"test\",\"id\":\"%s\"}", vm);
    yajl_val t = call_ok(d, "VM.stat", params);
    yajl_val rec = json_array_at(t, 0);
    const char *ps = json_get_str(json_array_at(t, 1), "power_state");
    char *out;

    assert_string_equal(json_get_str(rec, "id"), vm);
    assert_non_null(ps);
    out = xstrdup(ps);
    yajl_tree_free(t);
    free(params);
    return out;
}

static bool
vbd_plugged(const struct daemon *d, const char *vm, const char *dev)
{
    char *params = xasprintf("{\"debug_info\":\"test\","
                             "\"id\":[\"%s\",\"%s\"]}", vm, dev);
    yajl_val t = call_ok(d, "VBD.stat", params);
    yajl_val p = json_get(json_array_at(t, 1), "plugged");
    bool plugged;

    assert_true(p && (YAJL_IS_TRUE(p) || YAJL_IS_FALSE(p)));
    plugged = YAJL_IS_TRUE(p);
    yajl_tree_free(t);
    free(params);
    return plugged;
}

static char *
vm_record(const char *id)
{
    return xasprintf(
        "{\"debug_info\":\"test\",\"vm\":{\"id\":\"%s\",\"name\":\"api\","
        "\"ssidref\":0,\"xsdata\":{},\"platformdata\":{},"
        "\"bios_strings\":{},\"ty\":[\"PV\",{\"boot\":[\"Direct\","
        "{\"kernel\":\"/k\",\"cmdline\":\"\"}]}],"
        "\"suppress_spurious_page_faults\":false,"
        "\"memory_static_max\":1048576,\"memory_dynamic_max\":1048576,"
        "\"memory_dynamic_min\":1048576,\"vcpu_max\":1,\"vcpus\":1,"
        "\"scheduler_params\":{\"priority\":[256,0],\"affinity\":[]},"
        "\"on_crash\":[\"Shutdown\"],\"on_shutdown\":[\"Shutdown\"],"
        "\"on_reboot\":[\"Start\"],\"pci_msitranslate\":true,"
        "\"pci_power_mgmt\":false}}", id);
}

static void
add_vm(const struct daemon *d, const char *id)
{
    char *p = vm_record(id);
    yajl_val t = call_ok(d, "VM.add", p);

    assert_true(YAJL_IS_STRING(t));
    assert_string_equal(t->u.string, id);
    yajl_tree_free(t);
    free(p);
}

static void
add_vbd(const struct daemon *d, const char *vm, const char *dev,
        const char *params)
{
    yajl_val t = call_ok(d, "VBD.add", params);

    assert_int_equal(json_array_len(t), 2);
    assert_string_equal(json_array_at(t, 0)->u.string, vm);
    assert_string_equal(json_array_at(t, 1)->u.string, dev);
    yajl_tree_free(t);
}

/* xvda: a VDI on the simulated SR (every field given, as xapi sends it);
 * xvdb: a Local disk (defaults for the rest). */
static void
add_two_vbds(const struct daemon *d, const char *vm)
{
    char *p;

    p = xasprintf("{\"debug_info\":\"test\",\"vbd\":{\"id\":[\"%s\","
                  "\"xvda\"],\"position\":[\"Xen\",0,0],"
                  "\"mode\":\"ReadWrite\",\"backend\":[\"VDI\",\""
                  SR_UUID "/vdi-a\"],\"ty\":\"Disk\",\"unpluggable\":true,"
                  "\"extra_backend_keys\":{},\"extra_private_keys\":{},"
                  "\"persistent\":true,\"can_attach_early\":true}}", vm);
    add_vbd(d, vm, "xvda", p);
    free(p);
    p = xasprintf("{\"debug_info\":\"test\",\"vbd\":{\"id\":[\"%s\","
                  "\"xvdb\"],\"mode\":\"ReadOnly\","
                  "\"backend\":[\"Local\",\"/dev/null\"]}}", vm);
    add_vbd(d, vm, "xvdb", p);
    free(p);
}

/* ---- the UPDATES follower ---- */

struct follower {
    const struct daemon *d;
    int64_t from;               /* last_id of the next call */
    struct testutil_daemon_loop loop; /* its lock guards what follows */
    char **seen;                /* distinct Dynamic.id texts */
    size_t n_seen;
    int calls;
    int errors;                 /* transport/error replies, bad shapes */
};

static bool
follower_has_locked(const struct follower *f, const char *key)
{
    for (size_t i = 0; i < f->n_seen; i++) {
        if (strcmp(f->seen[i], key) == 0)
            return true;
    }
    return false;
}

/* Take one UPDATES.get result; the next last_id, or -1 on a bad shape. */
static int64_t
follower_take(struct follower *f, yajl_val t, int64_t from)
{
    yajl_val ids = json_array_at(t, 1);
    int64_t next;

    if (json_array_len(t) != 3 || !json_is_array(json_array_at(t, 0)) ||
        !json_is_array(ids) || json_to_int64(json_array_at(t, 2), &next) ||
        next < from)
        return -1;
    pthread_mutex_lock(&f->loop.lock);
    for (size_t i = 0; i < json_array_len(ids); i++) {
        char *key = json_tree_to_string(json_array_at(ids, i));

        if (follower_has_locked(f, key)) {
            free(key);
            continue;
        }
        f->seen = xrealloc(f->seen, (f->n_seen + 1) * sizeof(*f->seen));
        f->seen[f->n_seen++] = key;
    }
    f->calls++;
    pthread_cond_broadcast(&f->loop.cond);
    pthread_mutex_unlock(&f->loop.lock);
    return next;
}

/* One UPDATES.get from the last next_id. A failure is counted and ends
 * the loop. */
static bool
follower_step(void *arg)
{
    struct follower *f = arg;
    char *params, *res = NULL, *err = NULL;
    yajl_val t = NULL;
    int rc;

    params = xasprintf("{\"debug_info\":\"follower\",\"last_id\":%lld,"
                       "\"timeout\":1}", (long long)f->from);
    rc = testutil_daemon_call(&f->d->h, "UPDATES.get", params, &res, &err);
    free(params);
    if (rc == 0 && res && json_parse(res, strlen(res), &t) == 0)
        f->from = follower_take(f, t, f->from);
    else
        f->from = -1;
    yajl_tree_free(t);
    free(res);
    free(err);
    if (f->from >= 0)
        return true;
    pthread_mutex_lock(&f->loop.lock);
    f->errors++;
    pthread_cond_broadcast(&f->loop.cond);
    pthread_mutex_unlock(&f->loop.lock);
    return false;
}

/* Start following from the current last_id; the daemon owns it. */
static struct follower *
follower_start(struct daemon *d)
{
    yajl_val t = call_ok(d, "UPDATES.last_id", "{\"debug_info\":\"test\"}");
    struct follower *f = xcalloc(1, sizeof(*f));

    f->d = d;
    assert_int_equal(json_to_int64(t, &f->from), 0);
    yajl_tree_free(t);
    assert_int_equal(testutil_daemon_loop_start(&f->loop, follower_step, f), 0);
    d->follower = f;
    return f;
}

/* Join the thread (it notices within one UPDATES.get timeout) and free. */
static void
follower_stop(struct follower *f)
{
    if (!f)
        return;
    testutil_daemon_loop_stop(&f->loop);
    for (size_t i = 0; i < f->n_seen; i++)
        free(f->seen[i]);
    free(f->seen);
    free(f);
}

/* Wait until every key was seen or the follower failed. Returns the keys
 * missing, as one text ("" when none; caller frees). */
static char *
follower_wait_for(struct follower *f, char *const *keys, size_t n)
{
    struct timespec end;
    char *missing = xstrdup("");

    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += GUARD_MS / 1000;
    pthread_mutex_lock(&f->loop.lock);
    for (;;) {
        size_t have = 0;

        for (size_t i = 0; i < n; i++)
            have += follower_has_locked(f, keys[i]);
        if (have == n || f->errors ||
            pthread_cond_timedwait(&f->loop.cond, &f->loop.lock,
                                   &end) == ETIMEDOUT)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        if (!follower_has_locked(f, keys[i])) {
            char *m = xasprintf("%s %s", missing, keys[i]);

            free(missing);
            missing = m;
        }
    }
    pthread_mutex_unlock(&f->loop.lock);
    return missing;
}

/* ---- tests ---- */

static char *
queue_and_wait(const struct daemon *d, const char *method,
               const char *params)
{
    char *task = call_task(d, method, params);

    task_wait_completed(d, task);
    return task;
}

static void
test_api_lifecycle_with_hotplug_is_seen_in_updates(void **state)
{
    struct daemon *d = *state;
    struct follower *f;
    char *keys[16];
    size_t n_keys = 0;
    char *ps, *missing, *tag;

    f = follower_start(d);

    add_vm(d, VM_A);
    add_two_vbds(d, VM_A);
    ps = vm_power_state(d, VM_A);
    assert_string_equal(ps, "Halted");
    free(ps);

    keys[n_keys++] = queue_and_wait(d, "VM.start",
        "{\"debug_info\":\"test\",\"id\":\"" VM_A "\",\"paused\":false}");
    ps = vm_power_state(d, VM_A);
    assert_string_equal(ps, "Running");
    free(ps);
    assert_true(vbd_plugged(d, VM_A, "xvda"));
    assert_true(vbd_plugged(d, VM_A, "xvdb"));

    keys[n_keys++] = queue_and_wait(d, "VBD.unplug",
        "{\"debug_info\":\"test\",\"id\":[\"" VM_A "\",\"xvda\"],"
        "\"force\":false}");
    assert_false(vbd_plugged(d, VM_A, "xvda"));
    assert_true(vbd_plugged(d, VM_A, "xvdb"));

    keys[n_keys++] = queue_and_wait(d, "VBD.plug",
        "{\"debug_info\":\"test\",\"id\":[\"" VM_A "\",\"xvda\"]}");
    assert_true(vbd_plugged(d, VM_A, "xvda"));

    /* A device that is in use cannot be removed. */
    tag = call_err(d, "VBD.remove",
                   "{\"debug_info\":\"test\",\"id\":[\"" VM_A "\",\"xvda\"]}");
    assert_string_equal(tag, "Device_is_connected");
    free(tag);

    keys[n_keys++] = queue_and_wait(d, "VM.shutdown",
        "{\"debug_info\":\"test\",\"id\":\"" VM_A "\"}");
    ps = vm_power_state(d, VM_A);
    assert_string_equal(ps, "Halted");
    free(ps);
    assert_false(vbd_plugged(d, VM_A, "xvda"));

    call_unit(d, "VBD.remove",
              "{\"debug_info\":\"test\",\"id\":[\"" VM_A "\",\"xvda\"]}");
    call_unit(d, "VBD.remove",
              "{\"debug_info\":\"test\",\"id\":[\"" VM_A "\",\"xvdb\"]}");
    call_unit(d, "VM.remove", "{\"debug_info\":\"test\",\"id\":\"" VM_A "\"}");
    tag = call_err(d, "VM.stat", "{\"debug_info\":\"test\",\"id\":\""
                   VM_A "\"}");
    assert_string_equal(tag, "Does_not_exist");
    free(tag);

    /* Every object that changed must have come through UPDATES.get. */
    for (size_t i = 0; i < 4; i++) {
        char *task = keys[i];

        keys[i] = xasprintf("[\"Task\",\"%s\"]", task);
        free(task);
    }
    keys[n_keys++] = xstrdup("[\"Vm\",\"" VM_A "\"]");
    keys[n_keys++] = xstrdup("[\"Vbd\",[\"" VM_A "\",\"xvda\"]]");
    keys[n_keys++] = xstrdup("[\"Vbd\",[\"" VM_A "\",\"xvdb\"]]");
    missing = follower_wait_for(f, keys, n_keys);
    for (size_t i = 0; i < n_keys; i++)
        free(keys[i]);
    if (*missing)
        fail_msg("UPDATES.get never reported:%s (follower errors %d)",
                 missing, f->errors);
    free(missing);
    assert_int_equal(f->errors, 0);
    /* The changes came over several chained calls, not one call that
     * happened to return everything. */
    assert_true(f->calls >= 2);
    follower_stop(f);
    d->follower = NULL;

    daemon_shutdown_cleanly(d);
}

/* Whether barrier bid is in an UPDATES.get result; *keys_r gets its
 * Dynamic.id list (borrowed). */
static bool
find_barrier(yajl_val res, int64_t bid, yajl_val *keys_r)
{
    yajl_val bars = json_array_at(res, 0);

    assert_true(json_is_array(bars));
    for (size_t i = 0; i < json_array_len(bars); i++) {
        yajl_val b = json_array_at(bars, i);
        int64_t id;

        assert_int_equal(json_array_len(b), 2);
        assert_int_equal(json_to_int64(json_array_at(b, 0), &id), 0);
        if (id == bid) {
            *keys_r = json_array_at(b, 1);
            return true;
        }
    }
    return false;
}

static bool
keys_contain(yajl_val keys, const char *key_json)
{
    yajl_val want = NULL;
    bool found = false;

    assert_int_equal(json_parse(key_json, strlen(key_json), &want), 0);
    for (size_t i = 0; i < json_array_len(keys) && !found; i++)
        found = json_equal(json_array_at(keys, i), want);
    yajl_tree_free(want);
    return found;
}

static void
test_api_barrier_snapshots_vm_keys_and_is_removed(void **state)
{
    struct daemon *d = *state;
    yajl_val t, keys = NULL;
    int64_t from;
    char *p, *tag;

    add_vm(d, VM_A);
    add_two_vbds(d, VM_A);
    add_vm(d, VM_B);
    /* A task exists for VM_A; barriers leave tasks out. */
    p = call_task(d, "VM.start", "{\"debug_info\":\"test\",\"id\":\""
                  VM_A "\",\"paused\":true}");
    task_wait_completed(d, p);
    free(p);

    t = call_ok(d, "UPDATES.last_id", "{\"debug_info\":\"test\"}");
    assert_int_equal(json_to_int64(t, &from), 0);
    yajl_tree_free(t);
    call_unit(d, "UPDATES.inject_barrier", "{\"debug_info\":\"test\","
              "\"vm_id\":\"" VM_A "\",\"id\":7}");

    p = xasprintf("{\"debug_info\":\"test\",\"last_id\":%lld,\"timeout\":1}",
                  (long long)from);
    t = call_ok(d, "UPDATES.get", p);
    assert_true(find_barrier(t, 7, &keys));
    assert_int_equal(json_array_len(keys), 3);
    assert_true(keys_contain(keys, "[\"Vm\",\"" VM_A "\"]"));
    assert_true(keys_contain(keys, "[\"Vbd\",[\"" VM_A "\",\"xvda\"]]"));
    assert_true(keys_contain(keys, "[\"Vbd\",[\"" VM_A "\",\"xvdb\"]]"));
    assert_false(keys_contain(keys, "[\"Vm\",\"" VM_B "\"]"));
    yajl_tree_free(t);

    call_unit(d, "UPDATES.remove_barrier",
              "{\"debug_info\":\"test\",\"id\":7}");
    t = call_ok(d, "UPDATES.get", p);
    assert_false(find_barrier(t, 7, &keys));
    yajl_tree_free(t);
    /* Removing it twice is an error, and a barrier needs a valid VM id. */
    tag = call_err(d, "UPDATES.remove_barrier",
                   "{\"debug_info\":\"test\",\"id\":7}");
    free(tag);
    tag = call_err(d, "UPDATES.inject_barrier", "{\"debug_info\":\"test\","
                   "\"vm_id\":\"../x\",\"id\":8}");
    free(tag);
    t = call_ok(d, "UPDATES.get", p);
    assert_false(find_barrier(t, 8, &keys));
    yajl_tree_free(t);
    free(p);

    daemon_shutdown_cleanly(d);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_api_lifecycle_with_hotplug_is_seen_in_updates,
            daemon_start, daemon_stop),
        cmocka_unit_test_setup_teardown(
            test_api_barrier_snapshots_vm_keys_and_is_removed,
            daemon_start, daemon_stop),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
