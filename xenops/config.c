/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * config: xenopsd.conf-compatible parsing (reference/interfaces.md section
 * 6, after xcp_service's config_from_file).
 *
 * One table names every key we understand with its kind and bounds;
 * config_set validates a value completely before it touches the struct, so a
 * bad value changes nothing. Keys xenopsd knows but we do not use are
 * ignored at INFO so a production xenopsd.conf loads quietly; any other key
 * is ignored at WARN, because it is most likely a typo.
 *
 * Worked example, line by line:
 *   "  persist = 'true'  # keep"  -> key "persist", value "true"
 *   "hvmloader=\"/a#b\""           -> key "hvmloader", value "\"/a"
 *                                     (the '#' cuts even inside quotes,
 *                                     and the lone quote is kept)
 *   "just-a-word"                  -> malformed: config_load fails
 */

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/log.h"
#include "util/xalloc.h"

/* OCaml String.trim's notion of whitespace. */
#define CONFIG_TRIM " \t\n\r\f"
/* Around '=' only blanks are allowed, as in xenopsd's line regex. */
#define CONFIG_BLANKS " \t"
#define CONFIG_PATH_MAX 4096
/* How much of an untrusted key or value goes into a message. */
#define CONFIG_SHOWN_MAX 96

enum config_kind {
    CONFIG_KIND_PATH,       /* char *, absolute path */
    CONFIG_KIND_BOOL,       /* bool */
    CONFIG_KIND_INT,        /* int, in [min, max] */
    CONFIG_KIND_INT64,      /* int64_t, in [min, max] */
    CONFIG_KIND_LOGLEVEL,   /* char *, canonical level name */
    CONFIG_KIND_BACKEND,    /* char *, "simulator" | "xenlight" */
    CONFIG_KIND_SIM_SRS,    /* char *, sim-srs list or NULL */
    CONFIG_KIND_UIDS,       /* char *, uid list or NULL */
    CONFIG_KIND_ADDR,       /* char *, "host:port" / "[v6]:port" or NULL */
    CONFIG_KIND_POLICY,     /* bool: "abort" = true, "force" = false */
    CONFIG_KIND_LOG_TARGET, /* char *, "stderr" | "syslog" */
    CONFIG_KIND_CPUID,      /* char *, a libxl cpuid policy or NULL */
};

struct config_key {
    const char *name;
    enum config_kind kind;
    size_t offset;
    int64_t min;
    int64_t max;
};

#define CONFIG_AT(field) offsetof(struct config, field)

static const struct config_key config_keys[] = {
    { "sockets-path", CONFIG_KIND_PATH, CONFIG_AT(sockets_path), 0, 0 },
    { "database-path", CONFIG_KIND_PATH, CONFIG_AT(database_path), 0, 0 },
    { "persist", CONFIG_KIND_BOOL, CONFIG_AT(persist), 0, 0 },
    { "worker-pool-size", CONFIG_KIND_INT, CONFIG_AT(worker_pool_size),
      1, 256 },
    { "xenopsd-vbd-plug-unplug-legacy", CONFIG_KIND_BOOL,
      CONFIG_AT(vbd_plug_unplug_legacy), 0, 0 },
    { "config-dir", CONFIG_KIND_PATH, CONFIG_AT(config_dir), 0, 0 },
    { "loglevel", CONFIG_KIND_LOGLEVEL, CONFIG_AT(loglevel), 0, 0 },
    { "backend", CONFIG_KIND_BACKEND, CONFIG_AT(backend), 0, 0 },
    { "sim-memory-cap-mib", CONFIG_KIND_INT64,
      CONFIG_AT(sim_memory_cap_mib), 1, 65536 },
    { "sim-dirty-pages-per-sec", CONFIG_KIND_INT64,
      CONFIG_AT(sim_dirty_pages_per_sec), 0, INT64_MAX },
    { "sim-heartbeat-ms", CONFIG_KIND_INT64, CONFIG_AT(sim_heartbeat_ms),
      1, 10000 },
    { "sim-srs", CONFIG_KIND_SIM_SRS, CONFIG_AT(sim_srs), 0, 0 },
    { "rpc-allowed-uids", CONFIG_KIND_UIDS, CONFIG_AT(rpc_allowed_uids),
      0, 0 },
    { "rpc-max-request-bytes", CONFIG_KIND_INT64,
      CONFIG_AT(rpc_max_request_bytes), 1024, 1073741824 },
    { "migration-listen", CONFIG_KIND_ADDR, CONFIG_AT(migration_listen),
      0, 0 },
    { "migration-token-file", CONFIG_KIND_PATH,
      CONFIG_AT(migration_token_file), 0, 0 },
    { "migration-max-downtime-ms", CONFIG_KIND_INT64,
      CONFIG_AT(migration_max_downtime_ms), 0, 600000 },
    { "migration-max-iterations", CONFIG_KIND_INT64,
      CONFIG_AT(migration_max_iterations), 1, 64 },
    { "migration-downtime-policy", CONFIG_KIND_POLICY,
      CONFIG_AT(migration_downtime_abort), 0, 0 },
    { "sm-dir", CONFIG_KIND_PATH, CONFIG_AT(sm_dir), 0, 0 },
    { "storage-script-root", CONFIG_KIND_PATH,
      CONFIG_AT(storage_script_root), 0, 0 },
    { "sm-timeout-ms", CONFIG_KIND_INT64, CONFIG_AT(sm_timeout_ms), 100,
      86400000 },
    { "log-target", CONFIG_KIND_LOG_TARGET, CONFIG_AT(log_target), 0, 0 },
    { "xenlight-cpuid", CONFIG_KIND_CPUID, CONFIG_AT(xenlight_cpuid), 0, 0 },
    { "xenlight-unplug-timeout-s", CONFIG_KIND_INT64,
      CONFIG_AT(xenlight_unplug_timeout_s), 1, 3600 },
};

/* xenopsd keys that xenops-c accepts in a shared xenopsd.conf but does not
 * act on (interfaces.md section 6 and the shipped xenopsd.conf). */
static const char *const config_xenopsd_ignored[] = {
    "queue", "use-switch", "switch-path", "search-path", "log",
    "disable-logging-for", "inventory", "config", "pidfile", "timeslice",
    "watch_queue_length", "use-upstream-qemu", "ca-140252-workaround",
    "xen-platform-pci-bar-uc", "vif-ready-for-igmp-query-timeout",
    "action-after-qemu-crash", "feature-flags-path", "pvinpvh-xen-cmdline",
    "numa-placement", "numa-best-effort-prio-mem-only", "pci-quarantine",
    "oxenstored-conf", "test-open", "simulate", "sockets-group",
    "default-vbd-backend-kind", "hotplug_timeout",
    "additional-ballooning-timeout", "migration-compressor",
    "migration-tls", "xenopsd-tls-helper", "vm-suspend-timeout",
    "vm-suspend-ack-timeout", "domain_shutdown_ack_timeout",
    "run_hotplug_scripts", "use_old_pci_add", "qemu_dm_ready_timeout",
    "vgpu-ready-timeout", "varstored-ready-timeout", "cpu-info-file",
    "xenguest", "emu-manager", "vbd-script", "vif-script", "vif-xl-script",
    "vbd-xl-script", "qemu-vif-script", "pci-flr-script", "vncterm",
    "hvmloader", "pygrub", "eliloader", "network-conf", "network_conf",
    "qemu-dm-wrapper", "setup-vif-rules", "setup-pvs-proxy-rules",
    "tune2fs", "mkfs", "mount", "umount", "ionice", "chgrp",
};

static const char *const config_level_names[] = {
    "error", "warn", "info", "debug",
};

/* Copy at most CONFIG_SHOWN_MAX printable characters of s for a message. */
static void
config_shown(const char *s, char *out, size_t n)
{
    size_t j = 0;

    for (size_t i = 0; s[i] && j + 1 < n && i < CONFIG_SHOWN_MAX; i++)
        out[j++] = isprint((unsigned char)s[i]) ? s[i] : '?';
    out[j] = '\0';
}

void
config_defaults(struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->sockets_path = xstrdup("/var/lib/xcp");
    c->database_path = xstrdup("/var/run/nonpersistent/xenopsd-c");
    c->persist = true;
    c->worker_pool_size = 4;
    c->vbd_plug_unplug_legacy = true;
    c->config_dir = NULL;
    c->loglevel = xstrdup("info");
    c->backend = xstrdup("simulator");
    c->sim_memory_cap_mib = 64;
    c->sim_dirty_pages_per_sec = 2000;
    c->sim_heartbeat_ms = 5;
    c->sim_srs = NULL;
    c->rpc_allowed_uids = NULL;
    c->rpc_max_request_bytes = 16777216;
    c->migration_listen = NULL;
    c->migration_token_file = NULL;
    c->migration_max_downtime_ms = 300;
    c->migration_max_iterations = 30;
    c->migration_downtime_abort = false;
    c->sm_dir = xstrdup("/opt/xensource/sm");
    c->storage_script_root = xstrdup("/usr/libexec/xapi-storage-script");
    c->log_target = xstrdup("stderr");
    c->sm_timeout_ms = 300000;
    c->xenlight_cpuid = NULL;
    c->xenlight_unplug_timeout_s = 20;
}

void
config_dispose(struct config *c)
{
    char **strs[] = {
        &c->sockets_path, &c->database_path, &c->config_dir, &c->loglevel,
        &c->backend, &c->sim_srs, &c->rpc_allowed_uids,
        &c->migration_listen, &c->migration_token_file, &c->sm_dir,
        &c->storage_script_root, &c->log_target, &c->xenlight_cpuid,
    };

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        free(*strs[i]);
        *strs[i] = NULL;
    }
}

