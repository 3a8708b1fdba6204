/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * errors: the project's error codes and the one table that maps them to
 * xenopsd's wire errors (Errors.error in xenops_interface.ml).
 *
 * Contract:
 * - Every function returns 0 (XO_OK) or a negative enum xo_err. errno never
 *   crosses a module boundary.
 * - The function that detects a failure may attach the precise wire error
 *   (e.g. ["Does_not_exist", ["VM", id]]) with one of the xo_err_* setters;
 *   the detail is thread-local and read back once with xo_err_take_json().
 *   Each setter returns its code, so "return xo_err_internal(...)" reads well.
 * - Thread-safety: all state here is per thread.
 */
#ifndef XENOPS_ERRORS_H
#define XENOPS_ERRORS_H

#include <stddef.h>

enum xo_err {
    XO_OK = 0,
    XO_EFAIL = -1,         /* generic failure, see detail */
    XO_ENOMEM = -2,
    XO_EINVAL = -3,        /* bad input: changes nothing */
    XO_ENOTFOUND = -4,     /* Does_not_exist */
    XO_EEXISTS = -5,       /* Already_exists */
    XO_ECONFLICT = -6,     /* stale generation in a store update */
    XO_ETIMEDOUT = -7,
    XO_ECANCELLED = -8,    /* Cancelled task_id */
    XO_EUNSUPPORTED = -9,  /* Unimplemented */
    XO_EBACKEND = -10,     /* Storage_backend_error */
    XO_EIO = -11,          /* IO_error */
    XO_EPOWERSTATE = -12,  /* Bad_power_state */
    XO_ECONNECTED = -13,   /* Device_is_connected */
    XO_ENOTBUILT = -14,    /* Domain_not_built */
    XO_ENOTCONNECTED = -15,/* Device_not_connected */
    XO_EINJECTED = -16,    /* a test-injected crash point fired */
};

/* Short English text for a code; never NULL. */
const char *xo_strerror(int code);

/*
 * Setters of the thread's wire error detail. Each replaces any previous
 * detail and returns the code it stands for.
 */
int xo_err_does_not_exist(const char *kind, const char *id);
int xo_err_already_exists(const char *kind, const char *id);
int xo_err_bad_power_state(const char *found, const char *expected);
/* Storage_backend_error [code, [params...]]. */
int xo_err_storage(const char *code, const char *const *params, size_t n);
int xo_err_cancelled(const char *task_id);
int xo_err_unimplemented(const char *what);
/* Internal_error <text>; printf-style. Returns XO_EFAIL. */
int xo_err_internal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
/* Same text, but returns the given code (e.g. XO_EINVAL for bad input). */
int xo_err_internal_code(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A variant without arguments: "Device_is_connected" etc. */
int xo_err_tag(int code, const char *tag);
/* Takes ownership of json (a complete Errors.error value). */
int xo_err_set_json(int code, char *json);

/*
 * The wire error for a failure with code rc, as a malloc'd JSON text that
 * the caller frees. Uses (and clears) the thread's detail when it was set for
 * the same code, otherwise derives a default from rc.
 */
char *xo_err_take_json(int rc);

/* Forget the thread's detail. */
void xo_err_clear(void);

/*
 * Keep a failure's wire error aside while cleanup steps run (they may set
 * and clear their own), then make it the thread's error again, as
 * libvirt's virErrorPreserveLast / virErrorRestore:
 *
 *     xo_err_preserve(rc, &saved);
 *     ...cleanup...
 *     rc = xo_err_restore(&saved);
 *
 * preserve takes the detail (xo_err_take_json(rc)); restore sets it back
 * and returns the code. Every preserve is matched by one restore.
 */
struct xo_err_saved {
    int code;
    char *json;
};
void xo_err_preserve(int rc, struct xo_err_saved *saved);
int xo_err_restore(struct xo_err_saved *saved);

#endif
