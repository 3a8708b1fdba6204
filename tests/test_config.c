/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests for config: xenopsd.conf syntax, every key, validation that changes
 * nothing on error, config-dir fragments and the input bounds. Files are
 * written to a fresh mkdtemp directory per test.
 */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"
#include "util/errors.h"
#include "util/xalloc.h"

#define SR1 "3f1b5c2e-8a7d-4e21-9c0b-5d6e7f8a9b0c"
#define SR2 "7A0C9E4D-1B2F-4C3D-8E5F-6A7B8C9D0E1F"

struct fixture {
    char dir[64];
    struct config c;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int
setup(void **state)
{
    struct fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/test_config.XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    config_defaults(&f->c);
    *state = f;
    return 0;
}

static int
teardown(void **state)
{
    struct fixture *f = *state;

    config_dispose(&f->c);
    nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* Write len bytes (or strlen(text) when len is 0) to dir/name; returns the
 * path, which the caller frees. */
static char *
write_file_len(const char *dir, const char *name, const char *text,
               size_t len)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    if (len == 0)
        len = strlen(text);
    assert_int_equal(fwrite(text, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
    return path;
}

static char *
write_file(const char *dir, const char *name, const char *text)
{
    return write_file_len(dir, name, text, 0);
}

static char *
make_subdir(const char *dir, const char *name)
{
    char *path = xasprintf("%s/%s", dir, name);

    assert_int_equal(mkdir(path, 0700), 0);
    return path;
}

/* Load text written as dir/xenopsd.conf, without fragments. */
static int
load_text(struct fixture *f, const char *text)
{
    char *path = write_file(f->dir, "xenopsd.conf", text);
    int rc = config_load(&f->c, path, NULL);

    free(path);
    return rc;
}

static void
test_config_defaults(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(f->c.sockets_path, "/var/lib/xcp");
    assert_string_equal(f->c.database_path,
                        "/var/run/nonpersistent/xenopsd-c");
    assert_true(f->c.persist);
    assert_int_equal(f->c.worker_pool_size, 4);
    assert_true(f->c.vbd_plug_unplug_legacy);
    assert_null(f->c.config_dir);
    assert_string_equal(f->c.loglevel, "info");
    assert_string_equal(f->c.backend, "simulator");
    assert_int_equal(f->c.sim_memory_cap_mib, 64);
    assert_int_equal(f->c.sim_dirty_pages_per_sec, 2000);
    assert_int_equal(f->c.sim_heartbeat_ms, 5);
    assert_null(f->c.sim_srs);
    assert_null(f->c.rpc_allowed_uids);
    assert_int_equal(f->c.rpc_max_request_bytes, 16777216);
}

static void
test_config_every_key_parsed(void **state)
{
    struct fixture *f = *state;
    char *conf_d = xasprintf("%s/none.d", f->dir);
    char *text = xasprintf(
        "sockets-path = /run/xo\n"
        "database-path=/var/db/xo\n"
        "persist = false\n"
        "worker-pool-size = 256\n"
        "xenopsd-vbd-plug-unplug-legacy = false\n"
        "config-dir = %s\n"
        "loglevel = DEBUG\n"
        "backend = xenlight\n"
        "sim-memory-cap-mib = 65536\n"
        "sim-dirty-pages-per-sec = 0\n"
        "sim-heartbeat-ms = 10000\n"
        "sim-srs = " SR1 ":3.0:800:20," SR2 ":1.0:0:600000\n"
        "rpc-allowed-uids = 1000,1001\n"
        "rpc-max-request-bytes = 1024\n",
        conf_d);

    assert_int_equal(load_text(f, text), 0);
    assert_string_equal(f->c.sockets_path, "/run/xo");
    assert_string_equal(f->c.database_path, "/var/db/xo");
    assert_false(f->c.persist);
    assert_int_equal(f->c.worker_pool_size, 256);
    assert_false(f->c.vbd_plug_unplug_legacy);
    assert_string_equal(f->c.config_dir, conf_d);
    /* Stored canonical, whatever the case in the file. */
    assert_string_equal(f->c.loglevel, "debug");
    assert_string_equal(f->c.backend, "xenlight");
    assert_int_equal(f->c.sim_memory_cap_mib, 65536);
    assert_int_equal(f->c.sim_dirty_pages_per_sec, 0);
    assert_int_equal(f->c.sim_heartbeat_ms, 10000);
    assert_string_equal(f->c.sim_srs,
                        SR1 ":3.0:800:20," SR2 ":1.0:0:600000");
    assert_string_equal(f->c.rpc_allowed_uids, "1000,1001");
    assert_int_equal(f->c.rpc_max_request_bytes, 1024);
    free(text);
    free(conf_d);
}

static void
test_config_parse_line_cases(void **state)
{
    static const struct {
        const char *in;
        int rc;
        const char *key;
        const char *value;
    } cases[] = {
        { "", 0, NULL, NULL },
        { "   \t  \r", 0, NULL, NULL },
        { "# a comment", 0, NULL, NULL },
        { "   # indented comment = x", 0, NULL, NULL },
        { "a=b", 1, "a", "b" },
        { "  key \t=\t value  ", 1, "key", "value" },
        { "key = value # trailing comment", 1, "key", "value" },
        { "key = value\r", 1, "key", "value" },
        { "key =", 1, "key", "" },
        { "key = a = b", 1, "key", "a = b" },
        { "key = two words", 1, "key", "two words" },
        /* '#' cuts even inside quotes; the lone quote is then kept. */
        { "hvmloader=\"/a#b\"", 1, "hvmloader", "\"/a" },
        { "k = \"v\"", 1, "k", "v" },
        { "k = 'v'", 1, "k", "v" },
        { "k = \"\"", 1, "k", "" },
        /* One pair only. */
        { "k = \"'v'\"", 1, "k", "'v'" },
        { "k = \"\"v\"\"", 1, "k", "\"v\"" },
        /* Mismatched or lone quotes are kept. */
        { "k = \"v'", 1, "k", "\"v'" },
        { "k = 'v", 1, "k", "'v" },
        { "k = \"", 1, "k", "\"" },
        { "just-a-word", XO_EINVAL, NULL, NULL },
        { "= value", XO_EINVAL, NULL, NULL },
        { "two words = value", XO_EINVAL, NULL, NULL },
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *line = xstrdup(cases[i].in);
        char *key = (char *)"unset";
        char *value = (char *)"unset";
        int rc = config_parse_line(line, &key, &value);

        if (rc != cases[i].rc)
            fail_msg("'%s': rc %d, expected %d", cases[i].in, rc,
                     cases[i].rc);
        if (rc == 1) {
            assert_string_equal(key, cases[i].key);
            assert_string_equal(value, cases[i].value);
        }
        free(line);
    }
}

static void
test_config_comments_cut_line(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f,
                               "# persist = false\n"
                               "worker-pool-size = 9 # not 10\n"
                               "   # backend = xenlight\n"),
                     0);
    assert_true(f->c.persist);
    assert_int_equal(f->c.worker_pool_size, 9);
    assert_string_equal(f->c.backend, "simulator");
}

static void
test_config_hash_inside_quotes_cuts_line(void **state)
{
    struct fixture *f = *state;

    /* Without the cut this would be the valid path "/tmp/x#y". */
    assert_int_equal(load_text(f, "database-path = \"/tmp/x#y\"\n"),
                     XO_EINVAL);
    assert_string_equal(f->c.database_path,
                        "/var/run/nonpersistent/xenopsd-c");
}

static void
test_config_quotes_stripped_once(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f,
                               "sockets-path = \"/double\"\n"
                               "database-path = '/single'\n"
                               "backend = \"xenlight\"\n"),
                     0);
    assert_string_equal(f->c.sockets_path, "/double");
    assert_string_equal(f->c.database_path, "/single");
    assert_string_equal(f->c.backend, "xenlight");
    /* A second pair stays, so the path no longer starts with '/'. */
    assert_int_equal(load_text(f, "sockets-path = \"\"/x\"\"\n"), XO_EINVAL);
    assert_int_equal(load_text(f, "sockets-path = \"/x'\n"), XO_EINVAL);
    assert_string_equal(f->c.sockets_path, "/double");
}

