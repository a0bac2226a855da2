/*
 * queue.c - the system calls of fair mode's queue (src/fair.c has the
 * protocol): byte-range locks on a lock file's own open file description,
 * and the reads and writes of its sidecar.
 *
 * Why OFD locks (F_OFD_SETLK, Linux 3.15) and not classic POSIX ones:
 * POSIX byte-range locks belong to the process, so two threads of one
 * process would share one place in the queue, and closing ANY descriptor
 * of the file would drop them.  OFD locks belong to the open file
 * description, exactly like flock(2) locks: each acquire has its own, and
 * its queue locks die with it (a killed process never stalls the queue).
 * On local filesystems the kernel keeps flock(2) locks and byte-range
 * locks apart (fs/locks.c: two lists), so the queue's locks, far beyond
 * the data at 2^62, never meet the flock(2) lock that excludes.  Two
 * differences from POSIX locks matter here: OFD locks never report
 * EDEADLK (the queue must be free of cycles by construction, see fair.c),
 * and F_OFD_GETLK reports -1 as the holder's pid.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#if USE_OFD_QUEUE
static int ofd(int fd, int cmd, short type, int64_t start, int64_t len, struct flock *out)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = type;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)start;
    fl.l_len = (off_t)len;
    int rc = cachelock__sys.fcntl(fd, cmd, &fl);
    if (out)
        *out = fl;
    return rc;
}
#endif

int cachelock__os_has_queue(void)
{
    return USE_OFD_QUEUE;
}

int cachelock__os_range_lock(int fd, int type, int64_t start, int64_t len, int wait)
{
#if USE_OFD_QUEUE
    short t = type == 'w' ? F_WRLCK : type == 'r' ? F_RDLCK : F_UNLCK;
    for (;;) {
        if (ofd(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, t, start, len, NULL) == 0)
            return 0;
        /* As with flock(2): a blocking wait is restarted by the kernel
         * after a handler with SA_RESTART, so EINTR means one without it
         * ran; a request that does not wait is retried. */
        if (errno == EINTR && !wait)
            continue;
        if (errno == EAGAIN || errno == EACCES)
            return -EWOULDBLOCK;
        /* EINVAL: a kernel without OFD locks (before 3.15). */
        return errno == EINVAL ? -ENOTSUP : -errno;
    }
#else
    (void)fd; (void)type; (void)start; (void)len; (void)wait;
    return -ENOTSUP;
#endif
}

int cachelock__os_range_test(int fd, int64_t start, int64_t len, int64_t *at)
{
#if USE_OFD_QUEUE
    struct flock fl;
    /* Asking for a READ lock finds only write locks: the queue's places
     * (write locks) are seen, the read locks that waiters keep on the
     * places they waited for are not. */
    int rc;
    /* It never waits: an EINTR is retried. */
    while ((rc = ofd(fd, F_OFD_GETLK, F_RDLCK, start, len, &fl)) < 0 && errno == EINTR)
        ;
    if (rc < 0)
        return errno == EINVAL ? -ENOTSUP : -errno;
    if (fl.l_type == F_UNLCK)
        return 0;
    *at = (int64_t)fl.l_start;
    return 1;
#else
    (void)fd; (void)start; (void)len; (void)at;
    return -ENOTSUP;
#endif
}

int cachelock__os_fd_writable(int fd)
{
    int fl = cachelock__sys.fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    return (fl & O_ACCMODE) == O_RDWR || (fl & O_ACCMODE) == O_WRONLY;
}

long cachelock__os_pread(int fd, void *buf, size_t n, int64_t off)
{
    for (;;) {
        long r = cachelock__sys.pread(fd, buf, n, off);
        if (r >= 0 || errno != EINTR)
            return r < 0 ? -errno : r;
    }
}

long cachelock__os_pwrite(int fd, const void *buf, size_t n, int64_t off)
{
    for (;;) {
        long r = cachelock__sys.pwrite(fd, buf, n, off);
        if (r >= 0 || errno != EINTR)
            return r < 0 ? -errno : r;
    }
}
