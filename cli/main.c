/*
 * main.c - the cachelock command: subcommand dispatch, --help, --version.
 * Built only on the public API, like any program using the library.
 */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <string.h>

static const char usage[] =
    "Usage: cachelock COMMAND [options] [args]\n"
    "\n"
    "Per-source locks for a shared cache directory: {CACHE_DIR}/.locks/{SOURCE}.lock,\n"
    "flock(2) locks compatible with flock(1) and the ccpm/agpm CacheLock.\n"
    "\n"
    "Commands:\n"
    "  run [options] CACHE_DIR SOURCE [--] COMMAND [ARG...]\n"
    "  run [options] CACHE_DIR SOURCE -c SHELL_COMMAND\n"
    "                      take the lock, run COMMAND; COMMAND holds the lock until\n"
    "                      it exits (and keeps it if cachelock dies)\n"
    "  lock [options] FD   lock the lock file open on descriptor FD, for scripts:\n"
    "                      exec 9<>\"$(cachelock path --create CACHE_DIR SOURCE)\"\n"
    "  unlock FD           unlock it\n"
    "  status [--json] [CACHE_DIR] [SOURCE...]\n"
    "                      show which sources are free, shared or exclusive, and who\n"
    "                      holds or waits for them\n"
    "  path [--create] [CACHE_DIR] SOURCE\n"
    "                      check a source name and print its lock file path\n"
    "  prune [--older-than DURATION] [--dry-run] [CACHE_DIR]\n"
    "                      remove lock files nobody holds (never delete them by hand)\n"
    "  selftest [--second-path PATH] [--json] [CACHE_DIR]\n"
    "                      check in under 2 s that locks really work there (NFS,\n"
    "                      FUSE, ...): exclusion, shared locks, release on death,\n"
    "                      notification\n"
    "  fair on|off|status [CACHE_DIR]\n"
    "                      make every user of the library on the cache wait in a\n"
    "                      queue, first come first served\n"
    "\n"
    "Options:\n"
    "  -h, --help          show this help ('cachelock COMMAND --help' for a command)\n"
    "  -V, --version       show the version\n"
    "\n"
    "Environment:\n"
    "  " ENV_DIR "       the cache directory when CACHE_DIR is not given\n"
    "  " ENV_TIMEOUT "   default timeout of 'run' and 'lock', in seconds\n"
    "\n"
    "See cachelock(1) for exit statuses, the differences from flock(1) and examples.\n";

int cli_main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error(NULL, "missing command");
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0)
        return cli_print_help(usage);
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0)
        return cli_print_version();
    if (strcmp(cmd, "run") == 0)
        return cli_run(argc - 1, argv + 1);
    if (strcmp(cmd, "lock") == 0)
        return cli_lock(argc - 1, argv + 1);
    if (strcmp(cmd, "unlock") == 0)
        return cli_unlock(argc - 1, argv + 1);
    if (strcmp(cmd, "status") == 0)
        return cli_status(argc - 1, argv + 1);
    if (strcmp(cmd, "path") == 0)
        return cli_path(argc - 1, argv + 1);
    if (strcmp(cmd, "prune") == 0)
        return cli_prune(argc - 1, argv + 1);
    if (strcmp(cmd, "selftest") == 0)
        return cli_selftest(argc - 1, argv + 1);
    if (strcmp(cmd, "fair") == 0)
        return cli_fair(argc - 1, argv + 1);
    if (cmd[0] == '-')
        return cli_usage_error(NULL, "unrecognized option '%s'", cmd);
    return cli_usage_error(NULL, "unknown command '%s'", cmd);
}

#ifndef _WIN32
/* Windows starts in wmain (cli/win.c), which converts the arguments. */
int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
#endif
