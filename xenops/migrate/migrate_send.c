/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The sending half of a live migration, as a chain of phases over one
 * struct migrate_send, in the order they run (migrate.h has the
 * protocol):
 *
 *   send_begin            power state, the VM's devices, the URL, marker
 *   send_import           0: the metadata under the receiver's
 *                         temporary id
 *   send_open_vm          1: the VM channel; the receiver runs phase A
 *   send_open_mem         2: the memory channel
 *   send_memory           the backend streams the live domain and pauses
 *                         it at the switch-over (the downtime begins)
 *   send_release          the disks go to the receiver, the VM takes its
 *                         temporary id
 *   send_commit           3: the point of no return; 4: the receiver runs
 *                         the VM (or, on a lost channel, a probe says)
 *   send_cleanup          the source domain goes
 *
 * A failure before the point of no return ends in send_fail, which takes
 * the VM back (name, disks, unpause) when it was touched; past it the VM
 * is taken back only when the receiver surely does not run it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "atoms/expand.h"
#include "config.h"
#include "metadata.h"
#include "migrate/migrate_http.h"
#include "migrate/migrate_priv.h"
#include "queue.h"
#include "task.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

/* How long the sender keeps asking a receiver it lost past the point of
 * no return whether the VM runs there, before it leaves the VM paused. */
#define PROBE_WINDOW_MS 60000

struct migrate_send {
    /* caller fills in (migrate_send_new) */
    struct migrate *m;
    char vm[37];
    char tmp_src[37];
    char tmp_dest[37];
    char *url;
    char *vdi_map;              /* JSON text or NULL */
    char *vif_map;
    bool compress;
    bool legacy;
    struct task *task;
    /* state */
    struct exec_op op;
    struct expand_vm v;         /* the VM's devices */
    bool have_v;
    struct migrate_url u;
    bool have_url;
    char *marker;
    int vm_fd;
    int mem_fd;
    bool deactivated;
    bool renamed;
    bool unknown;               /* outcome unknown: the VM stays paused */
    /* results */
    int64_t t0, t_a, t_b, t_pause, t_end, deact_ns;
    double paused_at;           /* wall clock, to line up with logs */
    struct backend_migrate_stats ms;
    char *rstats;               /* the receiver's stats message */
};

static void
send_free(struct migrate_send *s)
{
    if (s->vm_fd >= 0)
        close(s->vm_fd);
    if (s->mem_fd >= 0)
        close(s->mem_fd);
    if (s->have_url)
        migrate_url_dispose(&s->u);
    if (s->have_v)
        s->m->deps.vm_view_dispose(s->m->deps.ctx, &s->v);
    exec_op_dispose(&s->op);
    task_unref(s->task);
    free(s->rstats);
    free(s->marker);
    free(s->url);
    free(s->vdi_map);
    free(s->vif_map);
    free(s);
}

/* Append token=<ours> to the URL's query unless it names one. */
static void
add_token(struct migrate_send *s)
{
    const char *file = s->m->deps.cfg->migration_token_file;
    char *tok = NULL, *q;

    if (!file || strstr(s->u.query, "token="))
        return;
    if (migrate_token_load(file, &tok)) {
        xo_err_clear();
        return;
    }
    q = xasprintf("%s%stoken=%s", s->u.query, s->u.query[0] ? "&" : "",
                  tok);
    free(s->u.query);
    s->u.query = q;
    free(tok);
}

static int
send_begin(struct migrate_send *s)
{
    struct migrate *m = s->m;
    struct backend *b = m->deps.backend;
    struct backend_vm_state st;
    char *json;
    int rc;

    queue_alias(m->deps.pool_default, s->vm, s->tmp_src);
    rc = b->ops->vm_get_state(b, s->vm, &st);
    if (!rc && st.power != BACKEND_RUNNING && st.power != BACKEND_PAUSED)
        rc = xo_err_bad_power_state(backend_power_name(st.power),
                                    "Running");
    if (!rc) {
        rc = m->deps.vm_view_load(m->deps.ctx, s->vm, &s->v);
        s->have_v = rc == 0;
    }
    if (!rc) {
        rc = migrate_url_parse(s->url, &s->u);
        s->have_url = rc == 0;
    }
    if (rc)
        return rc;
    add_token(s);
    s->marker = xasprintf("send-%s.json", s->vm);
    json = xasprintf("{\"vm\":\"%s\",\"tmp\":\"%s\"}", s->vm, s->tmp_src);
    migrate_journal_put(m, s->marker, json);
    free(json);
    return 0;
}

