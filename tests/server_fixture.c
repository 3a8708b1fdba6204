/* SPDX-License-Identifier: LGPL-2.1-only */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "server_fixture.h"
#include "util/errors.h"
#include "util/json.h"

yajl_val
server_fixture_parse(const char *text)
{
    yajl_val v = NULL;

    assert_int_equal(json_parse(text, strlen(text), &v), 0);
    return v;
}

void
server_fixture_add(struct server *srv,
                   int (*fn)(struct server *, yajl_val, char **),
                   const char *text)
{
    yajl_val v = server_fixture_parse(text);
    char *id = NULL;

    assert_int_equal(fn(srv, v, &id), 0);
    free(id);
    yajl_tree_free(v);
}

void
server_fixture_set(struct config *cfg, const char *key, const char *value)
{
    assert_int_equal(config_set(cfg, key, value, "test"), 0);
}

void
server_fixture_config(struct config *cfg, const char *db_path,
                      const char *sim_srs)
{
    config_defaults(cfg);
    if (!db_path) {
        server_fixture_set(cfg, "persist", "false");
        db_path = "/nonexistent";
    }
    server_fixture_set(cfg, "database-path", db_path);
    server_fixture_set(cfg, "sim-srs", sim_srs);
    server_fixture_set(cfg, "sim-memory-cap-mib", "1");
}

struct server *
server_fixture_start(const struct config *cfg)
{
    struct server *srv = NULL;

    assert_int_equal(server_new(cfg, NULL, &srv), 0);
    return srv;
}

void
server_fixture_add_vm(struct server *srv, const char *vm_json)
{
    yajl_val vm = server_fixture_parse(vm_json);
    const char *id = json_get_str(vm, "id");

    /* xvda below names the VM by this id. */
    assert_non_null(id);
    assert_string_equal(id, SERVER_FIXTURE_VM);
    yajl_tree_free(vm);
    server_fixture_add(srv, server_vm_add, vm_json);
    server_fixture_add(srv, server_vbd_add,
                       "{\"id\":[\"" SERVER_FIXTURE_VM "\",\"xvda\"],"
                       "\"backend\":[\"VDI\",\"" SERVER_FIXTURE_SR "/a\"]}");
}

void
server_fixture_stop(struct server *srv, struct config *cfg)
{
    server_free(srv);
    config_dispose(cfg);
    xo_err_clear();
}
