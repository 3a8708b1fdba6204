/* SPDX-License-Identifier: LGPL-2.1-only */

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <yajl/yajl_gen.h>

#include "util/errors.h"
#include "util/json.h"
#include "util/xalloc.h"

static __thread int err_code;
static __thread char *err_json;

/*
 * A thread that exits with a detail set would leak it: a key destructor
 * frees whatever detail the thread still holds. The key's value mirrors
 * err_json.
 */
static pthread_key_t err_key;
static pthread_once_t err_once = PTHREAD_ONCE_INIT;

static void
err_key_free(void *json)
{
    free(json);
}

static void
err_key_init(void)
{
    pthread_key_create(&err_key, err_key_free);
}

static void
err_mirror(void)
{
    pthread_once(&err_once, err_key_init);
    pthread_setspecific(err_key, err_json);
}

const char *
xo_strerror(int code)
{
    switch (code) {
    case XO_OK: return "success";
    case XO_EFAIL: return "operation failed";
    case XO_ENOMEM: return "out of memory";
    case XO_EINVAL: return "invalid argument";
    case XO_ENOTFOUND: return "does not exist";
    case XO_EEXISTS: return "already exists";
    case XO_ECONFLICT: return "conflicting update (stale generation)";
    case XO_ETIMEDOUT: return "timed out";
    case XO_ECANCELLED: return "cancelled";
    case XO_EUNSUPPORTED: return "not supported";
    case XO_EBACKEND: return "storage backend error";
    case XO_EIO: return "I/O error";
    case XO_EPOWERSTATE: return "bad power state";
    case XO_ECONNECTED: return "device is connected";
    case XO_ENOTBUILT: return "domain not built";
    case XO_ENOTCONNECTED: return "device not connected";
    case XO_EINJECTED: return "injected crash point";
    }
    return "unknown error";
}

void
xo_err_clear(void)
{
    free(err_json);
    err_json = NULL;
    err_code = 0;
    err_mirror();
}

int
xo_err_set_json(int code, char *json)
{
    xo_err_clear();
    err_code = code;
    err_json = json;
    err_mirror();
    return code;
}

/* ["Tag", [a, b, ...]] or ["Tag", a] when single is true. */
static int
set_tagged(int code, const char *tag, const char *const *params, size_t n,
           int single)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, tag);
    if (single) {
        json_gen_str(g, params[0]);
    } else {
        yajl_gen_array_open(g);
        for (size_t i = 0; i < n; i++)
            json_gen_str(g, params[i]);
        yajl_gen_array_close(g);
    }
    yajl_gen_array_close(g);
    return xo_err_set_json(code, json_gen_take(g));
}

int
xo_err_does_not_exist(const char *kind, const char *id)
{
    const char *p[2] = { kind, id };

    return set_tagged(XO_ENOTFOUND, "Does_not_exist", p, 2, 0);
}

int
xo_err_already_exists(const char *kind, const char *id)
{
    const char *p[2] = { kind, id };

    return set_tagged(XO_EEXISTS, "Already_exists", p, 2, 0);
}

int
xo_err_bad_power_state(const char *found, const char *expected)
{
    const char *p[2] = { found, expected };

    return set_tagged(XO_EPOWERSTATE, "Bad_power_state", p, 2, 0);
}

int
xo_err_storage(const char *code, const char *const *params, size_t n)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, "Storage_backend_error");
    yajl_gen_array_open(g);
    json_gen_str(g, code);
    yajl_gen_array_open(g);
    for (size_t i = 0; i < n; i++)
        json_gen_str(g, params[i] ? params[i] : "");
    yajl_gen_array_close(g);
    yajl_gen_array_close(g);
    yajl_gen_array_close(g);
    return xo_err_set_json(XO_EBACKEND, json_gen_take(g));
}

int
xo_err_cancelled(const char *task_id)
{
    return set_tagged(XO_ECANCELLED, "Cancelled", &task_id, 1, 1);
}

int
xo_err_unimplemented(const char *what)
{
    return set_tagged(XO_EUNSUPPORTED, "Unimplemented", &what, 1, 1);
}

static int
internal_v(int code, const char *fmt, va_list ap)
{
    char *text = xvasprintf(fmt, ap);
    const char *p = text;

    set_tagged(code, "Internal_error", &p, 1, 1);
    free(text);
    return code;
}

int
xo_err_internal(const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = internal_v(XO_EFAIL, fmt, ap);
    va_end(ap);
    return rc;
}

int
xo_err_internal_code(int code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = internal_v(code, fmt, ap);
    va_end(ap);
    return rc;
}

int
xo_err_tag(int code, const char *tag)
{
    yajl_gen g = json_gen_new();

    json_gen_str(g, tag);
    return xo_err_set_json(code, json_gen_take(g));
}

char *
xo_err_take_json(int rc)
{
    char *json;

    if (err_json && err_code == rc) {
        json = err_json;
        err_json = NULL;
        err_code = 0;
        err_mirror();
        return json;
    }
    xo_err_clear();
    /* No detail recorded for this code: derive the closest wire error. */
    switch (rc) {
    case XO_ECONNECTED:
        xo_err_tag(rc, "Device_is_connected");
        break;
    case XO_ENOTCONNECTED:
        xo_err_tag(rc, "Device_not_connected");
        break;
    case XO_ENOTBUILT:
        xo_err_tag(rc, "Domain_not_built");
        break;
    case XO_EIO:
        xo_err_tag(rc, "IO_error");
        break;
    default:
        xo_err_internal_code(rc, "%s", xo_strerror(rc));
        break;
    }
    json = err_json;
    err_json = NULL;
    err_code = 0;
    err_mirror();
    return json;
}

void
xo_err_preserve(int rc, struct xo_err_saved *saved)
{
    saved->code = rc;
    saved->json = xo_err_take_json(rc);
}

int
xo_err_restore(struct xo_err_saved *saved)
{
    int rc = xo_err_set_json(saved->code, saved->json);

    saved->json = NULL;
    return rc;
}
