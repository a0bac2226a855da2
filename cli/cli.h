/*
 * cli.h - what the parts of the cachelock command share.  The tool uses only
 * the public library API (include/cachelock.h), like any other program.
 */
#ifndef CACHELOCK_CLI_H
#define CACHELOCK_CLI_H

#include <stdio.h>

/* Exit statuses (sysexits(3) where they apply), documented in cachelock(1)
 * under EXIT STATUS. */
enum {
    EXIT_CONFLICT_DEFAULT = 1,  /* busy or timed out (run -E changes it) */
    EXIT_USAGE = 64,            /* EX_USAGE: bad options or arguments */
    EXIT_NOINPUT = 66,          /* EX_NOINPUT: cannot open the lock file */
    EXIT_UNAVAILABLE = 69,      /* EX_UNAVAILABLE: cannot run the command */
    EXIT_OSERR = 71,            /* EX_OSERR: system error */
    EXIT_CANTCREAT = 73         /* EX_CANTCREAT: cannot create the lock file */
};

/* Environment variables. */
#define ENV_DIR "CACHELOCK_DIR"
#define ENV_TIMEOUT "CACHELOCK_TIMEOUT"

/* "cachelock: <message>" on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A usage error: message, a hint to run --help, and EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The cache directory from $CACHELOCK_DIR when no CACHE_DIR operand was
 * given; NULL (after printing a usage error for cmd) when it is unset. */
const char *cli_default_dir(const char *cmd);
/* Exit status for a library error code (not busy/timeout). */
int cli_exit_for(int err, const char *msg);
/* Parse a duration: a decimal number with an optional fraction and unit
 * (ms, s, m, h, d; seconds when none), into milliseconds.  0 or -1. */
int cli_parse_duration(const char *s, long *ms);
/* Parse a non-negative integer no larger than max.  0 or -1. */
int cli_parse_uint(const char *s, long max, long *out);
/* Write s as a JSON string (with quotes) to f. */
void cli_json_string(FILE *f, const char *s);
/* Flush and close stdout; report a write error.  Returns 0 or EXIT_OSERR. */
int cli_close_stdout(void);

int cli_run(int argc, char **argv);
int cli_status(int argc, char **argv);
int cli_path(int argc, char **argv);
int cli_prune(int argc, char **argv);

#endif
