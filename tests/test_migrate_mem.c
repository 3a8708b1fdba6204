/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the memory pre-copy engine: real migrations between two
 * simulated guests over a socketpair (sender thread, receiver thread,
 * the source guest dirtying while it runs), the switch-over policies,
 * cancel, and a receiver fed corrupt, truncated and hand-made frames.
 *
 * Determinism without timing: where a test needs "the guest dirtied pages
 * during this round" (downtime limit 0 must never be met), the receiver
 * starts reading only after the source ticked twice since the stream
 * began, and the progress callback waits two ticks before the next round.
 */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim/migrate_mem.h"
#include "backend/sim/sim_guest.h"
#include "testutil.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MIB (1024u * 1024u)
#define PAGE SIM_GUEST_PAGE_SIZE
/* Deadlock guard for waits and stream I/O; never a timing check. */
#define WAIT_LIMIT_MS 20000

static uint64_t
now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait until the guest has ticked at least target times; false if it
 * did not within the guard. Safe on any thread. */
static bool
ticked(struct sim_guest *g, uint64_t target)
{
    return testutil_wait_heartbeat(g, target, WAIT_LIMIT_MS);
}

/* The same with an assertion, for the test's main thread. */
static void
wait_heartbeat(struct sim_guest *g, uint64_t target)
{
    assert_true(ticked(g, target));
}

static struct sim_guest *
guest_new(uint64_t bytes, uint64_t rate, unsigned hb_ms)
{
    struct sim_guest *g = NULL;

    assert_int_equal(sim_guest_new(bytes, rate, hb_ms, &g), 0);
    return g;
}

/* Does the thread's error detail for rc mention text? */
static bool
detail_has(int rc, const char *text)
{
    char *json = xo_err_take_json(rc);
    bool found = json && strstr(json, text);

    if (!found)
        print_message("detail %s lacks '%s'\n", json ? json : "(none)",
                      text);
    free(json);
    return found;
}

/* ---- a migration between two threads ---- */

struct relay {
    int in, out;
    long flip_at;               /* -1: none */
    long cut_at;                /* -1: none */
};

struct run {
    struct sim_guest *src, *dst;
    struct migrate_mem_opts so, ro;
    struct migrate_mem_stats ss, rs;
    int sfd, rfd;
    int src_rc, dst_rc;
    char *src_detail, *dst_detail;
    bool gate;                  /* receiver waits for two source ticks */
    bool relay_on;
    struct relay relay;
    atomic_bool cancel;
    atomic_bool rcancel;
    int cancel_at_round;        /* -1: never */
    bool wait_ticks;            /* progress callback waits two ticks */
    int pauses;
    int progress_calls;
    /* cmocka asserts only on the main thread; helpers note failures. */
    bool thread_failed;
};

static int
test_pause(void *arg)
{
    struct run *r = arg;

    sim_guest_pause(r->src);
    r->pauses++;
    return 0;
}

static void
test_progress(const struct migrate_mem_progress *p, void *arg)
{
    struct run *r = arg;

    if (p->round != (unsigned)r->progress_calls || p->bytes_sent == 0)
        r->thread_failed = true;
    r->progress_calls++;
    if (r->cancel_at_round >= 0 && p->round == (unsigned)r->cancel_at_round)
        r->cancel = true;
    if (r->wait_ticks && !ticked(r->src, sim_guest_heartbeat(r->src) + 2))
        r->thread_failed = true;
}

static void *
sender_main(void *arg)
{
    struct run *r = arg;

    r->src_rc = migrate_mem_send(r->src, r->sfd, &r->so, &r->ss);
    r->src_detail = r->src_rc ? xo_err_take_json(r->src_rc) : NULL;
    close(r->sfd);
    return NULL;
}

static void *
receiver_main(void *arg)
{
    struct run *r = arg;

    if (r->gate) {
        struct pollfd p = { .fd = r->rfd, .events = POLLIN };

        /* The stream has begun, so dirty tracking is on: let the guest
         * dirty pages while round 0 cannot finish. */
        if (poll(&p, 1, WAIT_LIMIT_MS) != 1 ||
            !ticked(r->src, sim_guest_heartbeat(r->src) + 2))
            r->thread_failed = true;
    }
    r->dst_rc = migrate_mem_receive(r->dst, r->rfd, &r->ro, &r->rs);
    r->dst_detail = r->dst_rc ? xo_err_take_json(r->dst_rc) : NULL;
    close(r->rfd);
    return NULL;
}

