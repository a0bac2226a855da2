/*
 * acquire.c - taking and releasing a lock: the blocking path and the single
 * attempt that the wait machine (wait.c) repeats.
 *
 * One attempt:
 *
 *   open lock file ──> same thread holds it? ──yes──> -EDEADLK
 *        │                    │ no
 *        │                    v
 *        │               flock(2) ──busy (non-blocking)──> -EWOULDBLOCK, keep fd
 *        │                    │ granted
 *        │                    v
 *        └──<── close ──<── path still names this file? ──yes──> registered, held
 *                  no (pruned or replaced meanwhile)
 *
 * The identity check is what makes pruning (unlink while holding the lock)
 * safe: a waiter that was granted the lock on a file that has since been
 * unlinked would otherwise hold a lock that nobody else can see, while the
 * next process locks a fresh file of the same name.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* A file replaced more often than this while we try is a livelock, not a
 * race; give up with -EAGAIN rather than spin. */
#define MAX_REOPENS 1000

int cachelock__options_check(const cachelock_options_t *opts, cachelock_options_t *out)
{
    static const cachelock_options_t defaults = CACHELOCK_OPTIONS_INIT;
    if (!opts) {
        *out = defaults;
        return 0;
    }
    if (opts->version != 0 && opts->version != CACHELOCK_OPTIONS_VERSION)
        return cachelock__failf(-EINVAL, "invalid options: unknown version %d", opts->version);
    if (opts->mode != CACHELOCK_EXCLUSIVE && opts->mode != CACHELOCK_SHARED)
        return cachelock__failf(-EINVAL, "invalid options: unknown mode %d", (int)opts->mode);
    if (opts->timeout_ms < -1)
        return cachelock__failf(-EINVAL, "invalid options: timeout %ld ms is negative",
                                opts->timeout_ms);
    if (opts->flags & ~CACHELOCK_F_NOCREATE)
        return cachelock__failf(-EINVAL, "invalid options: unknown flags 0x%x",
                                opts->flags & ~CACHELOCK_F_NOCREATE);
    *out = *opts;
    out->version = CACHELOCK_OPTIONS_VERSION;
    return 0;
}

void cachelock__attempt_init(struct cachelock__attempt *a)
{
    a->fd = -1;
    a->created_from = 0;
    a->id.dev = a->id.ino = 0;
}

void cachelock__attempt_done(struct cachelock__attempt *a)
{
    if (a->fd >= 0)
        cachelock__os_close(a->fd);
    a->fd = -1;
}

int cachelock__attempt_try(struct cachelock__attempt *a, int block, cachelock_t **out)
{
    cachelock_t *lock;
    int rc;

    *out = NULL;
    /* Allocate first: failing after the lock is granted would mean
     * unlocking again, and another waiter could see a spurious grant. */
    lock = cachelock__sys.malloc(sizeof *lock);
    if (!lock)
        return cachelock__fail(-ENOMEM, "allocate a handle for lock file", a->path.buf);

    for (int reopens = 0;; reopens++) {
        if (reopens > MAX_REOPENS) {
            rc = cachelock__failf(-EAGAIN, "cannot lock '%s': the file keeps being replaced",
                                  a->path.buf);
            goto fail;
        }
        if (a->fd < 0) {
            rc = cachelock__os_open(&a->path, (a->flags & CACHELOCK_F_NOCREATE) != 0,
                                    &a->fd, &a->id, &a->created_from);
            if (rc < 0)
                goto fail;
        }
        rc = cachelock__registry_check(&a->id, a->mode);
        if (rc < 0) {
            cachelock__fail(rc, "lock", a->path.buf);
            goto close_fd;
        }
        rc = cachelock__os_lock(a->fd, a->mode, block);
        if (rc == -EWOULDBLOCK) {
            a->created_from = 0;    /* someone else uses what we created */
            free(lock);
            return cachelock__failf(rc, "cannot lock '%s': held by another owner", a->path.buf);
        }
        if (rc < 0) {
            cachelock__fail(rc, rc == -EINTR ? "wait for lock" : "lock", a->path.buf);
            goto close_fd;
        }
        rc = cachelock__os_same_file(&a->path, &a->id);
        if (rc == 1)
            break;
        /* Pruned or replaced while we waited: this lock protects nothing. */
        if (rc < 0)
            cachelock__os_undo_create(&a->path, a->created_from);
        cachelock__os_unlock(a->fd);
        cachelock__attempt_done(a);
        if (rc < 0)
            goto fail;
        a->created_from = 0;
    }

    a->created_from = 0;
    lock->fd = a->fd;
    lock->id = a->id;
    lock->mode = a->mode;
    cachelock__registry_add(lock);
    a->fd = -1;     /* now owned by the handle */
    *out = lock;
    return 0;

close_fd:
    cachelock__os_undo_create(&a->path, a->created_from);
    a->created_from = 0;
    cachelock__attempt_done(a);
fail:
    free(lock);
    return rc;
}

int cachelock_acquire_ex(const char *cache_dir, const char *source,
                         const cachelock_options_t *opts, cachelock_t **out)
{
    struct cachelock__attempt a;
    cachelock_options_t o;
    int rc;

    if (!out)
        return cachelock__failf(-EINVAL, "invalid argument: no place to store the lock (out is NULL)");
    *out = NULL;
    rc = cachelock__path_build(&a.path, cache_dir, source);
    if (rc < 0)
        return rc;
    rc = cachelock__options_check(opts, &o);
    if (rc < 0)
        return rc;
    if (o.timeout_ms >= 0)
        return cachelock__wait_acquire(&a.path, &o, out);

    a.mode = o.mode;
    a.flags = o.flags;
    cachelock__attempt_init(&a);
    rc = cachelock__attempt_try(&a, 1, out);
    cachelock__attempt_done(&a);
    return rc;
}

int cachelock_acquire(const char *cache_dir, const char *source, cachelock_t **out)
{
    return cachelock_acquire_ex(cache_dir, source, NULL, out);
}

int cachelock_try_acquire(const char *cache_dir, const char *source, cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = 0;
    return cachelock_acquire_ex(cache_dir, source, &o, out);
}

void cachelock_release(cachelock_t *lock)
{
    if (!lock)
        return;
    /* Unlock explicitly before closing: a forked child may hold a copy of
     * the descriptor, and close(2) alone would leave the lock held by that
     * copy.  A handle inherited from the parent is only closed. */
    int ours = cachelock__registry_remove(lock);
    if (ours < 0) {
        cachelock__failf(-EINVAL, "cannot release lock: not a held lock (released twice?)");
        return;
    }
    if (ours)
        cachelock__os_unlock(lock->fd);
    cachelock__os_close(lock->fd);
    free(lock);
}

int cachelock_fd(const cachelock_t *lock)
{
    return lock ? lock->fd : -EINVAL;
}

int cachelock_mode(const cachelock_t *lock)
{
    return lock ? (int)lock->mode : -EINVAL;
}
