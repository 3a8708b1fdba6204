/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The parts of the xenlight backend that need no Xen: what a domain is
 * built from (Vm.t -> libxl config), VIFs (Vif.t -> libxl nic), device
 * numbers and the blkback nodes. What needs Xen is proved in the lab
 * (tests/lab/07-xenlight.sh and on).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/xenlight/xl_config.h"
#include "backend/xenlight/xl_xs.h"
#include "util/errors.h"

#define VM "6c0f7c55-1111-2222-3333-444455556666"

static const char *
pvh_vm(void)
{
    return "{\"id\":\"" VM "\",\"name\":\"g\","
           "\"ty\":[\"PVH\",{\"boot\":[\"Direct\",{\"kernel\":\"/lab/k\","
           "\"cmdline\":\"console=hvc0\",\"ramdisk\":\"/lab/i\"}]}],"
           "\"platformdata\":{\"tsc_mode\":\"2\"},"
           "\"memory_static_max\":134217728,"
           "\"memory_dynamic_max\":100663296,"
           "\"vcpu_max\":4,\"vcpus\":2}";
}

static void
test_config_pvh(void **state)
{
    struct xl_vm_config c;

    (void)state;
    assert_int_equal(xl_vm_config_parse(pvh_vm(), &c), 0);
    assert_string_equal(c.id, VM);
    assert_int_equal(c.builder, XL_BUILDER_PVH);
    assert_string_equal(c.kernel, "/lab/k");
    assert_string_equal(c.ramdisk, "/lab/i");
    assert_string_equal(c.cmdline, "console=hvc0");
    assert_int_equal(c.max_kib, 131072);
    assert_int_equal(c.target_kib, 98304);
    assert_int_equal(c.vcpu_max, 4);
    assert_int_equal(c.vcpus, 2);
    assert_int_equal(c.tsc_mode, 2);
    xl_vm_config_dispose(&c);
}

static void
test_config_to_libxl(void **state)
{
    struct xl_vm_config c;
    libxl_domain_config d;
    char uuid[40];

    (void)state;
    assert_int_equal(xl_vm_config_parse(pvh_vm(), &c), 0);
    libxl_domain_config_init(&d);
    assert_int_equal(xl_vm_config_to_libxl(&c, 7, "host,rdtscp=0", &d), 0);
    assert_int_equal(d.c_info.type, LIBXL_DOMAIN_TYPE_PVH);
    assert_int_equal(d.c_info.domid, 7);
    assert_string_equal(d.c_info.name, VM);
    snprintf(uuid, sizeof(uuid), LIBXL_UUID_FMT,
             LIBXL_UUID_BYTES(d.c_info.uuid));
    assert_string_equal(uuid, VM);
    assert_int_equal(d.b_info.type, LIBXL_DOMAIN_TYPE_PVH);
    assert_int_equal(d.b_info.max_memkb, 131072);
    assert_int_equal(d.b_info.target_memkb, 98304);
    assert_int_equal(d.b_info.max_vcpus, 4);
    /* vcpus 0 and 1 online of 4 */
    assert_true(d.b_info.avail_vcpus.size >= 1);
    assert_int_equal(d.b_info.avail_vcpus.map[0], 0x3);
    assert_int_equal(d.b_info.tsc_mode, LIBXL_TSC_MODE_NATIVE);
    assert_string_equal(d.b_info.kernel, "/lab/k");
    assert_string_equal(d.b_info.ramdisk, "/lab/i");
    assert_string_equal(d.b_info.cmdline, "console=hvc0");
    assert_non_null(d.b_info.cpuid);
    assert_int_equal(d.on_poweroff, LIBXL_ACTION_ON_SHUTDOWN_PRESERVE);
    assert_int_equal(d.on_reboot, LIBXL_ACTION_ON_SHUTDOWN_PRESERVE);
    libxl_domain_config_dispose(&d);

    libxl_domain_config_init(&d);
    assert_int_equal(xl_vm_config_to_libxl(&c, 7, "nonsense=", &d),
                     XO_EINVAL);
    libxl_domain_config_dispose(&d);
    xl_vm_config_dispose(&c);
}

