/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * task: xenopsd tasks.
 *
 * Locks, in the only order they nest: a task's cb_lock, then its lock, then
 * the updates instance's lock. The registry lock never nests with any task
 * lock: code that needs both takes a reference under the registry lock,
 * drops it, then locks the task.
 *
 * Signals to UPDATES are sent while the task lock is held and only while
 * the task is not destroyed, so a late state change can never re-create the
 * ["Task", id] key after the destroy that removed it.
 *
 * The registry keeps its tasks in an array sorted by numeric id (ids only
 * grow, so appending keeps it sorted) and finds them by binary search. Each
 * task holds a reference on its registry, so a task that outlives
 * task_registry_free (a worker still finishing it) stays valid.
 *
 * Example stat of a task whose one atom ran and that then completed:
 *   {"id":"7","dbg":"x","ctime":1735689600.25,
 *    "state":["Completed",{"duration":0.84}],
 *    "subtasks":{"VM_create":["Completed",{"duration":0.31}]},
 *    "debug_info":{"cancel_points_seen":"1",
 *                  "timeline":"[[\"VM_create\",0.01,0.31,\"ok\"]]"},
 *    "backtrace":"()","cancellable":true}
 */

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "task.h"
#include "task_priv.h"
#include "updates.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Longest wait we turn into a deadline; beyond it we wait without one. */
#define TASK_MAX_TIMEOUT_S 1e9

enum task_state {
    TASK_PENDING,
    TASK_COMPLETED,
    TASK_FAILED,
};

enum subtask_state {
    SUBTASK_RUNNING,
    SUBTASK_OK,
    SUBTASK_FAILED,
};

struct subtask {
    char *name;              /* unique within the task */
    char *base;              /* the name asked for */
    double start;            /* monotonic seconds */
    double end;
    enum subtask_state state;
    char *error_json;        /* SUBTASK_FAILED */
};

struct cancel_cb {
    void (*cb)(void *);
    void *opaque;
};

struct task {
    atomic_int refs;
    struct task_registry *reg;
    uint64_t num;
    char id[24];
    char *dbg;
    double ctime;            /* wall clock, for the wire */
    double cstart;           /* monotonic, for durations */

    pthread_mutex_t lock;    /* everything below up to cb_lock */
    pthread_cond_t cond;     /* broadcast when the task leaves Pending */
    int waiters;             /* blocked in task_wait (tests) */
    enum task_state state;
    double progress;
    double signalled_progress;
    double duration;
    char *result_json;       /* Completed; NULL = no result */
    char *error_json;        /* Failed */
    struct subtask *subs;
    int n_subs;
    int cap_subs;
    bool cancellable;
    atomic_bool cancelling;
    int cancel_points_seen;
    int cancel_at;           /* cancel trigger: n-th point, 0 = none */
    bool destroy_on_finish;
    bool destroyed;
    /* Extra debug_info entries (task_set_debug), e.g. a migration's bytes
     * remaining and dirty rate while it runs. */
    char *dbg_keys[TASK_DEBUG_MAX];
    char *dbg_vals[TASK_DEBUG_MAX];
    int n_dbg;

    pthread_mutex_t cb_lock; /* the callbacks; held while they run */
    struct cancel_cb *cbs;
    size_t n_cbs;
    size_t cap_cbs;
};

struct trigger {
    char *dbg;               /* first line only */
    int n;
    struct trigger *next;
};

struct task_registry {
    atomic_int refs;         /* the owner's plus one per task */
    struct updates *u;
    pthread_mutex_t lock;
    uint64_t next_num;
    struct task **tasks;     /* sorted by num */
    size_t n_tasks;
    size_t cap_tasks;
    struct trigger *triggers;
};

static double
now_mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
now_wall(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ["Internal_error", text], built here so the thread's error detail is
 * left alone. */
static char *
internal_error_json(const char *text)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, "Internal_error");
    json_gen_str(g, text);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

static bool
json_text_ok(const char *text)
{
    yajl_val v = NULL;

    if (json_parse(text, strlen(text), &v))
        return false;
    yajl_tree_free(v);
    return true;
}

