/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * sim_guest: a simulated guest for the simulator backend. It owns real
 * memory (anonymous mmap, whole 4 KiB pages) and, while it runs, a thread
 * that every heartbeat ticks a counter, notes the largest gap between ticks
 * (the downtime the guest sees) and writes to pseudo-random pages at a set
 * rate, marking them in a dirty bitmap when tracking is on. It does not know
 * about domains, devices or migration; it gives migration what it needs:
 * dirty tracking, page access, a checksum, and save/restore over an fd.
 *
 * Contract:
 * - States: paused (initial) and running. The thread is created at the
 *   first unpause. sim_guest_pause returns only when the thread is parked
 *   and can no longer touch memory; sim_guest_free stops and joins it.
 * - Threading: pause/unpause/free from one controlling thread at a time
 *   (the VM's queue). Counters, dirty tracking and page access are safe
 *   from any thread while the guest runs: a page is written before its
 *   dirty bit is set, so a page copied after its bit was collected is sent
 *   again in the next round. Checksum, save and restore need a paused guest
 *   for a consistent result; save and restore refuse a running one.
 * - Errors: XO_EINVAL (bad argument, bad image, with detail), XO_EIO,
 *   XO_ECANCELLED.
 */
#ifndef XENOPS_SIM_GUEST_H
#define XENOPS_SIM_GUEST_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_GUEST_PAGE_SIZE 4096
#define SIM_GUEST_MAGIC "XOSIMG01"     /* 8 bytes, no NUL in the image */
#define SIM_GUEST_HEADER_SIZE 40
#define SIM_GUEST_HEARTBEAT_MS_MAX 10000

struct sim_guest;

/*
 * A paused guest with mem_bytes (> 0, rounded up to whole pages) of zeroed
 * memory that, once running, dirties dirty_pages_per_sec pages per second
 * (0: none) and ticks every heartbeat_ms (1..SIM_GUEST_HEARTBEAT_MS_MAX).
 * XO_EINVAL for bad arguments, XO_ENOMEM if the memory cannot be mapped.
 */
int sim_guest_new(uint64_t mem_bytes, uint64_t dirty_pages_per_sec,
                  unsigned heartbeat_ms, struct sim_guest **g_r);
/* Stop the thread and free everything; NULL is a no-op. */
void sim_guest_free(struct sim_guest *g);

/* Park the thread (no-op when paused); returns once it is parked. */
void sim_guest_pause(struct sim_guest *g);
/* Run (starting the thread the first time); no-op when running. */
void sim_guest_unpause(struct sim_guest *g);
bool sim_guest_is_paused(struct sim_guest *g);

/* Ticks so far. */
uint64_t sim_guest_heartbeat(struct sim_guest *g);
/* CLOCK_MONOTONIC ns of the last tick, 0 if none yet. */
uint64_t sim_guest_last_tick_ns(struct sim_guest *g);
/* Largest gap between consecutive ticks since the last reset, in ns. */
uint64_t sim_guest_max_gap_ns(struct sim_guest *g);
void sim_guest_reset_max_gap(struct sim_guest *g);
/*
 * Carry the guest's clock over from another guest (migration without
 * save/restore): the next tick continues from heartbeat and measures its gap
 * from last_tick_ns (0: no gap for the next tick). Guest must be paused.
 */
void sim_guest_set_ticks(struct sim_guest *g, uint64_t heartbeat,
                         uint64_t last_tick_ns);

size_t sim_guest_n_pages(struct sim_guest *g);
uint64_t sim_guest_mem_bytes(struct sim_guest *g);
/* The page's memory (SIM_GUEST_PAGE_SIZE bytes), NULL if idx is out of
 * range. Borrowed, valid until sim_guest_free. */
uint8_t *sim_guest_page(struct sim_guest *g, size_t idx);

/* Number of uint64_t words of a dirty bitmap (bit i%64 of word i/64 is page
 * i). */
size_t sim_guest_bitmap_words(struct sim_guest *g);
/* Clear the bitmap and start marking written pages. */
void sim_guest_dirty_enable(struct sim_guest *g);
/* Stop marking; the bitmap is left as it is. */
void sim_guest_dirty_disable(struct sim_guest *g);
/* Move the bitmap into bitmap_out (sim_guest_bitmap_words words), clearing
 * it word by word atomically. Returns the number of dirty pages. */
size_t sim_guest_dirty_collect(struct sim_guest *g, uint64_t *bitmap_out);

/* FNV-1a 64 over all of memory. */
uint64_t sim_guest_checksum(struct sim_guest *g);

/*
 * Write the image to fd: header (SIM_GUEST_MAGIC, page size, page count,
 * heartbeat, last tick; little-endian) then every page. cancel (may be
 * NULL) is checked between chunks. Guest must be paused.
 */
int sim_guest_save(struct sim_guest *g, int fd, const atomic_bool *cancel);
/*
 * Read an image from fd into the paused guest. A bad magic, page size or
 * page count is XO_EINVAL with a detail, before memory is touched; a short
 * stream is XO_EIO. On success the heartbeat and last tick come from the
 * image; on failure memory contents are unspecified.
 */
int sim_guest_restore(struct sim_guest *g, int fd,
                      const atomic_bool *cancel);

#endif
