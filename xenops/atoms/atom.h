/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * atom: the atom tree. An operation (VM.start, VBD.plug, ...) expands into a
 * tree of leaf atoms combined by Serial, Parallel, Nested_parallel and
 * Best_effort, exactly as xenopsd's atomics_of_operation does
 * (reference/xenopsd-behaviour.md 1.1-1.4). This module owns the data type,
 * its construction and its text form; expand.h builds trees, exec.h runs
 * them.
 *
 * Ownership: a parent owns its children; atom_free frees a whole tree.
 */
#ifndef XENOPS_ATOM_H
#define XENOPS_ATOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum atom_kind {
    ATOM_VM_CREATE,
    ATOM_VM_BUILD,
    ATOM_VM_PAUSE,
    ATOM_VM_UNPAUSE,
    ATOM_VM_DESTROY,
    ATOM_VM_REMOVE,
    ATOM_VM_RENAME,
    ATOM_VM_SAVE,
    ATOM_VM_RESTORE,
    ATOM_VM_SET_DOMAIN_ACTION_REQUEST,
    ATOM_VM_SHUTDOWN_DOMAIN,
    ATOM_VM_DELAY,
    ATOM_VM_SET_VCPUS,
    ATOM_VM_SET_MEMORY_DYNAMIC_RANGE,
    ATOM_VM_SET_XSDATA,
    ATOM_VM_IMPORT_METADATA,
    ATOM_VBD_SET_ACTIVE,
    ATOM_VBD_ATTACH,
    ATOM_VBD_ACTIVATE,
    ATOM_VBD_PLUG,
    ATOM_VBD_DEACTIVATE,
    ATOM_VBD_DETACH,
    ATOM_VBD_UNPLUG,
    ATOM_VBD_EPOCH_BEGIN,
    ATOM_VBD_EPOCH_END,
    ATOM_VBD_INSERT,
    ATOM_VBD_EJECT,
    ATOM_VIF_PLUG,
    ATOM_VIF_UNPLUG,
    ATOM_VIF_SET_ACTIVE,
    ATOM_VIF_SET_CARRIER,
    ATOM_VIF_SET_LOCKING_MODE,
    ATOM_SERIAL,
    ATOM_PARALLEL,
    ATOM_NESTED_PARALLEL,
    ATOM_BEST_EFFORT,
    ATOM_KIND_COUNT
};

/* Where VM_save writes and VM_restore reads the memory image. */
enum atom_data_kind {
    ATOM_DATA_NONE,
    ATOM_DATA_DISK,   /* path: a file (suspend image) */
    ATOM_DATA_FD,     /* fd: a connected stream (migration) */
};

struct atom_data {
    enum atom_data_kind kind;
    char *path;
    int fd;
};

struct atom {
    enum atom_kind kind;
    char vm[37];
    char dev[33];       /* VBD_* and VIF_* atoms */
    /*
     * VBD_set_active / VIF_set_active: the value. VBD_unplug,
     * VBD_deactivate, VIF_unplug: force. VM_build: force.
     * VBD_epoch_begin: persistent. VM_save: live. VIF_set_carrier: the
     * carrier.
     */
    bool flag;
    /*
     * Combinators: the description ("VBDs.activate_epoch_and_plug RW").
     * VM_rename: the new id. VM_set_domain_action_request: the request
     * ("poweroff", "reboot", ...) or NULL to clear.
     * VM_shutdown_domain: the request ("Halt", "Reboot", "Suspend").
     * VM_create: the final id (migration) or NULL.
     * Canonical JSON arguments: VM_set_xsdata the xsdata object,
     * VBD_insert the disk, VIF_set_locking_mode the mode,
     * VM_import_metadata the Metadata.t.
     */
    char *text;
    /* VM_shutdown_domain: timeout seconds. VM_delay: seconds. */
    double number;
    /* VM_set_vcpus: ints[0] = vcpus. VM_set_memory_dynamic_range:
     * ints[0] = minimum, ints[1] = maximum (bytes). */
    int64_t ints[2];
    struct atom_data data;  /* VM_save, VM_restore */
    struct atom **children;
    size_t n_children;
};

/*
 * Leaf constructors; vm (and dev) are copied. Callers validate ids (ids.h)
 * before expanding; an id longer than the field is a programming error and
 * aborts with a log line rather than being truncated.
 */
struct atom *atom_new(enum atom_kind kind, const char *vm);
struct atom *atom_new_dev(enum atom_kind kind, const char *vm,
                          const char *dev, bool flag);
/* Combinator with a description (copied) and no children yet. */
struct atom *atom_new_group(enum atom_kind kind, const char *vm,
                            const char *description);
/* Append child (ownership moves to parent). */
void atom_add(struct atom *parent, struct atom *child);
/* Set the text field (copied; NULL clears). */
void atom_set_text(struct atom *a, const char *text);
/* Set the data field of VM_save / VM_restore: kind and fd are copied, the
 * path is duplicated (the atom owns it; atom_free frees it). */
void atom_set_data(struct atom *a, const struct atom_data *data);
void atom_free(struct atom *a);

bool atom_is_group(const struct atom *a);
/* "VBD_attach", "Parallel", ... */
const char *atom_kind_name(enum atom_kind kind);

/*
 * One line naming a leaf as it appears in task subtasks and logs:
 * "VBD_attach xvda", "VM_create", "VM_rename -> <new>",
 * "VBD_set_active xvda true", "VBD_unplug xvda force".
 * Caller frees.
 */
char *atom_describe(const struct atom *a);

/*
 * The whole tree, one atom per line, two spaces of indent per level,
 * groups as "Serial \"desc\"". Ends with a newline; caller frees. This is
 * the golden-file format.
 */
char *atom_format(const struct atom *a);

/* Number of leaf atoms in the tree. */
size_t atom_count_leaves(const struct atom *a);

/* Leaf atoms of the tree in execution order (depth first), for tests:
 * fills up to max pointers, returns how many it stored (at most max). */
size_t atom_leaves(const struct atom *a, const struct atom **out, size_t max);

#endif
