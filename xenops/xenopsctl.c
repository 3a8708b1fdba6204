/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * xenopsctl: a command line for people (and scripts, with --json) on the
 * daemon's socket. The socket is --socket PATH, else $XENOPSD_SOCKET, else
 * <sockets-path>/xenopsd from /etc/xenopsd.conf, else /var/lib/xcp/xenopsd.
 *
 * Exit codes: 0 success; 1 the daemon reported an error (printed); 2 usage;
 * 3 the daemon could not be reached.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>

#include "config.h"
#include "rpc/rpc.h"
#include "util/errors.h"
#include "util/json.h"
#include "util/log.h"
#include "util/xalloc.h"

#define EXIT_DAEMON_ERROR 1
#define EXIT_USAGE 2
#define EXIT_UNREACHABLE 3
#define CTL_CALL_TIMEOUT_MS 30000
#define CTL_MAX_FILE (16 * 1024 * 1024)

struct ctl {
    const char *socket;
    bool json;
    bool quiet;
};

static void
usage(FILE *f)
{
    fprintf(f,
"usage: xenopsctl [--socket PATH] [--json] COMMAND ...\n"
"  vm list                      VMs and their power states\n"
"  vm add FILE                  add a VM from a Vm.t JSON file\n"
"  vm stat|remove ID\n"
"  vm start ID [--paused]       start (and by default unpause)\n"
"  vm shutdown|reboot ID [--timeout S]  hard, or ask the guest first and\n"
"                               give it S seconds (then the task fails)\n"
"  vm pause|unpause ID\n"
"  vm suspend|resume ID PATH    suspend to / resume from a file\n"
"  vbd list VM | vbd add FILE | vbd remove|stat VM DEV\n"
"  vbd plug VM DEV | vbd unplug VM DEV [--force]\n"
"  vif list VM | vif add FILE | vif plug|unplug|remove VM DEV\n"
"  task list | task stat|wait|cancel|destroy ID\n"
"  sr list | sr add UUID TYPE [KEY=VALUE]... | sr remove UUID\n"
"  sr set-attach-early UUID auto|never\n"
"  flag list | flag get NAME     runtime feature flags\n"
"  flag set NAME true|false     (persisted in the config dir)\n"
"  host                         host, flags and SRs that attach early\n"
"  migrate ID URL [--compress]  live-migrate to the xenopsd-c at URL\n"
"                               (http://host:port/services/xenops)\n"
"  events [LAST_ID]             follow UPDATES (Ctrl-C to stop)\n"
"  call METHOD [JSON]           raw call; JSON is the named-args object\n"
"  Operations wait for their task and print the atoms that ran;\n"
"  --no-wait prints the task id instead.\n");
}

/* ---- transport ---- */

static int
ctl_call(const struct ctl *c, const char *method, const char *params,
         char **result_r, int timeout_ms)
{
    char *result = NULL, *error = NULL;
    int rc;

    *result_r = NULL;
    rc = rpc_call(c->socket, method, params, timeout_ms, &result, &error);
    if (rc) {
        fprintf(stderr, "xenopsctl: cannot reach the daemon at '%s'\n",
                c->socket);
        return EXIT_UNREACHABLE;
    }
    if (error) {
        fprintf(stderr, "xenopsctl: %s failed: %s\n", method, error);
        free(error);
        return EXIT_DAEMON_ERROR;
    }
    *result_r = result;
    return 0;
}

static char *
params1(const char *key, const char *value_json)
{
    return xasprintf("{\"debug_info\":\"xenopsctl\",\"%s\":%s}", key,
                     value_json);
}

static char *
jstr(const char *s)
{
    yajl_gen g = json_gen_new();

    json_gen_str(g, s);
    return json_gen_take(g);
}

static char *
dev_id(const char *vm, const char *dev)
{
    yajl_gen g = json_gen_new();

    yajl_gen_array_open(g);
    json_gen_str(g, vm);
    json_gen_str(g, dev);
    yajl_gen_array_close(g);
    return json_gen_take(g);
}

