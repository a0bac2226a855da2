/*
 * proc.c - reading the kernel's lock table and process names on Linux.
 *
 * /proc/locks lists every flock(2), POSIX and OFD lock in the system, held
 * or waited for, whoever took it: the only way to tell a person who holds a
 * lock taken by flock(1) or by another program.  A line looks like
 *
 *     3: FLOCK  ADVISORY  WRITE 1788 fe:00:10952744 0 EOF
 *     3: -> FLOCK  ADVISORY  WRITE 1790 fe:00:10952744 0 EOF
 *
 * where "->" marks a process blocked waiting for the lock above it, the
 * device is MAJOR:MINOR in hex, and the inode is decimal.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

static int parse_uint(const char *s, size_t n, int base, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -EINVAL;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* "3: -> FLOCK  ADVISORY  WRITE 1790 fe:00:10952744 0 EOF" */
int cachelock__parse_lockline(const char *line, struct cachelock__lockline *out)
{
    const char *tok[9];
    size_t len[9];
    int n = 0, i = 0;
    uint64_t v;

    while (line[0] && n < 9) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '\n')
            break;
        tok[n] = line;
        while (*line && *line != ' ' && *line != '\t' && *line != '\n')
            line++;
        len[n] = (size_t)(line - tok[n]);
        n++;
    }
    /* id, [->], type, advisory, access, pid, dev:ino, start, end */
    if (n < 7)
        return -EINVAL;
    if (len[0] < 2 || tok[0][len[0] - 1] != ':')
        return -EINVAL;
    memset(out, 0, sizeof *out);
    i = 1;
    if (len[1] == 2 && memcmp(tok[1], "->", 2) == 0) {
        out->waiting = 1;
        i = 2;
    }
    if (n < i + 5)
        return -EINVAL;
    if (!(len[i] == 5 && memcmp(tok[i], "FLOCK", 5) == 0))
        return -EINVAL;     /* POSIX, OFDLCK, LEASE, DELEG: not ours */
    i += 2;                 /* skip the type and ADVISORY/MANDATORY */
    if (len[i] == 5 && memcmp(tok[i], "WRITE", 5) == 0)
        out->exclusive = 1;
    else if (len[i] == 4 && memcmp(tok[i], "READ", 4) == 0)
        out->exclusive = 0;
    else
        return -EINVAL;
    i++;
    if (parse_uint(tok[i], len[i], 10, &v) < 0 || v > INT32_MAX)
        return -EINVAL;
    out->pid = (int)v;
    i++;
    {
        const char *s = tok[i], *c1, *c2, *end = tok[i] + len[i];
        c1 = memchr(s, ':', len[i]);
        if (!c1)
            return -EINVAL;
        c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
        if (!c2)
            return -EINVAL;
        if (parse_uint(s, (size_t)(c1 - s), 16, &v) < 0 || v > UINT32_MAX)
            return -EINVAL;
        out->dev_major = (unsigned)v;
        if (parse_uint(c1 + 1, (size_t)(c2 - c1 - 1), 16, &v) < 0 || v > UINT32_MAX)
            return -EINVAL;
        out->dev_minor = (unsigned)v;
        if (parse_uint(c2 + 1, (size_t)(end - c2 - 1), 10, &out->ino) < 0)
            return -EINVAL;
        out->dev = (uint64_t)makedev(out->dev_major, out->dev_minor);
    }
    return 0;
}

/* Read the whole table into a heap buffer (NUL-terminated).  The kernel
 * fills each read(2) of /proc/locks with as many whole lines as fit the
 * reader's buffer, up to a page, walking its lock list afresh from the
 * start each time (by position): lines can repeat or go missing where two
 * reads meet if locks come and go in between.  So never read in small
 * pieces (stdio would read 1 KiB at a time, four times the seams); ask for
 * at least READ_CHUNK at a time. */
#define READ_CHUNK 65536
static int read_table(char **out, size_t *len)
{
    size_t cap = 2 * READ_CHUNK, n = 0;
    char *buf = malloc(cap);
    int fd, rc = 0;

    *out = NULL;
    *len = 0;
    if (!buf)
        return -ENOMEM;
    fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? -ENOSYS : -errno;
        free(buf);
        return rc;
    }
    for (;;) {
        if (cap - n < READ_CHUNK + 1) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Call fn for the flock(2) lines of the table, all of them or those on id. */
static int each_line(const struct cachelock__fileid *id, cachelock__lock_fn fn, void *ctx)
{
    char *table, *line, *end;
    size_t len;
    int rc = read_table(&table, &len);

    if (rc < 0)
        return rc;
    for (line = table; line < table + len; line = end + 1) {
        struct cachelock__lockline l;
        end = memchr(line, '\n', (size_t)(table + len - line));
        if (!end)
            end = table + len;
        *end = '\0';
        if (cachelock__parse_lockline(line, &l) < 0)
            continue;
        if (id && (l.ino != id->ino || l.dev != id->dev))
            continue;
        rc = fn(&l, ctx);
        if (rc < 0)
            break;
    }
    free(table);
    return rc;
}

int cachelock__os_locks_on(const char *path, const struct cachelock__fileid *id,
                           cachelock__lock_fn fn, void *ctx)
{
    (void)path;     /* the table names files by identity */
    return each_line(id, fn, ctx);
}

int cachelock__os_locks_all(cachelock__lock_fn fn, void *ctx)
{
    return each_line(NULL, fn, ctx);
}

void cachelock__os_command(int pid, char *buf, size_t size)
{
    char path[64];
    int fd;
    ssize_t n;

    buf[0] = '\0';
    if (size < 2 || pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    /* Arguments are NUL-separated; show them space-separated, and keep
     * control characters out of the terminal. */
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\0')
            buf[i] = ' ';
        else if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = '?';
    }
    buf[n] = '\0';
}