static char *
import_params(struct migrate_send *s, const char *md)
{
    yajl_gen g = json_gen_new();

    yajl_gen_map_open(g);
    json_gen_str(g, "debug_info");
    json_gen_str(g, task_dbg(s->task));
    json_gen_str(g, "metadata");
    json_gen_str(g, md);
    yajl_gen_map_close(g);
    return json_gen_take(g);
}

/* 0: the metadata under the receiver's temporary id. */
static int
send_import(struct migrate_send *s)
{
    yajl_val vdi = NULL, vif = NULL;
    char *md = NULL, *md2 = NULL, *params = NULL, *res = NULL, *err = NULL;
    int rc = 0;

    if (s->vdi_map)
        rc = json_parse(s->vdi_map, strlen(s->vdi_map), &vdi);
    if (!rc && s->vif_map)
        rc = json_parse(s->vif_map, strlen(s->vif_map), &vif);
    if (!rc)
        rc = metadata_export(s->m->deps.store, s->vm, vdi, vif, &md);
    if (!rc)
        rc = metadata_set_vm_id(md, s->tmp_dest, &md2);
    if (rc)
        goto out;
    params = import_params(s, md2);
    rc = migrate_http_rpc(&s->u, "VM.import_metadata", params,
                          MIGRATE_RPC_TIMEOUT_MS, &res, &err);
    if (!rc && err) {
        LOGVM(ERROR, s->vm, "receiver refused the metadata: %s", err);
        rc = xo_err_set_json(XO_EFAIL, err);
        err = NULL;
    }
out:
    yajl_tree_free(vdi);
    yajl_tree_free(vif);
    free(md);
    free(md2);
    free(params);
    free(res);
    free(err);
    return rc;
}

/* PUT <url>/migrate/<what>/<tmp_dest> on a new connection, with the
 * first n of xenopsd's cookies. */
static int
send_put(struct migrate_send *s, const char *what, size_t n, int *fd_r)
{
    struct migrate_kv ck[5] = {
        { (char *)"instance_id", (char *)s->m->deps.instance_id },
        { (char *)"final_id", s->vm },
        { (char *)"dbg", (char *)"migrate" },
        { (char *)"mem_migration", (char *)"1" },
        { (char *)"compress", (char *)"zstd" },
    };
    char *suffix = xasprintf("/migrate/%s/%s", what, s->tmp_dest);
    int rc;

    rc = migrate_http_connect(&s->u, MIGRATE_RPC_TIMEOUT_MS, fd_r);
    if (!rc)
        rc = migrate_http_put(*fd_r, &s->u, suffix, ck, n,
                              MIGRATE_RPC_TIMEOUT_MS);
    free(suffix);
    return rc;
}

/* A handshake that must be a success: the peer's error becomes ours. */
static int
expect_handshake(int fd)
{
    char *err = NULL;
    int rc = migrate_handshake_recv(fd, MIGRATE_HS_TIMEOUT_MS, &err);

    if (!rc && err)
        rc = xo_err_set_json(XO_EFAIL, err);
    return rc;
}

/* Cancelling the task shuts the VM channel down, which wakes the wait
 * for handshake 1; closing it makes the receiver clean up when its phase
 * A ends. */
static void
wake_on_cancel(void *arg)
{
    struct migrate_send *s = arg;

    shutdown(s->vm_fd, SHUT_RDWR);
}

/* 1: the VM channel; the receiver runs phase A (every early attach: this
 * can take long, so it is the wait a cancel must cut short). */
static int
send_open_vm(struct migrate_send *s)
{
    int rc;

    rc = send_put(s, "vm", s->compress ? 5 : 4, &s->vm_fd);
    if (rc)
        return rc;
    task_on_cancel(s->task, wake_on_cancel, s);
    rc = expect_handshake(s->vm_fd);
    task_on_cancel_remove(s->task, wake_on_cancel, s);
    if (task_is_cancelling(s->task)) {
        xo_err_clear();
        rc = task_check_cancel(s->task);
    }
    if (rc)
        return rc;
    s->t_a = migrate_now_ns();
    return task_check_cancel(s->task);
}

