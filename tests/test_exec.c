/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Executor and atom tests on the real simulator backend, an in-memory
 * store and the in-process SM test driver.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "atoms/atom.h"
#include "atoms/exec.h"
#include "atoms/expand.h"
#include "backend/backend.h"
#include "backend/sim/backend_sim.h"
#include "queue.h"
#include "sm/sm.h"
#include "sm/sm_testdrv.h"
#include "task.h"
#include "util/errors.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

#define VM "9c0f7c55-1111-2222-3333-444455556666"
#define TMP "9c0f7c55-1111-2222-3333-000000000001"
#define SR3 "5a3e0c3e-0000-4000-8000-000000000003"
#define SR1 "5a3e0c3e-0000-4000-8000-000000000001"

struct fx {
    struct vmextra_store *store;
    struct backend *b;
    struct sm *sm;
    struct sm_testdrv *v3, *v1;
    struct queue_pool *par, *nest;
    struct task_registry *tasks;
    struct exec_env env;
};

#define VM_JSON_FMT                                                       \
    "{\"id\":\"%s\",\"name\":\"t\",\"memory_static_max\":1048576,"        \
    "\"vcpus\":1,\"ty\":[\"PV\",{}]}"

static void
add_vm(struct fx *f, const char *id)
{
    struct vmextra_doc *doc = NULL;
    char *json = xasprintf(VM_JSON_FMT, id);
    const char *devs[] = { "xvda", "xvdb", "xvdc" };
    const char *srs[] = { SR3, SR3, SR1 };

    assert_int_equal(vmextra_doc_new(id, &doc), 0);
    vmextra_doc_set_vm(doc, json);
    for (int i = 0; i < 3; i++) {
        char *vbd = xasprintf("{\"id\":[\"%s\",\"%s\"],\"mode\":"
                              "\"ReadWrite\",\"backend\":[\"VDI\","
                              "\"%s/vdi-%s\"]}", id, devs[i], srs[i],
                              devs[i]);

        vmextra_doc_set_vbd(doc, devs[i], vbd);
        free(vbd);
    }
    assert_int_equal(vmextra_commit(f->store, doc), 0);
    vmextra_doc_free(doc);
    free(json);
}

static int
setup_n(void **state, int workers)
{
    struct fx *f = xcalloc(1, sizeof(*f));
    struct backend_sim_config sc = { 1 << 20, 0, 5 };

    assert_int_equal(vmextra_store_open("/nonexistent-unused", false,
                                        &f->store), 0);
    assert_int_equal(backend_sim_new(&sc, &f->b), 0);
    assert_int_equal(sm_new(&f->sm), 0);
    f->v3 = sm_testdrv_new("5.0");
    f->v1 = sm_testdrv_new("1.0");
    assert_int_equal(sm_register_sr(f->sm, SR3, &sm_testdrv_ops, f->v3), 0);
    assert_int_equal(sm_register_sr(f->sm, SR1, &sm_testdrv_ops, f->v1), 0);
    f->par = queue_pool_new("parallel", workers);
    f->nest = queue_pool_new("nested", workers);
    f->tasks = task_registry_new(NULL);
    f->env.store = f->store;
    f->env.backend = f->b;
    f->env.sm = f->sm;
    f->env.parallel_pool = f->par;
    f->env.nested_pool = f->nest;
    add_vm(f, VM);
    *state = f;
    return 0;
}

static int
setup(void **state)
{
    return setup_n(state, 2);
}

static int
setup_one_worker(void **state)
{
    return setup_n(state, 1);
}

static int
teardown(void **state)
{
    struct fx *f = *state;

    queue_pool_free(f->par);
    queue_pool_free(f->nest);
    task_registry_free(f->tasks);
    sm_free(f->sm);
    f->b->ops->destroy(f->b);
    vmextra_store_close(f->store);
    free(f);
    xo_err_clear();
    return 0;
}

static const struct expand_vbd vbds[] = {
    { "xvda", true, true, true, true },
    { "xvdb", true, true, true, true },
    { "xvdc", true, true, false, true },
};

static struct expand_vm
view(const char *id)
{
    struct expand_vm v = { id, vbds, 3, NULL, 0 };

    return v;
}

