/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of atom trees (atom.c) and of the operation expansions (expand.c).
 *
 * Golden files: tests/data/expand/<expansion>-legacy.txt and -split.txt hold
 * atom_format() of every expansion of one fixed VM, for
 * xenopsd-vbd-plug-unplug-legacy true and false; an expansion without atoms
 * is written as "(no atoms)". They are the specification (checked by hand
 * against reference/xenopsd-behaviour.md 1.3-1.4 and 2.4), so a change to
 * them must be reviewed like a change to the code. To rewrite them after an
 * intended change, run the test with XENOPS_REGENERATE=1 and read the diff:
 *
 *   XENOPS_REGENERATE=1 top_srcdir=/path/to/src ./tests/test_expand
 *
 * The files are found under $top_srcdir (set by make check), else ".".
 *
 * The structural tests below check the same rules independently of the
 * golden text (RW before RO, no legacy atoms in split mode and vice versa,
 * early attach, collect_into), so a regenerated golden file cannot hide a
 * broken rule.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "atoms/atom.h"
#include "atoms/expand.h"
#include "util/xalloc.h"

#define VM_ID "9c0f7c55-1111-2222-3333-444455556666"
#define MAX_LEAVES 128

/*
 * The fixed VM of the golden files, in position order: two RW disks (one on
 * a SMAPIv3 SR, so it can attach early; one non-persistent), a RO disk that
 * can attach early, an empty CD drive (no backend), and two VIFs.
 */
static const struct expand_vbd golden_vbds[] = {
    {.dev = "xvda", .rw = true, .has_backend = true,
     .can_attach_early = true, .persistent = true},
    {.dev = "xvdb", .rw = true, .has_backend = true,
     .can_attach_early = false, .persistent = false},
    {.dev = "xvdc", .rw = false, .has_backend = true,
     .can_attach_early = true, .persistent = true},
    {.dev = "hdd", .rw = false, .has_backend = false,
     .can_attach_early = false, .persistent = true},
};

static const struct expand_vif golden_vifs[] = {{.dev = "0"}, {.dev = "1"}};

static const struct expand_vm golden_vm = {
    .id = VM_ID,
    .vbds = golden_vbds,
    .n_vbds = 4,
    .vifs = golden_vifs,
    .n_vifs = 2,
};

/* Same devices, RO ones first in position order, so that RW-before-RO is
 * a property of the expansion and not of the input order. */
static const struct expand_vbd ro_first_vbds[] = {
    {.dev = "hdd", .rw = false, .has_backend = false, .persistent = true},
    {.dev = "xvdc", .rw = false, .has_backend = true,
     .can_attach_early = true, .persistent = true},
    {.dev = "xvdb", .rw = true, .has_backend = true, .persistent = true},
    {.dev = "xvda", .rw = true, .has_backend = true,
     .can_attach_early = true, .persistent = true},
};

static const struct expand_vm ro_first_vm = {
    .id = VM_ID,
    .vbds = ro_first_vbds,
    .n_vbds = 4,
    .vifs = golden_vifs,
    .n_vifs = 2,
};

static const struct expand_vm empty_vm = {.id = VM_ID};

static const struct atom_data suspend_image = {
    .kind = ATOM_DATA_DISK,
    .path = "/var/run/xenops/suspend-image",
    .fd = -1,
};

/* ---- every expansion, as a function of (vm, legacy) ---- */

typedef struct atom *(*expansion_fn)(const struct expand_vm *vm,
                                     bool legacy);

static struct atom *
x_vm_start(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_start(vm, legacy, true);
}

static struct atom *
x_vm_start_unpaused(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_start(vm, legacy, false);
}

static struct atom *
x_vm_shutdown(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_shutdown(vm, legacy, 30);
}

static struct atom *
x_vm_shutdown_hard(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_shutdown(vm, legacy, -1);
}

static struct atom *
x_vm_poweroff(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_poweroff(vm, legacy, -1);
}

static struct atom *
x_vm_reboot(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_reboot(vm, legacy, 60);
}

static struct atom *
x_vm_suspend(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_suspend(vm, legacy, &suspend_image);
}

static struct atom *
x_vm_resume(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_resume(vm, legacy, &suspend_image);
}

static struct atom *
x_restore_devices(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_restore_devices(vm, legacy, false);
}

static struct atom *
x_restore_devices_migration(const struct expand_vm *vm, bool legacy)
{
    return expand_vm_restore_devices(vm, legacy, true);
}

static struct atom *
x_restore_vifs(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_vm_restore_vifs(vm);
}

static struct atom *
x_early_attach(const struct expand_vm *vm, bool legacy)
{
    return expand_early_attach(vm, legacy);
}

static struct atom *
x_vbd_hotplug(const struct expand_vm *vm, bool legacy)
{
    return expand_vbd_hotplug(vm->id, "xvdb", legacy);
}

