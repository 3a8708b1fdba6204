/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * clock: the monotonic clock and a sleep that survives signals, for code
 * that measures or waits (timeouts, polls of a device's state).
 */
#ifndef XENOPS_UTIL_CLOCK_H
#define XENOPS_UTIL_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC in nanoseconds / in seconds. */
uint64_t clock_mono_ns(void);
double clock_mono_s(void);
/* Sleep ms milliseconds, resumed after a signal. */
void clock_sleep_ms(long ms);

#endif