/* 2: "1-mem" on the memory channel, "1-mem ACK" on the VM channel. */
static int
send_open_mem(struct migrate_send *s)
{
    int rc;

    rc = send_put(s, "mem", 3, &s->mem_fd);
    if (!rc)
        rc = expect_handshake(s->mem_fd);
    if (!rc)
        rc = migrate_handshake_send(s->vm_fd, NULL);
    return rc;
}

/* The backend's switch-over: pausing starts the downtime. */
static int
pause_source(void *arg)
{
    struct migrate_send *s = arg;
    struct backend *b = s->m->deps.backend;
    int rc = b->ops->vm_pause(b, s->vm);

    s->t_pause = migrate_now_ns();
    s->paused_at = migrate_wall_now();
    if (!rc)
        LOGVM(INFO, s->vm, "paused for the switch-over");
    return rc;
}

static void
set_debug_u64(struct task *t, const char *key, unsigned long long v)
{
    char num[32];

    snprintf(num, sizeof(num), "%llu", v);
    task_set_debug(t, key, num);
}

static void
on_progress(const struct backend_migrate_progress *p, void *arg)
{
    struct migrate_send *s = arg;
    double done = p->bytes_sent + p->bytes_remaining
                      ? (double)p->bytes_sent /
                            (double)(p->bytes_sent + p->bytes_remaining)
                      : 0;

    /* Memory is most of the work: map it to 10%..90%. */
    task_set_progress(s->task, 0.1 + 0.8 * (done > 1 ? 1 : done));
    /* What Task.stat shows while the memory moves. */
    set_debug_u64(s->task, "migration_round", p->round);
    set_debug_u64(s->task, "migration_bytes_sent", p->bytes_sent);
    set_debug_u64(s->task, "migration_bytes_remaining", p->bytes_remaining);
    set_debug_u64(s->task, "migration_dirty_pages_per_s", p->dirty_rate);
    LOGVM(DEBUG, s->vm, "round %u: %llu bytes left, %llu pages/s dirtied",
          p->round, (unsigned long long)p->bytes_remaining,
          (unsigned long long)p->dirty_rate);
}

static int
send_memory(struct migrate_send *s)
{
    struct backend *b = s->m->deps.backend;
    struct backend_migrate_opts o;
    int rc;

    migrate_stream_opts(s->m, &o, s->compress, s->task);
    o.pause = pause_source;
    o.pause_arg = s;
    o.progress = on_progress;
    o.progress_arg = s;
    rc = b->ops->vm_migrate_send(b, s->vm, s->mem_fd, &o, &s->ms);
    s->t_b = migrate_now_ns();
    return rc;
}

/* Downtime: free the disks for the receiver, take the temporary name. */
static int
send_release(struct migrate_send *s)
{
    int rc;

    s->deact_ns = migrate_now_ns();
    rc = migrate_run(&s->op, expand_migrate_source_deactivate(&s->v));
    s->deact_ns = migrate_now_ns() - s->deact_ns;
    s->deactivated = true;
    if (rc)
        return rc;
    rc = migrate_run(&s->op, expand_migrate_rename(s->vm, s->tmp_src));
    s->renamed = rc == 0;
    return rc;
}

/* After a broken channel past the point of no return: does the VM run on
 * the receiver? 1 yes, 0 surely not, -1 unknown. */
static int
receiver_has_vm(const struct migrate_url *u, const char *vm)
{
    char *params = xasprintf("{\"debug_info\":\"migrate-probe\",\"id\":"
                             "\"%s\"}", vm);
    char *res = NULL, *err = NULL;
    int64_t end = migrate_now_ns() + (int64_t)PROBE_WINDOW_MS * 1000000;
    int verdict = -1;

    /* Until the window closes: a link that comes back within it settles
     * the outcome (and the source's cleanup) without anyone's help. */
    while (verdict < 0 && migrate_now_ns() < end) {
        if (migrate_http_rpc(u, "VM.stat", params, 5000, &res, &err)) {
            xo_err_clear();
            sleep(1);
            continue;
        }
        if (err)
            verdict = strstr(err, "Does_not_exist") ? 0 : -1;
        else
            verdict = strstr(res, "\"Running\"") ? 1 : 0;
        free(res);
        free(err);
        res = err = NULL;
        if (verdict < 0)
            sleep(1);
    }
    free(params);
    return verdict;
}