static struct atom *
x_vbd_hotunplug(const struct expand_vm *vm, bool legacy)
{
    return expand_vbd_hotunplug(vm->id, "xvdb", legacy, false);
}

static struct atom *
x_vif_hotplug(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_vif_hotplug(vm->id, "1");
}

static struct atom *
x_vif_hotunplug(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_vif_hotunplug(vm->id, "1", true);
}

#define FINAL_ID "9c0f7c55-1111-2222-3333-444455556666"
#define TMP_SRC "9c0f7c55-1111-2222-3333-000000000000"

static struct atom *
x_migrate_receive_prepare(const struct expand_vm *vm, bool legacy)
{
    return expand_migrate_receive_prepare(vm, FINAL_ID, legacy);
}

static struct atom *
x_migrate_rename(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_rename(vm->id, TMP_SRC);
}

static struct atom *
x_migrate_receive_unpause(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_receive_unpause(vm->id);
}

static struct atom *
x_migrate_receive_abort(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_receive_abort(vm);
}

static struct atom *
x_migrate_source_deactivate(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_source_deactivate(vm);
}

static struct atom *
x_migrate_source_reactivate(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_source_reactivate(vm);
}

static struct atom *
x_migrate_unpause_source(const struct expand_vm *vm, bool legacy)
{
    (void)legacy;
    return expand_migrate_unpause_source(vm->id);
}

static struct atom *
x_migrate_source_cleanup(const struct expand_vm *vm, bool legacy)
{
    return expand_migrate_source_cleanup(vm, legacy);
}

struct expansion {
    const char *name;
    expansion_fn fn;
};

/* The migration's trees, run one per protocol step (expand_migrate.c). */
static const struct expansion migrate_expansions[] = {
    {"migrate_receive_prepare", x_migrate_receive_prepare},
    {"migrate_rename", x_migrate_rename},
    {"migrate_receive_unpause", x_migrate_receive_unpause},
    {"migrate_receive_abort", x_migrate_receive_abort},
    {"migrate_source_deactivate", x_migrate_source_deactivate},
    {"migrate_source_reactivate", x_migrate_source_reactivate},
    {"migrate_unpause_source", x_migrate_unpause_source},
    {"migrate_source_cleanup", x_migrate_source_cleanup},
};

static const struct expansion all_expansions[] = {
    {"vm_start", x_vm_start},
    {"vm_start-unpaused", x_vm_start_unpaused},
    {"vm_shutdown", x_vm_shutdown},
    {"vm_shutdown-hard", x_vm_shutdown_hard},
    {"vm_poweroff", x_vm_poweroff},
    {"vm_reboot", x_vm_reboot},
    {"vm_suspend", x_vm_suspend},
    {"vm_resume", x_vm_resume},
    {"restore_devices", x_restore_devices},
    {"restore_devices-migration", x_restore_devices_migration},
    {"restore_vifs", x_restore_vifs},
    {"early_attach", x_early_attach},
    {"vbd_hotplug", x_vbd_hotplug},
    {"vbd_hotunplug", x_vbd_hotunplug},
    {"vif_hotplug", x_vif_hotplug},
    {"vif_hotunplug", x_vif_hotunplug},
};

#define N_EXPANSIONS (sizeof(all_expansions) / sizeof(all_expansions[0]))

/* ---- golden files ---- */

static char *
golden_path(const char *name, bool legacy)
{
    const char *top = getenv("top_srcdir");

    return xasprintf("%s/tests/data/expand/%s-%s.txt", top ? top : ".", name,
                     legacy ? "legacy" : "split");
}

