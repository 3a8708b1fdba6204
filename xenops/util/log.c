/* SPDX-License-Identifier: LGPL-2.1-only */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>

#include "util/log.h"

static enum log_level log_level = LOG_LVL_INFO;
static int log_syslog;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void
log_set_level(enum log_level level)
{
    log_level = level;
}

enum log_level
log_get_level(void)
{
    return log_level;
}

int
log_level_parse(const char *name, enum log_level *r)
{
    for (int i = 0; i <= LOG_LVL_DEBUG; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *r = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void
log_use_syslog(const char *ident)
{
    openlog(ident, LOG_PID, LOG_DAEMON);
    log_syslog = 1;
}

void
log_write(enum log_level level, int with_errno, const char *vm,
          const char *func, const char *fmt, ...)
{
    static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
    int saved = errno;
    char msg[2048];
    char err[128] = "";
    struct timespec ts;
    struct tm tm;
    va_list ap;

    if (level > log_level)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (with_errno)
        snprintf(err, sizeof(err), ": %s", strerror(saved));

    if (log_syslog) {
        syslog(prio[level], "%s%s%s: %s%s", vm ? "VM=" : "", vm ? vm : "",
               vm ? " " : "", msg, err);
        errno = saved;
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    pthread_mutex_lock(&log_lock);
    fprintf(stderr, "%02d:%02d:%02d.%03ld %-5s [%s] %s%s%s%s%s\n",
            tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
            level_names[level], func,
            vm ? "VM=" : "", vm ? vm : "", vm ? " " : "", msg, err);
    pthread_mutex_unlock(&log_lock);
    errno = saved;
}