static void
test_config_blank_lines_and_crlf(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f,
                               "\n\n   \n\t\n"
                               "persist = false\r\n"
                               "\r\n"
                               "worker-pool-size = 7\r\n"
                               "\n"
                               "sim-heartbeat-ms = 3"),
                     0);
    assert_false(f->c.persist);
    assert_int_equal(f->c.worker_pool_size, 7);
    /* The last line needs no newline. */
    assert_int_equal(f->c.sim_heartbeat_ms, 3);
}

static void
test_config_empty_file_ok(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f, ""), 0);
    assert_int_equal(f->c.worker_pool_size, 4);
}

static void
test_config_unknown_key_ignored(void **state)
{
    struct fixture *f = *state;
    struct config before;

    memcpy(&before, &f->c, sizeof(before));
    assert_int_equal(config_set(&f->c, "no-such-key", "1", "test"), 1);
    /* xenopsd names match exactly: no underscore/hyphen folding. */
    assert_int_equal(config_set(&f->c, "worker_pool_size", "8", "test"), 1);
    assert_int_equal(config_set(&f->c, "Persist", "false", "test"), 1);
    assert_memory_equal(&before, &f->c, sizeof(before));

    assert_int_equal(load_text(f,
                               "inventory = /etc/xensource-inventory\n"
                               "no-such-key = whatever\n"
                               "persist = false\n"),
                     0);
    assert_false(f->c.persist);
}

static void
test_config_set_applies_and_reports(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(config_set(&f->c, "worker-pool-size", "1", "cmdline"),
                     0);
    assert_int_equal(f->c.worker_pool_size, 1);
    assert_int_equal(config_set(&f->c, "loglevel", "warn", NULL), 0);
    assert_string_equal(f->c.loglevel, "warn");
    assert_int_equal(config_set(&f->c, "sim-srs", SR1 ":5.0:1:2", NULL), 0);
    assert_string_equal(f->c.sim_srs, SR1 ":5.0:1:2");
    /* Empty resets the list. */
    assert_int_equal(config_set(&f->c, "sim-srs", "", NULL), 0);
    assert_null(f->c.sim_srs);
}

/* config_set(key, value) must fail and leave c byte-for-byte unchanged (the
 * string pointers included), with a wire detail naming the key. */
static void
assert_rejected(struct config *c, const char *key, const char *value)
{
    struct config before;
    char *json;
    int rc;

    memcpy(&before, c, sizeof(before));
    rc = config_set(c, key, value, "test");

    if (rc != XO_EINVAL)
        fail_msg("%s = '%s': rc %d, expected XO_EINVAL", key, value, rc);
    assert_memory_equal(&before, c, sizeof(before));
    json = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(json, "Internal_error"));
    if (!strstr(json, key))
        fail_msg("detail '%s' does not name '%s'", json, key);
    free(json);
}

static void
test_config_bad_bool_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "yes", "no", "True", "FALSE", "1", "0", "", "true ", " false", "on",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_rejected(&f->c, "persist", bad[i]);
        assert_rejected(&f->c, "xenopsd-vbd-plug-unplug-legacy", bad[i]);
    }
}

