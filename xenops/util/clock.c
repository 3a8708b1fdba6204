/* SPDX-License-Identifier: LGPL-2.1-only */
#include "util/clock.h"

#include <errno.h>
#include <time.h>

uint64_t
clock_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

double
clock_mono_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

void
clock_sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}