static char *
read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = NULL;
    size_t len = 0;
    char chunk[4096];
    size_t n;

    if (!f) {
        fprintf(stderr, "cannot open golden file '%s': %s\n", path,
                strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        text = xrealloc(text, len + n + 1);
        memcpy(text + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!text)
        text = xstrdup("");
    text[len] = '\0';
    return text;
}

static void
write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static char *
format_or_none(const struct atom *a)
{
    return a ? atom_format(a) : xstrdup("(no atoms)\n");
}

static void
check_golden(const char *name, expansion_fn fn)
{
    bool regenerate = getenv("XENOPS_REGENERATE") &&
                      strcmp(getenv("XENOPS_REGENERATE"), "1") == 0;

    for (int legacy = 1; legacy >= 0; legacy--) {
        struct atom *tree = fn(&golden_vm, legacy);
        char *text = format_or_none(tree);
        char *path = golden_path(name, legacy);
        char *expected = NULL;

        if (regenerate) {
            write_file(path, text);
        } else {
            expected = read_file(path);
            assert_non_null(expected);
            if (strcmp(expected, text) != 0)
                fprintf(stderr,
                        "expansion differs from '%s' (XENOPS_REGENERATE=1 "
                        "rewrites it); got:\n%s",
                        path, text);
            assert_string_equal(text, expected);
        }
        free(expected);
        free(path);
        free(text);
        atom_free(tree);
    }
}

static void
test_expand_golden_vm_start(void **state)
{
    check_golden("vm_start", x_vm_start);
}

static void
test_expand_golden_vm_shutdown(void **state)
{
    check_golden("vm_shutdown", x_vm_shutdown);
}

static void
test_expand_golden_vm_poweroff(void **state)
{
    check_golden("vm_poweroff", x_vm_poweroff);
}

static void
test_expand_golden_vm_reboot(void **state)
{
    check_golden("vm_reboot", x_vm_reboot);
}

static void
test_expand_golden_vm_suspend(void **state)
{
    check_golden("vm_suspend", x_vm_suspend);
}

static void
test_expand_golden_vm_resume(void **state)
{
    check_golden("vm_resume", x_vm_resume);
}

static void
test_expand_golden_restore_devices(void **state)
{
    check_golden("restore_devices", x_restore_devices);
    check_golden("restore_devices-migration", x_restore_devices_migration);
}

static void
test_expand_golden_restore_vifs(void **state)
{
    check_golden("restore_vifs", x_restore_vifs);
}

static void
test_expand_golden_early_attach(void **state)
{
    check_golden("early_attach", x_early_attach);
}

static void
test_expand_golden_hotplug(void **state)
{
    check_golden("vbd_hotplug", x_vbd_hotplug);
    check_golden("vbd_hotunplug", x_vbd_hotunplug);
    check_golden("vif_hotplug", x_vif_hotplug);
    check_golden("vif_hotunplug", x_vif_hotunplug);
}

static void
test_expand_golden_migrate(void **state)
{
    (void)state;
    for (size_t i = 0;
         i < sizeof(migrate_expansions) / sizeof(*migrate_expansions); i++)
        check_golden(migrate_expansions[i].name, migrate_expansions[i].fn);
}

/* ---- helpers for the structural tests ---- */

static bool
is_vbd_plug_kind(enum atom_kind k)
{
    return k == ATOM_VBD_PLUG || k == ATOM_VBD_ATTACH ||
           k == ATOM_VBD_ACTIVATE;
}

static bool
dev_is_rw(const struct expand_vm *vm, const char *dev)
{
    for (size_t i = 0; i < vm->n_vbds; i++)
        if (strcmp(vm->vbds[i].dev, dev) == 0)
            return vm->vbds[i].rw;
    fail_msg("unknown VBD '%s'", dev);
    return false;
}

/* Fill path[] with the ancestors of leaf (root first); return the depth. */
static bool
find_path(const struct atom *a, const struct atom *leaf,
          const struct atom **path, size_t *depth)
{
    path[(*depth)++] = a;
    if (a == leaf)
        return true;
    for (size_t i = 0; i < a->n_children; i++)
        if (find_path(a->children[i], leaf, path, depth))
            return true;
    (*depth)--;
    return false;
}

/* The innermost group containing both x and y. */
static const struct atom *
common_ancestor(const struct atom *root, const struct atom *x,
                const struct atom *y)
{
    const struct atom *px[64], *py[64];
    size_t dx = 0, dy = 0, i = 0;

    assert_true(find_path(root, x, px, &dx));
    assert_true(find_path(root, y, py, &dy));
    while (i < dx && i < dy && px[i] == py[i])
        i++;
    assert_true(i > 0);
    return px[i - 1];
}

/* Count leaves of kind on dev (any dev when dev is NULL). */
static size_t
count_leaves(const struct atom *tree, enum atom_kind kind, const char *dev)
{
    const struct atom *leaves[MAX_LEAVES];
    size_t n = atom_leaves(tree, leaves, MAX_LEAVES);
    size_t count = 0;

    assert_true(n < MAX_LEAVES);
    for (size_t i = 0; i < n; i++)
        if (leaves[i]->kind == kind &&
            (!dev || strcmp(leaves[i]->dev, dev) == 0))
            count++;
    return count;
}

/*
 * In every expansion that plugs VBDs, every RW plug leaf runs before every
 * RO one: earlier in depth-first order, and the two are ordered by a Serial
 * (their innermost common group), never siblings of a Parallel.
 */
static void
check_rw_before_ro(const struct atom *tree, const struct expand_vm *vm)
{
    const struct atom *leaves[MAX_LEAVES];
    size_t n = atom_leaves(tree, leaves, MAX_LEAVES);
    size_t rw_plugs = 0, ro_plugs = 0;

    assert_true(n < MAX_LEAVES);
    for (size_t i = 0; i < n; i++) {
        if (!is_vbd_plug_kind(leaves[i]->kind))
            continue;
        if (dev_is_rw(vm, leaves[i]->dev)) {
            rw_plugs++;
            assert_int_equal(ro_plugs, 0);
        } else {
            ro_plugs++;
        }
        for (size_t j = 0; j < i; j++) {
            const struct atom *g;

            if (!is_vbd_plug_kind(leaves[j]->kind) ||
                !dev_is_rw(vm, leaves[j]->dev) ||
                dev_is_rw(vm, leaves[i]->dev))
                continue;
            g = common_ancestor(tree, leaves[j], leaves[i]);
            assert_int_equal(g->kind, ATOM_SERIAL);
        }
    }
    assert_true(rw_plugs > 0);
    assert_true(ro_plugs > 0);
}

static void
test_expand_rw_vbds_plug_before_ro(void **state)
{
    const expansion_fn plugging[] = {
        x_vm_start, x_vm_reboot, x_vm_resume, x_restore_devices,
        x_restore_devices_migration,
    };

    for (int legacy = 0; legacy <= 1; legacy++) {
        for (size_t i = 0; i < sizeof(plugging) / sizeof(plugging[0]); i++) {
            struct atom *t = plugging[i](&ro_first_vm, legacy);

            check_rw_before_ro(t, &ro_first_vm);
            atom_free(t);
            t = plugging[i](&golden_vm, legacy);
            check_rw_before_ro(t, &golden_vm);
            atom_free(t);
        }
    }
}

static void
test_expand_legacy_and_split_atoms_never_mix(void **state)
{
    for (size_t i = 0; i < N_EXPANSIONS; i++) {
        struct atom *legacy = all_expansions[i].fn(&golden_vm, true);
        struct atom *split = all_expansions[i].fn(&golden_vm, false);

        /* NULL trees count zero leaves */
        assert_int_equal(count_leaves(legacy, ATOM_VBD_ATTACH, NULL), 0);
        assert_int_equal(count_leaves(legacy, ATOM_VBD_ACTIVATE, NULL), 0);
        assert_int_equal(count_leaves(legacy, ATOM_VBD_DEACTIVATE, NULL), 0);
        assert_int_equal(count_leaves(legacy, ATOM_VBD_DETACH, NULL), 0);
        assert_int_equal(count_leaves(split, ATOM_VBD_PLUG, NULL), 0);
        assert_int_equal(count_leaves(split, ATOM_VBD_UNPLUG, NULL), 0);
        atom_free(legacy);
        atom_free(split);
    }
}

static void
test_expand_plug_and_unplug_shapes(void **state)
{
    struct atom *t = expand_vm_start(&golden_vm, true, true);

    /* legacy: one VBD_plug per VBD, empty CD included */
    for (size_t i = 0; i < golden_vm.n_vbds; i++)
        assert_int_equal(count_leaves(t, ATOM_VBD_PLUG,
                                      golden_vbds[i].dev), 1);
    atom_free(t);

    t = expand_vm_start(&golden_vm, false, true);
    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        assert_int_equal(count_leaves(t, ATOM_VBD_ATTACH,
                                      golden_vbds[i].dev), 1);
        assert_int_equal(count_leaves(t, ATOM_VBD_ACTIVATE,
                                      golden_vbds[i].dev), 1);
        /* epoch_begin only for VBDs with a backend */
        assert_int_equal(count_leaves(t, ATOM_VBD_EPOCH_BEGIN,
                                      golden_vbds[i].dev),
                         golden_vbds[i].has_backend ? 1 : 0);
    }
    atom_free(t);

    t = expand_vm_shutdown(&golden_vm, false, -1);
    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        assert_int_equal(count_leaves(t, ATOM_VBD_DEACTIVATE,
                                      golden_vbds[i].dev), 1);
        assert_int_equal(count_leaves(t, ATOM_VBD_DETACH,
                                      golden_vbds[i].dev), 1);
    }
    atom_free(t);
}

