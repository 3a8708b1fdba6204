/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * backend_sim_priv: what backend_sim.c (domains, devices, records) and
 * backend_sim_migrate.c (live migration of a simulated guest) share, and
 * what the simulator's tests look into. Not for other modules.
 *
 * Threading: struct sim's lock guards the table and every sim_dom field
 * (see backend_sim.c). A reference from backend_sim_dom_get keeps a
 * domain's record and guest alive without the lock, for fd I/O.
 */
#ifndef XENOPS_BACKEND_SIM_PRIV_H
#define XENOPS_BACKEND_SIM_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/sim/backend_sim.h"
#include "backend/sim/sim_guest.h"
#include "backend/sim/xstree.h"
#include "util/ids.h"

/* Longest path we build: "/local/domain/0/backend/vbd/<domid>/<dev>/..." */
#define SIM_PATH_MAX 256

struct sim_dom {
    char vm[IDS_UUID_LEN + 1];
    int domid;
    bool built;
    bool paused;
    bool suspended;
    char action_request[16];
    char shutdown_reason[16];
    int64_t memory_bytes;
    int64_t memory_target;    /* dynamic maximum (balloon target) */
    int vcpus;                /* online vcpus */
    bool hvm;
    double last_start_time;
    struct sim_guest *guest;
    unsigned refs;            /* 1 while in the table, +1 per fd I/O */
    /* A migrated-in guest: its tick count when the source paused it, so
     * that the first tick after the unpause measures the downtime. */
    bool received;
    uint64_t received_heartbeat;
};

struct sim {
    pthread_mutex_t lock;     /* the table and every sim_dom field */
    struct sim_dom **doms;
    size_t n_doms;
    size_t cap_doms;
    int next_domid;
    struct xstree *xs;
    struct backend_sim_config cfg;
};

/* ---- for the simulator's tests ---- */

/* True if b is a simulator backend. */
bool backend_sim_is(const struct backend *b);

/*
 * The guest of vm's domain, borrowed: valid until the domain is destroyed,
 * so only the VM's own queue may use it (migration). XO_ENOTFOUND if vm has
 * no domain, XO_EUNSUPPORTED if b is not a simulator, XO_EINVAL for a bad
 * id.
 */
int backend_sim_guest(struct backend *b, const char *vm,
                      struct sim_guest **g_r);

/* The simulator's xenstore-shaped tree, borrowed for b's lifetime (NULL if b
 * is not a simulator). */
struct xstree *backend_sim_xstree(struct backend *b);

/* A reference on vm's domain (XO_ENOTFOUND, logged, if it has none);
 * give it back with backend_sim_dom_put. */
int backend_sim_dom_get(struct sim *s, const char *vm, struct sim_dom **d_r);
/* Drop the reference; the last one frees the record and its guest. */
void backend_sim_dom_put(struct sim *s, struct sim_dom *d);

/* The live-migration operations (backend_sim_migrate.c). */
int backend_sim_migrate_send(struct backend *b, const char *vm, int fd,
                             const struct backend_migrate_opts *o,
                             struct backend_migrate_stats *st);
int backend_sim_migrate_receive(struct backend *b, const char *vm, int fd,
                                const struct backend_migrate_opts *o,
                                struct backend_migrate_stats *st);
int backend_sim_migrate_guest_downtime(struct backend *b, const char *vm,
                                       const atomic_bool *cancel,
                                       uint64_t *ns_r);

#endif