/* ---- tasks ---- */

static double
now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
progress_bar(double p)
{
    int width = 30, fill = (int)(p * width);

    fprintf(stderr, "\r[%.*s%*s] %3d%%", fill,
            "##############################", width - fill, "",
            (int)(p * 100));
}

/* Print the debug_info timeline: one line per atom. */
static void
print_timeline(yajl_val stat)
{
    const char *tl = json_get_str(json_get(stat, "debug_info"), "timeline");
    yajl_val t = NULL;

    if (!tl || json_parse(tl, strlen(tl), &t)) {
        xo_err_clear();
        return;
    }
    printf("  %9s %10s  %-6s %s\n", "start", "duration", "result", "atom");
    for (size_t i = 0; i < json_array_len(t); i++) {
        yajl_val e = json_array_at(t, i);
        yajl_val name = json_array_at(e, 0), st = json_array_at(e, 3);
        double start = 0, dur = 0;

        json_to_double(json_array_at(e, 1), &start);
        json_to_double(json_array_at(e, 2), &dur);
        printf("  %8.3fs %8.1fms  %-6s %s\n", start, dur * 1000,
               st && YAJL_IS_STRING(st) ? st->u.string : "?",
               name && YAJL_IS_STRING(name) ? name->u.string : "?");
    }
    yajl_tree_free(t);
}

/* A task's result object (e.g. a migration's breakdown), one key a line. */
static void
print_result(yajl_val r)
{
    if (!r || !YAJL_IS_OBJECT(r))
        return;
    printf("  result:\n");
    for (size_t i = 0; i < r->u.object.len; i++) {
        char *v = json_tree_to_string(r->u.object.values[i]);

        printf("    %-28s %s\n", r->u.object.keys[i], v);
        free(v);
    }
}

/*
 * Poll Task.stat until the task leaves Pending, then print its atoms (or
 * the raw Task.t with --json) and destroy it.
 */
static int
wait_task(const struct ctl *c, const char *task_id_json)
{
    char *p = params1("id", task_id_json);
    char *res = NULL, *fin = NULL;
    yajl_val t = NULL, state, tag;
    bool tty = isatty(STDERR_FILENO) && !c->json;
    double started = now_s();
    int rc;

    for (;;) {
        free(res);
        res = NULL;
        yajl_tree_free(t);
        t = NULL;
        rc = ctl_call(c, "Task.stat", p, &res, CTL_CALL_TIMEOUT_MS);
        if (rc)
            goto out;
        if (json_parse(res, strlen(res), &t)) {
            rc = EXIT_UNREACHABLE;
            goto out;
        }
        state = json_get(t, "state");
        tag = json_array_at(state, 0);
        if (!tag || !YAJL_IS_STRING(tag) ||
            strcmp(tag->u.string, "Pending") != 0)
            break;
        if (tty) {
            double prog = 0;

            json_to_double(json_array_at(state, 1), &prog);
            progress_bar(prog);
        }
        usleep(20000);
    }
    if (tty)
        fprintf(stderr, "\r%*s\r", 40, "");
    if (c->json) {
        printf("%s\n", res);
    } else {
        printf("task %s: %s in %.3fs\n", json_get_str(t, "id"),
               tag->u.string, now_s() - started);
        print_timeline(t);
        print_result(json_get(json_array_at(state, 1), "result"));
    }
    if (strcmp(tag->u.string, "Completed") != 0) {
        char *err = json_tree_to_string(json_array_at(state, 1));

        fprintf(stderr, "xenopsctl: task failed: %s\n", err);
        free(err);
        rc = EXIT_DAEMON_ERROR;
    }
    if (ctl_call(c, "Task.destroy", p, &fin, CTL_CALL_TIMEOUT_MS) == 0)
        free(fin);
out:
    yajl_tree_free(t);
    free(res);
    free(p);
    return rc;
}

