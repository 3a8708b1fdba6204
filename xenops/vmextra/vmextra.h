/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * vmextra: the persistent per-VM state store. One JSON document per VM,
 * <dir>/<vm-uuid>.json, holding everything the daemon keeps about the VM:
 * its Vm.t record, its Vbd.t and Vif.t records, and the "extra" state that
 * xenopsd keeps in VmExtra (attached_vdis, last_start_time). Keeping all of
 * a VM in one file is what makes VM_rename all-or-nothing.
 *
 * Document format (version 1):
 *   {"version": 1, "generation": N, "id": "<uuid>",
 *    "vm": <Vm.t or null>, "vbds": {"<dev>": <Vbd.t>}, "vifs": {...},
 *    "attached_vdis": {"<dev>": {"dp": s, "domid": n, "attach_info": {..}}},
 *    "last_start_time": f, "rename_from": "<uuid>" (only mid-rename)}
 * attached_vdis is keyed by device id only, never (vm, dev), so a rename
 * cannot orphan an entry (xen-api PR #6489). A document in an older shape
 * is migrated explicitly with a WARN line; an unknown version is refused
 * (XO_EINVAL), never silently emptied.
 *
 * Writes are crash-safe: temp file in the same dir, fsync, rename, fsync
 * the dir. Every commit must carry the generation it was loaded at; a stale
 * one is refused with XO_ECONFLICT and changes nothing.
 *
 * Rename (old -> new) steps, each a crash point:
 *   "rename:begin", write new doc carrying rename_from=old
 *   "rename:new-written", unlink old, fsync dir
 *   "rename:old-removed", rewrite new doc without rename_from
 *   "rename:done".
 * Recovery (vmextra_store_open): a doc with rename_from whose old doc still
 * exists rolls forward (old removed); leftover temp files are removed. So
 * after a crash at any point either all-old or all-new is visible.
 * Recovery has its own crash points ("recover:tmp-removed",
 * "recover:old-removed", and the commit points of its rewrite); running it
 * again after a crash there converges to the same state.
 *
 * Threading: a store has one mutex; every call is atomic with respect to
 * the others. Docs are private copies owned by the caller.
 */
#ifndef XENOPS_VMEXTRA_H
#define XENOPS_VMEXTRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMEXTRA_VERSION 1
/* Bounds on what is read or written: larger is refused with XO_EINVAL. */
#define VMEXTRA_MAX_DOC_BYTES (16u * 1024 * 1024)
#define VMEXTRA_MAX_RECORDS 1024    /* per map: vbds, vifs, attached_vdis */

struct vmextra_store;

/* One attach -> activate hand-off record (xenopsd's attached_vdi). */
struct vmextra_attached {
    char dev[33];
    char *dp;               /* datapath id, e.g. "vbd/5/xvda"; never
                               NULL: "" (unknown) in an entry migrated
                               from xenopsd's tuple-keyed shape, which
                               did not store it */
    int domid;              /* backend domain id */
    char *attach_info;      /* JSON text of the SM backend info */
};

/* A keyed JSON record: a Vbd.t or Vif.t by device id. */
struct vmextra_rec {
    char dev[33];
    char *json;
};

struct vmextra_doc {
    char id[37];
    uint64_t generation;    /* 0 = new, never committed */
    char *vm_json;          /* Vm.t, or NULL */
    struct vmextra_rec *vbds;
    size_t n_vbds;
    struct vmextra_rec *vifs;
    size_t n_vifs;
    struct vmextra_attached *attached;
    size_t n_attached;
    double last_start_time;
};

/*
 * Open (creating dir if needed, mode 0700) and run crash recovery.
 * persist=false keeps documents in memory only (same API, nothing on disk).
 */
int vmextra_store_open(const char *dir, bool persist,
                       struct vmextra_store **store_r);
void vmextra_store_close(struct vmextra_store *store);
/* Run crash recovery again (open already does it); lets a test crash the
 * recovery itself through the hook. */
int vmextra_recover(struct vmextra_store *store);

/* A fresh, uncommitted document for id (validated: XO_EINVAL). */
int vmextra_doc_new(const char *id, struct vmextra_doc **doc_r);
void vmextra_doc_free(struct vmextra_doc *doc);

/* Load a private copy. XO_ENOTFOUND (Does_not_exist ["VM", id]) if none. */
int vmextra_load(struct vmextra_store *store, const char *id,
                 struct vmextra_doc **doc_r);
bool vmextra_exists(struct vmextra_store *store, const char *id);

/*
 * Commit doc. generation 0 creates (XO_EEXISTS if the VM exists); otherwise
 * the stored generation must equal doc->generation (else XO_ECONFLICT;
 * XO_ENOTFOUND if the VM was removed meanwhile). Bad ids or JSON texts, or
 * more than the bounds above, give XO_EINVAL. On success doc->generation is
 * the new stored generation.
 */
int vmextra_commit(struct vmextra_store *store, struct vmextra_doc *doc);

/*
 * The one read-modify-commit of a document: load id's document (with
 * VMEXTRA_UPDATE_CREATE a new one when there is none), call fn, commit;
 * when a racing writer moved the generation on (or created the document
 * first) reload and retry, at most VMEXTRA_UPDATE_RETRIES times (then
 * XO_ECONFLICT, logged). fn returns 0 to commit, 1 to leave the document
 * unchanged, or an error, which is returned as it is.
 */
#define VMEXTRA_UPDATE_CREATE 0x1
#define VMEXTRA_UPDATE_RETRIES 64
typedef int (*vmextra_update_fn)(struct vmextra_doc *doc, void *arg);
int vmextra_update(struct vmextra_store *store, const char *id,
                   unsigned flags, vmextra_update_fn fn, void *arg);

/* Remove the VM's document. XO_ENOTFOUND if none. */
int vmextra_remove(struct vmextra_store *store, const char *id);

/* Move every record of old to new (see the steps above), rewriting the ids
 * inside them: Vm.t "id" becomes new, and the first element of each Vbd.t /
 * Vif.t "id" pair ([vm, dev]) becomes new. XO_ENOTFOUND if
 * old is missing, XO_EEXISTS if new exists, XO_EINVAL if old == new or an
 * id is bad, XO_EINJECTED if the crash hook fired. */
int vmextra_rename(struct vmextra_store *store, const char *old_id,
                   const char *new_id);

/* Sorted ids of all VMs. *ids_r is a malloc'd array of malloc'd strings.
 * A document that cannot be loaded is skipped with a WARN, left on disk. */
int vmextra_list(struct vmextra_store *store, char ***ids_r, size_t *n_r);
void vmextra_list_free(char **ids, size_t n);

/*
 * Test seam: called at every named crash point (see above, plus
 * "commit:temp-written" and "commit:renamed"); a non-zero return makes the
 * operation stop right there, as if the process died, returning
 * XO_EINJECTED. NULL disables.
 */
typedef int (*vmextra_crash_hook)(void *opaque, const char *point);
void vmextra_set_crash_hook(struct vmextra_store *store,
                            vmextra_crash_hook hook, void *opaque);

/* Record accessors on a private doc (no I/O). set replaces or adds and
 * copies its arguments; del returns XO_ENOTFOUND if absent. */
const char *vmextra_doc_vbd(const struct vmextra_doc *doc, const char *dev);
void vmextra_doc_set_vbd(struct vmextra_doc *doc, const char *dev,
                         const char *json);
int vmextra_doc_del_vbd(struct vmextra_doc *doc, const char *dev);
const char *vmextra_doc_vif(const struct vmextra_doc *doc, const char *dev);
void vmextra_doc_set_vif(struct vmextra_doc *doc, const char *dev,
                         const char *json);
int vmextra_doc_del_vif(struct vmextra_doc *doc, const char *dev);
const struct vmextra_attached *
vmextra_doc_attached(const struct vmextra_doc *doc, const char *dev);
void vmextra_doc_set_attached(struct vmextra_doc *doc,
                              const struct vmextra_attached *a);
int vmextra_doc_del_attached(struct vmextra_doc *doc, const char *dev);
/* Replace the Vm.t (copied; NULL clears). */
void vmextra_doc_set_vm(struct vmextra_doc *doc, const char *json);

#endif
