/* runargs.c - the command line of `cachelock run`, parsed one way on every
 * system: run.c (fork and exec) and win.c (CreateProcess) differ in how
 * they run COMMAND, not in what they accept. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <getopt.h>
#include <string.h>

static int is_dashes(const char *s)
{
    return strcmp(s, "--") == 0;
}

static int is_command_option(const char *s)
{
    return strcmp(s, "-c") == 0 || strcmp(s, "--command") == 0;
}

/* Operands after the options.  Only the first "--" separates; what
 * follows the operands is COMMAND, "--" included:
 *   CACHE_DIR SOURCE -- COMMAND...     SOURCE -- COMMAND...
 *   CACHE_DIR SOURCE -c SHELL_COMMAND  SOURCE -c SHELL_COMMAND
 *   CACHE_DIR SOURCE COMMAND...        (flock(1) style)
 * and with the -c option before the operands, [CACHE_DIR] SOURCE alone. */
static int parse_operands(struct cli_run_args *a, char **args, int n, char *shell_command)
{
    int used;

    if (shell_command) {
        if (n > 2)
            return cli_usage_error("run", "too many operands: with -c, expected [CACHE_DIR] SOURCE");
        if (n < 1)
            return cli_usage_error("run", "missing operands: expected [CACHE_DIR] SOURCE");
        used = n;
    } else if (n >= 2 && (is_dashes(args[1]) || is_command_option(args[1]))) {
        used = 1;
    } else if (n >= 3) {
        used = 2;
    } else if (n == 2) {
        return cli_usage_error("run", "missing COMMAND to run");
    } else {
        return cli_usage_error("run", "missing operands: expected CACHE_DIR SOURCE -- COMMAND");
    }
    if (used == 2) {
        a->dir = args[0];
        a->source = args[1];
    } else {
        a->source = args[0];
        if (!(a->dir = cli_default_dir("run")))
            return EXIT_USAGE;
    }
    if (!shell_command && is_command_option(args[used])) {
        if (n != used + 2)
            return cli_usage_error("run", "%s requires exactly one command argument", args[used]);
        shell_command = args[used + 1];
    }
    if (shell_command) {
        a->shell = shell_command;
        return 0;
    }
    a->command = args + used + (is_dashes(args[used]) ? 1 : 0);
    if (!a->command[0])
        return cli_usage_error("run", "missing COMMAND to run");
    return 0;
}

int cli_run_parse(int argc, char **argv, const char *usage, struct cli_run_args *a)
{
    static const struct option longopts[] = {
        { "exclusive", no_argument, NULL, 'x' },
        { "shared", no_argument, NULL, 's' },
        { "nonblock", no_argument, NULL, 'n' },
        { "nonblocking", no_argument, NULL, 'n' },
        { "nb", no_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 'w' },
        { "wait", required_argument, NULL, 'w' },
        { "conflict-exit-code", required_argument, NULL, 'E' },
        { "quiet", no_argument, NULL, 'q' },
        { "close", no_argument, NULL, 'o' },
        { "no-fork", no_argument, NULL, 'F' },
        { "command", required_argument, NULL, 'c' },
        { "inherit-fd", no_argument, NULL, OPT_INHERIT_FD },
        { "any-name", no_argument, NULL, OPT_ANY_NAME },
#ifndef _WIN32
        /* Not offered by cachelock.exe yet (see its usage). */
        { "local-only", no_argument, NULL, OPT_LOCAL_ONLY },
#endif
        { "fair", no_argument, NULL, OPT_FAIR },
        { "verbose", no_argument, NULL, OPT_VERBOSE },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 }
    };
    int c, timeout_set = 0, nonblock = 0;
    long v, timeout = -1;
    const char *env;
    char *shell_command = NULL;

    memset(a, 0, sizeof *a);
    a->lock = (cachelock_options_t)CACHELOCK_OPTIONS_INIT;
    a->conflict_code = EXIT_CONFLICT_DEFAULT;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+:xesnw:E:qoFc:hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'x':
        case 'e': a->lock.mode = CACHELOCK_EXCLUSIVE; break;
        case 's': a->lock.mode = CACHELOCK_SHARED; break;
        case 'n': nonblock = 1; break;
        case 'w':
            if (cli_parse_duration(optarg, &timeout) < 0)
                return cli_usage_error("run", "invalid timeout '%s': expected seconds, e.g. 10 or 0.5",
                                       optarg);
            timeout_set = 1;
            break;
        case 'E':
            if (cli_parse_uint(optarg, 255, &v) < 0)
                return cli_usage_error("run", "invalid conflict exit code '%s': expected 0 to 255",
                                       optarg);
            a->conflict_code = (int)v;
            break;
        case 'q': a->quiet = 1; break;
        case 'o': a->close_fd = 1; break;   /* what Windows always does */
        case 'F':
#ifdef _WIN32
            return cli_usage_error("run", "--no-fork is not available on Windows, which has no exec");
#else
            a->no_fork = 1;
            break;
#endif
        case 'c': shell_command = optarg; break;
        case OPT_INHERIT_FD: break;   /* the default since 0.3.0 (Windows: nothing is) */
        case OPT_ANY_NAME: a->lock.flags |= CACHELOCK_F_ANYNAME; break;
        case OPT_LOCAL_ONLY: a->lock.flags |= CACHELOCK_F_LOCAL_ONLY; break;
        case OPT_FAIR: a->lock.flags |= CACHELOCK_F_FAIR; break;
        case OPT_VERBOSE: a->verbose = 1; break;
        case 'h': return cli_print_help(usage);
        case 'V': return cli_print_version();
        default: return cli_option_error("run", argv, c, longopts);
        }
    }
    if (a->no_fork && a->close_fd)
        return cli_usage_error("run", "the --no-fork and --close options are incompatible");
    /* As with flock(1), -n wins over -w whatever their order. */
    if (nonblock) {
        timeout = 0;
    } else if (!timeout_set && (env = cli_getenv(ENV_TIMEOUT)) && *env) {
        if (cli_parse_duration(env, &timeout) < 0)
            return cli_usage_error("run", "invalid %s '%s': expected seconds", ENV_TIMEOUT, env);
    }
    a->lock.timeout_ms = timeout;

    int rc = parse_operands(a, argv + optind, argc - optind, shell_command);
    return rc ? rc : -1;
}