/* Call an operation that answers a task id, then wait for it. */
static int
run_op(const struct ctl *c, const char *method, char *params, bool wait)
{
    char *task = NULL;
    int rc = ctl_call(c, method, params, &task, CTL_CALL_TIMEOUT_MS);

    free(params);
    if (rc)
        return rc;
    if (wait)
        rc = wait_task(c, task);
    else
        printf("%s\n", task);
    free(task);
    return rc;
}

static int
print_result_call(const struct ctl *c, const char *method, char *params)
{
    char *res = NULL;
    int rc = ctl_call(c, method, params, &res, CTL_CALL_TIMEOUT_MS);

    free(params);
    if (!rc)
        printf("%s\n", res);
    free(res);
    return rc;
}

static int
read_file(const char *path, char **text_r)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t n;

    *text_r = NULL;
    if (!f) {
        fprintf(stderr, "xenopsctl: cannot open '%s': %s\n", path,
                strerror(errno));
        return EXIT_USAGE;
    }
    buf = xmalloc(CTL_MAX_FILE + 1);
    n = fread(buf, 1, CTL_MAX_FILE + 1, f);
    fclose(f);
    if (n > CTL_MAX_FILE) {
        fprintf(stderr, "xenopsctl: '%s' is too large\n", path);
        free(buf);
        return EXIT_USAGE;
    }
    buf[n] = '\0';
    *text_r = buf;
    return 0;
}

/* ---- commands ---- */

static int
cmd_vm_list(const struct ctl *c)
{
    char *res = NULL;
    yajl_val t = NULL;
    int rc = ctl_call(c, "VM.list",
                      "{\"debug_info\":\"xenopsctl\",\"unit\":null}",
                      &res, CTL_CALL_TIMEOUT_MS);

    if (rc)
        return rc;
    if (c->json) {
        printf("%s\n", res);
        goto out;
    }
    if (json_parse(res, strlen(res), &t)) {
        rc = EXIT_UNREACHABLE;
        goto out;
    }
    printf("%-36s  %-10s  %-6s  %s\n", "ID", "POWER", "DOMID", "NAME");
    for (size_t i = 0; i < json_array_len(t); i++) {
        yajl_val pair = json_array_at(t, i);
        yajl_val vm = json_array_at(pair, 0), st = json_array_at(pair, 1);
        yajl_val domids = json_get(st, "domids");
        yajl_val pst = json_get(st, "power_state");
        const char *ps = pst && YAJL_IS_STRING(pst) ? pst->u.string : "?";
        char dom[16] = "-";

        if (json_array_len(domids) > 0) {
            int64_t d = 0;

            json_to_int64(json_array_at(domids, 0), &d);
            snprintf(dom, sizeof(dom), "%lld", (long long)d);
        }
        printf("%-36s  %-10s  %-6s  %s\n", json_get_str(vm, "id"), ps, dom,
               json_get_str(vm, "name") ? json_get_str(vm, "name") : "");
    }
out:
    yajl_tree_free(t);
    free(res);
    return rc;
}

static int
cmd_add(const struct ctl *c, const char *method, const char *key,
        const char *file)
{
    char *text = NULL;
    int rc = read_file(file, &text);

    if (rc)
        return rc;
    rc = print_result_call(c, method, params1(key, text));
    free(text);
    return rc;
}

