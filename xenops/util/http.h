/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * http: the one HTTP/1.1 framing of the daemon, shared by the message
 * interface (rpc.c, server and client on the Unix socket) and live
 * migration (migrate_http.c, the receiver's entry points and the sender's
 * requests): socket I/O with deadlines, finding and splitting the header
 * block, and the framing rules every server applies:
 *
 * - the header block is at most HTTP_HEAD_MAX bytes (431 beyond);
 * - a body is framed by exactly one Content-Length: a repeated one that
 *   disagrees, or one that is not a plain decimal, is refused (400), one
 *   over the server's limit too (413);
 * - Transfer-Encoding is refused (411): no peer of ours sends chunked
 *   requests, and accepting both framings is how requests get smuggled.
 *
 * Deadlines are CLOCK_MONOTONIC milliseconds from http_deadline; < 0
 * means none. I/O returns 0, XO_ETIMEDOUT or XO_EIO and logs nothing (the
 * caller knows what the connection was for).
 */
#ifndef XENOPS_HTTP_H
#define XENOPS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX (16 * 1024)

int64_t http_now_ms(void);
/* A deadline timeout_ms from now; < 0 gives none. */
int64_t http_deadline(int timeout_ms);
/* Wait until fd is ready for events (poll flags). */
int http_wait(int fd, short events, int64_t deadline);
/* Send all of buf (no SIGPIPE). */
int http_send_all(int fd, const char *buf, size_t len, int64_t deadline);
/* Receive exactly len bytes; a close before that is XO_EIO. */
int http_recv_exact(int fd, void *buf, size_t len, int64_t deadline);

/* Offset just past the blank line ending the header block in buf, or 0
 * when it is not complete. Bare LF line ends are accepted (RFC 9112). */
size_t http_header_end(const char *buf, size_t len);
/* Cut the next line off *p (a NUL-terminated header block), dropping its
 * line end; NULL when no line is left. */
char *http_next_line(char **p);
/* Split "Name: value" in place; false on an empty name, whitespace in the
 * name or an obsolete folded line. */
bool http_split_header(char *line, char **name_r, char **value_r);
/* A plain decimal; *too_big_r when it exceeds max. */
bool http_parse_length(const char *s, size_t max, size_t *len_r,
                       bool *too_big_r);
/* Whether a comma-separated header value holds token (any case). */
bool http_has_token(const char *value, const char *token);

/* What the framing headers of one request said so far. */
struct http_framing {
    bool have_len;
    size_t len;
};
/*
 * Apply the framing rules above to one header: 0 when name is not a
 * framing header or is acceptable (f updated), else the HTTP status to
 * answer with and *why_r a reason for the log.
 */
int http_framing_header(const char *name, const char *value,
                        size_t max_body, struct http_framing *f,
                        const char **why_r);

/*
 * A response's head (len bytes, through the blank line): *status_r from
 * a "HTTP/1.x NNN ..." status line, and the body length by the framing
 * rules above (max_body bounds it; *has_len_r false when the head gives
 * none). XO_EINVAL for a malformed or refused head, which the caller
 * reports.
 */
int http_parse_response_head(const char *head, size_t len, size_t max_body,
                             int *status_r, size_t *body_len_r,
                             bool *has_len_r);
/* The head of a request (caller frees): "<method> <target> HTTP/1.1",
 * Host, then extra_headers (complete "Name: value\r\n" lines, may be
 * NULL), and the blank line. */
char *http_request_head(const char *method, const char *target,
                        const char *host, const char *extra_headers);

const char *http_reason(int status);
/* A response with an optional body (and Content-Type), and
 * "Connection: close" when close. */
int http_write_response(int fd, int status, const char *content_type,
                        const char *body, bool close, int64_t deadline);

#endif
