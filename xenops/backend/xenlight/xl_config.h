/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xl_config: what a Xen domain is built from, read out of the canonical
 * Vm.t and Vif.t (model.h), and turned into libxl's domain config.
 *
 * Supported: builders PV and PVH with direct kernel boot (kernel, cmdline,
 * optional ramdisk), memory_static_max (the domain's maximum) and
 * memory_dynamic_max (its balloon target), vcpu_max / vcpus,
 * platformdata "tsc_mode" (xenopsd's 0 default, 1 always_emulate,
 * 2 native, 3 native_paravirt). HVM (needs a device model) and indirect
 * boot (a bootloader in dom0) are refused with XO_EUNSUPPORTED and a
 * detail naming the field, PVinPVH likewise.
 *
 * The domain is named after the VM's uuid and carries it as its handle:
 * names are unique in libxl, and both name and handle find the VM again
 * after a daemon restart (Vm.t's name is free text, not unique).
 *
 * Ownership: xl_vm_config_parse fills *c with malloc'd strings, released
 * by xl_vm_config_dispose; xl_vm_config_to_libxl fills an initialised
 * libxl_domain_config the caller disposes of.
 */
#ifndef XENOPS_XL_CONFIG_H
#define XENOPS_XL_CONFIG_H

#define LIBXL_API_VERSION 0x041400
#include <libxl.h>

#include <stdbool.h>
#include <stdint.h>

enum xl_builder {
    XL_BUILDER_PV,
    XL_BUILDER_PVH,
};

struct xl_vm_config {
    char id[37];
    enum xl_builder builder;
    char *kernel;
    char *ramdisk;              /* NULL: none */
    char *cmdline;
    int64_t max_kib;            /* memory_static_max */
    int64_t target_kib;         /* memory_dynamic_max */
    int vcpu_max;
    int vcpus;
    int tsc_mode;               /* -1: libxl's default */
};

/* 0 or XO_EINVAL / XO_EUNSUPPORTED with a detail naming the field. */
int xl_vm_config_parse(const char *vm_json, struct xl_vm_config *c);
void xl_vm_config_dispose(struct xl_vm_config *c);

/* Add the items of an xl.cfg cpuid string ("host,name=value,...") to
 * policy: 0, or -1 if it does not parse. */
int xl_cpuid_parse(libxl_cpuid_policy_list *policy, const char *s);

/* d (libxl_domain_config_init'ed) for domid; cpuid: a libxl cpuid policy
 * string ("host,rdtscp=0") applied to every domain, or NULL. XO_EINVAL if
 * the policy does not parse. */
int xl_vm_config_to_libxl(const struct xl_vm_config *c, uint32_t domid,
                          const char *cpuid, libxl_domain_config *d);

/* The domids of libxl's history file (text: "<seconds> <domid>" lines),
 * which libxl refuses to reuse for a while after a destroy: at most max
 * into out, the count returned; lines that are not two numbers are
 * skipped. */
size_t xl_domid_history_parse(const char *text, uint32_t *out, size_t max);

/* What a VIF is plugged with, from the canonical Vif.t. */
struct xl_vif_config {
    int devid;                  /* position */
    char mac[18];               /* "aa:bb:cc:dd:ee:ff" */
    char bridge[64];            /* backend ["Local", bridge] */
    int mtu;
};

/* XO_EINVAL for a bad mac or bridge name, XO_EUNSUPPORTED for a backend
 * other than Local. */
int xl_vif_config_parse(const char *vif_json, struct xl_vif_config *v);
/* nic (libxl_device_nic_init'ed) from v. */
int xl_vif_config_to_libxl(const struct xl_vif_config *v,
                           libxl_device_nic *nic);

#endif
