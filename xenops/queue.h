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

/* name is for logs ("default", "parallel", "nested", "receive"). */
struct queue_pool *queue_pool_new(const char *name, int nworkers);
/* Stop accepting work, run what is already queued, join the workers and
 * free the pool. */
void queue_pool_free(struct queue_pool *p);

/* Grow or shrink the worker count (>= 1); shrinking lets busy workers
 * finish their item first. */
void queue_pool_resize(struct queue_pool *p, int nworkers);
int queue_pool_size(struct queue_pool *p);

/* Append work for tag (copied). Never blocks on other work. */
void queue_push(struct queue_pool *p, const char *tag, queue_fn fn,
                void *arg);
void queue_alias(struct queue_pool *p, const char *tag, const char *alias);

/* Number of items queued (not running) for tag, after alias resolution. */
size_t queue_queued(struct queue_pool *p, const char *tag);
/* Tags with queued or running work, for diagnostics: JSON object text
 * {"<tag>": {"queued": n, "running": bool}} (caller frees). */
char *queue_dump_json(struct queue_pool *p);

#endif
