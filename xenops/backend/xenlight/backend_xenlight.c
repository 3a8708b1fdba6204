/* SPDX-License-Identifier: LGPL-2.1-only */
/* The xenlight backend: domains and devices (streams are in xl_stream.c).
 * backend_xenlight.h says what it does and why. */
#include "backend/xenlight/backend_xenlight.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <libxl_utils.h>

#include "backend/xenlight/xl_priv.h"
#include "backend/xenlight/xl_xs.h"
#include "util/clock.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Xen's first reserved domid (DOMID_FIRST_RESERVED). */
#define XL_DOMID_LIMIT 0x7FF0U
/* Where libxl remembers the domids it destroyed lately. */
#define XL_DOMID_HISTORY "/var/run/xen/domid-history"
#define XL_DOMID_HISTORY_MAX 1024

char *
xl_rec(const char *vm, const char *key)
{
    return xasprintf(XL_XS_ROOT "/%s/%s", vm, key);
}

int
xl_fail(const char *vm, int lrc, const char *what)
{
    LOGVM(ERROR, vm, "libxl: %s failed (libxl error %d)", what, lrc);
    return xo_err_internal("%s failed: libxl error %d (libxl's own "
                           "messages are in the daemon's log)", what, lrc);
}

/* ---- records ---- */

static long
rec_long(struct xl *x, const char *vm, const char *key, long dflt)
{
    char *p = xl_rec(vm, key);
    long v = xl_xs_get_long(x->xs, p, dflt);

    free(p);
    return v;
}

static int
rec_put(struct xl *x, const char *vm, const char *key, const char *value)
{
    char *p = xl_rec(vm, key);
    int rc = xl_xs_put(x->xs, p, value);

    free(p);
    return rc;
}

static bool
domain_matches(struct xl *x, uint32_t domid, const char *vm,
               libxl_dominfo *info)
{
    libxl_uuid u;
    bool ok;

    libxl_dominfo_init(info);
    if (libxl_domain_info(x->ctx, info, domid))
        return false;
    ok = libxl_uuid_from_string(&u, vm) == 0 &&
         libxl_uuid_compare(&u, &info->uuid) == 0;
    if (!ok)
        libxl_dominfo_dispose(info);
    return ok;
}

int
xl_domain_of(struct xl *x, const char *vm, uint32_t *domid_r,
             libxl_dominfo *info_r)
{
    libxl_dominfo info;
    long domid = rec_long(x, vm, "domid", -1);

    if (domid < 1 || domid >= (long)XL_DOMID_LIMIT ||
        !domain_matches(x, (uint32_t)domid, vm, &info))
        return 0;
    *domid_r = (uint32_t)domid;
    if (info_r)
        *info_r = info;
    else
        libxl_dominfo_dispose(&info);
    return 1;
}

int
xl_domid_reserved(struct xl *x, const char *vm, uint32_t *domid_r)
{
    long domid = rec_long(x, vm, "domid", -1);

    if (domid < 1 || domid >= (long)XL_DOMID_LIMIT)
        return xo_err_bad_power_state("Halted", "Paused");
    *domid_r = (uint32_t)domid;
    return 0;
}

/* The VIFs kept for a domain that did not exist yet were created with it:
 * a later build must not create them again. */
static void
drop_pending_vifs(struct xl *x, const char *vm)
{
    char *dir = xl_rec(vm, "vif");
    size_t n = 0;
    char **devs = xl_xs_list(x->xs, dir, &n);

    for (size_t i = 0; i < n; i++) {
        char *p = xasprintf("%s/%s/config", dir, devs[i]);

        if (xl_xs_put(x->xs, p, NULL))
            xo_err_clear();
        free(p);
    }
    xl_xs_list_free(devs, n);
    free(dir);
}

int
xl_mark_built(struct xl *x, const char *vm, uint32_t domid)
{
    char num[16];
    int rc;

    snprintf(num, sizeof(num), "%u", domid);
    rc = rec_put(x, vm, "domid", num);
    if (!rc)
        rc = rec_put(x, vm, "built", "1");
    if (!rc)
        drop_pending_vifs(x, vm);
    return rc;
}

/* The kept VM_create config of vm; call with x->lock held. */
static struct xl_vm *
vm_find_locked(struct xl *x, const char *vm)
{
    for (struct xl_vm *v = x->vms; v; v = v->next)
        if (strcmp(v->cfg.id, vm) == 0)
            return v;
    return NULL;
}

static void
vm_drop(struct xl *x, const char *vm)
{
    struct xl_vm **pp, *v;

    pthread_mutex_lock(&x->lock);
    for (pp = &x->vms; (v = *pp); pp = &v->next) {
        if (strcmp(v->cfg.id, vm) == 0) {
            *pp = v->next;
            xl_vm_config_dispose(&v->cfg);
            free(v);
            break;
        }
    }
    pthread_mutex_unlock(&x->lock);
}

/* ---- VIFs plugged before their domain exists ---- */

