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

int cachelock__os_locks_on(const struct cachelock__fileid *id, cachelock__lock_fn fn, void *ctx)
{
    FILE *f = fopen("/proc/locks", "re");
    char *line = NULL;
    size_t cap = 0;
    int rc = 0;
    unsigned maj = major((dev_t)id->dev), min = minor((dev_t)id->dev);

    if (!f)
        return errno == ENOENT ? -ENOSYS : -errno;
    while (getline(&line, &cap, f) > 0) {
        struct cachelock__lockline l;
        if (cachelock__parse_lockline(line, &l) < 0)
            continue;
        if (l.ino != id->ino || l.dev_major != maj || l.dev_minor != min)
            continue;
        rc = fn(&l, ctx);
        if (rc < 0)
            break;
    }
    free(line);
    fclose(f);
    return rc;
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
