/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sm_fixture: the set-up the storage tests share (test_sm_exec,
 * test_smapiv1, test_smapiv3): a temp dir, optionally an SR directory and
 * the sample drivers' call log (XO_SM_LOG), the adapter instance under
 * test, and the checks of what the drivers saw and answered. Failures are
 * cmocka assertions.
 */
#ifndef XENOPS_TESTS_SM_FIXTURE_H
#define XENOPS_TESTS_SM_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "model.h"
#include "sm/sm.h"
#include "util/json.h"

struct sm_fixture {
    char dir[64];           /* the test's temp dir */
    char *sr_dir;           /* <dir>/sr: the SR's files */
    char *log;              /* <dir>/calls.log: the drivers' call log */
    char *dconf;            /* device_config {"path": sr_dir} */
    char *drivers;          /* the SM dir (v1) or plugin root (v3) */
    char *sr_uri;           /* what SR.attach returned (v3) */
    const struct sm_driver_ops *ops;    /* the instance under test */
    void *priv;
};

/*
 * A fixture with a fresh /tmp/<name>.XXXXXX. with_sr: also sr_dir,
 * dconf, and log, named to the drivers by XO_SM_LOG.
 */
struct sm_fixture *sm_fixture_new(const char *name, bool with_sr);

/* Free the instance (if priv is still set), remove the dir, unset every
 * XO_SM_* knob, clear the error detail and free f. */
void sm_fixture_free(struct sm_fixture *f);

/* $top_srcdir/rel (top_srcdir "." if unset) as an absolute path. */
char *sm_fixture_srcdir_path(const char *rel);

/* Write body to path and give it mode. */
void sm_fixture_write_file(const char *path, const char *body, mode_t mode);

/* A 1 MiB file name in sr_dir: a VDI (v1) or volume (v3). */
void sm_fixture_make_vdi(const struct sm_fixture *f, const char *name);

/* The call log's entries, at most max; caller frees each with
 * yajl_tree_free. */
size_t sm_fixture_read_log(const struct sm_fixture *f, yajl_val *entries,
                           size_t max);

/* "cmd|cmd|..." from the log; with_driver: "driver:cmd|...". */
char *sm_fixture_log_calls(const struct sm_fixture *f, bool with_driver);

/* Compact JSON of entry i's args (member order as the driver saw it). */
char *sm_fixture_log_args(const struct sm_fixture *f, size_t i);

/*
 * rc and the thread's error detail must be XO_EBACKEND with
 * Storage_backend_error [code, [driver, command, vdi, reason, stdout,
 * stderr]]; returns those params (the caller frees the tree through
 * *tree_r).
 */
yajl_val sm_fixture_script_error(int rc, const char *code,
                                 const char *driver, const char *command,
                                 const char *vdi, yajl_val *tree_r);

/* Dead = gone or a zombie waiting for its parent (init) to reap it. */
bool sm_fixture_process_dead(long pid);

/* A VDI disk of sr (caller disposes it with model_disk_dispose). */
void sm_fixture_vdi_disk(struct model_disk *d, const char *sr,
                         const char *vdi);

#endif