static int
add_pending_vifs(struct xl *x, const char *vm, libxl_domain_config *d)
{
    char *dir = xl_rec(vm, "vif");
    size_t n = 0;
    char **devs = xl_xs_list(x->xs, dir, &n);
    int rc = 0;

    for (size_t i = 0; !rc && i < n; i++) {
        char *p = xasprintf("%s/%s/config", dir, devs[i]);
        char *json = xl_xs_get(x->xs, p);
        struct xl_vif_config vc;
        libxl_device_nic *nic;

        free(p);
        if (!json)
            continue;
        rc = xl_vif_config_parse(json, &vc);
        free(json);
        if (rc)
            break;
        /* libxl_domain_config_dispose frees the array with free(). */
        d->nics = xrealloc(d->nics, (size_t)(d->num_nics + 1) *
                                        sizeof(*d->nics));
        nic = &d->nics[d->num_nics++];
        libxl_device_nic_init(nic);
        rc = xl_vif_config_to_libxl(&vc, nic);
    }
    xl_xs_list_free(devs, n);
    free(dir);
    return rc;
}

int
xl_vm_libxl_config(struct xl *x, const char *vm, uint32_t domid,
                   libxl_domain_config *d)
{
    struct xl_vm *v;
    int rc;

    pthread_mutex_lock(&x->lock);
    v = vm_find_locked(x, vm);
    rc = v ? xl_vm_config_to_libxl(&v->cfg, domid, x->cpuid, d)
           : xo_err_internal_code(XO_ENOTBUILT, "VM %s has no configuration "
                                  "from VM_create (the daemon restarted "
                                  "since): destroy it and start it again",
                                  vm);
    pthread_mutex_unlock(&x->lock);
    if (!rc)
        rc = add_pending_vifs(x, vm, d);
    return rc;
}

/* ---- VMs ---- */

static void
xl_free(struct xl *x)
{
    while (x->vms) {
        struct xl_vm *v = x->vms;

        x->vms = v->next;
        xl_vm_config_dispose(&v->cfg);
        free(v);
    }
    libxl_ctx_free(x->ctx);
    if (x->xch)
        xc_interface_close(x->xch);
    if (x->xs)
        xs_close(x->xs);
    if (x->lg)
        xtl_logger_destroy((xentoollog_logger *)x->lg);
    pthread_mutex_destroy(&x->lock);
    free(x->cpuid);
    free(x);
}

static void
xl_destroy(struct backend *b)
{
    xl_free(b->priv);
    free(b);
}

/* Is domid reserved by another VM's record? */
static bool
domid_reserved_by_other(struct xl *x, uint32_t domid, const char *vm,
                        char **vms, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(vms[i], vm) != 0 &&
            rec_long(x, vms[i], "domid", -1) == (long)domid)
            return true;
    return false;
}

static bool
domid_in(uint32_t d, const uint32_t *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == d)
            return true;
    return false;
}

/*
 * A domid free in Xen and in no other VM's record; x->lock held. Domids
 * go up and wrap: libxl refuses a domid destroyed less than a minute ago
 * (a reboot must not get its old one back), and the next one to try is
 * kept in xenstore so that a restarted daemon goes on from there.
 */
static int
domid_pick_locked(struct xl *x, const char *vm, uint32_t *domid_r)
{
    size_t n = 0;
    char **vms = xl_xs_list(x->xs, XL_XS_ROOT, &n);
    long next = xl_xs_get_long(x->xs, XL_XS_NEXT_DOMID, 1);
    uint32_t recent[XL_DOMID_HISTORY_MAX];
    size_t n_recent = 0;
    libxl_dominfo info;
    char num[16], *hist = NULL;
    int rc = xo_err_internal("no free domid");

    /* Another toolstack (xl) may have destroyed domains lately: libxl
     * would refuse their domids at build time, after this reservation
     * has named the VM's datapaths. */
    if (access(XL_DOMID_HISTORY, R_OK) == 0 &&
        files_read_path(XL_DOMID_HISTORY, 64 * 1024, &hist, NULL) == 0)
        n_recent = xl_domid_history_parse(hist, recent,
                                          XL_DOMID_HISTORY_MAX);
    else
        xo_err_clear();
    free(hist);

    if (next < 1 || next >= (long)XL_DOMID_LIMIT)
        next = 1;
    for (uint32_t tries = 0; tries < XL_DOMID_LIMIT; tries++) {
        uint32_t d = (uint32_t)next;

        next = d + 1 >= XL_DOMID_LIMIT ? 1 : d + 1;
        libxl_dominfo_init(&info);
        if (libxl_domain_info(x->ctx, &info, d) == 0) {
            libxl_dominfo_dispose(&info);
            continue;
        }
        libxl_dominfo_dispose(&info);
        if (domid_reserved_by_other(x, d, vm, vms, n) ||
            domid_in(d, recent, n_recent))
            continue;
        snprintf(num, sizeof(num), "%ld", next);
        rc = xl_xs_put(x->xs, XL_XS_NEXT_DOMID, num);
        if (!rc)
            *domid_r = d;
        break;
    }
    xl_xs_list_free(vms, n);
    return rc;
}

