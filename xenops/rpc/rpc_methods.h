/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * rpc_methods: the method table of the message interface: xenopsd's wire
 * names (reference/interfaces.md 1.5) mapped to server.h calls. Argument
 * decoding happens here, once per argument kind; every handler validates
 * before it calls the server, so bad input changes nothing.
 */
#ifndef XENOPS_RPC_METHODS_H
#define XENOPS_RPC_METHODS_H

#include <stddef.h>

#include "rpc/rpc.h"

struct admin;
struct migrate;
struct server;

/* The ctx handed to every handler. */
struct rpc_methods_ctx {
    struct server *srv;
    struct admin *admin;
    struct migrate *mig;        /* NULL until live migration is up */
    /* DEBUG.shutdown: asks the daemon to exit (called once). */
    void (*shutdown)(void *opaque);
    void *shutdown_opaque;
};

extern const struct rpc_method rpc_methods_table[];
extern const size_t rpc_methods_count;

#endif
