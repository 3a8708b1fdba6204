/* SPDX-License-Identifier: LGPL-2.1-only */
/* The migration wire: listener + token, routes, PUT client, forwarded
 * hand-over by SCM_RIGHTS, handshakes, URL and token parsing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "migrate/migrate_http.h"
#include "migrate/migrate_priv.h"
#include "task.h"
#include "util/errors.h"
#include "util/xalloc.h"

#define TOKEN "0123456789abcdef-test-token"

/* The route answers 200, then does one handshake exchange: it sends
 * success, receives the peer's, and records what it saw. */
struct seen {
    pthread_mutex_t m;
    pthread_cond_t c;
    int calls;
    char path[256];
    char final_id[64];
    char *peer_error;
};

static void
route(void *ctx, int fd, const struct migrate_http_req *req)
{
    struct seen *s = ctx;
    const char *fin = migrate_http_cookie(req, "final_id");
    char *err = NULL;

    migrate_http_send_ok(fd);
    migrate_handshake_send(fd, NULL);
    migrate_handshake_recv(fd, 5000, &err);
    pthread_mutex_lock(&s->m);
    snprintf(s->path, sizeof(s->path), "%s", req->path);
    snprintf(s->final_id, sizeof(s->final_id), "%s", fin ? fin : "");
    s->peer_error = err;
    s->calls++;
    pthread_cond_broadcast(&s->c);
    pthread_mutex_unlock(&s->m);
    close(fd);
}

static void
wait_calls(struct seen *s, int n)
{
    pthread_mutex_lock(&s->m);
    while (s->calls < n)
        pthread_cond_wait(&s->c, &s->m);
    pthread_mutex_unlock(&s->m);
}

static char *
url_for(struct migrate_listener *l, const char *token)
{
    return xasprintf("http://127.0.0.1:%d/services/xenops%s%s",
                     migrate_listener_port(l), token ? "?token=" : "",
                     token ? token : "");
}

static void
test_migrate_http_put_and_handshakes(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    struct migrate_listener *l = NULL;
    struct migrate_kv ck[] = { { (char *)"final_id", (char *)"abc" },
                               { (char *)"dbg", (char *)"t" } };
    struct migrate_url u;
    char *url, *err = NULL;
    int fd;

    assert_int_equal(migrate_listener_start("127.0.0.1:0", TOKEN, route, &s,
                                            &l), 0);
    url = url_for(l, TOKEN);
    assert_int_equal(migrate_url_parse(url, &u), 0);
    assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
    assert_int_equal(migrate_http_put(fd, &u, "/migrate/vm/x", ck, 2, 5000),
                     0);
    assert_int_equal(migrate_handshake_recv(fd, 5000, &err), 0);
    assert_null(err);
    assert_int_equal(migrate_handshake_send(fd, "[\"Internal_error\","
                                                "\"boom\"]"), 0);
    wait_calls(&s, 1);
    assert_string_equal(s.path, "/services/xenops/migrate/vm/x");
    assert_string_equal(s.final_id, "abc");
    assert_string_equal(s.peer_error, "[\"Internal_error\",\"boom\"]");
    free(s.peer_error);
    close(fd);
    migrate_url_dispose(&u);
    free(url);
    migrate_listener_stop(l);
}

static void
test_migrate_http_wrong_token_refused(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    const char *tokens[] = { NULL, "wrong", TOKEN "x", "0123456789abcdef" };
    struct migrate_listener *l = NULL;
    struct migrate_url u;
    int fd;

    assert_int_equal(migrate_listener_start("127.0.0.1:0", TOKEN, route, &s,
                                            &l), 0);
    for (size_t i = 0; i < sizeof(tokens) / sizeof(tokens[0]); i++) {
        char *url = url_for(l, tokens[i]);

        assert_int_equal(migrate_url_parse(url, &u), 0);
        assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
        assert_int_not_equal(migrate_http_put(fd, &u, "/migrate/vm/x", NULL,
                                              0, 5000), 0);
        xo_err_clear();
        close(fd);
        migrate_url_dispose(&u);
        free(url);
    }
    migrate_listener_stop(l);
    assert_int_equal(s.calls, 0);
}

