/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * updates_priv: what updates.c exports for its tests only.
 */
#ifndef XENOPS_UPDATES_PRIV_H
#define XENOPS_UPDATES_PRIV_H

#include "updates.h"

/* Threads blocked in updates_get on u now (see task_waiters). */
int updates_waiters(struct updates *u);

#endif