static int
xl_vm_create(struct backend *b, const char *vm,
             const struct backend_vm_config *cfg)
{
    struct xl *x = b->priv;
    struct xl_vm *v = xcalloc(1, sizeof(*v));
    uint32_t domid;
    char num[16];
    int rc;

    rc = ids_check_vm(vm);
    if (!rc)
        rc = xl_vm_config_parse(cfg->vm_json, &v->cfg);
    if (rc) {
        char *why = xo_err_take_json(rc);

        LOGVM(ERROR, vm, "VM_create refused: %s", why);
        rc = xo_err_set_json(rc, why);
        goto out;
    }
    /* The domain takes the id it is created under (the Vm.t's own id is
     * the same unless the store was edited by hand). */
    memcpy(v->cfg.id, vm, sizeof(v->cfg.id));
    if (xl_domain_of(x, vm, &domid, NULL)) {
        rc = xo_err_already_exists("domain", vm);
        goto out;
    }
    pthread_mutex_lock(&x->lock);
    rc = domid_pick_locked(x, vm, &domid);
    if (!rc) {
        snprintf(num, sizeof(num), "%u", domid);
        rc = rec_put(x, vm, "built", NULL);
        if (!rc)
            rc = rec_put(x, vm, "domid", num);
        if (!rc)
            rc = rec_put(x, vm, "action-request", "poweroff");
    }
    if (!rc) {
        struct xl_vm *old = vm_find_locked(x, vm);

        if (old) {
            xl_vm_config_dispose(&old->cfg);
            old->cfg = v->cfg;
            free(v);
        } else {
            v->next = x->vms;
            x->vms = v;
        }
        v = NULL;
    }
    pthread_mutex_unlock(&x->lock);
    if (!rc)
        LOGVM(INFO, vm, "created: domid %u reserved", domid);
out:
    if (v) {
        xl_vm_config_dispose(&v->cfg);
        free(v);
    }
    return rc;
}

static int
xl_vm_build(struct backend *b, const char *vm, bool force)
{
    struct xl *x = b->priv;
    libxl_domain_config d;
    uint32_t domid, got;
    int rc, lrc;

    if (xl_domain_of(x, vm, &domid, NULL))
        return 0;       /* restored, or built before a restart */
    rc = xl_domid_reserved(x, vm, &domid);
    if (rc)
        return rc;
    libxl_domain_config_init(&d);
    rc = xl_vm_libxl_config(x, vm, domid, &d);
    if (rc)
        goto out;
    got = domid;
    lrc = libxl_domain_create_new(x->ctx, &d, &got, NULL, NULL);
    if (lrc) {
        rc = xl_fail(vm, lrc, "building the domain");
        goto out;
    }
    rc = xl_mark_built(x, vm, got);
    if (!rc)
        LOGVM(INFO, vm, "built domain %u", got);
out:
    libxl_domain_config_dispose(&d);
    return rc;
}

/* The VM's built domain, or Domain_not_built. */
static int
need_domain(struct xl *x, const char *vm, uint32_t *domid_r,
            libxl_dominfo *info_r)
{
    if (xl_domain_of(x, vm, domid_r, info_r))
        return 0;
    return xo_err_tag(XO_ENOTBUILT, "Domain_not_built");
}

static int
xl_vm_pause(struct backend *b, const char *vm)
{
    struct xl *x = b->priv;
    uint32_t domid;
    int rc = need_domain(x, vm, &domid, NULL), lrc;

    if (rc)
        return rc;
    lrc = libxl_domain_pause(x->ctx, domid, NULL);
    return lrc ? xl_fail(vm, lrc, "pausing the domain") : 0;
}

static int
xl_vm_unpause(struct backend *b, const char *vm)
{
    struct xl *x = b->priv;
    libxl_dominfo info;
    uint32_t domid;
    int rc = need_domain(x, vm, &domid, &info), lrc = 0;

    if (rc)
        return rc;
    /* A guest that suspended for a save or a migration that then failed
     * is taken back by cancelling the suspend (it resumes where it was). */
    if (info.shutdown &&
        info.shutdown_reason == LIBXL_SHUTDOWN_REASON_SUSPEND) {
        LOGVM(INFO, vm, "resuming the suspended guest");
        lrc = libxl_domain_resume(x->ctx, domid, 1, NULL);
    }
    if (!lrc && info.paused)
        lrc = libxl_domain_unpause(x->ctx, domid, NULL);
    libxl_dominfo_dispose(&info);
    return lrc ? xl_fail(vm, lrc, "unpausing the domain") : 0;
}

/* ---- block devices ---- */

static char *
vbd_be_path(uint32_t domid, int devid)
{
    return xasprintf("/local/domain/0/backend/vbd/%u/%d", domid, devid);
}

/* Wait until the backend's state satisfies ok(), 0; XO_ETIMEDOUT. */
static int
wait_state(struct xl *x, const char *path, double timeout_s,
           bool (*ok)(long state), long *state_r)
{
    double end = clock_mono_s() + timeout_s;
    long ms = 1;

    for (;;) {
        long st = xl_xs_get_long(x->xs, path, 0);

        *state_r = st;
        if (ok(st))
            return 0;
        if (clock_mono_s() > end)
            return XO_ETIMEDOUT;
        clock_sleep_ms(ms);
        ms = ms < 20 ? ms * 2 : 20;
    }
}

static bool
state_probed(long st)
{
    /* InitWait or later: blkback opened the device. Closing/Closed: it
     * gave up (the frontend is gone, or the device could not open). */
    return st >= 2;
}

