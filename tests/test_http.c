/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * Tests of the shared HTTP framing (http.h): the rules every server of
 * ours applies, and the response heads both clients read.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "util/errors.h"
#include "util/http.h"

static void
test_http_one_content_length(void **state)
{
    struct http_framing f = { false, 0 };
    const char *why = NULL;

    (void)state;
    assert_int_equal(http_framing_header("Content-Type", "x", 100, &f, &why),
                     0);
    assert_false(f.have_len);
    assert_int_equal(http_framing_header("content-length", "12", 100, &f,
                                         &why), 0);
    assert_true(f.have_len);
    assert_int_equal(f.len, 12);
    /* The same length again is harmless; another one is refused. */
    assert_int_equal(http_framing_header("Content-Length", "12", 100, &f,
                                         &why), 0);
    assert_int_equal(http_framing_header("Content-Length", "13", 100, &f,
                                         &why), 400);
    assert_non_null(why);
}

static void
test_http_bad_lengths_and_chunked_refused(void **state)
{
    const char *bad[] = { "", "1x", "-1", " 1", "0x10", "+5" };
    struct http_framing f;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        f = (struct http_framing){ false, 0 };
        assert_int_equal(http_framing_header("Content-Length", bad[i], 100,
                                             &f, &why), 400);
    }
    f = (struct http_framing){ false, 0 };
    assert_int_equal(http_framing_header("Content-Length", "101", 100, &f,
                                         &why), 413);
    assert_int_equal(http_framing_header("Content-Length",
                                         "99999999999999999999999", 100, &f,
                                         &why), 413);
    assert_int_equal(http_framing_header("Transfer-Encoding", "chunked",
                                         100, &f, &why), 411);
}

static void
test_http_response_heads(void **state)
{
    const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
    const char put[] = "HTTP/1.1 200 OK\r\n\r\n";
    const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
    };
    size_t len = 0;
    bool has = false;
    int status = 0;

    (void)state;
    assert_int_equal(http_parse_response_head(ok, strlen(ok), 10, &status,
                                              &len, &has), 0);
    assert_int_equal(status, 200);
    assert_true(has);
    assert_int_equal(len, 5);
    assert_int_equal(http_parse_response_head(put, strlen(put), 10, &status,
                                              &len, &has), 0);
    assert_false(has);
    assert_int_equal(http_parse_response_head(ok, strlen(ok), 4, &status,
                                              &len, &has), XO_EINVAL);
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(http_parse_response_head(bad[i], strlen(bad[i]),
                                                  10, &status, &len, &has),
                         XO_EINVAL);
}

static void
test_http_head_helpers(void **state)
{
    const char block[] = "POST / HTTP/1.1\nA: b\n\nbody";
    char line[] = "Name:  value \t";
    char folded[] = " Name: x";
    char *name, *value, *head;

    (void)state;
    assert_int_equal(http_header_end(block, strlen(block)),
                     strlen(block) - 4);
    assert_int_equal(http_header_end("GET / HTTP/1.1\r\n", 16), 0);
    assert_true(http_split_header(line, &name, &value));
    assert_string_equal(name, "Name");
    assert_string_equal(value, "value");
    assert_false(http_split_header(folded, &name, &value));
    assert_true(http_has_token("keep-alive, Close", "close"));
    assert_false(http_has_token("closed", "close"));
    head = http_request_head("PUT", "/x?y", "h", "A: b\r\n");
    assert_string_equal(head, "PUT /x?y HTTP/1.1\r\nHost: h\r\nA: b\r\n\r\n");
    free(head);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_one_content_length),
        cmocka_unit_test(test_http_bad_lengths_and_chunked_refused),
        cmocka_unit_test(test_http_response_heads),
        cmocka_unit_test(test_http_head_helpers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
