/*
 * acquire.c - taking and releasing a lock: the blocking path and the single
 * attempt that the wait machine (wait.c) repeats.
 *
 * One attempt:
 *
 *   idle descriptor from the pool, or open .locks/{source}.lock afresh
 *        │
 *        v
 *   descriptor still our file? ──no──> forget it (the program's now), reopen
 *        │ yes (always, for a fresh one)
 *        v
 *   flock(2) without waiting ──busy──> try: -EWOULDBLOCK, keep the descriptor
 *        │                     └─────> blocking: the calling thread owns a
 *        │                             conflicting hold? -EDEADLK; else wait
 *        │ granted                     in flock(2)
 *        v
 *   does the path name this file now? ──no──> unlock, close, start again
 *        │ yes
 *        v
 *   held: recorded in the handle table, token to the caller
 *
 * The path check after every grant is what keeps mutual exclusion through
 * pruning (unlink while holding the lock) and renames: a waiter granted
 * the lock of a file that the path no longer names would hold a lock that
 * nobody else can see, while the next process locks the file the path
 * names now.  It is one fstatat(2) of the whole path, with no time window.
 * Only a hold granted BEFORE a rename cannot be protected: no lock can.
 */
#include "internal.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>

/* A file replaced more often than this while we try is a livelock, not a
 * race; give up with -ESTALE rather than spin. */
#define MAX_REOPENS 1000

#define KNOWN_FLAGS (CACHELOCK_F_NOCREATE | CACHELOCK_F_UNOWNED | CACHELOCK_F_ANYNAME | \
                     CACHELOCK_F_LOCAL_ONLY | CACHELOCK_F_FAIR)

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
    if (opts->flags & ~KNOWN_FLAGS)
        return cachelock__failf(-EINVAL, "invalid options: unknown flags 0x%x",
                                opts->flags & ~KNOWN_FLAGS);
    *out = *opts;
    out->version = CACHELOCK_OPTIONS_VERSION;
    return 0;
}

void cachelock__attempt_init(struct cachelock__attempt *a)
{
    a->h = NULL;
    a->fresh = 0;
    a->step = 0;
    a->fair = 0;
    a->hash = cachelock__path_hash(a->path.buf, a->path.len);
}

void cachelock__attempt_done(struct cachelock__attempt *a)
{
    if (!a->h)
        return;
    if (!a->fresh) {
        /* Kept since an earlier call (a wait between steps): the program
         * may have closed it and reused the number; never close that. */
        int rc = cachelock__fd_is(a->h->fd, &a->h->id);
        if (rc == 0)
            a->h->fd = -1;
        else if (rc < 0)
            a->h->flags |= H_NOKEEP;
    }
    /* A place in the fair queue is given up by closing: the kernel drops
     * its locks, the waiters behind it wake (blocking ones in the kernel,
     * timed ones through their inotify watch), and in a forked child only
     * the child's copy goes, never the parent's place. */
    if (a->h->flags & H_QUEUED)
        a->h->flags |= H_NOKEEP;
    /* Never granted, so unlocked: it may be kept for later (pool_put
     * closes it instead when it carries a waiter mark or H_NOKEEP). */
    cachelock__pool_put(a->h);
    a->h = NULL;
}

/* Open the lock file through the kept .locks directory of the cache, if
 * there is one and it is still ours: 1 opened, 0 go the long way, or a
 * negative code. */
static int open_through_kept_dir(struct cachelock__attempt *a, struct cachelock__handle *h,
                                 int *local, int *opened)
{
    struct cachelock__dir d;
    int rc;

    if (!cachelock__dir_take(&a->path, &d))
        return 0;
    rc = cachelock__fd_is(d.fd, &d.id);
    if (rc != 1) {
        if (rc < 0)
            cachelock__os_close(d.fd);
        return 0;       /* closed (and maybe reused) by the program */
    }
    rc = cachelock__os_open_in(d.fd, &a->path, &h->fd, &h->id);
    if (rc >= 0 || rc == -ENOENT) {
        cachelock__dir_put(&a->path, &d);
        *local = d.local;
        *opened = rc;
        return rc >= 0;
    }
    cachelock__os_close(d.fd);
    /* Out of descriptors: the one just closed may be all the long way
     * needs (and it gives back what else is kept if not). */
    if (rc == -EMFILE || rc == -ENFILE)
        return 0;
    return rc;
}

