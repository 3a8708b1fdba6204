/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * backend: the interface between atoms and whatever runs domains. Two
 * implementations: backend_sim (in-process simulator, the default) and
 * backend_xenlight (libxl/libxenctrl/libxenstore). Atoms call only these
 * operations; storage (SM) calls are not the backend's business (see
 * sm/sm.h): the backend creates and removes the block *device* given the
 * params that the SM attach produced.
 *
 * Live migration reaches the hypervisor only through this interface: the
 * migration protocol (migrate.c) owns the connections, handshakes and the
 * atoms around the switch-over; the backend owns how a live domain's state
 * is streamed out of it into an fd (pre-copy rounds, when to stop) and
 * restored from one, calling back to the caller to pause the domain at the
 * switch-over and to report progress.
 *
 * Contract:
 * - Every operation returns 0 or an xo_err, with the wire detail set by the
 *   backend where it detects the failure (e.g. Does_not_exist ["VM", id]).
 * - Operations on one VM are serialised by the caller (per-VM queue), but
 *   different VMs' operations run concurrently: backends lock internally.
 * - Mandatory operations are all of struct backend_ops except those marked
 *   optional; for a NULL optional operation the caller (an atom, the
 *   server) returns XO_EUNSUPPORTED (Unimplemented).
 */
#ifndef XENOPS_BACKEND_H
#define XENOPS_BACKEND_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum backend_power {
    BACKEND_HALTED,
    BACKEND_RUNNING,
    BACKEND_PAUSED,
    BACKEND_SUSPENDED,
};

/* "Halted", "Running", "Paused", "Suspended" (the wire names). */
const char *backend_power_name(enum backend_power p);

/* What VM_create needs from the Vm.t. */
struct backend_vm_config {
    int64_t memory_bytes;     /* memory_static_max */
    int vcpus;
    bool hvm;
    const char *final_id;     /* migration: the id this VM will take, or
                                 NULL */
    const char *vm_json;      /* the canonical Vm.t (model.h), for what a
                                 real domain needs besides the above: the
                                 builder and its boot details, platformdata;
                                 borrowed for the call */
};

struct backend_vm_state {
    enum backend_power power;
    int domid;                /* -1 when there is no domain */
    bool built;
    char action_request[16];  /* "" none, "poweroff", "reboot", ... */
    int64_t memory_bytes;     /* memory the domain owns */
    int64_t memory_target;    /* balloon target: the dynamic maximum */
    int vcpus;                /* online vcpus */
    double last_start_time;   /* epoch seconds of VM_create */
    uint64_t heartbeat;       /* simulator: guest ticks so far */
};

struct backend_vbd_state {
    bool active;              /* VBD_set_active */
    bool plugged;             /* a block device exists in the domain */
    char params[256];         /* the device's backend params, "" if none */
    int backend_state;        /* the backend's xenbus state (1 Initialising
                                 .. 6 Closed), 0 when there is none */
};

/* What HOST.stat needs from the backend (the CPU part comes from the
 * control domain's view, see server). */
struct backend_host_info {
    char hypervisor_version[64];    /* e.g. "4.17.0" */
    char capabilities[256];         /* e.g. "xen-3.0-x86_64 hvm-3.0-x86_64" */
    bool iommu;
    bool hvm;
};

/* Flags of vm_save. */
#define BACKEND_SAVE_LIVE 0x1

/* What the progress callback of vm_migrate_send sees after each live
 * round of a pre-copy. */
struct backend_migrate_progress {
    unsigned round;             /* the round just sent, 0 = every page */
    uint64_t bytes_sent;        /* on the wire so far */
    uint64_t bytes_remaining;   /* dirty memory still to send */
    uint64_t dirty_rate;        /* pages/s dirtied during the round */
};

