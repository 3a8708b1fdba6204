/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The HTTP/1.1 framing that the message interface (rpc.c: server and
 * client on the Unix socket) and live migration (migrate_http.c: the
 * receiver's entry points and the sender's requests) share: I/O with
 * deadlines, the header block, strict header parsing, responses.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "util/errors.h"
#include "util/http.h"
#include "util/xalloc.h"

/* ---- time and I/O with deadlines ---- */

int64_t
http_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* deadline < 0 means none. */
int64_t
http_deadline(int timeout_ms)
{
    return timeout_ms < 0 ? -1 : http_now_ms() + timeout_ms;
}

/* Wait until fd is ready for events: 0, XO_ETIMEDOUT or XO_EIO. */
int
http_wait(int fd, short events, int64_t deadline)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    int timeout, r;

    for (;;) {
        timeout = -1;
        if (deadline >= 0) {
            int64_t left = deadline - http_now_ms();

            if (left <= 0)
                return XO_ETIMEDOUT;
            timeout = left > INT32_MAX ? INT32_MAX : (int)left;
        }
        r = poll(&pfd, 1, timeout);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return XO_EIO;
    }
}

int
http_send_all(int fd, const char *buf, size_t len, int64_t deadline)
{
    ssize_t r;
    int rc;

    while (len > 0) {
        rc = http_wait(fd, POLLOUT, deadline);
        if (rc)
            return rc;
        r = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return XO_EIO;
        }
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

/* ---- framing ---- */

/* Offset just past the blank line ending the header block, or 0. Bare LF
 * line ends are accepted as RFC 9112 allows. */
size_t
http_header_end(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

/* Cut the next line off *p (a NUL-terminated header block), dropping the
 * line end. NULL when no line is left. */
char *
http_next_line(char **p)
{
    char *line = *p;
    char *nl;

    if (!*line)
        return NULL;
    nl = strchr(line, '\n');
    if (nl) {
        *nl = '\0';
        *p = nl + 1;
    } else {
        *p = line + strlen(line);
    }
    if (nl && nl > line && nl[-1] == '\r')
        nl[-1] = '\0';
    return line;
}

static char *
http_trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

/* Split "Name: value"; fails on an empty name, whitespace in the name or
 * an obsolete folded line. */
bool
http_split_header(char *line, char **name_r, char **value_r)
{
    char *colon = strchr(line, ':');

    if (!colon || colon == line)
        return false;
    for (char *c = line; c < colon; c++) {
        if (*c <= ' ' || *c == 0x7f)
            return false;
    }
    *colon = '\0';
    *name_r = line;
    *value_r = http_trim(colon + 1);
    return true;
}

/* A plain decimal; *too_big_r when it exceeds max. */
bool
http_parse_length(const char *s, size_t max, size_t *len_r, bool *too_big_r)
{
    size_t n = 0;
    size_t d;

    *too_big_r = false;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        d = (size_t)(*s - '0');
        if (*too_big_r || n > (SIZE_MAX - d) / 10) {
            *too_big_r = true;
            continue;
        }
        n = n * 10 + d;
        if (n > max)
            *too_big_r = true;
    }
    *len_r = n;
    return true;
}

/* Whether a comma-separated header value holds token (case-insensitive). */
bool
http_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);

    for (const char *p = value; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (strncasecmp(p, token, n) == 0 &&
            (p[n] == '\0' || p[n] == ',' || p[n] == ' ' || p[n] == '\t'))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

const char *
http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    }
    return "Error";
}

int
http_write_response(int fd, int status, const char *content_type,
                    const char *body, bool close, int64_t deadline)
{
    size_t len = body ? strlen(body) : 0;
    char head[256];
    int n, rc;

    n = snprintf(head, sizeof(head),
                 "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n%s\r\n",
                 status, http_reason(status),
                 content_type ? "Content-Type: " : "",
                 content_type ? content_type : "", content_type ? "\r\n" : "",
                 len, close ? "Connection: close\r\n" : "");
    rc = http_send_all(fd, head, (size_t)n, deadline);
    if (rc == 0 && len > 0)
        rc = http_send_all(fd, body, len, deadline);
    return rc;
}


int
http_recv_exact(int fd, void *buf, size_t len, int64_t deadline)
{
    char *p = buf;

    while (len > 0) {
        ssize_t n;
        int rc = http_wait(fd, POLLIN, deadline);

        if (rc)
            return rc;
        n = recv(fd, p, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n <= 0)
            return XO_EIO;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int
http_framing_header(const char *name, const char *value, size_t max_body,
                    struct http_framing *f, const char **why_r)
{
    size_t n;
    bool too_big;

    if (strcasecmp(name, "Transfer-Encoding") == 0) {
        *why_r = "Transfer-Encoding is not supported";
        return 411;
    }
    if (strcasecmp(name, "Content-Length") != 0)
        return 0;
    if (!http_parse_length(value, max_body, &n, &too_big) ||
        (f->have_len && !too_big && n != f->len)) {
        *why_r = "invalid Content-Length";
        return 400;
    }
    if (too_big) {
        *why_r = "body larger than the limit";
        return 413;
    }
    f->len = n;
    f->have_len = true;
    return 0;
}

/* "HTTP/1.x NNN[ reason]" */
static bool
parse_status_line(const char *line, int *status_r)
{
    int status = 0;

    if (strncmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' &&
                                             line[7] != '1') ||
        line[8] != ' ')
        return false;
    for (int i = 9; i < 12; i++) {
        if (line[i] < '0' || line[i] > '9')
            return false;
        status = status * 10 + (line[i] - '0');
    }
    if (line[12] != ' ' && line[12] != '\0')
        return false;
    *status_r = status;
    return true;
}

int
http_parse_response_head(const char *head, size_t len, size_t max_body,
                         int *status_r, size_t *body_len_r, bool *has_len_r)
{
    struct http_framing f = { false, 0 };
    char *copy = xstrndup(head, len);
    char *p = copy, *line, *name, *value;
    const char *why = NULL;
    int rc = XO_EINVAL;

    line = http_next_line(&p);
    if (memchr(head, '\0', len) || !line ||
        !parse_status_line(line, status_r))
        goto out;
    while ((line = http_next_line(&p)) && *line) {
        if (!http_split_header(line, &name, &value) ||
            http_framing_header(name, value, max_body, &f, &why))
            goto out;
    }
    *body_len_r = f.len;
    *has_len_r = f.have_len;
    rc = 0;
out:
    free(copy);
    return rc;
}

char *
http_request_head(const char *method, const char *target, const char *host,
                  const char *extra_headers)
{
    return xasprintf("%s %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", method,
                     target, host, extra_headers ? extra_headers : "");
}
