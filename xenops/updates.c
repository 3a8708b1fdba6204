/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * updates: the UPDATES stream.
 *
 * Design. Every object key has one entry holding the event id of its last
 * change. Entries live in a hash table (lookup by key) and, at the same
 * time, in a doubly linked list ordered by event id: a change takes the next
 * id, which is always the largest, so the entry simply moves to the tail.
 * UPDATES.get(from) therefore walks back from the tail to the first entry
 * not newer than from and emits forward: O(result), never O(n^2).
 *
 * Example: add Vm u (1), add Vbd u/xvda (2), add Task 42 (3), add Vm u (4)
 * leaves the list Vbd(2) Task(3) Vm(4); get(1) returns
 * [[], [["Vbd",["u","xvda"]],["Task","42"],["Vm","u"]], 4].
 *
 * A removed object keeps a tombstone entry (same list, flagged), so a
 * consumer that last saw an older id still learns that the key changed and,
 * re-reading it, that it is gone. Tombstones are also linked in their own
 * list (in event order) so the oldest can be dropped in O(1) once there are
 * more than UPDATES_MAX_TOMBSTONES; a consumer older than a dropped
 * tombstone misses that one removal, which bounds memory for a daemon that
 * creates and destroys tasks forever.
 *
 * Barriers are copies of one VM's live non-task keys taken at injection,
 * kept in injection order with the event id the injection took.
 */

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "updates.h"
#include "updates_priv.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define UPDATES_MAX_TOMBSTONES 100000
#define UPDATES_MAX_BARRIERS 10000
/* Longest wait we turn into a deadline; beyond it we wait without one. */
#define UPDATES_MAX_TIMEOUT_S 1e9

struct entry {
    enum updates_kind kind;
    char *a;
    char *dev;               /* VBD/VIF device, else NULL */
    uint64_t hash;
    int64_t id;              /* event id of the last change */
    bool removed;
    struct entry *hnext;     /* hash chain */
    struct entry *prev;      /* event order, all entries */
    struct entry *next;
    struct entry *tprev;     /* event order, tombstones only */
    struct entry *tnext;
};

struct key {
    enum updates_kind kind;
    char *a;
    char *dev;
};

struct barrier {
    int64_t bid;
    int64_t event_id;
    struct key *keys;
    size_t n_keys;
    struct barrier *next;
};

struct updates {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t counter;
    struct entry **buckets;
    size_t n_buckets;
    size_t n_entries;
    struct entry *head;
    struct entry *tail;
    struct entry *thead;
    struct entry *ttail;
    size_t n_tombstones;
    struct barrier *barriers;  /* injection order */
    size_t n_barriers;
    int waiters;               /* blocked in updates_get (tests) */
};

static const char *const kind_names[] = {
    [UPDATES_VM] = "Vm",
    [UPDATES_VBD] = "Vbd",
    [UPDATES_VIF] = "Vif",
    [UPDATES_TASK] = "Task",
};

static bool
kind_has_dev(enum updates_kind kind)
{
    return kind == UPDATES_VBD || kind == UPDATES_VIF;
}

static bool
key_valid(enum updates_kind kind, const char *a, const char *dev)
{
    if ((unsigned)kind > UPDATES_TASK || !a)
        return false;
    return !kind_has_dev(kind) || dev;
}

/* FNV-1a over kind, a, NUL, dev. */
static uint64_t
key_hash(enum updates_kind kind, const char *a, const char *dev)
{
    uint64_t h = 14695981039346656037ULL;
    const char *parts[2] = { a, dev ? dev : "" };

    h = (h ^ (uint64_t)kind) * 1099511628211ULL;
    for (int i = 0; i < 2; i++) {
        for (const unsigned char *p = (const unsigned char *)parts[i]; *p;
             p++)
            h = (h ^ *p) * 1099511628211ULL;
        h = (h ^ 0xff) * 1099511628211ULL;
    }
    return h;
}

static bool
entry_is(const struct entry *e, enum updates_kind kind, const char *a,
         const char *dev, uint64_t hash)
{
    if (e->hash != hash || e->kind != kind || strcmp(e->a, a) != 0)
        return false;
    if (!kind_has_dev(kind))
        return true;
    return strcmp(e->dev, dev) == 0;
}

