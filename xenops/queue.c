/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Design (reference/xenopsd-behaviour.md 5.1, 2.8).
 *
 * A pool holds, under one mutex:
 *  - tags: a hash of tag name -> FIFO of items plus a "running" flag. A tag
 *    record exists exactly while it has queued items or a running item, so
 *    the unique per-atom tags of Parallel groups do not accumulate.
 *  - ready: the round-robin order of tags that have queued items and are not
 *    running. Invariant: a tag is on ready <=> nqueued > 0 && !running.
 *    Workers pop the front; a tag that still has work after its item
 *    finished goes to the back, so one busy VM cannot starve another.
 *  - aliases: alias -> tag, resolved once at push time. Every alias pointing
 *    at a tag is dropped when an item of that tag finishes, which is when
 *    xenopsd's worker holding the tag's override finishes.
 *  - workers: joinable threads. target is the wanted count, nalive the
 *    threads still in their loop. A surplus worker (nalive > target) leaves
 *    at the top of its loop, i.e. after its current item; it cannot join
 *    itself, so it marks itself exited and resize/free join it later.
 *
 * Example, one worker, A1 A2 B1 pushed while the worker is busy elsewhere:
 * ready = [A, B]; pop A (ready [B]), run A1, A still has A2 -> ready [B, A];
 * pop B, run B1; pop A, run A2. Order A1 B1 A2.
 *
 * fn runs with the mutex released, so it may push to any pool, this one
 * included, and may resize it.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "queue.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define QUEUE_BUCKETS 256

struct queue_item {
    struct queue_item *next;
    queue_fn fn;
    void *arg;
};

struct queue_tag {
    char *name;
    struct queue_tag *hnext;  /* hash chain */
    struct queue_tag *rnext;  /* ready list */
    struct queue_item *head;
    struct queue_item *tail;
    size_t nqueued;
    bool running;
    bool ready;
};

struct queue_alias {
    struct queue_alias *next;
    char *alias;
    char *tag;
};

struct queue_worker {
    struct queue_worker *next;
    struct queue_pool *pool;
    pthread_t tid;
    bool exited;
};

struct queue_pool {
    char *name;
    pthread_mutex_t lock;
    /* Signalled when a tag becomes ready, on resize and on stop. */
    pthread_cond_t cond;
    struct queue_tag *buckets[QUEUE_BUCKETS];
    size_t ntags;
    struct queue_tag *ready_head;
    struct queue_tag *ready_tail;
    struct queue_alias *aliases;
    struct queue_worker *workers;
    int target;
    int nalive;
    bool stopping;
};

static size_t
queue_hash(const char *s)
{
    /* FNV-1a: tags are short ASCII ids; any spread is enough. */
    uint32_t h = 2166136261u;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 16777619u;
    }
    return h % QUEUE_BUCKETS;
}

