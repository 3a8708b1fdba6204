/*
 * labguest: /init of the lab's test guest (a static binary in a tiny
 * initramfs). It brings up the Xen PV frontends, reports the disks it sees
 * and the first bytes of each, and writes a heartbeat every 5 ms to its
 * console so that a migration's downtime can be read from inside the guest.
 * It answers requests typed on the console (dom0 writes them to the
 * console's pty):
 *
 *   disks                      report every disk again
 *   write DISK SEED MIB        write a pseudo-random pattern (O_DIRECT)
 *   verify DISK SEED MIB       read it back (O_DIRECT) and compare
 *   sh COMMAND...              run COMMAND with busybox sh, output to console
 *
 * Every line it prints starts with a keyword (hb, disk, disk-gone, nic, ok,
 * err, ready) so that the lab scripts can grep the console log.
 *
 * Also installed as /sbin/poweroff and /sbin/reboot, which is what the
 * kernel runs when the toolstack writes control/shutdown: the guest then
 * reports "shutdown poweroff|reboot" and asks Xen to stop it.
 *
 * The heartbeat is "hb COUNTER BOOT_NS MONO_NS". BOOT_NS is CLOCK_BOOTTIME,
 * which keeps counting while the guest is suspended for a migration (Linux
 * adds the suspended time from Xen's wallclock at resume), so the largest gap
 * between two heartbeats is the downtime the guest saw. MONO_NS
 * (CLOCK_MONOTONIC) stops while suspended: its gap is only the guest's own
 * suspend and resume work.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <linux/fs.h>
#include <net/if.h>
#include <sys/socket.h>

#define HEARTBEAT_NS   5000000LL
#define DISK_SCAN_NS   100000000LL
#define MAX_DISKS      26
#define LINE_MAX_BYTES 512

struct guest {
    uint64_t counter;
    char disks[MAX_DISKS][16];   /* names seen at the last scan */
    int ndisks;
    char line[LINE_MAX_BYTES];   /* console input being assembled */
    size_t linelen;
};

/* One write per message keeps lines whole on the console even though the
 * heartbeat and the request handling interleave. */
static void say(const char *fmt, ...)
{
    char buf[LINE_MAX_BYTES + 128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(buf) - 2)
        n = sizeof(buf) - 2;
    buf[n++] = '\n';
    ssize_t off = 0;
    while (off < n) {
        ssize_t w = write(1, buf + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        off += w;
    }
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void mount_basics(void)
{
    mkdir("/proc", 0755);
    mkdir("/sys", 0755);
    mkdir("/dev", 0755);
    mount("proc", "/proc", "proc", 0, NULL);
    mount("sysfs", "/sys", "sysfs", 0, NULL);
    mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
}

/* The kernel gives init no console when the initramfs has no /dev/console,
 * so take hvc0 once devtmpfs is there. */
static void open_console(void)
{
    int fd = open("/dev/hvc0", O_RDWR | O_NOCTTY);
    if (fd < 0)
        fd = open("/dev/console", O_RDWR | O_NOCTTY);
    if (fd < 0)
        return;
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2)
        close(fd);
}

/* /modules.order lists the .ko files in dependency order (the image
 * builder asked modprobe for it). */
static void load_modules(void)
{
    FILE *f = fopen("/modules.order", "r");
    char path[256];
    if (!f) {
        say("err no /modules.order");
        return;
    }
    while (fgets(path, sizeof(path), f)) {
        path[strcspn(path, "\n")] = '\0';
        if (!path[0])
            continue;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            say("err module %s: %s", path, strerror(errno));
            continue;
        }
        if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
            say("err module %s: %s", path, strerror(errno));
        close(fd);
    }
    fclose(f);
}

static int disk_name_ok(const char *name)
{
    if (strncmp(name, "xvd", 3) != 0 || strlen(name) >= 16)
        return 0;
    for (const char *p = name + 3; *p; p++)
        if (!islower((unsigned char)*p))
            return 0;
    return name[3] != '\0';
}

static void report_disk(const char *name)
{
    char path[64], sig[33];
    unsigned char buf[32];
    uint64_t size = 0;
    snprintf(path, sizeof(path), "/dev/%.15s", name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        say("err disk %s: %s", name, strerror(errno));
        return;
    }
    ioctl(fd, BLKGETSIZE64, &size);
    ssize_t n = pread(fd, buf, sizeof(buf), 0);
    close(fd);
    if (n < 0)
        n = 0;
    for (ssize_t i = 0; i < n; i++)
        sig[i] = isprint(buf[i]) && buf[i] != ' ' ? (char)buf[i] : '.';
    sig[n] = '\0';
    say("disk %s size=%" PRIu64 " sig=%s", name, size, sig);
}

