/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sm_testdrv: an in-process storage driver for tests, the demo and
 * benchmarks on the simulator. It keeps per-VDI attach/activate state, can
 * add latency per command (to model a slow SAN attach against a fast
 * activate), can fail a command on demand, and logs every call.
 *
 * Threading: all functions are thread-safe; latency sleeps do not hold the
 * driver's lock, so calls for different VDIs overlap like a real driver.
 */
#ifndef XENOPS_SM_TESTDRV_H
#define XENOPS_SM_TESTDRV_H

#include <stdbool.h>
#include <stddef.h>

#include "sm/sm.h"

struct sm_testdrv;

/*
 * Hold for tests: when this environment variable names a path at the
 * driver's creation, every attach waits, once counted in flight, while a
 * file exists at that path (at most SM_TESTDRV_HOLD_MAX_MS). A test
 * creates the file, starts the operation, sees the attach in flight (a
 * subtask, sm_testdrv_max_inflight), makes its change and removes the
 * file: the change surely lands during the attach.
 */
#define SM_TESTDRV_HOLD_ENV "XENOPS_TESTDRV_HOLD"
#define SM_TESTDRV_HOLD_MAX_MS 120000

extern const struct sm_driver_ops sm_testdrv_ops;

/* api_version: what query reports ("1.0" for a SMAPIv1-like SR). */
struct sm_testdrv *sm_testdrv_new(const char *api_version);

/* Latency in milliseconds for "attach", "activate", "deactivate",
 * "detach". Unknown command: XO_EINVAL. */
int sm_testdrv_set_latency(struct sm_testdrv *d, const char *command,
                           int ms);
/* The next `times` calls of command (for vdi, or any VDI when NULL) fail
 * with Storage_backend_error SR_BACKEND_FAILURE_46. */
int sm_testdrv_fail(struct sm_testdrv *d, const char *command,
                    const char *vdi, int times);

/* Calls so far, one line each: "<command> <dp> <vdi> <domain>". Returns a
 * malloc'd array of malloc'd strings. */
char **sm_testdrv_calls(struct sm_testdrv *d, size_t *n_r);
void sm_testdrv_calls_free(char **calls, size_t n);
void sm_testdrv_clear_calls(struct sm_testdrv *d);
/* Count of VDIs currently attached / active at the driver. */
int sm_testdrv_attached(struct sm_testdrv *d);
int sm_testdrv_active(struct sm_testdrv *d);

/* Largest number of driver calls seen in flight at once (proves that
 * calls for different VDIs overlap, without timing anything). */
int sm_testdrv_max_inflight(struct sm_testdrv *d);

/*
 * Parse the "sim-srs" config value (see config.h) and register one test
 * driver per entry with sm. Returns 0 or XO_EINVAL.
 */
int sm_testdrv_register_spec(struct sm *sm, const char *spec);

#endif
