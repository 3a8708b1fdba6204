/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * config: xenopsd.conf-compatible configuration (reference/interfaces.md
 * section 6). Owns parsing of the file, of the config-dir fragments and of
 * single key=value settings; does not own acting on them.
 *
 * Syntax per line: cut at the first '#' (even inside quotes), trim blanks,
 * "key [blanks] = [blanks] value"; one matching pair of surrounding '"' or
 * '\'' is stripped from the value; unknown keys are ignored with a log line;
 * a bad value makes config_load fail with a log line naming file, line and
 * key. Fragments of the config dir are applied after the file, in sorted
 * (strcmp) order; entries starting with '.' are skipped.
 *
 * Ownership: struct config owns its strings; config_dispose frees them and is
 * idempotent. Not thread-safe: configure before starting threads.
 */
#ifndef XENOPS_CONFIG_H
#define XENOPS_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

struct config {
    /* xenopsd keys */
    char *sockets_path;            /* "sockets-path", default /var/lib/xcp */
    char *database_path;           /* "database-path", default
                                      /var/run/nonpersistent/xenopsd-c */
    bool persist;                  /* "persist", default true */
    int worker_pool_size;          /* "worker-pool-size", default 4, 1..256 */
    bool vbd_plug_unplug_legacy;   /* "xenopsd-vbd-plug-unplug-legacy",
                                      default true */
    char *config_dir;              /* "config-dir", default NULL (none) */
    char *loglevel;                /* "loglevel", default "info" */

    /* ours */
    char *backend;                 /* "backend": "simulator" (default) or
                                      "xenlight" */
    int64_t sim_memory_cap_mib;    /* "sim-memory-cap-mib": a simulated
                                      guest owns min(VM memory, cap);
                                      default 64, 1..65536 */
    int64_t sim_dirty_pages_per_sec; /* "sim-dirty-pages-per-sec": guest
                                      dirtying rate, default 2000, >= 0 */
    int64_t sim_heartbeat_ms;      /* "sim-heartbeat-ms": guest heartbeat
                                      tick, default 5, 1..10000 */
    char *sim_srs;                 /* "sim-srs": in-process test SRs, a
                                      comma list of
                                      "<sr-uuid>:<api-version>:<attach-ms>:
                                      <activate-ms>", default NULL */
};

/* Fill c with the defaults. Always succeeds. */
void config_defaults(struct config *c);

/*
 * Read file (must exist when non-NULL) then every fragment in dir (may be
 * NULL or missing). Values override what c holds. Returns 0, or XO_EINVAL /
 * XO_EIO after logging "<file>:<line>: ..." naming the key. On failure c
 * may hold some of the new values; callers abort start-up.
 */
int config_load(struct config *c, const char *file, const char *dir);

/*
 * Apply one setting (as from a line, a command-line option or an RPC).
 * where names the source for messages ("cmdline", "file.conf:12").
 * Returns 0, 1 if the key is unknown (logged, nothing changed), or
 * XO_EINVAL for a bad value (logged, nothing changed).
 */
int config_set(struct config *c, const char *key, const char *value,
               const char *where);

/* Parse one line. key_r/value_r point into the modified line. Returns 1 if
 * the line holds a pair, 0 if blank/comment, XO_EINVAL if malformed. */
int config_parse_line(char *line, char **key_r, char **value_r);

void config_dispose(struct config *c);

#endif
