/* SPDX-License-Identifier: LGPL-2.1-only */

#include <stdlib.h>

#include "backend/backend.h"

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

void
backend_list_free(char **vms, size_t n)
{
    for (size_t i = 0; vms && i < n; i++)
        free(vms[i]);
    free(vms);
}
