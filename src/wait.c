/*
 * wait.c - the wait machine behind timed, try and asynchronous acquires.
 *
 *            start
 *              │
 *              v
 *   ┌──────> TRY: non-blocking flock(2) ───granted──> DONE (lock handed out)
 *   │          │ busy                  └──error────> FAILED (code kept)
 *   │          v
 *   │    timeout 0? ──yes──> FAILED -EWOULDBLOCK
 *   │    deadline passed? ──yes──> FAILED -ETIMEDOUT
 *   │    no watch yet? ──> add inotify watch, then TRY again at once
 *   │          │            (a release between the try and the watch would
 *   │          v             otherwise go unseen)
 *   │       WAITING: caller polls the watch fd, at most until the re-check
 *   │          │     timer (1 ms doubling to CACHELOCK_RECHECK_MAX_MS) or
 *   └──────────┘     the deadline, then steps again
 *
 * In fair mode (fair.c) a TRY is a step of the queue instead: the first
 * one joins it without waiting, later ones look at the places ahead and,
 * at the head, try flock(2); the watch covers the sidecar as well, which
 * the queue writes when it moves.  Freeing such a wait closes its lock
 * file, which gives up its place.
 *
 * Nothing ever blocks in the kernel lock call and no thread runs on the
 * wait's behalf, so cancelling is just freeing: no lock can be granted after
 * the caller stopped wanting it.  A wait never reports -EDEADLK: the lock
 * it waits for may be released by another thread or task of this process
 * (an event loop's other tasks, a thread pool), so it just waits.
 *
 * A wait belongs to the process that started it.  A forked child shares
 * its open file descriptions: stepping the parent's wait there would take
 * the lock for both processes at once, and freeing it there must not touch
 * the parent's waiter mark.  So a step in another process epoch fails, and
 * a free there only closes the child's copies.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define RECHECK_MIN_US 1000
/* With a watch in place the re-check is only for holders that unlock
 * without closing; polling less often than every 5 ms also wakes faster:
 * measured when this was written, poll(2) with a 1-3 ms timeout is woken
 * by an inotify event about 10 us after the close, with 5 ms or more about
 * 3.5 us (the idle state the CPU picks depends on the next timer). */
#define RECHECK_WATCHED_MIN_US 5000

enum state { RUNNING, DONE, FAILED };

struct cachelock_wait {
    struct cachelock__attempt a;
    long timeout_ms;
    int64_t deadline_us;        /* -1: none */
    int64_t recheck_us;         /* when the next timer re-check is due */
    int64_t backoff_us;
    uint64_t epoch;             /* process epoch of the start */
    struct cachelock__watch watch;  /* watch.fd: inotify descriptor, or -1 */
    int watch_failed;           /* do not try inotify again */
    int sidecar_watched;        /* fair mode: the sidecar is watched too
                                   (or cannot be: -1) */
    struct cachelock__fileid watched;
    enum state state;
    int result;
};

static int wait_init(struct cachelock_wait *w, const struct cachelock__path *path,
                     const cachelock_options_t *o)
{
    if (cachelock__path_copy(&w->a.path, path) < 0)
        return cachelock__fail(-ENOMEM, "allocate a wait for lock file", path->buf);
    w->a.mode = o->mode;
    w->a.flags = o->flags;
    cachelock__attempt_init(&w->a);
    w->a.step = o->timeout_ms != 0;     /* a fair wait may join the queue */
    w->timeout_ms = o->timeout_ms;
    w->deadline_us = -1;
    if (o->timeout_ms > 0) {
        /* A timeout too large to add is "that long": saturate, never wrap
         * (signed overflow would give a deadline in the past). */
        int64_t now = cachelock__os_now_us();
        if (o->timeout_ms > (INT64_MAX - now) / 1000)
            w->deadline_us = INT64_MAX;
        else
            w->deadline_us = now + (int64_t)o->timeout_ms * 1000;
    }
    w->recheck_us = 0;
    w->backoff_us = RECHECK_MIN_US;
    w->epoch = cachelock__os_process_epoch();
    w->watch.fd = -1;
    w->watch_failed = 0;
    w->sidecar_watched = 0;
    w->state = RUNNING;
    w->result = -EINPROGRESS;
    return 0;
}

/* Let go of everything but the path.  In another process (a forked child)
 * the descriptors are copies of the parent's: they are only closed, and
 * the waiter mark, which belongs to the shared description, stays. */
static void wait_fini(struct cachelock_wait *w)
{
    cachelock__watch_stop(&w->watch);
    if (w->a.h && w->epoch != cachelock__os_process_epoch())
        w->a.h->flags |= H_NOKEEP;
    cachelock__attempt_done(&w->a);
}

