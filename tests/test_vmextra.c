/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests for vmextra: round trips, generations, id validation, crash safety
 * of commit and rename (a crash injected at every point, then recovery,
 * itself crashed at every point), format migration and refusal, two stores
 * on one directory, threads, the in-memory mode and listing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"
#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"

#define ID_A "11111111-2222-3333-4444-555555555555"
#define ID_B "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
#define ID_C "01234567-89ab-cdef-0123-456789abcdef"

struct fx {
    char root[64];
    char dir[96];
};

/* ---- helpers ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    return remove(path);
}

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof(*fx));

    strcpy(fx->root, "/tmp/test_vmextra-XXXXXX");
    if (!mkdtemp(fx->root))
        return -1;
    snprintf(fx->dir, sizeof(fx->dir), "%s/store", fx->root);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    nftw(fx->root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(fx);
    return 0;
}

static char *
path_in(const char *dir, const char *name)
{
    return xasprintf("%s/%s", dir, name);
}

static char *
doc_path(const struct fx *fx, const char *id)
{
    return xasprintf("%s/%s.json", fx->dir, id);
}

/* Whole file as a NUL-terminated string, or NULL if it cannot be read. */
static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;

    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = xmalloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void
spit(const char *path, const char *text)
{
    FILE *f = fopen(path, "wb");

    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

static bool
exists_path(const char *path)
{
    struct stat st;

    return lstat(path, &st) == 0;
}

static int
count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d)
        return -1;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static int
count_tmp_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    size_t len;
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d)) != NULL) {
        len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".tmp") == 0)
            n++;
    }
    closedir(d);
    return n;
}

static char *
data_file(const char *name)
{
    const char *top = getenv("top_srcdir");
    char *path = xasprintf("%s/tests/data/vmextra/%s", top ? top : ".",
                           name);
    char *text = slurp(path);

    if (!text)
        fail_msg("cannot read test data '%s' (set top_srcdir)", path);
    free(path);
    return text;
}

static void
install_data(const struct fx *fx, const char *name, const char *id)
{
    char *text = data_file(name);
    char *path = doc_path(fx, id);

    mkdir(fx->dir, 0700);
    spit(path, text);
    free(path);
    free(text);
}

static void
assert_json_eq(const char *a, const char *b)
{
    if (!a || !b) {
        assert_ptr_equal(a, b);
        return;
    }
    assert_true(testutil_json_same(a, b));
}

static void
set_attached(struct vmextra_doc *doc, const char *dev, const char *dp,
             int domid, const char *info)
{
    struct vmextra_attached a = { .dp = (char *)dp, .domid = domid,
                                  .attach_info = (char *)info };

    strcpy(a.dev, dev);
    vmextra_doc_set_attached(doc, &a);
}

#define INFO_A "{\"implementations\":[[\"XenDisk\",{\"params\":\"vdi-1\"," \
    "\"extra\":{},\"backend_type\":\"vbd3\"}]]}"
#define INFO_B "{\"implementations\":[[\"BlockDevice\"," \
    "{\"path\":\"/dev/sm/backend/sr/vdi-2\"}]]}"

/* The document of tests/data/vmextra/current.json, built through the API;
 * every record carries id so that a rename has something to rewrite. */
static struct vmextra_doc *
full_doc(const char *id)
{
    struct vmextra_doc *doc;
    char *s;

    assert_int_equal(vmextra_doc_new(id, &doc), 0);
    s = xasprintf("{\"id\":\"%s\",\"name\":\"vm1\","
                  "\"memory_static_max\":1073741824,\"vcpus\":2}", id);
    vmextra_doc_set_vm(doc, s);
    free(s);
    s = xasprintf("{\"id\":[\"%s\",\"xvda\"],\"mode\":\"ReadWrite\","
                  "\"unpluggable\":true}", id);
    vmextra_doc_set_vbd(doc, "xvda", s);
    free(s);
    s = xasprintf("{\"id\":[\"%s\",\"xvdb\"],\"mode\":\"ReadOnly\","
                  "\"unpluggable\":false}", id);
    vmextra_doc_set_vbd(doc, "xvdb", s);
    free(s);
    s = xasprintf("{\"id\":[\"%s\",\"0\"],\"mac\":\"00:16:3e:00:00:01\","
                  "\"mtu\":1500}", id);
    vmextra_doc_set_vif(doc, "0", s);
    free(s);
    set_attached(doc, "xvda", "vbd/5/xvda", 0, INFO_A);
    doc->last_start_time = 1700000000.25;
    return doc;
}

static void
assert_recs_eq(const struct vmextra_rec *a, size_t na,
               const struct vmextra_rec *b, size_t nb)
{
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        size_t j = 0;

        while (j < nb && strcmp(a[i].dev, b[j].dev) != 0)
            j++;
        assert_true(j < nb);
        assert_json_eq(a[i].json, b[j].json);
    }
}

