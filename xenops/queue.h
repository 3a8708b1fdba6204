/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * queue: xenopsd's redirectors (reference/xenopsd-behaviour.md 5.1). A pool
 * owns a map tag -> FIFO of work items and n worker threads. Workers pop
 * round-robin across tags, and never pop a tag that is already running, so
 * work with one tag (one VM) runs one item at a time, in push order.
 *
 * Aliases: queue_alias(p, tag, alias) makes pushes for alias land on tag's
 * FIFO; every alias pointing at tag is dropped when tag's running item
 * finishes (xenopsd: migration's temporary ids).
 *
 * Threading: one mutex + condvar per pool. Work functions run without the
 * lock held and may push to any pool (including their own).
 */
#ifndef XENOPS_QUEUE_H
#define XENOPS_QUEUE_H

#include <stddef.h>

typedef void (*queue_fn)(void *arg);

struct queue_pool;

/* name is for logs ("default", "parallel", "nested", "receive"); a count
 * below 1 is logged and taken as 1. Aborts (logged) when not even one
 * worker thread can be started, like xmalloc on out-of-memory. */
struct queue_pool *queue_pool_new(const char *name, int nworkers);
/* Stop accepting work, run what is already queued, join the workers and
 * free the pool. A push after this started is a bug: logged and dropped.
 * Must not be called from a worker of p. NULL is a no-op. */
void queue_pool_free(struct queue_pool *p);

/* Grow or shrink the worker count (>= 1); shrinking lets busy workers
 * finish their item first. A count below 1 is logged and changes nothing. */
void queue_pool_resize(struct queue_pool *p, int nworkers);
/* The wanted worker count (last new/resize). */
int queue_pool_size(struct queue_pool *p);
/* Worker threads still alive: above queue_pool_size while surplus workers
 * finish their item after a shrink (diagnostics and tests). */
int queue_pool_threads(struct queue_pool *p);

/* Append work for tag (copied; any length). Never blocks on other work. */
void queue_push(struct queue_pool *p, const char *tag, queue_fn fn,
                void *arg);
/* From now on pushes for alias go to tag (one level, resolved at push
 * time; replaces an earlier alias of the same name) until an item of tag
 * finishes. */
void queue_alias(struct queue_pool *p, const char *tag, const char *alias);

/* Number of items queued (not running) for tag, after alias resolution. */
size_t queue_queued(struct queue_pool *p, const char *tag);
/* Tags with queued or running work, for diagnostics: JSON object text
 * {"<tag>": {"queued": n, "running": bool}} (caller frees). */
char *queue_dump_json(struct queue_pool *p);

#endif
