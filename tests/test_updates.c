/* SPDX-License-Identifier: LGPL-2.1-only */
/* Tests for xenops/updates.c: the UPDATES stream. */

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

#include "updates.h"
#include "updates_priv.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

#define VM_A "9c0f7c55-1111-2222-3333-444455556666"
#define VM_B "0b1c7c55-1111-2222-3333-444455556666"
/* A deadlock guard for blocking gets, never expected to elapse. */
#define GUARD_S 60.0

static void
assert_get(struct updates *u, int64_t from, const char *expected)
{
    char *got = updates_get(u, from, 0, NULL);

    assert_string_equal(got, expected);
    free(got);
}

static yajl_val
get_tree(struct updates *u, int64_t from)
{
    char *text = updates_get(u, from, 0, NULL);
    yajl_val v = NULL;

    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    free(text);
    return v;
}

static void
test_updates_get_orders_by_event_id(void **state)
{
    struct updates *u = updates_new();

    updates_add(u, UPDATES_VM, "u", NULL);
    updates_add(u, UPDATES_VBD, "u", "xvda");
    updates_add(u, UPDATES_TASK, "42", NULL);
    updates_add(u, UPDATES_VM, "u", NULL);
    assert_get(u, -1,
               "[[],[[\"Vbd\",[\"u\",\"xvda\"]],[\"Task\",\"42\"],"
               "[\"Vm\",\"u\"]],4]");
    updates_free(u);
}

static void
test_updates_only_latest_change_per_key(void **state)
{
    struct updates *u = updates_new();

    for (int i = 0; i < 5; i++) {
        updates_add(u, UPDATES_VIF, "u", "0");
        updates_add(u, UPDATES_VIF, "u", "1");
    }
    assert_get(u, -1, "[[],[[\"Vif\",[\"u\",\"0\"]],[\"Vif\",[\"u\",\"1\"]]],"
                      "10]");
    updates_free(u);
}

static void
test_updates_get_from_filters_older_events(void **state)
{
    struct updates *u = updates_new();

    updates_add(u, UPDATES_VM, "a", NULL);   /* 1 */
    updates_add(u, UPDATES_VM, "b", NULL);   /* 2 */
    updates_add(u, UPDATES_VM, "c", NULL);   /* 3 */
    assert_get(u, 0, "[[],[[\"Vm\",\"a\"],[\"Vm\",\"b\"],[\"Vm\",\"c\"]],3]");
    assert_get(u, 1, "[[],[[\"Vm\",\"b\"],[\"Vm\",\"c\"]],3]");
    assert_get(u, 2, "[[],[[\"Vm\",\"c\"]],3]");
    updates_add(u, UPDATES_VM, "a", NULL);   /* 4 */
    assert_get(u, 3, "[[],[[\"Vm\",\"a\"]],4]");
    assert_int_equal(updates_last_id(u), 4);
    updates_free(u);
}

static void
test_updates_timeout_returns_from_unchanged(void **state)
{
    struct updates *u = updates_new();
    char *got;

    got = updates_get(u, -1, 0.01, NULL);
    assert_string_equal(got, "[[],[],-1]");
    free(got);
    updates_add(u, UPDATES_VM, "a", NULL);
    got = updates_get(u, 1, 0.01, NULL);
    assert_string_equal(got, "[[],[],1]");
    free(got);
    /* A from ahead of the counter waits, then answers it unchanged. */
    got = updates_get(u, 7, 0, NULL);
    assert_string_equal(got, "[[],[],7]");
    free(got);
    updates_free(u);
}

struct getter {
    struct updates *u;
    int64_t from;
    double timeout;
    const atomic_bool *cancel;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool started;
    char *result;
};

static void *
getter_main(void *arg)
{
    struct getter *g = arg;

    pthread_mutex_lock(&g->lock);
    g->started = true;
    pthread_cond_signal(&g->cond);
    pthread_mutex_unlock(&g->lock);
    g->result = updates_get(g->u, g->from, g->timeout, g->cancel);
    return NULL;
}

/* Start a getter (which has no news yet) and wait until it is blocked
 * in updates_get. */
static void
getter_start(struct getter *g, pthread_t *th)
{
    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->cond, NULL);
    assert_int_equal(pthread_create(th, NULL, getter_main, g), 0);
    pthread_mutex_lock(&g->lock);
    while (!g->started)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
    for (int i = 0; i < GUARD_S * 1000 && updates_waiters(g->u) < 1; i++)
        usleep(1000);
    assert_int_equal(updates_waiters(g->u), 1);
}

static void
getter_join(struct getter *g, pthread_t th)
{
    pthread_join(th, NULL);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
}