/* How a live migration's state stream runs (both sides). */
struct backend_migrate_opts {
    /* Switch over when the rest fits this downtime at the measured
     * bandwidth... */
    uint64_t max_downtime_ms;
    /* ...or after this many live rounds (>= 1): then pause anyway, or,
     * with abort_on_downtime, give up with XO_ETIMEDOUT and the domain
     * still running. */
    unsigned max_iterations;
    bool abort_on_downtime;
    bool compress;              /* compress the stream */
    /* Checked between steps and when a wait wakes; may be NULL. A wait
     * on the stream is woken by the caller shutting fd down from its
     * cancel callback. */
    const atomic_bool *cancel;
    /* Sender, mandatory: pause the domain (the downtime starts); 0 or an
     * xo_err. Called at most once, on the calling thread. */
    int (*pause)(void *arg);
    void *pause_arg;
    /* Sender, optional: after each live round, on the calling thread. */
    void (*progress)(const struct backend_migrate_progress *p, void *arg);
    void *progress_arg;
};

/* Filled by either side (zeroed at the start of the call). */
struct backend_migrate_stats {
    uint64_t bytes;             /* on the wire */
    unsigned rounds;            /* live rounds */
    uint64_t final_ns;          /* the stop-and-copy round */
    bool paused;                /* sender: the pause callback succeeded */
};

struct backend;

struct backend_ops {
    const char *name;

    /* --- mandatory --- */
    void (*destroy)(struct backend *b);
    /* Create an empty paused domain (Already_exists if one exists). */
    int (*vm_create)(struct backend *b, const char *vm,
                     const struct backend_vm_config *cfg);
    int (*vm_build)(struct backend *b, const char *vm, bool force);
    /* Pause/unpause need a built domain (Domain_not_built). Unpause of a
     * running domain succeeds with no change (xenopsd). */
    int (*vm_pause)(struct backend *b, const char *vm);
    int (*vm_unpause)(struct backend *b, const char *vm);
    /* Destroy the domain; no domain is fine (idempotent). */
    int (*vm_destroy)(struct backend *b, const char *vm);
    /* Move the domain and every backend record of old to new. No domain
     * for old is fine. Already_exists if new has one. */
    int (*vm_rename)(struct backend *b, const char *old_id,
                     const char *new_id);
    /* Write the memory image to fd, leaving the domain suspended. */
    int (*vm_save)(struct backend *b, const char *vm, int fd,
                   unsigned flags, const atomic_bool *cancel);
    /* Read a memory image from fd into the (created) domain. cancel (may
     * be NULL) is checked between chunks; a wait on a socket fd ends when
     * the caller shuts fd down (shutdown(2)) after setting it. */
    int (*vm_restore)(struct backend *b, const char *vm, int fd,
                      const atomic_bool *cancel);
    /* NULL request clears it (the domain becomes "survivable"). */
    int (*vm_set_action_request)(struct backend *b, const char *vm,
                                 const char *request);
    /* Ask the guest to shut down (reason "Halt", "Reboot", "Suspend",
     * "PowerOff"); wait at most timeout_s. */
    int (*vm_shutdown_domain)(struct backend *b, const char *vm,
                              const char *reason, double timeout_s);
    /* State of the VM's domain; power Halted and domid -1 if none. */
    int (*vm_get_state)(struct backend *b, const char *vm,
                        struct backend_vm_state *st);

    int (*vbd_set_active)(struct backend *b, const char *vm,
                          const char *dev, bool active);
    /* Create the block device in the domain from attach params. A VBD that
     * is not active is refused (XO_EINVAL detail). Already plugged:
     * Already_exists. */
    int (*vbd_add_device)(struct backend *b, const char *vm,
                          const char *dev, const char *params, bool rw);
    /* Remove the device; a missing domain or device is fine. */
    int (*vbd_remove_device)(struct backend *b, const char *vm,
                             const char *dev, bool force);
    int (*vbd_get_state)(struct backend *b, const char *vm, const char *dev,
                         struct backend_vbd_state *st);

