/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * smapiv3: the SMAPIv3 plugin adapter, doing what xapi-storage-script does
 * for xapi (reference/interfaces.md 4). Plugins live under a root:
 *   <root>/volume/<name>/     volume plugin of SR type T: name is
 *                             "org.xen.xapi.storage.<T>" or "<T>"
 *                             (matched case-insensitively, first wins)
 *   <root>/datapath/<scheme>/ datapath plugin for URIs "<scheme>://..."
 * Every call runs "<dir>/<Interface>.<method> --json" (file name matched
 * case-insensitively) through sm_exec with ONE line of JSON on stdin, the
 * named arguments object including "dbg" (the datapath name when there
 * is one, else "xenopsd-c"). stdout is the JSON result; with a non-zero
 * exit it is the error {"code", "params", "backtrace"}.
 *
 * Calls:
 *   query       Plugin.Query {dbg} -> required_api_version
 *   attach      Volume.stat {dbg, sr, key} -> the volume's "uri" list; the
 *               first URI whose scheme has a datapath plugin is chosen;
 *               then Datapath.attach {dbg, uri, domain} -> backend. The
 *               params: XenDisk.params, else BlockDevice.path, else
 *               File.path, else Nbd.uri.
 *   activate    Datapath.activate {dbg, uri, domain}, or
 *               Datapath.activate_readonly when the VDI was attached
 *               read-only and the datapath plugin has that script
 *   deactivate, detach   Datapath.deactivate / Datapath.detach
 *   epoch_begin persistent: nothing (as xapi-storage-script, for datapath
 *               plugins without NONPERSISTENT); non-persistent:
 *               Unimplemented (clone-on-boot is not supported)
 * The URI chosen at attach is remembered per VDI, so activate, deactivate
 * and detach need no second Volume.stat (one process less inside a
 * migration's downtime); after a daemon restart the first call of a VDI
 * stats it again. domain is the frontend domid as xenopsd passes it,
 * except "0" (dom0), which becomes "u0-" + the datapath name with '/' and
 * '-' replaced by '_' (e.g. "u0-vbd_0_xvda").
 *
 * Errors (Storage_backend_error):
 * - the plugin's error JSON: [code, params] (xenopsd drops the backtrace
 *   of Backend_error_with_backtrace); params that are not strings are
 *   passed as their JSON text;
 * - no usable URI: MISSING_URI; anything else names driver (the volume
 *   plugin, or for Datapath.* the datapath plugin, e.g. "loop+file"),
 *   command and VDI as sm_exec.h says: SCRIPT_MISSING, SCRIPT_NOT_EXECUTABLE,
 *   SCRIPT_TIMEOUT, SCRIPT_FAILED ("signalled: ...", "bad json on
 *   stdout", "non-zero exit and bad json on stdout", a result of the
 *   wrong shape).
 *
 * Threading: the ops may run concurrently for different VDIs; the per-VDI
 * memory has its own lock.
 */
#ifndef XENOPS_SMAPIV3_H
#define XENOPS_SMAPIV3_H

#include "sm/sm.h"

extern const struct sm_driver_ops smapiv3_ops;

/*
 * Run the volume plugin's SR.attach {dbg, configuration} for an SR of type
 * `plugin` ([A-Za-z0-9_.-], 1..64) under root; *sr_uri_r (caller frees) is
 * the SR string it returns, to give to smapiv3_driver_new.
 * device_config_json: a JSON object of string values (NULL: {}).
 * Errors: XO_EINVAL (bad argument), XO_ENOTFOUND with Does_not_exist
 * ["SR driver", plugin] when there is no such volume plugin, XO_EBACKEND.
 */
int smapiv3_sr_attach(const char *root, const char *plugin,
                      const char *device_config_json, int timeout_ms,
                      char **sr_uri_r);

/*
 * A driver instance for the SR whose SR.attach returned sr_uri. On
 * success *ops_r = &smapiv3_ops and *priv_r is the instance (released by
 * ops->free). Errors as smapiv3_sr_attach. Runs nothing.
 */
int smapiv3_driver_new(const char *root, const char *plugin,
                       const char *sr_uri, int timeout_ms,
                       const struct sm_driver_ops **ops_r, void **priv_r);

#endif
