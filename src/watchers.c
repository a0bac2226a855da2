/*
 * watchers.c - change-notification instances for timed and asynchronous
 * waits, kept for the next wait.
 *
 * Closing an inotify instance is slow: the kernel waits for an SRCU grace
 * period before it frees the group (14 to 24 ms per close measured when
 * this was written), which would make every timed acquire that had to wait
 * take that long to return.  Idle instances are therefore kept, up to
 * POOL_MAX per process; removing a watch is cheap.
 *
 * An idle instance is checked before reuse, like an idle lock file
 * (pool.c): one inherited from a parent process is shared with it (events
 * read by one are lost to the other), so a child closes its copies; and
 * one whose descriptor the program closed and reused is dropped without
 * being touched (os_notify_is: an eventfd under the same number has the
 * same fstat identity as an inotify instance, so the check also asks for
 * the queue size, which only an inotify instance answers).  The watch is
 * removed and the queue emptied when a wait stops, so an idle instance is
 * always empty and one with events queued is not ours.
 *
 * Guarded by the tables mutex (registry.c).
 */
#include "internal.h"

#define POOL_MAX 4

static struct cachelock__watch pool[POOL_MAX];  /* no watch in them, queue empty */
static int pool_n;
static uint64_t pool_epoch;

/* Drop the instances of another process epoch; called with the mutex held.
 * Their descriptors are closed by the caller, after unlocking, from out[]. */
static int check_epoch(uint64_t epoch, struct cachelock__watch *out)
{
    int n = 0;
    if (pool_epoch != epoch) {
        while (pool_n > 0)
            out[n++] = pool[--pool_n];
        pool_epoch = epoch;
    }
    return n;
}

static void close_checked(const struct cachelock__watch *w)
{
    if (w->fd >= 0 && cachelock__os_notify_is(w->fd, &w->fd_id, 0) != 0)
        cachelock__os_close(w->fd);
}

/* An instance with no watch of ours in it (new, or idle and emptied). */
static int instance_take(struct cachelock__watch *w, uint64_t epoch)
{
    struct cachelock__watch stale[POOL_MAX], idle = { -1, -1, -1, { 0, 0 }, 0 };
    int t = cachelock__tables_lock();
    int nstale = check_epoch(epoch, stale);
    if (pool_n > 0)
        idle = pool[--pool_n];
    cachelock__tables_unlock(t);
    while (nstale > 0)
        close_checked(&stale[--nstale]);

    int is = idle.fd >= 0 ? cachelock__os_notify_is(idle.fd, &idle.fd_id, 1) : 0;
    if (is < 0)
        cachelock__os_close(idle.fd);
    if (is == 1) {
        *w = idle;
        return 0;
    }
    w->fd = cachelock__os_notify_open();
    if (w->fd < 0) {
        int rc = w->fd;
        w->fd = -1;         /* cachelock_wait_fd() says -1: nothing to poll */
        return rc;
    }
    int rc = cachelock__os_fd_id(w->fd, &w->fd_id);
    if (rc < 0) {
        cachelock__os_close(w->fd);
        w->fd = -1;
        return rc;
    }
    w->epoch = epoch;
    return 0;
}

static void instance_give_back(struct cachelock__watch *w)
{
    struct cachelock__watch stale[POOL_MAX];
    uint64_t epoch = cachelock__os_process_epoch();
    int kept = 0;
    int t = cachelock__tables_lock();
    int nstale = check_epoch(epoch, stale);
    if (w->epoch == epoch && pool_n < POOL_MAX) {
        pool[pool_n++] = *w;
        kept = 1;
    }
    cachelock__tables_unlock(t);
    while (nstale > 0)
        close_checked(&stale[--nstale]);
    if (!kept)
        close_checked(w);
    w->fd = -1;
}

int cachelock__watch_start(const char *path, struct cachelock__watch *w)
{
    int rc = instance_take(w, cachelock__os_process_epoch());
    if (rc < 0)
        return rc;
    w->wd2 = -1;
    w->wd = cachelock__os_notify_add(w->fd, path);
    if (w->wd < 0) {
        rc = w->wd;
        w->wd = -1;
        instance_give_back(w);
        return rc;
    }
    return 0;
}

int cachelock__watch_add(const char *path, struct cachelock__watch *w)
{
    if (w->fd < 0)
        return -EBADF;
    int wd = cachelock__os_notify_add(w->fd, path);
    if (wd < 0)
        return wd;
    /* The same inode as the first watch gives its number again: one
     * watch, removed once. */
    w->wd2 = wd == w->wd ? -1 : wd;
    return 0;
}

void cachelock__watch_stop(struct cachelock__watch *w)
{
    if (w->fd < 0)
        return;
    if (w->epoch != cachelock__os_process_epoch()) {
        /* A forked child's copy of its parent's instance: the watch and
         * the queue are the parent's (shared); only close our copy. */
        close_checked(w);
        w->fd = -1;
        return;
    }
    /* The wait may have lasted several calls: the descriptor must still be
     * our instance before its watch is removed and its queue read.  Only
     * an instance left empty and without our watch is kept (an idle one
     * with events is taken for the program's by the next wait, and would
     * be abandoned, never closed). */
    int is = cachelock__os_notify_is(w->fd, &w->fd_id, 0);
    if (is == 1) {
        int rc = cachelock__os_notify_remove(w->fd, w->wd);  /* -EINVAL: gone already */
        if (w->wd2 >= 0) {
            int rc2 = cachelock__os_notify_remove(w->fd, w->wd2);
            if (rc == 0 || rc == -EINVAL)
                rc = rc2;
        }
        cachelock__os_notify_drain(w->fd);
        w->wd = w->wd2 = -1;
        if ((rc == 0 || rc == -EINVAL) && cachelock__os_notify_is(w->fd, &w->fd_id, 1) == 1)
            instance_give_back(w);
        else
            cachelock__os_close(w->fd);
    } else if (is < 0) {
        cachelock__os_close(w->fd);
    }
    w->fd = -1;
}

int cachelock__watchers_close_all(void)
{
    struct cachelock__watch v[POOL_MAX];
    int n = 0;
    int t = cachelock__tables_lock();
    while (pool_n > 0)
        v[n++] = pool[--pool_n];
    cachelock__tables_unlock(t);
    for (int i = 0; i < n; i++)
        close_checked(&v[i]);
    return n;
}