/* Garbage and an over-long head: the listener answers and survives. */
static void
test_migrate_http_bad_requests(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    struct migrate_listener *l = NULL;
    struct migrate_url u;
    char *url, *big, buf[64];
    ssize_t n;
    int fd;

    assert_int_equal(migrate_listener_start("127.0.0.1:0", TOKEN, route, &s,
                                            &l), 0);
    url = url_for(l, TOKEN);
    assert_int_equal(migrate_url_parse(url, &u), 0);
    assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
    assert_true(write(fd, "garbage\r\n\r\n", 11) == 11);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 12);
    buf[n] = '\0';
    assert_non_null(strstr(buf, " 400 "));
    close(fd);
    big = xmalloc(MIGRATE_HTTP_HEAD_MAX + 100);
    memset(big, 'a', MIGRATE_HTTP_HEAD_MAX + 99);
    big[MIGRATE_HTTP_HEAD_MAX + 99] = '\0';
    assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
    assert_true(write(fd, big, strlen(big)) > 0);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    close(fd);
    free(big);
    /* Still serving. */
    assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
    assert_int_equal(migrate_http_put(fd, &u, "/migrate/mem/y", NULL, 0,
                                      5000), 0);
    close(fd);
    wait_calls(&s, 1);
    free(s.peer_error);
    migrate_url_dispose(&u);
    free(url);
    migrate_listener_stop(l);
}

/* Send head on a new connection; true if the answer is a 400. */
static bool
refused_with_400(const struct migrate_url *u, const char *head)
{
    char buf[64];
    ssize_t n;
    int fd;

    assert_int_equal(migrate_http_connect(u, 5000, &fd), 0);
    assert_true(write(fd, head, strlen(head)) == (ssize_t)strlen(head));
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, " 400 ") != NULL;
}

/* The framing rules every server of ours applies (http.h): one
 * Content-Length, no Transfer-Encoding; the route is never called. */
static void
test_migrate_http_strict_framing(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    struct migrate_listener *l = NULL;
    struct migrate_url u;
    char *url, *head;

    assert_int_equal(migrate_listener_start("127.0.0.1:0", TOKEN, route, &s,
                                            &l), 0);
    url = url_for(l, TOKEN);
    assert_int_equal(migrate_url_parse(url, &u), 0);
    head = xasprintf("POST /services/xenops?token=%s HTTP/1.1\r\n"
                     "Content-Length: 2\r\nContent-Length: 3\r\n\r\n",
                     TOKEN);
    assert_true(refused_with_400(&u, head));
    free(head);
    head = xasprintf("POST /services/xenops?token=%s HTTP/1.1\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n", TOKEN);
    assert_true(refused_with_400(&u, head));
    free(head);
    head = xasprintf("POST /services/xenops?token=%s HTTP/1.1\r\n"
                     "Content-Length: 1x\r\n\r\n", TOKEN);
    assert_true(refused_with_400(&u, head));
    free(head);
    pthread_mutex_lock(&s.m);
    assert_int_equal(s.calls, 0);
    pthread_mutex_unlock(&s.m);
    migrate_url_dispose(&u);
    free(url);
    migrate_listener_stop(l);
}

/* xapi's hand-over: an accepted connection sent over the forwarded
 * socket with the request's JSON. */
