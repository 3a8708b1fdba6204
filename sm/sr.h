/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sr: the SRs registered with this daemon. xenopsd has no SR
 * registry of its own (xapi's storage layer owns SRs); a stand-alone
 * xenopsd-c needs one to know which driver serves a VBD's
 * ["VDI", "<sr-uuid>/<vdi>"] backend. Owns: the list of SRs, their
 * persistence (<database-path>/sr/<uuid>.json, crash-safe), resolving an
 * SR's type to a driver, and registering that driver with the SM layer.
 *
 * Driver resolution, for a type T (validated: [A-Za-z0-9_.-], 1..64):
 *   SMAPIv1: <sm-dir>/<T>SR, matched case-insensitively;
 *   SMAPIv3: <storage-script-root>/volume/org.xen.xapi.storage.<T> or
 *            <storage-script-root>/volume/<T>, case-insensitively.
 * For a v3 SR, sr_add runs the plugin's SR.attach with the device_config
 * and keeps the SR URI it returns.
 *
 * Threading: one mutex; sr_add/sr_remove run driver commands outside it.
 */
#ifndef XENOPS_SR_H
#define XENOPS_SR_H

#include <stdbool.h>

struct sm;
struct sr_registry;

struct sr_config {
    const char *db_dir;         /* database-path; SRs live in <db>/sr */
    bool persist;
    const char *sm_dir;         /* "sm-dir" */
    const char *script_root;    /* "storage-script-root" */
    int timeout_ms;             /* per driver command */
};

/* Load persisted SRs and register their drivers with sm (an SR whose
 * driver is gone is kept, logged, and reported as unavailable). */
int sr_registry_open(const struct sr_config *cfg, struct sm *sm,
                     struct sr_registry **reg_r);
void sr_registry_close(struct sr_registry *reg);

/*
 * Register an SR: uuid (a UUID), type, device_config (a JSON object of
 * string values, or NULL for {}). XO_EEXISTS if registered, XO_EINVAL for
 * bad input (nothing changes), XO_ENOTFOUND (Does_not_exist ["SR driver",
 * type]) if no driver matches, XO_EBACKEND if the driver fails.
 */
int sr_add(struct sr_registry *reg, const char *uuid, const char *type,
           const char *device_config_json);
/* Forget an SR; XO_ECONNECTED while any datapath holds one of its VDIs. */
int sr_remove(struct sr_registry *reg, const char *uuid);
/* [{"uuid","type","api":"SMAPIv1"|"SMAPIv3","device_config","sr_uri"?,
 *   "available"}] as JSON text; caller frees. */
char *sr_list_json(struct sr_registry *reg);

/*
 * Per-SR attach-early policy: "auto" (default) leaves it to the
 * driver (can_attach_early from its API version); "never" keeps the SR's
 * VBDs on the old path (attach inside the downtime), e.g. for one
 * misbehaving SR. Persisted with the SR as "attach_early_policy"; SR.list
 * shows it and folds it into "attach_early". XO_EINVAL for a bad uuid or
 * policy, XO_ENOTFOUND (Does_not_exist ["SR", uuid]) for an unknown SR;
 * on error nothing changes.
 */
int sr_set_attach_early(struct sr_registry *reg, const char *uuid,
                        const char *policy);
/* False iff sr_uuid is a registered SR whose policy is "never"; true for
 * NULL or an SR this registry does not know (the driver decides). */
bool sr_attach_early_allowed(struct sr_registry *reg, const char *sr_uuid);

#endif