static void
test_config_bad_int_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "12x", "", " 5", "5 ", "0x10", "4.0", "1e3", "+", "-",
        "99999999999999999999",
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_rejected(&f->c, "worker-pool-size", bad[i]);
        assert_rejected(&f->c, "sim-memory-cap-mib", bad[i]);
        assert_rejected(&f->c, "sim-dirty-pages-per-sec", bad[i]);
        assert_rejected(&f->c, "sim-heartbeat-ms", bad[i]);
    }
}

static void
test_config_int_out_of_range_rejected(void **state)
{
    struct fixture *f = *state;

    assert_rejected(&f->c, "worker-pool-size", "0");
    assert_rejected(&f->c, "worker-pool-size", "257");
    assert_rejected(&f->c, "worker-pool-size", "-1");
    assert_rejected(&f->c, "worker-pool-size", "4294967300");
    assert_rejected(&f->c, "sim-memory-cap-mib", "0");
    assert_rejected(&f->c, "sim-memory-cap-mib", "65537");
    assert_rejected(&f->c, "sim-dirty-pages-per-sec", "-1");
    assert_rejected(&f->c, "sim-heartbeat-ms", "0");
    assert_rejected(&f->c, "sim-heartbeat-ms", "10001");
    /* The bounds themselves are accepted. */
    assert_int_equal(config_set(&f->c, "worker-pool-size", "+256", NULL), 0);
    assert_int_equal(f->c.worker_pool_size, 256);
    assert_int_equal(config_set(&f->c, "sim-dirty-pages-per-sec",
                                "9223372036854775807", NULL),
                     0);
    assert_int_equal(f->c.sim_dirty_pages_per_sec, INT64_MAX);
}

static void
test_config_bad_sim_srs_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "x",
        SR1,
        SR1 ":3.0",
        SR1 ":3.0:1",
        SR1 ":3.0:1:2:3",
        SR1 ":3.0:1:2,",
        "," SR1 ":3.0:1:2",
        SR1 ":3.0:1:2,," SR2 ":1.0:1:2",
        "3f1b5c2e-8a7d-4e21-9c0b-5d6e7f8a9b0:3.0:1:2",
        "../../etc:3.0:1:2",
        SR1 ":3:1:2",
        SR1 ":3.:1:2",
        SR1 ":.0:1:2",
        SR1 ":v3.0:1:2",
        SR1 ":3.0.1:1:2",
        SR1 ":3.0:-1:2",
        SR1 ":3.0:+1:2",
        SR1 ":3.0:1:600001",
        SR1 ":3.0::2",
        SR1 ":3.0:1x:2",
        SR1 ":3.0: 1:2",
        SR1 ":3.0:1:2 ",
        /* The same SR twice, even in another case. */
        SR1 ":3.0:1:2,3F1B5C2E-8A7D-4E21-9C0B-5D6E7F8A9B0C:1.0:1:2",
    };

    assert_int_equal(config_set(&f->c, "sim-srs", SR1 ":3.0:1:2", NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_rejected(&f->c, "sim-srs", bad[i]);
        assert_int_equal(config_parse_sim_srs(bad[i], NULL, NULL),
                         XO_EINVAL);
    }
    assert_string_equal(f->c.sim_srs, SR1 ":3.0:1:2");
}

static void
test_config_sim_srs_parsed(void **state)
{
    struct config_sim_sr *srs = NULL;
    size_t n = 99;

    assert_int_equal(config_parse_sim_srs(SR1 ":3.0:800:20," SR2
                                          ":10.25:0:600000",
                                          &srs, &n),
                     0);
    assert_int_equal(n, 2);
    assert_string_equal(srs[0].uuid, SR1);
    assert_string_equal(srs[0].api_version, "3.0");
    assert_int_equal(srs[0].attach_ms, 800);
    assert_int_equal(srs[0].activate_ms, 20);
    assert_string_equal(srs[1].uuid, SR2);
    assert_string_equal(srs[1].api_version, "10.25");
    assert_int_equal(srs[1].attach_ms, 0);
    assert_int_equal(srs[1].activate_ms, 600000);
    free(srs);

    assert_int_equal(config_parse_sim_srs("", &srs, &n), 0);
    assert_null(srs);
    assert_int_equal(n, 0);
}

static void
test_config_sim_srs_count_bounded(void **state)
{
    size_t len = (CONFIG_SIM_SRS_MAX + 1) * 48;
    char *s = xcalloc(1, len);
    size_t off = 0;

    for (int i = 0; i <= CONFIG_SIM_SRS_MAX; i++)
        off += (size_t)snprintf(s + off, len - off,
                                "%s3f1b5c2e-8a7d-4e21-9c0b-%012x:3.0:1:2",
                                i ? "," : "", i);
    assert_int_equal(config_parse_sim_srs(s, NULL, NULL), XO_EINVAL);
    /* Cut the last entry off: exactly the maximum is fine. */
    *strrchr(s, ',') = '\0';
    assert_int_equal(config_parse_sim_srs(s, NULL, NULL), 0);
    free(s);
}

static void
test_config_rpc_max_request_bytes_bounded(void **state)
{
    struct fixture *f = *state;

    assert_rejected(&f->c, "rpc-max-request-bytes", "1023");
    assert_rejected(&f->c, "rpc-max-request-bytes", "1073741825");
    assert_rejected(&f->c, "rpc-max-request-bytes", "-1");
    assert_rejected(&f->c, "rpc-max-request-bytes", "16M");
    assert_rejected(&f->c, "rpc-max-request-bytes", "");
    assert_int_equal(f->c.rpc_max_request_bytes, 16777216);
    assert_int_equal(config_set(&f->c, "rpc-max-request-bytes", "1073741824",
                                NULL), 0);
    assert_int_equal(f->c.rpc_max_request_bytes, 1073741824);
}