/* Handshake 4 never came: ask the receiver before deciding. */
static int
send_probe(struct migrate_send *s)
{
    int has;

    xo_err_clear();
    LOGVM(WARN, s->vm, "lost the receiver past the point of no return; "
          "asking it whether the VM runs there");
    has = receiver_has_vm(&s->u, s->vm);
    if (has == 0)
        return xo_err_internal_code(XO_EIO, "receiver lost before running "
                                    "the VM");
    if (has < 0) {
        LOGVM(ERROR, s->vm, "outcome unknown: left paused as '%s'",
              s->tmp_src);
        /* A restart renames it back (the marker stays). */
        s->unknown = true;
        return xo_err_internal("migration outcome unknown: receiver "
                               "unreachable; VM left paused as %s",
                               s->tmp_src);
    }
    return 0;
}

/* 3: the point of no return; 4: the receiver runs the VM (or says why
 * not). */
static int
send_commit(struct migrate_send *s)
{
    char *err = NULL;
    int rc;

    task_set_cancellable(s->task, false);
    if (migrate_handshake_send(s->vm_fd, NULL))
        return xo_err_internal_code(XO_EIO, "receiver went away before the "
                                    "switch-over");
    rc = migrate_handshake_recv(s->vm_fd, MIGRATE_HS_TIMEOUT_MS, &err);
    s->t_end = migrate_now_ns();
    if (!rc && err) {
        LOGVM(ERROR, s->vm, "receiver failed after the switch-over: %s",
              err);
        return xo_err_set_json(XO_EFAIL, err);
    }
    if (rc)
        return send_probe(s);
    if (migrate_handshake_recv(s->vm_fd, 5000, &s->rstats) || !s->rstats)
        xo_err_clear();
    return 0;
}

/* The VM runs on the receiver: the source domain goes. */
static void
send_cleanup(struct migrate_send *s)
{
    struct migrate *m = s->m;
    struct expand_vm src;

    LOGVM(INFO, s->vm, "migrated; downtime %.1f ms",
          migrate_ms_since(s->t_pause, s->t_end));
    if (m->deps.vm_view_load(m->deps.ctx, s->tmp_src, &src) == 0) {
        if (migrate_run(&s->op,
                        expand_migrate_source_cleanup(&src, s->legacy)))
            LOGVM(ERROR, s->tmp_src, "source cleanup failed");
        else
            migrate_forget(m, s->tmp_src);
        m->deps.vm_view_dispose(m->deps.ctx, &src);
    }
    xo_err_clear();
}

static char *
send_result_json(struct migrate_send *s)
{
    yajl_val rs = NULL;
    yajl_gen g = json_gen_new();
    double v;

    if (s->rstats && json_parse(s->rstats, strlen(s->rstats), &rs))
        xo_err_clear();
    yajl_gen_map_open(g);
    json_gen_str(g, "downtime_ms");
    json_gen_fixed(g, migrate_ms_since(s->t_pause, s->t_end), 3);
    json_gen_str(g, "guest_downtime_ms");
    if (json_get_double(rs, "guest_downtime_ms", -1, &v) == 0 && v >= 0)
        json_gen_fixed(g, v, 3);
    else
        json_gen_null(g);
    json_gen_str(g, "paused_at");
    json_gen_fixed(g, s->paused_at, 6);
    json_gen_str(g, "mode");
    json_gen_str(g, s->legacy ? "legacy" : "split");
    json_gen_str(g, "bytes");
    json_gen_int(g, (long long)s->ms.bytes);
    json_gen_str(g, "rounds");
    json_gen_int(g, s->ms.rounds);
    json_gen_str(g, "total_ms");
    json_gen_fixed(g, migrate_ms_since(s->t0, s->t_end), 3);
    json_gen_str(g, "phase_a_ms");
    json_gen_fixed(g, migrate_ms_since(s->t0, s->t_a), 3);
    json_gen_str(g, "phase_b_ms");
    json_gen_fixed(g, migrate_ms_since(s->t_a, s->t_b), 3);
    json_gen_str(g, "final_round_ms");
    json_gen_fixed(g, (double)s->ms.final_ns / 1e6, 3);
    json_gen_str(g, "source_deactivate_ms");
    json_gen_fixed(g, (double)s->deact_ns / 1e6, 3);
    json_gen_str(g, "receiver");
    if (rs)
        json_gen_tree(g, rs);
    else
        json_gen_null(g);
    yajl_gen_map_close(g);
    yajl_tree_free(rs);
    return json_gen_take(g);
}