/* Run a tree as one operation; roll back on failure like the server. */
static int
run(struct fx *f, struct atom *a, bool legacy)
{
    struct task *t = task_create(f->tasks, "test");
    struct exec_op op;
    int rc;

    exec_op_init(&op, &f->env, t, legacy);
    rc = exec_run(&op, a);
    if (rc) {
        char *err = xo_err_take_json(rc);

        exec_rollback(&op);
        xo_err_set_json(rc, err);
    } else {
        exec_commit(&op);
    }
    exec_op_dispose(&op);
    task_unref(t);
    atom_free(a);
    return rc;
}

static int
power(struct fx *f, const char *vm)
{
    struct backend_vm_state st;

    assert_int_equal(f->b->ops->vm_get_state(f->b, vm, &st), 0);
    return (int)st.power;
}

static size_t
n_attached(struct fx *f, const char *vm)
{
    struct vmextra_doc *doc = NULL;
    size_t n;

    assert_int_equal(vmextra_load(f->store, vm, &doc), 0);
    n = doc->n_attached;
    vmextra_doc_free(doc);
    return n;
}

static bool
plugged(struct fx *f, const char *vm, const char *dev)
{
    struct backend_vbd_state st;

    assert_int_equal(f->b->ops->vbd_get_state(f->b, vm, dev, &st), 0);
    return st.plugged;
}

static void
start_and_stop(struct fx *f, bool legacy)
{
    struct expand_vm v = view(VM);

    assert_int_equal(run(f, expand_vm_start(&v, legacy, false), legacy), 0);
    assert_int_equal(power(f, VM), BACKEND_RUNNING);
    for (int i = 0; i < 3; i++)
        assert_true(plugged(f, VM, vbds[i].dev));
    assert_int_equal(sm_testdrv_active(f->v3), 2);
    assert_int_equal(sm_testdrv_active(f->v1), 1);
    assert_int_equal(run(f, expand_vm_poweroff(&v, legacy, -1), legacy), 0);
    assert_int_equal(power(f, VM), BACKEND_HALTED);
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    assert_int_equal(sm_testdrv_attached(f->v1), 0);
    assert_int_equal(n_attached(f, VM), 0);
}

static void
test_exec_start_stop_legacy(void **state)
{
    start_and_stop(*state, true);
}

static void
test_exec_start_stop_split(void **state)
{
    start_and_stop(*state, false);
}

/* A failure of the second disk leaves nothing attached or active and no
 * domain: the operation rolls back what it did. */
static void
fail_second_disk(struct fx *f, bool legacy, const char *command)
{
    struct expand_vm v = view(VM);
    char *err;

    assert_int_equal(sm_testdrv_fail(f->v3, command, "vdi-xvdb", 1), 0);
    assert_int_equal(run(f, expand_vm_start(&v, legacy, false), legacy),
                     XO_EBACKEND);
    err = xo_err_take_json(XO_EBACKEND);
    assert_non_null(strstr(err, "SR_BACKEND_FAILURE_46"));
    free(err);
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    assert_int_equal(sm_testdrv_active(f->v3), 0);
    assert_int_equal(sm_testdrv_attached(f->v1), 0);
    assert_int_equal(sm_testdrv_active(f->v1), 0);
    assert_int_equal(n_attached(f, VM), 0);
    assert_int_equal(power(f, VM), BACKEND_HALTED);
    /* And the VM starts cleanly afterwards. */
    start_and_stop(f, legacy);
}

static void
test_exec_failed_attach_rolls_back_split(void **state)
{
    fail_second_disk(*state, false, "attach");
}

static void
test_exec_failed_activate_rolls_back_split(void **state)
{
    fail_second_disk(*state, false, "activate");
}

static void
test_exec_failed_plug_rolls_back_legacy(void **state)
{
    fail_second_disk(*state, true, "activate");
}

static void
test_exec_activate_without_attach_is_an_error(void **state)
{
    struct fx *f = *state;
    struct atom *s = atom_new_group(ATOM_SERIAL, VM, "t");

    atom_add(s, atom_new(ATOM_VM_CREATE, VM));
    atom_add(s, atom_new_dev(ATOM_VBD_SET_ACTIVE, VM, "xvda", true));
    atom_add(s, atom_new_dev(ATOM_VBD_ACTIVATE, VM, "xvda", false));
    assert_int_equal(run(f, s, false), XO_EFAIL);
    xo_err_clear();
    assert_false(plugged(f, VM, "xvda"));
    assert_int_equal(sm_testdrv_active(f->v3), 0);
}

