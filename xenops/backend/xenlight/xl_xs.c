/* SPDX-License-Identifier: LGPL-2.1-only */
#include "backend/xenlight/xl_xs.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

/* xvd index from "a".."z", "aa".."zz"; -1 if not that. */
static int
xvd_index(const char *s)
{
    size_t n = strlen(s);

    for (size_t i = 0; i < n; i++)
        if (s[i] < 'a' || s[i] > 'z')
            return -1;
    if (n == 1)
        return s[0] - 'a';
    if (n == 2)
        return 26 + (s[0] - 'a') * 26 + (s[1] - 'a');
    return -1;
}

int
xl_vbd_devid(const char *dev, int *devid_r)
{
    static const int hd[4] = { 3 << 8, 3 << 8 | 64, 22 << 8, 22 << 8 | 64 };
    int n = -1;

    if (dev && strncmp(dev, "xvd", 3) == 0) {
        n = xvd_index(dev + 3);
    } else if (dev && strncmp(dev, "hd", 2) == 0 && dev[2] >= 'a' &&
               dev[2] <= 'd' && !dev[3]) {
        *devid_r = hd[dev[2] - 'a'];
        return 0;
    } else if (dev && dev[0] >= '0' && dev[0] <= '9') {
        char *end;
        long v = strtol(dev, &end, 10);

        if (!*end && v >= 0 && v <= 255 && (dev[0] != '0' || !dev[1]))
            n = (int)v;
    }
    if (n < 0)
        return xo_err_internal_code(XO_EINVAL, "VBD device '%s' is not "
                                    "xvdX, hdX or a userdevice number",
                                    dev ? dev : "");
    *devid_r = n < 16 ? (202 << 8) | (n << 4) : (1 << 28) | (n << 8);
    return 0;
}

static void
kv(struct xl_xs_kv *arr, size_t *n, const char *key, char *value)
{
    arr[*n].key = xstrdup(key);
    arr[*n].value = value;
    (*n)++;
}

void
xl_vbd_nodes(int domid, int devid, const char *dev, const char *params,
             unsigned major, unsigned minor, bool rw, bool cdrom,
             struct xl_dev_nodes *n)
{
    const char *type = cdrom ? "cdrom" : "disk";

    memset(n, 0, sizeof(*n));
    n->domid = domid;
    n->be = xasprintf("/local/domain/0/backend/vbd/%d/%d", domid, devid);
    n->fe = xasprintf("/local/domain/%d/device/vbd/%d", domid, devid);
    kv(n->be_kv, &n->n_be, "frontend", xstrdup(n->fe));
    kv(n->be_kv, &n->n_be, "frontend-id", xasprintf("%d", domid));
    kv(n->be_kv, &n->n_be, "online", xstrdup("1"));
    kv(n->be_kv, &n->n_be, "removable", xstrdup(cdrom ? "1" : "0"));
    kv(n->be_kv, &n->n_be, "bootable", xstrdup("1"));
    kv(n->be_kv, &n->n_be, "state", xstrdup("1"));
    kv(n->be_kv, &n->n_be, "dev", xstrdup(dev));
    kv(n->be_kv, &n->n_be, "type", xstrdup("phy"));
    kv(n->be_kv, &n->n_be, "mode", xstrdup(rw ? "w" : "r"));
    kv(n->be_kv, &n->n_be, "device-type", xstrdup(type));
    kv(n->be_kv, &n->n_be, "params", xstrdup(params));
    /* blkback opens the device when this appears: last but one. */
    kv(n->be_kv, &n->n_be, "physical-device",
       xasprintf("%x:%x", major, minor));
    /* No script runs: what a hotplug script would say once done. */
    kv(n->be_kv, &n->n_be, "hotplug-status", xstrdup("connected"));
    kv(n->fe_kv, &n->n_fe, "backend", xstrdup(n->be));
    kv(n->fe_kv, &n->n_fe, "backend-id", xstrdup("0"));
    kv(n->fe_kv, &n->n_fe, "state", xstrdup("1"));
    kv(n->fe_kv, &n->n_fe, "virtual-device", xasprintf("%d", devid));
    kv(n->fe_kv, &n->n_fe, "device-type", xstrdup(type));
}

void
xl_dev_nodes_dispose(struct xl_dev_nodes *n)
{
    for (size_t i = 0; i < n->n_be; i++) {
        free(n->be_kv[i].key);
        free(n->be_kv[i].value);
    }
    for (size_t i = 0; i < n->n_fe; i++) {
        free(n->fe_kv[i].key);
        free(n->fe_kv[i].value);
    }
    free(n->be);
    free(n->fe);
    memset(n, 0, sizeof(*n));
}

