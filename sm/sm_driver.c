/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The adapters' shared plumbing. The per-VDI memory is a plain list: an
 * SR instance holds the few VDIs of the VMs running on this host.
 */
#include <stdlib.h>
#include <string.h>

#include "sm/sm_driver.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

#define SM_DRIVER_VDI_MAX 1024

static char *
dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

static void
vdi_free(struct sm_driver_vdi *v)
{
    free(v->vdi);
    free(v->uri);
    free(v->dp_dir);
    free(v);
}

void
sm_driver_vdis_init(struct sm_driver_vdis *t)
{
    pthread_mutex_init(&t->lock, NULL);
    t->head = NULL;
}

void
sm_driver_vdis_destroy(struct sm_driver_vdis *t)
{
    while (t->head) {
        struct sm_driver_vdi *v = t->head;

        t->head = v->next;
        vdi_free(v);
    }
    pthread_mutex_destroy(&t->lock);
}

void
sm_driver_vdis_remember(struct sm_driver_vdis *t, const char *vdi,
                        bool rw, const char *uri, const char *dp_dir)
{
    struct sm_driver_vdi *v;

    pthread_mutex_lock(&t->lock);
    for (v = t->head; v; v = v->next)
        if (strcmp(v->vdi, vdi) == 0)
            break;
    if (!v) {
        v = xcalloc(1, sizeof(*v));
        v->vdi = xstrdup(vdi);
        v->next = t->head;
        t->head = v;
    }
    free(v->uri);
    free(v->dp_dir);
    v->uri = dup_or_null(uri);
    v->dp_dir = dup_or_null(dp_dir);
    v->rw = rw;
    pthread_mutex_unlock(&t->lock);
}

bool
sm_driver_vdis_recall(struct sm_driver_vdis *t, const char *vdi,
                      bool *rw_r, char **uri_r, char **dp_dir_r)
{
    struct sm_driver_vdi *v;

    pthread_mutex_lock(&t->lock);
    for (v = t->head; v; v = v->next)
        if (strcmp(v->vdi, vdi) == 0)
            break;
    if (v) {
        if (rw_r)
            *rw_r = v->rw;
        if (uri_r)
            *uri_r = dup_or_null(v->uri);
        if (dp_dir_r)
            *dp_dir_r = dup_or_null(v->dp_dir);
    }
    pthread_mutex_unlock(&t->lock);
    return v != NULL;
}

void
sm_driver_vdis_forget(struct sm_driver_vdis *t, const char *vdi)
{
    pthread_mutex_lock(&t->lock);
    for (struct sm_driver_vdi **p = &t->head; *p; p = &(*p)->next) {
        if (strcmp((*p)->vdi, vdi) == 0) {
            struct sm_driver_vdi *v = *p;

            *p = v->next;
            vdi_free(v);
            break;
        }
    }
    pthread_mutex_unlock(&t->lock);
}

int
sm_driver_check_vdi(const char *vdi, const char *what, const char *adapter)
{
    size_t n = strlen(vdi);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)vdi[i] < 0x20 || vdi[i] == 0x7f)
            n = 0;
    if (n == 0 || n > SM_DRIVER_VDI_MAX) {
        LOG(ERROR, "invalid %s for a %s", what, adapter);
        return xo_err_internal_code(XO_EINVAL, "invalid %s", what);
    }
    return 0;
}

int
sm_driver_device_config(const char *json, yajl_val *r)
{
    const char *text = json ? json : "{}";
    yajl_val v = NULL;
    int rc = json_parse(text, strlen(text), &v);

    if (rc) {
        LOG(ERROR, "device_config is not JSON");
        return rc;
    }
    rc = YAJL_IS_OBJECT(v) ? 0 : XO_EINVAL;
    for (size_t i = 0; !rc && i < v->u.object.len; i++)
        if (!YAJL_IS_STRING(v->u.object.values[i]) ||
            !*v->u.object.keys[i])
            rc = XO_EINVAL;
    if (rc) {
        yajl_tree_free(v);
        LOG(ERROR, "device_config must be an object of strings");
        return xo_err_internal_code(XO_EINVAL, "device_config must be an "
                                    "object of string values");
    }
    *r = v;
    return 0;
}