static void
test_migrate_http_forwarded_handover(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    char dir[] = "/tmp/xenops-fwd.XXXXXX";
    const char *json = "{\"path\":\"/services/xenops/migrate/vm/t1\","
                       "\"query\":{\"session_id\":\"x\"},\"cookie\":"
                       "{\"final_id\":\"fid\",\"dbg\":\"d\"},"
                       "\"additional_headers\":{}}";
    struct migrate_listener *l = NULL;
    struct sockaddr_un sa;
    struct msghdr msg;
    struct iovec iov;
    struct cmsghdr *cm;
    char cbuf[CMSG_SPACE(sizeof(int))], head[64], *path, *err = NULL;
    int sv[2], ctl;
    ssize_t n;

    assert_non_null(mkdtemp(dir));
    path = xasprintf("%s/xenopsd.forwarded", dir);
    assert_int_equal(migrate_forwarded_start(path, route, &s, &l), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ctl = socket(AF_UNIX, SOCK_STREAM, 0);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    assert_int_equal(connect(ctl, (struct sockaddr *)&sa, sizeof(sa)), 0);
    memset(&msg, 0, sizeof(msg));
    iov.iov_base = (void *)json;
    iov.iov_len = strlen(json);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf;
    msg.msg_controllen = sizeof(cbuf);
    cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &sv[1], sizeof(int));
    assert_true(sendmsg(ctl, &msg, 0) > 0);
    close(sv[1]);
    /* Our end of the handed-over connection sees the receiver's reply. */
    n = read(sv[0], head, 19);
    assert_int_equal(n, 19);
    assert_memory_equal(head, "HTTP/1.1 200 OK\r\n\r\n", 19);
    assert_int_equal(migrate_handshake_recv(sv[0], 5000, &err), 0);
    assert_null(err);
    assert_int_equal(migrate_handshake_send(sv[0], NULL), 0);
    wait_calls(&s, 1);
    assert_string_equal(s.path, "/services/xenops/migrate/vm/t1");
    assert_string_equal(s.final_id, "fid");
    assert_null(s.peer_error);
    close(sv[0]);
    close(ctl);
    migrate_listener_stop(l);
    assert_int_not_equal(access(path, F_OK), 0);
    rmdir(dir);
    free(path);
}

/* Unauthenticated connections cannot pile up threads: beyond the cap a
 * connection is answered 503 at once, and a freed slot is usable again. */
static void
test_migrate_http_connection_cap(void **state)
{
    struct seen s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      0, "", "", NULL };
    struct migrate_listener *l = NULL;
    int fds[MIGRATE_HTTP_MAX_CONNS];
    struct migrate_url u;
    char *url, buf[64];
    ssize_t n;
    int fd;

    assert_int_equal(migrate_listener_start("127.0.0.1:0", TOKEN, route, &s,
                                            &l), 0);
    url = url_for(l, TOKEN);
    assert_int_equal(migrate_url_parse(url, &u), 0);
    /* Idle connections that never send a head hold their slots. */
    for (int i = 0; i < MIGRATE_HTTP_MAX_CONNS; i++)
        assert_int_equal(migrate_http_connect(&u, 5000, &fds[i]), 0);
    assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
    n = read(fd, buf, sizeof(buf) - 1);
    assert_true(n > 12);
    buf[n] = '\0';
    assert_non_null(strstr(buf, " 503 "));
    close(fd);
    for (int i = 0; i < MIGRATE_HTTP_MAX_CONNS; i++)
        close(fds[i]);
    /* Once the idle ones are gone, a real request is served. */
    for (int tries = 0; tries < 100; tries++) {
        assert_int_equal(migrate_http_connect(&u, 5000, &fd), 0);
        if (migrate_http_put(fd, &u, "/migrate/mem/y", NULL, 0, 5000) == 0)
            break;
        xo_err_clear();
        close(fd);
        fd = -1;
        usleep(50000);
    }
    assert_true(fd >= 0);
    close(fd);
    wait_calls(&s, 1);
    free(s.peer_error);
    migrate_url_dispose(&u);
    free(url);
    migrate_listener_stop(l);
}

