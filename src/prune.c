/*
 * prune.c - removing lock files that nobody holds, without ever breaking
 * mutual exclusion among users of this library.
 *
 *   for each {name}.lock in .locks/:
 *       try the exclusive lock, never waiting ──busy──> skip (BUSY)
 *            │ held (path checked: it names the file we hold)
 *            v
 *       younger than the threshold? ──yes──> release, skip (RECENT)
 *            │ no
 *            v
 *       rename to a private name, unlink it if it is still our file,
 *       while holding ──> release (REMOVED)
 *
 * Why this is safe: a waiter blocked on the old file is granted its lock
 * after we release, finds (path check) that the path no longer names
 * that file, and starts again on a new one; every holder of this library
 * therefore holds the lock of the file the path names, and there is only
 * one such file at a time.  The Rust original's cleanup unlinks files by
 * age without taking the lock, so two processes can hold "the same" lock.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static int prune_one(const char *cache_dir, const char *source, long older_than_ms,
                     unsigned flags, cachelock_prune_fn report, void *ctx)
{
    struct cachelock__attempt a;
    struct cachelock__handle *h;
    cachelock_t *token;
    int rc, removed = 0;
    cachelock_prune_status_t status = CACHELOCK_PRUNE_REMOVED;

    rc = cachelock__path_build(&a.path, cache_dir, source, CACHELOCK_F_ANYNAME);
    if (rc < 0)
        goto report;
    a.mode = CACHELOCK_EXCLUSIVE;
    a.flags = CACHELOCK_F_NOCREATE | CACHELOCK_F_UNOWNED | CACHELOCK_F_ANYNAME | ATTEMPT_PLAIN;
    cachelock__attempt_init(&a);
    rc = cachelock__attempt_try(&a, 0, &token);
    cachelock__attempt_done(&a);
    if (rc == -EWOULDBLOCK) {
        status = CACHELOCK_PRUNE_BUSY;
        goto report;
    }
    if (rc == -ENOENT) {    /* pruned by someone else meanwhile */
        cachelock__path_free(&a.path);
        return 0;
    }
    if (rc < 0)
        goto report;
    /* Take the handle back from the table: it never reaches a caller. */
    int ours;
    h = cachelock__handle_unpublish(token, &ours);
    if (!h) {   /* cannot happen: we were just given the token */
        rc = cachelock__failf(-EINVAL, "cannot prune '%s': lost the lock", a.path.buf);
        goto report;
    }

    /* Fair mode's waiters queue without holding the flock(2) lock (fair.c):
     * a source with a queue is in use, whether the lock is free this
     * instant or not. */
    rc = h->flags & H_LOCAL ? cachelock__fair_queued(h->fd) : 0;
    if (rc == -ENOTSUP)
        rc = 0;     /* no queue can exist without OFD locks */
    if (rc != 0) {
        if (rc == 1)
            status = CACHELOCK_PRUNE_BUSY;
        else
            cachelock__fail(rc, "check the queue of lock file", a.path.buf);
        cachelock__attempt_ungrant(h);
        goto report;
    }
    int64_t age = older_than_ms > 0 ? cachelock__os_age_ms(h->fd) : 0;
    if (age < 0) {
        /* Its age unknown, it is not removed. */
        rc = cachelock__fail((int)age, "read the age of lock file", a.path.buf);
    } else if (age < older_than_ms) {
        status = CACHELOCK_PRUNE_RECENT;
    } else if (!(flags & CACHELOCK_PRUNE_DRY_RUN)) {
        /* Removed while we hold it exclusively, and only if the name is
         * still our file (see os_remove_held). */
        rc = cachelock__os_remove_held(&a.path, h->fd, &h->id);
        if (rc == 1)
            status = CACHELOCK_PRUNE_BUSY;      /* replaced meanwhile: not ours; or
                                                   (Windows) open in a program that
                                                   does not let it be deleted */
        else if (rc == 0)
            removed = 1;
    } else {
        removed = 1;
    }
    cachelock__attempt_ungrant(h);
report:
    if (rc < 0 && status != CACHELOCK_PRUNE_BUSY)
        status = CACHELOCK_PRUNE_FAILED;
    if (report)
        report(source, status, status == CACHELOCK_PRUNE_BUSY ? -EWOULDBLOCK : rc < 0 ? rc : 0,
               ctx);
    cachelock__path_free(&a.path);
    return removed;
}

/* A sidecar whose lock file is gone (pruned just now, or earlier, or
 * removed by hand): nobody can be queued without the lock file, so it
 * goes, the same careful way (renamed away, removed only if it is the file
 * looked at).  It holds only a hint: a fair user that still has it open
 * writes to a file that is gone, and the next one makes a new sidecar.
 * Neither counted nor reported: it is not a source. */
static void prune_orphan(const char *cache_dir, const char *name)
{
    struct cachelock__path p;
    struct cachelock__fileid id, side;
    if (cachelock__path_build(&p, cache_dir, name, CACHELOCK_F_ANYNAME) < 0)
        return;
    if (cachelock__os_stat_quiet(p.buf, &id) == -ENOENT &&
        cachelock__os_sidecar_id(&p, &side) == 0)
        cachelock__os_sidecar_remove(&p, &side);
    cachelock__path_free(&p);
}

static int prune(const char *cache_dir, long older_than_ms, unsigned flags,
                 cachelock_prune_fn report, void *ctx)
{
    char **names, **sidecars;
    size_t n, ns;
    int rc, removed = 0;

    if (older_than_ms < 0)
        return cachelock__failf(-EINVAL, "invalid argument: older_than_ms %ld is negative",
                                older_than_ms);
    if (flags & ~CACHELOCK_PRUNE_DRY_RUN)
        return cachelock__failf(-EINVAL, "invalid argument: unknown prune flags 0x%x",
                                flags & ~CACHELOCK_PRUNE_DRY_RUN);
    rc = cachelock__sources_and_sidecars(cache_dir, &names, &n, &sidecars, &ns);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        removed += prune_one(cache_dir, names[i], older_than_ms, flags, report, ctx);
    for (size_t i = 0; i < ns && !(flags & CACHELOCK_PRUNE_DRY_RUN); i++)
        prune_orphan(cache_dir, sidecars[i]);
    cachelock_sources_free(sidecars, ns);
    cachelock_sources_free(names, n);
    return removed;
}

int cachelock_prune(const char *cache_dir, long older_than_ms, unsigned flags,
                    cachelock_prune_fn report, void *ctx)
{
    int old = cachelock__cancel_off();
    int rc = prune(cache_dir, older_than_ms, flags, report, ctx);
    cachelock__cancel_restore(old);
    return rc;
}
