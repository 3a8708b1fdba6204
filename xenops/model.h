/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * model: xenopsd's records (Vm.t, Vbd.t, Vif.t and the values inside them;
 * wire shapes in reference/interfaces.md 1.4-1.6 and xenops_interface.ml)
 * in their canonical JSON form, plus read-only views of the fields the
 * daemon acts on.
 *
 * Canonical form: what rpclib's marshaller would print for the record.
 * Input is decoded as rpclib decodes it (keys and variant tags match
 * case-insensitively, fields with a default may be omitted, ints may be
 * decimal strings, unknown variant tags map to the type's [@@default] tag
 * where it has one) and re-emitted with every field present in declaration
 * order, defaults filled in, option fields omitted when None, tags and
 * keys in their declared case, unknown fields dropped. The canonical text
 * is what the store keeps and what VM.stat / VBD.stat / VIF.stat return.
 *
 * A few Vm.t fields have no default in the interface although xapi always
 * sends them (ty, ssidref, the action lists, ...); they get a safe default
 * here so that hand-written records (tests, xenopsctl) stay usable; the
 * table in model.c names each one.
 *
 * Errors: a missing required field or a value of the wrong type is
 * XO_EINVAL with a detail naming the field.
 *
 * Ownership: *_parse / *_from_tree return a struct the caller frees with
 * the matching *_free (NULL is a no-op); JSON texts are malloc'd.
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
    bool hvm;           /* builder "HVM" */
    bool pv;            /* builder "PV" (not PVH / PVinPVH) */
    char *json;         /* the canonical record */
};

struct model_vbd {
    char vm[37];
    char dev[33];
    bool rw;
    struct model_disk backend;
    enum model_vbd_ty ty;
    bool unpluggable;
    bool persistent;
    /* The Vbd.t field; can_attach_early_given says whether the input had
     * it (the canonical json always has it). */
    bool can_attach_early;
    bool can_attach_early_given;
    char *json;
};

struct model_vif {
    char vm[37];
    char dev[33];
    int position;
    bool carrier;
    char *json;
};

/* The types model_canonical knows. */
enum model_type {
    MODEL_T_VM,             /* Vm.t */
    MODEL_T_VBD,            /* Vbd.t */
    MODEL_T_VIF,            /* Vif.t */
    MODEL_T_DISK,           /* disk */
    MODEL_T_NETWORK,        /* Network.t */
    MODEL_T_LOCKING_MODE,   /* Vif.locking_mode */
    MODEL_T_STRING_MAP,     /* (string * string) list, e.g. xsdata */
};

/*
 * The canonical JSON text of v read as type (see above). what names the
 * value in error details (e.g. the argument name). No id checks: the
 * record functions below add those.
 */
int model_canonical(enum model_type type, yajl_val v, const char *what,
                    char **json_r);

/* Parse ["Local", p] / ["VDI", "sr/vdi"] (case-insensitive tag). A NULL or
 * JSON null v gives MODEL_DISK_NONE. */
int model_disk_parse(yajl_val v, struct model_disk *d);
void model_disk_dispose(struct model_disk *d);
/* JSON text of a disk value; "null" for NONE. Caller frees. */
char *model_disk_to_json(const struct model_disk *d);

/*
 * Records. Vm.t needs "id" (a UUID), "memory_static_max" and "vcpus";
 * Vbd.t and Vif.t need "id" = [vm-uuid, dev], both validated. The struct's
 * json is the canonical record.
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

/*
 * Edits of trees made by json_parse (yajl builds them with malloc and
 * yajl_tree_free releases them with free, so nodes may be swapped).
 * model_tree_set_json sets member key of object obj (an existing member
 * whose key matches case-insensitively is replaced) to the parsed
 * value_json: XO_EINVAL if obj is not an object or value_json does not
 * parse. model_tree_set_string replaces the text of a string node.
 */
int model_tree_set_json(yajl_val obj, const char *key,
                        const char *value_json);
void model_tree_set_string(yajl_val v, const char *s);

#endif
