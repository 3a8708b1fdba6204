/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * updates: xenopsd's UPDATES stream (reference/xenopsd-behaviour.md 5.3).
 * A map from object key to the event number of its last change; a global
 * counter; barriers. Consumers re-read state after seeing a key.
 *
 * Wire shapes produced here (exact): Dynamic.id = ["Vm", vm] |
 * ["Vbd", [vm, dev]] | ["Vif", [vm, dev]] | ["Task", id];
 * UPDATES.get result = [barriers, ids, next_id] with barrier =
 * [barrier_id, [Dynamic.id...]].
 *
 * Threading: one mutex + condvar per instance; updates_get blocks on it.
 */
#ifndef XENOPS_UPDATES_H
#define XENOPS_UPDATES_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum updates_kind {
    UPDATES_VM,
    UPDATES_VBD,
    UPDATES_VIF,
    UPDATES_TASK,
};

struct updates;

struct updates *updates_new(void);
void updates_free(struct updates *u);

/* Record a change of an object (a = vm id or task id, dev for VBD/VIF,
 * else NULL). Wakes waiters. */
void updates_add(struct updates *u, enum updates_kind kind, const char *a,
                 const char *dev);
/* Forget an object (it was deleted); also counts as a change. */
void updates_remove(struct updates *u, enum updates_kind kind, const char *a,
                    const char *dev);
/* Signal a VM and, given its device lists, all its devices. */
void updates_refresh_vm(struct updates *u, const char *vm,
                        const char *const *vbds, int n_vbds,
                        const char *const *vifs, int n_vifs);

/*
 * Everything changed after from (from < 0: everything), oldest first, plus
 * barriers injected after from. Blocks up to timeout_s (< 0: no limit)
 * until there is something or *cancel becomes true (cancel may be NULL).
 * Returns the JSON text [barriers, ids, next_id] (caller frees); on
 * timeout or cancel, [[], [], from] (the caller tells them apart by its
 * flag). A removed object is reported too (its key, once), so a consumer
 * learns it went away.
 */
char *updates_get(struct updates *u, int64_t from, double timeout_s,
                  const atomic_bool *cancel);
int64_t updates_last_id(struct updates *u);
/* Wake every updates_get so it re-checks its cancel flag. */
void updates_wake(struct updates *u);

/* Snapshot the current (non-task) entries of vm under barrier id; it is
 * returned by every get whose from precedes the injection. Re-injecting an
 * id replaces the old snapshot. */
void updates_inject_barrier(struct updates *u, const char *vm, int64_t id);
/* XO_ENOTFOUND if no such barrier. */
int updates_remove_barrier(struct updates *u, int64_t id);

#endif
