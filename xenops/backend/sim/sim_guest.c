/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Design: one mutex and one condition variable (on CLOCK_MONOTONIC) per
 * guest. The thread sleeps a heartbeat on the condition variable, so a
 * pause or free wakes it at once, and does a tick's work while holding the
 * mutex; pause sets the flag and waits until the thread reports itself
 * parked, so after pause returns nothing writes to memory until unpause.
 * Counters and bitmap words are read and updated with atomics so that
 * readers (tests, migration, get_state) never take the mutex.
 *
 * Dirtying: each tick earns dirty_pages_per_sec * heartbeat_ms page
 * milli-credits; whole pages are written, the remainder carries over, so
 * the rate holds over time for any heartbeat. A written page gets the
 * heartbeat, its index and a random word at a random slot, so its content
 * really changes and a copy that misses a write shows in the checksum.
 */

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/sim/sim_guest.h"
#include "util/errors.h"
#include "util/log.h"
#include "util/xalloc.h"

/* Pages per read/write call; cancel is checked between chunks. */
#define SIM_GUEST_CHUNK_PAGES 64
/* How long one poll waits on a non-blocking pipe before cancel is
 * checked: unlike a socket, a pipe cannot be shut down to wake it. */
#define SIM_GUEST_PIPE_POLL_MS 200

struct sim_guest {
    uint8_t *mem;
    size_t n_pages;
    uint64_t *dirty;            /* atomics */
    size_t n_words;
    bool tracking;              /* atomic */

    uint64_t dirty_per_sec;
    unsigned heartbeat_ms;

    pthread_mutex_t lock;
    pthread_cond_t cond;        /* CLOCK_MONOTONIC */
    pthread_t thread;
    bool thread_started;        /* the rest: under lock */
    bool paused;
    bool parked;
    bool quit;
    uint64_t credit;            /* page milli-credits, thread only */
    uint64_t rng;               /* xorshift64 state, thread only */

    uint64_t heartbeat;         /* atomics */
    uint64_t last_tick_ns;
    uint64_t max_gap_ns;
};

static uint64_t
sg_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t
sg_rand(struct sim_guest *g)
{
    uint64_t x = g->rng;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    g->rng = x;
    return x;
}