int
config_parse_bool(const char *s, bool *r)
{
    if (strcmp(s, "true") == 0) {
        *r = true;
        return 0;
    }
    if (strcmp(s, "false") == 0) {
        *r = false;
        return 0;
    }
    return XO_EINVAL;
}

/* Decimal integer, the whole string, optional sign, no blanks. */
static int
config_parse_int(const char *s, int64_t min, int64_t max, int64_t *r)
{
    const char *d = (*s == '-' || *s == '+') ? s + 1 : s;
    char *end;
    long long v;

    if (!isdigit((unsigned char)*d))
        return XO_EINVAL;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < min || v > max)
        return XO_EINVAL;
    *r = v;
    return 0;
}

/* "<digits>.<digits>", fitting in out (size n). */
static int
config_parse_api_version(const char *s, char *out, size_t n)
{
    size_t major = strspn(s, "0123456789");
    size_t minor;

    if (major == 0 || s[major] != '.')
        return XO_EINVAL;
    minor = strspn(s + major + 1, "0123456789");
    if (minor == 0 || s[major + 1 + minor] != '\0')
        return XO_EINVAL;
    return xstrlcpy(out, s, n) == 0 ? 0 : XO_EINVAL;
}

static int
config_parse_ms(const char *s, int *r)
{
    int64_t v;

    /* Digits only: no sign, so "-0" and "+5" are refused. */
    if (s[0] == '\0' || s[strspn(s, "0123456789")] != '\0')
        return XO_EINVAL;
    if (config_parse_int(s, 0, CONFIG_SIM_SR_MS_MAX, &v))
        return XO_EINVAL;
    *r = (int)v;
    return 0;
}