static int count_disks(void)
{
    int n = 0;
    DIR *d = opendir("/sys/block");
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += disk_name_ok(e->d_name);
    closedir(d);
    return n;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Compare /sys/block with the last scan; report what came and went. */
static void scan_disks(struct guest *g, int report_all)
{
    char now[MAX_DISKS][16];
    int n = 0;
    DIR *d = opendir("/sys/block");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) && n < MAX_DISKS)
        if (disk_name_ok(e->d_name))
            snprintf(now[n++], 16, "%.15s", e->d_name);
    closedir(d);
    qsort(now, n, 16, cmp_names);
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int j = 0; j < g->ndisks; j++)
            seen |= strcmp(now[i], g->disks[j]) == 0;
        if (!seen || report_all)
            report_disk(now[i]);
    }
    for (int j = 0; j < g->ndisks; j++) {
        int still = 0;
        for (int i = 0; i < n; i++)
            still |= strcmp(now[i], g->disks[j]) == 0;
        if (!still)
            say("disk-gone %s", g->disks[j]);
    }
    memcpy(g->disks, now, sizeof(now));
    g->ndisks = n;
    if (report_all)
        say("disks %d", n);
}

/* Bring every netfront interface up and say so with its MAC address: the
 * proof that netback and netfront connected. */
static void bring_up_nics(void)
{
    DIR *d = opendir("/sys/class/net");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct dirent *e;
    if (!d || sock < 0)
        goto out;
    while ((e = readdir(d))) {
        if (strncmp(e->d_name, "eth", 3) != 0 || strlen(e->d_name) >= IFNAMSIZ)
            continue;
        char path[96], mac[32] = "?";
        snprintf(path, sizeof(path), "/sys/class/net/%.15s/address", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(mac, sizeof(mac), f))
                mac[strcspn(mac, "\n")] = '\0';
            fclose(f);
        }
        struct ifreq ifr = { 0 };
        snprintf(ifr.ifr_name, IFNAMSIZ, "%.15s", e->d_name);
        int up = ioctl(sock, SIOCGIFFLAGS, &ifr) == 0;
        ifr.ifr_flags |= IFF_UP;
        up = up && ioctl(sock, SIOCSIFFLAGS, &ifr) == 0;
        say("nic %s mac=%s %s", e->d_name, mac, up ? "up" : "down");
    }
out:
    if (d)
        closedir(d);
    if (sock >= 0)
        close(sock);
}

/* xorshift64: the same seed gives the same bytes on any host. */
static uint64_t pattern_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *s = x;
    return x;
}

static void pattern_fill(uint64_t *state, uint64_t *buf, size_t words)
{
    for (size_t i = 0; i < words; i++)
        buf[i] = pattern_next(state);
}

/* Direct I/O so that a verify after a migration reads what the backend
 * holds, not this guest's page cache. */
static void pattern_io(const char *disk, uint64_t seed, unsigned mib, int verify)
{
    char path[64];
    const size_t chunk = 1 << 20;
    uint64_t *want = NULL, *got = NULL, state = seed ? seed : 1;
    const char *what = verify ? "verify" : "write";
    int fd = -1;

    if (!disk_name_ok(disk) || mib == 0 || mib > 1024) {
        say("err %s: bad disk or size", what);
        return;
    }
    snprintf(path, sizeof(path), "/dev/%.15s", disk);
    if (posix_memalign((void **)&want, 4096, chunk) ||
        posix_memalign((void **)&got, 4096, chunk)) {
        say("err %s %s: out of memory", what, disk);
        goto out;
    }
    fd = open(path, (verify ? O_RDONLY : O_WRONLY) | O_DIRECT | O_CLOEXEC);
    if (fd < 0) {
        say("err %s %s: %s", what, disk, strerror(errno));
        goto out;
    }
    for (unsigned m = 0; m < mib; m++) {
        pattern_fill(&state, want, chunk / 8);
        off_t off = (off_t)m * chunk;
        ssize_t n = verify ? pread(fd, got, chunk, off) : pwrite(fd, want, chunk, off);
        if (n != (ssize_t)chunk) {
            say("err %s %s: I/O at MiB %u: %s", what, disk, m,
                n < 0 ? strerror(errno) : "short");
            goto out;
        }
        if (verify && memcmp(got, want, chunk) != 0) {
            say("err verify %s: mismatch in MiB %u", disk, m);
            goto out;
        }
    }
    if (!verify && fsync(fd) != 0) {
        say("err write %s: fsync: %s", disk, strerror(errno));
        goto out;
    }
    say("ok %s %s %" PRIu64 " %u", what, disk, seed, mib);
out:
    if (fd >= 0)
        close(fd);
    free(want);
    free(got);
}

