/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * task_priv: what task.c exports for its tests only.
 */
#ifndef XENOPS_TASK_PRIV_H
#define XENOPS_TASK_PRIV_H

#include "task.h"

/* Threads blocked in task_wait on t now: a test waits for it to reach n
 * before it acts, instead of sleeping and hoping a waiter is blocked. */
int task_waiters(struct task *t);

#endif
