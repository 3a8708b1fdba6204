/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * backend_xenlight: real Xen domains through libxl (domain build, pause,
 * destroy, save/restore streams, VIFs), libxenctrl (the domain handle a
 * rename changes) and libxenstore (blkback devices, the daemon's own
 * records: xl_xs.h has the layout).
 *
 * Domains: one per VM, named after the VM's uuid and carrying it as its
 * handle. VM_create reserves a domid (the SM datapath of a VBD is named
 * vbd/<domid>/<dev>, and a migration receiver attaches its disks before
 * the stream creates the domain); VM_build and a restore create the
 * domain with that domid (libxl's create_info.domid). The reservation and
 * the device flags live in xenstore, so a restarted daemon (also after
 * kill -9) finds its domains and their devices again.
 *
 * Disks: VBD_activate writes blkback's nodes directly (xl_xs.h says why);
 * unplug asks the frontend to close (backend state Closing), waits for it
 * unless forced, removes both halves and waits for blkback to let the
 * device go, so that the SM deactivate/detach that follow find it free.
 *
 * Live migration and suspend: libxl's stream (libxl_domain_suspend on the
 * sender's fd, libxl_domain_create_restore on the receiver's), chosen over
 * driving libxenguest directly because libxl already carries the domain's
 * xenstore and emulator records in the stream and knows PVH; its
 * pre-copy decides itself when to stop. The switch-over callback runs when
 * the guest has suspended (libxl has no hook there).
 *
 * Contract: backend.h. The libxl context is shared by every thread (libxl
 * serialises inside); libxl is told the daemon reaps its own children
 * (the SM drivers) with waitpid.
 */
#ifndef XENOPS_BACKEND_XENLIGHT_H
#define XENOPS_BACKEND_XENLIGHT_H

#include "backend/backend.h"

struct backend_xenlight_config {
    /* libxl cpuid policy applied to every domain (xl.cfg's cpuid=, e.g.
     * "host,rdtscp=0"), or NULL/"" for Xen's default. */
    const char *cpuid;
    /* Clean unplug: how long the guest has to close a disk, seconds. */
    double unplug_timeout_s;
};

/* Connect to Xen (libxl, xenctrl, xenstore). XO_EIO with a detail when
 * this host does not run Xen or the daemon may not talk to it. */
int backend_xenlight_new(const struct backend_xenlight_config *cfg,
                         struct backend **b_r);

#endif
