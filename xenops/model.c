/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Canonical records are made by one walker over a small description of
 * rpclib types (struct mt): the type tables below transcribe
 * xenops_interface.ml / xenops_types.ml field by field, so a record is
 * decoded, completed and re-emitted the way rpclib would, e.g.
 *
 *   in:  {"ID":["<vm>","xvda"],"mode":"readonly","bogus":1}
 *   out: {"id":["<vm>","xvda"],"mode":"ReadOnly","ty":"Disk",
 *         "unpluggable":true,"extra_backend_keys":{},
 *         "extra_private_keys":{},"persistent":true,
 *         "can_attach_early":false}
 *
 * Defaults given as JSON text are themselves canonicalised, so a default
 * ["PV", {}] comes out with every pv_info field filled in. The walk
 * recurses along the type tables, never deeper than they are.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MT_N(a) (sizeof(a) / sizeof((a)[0]))

enum mt_kind {
    MT_BOOL,
    MT_INT,
    MT_FLOAT,
    MT_STRING,
    MT_LIST,
    MT_OPTION,      /* outside a record: [] or [x] */
    MT_DICT,        /* (string * t) list: {"k": t} */
    MT_TUPLE,
    MT_RECORD,
    MT_VARIANT,
};

enum mf_kind {
    MF_REQUIRED,
    MF_OPTION,      /* x option: omitted when None, bare x when Some */
    MF_DEFAULT,     /* dflt is the JSON text of the default */
    MF_SAME_AS,     /* dflt names the field whose value is the default */
};

struct mt;

struct mt_field {
    const char *name;
    const struct mt *ty;
    enum mf_kind kind;
    const char *dflt;
};

struct mt_tag {
    const char *name;
    const struct mt *arg;   /* NULL: a constructor without argument */
};

struct mt {
    enum mt_kind kind;
    const char *name;               /* in error details */
    const struct mt *elem;          /* LIST, OPTION, DICT */
    const struct mt *const *items;  /* TUPLE */
    const struct mt_field *fields;  /* RECORD */
    const struct mt_tag *tags;      /* VARIANT */
    size_t n;                       /* items, fields or tags */
    const char *fallback;           /* VARIANT with [@@default X] */
    int64_t min, max;               /* INT */
};

/* ---- primitives and small combinations ---- */

static const struct mt mt_bool = { .kind = MT_BOOL, .name = "bool" };
static const struct mt mt_int = {
    .kind = MT_INT, .name = "int", .min = INT64_MIN, .max = INT64_MAX,
};
static const struct mt mt_int32 = {
    .kind = MT_INT, .name = "int32", .min = INT32_MIN, .max = INT32_MAX,
};
static const struct mt mt_float = { .kind = MT_FLOAT, .name = "float" };
static const struct mt mt_string = { .kind = MT_STRING, .name = "string" };
static const struct mt mt_string_list = {
    .kind = MT_LIST, .name = "string list", .elem = &mt_string,
};
static const struct mt mt_string_option = {
    .kind = MT_OPTION, .name = "string option", .elem = &mt_string,
};
static const struct mt mt_string_map = {
    .kind = MT_DICT, .name = "string map", .elem = &mt_string,
};
static const struct mt mt_int_list = {
    .kind = MT_LIST, .name = "int list", .elem = &mt_int,
};
static const struct mt mt_int_list_list = {
    .kind = MT_LIST, .name = "int list list", .elem = &mt_int_list,
};
static const struct mt *const mt_int_pair_items[] = { &mt_int, &mt_int };
static const struct mt mt_int_pair = {
    .kind = MT_TUPLE, .name = "int pair", .items = mt_int_pair_items,
    .n = 2,
};
static const struct mt *const mt_string_pair_items[] = {
    &mt_string, &mt_string,
};
static const struct mt mt_string_pair = {
    .kind = MT_TUPLE, .name = "string pair", .items = mt_string_pair_items,
    .n = 2,
};

/* ---- TopLevel ---- */

static const struct mt_tag mt_disk_tags[] = {
    { "Local", &mt_string },
    { "VDI", &mt_string },
};
static const struct mt mt_disk = {
    .kind = MT_VARIANT, .name = "disk", .tags = mt_disk_tags,
    .n = MT_N(mt_disk_tags),
};
static const struct mt mt_disk_list = {
    .kind = MT_LIST, .name = "disk list", .elem = &mt_disk,
};

/* ---- Vm.t (xenops_types.ml) ---- */

