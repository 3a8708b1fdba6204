/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * smapiv1: the SMAPIv1 driver adapter (reference/interfaces.md 3). One
 * instance serves one SR: it runs <sm-dir>/<Type>SR (Type matched
 * case-insensitively) through sm_exec with exactly one argv argument, an
 * XML-RPC methodCall whose single param is the struct xapi sends:
 *   host_ref, command, args, device_config (+ SRmaster "true"),
 *   session_ref, sr_ref, sr_uuid, vdi_ref, vdi_location, vdi_uuid,
 *   vdi_on_boot, vdi_allow_caching       (in this order, as xapi does)
 * with synthetic references: host_ref and session_ref "OpaqueRef:NULL",
 * sr_ref "OpaqueRef:<sr-uuid>", vdi_ref "OpaqueRef:<vdi>"; vdi_uuid is
 * the VDI location (xenopsd only knows the location). sr_get_driver_info
 * gets host_ref, command, args [] and device_config {} only, as xapi
 * sends it when it discovers drivers. The environment adds ORIGINATOR=SM.
 *
 * Commands and their args: sr_get_driver_info (-> required_api_version),
 * vdi_attach ["true"|"false"] (writable), vdi_activate ["true"|"false"]
 * (as the VDI was attached), vdi_deactivate [], vdi_detach [],
 * vdi_epoch_begin [] (vdi_on_boot "persist"|"reset" from persistent),
 * vdi_epoch_end []. vdi_attach's result struct gives the backend params:
 * "params" if present and non-empty, else "params_nbd" (xapi's choice).
 *
 * Errors (Storage_backend_error unless said otherwise):
 * - the driver's <fault>, exactly as xapi maps it: 38 -> Unimplemented
 *   <command> (XO_EUNSUPPORTED); 39 -> SR_NOT_EMPTY []; 24 -> VDI_IN_USE
 *   []; 16 -> SR_DEVICE_IN_USE []; 144 -> VDI_MISSING [sr_ref, vdi_ref];
 *   any other N -> SR_BACKEND_FAILURE_<N> ["", faultString, stderr];
 * - everything else names driver, command and VDI (sm_exec.h): a hang
 *   (SCRIPT_TIMEOUT), a crash (SCRIPT_FAILED "signalled: ..."), a
 *   non-zero exit (SCRIPT_FAILED "non-zero exit <n>"), output that is not
 *   a methodResponse or a result without the expected fields
 *   (SCRIPT_FAILED), a missing driver (SCRIPT_MISSING).
 *
 * Threading: the ops may run concurrently for different VDIs; the
 * per-VDI "writable" memory (for vdi_activate's args) has its own lock.
 */
#ifndef XENOPS_SMAPIV1_H
#define XENOPS_SMAPIV1_H

#include "sm/sm.h"

extern const struct sm_driver_ops smapiv1_ops;

/*
 * A driver instance for SR sr_uuid of type `type` ([A-Za-z0-9_.-],
 * 1..64) from sm_dir. device_config_json: a JSON object of string values
 * (NULL: {}). timeout_ms (> 0) bounds every command. On success *ops_r =
 * &smapiv1_ops and *priv_r is the instance (released by ops->free, which
 * sm_free calls for registered SRs). Errors: XO_EINVAL (bad argument,
 * nothing created), XO_ENOTFOUND with Does_not_exist ["SR driver", type]
 * when <sm-dir> holds no <Type>SR. Runs nothing.
 */
int smapiv1_driver_new(const char *sm_dir, const char *type,
                       const char *sr_uuid, const char *device_config_json,
                       int timeout_ms, const struct sm_driver_ops **ops_r,
                       void **priv_r);

/* The driver executable an instance runs (borrowed). */
const char *smapiv1_driver_path(const void *priv);

#endif
