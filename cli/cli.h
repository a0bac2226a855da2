/*
 * cli.h - what the parts of the cachelock command share.  The tool uses only
 * the public library API (include/cachelock.h), like any other program.
 */
#ifndef CACHELOCK_CLI_H
#define CACHELOCK_CLI_H

#include "cachelock.h"

#include <getopt.h>
#include <stdio.h>

/* Exit statuses (sysexits(3) where they apply), documented in cachelock(1)
 * under EXIT STATUS.  The rule for 66 and 73: a failure to create what was
 * missing (the cache directory, .locks, the lock file) is 73, a failure to
 * open what exists is 66. */
enum {
    EXIT_CONFLICT_DEFAULT = 1,  /* busy or timed out (-E changes it) */
    EXIT_USAGE = 64,            /* EX_USAGE: bad options or arguments */
    EXIT_NOINPUT = 66,          /* EX_NOINPUT: cannot open the lock file */
    EXIT_UNAVAILABLE = 69,      /* EX_UNAVAILABLE: cannot run the command,
                                   or fair mode cannot work on the cache */
    EXIT_OSERR = 71,            /* EX_OSERR: system error, write error */
    EXIT_CANTCREAT = 73,        /* EX_CANTCREAT: cannot create the lock file */
    EXIT_STALE = 75             /* EX_TEMPFAIL: `lock` got a file that the
                                   path no longer names: reopen, retry */
};

/* Environment variables. */
#define ENV_DIR "CACHELOCK_DIR"
#define ENV_TIMEOUT "CACHELOCK_TIMEOUT"
#define ENV_FD "CACHELOCK_FD"

/* Long-only options share these values (above any char). */
enum {
    OPT_ANY_NAME = 256,
    OPT_VERBOSE,
    OPT_INHERIT_FD,
    OPT_CREATE,
    OPT_LOCAL_ONLY,
    OPT_SECOND_PATH,
    OPT_FAIR
};

/* "cachelock: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: message, a hint to run --help, and EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The usage error for what getopt_long() returned as c (':' or '?'), naming
 * the long option when it was one ("option '--shared' doesn't allow an
 * argument").  Call it with opterr = 0 and an optstring starting "+:". */
int cli_option_error(const char *cmd, char **argv, int c, const struct option *longopts);
/* Print text (--help) or "cachelock VERSION" to stdout and close it:
 * 0, or EXIT_OSERR after a write error. */
int cli_print_help(const char *text);
int cli_print_version(void);
/* The cache directory from $CACHELOCK_DIR when no CACHE_DIR operand was
 * given; NULL (after printing a usage error for cmd) when it is unset. */
const char *cli_default_dir(const char *cmd);
/* Exit status for a library error code (not busy/timeout) and its message. */
int cli_exit_for(int err, const char *msg);
/* Print cachelock_errmsg() with control characters escaped. */
void cli_lib_message(void);
/* Print cachelock_errmsg() and return cli_exit_for() of it. */
int cli_lib_error(int err);
/* Print cachelock_errmsg() about a failure with this source name, with a
 * hint when --any-name would accept the name; cli_exit_for() of it. */
int cli_name_error(int err, const char *source, unsigned flags);
/* Parse a duration: a decimal number with an optional fraction and unit
 * (ms, s, m, h, d; seconds when none), into milliseconds.  A fraction of a
 * millisecond counts as a whole one; a value beyond LONG_MAX milliseconds
 * is LONG_MAX.  0 or -1 (not a duration). */
int cli_parse_duration(const char *s, long *ms);
/* Parse a non-negative integer no larger than max.  0 or -1. */
int cli_parse_uint(const char *s, long max, long *out);
/* Write s as a JSON string (with quotes) to f: control characters as \u
 * escapes, each byte that is not part of valid UTF-8 as \ufffd. */
void cli_json_string(FILE *f, const char *s);
/* Write s for people: a backslash as \\, control characters (C0, DEL, C1)
 * and bytes that are not part of valid UTF-8 as \xHH; the rest as is.  On
 * Windows a backslash is the path separator and no name can hold one: it
 * is shown as it is there. */
void cli_text_string(FILE *f, const char *s);
/* The same into buf (always NUL-terminated, cut short if it does not fit). */
void cli_text_escape(char *buf, size_t size, const char *s);
/* "held exclusive by pid 12 (make -j4)", "held shared by 2: pid 3 (a), ..."
 * from the kernel's lock table, escaped for a terminal. */
void cli_describe_holders(const char *dir, const char *source, char *buf, size_t size);
/* What stands for a holder whose pid is 0: the library cannot name it. */
#define CLI_UNSEEN "a process not visible here (in another PID namespace, on another " \
                   "machine, or one that inherited the lock from a process now gone)"
/* "pid 12 (make -j4)", or CLI_UNSEEN, escaped for a terminal. */
struct cachelock_holder;
void cli_describe_person(const struct cachelock_holder *h, char *buf, size_t size);
/* For a cache on filesystem kind (from cachelock_fs_of; negative: not
 * known), what a person should know about its locks: "the cache is on nfs
 * (not a local filesystem), where locks may not exclude ..." for a kind
 * known not to be local, else "". */
void cli_fs_note(int kind, char *buf, size_t size);
/* How many hold the lock now (waiters not counted), -1 when unknown. */
int cli_holders_count(const char *dir, const char *source);
/* Flush and close stdout; report a write error, and output lost because
 * stdout was closed.  Returns 0 or EXIT_OSERR. */
int cli_close_stdout(void);
/* Seconds since an arbitrary point, from CLOCK_MONOTONIC. */
double cli_now(void);
/* An environment variable, as UTF-8 on Windows too; NULL when unset. */
const char *cli_getenv(const char *name);

/* The command, with its arguments as UTF-8 (main, or wmain on Windows). */
int cli_main(int argc, char **argv);
int cli_run(int argc, char **argv);

/* What `cachelock run` was asked (runargs.c, for run.c and win.c). */
struct cli_run_args {
    cachelock_options_t lock;
    int conflict_code;
    int quiet, verbose;
    int close_fd, no_fork;      /* -o, -F (Unix; -o is what Windows does) */
    const char *dir, *source;
    char **command;             /* COMMAND and its arguments; NULL with -c */
    char *shell;                /* SHELL_COMMAND (-c), or NULL */
};
/* Parse run's arguments (usage: its --help text).  Returns -1 with *a set:
 * go on and run; or the exit status to return at once (a usage error, or
 * 0 after --help or --version). */
int cli_run_parse(int argc, char **argv, const char *usage, struct cli_run_args *a);
int cli_status(int argc, char **argv);
int cli_path(int argc, char **argv);
int cli_prune(int argc, char **argv);
int cli_lock(int argc, char **argv);
int cli_unlock(int argc, char **argv);
int cli_selftest(int argc, char **argv);
int cli_fair(int argc, char **argv);

#endif