/* Forward in to out, flipping one byte or cutting the stream. */
static void *
relay_main(void *arg)
{
    struct relay *rl = arg;
    uint8_t buf[65536];
    long pos = 0;

    for (;;) {
        ssize_t n = read(rl->in, buf, sizeof(buf));
        size_t len, off = 0;

        if (n <= 0)
            break;
        len = (size_t)n;
        if (rl->flip_at >= pos && rl->flip_at < pos + n)
            buf[rl->flip_at - pos] ^= 0x20;
        if (rl->cut_at >= 0 && pos + n > rl->cut_at)
            len = (size_t)(rl->cut_at - pos);
        while (off < len) {
            ssize_t w = send(rl->out, buf + off, len - off, MSG_NOSIGNAL);

            if (w <= 0)
                goto done;
            off += (size_t)w;
        }
        pos += n;
        if (rl->cut_at >= 0 && pos >= rl->cut_at)
            break;
    }
done:
    close(rl->out);
    close(rl->in);
    return NULL;
}

static void
run_init(struct run *r, struct sim_guest *src, struct sim_guest *dst)
{
    memset(r, 0, sizeof(*r));
    r->src = src;
    r->dst = dst;
    r->so.max_downtime_ms = 50;
    r->so.max_iterations = 10;
    r->so.policy = MIGRATE_MEM_POLICY_FORCE;
    r->so.io_timeout_ms = WAIT_LIMIT_MS;
    r->so.cancel = &r->cancel;
    r->so.pause = test_pause;
    r->so.pause_arg = r;
    r->so.progress = test_progress;
    r->so.progress_arg = r;
    r->ro.io_timeout_ms = WAIT_LIMIT_MS;
    r->ro.cancel = &r->rcancel;
    r->cancel_at_round = -1;
    r->relay.flip_at = -1;
    r->relay.cut_at = -1;
}

/* Small socket buffers, so that a round of a few MiB cannot hide in
 * them: the sender runs at the receiver's pace. */
static void
pair_new(int sv[2])
{
    int size = 64 * 1024;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size,
                                    sizeof(size)), 0);
        assert_int_equal(setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size,
                                    sizeof(size)), 0);
    }
}

static void
run_migration(struct run *r)
{
    pthread_t st, rt, lt;
    int sv[2], lv[2];

    /* A guest that never ticked carries no clock to measure a gap. */
    if (!sim_guest_is_paused(r->src))
        wait_heartbeat(r->src, 1);
    pair_new(sv);
    r->sfd = sv[0];
    r->rfd = sv[1];
    if (r->relay_on) {
        pair_new(lv);
        r->relay.in = sv[1];
        r->relay.out = lv[0];
        r->rfd = lv[1];
        assert_int_equal(pthread_create(&lt, NULL, relay_main, &r->relay),
                         0);
    }
    assert_int_equal(pthread_create(&rt, NULL, receiver_main, r), 0);
    assert_int_equal(pthread_create(&st, NULL, sender_main, r), 0);
    pthread_join(st, NULL);
    pthread_join(rt, NULL);
    if (r->relay_on)
        pthread_join(lt, NULL);
    assert_false(r->thread_failed);
}

static void
run_dispose(struct run *r)
{
    free(r->src_detail);
    free(r->dst_detail);
    sim_guest_free(r->src);
    sim_guest_free(r->dst);
}

