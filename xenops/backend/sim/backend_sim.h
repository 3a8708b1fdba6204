/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * backend_sim: the default backend, an in-process simulator of Xen domains
 * (design/ARCHITECTURE.md section 7). A domain is a record keyed by VM uuid
 * plus a sim_guest that owns real memory; devices and domain records live in
 * an xstree shaped like xenstore:
 *
 *   /vm/<uuid>/{uuid,memory,vcpus,domains/<domid>,final-uuid}  the domain's
 *   /vm/<uuid>/devices/{vbd,vif}/<dev> = "1"       active flags (the VBD/VIF
 *                                                  atoms own them)
 *   /local/domain/<domid>/{vm,name,domid,memory/target}
 *   /local/domain/<domid>/device/{vbd,vif}/<dev>/{backend,state}
 *   /local/domain/0/backend/vbd/<domid>/<dev>/{params,mode,frontend}
 *   /local/domain/0/backend/vif/<domid>/<dev>/{frontend,state}
 *
 * Unlike xenopsd's simulator, VM_rename really moves the domain and its
 * records, and save/restore really copy the guest's memory.
 *
 * Contract:
 * - Implements every operation of struct backend_ops (backend.h) with the
 *   semantics written there; callers serialise operations per VM.
 * - Threading: one mutex for the domain table (never held across fd I/O),
 *   plus the xstree's own. A domain being saved or restored stays alive
 *   until the I/O ends even if it is destroyed meanwhile.
 * - Every VM and device id is validated before it touches a path or key:
 *   a bad id is XO_EINVAL and nothing changes.
 * - destroy frees every domain and guest; no operation may be in flight.
 */
#ifndef XENOPS_BACKEND_SIM_H
#define XENOPS_BACKEND_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/backend.h"

struct backend_sim_config {
    int64_t memory_cap_bytes;     /* a guest owns min(VM memory, cap); > 0 */
    int64_t dirty_pages_per_sec;  /* guest dirtying rate; >= 0 */
    int heartbeat_ms;             /* guest tick in ms, 1..
                                     SIM_GUEST_HEARTBEAT_MS_MAX */
};

/* A new simulator with no domains, released with b->ops->destroy(b).
 * XO_EINVAL (detail) for a bad config. */
int backend_sim_new(const struct backend_sim_config *cfg,
                    struct backend **b_r);

#endif