/* One "<sr-uuid>:<api-version>:<attach-ms>:<activate-ms>"; entry is
 * modified. */
static int
config_parse_sim_sr(char *entry, struct config_sim_sr *sr)
{
    char *field[4];
    char *p = entry;

    for (int i = 0; i < 4; i++) {
        field[i] = p;
        p = strchr(p, ':');
        if (i < 3) {
            if (!p)
                return XO_EINVAL;
            *p++ = '\0';
        } else if (p) {
            return XO_EINVAL;
        }
    }
    if (!ids_is_uuid(field[0]) ||
        config_parse_api_version(field[1], sr->api_version,
                                 sizeof(sr->api_version)) ||
        config_parse_ms(field[2], &sr->attach_ms) ||
        config_parse_ms(field[3], &sr->activate_ms))
        return XO_EINVAL;
    memcpy(sr->uuid, field[0], IDS_UUID_LEN + 1);
    return 0;
}

int
config_parse_sim_srs(const char *s, struct config_sim_sr **srs_r,
                     size_t *n_r)
{
    struct config_sim_sr *srs = NULL;
    char *copy = NULL;
    char *entry;
    size_t n = 0;
    int rc = 0;

    if (srs_r)
        *srs_r = NULL;
    if (n_r)
        *n_r = 0;
    if (s[0] == '\0')
        goto out;
    copy = xstrdup(s);
    srs = xcalloc(CONFIG_SIM_SRS_MAX, sizeof(*srs));
    entry = copy;
    for (;;) {
        char *comma = strchr(entry, ',');

        if (comma)
            *comma = '\0';
        if (n == CONFIG_SIM_SRS_MAX || config_parse_sim_sr(entry, &srs[n])) {
            rc = XO_EINVAL;
            goto out;
        }
        /* Two entries for one SR would make its timings ambiguous. */
        for (size_t i = 0; i < n; i++) {
            if (strcasecmp(srs[i].uuid, srs[n].uuid) == 0) {
                rc = XO_EINVAL;
                goto out;
            }
        }
        n++;
        if (!comma)
            break;
        entry = comma + 1;
    }
    if (srs_r) {
        *srs_r = srs;
        srs = NULL;
    }
    if (n_r)
        *n_r = n;
out:
    free(srs);
    free(copy);
    return rc;
}