/* One refusal: parse of json fails with code and nothing is left. */
static void
refuse(const char *json, int code)
{
    struct xl_vm_config c;

    assert_int_equal(xl_vm_config_parse(json, &c), code);
    assert_null(c.kernel);
    assert_null(c.ramdisk);
    xo_err_clear();
}

static void
test_config_refusals(void **state)
{
    (void)state;
    refuse("{\"id\":\"" VM "\",\"ty\":[\"HVM\",{}],"
           "\"memory_static_max\":134217728,\"memory_dynamic_max\":"
           "134217728,\"vcpu_max\":1,\"vcpus\":1}", XO_EUNSUPPORTED);
    refuse("{\"id\":\"" VM "\",\"ty\":[\"PV\",{\"boot\":[\"Indirect\",{}]}],"
           "\"memory_static_max\":134217728,\"memory_dynamic_max\":"
           "134217728,\"vcpu_max\":1,\"vcpus\":1}", XO_EUNSUPPORTED);
    refuse("{\"id\":\"" VM "\",\"ty\":[\"PV\",{\"boot\":[\"Direct\","
           "{\"kernel\":\"vmlinuz\"}]}],\"memory_static_max\":134217728,"
           "\"memory_dynamic_max\":134217728,\"vcpu_max\":1,\"vcpus\":1}",
           XO_EINVAL);
    refuse("{\"id\":\"" VM "\",\"ty\":[\"PV\",{\"boot\":[\"Direct\","
           "{\"kernel\":\"/k\"}]}],\"memory_static_max\":134217728,"
           "\"memory_dynamic_max\":134217728,\"vcpu_max\":1,\"vcpus\":2}",
           XO_EINVAL);
    refuse("{\"id\":\"" VM "\",\"ty\":[\"PV\",{\"boot\":[\"Direct\","
           "{\"kernel\":\"/k\"}]}],\"platformdata\":{\"tsc_mode\":\"9\"},"
           "\"memory_static_max\":134217728,\"memory_dynamic_max\":"
           "134217728,\"vcpu_max\":1,\"vcpus\":1}", XO_EINVAL);
    refuse("{\"id\":\"" VM "\",\"ty\":[\"PV\",{\"boot\":[\"Direct\","
           "{\"kernel\":\"/k\"}]}],\"memory_static_max\":4096,"
           "\"memory_dynamic_max\":4096,\"vcpu_max\":1,\"vcpus\":1}",
           XO_EINVAL);
}

static void
test_vif_config(void **state)
{
    struct xl_vif_config v;
    libxl_device_nic nic;

    (void)state;
    assert_int_equal(xl_vif_config_parse(
                         "{\"id\":[\"" VM "\",\"1\"],\"position\":1,"
                         "\"mac\":\"52:54:00:00:30:0a\",\"mtu\":9000,"
                         "\"backend\":[\"Local\",\"xenbr0\"]}", &v), 0);
    assert_int_equal(v.devid, 1);
    assert_string_equal(v.bridge, "xenbr0");
    assert_int_equal(v.mtu, 9000);
    libxl_device_nic_init(&nic);
    assert_int_equal(xl_vif_config_to_libxl(&v, &nic), 0);
    assert_int_equal(nic.devid, 1);
    assert_int_equal(nic.mac[0], 0x52);
    assert_int_equal(nic.mac[5], 0x0a);
    assert_string_equal(nic.bridge, "xenbr0");
    assert_int_equal(nic.mtu, 9000);
    libxl_device_nic_dispose(&nic);

    assert_int_equal(xl_vif_config_parse(
                         "{\"position\":0,\"mac\":\"52:54:00:00:30\","
                         "\"backend\":[\"Local\",\"xenbr0\"]}", &v),
                     XO_EINVAL);
    assert_int_equal(xl_vif_config_parse(
                         "{\"position\":0,\"mac\":\"52:54:00:00:30:0a\","
                         "\"backend\":[\"Local\",\"br0;rm\"]}", &v),
                     XO_EINVAL);
    assert_int_equal(xl_vif_config_parse(
                         "{\"position\":0,\"mac\":\"52:54:00:00:30:0a\","
                         "\"backend\":[\"Remote\",[\"" VM "\",\"b\"]]}",
                         &v), XO_EUNSUPPORTED);
    xo_err_clear();
}