static void
test_expand_epoch_begin_carries_persistent(void **state)
{
    struct atom *t = expand_vm_start(&golden_vm, true, true);
    const struct atom *leaves[MAX_LEAVES];
    size_t n = atom_leaves(t, leaves, MAX_LEAVES);
    size_t seen = 0;

    for (size_t i = 0; i < n; i++) {
        if (leaves[i]->kind != ATOM_VBD_EPOCH_BEGIN)
            continue;
        seen++;
        assert_int_equal(leaves[i]->flag,
                         strcmp(leaves[i]->dev, "xvdb") != 0);
    }
    assert_int_equal(seen, 3);
    atom_free(t);
}

static void
test_expand_restore_devices_migration_split_activates_early_vbds(void **s)
{
    struct atom *t = expand_vm_restore_devices(&golden_vm, false, true);

    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        const char *dev = golden_vbds[i].dev;
        size_t full = golden_vbds[i].can_attach_early ? 0 : 1;

        assert_int_equal(count_leaves(t, ATOM_VBD_ACTIVATE, dev), 1);
        assert_int_equal(count_leaves(t, ATOM_VBD_ATTACH, dev), full);
        assert_int_equal(count_leaves(t, ATOM_VBD_SET_ACTIVE, dev), full);
    }
    /* VIFs were plugged in phase A */
    assert_int_equal(count_leaves(t, ATOM_VIF_PLUG, NULL), 0);
    assert_int_equal(count_leaves(t, ATOM_VIF_SET_ACTIVE, NULL), 0);
    atom_free(t);

    /* not a migration (resume): everything is set active and plugged */
    t = expand_vm_restore_devices(&golden_vm, false, false);
    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        assert_int_equal(count_leaves(t, ATOM_VBD_SET_ACTIVE,
                                      golden_vbds[i].dev), 1);
        assert_int_equal(count_leaves(t, ATOM_VBD_ATTACH,
                                      golden_vbds[i].dev), 1);
    }
    assert_int_equal(count_leaves(t, ATOM_VIF_PLUG, NULL), 2);
    atom_free(t);
}

