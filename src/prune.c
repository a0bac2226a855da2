/*
 * prune.c - removing lock files that nobody holds, without ever breaking
 * mutual exclusion among users of this library.
 *
 *   for each {name}.lock in .locks/:
 *       try the exclusive lock, never waiting ──busy──> skip (BUSY)
 *            │ held (identity checked: the path names the file we hold)
 *            v
 *       younger than the threshold? ──yes──> release, skip (RECENT)
 *            │ no
 *            v
 *       unlink while holding ──> release (REMOVED)
 *
 * Why this is safe: a waiter blocked on the old file is granted its lock
 * after we release, finds (identity check) that the path no longer names
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
    cachelock_t *lock;
    int rc;

    rc = cachelock__path_build(&a.path, cache_dir, source);
    if (rc < 0)
        goto failed;
    a.mode = CACHELOCK_EXCLUSIVE;
    a.flags = CACHELOCK_F_NOCREATE;
    cachelock__attempt_init(&a);
    rc = cachelock__attempt_try(&a, 0, &lock);
    cachelock__attempt_done(&a);
    if (rc == -EWOULDBLOCK || rc == -EDEADLK) {
        if (report)
            report(source, CACHELOCK_PRUNE_BUSY, rc, ctx);
        return 0;
    }
    if (rc == -ENOENT)      /* pruned by someone else meanwhile */
        return 0;
    if (rc < 0)
        goto failed;

    int64_t age = cachelock__os_age_ms(lock->fd);
    if (age >= 0 && age < older_than_ms) {
        cachelock_release(lock);
        if (report)
            report(source, CACHELOCK_PRUNE_RECENT, 0, ctx);
        return 0;
    }
    rc = (flags & CACHELOCK_PRUNE_DRY_RUN) ? 0 : cachelock__os_unlink(&a.path);
    if (!(flags & CACHELOCK_PRUNE_DRY_RUN))
        lock->flags |= H_NOKEEP;    /* unlinked (or maybe): never reuse */
    cachelock_release(lock);
    if (rc < 0)
        goto failed;
    if (report)
        report(source, CACHELOCK_PRUNE_REMOVED, 0, ctx);
    return 1;

failed:
    if (report)
        report(source, CACHELOCK_PRUNE_FAILED, rc, ctx);
    return 0;
}

int cachelock_prune(const char *cache_dir, long older_than_ms, unsigned flags,
                    cachelock_prune_fn report, void *ctx)
{
    char **names;
    size_t n;
    int rc, removed = 0;

    if (older_than_ms < 0)
        return cachelock__failf(-EINVAL, "invalid argument: older_than_ms %ld is negative",
                                older_than_ms);
    if (flags & ~CACHELOCK_PRUNE_DRY_RUN)
        return cachelock__failf(-EINVAL, "invalid argument: unknown prune flags 0x%x",
                                flags & ~CACHELOCK_PRUNE_DRY_RUN);
    rc = cachelock_sources(cache_dir, &names, &n);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        removed += prune_one(cache_dir, names[i], older_than_ms, flags, report, ctx);
    cachelock_sources_free(names, n);
    return removed;
}
