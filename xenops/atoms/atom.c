/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * atom: construction, release and the text form of atom trees.
 *
 * Text form (atom_describe, one line per atom; atom_format indents it):
 *
 *   VM_create                          VM_create final <final-id>
 *   VM_build [force]                   VM_rename -> <new-id>
 *   VM_shutdown_domain Halt 30         VM_delay 15
 *   VM_save disk:/path [live]          VM_save fd
 *   VM_restore disk:/path              VM_restore fd
 *   VM_set_domain_action_request none  (or the request, e.g. poweroff)
 *   VBD_set_active xvda true           VIF_set_active 0 false
 *   VBD_unplug xvda force              VBD_deactivate xvda (force omitted)
 *   VBD_epoch_begin xvda persistent    VBD_epoch_begin xvdb non-persistent
 *   VM_set_vcpus 2                     VM_set_memory_dynamic_range 1024 2048
 *   VM_set_xsdata                      VM_import_metadata
 *   VBD_insert xvdd ["VDI","sr/vdi"]   VBD_eject xvdd
 *   VIF_set_carrier 0 false            VIF_set_locking_mode 0 "Disabled"
 *   Serial "desc"   Parallel "desc"   Nested_parallel "desc"   Best_effort
 *
 * The fd number of ATOM_DATA_FD is left out on purpose: it differs from run
 * to run, and the text must be deterministic because it is the golden-file
 * format of the expansion tests and the subtask name in Task.stat.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atoms/atom.h"
#include "util/log.h"
#include "util/xalloc.h"

static const char *const atom_names[ATOM_KIND_COUNT] = {
    [ATOM_VM_CREATE] = "VM_create",
    [ATOM_VM_BUILD] = "VM_build",
    [ATOM_VM_PAUSE] = "VM_pause",
    [ATOM_VM_UNPAUSE] = "VM_unpause",
    [ATOM_VM_DESTROY] = "VM_destroy",
    [ATOM_VM_REMOVE] = "VM_remove",
    [ATOM_VM_RENAME] = "VM_rename",
    [ATOM_VM_SAVE] = "VM_save",
    [ATOM_VM_RESTORE] = "VM_restore",
    [ATOM_VM_SET_DOMAIN_ACTION_REQUEST] = "VM_set_domain_action_request",
    [ATOM_VM_SHUTDOWN_DOMAIN] = "VM_shutdown_domain",
    [ATOM_VM_DELAY] = "VM_delay",
    [ATOM_VM_SET_VCPUS] = "VM_set_vcpus",
    [ATOM_VM_SET_MEMORY_DYNAMIC_RANGE] = "VM_set_memory_dynamic_range",
    [ATOM_VM_SET_XSDATA] = "VM_set_xsdata",
    [ATOM_VM_IMPORT_METADATA] = "VM_import_metadata",
    [ATOM_VBD_SET_ACTIVE] = "VBD_set_active",
    [ATOM_VBD_ATTACH] = "VBD_attach",
    [ATOM_VBD_ACTIVATE] = "VBD_activate",
    [ATOM_VBD_PLUG] = "VBD_plug",
    [ATOM_VBD_DEACTIVATE] = "VBD_deactivate",
    [ATOM_VBD_DETACH] = "VBD_detach",
    [ATOM_VBD_UNPLUG] = "VBD_unplug",
    [ATOM_VBD_EPOCH_BEGIN] = "VBD_epoch_begin",
    [ATOM_VBD_EPOCH_END] = "VBD_epoch_end",
    [ATOM_VBD_INSERT] = "VBD_insert",
    [ATOM_VBD_EJECT] = "VBD_eject",
    [ATOM_VIF_PLUG] = "VIF_plug",
    [ATOM_VIF_UNPLUG] = "VIF_unplug",
    [ATOM_VIF_SET_ACTIVE] = "VIF_set_active",
    [ATOM_VIF_SET_CARRIER] = "VIF_set_carrier",
    [ATOM_VIF_SET_LOCKING_MODE] = "VIF_set_locking_mode",
    [ATOM_SERIAL] = "Serial",
    [ATOM_PARALLEL] = "Parallel",
    [ATOM_NESTED_PARALLEL] = "Nested_parallel",
    [ATOM_BEST_EFFORT] = "Best_effort",
};

/*
 * Misuse of this API (an id that does not fit, a leaf given children) is a
 * bug in the caller, not bad input: ids are validated before expansion. A
 * silently truncated id would address another VM's state, so stop here.
 */