/* Length of the first line of dbg: xapi may append "\n<trace context>". */
static size_t
first_line_len(const char *s)
{
    return strcspn(s, "\n");
}

static bool
same_first_line(const char *a, const char *b)
{
    size_t la = first_line_len(a);

    return la == first_line_len(b) && strncmp(a, b, la) == 0;
}

/* Canonical decimal id (no sign, no leading zero) to its number. */
static bool
parse_id(const char *id, uint64_t *num_r)
{
    uint64_t n = 0;
    size_t len = id ? strlen(id) : 0;

    if (len == 0 || len > 19 || (len > 1 && id[0] == '0'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(id[i] - '0');
    }
    *num_r = n;
    return true;
}

/* ---- registry ---- */

struct task_registry *
task_registry_new(struct updates *u)
{
    struct task_registry *reg = xcalloc(1, sizeof(*reg));

    atomic_init(&reg->refs, 1);
    reg->u = u;
    pthread_mutex_init(&reg->lock, NULL);
    return reg;
}

static void
registry_unref(struct task_registry *reg)
{
    struct trigger *tr, *next;

    if (atomic_fetch_sub(&reg->refs, 1) != 1)
        return;
    for (tr = reg->triggers; tr; tr = next) {
        next = tr->next;
        free(tr->dbg);
        free(tr);
    }
    free(reg->tasks);
    pthread_mutex_destroy(&reg->lock);
    free(reg);
}

void
task_registry_free(struct task_registry *reg)
{
    struct task **tasks;
    size_t n;

    if (!reg)
        return;
    pthread_mutex_lock(&reg->lock);
    tasks = reg->tasks;
    n = reg->n_tasks;
    reg->tasks = NULL;
    reg->n_tasks = reg->cap_tasks = 0;
    pthread_mutex_unlock(&reg->lock);
    for (size_t i = 0; i < n; i++) {
        /* No signals from here on: the updates instance may go next. */
        pthread_mutex_lock(&tasks[i]->lock);
        tasks[i]->destroyed = true;
        pthread_mutex_unlock(&tasks[i]->lock);
        task_unref(tasks[i]);
    }
    free(tasks);
    registry_unref(reg);
}

/* Index of num in reg->tasks, or -1. Registry lock held. */
static ssize_t
registry_index_locked(struct task_registry *reg, uint64_t num)
{
    size_t lo = 0, hi = reg->n_tasks;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (reg->tasks[mid]->num == num)
            return (ssize_t)mid;
        if (reg->tasks[mid]->num < num)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static void
signal_locked(struct task *t)
{
    if (t->reg->u && !t->destroyed)
        updates_add(t->reg->u, UPDATES_TASK, t->id, NULL);
}

/*
 * Take t out of the registry (if it is still there) and drop the
 * registry's reference. Returns whether this call removed it.
 */
static bool
registry_remove(struct task_registry *reg, struct task *t)
{
    bool removed = false;
    ssize_t i;

    pthread_mutex_lock(&reg->lock);
    i = registry_index_locked(reg, t->num);
    if (i >= 0 && reg->tasks[i] == t) {
        memmove(&reg->tasks[i], &reg->tasks[i + 1],
                (reg->n_tasks - (size_t)i - 1) * sizeof(*reg->tasks));
        reg->n_tasks--;
        removed = true;
    }
    pthread_mutex_unlock(&reg->lock);
    if (!removed)
        return false;
    pthread_mutex_lock(&t->lock);
    t->destroyed = true;
    if (reg->u)
        updates_remove(reg->u, UPDATES_TASK, t->id, NULL);
    pthread_mutex_unlock(&t->lock);
    task_unref(t);
    return true;
}

/* Consume a cancel trigger for dbg, returning its n (0 = none). */
static int
take_trigger_locked(struct task_registry *reg, const char *dbg)
{
    struct trigger **p;

    for (p = &reg->triggers; *p; p = &(*p)->next) {
        struct trigger *tr = *p;
        int n = tr->n;

        if (!same_first_line(tr->dbg, dbg))
            continue;
        *p = tr->next;
        free(tr->dbg);
        free(tr);
        return n;
    }
    return 0;
}

void
task_registry_set_cancel_trigger(struct task_registry *reg, const char *dbg,
                                 int n)
{
    struct trigger *tr;

    if (!dbg || n <= 0) {
        LOG(WARN, "cancel trigger needs a dbg and n > 0, got n '%d'", n);
        return;
    }
    tr = xcalloc(1, sizeof(*tr));
    tr->dbg = xstrndup(dbg, first_line_len(dbg));
    tr->n = n;
    pthread_mutex_lock(&reg->lock);
    /* A newer trigger for the same dbg replaces the older one. */
    take_trigger_locked(reg, tr->dbg);
    tr->next = reg->triggers;
    reg->triggers = tr;
    pthread_mutex_unlock(&reg->lock);
    LOG(INFO, "cancel trigger set for dbg '%s' at point '%d'", tr->dbg, n);
}

/* ---- lifecycle ---- */

struct task *
task_create(struct task_registry *reg, const char *dbg)
{
    struct task *t = xcalloc(1, sizeof(*t));
    pthread_condattr_t attr;

    atomic_init(&t->refs, 2);  /* the creator's and the registry's */
    t->dbg = xstrdup(dbg ? dbg : "");
    t->ctime = now_wall();
    t->cstart = now_mono();
    t->state = TASK_PENDING;
    t->cancellable = true;
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->cb_lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &attr);
    pthread_condattr_destroy(&attr);

    atomic_fetch_add(&reg->refs, 1);
    t->reg = reg;
    pthread_mutex_lock(&reg->lock);
    t->num = reg->next_num++;
    snprintf(t->id, sizeof(t->id), "%" PRIu64, t->num);
    t->cancel_at = take_trigger_locked(reg, t->dbg);
    if (reg->n_tasks == reg->cap_tasks) {
        reg->cap_tasks = reg->cap_tasks ? reg->cap_tasks * 2 : 16;
        reg->tasks = xrealloc(reg->tasks,
                              reg->cap_tasks * sizeof(*reg->tasks));
    }
    reg->tasks[reg->n_tasks++] = t;
    pthread_mutex_unlock(&reg->lock);

    pthread_mutex_lock(&t->lock);
    signal_locked(t);
    pthread_mutex_unlock(&t->lock);
    return t;
}

const char *
task_id(const struct task *t)
{
    return t->id;
}

const char *
task_dbg(const struct task *t)
{
    return t->dbg;
}

struct task *
task_find(struct task_registry *reg, const char *id)
{
    struct task *t = NULL;
    uint64_t num;
    ssize_t i;

    if (!parse_id(id, &num))
        return NULL;
    pthread_mutex_lock(&reg->lock);
    i = registry_index_locked(reg, num);
    if (i >= 0) {
        t = reg->tasks[i];
        task_ref(t);
    }
    pthread_mutex_unlock(&reg->lock);
    return t;
}

/* task_find, or XO_ENOTFOUND with Does_not_exist ["task", id]. */
static int
find_or_fail(struct task_registry *reg, const char *id, struct task **t_r)
{
    *t_r = task_find(reg, id);
    if (*t_r)
        return 0;
    LOG(WARN, "no task '%s'", id ? id : "");
    return xo_err_does_not_exist("task", id ? id : "");
}

void
task_ref(struct task *t)
{
    atomic_fetch_add(&t->refs, 1);
}

void
task_unref(struct task *t)
{
    if (!t || atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    for (int i = 0; i < t->n_subs; i++) {
        free(t->subs[i].name);
        free(t->subs[i].base);
        free(t->subs[i].error_json);
    }
    for (int i = 0; i < t->n_dbg; i++) {
        free(t->dbg_keys[i]);
        free(t->dbg_vals[i]);
    }
    free(t->subs);
    free(t->cbs);
    free(t->result_json);
    free(t->error_json);
    free(t->dbg);
    pthread_cond_destroy(&t->cond);
    pthread_mutex_destroy(&t->cb_lock);
    pthread_mutex_destroy(&t->lock);
    registry_unref(t->reg);
    free(t);
}

/* ---- subtasks and progress ---- */

static bool
subtask_name_taken_locked(struct task *t, const char *name)
{
    for (int i = 0; i < t->n_subs; i++)
        if (strcmp(t->subs[i].name, name) == 0)
            return true;
    return false;
}

/* name, or "name #k" with k one more than the subtasks already begun
 * under that name (a literal "name #k" taken earlier moves k on). Linear in
 * the number of subtasks, so a Parallel of hundreds of atoms stays cheap. */
static char *
unique_name_locked(struct task *t, const char *name)
{
    char *unique = xstrdup(name);
    int k = 1;

    for (int i = 0; i < t->n_subs; i++)
        if (strcmp(t->subs[i].base, name) == 0)
            k++;
    if (k == 1 && !subtask_name_taken_locked(t, unique))
        return unique;
    for (k = k < 2 ? 2 : k;; k++) {
        free(unique);
        unique = xasprintf("%s #%d", name, k);
        if (!subtask_name_taken_locked(t, unique))
            return unique;
    }
}

int
task_subtask_begin(struct task *t, const char *name)
{
    char *unique;
    int idx;

    pthread_mutex_lock(&t->lock);
    unique = unique_name_locked(t, name);
    if (t->n_subs == t->cap_subs) {
        t->cap_subs = t->cap_subs ? t->cap_subs * 2 : 8;
        t->subs = xrealloc(t->subs, (size_t)t->cap_subs * sizeof(*t->subs));
    }
    idx = t->n_subs++;
    t->subs[idx] = (struct subtask){
        .name = unique,
        .base = xstrdup(name),
        .start = now_mono(),
        .state = SUBTASK_RUNNING,
    };
    signal_locked(t);
    pthread_mutex_unlock(&t->lock);
    return idx;
}

void
task_subtask_end(struct task *t, int idx, int rc)
{
    char *err = rc ? xo_err_take_json(rc) : NULL;
    struct subtask *s;

    pthread_mutex_lock(&t->lock);
    if (idx < 0 || idx >= t->n_subs ||
        t->subs[idx].state != SUBTASK_RUNNING) {
        pthread_mutex_unlock(&t->lock);
        LOG(ERROR, "task '%s' has no running subtask '%d'", t->id, idx);
        free(err);
        return;
    }
    s = &t->subs[idx];
    s->end = now_mono();
    s->state = rc ? SUBTASK_FAILED : SUBTASK_OK;
    s->error_json = err;
    signal_locked(t);
    pthread_mutex_unlock(&t->lock);
}

void
task_set_progress(struct task *t, double progress)
{
    if (isnan(progress))
        return;
    progress = progress < 0 ? 0 : progress > 1 ? 1 : progress;
    pthread_mutex_lock(&t->lock);
    if (t->state == TASK_PENDING) {
        t->progress = progress;
        /* Small steps are not worth waking every UPDATES consumer. */
        if (fabs(progress - t->signalled_progress) >= 0.01 ||
            (progress == 1.0 && t->signalled_progress != 1.0)) {
            t->signalled_progress = progress;
            signal_locked(t);
        }
    }
    pthread_mutex_unlock(&t->lock);
}

void
task_set_debug(struct task *t, const char *key, const char *value)
{
    int i;

    pthread_mutex_lock(&t->lock);
    for (i = 0; i < t->n_dbg; i++)
        if (strcmp(t->dbg_keys[i], key) == 0)
            break;
    if (i == t->n_dbg) {
        if (t->n_dbg == TASK_DEBUG_MAX) {
            pthread_mutex_unlock(&t->lock);
            LOG(WARN, "task %s: too many debug_info entries, '%s' dropped",
                t->id, key);
            return;
        }
        t->dbg_keys[t->n_dbg++] = xstrdup(key);
    } else {
        free(t->dbg_vals[i]);
    }
    t->dbg_vals[i] = xstrdup(value);
    if (t->state == TASK_PENDING)
        signal_locked(t);
    pthread_mutex_unlock(&t->lock);
}

void
task_set_cancellable(struct task *t, bool cancellable)
{
    pthread_mutex_lock(&t->lock);
    t->cancellable = cancellable;
    pthread_mutex_unlock(&t->lock);
}

/* ---- cancellation ---- */

int
task_check_cancel(struct task *t)
{
    bool cancelling;

    pthread_mutex_lock(&t->lock);
    t->cancel_points_seen++;
    if (!t->cancelling && t->cancel_at > 0 &&
        t->cancel_points_seen == t->cancel_at) {
        LOG(INFO, "task '%s' cancelled by its trigger at point '%d'", t->id,
            t->cancel_at);
        t->cancelling = true;
    }
    cancelling = t->cancelling;
    pthread_mutex_unlock(&t->lock);
    if (!cancelling)
        return 0;
    LOG(INFO, "task '%s' cancelled", t->id);
    return xo_err_cancelled(t->id);
}

bool
task_is_cancelling(struct task *t)
{
    bool c;

    pthread_mutex_lock(&t->lock);
    c = t->cancelling;
    pthread_mutex_unlock(&t->lock);
    return c;
}

const atomic_bool *
task_cancel_flag(struct task *t)
{
    return &t->cancelling;
}

void
task_on_cancel(struct task *t, void (*cb)(void *), void *opaque)
{
    pthread_mutex_lock(&t->cb_lock);
    if (t->n_cbs == t->cap_cbs) {
        t->cap_cbs = t->cap_cbs ? t->cap_cbs * 2 : 4;
        t->cbs = xrealloc(t->cbs, t->cap_cbs * sizeof(*t->cbs));
    }
    t->cbs[t->n_cbs++] = (struct cancel_cb){ cb, opaque };
    /* Registered after the request: the caller must still hear of it. */
    if (task_is_cancelling(t))
        cb(opaque);
    pthread_mutex_unlock(&t->cb_lock);
}

void
task_on_cancel_remove(struct task *t, void (*cb)(void *), void *opaque)
{
    pthread_mutex_lock(&t->cb_lock);
    for (size_t i = 0; i < t->n_cbs; i++) {
        if (t->cbs[i].cb == cb && t->cbs[i].opaque == opaque) {
            memmove(&t->cbs[i], &t->cbs[i + 1],
                    (t->n_cbs - i - 1) * sizeof(*t->cbs));
            t->n_cbs--;
            break;
        }
    }
    pthread_mutex_unlock(&t->cb_lock);
}

int
task_cancel(struct task_registry *reg, const char *id)
{
    struct task *t = NULL;
    bool cancellable;
    int rc;

    rc = find_or_fail(reg, id, &t);
    if (rc)
        goto out;
    pthread_mutex_lock(&t->lock);
    cancellable = t->cancellable;
    if (cancellable)
        t->cancelling = true;
    pthread_mutex_unlock(&t->lock);
    if (!cancellable) {
        LOG(INFO, "task '%s' is not cancellable: cancel ignored", id);
        goto out;
    }
    LOG(INFO, "cancelling task '%s'", id);
    /* An UPDATES.get may be blocked on this task's flag. */
    if (reg->u)
        updates_wake(reg->u);
    /* cb_lock is held while the callbacks run so that after
     * task_on_cancel_remove returns, its callback is not running. */
    pthread_mutex_lock(&t->cb_lock);
    for (size_t i = 0; i < t->n_cbs; i++)
        t->cbs[i].cb(t->cbs[i].opaque);
    pthread_mutex_unlock(&t->cb_lock);
out:
    task_unref(t);
    return rc;
}

/* ---- final states ---- */

/* Move to a final state (unless already final); takes ownership of both
 * texts. */
static void
finish(struct task *t, enum task_state state, char *result, char *error)
{
    bool auto_destroy = false;

    pthread_mutex_lock(&t->lock);
    if (t->state == TASK_PENDING) {
        t->state = state;
        t->duration = now_mono() - t->cstart;
        t->result_json = result;
        t->error_json = error;
        result = error = NULL;
        signal_locked(t);
        pthread_cond_broadcast(&t->cond);
        auto_destroy = t->destroy_on_finish;
    }
    pthread_mutex_unlock(&t->lock);
    free(result);
    free(error);
    if (auto_destroy)
        registry_remove(t->reg, t);
}

void
task_complete(struct task *t, const char *result_json)
{
    if (result_json && !json_text_ok(result_json)) {
        xo_err_clear();
        LOG(ERROR, "task '%s' result is not valid json", t->id);
        finish(t, TASK_FAILED, NULL,
               internal_error_json("task result is not valid JSON"));
        return;
    }
    finish(t, TASK_COMPLETED, result_json ? xstrdup(result_json) : NULL,
           NULL);
}

void
task_fail(struct task *t, char *error_json)
{
    if (!error_json || !json_text_ok(error_json)) {
        xo_err_clear();
        LOG(ERROR, "task '%s' failed with an invalid error value", t->id);
        free(error_json);
        error_json = internal_error_json("task failed with an invalid error");
    }
    finish(t, TASK_FAILED, NULL, error_json);
}

bool
task_is_pending(struct task *t)
{
    bool pending;

    pthread_mutex_lock(&t->lock);
    pending = t->state == TASK_PENDING;
    pthread_mutex_unlock(&t->lock);
    return pending;
}

int
task_wait(struct task *t, double timeout_s)
{
    bool forever = timeout_s < 0 || isnan(timeout_s) ||
                   timeout_s > TASK_MAX_TIMEOUT_S;
    struct timespec deadline;
    int r = 0;
    int rc = 0;

    if (!forever) {
        double whole = floor(timeout_s);

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += (time_t)whole;
        deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    pthread_mutex_lock(&t->lock);
    while (t->state == TASK_PENDING && r != ETIMEDOUT) {
        t->waiters++;
        if (forever)
            pthread_cond_wait(&t->cond, &t->lock);
        else
            r = pthread_cond_timedwait(&t->cond, &t->lock, &deadline);
        t->waiters--;
    }
    if (t->state == TASK_PENDING) {
        LOG(DEBUG, "timed out waiting for task '%s'", t->id);
        rc = xo_err_internal_code(XO_ETIMEDOUT,
                                  "timed out waiting for task %s", t->id);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* ---- registry operations ---- */

int
task_destroy(struct task_registry *reg, const char *id)
{
    struct task *t = NULL;
    int rc;

    rc = find_or_fail(reg, id, &t);
    if (rc)
        goto out;
    registry_remove(reg, t);
out:
    task_unref(t);
    return rc;
}

int
task_destroy_on_finish(struct task_registry *reg, const char *id)
{
    struct task *t = NULL;
    bool finished;
    int rc;

    rc = find_or_fail(reg, id, &t);
    if (rc)
        goto out;
    /* Decided under the task lock, so exactly one of this call and the
     * finishing thread destroys it. */
    pthread_mutex_lock(&t->lock);
    finished = t->state != TASK_PENDING;
    t->destroy_on_finish = true;
    pthread_mutex_unlock(&t->lock);
    if (finished)
        registry_remove(reg, t);
out:
    task_unref(t);
    return rc;
}

/* ---- JSON ---- */

static void
gen_key_str(yajl_gen g, const char *key, const char *value)
{
    json_gen_str(g, key);
    json_gen_str(g, value);
}

/* A raw JSON text that was validated when it was stored. */
static void
gen_raw_checked(yajl_gen g, const char *text)
{
    if (json_gen_raw(g, text)) {
        xo_err_clear();
        json_gen_null(g);
    }
}

static void
gen_completed(yajl_gen g, double duration, const char *result)
{
    yajl_gen_array_open(g);
    json_gen_str(g, "Completed");
    yajl_gen_map_open(g);
    json_gen_str(g, "duration");
    json_gen_double(g, duration);
    if (result) {
        json_gen_str(g, "result");
        gen_raw_checked(g, result);
    }
    yajl_gen_map_close(g);
    yajl_gen_array_close(g);
}

static void
gen_tagged_raw(yajl_gen g, const char *tag, const char *raw)
{
    yajl_gen_array_open(g);
    json_gen_str(g, tag);
    gen_raw_checked(g, raw);
    yajl_gen_array_close(g);
}

static void
gen_pending(yajl_gen g, double progress)
{
    yajl_gen_array_open(g);
    json_gen_str(g, "Pending");
    json_gen_double(g, progress);
    yajl_gen_array_close(g);
}

static void
gen_state_locked(yajl_gen g, struct task *t)
{
    switch (t->state) {
    case TASK_PENDING:
        gen_pending(g, t->progress);
        break;
    case TASK_COMPLETED:
        gen_completed(g, t->duration, t->result_json);
        break;
    case TASK_FAILED:
        gen_tagged_raw(g, "Failed", t->error_json);
        break;
    }
}

static void
gen_subtasks_locked(yajl_gen g, struct task *t)
{
    yajl_gen_map_open(g);
    for (int i = 0; i < t->n_subs; i++) {
        struct subtask *s = &t->subs[i];

        json_gen_str(g, s->name);
        switch (s->state) {
        case SUBTASK_RUNNING:
            gen_pending(g, 0);
            break;
        case SUBTASK_OK:
            gen_completed(g, s->end - s->start, NULL);
            break;
        case SUBTASK_FAILED:
            gen_tagged_raw(g, "Failed", s->error_json);
            break;
        }
    }
    yajl_gen_map_close(g);
}

/* The debug_info "timeline" text: [[name, start, duration, status], ...]. */
static char *
timeline_locked(struct task *t, double now)
{
    static const char *const status[] = {
        [SUBTASK_RUNNING] = "running",
        [SUBTASK_OK] = "ok",
        [SUBTASK_FAILED] = "failed",
    };
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    for (int i = 0; i < t->n_subs; i++) {
        struct subtask *s = &t->subs[i];
        double end = s->state == SUBTASK_RUNNING ? now : s->end;

        yajl_gen_array_open(g);
        json_gen_str(g, s->name);
        json_gen_double(g, s->start - t->cstart);
        json_gen_double(g, end - s->start);
        json_gen_str(g, status[s->state]);
        yajl_gen_array_close(g);
    }
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

static void
gen_task(yajl_gen g, struct task *t)
{
    char points[16];
    char *timeline;

    pthread_mutex_lock(&t->lock);
    yajl_gen_map_open(g);
    gen_key_str(g, "id", t->id);
    gen_key_str(g, "dbg", t->dbg);
    json_gen_str(g, "ctime");
    json_gen_double(g, t->ctime);
    json_gen_str(g, "state");
    gen_state_locked(g, t);
    json_gen_str(g, "subtasks");
    gen_subtasks_locked(g, t);

    json_gen_str(g, "debug_info");
    yajl_gen_map_open(g);
    snprintf(points, sizeof(points), "%d", t->cancel_points_seen);
    gen_key_str(g, "cancel_points_seen", points);
    timeline = timeline_locked(t, now_mono());
    gen_key_str(g, "timeline", timeline);
    free(timeline);
    for (int i = 0; i < t->n_dbg; i++)
        gen_key_str(g, t->dbg_keys[i], t->dbg_vals[i]);
    yajl_gen_map_close(g);

    gen_key_str(g, "backtrace", "()");
    json_gen_str(g, "cancellable");
    json_gen_bool(g, t->cancellable);
    yajl_gen_map_close(g);
    pthread_mutex_unlock(&t->lock);
}

char *
task_stat_json(struct task *t)
{
    yajl_gen g = json_gen_new();

    gen_task(g, t);
    return json_gen_take(g);
}

char *
task_list_json(struct task_registry *reg)
{
    struct task **snap = NULL;
    yajl_gen g = json_gen_new();
    size_t n;

    /* References under the registry lock, JSON outside it (lock order). */
    pthread_mutex_lock(&reg->lock);
    n = reg->n_tasks;
    snap = xcalloc(n ? n : 1, sizeof(*snap));
    for (size_t i = 0; i < n; i++) {
        snap[i] = reg->tasks[i];
        task_ref(snap[i]);
    }
    pthread_mutex_unlock(&reg->lock);

    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++) {
        gen_task(g, snap[i]);
        task_unref(snap[i]);
    }
    yajl_gen_array_close(g);
    free(snap);
    return json_gen_take(g);
}

int
task_waiters(struct task *t)
{
    int n;

    pthread_mutex_lock(&t->lock);
    n = t->waiters;
    pthread_mutex_unlock(&t->lock);
    return n;
}
