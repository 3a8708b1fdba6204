/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Design: the sender turns dirty tracking on, sends a HELLO, then every
 * page (round 0). After each live round it collects the bitmap: those
 * pages are the next round. It decides on what it just collected: when
 * remaining bytes / bandwidth fits max_downtime_ms (bandwidth = page bytes
 * of the round / its time; a round under 1 MiB mostly measures syscalls,
 * so it is pooled with the earlier rounds) it switches over; after
 * max_iterations rounds the policy decides. Switching over: reset the
 * guest's max gap, have the caller pause the guest, collect once more,
 * send the union (FINAL flag) and END with the guest's clock. The receiver
 * checks every frame completely before it writes a single page, and both
 * sides move exactly whole frames, so the fd stays usable afterwards.
 * Cancel is looked at between frames only: a frame is never cut, so the
 * ABORT that follows always parses.
 *
 * Frame format (all integers big-endian):
 *
 *   offset size  field
 *    0      4    magic "XOMM"
 *    4      1    version, 1
 *    5      1    type: 1 HELLO, 2 PAGES, 3 END, 4 ABORT
 *    6      2    flags: 0x1 ZSTD, 0x2 FINAL (PAGES only; 0 elsewhere)
 *    8      4    payload length, at most MM_PAYLOAD_MAX (512 KiB)
 *   12      4    CRC-32C (Castagnoli) of bytes 0..11, then of the payload
 *   16      n    payload
 *
 *   HELLO (16):  u64 page count, u32 page size (4096), u32 flags (0x1 the
 *                PAGES payloads are zstd)
 *   PAGES:       u32 round, u32 count (1..64), count x u64 page index,
 *                count x 4096 bytes of page data. With ZSTD this is the
 *                output of one zstd stream over the whole migration,
 *                flushed at the end of every frame, so each frame decodes
 *                on its own arrival. FINAL marks the stop-and-copy round.
 *   END (32):    u64 heartbeat, u64 ns since the last tick when sent, u64
 *                FNV-1a 64 of all memory, u32 flags (0x1 checksum valid,
 *                0x2 the guest has ticked), u32 live rounds
 *   ABORT:       i32 xo_err code, then 0..200 bytes of ASCII reason
 *
 * The tick goes as an age rather than a CLOCK_MONOTONIC stamp, because the
 * two hosts' clocks are unrelated; the receiver subtracts it from its own
 * clock (losing only the END frame's one-way latency).
 *
 * Worked example: the HELLO of an uncompressed 4 MiB guest (1024 pages):
 *
 *   58 4f 4d 4d 01 01 00 00 00 00 00 10 7d 94 fc ca   "XOMM" v1 HELLO,
 *                                                     16 bytes, CRC
 *   00 00 00 00 00 00 04 00 00 00 10 00 00 00 00 00   1024 pages of 4096
 *
 * followed by PAGES frames of round 0 (each: header, 00 00 00 00, 00 00 00
 * 40, 64 indices 0..63, 256 KiB of pages; 262,680 bytes), the later rounds,
 * FINAL pages and END. A cancelled or refused migration ends with ABORT
 * instead, e.g. code -8 (ffff fff8) "migration cancelled".
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "backend/sim/migrate_mem.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

#define MM_MAGIC "XOMM"
#define MM_VERSION 1
#define MM_HDR_SIZE 16
#define MM_PAGE SIM_GUEST_PAGE_SIZE
#define MM_CHUNK_PAGES 64
#define MM_PAGES_HDR 8
#define MM_PAGES_PLAIN_MAX \
    (MM_PAGES_HDR + MM_CHUNK_PAGES * (8 + MM_PAGE))
#define MM_PAYLOAD_MAX (512 * 1024)
#define MM_HELLO_SIZE 16
#define MM_END_SIZE 32
#define MM_REASON_MAX 200
#define MM_SMALL_ROUND_BYTES (1024 * 1024)
/* The receiver's memory bound for the zstd window (8 MiB). */
#define MM_ZSTD_WINDOW_LOG_MAX 23

enum mm_type {
    MM_HELLO = 1,
    MM_PAGES = 2,
    MM_END = 3,
    MM_ABORT = 4,
};

#define MM_F_ZSTD 0x1u
#define MM_F_FINAL 0x2u
#define MM_HELLO_F_ZSTD 0x1u
#define MM_END_F_CHECKSUM 0x1u
#define MM_END_F_TICKED 0x2u

/* ---- helpers: time, integers, CRC-32C ---- */

static uint64_t
mm_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
mm_put_be(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t
mm_get_be(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t mm_crc_table[8][256];
static pthread_once_t mm_crc_once = PTHREAD_ONCE_INIT;

static void
mm_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
        mm_crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++) {
            uint32_t c = mm_crc_table[t - 1][i];

            mm_crc_table[t][i] = (c >> 8) ^ mm_crc_table[0][c & 0xff];
        }
}

/* CRC-32C, chainable like zlib's crc32: crc(crc(0, a), b) = crc(0, ab).
 * Eight bytes a step (slicing-by-8), byte order independent. */
static uint32_t
mm_crc32c(uint32_t crc, const uint8_t *p, size_t n)
{
    const uint32_t(*t)[256] = mm_crc_table;

    pthread_once(&mm_crc_once, mm_crc_init);
    crc = ~crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint32_t a = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                            (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t b = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                     (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

        crc = t[7][a & 0xff] ^ t[6][(a >> 8) & 0xff] ^
              t[5][(a >> 16) & 0xff] ^ t[4][a >> 24] ^ t[3][b & 0xff] ^
              t[2][(b >> 8) & 0xff] ^ t[1][(b >> 16) & 0xff] ^ t[0][b >> 24];
    }
    for (; n > 0; n--, p++)
        crc = (crc >> 8) ^ t[0][(crc ^ *p) & 0xff];
    return ~crc;
}

static bool
mm_cancelled(const atomic_bool *cancel)
{
    return cancel && *cancel;
}

/* ---- I/O with a no-progress deadline ---- */

struct mm_io {
    int fd;
    bool sock;
    unsigned timeout_ms;
    const atomic_bool *cancel;    /* checked while a read waits */
    bool quiet;                     /* no log, no detail (abort frames) */
    bool broken;                    /* a write failed mid-frame */
};

static void
mm_io_init(struct mm_io *io, int fd, const struct migrate_mem_opts *o)
{
    memset(io, 0, sizeof(*io));
    io->fd = fd;
    io->sock = true;
    io->timeout_ms = o && o->io_timeout_ms ? o->io_timeout_ms
                                           : MIGRATE_MEM_IO_TIMEOUT_MS;
    io->cancel = o ? o->cancel : NULL;
}

static int
mm_io_fail(struct mm_io *io, int code, const char *what)
{
    if (io->quiet)
        return code;
    if (code == XO_ETIMEDOUT) {
        LOG(ERROR, "migration stream: no progress for %u ms while %s",
            io->timeout_ms, what);
        return xo_err_internal_code(code, "migration stream stalled for "
                                    "%u ms while %s", io->timeout_ms, what);
    }
    LOGE(ERROR, "migration stream: failed while %s", what);
    return xo_err_internal_code(code, "migration stream failed while %s",
                                what);
}

/*
 * Wait until fd is ready for events. A read wait honours cancel (nothing
 * is half-written): the caller's cancel callback shuts the read side
 * down, which wakes the poll, and the flag is looked at then. A write
 * wait honours only the deadline, so a frame is never cut short and the
 * receiver can always parse the abort that follows.
 */
static int
mm_io_wait(struct mm_io *io, short events, bool cancellable,
           const char *what)
{
    struct pollfd p = { .fd = io->fd, .events = events };
    uint64_t deadline = mm_now_ns() + (uint64_t)io->timeout_ms * 1000000u;

    for (;;) {
        uint64_t now = mm_now_ns();
        int r;

        if (cancellable && mm_cancelled(io->cancel))
            return xo_err_cancelled("");
        if (now >= deadline)
            return mm_io_fail(io, XO_ETIMEDOUT, what);
        r = poll(&p, 1, (int)((deadline - now) / 1000000u) + 1);
        if (r > 0 && !(cancellable && mm_cancelled(io->cancel)))
            return 0;
        if (r < 0 && errno != EINTR)
            return mm_io_fail(io, XO_EIO, what);
    }
}

static int
mm_write_all(struct mm_io *io, const uint8_t *buf, size_t len)
{
    int rc;

    while (len > 0) {
        ssize_t r = -1;

        if (io->sock) {
            r = send(io->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (r < 0 && errno == ENOTSOCK)
                io->sock = false;
        }
        if (!io->sock)
            r = write(io->fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = mm_io_wait(io, POLLOUT, false, "writing");
            if (rc)
                goto broken;
            continue;
        }
        if (r <= 0) {
            rc = mm_io_fail(io, XO_EIO, "writing");
            goto broken;
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
broken:
    io->broken = true;
    return rc;
}

/* Read exactly len bytes; the end of the stream is a truncated migration,
 * which is bad input (XO_EINVAL). */
static int
mm_read_all(struct mm_io *io, uint8_t *buf, size_t len, const char *what)
{
    int rc;

    while (len > 0) {
        ssize_t r;

        rc = mm_io_wait(io, POLLIN, true, what);
        if (rc)
            return rc;
        r = read(io->fd, buf, len);
        if (r < 0 && (errno == EINTR || errno == EAGAIN ||
                      errno == EWOULDBLOCK))
            continue;
        if (r < 0)
            return mm_io_fail(io, XO_EIO, what);
        if (r == 0 && mm_cancelled(io->cancel))
            return xo_err_cancelled("");
        if (r == 0) {
            LOG(ERROR, "migration stream ends early while %s (%zu bytes "
                "missing)", what, len);
            return xo_err_internal_code(XO_EINVAL, "migration stream ends "
                                        "early while %s", what);
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ---- sender ---- */

struct mm_sender {
    struct sim_guest *g;
    const struct migrate_mem_opts *o;
    struct migrate_mem_stats *st;
    struct mm_io io;
    size_t n_pages;
    size_t n_words;
    uint64_t *pending;              /* the next round's pages */
    uint64_t *scratch;
    uint8_t *plain;                 /* PAGES payload before zstd */
    uint8_t *frame;                 /* header + payload */
    ZSTD_CCtx *cctx;
    uint64_t t_collect;             /* ns of the last bitmap collect */
    uint64_t pool_bytes;            /* live page bytes / ns, pooled */
    uint64_t pool_ns;
    uint64_t plain_bytes;           /* PAGES payloads before zstd */
    uint64_t wire_bytes;            /* and as sent */
};

static int
mm_check_opts(struct sim_guest *g, const struct migrate_mem_opts *o)
{
    const char *bad = NULL;

    if (!g || !o)
        bad = "no guest or no options";
    else if (o->max_iterations < 1 ||
             o->max_iterations > MIGRATE_MEM_MAX_ROUNDS)
        bad = "max_iterations out of range";
    else if (o->policy != MIGRATE_MEM_POLICY_FORCE &&
             o->policy != MIGRATE_MEM_POLICY_ABORT)
        bad = "unknown downtime policy";
    else if (!o->pause)
        bad = "no pause callback";
    else if (o->compress && o->compress_level &&
             (o->compress_level < ZSTD_minCLevel() ||
              o->compress_level > ZSTD_maxCLevel()))
        bad = "compression level out of range";
    if (!bad)
        return 0;
    LOG(ERROR, "invalid memory migration options: %s", bad);
    return xo_err_internal_code(XO_EINVAL, "invalid memory migration "
                                "options: %s", bad);
}

/* Header and CRC around the payload already at frame + MM_HDR_SIZE. */
static int
mm_send_frame(struct mm_sender *s, enum mm_type type, unsigned flags,
              size_t len)
{
    uint8_t *h = s->frame;
    uint32_t crc;
    int rc;

    memcpy(h, MM_MAGIC, 4);
    h[4] = MM_VERSION;
    h[5] = (uint8_t)type;
    mm_put_be(h + 6, flags, 2);
    mm_put_be(h + 8, len, 4);
    crc = mm_crc32c(0, h, 12);
    mm_put_be(h + 12, mm_crc32c(crc, h + MM_HDR_SIZE, len), 4);
    rc = mm_write_all(&s->io, h, MM_HDR_SIZE + len);
    if (rc)
        return rc;
    s->st->bytes += MM_HDR_SIZE + len;
    return 0;
}

static int
mm_send_hello(struct mm_sender *s)
{
    uint8_t *p = s->frame + MM_HDR_SIZE;

    mm_put_be(p, s->n_pages, 8);
    mm_put_be(p + 8, MM_PAGE, 4);
    mm_put_be(p + 12, s->o->compress ? MM_HELLO_F_ZSTD : 0, 4);
    return mm_send_frame(s, MM_HELLO, 0, MM_HELLO_SIZE);
}

/* Best effort: tell the receiver why the stream ends. Never overrides the
 * failure being reported. */
static void
mm_send_abort(struct mm_sender *s, int code, const char *reason)
{
    uint8_t *p = s->frame + MM_HDR_SIZE;
    size_t n = strlen(reason);

    if (s->io.broken)
        return;
    if (n > MM_REASON_MAX)
        n = MM_REASON_MAX;
    mm_put_be(p, (uint32_t)code, 4);
    memcpy(p + 4, reason, n);
    s->io.quiet = true;
    (void)mm_send_frame(s, MM_ABORT, 0, 4 + n);
    s->io.quiet = false;
}

static int
mm_compress(struct mm_sender *s, size_t plain_len, size_t *len_r)
{
    ZSTD_outBuffer out = { s->frame + MM_HDR_SIZE, MM_PAYLOAD_MAX, 0 };
    ZSTD_inBuffer in = { s->plain, plain_len, 0 };
    size_t left;

    do {
        left = ZSTD_compressStream2(s->cctx, &out, &in, ZSTD_e_flush);
        if (ZSTD_isError(left)) {
            LOG(ERROR, "zstd compression failed: %s",
                ZSTD_getErrorName(left));
            return xo_err_internal("zstd compression failed: %s",
                                   ZSTD_getErrorName(left));
        }
    } while (left != 0 && out.pos < out.size);
    if (left != 0) {
        /* Cannot happen: a flushed frame is bounded by ZSTD_compressBound
         * of its input, far below MM_PAYLOAD_MAX. */
        LOG(ERROR, "compressed pages exceed %d bytes", MM_PAYLOAD_MAX);
        return xo_err_internal("compressed pages exceed %d bytes",
                               MM_PAYLOAD_MAX);
    }
    *len_r = out.pos;
    return 0;
}

/* One PAGES frame of count pages (indices idx) into rs. */
static int
mm_send_pages(struct mm_sender *s, unsigned round, unsigned flags,
              const size_t *idx, size_t count,
              struct migrate_mem_round_stats *rs)
{
    uint8_t *p = s->o->compress ? s->plain : s->frame + MM_HDR_SIZE;
    uint8_t *data = p + MM_PAGES_HDR + count * 8;
    size_t plain_len = MM_PAGES_HDR + count * (8 + MM_PAGE);
    size_t len = plain_len;
    uint64_t before = s->st->bytes;
    int rc;

    mm_put_be(p, round, 4);
    mm_put_be(p + 4, count, 4);
    for (size_t i = 0; i < count; i++) {
        mm_put_be(p + MM_PAGES_HDR + i * 8, idx[i], 8);
        /* A page the guest writes meanwhile may be torn here; it is
         * marked dirty after the write, so the next round resends it. */
        memcpy(data + i * MM_PAGE, sim_guest_page(s->g, idx[i]), MM_PAGE);
    }
    if (s->o->compress) {
        rc = mm_compress(s, plain_len, &len);
        if (rc)
            return rc;
        flags |= MM_F_ZSTD;
    }
    rc = mm_send_frame(s, MM_PAGES, flags, len);
    if (rc)
        return rc;
    s->plain_bytes += plain_len;
    s->wire_bytes += len;
    s->st->pages += count;
    s->st->page_bytes += (uint64_t)count * MM_PAGE;
    rs->pages += count;
    rs->bytes += s->st->bytes - before;
    return 0;
}

/* One frame of the set being sent, unless cancelled first. */
static int
mm_flush_pages(struct mm_sender *s, unsigned round, unsigned flags,
               const size_t *idx, size_t count,
               struct migrate_mem_round_stats *rs)
{
    if (mm_cancelled(s->o->cancel)) {
        LOG(INFO, "memory migration cancelled in round %u", round);
        return xo_err_cancelled("");
    }
    return mm_send_pages(s, round, flags, idx, count, rs);
}

/* Send the pages of bitmap (NULL: every page), 64 a frame, checking
 * cancel between frames. */
static int
mm_send_set(struct mm_sender *s, unsigned round, unsigned flags,
            const uint64_t *bitmap, struct migrate_mem_round_stats *rs)
{
    size_t idx[MM_CHUNK_PAGES];
    size_t count = 0;
    uint64_t t0 = mm_now_ns();
    int rc = 0;

    for (size_t i = 0; i < s->n_pages && !rc; i++) {
        if (bitmap && i % 64 == 0 && bitmap[i / 64] == 0) {
            i += 63;
            continue;
        }
        if (bitmap && !(bitmap[i / 64] >> (i % 64) & 1))
            continue;
        idx[count++] = i;
        if (count == MM_CHUNK_PAGES) {
            rc = mm_flush_pages(s, round, flags, idx, count, rs);
            count = 0;
        }
    }
    if (!rc && count > 0)
        rc = mm_flush_pages(s, round, flags, idx, count, rs);
    rs->ns += mm_now_ns() - t0;
    return rc;
}

/* Bandwidth in page bytes/s for the decision after a round. */
static uint64_t
mm_bandwidth(struct mm_sender *s, const struct migrate_mem_round_stats *rs)
{
    uint64_t bytes = rs->pages * MM_PAGE;
    uint64_t ns = rs->ns;

    s->pool_bytes += bytes;
    s->pool_ns += ns;
    if (bytes < MM_SMALL_ROUND_BYTES) {
        bytes = s->pool_bytes;
        ns = s->pool_ns;
    }
    if (ns == 0)
        ns = 1;
    return (uint64_t)((double)bytes * 1e9 / (double)ns);
}

/*
 * Collect the pages dirtied during the round just sent into s->pending and
 * report. Returns true when they fit the downtime limit.
 */
static bool
mm_after_round(struct mm_sender *s, unsigned round)
{
    struct migrate_mem_stats *st = s->st;
    struct migrate_mem_progress p = { .round = round };
    uint64_t now, dirty, bw;
    double expected_ms;

    dirty = sim_guest_dirty_collect(s->g, s->pending);
    now = mm_now_ns();
    st->dirty_rate = (uint64_t)((double)dirty * 1e9 /
                                (double)(now - s->t_collect + 1));
    s->t_collect = now;
    bw = mm_bandwidth(s, &st->round[round]);
    st->bandwidth = bw;
    expected_ms = bw ? (double)dirty * MM_PAGE * 1000.0 / (double)bw : 1e18;
    st->expected_downtime_ms = expected_ms >= 1e18 ? UINT64_MAX
                             : (uint64_t)expected_ms;
    p.bytes_sent = st->bytes;
    p.bytes_remaining = dirty * MM_PAGE;
    p.dirty_rate = st->dirty_rate;
    p.bandwidth = bw;
    LOG(DEBUG, "memory round %u: %llu pages in %llu us, %llu dirty, "
        "%llu bytes/s", round, (unsigned long long)st->round[round].pages,
        (unsigned long long)(st->round[round].ns / 1000),
        (unsigned long long)dirty, (unsigned long long)bw);
    if (s->o->progress)
        s->o->progress(&p, s->o->progress_arg);
    return dirty == 0 || expected_ms <= (double)s->o->max_downtime_ms;
}

/* Live rounds until the switch-over is due (0) or the policy refuses it
 * (XO_ETIMEDOUT). */
static int
mm_live(struct mm_sender *s)
{
    const struct migrate_mem_opts *o = s->o;
    int rc;

    for (unsigned round = 0;; round++) {
        rc = mm_send_set(s, round, 0, round ? s->pending : NULL,
                         &s->st->round[round]);
        if (rc)
            return rc;
        s->st->rounds = round + 1;
        if (mm_after_round(s, round)) {
            s->st->converged = true;
            return 0;
        }
        if (s->st->rounds < o->max_iterations)
            continue;
        if (o->policy == MIGRATE_MEM_POLICY_FORCE) {
            LOG(INFO, "memory migration did not converge in %u rounds "
                "(expected downtime %llu ms, limit %llu ms): pausing anyway",
                s->st->rounds,
                (unsigned long long)s->st->expected_downtime_ms,
                (unsigned long long)o->max_downtime_ms);
            return 0;
        }
        s->st->downtime_refused = true;
        LOG(WARN, "memory migration did not converge in %u rounds "
            "(expected downtime %llu ms, limit %llu ms): aborting",
            s->st->rounds, (unsigned long long)s->st->expected_downtime_ms,
            (unsigned long long)o->max_downtime_ms);
        return xo_err_internal_code(XO_ETIMEDOUT, "migration would exceed "
                                    "the maximum downtime (%llu ms expected, "
                                    "%llu ms allowed)",
                                    (unsigned long long)
                                        s->st->expected_downtime_ms,
                                    (unsigned long long)o->max_downtime_ms);
    }
}

static int
mm_send_end(struct mm_sender *s)
{
    uint8_t *p = s->frame + MM_HDR_SIZE;
    uint64_t last = sim_guest_last_tick_ns(s->g);
    uint64_t now = mm_now_ns();
    uint32_t flags = 0;
    uint64_t sum = 0;

    if (s->o->verify_memory) {
        sum = sim_guest_checksum(s->g);
        flags |= MM_END_F_CHECKSUM;
    }
    if (last)
        flags |= MM_END_F_TICKED;
    s->st->heartbeat = sim_guest_heartbeat(s->g);
    mm_put_be(p, s->st->heartbeat, 8);
    mm_put_be(p + 8, last && now > last ? now - last : 0, 8);
    mm_put_be(p + 16, sum, 8);
    mm_put_be(p + 24, flags, 4);
    mm_put_be(p + 28, s->st->rounds, 4);
    return mm_send_frame(s, MM_END, 0, MM_END_SIZE);
}

/* Pause the guest through the caller and send what is left. */
static int
mm_switch_over(struct mm_sender *s)
{
    uint64_t t_pause;
    int rc;

    /* From here the guest's largest heartbeat gap is the downtime. */
    sim_guest_reset_max_gap(s->g);
    rc = s->o->pause(s->o->pause_arg);
    if (rc) {
        LOG(ERROR, "cannot pause the guest for the switch-over: %s",
            xo_strerror(rc));
        return rc;
    }
    if (!sim_guest_is_paused(s->g)) {
        LOG(ERROR, "the pause callback returned with the guest running");
        return xo_err_internal("the pause callback returned with the "
                               "guest running");
    }
    s->st->paused = true;
    t_pause = mm_now_ns();
    (void)sim_guest_dirty_collect(s->g, s->scratch);
    for (size_t i = 0; i < s->n_words; i++)
        s->pending[i] |= s->scratch[i];
    rc = mm_send_set(s, s->st->rounds, MM_F_FINAL, s->pending,
                     &s->st->final);
    if (!rc)
        rc = mm_send_end(s);
    s->st->final_ns = mm_now_ns() - t_pause;
    return rc;
}

static void
mm_sender_init(struct mm_sender *s, struct sim_guest *g, int fd,
               const struct migrate_mem_opts *o, struct migrate_mem_stats *st)
{
    memset(s, 0, sizeof(*s));
    s->g = g;
    s->o = o;
    s->st = st;
    mm_io_init(&s->io, fd, o);
    s->n_pages = sim_guest_n_pages(g);
    s->n_words = sim_guest_bitmap_words(g);
    s->pending = xcalloc(s->n_words, sizeof(uint64_t));
    s->scratch = xcalloc(s->n_words, sizeof(uint64_t));
    s->frame = xmalloc(MM_HDR_SIZE + MM_PAYLOAD_MAX);
}

static int
mm_sender_zstd(struct mm_sender *s)
{
    int level = s->o->compress_level ? s->o->compress_level : 1;

    s->plain = xmalloc(MM_PAGES_PLAIN_MAX);
    s->cctx = ZSTD_createCCtx();
    if (!s->cctx || ZSTD_isError(ZSTD_CCtx_setParameter(
                        s->cctx, ZSTD_c_compressionLevel, level))) {
        LOG(ERROR, "cannot set up zstd compression at level %d", level);
        return xo_err_internal("cannot set up zstd compression");
    }
    return 0;
}

static const char *
mm_abort_reason(int rc)
{
    switch (rc) {
    case XO_ECANCELLED:
        return "migration cancelled";
    case XO_ETIMEDOUT:
        return "migration would exceed the maximum downtime";
    default:
        return xo_strerror(rc);
    }
}

int
migrate_mem_send(struct sim_guest *g, int fd,
                 const struct migrate_mem_opts *o,
                 struct migrate_mem_stats *st)
{
    struct migrate_mem_stats local;
    struct mm_sender s;
    bool tracking = false;
    uint64_t t0 = mm_now_ns();
    int rc;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    rc = mm_check_opts(g, o);
    if (rc)
        return rc;
    mm_sender_init(&s, g, fd, o, st);
    if (o->compress) {
        rc = mm_sender_zstd(&s);
        if (rc)
            goto out;
    }
    /* On before the first byte goes out: whoever sees the stream start
     * knows every later write to the guest is tracked. */
    sim_guest_dirty_enable(g);
    tracking = true;
    s.t_collect = mm_now_ns();
    rc = mm_send_hello(&s);
    if (!rc)
        rc = mm_live(&s);
    st->precopy_ns = mm_now_ns() - t0;
    if (!rc)
        rc = mm_switch_over(&s);
    if (rc)
        goto out;
    st->compress_ratio = s.wire_bytes
        ? (double)s.plain_bytes / (double)s.wire_bytes : 1.0;
    LOG(INFO, "memory migration sent: %llu bytes, %llu pages, %u live "
        "rounds, %llu pages in %llu us after the pause",
        (unsigned long long)st->bytes, (unsigned long long)st->pages,
        st->rounds, (unsigned long long)st->final.pages,
        (unsigned long long)(st->final_ns / 1000));
out:
    if (rc)
        mm_send_abort(&s, rc, mm_abort_reason(rc));
    if (tracking)
        sim_guest_dirty_disable(g);
    ZSTD_freeCCtx(s.cctx);
    free(s.pending);
    free(s.scratch);
    free(s.plain);
    free(s.frame);
    return rc;
}

/* ---- receiver ---- */

struct mm_receiver {
    struct sim_guest *g;
    struct migrate_mem_stats *st;
    struct mm_io io;
    size_t n_pages;
    uint64_t *seen;                 /* pages received at least once */
    uint8_t *payload;               /* MM_PAYLOAD_MAX */
    uint8_t *plain;                 /* MM_PAGES_PLAIN_MAX + 1 */
    ZSTD_DCtx *dctx;
    bool hello;
    bool compressed;
    bool live;                      /* a live PAGES frame arrived */
    bool final;                     /* a FINAL frame arrived */
    unsigned round;                 /* of the last PAGES frame */
    uint64_t t_hello;
    uint64_t t_final;
    uint64_t t_round;               /* first frame of the current round */
    uint64_t plain_bytes;           /* PAGES payloads after zstd */
    uint64_t wire_bytes;            /* and as received */
};

static int mm_bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int
mm_bad(const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    LOG(ERROR, "malformed migration stream: %s", msg);
    return xo_err_internal_code(XO_EINVAL, "malformed migration stream: %s",
                                msg);
}

static int
mm_recv_hello(struct mm_receiver *r, unsigned flags, size_t len)
{
    const uint8_t *p = r->payload;
    uint64_t n_pages, page_size, hflags;

    if (r->hello)
        return mm_bad("a second hello");
    if (len != MM_HELLO_SIZE || flags)
        return mm_bad("hello of %zu bytes with flags %#x", len, flags);
    n_pages = mm_get_be(p, 8);
    page_size = mm_get_be(p + 8, 4);
    hflags = mm_get_be(p + 12, 4);
    if (page_size != MM_PAGE)
        return mm_bad("page size %llu, expected %d",
                      (unsigned long long)page_size, MM_PAGE);
    if (hflags & ~(uint64_t)MM_HELLO_F_ZSTD)
        return mm_bad("unknown hello flags %#llx",
                      (unsigned long long)hflags);
    if (n_pages != r->n_pages)
        return mm_bad("the stream has %llu pages, the guest has %zu",
                      (unsigned long long)n_pages, r->n_pages);
    r->hello = true;
    r->compressed = hflags & MM_HELLO_F_ZSTD;
    r->t_hello = mm_now_ns();
    if (!r->compressed)
        return 0;
    r->dctx = ZSTD_createDCtx();
    if (!r->dctx || ZSTD_isError(ZSTD_DCtx_setParameter(
                        r->dctx, ZSTD_d_windowLogMax,
                        MM_ZSTD_WINDOW_LOG_MAX))) {
        LOG(ERROR, "cannot set up zstd decompression");
        return xo_err_internal("cannot set up zstd decompression");
    }
    return 0;
}

/* Decompress the payload into r->plain; more than a frame's worth is
 * malformed. */
static int
mm_decompress(struct mm_receiver *r, size_t len, size_t *plain_len_r)
{
    ZSTD_inBuffer in = { r->payload, len, 0 };
    ZSTD_outBuffer out = { r->plain, MM_PAGES_PLAIN_MAX + 1, 0 };

    /* Go on until a call changes nothing, so that data zstd still holds
     * after the input is used up is counted too. */
    for (;;) {
        size_t in_before = in.pos, out_before = out.pos;
        size_t z = ZSTD_decompressStream(r->dctx, &out, &in);

        if (ZSTD_isError(z))
            return mm_bad("bad zstd data (%s)", ZSTD_getErrorName(z));
        if (out.pos > MM_PAGES_PLAIN_MAX)
            return mm_bad("pages frame decompresses to over %d bytes",
                          MM_PAGES_PLAIN_MAX);
        if (in.pos == in_before && out.pos == out_before)
            break;
    }
    if (in.pos != in.size)
        return mm_bad("zstd data left over in a pages frame");
    *plain_len_r = out.pos;
    return 0;
}

/* Check the frame's round against the rounds before it. */
static int
mm_check_round(struct mm_receiver *r, uint64_t round, bool final)
{
    if (r->final && !final)
        return mm_bad("live pages after the final round");
    if (round > MIGRATE_MEM_MAX_ROUNDS ||
        (!final && round == MIGRATE_MEM_MAX_ROUNDS))
        return mm_bad("round %llu out of range",
                      (unsigned long long)round);
    if ((r->live || r->final) && round < r->round)
        return mm_bad("round %llu after round %u",
                      (unsigned long long)round, r->round);
    if (final && r->live && round == r->round && !r->final)
        return mm_bad("final round %llu reuses a live round",
                      (unsigned long long)round);
    return 0;
}

/* Account one PAGES frame of count pages in the stats. */
static void
mm_recv_account(struct mm_receiver *r, unsigned round, bool final,
                size_t count, size_t len, size_t plain_len)
{
    struct migrate_mem_stats *st = r->st;
    struct migrate_mem_round_stats *rs;
    uint64_t now = mm_now_ns();

    if (final && !r->final)
        r->t_final = now;
    if (!final && (!r->live || round != r->round))
        r->t_round = now;
    rs = final ? &st->final : &st->round[round];
    rs->pages += count;
    rs->bytes += MM_HDR_SIZE + len;
    rs->ns = now - (final ? r->t_final : r->t_round);
    st->pages += count;
    st->page_bytes += (uint64_t)count * MM_PAGE;
    r->plain_bytes += plain_len;
    r->wire_bytes += len;
    r->final = r->final || final;
    r->live = r->live || !final;
    r->round = round;
}

static int
mm_recv_pages(struct mm_receiver *r, unsigned flags, size_t len)
{
    const uint8_t *p = r->payload;
    size_t plain_len = len;
    bool final = flags & MM_F_FINAL;
    uint64_t round, count;
    int rc;

    if (flags & ~(MM_F_ZSTD | MM_F_FINAL))
        return mm_bad("unknown pages flags %#x", flags);
    if (!(flags & MM_F_ZSTD) != !r->compressed)
        return mm_bad("pages compression differs from the hello");
    if (r->compressed) {
        rc = mm_decompress(r, len, &plain_len);
        if (rc)
            return rc;
        p = r->plain;
    }
    if (plain_len < MM_PAGES_HDR)
        return mm_bad("pages frame of %zu bytes", plain_len);
    round = mm_get_be(p, 4);
    count = mm_get_be(p + 4, 4);
    if (count < 1 || count > MM_CHUNK_PAGES ||
        plain_len != MM_PAGES_HDR + count * (8 + MM_PAGE))
        return mm_bad("pages frame of %zu bytes for %llu pages", plain_len,
                      (unsigned long long)count);
    rc = mm_check_round(r, round, final);
    if (rc)
        return rc;
    /* Every index first: a bad frame writes nothing. */
    for (uint64_t i = 0; i < count; i++) {
        uint64_t idx = mm_get_be(p + MM_PAGES_HDR + i * 8, 8);

        if (idx >= r->n_pages)
            return mm_bad("page %llu of a guest with %zu pages",
                          (unsigned long long)idx, r->n_pages);
    }
    for (uint64_t i = 0; i < count; i++) {
        uint64_t idx = mm_get_be(p + MM_PAGES_HDR + i * 8, 8);
        const uint8_t *data = p + MM_PAGES_HDR + count * 8 + i * MM_PAGE;

        memcpy(sim_guest_page(r->g, idx), data, MM_PAGE);
        r->seen[idx / 64] |= (uint64_t)1 << (idx % 64);
    }
    mm_recv_account(r, (unsigned)round, final, count, len, plain_len);
    return 0;
}

static bool
mm_all_seen(const struct mm_receiver *r)
{
    size_t full = r->n_pages / 64;

    for (size_t i = 0; i < full; i++)
        if (r->seen[i] != UINT64_MAX)
            return false;
    if (r->n_pages % 64 == 0)
        return true;
    return r->seen[full] == ((uint64_t)1 << (r->n_pages % 64)) - 1;
}

/* The end marker: check it, then give the guest the source's clock. */
static int
mm_recv_end(struct mm_receiver *r, unsigned flags, size_t len)
{
    const uint8_t *p = r->payload;
    uint64_t hb, age, sum, eflags, rounds, now;

    if (len != MM_END_SIZE || flags)
        return mm_bad("end marker of %zu bytes with flags %#x", len, flags);
    hb = mm_get_be(p, 8);
    age = mm_get_be(p + 8, 8);
    sum = mm_get_be(p + 16, 8);
    eflags = mm_get_be(p + 24, 4);
    rounds = mm_get_be(p + 28, 4);
    if (eflags & ~(uint64_t)(MM_END_F_CHECKSUM | MM_END_F_TICKED))
        return mm_bad("unknown end flags %#llx", (unsigned long long)eflags);
    if (rounds < 1 || rounds > MIGRATE_MEM_MAX_ROUNDS ||
        (r->live && r->round >= rounds && !r->final) ||
        (r->final && r->round != rounds))
        return mm_bad("end marker claims %llu rounds",
                      (unsigned long long)rounds);
    if (!mm_all_seen(r))
        return mm_bad("end marker before every page was sent");
    if (eflags & MM_END_F_CHECKSUM && sim_guest_checksum(r->g) != sum)
        return mm_bad("memory checksum differs from the source's");
    now = mm_now_ns();
    sim_guest_set_ticks(r->g, hb,
                        eflags & MM_END_F_TICKED && now > age ? now - age
                                                              : 0);
    sim_guest_reset_max_gap(r->g);
    r->st->rounds = (unsigned)rounds;
    r->st->heartbeat = hb;
    if (!r->final)
        r->t_final = now;
    return 0;
}

static int
mm_recv_abort(struct mm_receiver *r, unsigned flags, size_t len)
{
    char reason[MM_REASON_MAX + 1];
    int32_t code;
    size_t n;

    if (len < 4 || len > 4 + MM_REASON_MAX || flags)
        return mm_bad("abort marker of %zu bytes with flags %#x", len,
                      flags);
    code = (int32_t)(uint32_t)mm_get_be(r->payload, 4);
    if (code >= 0 || code < XO_EINJECTED)
        code = XO_EFAIL;
    n = len - 4;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = r->payload[4 + i];

        reason[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    reason[n] = '\0';
    r->st->abort_code = code;
    LOG(WARN, "memory migration aborted by the sender: '%s'", reason);
    return xo_err_internal_code(code, "migration aborted by the sender: %s",
                                reason);
}

/* Read one whole frame into r->payload and check its envelope. */
static int
mm_recv_frame(struct mm_receiver *r, unsigned *type_r, unsigned *flags_r,
              size_t *len_r)
{
    uint8_t h[MM_HDR_SIZE];
    uint32_t crc;
    size_t len;
    int rc;

    rc = mm_read_all(&r->io, h, sizeof(h), "reading a frame header");
    if (rc)
        return rc;
    if (memcmp(h, MM_MAGIC, 4) != 0)
        return mm_bad("bad frame magic");
    if (h[4] != MM_VERSION)
        return mm_bad("unsupported version %u", h[4]);
    if (h[5] < MM_HELLO || h[5] > MM_ABORT)
        return mm_bad("unknown frame type %u", h[5]);
    len = (size_t)mm_get_be(h + 8, 4);
    if (len > MM_PAYLOAD_MAX)
        return mm_bad("frame of %zu bytes exceeds %d", len, MM_PAYLOAD_MAX);
    rc = mm_read_all(&r->io, r->payload, len, "reading a frame payload");
    if (rc)
        return rc;
    crc = mm_crc32c(mm_crc32c(0, h, 12), r->payload, len);
    if (crc != (uint32_t)mm_get_be(h + 12, 4))
        return mm_bad("frame checksum mismatch (type %u, %zu bytes)", h[5],
                      len);
    if (!r->hello && h[5] != MM_HELLO && h[5] != MM_ABORT)
        return mm_bad("frame type %u before the hello", h[5]);
    r->st->bytes += MM_HDR_SIZE + len;
    *type_r = h[5];
    *flags_r = (unsigned)mm_get_be(h + 6, 2);
    *len_r = len;
    return 0;
}

int
migrate_mem_receive(struct sim_guest *g, int fd,
                    const struct migrate_mem_opts *o,
                    struct migrate_mem_stats *st)
{
    struct migrate_mem_stats local;
    struct mm_receiver r;
    bool done = false;
    int rc = 0;

    if (!st)
        st = &local;
    memset(st, 0, sizeof(*st));
    if (!g || !sim_guest_is_paused(g)) {
        LOG(ERROR, "memory migration needs a paused destination guest");
        return xo_err_internal_code(XO_EINVAL, "memory migration needs a "
                                    "paused destination guest");
    }
    memset(&r, 0, sizeof(r));
    r.g = g;
    r.st = st;
    mm_io_init(&r.io, fd, o);
    r.n_pages = sim_guest_n_pages(g);
    r.seen = xcalloc(sim_guest_bitmap_words(g), sizeof(uint64_t));
    r.payload = xmalloc(MM_PAYLOAD_MAX);
    r.plain = xmalloc(MM_PAGES_PLAIN_MAX + 1);
    while (!done && !rc) {
        unsigned type = 0, flags = 0;
        size_t len = 0;

        rc = mm_recv_frame(&r, &type, &flags, &len);
        if (rc)
            break;
        switch (type) {
        case MM_HELLO:
            rc = mm_recv_hello(&r, flags, len);
            break;
        case MM_PAGES:
            rc = mm_recv_pages(&r, flags, len);
            break;
        case MM_END:
            rc = mm_recv_end(&r, flags, len);
            done = true;
            break;
        default:
            rc = mm_recv_abort(&r, flags, len);
            break;
        }
    }
    if (rc)
        goto out;
    st->final_ns = mm_now_ns() - r.t_final;
    st->precopy_ns = r.t_final - r.t_hello;
    st->compress_ratio = r.wire_bytes
        ? (double)r.plain_bytes / (double)r.wire_bytes : 1.0;
    LOG(INFO, "memory migration received: %llu bytes, %llu pages, %u live "
        "rounds, %llu final pages", (unsigned long long)st->bytes,
        (unsigned long long)st->pages, st->rounds,
        (unsigned long long)st->final.pages);
out:
    ZSTD_freeDCtx(r.dctx);
    free(r.seen);
    free(r.payload);
    free(r.plain);
    return rc;
}

int
migrate_mem_measure_downtime(struct sim_guest *g,
                             const struct migrate_mem_opts *o,
                             struct migrate_mem_stats *st)
{
    unsigned timeout_ms = o && o->io_timeout_ms ? o->io_timeout_ms
                                                : MIGRATE_MEM_IO_TIMEOUT_MS;
    uint64_t deadline = mm_now_ns() + (uint64_t)timeout_ms * 1000000u;
    struct timespec ms = { 0, 1000000L };

    if (sim_guest_is_paused(g)) {
        LOG(ERROR, "cannot measure the downtime of a paused guest");
        return xo_err_internal_code(XO_EINVAL, "cannot measure the downtime "
                                    "of a paused guest");
    }
    /* The first tick after the switch-over is the one that measures the
     * gap; the guest thread offers no wake-up, so look every millisecond. */
    while (sim_guest_heartbeat(g) <= st->heartbeat) {
        if (mm_cancelled(o ? o->cancel : NULL))
            return xo_err_cancelled("");
        if (mm_now_ns() >= deadline) {
            LOG(ERROR, "the migrated guest did not tick within %u ms",
                timeout_ms);
            return xo_err_internal_code(XO_ETIMEDOUT, "the migrated guest "
                                        "did not tick within %u ms",
                                        timeout_ms);
        }
        nanosleep(&ms, NULL);
    }
    st->guest_downtime_ns = sim_guest_max_gap_ns(g);
    return 0;
}