static void
test_expand_restore_devices_migration_legacy_ignores_early(void **state)
{
    struct atom *t = expand_vm_restore_devices(&golden_vm, true, true);

    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        assert_int_equal(count_leaves(t, ATOM_VBD_SET_ACTIVE,
                                      golden_vbds[i].dev), 1);
        assert_int_equal(count_leaves(t, ATOM_VBD_PLUG,
                                      golden_vbds[i].dev), 1);
    }
    atom_free(t);
}

static void
test_expand_early_attach_only_early_vbds(void **state)
{
    struct atom *t = expand_early_attach(&golden_vm, false);
    const struct atom *leaves[MAX_LEAVES];
    size_t n = atom_leaves(t, leaves, MAX_LEAVES);

    assert_int_equal(t->kind, ATOM_PARALLEL);
    assert_int_equal(n, 4);
    assert_int_equal(leaves[0]->kind, ATOM_VBD_SET_ACTIVE);
    assert_string_equal(leaves[0]->dev, "xvda");
    assert_true(leaves[0]->flag);
    assert_int_equal(leaves[1]->kind, ATOM_VBD_ATTACH);
    assert_string_equal(leaves[1]->dev, "xvda");
    assert_int_equal(leaves[2]->kind, ATOM_VBD_SET_ACTIVE);
    assert_string_equal(leaves[2]->dev, "xvdc");
    assert_int_equal(leaves[3]->kind, ATOM_VBD_ATTACH);
    assert_string_equal(leaves[3]->dev, "xvdc");
    atom_free(t);
}

static void
test_expand_early_attach_null_when_legacy_or_none_early(void **state)
{
    struct expand_vbd vbds[2] = {golden_vbds[1], golden_vbds[3]};
    struct expand_vm vm = golden_vm;

    assert_null(expand_early_attach(&golden_vm, true));
    vm.vbds = vbds;
    vm.n_vbds = 2;
    assert_null(expand_early_attach(&vm, false));
    /* an early flag without a backend is not enough (nothing to attach),
     * and restore_devices then plugs it fully */
    vbds[1].can_attach_early = true;
    assert_null(expand_early_attach(&vm, false));
    {
        struct atom *t = expand_vm_restore_devices(&vm, false, true);

        assert_int_equal(count_leaves(t, ATOM_VBD_ATTACH, "hdd"), 1);
        atom_free(t);
    }
    assert_null(expand_early_attach(&empty_vm, false));
}

static void
test_expand_collect_into_unwraps_single_and_omits_empty(void **state)
{
    struct expand_vbd vbd = golden_vbds[0];
    struct expand_vm vm = {.id = VM_ID, .vbds = &vbd, .n_vbds = 1};
    struct atom *t = expand_vm_start(&vm, false, true);
    char *d = NULL;

    /* one RW VBD, no VIFs: Devices.plug, RW+RO and the RW set collapse to
     * the VBD's own Serial */
    assert_int_equal(t->n_children, 4);
    assert_int_equal(t->children[2]->kind, ATOM_SERIAL);
    assert_string_equal(t->children[2]->text,
                        "VBD.activate_epoch_and_plug RW VM=" VM_ID);
    atom_free(t);

    /* one early VBD: the early attach is its Serial, not a Parallel */
    t = expand_early_attach(&vm, false);
    assert_int_equal(t->kind, ATOM_SERIAL);
    assert_string_equal(t->text, "VBD.set_active_and_attach VM=" VM_ID);
    atom_free(t);

    /* split migration: the lone activate is not wrapped either */
    t = expand_vm_restore_devices(&vm, false, true);
    assert_int_equal(t->n_children, 1);
    d = atom_describe(t->children[0]);
    assert_string_equal(d, "VBD_activate xvda");
    free(d);
    atom_free(t);
}

/* Every group has children; below the root, a collect_into group has two
 * or more (Best_effort and vbd_plug's Serial are not collect_into). */
static void
check_no_empty_groups(const struct atom *a, bool root)
{
    if (!atom_is_group(a))
        return;
    assert_true(a->n_children >= 1);
    if (!root && a->kind != ATOM_BEST_EFFORT)
        assert_true(a->n_children >= 2);
    for (size_t i = 0; i < a->n_children; i++)
        check_no_empty_groups(a->children[i], false);
}

