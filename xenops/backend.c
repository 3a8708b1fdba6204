/* SPDX-License-Identifier: LGPL-2.1-only */

#include "backend.h"

const char *
backend_power_name(enum backend_power p)
{
    switch (p) {
    case BACKEND_HALTED: return "Halted";
    case BACKEND_RUNNING: return "Running";
    case BACKEND_PAUSED: return "Paused";
    case BACKEND_SUSPENDED: return "Suspended";
    }
    return "Halted";
}