static const struct mt_tag mt_igd_tags[] = { { "GVT_d", NULL } };
static const struct mt mt_igd = {
    .kind = MT_VARIANT, .name = "igd_passthrough", .tags = mt_igd_tags,
    .n = MT_N(mt_igd_tags),
};
static const struct mt_tag mt_video_tags[] = {
    { "Cirrus", NULL },
    { "Standard_VGA", NULL },
    { "Vgpu", NULL },
    { "IGD_passthrough", &mt_igd },
};
static const struct mt mt_video = {
    .kind = MT_VARIANT, .name = "video_card", .tags = mt_video_tags,
    .n = MT_N(mt_video_tags), .fallback = "Cirrus",
};
static const struct mt_tag mt_onboot_tags[] = {
    { "Persist", NULL },
    { "Reset", NULL },
};
static const struct mt mt_onboot = {
    .kind = MT_VARIANT, .name = "onboot", .tags = mt_onboot_tags,
    .n = MT_N(mt_onboot_tags),
};
static const struct mt_field mt_nvram_fields[] = {
    { "on_boot", &mt_onboot, MF_DEFAULT, "\"Persist\"" },
    { "backend", &mt_string, MF_DEFAULT, "\"xapidb\"" },
};
static const struct mt mt_nvram = {
    .kind = MT_RECORD, .name = "Nvram_uefi_variables.t",
    .fields = mt_nvram_fields, .n = MT_N(mt_nvram_fields),
};
static const struct mt_tag mt_firmware_tags[] = {
    { "Bios", NULL },
    { "Uefi", &mt_nvram },
};
static const struct mt mt_firmware = {
    .kind = MT_VARIANT, .name = "firmware_type", .tags = mt_firmware_tags,
    .n = MT_N(mt_firmware_tags),
};
static const struct mt_tag mt_tpm_tags[] = { { "Vtpm", &mt_string } };
static const struct mt mt_tpm = {
    .kind = MT_VARIANT, .name = "tpm", .tags = mt_tpm_tags,
    .n = MT_N(mt_tpm_tags),
};
static const struct mt_field mt_hvm_info_fields[] = {
    { "hap", &mt_bool, MF_DEFAULT, "true" },
    { "shadow_multiplier", &mt_float, MF_DEFAULT, "1.0" },
    { "timeoffset", &mt_string, MF_DEFAULT, "\"\"" },
    { "video_mib", &mt_int, MF_DEFAULT, "4" },
    { "video", &mt_video, MF_DEFAULT, "\"Cirrus\"" },
    { "acpi", &mt_bool, MF_DEFAULT, "true" },
    { "serial", &mt_string, MF_OPTION, NULL },
    { "keymap", &mt_string, MF_OPTION, NULL },
    { "vnc_ip", &mt_string, MF_OPTION, NULL },
    { "pci_emulations", &mt_string_list, MF_DEFAULT, "[]" },
    { "pci_passthrough", &mt_bool, MF_DEFAULT, "false" },
    { "boot_order", &mt_string, MF_DEFAULT, "\"\"" },
    { "qemu_disk_cmdline", &mt_bool, MF_DEFAULT, "false" },
    { "qemu_stubdom", &mt_bool, MF_DEFAULT, "false" },
    { "firmware", &mt_firmware, MF_DEFAULT, "\"Bios\"" },
    { "tpm", &mt_tpm, MF_OPTION, NULL },
};
static const struct mt mt_hvm_info = {
    .kind = MT_RECORD, .name = "hvm_info", .fields = mt_hvm_info_fields,
    .n = MT_N(mt_hvm_info_fields),
};
static const struct mt_field mt_direct_fields[] = {
    { "kernel", &mt_string, MF_DEFAULT, "\"\"" },
    { "cmdline", &mt_string, MF_DEFAULT, "\"\"" },
    { "ramdisk", &mt_string, MF_OPTION, NULL },
};
static const struct mt mt_direct = {
    .kind = MT_RECORD, .name = "pv_direct_boot", .fields = mt_direct_fields,
    .n = MT_N(mt_direct_fields),
};
static const struct mt_field mt_indirect_fields[] = {
    { "bootloader", &mt_string, MF_DEFAULT, "\"\"" },
    { "extra_args", &mt_string, MF_DEFAULT, "\"\"" },
    { "legacy_args", &mt_string, MF_DEFAULT, "\"\"" },
    { "bootloader_args", &mt_string, MF_DEFAULT, "\"\"" },
    { "devices", &mt_disk_list, MF_DEFAULT, "[]" },
};
static const struct mt mt_indirect = {
    .kind = MT_RECORD, .name = "pv_indirect_boot",
    .fields = mt_indirect_fields, .n = MT_N(mt_indirect_fields),
};
static const struct mt_tag mt_pv_boot_tags[] = {
    { "Direct", &mt_direct },
    { "Indirect", &mt_indirect },
};
static const struct mt mt_pv_boot = {
    .kind = MT_VARIANT, .name = "pv_boot", .tags = mt_pv_boot_tags,
    .n = MT_N(mt_pv_boot_tags),
};
/* boot has no default in the interface (safe default: direct boot). */
static const struct mt_field mt_pv_info_fields[] = {
    { "boot", &mt_pv_boot, MF_DEFAULT, "[\"Direct\", {}]" },
    { "framebuffer", &mt_bool, MF_DEFAULT, "true" },
    { "framebuffer_ip", &mt_string, MF_OPTION, NULL },
    { "vncterm", &mt_bool, MF_DEFAULT, "true" },
    { "vncterm_ip", &mt_string, MF_OPTION, NULL },
    { "pci_passthrough", &mt_bool, MF_DEFAULT, "false" },
};
static const struct mt mt_pv_info = {
    .kind = MT_RECORD, .name = "pv_info", .fields = mt_pv_info_fields,
    .n = MT_N(mt_pv_info_fields),
};
static const struct mt_tag mt_builder_tags[] = {
    { "HVM", &mt_hvm_info },
    { "PV", &mt_pv_info },
    { "PVinPVH", &mt_pv_info },
    { "PVH", &mt_pv_info },
};
static const struct mt mt_builder = {
    .kind = MT_VARIANT, .name = "builder_info", .tags = mt_builder_tags,
    .n = MT_N(mt_builder_tags),
};
static const struct mt_tag mt_action_tags[] = {
    { "Coredump", NULL },
    { "Shutdown", NULL },
    { "Start", NULL },
    { "Pause", NULL },
    { "Softreboot", NULL },
};
static const struct mt mt_action = {
    .kind = MT_VARIANT, .name = "action", .tags = mt_action_tags,
    .n = MT_N(mt_action_tags),
};
static const struct mt mt_action_list = {
    .kind = MT_LIST, .name = "action list", .elem = &mt_action,
};
/* affinity has no default in the interface (safe default: none). */
static const struct mt_field mt_sched_fields[] = {
    { "priority", &mt_int_pair, MF_OPTION, NULL },
    { "affinity", &mt_int_list_list, MF_DEFAULT, "[]" },
};
static const struct mt mt_sched = {
    .kind = MT_RECORD, .name = "scheduler_params", .fields = mt_sched_fields,
    .n = MT_N(mt_sched_fields),
};
/*
 * Only id, name, on_softreboot and has_vendor_device have defaults in the
 * interface. xapi sends every other field; the safe defaults used when
 * one is missing: memory_dynamic_max = memory_static_max,
 * memory_dynamic_min = memory_dynamic_max, vcpu_max = vcpus, no affinity,
 * crash/shutdown -> Shutdown, reboot -> Start, MSI translation on.
 */