static void
print_stats(const char *what, const struct migrate_mem_stats *s)
{
    print_message("%s: %llu bytes, %llu pages, %u rounds (round 0 %llu "
                  "pages %.1f ms, last live %llu pages), final %llu pages "
                  "in %.2f ms, pre-copy %.1f ms, bandwidth %.0f MB/s, "
                  "ratio %.1f\n", what, (unsigned long long)s->bytes,
                  (unsigned long long)s->pages, s->rounds,
                  (unsigned long long)s->round[0].pages,
                  s->round[0].ns / 1e6,
                  (unsigned long long)
                      s->round[s->rounds ? s->rounds - 1 : 0].pages,
                  (unsigned long long)s->final.pages, s->final_ns / 1e6,
                  s->precopy_ns / 1e6, s->bandwidth / 1e6,
                  s->compress_ratio);
}

/* A successful migration: equal memory and clock, consistent stats, and
 * the guest-visible downtime covers the time the copy stayed paused. */
static void
check_exact_copy(struct run *r)
{
    uint64_t sum = 0, t_received, t_unpause;

    assert_int_equal(r->src_rc, 0);
    assert_int_equal(r->dst_rc, 0);
    t_received = now_ns();
    assert_int_equal(r->pauses, 1);
    assert_true(sim_guest_is_paused(r->src));
    assert_true(r->ss.paused);
    assert_true(sim_guest_checksum(r->src) == sim_guest_checksum(r->dst));
    assert_int_equal(sim_guest_heartbeat(r->dst),
                     sim_guest_heartbeat(r->src));
    assert_int_equal(r->rs.heartbeat, r->ss.heartbeat);
    assert_true(r->ss.rounds >= 1);
    assert_true(r->ss.rounds <= r->so.max_iterations);
    assert_int_equal(r->rs.rounds, r->ss.rounds);
    assert_int_equal(r->rs.bytes, r->ss.bytes);
    assert_int_equal(r->rs.pages, r->ss.pages);
    assert_int_equal(r->rs.final.pages, r->ss.final.pages);
    assert_int_equal(r->ss.round[0].pages, sim_guest_n_pages(r->src));
    for (unsigned i = 0; i < r->ss.rounds; i++)
        sum += r->ss.round[i].pages;
    assert_int_equal(sum + r->ss.final.pages, r->ss.pages);
    assert_int_equal(r->progress_calls, (int)r->ss.rounds);

    /* Keep the copy paused a while: that is downtime the guest sees. */
    testutil_sleep_ms(20);
    t_unpause = now_ns();
    sim_guest_unpause(r->dst);
    assert_int_equal(migrate_mem_measure_downtime(r->dst, &r->ro, &r->rs),
                     0);
    assert_true(r->rs.guest_downtime_ns >= t_unpause - t_received);
    assert_true(sim_guest_heartbeat(r->dst) > sim_guest_heartbeat(r->src));
}

static void
exact_copy(bool compress)
{
    struct run r;

    run_init(&r, guest_new(16 * MIB, 3000, 2), guest_new(16 * MIB, 0, 2));
    r.so.compress = compress;
    r.so.verify_memory = compress;
    sim_guest_unpause(r.src);
    wait_heartbeat(r.src, 3);
    run_migration(&r);
    check_exact_copy(&r);
    if (compress) {
        assert_true(r.ss.compress_ratio > 1.0);
        assert_true(r.rs.compress_ratio == r.ss.compress_ratio);
        assert_true(r.ss.bytes < r.ss.page_bytes);
    } else {
        assert_true(r.ss.compress_ratio == 1.0);
        assert_true(r.ss.bytes > r.ss.page_bytes);
    }
    print_stats(compress ? "16 MiB, 3000 pages/s, zstd" :
                           "16 MiB, 3000 pages/s", &r.ss);
    print_message("guest-visible downtime %.2f ms\n",
                  r.rs.guest_downtime_ns / 1e6);
    run_dispose(&r);
}

static void
test_migrate_mem_exact_copy(void **state)
{
    exact_copy(false);
}

static void
test_migrate_mem_exact_copy_compressed(void **state)
{
    exact_copy(true);
}

/* Downtime limit 0 with a guest that always dirties: never fits. */
static void
never_converges(struct run *r, enum migrate_mem_policy policy)
{
    run_init(r, guest_new(4 * MIB, 5000, 2), guest_new(4 * MIB, 0, 2));
    r->so.max_downtime_ms = 0;
    r->so.max_iterations = 3;
    r->so.policy = policy;
    r->gate = true;
    r->wait_ticks = true;
    sim_guest_unpause(r->src);
    run_migration(r);
}