static void
test_updates_blocking_get_wakes_on_add(void **state)
{
    struct updates *u = updates_new();
    struct getter g = { .u = u, .timeout = GUARD_S };
    pthread_t th;

    updates_add(u, UPDATES_VM, "a", NULL);
    g.from = updates_last_id(u);
    getter_start(&g, &th);
    updates_add(u, UPDATES_VBD, "a", "xvdb");
    getter_join(&g, th);
    assert_string_equal(g.result, "[[],[[\"Vbd\",[\"a\",\"xvdb\"]]],2]");
    free(g.result);
    updates_free(u);
}

static void
test_updates_cancel_and_wake_unblock_get(void **state)
{
    struct updates *u = updates_new();
    atomic_bool cancel = false;
    struct getter g = { .u = u, .from = 0, .timeout = GUARD_S,
                        .cancel = &cancel };
    pthread_t th;

    getter_start(&g, &th);
    cancel = true;
    updates_wake(u);
    getter_join(&g, th);
    assert_string_equal(g.result, "[[],[],0]");
    free(g.result);
    /* Something to report wins over the cancel flag. */
    updates_add(u, UPDATES_VM, "a", NULL);
    g.result = updates_get(u, 0, GUARD_S, &cancel);
    assert_string_equal(g.result, "[[],[[\"Vm\",\"a\"]],1]");
    free(g.result);
    updates_free(u);
}

static void
test_updates_barrier_snapshots_only_that_vm(void **state)
{
    struct updates *u = updates_new();
    int64_t before;

    updates_add(u, UPDATES_VBD, VM_A, "xvda");
    updates_add(u, UPDATES_VM, VM_A, NULL);
    updates_add(u, UPDATES_VIF, VM_A, "0");
    updates_add(u, UPDATES_VBD, VM_A, "xvdc");
    updates_remove(u, UPDATES_VBD, VM_A, "xvdc");
    updates_add(u, UPDATES_TASK, VM_A, NULL);
    updates_add(u, UPDATES_VM, VM_B, NULL);
    updates_add(u, UPDATES_VBD, VM_B, "xvda");
    before = updates_last_id(u);
    updates_inject_barrier(u, VM_A, 3);
    assert_int_equal(updates_last_id(u), before + 1);

    yajl_val v = get_tree(u, before);
    yajl_val expect = NULL;
    const char *want =
        "[[[3,[[\"Vm\",\"" VM_A "\"],[\"Vbd\",[\"" VM_A "\",\"xvda\"]],"
        "[\"Vif\",[\"" VM_A "\",\"0\"]]]]],[],9]";

    assert_int_equal(json_parse(want, strlen(want), &expect), 0);
    assert_true(json_equal(v, expect));
    yajl_tree_free(v);
    yajl_tree_free(expect);

    /* Not returned to a consumer that already saw the injection. */
    assert_get(u, before + 1, "[[],[],9]");
    updates_free(u);
}

static void
test_updates_barriers_in_injection_order(void **state)
{
    struct updates *u = updates_new();
    int64_t mid;

    updates_add(u, UPDATES_VM, "a", NULL);
    updates_add(u, UPDATES_VM, "b", NULL);
    updates_inject_barrier(u, "b", 20);
    mid = updates_last_id(u);
    updates_inject_barrier(u, "a", 10);
    assert_get(u, -1, "[[[20,[[\"Vm\",\"b\"]]],[10,[[\"Vm\",\"a\"]]]],"
                      "[[\"Vm\",\"a\"],[\"Vm\",\"b\"]],4]");
    assert_get(u, mid, "[[[10,[[\"Vm\",\"a\"]]]],[],4]");
    /* A VM without entries gets an empty snapshot. */
    updates_inject_barrier(u, "c", 30);
    assert_get(u, 4, "[[[30,[]]],[],5]");
    updates_free(u);
}

static void
test_updates_barrier_wakes_blocking_get(void **state)
{
    struct updates *u = updates_new();
    struct getter g = { .u = u, .timeout = GUARD_S };
    pthread_t th;

    updates_add(u, UPDATES_VM, "a", NULL);
    g.from = 1;
    getter_start(&g, &th);
    updates_inject_barrier(u, "a", 5);
    getter_join(&g, th);
    assert_string_equal(g.result, "[[[5,[[\"Vm\",\"a\"]]]],[],2]");
    free(g.result);
    updates_free(u);
}

static void
test_updates_remove_barrier(void **state)
{
    struct updates *u = updates_new();
    char *err;

    updates_add(u, UPDATES_VM, "a", NULL);
    updates_inject_barrier(u, "a", 7);
    updates_inject_barrier(u, "a", 8);
    assert_int_equal(updates_remove_barrier(u, 7), 0);
    assert_get(u, -1, "[[[8,[[\"Vm\",\"a\"]]]],[[\"Vm\",\"a\"]],3]");
    assert_int_equal(updates_remove_barrier(u, 7), XO_ENOTFOUND);
    err = xo_err_take_json(XO_ENOTFOUND);
    assert_string_equal(err, "[\"Does_not_exist\",[\"barrier\",\"7\"]]");
    free(err);
    updates_free(u);
}

