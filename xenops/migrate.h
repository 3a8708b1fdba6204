/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * migrate: live migration between two daemons (or within one), xenopsd's
 * flow (reference/xenopsd-behaviour.md 2) with early VBD attach and the
 * guarantees of design/ARCHITECTURE.md 6.
 *
 * Sender (VM.migrate, on the VM's queue):
 *   0. export the VM's metadata with the VM's uuid rewritten to the
 *      temporary id tmp_dest (<first 24>000000000001) and import it on the
 *      receiver (RPC to xenops_url);
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

#include "migrate_http.h"

struct server;

struct migrate_send_args {
    const char *vm;
    yajl_val vdi_map;           /* {"sr/vdi": "sr/vdi"} or NULL */
    yajl_val vif_map;           /* {"<dev>": Network.t} or NULL */
    const char *url;            /* xenops_url */
    bool compress;
    bool verify_dest;
    bool localhost;
};

/* Queue a migration of args->vm; returns the task id. */
int migrate_queue_send(struct server *srv, const char *dbg,
                       const struct migrate_send_args *args,
                       char **task_id_r);

/* The route for migrate_http listeners (ctx = the server). */
void migrate_route(void *ctx, int fd, const struct migrate_http_req *req);

/* Start the receiver's entry points the config asks for (TCP listener
 * when migration-listen is set; always the forwarded socket). POSTs to
 * /services/xenops are served from table with ctx. */
struct rpc_method;
int migrate_receiver_start(struct server *srv, const struct rpc_method *table,
                           size_t n, void *ctx);
void migrate_receiver_stop(struct server *srv);

#endif