/* Root is always allowed; the key adds uids, in order. */
static void
test_config_rpc_allowed_uids_parsed(void **state)
{
    struct fixture *f = *state;
    uid_t *uids = NULL;
    size_t n = 99;

    assert_int_equal(config_rpc_allowed_uids(&f->c, &uids, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(uids[0], 0);
    free(uids);
    assert_int_equal(config_set(&f->c, "rpc-allowed-uids",
                                "1000, 1001 ,0,4294967294", NULL), 0);
    assert_int_equal(config_rpc_allowed_uids(&f->c, &uids, &n), 0);
    assert_int_equal(n, 5);
    assert_int_equal(uids[0], 0);
    assert_int_equal(uids[1], 1000);
    assert_int_equal(uids[2], 1001);
    assert_int_equal(uids[3], 0);
    assert_int_equal(uids[4], 4294967294u);
    free(uids);
    /* Empty resets to root only. */
    assert_int_equal(config_set(&f->c, "rpc-allowed-uids", "", NULL), 0);
    assert_null(f->c.rpc_allowed_uids);
    assert_int_equal(config_rpc_allowed_uids(&f->c, &uids, &n), 0);
    assert_int_equal(n, 1);
    free(uids);
}

static void
test_config_bad_rpc_allowed_uids_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const bad[] = {
        "x", "1000,", ",1000", "1000,,1001", "1000 1001", "-1", "+5",
        "1000;1001", "4294967295", "4294967296", "99999999999999999999",
        "0x10", "1e3", "root",
    };
    char *many = NULL;
    size_t len = (CONFIG_RPC_UIDS_MAX + 1) * 8;

    assert_int_equal(config_set(&f->c, "rpc-allowed-uids", "7", NULL), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_rejected(&f->c, "rpc-allowed-uids", bad[i]);
    many = xcalloc(1, len);
    for (int i = 0; i <= CONFIG_RPC_UIDS_MAX; i++)
        snprintf(many + strlen(many), len - strlen(many), "%s%d",
                 i ? "," : "", 1000 + i);
    assert_rejected(&f->c, "rpc-allowed-uids", many);
    /* Exactly the maximum is fine. */
    *strrchr(many, ',') = '\0';
    assert_int_equal(config_set(&f->c, "rpc-allowed-uids", many, NULL), 0);
    free(many);
}

static void
test_config_bad_path_rejected(void **state)
{
    struct fixture *f = *state;
    static const char *const keys[] = {
        "sockets-path", "database-path", "config-dir",
    };
    static const char *const bad[] = {
        "var/lib", "", "./x", "../x", "~/x", "/a\nb", " /x",
    };
    char *huge = xcalloc(1, 5000);

    memset(huge, 'a', 4999);
    huge[0] = '/';
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
            assert_rejected(&f->c, keys[k], bad[i]);
        assert_rejected(&f->c, keys[k], huge);
    }
    free(huge);
}

static void
test_config_bad_enum_rejected(void **state)
{
    struct fixture *f = *state;

    assert_rejected(&f->c, "backend", "xen");
    assert_rejected(&f->c, "backend", "Simulator");
    assert_rejected(&f->c, "backend", "");
    assert_rejected(&f->c, "loglevel", "verbose");
    assert_rejected(&f->c, "loglevel", "");
    assert_rejected(&f->c, "xenlight-cpuid", "host rdtscp=0");
    assert_rejected(&f->c, "xenlight-cpuid", "host;reboot");
    assert_int_equal(config_set(&f->c, "xenlight-cpuid", "host,rdtscp=0",
                                "test"), 0);
    assert_string_equal(f->c.xenlight_cpuid, "host,rdtscp=0");
    assert_int_equal(config_set(&f->c, "xenlight-cpuid", "", "test"), 0);
    assert_null(f->c.xenlight_cpuid);
    assert_rejected(&f->c, "xenlight-unplug-timeout-s", "0");
}

static void
test_config_validate_refuses_a_backend_not_built(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(config_validate(&f->c), 0);
    assert_int_equal(config_set(&f->c, "backend", "xenlight", "test"), 0);
#ifdef HAVE_XEN
    assert_int_equal(config_validate(&f->c), 0);
#else
    assert_int_equal(config_validate(&f->c), XO_EINVAL);
#endif
    xo_err_clear();
    assert_int_equal(config_set(&f->c, "backend", "simulator", "test"), 0);
    assert_int_equal(config_validate(&f->c), 0);
}

static void
test_config_bad_value_in_file_fails(void **state)
{
    struct fixture *f = *state;

    assert_int_equal(load_text(f,
                               "worker-pool-size = 8\n"
                               "persist = yes\n"
                               "backend = xenlight\n"),
                     XO_EINVAL);
    /* The bad key keeps its previous value; loading stops at the error. */
    assert_true(f->c.persist);
    assert_string_equal(f->c.backend, "simulator");
}

/* Run config_load with stderr captured; returns the rc and the text. */
static int
load_capturing_stderr(struct config *c, const char *file, const char *dir,
                      char *out, size_t n)
{
    char *path = xasprintf("%s.stderr", file);
    int saved = dup(STDERR_FILENO);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    ssize_t got;
    int rc;

    assert_true(saved >= 0);
    assert_true(fd >= 0);
    fflush(stderr);
    assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
    rc = config_load(c, file, dir);
    fflush(stderr);
    assert_int_equal(dup2(saved, STDERR_FILENO), STDERR_FILENO);
    close(saved);
    got = pread(fd, out, n - 1, 0);
    assert_true(got >= 0);
    out[got] = '\0';
    close(fd);
    unlink(path);
    free(path);
    return rc;
}

static void
test_config_error_names_file_line_and_key(void **state)
{
    struct fixture *f = *state;
    char *path = write_file(f->dir, "named.conf",
                            "# comment\n\nsim-heartbeat-ms = fast\n");
    char *expect = xasprintf("%s:3", path);
    char err[4096];

    assert_int_equal(load_capturing_stderr(&f->c, path, NULL, err,
                                           sizeof(err)),
                     XO_EINVAL);
    if (!strstr(err, expect) || !strstr(err, "sim-heartbeat-ms") ||
        !strstr(err, "error"))
        fail_msg("log '%s' does not name '%s' and the key", err, expect);
    free(expect);
    free(path);
}

static void
test_config_malformed_line_fails(void **state)
{
    struct fixture *f = *state;
    char *path = write_file(f->dir, "bad.conf",
                            "persist = false\n"
                            "this line has no equals sign\n");
    char *expect = xasprintf("%s:2", path);
    char err[4096];

    assert_int_equal(load_capturing_stderr(&f->c, path, NULL, err,
                                           sizeof(err)),
                     XO_EINVAL);
    if (!strstr(err, expect))
        fail_msg("log '%s' does not name '%s'", err, expect);
    assert_int_equal(load_text(f, "= 5\n"), XO_EINVAL);
    free(expect);
    free(path);
}

static void
test_config_nul_byte_fails(void **state)
{
    struct fixture *f = *state;
    static const char text[] = "persist = false\nworker-pool-size = 8\0x\n";
    char *path = write_file_len(f->dir, "nul.conf", text, sizeof(text) - 1);

    assert_int_equal(config_load(&f->c, path, NULL), XO_EINVAL);
    assert_int_equal(f->c.worker_pool_size, 4);
    free(path);
}

static void
test_config_fragments_sorted_after_file(void **state)
{
    struct fixture *f = *state;
    /* Created out of order so readdir order is unlikely to be sorted. */
    static const char *const names[] = {
        "30.conf", "05.conf", "50.conf", "10.conf", "40.conf", "20.conf",
    };
    char *dir = make_subdir(f->dir, "conf.d");
    char *file = write_file(f->dir, "main.conf",
                            "worker-pool-size = 2\n"
                            "sim-heartbeat-ms = 7\n"
                            "persist = false\n");

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char *text = xasprintf("worker-pool-size = %d\n", atoi(names[i]));

        free(write_file(dir, names[i], text));
        free(text);
    }
    /* Only this fragment sets the heartbeat; it must beat the file. */
    free(write_file(dir, "15.conf", "sim-heartbeat-ms = 9\n"));
    assert_int_equal(config_load(&f->c, file, dir), 0);
    assert_int_equal(f->c.worker_pool_size, 50);
    assert_int_equal(f->c.sim_heartbeat_ms, 9);
    assert_false(f->c.persist);
    free(file);
    free(dir);
}

