/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xenopsd-c: start-up. Reads the configuration like xenopsd
 * (--config FILE, then the fragments of --config-dir, by default FILE.d;
 * any key can also be given as --<key> VALUE or --<key>=VALUE, applied
 * before the files as xenopsd's cmdliner defaults are), builds the
 * server, serves the message interface on <sockets-path>/xenopsd and runs
 * until SIGTERM/SIGINT or DEBUG.shutdown.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "migrate/migrate.h"
#include "rpc/rpc.h"
#include "rpc/rpc_methods.h"
#include "server.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/log.h"
#include "util/xalloc.h"

#define DEFAULT_CONFIG "/etc/xenopsd.conf"

static volatile sig_atomic_t stop_requested;
static int stop_pipe[2] = { -1, -1 };

static void
request_stop(void)
{
    char c = 1;

    stop_requested = 1;
    /* Async-signal-safe wake-up of the main thread. */
    if (write(stop_pipe[1], &c, 1) < 0)
        return;
}

static void
on_signal(int sig)
{
    (void)sig;
    request_stop();
}

static void
on_debug_shutdown(void *opaque)
{
    (void)opaque;
    request_stop();
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: xenopsd-c [--config FILE] [--config-dir DIR] "
            "[--<key> VALUE]...\n"
            "  Runs the VM operations daemon. Keys are those of "
            "xenopsd.conf(5),\n"
            "  e.g. --sockets-path /run/xenopsd --loglevel debug.\n"
            "  The only backend built in is the simulator.\n"
            "  --version prints the version.\n");
}

int
main(int argc, char **argv)
{
    struct config cfg;
    struct server *srv = NULL;
    struct migrate *mig = NULL;
    struct admin *adm = NULL;
    struct admin_deps adeps;
    struct migrate_deps mdeps;
    struct rpc_server *rpc = NULL;
    struct rpc_server_config rcfg;
    struct rpc_methods_ctx mctx;
    const char *config_file = NULL;
    char *sock = NULL;
    uid_t *uids = NULL;
    size_t n_uids = 0;
    enum log_level lvl;
    struct sigaction sa;
    int rc = 1;

    config_defaults(&cfg);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char *key, *eq, *value;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            config_dispose(&cfg);
            return 0;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("xenopsd-c %s\n", PACKAGE_VERSION);
            config_dispose(&cfg);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            usage(stderr);
            goto out;
        }
        key = xstrdup(arg + 2);
        eq = strchr(key, '=');
        if (eq) {
            *eq = '\0';
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            fprintf(stderr, "xenopsd-c: option '--%s' needs a value\n", key);
            free(key);
            goto out;
        }
        if (strcmp(key, "config") == 0) {
            free((char *)config_file);
            config_file = xstrdup(value);
            free(key);
            continue;
        }
        if (config_set(&cfg, key, value, "command line") != 0) {
            fprintf(stderr, "xenopsd-c: bad option '--%s'\n", key);
            free(key);
            goto out;
        }
        free(key);
    }
    if (!config_file && access(DEFAULT_CONFIG, R_OK) == 0)
        config_file = xstrdup(DEFAULT_CONFIG);
    if (config_load_all(&cfg, config_file) != 0 ||
        config_validate(&cfg) != 0) {
        fprintf(stderr, "xenopsd-c: configuration error (see above)\n");
        goto out;
    }
    if (log_level_parse(cfg.loglevel, &lvl) == 0)
        log_set_level(lvl);
    if (strcmp(cfg.log_target, "syslog") == 0)
        log_use_syslog("xenopsd-c");

    if (pipe(stop_pipe) < 0) {
        LOGE(ERROR, "pipe");
        goto out;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (files_mkdirs(cfg.sockets_path))
        goto out;
    if (server_new(&cfg, NULL, &srv)) {
        LOG(ERROR, "cannot start the server");
        goto out;
    }
    server_admin_deps(srv, &adeps);
    adm = admin_new(&adeps);
    memset(&mctx, 0, sizeof(mctx));
    mctx.srv = srv;
    mctx.admin = adm;
    mctx.shutdown = on_debug_shutdown;
    mctx.shutdown_opaque = NULL;
    memset(&rcfg, 0, sizeof(rcfg));
    sock = xasprintf("%s/xenopsd", cfg.sockets_path);
    rcfg.path = sock;
    rcfg.max_body = (size_t)cfg.rpc_max_request_bytes;
    if (config_rpc_allowed_uids(&cfg, &uids, &n_uids)) {
        LOG(ERROR, "bad rpc-allowed-uids '%s'", cfg.rpc_allowed_uids);
        goto out;
    }
    rcfg.allowed_uids = uids;
    rcfg.n_allowed_uids = n_uids;
    if (rpc_server_start(&rcfg, rpc_methods_table, rpc_methods_count, &mctx,
                         &rpc)) {
        LOG(ERROR, "cannot serve on '%s'", sock);
        goto out;
    }
    server_migrate_deps(srv, &mdeps);
    mdeps.methods = rpc_methods_table;
    mdeps.n_methods = rpc_methods_count;
    mdeps.methods_ctx = &mctx;
    mdeps.note_migration = admin_note_migration_cb;
    mdeps.note_ctx = adm;
    if (migrate_new(&mdeps, &mig)) {
        LOG(ERROR, "cannot start the migration receiver");
        goto out;
    }
    mctx.mig = mig;
    LOG(INFO, "xenopsd-c %s ready on '%s' (backend '%s', legacy %s)",
        PACKAGE_VERSION, sock, cfg.backend,
        cfg.vbd_plug_unplug_legacy ? "true" : "false");

    while (!stop_requested) {
        char c;

        if (read(stop_pipe[0], &c, 1) < 0 && errno != EINTR)
            break;
    }
    LOG(INFO, "stopping");
    rc = 0;
out:
    if (rpc)
        rpc_server_stop(rpc);
    /* Before the server: migrations use its pools and records, and admin
     * holds references to its tasks. */
    migrate_free(mig);
    admin_free(adm);
    server_free(srv);
    free(uids);
    free(sock);
    free((char *)config_file);
    config_dispose(&cfg);
    return rc;
}