static void
test_expand_no_devices_no_empty_groups(void **state)
{
    struct atom *t = expand_vm_start(&empty_vm, false, true);
    char *text = NULL;

    text = atom_format(t);
    assert_string_equal(text, "Serial \"VM_start VM=" VM_ID "\"\n"
                              "  VM_create\n"
                              "  VM_build\n"
                              "  VM_set_domain_action_request none\n");
    free(text);
    atom_free(t);

    for (size_t i = 0; i < N_EXPANSIONS; i++) {
        for (int legacy = 0; legacy <= 1; legacy++) {
            t = all_expansions[i].fn(&empty_vm, legacy);
            if (t)
                check_no_empty_groups(t, true);
            atom_free(t);
            t = all_expansions[i].fn(&golden_vm, legacy);
            if (t)
                check_no_empty_groups(t, true);
            atom_free(t);
        }
    }
    assert_null(expand_vm_restore_devices(&empty_vm, false, true));
    assert_null(expand_vm_restore_vifs(&empty_vm));
}

static void
check_descriptions(const struct atom *a)
{
    if (!atom_is_group(a))
        return;
    if (a->kind != ATOM_BEST_EFFORT) {
        const char *suffix = " VM=" VM_ID;
        size_t len, slen = strlen(suffix);

        assert_non_null(a->text);
        len = strlen(a->text);
        if (strcmp(a->text, "VBD.attach_and_activate") != 0 &&
            strcmp(a->text, "VBD.deactivate_and_detach") != 0) {
            assert_true(len > slen);
            assert_string_equal(a->text + len - slen, suffix);
        }
        assert_string_equal(a->vm, VM_ID);
    }
    for (size_t i = 0; i < a->n_children; i++)
        check_descriptions(a->children[i]);
}

static void
test_expand_group_descriptions_name_the_vm(void **state)
{
    for (size_t i = 0; i < N_EXPANSIONS; i++) {
        for (int legacy = 0; legacy <= 1; legacy++) {
            struct atom *t = all_expansions[i].fn(&golden_vm, legacy);

            if (t)
                check_descriptions(t);
            atom_free(t);
        }
    }
}

static void
test_expand_start_unpaused_ends_with_unpause(void **state)
{
    struct atom *paused = expand_vm_start(&golden_vm, false, true);
    struct atom *running = expand_vm_start(&golden_vm, false, false);

    assert_int_equal(running->n_children, paused->n_children + 1);
    assert_int_equal(running->children[running->n_children - 1]->kind,
                     ATOM_VM_UNPAUSE);
    assert_int_equal(count_leaves(paused, ATOM_VM_UNPAUSE, NULL), 0);
    atom_free(paused);
    atom_free(running);
}

static void
test_expand_shutdown_domain_only_with_timeout(void **state)
{
    struct atom *t = expand_vm_shutdown(&golden_vm, true, 0);
    char *d = NULL;

    assert_int_equal(t->children[0]->kind, ATOM_VM_SHUTDOWN_DOMAIN);
    d = atom_describe(t->children[0]);
    assert_string_equal(d, "VM_shutdown_domain Halt 0");
    free(d);
    atom_free(t);

    t = expand_vm_shutdown(&golden_vm, true, -1);
    assert_int_equal(count_leaves(t, ATOM_VM_SHUTDOWN_DOMAIN, NULL), 0);
    atom_free(t);
    t = expand_vm_poweroff(&golden_vm, true, -1);
    assert_int_equal(count_leaves(t, ATOM_VM_SHUTDOWN_DOMAIN, NULL), 0);
    atom_free(t);

    /* reboot: only the Reboot request, never a Halt from VM_shutdown */
    t = expand_vm_reboot(&golden_vm, false, 45.5);
    assert_int_equal(count_leaves(t, ATOM_VM_SHUTDOWN_DOMAIN, NULL), 1);
    d = atom_describe(t->children[0]);
    assert_string_equal(d, "VM_shutdown_domain Reboot 45.5");
    free(d);
    atom_free(t);
    t = expand_vm_reboot(&golden_vm, false, -1);
    assert_int_equal(count_leaves(t, ATOM_VM_SHUTDOWN_DOMAIN, NULL), 0);
    atom_free(t);
}

static void
test_expand_save_restore_own_their_path(void **state)
{
    char path[] = "/tmp/image";
    struct atom_data data = {.kind = ATOM_DATA_DISK, .path = path, .fd = -1};
    struct atom *t = expand_vm_suspend(&golden_vm, false, &data);
    const struct atom *save = t->children[0];
    char *d = NULL;

    path[1] = 'X';
    assert_int_equal(save->kind, ATOM_VM_SAVE);
    assert_ptr_not_equal(save->data.path, path);
    assert_false(save->flag);
    d = atom_describe(save);
    assert_string_equal(d, "VM_save disk:/tmp/image");
    free(d);
    atom_free(t);

    data.kind = ATOM_DATA_FD;
    data.path = NULL;
    data.fd = 7;
    t = expand_vm_resume(&golden_vm, false, &data);
    assert_int_equal(t->children[1]->kind, ATOM_VM_RESTORE);
    assert_int_equal(t->children[1]->data.fd, 7);
    d = atom_describe(t->children[1]);
    assert_string_equal(d, "VM_restore fd");
    free(d);
    atom_free(t);
}