static void
test_migrate_mem_force_after_max_iterations(void **state)
{
    struct run r;

    never_converges(&r, MIGRATE_MEM_POLICY_FORCE);
    check_exact_copy(&r);
    assert_int_equal(r.ss.rounds, r.so.max_iterations);
    assert_false(r.ss.converged);
    assert_true(r.ss.final.pages > 0);
    run_dispose(&r);
}

static void
test_migrate_mem_abort_policy_keeps_source_running(void **state)
{
    struct run r;
    uint64_t hb;

    never_converges(&r, MIGRATE_MEM_POLICY_ABORT);
    assert_int_equal(r.src_rc, XO_ETIMEDOUT);
    assert_non_null(strstr(r.src_detail, "maximum downtime"));
    assert_int_equal(r.pauses, 0);
    assert_false(r.ss.paused);
    assert_true(r.ss.downtime_refused);
    assert_int_equal(r.ss.rounds, r.so.max_iterations);
    assert_false(sim_guest_is_paused(r.src));
    hb = sim_guest_heartbeat(r.src);
    wait_heartbeat(r.src, hb + 2);
    /* The receiver was told, with the reason. */
    assert_int_equal(r.dst_rc, XO_ETIMEDOUT);
    assert_int_equal(r.rs.abort_code, XO_ETIMEDOUT);
    assert_non_null(strstr(r.dst_detail, "aborted by the sender"));
    assert_non_null(strstr(r.dst_detail, "maximum downtime"));
    run_dispose(&r);
}

static void
test_migrate_mem_low_dirty_rate_converges(void **state)
{
    struct run r;

    run_init(&r, guest_new(8 * MIB, 20, 10), guest_new(8 * MIB, 0, 10));
    r.so.max_downtime_ms = 5000;
    r.so.max_iterations = 30;
    sim_guest_unpause(r.src);
    run_migration(&r);
    check_exact_copy(&r);
    assert_true(r.ss.converged);
    assert_true(r.ss.rounds < r.so.max_iterations);
    assert_true(r.ss.expected_downtime_ms <= r.so.max_downtime_ms);
    run_dispose(&r);
}

static void
test_migrate_mem_cancel_stops_both_sides(void **state)
{
    struct run r;

    run_init(&r, guest_new(4 * MIB, 5000, 2), guest_new(4 * MIB, 0, 2));
    r.so.max_downtime_ms = 0;
    r.gate = true;
    r.wait_ticks = true;
    r.cancel_at_round = 0;
    sim_guest_unpause(r.src);
    run_migration(&r);
    assert_int_equal(r.src_rc, XO_ECANCELLED);
    assert_int_equal(r.pauses, 0);
    assert_int_equal(r.ss.rounds, 1);
    assert_false(sim_guest_is_paused(r.src));
    assert_int_equal(r.dst_rc, XO_ECANCELLED);
    assert_int_equal(r.rs.abort_code, XO_ECANCELLED);
    assert_non_null(strstr(r.dst_detail, "cancelled"));
    run_dispose(&r);
}

/* The receiver's own cancel flag ends a wait on a silent stream, once
 * the read side is shut down as a cancel callback does: that wakes the
 * wait, which then sees the flag rather than a truncated stream. */
static void
test_migrate_mem_receiver_cancel(void **state)
{
    struct run r;
    pthread_t rt;
    int sv[2];

    run_init(&r, guest_new(MIB, 0, 10), guest_new(MIB, 0, 10));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r.rfd = sv[1];
    assert_int_equal(pthread_create(&rt, NULL, receiver_main, &r), 0);
    r.rcancel = true;
    assert_int_equal(shutdown(sv[1], SHUT_RD), 0);
    pthread_join(rt, NULL);
    assert_int_equal(r.dst_rc, XO_ECANCELLED);
    close(sv[0]);
    run_dispose(&r);
}

/* A relay damages the stream; the receiver refuses it, the sender fails on
 * the closed connection, and the source keeps running. */