/* Give a->h an open lock file: an idle one from the pool, or a new one. */
static int open_handle(struct cachelock__attempt *a)
{
    const int nocreate = (a->flags & CACHELOCK_F_NOCREATE) != 0;
    struct cachelock__handle *h;
    struct cachelock__dir keep;
    int local = CACHELOCK_FS_UNKNOWN, opened = 0, rc;

    /* Only paths the OS layer may keep: on Unix absolute ones (a relative
     * one names another file after chdir(2)), on Windows none. */
    const int keepable = cachelock__os_may_keep(a->path.buf);
    h = keepable ? cachelock__pool_take(a->path.buf, a->path.len, a->hash) : NULL;
    if (h) {
        a->h = h;
        a->fresh = 0;       /* check the descriptor before locking it */
        return 0;
    }
    h = cachelock__sys.malloc(sizeof *h + a->path.len + 1);
    if (!h)
        return cachelock__fail(-ENOMEM, "allocate a handle for lock file", a->path.buf);
    memcpy(h->path, a->path.buf, a->path.len + 1);
    h->path_len = (unsigned short)a->path.len;
    h->hash = a->hash;
    h->flags = 0;
    h->owner = 0;
    h->sfd = -1;
    h->ticket = 0;
    h->wait_hint = Q_NONE;
    h->policy_until_us = 0;
    rc = keepable ? open_through_kept_dir(a, h, &local, &opened) : 0;
    if (rc == 0) {
        rc = cachelock__os_open(&a->path, nocreate, &h->fd, &h->id, &local,
                                keepable ? &keep : NULL);
        opened = rc;
        /* Like released lock files, directories are kept only on local
         * filesystems (see pool.c): on NFS, FUSE or an unknown one every
         * acquire opens the whole path, as flock(1) does. */
        if (rc >= 0 && keepable && keep.fd >= 0) {
            if (local == CACHELOCK_FS_LOCAL)
                cachelock__dir_put(&a->path, &keep);
            else
                cachelock__os_close(keep.fd);
        }
    }
    if (rc < 0) {
        free(h);
        return rc;
    }
    if ((a->flags & CACHELOCK_F_LOCAL_ONLY) && local != CACHELOCK_FS_LOCAL) {
        cachelock__os_close(h->fd);
        free(h);
        return cachelock__fs_refuse(a->path.buf, local);
    }
    h->fs = (unsigned char)local;
    if (local == CACHELOCK_FS_LOCAL)
        h->flags |= keepable ? H_LOCAL | H_POOLABLE : H_LOCAL;
    /* Opened read-only on a read-only mount: good for shared locks only,
     * and not kept (the mount may be made writable again). */
    if (opened == OPENED_RDONLY_FS)
        h->flags |= H_RDONLY_FS | H_NOKEEP;
    h->epoch = cachelock__os_process_epoch();
    a->h = h;
    a->fresh = 1;
    return 0;
}

/* open_handle, but when the process is out of descriptors, give back the
 * ones kept for reuse first: a program near its RLIMIT_NOFILE must not
 * fail because of what this library keeps. */
static int open_handle_or_make_room(struct cachelock__attempt *a)
{
    int rc = open_handle(a);
    if ((rc == -EMFILE || rc == -ENFILE) &&
        cachelock__pool_close_all() + cachelock__dirs_close_all() +
        cachelock__watchers_close_all() > 0)
        rc = open_handle(a);
    return rc;
}

/* Drop a->h after a failure: its descriptor is closed, never kept. */
static void drop(struct cachelock__attempt *a)
{
    a->h->flags |= H_NOKEEP;
    cachelock__attempt_done(a);
}

void cachelock__attempt_ungrant(struct cachelock__handle *h)
{
    cachelock__os_unlock(h->fd);
    h->flags |= H_NOKEEP;
    cachelock__pool_put(h);
}

