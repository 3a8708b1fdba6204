/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * files: the daemon's one module for its own small files: mkdir -p, a
 * bounded read of a whole regular file, and a crash-safe write (temp file
 * in the same directory, fsync, rename over the target, fsync the
 * directory), so that after a crash a file is either wholly old or wholly
 * new. vmextra, config, the SM layer's tables, the SR registry and the
 * migration journal all go through it.
 *
 * Names are plain file names (no '/', not "." or ".."), checked here; the
 * temp file of name is ".<name>.tmp" (a reader of the directory skips
 * those). The *_at forms take a directory fd (or AT_FDCWD) and the
 * directory's name for messages.
 *
 * Errors: XO_ENOTFOUND for a missing file on read/remove, with neither
 * detail nor log line (the caller decides whether that is an error);
 * XO_EINVAL (logged, detail) for a bad name, a file that is not regular or
 * is over the read bound; XO_EIO (logged, detail) for a failed system call.
 * A failed write leaves the old file and no temp file behind (unless a
 * hook simulated a crash).
 */
#ifndef XENOPS_FILES_H
#define XENOPS_FILES_H

#include <stddef.h>

/* Create dir and its missing parents (mode 0700 for new levels). */
int files_mkdirs(const char *dir);

/*
 * Crash-point hooks for tests of the callers' recovery: point is
 * "temp-written" (the temp file is complete, not yet renamed) or
 * "renamed" (renamed, directory not yet synced). A non-zero return stops
 * the write there with that code, as a crash would: the temp file stays.
 */
struct files_hooks {
    int (*point)(void *opaque, const char *point);
    void *opaque;
};

/* Write len bytes of data as name in the directory; hooks may be NULL. */
int files_write_at(int dirfd, const char *dir, const char *name,
                   const char *data, size_t len,
                   const struct files_hooks *hooks);
/* Read the regular file name, at most max bytes (more: XO_EINVAL);
 * *data_r is NUL-terminated, the caller frees it. len_r may be NULL. */
int files_read_at(int dirfd, const char *dir, const char *name, size_t max,
                  char **data_r, size_t *len_r);
/* files_read_at for a path the user names (the config file): the same
 * checks but the name's, and it may be a symbolic link. */
int files_read_path(const char *path, size_t max, char **data_r,
                    size_t *len_r);
/* Remove name and sync the directory. */
int files_remove_at(int dirfd, const char *dir, const char *name);

/* The same, on a directory path. */
int files_write(const char *dir, const char *name, const char *data,
                size_t len);
int files_read(const char *dir, const char *name, size_t max,
               char **data_r, size_t *len_r);
int files_remove(const char *dir, const char *name);

#endif