static int
cmd_vm(const struct ctl *c, int argc, char **argv, bool wait)
{
    const char *sub = argc > 0 ? argv[0] : "";
    char *id = argc > 1 ? jstr(argv[1]) : NULL;
    char *p = NULL;
    int rc = EXIT_USAGE;

    if (strcmp(sub, "list") == 0) {
        rc = cmd_vm_list(c);
        goto out;
    }
    if (strcmp(sub, "add") == 0 && argc == 2) {
        rc = cmd_add(c, "VM.add", "vm", argv[1]);
        goto out;
    }
    if (!id || argc < 2)
        goto usage;
    if (strcmp(sub, "stat") == 0) {
        rc = print_result_call(c, "VM.stat", params1("id", id));
    } else if (strcmp(sub, "remove") == 0) {
        rc = print_result_call(c, "VM.remove", params1("id", id));
    } else if (strcmp(sub, "start") == 0) {
        bool paused = argc > 2 && strcmp(argv[2], "--paused") == 0;

        p = xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,"
                      "\"paused\":%s}", id, paused ? "true" : "false");
        rc = run_op(c, "VM.start", p, wait);
    } else if (strcmp(sub, "shutdown") == 0 || strcmp(sub, "reboot") == 0) {
        double t = -1;
        char *end = NULL;

        if (argc == 4 && strcmp(argv[2], "--timeout") == 0) {
            t = strtod(argv[3], &end);
            if (!*argv[3] || *end || !(t >= 0 && t <= 86400)) {
                fprintf(stderr, "xenopsctl: --timeout wants seconds "
                        "0..86400, not '%s'\n", argv[3]);
                goto out;
            }
        } else if (argc != 2) {
            goto usage;
        }
        p = t >= 0 ? xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,"
                               "\"delay\":%g}", id, t)
                   : params1("id", id);
        rc = run_op(c, strcmp(sub, "shutdown") == 0 ? "VM.shutdown"
                                                    : "VM.reboot", p, wait);
    } else if (strcmp(sub, "pause") == 0) {
        rc = run_op(c, "VM.pause", params1("id", id), wait);
    } else if (strcmp(sub, "unpause") == 0) {
        rc = run_op(c, "VM.unpause", params1("id", id), wait);
    } else if ((strcmp(sub, "suspend") == 0 || strcmp(sub, "resume") == 0)
               && argc == 3) {
        char *path = jstr(argv[2]);

        p = xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,"
                      "\"suspend_vdi\":[\"Local\",%s]}", id, path);
        free(path);
        rc = run_op(c, strcmp(sub, "suspend") == 0 ? "VM.suspend"
                                                    : "VM.resume", p, wait);
    } else {
        goto usage;
    }
    goto out;
usage:
    usage(stderr);
out:
    free(id);
    return rc;
}

static int
cmd_dev(const struct ctl *c, const char *kind, int argc, char **argv,
        bool wait)
{
    const char *sub = argc > 0 ? argv[0] : "";
    char method[32];
    char *id = NULL, *p;
    int rc = EXIT_USAGE;

    if (strcmp(sub, "list") == 0 && argc == 2) {
        char *vm = jstr(argv[1]);

        snprintf(method, sizeof(method), "%s.list", kind);
        rc = print_result_call(c, method, params1("id", vm));
        free(vm);
        return rc;
    }
    if (strcmp(sub, "add") == 0 && argc == 2) {
        snprintf(method, sizeof(method), "%s.add", kind);
        return cmd_add(c, method, strcmp(kind, "VBD") == 0 ? "vbd" : "vif",
                       argv[1]);
    }
    if (argc < 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    id = dev_id(argv[1], argv[2]);
    if (strcmp(sub, "stat") == 0 || strcmp(sub, "remove") == 0) {
        snprintf(method, sizeof(method), "%s.%s", kind, sub);
        rc = print_result_call(c, method, params1("id", id));
    } else if (strcmp(sub, "plug") == 0) {
        snprintf(method, sizeof(method), "%s.plug", kind);
        rc = run_op(c, method, params1("id", id), wait);
    } else if (strcmp(sub, "unplug") == 0) {
        bool force = argc > 3 && strcmp(argv[3], "--force") == 0;

        snprintf(method, sizeof(method), "%s.unplug", kind);
        p = xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,"
                      "\"force\":%s}", id, force ? "true" : "false");
        rc = run_op(c, method, p, wait);
    } else {
        usage(stderr);
    }
    free(id);
    return rc;
}