static void
test_config_fragments_use_strcmp_order(void **state)
{
    struct fixture *f = *state;
    char *dir = make_subdir(f->dir, "conf.d");

    /* strcmp puts "B" before "a"; a locale collation would not. */
    free(write_file(dir, "a.conf", "worker-pool-size = 11\n"));
    free(write_file(dir, "B.conf", "worker-pool-size = 22\n"));
    assert_int_equal(config_load(&f->c, NULL, dir), 0);
    assert_int_equal(f->c.worker_pool_size, 11);
    free(dir);
}

static void
test_config_dir_from_file_key(void **state)
{
    struct fixture *f = *state;
    char *dir = make_subdir(f->dir, "from-file.d");
    char *text = xasprintf("config-dir = %s\nworker-pool-size = 3\n", dir);
    char *file = write_file(f->dir, "main.conf", text);

    free(write_file(dir, "x.conf", "worker-pool-size = 12\n"));
    assert_int_equal(config_load(&f->c, file, NULL), 0);
    assert_int_equal(f->c.worker_pool_size, 12);
    free(file);
    free(text);
    free(dir);
}

static void
test_config_dot_files_and_non_regular_skipped(void **state)
{
    struct fixture *f = *state;
    char *dir = make_subdir(f->dir, "conf.d");
    char *sub = make_subdir(dir, "zz-subdir.conf");
    char *link = xasprintf("%s/zz-dangling.conf", dir);
    char *fifo = xasprintf("%s/zz-fifo.conf", dir);
    char *target = NULL;

    free(write_file(dir, "10.conf", "worker-pool-size = 10\n"));
    /* Would fail the load if read (malformed, bad value). */
    free(write_file(dir, ".hidden.conf", "worker-pool-size = 99\n"));
    free(write_file(dir, ".swp", "not a config line\n"));
    assert_int_equal(symlink("/nonexistent/target", link), 0);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    /* A symlink to a regular file is a fragment like any other. */
    target = write_file(f->dir, "target.conf", "sim-heartbeat-ms = 33\n");
    free(link);
    link = xasprintf("%s/20-link.conf", dir);
    assert_int_equal(symlink(target, link), 0);

    assert_int_equal(config_load(&f->c, NULL, dir), 0);
    assert_int_equal(f->c.worker_pool_size, 10);
    assert_int_equal(f->c.sim_heartbeat_ms, 33);
    free(target);
    free(fifo);
    free(link);
    free(sub);
    free(dir);
}

static void
test_config_bad_fragment_fails(void **state)
{
    struct fixture *f = *state;
    char *dir = make_subdir(f->dir, "conf.d");

    free(write_file(dir, "10.conf", "persist = maybe\n"));
    assert_int_equal(config_load(&f->c, NULL, dir), XO_EINVAL);
    assert_true(f->c.persist);
    free(dir);
}