static const struct mt_field mt_vm_fields[] = {
    { "id", &mt_string, MF_REQUIRED, NULL },
    { "name", &mt_string, MF_DEFAULT, "\"unnamed\"" },
    { "ssidref", &mt_int32, MF_DEFAULT, "0" },
    { "xsdata", &mt_string_map, MF_DEFAULT, "{}" },
    { "platformdata", &mt_string_map, MF_DEFAULT, "{}" },
    { "bios_strings", &mt_string_map, MF_DEFAULT, "{}" },
    { "ty", &mt_builder, MF_DEFAULT, "[\"PV\", {}]" },
    { "suppress_spurious_page_faults", &mt_bool, MF_DEFAULT, "false" },
    { "machine_address_size", &mt_int, MF_OPTION, NULL },
    { "memory_static_max", &mt_int, MF_REQUIRED, NULL },
    { "memory_dynamic_max", &mt_int, MF_SAME_AS, "memory_static_max" },
    { "memory_dynamic_min", &mt_int, MF_SAME_AS, "memory_dynamic_max" },
    { "vcpu_max", &mt_int, MF_SAME_AS, "vcpus" },
    { "vcpus", &mt_int, MF_REQUIRED, NULL },
    { "scheduler_params", &mt_sched, MF_DEFAULT, "{}" },
    { "on_crash", &mt_action_list, MF_DEFAULT, "[\"Shutdown\"]" },
    { "on_shutdown", &mt_action_list, MF_DEFAULT, "[\"Shutdown\"]" },
    { "on_reboot", &mt_action_list, MF_DEFAULT, "[\"Start\"]" },
    { "on_softreboot", &mt_action_list, MF_DEFAULT, "[\"Softreboot\"]" },
    { "pci_msitranslate", &mt_bool, MF_DEFAULT, "true" },
    { "pci_power_mgmt", &mt_bool, MF_DEFAULT, "false" },
    { "has_vendor_device", &mt_bool, MF_DEFAULT, "false" },
    { "generation_id", &mt_string, MF_OPTION, NULL },
};
static const struct mt mt_vm = {
    .kind = MT_RECORD, .name = "Vm.t", .fields = mt_vm_fields,
    .n = MT_N(mt_vm_fields),
};

/* ---- Vbd.t ---- */

static const struct mt_tag mt_bus_tags[] = {
    { "Xen", NULL },
    { "Scsi", NULL },
    { "Floppy", NULL },
    { "Ide", NULL },
};
static const struct mt mt_bus = {
    .kind = MT_VARIANT, .name = "bus_type", .tags = mt_bus_tags,
    .n = MT_N(mt_bus_tags),
};
static const struct mt *const mt_devnum_items[] = {
    &mt_bus, &mt_int, &mt_int,
};
static const struct mt mt_devnum = {
    .kind = MT_TUPLE, .name = "Device_number.t", .items = mt_devnum_items,
    .n = MT_N(mt_devnum_items),
};
static const struct mt_tag mt_mode_tags[] = {
    { "ReadOnly", NULL },
    { "ReadWrite", NULL },
};
static const struct mt mt_mode = {
    .kind = MT_VARIANT, .name = "Vbd.mode", .tags = mt_mode_tags,
    .n = MT_N(mt_mode_tags),
};
static const struct mt_tag mt_vbd_ty_tags[] = {
    { "CDROM", NULL },
    { "Disk", NULL },
    { "Floppy", NULL },
};
static const struct mt mt_vbd_ty = {
    .kind = MT_VARIANT, .name = "Vbd.ty", .tags = mt_vbd_ty_tags,
    .n = MT_N(mt_vbd_ty_tags),
};
static const struct mt_tag mt_qos_class_tags[] = {
    { "Highest", NULL },
    { "High", NULL },
    { "Normal", NULL },
    { "Low", NULL },
    { "Lowest", NULL },
    { "Other", &mt_int },
};
static const struct mt mt_qos_class = {
    .kind = MT_VARIANT, .name = "qos_class", .tags = mt_qos_class_tags,
    .n = MT_N(mt_qos_class_tags),
};
static const struct mt_tag mt_qos_sched_tags[] = {
    { "RealTime", &mt_qos_class },
    { "Idle", NULL },
    { "BestEffort", &mt_qos_class },
};
static const struct mt mt_qos_sched = {
    .kind = MT_VARIANT, .name = "qos_scheduler", .tags = mt_qos_sched_tags,
    .n = MT_N(mt_qos_sched_tags),
};
static const struct mt_tag mt_qos_tags[] = { { "Ionice", &mt_qos_sched } };
static const struct mt mt_qos = {
    .kind = MT_VARIANT, .name = "qos", .tags = mt_qos_tags,
    .n = MT_N(mt_qos_tags),
};
/* id's default ("", "") is never valid here: parse_dev_id refuses it. */
static const struct mt_field mt_vbd_fields[] = {
    { "id", &mt_string_pair, MF_REQUIRED, NULL },
    { "position", &mt_devnum, MF_OPTION, NULL },
    { "mode", &mt_mode, MF_DEFAULT, "\"ReadWrite\"" },
    { "backend", &mt_disk, MF_OPTION, NULL },
    { "ty", &mt_vbd_ty, MF_DEFAULT, "\"Disk\"" },
    { "unpluggable", &mt_bool, MF_DEFAULT, "true" },
    { "extra_backend_keys", &mt_string_map, MF_DEFAULT, "{}" },
    { "extra_private_keys", &mt_string_map, MF_DEFAULT, "{}" },
    { "qos", &mt_qos, MF_OPTION, NULL },
    { "persistent", &mt_bool, MF_DEFAULT, "true" },
    { "can_attach_early", &mt_bool, MF_DEFAULT, "false" },
};
static const struct mt mt_vbd = {
    .kind = MT_RECORD, .name = "Vbd.t", .fields = mt_vbd_fields,
    .n = MT_N(mt_vbd_fields),
};

