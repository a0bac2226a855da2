/*
 * fair.c - fair mode: users of a source are granted its lock in the order
 * they joined its queue (first in, first out), on top of the flock(2) lock
 * that still excludes everyone.
 *
 * The kernel's flock(2) is not FIFO: a releaser that asks again usually
 * takes the lock straight back, and one process can run thousands of times
 * in a row while others wait (README.md, "Fair mode").  Fair mode puts a
 * queue in front of flock(2), made of OFD byte-range locks on the lock file
 * itself (src/unix/queue.c says why those): nothing in memory shared
 * between processes, nothing that a crash can leave behind.
 *
 * The queue, on the lock file (offsets far beyond the data, see internal.h):
 *
 *   Q_ALL + t       a write lock: waiter t's place.  Every fair waiter has
 *                   one; t is its ticket.
 *   Q_WRITERS + t   a write lock: the same, for exclusive waiters only.
 *   Q_MUTEX         a write lock, held while a waiter joins (a few system
 *                   calls that never wait).
 *
 * and beside it, in .locks/{source}.fifo (the sidecar), a HINT of the next
 * ticket and of the last exclusive waiter's ticket.  The hint is only a
 * hint: whatever it says (a sidecar removed, truncated, full of garbage),
 * the order comes from the locks.
 *
 *   fast path: anyone queued (one F_OFD_GETLK)? ──no──> flock(LOCK_NB)
 *        │ yes                     busy │          granted │
 *        v<─────────────────────────────┘                  v
 *   join: take Q_MUTEX (waiting for it, or not in a step)   held (no place
 *         t = the hint, moved past every place at or        in the queue
 *         above it (F_OFD_GETLK), take Q_ALL + t            was taken)
 *         (and Q_WRITERS + t), write the hint, drop Q_MUTEX
 *        │
 *        v
 *   wait: an exclusive waiter for every place below t, a shared one for
 *         every exclusive place below t (readers queued back to back
 *         share; a writer is never overtaken by later readers): a blocking
 *         wait sleeps in F_OFD_SETLKW on that place (read lock: only the
 *         place's owner can hold it up), a step returns "not yet"
 *        │ none left: the head of the queue
 *        v
 *   flock(2), waiting as the wait does (the head waits in the kernel
 *   while the holder works; the release wakes it directly)
 *        │ granted
 *        v
 *   give up the place (one unlock of the whole queue range), so the next
 *   waiter moves up to the head while we hold the lock
 *
 * Why this is FIFO: places are taken under Q_MUTEX, and a new place is
 * above every place that exists when it is taken (the hint is checked
 * against the locks).  So among waiters that are queued at the same time,
 * the ticket order is the order in which they joined, and a waiter takes
 * flock(2) only when no earlier place is left.  Fair users that find
 * someone queued never try flock(2) first: they join.  Users of the lock
 * that are not fair (this library without fair mode, flock(1), the Rust
 * original, Python's filelock) still exclude and are excluded, but take
 * flock(2) whenever it is free: they can barge in front of the queue.
 *
 * Why nothing can wait forever: a process waits for Q_MUTEX (whose holder
 * waits for nothing), for a smaller ticket (whose owner waits only for
 * smaller tickets or for flock(2)), or, at the head, for flock(2) (whose
 * holder is granted and waits for nothing of this queue).  These edges
 * always point to a smaller ticket or out of the queue: no cycle, which
 * matters because OFD locks never report EDEADLK.  The same thread
 * waiting for a lock it holds is refused before it joins (-EDEADLK, as
 * without fair mode), and a thread that already holds the source shared
 * takes another shared hold without queueing (it would otherwise wait
 * behind a writer that waits for it).
 *
 * Why a crash never stalls the queue: every lock of the queue belongs to
 * the open file description of the lock file, and the kernel drops them
 * when the process dies (or, for a timed wait that gives up, when it
 * closes the descriptor).  The waiter behind wakes, finds the place gone,
 * and looks again.  (A child forked without exec(2) that keeps a copy of
 * the descriptor keeps the place, exactly as it keeps a flock(2) lock.)
 *
 * Timed and asynchronous waits never block: they join with a
 * non-blocking Q_MUTEX (a step that finds it taken says "not yet"), check
 * the places below theirs with F_OFD_GETLK, and wake through inotify: a
 * place given up by a timed wait or a death closes the lock file, the end
 * of a join writes the hint just before Q_MUTEX is released (so the
 * sidecar is watched too), and a holder's release closes the lock file
 * because the waiter marked it (wait.c, pool.c).  A place given up at a
 * grant wakes nobody timed: the lock is held then, and its release will.
 * The re-check timer of every timed wait (wait.c) covers the rest.  Giving
 * up is closing the descriptor: nothing is left behind.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* Why fair mode is refused when the queue's locks are missing: one
 * message for every system (Linux before 3.15, the BSDs and macOS, Windows,
 * whose lock covers the whole file). */