static uint64_t
sg_load(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void
sg_store(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Write one page, then mark it: the order pre-copy relies on. */
static void
sg_touch_page(struct sim_guest *g, uint64_t hb)
{
    size_t idx = sg_rand(g) % g->n_pages;
    uint64_t *w = (uint64_t *)(g->mem + idx * SIM_GUEST_PAGE_SIZE);
    uint64_t r = sg_rand(g);
    size_t words = SIM_GUEST_PAGE_SIZE / sizeof(uint64_t);

    __atomic_store_n(&w[0], hb, __ATOMIC_RELAXED);
    __atomic_store_n(&w[1], (uint64_t)idx, __ATOMIC_RELAXED);
    __atomic_store_n(&w[2 + r % (words - 2)], r, __ATOMIC_RELAXED);
    if (__atomic_load_n(&g->tracking, __ATOMIC_ACQUIRE))
        __atomic_fetch_or(&g->dirty[idx / 64], (uint64_t)1 << (idx % 64),
                          __ATOMIC_RELEASE);
}

/* One heartbeat; called with the lock held while running. */
static void
sg_tick(struct sim_guest *g)
{
    uint64_t now = sg_now_ns();
    uint64_t last = sg_load(&g->last_tick_ns);
    uint64_t hb = sg_load(&g->heartbeat) + 1;
    uint64_t n;

    if (last && now > last && now - last > sg_load(&g->max_gap_ns))
        sg_store(&g->max_gap_ns, now - last);
    sg_store(&g->last_tick_ns, now);
    sg_store(&g->heartbeat, hb);

    g->credit += g->dirty_per_sec * g->heartbeat_ms;
    n = g->credit / 1000;
    g->credit %= 1000;
    /* More than all of memory in one tick is all of memory. */
    if (n > g->n_pages)
        n = g->n_pages;
    for (uint64_t i = 0; i < n; i++)
        sg_touch_page(g, hb);
}

static void
sg_deadline(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += ms / 1000;
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

static void *
sg_main(void *arg)
{
    struct sim_guest *g = arg;
    struct timespec deadline;

    pthread_mutex_lock(&g->lock);
    while (!g->quit) {
        if (g->paused) {
            if (!g->parked) {
                g->parked = true;
                pthread_cond_broadcast(&g->cond);
            }
            pthread_cond_wait(&g->cond, &g->lock);
            continue;
        }
        g->parked = false;
        sg_deadline(&deadline, g->heartbeat_ms);
        while (!g->paused && !g->quit &&
               pthread_cond_timedwait(&g->cond, &g->lock, &deadline) !=
                   ETIMEDOUT)
            ;
        if (!g->paused && !g->quit)
            sg_tick(g);
    }
    g->parked = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    return NULL;
}

int
sim_guest_new(uint64_t mem_bytes, uint64_t dirty_pages_per_sec,
              unsigned heartbeat_ms, struct sim_guest **g_r)
{
    struct sim_guest *g = NULL;
    pthread_condattr_t attr;
    uint64_t n_pages;
    void *mem;

    if (mem_bytes == 0 || mem_bytes > (uint64_t)SIZE_MAX / 2 ||
        heartbeat_ms == 0 || heartbeat_ms > SIM_GUEST_HEARTBEAT_MS_MAX ||
        dirty_pages_per_sec > UINT64_MAX / SIM_GUEST_HEARTBEAT_MS_MAX) {
        LOG(WARN, "invalid simulated guest: memory %llu bytes, heartbeat "
            "%u ms, dirty rate %llu pages/s", (unsigned long long)mem_bytes,
            heartbeat_ms, (unsigned long long)dirty_pages_per_sec);
        return xo_err_internal_code(XO_EINVAL, "invalid simulated guest "
                                    "parameters");
    }
    n_pages = (mem_bytes + SIM_GUEST_PAGE_SIZE - 1) / SIM_GUEST_PAGE_SIZE;
    mem = mmap(NULL, n_pages * SIM_GUEST_PAGE_SIZE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        LOGE(ERROR, "cannot map %llu bytes of guest memory",
             (unsigned long long)(n_pages * SIM_GUEST_PAGE_SIZE));
        return xo_err_internal_code(XO_ENOMEM, "cannot map guest memory");
    }
    g = xcalloc(1, sizeof(*g));
    g->mem = mem;
    g->n_pages = n_pages;
    g->n_words = (n_pages + 63) / 64;
    g->dirty = xcalloc(g->n_words, sizeof(*g->dirty));
    g->dirty_per_sec = dirty_pages_per_sec;
    g->heartbeat_ms = heartbeat_ms;
    g->paused = true;
    g->parked = true;
    g->rng = 0x9e3779b97f4a7c15ULL ^ (uint64_t)(uintptr_t)g;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cond, &attr);
    pthread_condattr_destroy(&attr);
    *g_r = g;
    return 0;
}

void
sim_guest_free(struct sim_guest *g)
{
    if (!g)
        return;
    pthread_mutex_lock(&g->lock);
    g->quit = true;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
    if (g->thread_started)
        pthread_join(g->thread, NULL);
    pthread_cond_destroy(&g->cond);
    pthread_mutex_destroy(&g->lock);
    munmap(g->mem, g->n_pages * SIM_GUEST_PAGE_SIZE);
    free(g->dirty);
    free(g);
}

void
sim_guest_pause(struct sim_guest *g)
{
    pthread_mutex_lock(&g->lock);
    g->paused = true;
    pthread_cond_broadcast(&g->cond);
    while (g->thread_started && !g->parked)
        pthread_cond_wait(&g->cond, &g->lock);
    pthread_mutex_unlock(&g->lock);
}

void
sim_guest_unpause(struct sim_guest *g)
{
    int r;

    pthread_mutex_lock(&g->lock);
    if (!g->thread_started) {
        r = pthread_create(&g->thread, NULL, sg_main, g);
        if (r) {
            /* Like an allocation failure: nothing sensible to go back to. */
            errno = r;
            LOGE(ERROR, "cannot start the simulated guest thread");
            abort();
        }
        g->thread_started = true;
    }
    g->paused = false;
    pthread_cond_broadcast(&g->cond);
    pthread_mutex_unlock(&g->lock);
}

bool
sim_guest_is_paused(struct sim_guest *g)
{
    bool paused;

    pthread_mutex_lock(&g->lock);
    paused = g->paused;
    pthread_mutex_unlock(&g->lock);
    return paused;
}

uint64_t
sim_guest_heartbeat(struct sim_guest *g)
{
    return sg_load(&g->heartbeat);
}

uint64_t
sim_guest_last_tick_ns(struct sim_guest *g)
{
    return sg_load(&g->last_tick_ns);
}

uint64_t
sim_guest_max_gap_ns(struct sim_guest *g)
{
    return sg_load(&g->max_gap_ns);
}

void
sim_guest_reset_max_gap(struct sim_guest *g)
{
    sg_store(&g->max_gap_ns, 0);
}

void
sim_guest_set_ticks(struct sim_guest *g, uint64_t heartbeat,
                    uint64_t last_tick_ns)
{
    /* A tick "in the future" comes from another clock: measure no gap
     * rather than a negative one. */
    if (last_tick_ns > sg_now_ns())
        last_tick_ns = 0;
    pthread_mutex_lock(&g->lock);
    sg_store(&g->heartbeat, heartbeat);
    sg_store(&g->last_tick_ns, last_tick_ns);
    pthread_mutex_unlock(&g->lock);
}

size_t
sim_guest_n_pages(struct sim_guest *g)
{
    return g->n_pages;
}

uint64_t
sim_guest_mem_bytes(struct sim_guest *g)
{
    return (uint64_t)g->n_pages * SIM_GUEST_PAGE_SIZE;
}

uint8_t *
sim_guest_page(struct sim_guest *g, size_t idx)
{
    if (idx >= g->n_pages)
        return NULL;
    return g->mem + idx * SIM_GUEST_PAGE_SIZE;
}

size_t
sim_guest_bitmap_words(struct sim_guest *g)
{
    return g->n_words;
}

void
sim_guest_dirty_enable(struct sim_guest *g)
{
    for (size_t i = 0; i < g->n_words; i++)
        __atomic_store_n(&g->dirty[i], 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g->tracking, true, __ATOMIC_RELEASE);
}

void
sim_guest_dirty_disable(struct sim_guest *g)
{
    __atomic_store_n(&g->tracking, false, __ATOMIC_RELEASE);
}

size_t
sim_guest_dirty_collect(struct sim_guest *g, uint64_t *bitmap_out)
{
    size_t count = 0;

    for (size_t i = 0; i < g->n_words; i++) {
        bitmap_out[i] = __atomic_exchange_n(&g->dirty[i], 0,
                                            __ATOMIC_ACQ_REL);
        count += (size_t)__builtin_popcountll(bitmap_out[i]);
    }
    return count;
}

uint64_t
sim_guest_checksum(struct sim_guest *g)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    size_t n = g->n_pages * SIM_GUEST_PAGE_SIZE;

    for (size_t i = 0; i < n; i++) {
        h ^= g->mem[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* ---- save / restore ---- */

static void
sg_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
sg_get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool
sg_cancelled(const atomic_bool *cancel)
{
    return cancel && *cancel;
}

/* Wait until fd is ready for events, or cancel. A socket waits without
 * a limit: the caller's cancel callback shuts it down, which wakes the
 * poll. */
static int
sg_wait_fd(int fd, short events, const atomic_bool *cancel)
{
    struct pollfd p = { .fd = fd, .events = events };
    struct stat st;
    int timeout = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode)
                  ? -1 : SIM_GUEST_PIPE_POLL_MS;

    while (!sg_cancelled(cancel)) {
        int r = poll(&p, 1, timeout);

        if (r > 0 || (r < 0 && errno != EINTR))
            return 0;
    }
    return xo_err_cancelled("");
}

/* Write all of buf, retrying short writes, EINTR and EAGAIN. Sockets get
 * MSG_NOSIGNAL so a vanished peer is an error rather than a SIGPIPE. */
static int
sg_write_all(int fd, const uint8_t *buf, size_t len,
             const atomic_bool *cancel)
{
    bool sock = true;
    int rc;

    while (len > 0) {
        ssize_t r = -1;

        if (sock) {
            r = send(fd, buf, len, MSG_NOSIGNAL);
            if (r < 0 && errno == ENOTSOCK)
                sock = false;
        }
        if (!sock)
            r = write(fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = sg_wait_fd(fd, POLLOUT, cancel);
            if (rc)
                return rc;
            continue;
        }
        if (r <= 0 && sg_cancelled(cancel))
            return xo_err_cancelled("");
        if (r <= 0) {
            LOGE(ERROR, "cannot write the guest memory image");
            return xo_err_internal_code(XO_EIO, "cannot write the guest "
                                        "memory image");
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static int
sg_read_all(int fd, uint8_t *buf, size_t len, const atomic_bool *cancel)
{
    int rc;

    while (len > 0) {
        ssize_t r = read(fd, buf, len);

        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            rc = sg_wait_fd(fd, POLLIN, cancel);
            if (rc)
                return rc;
            continue;
        }
        if (r <= 0 && sg_cancelled(cancel))
            return xo_err_cancelled("");
        if (r < 0) {
            LOGE(ERROR, "cannot read the guest memory image");
            return xo_err_internal_code(XO_EIO, "cannot read the guest "
                                        "memory image");
        }
        if (r == 0) {
            LOG(ERROR, "guest memory image ends early (%zu bytes missing)",
                len);
            return xo_err_internal_code(XO_EIO, "guest memory image ends "
                                        "early");
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

static int
sg_require_paused(struct sim_guest *g, const char *what)
{
    if (sim_guest_is_paused(g))
        return 0;
    LOG(ERROR, "cannot %s a running simulated guest", what);
    return xo_err_internal_code(XO_EINVAL, "cannot %s a running simulated "
                                "guest", what);
}

/* Move the pages through fd in chunks, checking cancel between them. */
static int
sg_pages_io(struct sim_guest *g, int fd, bool out,
            const atomic_bool *cancel)
{
    size_t chunk = (size_t)SIM_GUEST_CHUNK_PAGES * SIM_GUEST_PAGE_SIZE;
    size_t total = g->n_pages * SIM_GUEST_PAGE_SIZE;
    int rc = 0;

    for (size_t off = 0; off < total && !rc; off += chunk) {
        size_t len = total - off < chunk ? total - off : chunk;

        if (sg_cancelled(cancel)) {
            LOG(INFO, "guest memory image %s cancelled",
                out ? "save" : "restore");
            return xo_err_cancelled("");
        }
        rc = out ? sg_write_all(fd, g->mem + off, len, cancel)
                 : sg_read_all(fd, g->mem + off, len, cancel);
    }
    return rc;
}

int
sim_guest_save(struct sim_guest *g, int fd, const atomic_bool *cancel)
{
    uint8_t hdr[SIM_GUEST_HEADER_SIZE] = { 0 };
    int rc;

    rc = sg_require_paused(g, "save");
    if (rc)
        return rc;
    if (sg_cancelled(cancel))
        return xo_err_cancelled("");
    memcpy(hdr, SIM_GUEST_MAGIC, 8);
    sg_put_le(hdr + 8, SIM_GUEST_PAGE_SIZE, 4);
    sg_put_le(hdr + 16, g->n_pages, 8);
    sg_put_le(hdr + 24, sim_guest_heartbeat(g), 8);
    sg_put_le(hdr + 32, sim_guest_last_tick_ns(g), 8);
    rc = sg_write_all(fd, hdr, sizeof(hdr), cancel);
    if (rc)
        return rc;
    return sg_pages_io(g, fd, true, cancel);
}

static int
sg_check_header(struct sim_guest *g, const uint8_t *hdr)
{
    uint64_t page_size = sg_get_le(hdr + 8, 4);
    uint64_t n_pages = sg_get_le(hdr + 16, 8);

    if (memcmp(hdr, SIM_GUEST_MAGIC, 8) != 0) {
        LOG(ERROR, "guest memory image has a bad magic");
        return xo_err_internal_code(XO_EINVAL, "guest memory image has a "
                                    "bad magic (expected %s)",
                                    SIM_GUEST_MAGIC);
    }
    if (page_size != SIM_GUEST_PAGE_SIZE) {
        LOG(ERROR, "guest memory image has page size %llu, expected %d",
            (unsigned long long)page_size, SIM_GUEST_PAGE_SIZE);
        return xo_err_internal_code(XO_EINVAL, "guest memory image has page "
                                    "size %llu, expected %d",
                                    (unsigned long long)page_size,
                                    SIM_GUEST_PAGE_SIZE);
    }
    if (n_pages != g->n_pages) {
        LOG(ERROR, "guest memory image has %llu pages, the guest has %zu",
            (unsigned long long)n_pages, g->n_pages);
        return xo_err_internal_code(XO_EINVAL, "guest memory image has %llu "
                                    "pages, the guest has %zu",
                                    (unsigned long long)n_pages, g->n_pages);
    }
    return 0;
}

int
sim_guest_restore(struct sim_guest *g, int fd, const atomic_bool *cancel)
{
    uint8_t hdr[SIM_GUEST_HEADER_SIZE];
    int rc;

    rc = sg_require_paused(g, "restore");
    if (rc)
        return rc;
    if (sg_cancelled(cancel))
        return xo_err_cancelled("");
    rc = sg_read_all(fd, hdr, sizeof(hdr), cancel);
    if (rc)
        return rc;
    rc = sg_check_header(g, hdr);
    if (rc)
        return rc;
    rc = sg_pages_io(g, fd, false, cancel);
    if (rc)
        return rc;
    sim_guest_set_ticks(g, sg_get_le(hdr + 24, 8), sg_get_le(hdr + 32, 8));
    return 0;
}