static struct queue_tag *
queue_tag_find(struct queue_pool *p, const char *name)
{
    struct queue_tag *t;

    for (t = p->buckets[queue_hash(name)]; t; t = t->hnext)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

static struct queue_tag *
queue_tag_get(struct queue_pool *p, const char *name)
{
    struct queue_tag *t = queue_tag_find(p, name);
    size_t b;

    if (t)
        return t;
    b = queue_hash(name);
    t = xcalloc(1, sizeof(*t));
    t->name = xstrdup(name);
    t->hnext = p->buckets[b];
    p->buckets[b] = t;
    p->ntags++;
    return t;
}

/* Only for a tag that is idle: not running, nothing queued, not ready. */
static void
queue_tag_remove(struct queue_pool *p, struct queue_tag *t)
{
    struct queue_tag **pp = &p->buckets[queue_hash(t->name)];

    while (*pp != t)
        pp = &(*pp)->hnext;
    *pp = t->hnext;
    p->ntags--;
    free(t->name);
    free(t);
}

static void
queue_ready_append(struct queue_pool *p, struct queue_tag *t)
{
    t->ready = true;
    t->rnext = NULL;
    if (p->ready_tail)
        p->ready_tail->rnext = t;
    else
        p->ready_head = t;
    p->ready_tail = t;
    pthread_cond_signal(&p->cond);
}

static struct queue_tag *
queue_ready_pop(struct queue_pool *p)
{
    struct queue_tag *t = p->ready_head;

    p->ready_head = t->rnext;
    if (!p->ready_head)
        p->ready_tail = NULL;
    t->rnext = NULL;
    t->ready = false;
    return t;
}

static const char *
queue_resolve(struct queue_pool *p, const char *tag)
{
    struct queue_alias *a;

    for (a = p->aliases; a; a = a->next)
        if (strcmp(a->alias, tag) == 0)
            return a->tag;
    return tag;
}

static void
queue_alias_free(struct queue_alias *a)
{
    free(a->alias);
    free(a->tag);
    free(a);
}

static void
queue_aliases_drop(struct queue_pool *p, const char *tag)
{
    struct queue_alias **pp = &p->aliases;

    while (*pp) {
        struct queue_alias *a = *pp;

        if (strcmp(a->tag, tag) == 0) {
            *pp = a->next;
            LOG(DEBUG, "pool '%s': alias '%s' -> '%s' dropped", p->name,
                a->alias, a->tag);
            queue_alias_free(a);
        } else {
            pp = &a->next;
        }
    }
}

/* Pop the head of the first ready tag, run it unlocked, then put the tag
 * back at the end of the round-robin order or retire it. Lock held on entry
 * and exit. */
static void
queue_run_one(struct queue_pool *p)
{
    struct queue_tag *t = queue_ready_pop(p);
    struct queue_item *it = t->head;

    t->head = it->next;
    if (!t->head)
        t->tail = NULL;
    t->nqueued--;
    t->running = true;

    pthread_mutex_unlock(&p->lock);
    it->fn(it->arg);
    free(it);
    pthread_mutex_lock(&p->lock);

    t->running = false;
    queue_aliases_drop(p, t->name);
    if (t->nqueued > 0)
        queue_ready_append(p, t);
    else
        queue_tag_remove(p, t);
}

static void *
queue_worker_main(void *opaque)
{
    struct queue_worker *w = opaque;
    struct queue_pool *p = w->pool;

    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->nalive > p->target)
            break;
        if (p->ready_head) {
            queue_run_one(p);
            continue;
        }
        /* Work still queued behind a running tag is run by the worker that
         * runs that tag, so an idle worker may leave once ready is empty. */
        if (p->stopping)
            break;
        pthread_cond_wait(&p->cond, &p->lock);
    }
    p->nalive--;
    w->exited = true;
    /* A wake-up meant for a worker may have reached this leaving one:
     * pass it on. */
    if (p->ready_head)
        pthread_cond_signal(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Lock held. Returns 0, or -1 (logged) when no thread could be created. */
static int
queue_worker_start(struct queue_pool *p)
{
    struct queue_worker *w = xcalloc(1, sizeof(*w));
    int r;

    w->pool = p;
    r = pthread_create(&w->tid, NULL, queue_worker_main, w);
    if (r != 0) {
        LOG(ERROR, "pool '%s': cannot start a worker thread: %s", p->name,
            strerror(r));
        free(w);
        return -1;
    }
    w->next = p->workers;
    p->workers = w;
    p->nalive++;
    return 0;
}

/* Join and free the workers that left (surplus after a shrink). */
static void
queue_reap(struct queue_pool *p)
{
    struct queue_worker *done = NULL;
    struct queue_worker **pp;

    pthread_mutex_lock(&p->lock);
    pp = &p->workers;
    while (*pp) {
        struct queue_worker *w = *pp;

        if (w->exited) {
            *pp = w->next;
            w->next = done;
            done = w;
        } else {
            pp = &w->next;
        }
    }
    pthread_mutex_unlock(&p->lock);

    while (done) {
        struct queue_worker *w = done;

        done = w->next;
        pthread_join(w->tid, NULL);
        free(w);
    }
}

/* Lock held. Starts workers up to target; on failure keeps what runs. */
static void
queue_grow(struct queue_pool *p)
{
    while (p->nalive < p->target) {
        if (queue_worker_start(p) < 0) {
            p->target = p->nalive;
            break;
        }
    }
}

struct queue_pool *
queue_pool_new(const char *name, int nworkers)
{
    struct queue_pool *p = xcalloc(1, sizeof(*p));

    p->name = xstrdup(name);
    if (nworkers < 1) {
        LOG(WARN, "pool '%s': worker count %d is below 1, using 1", name,
            nworkers);
        nworkers = 1;
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->cond, NULL);

    pthread_mutex_lock(&p->lock);
    p->target = nworkers;
    queue_grow(p);
    pthread_mutex_unlock(&p->lock);
    /* Like xmalloc: a pool that can never run its work cannot keep the
     * daemon's promises. */
    if (p->nalive == 0) {
        LOG(ERROR, "pool '%s': no worker thread could be started", name);
        abort();
    }
    return p;
}

void
queue_pool_free(struct queue_pool *p)
{
    struct queue_worker *ws;

    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->cond);
    ws = p->workers;
    p->workers = NULL;
    pthread_mutex_unlock(&p->lock);

    /* Workers leave only when nothing is ready, and the last item of each
     * running tag re-queues its successors before its worker looks again,
     * so once all are joined every accepted item has run. */
    while (ws) {
        struct queue_worker *w = ws;

        ws = w->next;
        pthread_join(w->tid, NULL);
        free(w);
    }

    while (p->aliases) {
        struct queue_alias *a = p->aliases;

        p->aliases = a->next;
        queue_alias_free(a);
    }
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    free(p->name);
    free(p);
}

