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
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
                                      "xenlight" (refused by
                                      config_validate when not built in:
                                      configure --with-xen) */
    char *xenlight_cpuid;          /* "xenlight-cpuid": libxl cpuid policy
                                      for every domain (xl.cfg's cpuid=),
                                      e.g. "host,rdtscp=0"; default NULL
                                      (Xen's); empty resets to NULL */
    int64_t xenlight_unplug_timeout_s; /* "xenlight-unplug-timeout-s": how
                                      long a guest has to close a disk on
                                      a clean unplug, default 20, 1..3600 */
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
                                      <activate-ms>", default NULL; an
                                      empty value resets it to NULL */
    char *rpc_allowed_uids;        /* "rpc-allowed-uids": comma list of
                                      uids allowed on the RPC socket
                                      besides 0, e.g. "1000,1001";
                                      default NULL (root only); an empty
                                      value resets it to NULL */
    int64_t rpc_max_request_bytes; /* "rpc-max-request-bytes": largest
                                      request body, default 16777216,
                                      1024..1073741824 */

    /* live migration */
    char *migration_listen;        /* "migration-listen": "host:port" of
                                      the receiver's TCP listener
                                      (e.g. 0.0.0.0:8089); NULL = none */
    char *migration_token_file;    /* "migration-token-file": the shared
                                      secret, the same file on both hosts;
                                      required with migration-listen */
    int64_t migration_max_downtime_ms; /* "migration-max-downtime-ms":
                                      switch over once the rest fits,
                                      default 300, 0..600000 */
    int64_t migration_max_iterations; /* "migration-max-iterations":
                                      pre-copy rounds before the policy
                                      applies, default 30, 1..64 */
    bool migration_downtime_abort; /* "migration-downtime-policy":
                                      "force" (default: pause anyway) or
                                      "abort" (stay on the source) */

    /* storage */
    char *sm_dir;                  /* "sm-dir": SMAPIv1 drivers, default
                                      /opt/xensource/sm */
    char *storage_script_root;     /* "storage-script-root": SMAPIv3
                                      plugins, default
                                      /usr/libexec/xapi-storage-script */
    int64_t sm_timeout_ms;         /* "sm-timeout-ms": per driver command,
                                      default 300000, 100..86400000 */

    /* administration */
    char *log_target;              /* "log-target": "stderr" (default) or
                                      "syslog" (facility daemon, ident
                                      xenopsd-c; journald keeps the
                                      level); "loglevel" filters both */
};

/* Bounds on input: longer lines and bigger files are refused. */
#define CONFIG_LINE_MAX 4096
#define CONFIG_FILE_MAX (1024 * 1024)
#define CONFIG_FRAGMENTS_MAX 1024

/* One entry of "sim-srs", as parsed by config_parse_sim_srs. */
struct config_sim_sr {
    char uuid[37];                 /* IDS_UUID_LEN + 1 */
    char api_version[16];          /* "<digits>.<digits>", e.g. "3.0" */
    int attach_ms;                 /* 0..CONFIG_SIM_SR_MS_MAX */
    int activate_ms;               /* 0..CONFIG_SIM_SR_MS_MAX */
};
#define CONFIG_SIM_SR_MS_MAX 600000
#define CONFIG_SIM_SRS_MAX 64

/* Fill c with the defaults. Always succeeds. c must be uninitialised or
 * disposed: whatever it held is overwritten, not freed. */
void config_defaults(struct config *c);

/*
 * Read file (must exist when non-NULL) then every fragment in dir (may be
 * NULL or missing). Values override what c holds. Returns 0, or XO_EINVAL /
 * XO_EIO after logging "<file>:<line>: ..." naming the key. On failure c
 * may hold some of the new values; callers abort start-up.
 * When dir is NULL, c->config_dir as it stands after reading file is used
 * (so a "config-dir" key in the file takes effect, as in xenopsd).
 * Fragments that are not regular files (after following symlinks) are
 * skipped; a dir that exists but cannot be read is an error (XO_EIO).
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

/* OCaml bool_of_string: exactly "true" or "false". Returns 0 or XO_EINVAL
 * (no log, no detail; *r untouched on error). */
int config_parse_bool(const char *s, bool *r);

/*
 * Parse a "sim-srs" value: a comma list of
 * "<sr-uuid>:<api-version>:<attach-ms>:<activate-ms>" with distinct SR uuids,
 * at most CONFIG_SIM_SRS_MAX entries. An empty string is the empty list
 * (*srs_r NULL, *n_r 0). Returns 0 with a malloc'd array the caller frees,
 * or XO_EINVAL (no log, no detail) with *srs_r NULL. srs_r may be NULL to
 * validate only.
 */
int config_parse_sim_srs(const char *s, struct config_sim_sr **srs_r,
                         size_t *n_r);

#define CONFIG_RPC_UIDS_MAX 64

/*
 * The uids allowed on the RPC socket: 0 followed by the entries of
 * "rpc-allowed-uids" (decimal, 0..4294967294, at most CONFIG_RPC_UIDS_MAX,
 * blanks around an entry allowed). Returns 0 with a malloc'd array the
 * caller frees, or XO_EINVAL (no log, no detail; c->rpc_allowed_uids is
 * validated by config_set, so only a hand-made struct gets here).
 */
int config_rpc_allowed_uids(const struct config *c, uid_t **uids_r,
                            size_t *n_r);

/* Free the strings of c and NULL them; idempotent. */
void config_dispose(struct config *c);

/*
 * config_load(c, file, NULL), then, when neither the command line nor a
 * file named a config dir and file is given, the default config dir
 * "<file>.d" (made absolute, e.g. /etc/xenopsd.conf.d): c->config_dir is
 * set to it (whether it exists or not) so that runtime changes persisted
 * there (HOST.set_feature) are read by the next start. Same errors as
 * config_load.
 */
int config_load_all(struct config *c, const char *file);

/*
 * Checks of the whole configuration that start-up makes after loading it:
 * the backend must be one this binary has ("simulator", and "xenlight"
 * when configure found libxl). XO_EINVAL with one log line naming the
 * key.
 */
int config_validate(const struct config *c);

/* One "key = value" line of a fragment. */
struct config_pair {
    const char *key;
    const char *value;
};

/*
 * Write the fragment dir/name crash-safely (atomicfile.h; dir is created,
 * mode 0700, if missing): header, each of its lines prefixed "# ", then a
 * "key = value" line per pair. Every key must be one config_set applies
 * and every value valid for it and representable on a line (no '#', line
 * break, surrounding blanks or quotes), and name a plain file name not
 * starting with '.', so the file always loads as written: else XO_EINVAL
 * (detail set) and nothing is written. XO_EIO if the write fails.
 */
int config_write_fragment(const char *dir, const char *name,
                          const char *header,
                          const struct config_pair *pairs, size_t n);

#endif
