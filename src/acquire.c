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
    a->h = NULL;
    a->created_from = 0;
    a->hash = cachelock__path_hash(a->path.buf, a->path.len);
}

void cachelock__attempt_done(struct cachelock__attempt *a)
{
    /* Never granted, so unlocked: it may be kept for later (pool_put
     * closes it instead when it carries a waiter mark or H_NOKEEP). */
    if (a->h)
        cachelock__pool_put(a->h);
    a->h = NULL;
}

/* Give a->h an open lock file: an idle one from the pool, or a new one.
 * A new one is opened with one open(2) when .locks is known good, else
 * the long way (os_open), which creates what is missing and explains
 * failures. */
static int open_handle(struct cachelock__attempt *a)
{
    const int nocreate = (a->flags & CACHELOCK_F_NOCREATE) != 0;
    cachelock_t *h;
    int local, rc;

    /* Only absolute paths are kept or trusted: a relative one names another
     * file after chdir(2). */
    const int absolute = a->path.buf[0] == '/';
    h = absolute ? cachelock__pool_take(a->path.buf, a->path.len, a->hash) : NULL;
    if (h) {
        a->h = h;
        return 0;
    }
    h = cachelock__sys.malloc(sizeof *h + a->path.len + 1);
    if (!h)
        return cachelock__fail(-ENOMEM, "allocate a handle for lock file", a->path.buf);
    memcpy(h->path, a->path.buf, a->path.len + 1);
    h->path_len = (unsigned short)a->path.len;
    h->hash = a->hash;
    h->flags = 0;
    h->fd = -1;
    if (absolute && cachelock__dir_known(&a->path, &local)) {
        h->fd = cachelock__os_open_known(&a->path, nocreate);
        if (h->fd < 0 && h->fd != -EAGAIN) {
            rc = h->fd;
            free(h);
            return cachelock__fail(rc, "open lock file", a->path.buf);
        }
    }
    if (h->fd < 0) {
        rc = cachelock__os_open(&a->path, nocreate, &h->fd, &h->id, &local, &a->created_from);
        if (rc < 0) {
            free(h);
            return rc;
        }
        h->flags = H_ID_KNOWN;
        if (absolute)
            cachelock__dir_remember(&a->path, local);
    }
    /* else: the identity is read after the grant, by os_check_granted */
    if (local)
        h->flags |= absolute ? H_LOCAL | H_POOLABLE : H_LOCAL;
    h->checked_ms = cachelock__os_now_coarse_ms();
    h->fork_gen = cachelock__fork_generation();
    a->h = h;
    return 0;
}

/* open_handle, but when the process is out of descriptors, give back the
 * ones kept for reuse first: a program near its RLIMIT_NOFILE must not
 * fail because of what this library keeps. */
static int open_handle_or_make_room(struct cachelock__attempt *a)
{
    int rc = open_handle(a);
    if ((rc == -EMFILE || rc == -ENFILE) && cachelock_close_idle() > 0)
        rc = open_handle(a);
    return rc;
}

int cachelock__attempt_try(struct cachelock__attempt *a, int block, cachelock_t **out)
{
    cachelock_t *h;
    int rc;

    *out = NULL;
    for (int reopens = 0;; reopens++) {
        if (reopens > MAX_REOPENS)
            return cachelock__failf(-EAGAIN, "cannot lock '%s': the file keeps being replaced",
                                    a->path.buf);
        if (!a->h) {
            rc = open_handle_or_make_room(a);
            if (rc < 0)
                return rc;
        }
        h = a->h;
        if (!h)     /* cannot happen: open_handle sets it or fails */
            return cachelock__failf(-EINVAL, "cannot lock '%s': no lock file", a->path.buf);
        /* Try without waiting first: the uncontended case then costs one
         * call, and only a busy lock pays for the deadlock check. */
        rc = cachelock__os_lock(h->fd, a->mode, 0);
        if (rc == -EWOULDBLOCK) {
            if (!(h->flags & H_ID_KNOWN) && (rc = cachelock__os_read_id(h)) < 0)
                goto close_fd;
            rc = cachelock__registry_check(&h->id, a->mode);
            if (rc < 0) {
                cachelock__fail(rc, "lock", a->path.buf);
                goto close_fd;
            }
            if (!block) {
                a->created_from = 0;    /* someone else uses what we created */
                return cachelock__failf(-EWOULDBLOCK, "cannot lock '%s': held by another owner",
                                        a->path.buf);
            }
            rc = cachelock__os_lock(h->fd, a->mode, 1);
        }
        if (rc < 0) {
            cachelock__fail(rc, rc == -EINTR ? "wait for lock" : "lock", a->path.buf);
            goto close_fd;
        }
        rc = cachelock__os_check_granted(h);
        if (rc == 1)
            break;
        /* Pruned or replaced while we waited: this lock protects nothing. */
        if (rc < 0)
            cachelock__os_undo_create(&a->path, a->created_from);
        cachelock__os_unlock(h->fd);
        h->flags |= H_NOKEEP;
        cachelock__attempt_done(a);
        if (rc < 0)
            return rc;
        a->created_from = 0;
    }

    if (h->flags & H_WAITING) {
        /* Granted: a holder must not look like a waiter to releasers. */
        if (cachelock__os_mark_waiting(h->fd, 0) < 0)
            h->flags |= H_NOKEEP;
        h->flags &= (unsigned short)~H_WAITING;
    }
    a->created_from = 0;
    h->mode = a->mode;
    cachelock__registry_add(h);
    a->h = NULL;     /* now owned by the caller */
    *out = h;
    return 0;

close_fd:
    cachelock__os_undo_create(&a->path, a->created_from);
    a->created_from = 0;
    h->flags |= H_NOKEEP;
    cachelock__attempt_done(a);
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
    /* Unlock explicitly rather than rely on close(2): a forked child may
     * hold a copy of the descriptor, and close alone would leave the lock
     * held by that copy.  A handle inherited from the parent is only
     * closed. */
    int ours = cachelock__registry_remove(lock);
    if (ours < 0) {
        cachelock__failf(-EINVAL, "cannot release lock: not a held lock (released twice?)");
        return;
    }
    if (!ours) {
        cachelock__handle_free(lock);
        return;
    }
    if (cachelock__os_unlock(lock->fd) < 0)
        lock->flags |= H_NOKEEP;
    /* Kept open, the release makes no inotify event; a timed or
     * asynchronous waiter has marked the file, and then we close so that
     * its watch sees the release now rather than at its next re-check. */
    if ((lock->flags & (H_POOLABLE | H_EXPOSED | H_NOKEEP)) == H_POOLABLE &&
        (!cachelock__pool_has_room(lock) || cachelock__os_has_waiters(lock->fd)))
        lock->flags |= H_NOKEEP;
    cachelock__pool_put(lock);
}

int cachelock_fd(const cachelock_t *lock)
{
    if (!lock)
        return -EINVAL;
    /* Handed out, the descriptor may be shared with a child or dup'ed:
     * never reuse it for another acquire. */
    ((cachelock_t *)lock)->flags |= H_EXPOSED;
    return lock->fd;
}

int cachelock_mode(const cachelock_t *lock)
{
    return lock ? (int)lock->mode : -EINVAL;
}