static void
damaged_stream(long flip_at, long cut_at, const char *detail)
{
    struct run r;

    run_init(&r, guest_new(4 * MIB, 1000, 5), guest_new(4 * MIB, 0, 5));
    r.relay_on = true;
    r.relay.flip_at = flip_at;
    r.relay.cut_at = cut_at;
    sim_guest_unpause(r.src);
    run_migration(&r);
    assert_int_equal(r.dst_rc, XO_EINVAL);
    assert_non_null(strstr(r.dst_detail, detail));
    assert_int_equal(r.src_rc, XO_EIO);
    assert_int_equal(r.pauses, 0);
    assert_false(sim_guest_is_paused(r.src));
    run_dispose(&r);
}

static void
test_migrate_mem_corrupt_frame_refused(void **state)
{
    /* A byte of page data in the first PAGES frame. */
    damaged_stream(32 + 16 + 600, -1, "checksum mismatch");
}

static void
test_migrate_mem_truncated_stream_refused(void **state)
{
    damaged_stream(-1, 32 + 16 + 1000, "ends early");
    damaged_stream(-1, 32, "ends early");
}

static void
test_migrate_mem_wrong_page_count_refused(void **state)
{
    struct run r;

    run_init(&r, guest_new(4 * MIB, 1000, 5), guest_new(8 * MIB, 0, 5));
    sim_guest_unpause(r.src);
    run_migration(&r);
    assert_int_equal(r.dst_rc, XO_EINVAL);
    assert_non_null(strstr(r.dst_detail, "pages, the guest has"));
    assert_int_equal(r.src_rc, XO_EIO);
    assert_false(sim_guest_is_paused(r.src));
    run_dispose(&r);
}

/* ---- hand-made frames ---- */

static uint32_t
crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    crc = ~crc;
    while (n--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
    }
    return ~crc;
}

static void
put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

struct buf {
    uint8_t *data;
    size_t len;
};

/* Append a frame; declared_len differs from len to lie about the size. */
static void
add_frame_raw(struct buf *b, const char *magic, unsigned version,
              unsigned type, unsigned flags, const uint8_t *payload,
              size_t len, uint64_t declared_len)
{
    uint8_t *h;

    b->data = xrealloc(b->data, b->len + 16 + len);
    h = b->data + b->len;
    memcpy(h, magic, 4);
    h[4] = (uint8_t)version;
    h[5] = (uint8_t)type;
    put_be(h + 6, flags, 2);
    put_be(h + 8, declared_len, 4);
    if (len)
        memcpy(h + 16, payload, len);
    put_be(h + 12, crc32c(crc32c(0, h, 12), h + 16, len), 4);
    b->len += 16 + len;
}

static void
add_frame(struct buf *b, unsigned type, unsigned flags,
          const uint8_t *payload, size_t len)
{
    add_frame_raw(b, "XOMM", 1, type, flags, payload, len, len);
}

static void
add_hello(struct buf *b, uint64_t n_pages, unsigned hflags)
{
    uint8_t p[16];

    put_be(p, n_pages, 8);
    put_be(p + 8, PAGE, 4);
    put_be(p + 12, hflags, 4);
    add_frame(b, 1, 0, p, sizeof(p));
}

/* A PAGES frame whose pages are filled with their index + fill. */
static void
add_pages(struct buf *b, unsigned round, unsigned flags,
          const uint64_t *idx, size_t count, uint8_t fill)
{
    size_t len = 8 + count * (8 + PAGE);
    uint8_t *p = xcalloc(1, len);

    put_be(p, round, 4);
    put_be(p + 4, count, 4);
    for (size_t i = 0; i < count; i++) {
        put_be(p + 8 + i * 8, idx[i], 8);
        memset(p + 8 + count * 8 + i * PAGE, (int)(idx[i] + fill), PAGE);
    }
    add_frame(b, 2, flags, p, len);
    free(p);
}

static void
add_end(struct buf *b, unsigned rounds, bool with_sum, uint64_t sum)
{
    uint8_t p[32] = { 0 };

    put_be(p, 7, 8);
    put_be(p + 16, sum, 8);
    put_be(p + 24, with_sum ? 1 : 0, 4);
    put_be(p + 28, rounds, 4);
    add_frame(b, 3, 0, p, sizeof(p));
}

