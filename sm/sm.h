/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sm: the storage-manager layer (design/ARCHITECTURE.md section 5). Owns
 * the per-host datapath table and the rules that make storage safe to
 * share: a datapath ("vbd/<domid>/<dev>") is the unit of ownership; a VDI
 * is attached on the host while any datapath holds it and detached by the
 * driver only when the last one lets go; a VDI is active for at most one
 * datapath. Tearing down one datapath never touches another's state.
 * Does not own: what the block device in the domain looks like (backend.h)
 * nor which VBDs a VM has (the store).
 *
 * Drivers: an SR uuid maps to a driver (struct sm_driver_ops). This issue
 * has the in-process test driver (sm_testdrv.h); SMAPIv1/v3 adapters
 * register the same way. ["Local", path] disks need no driver: attach
 * returns the path, and nothing else is called.
 *
 * Errors: driver failures come back as XO_EBACKEND with a
 * Storage_backend_error detail naming the driver's code. Activating a VDI
 * that another datapath holds active is XO_EBACKEND "VDI_IN_USE".
 *
 * Persistence: with sm_open_table(persist=true) the table lives on in
 * <dir>/datapaths.json across a daemon restart, written crash-safely on
 * every change. Attach and activate are recorded before the driver is
 * called, deactivate and detach after it returns, so the file always
 * lists at least what the drivers hold; releasing what no VBD needs any
 * more is the caller's start-up reconciliation (server.c).
 *
 * Threading: one table mutex, never held across a driver call or a file
 * write. Calls for one VDI are serialised (a per-VDI busy flag); calls
 * for different VDIs run in parallel, which is what lets N slow attaches
 * overlap.
 */
#ifndef XENOPS_SM_H
#define XENOPS_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

struct sm;

/* Driver operations; priv is the pointer given at registration. */
struct sm_driver_ops {
    const char *name;
    /* --- mandatory --- */
    /* The SM's required_api_version ("1.0" SMAPIv1, "3.0"/"5.0" v3). */
    int (*query)(void *priv, char **api_version_r);
    /* Attach: params_r = the block device/params for the backend. */
    int (*attach)(void *priv, const char *dp, const char *sr,
                  const char *vdi, const char *domain, bool rw,
                  char **params_r);
    int (*activate)(void *priv, const char *dp, const char *sr,
                    const char *vdi, const char *domain);
    int (*deactivate)(void *priv, const char *dp, const char *sr,
                      const char *vdi, const char *domain);
    int (*detach)(void *priv, const char *dp, const char *sr,
                  const char *vdi, const char *domain);
    /* --- optional (NULL: nothing to do) --- */
    int (*epoch_begin)(void *priv, const char *sr, const char *vdi,
                       const char *domain, bool persistent);
    int (*epoch_end)(void *priv, const char *sr, const char *vdi,
                     const char *domain);
    /* Identity of the driver's code (e.g. inode, size and mtime of its
     * file): sm_can_attach_early asks query() again when it changes, so
     * an upgraded driver is noticed without a restart. NULL: ask once. */
    int (*stamp)(void *priv, uint64_t *stamp_r);
    void (*free)(void *priv);
};

int sm_new(struct sm **sm_r);
void sm_free(struct sm *sm);

/*
 * Make the table persistent in dir (created if missing) and load what a
 * previous run left there, without calling any driver. Call once, after
 * the SRs' drivers are registered and before any datapath exists. A
 * datapath of an SR with no driver now is dropped with an ERROR log.
 * persist=false: memory only (returns 0). A malformed file is XO_EINVAL
 * and leaves the table empty and not persistent.
 */
int sm_open_table(struct sm *sm, const char *dir, bool persist);

/* Register the driver for an SR (takes priv; ops->free releases it).
 * XO_EEXISTS if the SR is registered. */
int sm_register_sr(struct sm *sm, const char *sr_uuid,
                   const struct sm_driver_ops *ops, void *priv);

/* Forget an SR's driver (ops->free runs). XO_ECONNECTED while a datapath
 * holds one of its VDIs; XO_ENOTFOUND if it is not registered. */
int sm_unregister_sr(struct sm *sm, const char *sr_uuid);

/*
 * Whether a VBD on this disk may be attached before a migration's downtime:
 * only VDI disks whose SR driver reports required_api_version >= 3.0
 * (xapi's rule), cached per SR; asked again when the driver's stamp
 * changes (drivers without a stamp op are asked once).
 */
bool sm_can_attach_early(struct sm *sm, const struct model_disk *disk);

/*
 * Attach disk for datapath dp on behalf of frontend domain `domain`
 * (decimal domid string). The driver is called only if no other datapath
 * holds the VDI attached. params_r receives the device params. Attaching a
 * dp twice is idempotent (returns the same params).
 */
int sm_attach(struct sm *sm, const char *dp, const struct model_disk *disk,
              const char *domain, bool rw, char **params_r);
/* Activate for dp (which must be attached: XO_EINVAL otherwise). */
int sm_activate(struct sm *sm, const char *dp);
/* Deactivate dp if it is active; a dp that is unknown or inactive is fine. */
int sm_deactivate(struct sm *sm, const char *dp);
/* Deactivate if active, then release dp's attach (the driver detaches when
 * no datapath holds the VDI). Unknown dp: 0 (idempotent). */
int sm_dp_destroy(struct sm *sm, const char *dp);

int sm_epoch_begin(struct sm *sm, const struct model_disk *disk,
                   const char *domain, bool persistent);
int sm_epoch_end(struct sm *sm, const struct model_disk *disk,
                 const char *domain);

/* State of one datapath (false/false when unknown). */
void sm_dp_state(struct sm *sm, const char *dp, bool *attached_r,
                 bool *active_r);
/* The datapath table as JSON text: {"<dp>": {"sr","vdi","domain","rw",
 * "active","params"}}, as the drivers may hold it ("active" also while an
 * activate is in flight; no "params" while the attach is); caller frees. */
char *sm_dump_json(struct sm *sm);

/* Ids of every datapath in the table (also those whose attach is in
 * flight). *ids_r: malloc'd array of malloc'd strings, freed with
 * sm_dp_list_free. Returns 0. */
int sm_dp_list(struct sm *sm, char ***ids_r, size_t *n_r);
void sm_dp_list_free(char **ids, size_t n);

#endif