static int
cmd_task(const struct ctl *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    char *id;
    int rc = EXIT_USAGE;

    if (strcmp(sub, "list") == 0)
        return print_result_call(c, "Task.list",
                            xstrdup("{\"debug_info\":\"xenopsctl\"}"));
    if (argc != 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    id = jstr(argv[1]);
    if (strcmp(sub, "wait") == 0)
        rc = wait_task(c, id);
    else if (strcmp(sub, "stat") == 0)
        rc = print_result_call(c, "Task.stat", params1("id", id));
    else if (strcmp(sub, "cancel") == 0)
        rc = print_result_call(c, "Task.cancel", params1("id", id));
    else if (strcmp(sub, "destroy") == 0)
        rc = print_result_call(c, "Task.destroy", params1("id", id));
    else
        usage(stderr);
    free(id);
    return rc;
}

/* Follow UPDATES: print each changed object id as it comes. */
static int
cmd_events(const struct ctl *c, int argc, char **argv)
{
    long long last = argc > 0 ? atoll(argv[0]) : -1;
    int rc;

    for (;;) {
        char *p = last >= 0
                      ? xasprintf("{\"debug_info\":\"xenopsctl\","
                                  "\"last_id\":%lld,\"timeout\":30}", last)
                      : xstrdup("{\"debug_info\":\"xenopsctl\","
                                "\"timeout\":30}");
        char *res = NULL;
        yajl_val t = NULL, ids;
        int64_t next;

        rc = ctl_call(c, "UPDATES.get", p, &res, 40000);
        free(p);
        if (rc)
            return rc;
        if (json_parse(res, strlen(res), &t)) {
            free(res);
            return EXIT_UNREACHABLE;
        }
        ids = json_array_at(t, 1);
        for (size_t i = 0; i < json_array_len(ids); i++) {
            char *s = json_tree_to_string(json_array_at(ids, i));

            printf("%s\n", s);
            free(s);
        }
        fflush(stdout);
        if (json_to_int64(json_array_at(t, 2), &next) == 0)
            last = next;
        yajl_tree_free(t);
        free(res);
    }
}

static int
cmd_sr(const struct ctl *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    yajl_gen g;
    char *p;

    if (strcmp(sub, "list") == 0)
        return print_result_call(c, "SR.list",
                                 xstrdup("{\"debug_info\":\"xenopsctl\"}"));
    if (strcmp(sub, "remove") == 0 && argc == 2) {
        char *id = jstr(argv[1]);

        p = params1("id", id);
        free(id);
        return print_result_call(c, "SR.remove", p);
    }
    if (strcmp(sub, "add") != 0 || argc < 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    g = json_gen_new();
    yajl_gen_map_open(g);
    json_gen_str(g, "debug_info");
    json_gen_str(g, "xenopsctl");
    json_gen_str(g, "sr");
    yajl_gen_map_open(g);
    json_gen_str(g, "uuid");
    json_gen_str(g, argv[1]);
    json_gen_str(g, "type");
    json_gen_str(g, argv[2]);
    json_gen_str(g, "device_config");
    yajl_gen_map_open(g);
    for (int i = 3; i < argc; i++) {
        char *eq = strchr(argv[i], '=');

        if (!eq) {
            yajl_gen_free(g);
            fprintf(stderr, "xenopsctl: '%s' is not KEY=VALUE\n", argv[i]);
            return EXIT_USAGE;
        }
        *eq = '\0';
        json_gen_str(g, argv[i]);
        json_gen_str(g, eq + 1);
    }
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    yajl_gen_map_close(g);
    return print_result_call(c, "SR.add", json_gen_take(g));
}

static int
cmd_migrate(const struct ctl *c, int argc, char **argv, bool wait)
{
    bool compress = argc > 2 && strcmp(argv[2], "--compress") == 0;
    char *id, *url, *p;

    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    id = jstr(argv[0]);
    url = jstr(argv[1]);
    p = xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,"
                  "\"xenops_url\":%s,\"vdi_map\":{},\"vif_map\":{},"
                  "\"pci_map\":{},\"compress\":%s,\"verify_dest\":false,"
                  "\"localhost_migration\":false}", id, url,
                  compress ? "true" : "false");
    free(id);
    free(url);
    return run_op(c, "VM.migrate", p, wait);
}

/* ---- administration ---- */

static const char *const ctl_flag_prefix = "xenopsd-";

/* flag list | flag get NAME | flag set NAME VALUE */
static int
cmd_flag(const struct ctl *c, int argc, char **argv)
{
    const char *sub = argc > 0 ? argv[0] : "";
    char *res = NULL, *name = NULL, *value = NULL, *p;
    yajl_val t = NULL;
    int rc = EXIT_USAGE;

    if (strcmp(sub, "set") == 0 && argc == 3) {
        name = jstr(argv[1]);
        value = jstr(argv[2]);
        p = xasprintf("{\"debug_info\":\"xenopsctl\",\"name\":%s,"
                      "\"value\":%s}", name, value);
        rc = ctl_call(c, "HOST.set_feature", p, &res, CTL_CALL_TIMEOUT_MS);
        free(p);
        if (!rc && (c->json || json_parse(res, strlen(res), &t)))
            printf("%s\n", res);
        else if (!rc)
            printf("%s: %s -> %s (persisted in %s)\n",
                   json_get_str(t, "name"),
                   YAJL_IS_TRUE(json_get(t, "old")) ? "true" : "false",
                   YAJL_IS_TRUE(json_get(t, "new")) ? "true" : "false",
                   json_get_str(t, "fragment"));
        goto out;
    }
    if (!((strcmp(sub, "list") == 0 && argc == 1) ||
          (strcmp(sub, "get") == 0 && argc == 2))) {
        usage(stderr);
        goto out;
    }
    rc = ctl_call(c, "HOST.get_features", "{\"debug_info\":\"xenopsctl\"}",
                  &res, CTL_CALL_TIMEOUT_MS);
    if (rc)
        goto out;
    if (json_parse(res, strlen(res), &t) || !YAJL_IS_OBJECT(t)) {
        rc = EXIT_UNREACHABLE;
        goto out;
    }
    for (size_t i = 0; i < t->u.object.len; i++) {
        const char *k = t->u.object.keys[i];
        const char *v = YAJL_IS_TRUE(t->u.object.values[i]) ? "true"
                                                             : "false";

        if (argc == 1) {
            printf("%-32s %s\n", k, v);
        } else if (strcmp(argv[1], k) == 0 ||
                   (strncmp(argv[1], ctl_flag_prefix,
                            strlen(ctl_flag_prefix)) == 0 &&
                    strcmp(argv[1] + strlen(ctl_flag_prefix), k) == 0)) {
            printf("%s\n", v);
            goto out;
        }
    }
    if (argc == 2) {
        fprintf(stderr, "xenopsctl: unknown flag '%s'\n", argv[1]);
        rc = EXIT_DAEMON_ERROR;
    }
out:
    yajl_tree_free(t);
    free(res);
    free(name);
    free(value);
    return rc;
}

/* host: HOST.stat, with the flags and the SRs that attach early. */
static int
cmd_host(const struct ctl *c)
{
    char *res = NULL;
    yajl_val t = NULL, x, feats, srs, early;
    int rc = ctl_call(c, "HOST.stat", "{\"debug_info\":\"xenopsctl\"}",
                      &res, CTL_CALL_TIMEOUT_MS);

    if (rc)
        return rc;
    if (c->json) {
        printf("%s\n", res);
        goto out;
    }
    if (json_parse(res, strlen(res), &t)) {
        rc = EXIT_UNREACHABLE;
        goto out;
    }
    x = json_get(t, "xenops_c");
    feats = json_get(x, "features");
    srs = json_get(x, "srs");
    early = json_get(x, "attach_early_srs");
    printf("hypervisor: %s\n",
           json_get_str(json_get(t, "hypervisor"), "version")
               ? json_get_str(json_get(t, "hypervisor"), "version") : "?");
    printf("flags:\n");
    for (size_t i = 0; feats && YAJL_IS_OBJECT(feats) &&
                       i < feats->u.object.len; i++)
        printf("  %-32s %s\n", feats->u.object.keys[i],
               YAJL_IS_TRUE(feats->u.object.values[i]) ? "true" : "false");
    printf("early attach on incoming migration: %s\n",
           YAJL_IS_TRUE(json_get(x, "early_attach")) ? "on" : "off (legacy)");
    printf("SRs:\n  %-36s  %-12s  %-6s  %s\n", "UUID", "TYPE", "POLICY",
           "ATTACH EARLY");
    for (size_t i = 0; i < json_array_len(srs); i++) {
        yajl_val sr = json_array_at(srs, i);
        const char *uuid = json_get_str(sr, "uuid");
        bool now = false;

        for (size_t j = 0; uuid && j < json_array_len(early); j++) {
            yajl_val u = json_array_at(early, j);

            now |= YAJL_IS_STRING(u) && strcmp(u->u.string, uuid) == 0;
        }
        printf("  %-36s  %-12s  %-6s  %s\n", uuid ? uuid : "?",
               json_get_str(sr, "type") ? json_get_str(sr, "type") : "?",
               json_get_str(sr, "attach_early_policy")
                   ? json_get_str(sr, "attach_early_policy") : "?",
               now ? "yes" : "no");
    }
out:
    yajl_tree_free(t);
    free(res);
    return rc;
}

/* sr set-attach-early UUID auto|never */
static int
cmd_sr_set_attach_early(const struct ctl *c, int argc, char **argv)
{
    char *id, *value, *p;

    if (argc != 3) {
        usage(stderr);
        return EXIT_USAGE;
    }
    id = jstr(argv[1]);
    value = jstr(argv[2]);
    p = xasprintf("{\"debug_info\":\"xenopsctl\",\"id\":%s,\"value\":%s}",
                  id, value);
    free(id);
    free(value);
    return print_result_call(c, "SR.set_attach_early", p);
}

static const char *
find_socket(const char *given)
{
    static char path[4096];
    const char *env = getenv("XENOPSD_SOCKET");
    struct config cfg;

    if (given)
        return given;
    if (env && env[0])
        return env;
    config_defaults(&cfg);
    log_set_level(LOG_LVL_ERROR);
    if (access("/etc/xenopsd.conf", R_OK) == 0 &&
        config_load_all(&cfg, "/etc/xenopsd.conf") != 0)
        xo_err_clear();
    snprintf(path, sizeof(path), "%s/xenopsd", cfg.sockets_path);
    config_dispose(&cfg);
    return path;
}

int
main(int argc, char **argv)
{
    struct ctl c = { NULL, false, false };
    const char *given = NULL;
    bool wait = true;
    int i = 1;

    log_set_level(LOG_LVL_ERROR);
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
            given = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            c.json = true;
        } else if (strcmp(argv[i], "--no-wait") == 0) {
            wait = false;
        } else if (strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return EXIT_USAGE;
    }
    c.socket = find_socket(given);
    if (strcmp(argv[i], "vm") == 0)
        return cmd_vm(&c, argc - i - 1, argv + i + 1, wait);
    if (strcmp(argv[i], "vbd") == 0)
        return cmd_dev(&c, "VBD", argc - i - 1, argv + i + 1, wait);
    if (strcmp(argv[i], "vif") == 0)
        return cmd_dev(&c, "VIF", argc - i - 1, argv + i + 1, wait);
    if (strcmp(argv[i], "task") == 0)
        return cmd_task(&c, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "sr") == 0 && i + 1 < argc &&
        strcmp(argv[i + 1], "set-attach-early") == 0)
        return cmd_sr_set_attach_early(&c, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "sr") == 0)
        return cmd_sr(&c, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "flag") == 0)
        return cmd_flag(&c, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "host") == 0 && i + 1 == argc)
        return cmd_host(&c);
    if (strcmp(argv[i], "migrate") == 0)
        return cmd_migrate(&c, argc - i - 1, argv + i + 1, wait);
    if (strcmp(argv[i], "events") == 0)
        return cmd_events(&c, argc - i - 1, argv + i + 1);
    if (strcmp(argv[i], "call") == 0 && i + 1 < argc) {
        const char *params = i + 2 < argc ? argv[i + 2] : "{}";

        return print_result_call(&c, argv[i + 1], xstrdup(params));
    }
    usage(stderr);
    return EXIT_USAGE;
}
