/* util.c - messages, exit statuses, parsers and output helpers of the CLI. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "cachelock.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- Escaping for JSON and for terminals ---- */

#ifdef _WIN32
#define BACKSLASH_SEPARATES 1   /* in paths, and never part of a name */
#else
#define BACKSLASH_SEPARATES 0
#endif

/* The length of the valid UTF-8 sequence at p (1 to 4), or 0 when the byte
 * at p does not start one: no overlong forms, no surrogates, nothing above
 * U+10FFFF.  Stops at the NUL of a short string. */
static size_t utf8_len(const unsigned char *p)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] < 0xc2 || p[0] > 0xf4)
        return 0;
    n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    if (p[0] == 0xe0) lo = 0xa0;
    if (p[0] == 0xed) hi = 0x9f;
    if (p[0] == 0xf0) lo = 0x90;
    if (p[0] == 0xf4) hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

void cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        if (n == 0) {
            fputs("\\ufffd", f);
            p++;
            continue;
        }
        if (n > 1) {
            fwrite(p, 1, n, f);
            p += n;
            continue;
        }
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
        p++;
    }
    fputc('"', f);
}

/* Escape s as cli_text_string() describes, through put(ctx, bytes, n);
 * with keep_backslash, a backslash stays as is (for the library's messages,
 * which escape names themselves). */
static void text_escape(const char *s, int keep_backslash,
                        void (*put)(void *, const char *, size_t), void *ctx)
{
    char hex[8];
    for (const unsigned char *p = (const unsigned char *)s; *p;) {
        size_t n = utf8_len(p);
        /* C1 controls (U+0080 to U+009F) are two bytes, C2 80 to C2 9F. */
        int escape = n == 0 || (n == 1 && (*p < 0x20 || *p == 0x7f)) ||
                     (n == 2 && p[0] == 0xc2 && p[1] < 0xa0);
        if (n == 0)
            n = 1;
        if (escape) {
            for (size_t i = 0; i < n; i++) {
                snprintf(hex, sizeof hex, "\\x%02x", p[i]);
                put(ctx, hex, 4);
            }
        } else if (*p == '\\' && !keep_backslash && !BACKSLASH_SEPARATES) {
            put(ctx, "\\\\", 2);
        } else {
            put(ctx, (const char *)p, n);
        }
        p += n;
    }
}

static void put_file(void *ctx, const char *b, size_t n)
{
    fwrite(b, 1, n, ctx);
}

void cli_text_string(FILE *f, const char *s)
{
    text_escape(s, 0, put_file, f);
}

/* A buffer that text is escaped into; once a piece does not fit, the rest
 * is dropped, so a cut never splits an escape or leaves a hole. */
struct sink {
    char *buf;
    size_t size, used;
    int full;
};

static void put_buf(void *ctx, const char *b, size_t n)
{
    struct sink *k = ctx;
    if (k->full || k->used + n >= k->size) {
        k->full = 1;
        return;
    }
    memcpy(k->buf + k->used, b, n);
    k->used += n;
    k->buf[k->used] = '\0';
}

void cli_text_escape(char *buf, size_t size, const char *s)
{
    struct sink k = { buf, size, 0, 0 };
    if (size == 0)
        return;
    buf[0] = '\0';
    text_escape(s, 0, put_buf, &k);
}

/* ---- Messages and exit statuses ---- */

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

/* The long option that "--name[=value]" selects, as getopt_long() sees it:
 * an exact name, else a prefix that selects one meaning.  *ambiguous is set
 * when prefixes of options with different meanings match. */
static const struct option *find_long(const struct option *longopts, const char *name, size_t len,
                                      int *ambiguous)
{
    const struct option *found = NULL;

    *ambiguous = 0;
    for (const struct option *o = longopts; o->name; o++) {
        if (strncmp(o->name, name, len) != 0)
            continue;
        if (strlen(o->name) == len) {
            *ambiguous = 0;
            return o;
        }
        if (found && (found->has_arg != o->has_arg || found->flag != o->flag || found->val != o->val))
            *ambiguous = 1;
        if (!found)
            found = o;
    }
    return found;
}

