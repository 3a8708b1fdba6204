/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Design: a plain tree of nodes, each with a sorted array of children
 * (binary search by component), under one mutex. Paths are validated in
 * full before the tree is touched, so every single operation either fails
 * up front or cannot fail. A transaction that contains a move (the only
 * operation whose outcome depends on the tree) and anything else is applied
 * to a copy of the tree that replaces the original only on success: the
 * tree is small (records of the VMs on one host) and transactions are rare
 * (create, rename, plug), so the copy is cheaper than an undo log to get
 * right.
 */

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "backend/sim/xstree.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

struct xs_node {
    char *name;               /* "" for the root */
    char *value;
    struct xs_node **kids;    /* sorted by strcmp of name */
    size_t n_kids;
    size_t cap_kids;
};

struct xstree {
    pthread_mutex_t lock;
    struct xs_node *root;
};

enum xs_op_kind {
    XS_OP_WRITE,
    XS_OP_RM,
    XS_OP_MOVE,
    XS_OP_MOVE_IF_EXISTS,
};

struct xs_op {
    enum xs_op_kind kind;
    char *a;                  /* the path, or the source of a move */
    char *b;                  /* the value, or the target of a move */
};

struct xstree_txn {
    struct xs_op *ops;
    size_t n;
    size_t cap;
};

/* ---- paths ---- */

static bool
xs_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c >= '0' && c <= '9') || c == '_' || c == '.' || c == ':' ||
           c == '@' || c == '-';
}

bool
xstree_path_ok(const char *path, bool allow_root)
{
    size_t len, comp = 0;

    if (!path || path[0] != '/')
        return false;
    len = strnlen(path, XSTREE_PATH_MAX + 1);
    if (len > XSTREE_PATH_MAX)
        return false;
    if (len == 1)
        return allow_root;
    for (size_t i = 1; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            if (comp == 0)
                return false;
            comp = 0;
        } else if (!xs_char_ok(path[i])) {
            return false;
        } else {
            comp++;
        }
    }
    return true;
}

/* At most 64 printable characters of untrusted text, for messages. */
static void
xs_shown(const char *s, char *out, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; s && s[i] && j + 1 < n && i < 64; i++)
        out[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    out[j] = '\0';
}

static int
xs_check_path(const char *path, bool allow_root)
{
    char shown[72];

    if (xstree_path_ok(path, allow_root))
        return 0;
    xs_shown(path, shown, sizeof(shown));
    LOG(WARN, "invalid xenstore path '%s'", shown);
    return xo_err_internal_code(XO_EINVAL, "invalid xenstore path '%s'",
                                shown);
}

static int
xs_check_value(const char *path, const char *value)
{
    char shown[72];

    if (value && strnlen(value, XSTREE_VALUE_MAX + 1) <= XSTREE_VALUE_MAX)
        return 0;
    xs_shown(path, shown, sizeof(shown));
    LOG(WARN, "invalid value for xenstore path '%s': %s", shown,
        value ? "too long" : "missing");
    return xo_err_internal_code(XO_EINVAL,
                                "invalid value for xenstore path '%s'",
                                shown);
}

/* b is a or lies below a. */
static bool
xs_within(const char *a, const char *b)
{
    size_t la = strlen(a);

    return strncmp(a, b, la) == 0 && (b[la] == '\0' || b[la] == '/');
}

/* ---- nodes ---- */

static struct xs_node *
xs_node_new(const char *name, size_t len, const char *value)
{
    struct xs_node *n = xcalloc(1, sizeof(*n));

    n->name = xstrndup(name, len);
    n->value = xstrdup(value);
    return n;
}

static void
xs_node_free(struct xs_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n_kids; i++)
        xs_node_free(n->kids[i]);
    free(n->kids);
    free(n->name);
    free(n->value);
    free(n);
}

static struct xs_node *
xs_node_clone(const struct xs_node *n)
{
    struct xs_node *c = xs_node_new(n->name, strlen(n->name), n->value);

    if (n->n_kids) {
        c->kids = xmalloc(n->n_kids * sizeof(*c->kids));
        c->cap_kids = n->n_kids;
        for (size_t i = 0; i < n->n_kids; i++)
            c->kids[i] = xs_node_clone(n->kids[i]);
        c->n_kids = n->n_kids;
    }
    return c;
}

/* The longest "/<kid>/<grandkid>..." below n (0 for a leaf). */
static size_t
xs_node_depth_len(const struct xs_node *n)
{
    size_t best = 0;

    for (size_t i = 0; i < n->n_kids; i++) {
        size_t l = 1 + strlen(n->kids[i]->name) +
                   xs_node_depth_len(n->kids[i]);

        if (l > best)
            best = l;
    }
    return best;
}