void
queue_pool_resize(struct queue_pool *p, int nworkers)
{
    if (nworkers < 1) {
        LOG(ERROR, "pool '%s': refusing worker count %d (minimum 1)",
            p->name, nworkers);
        return;
    }
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        LOG(ERROR, "pool '%s': resize to %d after shutdown began, ignored",
            p->name, nworkers);
        pthread_mutex_unlock(&p->lock);
        return;
    }
    LOG(DEBUG, "pool '%s': resize %d -> %d workers", p->name, p->target,
        nworkers);
    p->target = nworkers;
    queue_grow(p);
    /* Idle surplus workers are waiting: wake them so they leave now; busy
     * ones see the new target after their item. */
    if (p->nalive > p->target)
        pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    queue_reap(p);
}

int
queue_pool_size(struct queue_pool *p)
{
    int n;

    pthread_mutex_lock(&p->lock);
    n = p->target;
    pthread_mutex_unlock(&p->lock);
    return n;
}

int
queue_pool_threads(struct queue_pool *p)
{
    int n;

    pthread_mutex_lock(&p->lock);
    n = p->nalive;
    pthread_mutex_unlock(&p->lock);
    return n;
}

void
queue_push(struct queue_pool *p, const char *tag, queue_fn fn, void *arg)
{
    struct queue_item *it;
    struct queue_tag *t;

    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        /* Nothing would run it and the caller may wait for it forever:
         * make the bug visible. */
        LOG(ERROR, "pool '%s': push for tag '%s' after shutdown began, "
            "dropped", p->name, tag);
        goto out;
    }
    t = queue_tag_get(p, queue_resolve(p, tag));
    it = xmalloc(sizeof(*it));
    it->next = NULL;
    it->fn = fn;
    it->arg = arg;
    if (t->tail)
        t->tail->next = it;
    else
        t->head = it;
    t->tail = it;
    t->nqueued++;
    if (!t->running && !t->ready)
        queue_ready_append(p, t);
out:
    pthread_mutex_unlock(&p->lock);
}

void
queue_alias(struct queue_pool *p, const char *tag, const char *alias)
{
    struct queue_alias *a;

    /* An alias onto itself resolves to the same tag as no alias at all. */
    if (strcmp(tag, alias) == 0)
        return;
    pthread_mutex_lock(&p->lock);
    for (a = p->aliases; a; a = a->next)
        if (strcmp(a->alias, alias) == 0)
            break;
    if (a) {
        free(a->tag);
    } else {
        a = xcalloc(1, sizeof(*a));
        a->alias = xstrdup(alias);
        a->next = p->aliases;
        p->aliases = a;
    }
    a->tag = xstrdup(tag);
    LOG(DEBUG, "pool '%s': alias '%s' -> '%s'", p->name, alias, tag);
    pthread_mutex_unlock(&p->lock);
}

size_t
queue_queued(struct queue_pool *p, const char *tag)
{
    struct queue_tag *t;
    size_t n;

    pthread_mutex_lock(&p->lock);
    t = queue_tag_find(p, queue_resolve(p, tag));
    n = t ? t->nqueued : 0;
    pthread_mutex_unlock(&p->lock);
    return n;
}

static int
queue_tag_cmp(const void *a, const void *b)
{
    const struct queue_tag *const *x = a;
    const struct queue_tag *const *y = b;

    return strcmp((*x)->name, (*y)->name);
}

char *
queue_dump_json(struct queue_pool *p)
{
    struct queue_tag **tags = NULL;
    yajl_gen g = json_gen_new();
    size_t n = 0;

    pthread_mutex_lock(&p->lock);
    /* Sorted by name so dumps of the same state compare equal as text. */
    tags = xcalloc(p->ntags ? p->ntags : 1, sizeof(*tags));
    for (size_t b = 0; b < QUEUE_BUCKETS; b++)
        for (struct queue_tag *t = p->buckets[b]; t; t = t->hnext)
            tags[n++] = t;
    qsort(tags, n, sizeof(*tags), queue_tag_cmp);

    yajl_gen_map_open(g);
    for (size_t i = 0; i < n; i++) {
        json_gen_str(g, tags[i]->name);
        yajl_gen_map_open(g);
        json_gen_str(g, "queued");
        json_gen_int(g, (long long)tags[i]->nqueued);
        json_gen_str(g, "running");
        json_gen_bool(g, tags[i]->running);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    pthread_mutex_unlock(&p->lock);

    free(tags);
    return json_gen_take(g);
}