static void
test_updates_removed_key_reported_as_tombstone(void **state)
{
    struct updates *u = updates_new();

    updates_add(u, UPDATES_VM, "a", NULL);
    updates_add(u, UPDATES_TASK, "0", NULL);
    updates_remove(u, UPDATES_VM, "a", NULL);
    assert_get(u, 2, "[[],[[\"Vm\",\"a\"]],3]");
    assert_get(u, -1, "[[],[[\"Task\",\"0\"],[\"Vm\",\"a\"]],3]");
    /* Re-adding revives the key under a new id. */
    updates_add(u, UPDATES_VM, "a", NULL);
    assert_get(u, 3, "[[],[[\"Vm\",\"a\"]],4]");
    updates_free(u);
}

static void
test_updates_tombstones_are_bounded(void **state)
{
    struct updates *u = updates_new();
    char name[32];
    yajl_val v, ids;

    updates_add(u, UPDATES_VM, "live", NULL);
    for (int i = 0; i < 100005; i++) {
        snprintf(name, sizeof(name), "%d", i);
        updates_remove(u, UPDATES_TASK, name, NULL);
    }
    v = get_tree(u, -1);
    ids = json_array_at(v, 1);
    /* The live key stays; only the oldest tombstones went. */
    assert_int_equal(json_array_len(ids), 100001);
    assert_string_equal(json_array_at(json_array_at(ids, 0), 1)->u.string,
                        "live");
    assert_string_equal(json_array_at(json_array_at(ids, 1), 1)->u.string,
                        "5");
    yajl_tree_free(v);
    updates_free(u);
}

static void
test_updates_refresh_vm_signals_vm_and_devices(void **state)
{
    struct updates *u = updates_new();
    const char *vbds[] = { "xvda", "xvdb" };
    const char *vifs[] = { "0" };

    updates_add(u, UPDATES_VM, "other", NULL);
    updates_refresh_vm(u, "a", vbds, 2, vifs, 1);
    assert_get(u, 1, "[[],[[\"Vm\",\"a\"],[\"Vbd\",[\"a\",\"xvda\"]],"
                     "[\"Vbd\",[\"a\",\"xvdb\"]],[\"Vif\",[\"a\",\"0\"]]],5]");
    updates_free(u);
}

static void
test_updates_bad_key_ignored(void **state)
{
    struct updates *u = updates_new();

    updates_add(u, UPDATES_VBD, "a", NULL);
    updates_add(u, UPDATES_VM, NULL, NULL);
    assert_int_equal(updates_last_id(u), 0);
    updates_free(u);
}

static void
test_updates_100k_keys(void **state)
{
    struct updates *u = updates_new();
    char dev[32];
    yajl_val v, ids, first;

    for (int i = 0; i < 100000; i++) {
        snprintf(dev, sizeof(dev), "d%d", i);
        updates_add(u, UPDATES_VBD, "a", dev);
    }
    /* Touch every other key once more: they move to the end. */
    for (int i = 0; i < 100000; i += 2) {
        snprintf(dev, sizeof(dev), "d%d", i);
        updates_add(u, UPDATES_VBD, "a", dev);
    }
    v = get_tree(u, -1);
    assert_int_equal(json_array_len(json_array_at(v, 1)), 100000);
    yajl_tree_free(v);

    v = get_tree(u, 100000);
    ids = json_array_at(v, 1);
    assert_int_equal(json_array_len(ids), 50000);
    first = json_array_at(json_array_at(ids, 0), 1);
    assert_string_equal(json_array_at(first, 1)->u.string, "d0");
    assert_int_equal(YAJL_GET_INTEGER(json_array_at(v, 2)), 150000);
    yajl_tree_free(v);
    updates_free(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_updates_get_orders_by_event_id),
        cmocka_unit_test(test_updates_only_latest_change_per_key),
        cmocka_unit_test(test_updates_get_from_filters_older_events),
        cmocka_unit_test(test_updates_timeout_returns_from_unchanged),
        cmocka_unit_test(test_updates_blocking_get_wakes_on_add),
        cmocka_unit_test(test_updates_cancel_and_wake_unblock_get),
        cmocka_unit_test(test_updates_barrier_snapshots_only_that_vm),
        cmocka_unit_test(test_updates_barriers_in_injection_order),
        cmocka_unit_test(test_updates_barrier_wakes_blocking_get),
        cmocka_unit_test(test_updates_remove_barrier),
        cmocka_unit_test(test_updates_removed_key_reported_as_tombstone),
        cmocka_unit_test(test_updates_tombstones_are_bounded),
        cmocka_unit_test(test_updates_refresh_vm_signals_vm_and_devices),
        cmocka_unit_test(test_updates_bad_key_ignored),
        cmocka_unit_test(test_updates_100k_keys),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
