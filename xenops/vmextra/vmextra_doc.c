/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * vmextra_doc: the vmextra document in memory and as JSON. Owns the record
 * accessors, decoding (including the migration of xenopsd's older
 * tuple-keyed attached_vdis), encoding and the checks a commit makes
 * before it touches the store. No I/O and no locking: vmextra.c reads and
 * writes the texts under the store's locks.
 */
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

#include "util/errors.h"
#include "util/ids.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"
#include "vmextra/vmextra.h"
#include "vmextra/vmextra_priv.h"

/* ---- records ---- */

void
vmextra_doc_free(struct vmextra_doc *doc)
{
    if (!doc)
        return;
    free(doc->vm_json);
    for (size_t i = 0; i < doc->n_vbds; i++)
        free(doc->vbds[i].json);
    free(doc->vbds);
    for (size_t i = 0; i < doc->n_vifs; i++)
        free(doc->vifs[i].json);
    free(doc->vifs);
    for (size_t i = 0; i < doc->n_attached; i++) {
        free(doc->attached[i].dp);
        free(doc->attached[i].attach_info);
    }
    free(doc->attached);
    free(doc);
}

int
vmextra_doc_new(const char *id, struct vmextra_doc **doc_r)
{
    struct vmextra_doc *doc;
    int rc;

    *doc_r = NULL;
    rc = ids_check_vm(id);
    if (rc)
        return rc;
    doc = xcalloc(1, sizeof(*doc));
    xstrlcpy(doc->id, id, sizeof(doc->id));
    *doc_r = doc;
    return 0;
}

/*
 * A device id that does not fit is kept as "" so that the setters, which
 * cannot fail, still make the next commit refuse the document.
 */
static void
copy_dev(char *dst, const char *dev)
{
    if (ids_is_dev(dev)) {
        xstrlcpy(dst, dev, IDS_DEV_MAX + 1);
        return;
    }
    ids_check_dev(dev);
    dst[0] = '\0';
}

static ssize_t
rec_find(const struct vmextra_rec *recs, size_t n, const char *dev)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].dev, dev) == 0)
            return (ssize_t)i;
    return -1;
}

static void
rec_set(struct vmextra_rec **recs, size_t *n, const char *dev,
        const char *json)
{
    char key[IDS_DEV_MAX + 1];
    ssize_t i;

    copy_dev(key, dev);
    i = rec_find(*recs, *n, key);
    if (i < 0) {
        *recs = xrealloc(*recs, (*n + 1) * sizeof(**recs));
        i = (ssize_t)(*n)++;
        memcpy((*recs)[i].dev, key, sizeof(key));
    } else {
        free((*recs)[i].json);
    }
    (*recs)[i].json = json ? xstrdup(json) : NULL;
}

static int
rec_del(struct vmextra_rec *recs, size_t *n, const char *dev)
{
    ssize_t i = rec_find(recs, *n, dev);

    if (i < 0)
        return XO_ENOTFOUND;
    free(recs[i].json);
    memmove(&recs[i], &recs[i + 1], (*n - (size_t)i - 1) * sizeof(*recs));
    (*n)--;
    return 0;
}

const char *
vmextra_doc_vbd(const struct vmextra_doc *doc, const char *dev)
{
    ssize_t i = rec_find(doc->vbds, doc->n_vbds, dev);

    return i < 0 ? NULL : doc->vbds[i].json;
}

void
vmextra_doc_set_vbd(struct vmextra_doc *doc, const char *dev,
                    const char *json)
{
    rec_set(&doc->vbds, &doc->n_vbds, dev, json);
}

int
vmextra_doc_del_vbd(struct vmextra_doc *doc, const char *dev)
{
    return rec_del(doc->vbds, &doc->n_vbds, dev);
}

const char *
vmextra_doc_vif(const struct vmextra_doc *doc, const char *dev)
{
    ssize_t i = rec_find(doc->vifs, doc->n_vifs, dev);

    return i < 0 ? NULL : doc->vifs[i].json;
}

void
vmextra_doc_set_vif(struct vmextra_doc *doc, const char *dev,
                    const char *json)
{
    rec_set(&doc->vifs, &doc->n_vifs, dev, json);
}

int
vmextra_doc_del_vif(struct vmextra_doc *doc, const char *dev)
{
    return rec_del(doc->vifs, &doc->n_vifs, dev);
}