static void
test_vbd_devid(void **state)
{
    static const struct {
        const char *dev;
        int devid;
    } ok[] = {
        { "xvda", 202 << 8 }, { "xvdb", 202 << 8 | 16 },
        { "xvdp", 202 << 8 | 15 << 4 }, { "xvdq", 1 << 28 | 16 << 8 },
        { "xvdaa", 1 << 28 | 26 << 8 }, { "hda", 3 << 8 },
        { "hdd", 22 << 8 | 64 }, { "0", 202 << 8 }, { "3", 202 << 8 | 48 },
    };
    static const char *const bad[] = {
        "", "xvd", "xvdA", "xvdaaa", "sda", "01", "256", "hde", "-1", "xvda/x",
    };
    int devid;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++) {
        assert_int_equal(xl_vbd_devid(ok[i].dev, &devid), 0);
        assert_int_equal(devid, ok[i].devid);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(xl_vbd_devid(bad[i], &devid), XO_EINVAL);
    xo_err_clear();
}

static const char *
kv_get(const struct xl_xs_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return kv[i].value;
    return NULL;
}

static void
test_vbd_nodes(void **state)
{
    struct xl_dev_nodes n;

    (void)state;
    xl_vbd_nodes(5, 51728, "xvdb", "/dev/loop3", 7, 3, false, false, &n);
    assert_string_equal(n.be, "/local/domain/0/backend/vbd/5/51728");
    assert_string_equal(n.fe, "/local/domain/5/device/vbd/51728");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "frontend"), n.fe);
    assert_string_equal(kv_get(n.be_kv, n.n_be, "frontend-id"), "5");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "params"), "/dev/loop3");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "physical-device"), "7:3");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "mode"), "r");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "type"), "phy");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "state"), "1");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "online"), "1");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "device-type"), "disk");
    assert_string_equal(kv_get(n.fe_kv, n.n_fe, "backend"), n.be);
    assert_string_equal(kv_get(n.fe_kv, n.n_fe, "backend-id"), "0");
    assert_string_equal(kv_get(n.fe_kv, n.n_fe, "virtual-device"), "51728");
    assert_string_equal(kv_get(n.fe_kv, n.n_fe, "state"), "1");
    xl_dev_nodes_dispose(&n);

    xl_vbd_nodes(9, 768, "hda", "/dev/sr0", 0xb, 0x10, true, true, &n);
    assert_string_equal(kv_get(n.be_kv, n.n_be, "physical-device"), "b:10");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "mode"), "w");
    assert_string_equal(kv_get(n.be_kv, n.n_be, "device-type"), "cdrom");
    assert_string_equal(kv_get(n.fe_kv, n.n_fe, "device-type"), "cdrom");
    xl_dev_nodes_dispose(&n);
}

static void
test_domid_history(void **state)
{
    uint32_t d[4];

    (void)state;
    assert_int_equal(xl_domid_history_parse("11 1\n13 2\n", d, 4), 2);
    assert_int_equal(d[0], 1);
    assert_int_equal(d[1], 2);
    /* junk, domid 0 and reserved domids are skipped; max is honoured */
    assert_int_equal(xl_domid_history_parse("x y\n5 0\n5 32752\n7 9 9\n"
                                            "8 3\n9 4\n10 5\n11 6\n12 7",
                                            d, 4), 4);
    assert_int_equal(d[0], 3);
    assert_int_equal(d[3], 6);
    assert_int_equal(xl_domid_history_parse("", d, 4), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_pvh),
        cmocka_unit_test(test_config_to_libxl),
        cmocka_unit_test(test_config_refusals),
        cmocka_unit_test(test_vif_config),
        cmocka_unit_test(test_vbd_devid),
        cmocka_unit_test(test_vbd_nodes),
        cmocka_unit_test(test_domid_history),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
