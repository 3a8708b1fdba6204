/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The crash journal.
 *
 * A daemon killed mid-migration loses its simulated domains, but its
 * records survive: the receiver's VM under the temporary or (in phase C)
 * the final id, the sender's under its temporary id. Each half keeps a
 * marker in <database-path>/migrations while it is in flight, and the next
 * start (migrate_new) settles what a marker names, touching
 * only VMs without a domain:
 *   receive-<tmp>.json {"tmp", "final", "final_existed"}: until the
 *     receiver unpaused the VM, it never ran here: its records go (under
 *     both ids; the final id's only if this receive created it);
 *   send-<vm>.json {"vm", "tmp"}: the VM's definition stays: the
 *     temporary id is renamed back to the VM's, or dropped if the VM's id
 *     exists (a localhost migration's receiver brought it back).
 * Receive markers are settled first, so a localhost migration ends with
 * the sender's record under the VM's id.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "atoms/expand.h"
#include "config.h"
#include "migrate/migrate_priv.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

static char *
journal_dir(struct migrate *m)
{
    const struct config *cfg = m->deps.cfg;

    if (!cfg->persist || !cfg->database_path)
        return NULL;
    return xasprintf("%s/migrations", cfg->database_path);
}

/* Best effort: without the marker a crash leaves records to tidy by
 * hand, which is logged, but the migration itself is unaffected. */
void
migrate_journal_put(struct migrate *m, const char *name, const char *json)
{
    char *dir = journal_dir(m);

    if (dir && (files_mkdirs(dir) ||
                files_write(dir, name, json, strlen(json)))) {
        LOG(WARN, "cannot write migration marker '%s'", name);
        xo_err_clear();
    }
    free(dir);
}

void
migrate_journal_drop(struct migrate *m, const char *name)
{
    char *dir = journal_dir(m);

    if (dir && files_remove(dir, name))
        xo_err_clear();
    free(dir);
}

/* True if vm has records and no domain. */
static bool
halted_record(struct migrate *m, const char *vm)
{
    struct backend_vm_state st;

    if (!vmextra_exists(m->deps.store, vm))
        return false;
    if (m->deps.backend->ops->vm_get_state(m->deps.backend, vm, &st)) {
        xo_err_clear();
        return false;
    }
    if (st.power != BACKEND_HALTED) {
        LOGVM(WARN, vm, "interrupted migration: has a domain, left alone");
        return false;
    }
    return true;
}

static void
recover_run(struct migrate *m, struct atom *a, const char *what)
{
    struct exec_op op;

    migrate_op_init(m, &op, NULL, m->deps.legacy(m->deps.ctx));
    if (exec_run(&op, a)) {
        LOGVM(ERROR, a->vm, "interrupted migration: cannot %s", what);
        xo_err_clear();
    } else {
        LOGVM(INFO, a->vm, "interrupted migration: %s", what);
    }
    exec_commit(&op);
    exec_op_dispose(&op);
    atom_free(a);
}

/* What a receive interrupted by a crash left under vm: 0 nothing (no
 * records), 1 records and no domain, 2 a domain that never ran (created
 * or restored, still paused: the receiver unpauses last), -1 a running
 * domain, which is left alone. */
static int
receiver_leftover(struct migrate *m, const char *vm)
{
    struct backend_vm_state st;

    if (!vmextra_exists(m->deps.store, vm))
        return 0;
    if (m->deps.backend->ops->vm_get_state(m->deps.backend, vm, &st)) {
        xo_err_clear();
        return -1;
    }
    if (st.power == BACKEND_HALTED)
        return 1;
    if (st.power == BACKEND_PAUSED)
        return 2;
    LOGVM(WARN, vm, "interrupted migration: its domain runs, left alone");
    return -1;
}

static void
recover_receive(struct migrate *m, yajl_val mk)
{
    const char *tmp = json_get_str(mk, "tmp");
    const char *fin = json_get_str(mk, "final");
    yajl_val ex = json_get(mk, "final_existed");
    const char *ids[2] = { tmp, YAJL_IS_FALSE(ex) ? fin : NULL };

    for (int i = 0; i < 2; i++) {
        int left;

        if (!ids[i] || ids_check_vm(ids[i])) {
            xo_err_clear();
            continue;
        }
        left = receiver_leftover(m, ids[i]);
        if (left <= 0)
            continue;
        /* A backend whose domains outlive the daemon (xenlight) still has
         * the paused domain, and its early attaches: VM_destroy releases
         * both. */
        if (left == 2)
            recover_run(m, atom_new(ATOM_VM_DESTROY, ids[i]),
                        "destroyed the receiver's domain, which never ran");
        recover_run(m, atom_new(ATOM_VM_REMOVE, ids[i]),
                    "removed the receiver's records");
        migrate_forget(m, ids[i]);
    }
}

static void
recover_send(struct migrate *m, yajl_val mk)
{
    const char *vm = json_get_str(mk, "vm");
    const char *tmp = json_get_str(mk, "tmp");

    if (!vm || !tmp || ids_check_vm(vm) || ids_check_vm(tmp)) {
        xo_err_clear();
        return;
    }
    if (!halted_record(m, tmp))
        return;
    if (vmextra_exists(m->deps.store, vm)) {
        recover_run(m, atom_new(ATOM_VM_REMOVE, tmp),
                    "dropped the sender's temporary records");
        migrate_forget(m, tmp);
    } else {
        recover_run(m, expand_migrate_rename(tmp, vm),
                    "renamed the sender's VM back");
    }
}

/* Settle the markers of migrations a crash interrupted (receives first). */
void
migrate_recover(struct migrate *m)
{
    char *dir = journal_dir(m);
    DIR *d = dir ? opendir(dir) : NULL;
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;

    while (d && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "send-", 5) != 0 &&
            strncmp(e->d_name, "receive-", 8) != 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(e->d_name);
    }
    if (d)
        closedir(d);
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            bool recv = names[i][0] == 'r';
            char *text = NULL;
            yajl_val mk = NULL;
            size_t len;

            if (recv != (pass == 0))
                continue;
            if (files_read(dir, names[i], 4096, &text, &len) ||
                json_parse(text, len, &mk)) {
                LOG(WARN, "unreadable migration marker '%s' dropped",
                    names[i]);
                xo_err_clear();
            } else if (recv) {
                recover_receive(m, mk);
            } else {
                recover_send(m, mk);
            }
            yajl_tree_free(mk);
            free(text);
            migrate_journal_drop(m, names[i]);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    free(dir);
}

