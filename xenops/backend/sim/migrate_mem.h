/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * migrate_mem: the memory pre-copy engine of live migration for the
 * simulated guest (sim_guest.h). The sender copies all pages while the
 * guest runs, then, round after round, the pages it dirtied meanwhile;
 * when the rest fits the downtime limit at the measured bandwidth (or
 * after max_iterations rounds, by policy) it has the caller pause the
 * guest and sends the last pages and the guest's clock. The receiver
 * writes them into a paused guest of the same size. It owns the frame
 * format (documented in migrate_mem.c); it does not own the connection,
 * the handshakes around it, the VM's devices or its pause/unpause policy.
 *
 * Contract:
 * - Both sides work on a connected stream fd (a socket; a pipe works too)
 *   that the caller owns; they read and write exactly the frames of one
 *   migration, never a byte more, so the caller can keep using the fd.
 * - Sender: the guest keeps running; dirty tracking is on only during the
 *   call. opts->pause is called at most once, at the switch-over; it must
 *   return with the guest paused. Before the switch-over nothing but dirty
 *   tracking touches the guest; just before the pause its largest heartbeat
 *   gap is reset. After a failure past the pause (stats->paused) the guest
 *   stays paused and the caller decides.
 * - Receiver: the guest must be paused, with the sender's page count; on
 *   success its memory and clock equal the source's at the pause. On any
 *   failure its memory is unspecified: destroy it.
 * - Errors: XO_EINVAL (bad options, malformed stream, with detail),
 *   XO_EIO (the connection failed or closed), XO_ETIMEDOUT (no progress on
 *   the fd for io_timeout_ms; or, from the sender with policy ABORT, the
 *   migration would exceed the maximum downtime: stats->downtime_refused),
 *   XO_ECANCELLED (the cancel flag), or, from the receiver, the sender's
 *   code when it aborted the stream (stats->abort_code).
 * - Threading: one call per guest at a time; the callbacks run on the
 *   calling thread.
 */
#ifndef XENOPS_MIGRATE_MEM_H
#define XENOPS_MIGRATE_MEM_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/sim/sim_guest.h"

/* Live rounds, round 0 (every page) included. */
#define MIGRATE_MEM_MAX_ROUNDS 64
/* Default for io_timeout_ms: how long a read or write may make no
 * progress. */
#define MIGRATE_MEM_IO_TIMEOUT_MS 30000

enum migrate_mem_policy {
    /* Pause anyway after max_iterations: the downtime may exceed the
     * limit. */
    MIGRATE_MEM_POLICY_FORCE = 0,
    /* Give up: the guest stays running on the source. */
    MIGRATE_MEM_POLICY_ABORT = 1,
};

/* What the progress callback sees after each live round. */
struct migrate_mem_progress {
    unsigned round;             /* the round just sent, 0 = every page */
    uint64_t bytes_sent;        /* on the wire so far, headers included */
    uint64_t bytes_remaining;   /* dirty pages now * page size */
    uint64_t dirty_rate;        /* pages/s dirtied during the round */
    uint64_t bandwidth;         /* page bytes/s, as used for the decision */
};

struct migrate_mem_opts {
    /* Switch over when remaining bytes / bandwidth <= this. */
    uint64_t max_downtime_ms;
    /* 1..MIGRATE_MEM_MAX_ROUNDS live rounds before the policy applies. */
    unsigned max_iterations;
    enum migrate_mem_policy policy;
    bool compress;              /* zstd stream for the pages */
    int compress_level;         /* 0: 1 (fast) */
    /* Send a checksum of all memory with the end marker (computed while
     * the guest is paused, so it lengthens the downtime); the receiver
     * then checks its copy. */
    bool verify_memory;
    unsigned io_timeout_ms;     /* 0: MIGRATE_MEM_IO_TIMEOUT_MS */
    /* Checked between frames and when a receive's wait wakes; may be
     * NULL. A receive waiting on a silent stream wakes only when the
     * caller also shuts fd's read side down (shutdown(2), SHUT_RD), e.g.
     * from its task's cancel callback. */
    const atomic_bool *cancel;
    /* Sender, mandatory: pause the guest; 0 or an xo_err code. */
    int (*pause)(void *arg);
    void *pause_arg;
    /* Sender, optional. */
    void (*progress)(const struct migrate_mem_progress *p, void *arg);
    void *progress_arg;
};

struct migrate_mem_round_stats {
    uint64_t pages;
    uint64_t bytes;             /* on the wire */
    uint64_t ns;
};

/* Filled by either side (zeroed at the start of the call). */
struct migrate_mem_stats {
    uint64_t bytes;             /* on the wire, every frame */
    uint64_t page_bytes;        /* page payload before compression */
    uint64_t pages;             /* pages moved, all rounds */
    unsigned rounds;            /* live rounds, round 0 included */
    struct migrate_mem_round_stats round[MIGRATE_MEM_MAX_ROUNDS];
    struct migrate_mem_round_stats final; /* stop-and-copy */
    uint64_t precopy_ns;        /* start to the switch-over */
    /* Sender: pause returned to end marker written; receiver: first
     * final-round frame (or end marker) to the copy being complete. */
    uint64_t final_ns;
    uint64_t bandwidth;         /* sender: page bytes/s at the decision */
    uint64_t dirty_rate;        /* sender: pages/s in the last live round */
    uint64_t expected_downtime_ms; /* sender: estimate at the decision */
    double compress_ratio;      /* pages payload before / after zstd */
    bool converged;             /* the rest fitted max_downtime_ms */
    bool paused;                /* sender: the pause callback succeeded */
    bool downtime_refused;      /* sender: policy ABORT gave up */
    uint64_t heartbeat;         /* the guest's ticks at the pause */
    /* Receiver: guest-visible downtime, see migrate_mem_measure_downtime. */
    uint64_t guest_downtime_ns;
    int abort_code;             /* receiver: the sender's abort code */
};

/*
 * Pre-copy g's memory to the receiver on fd, then pause g through o->pause
 * and send the rest and the end marker. ABORT policy: XO_ETIMEDOUT with the
 * guest untouched. On failure before the pause an abort marker is sent
 * when the stream allows it. st may be NULL.
 */
int migrate_mem_send(struct sim_guest *g, int fd,
                     const struct migrate_mem_opts *o,
                     struct migrate_mem_stats *st);

/*
 * Receive one migration from fd into the paused guest g (same page count)
 * until the end marker; then set g's clock to continue from the source's
 * last tick. Uses o->cancel and o->io_timeout_ms (o may be NULL). st may
 * be NULL.
 */
int migrate_mem_receive(struct sim_guest *g, int fd,
                        const struct migrate_mem_opts *o,
                        struct migrate_mem_stats *st);

/*
 * After the caller unpaused the received guest g: wait (up to
 * o->io_timeout_ms, honouring o->cancel) for its first tick and store the
 * largest heartbeat gap, the downtime the guest saw, in
 * st->guest_downtime_ns. st is the receiver's stats.
 */
int migrate_mem_measure_downtime(struct sim_guest *g,
                                 const struct migrate_mem_opts *o,
                                 struct migrate_mem_stats *st);

#endif