/* Same content (the generation is compared by the callers). */
static void
assert_doc_eq(const struct vmextra_doc *a, const struct vmextra_doc *b)
{
    const struct vmextra_attached *x, *y;

    assert_string_equal(a->id, b->id);
    assert_json_eq(a->vm_json, b->vm_json);
    assert_recs_eq(a->vbds, a->n_vbds, b->vbds, b->n_vbds);
    assert_recs_eq(a->vifs, a->n_vifs, b->vifs, b->n_vifs);
    assert_int_equal(a->n_attached, b->n_attached);
    for (size_t i = 0; i < a->n_attached; i++) {
        x = &a->attached[i];
        y = vmextra_doc_attached(b, x->dev);
        assert_non_null(y);
        assert_string_equal(x->dp, y->dp);
        assert_int_equal(x->domid, y->domid);
        assert_json_eq(x->attach_info, y->attach_info);
    }
    assert_true(a->last_start_time == b->last_start_time);
}

static struct vmextra_store *
open_store(const struct fx *fx)
{
    struct vmextra_store *s;

    assert_int_equal(vmextra_store_open(fx->dir, true, &s), 0);
    return s;
}

/* Commit full_doc(id) and return its generation (1). */
static void
create_full(struct vmextra_store *s, const char *id)
{
    struct vmextra_doc *doc = full_doc(id);

    assert_int_equal(vmextra_commit(s, doc), 0);
    assert_int_equal(doc->generation, 1);
    vmextra_doc_free(doc);
}

struct crash {
    int fire_at;        /* call index that crashes, -1 = never */
    int calls;
    char points[64][32];
};

static int
crash_hook(void *opaque, const char *point)
{
    struct crash *c = opaque;

    if (c->calls < 64)
        snprintf(c->points[c->calls], sizeof(c->points[0]), "%s", point);
    return c->calls++ == c->fire_at;
}

/* ---- round trip, generations, create ---- */

static void
test_vmextra_round_trip_every_field(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = full_doc(ID_A), *got = NULL, *golden = NULL;
    char *path = doc_path(fx, ID_A), *text = NULL, *gold = NULL;
    struct stat st;

    assert_false(vmextra_exists(s, ID_A));
    assert_int_equal(doc->generation, 0);
    assert_int_equal(vmextra_commit(s, doc), 0);
    assert_int_equal(doc->generation, 1);
    assert_true(vmextra_exists(s, ID_A));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(fx->dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* The file is the documented format: equal to the golden sample. */
    text = slurp(path);
    gold = data_file("current.json");
    assert_json_eq(text, gold);

    assert_int_equal(vmextra_load(s, ID_A, &got), 0);
    assert_int_equal(got->generation, 1);
    assert_doc_eq(doc, got);

    /* Change every field, commit, and read it back again. */
    vmextra_doc_set_vm(got, "{\"id\":\"" ID_A "\",\"name\":\"renamed\"}");
    vmextra_doc_set_vbd(got, "xvdc", "{\"id\":[\"" ID_A "\",\"xvdc\"]}");
    assert_int_equal(vmextra_doc_del_vbd(got, "xvda"), 0);
    vmextra_doc_set_vif(got, "1", "{\"id\":[\"" ID_A "\",\"1\"]}");
    set_attached(got, "xvdc", "vbd/7/xvdc", 3, INFO_B);
    assert_int_equal(vmextra_doc_del_attached(got, "xvda"), 0);
    got->last_start_time = 1.5e9;
    assert_int_equal(vmextra_commit(s, got), 0);
    assert_int_equal(got->generation, 2);

    assert_int_equal(vmextra_load(s, ID_A, &golden), 0);
    assert_int_equal(golden->generation, 2);
    assert_doc_eq(got, golden);
    assert_int_equal(golden->n_vbds, 2);
    assert_int_equal(golden->n_vifs, 2);
    assert_string_equal(vmextra_doc_attached(golden, "xvdc")->dp,
                        "vbd/7/xvdc");
    assert_null(vmextra_doc_attached(golden, "xvda"));

    /* A sample in the current format loads as the API built it. */
    vmextra_doc_free(golden);
    spit(path, gold);
    assert_int_equal(vmextra_load(s, ID_A, &golden), 0);
    assert_doc_eq(doc, golden);
    assert_int_equal(count_tmp_files(fx->dir), 0);

    vmextra_doc_free(doc);
    vmextra_doc_free(got);
    vmextra_doc_free(golden);
    free(path);
    free(text);
    free(gold);
    vmextra_store_close(s);
}

static void
test_vmextra_commit_stale_generation_conflicts(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *d1 = NULL, *d2 = NULL;
    char *path = doc_path(fx, ID_A), *before, *after;

    create_full(s, ID_A);
    assert_int_equal(vmextra_load(s, ID_A, &d1), 0);
    assert_int_equal(vmextra_load(s, ID_A, &d2), 0);
    d1->last_start_time = 1;
    assert_int_equal(vmextra_commit(s, d1), 0);
    assert_int_equal(d1->generation, 2);

    before = slurp(path);
    d2->last_start_time = 2;
    assert_int_equal(vmextra_commit(s, d2), XO_ECONFLICT);
    assert_int_equal(d2->generation, 1);
    after = slurp(path);
    assert_string_equal(before, after);
    /* A generation from the future is stale too. */
    d2->generation = 99;
    assert_int_equal(vmextra_commit(s, d2), XO_ECONFLICT);
    free(after);
    after = slurp(path);
    assert_string_equal(before, after);

    vmextra_doc_free(d1);
    vmextra_doc_free(d2);
    free(before);
    free(after);
    free(path);
    vmextra_store_close(s);
}

static void
test_vmextra_create_when_exists_fails(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A), *before, *after, *err;

    create_full(s, ID_A);
    before = slurp(path);
    assert_int_equal(vmextra_doc_new(ID_A, &doc), 0);
    assert_int_equal(vmextra_commit(s, doc), XO_EEXISTS);
    err = xo_err_take_json(XO_EEXISTS);
    assert_non_null(strstr(err, "Already_exists"));
    assert_int_equal(doc->generation, 0);
    after = slurp(path);
    assert_string_equal(before, after);

    free(err);
    free(before);
    free(after);
    free(path);
    vmextra_doc_free(doc);
    vmextra_store_close(s);
}