#define NO_QUEUE "fair mode needs open file description locks (F_OFD_SETLK, Linux 3.15 and " \
                 "later), which this system does not have"

int64_t cachelock__policy_recheck_us = 1000000;

/* ---- the policy -------------------------------------------------------- */

/* What was read of a few caches' policy markers, by the hash of the
 * .locks path (no copy of it: a collision costs a second of the wrong
 * policy, a wait order, never exclusion).  Guarded by the tables mutex. */
#define POLICIES 8
static struct policy {
    uint64_t hash;
    size_t len;
    int fair;
    int64_t until;
} policies[POLICIES];
static unsigned policies_next;

static int policy_of(struct cachelock__path *p, int64_t now, int64_t *until)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len);
    int fair = -1, t;

    /* A relative cache path names another directory after chdir(2): read
     * the marker every time, as such paths are opened every time. */
    if (p->buf[0] != '/') {
        *until = now;
        return cachelock__os_policy_read(p);
    }
    t = cachelock__tables_lock();
    for (unsigned i = 0; i < POLICIES; i++) {
        if (policies[i].until > now && policies[i].hash == hash &&
            policies[i].len == p->locks_len) {
            fair = policies[i].fair;
            *until = policies[i].until;
            break;
        }
    }
    cachelock__tables_unlock(t);
    if (fair >= 0)
        return fair;
    fair = cachelock__os_policy_read(p);
    *until = now + cachelock__policy_recheck_us;
    if (*until < now)
        *until = INT64_MAX;
    t = cachelock__tables_lock();
    struct policy *e = &policies[policies_next++ % POLICIES];
    e->hash = hash;
    e->len = p->locks_len;
    e->fair = fair;
    e->until = *until;
    cachelock__tables_unlock(t);
    return fair;
}

int cachelock__fair_wanted(struct cachelock__attempt *a, struct cachelock__handle *h)
{
    if (a->flags & CACHELOCK_F_FAIR)
        return 1;
    if (a->flags & ATTEMPT_PLAIN)
        return 0;
    int64_t now = cachelock__os_now_us();
    if (h->policy_until_us > now)
        return (h->flags & H_POLICY) != 0;
    int64_t until;
    if (policy_of(&a->path, now, &until))
        h->flags |= H_POLICY;
    else
        h->flags &= (unsigned short)~H_POLICY;
    h->policy_until_us = until;
    return (h->flags & H_POLICY) != 0;
}

static int policy(const char *cache_dir, int set, int on)
{
    struct cachelock__path p;
    int rc;
    /* Any valid name will do: the marker is in .locks beside lock files. */
    rc = cachelock__path_build(&p, cache_dir, "x", 0);
    if (rc < 0)
        return rc;
    if (set && on && !cachelock__os_has_queue()) {
        rc = cachelock__failf(-ENOTSUP, "cannot make '%.*s' fair: " NO_QUEUE, (int)p.dir_len,
                              p.buf);
    } else if (set) {
        rc = cachelock__os_policy_write(&p, on);
        /* This process sees its own change at once. */
        int t = cachelock__tables_lock();
        for (unsigned i = 0; i < POLICIES; i++)
            policies[i].until = 0;
        cachelock__tables_unlock(t);
    } else {
        rc = cachelock__os_policy_read(&p);
    }
    cachelock__path_free(&p);
    return rc;
}

