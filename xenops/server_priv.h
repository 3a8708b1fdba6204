/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * server_priv: what server.c (lifecycle, queued operations) and
 * server_records.c (records, HOST.stat, metadata) share. Not for other
 * modules.
 */
#ifndef XENOPS_SERVER_PRIV_H
#define XENOPS_SERVER_PRIV_H

#include <stdatomic.h>

#include "atoms/exec.h"
#include "atoms/expand.h"
#include "server.h"

struct server {
    const struct config *cfg;
    struct vmextra_store *store;
    struct backend *backend;
    struct sm *sm;
    struct updates *updates;
    struct task_registry *tasks;
    struct queue_pool *pool_default;
    struct queue_pool *pool_parallel;
    struct queue_pool *pool_nested;
    struct queue_pool *pool_receive;
    struct exec_env env;
    atomic_bool legacy;
    char instance_id[37];
    /* This host's CPU featureset (Host.t features_*), worked out once. */
    char *featureset;
    /* Where HOST.stat reads the CPUs from: /proc/cpuinfo. */
    const char *cpuinfo_path;
    /* SRs registered with this daemon (sm/sr.c). */
    struct sr_registry *srs;
};

/* What the expansions need from a VM's records, read now: VBDs in store
 * order with can_attach_early decided by the SR driver (an explicit false
 * in the Vbd.t vetoes), VIFs. Dispose with server_vm_view_dispose. */
struct server_vm_view {
    struct expand_vm vm;
    struct expand_vbd *vbds;
    struct expand_vif *vifs;
};

int server_vm_view_load(struct server *srv, const char *id,
                        struct server_vm_view *v);
void server_vm_view_dispose(struct server_vm_view *v);

/* The featureset string of the CPU we run on ("" where unknown). Caller
 * frees. */
char *server_host_featureset(void);

/* Tests: read the CPUs from path (borrowed) instead of /proc/cpuinfo. */
void server_set_cpuinfo_path(struct server *srv, const char *path);

#endif