/* ---- ids ---- */

static void
test_vmextra_bad_ids_rejected(void **state)
{
    static const char *const bad[] = {
        "../x", "", ID_A "0", "not-a-uuid", ID_A "/../x",
        "11111111-2222-3333-4444-55555555555g", "/etc/passwd", NULL,
    };
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL, *out = NULL;

    create_full(s, ID_A);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(vmextra_doc_new(bad[i], &out), XO_EINVAL);
        assert_null(out);
        assert_int_equal(vmextra_load(s, bad[i], &out), XO_EINVAL);
        assert_null(out);
        assert_false(vmextra_exists(s, bad[i]));
        assert_int_equal(vmextra_remove(s, bad[i]), XO_EINVAL);
        assert_int_equal(vmextra_rename(s, ID_A, bad[i]), XO_EINVAL);
        assert_int_equal(vmextra_rename(s, bad[i], ID_B), XO_EINVAL);
        if (bad[i] && strlen(bad[i]) <= IDS_UUID_LEN) {
            doc = full_doc(ID_B);
            strcpy(doc->id, bad[i]);
            assert_int_equal(vmextra_commit(s, doc), XO_EINVAL);
            vmextra_doc_free(doc);
        }
    }
    /* An id that fills the array without a terminator. */
    doc = full_doc(ID_B);
    memset(doc->id, 'a', sizeof(doc->id));
    assert_int_equal(vmextra_commit(s, doc), XO_EINVAL);
    vmextra_doc_free(doc);

    /* Nothing was created: the store holds A only, its parent the store. */
    assert_int_equal(count_entries(fx->dir), 1);
    assert_int_equal(count_entries(fx->root), 1);
    assert_true(vmextra_exists(s, ID_A));
    vmextra_store_close(s);
}

/* ---- rename ---- */

static void
assert_is_full(struct vmextra_store *s, const char *id, uint64_t gen)
{
    struct vmextra_doc *want = full_doc(id), *got = NULL;

    assert_int_equal(vmextra_load(s, id, &got), 0);
    assert_doc_eq(want, got);
    assert_int_equal(got->generation, gen);
    vmextra_doc_free(want);
    vmextra_doc_free(got);
}

static void
test_vmextra_rename_moves_records_and_rewrites_ids(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *got = NULL;
    char *old_path = doc_path(fx, ID_A), *text;

    create_full(s, ID_A);
    assert_int_equal(vmextra_rename(s, ID_A, ID_B), 0);
    assert_false(vmextra_exists(s, ID_A));
    assert_false(exists_path(old_path));
    /* Every record moved, ids now name B: full_doc(B) is exactly that. */
    assert_is_full(s, ID_B, 2);
    assert_int_equal(vmextra_load(s, ID_A, &got), XO_ENOTFOUND);
    assert_int_equal(count_entries(fx->dir), 1);

    /* The transient marker is gone from the final document. */
    free(old_path);
    old_path = doc_path(fx, ID_B);
    text = slurp(old_path);
    assert_null(strstr(text, "rename_from"));
    assert_null(strstr(text, ID_A));

    free(text);
    free(old_path);
    vmextra_store_close(s);
}

static void
test_vmextra_rename_errors_change_nothing(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    char *pa = doc_path(fx, ID_A), *pb = doc_path(fx, ID_B);
    char *a0, *b0, *a1, *b1;

    assert_int_equal(vmextra_rename(s, ID_A, ID_B), XO_ENOTFOUND);
    assert_int_equal(count_entries(fx->dir), 0);
    create_full(s, ID_A);
    create_full(s, ID_B);
    a0 = slurp(pa);
    b0 = slurp(pb);
    assert_int_equal(vmextra_rename(s, ID_A, ID_B), XO_EEXISTS);
    assert_int_equal(vmextra_rename(s, ID_A, ID_A), XO_EINVAL);
    a1 = slurp(pa);
    b1 = slurp(pb);
    assert_string_equal(a0, a1);
    assert_string_equal(b0, b1);
    assert_int_equal(count_entries(fx->dir), 2);

    free(a0);
    free(b0);
    free(a1);
    free(b1);
    free(pa);
    free(pb);
    vmextra_store_close(s);
}

/*
 * One scenario: in a fresh directory, A at generation 1; rename A -> B
 * crashing at hook call k; optionally recovery crashing at hook call j;
 * then a fresh open. Returns whether the recovery crash fired (so the
 * caller knows when j has run past the last recovery point).
 */