static void
test_exec_detach_without_record_is_fine(void **state)
{
    struct fx *f = *state;

    assert_int_equal(run(f, atom_new_dev(ATOM_VBD_DETACH, VM, "xvda",
                                         false), false), 0);
}

/* The PR #6489 scenario: attach under the temporary id, rename, activate
 * under the final id. The attach record must survive the rename. */
static void
test_exec_attach_survives_rename(void **state)
{
    struct fx *f = *state;
    struct atom *s;

    add_vm(f, TMP);
    s = atom_new_group(ATOM_SERIAL, TMP, "receive");
    atom_add(s, atom_new(ATOM_VM_CREATE, TMP));
    atom_add(s, atom_new_dev(ATOM_VBD_SET_ACTIVE, TMP, "xvda", true));
    atom_add(s, atom_new_dev(ATOM_VBD_ATTACH, TMP, "xvda", false));
    assert_int_equal(run(f, s, false), 0);
    assert_int_equal(vmextra_remove(f->store, VM), 0);
    s = atom_new_group(ATOM_SERIAL, TMP, "downtime");
    atom_add(s, atom_new(ATOM_VM_RENAME, TMP));
    atom_set_text(s->children[0], VM);
    atom_add(s, atom_new_dev(ATOM_VBD_ACTIVATE, VM, "xvda", false));
    assert_int_equal(run(f, s, false), 0);
    assert_true(plugged(f, VM, "xvda"));
    assert_int_equal(sm_testdrv_active(f->v3), 1);
    assert_int_equal(power(f, TMP), BACKEND_HALTED);
    assert_false(vmextra_exists(f->store, TMP));
}

/* Early-attached VBDs have no device; VM_destroy must still release them
 * (xenopsd leaks them when a migration fails before the downtime). */
static void
test_exec_destroy_releases_early_attach(void **state)
{
    struct fx *f = *state;
    struct expand_vm v = view(VM);
    struct atom *s = atom_new_group(ATOM_SERIAL, VM, "phase A");

    atom_add(s, atom_new(ATOM_VM_CREATE, VM));
    atom_add(s, expand_early_attach(&v, false));
    assert_int_equal(run(f, s, false), 0);
    assert_int_equal(sm_testdrv_attached(f->v3), 2);
    assert_int_equal(sm_testdrv_attached(f->v1), 0);
    assert_int_equal(run(f, atom_new(ATOM_VM_DESTROY, VM), false), 0);
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    assert_int_equal(n_attached(f, VM), 0);
}

struct watch {
    struct fx *f;
    struct atom *a;
    int rc;
    bool done;
    pthread_mutex_t m;
    pthread_cond_t c;
};

static void *
watch_run(void *p)
{
    struct watch *w = p;
    int rc = run(w->f, w->a, false);

    pthread_mutex_lock(&w->m);
    w->rc = rc;
    w->done = true;
    pthread_cond_signal(&w->c);
    pthread_mutex_unlock(&w->m);
    return NULL;
}

/* Parallel inside Parallel (not Nested) with one worker per pool: xenopsd
 * only warns and can deadlock; here the waiting thread runs the children
 * nobody picked up. The wait below is a deadlock guard, not a timing. */
static void
test_exec_parallel_in_parallel_one_worker(void **state)
{
    struct fx *f = *state;
    struct atom *outer = atom_new_group(ATOM_PARALLEL, VM, "outer");
    struct watch w = { f, outer, -1, false, PTHREAD_MUTEX_INITIALIZER,
                       PTHREAD_COND_INITIALIZER };
    struct timespec deadline;
    pthread_t th;
    int r = 0;

    for (int i = 0; i < 3; i++) {
        struct atom *inner = atom_new_group(ATOM_PARALLEL, VM, "inner");

        for (int j = 0; j < 12; j++) {
            struct atom *deep = atom_new_group(ATOM_PARALLEL, VM, "deep");

            atom_add(deep, atom_new_dev(ATOM_VBD_SET_ACTIVE, VM,
                                        vbds[j % 3].dev, true));
            atom_add(deep, atom_new_dev(ATOM_VBD_SET_ACTIVE, VM,
                                        vbds[(j + 1) % 3].dev, true));
            atom_add(inner, deep);
        }
        atom_add(outer, inner);
    }
    pthread_create(&th, NULL, watch_run, &w);
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 60;
    pthread_mutex_lock(&w.m);
    while (!w.done && r == 0)
        r = pthread_cond_timedwait(&w.c, &w.m, &deadline);
    pthread_mutex_unlock(&w.m);
    assert_true(w.done);
    pthread_join(th, NULL);
    assert_int_equal(w.rc, 0);
}