/*
 * Parse a "rpc-allowed-uids" value into uids (room for CONFIG_RPC_UIDS_MAX
 * entries); *n_r gets the count. An empty string is the empty list.
 * (uid_t)-1 is refused: it means "no uid" to the kernel.
 */
static int
config_parse_uids(const char *s, uid_t *uids, size_t *n_r)
{
    const char *p = s;
    size_t n = 0;
    int64_t v;

    *n_r = 0;
    if (s[0] == '\0')
        return 0;
    for (;;) {
        size_t len;
        char entry[16];

        p += strspn(p, CONFIG_BLANKS);
        len = strspn(p, "0123456789");
        if (len == 0 || len >= sizeof(entry) || n == CONFIG_RPC_UIDS_MAX)
            return XO_EINVAL;
        memcpy(entry, p, len);
        entry[len] = '\0';
        if (config_parse_int(entry, 0, 4294967294LL, &v))
            return XO_EINVAL;
        uids[n++] = (uid_t)v;
        p += len;
        p += strspn(p, CONFIG_BLANKS);
        if (*p == '\0')
            break;
        if (*p++ != ',')
            return XO_EINVAL;
    }
    *n_r = n;
    return 0;
}

int
config_rpc_allowed_uids(const struct config *c, uid_t **uids_r, size_t *n_r)
{
    uid_t *uids = xcalloc(CONFIG_RPC_UIDS_MAX + 1, sizeof(uid_t));
    size_t n = 0;

    *uids_r = NULL;
    *n_r = 0;
    if (c->rpc_allowed_uids &&
        config_parse_uids(c->rpc_allowed_uids, uids + 1, &n)) {
        free(uids);
        return XO_EINVAL;
    }
    uids[0] = 0;
    *uids_r = uids;
    *n_r = n + 1;
    return 0;
}

static const struct config_key *
config_find_key(const char *key)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++)
        if (strcmp(config_keys[i].name, key) == 0)
            return &config_keys[i];
    return NULL;
}

static bool
config_is_ignored_xenopsd_key(const char *key)
{
    size_t n = sizeof(config_xenopsd_ignored) /
               sizeof(config_xenopsd_ignored[0]);

    for (size_t i = 0; i < n; i++)
        if (strcmp(config_xenopsd_ignored[i], key) == 0)
            return true;
    return false;
}

static bool
config_is_abs_path(const char *s)
{
    return s[0] == '/' && !strchr(s, '\n') &&
           strlen(s) < CONFIG_PATH_MAX;
}

/*
 * Validate value for k without touching c. On success a string kind gets
 * its new (owned) text in *str_r (NULL for an empty sim-srs), a number kind
 * its value in *num_r. Returns 0, or XO_EINVAL with the reason in why.
 */
/* "a.b.c.d:port", "name:port" is refused (no resolver in the daemon),
 * "[v6]:port"; port 0..65535 in decimal. */