int cachelock__attempt_try(struct cachelock__attempt *a, int block, cachelock_t **out)
{
    struct cachelock__handle *h;
    int rc;

    *out = NULL;
    for (int reopens = 0;; reopens++) {
        if (reopens > MAX_REOPENS)
            return cachelock__failf(-ESTALE, "cannot lock '%s': the file was replaced %d times "
                                    "in a row while trying", a->path.buf, MAX_REOPENS);
        if (!a->h) {
            rc = open_handle_or_make_room(a);
            if (rc < 0)
                return rc;
        }
        h = a->h;
        if (!h)     /* cannot happen: open_handle sets it or fails */
            return cachelock__failf(-EINVAL, "cannot lock '%s': no lock file", a->path.buf);
        if (!a->fresh) {
            /* Kept across calls (the pool, or an earlier step of a wait):
             * the program may have closed the descriptor and opened
             * something else under its number.  Never lock that. */
            rc = cachelock__fd_is(h->fd, &h->id);
            if (rc != 1) {
                if (rc == 0)
                    h->fd = -1;     /* not ours to close */
                drop(a);
                continue;
            }
            a->fresh = 1;
        }
        a->fair = cachelock__fair_wanted(a, h);
        if (a->fair) {
            /* Fair mode (fair.c): the queue, then flock(2).  First, so
             * that a read-only cache refuses it as such (-ENOTSUP). */
            rc = cachelock__fair_lock(a, h, block);
            if (rc == -EWOULDBLOCK && !block)
                return rc;  /* the descriptor (and its place) kept */
            if (rc < 0) {
                drop(a);
                return rc;
            }
            goto check;
        }
        if ((h->flags & H_RDONLY_FS) && a->mode == CACHELOCK_EXCLUSIVE) {
            /* flock(2) would grant it (a local kernel does not ask for
             * write access), but a writer on a read-only mount cannot
             * write what it locked, and would shut out the writers that
             * can, elsewhere. */
            rc = cachelock__failf(-EROFS, "cannot lock '%s' exclusively: %s (the cache is on a "
                                  "read-only mount: only shared locks work there)", a->path.buf,
                                  cachelock_strerror(EROFS));
            drop(a);
            return rc;
        }
        /* Try without waiting first: the uncontended case then costs one
         * call, and only a busy lock pays for the deadlock check. */
        rc = cachelock__os_lock(h->fd, a->mode, 0);
        if (rc == -EWOULDBLOCK) {
            if (!block)
                return cachelock__failf(-EWOULDBLOCK, "cannot lock '%s': held by another owner",
                                        a->path.buf);
            /* Only a wait that could never end is refused: this thread
             * itself owns a conflicting hold (tries and timed waits just
             * report busy; another thread may release it). */
            rc = cachelock__registry_check(&h->id, a->mode);
            if (rc < 0) {
                cachelock__failf(rc, "cannot lock '%s': this thread already holds it "
                                 "(would deadlock)", a->path.buf);
                drop(a);
                return rc;
            }
            rc = cachelock__os_lock(h->fd, a->mode, 1);
        }
        if (rc < 0) {
            rc = cachelock__fs_lock_error(rc, a->path.buf, h, a->mode);
            drop(a);
            return rc;
        }
check:
        rc = cachelock__os_path_names(a->path.buf, h->fd, &h->id);
        if (rc == 1)
            break;
        /* Pruned, renamed or replaced: this lock protects nothing.  If
         * .locks or the cache directory moved, the kept directory is the
         * old one: open the whole path again. */
        cachelock__os_unlock(h->fd);
        drop(a);
        cachelock__dir_forget(&a->path);
        if (rc < 0)
            return rc;
    }

    if (h->flags & H_WAITING) {
        /* Granted: a holder must not look like a waiter to releasers. */
        if (cachelock__os_mark_waiting(h->fd, a->mode, 0) < 0)
            h->flags |= H_NOKEEP;
        h->flags &= (unsigned short)~H_WAITING;
    }
    h->mode = a->mode;
    *out = cachelock__handle_publish(h, (a->flags & CACHELOCK_F_UNOWNED) != 0);
    if (!*out) {
        rc = cachelock__fail(-ENOMEM, "record lock", a->path.buf);
        cachelock__os_unlock(h->fd);
        drop(a);
        return rc;
    }
    a->h = NULL;     /* now held by the caller */
    return 0;
}