static void
atom_check_kind(enum atom_kind kind)
{
    if ((unsigned)kind >= ATOM_KIND_COUNT) {
        LOG(ERROR, "invalid atom kind '%d'", (int)kind);
        abort();
    }
}

static void
atom_copy_id(char *dst, size_t n, const char *src, const char *what)
{
    if (xstrlcpy(dst, src, n) < 0) {
        LOG(ERROR, "%s id '%s' longer than %zu characters", what, src,
            n - 1);
        abort();
    }
}

static struct atom *
atom_alloc(enum atom_kind kind, const char *vm)
{
    struct atom *a = NULL;

    atom_check_kind(kind);
    a = xcalloc(1, sizeof(*a));
    a->kind = kind;
    atom_copy_id(a->vm, sizeof(a->vm), vm, "vm");
    a->data.kind = ATOM_DATA_NONE;
    a->data.fd = -1;
    return a;
}

struct atom *
atom_new(enum atom_kind kind, const char *vm)
{
    return atom_alloc(kind, vm);
}

struct atom *
atom_new_dev(enum atom_kind kind, const char *vm, const char *dev, bool flag)
{
    struct atom *a = atom_alloc(kind, vm);

    atom_copy_id(a->dev, sizeof(a->dev), dev, "device");
    a->flag = flag;
    return a;
}

struct atom *
atom_new_group(enum atom_kind kind, const char *vm, const char *description)
{
    struct atom *a = atom_alloc(kind, vm);

    if (!atom_is_group(a)) {
        LOG(ERROR, "atom kind '%s' is not a combinator", atom_names[kind]);
        abort();
    }
    atom_set_text(a, description);
    return a;
}

void
atom_add(struct atom *parent, struct atom *child)
{
    if (!atom_is_group(parent) || !child ||
        (parent->kind == ATOM_BEST_EFFORT && parent->n_children == 1)) {
        LOG(ERROR, "cannot add a child to atom '%s'",
            atom_names[parent->kind]);
        abort();
    }
    parent->children = xrealloc(parent->children,
                                (parent->n_children + 1) *
                                    sizeof(*parent->children));
    parent->children[parent->n_children++] = child;
}

void
atom_set_text(struct atom *a, const char *text)
{
    free(a->text);
    a->text = text ? xstrdup(text) : NULL;
}

void
atom_set_data(struct atom *a, const struct atom_data *data)
{
    free(a->data.path);
    a->data.kind = data->kind;
    a->data.path = data->path ? xstrdup(data->path) : NULL;
    a->data.fd = data->fd;
}

void
atom_free(struct atom *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n_children; i++)
        atom_free(a->children[i]);
    free(a->children);
    free(a->text);
    free(a->data.path);
    free(a);
}

bool
atom_is_group(const struct atom *a)
{
    switch (a->kind) {
    case ATOM_SERIAL:
    case ATOM_PARALLEL:
    case ATOM_NESTED_PARALLEL:
    case ATOM_BEST_EFFORT:
        return true;
    default:
        return false;
    }
}

const char *
atom_kind_name(enum atom_kind kind)
{
    if ((unsigned)kind >= ATOM_KIND_COUNT)
        return "unknown";
    return atom_names[kind];
}

static char *
atom_describe_data(const char *name, const struct atom_data *d, bool live)
{
    const char *suffix = live ? " live" : "";

    switch (d->kind) {
    case ATOM_DATA_DISK:
        return xasprintf("%s disk:%s%s", name, d->path ? d->path : "",
                         suffix);
    case ATOM_DATA_FD:
        return xasprintf("%s fd%s", name, suffix);
    case ATOM_DATA_NONE:
    default:
        return xasprintf("%s none%s", name, suffix);
    }
}