static void
test_config_missing_file_fails(void **state)
{
    struct fixture *f = *state;
    char *path = xasprintf("%s/absent.conf", f->dir);

    assert_int_equal(config_load(&f->c, path, NULL), XO_EIO);
    free(path);
}

static void
test_config_missing_dir_ok(void **state)
{
    struct fixture *f = *state;
    char *path = xasprintf("%s/absent.d", f->dir);

    assert_int_equal(config_load(&f->c, NULL, path), 0);
    assert_int_equal(config_load(&f->c, NULL, NULL), 0);
    free(path);
}

static void
test_config_dir_not_a_directory_fails(void **state)
{
    struct fixture *f = *state;
    char *path = write_file(f->dir, "plain", "persist = false\n");

    assert_int_equal(config_load(&f->c, NULL, path), XO_EIO);
    assert_true(f->c.persist);
    free(path);
}

static void
test_config_file_not_regular_fails(void **state)
{
    struct fixture *f = *state;

    /* A directory (or FIFO) given as the file is refused, not hung on. */
    assert_int_equal(config_load(&f->c, f->dir, NULL), XO_EINVAL);
}

static void
test_config_long_line_fails(void **state)
{
    struct fixture *f = *state;
    size_t n = CONFIG_LINE_MAX + 2;
    char *text = xmalloc(n + 1);

    /* A comment of exactly CONFIG_LINE_MAX bytes is fine... */
    memset(text, ' ', n);
    text[0] = '#';
    text[CONFIG_LINE_MAX] = '\n';
    text[CONFIG_LINE_MAX + 1] = '\0';
    assert_int_equal(load_text(f, text), 0);
    /* ...one more byte is not, even though it is only a comment. */
    text[CONFIG_LINE_MAX] = ' ';
    text[CONFIG_LINE_MAX + 1] = '\n';
    text[n] = '\0';
    assert_int_equal(load_text(f, text), XO_EINVAL);
    free(text);
}

static void
test_config_big_file_fails(void **state)
{
    struct fixture *f = *state;
    size_t n = CONFIG_FILE_MAX + 1;
    char *text = xmalloc(n + 1);

    memset(text, '\n', n);
    text[n] = '\0';
    assert_int_equal(load_text(f, text), XO_EINVAL);
    text[n - 1] = '\0';
    assert_int_equal(load_text(f, text), 0);
    free(text);
}

static void
test_config_sample_file_loads(void **state)
{
    struct fixture *f = *state;
    const char *top = getenv("top_srcdir");
    char *path = xasprintf("%s/tests/data/config/xenopsd.conf",
                           top ? top : ".");

    assert_int_equal(config_load(&f->c, path, NULL), 0);
    assert_string_equal(f->c.sockets_path, "/var/lib/xcp");
    assert_string_equal(f->c.database_path,
                        "/var/run/nonpersistent/xenopsd-c");
    assert_true(f->c.persist);
    assert_int_equal(f->c.worker_pool_size, 16);
    assert_false(f->c.vbd_plug_unplug_legacy);
    assert_null(f->c.config_dir);
    assert_string_equal(f->c.loglevel, "info");
    assert_string_equal(f->c.backend, "simulator");
    assert_int_equal(f->c.sim_memory_cap_mib, 128);
    assert_int_equal(f->c.sim_dirty_pages_per_sec, 4000);
    assert_int_equal(f->c.sim_heartbeat_ms, 5);
    assert_non_null(f->c.sim_srs);
    assert_int_equal(config_parse_sim_srs(f->c.sim_srs, NULL, NULL), 0);
    free(path);
}

static void
test_config_parse_bool_strict(void **state)
{
    bool b = false;

    assert_int_equal(config_parse_bool("true", &b), 0);
    assert_true(b);
    assert_int_equal(config_parse_bool("false", &b), 0);
    assert_false(b);
    b = true;
    assert_int_equal(config_parse_bool("False", &b), XO_EINVAL);
    assert_int_equal(config_parse_bool("", &b), XO_EINVAL);
    assert_true(b);
}

static void
test_config_dispose_idempotent(void **state)
{
    struct config c;

    config_defaults(&c);
    assert_int_equal(config_set(&c, "sim-srs", SR1 ":3.0:1:2", NULL), 0);
    config_dispose(&c);
    assert_null(c.sockets_path);
    assert_null(c.sim_srs);
    config_dispose(&c);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)