static void
gen_key(yajl_gen g, enum updates_kind kind, const char *a, const char *dev)
{
    yajl_gen_array_open(g);
    json_gen_str(g, kind_names[kind]);
    if (kind_has_dev(kind)) {
        yajl_gen_array_open(g);
        json_gen_str(g, a);
        json_gen_str(g, dev);
        yajl_gen_array_close(g);
    } else {
        json_gen_str(g, a);
    }
    yajl_gen_array_close(g);
}

struct updates *
updates_new(void)
{
    struct updates *u = xcalloc(1, sizeof(*u));
    pthread_condattr_t attr;

    pthread_mutex_init(&u->lock, NULL);
    /* Deadlines on the monotonic clock: a wall-clock step must not make a
     * get return early or hang. */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&u->cond, &attr);
    pthread_condattr_destroy(&attr);
    u->n_buckets = 64;
    u->buckets = xcalloc(u->n_buckets, sizeof(*u->buckets));
    return u;
}

static void
keys_free(struct key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(keys[i].a);
        free(keys[i].dev);
    }
    free(keys);
}

static void
barrier_free(struct barrier *b)
{
    keys_free(b->keys, b->n_keys);
    free(b);
}

static void
entry_free(struct entry *e)
{
    free(e->a);
    free(e->dev);
    free(e);
}

void
updates_free(struct updates *u)
{
    struct entry *e, *enext;
    struct barrier *b, *bnext;

    if (!u)
        return;
    for (e = u->head; e; e = enext) {
        enext = e->next;
        entry_free(e);
    }
    for (b = u->barriers; b; b = bnext) {
        bnext = b->next;
        barrier_free(b);
    }
    free(u->buckets);
    pthread_cond_destroy(&u->cond);
    pthread_mutex_destroy(&u->lock);
    free(u);
}

