/* SPDX-License-Identifier: LGPL-2.1-only */
/* The xenlight backend's private state, shared by backend_xenlight.c
 * (domains and devices) and xl_stream.c (save, restore, migration). */
#ifndef XENOPS_XL_PRIV_H
#define XENOPS_XL_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend/xenlight/xl_config.h"

#include <xenctrl.h>
#include <xenstore.h>
#include <xentoollog.h>

#include "backend/backend.h"

/* What VM_create was given, kept for VM_build or a restore. Lost with the
 * daemon: a VM created but not yet built when it died must be created
 * again (VM_build says so). */
struct xl_vm {
    struct xl_vm_config cfg;
    struct xl_vm *next;
};

struct xl {
    libxl_ctx *ctx;
    xentoollog_logger_stdiostream *lg;
    xc_interface *xch;
    struct xs_handle *xs;
    pthread_mutex_t lock;       /* vms, domid reservations */
    struct xl_vm *vms;
    char *cpuid;
    double unplug_timeout_s;
};

/* "/xenops/vm/<vm>/<key>"; caller frees. */
char *xl_rec(const char *vm, const char *key);

/* The domid of vm's domain if it has one (its record names a domain that
 * exists and carries vm's uuid): 1 and *domid_r (and *info_r when not
 * NULL, disposed of by the caller); 0 if none. */
int xl_domain_of(struct xl *x, const char *vm, uint32_t *domid_r,
                 libxl_dominfo *info_r);

/* The domid VM_create reserved (or the domain's): 0, or
 * Bad_power_state [Halted, Paused] when vm was never created. */
int xl_domid_reserved(struct xl *x, const char *vm, uint32_t *domid_r);

/* The libxl config for building or restoring vm's domain as domid: what
 * VM_create was given plus the VIFs plugged before the domain existed.
 * d must be libxl_domain_config_init'ed. */
int xl_vm_libxl_config(struct xl *x, const char *vm, uint32_t domid,
                       libxl_domain_config *d);

/* After a build or restore: the domain exists (record "built"). */
int xl_mark_built(struct xl *x, const char *vm, uint32_t domid);

/* libxl's error code as a failure of what, logged once. */
int xl_fail(const char *vm, int lrc, const char *what);

/* xl_stream.c */
int xl_vm_save(struct backend *b, const char *vm, int fd, unsigned flags,
               const atomic_bool *cancel);
int xl_vm_restore(struct backend *b, const char *vm, int fd,
                  const atomic_bool *cancel);
int xl_vm_migrate_send(struct backend *b, const char *vm, int fd,
                       const struct backend_migrate_opts *o,
                       struct backend_migrate_stats *st);
int xl_vm_migrate_receive(struct backend *b, const char *vm, int fd,
                          const struct backend_migrate_opts *o,
                          struct backend_migrate_stats *st);

#endif
