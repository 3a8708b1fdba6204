/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * task: xenopsd tasks (reference/xenopsd-behaviour.md 5.2, wire shape
 * Task.t in reference/interfaces.md 1.6). A task has a decimal id from a
 * registry-wide counter starting at "0", a dbg string, ctime, a state
 * (Pending progress | Completed {duration, result?} | Failed error), the
 * list of subtasks (one per atom that ran: name, start, state), a
 * cancellable flag and cancel callbacks.
 *
 * Every state change signals ["Task", id] on the updates stream.
 *
 * Ownership: tasks are reference counted. task_create returns one reference
 * for the creator; task_find adds one; task_unref drops one. The registry
 * holds its own reference until task_destroy (or completion, with
 * destroy_on_finish). Threading: each task has a mutex; the registry has one.
 */
#ifndef XENOPS_TASK_H
#define XENOPS_TASK_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct updates;
struct task;
struct task_registry;

struct task_registry *task_registry_new(struct updates *u);
void task_registry_free(struct task_registry *reg);

/* A new Pending task (progress 0, cancellable). */
struct task *task_create(struct task_registry *reg, const char *dbg);
const char *task_id(const struct task *t);
const char *task_dbg(const struct task *t);
struct task *task_find(struct task_registry *reg, const char *id);
void task_ref(struct task *t);
void task_unref(struct task *t);

/* Subtasks: begin returns an index for end; names are made unique by
 * appending " #2", " #3"... rc 0 = Completed, else Failed with the wire
 * error for rc. */
int task_subtask_begin(struct task *t, const char *name);
void task_subtask_end(struct task *t, int idx, int rc);

void task_set_progress(struct task *t, double progress);
/* Set (or replace) a debug_info entry shown by Task.stat, e.g. a
 * migration's "bytes_remaining"; at most TASK_DEBUG_MAX keys (copied). */
#define TASK_DEBUG_MAX 16
void task_set_debug(struct task *t, const char *key, const char *value);
void task_set_cancellable(struct task *t, bool cancellable);

/*
 * A cancellation point: counts it, fires a pending cancel trigger (see
 * task_registry_set_cancel_trigger) and returns XO_ECANCELLED (detail
 * Cancelled [id]) if the task is being cancelled, else 0.
 */
int task_check_cancel(struct task *t);
bool task_is_cancelling(struct task *t);
/* The flag itself (atomic: read without the task's lock), for waits in
 * code that knows no tasks (the backend's streams, UPDATES.get). A wait
 * that can be woken (a socket to shut down, a condition to signal)
 * should register task_on_cancel instead of polling it. */
const atomic_bool *task_cancel_flag(struct task *t);

/* Final states; the first call wins, later ones are ignored. result_json
 * may be NULL (no result). task_fail takes ownership of error_json. */
void task_complete(struct task *t, const char *result_json);
void task_fail(struct task *t, char *error_json);
bool task_is_pending(struct task *t);

/* Wait until the task is no longer Pending; timeout_s < 0 waits forever.
 * Returns 0 or XO_ETIMEDOUT. */
int task_wait(struct task *t, double timeout_s);

/* Cancel callbacks run (outside the task lock) when cancel is requested;
 * one registered after the request runs at once. They may run more than
 * once and must not register or remove callbacks themselves. */
void task_on_cancel(struct task *t, void (*cb)(void *), void *opaque);
/* Unregister (cb, opaque), e.g. at the end of a cancellable region; when it
 * returns the callback is not running and will not run again. */
void task_on_cancel_remove(struct task *t, void (*cb)(void *), void *opaque);

/* Registry operations by id; XO_ENOTFOUND (Does_not_exist ["task", id]).
 * task_cancel on a non-cancellable task is a no-op returning 0. */
int task_cancel(struct task_registry *reg, const char *id);
int task_destroy(struct task_registry *reg, const char *id);
int task_destroy_on_finish(struct task_registry *reg, const char *id);

/* DEBUG.trigger "set-cancel-trigger" [dbg; n]: the next task created with
 * that dbg is cancelled at its n-th cancellation point. */
void task_registry_set_cancel_trigger(struct task_registry *reg,
                                      const char *dbg, int n);

/*
 * Task.t as JSON text (caller frees). The wire shape is exact; in addition
 * debug_info carries "cancel_points_seen" and "timeline", a JSON string of
 * [[name, start_offset_s, duration_s, "ok"|"failed"|"running"], ...] in
 * start order, which xenopsctl uses to print what ran.
 */
char *task_stat_json(struct task *t);
char *task_list_json(struct task_registry *reg);

#endif