#define FEW_PAGES 4

/* Feed the bytes to a receiver for a FEW_PAGES guest; the stream then
 * ends. Returns the receiver's code; *detail_ok tells whether the
 * detail names the expected refusal. */
static int
feed(struct buf *b, struct sim_guest *g, const char *detail)
{
    int sv[2];
    int rc;

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], b->data, b->len), (ssize_t)b->len);
    shutdown(sv[0], SHUT_WR);
    rc = migrate_mem_receive(g, sv[1], NULL, NULL);
    if (detail)
        assert_true(detail_has(rc, detail));
    close(sv[0]);
    close(sv[1]);
    free(b->data);
    b->data = NULL;
    b->len = 0;
    return rc;
}

static const uint64_t all_few[FEW_PAGES] = { 0, 1, 2, 3 };

static bool
page_is(struct sim_guest *g, size_t idx, uint8_t v)
{
    const uint8_t *p = sim_guest_page(g, idx);

    for (size_t i = 0; i < PAGE; i++)
        if (p[i] != v)
            return false;
    return true;
}

/* The builder agrees with the engine: a well-made stream is accepted. */
static void
test_migrate_mem_handmade_stream_accepted(void **state)
{
    struct sim_guest *g = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct sim_guest *want = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct buf b = { 0 };
    struct migrate_mem_stats st;
    uint64_t one = 2;
    int sv[2];

    for (size_t i = 0; i < FEW_PAGES; i++)
        memset(sim_guest_page(want, i), (int)(i + (i == 2 ? 9 : 1)), PAGE);
    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, all_few, FEW_PAGES, 1);
    add_pages(&b, 1, 2, &one, 1, 9);
    add_end(&b, 1, true, sim_guest_checksum(want));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], b.data, b.len), (ssize_t)b.len);
    assert_int_equal(migrate_mem_receive(g, sv[1], NULL, &st), 0);
    assert_true(sim_guest_checksum(g) == sim_guest_checksum(want));
    assert_int_equal(sim_guest_heartbeat(g), 7);
    assert_int_equal(st.rounds, 1);
    assert_int_equal(st.pages, FEW_PAGES + 1);
    assert_int_equal(st.final.pages, 1);
    assert_int_equal(st.bytes, b.len);
    close(sv[0]);
    close(sv[1]);
    free(b.data);
    sim_guest_free(g);
    sim_guest_free(want);
}

