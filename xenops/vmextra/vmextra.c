/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * vmextra: one JSON document per VM, written crash-safely.
 *
 * Design notes
 *
 * Locking. A store has one mutex for its threads; on disk, every call also
 * holds flock(LOCK_EX) on the directory, so two stores (or two processes)
 * on one directory see each other's writes: a commit re-reads the stored
 * generation under both locks, never from a cache. Recovery removes temp
 * files under the same lock, so it cannot delete another writer's
 * half-written temp file.
 *
 * Writing <dir>/<id>.json:
 *   open .<id>.json.tmp (0600), write, fsync, close  -> "commit:temp-written"
 *   rename over <id>.json                             -> "commit:renamed"
 *   fsync the directory
 * A crash before the rename leaves the old file and a temp file, which the
 * next open removes; after it, the new file.
 *
 * Rename a -> b, worked example (generation g on a):
 *   "rename:begin"        only a.json (g)
 *   write b.json {rename_from: a, generation g+1}  -> "rename:new-written"
 *   unlink a.json, fsync dir                       -> "rename:old-removed"
 *   rewrite b.json without rename_from (g+1)       -> "rename:done"
 * Recovery finds b.json carrying rename_from=a: it unlinks a.json if still
 * there and rewrites b.json without the marker. Each step is idempotent, so
 * a crash during recovery is repaired by the next recovery.
 *
 * In memory (persist=false) the same code runs over an array of document
 * texts instead of files, so both modes share every rule.
 *
 * The document itself (records, JSON, the older-format migration) lives in
 * vmextra_doc.c; this file stores and moves its texts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/errors.h"
#include "util/files.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"
#include "vmextra/vmextra_priv.h"

/* "<uuid>.json" and ".<uuid>.json.tmp" with room to spare. */
#define VMEXTRA_NAME_MAX 64

struct vmextra_mem_doc {
    char id[IDS_UUID_LEN + 1];
    char *text;
};

struct vmextra_store {
    pthread_mutex_t lock;
    bool persist;
    char *dir;
    int dirfd;
    struct vmextra_mem_doc *mem;
    size_t n_mem;
    vmextra_crash_hook hook;
    void *hook_opaque;
};

/* ---- small helpers ---- */

static int
crash_point(struct vmextra_store *s, const char *point)
{
    if (s->hook && s->hook(s->hook_opaque, point)) {
        LOG(INFO, "vmextra crash injected at '%s'", point);
        return XO_EINJECTED;
    }
    return 0;
}

static void
doc_name(const char *id, char *buf)
{
    snprintf(buf, VMEXTRA_NAME_MAX, "%s.json", id);
}

/* The id of a "<uuid>.json" entry name, or false. */
static bool
name_to_id(const char *name, char *id)
{
    if (strlen(name) != IDS_UUID_LEN + 5 ||
        strcmp(name + IDS_UUID_LEN, ".json") != 0)
        return false;
    memcpy(id, name, IDS_UUID_LEN);
    id[IDS_UUID_LEN] = '\0';
    return ids_is_uuid(id);
}

static bool
is_tmp_name(const char *name)
{
    size_t n = strlen(name);

    return name[0] == '.' && n > 4 && strcmp(name + n - 4, ".tmp") == 0;
}

static char *
where_of(struct vmextra_store *s, const char *id)
{
    if (s->persist)
        return xasprintf("%s/%s.json", s->dir, id);
    return xasprintf("memory:%s", id);
}

static int
cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Log a failed syscall on <dir>/<name> (errno set); returns XO_EIO. */
static int
io_fail(const char *dir, const char *verb, const char *name)
{
    const char *sep = name ? "/" : "";

    name = name ? name : "";
    LOGE(ERROR, "cannot %s '%s%s%s'", verb, dir, sep, name);
    return xo_err_internal_code(XO_EIO, "cannot %s '%s%s%s'", verb, dir, sep,
                                name);
}