static void run_shell(const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/busybox", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    if (pid > 0)
        waitpid(pid, &status, 0);
    say("ok sh %d", WIFEXITED(status) ? WEXITSTATUS(status) : 128);
}

static void handle_request(struct guest *g, char *line)
{
    char disk[32];
    uint64_t seed;
    unsigned mib;

    while (*line == ' ' || *line == '\r')
        line++;
    line[strcspn(line, "\r")] = '\0';
    if (!*line)
        return;
    if (strcmp(line, "disks") == 0)
        scan_disks(g, 1);
    else if (sscanf(line, "write %31s %" SCNu64 " %u", disk, &seed, &mib) == 3)
        pattern_io(disk, seed, mib, 0);
    else if (sscanf(line, "verify %31s %" SCNu64 " %u", disk, &seed, &mib) == 3)
        pattern_io(disk, seed, mib, 1);
    else if (strncmp(line, "sh ", 3) == 0)
        run_shell(line + 3);
    else
        say("err unknown request: %.64s", line);
}

/* Console input arrives in pieces; a request is a whole line. An
 * over-long line is dropped up to its end. */
static void read_console(struct guest *g)
{
    char buf[256];
    ssize_t n = read(0, buf, sizeof(buf));
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\n') {
            if (g->linelen < sizeof(g->line)) {
                g->line[g->linelen] = '\0';
                handle_request(g, g->line);
            } else {
                say("err request too long");
            }
            g->linelen = 0;
        } else if (g->linelen < sizeof(g->line) - 1) {
            g->line[g->linelen++] = buf[i];
        } else {
            g->linelen = sizeof(g->line);
        }
    }
}

/* No echo and no line discipline editing: a request typed by dom0 must
 * not come back into the log as if the guest had printed it. */
static void console_raw(void)
{
    struct termios t;
    if (tcgetattr(0, &t) != 0)
        return;
    t.c_lflag &= ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
    t.c_iflag &= ~(ICRNL | IXON);
    t.c_cc[VMIN] = 1;
    t.c_cc[VTIME] = 0;
    tcsetattr(0, TCSANOW, &t);
}

static void heartbeat_loop(struct guest *g)
{
    int64_t next = clock_ns(CLOCK_MONOTONIC) + HEARTBEAT_NS;
    int64_t next_scan = next + DISK_SCAN_NS;
    for (;;) {
        int64_t now = clock_ns(CLOCK_MONOTONIC);
        int wait_ms = now >= next ? 0 : (int)((next - now + 999999) / 1000000);
        struct pollfd p = { .fd = 0, .events = POLLIN };
        if (poll(&p, 1, wait_ms) > 0 && (p.revents & POLLIN))
            read_console(g);
        now = clock_ns(CLOCK_MONOTONIC);
        if (now < next)
            continue;
        say("hb %" PRIu64 " %" PRId64 " %" PRId64, g->counter++,
            clock_ns(CLOCK_BOOTTIME), now);
        /* After a pause, carry on from now: no burst of catch-up beats. */
        next = now - next > HEARTBEAT_NS ? now + HEARTBEAT_NS : next + HEARTBEAT_NS;
        if (now >= next_scan) {
            scan_disks(g, 0);
            next_scan = now + DISK_SCAN_NS;
        }
    }
}

/* Wait until the disk list has been the same for half a second (blkfront
 * connects asynchronously), at most five seconds. */
static void settle_disks(void)
{
    int64_t deadline = clock_ns(CLOCK_MONOTONIC) + 5000000000LL;
    int stable = 0, last = -1;
    while (stable < 5 && clock_ns(CLOCK_MONOTONIC) < deadline) {
        int n = count_disks();
        stable = n == last ? stable + 1 : 0;
        last = n;
        usleep(100000);
    }
}

/* Run as /sbin/poweroff or /sbin/reboot by the kernel's orderly
 * shutdown: stop the domain the way the toolstack asked. */
static int shutdown_as(const char *argv0)
{
    const char *name = strrchr(argv0, '/');
    int cmd;

    name = name ? name + 1 : argv0;
    if (strcmp(name, "poweroff") == 0)
        cmd = RB_POWER_OFF;
    else if (strcmp(name, "reboot") == 0)
        cmd = RB_AUTOBOOT;
    else
        return 0;
    open_console();
    say("shutdown %s", name);
    sync();
    reboot(cmd);
    return 1;
}

int main(int argc, char **argv)
{
    static struct guest g;

    if (argc > 0 && shutdown_as(argv[0]))
        return 1;

    mount_basics();
    open_console();
    console_raw();
    say("labguest: starting");
    load_modules();
    settle_disks();
    scan_disks(&g, 1);
    bring_up_nics();
    say("ready");
    heartbeat_loop(&g);
    return 0;
}