static int acquire_ex(const char *cache_dir, const char *source,
                      const cachelock_options_t *opts, cachelock_t **out)
{
    struct cachelock__attempt a;
    cachelock_options_t o;
    int rc;

    if (!out)
        return cachelock__failf(-EINVAL, "invalid argument: no place to store the lock (out is NULL)");
    *out = NULL;
    rc = cachelock__options_check(opts, &o);
    if (rc < 0)
        return rc;
    rc = cachelock__path_build(&a.path, cache_dir, source, o.flags);
    if (rc < 0)
        return rc;
    if (o.timeout_ms >= 0) {
        rc = cachelock__wait_acquire(&a.path, &o, out);
    } else {
        a.mode = o.mode;
        a.flags = o.flags;
        cachelock__attempt_init(&a);
        rc = cachelock__attempt_try(&a, 1, out);
        cachelock__attempt_done(&a);
    }
    cachelock__path_free(&a.path);
    return rc;
}

int cachelock_acquire_ex(const char *cache_dir, const char *source,
                         const cachelock_options_t *opts, cachelock_t **out)
{
    int old = cachelock__cancel_off();
    int rc = acquire_ex(cache_dir, source, opts, out);
    cachelock__cancel_restore(old);
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

static int prepare(const char *cache_dir, const char *source, unsigned flags)
{
    struct cachelock__path p;
    struct cachelock__fileid id;
    int fd, local, rc;

    if (flags & ~CACHELOCK_F_ANYNAME)
        return cachelock__failf(-EINVAL, "invalid argument: unknown flags 0x%x",
                                flags & ~CACHELOCK_F_ANYNAME);
    rc = cachelock__path_build(&p, cache_dir, source, flags);
    if (rc < 0)
        return rc;
    rc = cachelock__os_open(&p, 0, &fd, &id, &local, NULL);
    if (rc >= 0) {
        cachelock__os_close(fd);
        rc = 0;
    }
    cachelock__path_free(&p);
    return rc;
}

int cachelock_prepare(const char *cache_dir, const char *source, unsigned flags)
{
    int old = cachelock__cancel_off();
    int rc = prepare(cache_dir, source, flags);
    cachelock__cancel_restore(old);
    return rc;
}

static void release(cachelock_t *lock)
{
    int ours;
    struct cachelock__handle *h;

    if (!lock)
        return;
    h = cachelock__handle_unpublish(lock, &ours);
    if (!h) {
        cachelock__failf(-EINVAL, "cannot release lock: not a held lock (released twice?)");
        return;
    }
    int rc = cachelock__fd_is(h->fd, &h->id);
    if (rc < 0)
        h->flags |= H_NOKEEP;
    if (rc == 0) {
        /* The program closed our descriptor (and the lock went with it,
         * unless a copy lives on) and may have opened something else
         * under its number: neither unlock nor close that. */
        cachelock__failf(-EBADF, "cannot release lock '%s': its descriptor was closed by "
                         "the program; left alone", h->path);
        h->fd = -1;
        cachelock__handle_free(h);
        return;
    }
    if (!ours) {
        /* Inherited across fork(2): the lock is the parent's; closing our
         * copy leaves it held, unlocking would free it. */
        cachelock__handle_free(h);
        return;
    }
    /* Unlock explicitly rather than rely on close(2): a forked child may
     * hold a copy of the descriptor, and close alone would leave the lock
     * held by that copy. */
    if (cachelock__os_unlock(h->fd) < 0)
        h->flags |= H_NOKEEP;
    if (h->flags & H_HANDOFF) {
        /* Granted through the fair queue, so others are likely queued: the
         * unlock has just woken the next one, which the kernel usually
         * puts on this CPU (the waker's), behind us.  Let it run now
         * rather than after whatever the caller does next (measured:
         * 14-16 us later when the caller queues again at once, 3 us with
         * the yield; see README.md, "Fair mode"). */
        h->flags &= (unsigned short)~H_HANDOFF;
        cachelock__os_yield();
    }
    /* Kept open, the release makes no inotify event; a timed or
     * asynchronous waiter has marked the file, and then we close so that
     * its watch sees the release now rather than at its next re-check. */
    if ((h->flags & (H_POOLABLE | H_EXPOSED | H_NOKEEP)) == H_POOLABLE &&
        (!cachelock__pool_has_room(h) || cachelock__os_has_waiters(h->fd)))
        h->flags |= H_NOKEEP;
    cachelock__pool_put(h);
}

void cachelock_release(cachelock_t *lock)
{
    int old = cachelock__cancel_off();
    release(lock);
    cachelock__cancel_restore(old);
}