static void
test_exec_cancel_stops_before_next_atom(void **state)
{
    struct fx *f = *state;
    struct expand_vm v = view(VM);
    struct atom *a = expand_vm_start(&v, false, false);
    struct task *t = task_create(f->tasks, "cancel-me");
    struct exec_op op;
    char *err;
    int rc;

    task_registry_set_cancel_trigger(f->tasks, "cancel-me-too", 3);
    task_unref(t);
    t = task_create(f->tasks, "cancel-me-too");
    exec_op_init(&op, &f->env, t, false);
    rc = exec_run(&op, a);
    assert_int_equal(rc, XO_ECANCELLED);
    err = xo_err_take_json(rc);
    assert_non_null(strstr(err, "Cancelled"));
    free(err);
    exec_rollback(&op);
    exec_op_dispose(&op);
    assert_int_equal(power(f, VM), BACKEND_HALTED);
    assert_int_equal(sm_testdrv_attached(f->v3), 0);
    task_unref(t);
    atom_free(a);
}

/* The migration's policy: a Parallel of (de)activations only runs as one
 * chunk; anything else, or without the policy, keeps chunks of ten. */
static void
test_exec_activations_at_once_policy(void **state)
{
    struct exec_env env = { 0 };
    struct exec_op op;
    struct atom *p = atom_new_group(ATOM_PARALLEL, VM, "p");
    struct atom *np = atom_new_group(ATOM_NESTED_PARALLEL, VM, "np");
    char dev[16];

    (void)state;
    for (int i = 0; i < 16; i++) {
        snprintf(dev, sizeof(dev), "xvd%c", 'a' + i);
        atom_add(p, atom_new_dev(i % 2 ? ATOM_VBD_ACTIVATE
                                       : ATOM_VBD_DEACTIVATE, VM, dev,
                                 false));
        atom_add(np, atom_new_dev(ATOM_VBD_ACTIVATE, VM, dev, false));
    }
    exec_op_init(&op, &env, NULL, false);
    assert_int_equal(exec_chunk_size(&op, p), EXEC_CHUNK);
    op.activations_at_once = true;
    assert_int_equal(exec_chunk_size(&op, p), 16);
    assert_int_equal(exec_chunk_size(&op, np), EXEC_CHUNK);
    atom_add(p, atom_new_dev(ATOM_VBD_ATTACH, VM, "xvdz", false));
    assert_int_equal(exec_chunk_size(&op, p), EXEC_CHUNK);
    exec_op_dispose(&op);
    atom_free(p);
    atom_free(np);
}

/* VM_remove forgets the backend's records of the VM too (with xenlight
 * they are in xenstore and would outlive the daemon). */
static void
test_exec_remove_forgets_backend_records(void **state)
{
    struct fx *f = *state;
    char *diag;

    assert_int_equal(run(f, atom_new_dev(ATOM_VBD_SET_ACTIVE, VM, "xvda",
                                         true), false), 0);
    diag = f->b->ops->diagnostics(f->b);
    assert_non_null(strstr(diag, VM));
    free(diag);
    assert_int_equal(run(f, atom_new(ATOM_VM_REMOVE, VM), false), 0);
    diag = f->b->ops->diagnostics(f->b);
    assert_null(strstr(diag, VM));
    free(diag);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exec_activations_at_once_policy),
        cmocka_unit_test_setup_teardown(
            test_exec_remove_forgets_backend_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_start_stop_legacy, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_exec_start_stop_split, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_failed_attach_rolls_back_split, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_failed_activate_rolls_back_split, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_failed_plug_rolls_back_legacy, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_activate_without_attach_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_detach_without_record_is_fine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_attach_survives_rename,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_destroy_releases_early_attach, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_parallel_in_parallel_one_worker, setup_one_worker,
            teardown),
        cmocka_unit_test_setup_teardown(
            test_exec_cancel_stops_before_next_atom, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