static bool
rename_crash_scenario(struct fx *fx, int k, int j, bool expect_new)
{
    struct crash c = { .fire_at = k };
    struct vmextra_store *s = NULL;
    bool fired = false;
    int rc;

    nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    s = open_store(fx);
    create_full(s, ID_A);
    vmextra_set_crash_hook(s, crash_hook, &c);
    assert_int_equal(vmextra_rename(s, ID_A, ID_B), XO_EINJECTED);
    if (j >= 0) {
        memset(&c, 0, sizeof(c));
        c.fire_at = j;
        rc = vmextra_recover(s);
        fired = rc == XO_EINJECTED;
        assert_true(rc == 0 || fired);
    }
    vmextra_store_close(s);

    /* The restart: recovery on open, then exactly one complete VM. */
    s = open_store(fx);
    assert_true(vmextra_exists(s, ID_A) != vmextra_exists(s, ID_B));
    if (expect_new) {
        assert_true(vmextra_exists(s, ID_B));
        assert_is_full(s, ID_B, 2);
    } else {
        assert_true(vmextra_exists(s, ID_A));
        assert_is_full(s, ID_A, 1);
    }
    assert_int_equal(count_entries(fx->dir), 1);
    vmextra_store_close(s);
    return fired;
}

static void
test_vmextra_rename_crash_at_every_point_recovers(void **state)
{
    static const char *const named[] = {
        "rename:begin", "rename:new-written", "rename:old-removed",
        "rename:done",
    };
    struct fx *fx = *state;
    struct crash rec = { .fire_at = -1 };
    struct vmextra_store *s = open_store(fx);
    int first_renamed = -1;
    bool found;

    /* Learn the points a rename passes through. */
    create_full(s, ID_A);
    vmextra_set_crash_hook(s, crash_hook, &rec);
    assert_int_equal(vmextra_rename(s, ID_A, ID_B), 0);
    vmextra_store_close(s);
    for (size_t i = 0; i < sizeof(named) / sizeof(*named); i++) {
        found = false;
        for (int k = 0; k < rec.calls; k++)
            found = found || strcmp(rec.points[k], named[i]) == 0;
        assert_true(found);
    }
    for (int k = 0; k < rec.calls && first_renamed < 0; k++)
        if (strcmp(rec.points[k], "commit:renamed") == 0)
            first_renamed = k;
    assert_true(first_renamed > 0);

    for (int k = 0; k < rec.calls; k++) {
        /* Until the new document is in place, the old one is the VM. */
        bool expect_new = k >= first_renamed;

        rename_crash_scenario(fx, k, -1, expect_new);
        for (int j = 0; j < 32; j++)
            if (!rename_crash_scenario(fx, k, j, expect_new))
                break;
    }
}

static void
test_vmextra_commit_crash_keeps_a_whole_doc(void **state)
{
    static const char *const points[] = {
        "commit:temp-written", "commit:renamed",
    };
    struct fx *fx = *state;
    struct vmextra_store *s;
    struct vmextra_doc *doc = NULL;

    for (int k = 0; k < 2; k++) {
        struct crash c = { .fire_at = k };

        nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        s = open_store(fx);
        create_full(s, ID_A);
        assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
        doc->last_start_time = 42;
        vmextra_set_crash_hook(s, crash_hook, &c);
        assert_int_equal(vmextra_commit(s, doc), XO_EINJECTED);
        assert_string_equal(c.points[k], points[k]);
        /* The crash left its temp file behind, as a dead process would. */
        assert_int_equal(count_tmp_files(fx->dir), k == 0 ? 1 : 0);
        vmextra_doc_free(doc);
        vmextra_store_close(s);

        s = open_store(fx);
        assert_int_equal(count_tmp_files(fx->dir), 0);
        assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
        assert_int_equal(doc->generation, k == 0 ? 1 : 2);
        assert_true(doc->last_start_time == (k == 0 ? 1700000000.25 : 42));
        assert_int_equal(doc->n_vbds, 2);
        vmextra_doc_free(doc);
        vmextra_store_close(s);
    }
}

static void
test_vmextra_open_removes_stale_tmp(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    char *t1 = path_in(fx->dir, "." ID_A ".json.tmp");
    char *t2 = path_in(fx->dir, ".other.tmp");
    char *keep = path_in(fx->dir, "README");

    create_full(s, ID_A);
    vmextra_store_close(s);
    spit(t1, "{\"version\":1,\"generation\":9");
    spit(t2, "junk");
    spit(keep, "not ours");
    s = open_store(fx);
    assert_false(exists_path(t1));
    assert_false(exists_path(t2));
    assert_true(exists_path(keep));
    assert_is_full(s, ID_A, 1);

    free(t1);
    free(t2);
    free(keep);
    vmextra_store_close(s);
}

/* ---- formats ---- */