static bool
write_dir(struct xs_handle *xs, xs_transaction_t t, const char *dir,
          const struct xl_xs_kv *kvs, size_t n, struct xs_permissions *perms)
{
    if (!xs_rm(xs, t, dir) && errno != ENOENT)
        return false;
    if (!xs_mkdir(xs, t, dir) || !xs_set_permissions(xs, t, dir, perms, 2))
        return false;
    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s", dir, kvs[i].key);
        bool ok = xs_write(xs, t, p, kvs[i].value, strlen(kvs[i].value));

        free(p);
        if (!ok)
            return false;
    }
    return true;
}

int
xl_dev_nodes_write(struct xs_handle *xs, const struct xl_dev_nodes *n)
{
    /* Backend: dom0 owns it, the guest reads it; frontend: the guest
     * owns it (it writes its state and rings there), dom0 reads it. */
    struct xs_permissions be_perms[2] = {
        { 0, XS_PERM_NONE }, { (unsigned)n->domid, XS_PERM_READ } };
    struct xs_permissions fe_perms[2] = {
        { (unsigned)n->domid, XS_PERM_NONE }, { 0, XS_PERM_READ } };

    for (int tries = 0; tries < 100; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);

        if (t == XBT_NULL)
            break;
        if (!write_dir(xs, t, n->fe, n->fe_kv, n->n_fe, fe_perms) ||
            !write_dir(xs, t, n->be, n->be_kv, n->n_be, be_perms)) {
            int e = errno;

            xs_transaction_end(xs, t, true);
            errno = e;
            break;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            break;
    }
    LOGE(ERROR, "xenstore: writing device %s failed", n->be);
    return xo_err_internal_code(XO_EIO, "xenstore write of %s failed",
                                n->be);
}

int
xl_xs_put(struct xs_handle *xs, const char *path, const char *value)
{
    bool ok = value ? xs_write(xs, XBT_NULL, path, value, strlen(value))
                    : xs_rm(xs, XBT_NULL, path) || errno == ENOENT;

    if (ok)
        return 0;
    LOGE(ERROR, "xenstore: %s of %s failed", value ? "write" : "rm", path);
    return xo_err_internal_code(XO_EIO, "xenstore %s of %s failed",
                                value ? "write" : "rm", path);
}

char *
xl_xs_get(struct xs_handle *xs, const char *path)
{
    unsigned len;

    return xs_read(xs, XBT_NULL, path, &len);
}

long
xl_xs_get_long(struct xs_handle *xs, const char *path, long dflt)
{
    char *s = xl_xs_get(xs, path), *end;
    long v = dflt;

    if (s) {
        v = strtol(s, &end, 10);
        if (end == s || *end)
            v = dflt;
    }
    free(s);
    return v;
}

static bool
copy_tree(struct xs_handle *xs, xs_transaction_t t, const char *from,
          const char *to, int depth)
{
    unsigned len, n;
    char *v = xs_read(xs, t, from, &len);
    char **names;
    bool ok = true;

    if (depth > 8)
        return false;
    if (!v || !xs_write(xs, t, to, v, len))
        ok = false;
    free(v);
    names = ok ? xs_directory(xs, t, from, &n) : NULL;
    for (unsigned i = 0; ok && names && i < n; i++) {
        char *f = xasprintf("%s/%s", from, names[i]);
        char *d = xasprintf("%s/%s", to, names[i]);

        ok = copy_tree(xs, t, f, d, depth + 1);
        free(f);
        free(d);
    }
    free(names);
    return ok;
}

int
xl_xs_move(struct xs_handle *xs, const char *from, const char *to)
{
    for (int tries = 0; tries < 100; tries++) {
        xs_transaction_t t = xs_transaction_start(xs);
        unsigned len;
        char *exists;

        if (t == XBT_NULL)
            break;
        exists = xs_read(xs, t, to, &len);
        if (exists) {
            free(exists);
            xs_transaction_end(xs, t, true);
            return xo_err_internal_code(XO_EEXISTS, "xenstore %s exists",
                                        to);
        }
        if (!copy_tree(xs, t, from, to, 0) || !xs_rm(xs, t, from)) {
            xs_transaction_end(xs, t, true);
            break;
        }
        if (xs_transaction_end(xs, t, false))
            return 0;
        if (errno != EAGAIN)
            break;
    }
    LOGE(ERROR, "xenstore: moving %s to %s failed", from, to);
    return xo_err_internal_code(XO_EIO, "xenstore move of %s failed", from);
}

char **
xl_xs_list(struct xs_handle *xs, const char *path, size_t *n_r)
{
    unsigned n = 0;
    char **names = xs_directory(xs, XBT_NULL, path, &n);
    char **out = NULL;

    *n_r = 0;
    if (!names)
        return NULL;
    out = xcalloc(n ? n : 1, sizeof(*out));
    for (unsigned i = 0; i < n; i++)
        out[i] = xstrdup(names[i]);
    free(names);
    *n_r = n;
    return out;
}

void
xl_xs_list_free(char **names, size_t n)
{
    for (size_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}