static bool
config_is_addr(const char *v)
{
    const char *colon, *host_end;
    char *end;
    long port;

    if (v[0] == '[') {
        host_end = strchr(v, ']');
        if (!host_end || host_end[1] != ':' || host_end == v + 1)
            return false;
        for (const char *p = v + 1; p < host_end; p++)
            if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
                return false;
        colon = host_end + 1;
    } else {
        colon = strrchr(v, ':');
        if (!colon || colon == v)
            return false;
        for (const char *p = v; p < colon; p++)
            if (!isdigit((unsigned char)*p) && *p != '.')
                return false;
    }
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    return colon[1] && !*end && !errno && port >= 0 && port <= 65535;
}

static int
config_check(const struct config_key *k, const char *value, char **str_r,
             int64_t *num_r, char *why, size_t why_len)
{
    const char *reason = NULL;
    enum log_level level;
    bool b;

    *str_r = NULL;
    switch (k->kind) {
    case CONFIG_KIND_PATH:
        if (!config_is_abs_path(value))
            reason = "not an absolute path";
        else
            *str_r = xstrdup(value);
        break;
    case CONFIG_KIND_BOOL:
        if (config_parse_bool(value, &b))
            reason = "not 'true' or 'false'";
        else
            *num_r = b;
        break;
    case CONFIG_KIND_INT:
    case CONFIG_KIND_INT64:
        if (config_parse_int(value, k->min, k->max, num_r)) {
            snprintf(why, why_len, "not an integer in %lld..%lld",
                     (long long)k->min, (long long)k->max);
            return XO_EINVAL;
        }
        break;
    case CONFIG_KIND_LOGLEVEL:
        if (log_level_parse(value, &level))
            reason = "not one of error|warn|info|debug";
        else
            *str_r = xstrdup(config_level_names[level]);
        break;
    case CONFIG_KIND_BACKEND:
        if (strcmp(value, "simulator") != 0 &&
            strcmp(value, "xenlight") != 0)
            reason = "not 'simulator' or 'xenlight'";
        else
            *str_r = xstrdup(value);
        break;
    case CONFIG_KIND_SIM_SRS:
        if (config_parse_sim_srs(value, NULL, NULL))
            reason = "not a comma list of "
                     "<sr-uuid>:<api-version>:<attach-ms>:<activate-ms>";
        else
            *str_r = value[0] ? xstrdup(value) : NULL;
        break;
    case CONFIG_KIND_ADDR:
        if (value[0] && !config_is_addr(value))
            reason = "not host:port (IPv4, or [IPv6]:port)";
        else
            *str_r = value[0] ? xstrdup(value) : NULL;
        break;
    case CONFIG_KIND_LOG_TARGET:
        if (strcmp(value, "stderr") != 0 && strcmp(value, "syslog") != 0)
            reason = "not 'stderr' or 'syslog'";
        else
            *str_r = xstrdup(value);
        break;
    case CONFIG_KIND_POLICY:
        if (strcmp(value, "abort") == 0)
            *num_r = 1;
        else if (strcmp(value, "force") == 0)
            *num_r = 0;
        else
            reason = "not 'force' or 'abort'";
        break;
    case CONFIG_KIND_CPUID:
        /* libxl checks the policy itself when the backend starts; here
         * only that it is one word of the characters its syntax uses. */
        if (strlen(value) > 256 ||
            strspn(value, "abcdefghijklmnopqrstuvwxyz"
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_,:=.-") !=
                strlen(value))
            reason = "not a libxl cpuid policy such as 'host,rdtscp=0'";
        else
            *str_r = value[0] ? xstrdup(value) : NULL;
        break;
    case CONFIG_KIND_UIDS: {
        uid_t uids[CONFIG_RPC_UIDS_MAX];
        size_t n;

        if (config_parse_uids(value, uids, &n))
            reason = "not a comma list of at most 64 uids";
        else
            *str_r = value[0] ? xstrdup(value) : NULL;
        break;
    }
    }
    if (reason) {
        snprintf(why, why_len, "%s", reason);
        return XO_EINVAL;
    }
    return 0;
}

int
config_set(struct config *c, const char *key, const char *value,
           const char *where)
{
    char shown_key[CONFIG_SHOWN_MAX + 1];
    char shown_value[CONFIG_SHOWN_MAX + 1];
    const struct config_key *k;
    char why[128];
    char *str = NULL;
    int64_t num = 0;
    char **field;

    where = where ? where : "config";
    config_shown(key, shown_key, sizeof(shown_key));
    k = config_find_key(key);
    if (!k) {
        if (config_is_ignored_xenopsd_key(key))
            LOG(INFO, "%s: ignoring xenopsd key '%s' (not used by xenops-c)",
                where, shown_key);
        else
            LOG(WARN, "%s: ignoring unknown key '%s'", where, shown_key);
        return 1;
    }
    if (config_check(k, value, &str, &num, why, sizeof(why))) {
        config_shown(value, shown_value, sizeof(shown_value));
        LOG(ERROR, "%s: bad value '%s' for key '%s': %s", where, shown_value,
            k->name, why);
        return xo_err_internal_code(XO_EINVAL,
                                    "%s: bad value '%s' for key '%s': %s",
                                    where, shown_value, k->name, why);
    }
    switch (k->kind) {
    case CONFIG_KIND_BOOL:
    case CONFIG_KIND_POLICY:
        *(bool *)((char *)c + k->offset) = num != 0;
        break;
    case CONFIG_KIND_INT:
        *(int *)((char *)c + k->offset) = (int)num;
        break;
    case CONFIG_KIND_INT64:
        *(int64_t *)((char *)c + k->offset) = num;
        break;
    default:
        field = (char **)((char *)c + k->offset);
        free(*field);
        *field = str;
        break;
    }
    return 0;
}

int
config_parse_line(char *line, char **key_r, char **value_r)
{
    char *p;
    char *end;
    char *key;
    char *key_end;
    char *value;
    size_t len;

    *key_r = NULL;
    *value_r = NULL;
    /* xenopsd cuts at the first '#' without looking at quotes. */
    line[strcspn(line, "#")] = '\0';
    p = line + strspn(line, CONFIG_TRIM);
    end = p + strlen(p);
    while (end > p && strchr(CONFIG_TRIM, end[-1]))
        end--;
    *end = '\0';
    if (*p == '\0')
        return 0;

    key = p;
    key_end = key + strcspn(key, CONFIG_BLANKS "=");
    if (key_end == key)
        return XO_EINVAL;
    p = key_end + strspn(key_end, CONFIG_BLANKS);
    if (*p != '=')
        return XO_EINVAL;
    *key_end = '\0';
    value = p + 1;
    value += strspn(value, CONFIG_BLANKS);

    len = strlen(value);
    if (len >= 2 && (value[0] == '"' || value[0] == '\'') &&
        value[len - 1] == value[0]) {
        value[len - 1] = '\0';
        value++;
    }
    *key_r = key;
    *value_r = value;
    return 1;
}

/* Apply every line of text (len bytes, modified in place). shown names the
 * file in messages. */
static int
config_apply_text(struct config *c, const char *shown, char *text,
                  size_t len)
{
    char *where = NULL;
    char *line = text;
    char *stop = text + len;
    unsigned lineno = 0;
    int rc = 0;

    while (line < stop) {
        char *nl = memchr(line, '\n', (size_t)(stop - line));
        char *line_end = nl ? nl : stop;
        char *key;
        char *value;

        lineno++;
        if ((size_t)(line_end - line) > CONFIG_LINE_MAX) {
            LOG(ERROR, "%s:%u: line longer than %d bytes", shown, lineno,
                CONFIG_LINE_MAX);
            rc = XO_EINVAL;
            goto out;
        }
        if (memchr(line, '\0', (size_t)(line_end - line))) {
            LOG(ERROR, "%s:%u: line contains a NUL byte", shown, lineno);
            rc = XO_EINVAL;
            goto out;
        }
        *line_end = '\0';
        rc = config_parse_line(line, &key, &value);
        if (rc < 0) {
            LOG(ERROR, "%s:%u: malformed line (expected 'key = value')",
                shown, lineno);
            goto out;
        }
        if (rc == 1) {
            free(where);
            where = xasprintf("%s:%u", shown, lineno);
            rc = config_set(c, key, value, where);
            if (rc < 0)
                goto out;
        }
        rc = 0;
        line = line_end + 1;
    }
out:
    free(where);
    return rc;
}

/* Read the config file name, NUL-terminated: a path when dfd is
 * AT_FDCWD, else a fragment of the directory, which shown ("<dir>/<name>")
 * names. Either may be a symbolic link to a regular file. */
static int
config_read(int dfd, const char *name, const char *shown, char **buf_r,
            size_t *len_r)
{
    int rc;

    rc = files_read_path(dfd == AT_FDCWD ? name : shown, CONFIG_FILE_MAX,
                         buf_r, len_r);
    if (rc == XO_ENOTFOUND) {
        LOG(ERROR, "cannot open config file '%s': it does not exist", shown);
        rc = XO_EIO;
    }
    return rc;
}

static int
config_load_file(struct config *c, int dfd, const char *name,
                 const char *shown)
{
    char *text = NULL;
    size_t len = 0;
    int rc;

    rc = config_read(dfd, name, shown, &text, &len);
    if (rc)
        goto out;
    rc = config_apply_text(c, shown, text, len);
out:
    free(text);
    return rc;
}

static int
config_strcmp_ptr(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the fragments in d (dot entries excluded), sorted by strcmp. */
static int
config_list_dir(DIR *d, const char *dir, char ***names_r, size_t *n_r)
{
    char **names = NULL;
    struct dirent *e;
    size_t n = 0;
    int rc = 0;

    names = xcalloc(CONFIG_FRAGMENTS_MAX, sizeof(*names));
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (!e)
            break;
        if (e->d_name[0] == '.')
            continue;
        if (n == CONFIG_FRAGMENTS_MAX) {
            LOG(ERROR, "config dir '%s' has more than %d entries", dir,
                CONFIG_FRAGMENTS_MAX);
            rc = XO_EINVAL;
            goto out;
        }
        names[n++] = xstrdup(e->d_name);
    }
    if (errno != 0) {
        LOGE(ERROR, "cannot read config dir '%s'", dir);
        rc = XO_EIO;
        goto out;
    }
    qsort(names, n, sizeof(*names), config_strcmp_ptr);
    *names_r = names;
    *n_r = n;
    names = NULL;
out:
    if (names) {
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
    }
    return rc;
}

static int
config_load_dir(struct config *c, const char *dir)
{
    char **names = NULL;
    char *shown = NULL;
    struct stat st;
    size_t n = 0;
    DIR *d = NULL;
    int rc = 0;
    int r;

    d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            LOG(DEBUG, "config dir '%s' does not exist", dir);
            goto out;
        }
        LOGE(ERROR, "cannot open config dir '%s'", dir);
        rc = XO_EIO;
        goto out;
    }
    rc = config_list_dir(d, dir, &names, &n);
    if (rc)
        goto out;
    for (size_t i = 0; i < n; i++) {
        free(shown);
        shown = xasprintf("%s/%s", dir, names[i]);
        /* stat, not lstat: a symlinked fragment is a normal /etc idiom;
         * a dangling one (ENOENT) is skipped like any non-regular entry. */
        r = fstatat(dirfd(d), names[i], &st, 0);
        if (r < 0 && errno != ENOENT) {
            LOGE(ERROR, "cannot stat config fragment '%s'", shown);
            rc = XO_EIO;
            goto out;
        }
        if (r < 0 || !S_ISREG(st.st_mode)) {
            LOG(INFO, "skipping config fragment '%s': not a regular file",
                shown);
            continue;
        }
        rc = config_load_file(c, dirfd(d), names[i], shown);
        if (rc)
            goto out;
    }
