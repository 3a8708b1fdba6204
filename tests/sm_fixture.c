/* SPDX-License-Identifier: LGPL-2.1-only */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sm_fixture.h"
#include "util/errors.h"
#include "util/xalloc.h"

extern char **environ;

struct sm_fixture *
sm_fixture_new(const char *name, bool with_sr)
{
    struct sm_fixture *f = xcalloc(1, sizeof(*f));

    snprintf(f->dir, sizeof(f->dir), "/tmp/%s.XXXXXX", name);
    assert_non_null(mkdtemp(f->dir));
    if (!with_sr)
        return f;
    f->sr_dir = xasprintf("%s/sr", f->dir);
    assert_int_equal(mkdir(f->sr_dir, 0755), 0);
    f->log = xasprintf("%s/calls.log", f->dir);
    setenv("XO_SM_LOG", f->log, 1);
    f->dconf = xasprintf("{\"path\": \"%s\"}", f->sr_dir);
    return f;
}

/* Unset every knob a test set (names collected first: unsetenv edits
 * environ). */
static void
clear_knobs(void)
{
    char *names[64];
    size_t n = 0;

    for (char **e = environ; *e && n < 64; e++)
        if (strncmp(*e, "XO_SM_", 6) == 0)
            names[n++] = xstrndup(*e, strcspn(*e, "="));
    for (size_t i = 0; i < n; i++) {
        unsetenv(names[i]);
        free(names[i]);
    }
}

void
sm_fixture_free(struct sm_fixture *f)
{
    char *cmd = xasprintf("rm -rf '%s'", f->dir);

    if (f->priv)
        f->ops->free(f->priv);
    assert_int_equal(system(cmd), 0);
    clear_knobs();
    free(cmd);
    free(f->sr_dir);
    free(f->log);
    free(f->dconf);
    free(f->drivers);
    free(f->sr_uri);
    free(f);
    xo_err_clear();
}

char *
sm_fixture_srcdir_path(const char *rel)
{
    const char *top = getenv("top_srcdir");
    char *path = xasprintf("%s/%s", top ? top : ".", rel);
    char abs[PATH_MAX];

    assert_non_null(realpath(path, abs));
    free(path);
    return xstrdup(abs);
}

void
sm_fixture_write_file(const char *path, const char *body, mode_t mode)
{
    FILE *fp = fopen(path, "w");

    assert_non_null(fp);
    fputs(body, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

void
sm_fixture_make_vdi(const struct sm_fixture *f, const char *name)
{
    char *path = xasprintf("%s/%s", f->sr_dir, name);

    sm_fixture_write_file(path, "", 0644);
    assert_int_equal(truncate(path, 1 << 20), 0);
    free(path);
}

size_t
sm_fixture_read_log(const struct sm_fixture *f, yajl_val *entries,
                    size_t max)
{
    FILE *fp = fopen(f->log, "r");
    char line[65536];
    size_t n = 0;

    if (!fp)
        return 0;
    while (n < max && fgets(line, sizeof(line), fp)) {
        assert_int_equal(json_parse(line, strlen(line), &entries[n]), 0);
        n++;
    }
    fclose(fp);
    return n;
}

char *
sm_fixture_log_calls(const struct sm_fixture *f, bool with_driver)
{
    yajl_val e[64];
    size_t n = sm_fixture_read_log(f, e, 64);
    char *out = xstrdup("");

    for (size_t i = 0; i < n; i++) {
        char *next = xasprintf("%s%s%s%s%s", out, i ? "|" : "",
                               with_driver ? json_get_str(e[i], "driver")
                                           : "",
                               with_driver ? ":" : "",
                               json_get_str(e[i], "command"));

        free(out);
        out = next;
        yajl_tree_free(e[i]);
    }
    return out;
}

char *
sm_fixture_log_args(const struct sm_fixture *f, size_t i)
{
    yajl_val e[64];
    size_t n = sm_fixture_read_log(f, e, 64);
    char *out;

    assert_true(i < n);
    out = json_tree_to_string(json_get(e[i], "args"));
    for (size_t k = 0; k < n; k++)
        yajl_tree_free(e[k]);
    return out;
}

yajl_val
sm_fixture_script_error(int rc, const char *code, const char *driver,
                        const char *command, const char *vdi,
                        yajl_val *tree_r)
{
    char *json = NULL;
    yajl_val inner, params;

    assert_int_equal(rc, XO_EBACKEND);
    json = xo_err_take_json(rc);
    assert_int_equal(json_parse(json, strlen(json), tree_r), 0);
    free(json);
    assert_string_equal(json_array_at(*tree_r, 0)->u.string,
                        "Storage_backend_error");
    inner = json_array_at(*tree_r, 1);
    assert_string_equal(json_array_at(inner, 0)->u.string, code);
    params = json_array_at(inner, 1);
    assert_int_equal(json_array_len(params), 6);
    assert_string_equal(json_array_at(params, 0)->u.string, driver);
    assert_string_equal(json_array_at(params, 1)->u.string, command);
    assert_string_equal(json_array_at(params, 2)->u.string, vdi);
    return params;
}

bool
sm_fixture_process_dead(long pid)
{
    char path[64], buf[512];
    FILE *fp;
    char *p;
    bool dead = true;

    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    fp = fopen(path, "r");
    if (!fp)
        return true;
    if (fgets(buf, sizeof(buf), fp) && (p = strrchr(buf, ')')) != NULL)
        dead = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
    fclose(fp);
    return dead;
}

void
sm_fixture_vdi_disk(struct model_disk *d, const char *sr, const char *vdi)
{
    memset(d, 0, sizeof(*d));
    d->kind = MODEL_DISK_VDI;
    d->sr = xstrdup(sr);
    d->vdi = xstrdup(vdi);
    d->path = xasprintf("%s/%s", sr, vdi);
}