static void
test_vmextra_unknown_version_refused(void **state)
{
    static const char *const variants[] = {
        "{\"version\":0,\"generation\":1,\"id\":\"" ID_B "\"}",
        "{\"version\":\"1\",\"generation\":1,\"id\":\"" ID_B "\"}",
        "{\"version\":1.0,\"generation\":1,\"id\":\"" ID_B "\"}",
        "{\"generation\":1,\"id\":\"" ID_B "\"}",
    };
    struct fx *fx = *state;
    struct vmextra_store *s;
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A), *pb = doc_path(fx, ID_B);
    char *before = NULL, *after = NULL, *err = NULL;
    char **ids = NULL;
    size_t n;

    install_data(fx, "unknown-version.json", ID_A);
    before = slurp(path);
    s = open_store(fx);
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    assert_null(doc);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, path));
    /* No write can replace it: neither create nor update. */
    assert_int_equal(vmextra_doc_new(ID_A, &doc), 0);
    assert_int_equal(vmextra_commit(s, doc), XO_EEXISTS);
    doc->generation = 7;
    assert_int_equal(vmextra_commit(s, doc), XO_EINVAL);
    vmextra_doc_free(doc);
    doc = NULL;
    assert_int_equal(vmextra_rename(s, ID_A, ID_C), XO_EINVAL);
    assert_false(vmextra_exists(s, ID_C));
    assert_int_equal(vmextra_list(s, &ids, &n), 0);
    assert_int_equal(n, 0);
    vmextra_list_free(ids, n);
    vmextra_store_close(s);
    s = open_store(fx);
    after = slurp(path);
    assert_string_equal(before, after);

    for (size_t i = 0; i < sizeof(variants) / sizeof(*variants); i++) {
        spit(pb, variants[i]);
        assert_int_equal(vmextra_load(s, ID_B, &doc), XO_EINVAL);
        free(after);
        after = slurp(pb);
        assert_string_equal(after, variants[i]);
    }

    free(err);
    free(before);
    free(after);
    free(path);
    free(pb);
    vmextra_store_close(s);
}

static void
test_vmextra_tuple_keyed_attached_migrated(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s;
    struct vmextra_doc *doc = NULL;
    const struct vmextra_attached *a;
    char *path = doc_path(fx, ID_A), *text;
    yajl_val root = NULL, av;

    install_data(fx, "tuple-keyed.json", ID_A);
    s = open_store(fx);
    assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
    assert_int_equal(doc->generation, 4);
    assert_int_equal(doc->n_attached, 2);
    /* The entry attached under the temporary id is kept, by device. */
    a = vmextra_doc_attached(doc, "xvda");
    assert_non_null(a);
    assert_string_equal(a->dp, "");
    assert_int_equal(a->domid, 0);
    assert_json_eq(a->attach_info, INFO_A);
    a = vmextra_doc_attached(doc, "xvdb");
    assert_non_null(a);
    assert_json_eq(a->attach_info, INFO_B);
    assert_true(doc->last_start_time == 1700000000.5);

    /* The next commit writes the current shape. */
    assert_int_equal(vmextra_commit(s, doc), 0);
    text = slurp(path);
    assert_int_equal(json_parse(text, strlen(text), &root), 0);
    av = json_get(root, "attached_vdis");
    assert_true(YAJL_IS_OBJECT(av));
    assert_non_null(json_get(av, "xvda"));
    assert_non_null(json_get(av, "xvdb"));
    assert_string_equal(json_get_str(json_get(av, "xvda"), "dp"), "");
    yajl_tree_free(root);
    vmextra_doc_free(doc);
    assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
    assert_int_equal(doc->generation, 5);
    assert_int_equal(doc->n_attached, 2);

    /* A malformed pair is refused, not dropped. */
    spit(path, "{\"version\":1,\"generation\":1,\"id\":\"" ID_A "\","
         "\"attached_vdis\":[[\"xvda\",{\"domid\":0,\"attach_info\":{}}]]}");
    vmextra_doc_free(doc);
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);

    free(text);
    free(path);
    vmextra_store_close(s);
}

static void
test_vmextra_lenient_defaults(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A);

    spit(path, "{\"version\":1,\"generation\":3,\"id\":\"" ID_A "\"}");
    assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
    assert_int_equal(doc->generation, 3);
    assert_null(doc->vm_json);
    assert_int_equal(doc->n_vbds + doc->n_vifs + doc->n_attached, 0);
    assert_true(doc->last_start_time == 0);
    vmextra_doc_free(doc);

    /* Present with the wrong type is not "missing". */
    spit(path, "{\"version\":1,\"generation\":3,\"id\":\"" ID_A "\","
         "\"vbds\":[]}");
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    spit(path, "{\"version\":1,\"generation\":3,\"id\":\"" ID_A "\","
         "\"last_start_time\":\"soon\"}");
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    spit(path, "{\"version\":1,\"id\":\"" ID_A "\"}");
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);

    free(path);
    vmextra_store_close(s);
}

static void
test_vmextra_corrupt_or_mismatched_refused(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A), *err;

    spit(path, "{\"version\":1,\"generation\":");
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    err = xo_err_take_json(XO_EINVAL);
    assert_non_null(strstr(err, path));
    free(err);
    /* Open (recovery) leaves a corrupt document alone. */
    vmextra_store_close(s);
    s = open_store(fx);
    assert_true(exists_path(path));

    spit(path, "{\"version\":1,\"generation\":1,\"id\":\"" ID_B "\"}");
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    assert_null(doc);

    free(path);
    vmextra_store_close(s);
}