out:
    free(shown);
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (d)
        closedir(d);
    return rc;
}

int
config_load(struct config *c, const char *file, const char *dir)
{
    char *fragments = NULL;
    int rc = 0;

    if (file) {
        rc = config_load_file(c, AT_FDCWD, file, file);
        if (rc)
            goto out;
    }
    /* Copy: a fragment may set config-dir while we iterate. */
    if (dir)
        fragments = xstrdup(dir);
    else if (c->config_dir)
        fragments = xstrdup(c->config_dir);
    if (fragments)
        rc = config_load_dir(c, fragments);
out:
    free(fragments);
    return rc;
}

/* "<file>.d", absolute: xenopsd's "/etc/<name>.conf.d" for /etc/<name>.conf,
 * and a config-dir value must be an absolute path. */
static char *
config_default_dir(const char *file)
{
    char cwd[CONFIG_PATH_MAX];

    if (file[0] == '/')
        return xasprintf("%s.d", file);
    if (!getcwd(cwd, sizeof(cwd))) {
        LOGE(WARN, "no default config dir for '%s': cannot get the current "
             "directory", file);
        return NULL;
    }
    return xasprintf("%s/%s.d", strcmp(cwd, "/") == 0 ? "" : cwd, file);
}

int
config_load_all(struct config *c, const char *file)
{
    char *dir = NULL;
    int rc;

    rc = config_load(c, file, NULL);
    if (rc || c->config_dir || !file)
        return rc;
    dir = config_default_dir(file);
    if (!dir || !config_is_abs_path(dir)) {
        free(dir);
        return 0;
    }
    c->config_dir = dir;
    return config_load(c, NULL, dir);
}