static ssize_t
attached_find(const struct vmextra_doc *doc, const char *dev)
{
    for (size_t i = 0; i < doc->n_attached; i++)
        if (strcmp(doc->attached[i].dev, dev) == 0)
            return (ssize_t)i;
    return -1;
}

const struct vmextra_attached *
vmextra_doc_attached(const struct vmextra_doc *doc, const char *dev)
{
    ssize_t i = attached_find(doc, dev);

    return i < 0 ? NULL : &doc->attached[i];
}

void
vmextra_doc_set_attached(struct vmextra_doc *doc,
                         const struct vmextra_attached *a)
{
    char key[IDS_DEV_MAX + 1] = "";
    struct vmextra_attached *e;
    ssize_t i;

    /* a->dev may be unterminated garbage: look only inside the array. */
    if (strnlen(a->dev, sizeof(a->dev)) < sizeof(a->dev))
        copy_dev(key, a->dev);
    i = attached_find(doc, key);
    if (i < 0) {
        doc->attached = xrealloc(doc->attached,
                                 (doc->n_attached + 1) * sizeof(*e));
        i = (ssize_t)doc->n_attached++;
    } else {
        free(doc->attached[i].dp);
        free(doc->attached[i].attach_info);
    }
    e = &doc->attached[i];
    memcpy(e->dev, key, sizeof(key));
    e->dp = xstrdup(a->dp ? a->dp : "");
    e->domid = a->domid;
    e->attach_info = a->attach_info ? xstrdup(a->attach_info) : NULL;
}

int
vmextra_doc_del_attached(struct vmextra_doc *doc, const char *dev)
{
    ssize_t i = attached_find(doc, dev);

    if (i < 0)
        return XO_ENOTFOUND;
    free(doc->attached[i].dp);
    free(doc->attached[i].attach_info);
    memmove(&doc->attached[i], &doc->attached[i + 1],
            (doc->n_attached - (size_t)i - 1) * sizeof(*doc->attached));
    doc->n_attached--;
    return 0;
}

void
vmextra_doc_set_vm(struct vmextra_doc *doc, const char *json)
{
    free(doc->vm_json);
    doc->vm_json = json ? xstrdup(json) : NULL;
}