static void
send_done(struct migrate_send *s)
{
    char *res;

    send_cleanup(s);
    exec_commit(&s->op);
    migrate_journal_drop(s->m, s->marker);
    res = send_result_json(s);
    task_complete(s->task, res);
    free(res);
}

/*
 * Take the VM back on the source: its name (if it was renamed), its
 * disks, and unpause it. Each step is tried even if one before failed.
 */
static void
send_resume(struct migrate_send *s)
{
    if (s->renamed &&
        migrate_run(&s->op, expand_migrate_rename(s->tmp_src, s->vm)))
        LOGVM(ERROR, s->vm, "cannot rename '%s' back", s->tmp_src);
    if (s->deactivated &&
        migrate_run(&s->op, expand_migrate_source_reactivate(&s->v)))
        LOGVM(ERROR, s->vm, "cannot reactivate its disks");
    if (migrate_run(&s->op, expand_migrate_unpause_source(s->vm)))
        LOGVM(ERROR, s->vm, "cannot unpause after a failed migration");
    xo_err_clear();
    LOGVM(INFO, s->vm, "migration failed; running on the source again");
}

static void
send_fail(struct migrate_send *s, int rc)
{
    struct xo_err_saved saved;

    xo_err_preserve(rc, &saved);
    /* Before the memory phase nothing of ours needs undoing: the receiver
     * cleans up its side when its channels close. */
    if (!s->unknown && (s->ms.paused || s->deactivated || s->renamed))
        send_resume(s);
    exec_rollback(&s->op);
    if (s->marker && !s->unknown)
        migrate_journal_drop(s->m, s->marker);
    rc = xo_err_restore(&saved);
    LOGVM(DEBUG, s->vm, "migration failed: %s", xo_strerror(rc));
    task_fail(s->task, xo_err_take_json(rc));
}

void
migrate_send_run(void *arg)
{
    struct migrate_send *s = arg;
    int rc;

    s->t0 = migrate_now_ns();
    migrate_op_init(s->m, &s->op, s->task, s->legacy);
    rc = send_begin(s);
    if (!rc)
        rc = send_import(s);
    if (!rc)
        rc = send_open_vm(s);
    if (!rc)
        rc = send_open_mem(s);
    if (!rc)
        rc = send_memory(s);
    if (!rc)
        rc = send_release(s);
    if (!rc)
        rc = send_commit(s);
    if (!rc)
        send_done(s);
    else
        send_fail(s, rc);
    send_free(s);
}

int
migrate_send_new(struct migrate *m, const char *dbg,
                 const struct migrate_send_args *a,
                 struct migrate_send **s_r)
{
    struct migrate_send *s;
    struct migrate_url u;
    int rc;

    rc = ids_check_vm(a->vm);
    if (rc)
        return rc;
    if (!a->url)
        return xo_err_internal_code(XO_EINVAL, "xenops_url is required");
    rc = migrate_url_parse(a->url, &u);
    if (rc)
        return rc;
    migrate_url_dispose(&u);
    if (!vmextra_exists(m->deps.store, a->vm))
        return xo_err_does_not_exist("VM", a->vm);
    s = xcalloc(1, sizeof(*s));
    s->m = m;
    s->vm_fd = -1;
    s->mem_fd = -1;
    xstrlcpy(s->vm, a->vm, sizeof(s->vm));
    ids_tmp_id(a->vm, '0', s->tmp_src);
    ids_tmp_id(a->vm, '1', s->tmp_dest);
    s->url = xstrdup(a->url);
    s->vdi_map = a->vdi_map ? json_tree_to_string(a->vdi_map) : NULL;
    s->vif_map = a->vif_map ? json_tree_to_string(a->vif_map) : NULL;
    s->compress = a->compress;
    s->legacy = m->deps.legacy(m->deps.ctx);
    s->task = task_create(m->deps.tasks, dbg ? dbg : "");
    *s_r = s;
    return 0;
}

const char *
migrate_send_task_id(const struct migrate_send *s)
{
    return task_id(s->task);
}
