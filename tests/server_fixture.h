/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * server_fixture: the in-process server the server-level unit tests
 * (test_server, test_metadata, test_admin) share: a config for the
 * simulator, the server built from it, and a VM with its boot disk on the
 * simulated SR. Test code: every step asserts (cmocka), so a caller only
 * checks what its own test is about.
 */
#ifndef XENOPS_TESTS_SERVER_FIXTURE_H
#define XENOPS_TESTS_SERVER_FIXTURE_H

#include <yajl/yajl_tree.h>

#include "config.h"
#include "server.h"

/* The VM server_fixture_add_vm adds, and the SR its boot disk is on. */
#define SERVER_FIXTURE_VM "9c0f7c55-1111-2222-3333-444455556666"
#define SERVER_FIXTURE_SR "5a3e0c3e-0000-4000-8000-000000000003"

/* Parse JSON that must be valid; the caller frees with yajl_tree_free. */
yajl_val server_fixture_parse(const char *text);

/* Parse text and add it with fn (server_vm_add, server_vbd_add, ...),
 * which must succeed. */
void server_fixture_add(struct server *srv,
                        int (*fn)(struct server *, yajl_val, char **),
                        const char *text);

/* config_set that must succeed. */
void server_fixture_set(struct config *cfg, const char *key,
                        const char *value);

/*
 * config_defaults, then the simulator's SRs (sim-srs, e.g.
 * SERVER_FIXTURE_SR ":5.0:20:1") and a 1 MiB memory cap. db_path NULL:
 * nothing persists (persist=false, and the database path does not exist,
 * so a write that should not happen fails). The caller disposes of cfg
 * (server_fixture_stop does).
 */
void server_fixture_config(struct config *cfg, const char *db_path,
                           const char *sim_srs);

/* server_new on cfg, which must succeed. */
struct server *server_fixture_start(const struct config *cfg);

/* Add the VM vm_json describes (its id must be SERVER_FIXTURE_VM) and its
 * disk xvda, the VDI SERVER_FIXTURE_SR/a. */
void server_fixture_add_vm(struct server *srv, const char *vm_json);

/* server_free, config_dispose and clear the thread's error detail, so the
 * next test starts clean. */
void server_fixture_stop(struct server *srv, struct config *cfg);

#endif