/* Log and set the detail for a document that cannot be decoded. */
static int
decode_fail(const char *where, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
decode_fail(const char *where, const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG(ERROR, "vmextra document '%s' refused: %s", where, msg);
    return xo_err_internal_code(XO_EINVAL, "vmextra document '%s': %s",
                                where, msg);
}

static int
decode_recs(const char *where, yajl_val v, const char *what,
            struct vmextra_rec **recs, size_t *n)
{
    const char *key;

    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (!YAJL_IS_OBJECT(v))
        return decode_fail(where, "'%s' is not an object", what);
    if (v->u.object.len > VMEXTRA_MAX_RECORDS)
        return decode_fail(where, "more than %d '%s'", VMEXTRA_MAX_RECORDS,
                           what);
    for (size_t i = 0; i < v->u.object.len; i++) {
        key = v->u.object.keys[i];
        if (!ids_is_dev(key) || rec_find(*recs, *n, key) >= 0)
            return decode_fail(where, "bad or repeated device in '%s'", what);
        if (!YAJL_IS_OBJECT(v->u.object.values[i]))
            return decode_fail(where, "'%s' entry '%s' is not an object",
                               what, key);
        *recs = xrealloc(*recs, (*n + 1) * sizeof(**recs));
        xstrlcpy((*recs)[*n].dev, key, sizeof((*recs)[*n].dev));
        (*recs)[(*n)++].json = json_tree_to_string(v->u.object.values[i]);
    }
    return 0;
}

/* One attached_vdi record, {"dp"?: s, "domid": n, "attach_info": v}. */
static int
decode_attached_rec(const char *where, const char *dev, yajl_val v,
                    struct vmextra_doc *doc)
{
    struct vmextra_attached a = { .dp = NULL };
    yajl_val info = json_get(v, "attach_info");
    yajl_val dp = json_get(v, "dp");
    int64_t domid;

    if (!ids_is_dev(dev) || !YAJL_IS_OBJECT(v))
        return decode_fail(where, "bad attached_vdis entry");
    if (!json_get(v, "domid") || json_get_int64(v, "domid", 0, &domid) ||
        domid < 0 || domid > INT_MAX)
        return decode_fail(where, "attached_vdis '%s' has a bad domid", dev);
    if (!info || YAJL_IS_NULL(info))
        return decode_fail(where, "attached_vdis '%s' has no attach_info",
                           dev);
    if (dp && !YAJL_IS_NULL(dp) && !YAJL_IS_STRING(dp))
        return decode_fail(where, "attached_vdis '%s' has a bad dp", dev);
    xstrlcpy(a.dev, dev, sizeof(a.dev));
    a.domid = (int)domid;
    a.dp = dp && YAJL_IS_STRING(dp) ? dp->u.string : "";
    a.attach_info = json_tree_to_string(info);
    vmextra_doc_set_attached(doc, &a);
    free(a.attach_info);
    return 0;
}

/*
 * xenopsd v25.18-v25.23 keyed attached_vdis by Vbd.id = (vm, dev), a JSON
 * array of pairs [[vm, dev], record]. Newer xenopsd silently decodes that as
 * empty and drops in-flight attaches; we convert each entry by its device.
 */
static const char *
array_str(yajl_val v, size_t i)
{
    yajl_val e = json_array_at(v, i);

    return e && YAJL_IS_STRING(e) ? e->u.string : NULL;
}

static int
decode_attached_pairs(const char *where, const char *id, yajl_val v,
                      struct vmextra_doc *doc)
{
    yajl_val pair, key;
    const char *vm, *dev;
    int rc;

    for (size_t i = 0; i < json_array_len(v); i++) {
        pair = json_array_at(v, i);
        key = json_array_at(pair, 0);
        vm = array_str(key, 0);
        dev = array_str(key, 1);
        if (json_array_len(pair) != 2 || json_array_len(key) != 2 || !vm ||
            !ids_is_uuid(vm) || !ids_is_dev(dev))
            return decode_fail(where, "attached_vdis entry %zu is not a "
                               "[[vm, dev], record] pair", i);
        LOGVM(WARN, id, "migrating attached_vdis entry ('%s', '%s') of '%s' "
              "to device key '%s'", vm, dev, where, dev);
        if (attached_find(doc, dev) >= 0)
            LOGVM(WARN, id, "attached_vdis entry '%s' repeated; the later "
                  "one wins", dev);
        rc = decode_attached_rec(where, dev, json_array_at(pair, 1), doc);
        if (rc)
            return rc;
    }
    return 0;
}

static int
decode_attached(const char *where, const char *id, yajl_val v,
                struct vmextra_doc *doc)
{
    size_t n = 0;
    int rc;

    if (!v || YAJL_IS_NULL(v))
        return 0;
    if (YAJL_IS_OBJECT(v))
        n = v->u.object.len;
    else if (YAJL_IS_ARRAY(v))
        n = v->u.array.len;
    else
        return decode_fail(where, "'attached_vdis' is neither object nor "
                           "array");
    if (n > VMEXTRA_MAX_RECORDS)
        return decode_fail(where, "more than %d 'attached_vdis'",
                           VMEXTRA_MAX_RECORDS);
    if (YAJL_IS_ARRAY(v))
        return decode_attached_pairs(where, id, v, doc);
    for (size_t i = 0; i < n; i++) {
        if (attached_find(doc, v->u.object.keys[i]) >= 0)
            return decode_fail(where, "repeated device in 'attached_vdis'");
        rc = decode_attached_rec(where, v->u.object.keys[i],
                                 v->u.object.values[i], doc);
        if (rc)
            return rc;
    }
    return 0;
}

static bool
is_known_key(const char *key)
{
    static const char *const known[] = {
        "version", "generation", "id", "vm", "vbds", "vifs",
        "attached_vdis", "last_start_time", "rename_from",
    };

    for (size_t k = 0; k < sizeof(known) / sizeof(*known); k++)
        if (strcasecmp(key, known[k]) == 0)
            return true;
    return false;
}

/* Version, id and generation: what must be right before anything else. */
static int
decode_header(const char *where, const char *id, yajl_val root,
              struct vmextra_doc *doc)
{
    yajl_val ver = json_get(root, "version");
    yajl_val gen = json_get(root, "generation");
    const char *doc_id = json_get_str(root, "id");

    if (!ver || !YAJL_IS_INTEGER(ver) || YAJL_GET_INTEGER(ver) < 1 ||
        YAJL_GET_INTEGER(ver) > VMEXTRA_VERSION)
        return decode_fail(where, "unknown format version (this daemon "
                           "reads version %d)", VMEXTRA_VERSION);
    if (!doc_id || strcmp(doc_id, id) != 0)
        return decode_fail(where, "its id does not match the file name");
    if (!gen || !YAJL_IS_INTEGER(gen) || YAJL_GET_INTEGER(gen) < 1)
        return decode_fail(where, "'generation' is not a positive integer");
    doc->generation = (uint64_t)YAJL_GET_INTEGER(gen);
    return 0;
}

int
vmextra_doc_decode(const char *where, const char *id, const char *text,
                   size_t len, struct vmextra_doc **doc_r,
                   char **rename_from_r)
{
    struct vmextra_doc *doc = NULL;
    yajl_val root = NULL, vm, from;
    size_t unknown = 0;
    int rc;

    *doc_r = NULL;
    if (json_parse(text, len, &root) || !YAJL_IS_OBJECT(root)) {
        rc = decode_fail(where, "not a JSON object");
        goto out;
    }
    doc = xcalloc(1, sizeof(*doc));
    xstrlcpy(doc->id, id, sizeof(doc->id));
    rc = decode_header(where, id, root, doc);
    if (rc)
        goto out;
    vm = json_get(root, "vm");
    if (vm && !YAJL_IS_NULL(vm) && !YAJL_IS_OBJECT(vm)) {
        rc = decode_fail(where, "'vm' is not an object");
        goto out;
    }
    doc->vm_json = vm && YAJL_IS_OBJECT(vm) ? json_tree_to_string(vm) : NULL;
    rc = decode_recs(where, json_get(root, "vbds"), "vbds", &doc->vbds,
                     &doc->n_vbds);
    if (!rc)
        rc = decode_recs(where, json_get(root, "vifs"), "vifs", &doc->vifs,
                         &doc->n_vifs);
    if (!rc)
        rc = decode_attached(where, id, json_get(root, "attached_vdis"), doc);
    if (!rc && json_get_double(root, "last_start_time", 0,
                               &doc->last_start_time))
        rc = decode_fail(where, "'last_start_time' is not a number");
    if (rc)
        goto out;
    from = json_get(root, "rename_from");
    if (from && (!YAJL_IS_STRING(from) || !ids_is_uuid(from->u.string) ||
                 strcmp(from->u.string, id) == 0)) {
        rc = decode_fail(where, "'rename_from' is not another VM id");
        goto out;
    }
    for (size_t i = 0; i < root->u.object.len; i++)
        unknown += !is_known_key(root->u.object.keys[i]);
    /* Only a hand edit adds fields to a version; the next commit drops
     * them, so say so. */
    if (unknown)
        LOGVM(WARN, id, "ignoring %zu unknown field(s) in '%s'", unknown,
              where);
    if (rename_from_r)
        *rename_from_r = from ? xstrdup(from->u.string) : NULL;
    *doc_r = doc;
    doc = NULL;
out:
    vmextra_doc_free(doc);
    yajl_tree_free(root);
    return rc;
}

/* Emit one stored record after checking it is the JSON it claims to be. */
static int
gen_record(yajl_gen g, const char *text, bool object, const char *what,
           const char *dev)
{
    yajl_val v = NULL;
    int rc;

    if (!text || json_parse(text, strlen(text), &v) ||
        (object && !YAJL_IS_OBJECT(v)) || YAJL_IS_NULL(v)) {
        LOG(WARN, "refusing %s '%s': not a valid JSON %s", what, dev,
            object ? "object" : "value");
        rc = xo_err_internal_code(XO_EINVAL, "%s '%s' is not a valid JSON %s",
                                  what, dev, object ? "object" : "value");
        goto out;
    }
    json_gen_tree(g, v);
    rc = 0;
out:
    yajl_tree_free(v);
    return rc;
}

static int
gen_recs(yajl_gen g, const char *what, const struct vmextra_rec *recs,
         size_t n)
{
    int rc = 0;

    json_gen_str(g, what);
    yajl_gen_map_open(g);
    for (size_t i = 0; i < n && !rc; i++) {
        json_gen_str(g, recs[i].dev);
        rc = gen_record(g, recs[i].json, true, what, recs[i].dev);
    }
    yajl_gen_map_close(g);
    return rc;
}

static int
gen_attached(yajl_gen g, const struct vmextra_doc *doc)
{
    const struct vmextra_attached *a;
    int rc = 0;

    json_gen_str(g, "attached_vdis");
    yajl_gen_map_open(g);
    for (size_t i = 0; i < doc->n_attached && !rc; i++) {
        a = &doc->attached[i];
        json_gen_str(g, a->dev);
        yajl_gen_map_open(g);
        json_gen_str(g, "dp");
        json_gen_str(g, a->dp ? a->dp : "");
        json_gen_str(g, "domid");
        json_gen_int(g, a->domid);
        json_gen_str(g, "attach_info");
        rc = gen_record(g, a->attach_info, false, "attach_info", a->dev);
        yajl_gen_map_close(g);
    }
    yajl_gen_map_close(g);
    return rc;
}

int
vmextra_doc_encode(const struct vmextra_doc *doc, uint64_t generation,
                   const char *rename_from, char **text_r)
{
    yajl_gen g = json_gen_new();
    char *text = NULL;
    int rc = 0;

    yajl_gen_map_open(g);
    json_gen_str(g, "version");
    json_gen_int(g, VMEXTRA_VERSION);
    json_gen_str(g, "generation");
    json_gen_int(g, (long long)generation);
    json_gen_str(g, "id");
    json_gen_str(g, doc->id);
    json_gen_str(g, "vm");
    if (doc->vm_json)
        rc = gen_record(g, doc->vm_json, true, "vm", doc->id);
    else
        json_gen_null(g);
    if (!rc)
        rc = gen_recs(g, "vbds", doc->vbds, doc->n_vbds);
    if (!rc)
        rc = gen_recs(g, "vifs", doc->vifs, doc->n_vifs);
    if (!rc)
        rc = gen_attached(g, doc);
    json_gen_str(g, "last_start_time");
    json_gen_double(g, doc->last_start_time);
    if (rename_from) {
        json_gen_str(g, "rename_from");
        json_gen_str(g, rename_from);
    }
    yajl_gen_map_close(g);
    text = json_gen_take(g);
    if (!rc && strlen(text) > VMEXTRA_MAX_DOC_BYTES) {
        LOGVM(WARN, doc->id, "refusing a vmextra document over %u bytes",
              VMEXTRA_MAX_DOC_BYTES);
        rc = xo_err_internal_code(XO_EINVAL, "document for '%s' is over %u "
                                  "bytes", doc->id, VMEXTRA_MAX_DOC_BYTES);
    }
    if (!rc) {
        *text_r = text;
        text = NULL;
    }
    free(text);
    return rc;
}

static int
check_devs(const char *what, const char *devs, size_t stride, size_t n)
{
    const char *dev, *other;
    int rc;

    if (n > VMEXTRA_MAX_RECORDS) {
        LOG(WARN, "refusing a vmextra document with %zu %s (max %d)", n,
            what, VMEXTRA_MAX_RECORDS);
        return xo_err_internal_code(XO_EINVAL, "more than %d %s",
                                    VMEXTRA_MAX_RECORDS, what);
    }
    for (size_t i = 0; i < n; i++) {
        dev = devs + i * stride;
        rc = ids_check_dev(dev);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++) {
            other = devs + j * stride;
            if (strcmp(dev, other) == 0) {
                LOG(WARN, "refusing repeated %s device '%s'", what, dev);
                return xo_err_internal_code(XO_EINVAL, "repeated %s device "
                                            "'%s'", what, dev);
            }
        }
    }
    return 0;
}

