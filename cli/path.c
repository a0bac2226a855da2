/* path.c - `cachelock path`: check a name, print its lock file path, and
 * with --create make the file for scripts that open it themselves. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"


static const char path_usage[] =
    "Usage: cachelock path [options] [CACHE_DIR] SOURCE\n"
    "\n"
    "Check the SOURCE name and print its lock file path, as is (not escaped).\n"
    "CACHE_DIR defaults to $" ENV_DIR ".  Creates nothing unless --create.\n"
    "\n"
    "      --create     create CACHE_DIR, .locks and the lock file when missing\n"
    "                   (locking nothing), for descriptor mode:\n"
    "                     exec 9<>\"$(cachelock path --create \"$CACHE\" SOURCE)\"\n"
    "                     cachelock lock 9\n"
    "      --any-name   accept any SOURCE that is a valid file name here, not only\n"
    "                   portable names\n"
    "  -h, --help       show this help\n"
    "  -V, --version    show the version\n";

int cli_path(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "create", no_argument, NULL, OPT_CREATE },
        { "any-name", no_argument, NULL, OPT_ANY_NAME },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    char path[CACHELOCK_PATH_MAX + 1];
    const char *dir, *source;
    unsigned flags = 0;
    int c, rc, create = 0;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:hV", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_CREATE: create = 1; break;
        case OPT_ANY_NAME: flags |= CACHELOCK_F_ANYNAME; break;
        case 'h': return cli_print_help(path_usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("path", argv, c, longopts);
        }
    }
    if (argc - optind == 2) {
        dir = argv[optind];
        source = argv[optind + 1];
    } else if (argc - optind == 1) {
        source = argv[optind];
        if (!(dir = cli_default_dir("path")))
            return EXIT_USAGE;
    } else {
        return cli_usage_error("path", "expected [CACHE_DIR] SOURCE");
    }
    rc = cachelock_path_ex(dir, source, flags, path, sizeof path);
    if (rc < 0)
        return cli_name_error(rc, source, flags);
    if (create && (rc = cachelock_prepare(dir, source, flags)) < 0)
        return cli_lib_error(rc);
    puts(path);
    return cli_close_stdout();
}