char *
atom_describe(const struct atom *a)
{
    const char *name = atom_kind_name(a->kind);

    switch (a->kind) {
    case ATOM_VM_CREATE:
        if (a->text)
            return xasprintf("%s final %s", name, a->text);
        return xstrdup(name);
    case ATOM_VM_BUILD:
        return xasprintf("%s%s", name, a->flag ? " force" : "");
    case ATOM_VM_RENAME:
        return xasprintf("%s -> %s", name, a->text ? a->text : "");
    case ATOM_VM_SAVE:
        return atom_describe_data(name, &a->data, a->flag);
    case ATOM_VM_RESTORE:
        return atom_describe_data(name, &a->data, false);
    case ATOM_VM_SET_DOMAIN_ACTION_REQUEST:
        return xasprintf("%s %s", name, a->text ? a->text : "none");
    case ATOM_VM_SHUTDOWN_DOMAIN:
        return xasprintf("%s %s %g", name, a->text ? a->text : "", a->number);
    case ATOM_VM_DELAY:
        return xasprintf("%s %g", name, a->number);
    case ATOM_VM_SET_VCPUS:
        return xasprintf("%s %lld", name, (long long)a->ints[0]);
    case ATOM_VM_SET_MEMORY_DYNAMIC_RANGE:
        return xasprintf("%s %lld %lld", name, (long long)a->ints[0],
                         (long long)a->ints[1]);
    case ATOM_VBD_INSERT:
    case ATOM_VIF_SET_LOCKING_MODE:
        return xasprintf("%s %s %s", name, a->dev, a->text ? a->text : "");
    case ATOM_VIF_SET_CARRIER:
        return xasprintf("%s %s %s", name, a->dev,
                         a->flag ? "true" : "false");
    case ATOM_VBD_SET_ACTIVE:
    case ATOM_VIF_SET_ACTIVE:
        return xasprintf("%s %s %s", name, a->dev,
                         a->flag ? "true" : "false");
    case ATOM_VBD_UNPLUG:
    case ATOM_VBD_DEACTIVATE:
    case ATOM_VIF_UNPLUG:
        return xasprintf("%s %s%s", name, a->dev, a->flag ? " force" : "");
    case ATOM_VBD_EPOCH_BEGIN:
        return xasprintf("%s %s %s", name, a->dev,
                         a->flag ? "persistent" : "non-persistent");
    case ATOM_VBD_ATTACH:
    case ATOM_VBD_ACTIVATE:
    case ATOM_VBD_PLUG:
    case ATOM_VBD_DETACH:
    case ATOM_VBD_EPOCH_END:
    case ATOM_VIF_PLUG:
    case ATOM_VBD_EJECT:
        return xasprintf("%s %s", name, a->dev);
    case ATOM_SERIAL:
    case ATOM_PARALLEL:
    case ATOM_NESTED_PARALLEL:
        if (a->text)
            return xasprintf("%s \"%s\"", name, a->text);
        return xstrdup(name);
    case ATOM_VM_PAUSE:
    case ATOM_VM_UNPAUSE:
    case ATOM_VM_DESTROY:
    case ATOM_VM_REMOVE:
    case ATOM_VM_SET_XSDATA:        /* the keys are data: not in the name */
    case ATOM_VM_IMPORT_METADATA:
    case ATOM_BEST_EFFORT:
    default:
        return xstrdup(name);
    }
}

/* A growable string; every append keeps it NUL-terminated. */
struct atom_buf {
    char *s;
    size_t len;
    size_t cap;
};

static void
atom_buf_append(struct atom_buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void
atom_format_into(struct atom_buf *b, const struct atom *a, unsigned depth)
{
    char *line = atom_describe(a);

    for (unsigned i = 0; i < depth; i++)
        atom_buf_append(b, "  ", 2);
    atom_buf_append(b, line, strlen(line));
    atom_buf_append(b, "\n", 1);
    free(line);
    for (size_t i = 0; i < a->n_children; i++)
        atom_format_into(b, a->children[i], depth + 1);
}

char *
atom_format(const struct atom *a)
{
    struct atom_buf b = {NULL, 0, 0};

    atom_buf_append(&b, "", 0);
    atom_format_into(&b, a, 0);
    return b.s;
}

static void
atom_leaves_into(const struct atom *a, const struct atom **out, size_t max,
                 size_t *n)
{
    if (!atom_is_group(a)) {
        if (*n < max)
            out[(*n)++] = a;
        return;
    }
    for (size_t i = 0; i < a->n_children; i++)
        atom_leaves_into(a->children[i], out, max, n);
}

size_t
atom_leaves(const struct atom *a, const struct atom **out, size_t max)
{
    size_t n = 0;

    if (a)
        atom_leaves_into(a, out, max, &n);
    return n;
}

size_t
atom_count_leaves(const struct atom *a)
{
    size_t n = 0;

    if (!atom_is_group(a))
        return 1;
    for (size_t i = 0; i < a->n_children; i++)
        n += atom_count_leaves(a->children[i]);
    return n;
}
