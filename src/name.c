/*
 * name.c - which source names are accepted, and the lock path they map to.
 *
 * A source name becomes the file name "{source}.lock" inside .locks/, the
 * same mapping as the Rust original, so both can share one cache.  We accept
 * only names that are the same single file name on every platform we
 * support (Linux, the BSDs, macOS, Windows), so that a cache written on one
 * can be locked from another:
 *
 *   - nothing that can leave .locks/: no '/', no '\\', not "." or "..";
 *   - no control characters (they break terminals, logs and /proc/locks);
 *   - nothing Windows refuses or silently rewrites: < > : " | ? *, a
 *     trailing dot or space (Win32 strips them, so "a." would be "a"), and
 *     the reserved device names CON, PRN, AUX, NUL, COM0-9, LPT0-9 (also
 *     with the superscript digits ¹ ² ³, which Windows treats as devices
 *     too), CONIN$ and CONOUT$, with any extension ("nul.lock" opens the
 *     null device there);
 *   - valid UTF-8 only, because Windows file names are UTF-16;
 *   - at most CACHELOCK_NAME_MAX bytes, so "{source}.lock" fits NAME_MAX.
 *
 * CACHELOCK_F_ANYNAME relaxes this to "one valid file name here": not
 * empty, not "." or "..", no '/', at most CACHELOCK_NAME_MAX bytes, for
 * caches shared with tools that create whatever name they are given.  On
 * Windows a file name also has no '\\', no control character, none of
 * < > : " | ? * (':' would name a stream of another file) and is UTF-8.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Printable ASCII bytes that may appear anywhere in a name, as bitmaps of
 * bytes 0-63 and 64-127: 0x20-0x7e without " * / : < > ? \\ |. */
#define PLAIN_0_63   0x2bff7bfb00000000ull
#define PLAIN_64_127 0x6fffffffefffffffull

