/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * atomicfile: small files that are either wholly old or wholly new after a
 * crash: write a temp file in the same directory, fsync, rename over the
 * target, fsync the directory. For the daemon's own state files (SR
 * registry, datapath table); vmextra keeps its own writer because it needs
 * crash-point hooks inside the sequence.
 *
 * Names are plain file names (no '/'), checked here. Errors: XO_EIO with an
 * Internal_error detail and a log line naming the file; XO_ENOTFOUND for a
 * missing file on read/remove; XO_EINVAL for a bad name or an over-long
 * file.
 */
#ifndef XENOPS_ATOMICFILE_H
#define XENOPS_ATOMICFILE_H

#include <stddef.h>

/* Create dir (and parents, mode 0700) if missing. */
int atomicfile_mkdirs(const char *dir);
int atomicfile_write(const char *dir, const char *name, const char *data,
                     size_t len);
/* Read at most max bytes; *data_r is NUL-terminated, caller frees. */
int atomicfile_read(const char *dir, const char *name, size_t max,
                    char **data_r, size_t *len_r);
int atomicfile_remove(const char *dir, const char *name);

#endif
