/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sm_driver: what the SMAPIv1 and SMAPIv3 adapters (sm/v1, sm/v3) share
 * besides running commands (sm_exec.h): the checks of their inputs and
 * the per-VDI memory an instance keeps from attach to detach.
 *
 * Threading: the per-VDI memory has its own lock, so the adapters' ops
 * may run concurrently for different VDIs. The rest is stateless.
 */
#ifndef XENOPS_SM_DRIVER_H
#define XENOPS_SM_DRIVER_H

#include <pthread.h>
#include <stdbool.h>

#include "util/json.h"

/* What an adapter learnt about one VDI at attach. */
struct sm_driver_vdi {
    char *vdi;
    bool rw;                /* attached writable */
    char *uri;              /* SMAPIv3: the URI chosen; else NULL */
    char *dp_dir;           /* SMAPIv3: its datapath plugin's directory */
    struct sm_driver_vdi *next;
};

/* The VDIs of one adapter instance. */
struct sm_driver_vdis {
    pthread_mutex_t lock;   /* guards head */
    struct sm_driver_vdi *head;
};

void sm_driver_vdis_init(struct sm_driver_vdis *t);
/* Forget every VDI and destroy the lock. */
void sm_driver_vdis_destroy(struct sm_driver_vdis *t);

/* Remember vdi with copies of rw, uri and dp_dir (each may be NULL),
 * replacing what was known about it. */
void sm_driver_vdis_remember(struct sm_driver_vdis *t, const char *vdi,
                             bool rw, const char *uri, const char *dp_dir);

/*
 * Whether vdi is remembered. If it is, *rw_r, *uri_r and *dp_dir_r
 * (each pointer may be NULL) get its rw and malloc'd copies of its uri
 * and dp_dir (NULL if it has none); otherwise they are left as they are.
 */
bool sm_driver_vdis_recall(struct sm_driver_vdis *t, const char *vdi,
                           bool *rw_r, char **uri_r, char **dp_dir_r);

void sm_driver_vdis_forget(struct sm_driver_vdis *t, const char *vdi);

/*
 * A VDI name a driver may be given: 1..1024 bytes, no control
 * characters. Otherwise XO_EINVAL with the internal error "invalid
 * <what>", logged as "invalid <what> for a <adapter>" (e.g. what "VDI
 * key", adapter "SMAPIv3 plugin").
 */
int sm_driver_check_vdi(const char *vdi, const char *what,
                        const char *adapter);

/*
 * Parse device_config: a JSON object of string values with non-empty
 * keys (json NULL: {}). *r (the caller frees it with yajl_tree_free) on
 * success; otherwise the JSON error, or XO_EINVAL with an internal error.
 */
int sm_driver_device_config(const char *json, yajl_val *r);

#endif