static int ascii_lower(int c)
{
    return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Is the part before the first dot a Windows device name? */
static int is_reserved_device(const char *s, size_t len)
{
    static const char *const plain[] = { "con", "prn", "aux", "nul" };
    static const char *const console[] = { "conin$", "conout$" };
    size_t stem = 0;
    while (stem < len && s[stem] != '.')
        stem++;
    /* Win32 also ignores trailing spaces of the stem: "con .txt". */
    while (stem > 0 && s[stem - 1] == ' ')
        stem--;
    if (stem == 3) {
        for (size_t i = 0; i < sizeof plain / sizeof plain[0]; i++) {
            if (ascii_lower(s[0]) == plain[i][0] && ascii_lower(s[1]) == plain[i][1] &&
                ascii_lower(s[2]) == plain[i][2])
                return 1;
        }
    }
    for (size_t i = 0; i < sizeof console / sizeof console[0]; i++) {
        size_t n = strlen(console[i]), k = 0;
        while (k < n && k < stem && ascii_lower(s[k]) == console[i][k])
            k++;
        if (k == n && stem == n)
            return 1;
    }
    if (stem < 4)
        return 0;
    char a = (char)ascii_lower(s[0]), b = (char)ascii_lower(s[1]), c = (char)ascii_lower(s[2]);
    if (!((a == 'c' && b == 'o' && c == 'm') || (a == 'l' && b == 'p' && c == 't')))
        return 0;
    /* COM0-9, LPT0-9, and COM¹ COM² COM³ (U+00B9, U+00B2, U+00B3 in UTF-8:
     * C2 B9, C2 B2, C2 B3). */
    if (stem == 4 && s[3] >= '0' && s[3] <= '9')
        return 1;
    if (stem == 5 && (unsigned char)s[3] == 0xc2 &&
        ((unsigned char)s[4] == 0xb9 || (unsigned char)s[4] == 0xb2 || (unsigned char)s[4] == 0xb3))
        return 1;
    return 0;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 if it is
 * not one: overlong forms, surrogates and values above U+10FFFF are refused. */
size_t cachelock__utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) { len = 2; min = 0x80; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { len = 3; min = 0x800; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { len = 4; min = 0x10000; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* The CACHELOCK_F_ANYNAME rule: one valid file name on this system. */
static const char *any_name_reason(const char *source, size_t len, int *rc)
{
    *rc = -EINVAL;
    if (len == 0)
        return "is empty";
    if ((len == 1 && source[0] == '.') || (len == 2 && source[0] == '.' && source[1] == '.'))
        return "is a relative directory name";
    if (memchr(source, '/', len))
        return "contains a path separator";
    const char *refused = cachelock__os_name_refused(source, len);
    if (refused)
        return refused;
    if (len > CACHELOCK_NAME_MAX) {
        *rc = -ENAMETOOLONG;
        return "is longer than 250 bytes";
    }
    return NULL;
}

int cachelock__name_check(const char *source, size_t len, unsigned flags, const char **why)
{
    const char *reason = NULL;
    int rc = -EINVAL;

    if (flags & CACHELOCK_F_ANYNAME)
        reason = any_name_reason(source, len, &rc);
    else if (len == 0)
        reason = "is empty";
    else if ((len == 1 && source[0] == '.') || (len == 2 && source[0] == '.' && source[1] == '.'))
        reason = "is a relative directory name";
    else {
        const unsigned char *s = (const unsigned char *)source;
        size_t i = 0;
        /* Nearly every name is plain printable ASCII: skip that part with
         * one bit test per byte (this runs on every acquire); the loop
         * below explains whatever stops it. */
        for (; i < len; i++) {
            unsigned c = s[i];
            uint64_t ok = c < 64 ? PLAIN_0_63 : PLAIN_64_127;
            if (c >= 128 || !((ok >> (c & 63)) & 1))
                break;
        }
        while (i < len && !reason) {
            unsigned c = s[i];
            size_t step;
            if (c < 0x80) {
                if (c < 0x20 || c == 0x7f) {
                    reason = "contains a control character";
                    break;
                }
                switch (c) {
                case '/': case '\\':
                    reason = "contains a path separator";
                    break;
                case '<': case '>': case ':': case '"': case '|': case '?': case '*':
                    reason = "contains a character that is not portable (< > : \" | ? *)";
                    break;
                default:
                    i++;
                    continue;
                }
                break;
            }
            if ((step = cachelock__utf8_len(s + i, len - i)) == 0)
                reason = "is not valid UTF-8";
            else {
                i += step;
                continue;
            }
            break;
        }
        if (!reason && (source[len - 1] == '.' || source[len - 1] == ' '))
            reason = "ends with a dot or a space, which Windows strips";
        if (!reason && is_reserved_device(source, len))
            reason = "is a reserved device name on Windows";
        if (!reason && len > CACHELOCK_NAME_MAX) {
            reason = "is longer than 250 bytes";
            rc = -ENAMETOOLONG;
        }
    }
    if (why)
        *why = reason;
    return reason ? rc : 0;
}

int cachelock_check_name_ex(const char *source, unsigned flags)
{
    const char *why;
    int rc;
    if (flags & ~CACHELOCK_F_ANYNAME)
        return cachelock__failf(-EINVAL, "invalid argument: unknown name flags 0x%x",
                                flags & ~CACHELOCK_F_ANYNAME);
    if (!source)
        return cachelock__failf(-EINVAL, "invalid source name: NULL");
    rc = cachelock__name_check(source, strlen(source), flags, &why);
    if (rc < 0)
        return cachelock__failf(rc, "invalid source name '%.300s': %s", source, why);
    return 0;
}

int cachelock_check_name(const char *source)
{
    return cachelock_check_name_ex(source, 0);
}

int cachelock__path_build(struct cachelock__path *p, const char *cache_dir, const char *source,
                          unsigned flags)
{
    size_t dir_len, root_len, name_len, need, at;
    int rc;

    p->buf = p->inline_buf;
    p->buf[0] = '\0';
    p->dir_len = p->locks_len = p->len = 0;
    if (!cache_dir || !*cache_dir)
        return cachelock__failf(-EINVAL, "invalid cache directory: %s",
                                cache_dir ? "empty" : "NULL");
    rc = cachelock_check_name_ex(source, flags & CACHELOCK_F_ANYNAME);
    if (rc < 0)
        return rc;

    /* "/c/" and "/c" are the same directory; keep messages free of "//".
     * A root ("/", "C:\\") keeps its separator. */
    dir_len = strlen(cache_dir);
    root_len = cachelock__os_root_len(cache_dir, dir_len);
    while (dir_len > 1 && dir_len > root_len && cachelock__os_is_sep(cache_dir[dir_len - 1]))
        dir_len--;
    name_len = strlen(source);
    need = dir_len + 1 + strlen(LOCKS_DIR) + 1 + name_len + strlen(LOCK_SUFFIX);
    if (need > CACHELOCK_PATH_MAX)
        return cachelock__failf(-ENAMETOOLONG, "cannot build lock path in '%.*s': %s",
                                (int)(dir_len > 200 ? 200 : dir_len), cache_dir,
                                cachelock_strerror(ENAMETOOLONG));
    if (need >= sizeof p->inline_buf) {
        p->buf = cachelock__sys.malloc(need + 1);
        if (!p->buf) {
            p->buf = p->inline_buf;
            return cachelock__failf(-ENOMEM, "cannot build lock path in '%.*s': %s",
                                    (int)(dir_len > 200 ? 200 : dir_len), cache_dir,
                                    cachelock_strerror(ENOMEM));
        }
    }

    memcpy(p->buf, cache_dir, dir_len);
    p->dir_len = dir_len;
    at = dir_len;
    /* No separator after one that ends a root ("/"), nor after a bare
     * Windows drive ("C:" is that drive's current directory). */
    if (!cachelock__os_is_sep(cache_dir[dir_len - 1]) && dir_len != root_len)
        p->buf[at++] = CACHELOCK__SEP;
    memcpy(p->buf + at, LOCKS_DIR, strlen(LOCKS_DIR));
    at += strlen(LOCKS_DIR);
    p->locks_len = at;
    p->buf[at++] = CACHELOCK__SEP;
    memcpy(p->buf + at, source, name_len);
    at += name_len;
    memcpy(p->buf + at, LOCK_SUFFIX, strlen(LOCK_SUFFIX) + 1);
    p->len = at + strlen(LOCK_SUFFIX);
    return 0;
}

int cachelock__path_copy(struct cachelock__path *dst, const struct cachelock__path *src)
{
    dst->buf = dst->inline_buf;
    if (src->len >= sizeof dst->inline_buf) {
        dst->buf = cachelock__sys.malloc(src->len + 1);
        if (!dst->buf) {
            dst->buf = dst->inline_buf;
            dst->buf[0] = '\0';
            return -ENOMEM;
        }
    }
    memcpy(dst->buf, src->buf, src->len + 1);
    dst->dir_len = src->dir_len;
    dst->locks_len = src->locks_len;
    dst->len = src->len;
    return 0;
}

void cachelock__path_free(struct cachelock__path *p)
{
    if (p->buf != p->inline_buf)
        free(p->buf);
    p->buf = p->inline_buf;
    p->buf[0] = '\0';
}

static int path(const char *cache_dir, const char *source, unsigned flags, char *buf,
                size_t size)
{
    struct cachelock__path p;
    int rc;
    if (flags & ~CACHELOCK_F_ANYNAME)
        return cachelock__failf(-EINVAL, "invalid argument: unknown name flags 0x%x",
                                flags & ~CACHELOCK_F_ANYNAME);
    rc = cachelock__path_build(&p, cache_dir, source, flags);
    if (rc < 0)
        return rc;
    if (!buf || p.len + 1 > size)
        rc = cachelock__failf(-ERANGE, "cannot store lock path '%s': %s", p.buf,
                              cachelock_strerror(ERANGE));
    else {
        memcpy(buf, p.buf, p.len + 1);
        rc = (int)p.len;
    }
    cachelock__path_free(&p);
    return rc;
}

int cachelock_path_ex(const char *cache_dir, const char *source, unsigned flags, char *buf,
                      size_t size)
{
    int old = cachelock__cancel_off();
    int rc = path(cache_dir, source, flags, buf, size);
    cachelock__cancel_restore(old);
    return rc;
}

int cachelock_path(const char *cache_dir, const char *source, char *buf, size_t size)
{
    return cachelock_path_ex(cache_dir, source, 0, buf, size);
}