static void
test_vmextra_bad_records_refused_on_commit(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A), *before, *after;
    char long_dev[40];

    memset(long_dev, 'x', sizeof(long_dev) - 1);
    long_dev[sizeof(long_dev) - 1] = '\0';
    create_full(s, ID_A);
    before = slurp(path);
    for (int i = 0; i < 11; i++) {
        assert_int_equal(vmextra_load(s, ID_A, &doc), 0);
        switch (i) {
        case 0: vmextra_doc_set_vbd(doc, "xvdc", "{bad"); break;
        case 1: vmextra_doc_set_vbd(doc, "xvdc", "[1]"); break;
        case 2: vmextra_doc_set_vif(doc, "1", NULL); break;
        case 3: vmextra_doc_set_vm(doc, "\"just a string\""); break;
        case 4: set_attached(doc, "xvdc", "dp", 0, "{\"a\":"); break;
        case 5: set_attached(doc, "xvdc", "dp", 0, NULL); break;
        case 6: set_attached(doc, "xvdc", "dp", -1, "{}"); break;
        case 7: vmextra_doc_set_vbd(doc, "../x", "{}"); break;
        case 8: vmextra_doc_set_vif(doc, long_dev, "{}"); break;
        case 9: doc->last_start_time = NAN; break;
        case 10: strcpy(doc->vbds[1].dev, doc->vbds[0].dev); break;
        }
        assert_int_equal(vmextra_commit(s, doc), XO_EINVAL);
        assert_int_equal(doc->generation, 1);
        vmextra_doc_free(doc);
        after = slurp(path);
        assert_string_equal(before, after);
        free(after);
        assert_int_equal(count_entries(fx->dir), 1);
    }

    free(before);
    free(path);
    vmextra_store_close(s);
}

static void
test_vmextra_limits_enforced(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *path = doc_path(fx, ID_A), *text, *p;
    char dev[16];
    size_t cap;
    int fd;

    /* Too many records to commit. */
    assert_int_equal(vmextra_doc_new(ID_A, &doc), 0);
    for (int i = 0; i <= VMEXTRA_MAX_RECORDS; i++) {
        snprintf(dev, sizeof(dev), "d%d", i);
        vmextra_doc_set_vif(doc, dev, "{}");
    }
    assert_int_equal(vmextra_commit(s, doc), XO_EINVAL);
    assert_false(exists_path(path));
    vmextra_doc_free(doc);

    /* Too many records to load. */
    cap = 64 + (VMEXTRA_MAX_RECORDS + 1) * 16;
    text = xmalloc(cap);
    p = text + sprintf(text, "{\"version\":1,\"generation\":1,\"id\":\"%s\","
                       "\"vbds\":{", ID_A);
    for (int i = 0; i <= VMEXTRA_MAX_RECORDS; i++)
        p += sprintf(p, "%s\"d%d\":{}", i ? "," : "", i);
    strcpy(p, "}}");
    spit(path, text);
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);
    free(text);

    /* A file over the size bound (sparse: cheap to make). */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)VMEXTRA_MAX_DOC_BYTES + 1), 0);
    close(fd);
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_EINVAL);

    free(path);
    vmextra_store_close(s);
}

/* ---- stores, threads, memory mode, list, remove ---- */

static void
test_vmextra_two_stores_share_generation(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *a = open_store(fx), *b = open_store(fx);
    struct vmextra_doc *da = NULL, *db = NULL, *dn = NULL;

    create_full(a, ID_A);
    assert_int_equal(vmextra_load(b, ID_A, &db), 0);
    assert_int_equal(vmextra_load(a, ID_A, &da), 0);
    da->last_start_time = 7;
    assert_int_equal(vmextra_commit(a, da), 0);
    db->last_start_time = 8;
    assert_int_equal(vmextra_commit(b, db), XO_ECONFLICT);
    assert_int_equal(vmextra_load(b, ID_A, &dn), 0);
    assert_int_equal(dn->generation, 2);
    assert_true(dn->last_start_time == 7);
    /* Creation is seen across stores too. */
    vmextra_doc_free(db);
    assert_int_equal(vmextra_doc_new(ID_A, &db), 0);
    assert_int_equal(vmextra_commit(b, db), XO_EEXISTS);
    assert_int_equal(vmextra_rename(b, ID_A, ID_B), 0);
    assert_int_equal(vmextra_commit(a, dn), XO_ENOTFOUND);

    vmextra_doc_free(da);
    vmextra_doc_free(db);
    vmextra_doc_free(dn);
    vmextra_store_close(a);
    vmextra_store_close(b);
}

/* An update fn that, the first time, lets another store commit first. */
struct racer {
    struct vmextra_store *other;
    int calls;
};

static int
racing_fn(struct vmextra_doc *doc, void *arg)
{
    struct racer *r = arg;
    struct vmextra_doc *d = NULL;

    if (r->calls++ == 0) {
        /* Update the document, or create it first when it is new. */
        if (vmextra_load(r->other, doc->id, &d) == XO_ENOTFOUND) {
            xo_err_clear();
            assert_int_equal(vmextra_doc_new(doc->id, &d), 0);
        }
        d->last_start_time = 1;
        assert_int_equal(vmextra_commit(r->other, d), 0);
        vmextra_doc_free(d);
    }
    doc->last_start_time += 10;
    return 0;
}

static int
unchanged_fn(struct vmextra_doc *doc, void *arg)
{
    (void)doc;
    (void)arg;
    return 1;
}

/* The one read-modify-commit: creates on request, retries a lost race
 * with the winner's document, leaves the document alone on request. */