int cachelock_fair_policy(const char *cache_dir)
{
    int old = cachelock__cancel_off();
    int rc = policy(cache_dir, 0, 0);
    cachelock__cancel_restore(old);
    return rc;
}

int cachelock_set_fair_policy(const char *cache_dir, int on)
{
    int old = cachelock__cancel_off();
    int rc = policy(cache_dir, 1, on != 0);
    cachelock__cancel_restore(old);
    return rc;
}

/* ---- the sidecar: a hint ---------------------------------------------------- */

void cachelock__sidecar_close(struct cachelock__handle *h)
{
    if (h->sfd >= 0 && cachelock__fd_is(h->sfd, &h->sid) != 0)
        cachelock__os_close(h->sfd);
    h->sfd = -1;
}

/* h->sfd open and still ours, or -1 (fair mode works without it, only
 * slower: see the hint). */
static int sidecar(struct cachelock__attempt *a, struct cachelock__handle *h)
{
    if (h->sfd >= 0) {
        int rc = cachelock__fd_is(h->sfd, &h->sid);
        if (rc == 1)
            return h->sfd;
        if (rc < 0)
            cachelock__os_close(h->sfd);
        h->sfd = -1;    /* closed (and maybe reused) by the program */
    }
    if (cachelock__os_sidecar_open(&a->path, &h->sfd, &h->sid) < 0)
        h->sfd = -1;
    return h->sfd;
}

/* The hint: the next ticket, and the last exclusive waiter's ticket + 1
 * (0: none), little-endian. */
#define HINT_SIZE 16

static uint64_t get64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | b[i];
    return v;
}

static void put64(unsigned char *b, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        b[i] = (unsigned char)v;
}

/* ---- the queue ------------------------------------------------------------- */

static int fail_queue(int rc, struct cachelock__attempt *a)
{
    if (rc == -ENOTSUP)
        return cachelock__failf(-ENOTSUP, "cannot lock '%s' in fair mode: " NO_QUEUE,
                                a->path.buf);
    return cachelock__fail(rc, "queue for lock", a->path.buf);
}

/* Fair mode needs the local kernel's byte-range locks and a lock file it
 * may write-lock; never run unfair where it cannot. */
static int usable(struct cachelock__attempt *a, struct cachelock__handle *h)
{
    if (!cachelock__os_has_queue())
        return fail_queue(-ENOTSUP, a);
    if (!(h->flags & H_LOCAL))
        return cachelock__failf(-ENOTSUP, "cannot lock '%s' in fair mode: fair mode needs a "
                                "local filesystem, and this one is %s (where flock(2) may "
                                "itself be a byte-range lock)", a->path.buf,
                                h->fs == CACHELOCK_FS_UNKNOWN ? "of unknown kind"
                                                              : cachelock_fs_name(h->fs));
    if (!(h->flags & H_WCHECKED)) {
        int rc = cachelock__os_fd_writable(h->fd);
        if (rc < 0)
            return cachelock__fail(rc, "check lock file", a->path.buf);
        h->flags |= (unsigned short)(H_WCHECKED | (rc ? H_WRITABLE : 0));
    }
    if (!(h->flags & H_WRITABLE))
        return cachelock__failf(-ENOTSUP, "cannot lock '%s' in fair mode: fair mode needs "
                                "write access to the lock file (a read-only cache, or a file "
                                "of another user that this one may only read)", a->path.buf);
    return 0;
}

/* Take a place: Q_ALL + t (and Q_WRITERS + t for an exclusive waiter), t
 * above every place there is, under Q_MUTEX.  0, -EWOULDBLOCK (!block:
 * someone else is joining right now), or an error with the message set. */
