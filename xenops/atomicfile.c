/* SPDX-License-Identifier: LGPL-2.1-only */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomicfile.h"
#include "errors.h"
#include "log.h"
#include "xalloc.h"

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
        strcmp(name, "..") == 0 || strlen(name) > 200)
        return xo_err_internal_code(XO_EINVAL, "bad file name '%s'", name);
    return 0;
}

int
atomicfile_mkdirs(const char *dir)
{
    char *p = xstrdup(dir);
    int rc = 0;

    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char saved = *s;

            *s = '\0';
            if (mkdir(p, 0700) < 0 && errno != EEXIST) {
                rc = io_fail("create directory", p, "");
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

int
atomicfile_write(const char *dir, const char *name, const char *data,
                 size_t len)
{
    char *tmp = NULL, *path = NULL;
    int fd = -1, dfd = -1;
    int rc;

    rc = check_name(name);
    if (rc)
        goto out;
    tmp = xasprintf("%s/.%s.tmp", dir, name);
    path = xasprintf("%s/%s", dir, name);
    fd = open(tmp, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC | O_NOFOLLOW,
              0600);
    if (fd < 0) {
        rc = io_fail("create", dir, name);
        goto out;
    }
    if (write_all(fd, data, len) < 0 || fsync(fd) < 0) {
        rc = io_fail("write", dir, name);
        goto out;
    }
    close(fd);
    fd = -1;
    if (rename(tmp, path) < 0) {
        rc = io_fail("rename into place", dir, name);
        goto out;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0) {
        rc = io_fail("sync directory of", dir, name);
        goto out;
    }
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    if (dfd >= 0)
        close(dfd);
    free(tmp);
    free(path);
    return rc;
}

int
atomicfile_read(const char *dir, const char *name, size_t max,
                char **data_r, size_t *len_r)
{
    char *path = NULL, *buf = NULL;
    size_t len = 0;
    int fd = -1;
    int rc;

    *data_r = NULL;
    rc = check_name(name);
    if (rc)
        goto out;
    path = xasprintf("%s/%s", dir, name);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        rc = errno == ENOENT ? XO_ENOTFOUND : io_fail("open", dir, name);
        goto out;
    }
    buf = xmalloc(max + 1);
    for (;;) {
        ssize_t n = read(fd, buf + len, max + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = io_fail("read", dir, name);
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            LOG(ERROR, "'%s/%s' is larger than %zu bytes", dir, name, max);
            rc = xo_err_internal_code(XO_EINVAL, "%s/%s is too large", dir,
                                      name);
            goto out;
        }
    }
    buf[len] = '\0';
    *data_r = buf;
    buf = NULL;
    if (len_r)
        *len_r = len;
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    free(path);
    return rc;
}

int
atomicfile_remove(const char *dir, const char *name)
{
    char *path;
    int rc = check_name(name);
    int dfd;

    if (rc)
        return rc;
    path = xasprintf("%s/%s", dir, name);
    if (unlink(path) < 0) {
        rc = errno == ENOENT ? XO_ENOTFOUND : io_fail("remove", dir, name);
    } else if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        if (fsync(dfd) < 0)
            rc = io_fail("sync directory of", dir, name);
        close(dfd);
    }
    free(path);
    return rc;
}