/* Migration and storage keys: valid values land, bad ones change nothing. */
static void
test_config_migration_and_storage_keys(void **state)
{
    struct config c;

    config_defaults(&c);
    assert_null(c.migration_listen);
    assert_int_equal(c.migration_max_downtime_ms, 300);
    assert_int_equal(c.migration_max_iterations, 30);
    assert_false(c.migration_downtime_abort);
    assert_string_equal(c.sm_dir, "/opt/xensource/sm");
    assert_int_equal(config_set(&c, "migration-listen", "0.0.0.0:8089", "t"),
                     0);
    assert_string_equal(c.migration_listen, "0.0.0.0:8089");
    assert_int_equal(config_set(&c, "migration-listen", "[::1]:80", "t"), 0);
    assert_int_equal(config_set(&c, "migration-listen", "host:80", "t"),
                     XO_EINVAL);
    assert_int_equal(config_set(&c, "migration-listen", "1.2.3.4:70000",
                                "t"), XO_EINVAL);
    assert_int_equal(config_set(&c, "migration-listen", "1.2.3.4", "t"),
                     XO_EINVAL);
    assert_string_equal(c.migration_listen, "[::1]:80");
    assert_int_equal(config_set(&c, "migration-token-file", "/etc/tok",
                                "t"), 0);
    assert_int_equal(config_set(&c, "migration-token-file", "tok", "t"),
                     XO_EINVAL);
    assert_int_equal(config_set(&c, "migration-downtime-policy", "abort",
                                "t"), 0);
    assert_true(c.migration_downtime_abort);
    assert_int_equal(config_set(&c, "migration-downtime-policy", "maybe",
                                "t"), XO_EINVAL);
    assert_true(c.migration_downtime_abort);
    assert_int_equal(config_set(&c, "migration-max-iterations", "65", "t"),
                     XO_EINVAL);
    assert_int_equal(config_set(&c, "migration-max-downtime-ms", "5", "t"),
                     0);
    assert_int_equal(c.migration_max_downtime_ms, 5);
    assert_int_equal(config_set(&c, "sm-dir", "/srv/sm", "t"), 0);
    assert_string_equal(c.sm_dir, "/srv/sm");
    assert_int_equal(config_set(&c, "sm-timeout-ms", "50", "t"), XO_EINVAL);
    assert_int_equal(config_set(&c, "storage-script-root", "/x/y", "t"), 0);
    xo_err_clear();
    config_dispose(&c);
}


/* ---- log-target, default config dir, fragments ---- */

static void
test_config_log_target_key(void **state)
{
    struct fixture *f = *state;

    assert_string_equal(f->c.log_target, "stderr");
    assert_int_equal(config_set(&f->c, "log-target", "syslog", "t"), 0);
    assert_string_equal(f->c.log_target, "syslog");
    assert_int_equal(config_set(&f->c, "log-target", "journal", "t"),
                     XO_EINVAL);
    xo_err_clear();
    assert_string_equal(f->c.log_target, "syslog");
}

/* Without config-dir the fragments of "<file>.d" are read, and config_dir
 * names that dir so runtime changes land where the next start reads. */
static void
test_config_load_all_default_dir(void **state)
{
    struct fixture *f = *state;
    char *file = write_file(f->dir, "xenopsd.conf", "worker-pool-size = 8\n");
    char *dir = make_subdir(f->dir, "xenopsd.conf.d");
    char *frag = write_file(dir, "10-a.conf", "worker-pool-size = 9\n");

    assert_int_equal(config_load_all(&f->c, file), 0);
    assert_int_equal(f->c.worker_pool_size, 9);
    assert_string_equal(f->c.config_dir, dir);
    free(frag);
    free(dir);
    free(file);
}

/* A config-dir key wins over the default; no file means no default. */
static void
test_config_load_all_explicit_dir_wins(void **state)
{
    struct fixture *f = *state;
    char *other = make_subdir(f->dir, "other.d");
    char *text = xasprintf("config-dir = %s\n", other);
    char *file = write_file(f->dir, "xenopsd.conf", text);
    char *dflt = make_subdir(f->dir, "xenopsd.conf.d");
    char *frag = write_file(dflt, "10-a.conf", "worker-pool-size = 9\n");
    struct config c;

    assert_int_equal(config_load_all(&f->c, file), 0);
    assert_string_equal(f->c.config_dir, other);
    assert_int_equal(f->c.worker_pool_size, 4);
    config_defaults(&c);
    assert_int_equal(config_load_all(&c, NULL), 0);
    assert_null(c.config_dir);
    config_dispose(&c);
    free(frag);
    free(dflt);
    free(file);
    free(text);
    free(other);
}

/* A relative config file gets an absolute default dir. */
static void
test_config_load_all_relative_file(void **state)
{
    struct fixture *f = *state;
    char *file = write_file(f->dir, "rel.conf", "persist = false\n");
    char cwd[4096];
    char *want = xasprintf("%s/rel.conf.d", f->dir);

    assert_non_null(getcwd(cwd, sizeof(cwd)));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(config_load_all(&f->c, "rel.conf"), 0);
    assert_int_equal(chdir(cwd), 0);
    assert_string_equal(f->c.config_dir, want);
    assert_false(f->c.persist);
    free(want);
    free(file);
}

static char *
slurp(const char *path)
{
    FILE *fp = fopen(path, "r");
    char *buf = xcalloc(1, 65536);

    assert_non_null(fp);
    assert_true(fread(buf, 1, 65535, fp) < 65535);
    fclose(fp);
    return buf;
}

/* What config_write_fragment writes, config_load reads back, in a dir it
 * creates; a second write replaces the file whole. */
static void
test_config_fragment_round_trip(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/new/conf.d", f->dir);
    char *path = xasprintf("%s/99-flags.conf", dir);
    const struct config_pair pairs[] = {
        { "xenopsd-vbd-plug-unplug-legacy", "false" },
        { "worker-pool-size", "12" },
    };
    const struct config_pair again[] = {
        { "xenopsd-vbd-plug-unplug-legacy", "true" },
    };
    char *text;

    assert_int_equal(config_write_fragment(dir, "99-flags.conf",
                                           "written by a test\nline two",
                                           pairs, 2), 0);
    text = slurp(path);
    assert_string_equal(text, "# written by a test\n# line two\n"
                        "xenopsd-vbd-plug-unplug-legacy = false\n"
                        "worker-pool-size = 12\n");
    free(text);
    assert_int_equal(config_load(&f->c, NULL, dir), 0);
    assert_false(f->c.vbd_plug_unplug_legacy);
    assert_int_equal(f->c.worker_pool_size, 12);

    assert_int_equal(config_write_fragment(dir, "99-flags.conf", NULL,
                                           again, 1), 0);
    text = slurp(path);
    assert_string_equal(text, "xenopsd-vbd-plug-unplug-legacy = true\n");
    free(text);
    assert_int_equal(config_load(&f->c, NULL, dir), 0);
    assert_true(f->c.vbd_plug_unplug_legacy);
    free(path);
    free(dir);
}