static void
test_migrate_mem_bad_envelope_refused(void **state)
{
    struct sim_guest *g = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct buf b = { 0 };
    uint8_t junk[8] = { 0 };

    add_hello(&b, FEW_PAGES, 0);
    add_frame_raw(&b, "XOMM", 1, 2, 0, junk, 0, 0xffffffffu);
    assert_int_equal(feed(&b, g, "exceeds"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_frame_raw(&b, "XOMM", 1, 2, 0, junk, 0, 600 * 1024);
    assert_int_equal(feed(&b, g, "exceeds"), XO_EINVAL);

    add_frame_raw(&b, "XOMN", 1, 1, 0, junk, 0, 0);
    assert_int_equal(feed(&b, g, "bad frame magic"), XO_EINVAL);

    add_frame_raw(&b, "XOMM", 2, 1, 0, junk, 0, 0);
    assert_int_equal(feed(&b, g, "unsupported version"), XO_EINVAL);

    add_frame(&b, 9, 0, junk, sizeof(junk));
    assert_int_equal(feed(&b, g, "unknown frame type"), XO_EINVAL);

    add_pages(&b, 0, 0, all_few, 1, 1);
    assert_int_equal(feed(&b, g, "before the hello"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_hello(&b, FEW_PAGES, 0);
    assert_int_equal(feed(&b, g, "second hello"), XO_EINVAL);

    add_hello(&b, FEW_PAGES + 1, 0);
    assert_int_equal(feed(&b, g, "pages, the guest has"), XO_EINVAL);

    /* A lying header: right CRC over a different length than sent. */
    add_hello(&b, FEW_PAGES, 0);
    add_frame_raw(&b, "XOMM", 1, 2, 0, junk, sizeof(junk), 100);
    assert_int_equal(feed(&b, g, "ends early"), XO_EINVAL);
    sim_guest_free(g);
}

static void
test_migrate_mem_bad_pages_refused_without_writing(void **state)
{
    struct sim_guest *g = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct buf b = { 0 };
    const uint64_t out_of_range[2] = { 0, FEW_PAGES };
    uint8_t p[8 + 8 + PAGE] = { 0 };

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, out_of_range, 2, 1);
    assert_int_equal(feed(&b, g, "page 4 of a guest with 4"), XO_EINVAL);
    assert_true(page_is(g, 0, 0));

    /* count says 2, the payload holds 1 page */
    put_be(p + 4, 2, 4);
    add_hello(&b, FEW_PAGES, 0);
    add_frame(&b, 2, 0, p, sizeof(p));
    assert_int_equal(feed(&b, g, "for 2 pages"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0x4, all_few, 1, 1);
    assert_int_equal(feed(&b, g, "unknown pages flags"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0x1, all_few, 1, 1);
    assert_int_equal(feed(&b, g, "compression differs"), XO_EINVAL);

    /* zstd announced, garbage sent (with a correct CRC) */
    add_hello(&b, FEW_PAGES, 1);
    add_frame(&b, 2, 0x1, p, 64);
    assert_int_equal(feed(&b, g, "zstd"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 2, 0, all_few, 1, 1);
    add_pages(&b, 1, 0, all_few, 1, 1);
    assert_int_equal(feed(&b, g, "round 1 after round 2"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 2, all_few, 1, 1);
    add_pages(&b, 1, 0, all_few, 1, 1);
    assert_int_equal(feed(&b, g, "live pages after the final"), XO_EINVAL);
    sim_guest_free(g);
}

static void
test_migrate_mem_bad_end_refused(void **state)
{
    struct sim_guest *g = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct buf b = { 0 };

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, all_few, FEW_PAGES - 1, 1);
    add_end(&b, 1, false, 0);
    assert_int_equal(feed(&b, g, "before every page"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, all_few, FEW_PAGES, 1);
    add_end(&b, 1, true, 12345);
    assert_int_equal(feed(&b, g, "checksum differs"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, all_few, FEW_PAGES, 1);
    add_end(&b, 0, false, 0);
    assert_int_equal(feed(&b, g, "claims 0 rounds"), XO_EINVAL);

    add_hello(&b, FEW_PAGES, 0);
    add_pages(&b, 0, 0, all_few, FEW_PAGES, 1);
    assert_int_equal(feed(&b, g, "ends early"), XO_EINVAL);
    sim_guest_free(g);
}

static void
test_migrate_mem_abort_marker_reported(void **state)
{
    struct sim_guest *g = guest_new(FEW_PAGES * PAGE, 0, 10);
    struct buf b = { 0 };
    struct migrate_mem_stats st;
    uint8_t p[4 + 5];
    int sv[2];

    put_be(p, (uint32_t)XO_ECANCELLED, 4);
    memcpy(p + 4, "bye\x01!", 5);
    add_hello(&b, FEW_PAGES, 0);
    add_frame(&b, 4, 0, p, sizeof(p));
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[0], b.data, b.len), (ssize_t)b.len);
    assert_int_equal(migrate_mem_receive(g, sv[1], NULL, &st),
                     XO_ECANCELLED);
    assert_int_equal(st.abort_code, XO_ECANCELLED);
    assert_true(detail_has(XO_ECANCELLED, "bye?!"));
    close(sv[0]);
    close(sv[1]);
    free(b.data);
    sim_guest_free(g);
}

/* ---- sender ---- */

struct drain {
    int fd;
    uint8_t head[32];
    size_t got;
};

static void *
drain_main(void *arg)
{
    struct drain *d = arg;
    uint8_t buf[65536];
    ssize_t n;

    while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
        size_t take = (size_t)n;

        if (take > sizeof(d->head) - d->got)
            take = sizeof(d->head) - d->got;
        memcpy(d->head + d->got, buf, take);
        d->got += take;
    }
    return NULL;
}

/* The first frame is byte for byte the worked example in migrate_mem.c. */
static void
test_migrate_mem_hello_matches_documented_example(void **state)
{
    static const uint8_t want[32] = {
        0x58, 0x4f, 0x4d, 0x4d, 0x01, 0x01, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x10, 0x7d, 0x94, 0xfc, 0xca,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
        0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00,
    };
    struct run r;
    struct drain d = { 0 };
    pthread_t t;
    int sv[2];

    run_init(&r, guest_new(4 * MIB, 0, 10), NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    d.fd = sv[1];
    assert_int_equal(pthread_create(&t, NULL, drain_main, &d), 0);
    /* A paused guest dirties nothing: one round, then the switch-over. */
    assert_int_equal(migrate_mem_send(r.src, sv[0], &r.so, &r.ss), 0);
    close(sv[0]);
    pthread_join(t, NULL);
    close(sv[1]);
    assert_int_equal(d.got, sizeof(want));
    assert_memory_equal(d.head, want, sizeof(want));
    assert_int_equal(r.ss.rounds, 1);
    assert_true(r.ss.converged);
    assert_int_equal(r.ss.final.pages, 0);
    assert_int_equal(r.ss.bytes, 32 + 16 * (1024 / 64) + 1024 * (8 + PAGE) +
                                     8 * (1024 / 64) + 16 + 32);
    run_dispose(&r);
}

static void
test_migrate_mem_bad_options_refused(void **state)
{
    struct run r;
    int sv[2];
    char c;

    run_init(&r, guest_new(MIB, 0, 10), NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    r.so.max_iterations = 0;
    assert_int_equal(migrate_mem_send(r.src, sv[0], &r.so, NULL), XO_EINVAL);
    r.so.max_iterations = MIGRATE_MEM_MAX_ROUNDS + 1;
    assert_int_equal(migrate_mem_send(r.src, sv[0], &r.so, NULL), XO_EINVAL);
    r.so.max_iterations = 5;
    r.so.pause = NULL;
    assert_int_equal(migrate_mem_send(r.src, sv[0], &r.so, NULL), XO_EINVAL);
    r.so.pause = test_pause;
    r.so.policy = (enum migrate_mem_policy)7;
    assert_true(detail_has(migrate_mem_send(r.src, sv[0], &r.so, NULL),
                           "policy"));
    /* Nothing was written. */
    assert_int_equal(recv(sv[1], &c, 1, MSG_DONTWAIT), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    /* A running destination is refused too. */
    sim_guest_unpause(r.src);
    assert_int_equal(migrate_mem_receive(r.src, sv[1], NULL, NULL),
                     XO_EINVAL);
    close(sv[0]);
    close(sv[1]);
    run_dispose(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_mem_exact_copy),
        cmocka_unit_test(test_migrate_mem_exact_copy_compressed),
        cmocka_unit_test(test_migrate_mem_force_after_max_iterations),
        cmocka_unit_test(test_migrate_mem_abort_policy_keeps_source_running),
        cmocka_unit_test(test_migrate_mem_low_dirty_rate_converges),
        cmocka_unit_test(test_migrate_mem_cancel_stops_both_sides),
        cmocka_unit_test(test_migrate_mem_receiver_cancel),
        cmocka_unit_test(test_migrate_mem_corrupt_frame_refused),
        cmocka_unit_test(test_migrate_mem_truncated_stream_refused),
        cmocka_unit_test(test_migrate_mem_wrong_page_count_refused),
        cmocka_unit_test(test_migrate_mem_handmade_stream_accepted),
        cmocka_unit_test(test_migrate_mem_bad_envelope_refused),
        cmocka_unit_test(test_migrate_mem_bad_pages_refused_without_writing),
        cmocka_unit_test(test_migrate_mem_bad_end_refused),
        cmocka_unit_test(test_migrate_mem_abort_marker_reported),
        cmocka_unit_test(test_migrate_mem_hello_matches_documented_example),
        cmocka_unit_test(test_migrate_mem_bad_options_refused),
    };

    log_set_level(LOG_LVL_ERROR);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
