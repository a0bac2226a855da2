/* fair.c - `cachelock fair on|off|status [CACHE_DIR]`: fair mode as the
 * policy of a cache, so that every user of the library there queues. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <getopt.h>
#include <string.h>

static const char fair_usage[] =
    "Usage: cachelock fair on|off|status [CACHE_DIR]\n"
    "\n"
    "Fair mode as the policy of CACHE_DIR (default: $" ENV_DIR "): while it is on,\n"
    "every acquire of libcachelock on the cache (this command's 'run' included)\n"
    "waits in a queue and is granted the lock in the order of arrival, as with\n"
    "'run --fair'.  Tools that are not libcachelock (flock(1), Python's filelock,\n"
    "the Rust original, 'cachelock lock FD') still exclude and are excluded, but\n"
    "do not queue: they can take a free lock in front of the queue.\n"
    "\n"
    "  on       make fair mode the policy (the file .locks/.fair); refused with\n"
    "           status 69 where fair mode cannot work (NFS, SMB, FUSE, no OFD\n"
    "           locks); creates CACHE_DIR and .locks when missing\n"
    "  off      stop\n"
    "  status   print 'fair' or 'not fair'\n"
    "\n"
    "Running programs notice a change within a second.\n"
    "\n"
    "  -h, --help       show this help\n"
    "  -V, --version    show the version\n";

int cli_fair(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    const char *dir, *what;
    int c, rc;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h': return cli_print_help(fair_usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("fair", argv, c, longopts);
        }
    }
    if (optind >= argc)
        return cli_usage_error("fair", "missing on, off or status");
    what = argv[optind++];
    if (strcmp(what, "on") != 0 && strcmp(what, "off") != 0 && strcmp(what, "status") != 0)
        return cli_usage_error("fair", "unknown '%s': expected on, off or status", what);
    if (optind < argc) {
        dir = argv[optind++];
    } else if (!(dir = cli_default_dir("fair"))) {
        return EXIT_USAGE;
    }
    if (optind < argc)
        return cli_usage_error("fair", "too many operands: expected on|off|status [CACHE_DIR]");

    if (strcmp(what, "status") == 0) {
        rc = cachelock_fair_policy(dir);
        if (rc < 0)
            return cli_lib_error(rc);
        puts(rc ? "fair" : "not fair");
        return cli_close_stdout();
    }
    rc = cachelock_set_fair_policy(dir, strcmp(what, "on") == 0);
    if (rc < 0)
        return cli_lib_error(rc);
    return 0;
}
