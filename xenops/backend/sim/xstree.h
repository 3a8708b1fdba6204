/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xstree: an in-process tree shaped like xenstore, used by the simulator
 * backend for the records that live in xenstore on real Xen (/vm/<uuid>,
 * /local/domain/<domid>, device frontends and backends). It owns the tree
 * and nothing else: it does not know what a VM or a device is.
 *
 * Paths are absolute, "/a/b/c": components are non-empty strings of
 * [A-Za-z0-9_.:@-], the whole path at most XSTREE_PATH_MAX characters (as in
 * xenstore). "/" is the root: it may be listed, but not written or removed.
 * Every node has a value, a string that may be empty; writing a node creates
 * its missing parents with empty values. Children are kept sorted (strcmp).
 *
 * Contract:
 * - Thread-safe: one mutex per tree; every call, including a transaction
 *   commit, is atomic with respect to the others.
 * - Errors: XO_EINVAL (bad path or value, with an Internal_error detail),
 *   XO_ENOTFOUND, XO_EEXISTS. A failing call changes nothing.
 * - Returned strings and arrays are owned by the caller.
 */
#ifndef XENOPS_XSTREE_H
#define XENOPS_XSTREE_H

#include <stdbool.h>
#include <stddef.h>

#include <yajl/yajl_gen.h>

#define XSTREE_PATH_MAX 3072  /* longest path, excluding the NUL */
#define XSTREE_VALUE_MAX 4096 /* longest value (xenstore's payload bound) */

struct xstree;
struct xstree_txn;

/* A new empty tree (just the root). Returns 0. */
int xstree_new(struct xstree **t_r);
/* Free the tree; NULL is a no-op. */
void xstree_free(struct xstree *t);

/* True if path is well formed (allow_root: "/" counts as well formed). */
bool xstree_path_ok(const char *path, bool allow_root);

/* Set the value of path (a copy), creating missing parents. */
int xstree_write(struct xstree *t, const char *path, const char *value);
/* A copy of the value of path in *value_r; XO_ENOTFOUND if missing. */
int xstree_read(struct xstree *t, const char *path, char **value_r);
/* Remove path and everything below it; a missing path is fine. */
int xstree_rm(struct xstree *t, const char *path);
/* False for a missing or malformed path. */
bool xstree_exists(struct xstree *t, const char *path);
/*
 * The names of the children of path, sorted, in a NULL-terminated array
 * (free with xstree_strv_free); *n_r (may be NULL) is their number.
 * XO_ENOTFOUND if path is missing.
 */
int xstree_directory(struct xstree *t, const char *path, char ***names_r,
                     size_t *n_r);
/* Free a NULL-terminated array from xstree_directory; NULL is a no-op. */
void xstree_strv_free(char **v);

/*
 * Move the subtree at from (values and all descendants) to to, creating the
 * parents of to. XO_ENOTFOUND if from is missing, XO_EEXISTS if to exists,
 * XO_EINVAL if either is "/" or one contains the other.
 */
int xstree_move_subtree(struct xstree *t, const char *from, const char *to);

/*
 * Transactions: record writes, removals and moves, then commit them all or
 * none (like a xenstore transaction, but without conflicts: the commit runs
 * under the tree lock). Operations apply in the order recorded; each has
 * the semantics of the single call of the same name. The txn copies every
 * string it is given.
 */
int xstree_txn_new(struct xstree_txn **x_r);
void xstree_txn_free(struct xstree_txn *x);
void xstree_txn_write(struct xstree_txn *x, const char *path,
                      const char *value);
void xstree_txn_rm(struct xstree_txn *x, const char *path);
/* if_exists: a missing from is skipped instead of failing the commit. */
void xstree_txn_move(struct xstree_txn *x, const char *from, const char *to,
                     bool if_exists);
/* Apply every recorded operation, or none: on error the tree is unchanged
 * and the error is the first failing operation's. x stays owned by the
 * caller and may be committed again or freed. */
int xstree_txn_commit(struct xstree *t, const struct xstree_txn *x);

/* Emit the subtree at prefix ("/" for everything) as one JSON object
 * {"<path>": "<value>", ...} in depth-first sorted order. A missing prefix
 * gives {}. */
void xstree_gen_json(struct xstree *t, yajl_gen g, const char *prefix);
/* The same as a malloc'd text (caller frees). */
char *xstree_dump_json(struct xstree *t, const char *prefix);

#endif