static void
test_vmextra_update_retries_and_creates(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *a = open_store(fx), *b = open_store(fx);
    struct racer r = { b, 0 };
    struct vmextra_doc *d = NULL;

    assert_int_equal(vmextra_update(a, ID_A, 0, unchanged_fn, NULL),
                     XO_ENOTFOUND);
    xo_err_clear();
    /* Losing a creation race: the retry updates the winner's document. */
    assert_int_equal(vmextra_update(a, ID_A, VMEXTRA_UPDATE_CREATE,
                                    racing_fn, &r), 0);
    assert_int_equal(r.calls, 2);
    assert_int_equal(vmextra_load(a, ID_A, &d), 0);
    assert_int_equal(d->generation, 2);
    assert_true(d->last_start_time == 11);
    vmextra_doc_free(d);
    r.calls = 0;
    assert_int_equal(vmextra_update(a, ID_A, 0, racing_fn, &r), 0);
    /* b's write (1) won the race; the retry applied +10 on top of it. */
    assert_int_equal(r.calls, 2);
    assert_int_equal(vmextra_load(a, ID_A, &d), 0);
    assert_true(d->last_start_time == 11);
    assert_int_equal(d->generation, 4);
    vmextra_doc_free(d);
    assert_int_equal(vmextra_update(a, ID_A, 0, unchanged_fn, NULL), 0);
    assert_int_equal(vmextra_load(a, ID_A, &d), 0);
    assert_int_equal(d->generation, 4);
    vmextra_doc_free(d);
    vmextra_store_close(a);
    vmextra_store_close(b);
}

#define THREADS 4
#define INCREMENTS 15

struct worker {
    struct vmextra_store *store;
    int conflicts;
};

/* Load-increment-commit until INCREMENTS commits succeed. */
static void *
worker_main(void *opaque)
{
    struct worker *w = opaque;
    struct vmextra_doc *doc;
    int done = 0, rc;

    while (done < INCREMENTS) {
        if (vmextra_load(w->store, ID_A, &doc) != 0)
            return NULL;
        doc->last_start_time += 1;
        rc = vmextra_commit(w->store, doc);
        vmextra_doc_free(doc);
        if (rc == 0)
            done++;
        else if (rc == XO_ECONFLICT)
            w->conflicts++;
        else
            return NULL;
        /* The detail is per thread: consume it as a caller would. */
        xo_err_clear();
    }
    return w;
}

static void
test_vmextra_concurrent_commits_lose_nothing(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *stores[2] = { open_store(fx), open_store(fx) };
    struct worker w[THREADS];
    pthread_t t[THREADS];
    struct vmextra_doc *doc = NULL;
    void *res;

    assert_int_equal(vmextra_doc_new(ID_A, &doc), 0);
    assert_int_equal(vmextra_commit(stores[0], doc), 0);
    vmextra_doc_free(doc);
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){ .store = stores[i % 2] };
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], &res), 0);
        assert_ptr_equal(res, &w[i]);
    }
    assert_int_equal(vmextra_load(stores[1], ID_A, &doc), 0);
    assert_true(doc->last_start_time == THREADS * INCREMENTS);
    assert_int_equal(doc->generation, 1 + THREADS * INCREMENTS);
    vmextra_doc_free(doc);
    vmextra_store_close(stores[0]);
    vmextra_store_close(stores[1]);
}

static void
test_vmextra_memory_mode_writes_nothing(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = NULL;
    struct vmextra_doc *d1 = NULL, *d2 = NULL;
    struct crash c = { .fire_at = 0 };
    char **ids = NULL;
    size_t n;

    assert_int_equal(vmextra_store_open(fx->dir, false, &s), 0);
    create_full(s, ID_C);
    create_full(s, ID_A);
    assert_int_equal(vmextra_doc_new(ID_A, &d1), 0);
    assert_int_equal(vmextra_commit(s, d1), XO_EEXISTS);
    vmextra_doc_free(d1);
    assert_int_equal(vmextra_load(s, ID_A, &d1), 0);
    assert_int_equal(vmextra_load(s, ID_A, &d2), 0);
    assert_int_equal(vmextra_commit(s, d1), 0);
    assert_int_equal(d1->generation, 2);
    assert_int_equal(vmextra_commit(s, d2), XO_ECONFLICT);
    vmextra_doc_free(d1);
    vmextra_doc_free(d2);

    assert_int_equal(vmextra_rename(s, ID_A, ID_B), 0);
    assert_false(vmextra_exists(s, ID_A));
    assert_is_full(s, ID_B, 3);
    assert_int_equal(vmextra_list(s, &ids, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], ID_C);
    assert_string_equal(ids[1], ID_B);
    vmextra_list_free(ids, n);
    assert_int_equal(vmextra_remove(s, ID_C), 0);
    assert_int_equal(vmextra_remove(s, ID_C), XO_ENOTFOUND);
    assert_int_equal(vmextra_load(s, "../x", &d1), XO_EINVAL);

    /* The crash hook works the same in memory. */
    vmextra_set_crash_hook(s, crash_hook, &c);
    assert_int_equal(vmextra_rename(s, ID_B, ID_A), XO_EINJECTED);
    assert_string_equal(c.points[0], "rename:begin");
    assert_true(vmextra_exists(s, ID_B));
    assert_false(vmextra_exists(s, ID_A));

    assert_false(exists_path(fx->dir));
    assert_int_equal(count_entries(fx->root), 0);
    vmextra_store_close(s);

    /* A new memory store starts empty. */
    assert_int_equal(vmextra_store_open(NULL, false, &s), 0);
    assert_false(vmextra_exists(s, ID_B));
    vmextra_store_close(s);
}