static void
hash_grow(struct updates *u)
{
    size_t n = u->n_buckets * 2;
    struct entry **b = xcalloc(n, sizeof(*b));

    for (size_t i = 0; i < u->n_buckets; i++) {
        struct entry *e = u->buckets[i], *next;

        for (; e; e = next) {
            next = e->hnext;
            e->hnext = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    free(u->buckets);
    u->buckets = b;
    u->n_buckets = n;
}

static struct entry *
hash_find(struct updates *u, enum updates_kind kind, const char *a,
          const char *dev, uint64_t hash)
{
    struct entry *e = u->buckets[hash & (u->n_buckets - 1)];

    for (; e; e = e->hnext)
        if (entry_is(e, kind, a, dev, hash))
            return e;
    return NULL;
}

static void
hash_unlink(struct updates *u, struct entry *e)
{
    struct entry **p = &u->buckets[e->hash & (u->n_buckets - 1)];

    while (*p != e)
        p = &(*p)->hnext;
    *p = e->hnext;
}

static void
list_unlink(struct updates *u, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        u->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        u->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
list_append(struct updates *u, struct entry *e)
{
    e->prev = u->tail;
    e->next = NULL;
    if (u->tail)
        u->tail->next = e;
    else
        u->head = e;
    u->tail = e;
}

static void
tomb_unlink(struct updates *u, struct entry *e)
{
    if (e->tprev)
        e->tprev->tnext = e->tnext;
    else
        u->thead = e->tnext;
    if (e->tnext)
        e->tnext->tprev = e->tprev;
    else
        u->ttail = e->tprev;
    e->tprev = e->tnext = NULL;
    u->n_tombstones--;
}

static void
tomb_append(struct updates *u, struct entry *e)
{
    e->tprev = u->ttail;
    e->tnext = NULL;
    if (u->ttail)
        u->ttail->tnext = e;
    else
        u->thead = e;
    u->ttail = e;
    u->n_tombstones++;
}

/* Drop the oldest tombstones beyond the cap (see the design note). */
static void
tomb_trim(struct updates *u)
{
    while (u->n_tombstones > UPDATES_MAX_TOMBSTONES) {
        struct entry *e = u->thead;

        tomb_unlink(u, e);
        hash_unlink(u, e);
        list_unlink(u, e);
        u->n_entries--;
        entry_free(e);
    }
}

/* Record a change (or removal) of a key under a new event id. */
static void
record_locked(struct updates *u, enum updates_kind kind, const char *a,
              const char *dev, bool removed)
{
    uint64_t hash = key_hash(kind, a, dev);
    struct entry *e = hash_find(u, kind, a, dev, hash);

    if (e) {
        list_unlink(u, e);
        if (e->removed)
            tomb_unlink(u, e);
    } else {
        e = xcalloc(1, sizeof(*e));
        e->kind = kind;
        e->a = xstrdup(a);
        e->dev = kind_has_dev(kind) ? xstrdup(dev) : NULL;
        e->hash = hash;
        if (u->n_entries >= u->n_buckets)
            hash_grow(u);
        e->hnext = u->buckets[hash & (u->n_buckets - 1)];
        u->buckets[hash & (u->n_buckets - 1)] = e;
        u->n_entries++;
    }
    e->id = ++u->counter;
    e->removed = removed;
    list_append(u, e);
    if (removed) {
        tomb_append(u, e);
        tomb_trim(u);
    }
}

static void
record(struct updates *u, enum updates_kind kind, const char *a,
       const char *dev, bool removed)
{
    if (!key_valid(kind, a, dev)) {
        LOG(ERROR, "invalid updates key of kind %d ignored", (int)kind);
        return;
    }
    pthread_mutex_lock(&u->lock);
    record_locked(u, kind, a, dev, removed);
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

void
updates_add(struct updates *u, enum updates_kind kind, const char *a,
            const char *dev)
{
    record(u, kind, a, dev, false);
}

void
updates_remove(struct updates *u, enum updates_kind kind, const char *a,
               const char *dev)
{
    record(u, kind, a, dev, true);
}

void
updates_refresh_vm(struct updates *u, const char *vm,
                   const char *const *vbds, int n_vbds,
                   const char *const *vifs, int n_vifs)
{
    if (!vm) {
        LOG(ERROR, "refresh of a vm without id ignored");
        return;
    }
    pthread_mutex_lock(&u->lock);
    record_locked(u, UPDATES_VM, vm, NULL, false);
    for (int i = 0; i < n_vbds; i++)
        if (vbds[i])
            record_locked(u, UPDATES_VBD, vm, vbds[i], false);
    for (int i = 0; i < n_vifs; i++)
        if (vifs[i])
            record_locked(u, UPDATES_VIF, vm, vifs[i], false);
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

static bool
barrier_after(const struct barrier *b, int64_t from)
{
    return from < 0 || b->event_id > from;
}

static bool
has_news_locked(struct updates *u, int64_t from)
{
    struct barrier *b;

    if (u->tail && (from < 0 || u->tail->id > from))
        return true;
    /* Barrier event ids grow in list order, but removal can leave any
     * subset, so look at all of them (they are few). */
    for (b = u->barriers; b; b = b->next)
        if (barrier_after(b, from))
            return true;
    return false;
}

static char *
gen_result_locked(struct updates *u, int64_t from)
{
    yajl_gen g = json_gen_new();
    struct entry *e = u->tail;
    struct barrier *b;

    yajl_gen_array_open(g);
    yajl_gen_array_open(g);
    for (b = u->barriers; b; b = b->next) {
        if (!barrier_after(b, from))
            continue;
        yajl_gen_array_open(g);
        json_gen_int(g, b->bid);
        yajl_gen_array_open(g);
        for (size_t i = 0; i < b->n_keys; i++)
            gen_key(g, b->keys[i].kind, b->keys[i].a, b->keys[i].dev);
        yajl_gen_array_close(g);
        yajl_gen_array_close(g);
    }
    yajl_gen_array_close(g);

    /* Walk back to the oldest entry newer than from, then emit forward. */
    if (from < 0) {
        e = u->head;
    } else {
        while (e && e->prev && e->prev->id > from)
            e = e->prev;
        if (e && e->id <= from)
            e = NULL;
    }
    yajl_gen_array_open(g);
    for (; e; e = e->next)
        gen_key(g, e->kind, e->a, e->dev);
    yajl_gen_array_close(g);
    json_gen_int(g, u->counter);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

static char *
gen_empty(int64_t from)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    yajl_gen_array_open(g);
    yajl_gen_array_close(g);
    json_gen_int(g, from);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

static void
deadline_after(double timeout_s, struct timespec *ts)
{
    double whole = floor(timeout_s);

    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)whole;
    ts->tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

char *
updates_get(struct updates *u, int64_t from, double timeout_s,
            const atomic_bool *cancel)
{
    bool forever = timeout_s < 0 || isnan(timeout_s) ||
                   timeout_s > UPDATES_MAX_TIMEOUT_S;
    struct timespec deadline;
    char *res = NULL;
    int r = 0;

    if (!forever)
        deadline_after(timeout_s, &deadline);
    pthread_mutex_lock(&u->lock);
    for (;;) {
        if (has_news_locked(u, from)) {
            res = gen_result_locked(u, from);
            break;
        }
        if ((cancel && *cancel) || r == ETIMEDOUT) {
            /* xenopsd answers a timeout with last_id unchanged. */
            res = gen_empty(from);
            break;
        }
        u->waiters++;
        if (forever)
            pthread_cond_wait(&u->cond, &u->lock);
        else
            r = pthread_cond_timedwait(&u->cond, &u->lock, &deadline);
        u->waiters--;
    }
    pthread_mutex_unlock(&u->lock);
    return res;
}

int
updates_waiters(struct updates *u)
{
    int n;

    pthread_mutex_lock(&u->lock);
    n = u->waiters;
    pthread_mutex_unlock(&u->lock);
    return n;
}

int64_t
updates_last_id(struct updates *u)
{
    int64_t id;

    pthread_mutex_lock(&u->lock);
    id = u->counter;
    pthread_mutex_unlock(&u->lock);
    return id;
}

void
updates_wake(struct updates *u)
{
    pthread_mutex_lock(&u->lock);
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
}

/* Unlink barrier id from the list; returns it (caller frees) or NULL. */
static struct barrier *
barrier_take_locked(struct updates *u, int64_t id)
{
    struct barrier **p;

    for (p = &u->barriers; *p; p = &(*p)->next) {
        struct barrier *b = *p;

        if (b->bid == id) {
            *p = b->next;
            u->n_barriers--;
            return b;
        }
    }
    return NULL;
}

/* The VM's live Vm/Vbd/Vif keys, the Vm key first, devices in event
 * order. */
static void
snapshot_vm_locked(struct updates *u, const char *vm, struct barrier *b)
{
    size_t cap = 4;
    struct entry *e;

    b->keys = xcalloc(cap, sizeof(*b->keys));
    b->n_keys = 1;  /* slot 0 is kept for the Vm key */
    for (e = u->head; e; e = e->next) {
        if (e->removed || e->kind == UPDATES_TASK || strcmp(e->a, vm) != 0)
            continue;
        if (e->kind == UPDATES_VM) {
            b->keys[0].kind = UPDATES_VM;
            b->keys[0].a = xstrdup(vm);
            continue;
        }
        if (b->n_keys == cap) {
            cap *= 2;
            b->keys = xrealloc(b->keys, cap * sizeof(*b->keys));
        }
        b->keys[b->n_keys].kind = e->kind;
        b->keys[b->n_keys].a = xstrdup(e->a);
        b->keys[b->n_keys].dev = xstrdup(e->dev);
        b->n_keys++;
    }
    if (!b->keys[0].a) {
        b->n_keys--;
        memmove(b->keys, b->keys + 1, b->n_keys * sizeof(*b->keys));
    }
}

void
updates_inject_barrier(struct updates *u, const char *vm, int64_t id)
{
    struct barrier *b = NULL, *old = NULL, *drop = NULL;
    struct barrier **p;

    if (!vm) {
        LOG(ERROR, "barrier '%lld' without a vm ignored", (long long)id);
        return;
    }
    b = xcalloc(1, sizeof(*b));
    b->bid = id;
    pthread_mutex_lock(&u->lock);
    /* Re-injecting an id replaces the old snapshot. */
    old = barrier_take_locked(u, id);
    if (u->n_barriers >= UPDATES_MAX_BARRIERS) {
        drop = u->barriers;
        u->barriers = drop->next;
        u->n_barriers--;
    }
    snapshot_vm_locked(u, vm, b);
    b->event_id = ++u->counter;
    for (p = &u->barriers; *p; p = &(*p)->next)
        ;
    *p = b;
    u->n_barriers++;
    pthread_cond_broadcast(&u->cond);
    pthread_mutex_unlock(&u->lock);
    if (drop) {
        LOG(WARN, "too many barriers: dropped the oldest '%lld'",
            (long long)drop->bid);
        barrier_free(drop);
    }
    if (old)
        barrier_free(old);
}

int
updates_remove_barrier(struct updates *u, int64_t id)
{
    struct barrier *b;
    char idtext[32];

    pthread_mutex_lock(&u->lock);
    b = barrier_take_locked(u, id);
    pthread_mutex_unlock(&u->lock);
    if (!b) {
        snprintf(idtext, sizeof(idtext), "%lld", (long long)id);
        LOG(WARN, "no barrier '%s' to remove", idtext);
        return xo_err_does_not_exist("barrier", idtext);
    }
    barrier_free(b);
    return 0;
}