static bool
state_closed(long st)
{
    return st == 6 || st == 0;
}

/* blkback lets the block device go when its sysfs device disappears. */
static int
wait_released(const char *kind, uint32_t domid, int devid, double timeout_s)
{
    char p[96];
    double end = clock_mono_s() + timeout_s;
    struct stat sb;

    snprintf(p, sizeof(p), "/sys/bus/xen-backend/devices/%s-%u-%d", kind,
             domid, devid);
    while (stat(p, &sb) == 0) {
        if (clock_mono_s() > end)
            return XO_ETIMEDOUT;
        clock_sleep_ms(5);
    }
    return 0;
}

static int
xl_vbd_set_active(struct backend *b, const char *vm, const char *dev,
                  bool active)
{
    struct xl *x = b->priv;
    char *key;
    int devid, rc;

    rc = ids_check_vm(vm);
    if (!rc)
        rc = xl_vbd_devid(dev, &devid);
    if (rc)
        return rc;
    key = xasprintf("vbd/%s/active", dev);
    rc = rec_put(x, vm, key, active ? "1" : NULL);
    free(key);
    return rc;
}

static int
xl_vbd_add_device(struct backend *b, const char *vm, const char *dev,
                  const char *params, bool rw)
{
    struct xl *x = b->priv;
    struct xl_dev_nodes n;
    struct stat sb;
    uint32_t domid;
    char *be = NULL, *p = NULL, *exists;
    long st = 0;
    int devid, rc;

    memset(&n, 0, sizeof(n));
    rc = xl_vbd_devid(dev, &devid);
    if (!rc)
        rc = need_domain(x, vm, &domid, NULL);
    if (rc)
        goto out;
    p = xasprintf("vbd/%s/active", dev);
    if (rec_long(x, vm, p, 0) != 1) {
        rc = xo_err_internal_code(XO_EINVAL, "VBD %s is not active", dev);
        goto out;
    }
    if (!params || params[0] != '/' || stat(params, &sb) ||
        !S_ISBLK(sb.st_mode)) {
        LOGVM(ERROR, vm, "VBD '%s': '%s' is not a block device in dom0",
              dev, params ? params : "");
        rc = xo_err_internal_code(XO_EINVAL, "VBD %s: the datapath gave "
                                  "'%s', not a block device (the xenlight "
                                  "backend plugs blkback devices)", dev,
                                  params ? params : "");
        goto out;
    }
    be = vbd_be_path(domid, devid);
    free(p);
    p = xasprintf("%s/state", be);
    exists = xl_xs_get(x->xs, p);
    if (exists) {
        free(exists);
        rc = xo_err_already_exists("VBD", dev);
        goto out;
    }
    xl_vbd_nodes((int)domid, devid, dev, params, major(sb.st_rdev),
                 minor(sb.st_rdev), rw, false, &n);
    rc = xl_dev_nodes_write(x->xs, &n);
    if (rc)
        goto out;
    /* Not Connected: a paused guest's frontend answers only once it runs. */
    rc = wait_state(x, p, 10, state_probed, &st);
    if (rc || st >= 5) {
        LOGVM(ERROR, vm, "blkback did not take VBD '%s' (%s): state %ld",
              dev, params, st);
        rc = xo_err_internal_code(XO_EIO, "blkback did not open %s for VBD "
                                  "%s (backend state %ld)", params, dev, st);
        if (xl_xs_put(x->xs, n.be, NULL) || xl_xs_put(x->xs, n.fe, NULL))
            xo_err_clear();
        goto out;
    }
    LOGVM(INFO, vm, "VBD '%s' on %s as device %d of domain %u", dev, params,
          devid, domid);
out:
    xl_dev_nodes_dispose(&n);
    free(be);
    free(p);
    return rc;
}

/* Remove the device of (domid, devid): a clean close first unless force
 * (or the guest cannot answer), then both halves, then wait for blkback
 * to release the block device. */
static int
vbd_remove(struct xl *x, const char *vm, uint32_t domid, int devid,
           bool force)
{
    char *be = vbd_be_path(domid, devid);
    char *fe = xasprintf("/local/domain/%u/device/vbd/%d", domid, devid);
    char *state = xasprintf("%s/state", be), *online = NULL, *s;
    long st;
    int rc = 0;

    s = xl_xs_get(x->xs, state);
    if (!s)
        goto out;
    free(s);
    if (!force) {
        online = xasprintf("%s/online", be);
        rc = xl_xs_put(x->xs, online, "0");
        if (!rc)
            rc = xl_xs_put(x->xs, state, "5");
        if (!rc && wait_state(x, state, x->unplug_timeout_s, state_closed,
                              &st)) {
            LOGVM(ERROR, vm, "the guest did not close device %d within "
                  "%.0f s", devid, x->unplug_timeout_s);
            rc = xo_err_tag(XO_ECONNECTED, "Device_is_connected");
            goto out;
        }
        if (rc)
            goto out;
    }
    rc = xl_xs_put(x->xs, be, NULL);
    if (!rc)
        rc = xl_xs_put(x->xs, fe, NULL);
    if (!rc && wait_released("vbd", domid, devid, 10)) {
        LOGVM(ERROR, vm, "blkback still holds device %d of domain %u", devid,
              domid);
        rc = xo_err_internal_code(XO_EIO, "blkback did not release device "
                                  "%d of domain %u", devid, domid);
    }
out:
    free(be);
    free(fe);
    free(state);
    free(online);
    return rc;
}

