/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xl_xs: the xenstore layout the xenlight backend writes, and the one
 * transaction helper it writes with.
 *
 * Records of the daemon (dom0-only, they outlive the daemon, not the
 * host, exactly like the domains they describe):
 *
 *   /xenops/next-domid                   the next domid to reserve
 *   /xenops/vm/<uuid>/domid              the domain's id: reserved at
 *                                        VM_create, the domain's once built
 *   /xenops/vm/<uuid>/built              "1" once the domain exists
 *   /xenops/vm/<uuid>/action-request     "poweroff" until cleared
 *   /xenops/vm/<uuid>/vbd/<dev>/active   "1" (VBD_set_active)
 *   /xenops/vm/<uuid>/vif/<dev>/active   "1" (VIF_set_active)
 *   /xenops/vm/<uuid>/vif/<dev>/config   the Vif.t of a VIF plugged before
 *                                        its domain exists (a migration
 *                                        receiver), created with it
 *
 * Block devices (blkback), written directly rather than through libxl's
 * disk add: one transaction, no hotplug script (the SM datapath already
 * made the block device), so a VBD_activate inside a migration's downtime
 * costs one xenstore round trip instead of a script run (lab: 0.3-0.5 s
 * to Connected against 3.1-3.5 s for `xl block-attach`):
 *
 *   /local/domain/0/backend/vbd/<domid>/<devid>/  owner dom0, guest reads
 *     frontend frontend-id online removable bootable state=1 dev type=phy
 *     mode device-type params physical-device=<major hex>:<minor hex>
 *     hotplug-status=connected
 *   /local/domain/<domid>/device/vbd/<devid>/     owner the guest, dom0
 *     reads
 *     backend backend-id state=1 virtual-device device-type
 *
 * Every function validates nothing itself: ids reach it checked (the
 * backend's callers check VM ids, xl_vbd_devid checks device names).
 */
#ifndef XENOPS_XL_XS_H
#define XENOPS_XL_XS_H

#include <stdbool.h>
#include <stddef.h>

#include <xenstore.h>

#define XL_XS_ROOT "/xenops/vm"
/* The next domid VM_create tries (they go up, then wrap). */
#define XL_XS_NEXT_DOMID "/xenops/next-domid"

/* Linux's virtual-device number of a VBD: "xvda".."xvdzz" (xenstore
 * devid 202<<8|n<<4, or 1<<28|n<<8 from the 17th disk on), "hda".."hdd"
 * (3<<8 / 22<<8 pairs) or a userdevice number "0".."255" (the n-th xvd).
 * XO_EINVAL for anything else. */
int xl_vbd_devid(const char *dev, int *devid_r);

struct xl_xs_kv {
    char *key;
    char *value;
};

/* The nodes of one device, both halves. */
struct xl_dev_nodes {
    char *be;                   /* backend directory */
    char *fe;                   /* frontend directory */
    int domid;
    struct xl_xs_kv be_kv[16];
    size_t n_be;
    struct xl_xs_kv fe_kv[8];
    size_t n_fe;
};

/* The blkback nodes of a disk (cdrom when cdrom) on the block device
 * params (major:minor) for domid. */
void xl_vbd_nodes(int domid, int devid, const char *dev, const char *params,
                  unsigned major, unsigned minor, bool rw, bool cdrom,
                  struct xl_dev_nodes *n);
void xl_dev_nodes_dispose(struct xl_dev_nodes *n);

/* Write both halves in one transaction (retried while xenstored says
 * EAGAIN), with their permissions. 0 or XO_EIO (logged). */
int xl_dev_nodes_write(struct xs_handle *xs, const struct xl_dev_nodes *n);

/* Write path = value (value NULL removes path). 0 or XO_EIO (logged). */
int xl_xs_put(struct xs_handle *xs, const char *path, const char *value);
/* The value (malloc'd) or NULL if missing. */
char *xl_xs_get(struct xs_handle *xs, const char *path);
/* The integer at path, or dflt when missing or not a number. */
long xl_xs_get_long(struct xs_handle *xs, const char *path, long dflt);
/* Move the tree at from to to (to must not exist), one transaction. */
int xl_xs_move(struct xs_handle *xs, const char *from, const char *to);
/* The names under path (malloc'd array of malloc'd strings), *n_r 0 if
 * none; free with xl_xs_list_free. */
char **xl_xs_list(struct xs_handle *xs, const char *path, size_t *n_r);
void xl_xs_list_free(char **names, size_t n);

#endif