/* ---- Vif.t ---- */

static const struct mt_field mt_pci_address_fields[] = {
    { "domain", &mt_int, MF_REQUIRED, NULL },
    { "bus", &mt_int, MF_REQUIRED, NULL },
    { "dev", &mt_int, MF_REQUIRED, NULL },
    { "fn", &mt_int, MF_REQUIRED, NULL },
};
static const struct mt mt_pci_address = {
    .kind = MT_RECORD, .name = "Pci.address",
    .fields = mt_pci_address_fields, .n = MT_N(mt_pci_address_fields),
};
static const struct mt_tag mt_network_tags[] = {
    { "Local", &mt_string },
    { "Remote", &mt_string_pair },
    { "Sriov", &mt_pci_address },
};
static const struct mt mt_network = {
    .kind = MT_VARIANT, .name = "Network.t", .tags = mt_network_tags,
    .n = MT_N(mt_network_tags),
};
/* Static4 of string list * string option: one packed argument. */
static const struct mt *const mt_static_ip_items[] = {
    &mt_string_list, &mt_string_option,
};
static const struct mt mt_static_ip = {
    .kind = MT_TUPLE, .name = "addresses and gateway",
    .items = mt_static_ip_items, .n = MT_N(mt_static_ip_items),
};
static const struct mt_tag mt_ipv4_tags[] = {
    { "Unspecified4", NULL },
    { "Static4", &mt_static_ip },
};
static const struct mt mt_ipv4 = {
    .kind = MT_VARIANT, .name = "ipv4_configuration", .tags = mt_ipv4_tags,
    .n = MT_N(mt_ipv4_tags),
};
static const struct mt_tag mt_ipv6_tags[] = {
    { "Unspecified6", NULL },
    { "Static6", &mt_static_ip },
};
static const struct mt mt_ipv6 = {
    .kind = MT_VARIANT, .name = "ipv6_configuration", .tags = mt_ipv6_tags,
    .n = MT_N(mt_ipv6_tags),
};
static const struct mt_field mt_locked_fields[] = {
    { "ipv4", &mt_string_list, MF_REQUIRED, NULL },
    { "ipv6", &mt_string_list, MF_REQUIRED, NULL },
};
static const struct mt mt_locked = {
    .kind = MT_RECORD, .name = "locked_addresses",
    .fields = mt_locked_fields, .n = MT_N(mt_locked_fields),
};
static const struct mt_tag mt_locking_tags[] = {
    { "Unlocked", NULL },
    { "Disabled", NULL },
    { "Locked", &mt_locked },
};
static const struct mt mt_locking = {
    .kind = MT_VARIANT, .name = "locking_mode", .tags = mt_locking_tags,
    .n = MT_N(mt_locking_tags),
};
static const struct mt_field mt_pvs_server_fields[] = {
    { "addresses", &mt_string_list, MF_REQUIRED, NULL },
    { "first_port", &mt_int, MF_REQUIRED, NULL },
    { "last_port", &mt_int, MF_REQUIRED, NULL },
};
static const struct mt mt_pvs_server = {
    .kind = MT_RECORD, .name = "PVS_proxy.server",
    .fields = mt_pvs_server_fields, .n = MT_N(mt_pvs_server_fields),
};
static const struct mt mt_pvs_server_list = {
    .kind = MT_LIST, .name = "PVS_proxy.server list",
    .elem = &mt_pvs_server,
};
static const struct mt *const mt_pvs_items[] = {
    &mt_string, &mt_pvs_server_list, &mt_string,
};
static const struct mt mt_pvs = {
    .kind = MT_TUPLE, .name = "PVS_proxy.t", .items = mt_pvs_items,
    .n = MT_N(mt_pvs_items),
};
static const struct mt_field mt_vif_fields[] = {
    { "id", &mt_string_pair, MF_REQUIRED, NULL },
    { "position", &mt_int, MF_DEFAULT, "0" },
    { "mac", &mt_string, MF_DEFAULT, "\"fe:ff:ff:ff:ff:ff\"" },
    { "carrier", &mt_bool, MF_DEFAULT, "true" },
    { "mtu", &mt_int, MF_DEFAULT, "1500" },
    { "rate", &mt_int_pair, MF_OPTION, NULL },
    { "backend", &mt_network, MF_DEFAULT, "[\"Local\", \"xenbr0\"]" },
    { "other_config", &mt_string_map, MF_DEFAULT, "{}" },
    { "locking_mode", &mt_locking, MF_DEFAULT, "\"Unlocked\"" },
    { "extra_private_keys", &mt_string_map, MF_DEFAULT, "{}" },
    { "ipv4_configuration", &mt_ipv4, MF_DEFAULT, "\"Unspecified4\"" },
    { "ipv6_configuration", &mt_ipv6, MF_DEFAULT, "\"Unspecified6\"" },
    { "pvs_proxy", &mt_pvs, MF_OPTION, NULL },
    { "vlan", &mt_int, MF_OPTION, NULL },
};
static const struct mt mt_vif = {
    .kind = MT_RECORD, .name = "Vif.t", .fields = mt_vif_fields,
    .n = MT_N(mt_vif_fields),
};