static int join(struct cachelock__attempt *a, struct cachelock__handle *h, int block)
{
    const int writer = a->mode == CACHELOCK_EXCLUSIVE;
    unsigned char hint[HINT_SIZE];
    int fd = h->fd, sfd, rc;
    int64_t at;

    sfd = sidecar(a, h);
    rc = cachelock__os_range_lock(fd, 'w', Q_MUTEX, 1, block);
    if (rc == -EWOULDBLOCK)
        return cachelock__failf(rc, "cannot lock '%s': another waiter is joining the queue",
                                a->path.buf);
    if (rc < 0)
        return rc == -EINTR ? cachelock__fail(rc, "wait for lock", a->path.buf)
                            : fail_queue(rc, a);

    memset(hint, 0, sizeof hint);
    if (sfd >= 0 && cachelock__os_pread(sfd, hint, sizeof hint, 0) != (long)sizeof hint)
        memset(hint, 0, sizeof hint);
    uint64_t t = get64(hint), last_writer = get64(hint + 8);
    if (t >= Q_TICKETS)
        t = 0;
    for (;;) {
        /* Above every place there is: the hint may be stale (a sidecar
         * removed or truncated) or wrong; the locks are the truth. */
        rc = cachelock__os_range_test(fd, Q_ALL + (int64_t)t, (int64_t)(Q_TICKETS - t), &at);
        if (rc == 1) {
            t = (uint64_t)(at - Q_ALL) + 1;
            if (t < Q_TICKETS)
                continue;
            rc = -EOVERFLOW;
        }
        if (rc < 0)
            goto undo;
        /* A place below every other place may still carry a read lock of
         * a waiter that waited for it: then the next one. */
        rc = cachelock__os_range_lock(fd, 'w', Q_ALL + (int64_t)t, 1, 0);
        if (rc == 0 && writer) {
            rc = cachelock__os_range_lock(fd, 'w', Q_WRITERS + (int64_t)t, 1, 0);
            if (rc < 0)
                cachelock__os_range_lock(fd, 'u', Q_ALL + (int64_t)t, 1, 0);
        }
        if (rc == -EWOULDBLOCK && ++t < Q_TICKETS)
            continue;
        if (rc < 0)
            goto undo;
        break;
    }
    h->ticket = t;
    if (writer)
        h->wait_hint = t > 0 ? t - 1 : Q_NONE;
    else
        h->wait_hint = last_writer > 0 && last_writer <= t ? last_writer - 1 : Q_NONE;
    if (sfd >= 0) {
        put64(hint, t + 1);
        put64(hint + 8, writer ? t + 1 : last_writer <= t ? last_writer : 0);
        /* Also what wakes timed waiters that wait for Q_MUTEX (inotify). */
        cachelock__os_pwrite(sfd, hint, sizeof hint, 0);
    }
    h->flags |= H_QUEUED;
    rc = cachelock__os_range_lock(fd, 'u', Q_MUTEX, 1, 0);
    if (rc < 0)     /* only closing the descriptor drops it now */
        return fail_queue(rc, a);
    return 0;
undo:
    cachelock__os_range_lock(fd, 'u', Q_ALL, Q_SPAN, 0);
    return fail_queue(rc, a);
}

/* The first place below ours that we must wait for: 1 with *at, or 0. */
static int blocker(struct cachelock__attempt *a, struct cachelock__handle *h, int block,
                   int64_t *at)
{
    const int64_t base = a->mode == CACHELOCK_EXCLUSIVE ? Q_ALL : Q_WRITERS;
    uint64_t hint = h->wait_hint;
    h->wait_hint = Q_NONE;
    if (hint != Q_NONE && block) {
        /* The waiter just ahead (for a shared one: the last exclusive
         * one), as the hint said when we joined: a blocking wait sleeps on
         * it without a look-up (a place given up meanwhile is granted at
         * once), then looks. */
        *at = base + (int64_t)hint;
        return 1;
    }
    if (h->ticket == 0)
        return 0;       /* [base, base + 0) would mean "to the end" */
    int rc = cachelock__os_range_test(h->fd, base, (int64_t)h->ticket, at);
    return rc < 0 ? fail_queue(rc, a) : rc;
}