static void
test_migrate_http_url_parse(void **state)
{
    struct migrate_url u;

    assert_int_equal(migrate_url_parse("http://10.0.0.2:8089/services/"
                                       "xenops?token=abc", &u), 0);
    assert_string_equal(u.host, "10.0.0.2");
    assert_string_equal(u.port, "8089");
    assert_string_equal(u.path, "/services/xenops");
    assert_string_equal(u.query, "token=abc");
    migrate_url_dispose(&u);
    assert_int_equal(migrate_url_parse("http://[::1]:80/x", &u), 0);
    assert_string_equal(u.host, "::1");
    migrate_url_dispose(&u);
    assert_int_equal(migrate_url_parse("https://h:1/x", &u), XO_EINVAL);
    assert_int_equal(migrate_url_parse("http://h/x", &u), XO_EINVAL);
    assert_int_equal(migrate_url_parse("http://u@h:1/x", &u), XO_EINVAL);
    assert_int_equal(migrate_url_parse("http://h:1/x y", &u), XO_EINVAL);
    assert_int_equal(migrate_url_parse("http://h:1/x\r\nEvil: 1", &u),
                     XO_EINVAL);
    xo_err_clear();
}

static void
test_migrate_http_token_file(void **state)
{
    char path[] = "/tmp/xenops-token.XXXXXX";
    int fd = mkstemp(path);
    char *tok = NULL;

    assert_true(fd >= 0);
    assert_true(write(fd, TOKEN "  \nsecond line\n", strlen(TOKEN) + 15) >
                0);
    close(fd);
    assert_int_equal(migrate_token_load(path, &tok), 0);
    assert_string_equal(tok, TOKEN);
    free(tok);
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(write(fd, "short\n", 6) == 6);
    close(fd);
    assert_int_equal(migrate_token_load(path, &tok), XO_EINVAL);
    unlink(path);
    assert_int_equal(migrate_token_load(path, &tok), XO_EIO);
    xo_err_clear();
}

/* A receive waiting for its memory channel, on a thread. */
struct claim_run {
    struct migrate *m;
    int vm_fd;
    struct task *task;
    int rc;
    int fd;
};

static void *
claim_thread(void *arg)
{
    struct claim_run *c = arg;

    c->rc = migrate_mem_claim(c->m, "claim-test", c->vm_fd, c->task, &c->fd);
    return NULL;
}

/* Nothing is parked and the VM channel stays open (the gate is never
 * released), so only the cancel can end the wait before the rendezvous
 * limit, which would answer XO_ETIMEDOUT. */
static void
test_migrate_mem_claim_woken_by_cancel(void **state)
{
    struct task_registry *reg = task_registry_new(NULL);
    struct claim_run c = { .rc = 1, .fd = -2 };
    struct migrate m;
    bool linked = false;
    pthread_t th;
    int sv[2];

    (void)state;
    memset(&m, 0, sizeof(m));
    pthread_mutex_init(&m.lock, NULL);
    pthread_cond_init(&m.cond, NULL);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    c.m = &m;
    c.vm_fd = sv[0];
    c.task = task_create(reg, "claim");
    assert_int_equal(pthread_create(&th, NULL, claim_thread, &c), 0);
    /* Cancel once the claim is waiting. */
    while (!linked) {
        pthread_mutex_lock(&m.lock);
        linked = m.claims != NULL;
        pthread_mutex_unlock(&m.lock);
        if (!linked)
            sched_yield();
    }
    assert_int_equal(task_cancel(reg, task_id(c.task)), 0);
    pthread_join(th, NULL);
    assert_int_equal(c.rc, XO_ECANCELLED);
    assert_int_equal(c.fd, -1);
    pthread_mutex_lock(&m.lock);
    assert_null(m.claims);
    pthread_mutex_unlock(&m.lock);
    close(sv[0]);
    close(sv[1]);
    task_unref(c.task);
    task_registry_free(reg);
    pthread_cond_destroy(&m.cond);
    pthread_mutex_destroy(&m.lock);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_http_put_and_handshakes),
        cmocka_unit_test(test_migrate_http_wrong_token_refused),
        cmocka_unit_test(test_migrate_http_bad_requests),
        cmocka_unit_test(test_migrate_http_strict_framing),
        cmocka_unit_test(test_migrate_http_forwarded_handover),
        cmocka_unit_test(test_migrate_http_connection_cap),
        cmocka_unit_test(test_migrate_http_url_parse),
        cmocka_unit_test(test_migrate_http_token_file),
        cmocka_unit_test(test_migrate_mem_claim_woken_by_cancel),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