/* ---- the walker ---- */

static int canon(yajl_gen g, const struct mt *t, yajl_val v,
                 const char *where);

static int
canon_bad(const struct mt *t, const char *where)
{
    return xo_err_internal_code(XO_EINVAL, "'%s' is not a valid %s", where,
                                t->name);
}

/* A member that is present and not null. */
static yajl_val
member(yajl_val obj, const char *key)
{
    yajl_val m = json_get(obj, key);

    return m && !YAJL_IS_NULL(m) ? m : NULL;
}

static const struct mt_field *
find_field(const struct mt *rec, const char *name)
{
    for (size_t i = 0; i < rec->n; i++)
        if (strcmp(rec->fields[i].name, name) == 0)
            return &rec->fields[i];
    /* The tables are static: a dangling MF_SAME_AS is a bug here. */
    LOG(ERROR, "type '%s' has no field '%s'", rec->name, name);
    abort();
}

/* A default given as JSON text. */
static int
canon_text(yajl_gen g, const struct mt *t, const char *text,
           const char *where)
{
    yajl_val v = NULL;
    int rc = json_parse(text, strlen(text), &v);

    if (!rc)
        rc = canon(g, t, v, where);
    yajl_tree_free(v);
    return rc;
}

static int
canon_field(yajl_gen g, const struct mt *rec, const struct mt_field *f,
            yajl_val obj)
{
    const struct mt_field *src = f;
    yajl_val v = member(obj, f->name);

    /* memory_dynamic_min -> memory_dynamic_max -> memory_static_max */
    while (!v && src->kind == MF_SAME_AS) {
        src = find_field(rec, src->dflt);
        v = member(obj, src->name);
    }
    if (v) {
        json_gen_str(g, f->name);
        return canon(g, f->ty, v, f->name);
    }
    switch (src->kind) {
    case MF_OPTION:
        return 0;
    case MF_DEFAULT:
        json_gen_str(g, f->name);
        return canon_text(g, f->ty, src->dflt, f->name);
    default:
        return xo_err_internal_code(XO_EINVAL, "%s: missing field '%s'",
                                    rec->name, src->name);
    }
}

static int
canon_record(yajl_gen g, const struct mt *t, yajl_val v, const char *where)
{
    int rc;

    if (!YAJL_IS_OBJECT(v))
        return canon_bad(t, where);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < t->n; i++) {
        rc = canon_field(g, t, &t->fields[i], v);
        if (rc)
            return rc;
    }
    yajl_gen_map_close(g);
    return 0;
}

/* "Tag" or ["Tag"] without argument; ["Tag", arg] with one. */
static int
canon_variant(yajl_gen g, const struct mt *t, yajl_val v, const char *where)
{
    const struct mt_tag *k = NULL;
    yajl_val tag = v, arg = NULL;
    size_t len = json_array_len(v);

    if (json_is_array(v)) {
        if (len < 1 || len > 2)
            return canon_bad(t, where);
        tag = json_array_at(v, 0);
        arg = len == 2 ? json_array_at(v, 1) : NULL;
    }
    if (!YAJL_IS_STRING(tag))
        return canon_bad(t, where);
    for (size_t i = 0; i < t->n && !k; i++)
        if (strcasecmp(t->tags[i].name, tag->u.string) == 0)
            k = &t->tags[i];
    if (!k && t->fallback) {
        json_gen_str(g, t->fallback);
        return 0;
    }
    if (!k)
        return xo_err_internal_code(XO_EINVAL, "'%s': unknown %s '%s'",
                                    where, t->name, tag->u.string);
    if (!k->arg != !arg)
        return xo_err_internal_code(XO_EINVAL, "'%s': %s '%s' %s", where,
                                    t->name, k->name,
                                    k->arg ? "needs an argument"
                                           : "takes no argument");
    if (!k->arg) {
        json_gen_str(g, k->name);
        return 0;
    }
    yajl_gen_array_open(g);
    json_gen_str(g, k->name);
    if (canon(g, k->arg, arg, where))
        return XO_EINVAL;
    yajl_gen_array_close(g);
    return 0;
}

