/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * metadata: VM.export_metadata and VM.import_metadata, xenopsd's Metadata.t
 * (xenops_interface.ml):
 *
 *   {"vm": Vm.t, "vbds": [Vbd.t], "vifs": [Vif.t], "pcis": [],
 *    "vgpus": [], "vusbs": [], "domains": "<backend internal state>"}
 *
 * "domains" is a JSON object serialised into a string; ours holds
 * {"last_start_time": f}, which is also the name xenopsd's VmExtra uses,
 * so the start time survives a migration in either direction.
 *
 * Import (as xenopsd's import_metadata): the VM takes the id in vm.id and
 * every device id is rewritten to [vm.id, dev] (hd* devices become xvd*);
 * an existing VM's Vm.t is replaced, its VBDs and VIFs that the metadata
 * does not name are deleted and the others replaced, all in one store
 * commit; its attach records (attached_vdis) are kept untouched, since
 * they describe datapaths of this host. A Vm.t without a
 * platformdata:featureset gets the host's. PCI, vGPU and VUSB devices are
 * not supported: a metadata that has any is refused with Unimplemented.
 *
 * Migration's id swap is export(id) -> metadata_set_vm_id(tmp) ->
 * import, which yields a VM whose Vm.t, Vbd.t and Vif.t ids all carry
 * tmp.
 *
 * Errors: bad input (not JSON, a missing or ill-typed field, a bad id, a
 * duplicate device) is XO_EINVAL with a detail and changes nothing.
 * Ownership: returned texts and structs are the caller's.
 */
#ifndef XENOPS_METADATA_H
#define XENOPS_METADATA_H

#include <stdbool.h>

#include <yajl/yajl_tree.h>

struct updates;
struct vmextra_store;

/* A decoded, validated Metadata.t, ready to import. */
struct metadata;

/*
 * The Metadata.t text of VM id. vdi_map ({"sr/vdi": "sr/vdi"}) and
 * vif_map ({"<device>": Network.t}) may be NULL; given, they remap VBD
 * backends, PV bootloader devices and VIF backends as xenopsd's
 * export_metadata does for VM.migrate.
 */
int metadata_export(struct vmextra_store *store, const char *id,
                    yajl_val vdi_map, yajl_val vif_map, char **json_r);

/*
 * Decode text. featureset_pv / featureset_hvm (may be NULL: no change)
 * are added to the Vm.t's platformdata when it has no featureset (PV
 * builder: the PV one; HVM, PVH, PVinPVH: the HVM one).
 */
int metadata_parse(const char *text, const char *featureset_pv,
                   const char *featureset_hvm, struct metadata **md_r);
void metadata_free(struct metadata *md);
/* The VM id the metadata imports as. */
const char *metadata_vm_id(const struct metadata *md);
/* The canonical Metadata.t text (ids rewritten, featureset added). */
const char *metadata_json(const struct metadata *md);

/* Store md (see above) and signal the changes on updates (may be NULL). */
int metadata_import(struct vmextra_store *store, struct updates *updates,
                    const struct metadata *md);

/* A copy of Metadata.t text with vm.id and the VM part of every device id
 * set to new_id (validated). */
int metadata_set_vm_id(const char *text, const char *new_id,
                       char **json_r);

#endif
