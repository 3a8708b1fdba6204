/* SPDX-License-Identifier: LGPL-2.1-only */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/errors.h"
#include "util/files.h"
#include "util/log.h"
#include "util/xalloc.h"

#define FILES_NAME_MAX 200

static int
io_fail(const char *what, const char *dir, const char *name)
{
    int saved = errno;

    LOGE(ERROR, "cannot %s '%s/%s'", what, dir, name);
    return xo_err_internal_code(XO_EIO, "cannot %s %s/%s: %s", what, dir,
                                name, strerror(saved));
}

static int
check_name(const char *name)
{
    if (!name[0] || strchr(name, '/') || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0 || strlen(name) > FILES_NAME_MAX) {
        LOG(ERROR, "bad file name '%.*s'", FILES_NAME_MAX, name);
        return xo_err_internal_code(XO_EINVAL, "bad file name '%.*s'",
                                    FILES_NAME_MAX, name);
    }
    return 0;
}

int
files_mkdirs(const char *dir)
{
    char *p = xstrdup(dir);
    int rc = 0;

    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;

            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                LOGE(ERROR, "cannot create directory '%s'", p);
                rc = xo_err_internal_code(XO_EIO, "cannot create directory "
                                          "%s: %s", p, strerror(errno));
                break;
            }
            *s = saved;
            if (!saved)
                break;
        }
    }
    free(p);
    return rc;
}

static int
write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
hook(const struct files_hooks *h, const char *point)
{
    return h && h->point ? h->point(h->opaque, point) : 0;
}

/* The temp file, complete and synced; fd is closed either way. */
static int
write_temp(int dirfd, const char *dir, const char *tmp, const char *data,
           size_t len)
{
    int fd, rc = 0;

    fd = openat(dirfd, tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC |
                O_NOFOLLOW, 0600);
    if (fd < 0)
        return io_fail("create", dir, tmp);
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0)
        rc = io_fail("write", dir, tmp);
    if (close(fd) < 0 && !rc)
        rc = io_fail("close", dir, tmp);
    return rc;
}

