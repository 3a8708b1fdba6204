/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * How a Parallel group runs without ever deadlocking:
 *
 *   waiter (any thread)            pool worker
 *   -------------------            -----------
 *   push job 0..m-1 (tagged)  -->  pop job k: claim it if still queued,
 *   for each job: claim it if          run it, mark done, signal
 *     still queued, run inline     (a job already claimed is skipped)
 *   wait until all m are done
 *
 * A job is claimed exactly once (under the group lock), so it runs once,
 * either on a worker or inline. If every worker is busy (pool size 1 and
 * the only worker is this waiter's own parent), the waiter runs the whole
 * chunk itself, so a Parallel inside a Parallel cannot wait on a worker
 * that will never come. The group is reference counted because a worker
 * may pop a job after the waiter has moved on.
 */
#include <stdlib.h>
#include <string.h>

#include "atoms/atoms_priv.h"
#include "queue.h"
#include "task.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

void
exec_op_init(struct exec_op *op, const struct exec_env *env,
             struct task *task, bool legacy)
{
    memset(op, 0, sizeof(*op));
    op->env = env;
    op->task = task;
    op->legacy = legacy;
    pthread_mutex_init(&op->lock, NULL);
}

static void
journal_free(struct exec_undo *u)
{
    while (u) {
        struct exec_undo *next = u->next;

        free(u);
        u = next;
    }
}

void
exec_op_dispose(struct exec_op *op)
{
    if (!op->env)
        return;
    journal_free(op->journal);
    op->journal = NULL;
    pthread_mutex_destroy(&op->lock);
    op->env = NULL;
}

void
exec_journal(struct exec_op *op, exec_undo_fn undo, const char *what,
             const char *vm, const char *dev)
{
    struct exec_undo *u = xcalloc(1, sizeof(*u));

    u->undo = undo;
    u->what = what;
    xstrlcpy(u->vm, vm, sizeof(u->vm));
    xstrlcpy(u->dev, dev ? dev : "", sizeof(u->dev));
    pthread_mutex_lock(&op->lock);
    u->next = op->journal;
    op->journal = u;
    pthread_mutex_unlock(&op->lock);
}

void
exec_unjournal(struct exec_op *op, exec_undo_fn undo, const char *vm,
               const char *dev)
{
    pthread_mutex_lock(&op->lock);
    for (struct exec_undo **p = &op->journal; *p;) {
        struct exec_undo *u = *p;

        if (u->undo == undo && strcmp(u->vm, vm) == 0 &&
            strcmp(u->dev, dev ? dev : "") == 0) {
            *p = u->next;
            free(u);
        } else {
            p = &u->next;
        }
    }
    pthread_mutex_unlock(&op->lock);
}

void
exec_commit(struct exec_op *op)
{
    pthread_mutex_lock(&op->lock);
    journal_free(op->journal);
    op->journal = NULL;
    pthread_mutex_unlock(&op->lock);
}

void
exec_rollback(struct exec_op *op)
{
    struct exec_undo *u;

    pthread_mutex_lock(&op->lock);
    u = op->journal;
    op->journal = NULL;
    pthread_mutex_unlock(&op->lock);

    for (struct exec_undo *e = u; e; e = e->next) {
        if (e->dev[0])
            LOGVM(INFO, e->vm, "rollback: %s '%s'", e->what, e->dev);
        else
            LOGVM(INFO, e->vm, "rollback: %s", e->what);
        /* Undo steps log their own failures; keep going. */
        if (e->undo(op, e->vm, e->dev))
            xo_err_clear();
    }
    journal_free(u);
}

/* ---- leaves ---- */

static int
run_leaf(struct exec_op *op, const struct atom *a)
{
    const struct atom_ops *ops = atom_ops_find(a->kind);
    char *name = NULL, *err;
    int idx = -1, rc;

    if (!ops) {
        rc = xo_err_internal("no implementation for atom '%s'",
                             atom_kind_name(a->kind));
        goto out;
    }
    if (op->task) {
        rc = task_check_cancel(op->task);
        if (rc)
            goto out;
    }
    name = atom_describe(a);
    if (op->task)
        idx = task_subtask_begin(op->task, name);
    LOGVM(DEBUG, a->vm, "atom '%s' starts", name);
    rc = ops->run(op, a);
    if (rc) {
        /* The task keeps its own copy of the error; the caller still
         * needs the detail on this thread. The atom logged the failure
         * where it found it: this is the way up. */
        err = xo_err_take_json(rc);
        LOGVM(DEBUG, a->vm, "atom '%s' failed: %s", name, err);
        if (op->task) {
            xo_err_set_json(rc, xstrdup(err));
            task_subtask_end(op->task, idx, rc);
        }
        xo_err_set_json(rc, err);
    } else if (op->task) {
        task_subtask_end(op->task, idx, 0);
    }
    if (op->task && op->leaves_total > 0) {
        double p;

        pthread_mutex_lock(&op->lock);
        p = (double)++op->leaves_done / op->leaves_total;
        pthread_mutex_unlock(&op->lock);
        task_set_progress(op->task, p < 1.0 ? p : 0.99);
    }
out:
    free(name);
    return rc;
}

/* ---- Parallel ---- */

struct pgroup;

struct pjob {
    struct pgroup *grp;
    const struct atom *a;
    int state;          /* 0 queued, 1 claimed, 2 done */
    int rc;
    char *err_json;
};

struct pgroup {
    pthread_mutex_t lock;
    pthread_cond_t done;
    int refs;
    int remaining;
    struct exec_op *op;
    size_t n_jobs;
    struct pjob jobs[];
};

static void
pgroup_unref(struct pgroup *g)
{
    int left;

    pthread_mutex_lock(&g->lock);
    left = --g->refs;
    pthread_mutex_unlock(&g->lock);
    if (left)
        return;
    for (size_t i = 0; i < g->n_jobs; i++)
        free(g->jobs[i].err_json);
    pthread_cond_destroy(&g->done);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

/* Claim j; true if the caller now owns running it. */
static bool
pjob_claim(struct pjob *j)
{
    bool mine;

    pthread_mutex_lock(&j->grp->lock);
    mine = j->state == 0;
    if (mine)
        j->state = 1;
    pthread_mutex_unlock(&j->grp->lock);
    return mine;
}

static void
pjob_run(struct pjob *j)
{
    struct pgroup *g = j->grp;
    int rc = exec_run(g->op, j->a);
    char *err = rc ? xo_err_take_json(rc) : NULL;

    pthread_mutex_lock(&g->lock);
    j->rc = rc;
    j->err_json = err;
    j->state = 2;
    g->remaining--;
    pthread_cond_broadcast(&g->done);
    pthread_mutex_unlock(&g->lock);
}

static void
pjob_worker(void *arg)
{
    struct pjob *j = arg;
    struct pgroup *g = j->grp;

    if (pjob_claim(j))
        pjob_run(j);
    pgroup_unref(g);
}

static int
run_chunk(struct exec_op *op, const struct atom *a, size_t first, size_t m,
          size_t chunk, struct queue_pool *pool)
{
    struct pgroup *g = xcalloc(1, sizeof(*g) + m * sizeof(g->jobs[0]));
    int rc = 0;

    pthread_mutex_init(&g->lock, NULL);
    pthread_cond_init(&g->done, NULL);
    g->refs = 1;
    g->remaining = (int)m;
    g->op = op;
    g->n_jobs = m;
    for (size_t i = 0; i < m; i++) {
        g->jobs[i].grp = g;
        g->jobs[i].a = a->children[first + i];
    }
    if (pool) {
        for (size_t i = 0; i < m; i++) {
            char *tag = xasprintf("%s:task=%s.atoms=%zu.chunk=%zu.atom=%zu",
                                  atom_kind_name(a->kind),
                                  op->task ? task_id(op->task) : "none",
                                  a->n_children, first / chunk, i);

            pthread_mutex_lock(&g->lock);
            g->refs++;
            pthread_mutex_unlock(&g->lock);
            queue_push(pool, tag, pjob_worker, &g->jobs[i]);
            free(tag);
        }
    }
    for (size_t i = 0; i < m; i++)
        if (pjob_claim(&g->jobs[i]))
            pjob_run(&g->jobs[i]);

    pthread_mutex_lock(&g->lock);
    while (g->remaining > 0)
        pthread_cond_wait(&g->done, &g->lock);
    pthread_mutex_unlock(&g->lock);

    /* First error in child order wins, as in xenopsd. */
    for (size_t i = 0; i < m; i++) {
        if (g->jobs[i].rc) {
            rc = g->jobs[i].rc;
            xo_err_set_json(rc, g->jobs[i].err_json);
            g->jobs[i].err_json = NULL;
            break;
        }
    }
    pgroup_unref(g);
    return rc;
}

static bool
is_activation(const struct atom *a)
{
    return a->kind == ATOM_VBD_ACTIVATE || a->kind == ATOM_VBD_DEACTIVATE;
}

size_t
exec_chunk_size(const struct exec_op *op, const struct atom *a)
{
    if (!op->activations_at_once || a->kind != ATOM_PARALLEL ||
        a->n_children <= EXEC_CHUNK)
        return EXEC_CHUNK;
    for (size_t i = 0; i < a->n_children; i++)
        if (!is_activation(a->children[i]))
            return EXEC_CHUNK;
    return a->n_children;
}

static int
run_parallel(struct exec_op *op, const struct atom *a)
{
    struct queue_pool *pool = a->kind == ATOM_NESTED_PARALLEL
                                  ? op->env->nested_pool
                                  : op->env->parallel_pool;
    size_t chunk = exec_chunk_size(op, a);
    int rc = 0;

    /* The next chunk is queued only after the previous one finished. */
    for (size_t first = 0; first < a->n_children && !rc; first += chunk) {
        size_t m = a->n_children - first;

        rc = run_chunk(op, a, first, m > chunk ? chunk : m, chunk, pool);
    }
    return rc;
}

int
exec_run(struct exec_op *op, const struct atom *a)
{
    char *err;
    int rc = 0;

    switch (a->kind) {
    case ATOM_SERIAL:
        for (size_t i = 0; i < a->n_children && !rc; i++)
            rc = exec_run(op, a->children[i]);
        return rc;
    case ATOM_PARALLEL:
    case ATOM_NESTED_PARALLEL:
        return run_parallel(op, a);
    case ATOM_BEST_EFFORT:
        for (size_t i = 0; i < a->n_children; i++) {
            rc = exec_run(op, a->children[i]);
            if (rc) {
                err = xo_err_take_json(rc);
                LOGVM(INFO, a->vm, "best-effort step failed, ignored: %s",
                      err);
                free(err);
            }
        }
        return 0;
    default:
        return run_leaf(op, a);
    }
}