/* Anything that would not load back as written is refused and nothing is
 * written: unknown key, bad value, a value the line syntax would change,
 * a name the loader skips or that is not a plain name. */
static void
test_config_fragment_bad_input_writes_nothing(void **state)
{
    struct fixture *f = *state;
    char *dir = xasprintf("%s/conf.d", f->dir);
    const struct config_pair bad[][1] = {
        { { "no-such-key", "1" } },
        { { "xenopsd-vbd-plug-unplug-legacy", "yes" } },
        { { "sockets-path", "/a#b" } },
        { { "sockets-path", "/a\nb" } },
        { { "sockets-path", "/a " } },
        { { "sockets-path", "\"/a\"" } },
        { { "sockets-path", NULL } },
        { { NULL, "x" } },
    };
    const struct config_pair good = { "persist", "false" };
    struct stat st;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(config_write_fragment(dir, "99-x.conf", NULL,
                                               bad[i], 1), XO_EINVAL);
        xo_err_clear();
    }
    assert_int_equal(config_write_fragment(dir, ".hidden", NULL, &good, 1),
                     XO_EINVAL);
    assert_int_equal(config_write_fragment(dir, "a/b", NULL, &good, 1),
                     XO_EINVAL);
    assert_int_equal(config_write_fragment(dir, "", NULL, &good, 1),
                     XO_EINVAL);
    xo_err_clear();
    assert_int_equal(stat(dir, &st), -1);
    free(dir);
}

/* A write that fails (its temp file cannot be created) reports XO_EIO and
 * leaves the old fragment whole. */
static void
test_config_fragment_write_failure_keeps_old(void **state)
{
    struct fixture *f = *state;
    char *dir = make_subdir(f->dir, "conf.d");
    const struct config_pair p = { "persist", "false" };
    const struct config_pair q = { "persist", "true" };
    char *tmp, *path, *text;

    assert_int_equal(config_write_fragment(dir, "99-x.conf", NULL, &p, 1),
                     0);
    tmp = make_subdir(dir, ".99-x.conf.tmp");
    assert_int_equal(config_write_fragment(dir, "99-x.conf", NULL, &q, 1),
                     XO_EIO);
    xo_err_clear();
    path = xasprintf("%s/99-x.conf", dir);
    text = slurp(path);
    assert_string_equal(text, "persist = false\n");
    free(text);
    free(path);
    free(tmp);
    free(dir);
}

/* The sample installed by "make install" loads and sets nothing odd. */
static void
test_config_installed_sample_loads(void **state)
{
    struct fixture *f = *state;
    const char *top = getenv("top_srcdir");
    char *path = xasprintf("%s/scripts/xenopsd.conf.sample",
                           top ? top : ".");

    assert_int_equal(config_load(&f->c, path, NULL), 0);
    assert_string_equal(f->c.sockets_path, "/var/lib/xcp");
    assert_true(f->c.vbd_plug_unplug_legacy);
    assert_string_equal(f->c.log_target, "stderr");
    free(path);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_config_defaults),
        T(test_config_every_key_parsed),
        cmocka_unit_test(test_config_migration_and_storage_keys),
        cmocka_unit_test(test_config_parse_line_cases),
        T(test_config_comments_cut_line),
        T(test_config_hash_inside_quotes_cuts_line),
        T(test_config_quotes_stripped_once),
        T(test_config_blank_lines_and_crlf),
        T(test_config_empty_file_ok),
        T(test_config_unknown_key_ignored),
        T(test_config_set_applies_and_reports),
        T(test_config_bad_bool_rejected),
        T(test_config_bad_int_rejected),
        T(test_config_int_out_of_range_rejected),
        T(test_config_bad_sim_srs_rejected),
        cmocka_unit_test(test_config_sim_srs_parsed),
        cmocka_unit_test(test_config_sim_srs_count_bounded),
        T(test_config_rpc_max_request_bytes_bounded),
        T(test_config_rpc_allowed_uids_parsed),
        T(test_config_bad_rpc_allowed_uids_rejected),
        T(test_config_bad_path_rejected),
        T(test_config_bad_enum_rejected),
        T(test_config_validate_refuses_a_backend_not_built),
        T(test_config_bad_value_in_file_fails),
        T(test_config_error_names_file_line_and_key),
        T(test_config_malformed_line_fails),
        T(test_config_nul_byte_fails),
        T(test_config_fragments_sorted_after_file),
        T(test_config_fragments_use_strcmp_order),
        T(test_config_dir_from_file_key),
        T(test_config_dot_files_and_non_regular_skipped),
        T(test_config_bad_fragment_fails),
        T(test_config_missing_file_fails),
        T(test_config_missing_dir_ok),
        T(test_config_dir_not_a_directory_fails),
        T(test_config_file_not_regular_fails),
        T(test_config_long_line_fails),
        T(test_config_big_file_fails),
        T(test_config_sample_file_loads),
        cmocka_unit_test(test_config_parse_bool_strict),
        cmocka_unit_test(test_config_dispose_idempotent),
        T(test_config_log_target_key),
        T(test_config_load_all_default_dir),
        T(test_config_load_all_explicit_dir_wins),
        T(test_config_load_all_relative_file),
        T(test_config_fragment_round_trip),
        T(test_config_fragment_bad_input_writes_nothing),
        T(test_config_fragment_write_failure_keeps_old),
        T(test_config_installed_sample_loads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