/* strcmp of a kid's name against the len bytes at name. */
static int
xs_cmp(const char *kid, const char *name, size_t len)
{
    int c = strncmp(kid, name, len);

    if (c)
        return c;
    return kid[len] != '\0';
}

/* Binary search: true and the index if found, else false and the index at
 * which it would be inserted. */
static bool
xs_find(const struct xs_node *n, const char *name, size_t len,
        size_t *pos_r)
{
    size_t lo = 0, hi = n->n_kids;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = xs_cmp(n->kids[mid]->name, name, len);

        if (c == 0) {
            *pos_r = mid;
            return true;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *pos_r = lo;
    return false;
}

static void
xs_insert(struct xs_node *n, size_t pos, struct xs_node *kid)
{
    if (n->n_kids == n->cap_kids) {
        n->cap_kids = n->cap_kids ? 2 * n->cap_kids : 4;
        n->kids = xrealloc(n->kids, n->cap_kids * sizeof(*n->kids));
    }
    memmove(&n->kids[pos + 1], &n->kids[pos],
            (n->n_kids - pos) * sizeof(*n->kids));
    n->kids[pos] = kid;
    n->n_kids++;
}

static struct xs_node *
xs_remove_at(struct xs_node *n, size_t pos)
{
    struct xs_node *kid = n->kids[pos];

    memmove(&n->kids[pos], &n->kids[pos + 1],
            (n->n_kids - pos - 1) * sizeof(*n->kids));
    n->n_kids--;
    return kid;
}

/*
 * The parent of a valid non-root path (created with empty values when
 * create is set, else NULL if missing), and the path's last component.
 */
static struct xs_node *
xs_parent(struct xs_node *root, const char *path, bool create,
          const char **last_r, size_t *len_r)
{
    struct xs_node *n = root;
    const char *c = path + 1;

    for (;;) {
        size_t len = strcspn(c, "/");
        size_t pos;

        if (c[len] == '\0') {
            *last_r = c;
            *len_r = len;
            return n;
        }
        if (!xs_find(n, c, len, &pos)) {
            if (!create)
                return NULL;
            xs_insert(n, pos, xs_node_new(c, len, ""));
        }
        n = n->kids[pos];
        c += len + 1;
    }
}

/* The node at a valid path, or NULL. */
static struct xs_node *
xs_lookup(struct xs_node *root, const char *path)
{
    struct xs_node *parent;
    const char *last;
    size_t len, pos;

    if (strcmp(path, "/") == 0)
        return root;
    parent = xs_parent(root, path, false, &last, &len);
    if (!parent || !xs_find(parent, last, len, &pos))
        return NULL;
    return parent->kids[pos];
}

/* ---- operations on a (possibly copied) root; paths already valid ---- */

static void
xs_do_write(struct xs_node *root, const char *path, const char *value)
{
    const char *last;
    size_t len, pos;
    struct xs_node *parent = xs_parent(root, path, true, &last, &len);

    if (xs_find(parent, last, len, &pos)) {
        free(parent->kids[pos]->value);
        parent->kids[pos]->value = xstrdup(value);
    } else {
        xs_insert(parent, pos, xs_node_new(last, len, value));
    }
}

static void
xs_do_rm(struct xs_node *root, const char *path)
{
    const char *last;
    size_t len, pos;
    struct xs_node *parent = xs_parent(root, path, false, &last, &len);

    if (parent && xs_find(parent, last, len, &pos))
        xs_node_free(xs_remove_at(parent, pos));
}

/* Checks everything before changing anything. */
static int
xs_do_move(struct xs_node *root, const char *from, const char *to,
           bool if_exists)
{
    const char *last;
    size_t len, pos;
    struct xs_node *parent, *node;
    char shown[72];

    node = xs_lookup(root, from);
    if (!node) {
        if (if_exists)
            return 0;
        xs_shown(from, shown, sizeof(shown));
        LOG(WARN, "cannot move xenstore path '%s': it does not exist",
            shown);
        return xo_err_does_not_exist("path", shown);
    }
    if (xs_lookup(root, to)) {
        xs_shown(to, shown, sizeof(shown));
        LOG(WARN, "cannot move to xenstore path '%s': it exists", shown);
        return xo_err_already_exists("path", shown);
    }
    if (strlen(to) + xs_node_depth_len(node) > XSTREE_PATH_MAX) {
        xs_shown(to, shown, sizeof(shown));
        LOG(WARN, "cannot move to xenstore path '%s': paths too long",
            shown);
        return xo_err_internal_code(XO_EINVAL,
                                    "moving to xenstore path '%s' makes "
                                    "paths too long", shown);
    }
    parent = xs_parent(root, from, false, &last, &len);
    xs_find(parent, last, len, &pos);
    node = xs_remove_at(parent, pos);
    parent = xs_parent(root, to, true, &last, &len);
    xs_find(parent, last, len, &pos);
    free(node->name);
    node->name = xstrndup(last, len);
    xs_insert(parent, pos, node);
    return 0;
}

static int
xs_check_op(const struct xs_op *op)
{
    int rc;
    char shown[72];

    switch (op->kind) {
    case XS_OP_WRITE:
        rc = xs_check_path(op->a, false);
        if (!rc)
            rc = xs_check_value(op->a, op->b);
        return rc;
    case XS_OP_RM:
        return xs_check_path(op->a, false);
    case XS_OP_MOVE:
    case XS_OP_MOVE_IF_EXISTS:
        rc = xs_check_path(op->a, false);
        if (!rc)
            rc = xs_check_path(op->b, false);
        if (!rc && xs_within(op->a, op->b)) {
            xs_shown(op->b, shown, sizeof(shown));
            LOG(WARN, "cannot move a xenstore path into itself ('%s')",
                shown);
            rc = xo_err_internal_code(XO_EINVAL, "cannot move a xenstore "
                                      "path into itself ('%s')", shown);
        }
        return rc;
    }
    return xo_err_internal("unknown xenstore operation");
}

static int
xs_apply(struct xs_node *root, const struct xs_op *op)
{
    switch (op->kind) {
    case XS_OP_WRITE:
        xs_do_write(root, op->a, op->b);
        return 0;
    case XS_OP_RM:
        xs_do_rm(root, op->a);
        return 0;
    case XS_OP_MOVE:
        return xs_do_move(root, op->a, op->b, false);
    case XS_OP_MOVE_IF_EXISTS:
        return xs_do_move(root, op->a, op->b, true);
    }
    return xo_err_internal("unknown xenstore operation");
}

/* Check, then apply ops under the lock: in place when no operation after
 * the first can fail, else on a copy that replaces the tree on success. */
static int
xs_run(struct xstree *t, const struct xs_op *ops, size_t n)
{
    struct xs_node *work;
    bool copy = false;
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        rc = xs_check_op(&ops[i]);
        if (rc)
            return rc;
        if (n > 1 && (ops[i].kind == XS_OP_MOVE ||
                      ops[i].kind == XS_OP_MOVE_IF_EXISTS))
            copy = true;
    }
    pthread_mutex_lock(&t->lock);
    work = copy ? xs_node_clone(t->root) : t->root;
    for (size_t i = 0; i < n && !rc; i++)
        rc = xs_apply(work, &ops[i]);
    if (copy) {
        if (rc) {
            xs_node_free(work);
        } else {
            xs_node_free(t->root);
            t->root = work;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

/* ---- public API ---- */

int
xstree_new(struct xstree **t_r)
{
    struct xstree *t = xcalloc(1, sizeof(*t));

    pthread_mutex_init(&t->lock, NULL);
    t->root = xs_node_new("", 0, "");
    *t_r = t;
    return 0;
}

void
xstree_free(struct xstree *t)
{
    if (!t)
        return;
    xs_node_free(t->root);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int
xstree_write(struct xstree *t, const char *path, const char *value)
{
    struct xs_op op = { XS_OP_WRITE, (char *)path, (char *)value };

    return xs_run(t, &op, 1);
}

int
xstree_rm(struct xstree *t, const char *path)
{
    struct xs_op op = { XS_OP_RM, (char *)path, NULL };

    return xs_run(t, &op, 1);
}

int
xstree_move_subtree(struct xstree *t, const char *from, const char *to)
{
    struct xs_op op = { XS_OP_MOVE, (char *)from, (char *)to };

    return xs_run(t, &op, 1);
}

int
xstree_read(struct xstree *t, const char *path, char **value_r)
{
    struct xs_node *n;
    int rc;

    rc = xs_check_path(path, true);
    if (rc)
        return rc;
    pthread_mutex_lock(&t->lock);
    n = xs_lookup(t->root, path);
    if (n)
        *value_r = xstrdup(n->value);
    pthread_mutex_unlock(&t->lock);
    /* Not found is an ordinary answer to a probe: no log line. */
    return n ? 0 : xo_err_does_not_exist("path", path);
}

bool
xstree_exists(struct xstree *t, const char *path)
{
    bool found;

    if (!xstree_path_ok(path, true))
        return false;
    pthread_mutex_lock(&t->lock);
    found = xs_lookup(t->root, path) != NULL;
    pthread_mutex_unlock(&t->lock);
    return found;
}

int
xstree_directory(struct xstree *t, const char *path, char ***names_r,
                 size_t *n_r)
{
    struct xs_node *n;
    char **names = NULL;
    size_t count = 0;
    int rc;

    rc = xs_check_path(path, true);
    if (rc)
        return rc;
    pthread_mutex_lock(&t->lock);
    n = xs_lookup(t->root, path);
    if (n) {
        count = n->n_kids;
        names = xmalloc((count + 1) * sizeof(*names));
        for (size_t i = 0; i < count; i++)
            names[i] = xstrdup(n->kids[i]->name);
        names[count] = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    if (!n)
        return xo_err_does_not_exist("path", path);
    *names_r = names;
    if (n_r)
        *n_r = count;
    return 0;
}

void
xstree_strv_free(char **v)
{
    if (!v)
        return;
    for (size_t i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

/* ---- transactions ---- */

int
xstree_txn_new(struct xstree_txn **x_r)
{
    *x_r = xcalloc(1, sizeof(**x_r));
    return 0;
}

void
xstree_txn_free(struct xstree_txn *x)
{
    if (!x)
        return;
    for (size_t i = 0; i < x->n; i++) {
        free(x->ops[i].a);
        free(x->ops[i].b);
    }
    free(x->ops);
    free(x);
}

/* NULL strings are kept as NULL so that the commit refuses them. */
static void
xs_txn_add(struct xstree_txn *x, enum xs_op_kind kind, const char *a,
           const char *b)
{
    if (x->n == x->cap) {
        x->cap = x->cap ? 2 * x->cap : 8;
        x->ops = xrealloc(x->ops, x->cap * sizeof(*x->ops));
    }
    x->ops[x->n].kind = kind;
    x->ops[x->n].a = a ? xstrdup(a) : NULL;
    x->ops[x->n].b = b ? xstrdup(b) : NULL;
    x->n++;
}

void
xstree_txn_write(struct xstree_txn *x, const char *path, const char *value)
{
    xs_txn_add(x, XS_OP_WRITE, path, value);
}

void
xstree_txn_rm(struct xstree_txn *x, const char *path)
{
    xs_txn_add(x, XS_OP_RM, path, NULL);
}

void
xstree_txn_move(struct xstree_txn *x, const char *from, const char *to,
                bool if_exists)
{
    xs_txn_add(x, if_exists ? XS_OP_MOVE_IF_EXISTS : XS_OP_MOVE, from, to);
}

int
xstree_txn_commit(struct xstree *t, const struct xstree_txn *x)
{
    return xs_run(t, x->ops, x->n);
}

/* ---- dump ---- */

/* buf holds the path of n (len characters, "" for the root) and has room
 * for XSTREE_PATH_MAX + 1 characters: moves keep every path in bound. */
static void
xs_gen_kids(yajl_gen g, const struct xs_node *n, char *buf, size_t len)
{
    for (size_t i = 0; i < n->n_kids; i++) {
        const struct xs_node *kid = n->kids[i];
        size_t l = strlen(kid->name);

        buf[len] = '/';
        memcpy(buf + len + 1, kid->name, l + 1);
        json_gen_str(g, buf);
        json_gen_str(g, kid->value);
        xs_gen_kids(g, kid, buf, len + 1 + l);
    }
    buf[len] = '\0';
}

void
xstree_gen_json(struct xstree *t, yajl_gen g, const char *prefix)
{
    char *buf = xmalloc(XSTREE_PATH_MAX + 2);
    const struct xs_node *n;

    yajl_gen_map_open(g);
    if (xstree_path_ok(prefix, true)) {
        pthread_mutex_lock(&t->lock);
        n = xs_lookup(t->root, prefix);
        if (n) {
            size_t len = strcmp(prefix, "/") == 0 ? 0 : strlen(prefix);

            memcpy(buf, prefix, len);
            buf[len] = '\0';
            if (len) {
                json_gen_str(g, buf);
                json_gen_str(g, n->value);
            }
            xs_gen_kids(g, n, buf, len);
        }
        pthread_mutex_unlock(&t->lock);
    }
    yajl_gen_map_close(g);
    free(buf);
}

char *
xstree_dump_json(struct xstree *t, const char *prefix)
{
    yajl_gen g = json_gen_new();

    xstree_gen_json(t, g, prefix);
    return json_gen_take(g);
}