static int
xl_vbd_remove_device(struct backend *b, const char *vm, const char *dev,
                     bool force)
{
    struct xl *x = b->priv;
    libxl_dominfo info;
    uint32_t domid;
    int devid, rc;
    bool running;

    rc = xl_vbd_devid(dev, &devid);
    if (rc)
        return rc;
    if (!xl_domain_of(x, vm, &domid, &info))
        return 0;
    /* Only a running guest can close its end. */
    running = !info.paused && !info.shutdown && !info.dying;
    libxl_dominfo_dispose(&info);
    return vbd_remove(x, vm, domid, devid, force || !running);
}

static int
xl_vbd_get_state(struct backend *b, const char *vm, const char *dev,
                 struct backend_vbd_state *st)
{
    struct xl *x = b->priv;
    uint32_t domid;
    char *p, *be, *params;
    int devid, rc;

    memset(st, 0, sizeof(*st));
    rc = ids_check_vm(vm);
    if (!rc)
        rc = xl_vbd_devid(dev, &devid);
    if (rc)
        return rc;
    p = xasprintf("vbd/%s/active", dev);
    st->active = rec_long(x, vm, p, 0) == 1;
    free(p);
    if (!xl_domain_of(x, vm, &domid, NULL))
        return 0;
    be = vbd_be_path(domid, devid);
    p = xasprintf("%s/state", be);
    st->backend_state = (int)xl_xs_get_long(x->xs, p, 0);
    st->plugged = st->backend_state > 0;
    free(p);
    p = xasprintf("%s/params", be);
    params = xl_xs_get(x->xs, p);
    if (params)
        snprintf(st->params, sizeof(st->params), "%s", params);
    free(params);
    free(p);
    free(be);
    return 0;
}

/* ---- VMs, continued: destroy, rename, shutdown, state ---- */

/* Every blkback device of domid, forced away. */
static int
vbds_remove_all(struct xl *x, const char *vm, uint32_t domid)
{
    char *dir = xasprintf("/local/domain/0/backend/vbd/%u", domid);
    size_t n = 0;
    char **devs = xl_xs_list(x->xs, dir, &n);
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        int r = vbd_remove(x, vm, domid, atoi(devs[i]), true);

        if (r && !rc)
            rc = r;
        else if (r)
            xo_err_clear();
    }
    if (!rc)
        rc = xl_xs_put(x->xs, dir, NULL);
    xl_xs_list_free(devs, n);
    free(dir);
    return rc;
}

static int
xl_vm_destroy(struct backend *b, const char *vm)
{
    struct xl *x = b->priv;
    uint32_t domid;
    int rc, lrc;

    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    if (xl_domain_of(x, vm, &domid, NULL)) {
        /* libxl removes only the devices it made. */
        rc = vbds_remove_all(x, vm, domid);
        if (rc)
            return rc;
        lrc = libxl_domain_destroy(x->ctx, domid, NULL);
        if (lrc)
            return xl_fail(vm, lrc, "destroying the domain");
        LOGVM(INFO, vm, "destroyed domain %u", domid);
    }
    vm_drop(x, vm);
    rc = rec_put(x, vm, "built", NULL);
    if (!rc)
        rc = rec_put(x, vm, "domid", NULL);
    if (!rc)
        rc = rec_put(x, vm, "action-request", NULL);
    return rc;
}

static int
xl_vm_rename(struct backend *b, const char *old_id, const char *new_id)
{
    struct xl *x = b->priv;
    char *from = NULL, *to = NULL, *probe;
    struct xl_vm *v;
    xen_domain_handle_t h;
    libxl_uuid u;
    uint32_t domid, other;
    bool has;
    int rc, lrc;

    rc = ids_check_vm(old_id);
    if (!rc)
        rc = ids_check_vm(new_id);
    if (rc)
        return rc;
    if (xl_domain_of(x, new_id, &other, NULL))
        return xo_err_already_exists("domain", new_id);
    has = xl_domain_of(x, old_id, &domid, NULL);
    if (has) {
        lrc = libxl_domain_rename(x->ctx, domid, old_id, new_id);
        if (lrc)
            return xl_fail(old_id, lrc, "renaming the domain");
        libxl_uuid_from_string(&u, new_id);
        memcpy(h, libxl_uuid_bytearray(&u), sizeof(h));
        if (xc_domain_sethandle(x->xch, domid, h)) {
            LOGE(ERROR, "xc_domain_sethandle of domain %u", domid);
            if (libxl_domain_rename(x->ctx, domid, new_id, old_id))
                LOGVM(ERROR, old_id, "and renaming it back failed");
            return xo_err_internal_code(XO_EIO, "setting the handle of "
                                        "domain %u failed", domid);
        }
    }
    from = xasprintf(XL_XS_ROOT "/%s", old_id);
    to = xasprintf(XL_XS_ROOT "/%s", new_id);
    if (xl_xs_put(x->xs, to, NULL))
        xo_err_clear();
    probe = xl_xs_get(x->xs, from);
    rc = probe ? xl_xs_move(x->xs, from, to) : 0;
    free(probe);
    if (!rc) {
        pthread_mutex_lock(&x->lock);
        v = vm_find_locked(x, old_id);
        if (v)
            memcpy(v->cfg.id, new_id, sizeof(v->cfg.id));
        pthread_mutex_unlock(&x->lock);
        LOGVM(INFO, new_id, "renamed from %s%s", old_id,
              has ? "" : " (no domain)");
    }
    free(from);
    free(to);
    return rc;
}