static void
expect_describe(struct atom *a, const char *expected)
{
    char *d = atom_describe(a);

    assert_string_equal(d, expected);
    free(d);
    atom_free(a);
}

static void
test_expand_atom_describe(void **state)
{
    struct atom *a = NULL;
    struct atom_data live = {.kind = ATOM_DATA_FD, .fd = 3};

    expect_describe(atom_new(ATOM_VM_CREATE, VM_ID), "VM_create");
    a = atom_new(ATOM_VM_CREATE, VM_ID);
    atom_set_text(a, "9c0f7c55-1111-2222-3333-444455556667");
    expect_describe(a, "VM_create final 9c0f7c55-1111-2222-3333-444455556667");
    expect_describe(atom_new_dev(ATOM_VBD_ATTACH, VM_ID, "xvda", false),
                    "VBD_attach xvda");
    expect_describe(atom_new_dev(ATOM_VBD_SET_ACTIVE, VM_ID, "xvda", true),
                    "VBD_set_active xvda true");
    expect_describe(atom_new_dev(ATOM_VIF_SET_ACTIVE, VM_ID, "0", false),
                    "VIF_set_active 0 false");
    expect_describe(atom_new_dev(ATOM_VBD_UNPLUG, VM_ID, "xvda", true),
                    "VBD_unplug xvda force");
    expect_describe(atom_new_dev(ATOM_VBD_DEACTIVATE, VM_ID, "xvda", false),
                    "VBD_deactivate xvda");
    expect_describe(atom_new_dev(ATOM_VBD_EPOCH_BEGIN, VM_ID, "xvdb", false),
                    "VBD_epoch_begin xvdb non-persistent");
    a = atom_new(ATOM_VM_RENAME, VM_ID);
    atom_set_text(a, "new-id");
    expect_describe(a, "VM_rename -> new-id");
    a = atom_new(ATOM_VM_SET_DOMAIN_ACTION_REQUEST, VM_ID);
    expect_describe(a, "VM_set_domain_action_request none");
    a = atom_new(ATOM_VM_SET_DOMAIN_ACTION_REQUEST, VM_ID);
    atom_set_text(a, "poweroff");
    expect_describe(a, "VM_set_domain_action_request poweroff");
    a = atom_new(ATOM_VM_SAVE, VM_ID);
    a->flag = true;
    atom_set_data(a, &live);
    expect_describe(a, "VM_save fd live");
    a = atom_new(ATOM_VM_DELAY, VM_ID);
    a->number = 15;
    expect_describe(a, "VM_delay 15");
    expect_describe(atom_new_group(ATOM_NESTED_PARALLEL, VM_ID, "x y"),
                    "Nested_parallel \"x y\"");
    expect_describe(atom_new_group(ATOM_BEST_EFFORT, VM_ID, NULL),
                    "Best_effort");
    assert_string_equal(atom_kind_name(ATOM_VM_SHUTDOWN_DOMAIN),
                        "VM_shutdown_domain");
    assert_string_equal(atom_kind_name(ATOM_KIND_COUNT), "unknown");
}

static void
test_expand_atom_format_indents_children(void **state)
{
    struct atom *root = atom_new_group(ATOM_SERIAL, VM_ID, "outer");
    struct atom *par = atom_new_group(ATOM_PARALLEL, VM_ID, "inner");
    struct atom *be = atom_new_group(ATOM_BEST_EFFORT, VM_ID, NULL);
    char *text = NULL;

    atom_add(par, atom_new_dev(ATOM_VIF_PLUG, VM_ID, "0", false));
    atom_add(par, atom_new_dev(ATOM_VIF_PLUG, VM_ID, "1", false));
    atom_add(be, atom_new(ATOM_VM_PAUSE, VM_ID));
    atom_add(root, be);
    atom_add(root, par);
    atom_add(root, atom_new(ATOM_VM_DESTROY, VM_ID));
    text = atom_format(root);
    assert_string_equal(text, "Serial \"outer\"\n"
                              "  Best_effort\n"
                              "    VM_pause\n"
                              "  Parallel \"inner\"\n"
                              "    VIF_plug 0\n"
                              "    VIF_plug 1\n"
                              "  VM_destroy\n");
    free(text);
    atom_free(root);
}

