/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * model: the parts of xenopsd's records (Vm.t, Vbd.t, Vif.t; wire shapes in
 * reference/interfaces.md 1.6) that the daemon acts on, decoded from their
 * JSON. The JSON text itself stays the record of truth (it is what the
 * store keeps and what VM.stat returns); the structs here are read-only
 * views made from it.
 *
 * Decoding follows rpclib: keys and variant tags are case-insensitive,
 * fields with defaults may be omitted, ints may be decimal strings. A field
 * we read with the wrong type is XO_EINVAL with a detail naming it.
 *
 * Ownership: *_parse returns a struct the caller frees with the matching
 * *_free (NULL is a no-op).
 */
#ifndef XENOPS_MODEL_H
#define XENOPS_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include <yajl/yajl_tree.h>

enum model_disk_kind {
    MODEL_DISK_NONE,    /* no backend: an empty CD drive */
    MODEL_DISK_LOCAL,   /* ["Local", "/dev/path"] */
    MODEL_DISK_VDI,     /* ["VDI", "<sr-uuid>/<vdi-location>"] */
};

struct model_disk {
    enum model_disk_kind kind;
    char *path;         /* Local: the path; VDI: "sr/vdi" */
    char *sr;           /* VDI: the part before the first '/' */
    char *vdi;          /* VDI: the rest */
};

enum model_vbd_ty {
    MODEL_VBD_DISK,
    MODEL_VBD_CDROM,
    MODEL_VBD_FLOPPY,
};

struct model_vm {
    char id[37];
    char *name;
    int64_t memory_static_max;
    int64_t memory_dynamic_max;
    int64_t memory_dynamic_min;
    int vcpus;
    int vcpu_max;
    bool hvm;
    char *json;         /* the record as stored */
};

struct model_vbd {
    char vm[37];
    char dev[33];
    bool rw;
    struct model_disk backend;
    enum model_vbd_ty ty;
    bool unpluggable;
    bool persistent;
    /* The Vbd.t field: absent means "let the driver decide"; present and
     * false vetoes early attach for this VBD. */
    bool can_attach_early;
    bool can_attach_early_given;
    char *json;
};

struct model_vif {
    char vm[37];
    char dev[33];
    int position;
    char *json;
};

/* Parse ["Local", p] / ["VDI", "sr/vdi"] (case-insensitive tag). A NULL or
 * JSON null v gives MODEL_DISK_NONE. */
int model_disk_parse(yajl_val v, struct model_disk *d);
void model_disk_dispose(struct model_disk *d);
/* JSON text of a disk value; "null" for NONE. Caller frees. */
char *model_disk_to_json(const struct model_disk *d);

/*
 * Records. The *_parse functions validate: Vm.t needs "id" (a UUID),
 * "memory_static_max" and "vcpus"; Vbd.t and Vif.t need "id" = [vm-uuid,
 * dev]. json is the record's text; the stored copy is normalised (parsed
 * and re-serialised).
 */
int model_vm_parse(const char *json, struct model_vm **vm_r);
int model_vm_from_tree(yajl_val v, struct model_vm **vm_r);
void model_vm_free(struct model_vm *vm);

int model_vbd_parse(const char *json, struct model_vbd **vbd_r);
int model_vbd_from_tree(yajl_val v, struct model_vbd **vbd_r);
void model_vbd_free(struct model_vbd *vbd);

int model_vif_parse(const char *json, struct model_vif **vif_r);
int model_vif_from_tree(yajl_val v, struct model_vif **vif_r);
void model_vif_free(struct model_vif *vif);

/* ["<vm>", "<dev>"] as JSON text; caller frees. */
char *model_dev_id_json(const char *vm, const char *dev);

#endif
