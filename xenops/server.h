/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * server: the daemon's state and the operations the message interface
 * exposes. Owns the store, the backend, the SM layer, tasks, UPDATES and
 * the four worker pools (default, parallel, nested, receive), and turns an
 * API call into either an immediate answer (records: add, stat, list,
 * remove) or a queued operation: a task is created, the operation is
 * pushed on the default pool under the VM's id (one operation per VM at a
 * time), and when a worker picks it up the operation is expanded into an
 * atom tree from the VM's current records and run. A failed operation is
 * rolled back (see exec.h) and its task fails with the wire error.
 *
 * Records are stored and returned in canonical form (model.h): VM.stat,
 * VBD.stat/list and VIF.stat/list give complete Vm.t / Vbd.t / Vif.t.
 *
 * The legacy flag (xenopsd-vbd-plug-unplug-legacy) is read when an
 * operation is queued and fixed for its whole run.
 *
 * All functions return 0 or an xo_err with the wire detail set. JSON
 * results are malloc'd texts the caller frees.
 */
#ifndef XENOPS_SERVER_H
#define XENOPS_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

#include "atoms/atom.h"

struct admin;
struct backend;
struct config;
struct server;
struct sm;
struct task_registry;
struct updates;

/* Build everything from cfg (borrowed; must outlive the server). backend
 * may be given (tests); NULL makes the one cfg->backend names. */
int server_new(const struct config *cfg, struct backend *backend,
               struct server **srv_r);
/* Drain the pools and free everything. */
void server_free(struct server *srv);

struct sm *server_sm(struct server *srv);
/* What admin needs of the server (admin.h: main builds it with
 * admin_new). */
struct admin_deps;
void server_admin_deps(struct server *srv, struct admin_deps *d);
struct backend *server_backend(struct server *srv);
struct task_registry *server_tasks(struct server *srv);
struct updates *server_updates(struct server *srv);
bool server_legacy(struct server *srv);
void server_set_legacy(struct server *srv, bool legacy);
int server_set_worker_pool_size(struct server *srv, int n);

/* What live migration uses of the server (migrate.h): its services and
 * callbacks for the legacy flag, the VMs' devices and the migration
 * table. The caller adds the method table. */
struct migrate_deps;
void server_migrate_deps(struct server *srv, struct migrate_deps *d);

/* ---- immediate calls ---- */
int server_vm_add(struct server *srv, yajl_val vm, char **id_r);
int server_vm_remove(struct server *srv, const char *id);
/* [Vm.t, Vm.state] */
int server_vm_stat(struct server *srv, const char *id, char **json_r);
int server_vm_exists(struct server *srv, const char *id, bool *r);
int server_vm_list(struct server *srv, char **json_r);

/* VBD/VIF ids are (vm, dev). add returns the id as JSON [vm, dev]. */
int server_vbd_add(struct server *srv, yajl_val vbd, char **id_json_r);
int server_vbd_remove(struct server *srv, const char *vm, const char *dev);
int server_vbd_stat(struct server *srv, const char *vm, const char *dev,
                    char **json_r);
int server_vbd_list(struct server *srv, const char *vm, char **json_r);
int server_vif_add(struct server *srv, yajl_val vif, char **id_json_r);
int server_vif_remove(struct server *srv, const char *vm, const char *dev);
int server_vif_stat(struct server *srv, const char *vm, const char *dev,
                    char **json_r);
int server_vif_list(struct server *srv, const char *vm, char **json_r);

/* HOST.stat: Host.t JSON (cpu_info from the control domain's view of the
 * CPUs, hypervisor and chipset from the backend), with ext_json (a JSON
 * object text, e.g. admin_host_json) as the "xenops_c" member, or none
 * when NULL. */
int server_host_stat(struct server *srv, const char *ext_json,
                     char **json_r);
/* VM.generate_state_string: the backend's initial state for the Vm.t vm
 * (validated); *state_r is the plain string. */
int server_vm_generate_state_string(struct server *srv, yajl_val vm,
                                    char **state_r);
/* VM.export_metadata: the Metadata.t text (metadata.h). */
int server_vm_export_metadata(struct server *srv, const char *id,
                              char **json_r);
/* VM.import_metadata: validate, then store at once; *id_r is the VM id. */
int server_vm_import_metadata(struct server *srv, const char *text,
                              char **id_r);
/* VM.import_metadata_async: validate now, store on the VM's queue. */
int server_vm_import_metadata_async(struct server *srv, const char *dbg,
                                    const char *text, char **task_id_r);

/* ---- queued operations: each returns the new task id ---- */
enum server_op_kind {
    SERVER_OP_VM_START,
    SERVER_OP_VM_SHUTDOWN,      /* VM.shutdown = xenopsd VM_poweroff */
    SERVER_OP_VM_REBOOT,
    SERVER_OP_VM_SUSPEND,
    SERVER_OP_VM_RESUME,
    SERVER_OP_VBD_PLUG,
    SERVER_OP_VBD_UNPLUG,
    SERVER_OP_VIF_PLUG,
    SERVER_OP_VIF_UNPLUG,
    SERVER_OP_ATOMIC,           /* one leaf atom (VM.create, VM.pause...) */
};

struct server_op_args {
    enum server_op_kind kind;
    const char *vm;
    const char *dev;            /* VBD/VIF ops and atoms */
    bool flag;                  /* start: paused; unplug: force; atoms:
                                   struct atom's flag (VIF_set_carrier) */
    double timeout;             /* shutdown/reboot delay; < 0 none;
                                   VM_delay: seconds */
    const char *path;           /* suspend/resume image */
    enum atom_kind atomic;      /* SERVER_OP_ATOMIC */
    int64_t ints[2];            /* atoms: struct atom's ints */
    const char *text;           /* atoms: struct atom's text (canonical
                                   JSON argument) */
};

int server_queue_op(struct server *srv, const char *dbg,
                    const struct server_op_args *args, char **task_id_r);

/* The atom tree an operation would run now, as text (atom_format), for
 * diagnostics and tests. */
int server_plan(struct server *srv, const struct server_op_args *args,
                bool legacy, char **text_r);

/* SRs: see sm/sr.h. device_config_json may be NULL. */
int server_sr_add(struct server *srv, const char *uuid, const char *type,
                  const char *device_config_json);
int server_sr_remove(struct server *srv, const char *uuid);
char *server_sr_list_json(struct server *srv);

/* query: {name, vendor, version, features, instance_id}. */
char *server_query_json(struct server *srv);
/* Diagnostics: queues, datapaths, backend. */
char *server_diagnostics_json(struct server *srv);

#endif