static int finish(struct cachelock_wait *w, int rc)
{
    w->state = rc == 0 ? DONE : FAILED;
    w->result = rc;
    wait_fini(w);
    return rc;
}

/* (Re)arm the watch when there is none or the lock file was replaced, and
 * mark the file as waited for, so that a holder of this library that would
 * keep its descriptor open closes it instead (see pool.c).  Returns 1 if a
 * new watch was set up. */
static int rewatch(struct cachelock_wait *w)
{
    struct cachelock__handle *h = w->a.h;
    int fresh = 0;
    if (!h)
        return 0;
    if (!w->watch_failed &&
        (w->watch.fd < 0 || !cachelock__same_id(&w->watched, &h->id))) {
        cachelock__watch_stop(&w->watch);
        w->sidecar_watched = 0;
        if (cachelock__watch_start(w->a.path.buf, &w->watch) < 0) {
            /* Out of inotify instances or watches (per-user limits), or a
             * filesystem without it: fall back to the re-check timer. */
            w->watch_failed = 1;
        } else {
            w->watched = h->id;
            fresh = 1;
        }
    }
    if (w->a.fair && w->watch.fd >= 0 && !w->sidecar_watched) {
        /* Fair mode announces places given up at a grant, and the end of
         * a join, by writing the sidecar (fair.c): watch it too. */
        cachelock__path_sidecar(&w->a.path);
        int rc = cachelock__watch_add(w->a.path.buf, &w->watch);
        cachelock__path_unsidecar(&w->a.path);
        w->sidecar_watched = rc == 0 ? 1 : -1;
        fresh |= rc == 0;
    }
    /* The descriptor itself may be new (reopened after a failed check, or
     * a replaced file): mark whatever the wait holds now.  Without the
     * mark a pooled release goes unseen until the re-check timer; that is
     * the fallback if it cannot be set.  Where a mark is a lock request
     * queued in the kernel (Windows), it needs no watch, and it may be
     * granted at once: look again now. */
    if ((w->watch.fd >= 0 || CACHELOCK__MARK_WAKES) &&
        (h->flags & (H_LOCAL | H_WAITING)) == H_LOCAL) {
        int marked = cachelock__os_mark_waiting(h->fd, w->a.mode, 1);
        if (marked >= 0)
            h->flags |= H_WAITING;
        if (marked == 1)
            fresh = 1;
    }
    return fresh;
}

static int step(cachelock_wait_t *w, cachelock_t **out)
{
    int rc;
    int64_t now;

    if (!out)
        return cachelock__failf(-EINVAL, "invalid argument: no place to store the lock (out is NULL)");
    *out = NULL;
    if (!w)
        return cachelock__failf(-EINVAL, "invalid argument: wait is NULL");
    if (w->epoch != cachelock__os_process_epoch())
        return cachelock__failf(-EINVAL, "cannot step wait for '%s': it was started in another "
                                "process (this is a forked child)", w->a.path.buf);
    if (w->state == DONE)
        return cachelock__failf(-EALREADY, "cannot step wait for '%s': lock already acquired",
                                w->a.path.buf);
    if (w->state == FAILED)
        return w->result;

    /* The descriptors were kept since the last step: check them again. */
    w->a.fresh = 0;
    int watch_checked = 0;
    for (int spins = 0;; ) {
        rc = cachelock__attempt_try(&w->a, 0, out);
        if (rc != -EWOULDBLOCK)
            return finish(w, rc);
        /* Events are drained only when the lock was still busy: the fast
         * path (woken by the release, lock free) makes no extra call.  The
         * instance may have been closed by the program since the last step
         * and its number reused: check before reading from it. */
        long events = 0;
        if (w->watch.fd >= 0 && !watch_checked) {
            int is = cachelock__os_notify_is(w->watch.fd, &w->watch.fd_id, 0);
            if (is != 1) {
                if (is < 0)
                    cachelock__os_close(w->watch.fd);
                w->watch.fd = -1;       /* rewatch() makes a new one */
            }
            watch_checked = 1;
        }
        if (w->watch.fd >= 0)
            events = cachelock__os_notify_drain(w->watch.fd);
        if (w->timeout_ms == 0)
            return finish(w, rc);
        now = cachelock__os_now_us();
        if (w->deadline_us >= 0 && now >= w->deadline_us)
            return finish(w, cachelock__failf(-ETIMEDOUT,
                          "timed out after %ld ms waiting for lock '%s'", w->timeout_ms,
                          w->a.path.buf));
        if (rewatch(w))
            continue;
        /* Linux sends the close event before it drops the closer's flock
         * (__fput calls fsnotify_close before locks_remove_file), so a
         * waiter woken by a close can find the lock still held for a few
         * hundred nanoseconds.  Yield and look again a few times rather than
         * sleep until the next re-check. */
        if (events > 0 && spins++ < 8) {
            cachelock__os_yield();
            continue;
        }
        break;
    }
    if (now >= w->recheck_us) {
        if (w->watch.fd >= 0 && w->backoff_us < RECHECK_WATCHED_MIN_US)
            w->backoff_us = RECHECK_WATCHED_MIN_US;
        w->recheck_us = now + w->backoff_us;
        w->backoff_us *= 2;
        if (w->backoff_us > CACHELOCK_RECHECK_MAX_MS * 1000)
            w->backoff_us = CACHELOCK_RECHECK_MAX_MS * 1000;
    }
    return -EINPROGRESS;
}