int cli_option_error(const char *cmd, char **argv, int c, const struct option *longopts)
{
    /* getopt_long() does not say whether the failing option was long or
     * short.  A long one is the element just consumed, and what we find
     * there must agree with the error: a short option grouped after a long
     * one ("--shared -zn") leaves the long one at that place. */
    const char *arg = optind > 0 ? argv[optind - 1] : NULL;

    if (arg && arg[0] == '-' && arg[1] == '-' && arg[2]) {
        const char *name = arg + 2;
        size_t len = strcspn(name, "=");
        int ambiguous;
        const struct option *o = find_long(longopts, name, len, &ambiguous);

        if (!o && c == '?' && optopt == 0)
            return cli_usage_error(cmd, "unrecognized option '--%.*s'", (int)len, name);
        if (o && ambiguous && optopt == 0)
            return cli_usage_error(cmd, "option '--%.*s' is ambiguous", (int)len, name);
        if (o && !ambiguous && o->val == optopt) {
            if (c == ':')
                return cli_usage_error(cmd, "option '--%s' requires an argument", o->name);
            if (name[len] == '=' && o->has_arg == no_argument)
                return cli_usage_error(cmd, "option '--%s' doesn't allow an argument", o->name);
        }
    }
    if (c == ':')
        return cli_usage_error(cmd, "option requires an argument -- '%c'", optopt);
    if (optopt > ' ' && optopt < 127)
        return cli_usage_error(cmd, "invalid option -- '%c'", optopt);
    return cli_usage_error(cmd, "unrecognized option '%s'", arg ? arg : "");
}

int cli_print_help(const char *text)
{
    fputs(text, stdout);
    return cli_close_stdout();
}

int cli_print_version(void)
{
    printf("cachelock %s\n", cachelock_version());
    return cli_close_stdout();
}

const char *cli_default_dir(const char *cmd)
{
    const char *dir = cli_getenv(ENV_DIR);
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
        /* Whether we failed to make something or to open what exists: the
         * library's message starts with "cannot create" for the former. */
        return msg && strncmp(msg, "cannot create", 13) == 0 ? EXIT_CANTCREAT : EXIT_NOINPUT;
    case ELOOP:
    case EISDIR:
    case ENXIO:
        return EXIT_NOINPUT;
    case EREMOTE:
        return EXIT_UNAVAILABLE;    /* --local-only: no local lock here */
    case ENOTSUP:
        return EXIT_UNAVAILABLE;    /* fair mode cannot work there */
    default:
        return EXIT_OSERR;
    }
}

void cli_lib_message(void)
{
    fputs("cachelock: ", stderr);
    text_escape(cachelock_errmsg(), 1, put_file, stderr);
    fputc('\n', stderr);
}

int cli_lib_error(int err)
{
    cli_lib_message();
    return cli_exit_for(err, cachelock_errmsg());
}

int cli_name_error(int err, const char *source, unsigned flags)
{
    char msg[1024];
    int hint;

    struct sink k = { msg, sizeof msg, 0, 0 };
    msg[0] = '\0';
    text_escape(cachelock_errmsg(), 1, put_buf, &k);
    hint = !(flags & CACHELOCK_F_ANYNAME) && cachelock_check_name_ex(source, 0) < 0 &&
           cachelock_check_name_ex(source, CACHELOCK_F_ANYNAME) == 0;
    cli_error("%s%s", msg, hint ? " (valid here but not portable: --any-name accepts it)" : "");
    return cli_exit_for(err, msg);
}

/* ---- Parsers ---- */

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
     * exponent, no sign.  Whole part and result saturate at LONG_MAX ms:
     * a huge timeout means "that long", never an overflow into the past.
     * The first 9 fraction digits are kept; any further nonzero digit
     * still counts, so that rounding up never turns a wait into a try. */
    const unsigned long long cap = (unsigned long long)LONG_MAX;
    unsigned long long whole = 0, frac = 0, scale = 1, unit_ms;
    const char *p = s;
    int digits = 0, rest = 0;

    if (!s)
        return -1;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p++ - '0');
        whole = whole > (cap - d) / 10 ? cap : whole * 10 + d;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            if (scale < 1000000000ULL) {
                frac = frac * 10 + (unsigned)(*p - '0');
                scale *= 10;
            } else if (*p != '0') {
                rest = 1;
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
    /* frac < 10^9 and unit_ms <= 8.64e7: the product fits 64 bits.  Round
     * the fraction up to a whole millisecond: 0.0001 s still waits. */
    unsigned long long part = frac * unit_ms, extra = part / scale;
    if (part % scale != 0 || rest)
        extra++;
    unsigned long long total = whole > cap / unit_ms ? cap : whole * unit_ms;
    total = total > cap - extra ? cap : total + extra;
    *ms = (long)total;
    return 0;
}