static void
test_vmextra_list_sorted_skips_corrupt(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    char *bad = doc_path(fx, "ffffffff-0000-0000-0000-000000000000");
    char *other = path_in(fx->dir, "notes.json");
    char **ids = NULL;
    size_t n;

    create_full(s, ID_B);
    create_full(s, ID_A);
    create_full(s, ID_C);
    spit(bad, "{not json");
    spit(other, "{}");
    assert_int_equal(vmextra_list(s, &ids, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(ids[0], ID_C);
    assert_string_equal(ids[1], ID_A);
    assert_string_equal(ids[2], ID_B);
    assert_true(exists_path(bad));
    vmextra_list_free(ids, n);

    free(bad);
    free(other);
    vmextra_store_close(s);
}

static void
test_vmextra_remove(void **state)
{
    struct fx *fx = *state;
    struct vmextra_store *s = open_store(fx);
    struct vmextra_doc *doc = NULL;
    char *err;

    create_full(s, ID_A);
    create_full(s, ID_B);
    assert_int_equal(vmextra_remove(s, ID_A), 0);
    assert_false(vmextra_exists(s, ID_A));
    assert_int_equal(vmextra_load(s, ID_A, &doc), XO_ENOTFOUND);
    err = xo_err_take_json(XO_ENOTFOUND);
    assert_non_null(strstr(err, "Does_not_exist"));
    assert_non_null(strstr(err, ID_A));
    free(err);
    assert_int_equal(vmextra_remove(s, ID_A), XO_ENOTFOUND);
    assert_true(vmextra_exists(s, ID_B));
    assert_int_equal(count_entries(fx->dir), 1);
    vmextra_store_close(s);
}

static void
test_vmextra_doc_accessors(void **state)
{
    struct vmextra_doc *doc = NULL;

    assert_int_equal(vmextra_doc_new(ID_A, &doc), 0);
    assert_null(vmextra_doc_vbd(doc, "xvda"));
    vmextra_doc_set_vbd(doc, "xvda", "{\"v\":1}");
    vmextra_doc_set_vbd(doc, "xvda", "{\"v\":2}");
    assert_int_equal(doc->n_vbds, 1);
    assert_string_equal(vmextra_doc_vbd(doc, "xvda"), "{\"v\":2}");
    assert_int_equal(vmextra_doc_del_vbd(doc, "xvda"), 0);
    assert_int_equal(vmextra_doc_del_vbd(doc, "xvda"), XO_ENOTFOUND);
    vmextra_doc_set_vif(doc, "0", "{}");
    vmextra_doc_set_vif(doc, "1", "{}");
    assert_int_equal(vmextra_doc_del_vif(doc, "0"), 0);
    assert_non_null(vmextra_doc_vif(doc, "1"));
    assert_int_equal(vmextra_doc_del_vif(doc, "0"), XO_ENOTFOUND);
    set_attached(doc, "xvda", "vbd/1/xvda", 0, "{}");
    set_attached(doc, "xvda", "vbd/2/xvda", 4, "{}");
    assert_int_equal(doc->n_attached, 1);
    assert_int_equal(vmextra_doc_attached(doc, "xvda")->domid, 4);
    assert_int_equal(vmextra_doc_del_attached(doc, "xvda"), 0);
    assert_int_equal(vmextra_doc_del_attached(doc, "xvda"), XO_ENOTFOUND);
    /* dp is never NULL: unknown is "". */
    set_attached(doc, "xvdb", NULL, 0, "{}");
    assert_string_equal(vmextra_doc_attached(doc, "xvdb")->dp, "");
    vmextra_doc_set_vm(doc, "{}");
    vmextra_doc_set_vm(doc, NULL);
    assert_null(doc->vm_json);
    vmextra_doc_free(doc);
    vmextra_doc_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_vmextra_round_trip_every_field),
        T(test_vmextra_commit_stale_generation_conflicts),
        T(test_vmextra_create_when_exists_fails),
        T(test_vmextra_bad_ids_rejected),
        T(test_vmextra_rename_moves_records_and_rewrites_ids),
        T(test_vmextra_rename_errors_change_nothing),
        T(test_vmextra_rename_crash_at_every_point_recovers),
        T(test_vmextra_commit_crash_keeps_a_whole_doc),
        T(test_vmextra_open_removes_stale_tmp),
        T(test_vmextra_unknown_version_refused),
        T(test_vmextra_tuple_keyed_attached_migrated),
        T(test_vmextra_lenient_defaults),
        T(test_vmextra_corrupt_or_mismatched_refused),
        T(test_vmextra_bad_records_refused_on_commit),
        T(test_vmextra_limits_enforced),
        T(test_vmextra_two_stores_share_generation),
        T(test_vmextra_update_retries_and_creates),
        T(test_vmextra_concurrent_commits_lose_nothing),
        T(test_vmextra_memory_mode_writes_nothing),
        T(test_vmextra_list_sorted_skips_corrupt),
        T(test_vmextra_remove),
        T(test_vmextra_doc_accessors),
#undef T
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