/* The backends built into this binary. */
static const char *const config_backends_built[] = {
    "simulator",
#ifdef HAVE_XEN
    "xenlight",
#endif
};

int
config_validate(const struct config *c)
{
    size_t n = sizeof(config_backends_built) /
               sizeof(*config_backends_built);

    for (size_t i = 0; i < n; i++)
        if (strcmp(c->backend, config_backends_built[i]) == 0)
            return 0;
    LOG(ERROR, "backend '%s' is not built into this binary (available: "
        "%s)", c->backend, n > 1 ? "simulator, xenlight" : "simulator; "
        "configure --with-xen builds xenlight");
    return xo_err_internal_code(XO_EINVAL, "backend '%s' is not built into "
                                "this binary", c->backend);
}

/* Whether value survives a round trip through config_parse_line as is. */
static bool
config_value_on_a_line(const char *v)
{
    size_t n = strlen(v);

    if (n == 0)
        return true;
    if (strpbrk(v, "#\n\r"))
        return false;
    if (strchr(CONFIG_TRIM, v[0]) || strchr(CONFIG_TRIM, v[n - 1]))
        return false;
    return !(n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n - 1] == v[0]);
}

/* Check one pair for config_write_fragment; sets the detail. */
static int
config_check_pair(const struct config_pair *p)
{
    char shown[CONFIG_SHOWN_MAX + 1];
    const struct config_key *k = p->key ? config_find_key(p->key) : NULL;
    char why[128];
    char *str = NULL;
    int64_t num;

    if (!k) {
        config_shown(p->key ? p->key : "", shown, sizeof(shown));
        LOG(ERROR, "cannot persist unknown config key '%s'", shown);
        return xo_err_internal_code(XO_EINVAL, "cannot persist unknown "
                                    "config key '%s'", shown);
    }
    if (!p->value || !config_value_on_a_line(p->value) ||
        config_check(k, p->value, &str, &num, why, sizeof(why))) {
        config_shown(p->value ? p->value : "", shown, sizeof(shown));
        LOG(ERROR, "cannot persist value '%s' for config key '%s'", shown,
            k->name);
        return xo_err_internal_code(XO_EINVAL, "cannot persist value '%s' "
                                    "for config key '%s'", shown, k->name);
    }
    free(str);
    return 0;
}

int
config_write_fragment(const char *dir, const char *name,
                      const char *header, const struct config_pair *pairs,
                      size_t n)
{
    char *text = NULL;
    char *line;
    int rc = 0;

    if (!name || name[0] == '.' || name[0] == '\0' || strchr(name, '/')) {
        LOG(ERROR, "bad config fragment name in '%s'", dir);
        rc = xo_err_internal_code(XO_EINVAL, "bad config fragment name");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rc = config_check_pair(&pairs[i]);
        if (rc)
            goto out;
    }
    text = xstrdup("");
    for (const char *h = header ? header : ""; *h;) {
        size_t len = strcspn(h, "\n");

        line = xasprintf("%s# %.*s\n", text, (int)len, h);
        free(text);
        text = line;
        h += len + (h[len] == '\n');
    }
    for (size_t i = 0; i < n; i++) {
        line = xasprintf("%s%s = %s\n", text, pairs[i].key, pairs[i].value);
        free(text);
        text = line;
    }
    rc = files_mkdirs(dir);
    if (!rc)
        rc = files_write(dir, name, text, strlen(text));
out:
    free(text);
    return rc;
}