/* ---- Output ---- */

void cli_describe_person(const cachelock_holder_t *h, char *buf, size_t size)
{
    char cmd[1024];
    if (h->pid <= 0) {
        snprintf(buf, size, "%s", CLI_UNSEEN);
        return;
    }
    cli_text_escape(cmd, sizeof cmd, h->command[0] ? h->command : "?");
    snprintf(buf, size, "pid %d (%s)", h->pid, cmd);
}

int cli_holders_count(const char *dir, const char *source)
{
    cachelock_holder_t *h = NULL;
    size_t n = 0, holders = 0;
    if (cachelock_holders(dir, source, &h, &n) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        holders += !h[i].waiting;
    free(h);
    return (int)holders;
}

/* "held exclusive by pid 12 (make -j4)", "held shared by 2: pid 3 (a), ..."
 * from the kernel's lock table. */
void cli_describe_holders(const char *dir, const char *source, char *buf, size_t size)
{
    cachelock_holder_t *h = NULL;
    size_t n = 0, holders = 0, open = 0, used;
    int rc = cachelock_holders(dir, source, &h, &n);
    char who[1200];

    for (size_t i = 0; i < n; i++) {
        holders += h[i].waiting == 0;
        open += h[i].waiting < 0;
    }
    if (rc == 0 && holders == 0 && open > 0) {
        /* Windows lists who has the file open, first in the array, and
         * cannot say which of them holds it. */
        used = (size_t)snprintf(buf, size, "held by one of the processes that have it open: ");
        for (size_t i = 0; i < open && used < size; i++) {
            cli_describe_person(&h[i], who, sizeof who);
            used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", who);
        }
        free(h);
        return;
    }
    if (rc < 0 || holders == 0) {
        snprintf(buf, size, "held by a process not visible here (in another PID namespace or "
                 "container, on another machine, or it let go a moment ago)");
        free(h);
        return;
    }
    if (h[0].mode == CACHELOCK_EXCLUSIVE)
        used = (size_t)snprintf(buf, size, "held exclusive by ");
    else
        used = (size_t)snprintf(buf, size, "held shared by %zu: ", holders);
    for (size_t i = 0; i < holders && used < size; i++) {
        cli_describe_person(&h[i], who, sizeof who);
        used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? ", " : "", who);
    }
    free(h);
}

void cli_fs_note(int kind, char *buf, size_t size)
{
    buf[0] = '\0';
    /* Unknown is not news: some systems cannot name any filesystem. */
    if (kind <= CACHELOCK_FS_LOCAL)
        return;
    snprintf(buf, size, "the cache is on %s (not a local filesystem), where locks may not "
             "exclude processes on other machines or behind other paths to the same files "
             "('cachelock selftest' checks)", cachelock_fs_name(kind));
}

int cli_close_stdout(void)
{
    /* Like gnulib's close_stdout: a stdout that was closed when we started
     * is an error only if something was written to it (fflush then fails
     * with EBADF); nothing lost, nothing to report. */
    int err = 0, failed = 0;

    errno = 0;
    if (fflush(stdout) != 0) {
        err = errno;
        failed = 1;
    }
    if (ferror(stdout))
        failed = 1;
    errno = 0;
    if (fclose(stdout) != 0 && errno != EBADF && !failed) {
        err = errno;
        failed = 1;
    }
    if (!failed)
        return 0;
    if (err)
        cli_error("write error on standard output: %s", cachelock_strerror(err));
    else
        cli_error("write error on standard output");
    return EXIT_OSERR;
}

#ifndef _WIN32
/* cli/win.c has these two for Windows. */
double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *cli_getenv(const char *name)
{
    return getenv(name);
}
#endif
