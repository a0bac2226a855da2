/* prune.c - `cachelock prune`: remove lock files nobody holds. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cachelock prune [--older-than DURATION] [--dry-run] [CACHE_DIR]\n"
    "\n"
    "Remove the lock files of CACHE_DIR (default: $" ENV_DIR ") that nobody holds:\n"
    "each is locked without waiting, unlinked while held, and released; busy ones\n"
    "are skipped.  Safe for users of cachelock and libcachelock, which re-check the\n"
    "file after every lock; NOT for flock(1) users already waiting on a file.\n"
    "Never delete lock files by hand.\n"
    "\n"
    "  -o, --older-than DURATION  only files created at least DURATION ago\n"
    "                             (seconds, or with a unit: 90s, 30m, 12h, 7d)\n"
    "  -n, --dry-run              say what would be removed, remove nothing\n"
    "  -q, --quiet                print only the summary\n"
    "  -h, --help                 show this help\n"
    "  -V, --version              show the version\n"
    "\n"
    "Every lock file is considered, also those whose names are not portable\n"
    "(made by flock(1) or other tools).  Names are printed escaped: a backslash\n"
    "as \\\\, control characters and bytes that are not UTF-8 as \\xHH.\n";

struct tally {
    int removed, busy, recent, failed, first_err, quiet, dry_run;
    char first_msg[512];
};

static void report(const char *source, cachelock_prune_status_t status, int err, void *ctx)
{
    struct tally *t = ctx;
    switch (status) {
    case CACHELOCK_PRUNE_REMOVED:
        t->removed++;
        if (!t->quiet) {
            printf("%s ", t->dry_run ? "would remove" : "removed");
            cli_text_string(stdout, source);
            putchar('\n');
        }
        break;
    case CACHELOCK_PRUNE_BUSY:
        t->busy++;
        if (!t->quiet) {
            printf("skipped ");
            cli_text_string(stdout, source);
            printf(": %s\n", err == -EDEADLK ? "held by this process" : "in use");
        }
        break;
    case CACHELOCK_PRUNE_RECENT:
        t->recent++;
        if (!t->quiet) {
            printf("kept ");
            cli_text_string(stdout, source);
            printf(": newer than the limit\n");
        }
        break;
    case CACHELOCK_PRUNE_FAILED:
        t->failed++;
        cli_lib_message();
        if (!t->first_err) {
            t->first_err = err;
            snprintf(t->first_msg, sizeof t->first_msg, "%s", cachelock_errmsg());
        }
        break;
    }
}

int cli_prune(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "older-than", required_argument, NULL, 'o' },
        { "dry-run", no_argument, NULL, 'n' },
        { "quiet", no_argument, NULL, 'q' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    struct tally t;
    long older = 0;
    unsigned flags = 0;
    int c;
    const char *dir;

    memset(&t, 0, sizeof t);
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:o:nqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'o':
            if (cli_parse_duration(optarg, &older) < 0)
                return cli_usage_error("prune", "invalid duration '%s': expected e.g. 3600, 30m, 7d",
                                       optarg);
            break;
        case 'n': flags |= CACHELOCK_PRUNE_DRY_RUN; t.dry_run = 1; break;
        case 'q': t.quiet = 1; break;
        case 'h': return cli_print_help(usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("prune", argv, c, longopts);
        }
    }
    if (optind < argc) {
        dir = argv[optind++];
    } else {
        if (!(dir = cli_default_dir("prune")))
            return EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error("prune", "too many operands: expected [CACHE_DIR]");

    int rc = cachelock_prune(dir, older, flags, report, &t);
    if (rc < 0)
        return cli_lib_error(rc);
    printf("%s %d lock file%s; skipped %d in use, %d newer, %d failed\n",
           t.dry_run ? "would remove" : "removed", t.removed, t.removed == 1 ? "" : "s",
           t.busy, t.recent, t.failed);
    int out = cli_close_stdout();
    if (t.first_err)
        return cli_exit_for(t.first_err, t.first_msg);
    return out;
}