static int
xl_vm_set_action_request(struct backend *b, const char *vm,
                         const char *request)
{
    int rc = ids_check_vm(vm);

    return rc ? rc : rec_put(b->priv, vm, "action-request", request);
}

static int
xl_vm_shutdown_domain(struct backend *b, const char *vm, const char *reason,
                      double timeout_s)
{
    struct xl *x = b->priv;
    libxl_dominfo info;
    uint32_t domid;
    double end;
    int rc, lrc;

    rc = need_domain(x, vm, &domid, NULL);
    if (rc)
        return rc;
    if (reason && (strcmp(reason, "Halt") == 0 ||
                   strcmp(reason, "PowerOff") == 0))
        lrc = libxl_domain_shutdown(x->ctx, domid, NULL);
    else if (reason && strcmp(reason, "Reboot") == 0)
        lrc = libxl_domain_reboot(x->ctx, domid, NULL);
    else
        return xo_err_internal_code(XO_EINVAL, "shutdown reason '%s' is not "
                                    "Halt, PowerOff or Reboot",
                                    reason ? reason : "");
    if (lrc)
        return xl_fail(vm, lrc, "asking the guest to shut down");
    end = clock_mono_s() + timeout_s;
    for (;;) {
        libxl_dominfo_init(&info);
        if (libxl_domain_info(x->ctx, &info, domid)) {
            libxl_dominfo_dispose(&info);
            return 0;       /* gone already */
        }
        bool down = info.shutdown || info.dying;

        libxl_dominfo_dispose(&info);
        if (down)
            break;
        if (clock_mono_s() > end) {
            LOGVM(ERROR, vm, "the guest did not shut down within %.0f s",
                  timeout_s);
            return xo_err_internal_code(XO_ETIMEDOUT, "Failed_to_shutdown: "
                                        "the guest of VM %s did not shut "
                                        "down within %.0f s", vm,
                                        timeout_s);
        }
        clock_sleep_ms(20);
    }
    return rec_put(x, vm, "action-request",
                   strcmp(reason, "Reboot") == 0 ? "reboot" : "poweroff");
}

static int
xl_vm_get_state(struct backend *b, const char *vm,
                struct backend_vm_state *st)
{
    struct xl *x = b->priv;
    libxl_dominfo info;
    uint32_t domid;
    char *p, *s;
    int rc;

    memset(st, 0, sizeof(*st));
    st->power = BACKEND_HALTED;
    st->domid = -1;
    rc = ids_check_vm(vm);
    if (rc)
        return rc;
    p = xl_rec(vm, "action-request");
    s = xl_xs_get(x->xs, p);
    free(p);
    if (s)
        snprintf(st->action_request, sizeof(st->action_request), "%s", s);
    free(s);
    if (xl_domain_of(x, vm, &domid, &info)) {
        st->domid = (int)domid;
        st->built = true;
        if (info.shutdown)
            st->power = info.shutdown_reason ==
                                LIBXL_SHUTDOWN_REASON_SUSPEND
                            ? BACKEND_SUSPENDED : BACKEND_HALTED;
        else if (info.dying)
            st->power = BACKEND_HALTED;
        else
            st->power = info.paused ? BACKEND_PAUSED : BACKEND_RUNNING;
        st->memory_bytes = (int64_t)info.current_memkb * 1024;
        st->vcpus = (int)info.vcpu_online;
        p = xasprintf("/local/domain/%u/memory/target", domid);
        st->memory_target = xl_xs_get_long(x->xs, p, 0) * 1024;
        free(p);
        libxl_dominfo_dispose(&info);
    } else if (rec_long(x, vm, "built", 0) != 1 &&
               xl_domid_reserved(x, vm, &domid) == 0) {
        /* Created, not built yet: xenopsd shows such a domain Paused. */
        st->power = BACKEND_PAUSED;
        st->domid = (int)domid;
    } else {
        xo_err_clear();
    }
    return 0;
}

static int
xl_vm_forget(struct backend *b, const char *vm)
{
    struct xl *x = b->priv;
    uint32_t domid;
    char *p;
    int rc = ids_check_vm(vm);

    if (rc)
        return rc;
    if (xl_domain_of(x, vm, &domid, NULL))
        return xo_err_already_exists("domain", vm);
    vm_drop(x, vm);
    p = xasprintf(XL_XS_ROOT "/%s", vm);
    rc = xl_xs_put(x->xs, p, NULL);
    free(p);
    return rc;
}