int
vmextra_doc_validate(const struct vmextra_doc *doc)
{
    int rc;

    if (strnlen(doc->id, sizeof(doc->id)) == sizeof(doc->id))
        return ids_check_vm("(unterminated)");
    rc = ids_check_vm(doc->id);
    if (!rc && doc->n_vbds)
        rc = check_devs("vbds", doc->vbds[0].dev, sizeof(*doc->vbds),
                        doc->n_vbds);
    if (!rc && doc->n_vifs)
        rc = check_devs("vifs", doc->vifs[0].dev, sizeof(*doc->vifs),
                        doc->n_vifs);
    if (!rc && doc->n_attached)
        rc = check_devs("attached_vdis", doc->attached[0].dev,
                        sizeof(*doc->attached), doc->n_attached);
    if (rc)
        return rc;
    for (size_t i = 0; i < doc->n_attached; i++) {
        if (doc->attached[i].domid < 0) {
            LOGVM(WARN, doc->id, "refusing attached_vdis '%s' with domid %d",
                  doc->attached[i].dev, doc->attached[i].domid);
            return xo_err_internal_code(XO_EINVAL, "bad domid for '%s'",
                                        doc->attached[i].dev);
        }
    }
    if (!isfinite(doc->last_start_time)) {
        LOGVM(WARN, doc->id, "refusing a non-finite last_start_time");
        return xo_err_internal_code(XO_EINVAL, "bad last_start_time");
    }
    return 0;
}
