/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * log: one line per event, to stderr (default) or syslog.
 *
 * Contract: thread-safe; each call writes one whole line. Messages are
 * lowercase, values quoted '%s', format strings never split. The function
 * that detects a failure logs it once; callers only propagate.
 */
#ifndef XENOPS_LOG_H
#define XENOPS_LOG_H

enum log_level {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
};

/* Only messages at or above the level are written (default INFO). */
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -1 on an unknown name. */
int log_level_parse(const char *name, enum log_level *r);
/* Send lines to syslog with the given ident instead of stderr. */
void log_use_syslog(const char *ident);

void log_write(enum log_level level, int with_errno, const char *vm,
               const char *func, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#define LOG(lvl, ...) \
    log_write(LOG_LVL_##lvl, 0, NULL, __func__, __VA_ARGS__)
/* Appends ": <strerror(errno)>"; errno is preserved. */
#define LOGE(lvl, ...) \
    log_write(LOG_LVL_##lvl, 1, NULL, __func__, __VA_ARGS__)
/* Prefixes the VM uuid. */
#define LOGVM(lvl, vm, ...) \
    log_write(LOG_LVL_##lvl, 0, (vm), __func__, __VA_ARGS__)

#endif
