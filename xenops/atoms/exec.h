/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * exec: runs atom trees (design/ARCHITECTURE.md section 3).
 *
 * - A leaf atom is a synchronous function (registry.c table); before it
 *   runs, the task's cancel flag is checked (a cancellation point, as in
 *   xenopsd's perform_atomic), and every leaf records itself as a subtask
 *   (name, start, duration, result) so Task.stat shows what ran.
 * - Serial runs children in order; the first error stops it.
 * - Parallel / Nested_parallel run children in chunks of EXEC_CHUNK on the
 *   parallel / nested pool, each child under a unique tag so they can run
 *   on different workers; the first failing child (in child order) gives
 *   the error. Unlike xenopsd, the waiting thread runs any child no worker
 *   has picked up yet ("caller runs"), so no nesting of Parallel groups
 *   and no pool size, even 1, can deadlock.
 * - Best_effort runs its child, logs a failure and succeeds.
 * - Policy of an operation (exec_op.activations_at_once, set by live
 *   migration): a Parallel made only of VBD_activate / VBD_deactivate
 *   leaves runs as one chunk, every disk at once. The switch-over
 *   (de)activates a paused VM's disks and the downtime lasts until the
 *   last one is done: in chunks of ten, 16 disks paid two rounds of
 *   activation latency. Anything else keeps xenopsd's chunks, which bound
 *   bursts of SM attach and plug work.
 *
 * Rollback: every attach, activate and domain creation an operation makes
 * is journalled in its exec_op together with the function that undoes it
 * (the atom family's: deactivate, detach, destroy); exec_rollback runs
 * them in reverse order, so a failed plug or start leaves no half-plugged
 * VBD and no stray datapath. Undo steps are best effort and each failure
 * is logged by the undo itself.
 *
 * Threading: an exec_op is shared by the threads running its Parallel
 * children; its journal has its own mutex.
 */
#ifndef XENOPS_EXEC_H
#define XENOPS_EXEC_H

#include <pthread.h>
#include <stdbool.h>

#include "atoms/atom.h"

#define EXEC_CHUNK 10

struct backend;
struct queue_pool;
struct sm;
struct task;
struct updates;
struct vmextra_store;

/* Long-lived services the atoms use; owned by the server. */
struct exec_env {
    struct vmextra_store *store;
    struct backend *backend;
    struct sm *sm;
    struct updates *updates;
    struct queue_pool *parallel_pool;
    struct queue_pool *nested_pool;
};

struct exec_op;

/* Undo an effect on (vm, dev); dev is "" for a VM-wide effect. Best
 * effort: logs its own failure. */
typedef int (*exec_undo_fn)(struct exec_op *op, const char *vm,
                            const char *dev);

struct exec_undo {
    exec_undo_fn undo;
    const char *what;       /* for the log: "detaching VBD" (static) */
    char vm[37];
    char dev[33];
    struct exec_undo *next;
};

/* One running operation. */
struct exec_op {
    const struct exec_env *env;
    struct task *task;          /* borrowed; may be NULL in unit tests */
    bool legacy;                /* xenopsd-vbd-plug-unplug-legacy, fixed
                                   when the operation was queued */
    bool activations_at_once;   /* see the policy above; false after
                                   exec_op_init */
    pthread_mutex_t lock;
    struct exec_undo *journal;  /* newest first */
    int leaves_total;           /* for Pending progress; 0 = unknown */
    int leaves_done;
};

void exec_op_init(struct exec_op *op, const struct exec_env *env,
                  struct task *task, bool legacy);
/* Frees the journal (does not undo). Idempotent. */
void exec_op_dispose(struct exec_op *op);

/* How many children of the Parallel a run at once under op's policy:
 * EXEC_CHUNK, or all of them (see above). */
size_t exec_chunk_size(const struct exec_op *op, const struct atom *a);

/* Run a tree. Returns 0 or the first error, with its wire detail set on
 * the calling thread. */
int exec_run(struct exec_op *op, const struct atom *a);

/* Undo the journal newest-first and clear it. */
void exec_rollback(struct exec_op *op);
/* Forget the journal: the operation's effects are now wanted. */
void exec_commit(struct exec_op *op);

/* Journal an effect with its undo (used by atoms); what is a static
 * description for the rollback's log line. */
void exec_journal(struct exec_op *op, exec_undo_fn undo, const char *what,
                  const char *vm, const char *dev);
/*
 * Read-modify-write of a VM's store document, retried on a generation
 * conflict: fn returns 0 to commit, 1 to leave the document unchanged, or
 * an error. XO_ENOTFOUND if the VM has no document.
 */
struct vmextra_doc;
int exec_update_doc(struct exec_op *op, const char *vm,
                    int (*fn)(struct vmextra_doc *, void *), void *arg);

/* Drop the journal entries for (vm, dev) with that undo, when an atom
 * undid its own effect explicitly (e.g. VBD_detach after VBD_attach). */
void exec_unjournal(struct exec_op *op, exec_undo_fn undo, const char *vm,
                    const char *dev);

#endif
