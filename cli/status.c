/*
 * status.c - `cachelock status`: who holds what.  The whole cache comes
 * from one reading of the kernel's lock table (cachelock_status()), however
 * many sources it has; named sources are looked up one by one.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char status_usage[] =
    "Usage: cachelock status [options] [CACHE_DIR] [SOURCE...]\n"
    "\n"
    "Show every source of CACHE_DIR (default: $" ENV_DIR "), or the SOURCEs given,\n"
    "with its state (free, shared by N, exclusive), the holders' pids and command\n"
    "lines, and processes blocked waiting for it.  Every lock file is listed, also\n"
    "those whose names are not portable (made by flock(1) or other tools).\n"
    "A holder that this machine's lock table cannot name here (in another PID\n"
    "namespace, on another machine) is shown as 'a process not visible here'.  On\n"
    "a filesystem that is not local, a first line says which.\n"
    "Text output escapes a backslash as \\\\ and control characters and bytes that\n"
    "are not UTF-8 as \\xHH.\n"
    "\n"
    "  -j, --json       one JSON object per line, for scripts; bytes that are not\n"
    "                   UTF-8 become U+FFFD\n"
    "      --any-name   accept SOURCE operands that are valid file names here but\n"
    "                   not portable\n"
    "  -h, --help       show this help\n"
    "  -V, --version    show the version\n";

/* What is known about one source. */
struct source_state {
    const char *name;
    const cachelock_holder_t *h;    /* holders, then waiters */
    size_t n;
    int exists, known;
};

static const char *mode_name(cachelock_mode_t m)
{
    return m == CACHELOCK_SHARED ? "shared" : "exclusive";
}

static void print_people(const cachelock_holder_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (h[i].pid <= 0) {
            printf("%s%s", i ? ", " : "", CLI_UNSEEN);
            continue;
        }
        printf("%spid %d (", i ? ", " : "", h[i].pid);
        cli_text_string(stdout, h[i].command[0] ? h[i].command : "?");
        putchar(')');
    }
}

static void print_json_people(const cachelock_holder_t *h, size_t n)
{
    putchar('[');
    for (size_t i = 0; i < n; i++) {
        printf("%s{\"pid\":%d,\"mode\":\"%s\",\"command\":", i ? "," : "", h[i].pid,
               mode_name(h[i].mode));
        cli_json_string(stdout, h[i].command);
        printf(",\"visible\":%s}", h[i].pid > 0 ? "true" : "false");
    }
    putchar(']');
}

/* The filesystem of the cache, as JSON objects and the first line say. */
static int cache_fs = -1;

static void show(const char *dir, const struct source_state *s, int json)
{
    char path[CACHELOCK_PATH_MAX + 1] = "";
    size_t holders = 0, open = 0;
    int portable = cachelock_check_name(s->name) == 0;

    cachelock_path_ex(dir, s->name, CACHELOCK_F_ANYNAME, path, sizeof path);
    for (size_t i = 0; i < s->n; i++) {
        open += s->h[i].waiting < 0;
        holders += s->h[i].waiting == 0;
    }
    /* Processes that have the file open, holder or waiter unknown
     * (Windows), come first, then holders, then waiters; no array at all
     * when n == 0. */
    const cachelock_holder_t *held = s->n ? s->h + open : NULL;
    const cachelock_holder_t *waiters = s->n ? held + holders : NULL;
    const char *state = open ? "open" : holders == 0 ? "free" : mode_name(held[0].mode);

    if (json) {
        printf("{\"source\":");
        cli_json_string(stdout, s->name);
        printf(",\"path\":");
        cli_json_string(stdout, path);
        printf(",\"state\":\"%s\",\"holders\":", state);
        print_json_people(held, holders);
        printf(",\"waiters\":");
        print_json_people(waiters, s->n - open - holders);
        if (open) {
            printf(",\"open\":");
            print_json_people(s->h, open);
        }
        printf(",\"exists\":%s,\"known\":%s,\"portable\":%s,\"fs\":\"%s\"}\n",
               s->exists ? "true" : "false", s->known ? "true" : "false",
               portable ? "true" : "false", cachelock_fs_name(cache_fs));
        return;
    }
    cli_text_string(stdout, s->name);
    printf(": ");
    if (!s->known)
        printf("unknown (no kernel lock table on this system)");
    else if (open)
        printf("open by ");
    else if (holders == 0)
        printf("free");
    else if (held[0].mode == CACHELOCK_SHARED)
        printf("shared by %zu: ", holders);
    else
        printf("exclusive by ");
    if (open) {
        print_people(s->h, open);
        printf(" (holders and waiters look alike here)");
    }
    print_people(held, holders);
    if (s->n > open + holders) {
        printf("; %zu waiting: ", s->n - open - holders);
        print_people(waiters, s->n - open - holders);
    }
    if (!s->exists)
        printf(" (no lock file yet)");
    if (!portable)
        printf(" (name not portable: --any-name)");
    putchar('\n');
}

/* The SOURCEs given: 0, or an exit status after a message. */
static int show_named(const char *dir, char **names, int count, unsigned flags, int json)
{
    for (int i = 0; i < count; i++) {
        cachelock_holder_t *h = NULL;
        size_t n = 0;
        int rc = cachelock_check_name_ex(names[i], flags);
        if (rc < 0)
            return cli_name_error(rc, names[i], flags);
        rc = cachelock_holders(dir, names[i], &h, &n);
        if (rc < 0 && rc != -ENOENT && rc != -ENOSYS)
            return cli_lib_error(rc);
        struct source_state s = { names[i], h, n, rc != -ENOENT, rc != -ENOSYS };
        show(dir, &s, json);
        free(h);
    }
    return 0;
}

/* Every source of the cache: 0, or an exit status after a message. */
static int show_all(const char *dir, int json)
{
    cachelock_source_status_t *st;
    size_t n;
    int rc = cachelock_status(dir, &st, &n);

    if (rc == -ENOSYS) {
        /* No lock table: the names, without what is known of them. */
        char **names;
        if ((rc = cachelock_sources(dir, &names, &n)) < 0)
            return cli_lib_error(rc);
        for (size_t i = 0; i < n; i++) {
            struct source_state s = { names[i], NULL, 0, 1, 0 };
            show(dir, &s, json);
        }
        cachelock_sources_free(names, n);
        return 0;
    }
    if (rc < 0)
        return cli_lib_error(rc);
    for (size_t i = 0; i < n; i++) {
        struct source_state s = { st[i].source, st[i].holders, st[i].count, 1, 1 };
        show(dir, &s, json);
    }
    cachelock_status_free(st, n);
    return 0;
}

int cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "any-name", no_argument, NULL, OPT_ANY_NAME },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    int c, json = 0, status;
    unsigned flags = 0;
    const char *dir;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:jhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case OPT_ANY_NAME: flags |= CACHELOCK_F_ANYNAME; break;
        case 'h': return cli_print_help(status_usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("status", argv, c, longopts);
        }
    }
    if (optind < argc) {
        dir = argv[optind++];
    } else {
        if (!(dir = cli_default_dir("status")))
            return EXIT_USAGE;
    }
    /* Where the cache is: a missing cache has no sources and no note. */
    cache_fs = cachelock_fs_of(dir);
    if (!json) {
        char note[512];
        cli_fs_note(cache_fs, note, sizeof note);
        if (note[0])
            printf("(%s)\n", note);
    }
    if (optind < argc)
        status = show_named(dir, argv + optind, argc - optind, flags, json);
    else
        status = show_all(dir, json);
    int out = cli_close_stdout();
    return status ? status : out;
}
