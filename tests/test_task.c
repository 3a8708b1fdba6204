/* SPDX-License-Identifier: LGPL-2.1-only */
/* Tests for xenops/task.c: tasks, subtasks, cancellation, Task.t JSON. */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "task.h"
#include "task_priv.h"
#include "testutil.h"
#include "updates.h"
#include "updates_priv.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

/* A deadlock guard for blocking waits, never expected to elapse. */
#define GUARD_S 60.0

static yajl_val
parse(const char *text)
{
    yajl_val v = NULL;

    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    return v;
}

static yajl_val
stat_tree(struct task *t)
{
    char *text = task_stat_json(t);
    yajl_val v = parse(text);

    free(text);
    return v;
}

static void
assert_json_eq(yajl_val v, const char *expected)
{
    assert_true(testutil_json_tree_same(v, expected));
}

static yajl_val
member(yajl_val obj, const char *key)
{
    yajl_val v = json_get(obj, key);

    assert_non_null(v);
    return v;
}

static void
test_task_ids_increment_from_zero(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *a = task_create(reg, "a");
    struct task *b = task_create(reg, "b");
    struct task *c;

    assert_string_equal(task_id(a), "0");
    assert_string_equal(task_id(b), "1");
    assert_string_equal(task_dbg(b), "b");
    assert_int_equal(task_destroy(reg, "0"), 0);
    c = task_create(reg, "c");
    assert_string_equal(task_id(c), "2");
    task_unref(a);
    task_unref(b);
    task_unref(c);
    task_registry_free(reg);
}

