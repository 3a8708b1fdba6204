/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * admin: what a host's administrator changes at run time and reads back:
 * the feature flags, each SR's attach-early policy, and the last
 * migration of each VM. Owns the flag table, the flags' persistence
 * and the table of last migrations. Does not own the flags' effect
 * (server.c fixes server_legacy() for each operation when it is queued,
 * migrate.c likewise) nor the SR records (sm/sr.c).
 *
 * Feature flags: today one, "vbd-plug-unplug-legacy", which is
 * xenopsd.conf's "xenopsd-vbd-plug-unplug-legacy" (either name is
 * accepted). A change is first written to the fragment ADMIN_FLAGS_FRAGMENT
 * in the config dir (config-dir, by default "<config file>.d", see
 * config_load_all) crash-safely, and only then applied: a restart keeps it,
 * a failed write changes nothing, and an operation queued before the
 * change keeps the value it was queued with. With no config dir (started
 * without a config file and without config-dir) a change is refused. Each
 * change is logged with the caller's uid and the old and new values.
 *
 * Threading: a mutex serialises flag changes so that the fragment and the
 * running value agree; reading a flag takes no lock. The migration table
 * has its own mutex.
 */
#ifndef XENOPS_ADMIN_H
#define XENOPS_ADMIN_H

#include <stdbool.h>
#include <sys/types.h>

struct admin;
struct config;
struct sr_registry;
struct task_registry;

/* What admin uses and does not own; everything must outlive it. */
struct admin_deps {
    const struct config *cfg;       /* config_dir: where flags persist */
    struct sr_registry *srs;
    struct task_registry *tasks;
    /* The running value of the legacy flag (the server's), with ctx. */
    void *ctx;
    bool (*get_legacy)(void *ctx);
    void (*set_legacy)(void *ctx, bool value);
};

/* Written in the config dir; "99-" so that it sorts after an admin's own
 * fragments (a later fragment would override it at the next start). */
#define ADMIN_FLAGS_FRAGMENT "99-xenops-c-flags.conf"
/* Migrations remembered (one per VM); the oldest is forgotten beyond. */
#define ADMIN_MIGRATIONS_MAX 1024

/* deps is copied. */
struct admin *admin_new(const struct admin_deps *deps);
/* Drops the task references it holds; NULL is a no-op. */
void admin_free(struct admin *a);

/* HOST.get_features: {"vbd-plug-unplug-legacy": bool, ...}; caller frees. */
char *admin_features_json(struct admin *a);

/*
 * HOST.set_feature: name (short or full key), value "true" | "false".
 * Persists, applies, logs with uid. *json_r (caller frees):
 * {"name", "key", "old", "new", "fragment": path}. XO_EINVAL for a bad
 * name, value or missing config dir, XO_EIO if the fragment cannot be
 * written; nothing changes on error.
 */
int admin_set_feature(struct admin *a, const char *name,
                      const char *value, uid_t uid, char **json_r);

/* SR.set_attach_early: sr_set_attach_early, logged with uid. */
int admin_sr_set_attach_early(struct admin *a, const char *sr,
                              const char *policy, uid_t uid);

/*
 * The extension member of HOST.stat: {"features": {...},
 * "early_attach": bool (not legacy), "attach_early_srs": [uuid...] (SRs
 * whose VBDs attach early now: empty in legacy mode), "srs": [{"uuid",
 * "type", "attach_early_policy", "attach_early"}]}; caller frees.
 */
char *admin_host_json(struct admin *a);

/* Remember task_id as the last migration of vm (a reference to the task
 * is kept, so its result outlives Task.destroy). Unknown task: no-op. */
void admin_note_migration(struct admin *a, const char *vm,
                          const char *task_id);

/* admin_note_migration for migrate_deps.note_migration (ctx = admin). */
void admin_note_migration_cb(void *admin, const char *vm,
                             const char *task_id);

/*
 * VM.migration_stats: the last migration of vm noted here, as
 * {"vm", "task", "dbg", "state": "Pending"|"Completed"|"Failed",
 *  "progress" | "duration" + "result" | "error"}; caller frees.
 * XO_EINVAL for a bad id, XO_ENOTFOUND (Does_not_exist ["migration", vm])
 * when none is known.
 */
int admin_migration_stats(struct admin *a, const char *vm,
                          char **json_r);

#endif