    int (*vif_set_active)(struct backend *b, const char *vm,
                          const char *dev, bool active);
    /* vif_json: the canonical Vif.t (mac, mtu, backend network,
     * position), borrowed for the call. Without a domain yet (a migration
     * receiver before the stream) the device is created with it. */
    int (*vif_plug)(struct backend *b, const char *vm, const char *dev,
                    const char *vif_json);
    int (*vif_unplug)(struct backend *b, const char *vm, const char *dev,
                      bool force);
    /* plugged_r: a network device exists for it. */
    int (*vif_get_state)(struct backend *b, const char *vm, const char *dev,
                         bool *active_r, bool *plugged_r);

    /* Live migration, sender: stream vm's state to fd while it runs,
     * pause it through o->pause at the switch-over and send the rest.
     * After a failure past the pause (st->paused) the domain stays paused
     * and the caller decides; before it, the domain runs untouched. */
    int (*vm_migrate_send)(struct backend *b, const char *vm, int fd,
                           const struct backend_migrate_opts *o,
                           struct backend_migrate_stats *st);
    /* Live migration, receiver: read the stream from fd into vm's paused
     * (created, not built) domain. On failure the domain's state is
     * unspecified: destroy it. */
    int (*vm_migrate_receive)(struct backend *b, const char *vm, int fd,
                              const struct backend_migrate_opts *o,
                              struct backend_migrate_stats *st);
    /* Forget every record kept for vm, which has no domain any more (a
     * domain that migrated away, under a temporary id); a VM that still
     * has a domain is refused (XO_EEXISTS). Nothing to forget is fine. */
    int (*vm_forget)(struct backend *b, const char *vm);
    /* The VMs that have a domain, for start-up reconciliation: *vms_r is
     * a malloc'd array of n malloc'd ids (free with backend_list_free). */
    int (*list_domains)(struct backend *b, char ***vms_r, size_t *n_r);

    /* --- optional: NULL makes the caller answer Unimplemented --- */
    /* After a received domain was unpaused: wait (honouring cancel) for
     * its guest to run and give the longest stall it saw, in ns. */
    int (*vm_migrate_guest_downtime)(struct backend *b, const char *vm,
                                     const atomic_bool *cancel,
                                     uint64_t *ns_r);
    /* Backend-specific diagnostics as a JSON object text (caller frees). */
    char *(*diagnostics)(struct backend *b);
    /* Hypervisor and chipset facts for HOST.stat. */
    int (*host_info)(struct backend *b, struct backend_host_info *hi);
    /* VM.generate_state_string: the initial backend state (e.g. a UEFI
     * variable store) for the Vm.t (canonical JSON); caller frees. */
    int (*vm_generate_state_string)(struct backend *b, const char *vm_json,
                                    char **state_r);
    /* The next three act on the VM's domain (Does_not_exist ["domain", vm]
     * if it has none) and do not touch the stored Vm.t. */
    /* Bring n vcpus online (1 <= n <= vcpu_max, checked by the caller). */
    int (*vm_set_vcpus)(struct backend *b, const char *vm, int n);
    /* New balloon range in bytes (min <= max, checked by the caller). */
    int (*vm_set_memory_dynamic_range)(struct backend *b, const char *vm,
                                       int64_t min, int64_t max);
    /* Write n xenstore keys relative to the domain's path, all or none;
     * a key that is not a relative path is XO_EINVAL. */
    int (*vm_set_xsdata)(struct backend *b, const char *vm,
                         const char *const *keys, const char *const *values,
                         size_t n);
    /* Apply to the live network device; a VIF without one (not plugged)
     * is fine: the Vif.t, which the caller updates, holds the value for
     * the next plug. mode_json is a canonical Vif.locking_mode. */
    int (*vif_set_carrier)(struct backend *b, const char *vm,
                           const char *dev, bool carrier);
    int (*vif_set_locking_mode)(struct backend *b, const char *vm,
                                const char *dev, const char *mode_json);
};

struct backend {
    const struct backend_ops *ops;
    void *priv;
};

/* Free a list_domains result; NULL is a no-op. */
void backend_list_free(char **vms, size_t n);

#endif