static int
canon_array(yajl_gen g, const struct mt *t, yajl_val v, const char *where)
{
    size_t len = json_array_len(v);

    if (!json_is_array(v) ||
        (t->kind == MT_TUPLE && len != t->n) ||
        (t->kind == MT_OPTION && len > 1))
        return canon_bad(t, where);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < len; i++)
        if (canon(g, t->kind == MT_TUPLE ? t->items[i] : t->elem,
                  json_array_at(v, i), where))
            return XO_EINVAL;
    yajl_gen_array_close(g);
    return 0;
}

static int
canon_dict(yajl_gen g, const struct mt *t, yajl_val v, const char *where)
{
    if (!YAJL_IS_OBJECT(v))
        return canon_bad(t, where);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < v->u.object.len; i++) {
        /* Keys are data here (xenstore keys, platform flags): kept. */
        json_gen_str(g, v->u.object.keys[i]);
        if (canon(g, t->elem, v->u.object.values[i], where))
            return XO_EINVAL;
    }
    yajl_gen_map_close(g);
    return 0;
}

static int
canon(yajl_gen g, const struct mt *t, yajl_val v, const char *where)
{
    int64_t n;
    double d;

    switch (t->kind) {
    case MT_BOOL:
        if (!YAJL_IS_TRUE(v) && !YAJL_IS_FALSE(v))
            return canon_bad(t, where);
        json_gen_bool(g, YAJL_IS_TRUE(v));
        return 0;
    case MT_INT:
        if (json_to_int64(v, &n) || n < t->min || n > t->max)
            return canon_bad(t, where);
        json_gen_int(g, n);
        return 0;
    case MT_FLOAT:
        if (json_to_double(v, &d))
            return canon_bad(t, where);
        json_gen_double(g, d);
        return 0;
    case MT_STRING:
        if (!YAJL_IS_STRING(v))
            return canon_bad(t, where);
        json_gen_str(g, v->u.string);
        return 0;
    case MT_OPTION:
        /* rpclib writes None as []; null is read the same way. */
        if (YAJL_IS_NULL(v)) {
            yajl_gen_array_open(g);
            yajl_gen_array_close(g);
            return 0;
        }
        return canon_array(g, t, v, where);
    case MT_LIST:
    case MT_TUPLE:
        return canon_array(g, t, v, where);
    case MT_DICT:
        return canon_dict(g, t, v, where);
    case MT_RECORD:
        return canon_record(g, t, v, where);
    case MT_VARIANT:
        return canon_variant(g, t, v, where);
    }
    return canon_bad(t, where);
}

static int
canon_to_text(const struct mt *t, yajl_val v, const char *where,
              char **json_r)
{
    yajl_gen g = json_gen_new();
    int rc;

    *json_r = NULL;
    rc = v ? canon(g, t, v, where) : canon_bad(t, where);
    if (rc) {
        yajl_gen_free(g);
        return rc;
    }
    *json_r = json_gen_take(g);
    return 0;
}

int
model_canonical(enum model_type type, yajl_val v, const char *what,
                char **json_r)
{
    static const struct mt *const types[] = {
        [MODEL_T_VM] = &mt_vm,
        [MODEL_T_VBD] = &mt_vbd,
        [MODEL_T_VIF] = &mt_vif,
        [MODEL_T_DISK] = &mt_disk,
        [MODEL_T_NETWORK] = &mt_network,
        [MODEL_T_LOCKING_MODE] = &mt_locking,
        [MODEL_T_STRING_MAP] = &mt_string_map,
    };

    if ((unsigned)type >= MT_N(types)) {
        *json_r = NULL;
        return xo_err_internal("unknown record type %d", (int)type);
    }
    return canon_to_text(types[type], v, what, json_r);
}

/* Canonicalise v as t and parse the result back: *text_r and *tree_r
 * are the canonical record (caller frees both). */
static int
canon_tree(const struct mt *t, yajl_val v, const char *where, char **text_r,
           yajl_val *tree_r)
{
    int rc = canon_to_text(t, v, where, text_r);

    *tree_r = NULL;
    if (!rc)
        rc = json_parse(*text_r, strlen(*text_r), tree_r);
    return rc;
}

/* ---- tree edits ---- */

/* obj[key] = *value (ownership moves); obj is an object. */
static void
tree_set(yajl_val obj, const char *key, yajl_val *value)
{
    size_t n = obj->u.object.len;

    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(obj->u.object.keys[i], key) == 0) {
            yajl_tree_free(obj->u.object.values[i]);
            obj->u.object.values[i] = *value;
            *value = NULL;
            return;
        }
    }
    obj->u.object.keys = xrealloc((void *)obj->u.object.keys,
                                  (n + 1) * sizeof(*obj->u.object.keys));
    obj->u.object.values = xrealloc(obj->u.object.values,
                                    (n + 1) * sizeof(*obj->u.object.values));
    obj->u.object.keys[n] = xstrdup(key);
    obj->u.object.values[n] = *value;
    obj->u.object.len = n + 1;
    *value = NULL;
}

void
model_tree_set_string(yajl_val v, const char *s)
{
    free(v->u.string);
    v->u.string = xstrdup(s);
}