static int
xl_list_domains(struct backend *b, char ***vms_r, size_t *n_r)
{
    struct xl *x = b->priv;
    libxl_dominfo *doms;
    int n = 0;
    char **out;
    size_t k = 0;

    *vms_r = NULL;
    *n_r = 0;
    doms = libxl_list_domain(x->ctx, &n);
    if (!doms) {
        LOG(ERROR, "libxl: listing domains failed");
        return xo_err_internal_code(XO_EIO, "listing Xen's domains failed");
    }
    out = xcalloc((size_t)n + 1, sizeof(*out));
    for (int i = 0; i < n; i++) {
        char id[40];

        if (doms[i].domid == 0)
            continue;
        snprintf(id, sizeof(id), LIBXL_UUID_FMT,
                 LIBXL_UUID_BYTES(doms[i].uuid));
        out[k++] = xstrdup(id);
    }
    libxl_dominfo_list_free(doms, n);
    *vms_r = out;
    *n_r = k;
    return 0;
}

/* ---- VIFs ---- */

static int
vif_devid(const char *dev, int *devid_r)
{
    char *end;
    long v = dev ? strtol(dev, &end, 10) : -1;

    if (!dev || !dev[0] || *end || v < 0 || v > 255)
        return xo_err_internal_code(XO_EINVAL, "VIF device '%s' is not a "
                                    "position 0..255", dev ? dev : "");
    *devid_r = (int)v;
    return 0;
}

static int
xl_vif_set_active(struct backend *b, const char *vm, const char *dev,
                  bool active)
{
    char *key;
    int devid, rc = ids_check_vm(vm);

    if (!rc)
        rc = vif_devid(dev, &devid);
    if (rc)
        return rc;
    key = xasprintf("vif/%s/active", dev);
    rc = rec_put(b->priv, vm, key, active ? "1" : NULL);
    free(key);
    return rc;
}

static int
xl_vif_plug(struct backend *b, const char *vm, const char *dev,
            const char *vif_json)
{
    struct xl *x = b->priv;
    struct xl_vif_config vc;
    libxl_device_nic nic;
    uint32_t domid;
    char *key;
    int devid, rc, lrc;

    rc = ids_check_vm(vm);
    if (!rc)
        rc = vif_devid(dev, &devid);
    if (!rc)
        rc = xl_vif_config_parse(vif_json, &vc);
    if (rc)
        return rc;
    if (!xl_domain_of(x, vm, &domid, NULL)) {
        /* A receiver before the stream: created with the domain. */
        if (strlen(vif_json) > 3000)
            return xo_err_internal_code(XO_EINVAL, "Vif.t of %s is too "
                                        "large to keep", dev);
        key = xasprintf("vif/%s/config", dev);
        rc = rec_put(x, vm, key, vif_json);
        free(key);
        return rc;
    }
    libxl_device_nic_init(&nic);
    rc = xl_vif_config_to_libxl(&vc, &nic);
    if (!rc) {
        lrc = libxl_device_nic_add(x->ctx, domid, &nic, NULL);
        if (lrc)
            rc = xl_fail(vm, lrc, "adding the network device");
    }
    libxl_device_nic_dispose(&nic);
    return rc;
}

static int
xl_vif_unplug(struct backend *b, const char *vm, const char *dev,
              bool force)
{
    struct xl *x = b->priv;
    libxl_device_nic nic;
    uint32_t domid;
    char *key, *p;
    int devid, rc, lrc;

    rc = ids_check_vm(vm);
    if (!rc)
        rc = vif_devid(dev, &devid);
    if (rc)
        return rc;
    key = xasprintf("vif/%s/config", dev);
    rc = rec_put(x, vm, key, NULL);
    free(key);
    if (rc || !xl_domain_of(x, vm, &domid, NULL))
        return rc;
    p = xasprintf("/local/domain/0/backend/vif/%u/%d/state", domid, devid);
    key = xl_xs_get(x->xs, p);
    free(p);
    if (!key)
        return 0;
    free(key);
    libxl_device_nic_init(&nic);
    nic.devid = devid;
    nic.backend_domid = 0;
    lrc = force ? libxl_device_nic_destroy(x->ctx, domid, &nic, NULL)
                : libxl_device_nic_remove(x->ctx, domid, &nic, NULL);
    libxl_device_nic_dispose(&nic);
    return lrc ? xl_fail(vm, lrc, "removing the network device") : 0;
}

static int
xl_vif_get_state(struct backend *b, const char *vm, const char *dev,
                 bool *active_r, bool *plugged_r)
{
    struct xl *x = b->priv;
    uint32_t domid;
    char *p, *s;
    int devid, rc;

    *active_r = *plugged_r = false;
    rc = ids_check_vm(vm);
    if (!rc)
        rc = vif_devid(dev, &devid);
    if (rc)
        return rc;
    p = xasprintf("vif/%s/active", dev);
    *active_r = rec_long(x, vm, p, 0) == 1;
    free(p);
    if (xl_domain_of(x, vm, &domid, NULL)) {
        p = xasprintf("/local/domain/0/backend/vif/%u/%d/state", domid,
                      devid);
    } else {
        /* No domain yet: plugged once it is created. */
        s = xasprintf("vif/%s/config", dev);
        p = xl_rec(vm, s);
        free(s);
    }
    s = xl_xs_get(x->xs, p);
    *plugged_r = s != NULL;
    free(s);
    free(p);
    return 0;
}