static int
store_lock(struct vmextra_store *s)
{
    int r;

    pthread_mutex_lock(&s->lock);
    if (!s->persist)
        return 0;
    do {
        r = flock(s->dirfd, LOCK_EX);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        pthread_mutex_unlock(&s->lock);
        return io_fail(s->dir, "lock", NULL);
    }
    return 0;
}

static void
store_unlock(struct vmextra_store *s)
{
    if (s->persist)
        flock(s->dirfd, LOCK_UN);
    pthread_mutex_unlock(&s->lock);
}

static int
dir_fsync(struct vmextra_store *s)
{
    return fsync(s->dirfd) < 0 ? io_fail(s->dir, "fsync", NULL) : 0;
}

/* ---- the two backends: files in a directory, or texts in memory ---- */

static struct vmextra_mem_doc *
mem_find(struct vmextra_store *s, const char *id)
{
    for (size_t i = 0; i < s->n_mem; i++)
        if (strcmp(s->mem[i].id, id) == 0)
            return &s->mem[i];
    return NULL;
}

static int
file_read(struct vmextra_store *s, const char *id, char **text_r,
          size_t *len_r)
{
    char name[VMEXTRA_NAME_MAX];

    doc_name(id, name);
    return files_read_at(s->dirfd, s->dir, name, VMEXTRA_MAX_DOC_BYTES,
                         text_r, len_r);
}

/* 0, or XO_ENOTFOUND without detail or log line (the caller decides). */
static int
doc_read(struct vmextra_store *s, const char *id, char **text_r,
         size_t *len_r)
{
    struct vmextra_mem_doc *m;

    if (s->persist)
        return file_read(s, id, text_r, len_r);
    m = mem_find(s, id);
    if (!m)
        return XO_ENOTFOUND;
    *text_r = xstrdup(m->text);
    *len_r = strlen(m->text);
    return 0;
}

/* The writer's crash points are the store's "commit:" ones. */
static int
commit_point(void *opaque, const char *point)
{
    char name[32];

    snprintf(name, sizeof(name), "commit:%s", point);
    return crash_point(opaque, name);
}

static int
file_write(struct vmextra_store *s, const char *id, const char *text)
{
    struct files_hooks hooks = { commit_point, s };
    char name[VMEXTRA_NAME_MAX];

    doc_name(id, name);
    return files_write_at(s->dirfd, s->dir, name, text, strlen(text),
                          &hooks);
}

static int
doc_write(struct vmextra_store *s, const char *id, const char *text)
{
    struct vmextra_mem_doc *m;
    int rc;

    if (s->persist)
        return file_write(s, id, text);
    rc = crash_point(s, "commit:temp-written");
    if (rc)
        return rc;
    m = mem_find(s, id);
    if (!m) {
        s->mem = xrealloc(s->mem, (s->n_mem + 1) * sizeof(*s->mem));
        m = &s->mem[s->n_mem++];
        xstrlcpy(m->id, id, sizeof(m->id));
        m->text = NULL;
    }
    free(m->text);
    m->text = xstrdup(text);
    return crash_point(s, "commit:renamed");
}

/* 0, or XO_ENOTFOUND without detail or log line. */
static int
doc_unlink(struct vmextra_store *s, const char *id)
{
    char name[VMEXTRA_NAME_MAX];
    struct vmextra_mem_doc *m;

    if (!s->persist) {
        m = mem_find(s, id);
        if (!m)
            return XO_ENOTFOUND;
        free(m->text);
        *m = s->mem[--s->n_mem];
        return 0;
    }
    doc_name(id, name);
    return files_remove_at(s->dirfd, s->dir, name);
}

