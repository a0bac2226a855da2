/* util.c - messages, exit statuses, parsers and output helpers of the CLI. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("cachelock: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fputs("cachelock: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'cachelock %s%s--help' for more information.\n",
            cmd ? cmd : "", cmd ? " " : "");
    return EXIT_USAGE;
}

const char *cli_default_dir(const char *cmd)
{
    const char *dir = getenv(ENV_DIR);
    if (dir && *dir)
        return dir;
    cli_usage_error(cmd, "no CACHE_DIR given and %s is not set", ENV_DIR);
    return NULL;
}

int cli_exit_for(int err, const char *msg)
{
    switch (-err) {
    case EINVAL:
    case ENAMETOOLONG:
        return EXIT_USAGE;
    case EROFS:
    case ENOSPC:
    case EDQUOT:
    case EEXIST:
        return EXIT_CANTCREAT;
    case EACCES:
    case EPERM:
    case ENOENT:
    case ENOTDIR:
        /* Whether we failed to make something or to open what exists. */
        return msg && strncmp(msg, "cannot create", 13) == 0 ? EXIT_CANTCREAT : EXIT_NOINPUT;
    case ELOOP:
    case EISDIR:
    case ENXIO:
        return EXIT_NOINPUT;
    default:
        return EXIT_OSERR;
    }
}

int cli_parse_uint(const char *s, long max, long *out)
{
    long v = 0;
    if (!s || !*s)
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        if (v > (max - (*s - '0')) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

int cli_parse_duration(const char *s, long *ms)
{
    /* Parsed by hand, not with strtod: no locale, no "inf", no "0x1p3", no
     * exponent, no sign; at most 9 fraction digits. */
    unsigned long long whole = 0, frac = 0, scale = 1, unit_ms = 1000;
    const char *p = s;
    int digits = 0;

    if (!s)
        return -1;
    while (*p >= '0' && *p <= '9') {
        if (whole > 1000000000000ULL)
            return -1;
        whole = whole * 10 + (unsigned)(*p++ - '0');
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale < 1000000000ULL) {
                frac = frac * 10 + (unsigned)(*p - '0');
                scale *= 10;
            }
            p++;
            digits++;
        }
    }
    if (digits == 0)
        return -1;
    if (*p == '\0' || strcmp(p, "s") == 0) unit_ms = 1000;
    else if (strcmp(p, "ms") == 0) unit_ms = 1;
    else if (strcmp(p, "m") == 0) unit_ms = 60000;
    else if (strcmp(p, "h") == 0) unit_ms = 3600000;
    else if (strcmp(p, "d") == 0) unit_ms = 86400000;
    else return -1;
    /* Round the fraction up to a whole millisecond: a timeout of 0.0001 s
     * must still wait, not turn into a try. */
    unsigned long long total = whole * unit_ms + (frac * unit_ms + scale - 1) / scale;
    if (whole > (unsigned long long)LONG_MAX / unit_ms || total > (unsigned long long)LONG_MAX)
        return -1;
    *ms = (long)total;
    return 0;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '"':  fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\t': fputs("\\t", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (*p < 0x20 || *p == 0x7f)
                fprintf(f, "\\u%04x", *p);
            else
                fputc(*p, f);
        }
    }
    fputc('"', f);
}

int cli_close_stdout(void)
{
    int had_error = ferror(stdout);
    int err;
    errno = 0;
    err = fclose(stdout) != 0 ? errno : 0;
    if (!had_error && (err == 0 || err == EBADF))   /* EBADF: started closed */
        return 0;
    if (err)
        cli_error("write error on standard output: %s", cachelock_strerror(err));
    else
        cli_error("write error on standard output");
    return EXIT_OSERR;
}