/* Granted: give up the place (and the read locks on places waited for),
 * so that the next waiter becomes the head while we hold the lock.  A
 * blocking one is woken by the kernel; a timed or asynchronous one need
 * not be: as the head it waits for the lock, and our release tells it
 * (it marked the file, so the release closes, which its watch sees). */
static void leave(struct cachelock__handle *h)
{
    if (cachelock__os_range_lock(h->fd, 'u', Q_ALL, Q_SPAN, 0) < 0)
        h->flags |= H_NOKEEP;   /* the release closes: that drops them */
    h->flags &= (unsigned short)~H_QUEUED;
    h->flags |= H_HANDOFF;
}

int cachelock__fair_queued(int fd)
{
    int64_t at;
    return cachelock__os_range_test(fd, Q_ALL, Q_SPAN, &at);
}

int cachelock__fair_lock(struct cachelock__attempt *a, struct cachelock__handle *h, int block)
{
    int64_t at;
    int rc = usable(a, h);
    if (rc < 0)
        return rc;
    if (!(h->flags & H_QUEUED)) {
        /* One look at the whole queue, places and the enqueue mutex: a
         * waiter that is joining right now is ahead of us too. */
        rc = cachelock__fair_queued(h->fd);
        if (rc < 0)
            return fail_queue(rc, a);
        if (rc == 0) {
            /* Nobody queued: the lock is ours if it is free. */
            rc = cachelock__os_lock(h->fd, a->mode, 0);
            if (rc != -EWOULDBLOCK)
                return rc < 0 ? cachelock__fail(rc, "lock", a->path.buf) : 0;
        }
        /* A thread that holds the source shared already must not queue
         * behind a writer that waits for that very hold. */
        if (a->mode == CACHELOCK_SHARED && cachelock__registry_owns(&h->id, CACHELOCK_SHARED)) {
            rc = cachelock__os_lock(h->fd, a->mode, 0);
            if (rc == 0)
                return 0;
            if (rc != -EWOULDBLOCK)
                return cachelock__fail(rc, "lock", a->path.buf);
        }
        if (!block && !a->step)
            return cachelock__failf(-EWOULDBLOCK, "cannot lock '%s': held by another owner, "
                                    "or others are queued for it (fair mode)", a->path.buf);
        if (block) {
            rc = cachelock__registry_check(&h->id, a->mode);
            if (rc < 0)
                return cachelock__failf(rc, "cannot lock '%s': this thread already holds it "
                                        "(would deadlock)", a->path.buf);
        }
        rc = join(a, h, block);
        if (rc < 0)
            return rc;
    }
    for (;;) {
        rc = blocker(a, h, block, &at);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            if (!block)
                return cachelock__failf(-EWOULDBLOCK, "cannot lock '%s': queued behind "
                                        "others (fair mode)", a->path.buf);
            /* Sleep until that place is given up: a read lock on it, which
             * only its owner's write lock can hold up. */
            rc = cachelock__os_range_lock(h->fd, 'r', at, 1, 1);
            if (rc < 0)
                return rc == -EINTR ? cachelock__fail(rc, "wait for lock", a->path.buf)
                                    : fail_queue(rc, a);
            continue;
        }
        /* The head of the queue: wait for the holder, in the kernel when
         * blocking. */
        rc = cachelock__os_lock(h->fd, a->mode, block);
        if (rc == -EWOULDBLOCK)
            return cachelock__failf(rc, "cannot lock '%s': held by another owner",
                                    a->path.buf);
        if (rc < 0)
            return cachelock__fail(rc, rc == -EINTR ? "wait for lock" : "lock", a->path.buf);
        break;
    }
    leave(h);
    return 0;
}