static bool
doc_exists(struct vmextra_store *s, const char *id)
{
    char name[VMEXTRA_NAME_MAX];
    struct stat st;

    if (!s->persist)
        return mem_find(s, id) != NULL;
    doc_name(id, name);
    return fstatat(s->dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Every entry name in the store (documents, temp files, anything else). */
static int
doc_names(struct vmextra_store *s, char ***names_r, size_t *n_r)
{
    char **names = NULL;
    size_t n = 0;
    struct dirent *de;
    DIR *d = NULL;
    int fd = -1;
    int rc;

    if (!s->persist) {
        names = xcalloc(s->n_mem + 1, sizeof(*names));
        for (n = 0; n < s->n_mem; n++)
            names[n] = xasprintf("%s.json", s->mem[n].id);
        rc = 0;
        goto done;
    }
    /* A fresh descriptor: the store's own must keep its lock and offset. */
    fd = openat(s->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        rc = io_fail(s->dir, "read", NULL);
        goto out;
    }
    fd = -1;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        names = xrealloc(names, (n + 1) * sizeof(*names));
        names[n++] = xstrdup(de->d_name);
    }
    rc = 0;
done:
    *names_r = names;
    *n_r = n;
    names = NULL;
    n = 0;
out:
    vmextra_list_free(names, n);
    if (d)
        closedir(d);
    if (fd >= 0)
        close(fd);
    return rc;
}


/* ---- operations, called with the store locked ---- */

static int
load_locked(struct vmextra_store *s, const char *id,
            struct vmextra_doc **doc_r, char **rename_from_r)
{
    char *text = NULL, *where = NULL;
    size_t len = 0;
    int rc;

    *doc_r = NULL;
    rc = doc_read(s, id, &text, &len);
    if (rc == XO_ENOTFOUND)
        rc = xo_err_does_not_exist("VM", id);
    if (rc)
        goto out;
    where = where_of(s, id);
    rc = vmextra_doc_decode(where, id, text, len, doc_r,
                            rename_from_r);
out:
    free(where);
    free(text);
    return rc;
}

/*
 * Rewrite the "id" member of a record: the whole value for a Vm.t, the
 * first element of the [vm, dev] pair for a Vbd.t or Vif.t.
 */
static int
rewrite_id(char **json, const char *new_id, bool pair)
{
    yajl_val v = NULL, val;
    yajl_gen g = NULL;
    int rc;

    if (!*json)
        return 0;
    rc = json_parse(*json, strlen(*json), &v);
    if (rc)
        goto out;
    g = json_gen_new();
    yajl_gen_map_open(g);
    for (size_t i = 0; YAJL_IS_OBJECT(v) && i < v->u.object.len; i++) {
        val = v->u.object.values[i];
        json_gen_str(g, v->u.object.keys[i]);
        if (strcasecmp(v->u.object.keys[i], "id") != 0) {
            json_gen_tree(g, val);
        } else if (!pair) {
            json_gen_str(g, new_id);
        } else if (json_array_len(val) >= 1 &&
                   YAJL_IS_STRING(json_array_at(val, 0))) {
            yajl_gen_array_open(g);
            json_gen_str(g, new_id);
            for (size_t j = 1; j < json_array_len(val); j++)
                json_gen_tree(g, json_array_at(val, j));
            yajl_gen_array_close(g);
        } else {
            json_gen_tree(g, val);
        }
    }
    yajl_gen_map_close(g);
    free(*json);
    *json = json_gen_take(g);
    g = NULL;
out:
    if (g)
        yajl_gen_free(g);
    yajl_tree_free(v);
    return rc;
}

static int
rename_locked(struct vmextra_store *s, const char *old_id,
              const char *new_id)
{
    struct vmextra_doc *doc = NULL;
    char *text = NULL;
    int rc;

    rc = load_locked(s, old_id, &doc, NULL);
    if (rc)
        goto out;
    if (doc_exists(s, new_id)) {
        LOG(WARN, "cannot rename vm '%s' to '%s': target exists", old_id,
            new_id);
        rc = xo_err_already_exists("VM", new_id);
        goto out;
    }
    xstrlcpy(doc->id, new_id, sizeof(doc->id));
    rc = rewrite_id(&doc->vm_json, new_id, false);
    for (size_t i = 0; i < doc->n_vbds && !rc; i++)
        rc = rewrite_id(&doc->vbds[i].json, new_id, true);
    for (size_t i = 0; i < doc->n_vifs && !rc; i++)
        rc = rewrite_id(&doc->vifs[i].json, new_id, true);
    if (rc)
        goto out;
    doc->generation++;
    rc = vmextra_doc_encode(doc, doc->generation, old_id, &text);
    if (!rc)
        rc = crash_point(s, "rename:begin");
    if (!rc)
        rc = doc_write(s, new_id, text);
    if (!rc)
        rc = crash_point(s, "rename:new-written");
    if (rc)
        goto out;
    rc = doc_unlink(s, old_id);
    if (rc == XO_ENOTFOUND)
        rc = 0;
    if (!rc)
        rc = crash_point(s, "rename:old-removed");
    if (rc)
        goto out;
    free(text);
    text = NULL;
    rc = vmextra_doc_encode(doc, doc->generation, NULL, &text);
    if (!rc)
        rc = doc_write(s, new_id, text);
    if (!rc)
        rc = crash_point(s, "rename:done");
    if (!rc)
        LOG(INFO, "renamed vm '%s' to '%s'", old_id, new_id);
out:
    free(text);
    vmextra_doc_free(doc);
    return rc;
}

/* Finish an interrupted rename into id, if its document says there was
 * one: the old document goes, then the marker. */
static int
recover_rename(struct vmextra_store *s, const char *id)
{
    struct vmextra_doc *doc = NULL;
    char *from = NULL, *text = NULL;
    int rc;

    if (load_locked(s, id, &doc, &from)) {
        /* Unreadable documents stay for an operator; load reports them. */
        xo_err_clear();
        rc = 0;
        goto out;
    }
    rc = 0;
    if (!from)
        goto out;
    LOGVM(WARN, id, "completing interrupted rename from '%s'", from);
    rc = doc_unlink(s, from);
    if (rc == XO_ENOTFOUND)
        rc = 0;
    if (!rc)
        rc = crash_point(s, "recover:old-removed");
    if (!rc)
        rc = vmextra_doc_encode(doc, doc->generation, NULL, &text);
    if (!rc)
        rc = doc_write(s, id, text);
out:
    free(text);
    free(from);
    vmextra_doc_free(doc);
    return rc;
}

static int
recover_locked(struct vmextra_store *s)
{
    char **names = NULL;
    size_t n = 0;
    char id[IDS_UUID_LEN + 1];
    bool removed = false;
    int rc;

    rc = doc_names(s, &names, &n);
    if (rc)
        goto out;
    for (size_t i = 0; i < n && s->persist; i++) {
        if (!is_tmp_name(names[i]))
            continue;
        LOG(INFO, "removing stale temp file '%s/%s'", s->dir, names[i]);
        if (unlinkat(s->dirfd, names[i], 0) < 0 && errno != ENOENT) {
            rc = io_fail(s->dir, "remove", names[i]);
            goto out;
        }
        removed = true;
    }
    if (removed)
        rc = dir_fsync(s);
    if (!rc)
        rc = crash_point(s, "recover:tmp-removed");
    for (size_t i = 0; i < n && !rc; i++)
        if (name_to_id(names[i], id))
            rc = recover_rename(s, id);
out:
    vmextra_list_free(names, n);
    return rc;
}

/* ---- the public API ---- */

int
vmextra_store_open(const char *dir, bool persist,
                   struct vmextra_store **store_r)
{
    struct vmextra_store *s = NULL;
    int rc;

    *store_r = NULL;
    s = xcalloc(1, sizeof(*s));
    pthread_mutex_init(&s->lock, NULL);
    s->persist = persist;
    s->dirfd = -1;
    s->dir = xstrdup(dir ? dir : "");
    if (persist) {
        if (!dir || !dir[0]) {
            LOG(ERROR, "vmextra needs a directory when persist is on");
            rc = xo_err_internal_code(XO_EINVAL, "no vmextra directory");
            goto out;
        }
        rc = files_mkdirs(dir);
        if (rc)
            goto out;
        s->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (s->dirfd < 0) {
            rc = io_fail(dir, "open", NULL);
            goto out;
        }
    }
    rc = vmextra_recover(s);
    if (rc)
        goto out;
    *store_r = s;
    s = NULL;
out:
    vmextra_store_close(s);
    return rc;
}

void
vmextra_store_close(struct vmextra_store *store)
{
    if (!store)
        return;
    if (store->dirfd >= 0)
        close(store->dirfd);
    for (size_t i = 0; i < store->n_mem; i++)
        free(store->mem[i].text);
    free(store->mem);
    free(store->dir);
    pthread_mutex_destroy(&store->lock);
    free(store);
}

int
vmextra_recover(struct vmextra_store *store)
{
    int rc = store_lock(store);

    if (rc)
        return rc;
    rc = recover_locked(store);
    store_unlock(store);
    return rc;
}

void
vmextra_set_crash_hook(struct vmextra_store *store, vmextra_crash_hook hook,
                       void *opaque)
{
    pthread_mutex_lock(&store->lock);
    store->hook = hook;
    store->hook_opaque = opaque;
    pthread_mutex_unlock(&store->lock);
}

int
vmextra_load(struct vmextra_store *store, const char *id,
             struct vmextra_doc **doc_r)
{
    int rc;

    *doc_r = NULL;
    rc = ids_check_vm(id);
    if (!rc)
        rc = store_lock(store);
    if (rc)
        return rc;
    rc = load_locked(store, id, doc_r, NULL);
    store_unlock(store);
    return rc;
}

bool
vmextra_exists(struct vmextra_store *store, const char *id)
{
    bool ok;

    if (!ids_is_uuid(id) || store_lock(store))
        return false;
    ok = doc_exists(store, id);
    store_unlock(store);
    return ok;
}

static int
commit_locked(struct vmextra_store *s, struct vmextra_doc *doc)
{
    struct vmextra_doc *cur = NULL;
    uint64_t generation = 1;
    char *text = NULL;
    int rc;

    if (doc->generation == 0 && doc_exists(s, doc->id)) {
        LOGVM(WARN, doc->id, "cannot create vmextra: it already exists");
        rc = xo_err_already_exists("VM", doc->id);
        goto out;
    }
    if (doc->generation != 0) {
        rc = load_locked(s, doc->id, &cur, NULL);
        if (rc)
            goto out;
        if (cur->generation != doc->generation) {
            /* DEBUG: writers that race (Parallel siblings) reload and
             * retry; a caller that gives up logs it. */
            LOGVM(DEBUG, doc->id, "stale vmextra commit: generation %llu, "
                  "stored %llu", (unsigned long long)doc->generation,
                  (unsigned long long)cur->generation);
            rc = xo_err_internal_code(XO_ECONFLICT, "vmextra for '%s' "
                                      "changed: stored generation %llu, "
                                      "commit from %llu", doc->id,
                                      (unsigned long long)cur->generation,
                                      (unsigned long long)doc->generation);
            goto out;
        }
        generation = cur->generation + 1;
    }
    rc = vmextra_doc_encode(doc, generation, NULL, &text);
    if (!rc)
        rc = doc_write(s, doc->id, text);
    if (!rc)
        doc->generation = generation;
out:
    free(text);
    vmextra_doc_free(cur);
    return rc;
}

int
vmextra_commit(struct vmextra_store *store, struct vmextra_doc *doc)
{
    int rc;

    if (!doc)
        return xo_err_internal_code(XO_EINVAL, "no vmextra document");
    rc = vmextra_doc_validate(doc);
    if (!rc)
        rc = store_lock(store);
    if (rc)
        return rc;
    rc = commit_locked(store, doc);
    store_unlock(store);
    return rc;
}

int
vmextra_remove(struct vmextra_store *store, const char *id)
{
    int rc;

    rc = ids_check_vm(id);
    if (!rc)
        rc = store_lock(store);
    if (rc)
        return rc;
    rc = doc_unlink(store, id);
    if (rc == XO_ENOTFOUND)
        rc = xo_err_does_not_exist("VM", id);
    store_unlock(store);
    return rc;
}

int
vmextra_rename(struct vmextra_store *store, const char *old_id,
               const char *new_id)
{
    int rc;

    rc = ids_check_vm(old_id);
    if (!rc)
        rc = ids_check_vm(new_id);
    if (rc)
        return rc;
    if (strcmp(old_id, new_id) == 0) {
        LOG(WARN, "cannot rename vm '%s' to itself", old_id);
        return xo_err_internal_code(XO_EINVAL, "cannot rename '%s' to "
                                    "itself", old_id);
    }
    rc = store_lock(store);
    if (rc)
        return rc;
    rc = rename_locked(store, old_id, new_id);
    store_unlock(store);
    return rc;
}

int
vmextra_list(struct vmextra_store *store, char ***ids_r, size_t *n_r)
{
    struct vmextra_doc *doc = NULL;
    char **names = NULL, **ids = NULL;
    char id[IDS_UUID_LEN + 1];
    size_t n_names = 0, n = 0;
    int rc;

    *ids_r = NULL;
    *n_r = 0;
    rc = store_lock(store);
    if (rc)
        return rc;
    rc = doc_names(store, &names, &n_names);
    if (rc)
        goto out;
    ids = xcalloc(n_names + 1, sizeof(*ids));
    for (size_t i = 0; i < n_names; i++) {
        if (!name_to_id(names[i], id))
            continue;
        if (load_locked(store, id, &doc, NULL)) {
            LOGVM(WARN, id, "skipping unreadable vmextra document '%s'",
                  names[i]);
            xo_err_clear();
            continue;
        }
        vmextra_doc_free(doc);
        doc = NULL;
        ids[n++] = xstrdup(id);
    }
    qsort(ids, n, sizeof(*ids), cmp_str);
    *ids_r = ids;
    *n_r = n;
    ids = NULL;
out:
    store_unlock(store);
    vmextra_list_free(ids, n);
    vmextra_list_free(names, n_names);
    return rc;
}

void
vmextra_list_free(char **ids, size_t n)
{
    if (!ids)
        return;
    for (size_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
}

/* Load id's document, or a new one when allowed. */
static int
update_load(struct vmextra_store *store, const char *id, unsigned flags,
            struct vmextra_doc **doc_r)
{
    int rc = vmextra_load(store, id, doc_r);

    if (rc == XO_ENOTFOUND && (flags & VMEXTRA_UPDATE_CREATE)) {
        xo_err_clear();
        rc = vmextra_doc_new(id, doc_r);
    }
    return rc;
}

int
vmextra_update(struct vmextra_store *store, const char *id, unsigned flags,
               vmextra_update_fn fn, void *arg)
{
    struct vmextra_doc *doc = NULL;
    int rc = XO_ECONFLICT;

    for (int i = 0; i < VMEXTRA_UPDATE_RETRIES &&
                    (rc == XO_ECONFLICT || rc == XO_EEXISTS); i++) {
        vmextra_doc_free(doc);
        doc = NULL;
        xo_err_clear();
        rc = update_load(store, id, flags, &doc);
        if (rc)
            goto out;
        rc = fn(doc, arg);
        if (rc == 1) {
            rc = 0;
            goto out;
        }
        if (rc)
            goto out;
        rc = vmextra_commit(store, doc);
        /* Only a creation can lose to a racing creation. */
        if (rc == XO_EEXISTS && !(flags & VMEXTRA_UPDATE_CREATE))
            goto out;
    }
    if (rc == XO_ECONFLICT || rc == XO_EEXISTS) {
        LOGVM(ERROR, id, "document update kept conflicting; giving up");
        rc = xo_err_internal_code(XO_ECONFLICT, "update of '%s' kept "
                                  "conflicting", id);
    }
out:
    vmextra_doc_free(doc);
    return rc;
}