/* ---- host ---- */

static int
xl_host_info(struct backend *b, struct backend_host_info *hi)
{
    struct xl *x = b->priv;
    const libxl_version_info *v = libxl_get_version_info(x->ctx);
    libxl_physinfo pi;

    memset(hi, 0, sizeof(*hi));
    if (!v)
        return xo_err_internal_code(XO_EIO, "Xen's version is unknown");
    snprintf(hi->hypervisor_version, sizeof(hi->hypervisor_version),
             "%d.%d%s", v->xen_version_major, v->xen_version_minor,
             v->xen_version_extra ? v->xen_version_extra : "");
    snprintf(hi->capabilities, sizeof(hi->capabilities), "%s",
             v->capabilities ? v->capabilities : "");
    libxl_physinfo_init(&pi);
    if (libxl_get_physinfo(x->ctx, &pi) == 0) {
        hi->hvm = pi.cap_hvm;
        hi->iommu = pi.cap_hvm_directio;
    }
    libxl_physinfo_dispose(&pi);
    return 0;
}

static const struct backend_ops xl_ops = {
    .name = "xenlight",
    .destroy = xl_destroy,
    .vm_create = xl_vm_create,
    .vm_build = xl_vm_build,
    .vm_pause = xl_vm_pause,
    .vm_unpause = xl_vm_unpause,
    .vm_destroy = xl_vm_destroy,
    .vm_rename = xl_vm_rename,
    .vm_save = xl_vm_save,
    .vm_restore = xl_vm_restore,
    .vm_set_action_request = xl_vm_set_action_request,
    .vm_shutdown_domain = xl_vm_shutdown_domain,
    .vm_get_state = xl_vm_get_state,
    .vbd_set_active = xl_vbd_set_active,
    .vbd_add_device = xl_vbd_add_device,
    .vbd_remove_device = xl_vbd_remove_device,
    .vbd_get_state = xl_vbd_get_state,
    .vif_set_active = xl_vif_set_active,
    .vif_plug = xl_vif_plug,
    .vif_unplug = xl_vif_unplug,
    .vif_get_state = xl_vif_get_state,
    .vm_migrate_send = xl_vm_migrate_send,
    .vm_migrate_receive = xl_vm_migrate_receive,
    .vm_forget = xl_vm_forget,
    .list_domains = xl_list_domains,
    .host_info = xl_host_info,
};

/* libxl reaps only its own children: the SM drivers are reaped by sm_exec
 * with waitpid(pid). */
static const libxl_childproc_hooks xl_child_hooks = {
    .chldowner = libxl_sigchld_owner_libxl_always_selective_reap,
};

int
backend_xenlight_new(const struct backend_xenlight_config *cfg,
                     struct backend **b_r)
{
    struct xl *x = xcalloc(1, sizeof(*x));
    struct backend *b = NULL;
    int rc = 0;

    *b_r = NULL;
    pthread_mutex_init(&x->lock, NULL);
    x->cpuid = cfg && cfg->cpuid && cfg->cpuid[0] ? xstrdup(cfg->cpuid)
                                                  : NULL;
    x->unplug_timeout_s = cfg && cfg->unplug_timeout_s > 0
                              ? cfg->unplug_timeout_s : 20;
    if (x->cpuid) {
        /* Refuse a bad policy at start-up, not at the first VM start. */
        libxl_cpuid_policy_list probe = NULL;

        if (xl_cpuid_parse(&probe, x->cpuid)) {
            LOG(ERROR, "xenlight-cpuid '%s' does not parse", x->cpuid);
            rc = xo_err_internal_code(XO_EINVAL, "xenlight-cpuid '%s' is not "
                                      "a libxl cpuid policy", x->cpuid);
            libxl_cpuid_dispose(&probe);
            goto out;
        }
        libxl_cpuid_dispose(&probe);
    }
    x->lg = xtl_createlogger_stdiostream(stderr, XTL_WARN, 0);
    x->xs = xs_open(0);
    x->xch = xc_interface_open(NULL, NULL, 0);
    if (!x->lg || !x->xs || !x->xch ||
        libxl_ctx_alloc(&x->ctx, LIBXL_VERSION, 0,
                        (xentoollog_logger *)x->lg)) {
        LOG(ERROR, "cannot connect to Xen (xenstore %s, xenctrl %s, libxl "
            "%s): is this a Xen dom0 with xenstored running, and is the "
            "daemon root?", x->xs ? "ok" : "failed",
            x->xch ? "ok" : "failed", x->ctx ? "ok" : "failed");
        rc = xo_err_internal_code(XO_EIO, "cannot connect to Xen: backend "
                                  "xenlight needs a Xen dom0");
        goto out;
    }
    libxl_childproc_setmode(x->ctx, &xl_child_hooks, NULL);
    b = xcalloc(1, sizeof(*b));
    b->ops = &xl_ops;
    b->priv = x;
    *b_r = b;
    x = NULL;
out:
    if (x)
        xl_free(x);
    return rc;
}