static void
test_expand_atom_leaves_stops_at_max(void **state)
{
    struct atom *t = expand_vm_start(&golden_vm, false, true);
    const struct atom *leaves[3];

    assert_int_equal(atom_leaves(t, leaves, 3), 3);
    assert_int_equal(leaves[0]->kind, ATOM_VM_CREATE);
    assert_int_equal(leaves[1]->kind, ATOM_VM_BUILD);
    assert_int_equal(leaves[2]->kind, ATOM_VBD_SET_ACTIVE);
    assert_int_equal(atom_leaves(NULL, leaves, 3), 0);
    atom_free(t);
}

/* An id that does not fit is a programming error: abort, never truncate. */
static void
test_expand_atom_long_id_aborts(void **state)
{
    const char *long_dev = "a-device-name-much-longer-than-32-characters";

    for (int which = 0; which < 2; which++) {
        int status = 0;
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0) {
            /* keep the expected abort's log line out of the test output */
            if (!freopen("/dev/null", "w", stderr))
                _exit(2);
            if (which == 0)
                atom_new(ATOM_VM_PAUSE, VM_ID "-and-more");
            else
                atom_new_dev(ATOM_VBD_ATTACH, VM_ID, long_dev, false);
            _exit(0);
        }
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status));
        assert_int_equal(WTERMSIG(status), SIGABRT);
    }
}

/*
 * The source gives up exactly the disks it takes back on failure, and
 * the receiver's abort clears the active flag of every device whatever
 * phase it failed in.
 */
static void
test_expand_migrate_halves_mirror(void **state)
{
    struct atom *deact = expand_migrate_source_deactivate(&golden_vm);
    struct atom *react = expand_migrate_source_reactivate(&golden_vm);
    struct atom *abort_tree = expand_migrate_receive_abort(&golden_vm);

    (void)state;
    for (size_t i = 0; i < golden_vm.n_vbds; i++) {
        const struct expand_vbd *b = &golden_vm.vbds[i];

        assert_int_equal(count_leaves(deact, ATOM_VBD_DEACTIVATE, b->dev),
                         b->has_backend ? 1 : 0);
        assert_int_equal(count_leaves(react, ATOM_VBD_ACTIVATE, b->dev),
                         b->has_backend ? 1 : 0);
        assert_int_equal(count_leaves(abort_tree, ATOM_VBD_SET_ACTIVE,
                                      b->dev), 1);
    }
    for (size_t i = 0; i < golden_vm.n_vifs; i++)
        assert_int_equal(count_leaves(abort_tree, ATOM_VIF_SET_ACTIVE,
                                      golden_vm.vifs[i].dev), 1);
    atom_free(deact);
    atom_free(react);
    atom_free(abort_tree);
    /* No disk with a backend: nothing to (de)activate. */
    assert_null(expand_migrate_source_deactivate(&empty_vm));
    assert_null(expand_migrate_source_reactivate(&empty_vm));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand_golden_vm_start),
        cmocka_unit_test(test_expand_golden_vm_shutdown),
        cmocka_unit_test(test_expand_golden_vm_poweroff),
        cmocka_unit_test(test_expand_golden_vm_reboot),
        cmocka_unit_test(test_expand_golden_vm_suspend),
        cmocka_unit_test(test_expand_golden_vm_resume),
        cmocka_unit_test(test_expand_golden_restore_devices),
        cmocka_unit_test(test_expand_golden_restore_vifs),
        cmocka_unit_test(test_expand_golden_early_attach),
        cmocka_unit_test(test_expand_golden_migrate),
        cmocka_unit_test(test_expand_migrate_halves_mirror),
        cmocka_unit_test(test_expand_golden_hotplug),
        cmocka_unit_test(test_expand_rw_vbds_plug_before_ro),
        cmocka_unit_test(test_expand_legacy_and_split_atoms_never_mix),
        cmocka_unit_test(test_expand_plug_and_unplug_shapes),
        cmocka_unit_test(test_expand_epoch_begin_carries_persistent),
        cmocka_unit_test(
            test_expand_restore_devices_migration_split_activates_early_vbds),
        cmocka_unit_test(
            test_expand_restore_devices_migration_legacy_ignores_early),
        cmocka_unit_test(test_expand_early_attach_only_early_vbds),
        cmocka_unit_test(
            test_expand_early_attach_null_when_legacy_or_none_early),
        cmocka_unit_test(
            test_expand_collect_into_unwraps_single_and_omits_empty),
        cmocka_unit_test(test_expand_no_devices_no_empty_groups),
        cmocka_unit_test(test_expand_group_descriptions_name_the_vm),
        cmocka_unit_test(test_expand_start_unpaused_ends_with_unpause),
        cmocka_unit_test(test_expand_shutdown_domain_only_with_timeout),
        cmocka_unit_test(test_expand_save_restore_own_their_path),
        cmocka_unit_test(test_expand_atom_describe),
        cmocka_unit_test(test_expand_atom_format_indents_children),
        cmocka_unit_test(test_expand_atom_leaves_stops_at_max),
        cmocka_unit_test(test_expand_atom_long_id_aborts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