static int
sync_dir(int dirfd, const char *dir, const char *name)
{
    int dfd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int rc = 0;

    if (dfd < 0 || fsync(dfd) < 0)
        rc = io_fail("sync directory of", dir, name);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

int
files_write_at(int dirfd, const char *dir, const char *name,
               const char *data, size_t len, const struct files_hooks *hooks)
{
    char *tmp = NULL;
    bool tmp_left = false;
    int rc;

    rc = check_name(name);
    if (rc)
        goto out;
    tmp = xasprintf(".%s.tmp", name);
    /* From its creation until the rename the temp file is ours to remove
     * on failure, a failed rename included. */
    tmp_left = true;
    rc = write_temp(dirfd, dir, tmp, data, len);
    if (rc)
        goto out;
    rc = hook(hooks, "temp-written");
    if (rc) {
        /* A simulated crash leaves it, as a real one would. */
        tmp_left = false;
        goto out;
    }
    if (renameat(dirfd, tmp, dirfd, name) < 0) {
        rc = io_fail("rename into place", dir, name);
        goto out;
    }
    tmp_left = false;
    rc = hook(hooks, "renamed");
    if (rc)
        goto out;
    rc = sync_dir(dirfd, dir, name);
out:
    if (tmp_left)
        unlinkat(dirfd, tmp, 0);
    free(tmp);
    return rc;
}

/* Read fd whole into *buf_r, at most max bytes; shown names the file.
 * The buffer starts at the size fstat saw (hint) and grows only if the
 * file does: the bound is often far larger than the file, and a read per
 * RPC must not allocate the bound. */
static int
read_bounded(int fd, const char *shown, size_t max, size_t hint,
             char **buf_r, size_t *len_r)
{
    size_t cap = (hint < max ? hint : max) + 1;
    char *buf = xmalloc(cap + 1);
    size_t len = 0;
    int rc = 0;

    for (;;) {
        ssize_t n;

        if (len == cap) {
            /* One byte past the bound shows a file over it. */
            cap = cap > (max + 1) / 2 ? max + 1 : cap * 2;
            buf = xrealloc(buf, cap + 1);
        }
        n = read(fd, buf + len, cap - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            LOGE(ERROR, "cannot read '%s'", shown);
            rc = xo_err_internal_code(XO_EIO, "cannot read %s: %s", shown,
                                      strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            LOG(ERROR, "'%s' is larger than %zu bytes", shown, max);
            rc = xo_err_internal_code(XO_EINVAL, "%s is larger than %zu "
                                      "bytes", shown, max);
            break;
        }
    }
    if (rc) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *buf_r = buf;
    *len_r = len;
    return 0;
}

/* flags: O_NOFOLLOW for the daemon's own files, 0 for a path the user
 * named (it may well be a link). */
static int
read_file(int dirfd, const char *name, const char *shown, int flags,
          size_t max, char **data_r, size_t *len_r)
{
    struct stat st;
    size_t len = 0;
    int fd = -1;
    int rc;

    *data_r = NULL;
    /* O_NONBLOCK: a FIFO in place of the file must not hang the reader. */
    fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK |
                flags);
    if (fd < 0 && errno == ENOENT) {
        rc = XO_ENOTFOUND;
        goto out;
    }
    if (fd < 0 || fstat(fd, &st) < 0) {
        LOGE(ERROR, "cannot open '%s'", shown);
        rc = xo_err_internal_code(XO_EIO, "cannot open %s: %s", shown,
                                  strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        LOG(ERROR, "'%s' is not a regular file", shown);
        rc = xo_err_internal_code(XO_EINVAL, "%s is not a regular file",
                                  shown);
        goto out;
    }
    rc = read_bounded(fd, shown, max, (size_t)st.st_size, data_r, &len);
    if (!rc && len_r)
        *len_r = len;
out:
    if (fd >= 0)
        close(fd);
    return rc;
}

int
files_read_at(int dirfd, const char *dir, const char *name, size_t max,
              char **data_r, size_t *len_r)
{
    char *shown;
    int rc;

    *data_r = NULL;
    rc = check_name(name);
    if (rc)
        return rc;
    shown = xasprintf("%s/%s", dir, name);
    rc = read_file(dirfd, name, shown, O_NOFOLLOW, max, data_r, len_r);
    free(shown);
    return rc;
}

int
files_read_path(const char *path, size_t max, char **data_r, size_t *len_r)
{
    return read_file(AT_FDCWD, path, path, 0, max, data_r, len_r);
}

int
files_remove_at(int dirfd, const char *dir, const char *name)
{
    int rc = check_name(name);

    if (rc)
        return rc;
    if (unlinkat(dirfd, name, 0) < 0)
        return errno == ENOENT ? XO_ENOTFOUND
                               : io_fail("remove", dir, name);
    return sync_dir(dirfd, dir, name);
}

/* ---- on a directory path ---- */

static int
open_dir(const char *dir, int *dfd_r)
{
    *dfd_r = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (*dfd_r >= 0)
        return 0;
    if (errno == ENOENT)
        return XO_ENOTFOUND;
    LOGE(ERROR, "cannot open directory '%s'", dir);
    return xo_err_internal_code(XO_EIO, "cannot open directory %s: %s", dir,
                                strerror(errno));
}

int
files_write(const char *dir, const char *name, const char *data,
            size_t len)
{
    int dfd, rc = open_dir(dir, &dfd);

    if (rc == XO_ENOTFOUND) {
        LOG(ERROR, "cannot write '%s/%s': no such directory", dir, name);
        return xo_err_internal_code(XO_EIO, "cannot write %s/%s: no such "
                                    "directory", dir, name);
    }
    if (rc)
        return rc;
    rc = files_write_at(dfd, dir, name, data, len, NULL);
    close(dfd);
    return rc;
}

int
files_read(const char *dir, const char *name, size_t max, char **data_r,
           size_t *len_r)
{
    int dfd, rc;

    *data_r = NULL;
    rc = open_dir(dir, &dfd);
    if (rc)
        return rc;
    rc = files_read_at(dfd, dir, name, max, data_r, len_r);
    close(dfd);
    return rc;
}

int
files_remove(const char *dir, const char *name)
{
    int dfd, rc = open_dir(dir, &dfd);

    if (rc)
        return rc;
    rc = files_remove_at(dfd, dir, name);
    close(dfd);
    return rc;
}
