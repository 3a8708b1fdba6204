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
            "  Backends built in: simulator%s.\n"
            "  --version prints the version.\n",
#ifdef HAVE_XEN
            ", xenlight"
#else
            " (configure --with-xen for xenlight)"
#endif
            );
}

/* Everything start-up builds, torn down in reverse by daemon_stop. */
struct daemon {
    struct config cfg;
    char *config_file;
    struct server *srv;
    struct admin *adm;
    struct migrate *mig;
    struct rpc_server *rpc;
    struct rpc_methods_ctx mctx;
    char *sock;
    uid_t *uids;
    size_t n_uids;
};

/* Command line: --<key> VALUE or --<key>=VALUE into the configuration,
 * --config FILE aside. Returns 0 to go on, 1 when --help or --version
 * answered, -1 on a bad option (already reported). */
static int
daemon_parse_args(struct daemon *d, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        char *key, *eq, *value;
        int rc;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(arg, "--version") == 0) {
            printf("xenopsd-c %s\n", PACKAGE_VERSION);
            return 1;
        }
        if (strncmp(arg, "--", 2) != 0) {
            usage(stderr);
            return -1;
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
            return -1;
        }
        rc = 0;
        if (strcmp(key, "config") == 0) {
            free(d->config_file);
            d->config_file = xstrdup(value);
        } else if (config_set(&d->cfg, key, value, "command line") != 0) {
            fprintf(stderr, "xenopsd-c: bad option '--%s'\n", key);
            rc = -1;
        }
        free(key);
        if (rc)
            return rc;
    }
    return 0;
}

/* The files after the command line, then logging as configured. */
static int
daemon_configure(struct daemon *d)
{
    enum log_level lvl;

    if (!d->config_file && access(DEFAULT_CONFIG, R_OK) == 0)
        d->config_file = xstrdup(DEFAULT_CONFIG);
    if (config_load_all(&d->cfg, d->config_file) != 0 ||
        config_validate(&d->cfg) != 0) {
        fprintf(stderr, "xenopsd-c: configuration error (see above)\n");
        return -1;
    }
    if (log_level_parse(d->cfg.loglevel, &lvl) == 0)
        log_set_level(lvl);
    if (strcmp(d->cfg.log_target, "syslog") == 0)
        log_use_syslog("xenopsd-c");
    return 0;
}

static int
daemon_signals(void)
{
    struct sigaction sa;

    if (pipe(stop_pipe) < 0) {
        LOGE(ERROR, "pipe");
        return -1;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* The server, then admin over it, then the message interface. */
static int
daemon_serve(struct daemon *d)
{
    struct admin_deps adeps;
    struct rpc_server_config rcfg;

    if (files_mkdirs(d->cfg.sockets_path))
        return -1;
    if (server_new(&d->cfg, NULL, &d->srv)) {
        LOG(ERROR, "cannot start the server");
        return -1;
    }
    server_admin_deps(d->srv, &adeps);
    d->adm = admin_new(&adeps);
    memset(&d->mctx, 0, sizeof(d->mctx));
    d->mctx.srv = d->srv;
    d->mctx.admin = d->adm;
    d->mctx.shutdown = on_debug_shutdown;
    memset(&rcfg, 0, sizeof(rcfg));
    d->sock = xasprintf("%s/xenopsd", d->cfg.sockets_path);
    rcfg.path = d->sock;
    rcfg.max_body = (size_t)d->cfg.rpc_max_request_bytes;
    if (config_rpc_allowed_uids(&d->cfg, &d->uids, &d->n_uids)) {
        LOG(ERROR, "bad rpc-allowed-uids '%s'", d->cfg.rpc_allowed_uids);
        return -1;
    }
    rcfg.allowed_uids = d->uids;
    rcfg.n_allowed_uids = d->n_uids;
    if (rpc_server_start(&rcfg, rpc_methods_table, rpc_methods_count,
                         &d->mctx, &d->rpc)) {
        LOG(ERROR, "cannot serve on '%s'", d->sock);
        return -1;
    }
    return 0;
}

/* Migration, wired to the server, the method table and admin's record of
 * migrations. */
static int
daemon_migrate(struct daemon *d)
{
    struct migrate_deps mdeps;

    server_migrate_deps(d->srv, &mdeps);
    mdeps.methods = rpc_methods_table;
    mdeps.n_methods = rpc_methods_count;
    mdeps.methods_ctx = &d->mctx;
    mdeps.note_migration = admin_note_migration_cb;
    mdeps.note_ctx = d->adm;
    if (migrate_new(&mdeps, &d->mig)) {
        LOG(ERROR, "cannot start the migration receiver");
        return -1;
    }
    d->mctx.mig = d->mig;
    return 0;
}

static void
daemon_wait(void)
{
    while (!stop_requested) {
        char c;

        if (read(stop_pipe[0], &c, 1) < 0 && errno != EINTR)
            break;
    }
}

static void
daemon_stop(struct daemon *d)
{
    if (d->rpc)
        rpc_server_stop(d->rpc);
    /* Before the server: migrations use its pools and records, and admin
     * holds references to its tasks. */
    migrate_free(d->mig);
    admin_free(d->adm);
    server_free(d->srv);
    free(d->uids);
    free(d->sock);
    free(d->config_file);
    config_dispose(&d->cfg);
}

int
main(int argc, char **argv)
{
    struct daemon d;
    int rc = 1, args;

    memset(&d, 0, sizeof(d));
    config_defaults(&d.cfg);
    args = daemon_parse_args(&d, argc, argv);
    if (args != 0) {
        rc = args > 0 ? 0 : 1;
        goto out;
    }
    if (daemon_configure(&d) || daemon_signals() || daemon_serve(&d) ||
        daemon_migrate(&d))
        goto out;
    LOG(INFO, "xenopsd-c %s ready on '%s' (backend '%s', legacy %s)",
        PACKAGE_VERSION, d.sock, d.cfg.backend,
        d.cfg.vbd_plug_unplug_legacy ? "true" : "false");
    daemon_wait();
    LOG(INFO, "stopping");
    rc = 0;
out:
    daemon_stop(&d);
    return rc;
}
