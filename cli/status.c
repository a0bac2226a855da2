/* status.c - `cachelock status` (who holds what) and `cachelock path`. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char status_usage[] =
    "Usage: cachelock status [--json] [CACHE_DIR] [SOURCE...]\n"
    "\n"
    "Show every source of CACHE_DIR (default: $" ENV_DIR "), or the SOURCEs given,\n"
    "with its state (free, shared by N, exclusive), the holders' pids and command\n"
    "lines, and processes blocked waiting for it.\n"
    "\n"
    "  -j, --json   one JSON object per line, for scripts\n"
    "  -h, --help   show this help\n";

static const char path_usage[] =
    "Usage: cachelock path [CACHE_DIR] SOURCE\n"
    "\n"
    "Check the SOURCE name and print its lock file path.  CACHE_DIR defaults to\n"
    "$" ENV_DIR ".\n";

static const char *mode_name(cachelock_mode_t m)
{
    return m == CACHELOCK_SHARED ? "shared" : "exclusive";
}

static void print_people(FILE *f, const cachelock_holder_t *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%spid %d (%s)", i ? ", " : "", h[i].pid, h[i].command[0] ? h[i].command : "?");
}

static void print_json_people(FILE *f, const cachelock_holder_t *h, size_t n)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s{\"pid\":%d,\"mode\":\"%s\",\"command\":", i ? "," : "", h[i].pid,
                mode_name(h[i].mode));
        cli_json_string(f, h[i].command);
        fputc('}', f);
    }
    fputc(']', f);
}

/* One source: 0, or an exit status after printing the error. */
static int show(const char *dir, const char *source, int json)
{
    char path[4200];
    cachelock_holder_t *h = NULL;
    size_t n = 0, holders = 0;
    int rc = cachelock_path(dir, source, path, sizeof path);

    if (rc < 0) {
        cli_error("%s", cachelock_errmsg());
        return cli_exit_for(rc, cachelock_errmsg());
    }
    rc = cachelock_holders(dir, source, &h, &n);
    if (rc < 0 && rc != -ENOENT && rc != -ENOSYS) {
        cli_error("%s", cachelock_errmsg());
        return cli_exit_for(rc, cachelock_errmsg());
    }
    for (size_t i = 0; i < n; i++)
        holders += !h[i].waiting;
    /* Holders come first, then waiters; no array at all when n == 0. */
    const cachelock_holder_t *waiters = n ? h + holders : NULL;

    const char *state = holders == 0 ? "free" : mode_name(h[0].mode);
    if (json) {
        printf("{\"source\":");
        cli_json_string(stdout, source);
        printf(",\"path\":");
        cli_json_string(stdout, path);
        printf(",\"state\":\"%s\",\"holders\":", state);
        print_json_people(stdout, h, holders);
        printf(",\"waiters\":");
        print_json_people(stdout, waiters, n - holders);
        printf(",\"exists\":%s,\"known\":%s}\n", rc == -ENOENT ? "false" : "true",
               rc == -ENOSYS ? "false" : "true");
    } else {
        printf("%s: ", source);
        if (rc == -ENOSYS)
            printf("unknown (no kernel lock table on this system)");
        else if (holders == 0)
            printf("free");
        else if (h[0].mode == CACHELOCK_SHARED)
            printf("shared by %zu: ", holders);
        else
            printf("exclusive by ");
        print_people(stdout, h, holders);
        if (n > holders) {
            printf("; %zu waiting: ", n - holders);
            print_people(stdout, waiters, n - holders);
        }
        if (rc == -ENOENT)
            printf(" (no lock file yet)");
        printf("\n");
    }
    free(h);
    return 0;
}

int cli_status(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "json", no_argument, NULL, 'j' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 }
    };
    int c, json = 0, status = 0;
    const char *dir;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+jh", longopts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'h':
            fputs(status_usage, stdout);
            return cli_close_stdout();
        default:
            return cli_usage_error("status", "unrecognized option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        dir = argv[optind++];
    } else {
        if (!(dir = cli_default_dir("status")))
            return EXIT_USAGE;
    }

    if (optind < argc) {
        for (; optind < argc && !status; optind++)
            status = show(dir, argv[optind], json);
    } else {
        char **names;
        size_t n;
        int rc = cachelock_sources(dir, &names, &n);
        if (rc < 0) {
            cli_error("%s", cachelock_errmsg());
            return cli_exit_for(rc, cachelock_errmsg());
        }
        for (size_t i = 0; i < n && !status; i++)
            status = show(dir, names[i], json);
        cachelock_sources_free(names, n);
    }
    int out = cli_close_stdout();
    return status ? status : out;
}

int cli_path(int argc, char **argv)
{
    char path[4200];
    const char *dir, *source;
    int rc;

    if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(path_usage, stdout);
        return cli_close_stdout();
    }
    if (argc > 1 && argv[1][0] == '-' && argv[1][1] && strcmp(argv[1], "--") != 0)
        return cli_usage_error("path", "unrecognized option '%s'", argv[1]);
    if (argc > 1 && strcmp(argv[1], "--") == 0) {
        argv++;
        argc--;
    }
    if (argc == 3) {
        dir = argv[1];
        source = argv[2];
    } else if (argc == 2) {
        source = argv[1];
        if (!(dir = cli_default_dir("path")))
            return EXIT_USAGE;
    } else {
        return cli_usage_error("path", "expected [CACHE_DIR] SOURCE");
    }
    rc = cachelock_path(dir, source, path, sizeof path);
    if (rc < 0) {
        cli_error("%s", cachelock_errmsg());
        return cli_exit_for(rc, cachelock_errmsg());
    }
    puts(path);
    return cli_close_stdout();
}