int cachelock_wait_step(cachelock_wait_t *w, cachelock_t **out)
{
    int old = cachelock__cancel_off();
    int rc = step(w, out);
    cachelock__cancel_restore(old);
    return rc;
}

int cachelock_wait_fd(const cachelock_wait_t *w)
{
    return w && w->state == RUNNING ? w->watch.fd : -1;
}

void *cachelock_wait_handle(const cachelock_wait_t *w)
{
    if (!w || w->state != RUNNING || !w->a.h || !(w->a.h->flags & H_WAITING))
        return NULL;
    return cachelock__os_mark_event(w->a.h->fd);
}

int cachelock_wait_timeout(const cachelock_wait_t *w)
{
    int64_t due, now;
    if (!w || w->state != RUNNING)
        return 0;
    due = w->recheck_us;
    if (w->deadline_us >= 0 && w->deadline_us < due)
        due = w->deadline_us;
    now = cachelock__os_now_us();
    if (due <= now)
        return 0;
    return (int)((due - now + 999) / 1000);
}

static int start(const char *cache_dir, const char *source,
                 const cachelock_options_t *opts, cachelock_wait_t **out)
{
    struct cachelock__path path;
    cachelock_options_t o;
    cachelock_wait_t *w;
    int rc;

    if (!out)
        return cachelock__failf(-EINVAL, "invalid argument: no place to store the wait (out is NULL)");
    *out = NULL;
    rc = cachelock__options_check(opts, &o);
    if (rc < 0)
        return rc;
    rc = cachelock__path_build(&path, cache_dir, source, o.flags);
    if (rc < 0)
        return rc;
    w = cachelock__sys.malloc(sizeof *w);
    if (!w)
        rc = cachelock__fail(-ENOMEM, "allocate a wait for lock file", path.buf);
    else if ((rc = wait_init(w, &path, &o)) < 0)
        free(w);
    else
        *out = w;
    cachelock__path_free(&path);
    return rc;
}

int cachelock_wait_start(const char *cache_dir, const char *source,
                         const cachelock_options_t *opts, cachelock_wait_t **out)
{
    int old = cachelock__cancel_off();
    int rc = start(cache_dir, source, opts, out);
    cachelock__cancel_restore(old);
    return rc;
}

void cachelock_wait_free(cachelock_wait_t *w)
{
    if (!w)
        return;
    int old = cachelock__cancel_off();
    w->a.fresh = 0;         /* kept since the last step: check before closing */
    wait_fini(w);
    cachelock__path_free(&w->a.path);
    free(w);
    cachelock__cancel_restore(old);
}

/* pthread_cancel() of a thread sleeping in a timed acquire: give back
 * everything the wait holds before the thread unwinds. */
static void cancelled(void *arg)
{
    struct cachelock_wait *w = arg;
    w->a.fresh = 0;
    wait_fini(w);
    cachelock__path_free(&w->a.path);
}

/* Sleep until the next step is due, in the caller's cancellation state:
 * this poll(2) is the library's one cancellation point. */
static int sleep_until_due(struct cachelock_wait *w)
{
    int rc;
    int lock_fd = w->a.h && (w->a.h->flags & H_WAITING) ? w->a.h->fd : -1;
    cachelock__cleanup_push(cancelled, w);
    cachelock__setcancelstate(cachelock__cancel_caller_state());
    rc = cachelock__os_poll(w->watch.fd, lock_fd, cachelock_wait_timeout(w));
    cachelock__setcancelstate(CACHELOCK__CANCEL_DISABLE);
    cachelock__cleanup_pop(0);
    return rc;
}

int cachelock__wait_acquire(const struct cachelock__path *path, const cachelock_options_t *o,
                            cachelock_t **out)
{
    struct cachelock_wait w;
    int rc;

    rc = wait_init(&w, path, o);
    if (rc < 0)
        return rc;
    for (;;) {
        rc = step(&w, out);
        if (rc != -EINPROGRESS)
            break;
        rc = sleep_until_due(&w);
        if (rc < 0) {
            cachelock__fail(rc, "wait for lock", path->buf);
            break;
        }
    }
    wait_fini(&w);
    cachelock__path_free(&w.a.path);
    return rc;
}
