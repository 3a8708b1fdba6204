/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * migrate_priv: what the files of the migrate module share: migrate.c
 * (lifecycle, routes, the memory-channel rendezvous), migrate_send.c and
 * migrate_receive.c (the two halves, as phases) and migrate_journal.c
 * (the crash journal). Not for other modules.
 */
#ifndef XENOPS_MIGRATE_PRIV_H
#define XENOPS_MIGRATE_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "atoms/atom.h"
#include "atoms/exec.h"
#include "backend/backend.h"
#include "migrate/migrate.h"

/* How long each side waits for the other at a handshake. Phase A attaches
 * every early VBD, so the first wait is generous. */
#define MIGRATE_HS_TIMEOUT_MS (5 * 60 * 1000)
#define MIGRATE_RPC_TIMEOUT_MS 60000
#define MIGRATE_MEM_RENDEZVOUS_MS 60000

struct mem_slot;
struct mem_claim;
struct migrate_listener;

struct migrate {
    struct migrate_deps deps;
    struct queue_pool *pool;    /* Parallel groups of migrations */
    struct exec_env env;        /* deps.env with that pool */
    struct migrate_listener *tcp;
    struct migrate_listener *fwd;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct mem_slot *slots;     /* parked memory channels */
    struct mem_claim *claims;   /* receives waiting for one */
    unsigned sends;             /* queued or running sends */
};

/* ---- migrate.c ---- */
int64_t migrate_now_ns(void);
double migrate_wall_now(void);
double migrate_ms_since(int64_t t0, int64_t t1);
/* An executor operation of a migration: migrate's env, and the switch-over
 * activates every disk at once (exec.h). */
void migrate_op_init(struct migrate *m, struct exec_op *op, struct task *t,
                     bool legacy);
/* Run tree in op and free it; NULL is nothing to do. */
int migrate_run(struct exec_op *op, struct atom *tree);
void migrate_stream_opts(struct migrate *m, struct backend_migrate_opts *o,
                         bool compress, struct task *task);
/* Once vm has no records here, the backend forgets it too. */
void migrate_forget(struct migrate *m, const char *vm);
/* The receive claims the memory channel parked for id into *fd_r (-1 if
 * none): 0, or XO_ETIMEDOUT after the rendezvous limit, XO_EIO once the
 * VM channel vm_fd closes, XO_ECANCELLED once task (may be NULL) is
 * cancelled (each of these wakes the wait; no error detail set), or
 * XO_EFAIL (logged, detail set) if it cannot wait. Give the fd back with
 * migrate_mem_release. */
int migrate_mem_claim(struct migrate *m, const char *id, int vm_fd,
                      struct task *task, int *fd_r);
void migrate_mem_release(struct migrate *m, int fd);
/* True once vm_fd has anything to read: before "1-mem ACK" the sender
 * sends nothing on it, so that is its close or a broken link. */
bool migrate_channel_closed(int vm_fd);
/* Send an error handshake carrying rc's wire error (which stays the
 * thread's error). */
void migrate_hs_error(int fd, int rc);

/* ---- migrate_send.c ---- */
struct migrate_send;
/* A send for args (validated), under a new task; NULL refused. */
int migrate_send_new(struct migrate *m, const char *dbg,
                     const struct migrate_send_args *args,
                     struct migrate_send **s_r);
const char *migrate_send_task_id(const struct migrate_send *s);
/* queue_fn: runs the send and frees it. */
void migrate_send_run(void *arg);

/* ---- migrate_receive.c ---- */
struct migrate_receive_args {
    int fd;                     /* the VM channel, borrowed */
    const char *id;             /* temporary id */
    const char *final_id;
    const char *dbg;
    bool compress;
};
/* Run a receive on the receive pool and wait for it to end. */
void migrate_receive(struct migrate *m, const struct migrate_receive_args *a);

/* ---- migrate_journal.c ---- */
/* Markers: best effort, logged. */
void migrate_journal_put(struct migrate *m, const char *name,
                         const char *json);
void migrate_journal_drop(struct migrate *m, const char *name);
/* Settle the markers of migrations a crash interrupted (receives first). */
void migrate_recover(struct migrate *m);

#endif