int
model_tree_set_json(yajl_val obj, const char *key, const char *value_json)
{
    yajl_val v = NULL;
    int rc;

    if (!obj || !YAJL_IS_OBJECT(obj))
        return xo_err_internal_code(XO_EINVAL, "cannot set '%s': not a "
                                    "record", key);
    rc = json_parse(value_json, strlen(value_json), &v);
    if (!rc)
        tree_set(obj, key, &v);
    return rc;
}

/* ---- disks ---- */

void
model_disk_dispose(struct model_disk *d)
{
    if (!d)
        return;
    free(d->path);
    free(d->sr);
    free(d->vdi);
    memset(d, 0, sizeof(*d));
}

int
model_disk_parse(yajl_val v, struct model_disk *d)
{
    yajl_val tag, arg;
    const char *slash;

    memset(d, 0, sizeof(*d));
    if (!v || YAJL_IS_NULL(v))
        return 0;
    tag = json_array_at(v, 0);
    arg = json_array_at(v, 1);
    if (json_array_len(v) != 2 || !YAJL_IS_STRING(tag) ||
        !YAJL_IS_STRING(arg) || !arg->u.string[0])
        return xo_err_internal_code(XO_EINVAL,
                                    "disk must be [\"Local\", path] or "
                                    "[\"VDI\", \"sr/vdi\"]");
    if (strcasecmp(tag->u.string, "Local") == 0) {
        d->kind = MODEL_DISK_LOCAL;
        d->path = xstrdup(arg->u.string);
        return 0;
    }
    if (strcasecmp(tag->u.string, "VDI") != 0)
        return xo_err_internal_code(XO_EINVAL, "unknown disk kind '%s'",
                                    tag->u.string);
    /* xapi builds "<SR uuid>/<VDI location>" and splits at the first '/'. */
    slash = strchr(arg->u.string, '/');
    if (!slash || slash == arg->u.string || !slash[1])
        return xo_err_internal_code(XO_EINVAL,
                                    "VDI disk '%s' is not \"sr/vdi\"",
                                    arg->u.string);
    d->kind = MODEL_DISK_VDI;
    d->path = xstrdup(arg->u.string);
    d->sr = xstrndup(arg->u.string, (size_t)(slash - arg->u.string));
    d->vdi = xstrdup(slash + 1);
    return 0;
}

char *
model_disk_to_json(const struct model_disk *d)
{
    yajl_gen g = json_gen_new();

    if (d->kind == MODEL_DISK_NONE) {
        json_gen_null(g);
    } else {
        yajl_gen_array_open(g);
        json_gen_str(g, d->kind == MODEL_DISK_LOCAL ? "Local" : "VDI");
        json_gen_str(g, d->path);
        yajl_gen_array_close(g);
    }
    return json_gen_take(g);
}

char *
model_dev_id_json(const char *vm, const char *dev)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, vm);
    json_gen_str(g, dev);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

/* ---- records ---- */

/* id = [vm, dev] with both validated (canonical: a pair of strings). */
static int
parse_dev_id(yajl_val rec, char *vm, char *dev)
{
    yajl_val id = json_get(rec, "id");
    yajl_val a = json_array_at(id, 0), b = json_array_at(id, 1);
    int rc;

    if (json_array_len(id) != 2 || !YAJL_IS_STRING(a) || !YAJL_IS_STRING(b))
        return xo_err_internal_code(XO_EINVAL,
                                    "device 'id' must be [vm, device]");
    rc = ids_check_vm(a->u.string);
    if (rc)
        return rc;
    rc = ids_check_dev(b->u.string);
    if (rc)
        return rc;
    memcpy(vm, a->u.string, IDS_UUID_LEN + 1);
    xstrlcpy(dev, b->u.string, IDS_DEV_MAX + 1);
    return 0;
}

/* An int field of a canonical record, within [min, max]. */
static int
parse_int(yajl_val rec, const char *key, int64_t min, int64_t max,
          int64_t *r)
{
    int rc = json_get_int64(rec, key, 0, r);

    if (rc)
        return rc;
    if (*r < min || *r > max)
        return xo_err_internal_code(XO_EINVAL, "'%s' out of range", key);
    return 0;
}

/* The tag of a canonical variant: "Tag" or ["Tag", arg]. */
static const char *
variant_tag(yajl_val v)
{
    if (v && YAJL_IS_STRING(v))
        return v->u.string;
    v = json_array_at(v, 0);
    return (v && YAJL_IS_STRING(v)) ? v->u.string : "";
}

static int
vm_fields(yajl_val c, struct model_vm *vm)
{
    const char *ty;
    int64_t n;
    int rc;

    vm->name = xstrdup(json_get_str(c, "name"));
    rc = parse_int(c, "memory_static_max", 1, INT64_MAX,
                   &vm->memory_static_max);
    if (!rc)
        rc = parse_int(c, "memory_dynamic_max", 1, INT64_MAX,
                       &vm->memory_dynamic_max);
    if (!rc)
        rc = parse_int(c, "memory_dynamic_min", 1, INT64_MAX,
                       &vm->memory_dynamic_min);
    if (!rc)
        rc = parse_int(c, "vcpus", 1, 4096, &n);
    if (rc)
        return rc;
    vm->vcpus = (int)n;
    rc = parse_int(c, "vcpu_max", vm->vcpus, 4096, &n);
    if (rc)
        return rc;
    vm->vcpu_max = (int)n;
    ty = variant_tag(json_get(c, "ty"));
    vm->hvm = strcmp(ty, "HVM") == 0;
    vm->pv = strcmp(ty, "PV") == 0;
    return 0;
}

