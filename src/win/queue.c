/*
 * queue.c - fair mode's queue on Windows: not available.
 *
 * The queue (src/fair.c) is made of byte-range locks that belong to an
 * open file and sit far beyond the data, apart from the lock that
 * excludes.  On Windows the lock that excludes is itself a byte-range lock
 * over the whole file (LockFileEx over 2^64 - 1 bytes, see win.h), so
 * every place in the queue would overlap it, and a waiter's place would
 * shut out the holder.  A queue beside it (a second file) could work, but
 * it is not built: fair mode says -ENOTSUP here, with the reason, and never
 * runs unfair instead.  A cache's policy marker is never read (it can only
 * be set on a local Linux filesystem).
 */
#include "win.h"

int cachelock__os_has_queue(void)
{
    return 0;
}

int cachelock__os_range_lock(int fd, int type, int64_t start, int64_t len, int wait)
{
    (void)fd; (void)type; (void)start; (void)len; (void)wait;
    return -ENOTSUP;
}

int cachelock__os_range_test(int fd, int64_t start, int64_t len, int64_t *at)
{
    (void)fd; (void)start; (void)len; (void)at;
    return -ENOTSUP;
}

int cachelock__os_fd_writable(int fd)
{
    (void)fd;
    return 1;       /* lock files are opened for writing here */
}

int cachelock__os_sidecar_open(struct cachelock__path *p, int *fd, struct cachelock__fileid *id)
{
    (void)p; (void)fd; (void)id;
    return -ENOTSUP;
}

int cachelock__os_sidecar_id(struct cachelock__path *p, struct cachelock__fileid *id)
{
    (void)p; (void)id;
    return -ENOENT;     /* none is ever made */
}

int cachelock__os_sidecar_remove(struct cachelock__path *p, const struct cachelock__fileid *id)
{
    (void)p; (void)id;
    return 1;
}

long cachelock__os_pread(int fd, void *buf, size_t n, int64_t off)
{
    (void)fd; (void)buf; (void)n; (void)off;
    return -ENOTSUP;
}

long cachelock__os_pwrite(int fd, const void *buf, size_t n, int64_t off)
{
    (void)fd; (void)buf; (void)n; (void)off;
    return -ENOTSUP;
}

int cachelock__os_policy_read(struct cachelock__path *p)
{
    (void)p;
    return 0;
}

int cachelock__os_policy_write(struct cachelock__path *p, int on)
{
    (void)p; (void)on;
    return 0;       /* never on here (fair.c refuses it first): off already */
}
