/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * migrate: live migration between two daemons (or within one), xenopsd's
 * flow (reference/xenopsd-behaviour.md 2) with early VBD attach and the
 * guarantees of design/ARCHITECTURE.md 6.
 *
 * Sender (VM.migrate, on the VM's queue):
 *   0. export the VM's metadata with the VM's uuid rewritten to the
 *      temporary id tmp_dest (<first 24>000000000001, ids_tmp_id) and
 *      import it on the receiver (RPC to xenops_url);
 *   1. PUT <url>/migrate/vm/<tmp_dest> (cookies instance_id, final_id,
 *      dbg, mem_migration, compress); wait for handshake 1 (the receiver
 *      created the domain, plugged VIFs and attached the early VBDs);
 *   2. PUT <url>/migrate/mem/<tmp_dest>; "1-mem" there, "1-mem ACK" on
 *      the VM channel; pre-copy the memory while the VM runs; at the
 *      switch-over pause it (downtime begins), send the rest, deactivate
 *      its VBDs and rename it to tmp_src (<first 24>000000000000);
 *   3. send handshake 3 (all clear: the point of no return);
 *   4. wait for handshake 4 (the receiver unpaused: downtime ends), then
 *      shut tmp_src down and remove it.
 * Receiver (the /migrate/vm route, on the receive pool under tmp_dest):
 *   A. VM_create, VIFs, and, unless legacy, VBD_set_active + VBD_attach of
 *      every VBD that can attach early; handshake 1;
 *   B. receive the memory into the paused domain; wait for handshake 3;
 *   C. VM_rename to the final id, VBD_activate (attach + activate for the
 *      rest), VM_unpause; handshake 4, then a stats message (ours).
 *
 * Guarantees: before the point of no return any failure leaves the VM
 * running on the source and nothing on the receiver (early attaches
 * included). After it the receiver completes; if it reports a failure at
 * handshake 4 it has cleaned up, and the source takes the VM back. If the
 * channel breaks after it, the source asks the receiver (for up to a
 * minute) whether the VM runs there, and only if it surely does not does
 * it resume; otherwise the VM stays paused on the source (never running
 * twice).
 * A daemon killed mid-migration settles it at its next start: each half
 * keeps a marker in <database-path>/migrations while in flight; the
 * receiver's records of a VM it never unpaused are removed, and the
 * sender's VM gets its own id back (migrate.c, "crash journal").
 *
 * Dependencies are explicit: main builds a struct migrate from what the
 * server owns (migrate_deps) and hands it to the method table; migrate
 * knows the hypervisor only through backend.h and the server only through
 * the callbacks of migrate_deps.
 *
 * The task result is a JSON object: downtime_ms (source pause to receiver
 * confirmed unpause), guest_downtime_ms (largest heartbeat gap the guest
 * saw), bytes, rounds, phase_a_ms / phase_b_ms / phase_c_ms, and the VBD
 * work inside and outside the downtime.
 */
#ifndef XENOPS_MIGRATE_H
#define XENOPS_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

struct backend;
struct config;
struct exec_env;
struct expand_vm;
struct queue_pool;
struct rpc_method;
struct task_registry;
struct vmextra_store;

/* What migrate uses and does not own; everything must outlive it. */
struct migrate_deps {
    const struct config *cfg;
    struct vmextra_store *store;
    struct backend *backend;
    struct task_registry *tasks;
    struct queue_pool *pool_default;  /* the VMs' operation queues */
    struct queue_pool *pool_receive;  /* receives, under the temporary id */
    /* The executor's services (copied; the migration's Parallel groups
     * run on migrate's own pool instead of env->parallel_pool). */
    const struct exec_env *env;
    const char *instance_id;          /* this daemon's (a cookie) */
    /* POSTs to /services/xenops on the migration entry points are served
     * from this table with methods_ctx (the receiver's metadata import). */
    const struct rpc_method *methods;
    size_t n_methods;
    void *methods_ctx;
    /* The server's side, called with ctx: */
    void *ctx;
    /* xenopsd-vbd-plug-unplug-legacy now. */
    bool (*legacy)(void *ctx);
    /* The VM's devices as the expansions need them, read now (the SR
     * drivers decide can_attach_early); 0 or an xo_err (reported). Release
     * with vm_view_dispose. */
    int (*vm_view_load)(void *ctx, const char *id, struct expand_vm *vm_r);
    void (*vm_view_dispose)(void *ctx, struct expand_vm *vm);
    /* Remember task_id as vm's last migration (VM.migration_stats), with
     * note_ctx (admin's); may be NULL. */
    void (*note_migration)(void *note_ctx, const char *vm,
                           const char *task_id);
    void *note_ctx;
};

struct migrate;

/*
 * Settle the migrations a crash interrupted (crash journal), then start
 * the receiver's entry points: always <sockets-path>/xenopsd.forwarded,
 * and the TCP listener when migration-listen is set (it needs
 * migration-token-file: XO_EINVAL otherwise). deps is copied.
 */
int migrate_new(const struct migrate_deps *deps, struct migrate **m_r);
/* Stop the entry points, wait for the migrations in flight; NULL is a
 * no-op. */
void migrate_free(struct migrate *m);

struct migrate_send_args {
    const char *vm;
    yajl_val vdi_map;           /* {"sr/vdi": "sr/vdi"} or NULL */
    yajl_val vif_map;           /* {"<dev>": Network.t} or NULL */
    const char *url;            /* xenops_url */
    bool compress;
    bool verify_dest;
    bool localhost;
};

/* Queue a migration of args->vm on its queue; *task_id_r (caller frees)
 * is the task. XO_EINVAL for a bad id or URL, XO_ENOTFOUND for an unknown
 * VM; nothing is queued then. */
int migrate_queue_send(struct migrate *m, const char *dbg,
                       const struct migrate_send_args *args,
                       char **task_id_r);

#endif