int
model_vm_from_tree(yajl_val v, struct model_vm **vm_r)
{
    struct model_vm *vm = NULL;
    yajl_val c = NULL;
    const char *id;
    int rc;

    *vm_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VM record must be an object");
        goto out;
    }
    id = json_get_str(v, "id");
    if (!id) {
        rc = xo_err_internal_code(XO_EINVAL, "VM record has no 'id'");
        goto out;
    }
    rc = ids_check_vm(id);
    if (rc)
        goto out;
    vm = xcalloc(1, sizeof(*vm));
    memcpy(vm->id, id, IDS_UUID_LEN + 1);
    rc = canon_tree(&mt_vm, v, "vm", &vm->json, &c);
    if (!rc)
        rc = vm_fields(c, vm);
    if (rc)
        goto out;
    *vm_r = vm;
    vm = NULL;
out:
    yajl_tree_free(c);
    model_vm_free(vm);
    return rc;
}

static int
parse_text(const char *json, yajl_val *tree_r)
{
    *tree_r = NULL;
    if (!json)
        return xo_err_internal_code(XO_EINVAL, "missing record");
    return json_parse(json, strlen(json), tree_r);
}

int
model_vm_parse(const char *json, struct model_vm **vm_r)
{
    yajl_val t = NULL;
    int rc;

    *vm_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vm_from_tree(t, vm_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vm_free(struct model_vm *vm)
{
    if (!vm)
        return;
    free(vm->name);
    free(vm->json);
    free(vm);
}

static int
vbd_fields(yajl_val c, struct model_vbd *vbd)
{
    const char *ty;
    int rc;

    rc = parse_dev_id(c, vbd->vm, vbd->dev);
    if (rc)
        return rc;
    vbd->rw = strcmp(variant_tag(json_get(c, "mode")), "ReadWrite") == 0;
    rc = model_disk_parse(json_get(c, "backend"), &vbd->backend);
    if (rc)
        return rc;
    ty = variant_tag(json_get(c, "ty"));
    vbd->ty = strcmp(ty, "CDROM") == 0    ? MODEL_VBD_CDROM
              : strcmp(ty, "Floppy") == 0 ? MODEL_VBD_FLOPPY
                                          : MODEL_VBD_DISK;
    rc = json_get_bool(c, "unpluggable", true, &vbd->unpluggable);
    if (!rc)
        rc = json_get_bool(c, "persistent", true, &vbd->persistent);
    if (!rc)
        rc = json_get_bool(c, "can_attach_early", false,
                           &vbd->can_attach_early);
    return rc;
}

int
model_vbd_from_tree(yajl_val v, struct model_vbd **vbd_r)
{
    struct model_vbd *vbd = NULL;
    yajl_val c = NULL;
    int rc;

    *vbd_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VBD record must be an object");
        goto out;
    }
    vbd = xcalloc(1, sizeof(*vbd));
    rc = canon_tree(&mt_vbd, v, "vbd", &vbd->json, &c);
    if (!rc)
        rc = vbd_fields(c, vbd);
    if (rc)
        goto out;
    vbd->can_attach_early_given = member(v, "can_attach_early") != NULL;
    *vbd_r = vbd;
    vbd = NULL;
out:
    yajl_tree_free(c);
    model_vbd_free(vbd);
    return rc;
}

int
model_vbd_parse(const char *json, struct model_vbd **vbd_r)
{
    yajl_val t = NULL;
    int rc;

    *vbd_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vbd_from_tree(t, vbd_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vbd_free(struct model_vbd *vbd)
{
    if (!vbd)
        return;
    model_disk_dispose(&vbd->backend);
    free(vbd->json);
    free(vbd);
}

int
model_vif_from_tree(yajl_val v, struct model_vif **vif_r)
{
    struct model_vif *vif = NULL;
    yajl_val c = NULL;
    int64_t pos;
    int rc;

    *vif_r = NULL;
    if (!v || !YAJL_IS_OBJECT(v)) {
        rc = xo_err_internal_code(XO_EINVAL, "VIF record must be an object");
        goto out;
    }
    vif = xcalloc(1, sizeof(*vif));
    rc = canon_tree(&mt_vif, v, "vif", &vif->json, &c);
    if (!rc)
        rc = parse_dev_id(c, vif->vm, vif->dev);
    if (!rc)
        rc = parse_int(c, "position", 0, 65535, &pos);
    if (!rc)
        rc = json_get_bool(c, "carrier", true, &vif->carrier);
    if (rc)
        goto out;
    vif->position = (int)pos;
    *vif_r = vif;
    vif = NULL;
out:
    yajl_tree_free(c);
    model_vif_free(vif);
    return rc;
}

int
model_vif_parse(const char *json, struct model_vif **vif_r)
{
    yajl_val t = NULL;
    int rc;

    *vif_r = NULL;
    rc = parse_text(json, &t);
    if (!rc)
        rc = model_vif_from_tree(t, vif_r);
    yajl_tree_free(t);
    return rc;
}

void
model_vif_free(struct model_vif *vif)
{
    if (!vif)
        return;
    free(vif->json);
    free(vif);
}