static void
test_task_stat_pending_shape(void **state)
{
    static const char *const keys[] = { "id", "dbg", "ctime", "state",
                                        "subtasks", "debug_info",
                                        "backtrace", "cancellable" };
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "dbg text");
    yajl_val v, di;

    task_set_progress(t, 0.25);
    v = stat_tree(t);
    assert_true(YAJL_IS_OBJECT(v));
    assert_int_equal(v->u.object.len, 8);
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(v->u.object.keys[i], keys[i]);
    assert_string_equal(member(v, "id")->u.string, "0");
    assert_string_equal(member(v, "dbg")->u.string, "dbg text");
    assert_true(YAJL_IS_DOUBLE(member(v, "ctime")));
    assert_true(YAJL_GET_DOUBLE(member(v, "ctime")) > 1e9);
    assert_json_eq(member(v, "state"), "[\"Pending\", 0.25]");
    assert_json_eq(member(v, "subtasks"), "{}");
    di = member(v, "debug_info");
    assert_int_equal(di->u.object.len, 2);
    assert_string_equal(member(di, "cancel_points_seen")->u.string, "0");
    assert_string_equal(member(di, "timeline")->u.string, "[]");
    assert_string_equal(member(v, "backtrace")->u.string, "()");
    assert_true(YAJL_IS_TRUE(member(v, "cancellable")));
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_stat_completed_with_result(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    yajl_val v, st, body;

    task_complete(t, "{\"downtime\":[1.5,\"ms\"]}");
    v = stat_tree(t);
    st = member(v, "state");
    assert_int_equal(json_array_len(st), 2);
    assert_string_equal(json_array_at(st, 0)->u.string, "Completed");
    body = json_array_at(st, 1);
    assert_int_equal(body->u.object.len, 2);
    assert_true(YAJL_IS_NUMBER(member(body, "duration")));
    assert_true(YAJL_GET_DOUBLE(member(body, "duration")) >= 0);
    assert_json_eq(member(body, "result"), "{\"downtime\":[1.5,\"ms\"]}");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_stat_completed_without_result(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    yajl_val v, body;

    task_complete(t, NULL);
    v = stat_tree(t);
    body = json_array_at(member(v, "state"), 1);
    assert_int_equal(body->u.object.len, 1);
    assert_non_null(json_get(body, "duration"));
    assert_null(json_get(body, "result"));
    assert_false(task_is_pending(t));
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_stat_failed_carries_error(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    yajl_val v;

    task_fail(t, xstrdup("[\"Storage_backend_error\","
                         "[\"SR_BACKEND_FAILURE_46\",[\"\",\"busy\",\"\"]]]"));
    v = stat_tree(t);
    assert_json_eq(member(v, "state"),
                   "[\"Failed\",[\"Storage_backend_error\","
                   "[\"SR_BACKEND_FAILURE_46\",[\"\",\"busy\",\"\"]]]]");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_first_final_state_wins(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    yajl_val v;

    task_fail(t, xstrdup("[\"Internal_error\",\"first\"]"));
    task_complete(t, "1");
    task_fail(t, xstrdup("[\"Internal_error\",\"second\"]"));
    task_set_progress(t, 0.5);
    v = stat_tree(t);
    assert_json_eq(member(v, "state"),
                   "[\"Failed\",[\"Internal_error\",\"first\"]]");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_invalid_result_or_error_becomes_internal_error(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *a = task_create(reg, "x");
    struct task *b = task_create(reg, "y");
    yajl_val v, st;

    task_complete(a, "{not json");
    task_fail(b, xstrdup("[unterminated"));
    v = stat_tree(a);
    st = member(v, "state");
    assert_string_equal(json_array_at(st, 0)->u.string, "Failed");
    assert_string_equal(json_array_at(json_array_at(st, 1), 0)->u.string,
                        "Internal_error");
    yajl_tree_free(v);
    v = stat_tree(b);
    st = member(v, "state");
    assert_string_equal(json_array_at(json_array_at(st, 1), 0)->u.string,
                        "Internal_error");
    yajl_tree_free(v);
    task_unref(a);
    task_unref(b);
    task_registry_free(reg);
}

static void
test_task_subtask_names_made_unique(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    int i0 = task_subtask_begin(t, "VBD_attach xvda");
    int i1 = task_subtask_begin(t, "VBD_attach xvda");
    int i2 = task_subtask_begin(t, "VBD_attach xvda");
    yajl_val v, subs;

    task_subtask_end(t, i0, 0);
    task_subtask_end(t, i1, 0);
    task_subtask_end(t, i2, 0);
    v = stat_tree(t);
    subs = member(v, "subtasks");
    assert_int_equal(subs->u.object.len, 3);
    assert_string_equal(subs->u.object.keys[0], "VBD_attach xvda");
    assert_string_equal(subs->u.object.keys[1], "VBD_attach xvda #2");
    assert_string_equal(subs->u.object.keys[2], "VBD_attach xvda #3");
    for (size_t i = 0; i < 3; i++) {
        yajl_val st = subs->u.object.values[i];
        yajl_val body = json_array_at(st, 1);

        assert_string_equal(json_array_at(st, 0)->u.string, "Completed");
        assert_int_equal(body->u.object.len, 1);
        assert_non_null(json_get(body, "duration"));
    }
    yajl_tree_free(v);
    task_unref(t);

    /* A literal name that looks like a generated one is not reused. */
    t = task_create(reg, "y");
    task_subtask_begin(t, "A");
    task_subtask_begin(t, "A #2");
    task_subtask_begin(t, "A");
    v = stat_tree(t);
    subs = member(v, "subtasks");
    assert_int_equal(subs->u.object.len, 3);
    assert_string_equal(subs->u.object.keys[2], "A #3");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_subtask_failure_carries_wire_error(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    int ok = task_subtask_begin(t, "VM_create");
    int bad = task_subtask_begin(t, "VBD_attach");
    int rc;
    yajl_val v, subs, tl;

    task_subtask_begin(t, "VM_unpause");  /* left running */
    task_subtask_end(t, ok, 0);
    rc = xo_err_does_not_exist("VDI", "sr/vdi");
    task_subtask_end(t, bad, rc);
    v = stat_tree(t);
    subs = member(v, "subtasks");
    assert_json_eq(member(subs, "VBD_attach"),
                   "[\"Failed\",[\"Does_not_exist\",[\"VDI\",\"sr/vdi\"]]]");
    assert_json_eq(member(subs, "VM_unpause"), "[\"Pending\",0.0]");

    /* The timeline: start order, offsets from creation, statuses. */
    tl = parse(member(member(v, "debug_info"), "timeline")->u.string);
    assert_int_equal(json_array_len(tl), 3);
    const char *names[] = { "VM_create", "VBD_attach", "VM_unpause" };
    const char *status[] = { "ok", "failed", "running" };
    double prev = 0;
    for (size_t i = 0; i < 3; i++) {
        yajl_val e = json_array_at(tl, i);
        double start = YAJL_GET_DOUBLE(json_array_at(e, 1));

        assert_int_equal(json_array_len(e), 4);
        assert_string_equal(json_array_at(e, 0)->u.string, names[i]);
        assert_true(start >= prev);
        assert_true(YAJL_GET_DOUBLE(json_array_at(e, 2)) >= 0);
        assert_string_equal(json_array_at(e, 3)->u.string, status[i]);
        prev = start;
    }
    yajl_tree_free(tl);
    yajl_tree_free(v);
    /* Ending an unknown or finished subtask changes nothing. */
    task_subtask_end(t, 17, 0);
    task_subtask_end(t, ok, XO_EFAIL);
    v = stat_tree(t);
    assert_string_equal(json_array_at(member(member(v, "subtasks"),
                                             "VM_create"), 0)->u.string,
                        "Completed");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
count_cb(void *opaque)
{
    (*(int *)opaque)++;
}

static void
test_task_cancel_cancellable(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    int calls = 0;
    char *err;

    task_on_cancel(t, count_cb, &calls);
    assert_int_equal(task_check_cancel(t), 0);
    assert_false(*task_cancel_flag(t));
    assert_int_equal(task_cancel(reg, "0"), 0);
    assert_true(task_is_cancelling(t));
    assert_true(*task_cancel_flag(t));
    assert_int_equal(calls, 1);
    assert_int_equal(task_check_cancel(t), XO_ECANCELLED);
    err = xo_err_take_json(XO_ECANCELLED);
    assert_string_equal(err, "[\"Cancelled\",\"0\"]");
    free(err);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_cancel_not_cancellable_is_noop(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    int calls = 0;
    yajl_val v;

    task_on_cancel(t, count_cb, &calls);
    task_set_cancellable(t, false);
    assert_int_equal(task_cancel(reg, "0"), 0);
    assert_false(task_is_cancelling(t));
    assert_int_equal(calls, 0);
    assert_int_equal(task_check_cancel(t), 0);
    v = stat_tree(t);
    assert_true(YAJL_IS_FALSE(member(v, "cancellable")));
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_cancel_callbacks_late_and_removed(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    int kept = 0, removed = 0, late = 0;

    task_on_cancel(t, count_cb, &kept);
    task_on_cancel(t, count_cb, &removed);
    task_on_cancel_remove(t, count_cb, &removed);
    assert_int_equal(task_cancel(reg, "0"), 0);
    assert_int_equal(kept, 1);
    assert_int_equal(removed, 0);
    /* Registered after the request: runs at once. */
    task_on_cancel(t, count_cb, &late);
    assert_int_equal(late, 1);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_unknown_id_not_found(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    const char *bad[] = { "99", "abc", "00", "-0", "", "1x" };
    char *err;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(task_find(reg, bad[i]));
        assert_int_equal(task_cancel(reg, bad[i]), XO_ENOTFOUND);
        assert_int_equal(task_destroy(reg, bad[i]), XO_ENOTFOUND);
        assert_int_equal(task_destroy_on_finish(reg, bad[i]), XO_ENOTFOUND);
    }
    assert_int_equal(task_cancel(reg, "99"), XO_ENOTFOUND);
    err = xo_err_take_json(XO_ENOTFOUND);
    assert_string_equal(err, "[\"Does_not_exist\",[\"task\",\"99\"]]");
    free(err);
    assert_false(task_is_cancelling(t));
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_check_cancel_counts_points(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    yajl_val v;

    for (int i = 0; i < 3; i++)
        assert_int_equal(task_check_cancel(t), 0);
    v = stat_tree(t);
    assert_string_equal(
        member(member(v, "debug_info"), "cancel_points_seen")->u.string, "3");
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_cancel_trigger_fires_at_nth_point(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *other, *hit, *next;
    char *err;

    task_registry_set_cancel_trigger(reg, "op-dbg", 3);
    other = task_create(reg, "other-dbg");
    for (int i = 0; i < 5; i++)
        assert_int_equal(task_check_cancel(other), 0);

    /* Only the first line of dbg counts (xapi appends trace context). */
    hit = task_create(reg, "op-dbg\ntraceparent=00-abc");
    assert_int_equal(task_check_cancel(hit), 0);
    assert_int_equal(task_check_cancel(hit), 0);
    assert_int_equal(task_check_cancel(hit), XO_ECANCELLED);
    err = xo_err_take_json(XO_ECANCELLED);
    assert_string_equal(err, "[\"Cancelled\",\"1\"]");
    free(err);
    assert_true(task_is_cancelling(hit));
    assert_int_equal(task_check_cancel(hit), XO_ECANCELLED);
    xo_err_clear();

    /* The trigger is used up by the first matching task. */
    next = task_create(reg, "op-dbg");
    for (int i = 0; i < 5; i++)
        assert_int_equal(task_check_cancel(next), 0);
    task_unref(other);
    task_unref(hit);
    task_unref(next);
    task_registry_free(reg);
}

static void
test_task_destroy_forgets_task(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    struct task *found = task_find(reg, "0");
    char *text;

    assert_ptr_equal(found, t);
    task_unref(found);
    assert_int_equal(task_destroy(reg, "0"), 0);
    assert_null(task_find(reg, "0"));
    assert_int_equal(task_destroy(reg, "0"), XO_ENOTFOUND);
    xo_err_clear();
    assert_int_equal(task_cancel(reg, "0"), XO_ENOTFOUND);
    xo_err_clear();
    /* The creator's reference stays usable. */
    task_complete(t, NULL);
    text = task_stat_json(t);
    assert_non_null(strstr(text, "Completed"));
    free(text);
    text = task_list_json(reg);
    assert_string_equal(text, "[]");
    free(text);
    task_unref(t);
    task_registry_free(reg);
}

static void
test_task_destroy_on_finish(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *pending = task_create(reg, "x");
    struct task *done = task_create(reg, "y");

    assert_int_equal(task_destroy_on_finish(reg, "0"), 0);
    assert_non_null(pending);
    task_unref(task_find(reg, "0"));
    task_fail(pending, xstrdup("[\"Internal_error\",\"x\"]"));
    assert_null(task_find(reg, "0"));

    task_complete(done, NULL);
    assert_int_equal(task_destroy_on_finish(reg, "1"), 0);
    assert_null(task_find(reg, "1"));
    task_unref(pending);
    task_unref(done);
    task_registry_free(reg);
}

struct waiter {
    struct task *t;
    int rc;
};

static void *
waiter_main(void *arg)
{
    struct waiter *w = arg;

    w->rc = task_wait(w->t, GUARD_S);
    return NULL;
}

static void
test_task_wait_wakes_on_completion(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    struct waiter w = { .t = t, .rc = 1 };
    pthread_t th;

    assert_int_equal(task_wait(t, 0.01), XO_ETIMEDOUT);
    xo_err_clear();
    assert_int_equal(pthread_create(&th, NULL, waiter_main, &w), 0);
    /* Handshake: the waiter is blocked before the task completes. */
    for (int i = 0; i < GUARD_S * 1000 && task_waiters(t) < 1; i++)
        usleep(1000);
    assert_int_equal(task_waiters(t), 1);
    task_complete(t, NULL);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
    assert_int_equal(task_wait(t, 0), 0);
    task_unref(t);
    task_registry_free(reg);
}

#define SUB_THREADS 8
#define SUBS_PER_THREAD 200

static void *
subtask_main(void *arg)
{
    struct task *t = arg;

    for (int i = 0; i < SUBS_PER_THREAD; i++) {
        int idx = task_subtask_begin(t, "VBD_attach");

        task_subtask_end(t, idx, i % 10 == 0 ? XO_EIO : 0);
    }
    return NULL;
}

static void
test_task_concurrent_subtasks(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");
    pthread_t th[SUB_THREADS];
    yajl_val v, subs;
    size_t failed = 0;

    for (int i = 0; i < SUB_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, subtask_main, t), 0);
    for (int i = 0; i < SUB_THREADS; i++)
        pthread_join(th[i], NULL);
    v = stat_tree(t);
    subs = member(v, "subtasks");
    /* Unique names: no two subtasks collapsed into one key. */
    assert_int_equal(subs->u.object.len, SUB_THREADS * SUBS_PER_THREAD);
    for (size_t i = 0; i < subs->u.object.len; i++) {
        yajl_val st = subs->u.object.values[i];

        if (strcmp(json_array_at(st, 0)->u.string, "Failed") == 0) {
            assert_json_eq(json_array_at(st, 1), "\"IO_error\"");
            failed++;
        } else {
            assert_string_equal(json_array_at(st, 0)->u.string, "Completed");
        }
    }
    assert_int_equal(failed, SUB_THREADS * SUBS_PER_THREAD / 10);
    yajl_tree_free(v);
    task_unref(t);
    task_registry_free(reg);
}

/* The ids of the next UPDATES batch after *from, as text; advances *from. */
static char *
next_updates(struct updates *u, int64_t *from)
{
    char *text = updates_get(u, *from, 0, NULL);
    yajl_val v = parse(text);
    char *ids = json_tree_to_string(json_array_at(v, 1));

    *from = YAJL_GET_INTEGER(json_array_at(v, 2));
    yajl_tree_free(v);
    free(text);
    return ids;
}

static void
assert_next_updates(struct updates *u, int64_t *from, const char *expected)
{
    char *ids = next_updates(u, from);

    assert_string_equal(ids, expected);
    free(ids);
}

static void
test_task_signals_updates(void **state)
{
    struct updates *u = updates_new();
    struct task_registry *reg = task_registry_new(u);
    struct task *t = task_create(reg, "x");
    int64_t from = -1;
    int idx;

    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    task_set_progress(t, 0.005);  /* below the threshold */
    assert_next_updates(u, &from, "[]");
    task_set_progress(t, 0.5);
    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    idx = task_subtask_begin(t, "VM_create");
    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    task_subtask_end(t, idx, 0);
    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    task_complete(t, NULL);
    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    task_destroy(reg, "0");
    assert_next_updates(u, &from, "[[\"Task\",\"0\"]]");
    /* A destroyed task no longer signals. */
    task_subtask_begin(t, "late");
    assert_next_updates(u, &from, "[]");
    task_unref(t);
    task_registry_free(reg);
    updates_free(u);
}

struct updates_waiter {
    struct updates *u;
    struct task *t;
    char *result;
};

static void *
updates_waiter_main(void *arg)
{
    struct updates_waiter *w = arg;

    w->result = updates_get(w->u, updates_last_id(w->u), GUARD_S,
                            task_cancel_flag(w->t));
    return NULL;
}

static void
test_task_cancel_wakes_updates_get(void **state)
{
    struct updates *u = updates_new();
    struct task_registry *reg = task_registry_new(u);
    struct task *t = task_create(reg, "x");
    struct updates_waiter w = { .u = u, .t = t };
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, updates_waiter_main, &w), 0);
    /* Handshake: the getter is blocked before the cancel. */
    for (int i = 0; i < GUARD_S * 1000 && updates_waiters(u) < 1; i++)
        usleep(1000);
    assert_int_equal(updates_waiters(u), 1);
    assert_int_equal(task_cancel(reg, "0"), 0);
    pthread_join(th, NULL);
    assert_string_equal(w.result, "[[],[],1]");
    free(w.result);
    task_unref(t);
    task_registry_free(reg);
    updates_free(u);
}

static void
test_task_list_json(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *a = task_create(reg, "a");
    struct task *b = task_create(reg, "b");
    char *text = task_list_json(reg);
    yajl_val v = parse(text);

    assert_int_equal(json_array_len(v), 2);
    assert_string_equal(member(json_array_at(v, 0), "id")->u.string, "0");
    assert_string_equal(member(json_array_at(v, 1), "dbg")->u.string, "b");
    yajl_tree_free(v);
    free(text);
    task_unref(a);
    task_unref(b);
    task_registry_free(reg);
}

static void
test_task_outlives_registry(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "x");

    task_destroy_on_finish(reg, "0");
    task_registry_free(reg);
    /* A worker still finishing the task after shutdown. */
    task_subtask_end(t, task_subtask_begin(t, "VM_destroy"), 0);
    task_complete(t, NULL);
    assert_false(task_is_pending(t));
    task_unref(t);
}

/* debug_info carries entries set with task_set_debug, replaced by key. */
static void
test_task_debug_entries_in_stat(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct task *t = task_create(reg, "dbg");
    yajl_val v = NULL;
    char *json;

    task_set_debug(t, "migration_bytes_remaining", "100");
    task_set_debug(t, "migration_bytes_remaining", "42");
    task_set_debug(t, "migration_round", "3");
    json = task_stat_json(t);
    assert_int_equal(json_parse(json, strlen(json), &v), 0);
    assert_string_equal(json_get_str(json_get(v, "debug_info"),
                                     "migration_bytes_remaining"), "42");
    assert_string_equal(json_get_str(json_get(v, "debug_info"),
                                     "migration_round"), "3");
    assert_non_null(json_get_str(json_get(v, "debug_info"), "timeline"));
    yajl_tree_free(v);
    free(json);
    task_unref(t);
    task_registry_free(reg);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_task_debug_entries_in_stat),
        cmocka_unit_test(test_task_ids_increment_from_zero),
        cmocka_unit_test(test_task_stat_pending_shape),
        cmocka_unit_test(test_task_stat_completed_with_result),
        cmocka_unit_test(test_task_stat_completed_without_result),
        cmocka_unit_test(test_task_stat_failed_carries_error),
        cmocka_unit_test(test_task_first_final_state_wins),
        cmocka_unit_test(
            test_task_invalid_result_or_error_becomes_internal_error),
        cmocka_unit_test(test_task_subtask_names_made_unique),
        cmocka_unit_test(test_task_subtask_failure_carries_wire_error),
        cmocka_unit_test(test_task_cancel_cancellable),
        cmocka_unit_test(test_task_cancel_not_cancellable_is_noop),
        cmocka_unit_test(test_task_cancel_callbacks_late_and_removed),
        cmocka_unit_test(test_task_unknown_id_not_found),
        cmocka_unit_test(test_task_check_cancel_counts_points),
        cmocka_unit_test(test_task_cancel_trigger_fires_at_nth_point),
        cmocka_unit_test(test_task_destroy_forgets_task),
        cmocka_unit_test(test_task_destroy_on_finish),
        cmocka_unit_test(test_task_wait_wakes_on_completion),
        cmocka_unit_test(test_task_concurrent_subtasks),
        cmocka_unit_test(test_task_signals_updates),
        cmocka_unit_test(test_task_cancel_wakes_updates_get),
        cmocka_unit_test(test_task_list_json),
        cmocka_unit_test(test_task_outlives_registry),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
