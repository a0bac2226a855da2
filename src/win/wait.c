/*
 * wait.c - locking, and waiting for a lock, on Windows.
 *
 * A blocking acquire waits in the kernel: LockFileEx without
 * LOCKFILE_FAIL_IMMEDIATELY.  A timed or asynchronous wait must be able to
 * give up at any moment with nothing left behind, so it never blocks in a
 * call; instead it queues its lock request in the kernel, an overlapped
 * LockFileEx on its handle (opened with FILE_FLAG_OVERLAPPED), and the
 * kernel grants it at the release, whoever releases and however (unlock,
 * close, exit, kill), signalling the request's event, which is what an
 * event loop waits on (cachelock_wait_handle()).  That request is the
 * wait's "waiter mark" (os_mark_waiting): Unix waiters mark the file so
 * that releasers close it and their inotify watch sees a close; here the
 * mark itself is woken.
 *
 * One request on a handle, as a state machine:
 *
 *   mark ──> LockFileEx(overlapped) ──TRUE──> GRANTED (signalled at once)
 *                 │ ERROR_IO_PENDING
 *                 v
 *              QUEUED ──event signalled, GetOverlappedResult TRUE──> GRANTED
 *                 │    └─ERROR_OPERATION_ABORTED (its thread exited)──> queue again
 *                 v
 *   os_lock() of the handle: GRANTED ──> COLLECTED (the handle holds the
 *                 lock, as after any grant); QUEUED ──> busy
 *   unmark or close: QUEUED ──> CancelIoEx, then ALWAYS GetOverlappedResult
 *                 (TRUE): a grant that won the race is unlocked again;
 *                 GRANTED ──> unlocked.  No lock ever arrives after that.
 *
 * The cancel protocol is the one CancelIoEx's documentation demands: a
 * cancelled request may still complete normally ("the cancel request
 * might not have been submitted in time"), and its OVERLAPPED must not be
 * freed before it has completed.
 *
 * Wine 8 does not implement overlapped LockFileEx: it answers
 * ERROR_IO_PENDING but queues nothing, never signals the event, and
 * GetOverlappedResult then reports a grant that never happened.  Windows'
 * LockFileEx stores STATUS_PENDING in OVERLAPPED.Internal when it queues a
 * request, wine's leaves it alone; so a sentinel put there first that
 * survives ERROR_IO_PENDING means nothing was queued (CancelIoEx finding
 * nothing confirms it, and a completion that raced it would have
 * overwritten it).  Then GetOverlappedResult is never called, requests are
 * not queued again in this process, and waits re-check on their timer
 * alone (1 ms doubling to CACHELOCK_RECHECK_MAX_MS), which is what CI
 * under wine tests; a blocking acquire then polls the same way.
 */
#include "win.h"

#include <stdlib.h>
#include <string.h>

#define SENTINEL ((ULONG_PTR)0xC0DEC0DEu)
#define STATUS_PENDING_ ((ULONG_PTR)0x103u)

enum { QUEUED, GRANTED, COLLECTED };

struct request {
    struct request *next;
    HANDLE h;               /* the lock file handle: the descriptor */
    HANDLE event;           /* manual reset, signalled at completion */
    DWORD flags;            /* LOCKFILE_EXCLUSIVE_LOCK or 0 */
    int state;
    OVERLAPPED ov;
};

/* The requests of this process, one per waiting handle.  Each is used by
 * the thread stepping its wait; the lock guards only the list. */
static SRWLOCK requests_lock = SRWLOCK_INIT;
static struct request *requests;
static LONG nrequests;          /* read without the lock: the fast path */

/* Overlapped lock requests are not queued here (wine 8): wait on timers. */
static LONG not_queued;
/* A request was queued although the sentinel survived: this LockFileEx
 * does not store STATUS_PENDING, so the sentinel says nothing. */
static LONG sentinel_unreliable;

static struct request *find(HANDLE h)
{
    struct request *r;
    if (!__atomic_load_n(&nrequests, __ATOMIC_ACQUIRE))
        return NULL;
    AcquireSRWLockShared(&requests_lock);
    for (r = requests; r && r->h != h; r = r->next)
        ;
    ReleaseSRWLockShared(&requests_lock);
    return r;
}

static void add(struct request *r)
{
    AcquireSRWLockExclusive(&requests_lock);
    r->next = requests;
    requests = r;
    __atomic_add_fetch(&nrequests, 1, __ATOMIC_RELEASE);
    ReleaseSRWLockExclusive(&requests_lock);
}

static void forget(struct request *r)
{
    AcquireSRWLockExclusive(&requests_lock);
    struct request **pp = &requests;
    while (*pp && *pp != r)
        pp = &(*pp)->next;
    if (*pp) {
        *pp = r->next;
        __atomic_sub_fetch(&nrequests, 1, __ATOMIC_RELEASE);
    }
    ReleaseSRWLockExclusive(&requests_lock);
    cachelock__sys.CloseHandle(r->event);
    free(r);
}

/* After ERROR_IO_PENDING with the sentinel still in ov->Internal: was a
 * request queued after all?  0 nothing was (wine 8: never call
 * GetOverlappedResult then, it would report a grant); 1 one is queued;
 * 2 one was, and this probe cancelled it: it has completed now, aborted or
 * (if the grant won the race) granted. */
static int pending_was_queued(HANDLE h, OVERLAPPED *ov)
{
    if (__atomic_load_n(&sentinel_unreliable, __ATOMIC_RELAXED))
        return 1;
    /* Nothing to cancel (ERROR_NOT_FOUND, or any failure: never take a
     * request for queued without proof, GetOverlappedResult would then
     * report a grant that wine never made), and nothing completed either,
     * which would have overwritten the sentinel. */
    if (!cachelock__sys.CancelIoEx(h, ov) &&
        __atomic_load_n(&ov->Internal, __ATOMIC_ACQUIRE) == SENTINEL) {
        __atomic_store_n(&not_queued, 1, __ATOMIC_RELAXED);
        return 0;
    }
    /* Queued without STATUS_PENDING in Internal: this LockFileEx does not
     * store it, so trust ERROR_IO_PENDING from now on. */
    __atomic_store_n(&sentinel_unreliable, 1, __ATOMIC_RELAXED);
    return 2;
}

/* Queue r's request.  1 granted at once, 0 queued, or a negative code
 * (-ENOSYS: requests are not queued here). */
static int issue(struct request *r)
{
    DWORD n;
    for (;;) {
        ResetEvent(r->event);
        memset(&r->ov, 0, sizeof r->ov);
        r->ov.hEvent = r->event;
        r->ov.Internal = SENTINEL;
        if (cachelock__sys.LockFileEx(r->h, r->flags, 0, LOCK_ALL_LOW, LOCK_ALL_HIGH, &r->ov)) {
            r->state = GRANTED;
            SetEvent(r->event);
            return 1;
        }
        DWORD err = GetLastError();
        if (err != ERROR_IO_PENDING)
            return cachelock__win_error(err);
        int queued = 1;
        if (__atomic_load_n(&r->ov.Internal, __ATOMIC_ACQUIRE) == SENTINEL)
            queued = pending_was_queued(r->h, &r->ov);
        if (queued == 0)
            return -ENOSYS;
        r->state = QUEUED;
        if (queued == 1)
            return 0;
        /* Cancelled by the probe: granted meanwhile, or queue it again. */
        if (cachelock__sys.GetOverlappedResult(r->h, &r->ov, &n, TRUE)) {
            r->state = GRANTED;
            return 1;
        }
        err = GetLastError();
        if (err != ERROR_OPERATION_ABORTED)
            return cachelock__win_error(err);
    }
}

/* The cancel protocol: afterwards nothing is queued and no lock can
 * arrive; a lock granted meanwhile is given back. */
static void withdraw(struct request *r)
{
    DWORD n;
    if (r->state == QUEUED) {
        cachelock__sys.CancelIoEx(r->h, &r->ov);     /* ERROR_NOT_FOUND: completed */
        if (cachelock__sys.GetOverlappedResult(r->h, &r->ov, &n, TRUE))
            r->state = GRANTED;
    }
    if (r->state == GRANTED)
        cachelock__sys.UnlockFile(r->h, 0, 0, LOCK_ALL_LOW, LOCK_ALL_HIGH);
    forget(r);
}

int cachelock__os_mark_waiting(int fd, cachelock_mode_t mode, int on)
{
    HANDLE h = cachelock__win_handle(fd);
    struct request *r = find(h);
    int rc;

    if (!on) {
        if (r)
            withdraw(r);
        return 0;
    }
    if (r && r->flags != (mode == CACHELOCK_EXCLUSIVE ? LOCKFILE_EXCLUSIVE_LOCK : 0u)) {
        /* Left behind by a handle of the same value that the program
         * closed under us (its request ended with it): not this one's. */
        forget(r);
        r = NULL;
    }
    if (r)
        return r->state == QUEUED ? 0 : 1;
    if (__atomic_load_n(&not_queued, __ATOMIC_RELAXED))
        return -ENOSYS;
    r = cachelock__sys.malloc(sizeof *r);
    if (!r)
        return -ENOMEM;
    memset(r, 0, sizeof *r);
    r->h = h;
    r->flags = mode == CACHELOCK_EXCLUSIVE ? LOCKFILE_EXCLUSIVE_LOCK : 0;
    r->event = cachelock__sys.CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!r->event) {
        rc = cachelock__win_error(GetLastError());
        free(r);
        return rc;
    }
    rc = issue(r);
    if (rc < 0) {
        cachelock__sys.CloseHandle(r->event);
        free(r);
        return rc;
    }
    add(r);
    return rc;
}

void *cachelock__os_mark_event(int fd)
{
    struct request *r = find(cachelock__win_handle(fd));
    return r ? r->event : NULL;
}

/* A request's outcome, once: 0 granted (now the handle's), -EWOULDBLOCK
 * still queued, or a final code (the request is gone). */
static int collect(struct request *r)
{
    DWORD n;
    if (r->state == QUEUED) {
        if (cachelock__sys.WaitForSingleObject(r->event, 0) != WAIT_OBJECT_0)
            return -EWOULDBLOCK;
        if (cachelock__sys.GetOverlappedResult(r->h, &r->ov, &n, TRUE)) {
            r->state = GRANTED;
        } else {
            DWORD err = GetLastError();
            if (err == ERROR_OPERATION_ABORTED) {
                /* Not cancelled by us: Windows cancels a thread's pending
                 * requests when it exits, and another thread of an event
                 * loop may step this wait.  Queue it again. */
                int rc = issue(r);
                if (rc == 0)
                    return -EWOULDBLOCK;
                if (rc < 0) {
                    forget(r);
                    return -EWOULDBLOCK;    /* the timer goes on */
                }
            } else {
                forget(r);
                return cachelock__win_error(err);
            }
        }
    }
    r->state = COLLECTED;
    return 0;
}

/* A try on a handle without a request. */
static int try_lock(HANDLE h, DWORD flags)
{
    OVERLAPPED ov;
    DWORD n;
    memset(&ov, 0, sizeof ov);
    ov.Internal = SENTINEL;
    if (cachelock__sys.LockFileEx(h, flags | LOCKFILE_FAIL_IMMEDIATELY, 0, LOCK_ALL_LOW,
                                  LOCK_ALL_HIGH, &ov))
        return 0;
    DWORD err = GetLastError();
    if (err == ERROR_LOCK_VIOLATION)
        return -EWOULDBLOCK;
    if (err != ERROR_IO_PENDING)
        return cachelock__win_error(err);
    /* A try should never be queued; fs4 once saw ERROR_IO_PENDING from
     * one.  Never leave a request behind: cancel it, wait for it to end
     * (on the handle itself, the only operation on it), and keep a grant
     * that won the race. */
    int queued = 1;
    if (__atomic_load_n(&ov.Internal, __ATOMIC_ACQUIRE) == SENTINEL)
        queued = pending_was_queued(h, &ov);
    if (queued == 0)
        return -EWOULDBLOCK;
    if (queued == 1)
        cachelock__sys.CancelIoEx(h, &ov);
    return cachelock__sys.GetOverlappedResult(h, &ov, &n, TRUE) ? 0 : -EWOULDBLOCK;
}

/* A blocking acquire where requests are not queued: try, sleep, try. */
static int poll_lock(HANDLE h, DWORD flags)
{
    DWORD pause = 1;
    for (;;) {
        int rc = try_lock(h, flags);
        if (rc != -EWOULDBLOCK)
            return rc;
        Sleep(pause);
        if (pause < CACHELOCK_RECHECK_MAX_MS)
            pause = pause * 2 > CACHELOCK_RECHECK_MAX_MS ? CACHELOCK_RECHECK_MAX_MS : pause * 2;
    }
}

int cachelock__os_lock(int fd, cachelock_mode_t mode, int block)
{
    HANDLE h = cachelock__win_handle(fd);
    DWORD flags = mode == CACHELOCK_SHARED ? 0 : LOCKFILE_EXCLUSIVE_LOCK;
    struct request *r = find(h);
    OVERLAPPED ov;
    DWORD n;

    if (r && r->flags != flags) {
        forget(r);          /* a closed handle's, as in os_mark_waiting() */
        r = NULL;
    }
    if (r && r->state != COLLECTED)
        return collect(r);
    if (!block)
        return try_lock(h, flags);
    if (__atomic_load_n(&not_queued, __ATOMIC_RELAXED))
        return poll_lock(h, flags);
    /* Wait in the kernel: on an overlapped handle, a request and its
     * completion, as Rust's std File::lock does. */
    memset(&ov, 0, sizeof ov);
    ov.hEvent = cachelock__sys.CreateEventW(NULL, TRUE, FALSE, NULL);
    if (!ov.hEvent)
        return cachelock__win_error(GetLastError());
    int rc;
    for (;;) {
        rc = 0;
        ResetEvent(ov.hEvent);
        ov.Internal = SENTINEL;
        if (cachelock__sys.LockFileEx(h, flags, 0, LOCK_ALL_LOW, LOCK_ALL_HIGH, &ov))
            break;
        DWORD err = GetLastError();
        if (err != ERROR_IO_PENDING) {
            rc = cachelock__win_error(err);
            break;
        }
        int queued = 1;
        if (__atomic_load_n(&ov.Internal, __ATOMIC_ACQUIRE) == SENTINEL)
            queued = pending_was_queued(h, &ov);
        if (queued == 0) {
            rc = 1;             /* nothing queued (wine 8): poll instead */
            break;
        }
        if (cachelock__sys.GetOverlappedResult(h, &ov, &n, TRUE))
            break;
        err = GetLastError();
        /* Aborted by pending_was_queued's probe: wait again. */
        if (queued != 2 || err != ERROR_OPERATION_ABORTED) {
            rc = cachelock__win_error(err);
            break;
        }
    }
    cachelock__sys.CloseHandle(ov.hEvent);
    return rc == 1 ? poll_lock(h, flags) : rc;
}

void cachelock__os_close(int fd)
{
    HANDLE h = cachelock__win_handle(fd);
    struct request *r = find(h);
    DWORD saved = GetLastError();
    if (r)
        withdraw(r);        /* never close with a request outstanding */
    cachelock__sys.CloseHandle(h);
    SetLastError(saved);
}

int cachelock__os_poll(int fd, int lock_fd, int timeout_ms)
{
    struct request *r = lock_fd >= 0 ? find(cachelock__win_handle(lock_fd)) : NULL;
    (void)fd;               /* no watch descriptors here */
    if (r)
        cachelock__sys.WaitForSingleObject(r->event, timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    else
        Sleep(timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms);
    return 0;
}

/* ---- no change notification: the kernel queue does its work ------------- */

int cachelock__os_notify_open(void)
{
    return -ENOSYS;
}

int cachelock__os_notify_add(int fd, const char *path)
{
    (void)fd;
    (void)path;
    return -ENOSYS;
}

int cachelock__os_notify_remove(int fd, int wd)
{
    (void)fd;
    (void)wd;
    return -EINVAL;
}

int cachelock__os_notify_is(int fd, const struct cachelock__fileid *id, int empty)
{
    (void)fd;
    (void)id;
    (void)empty;
    return 0;
}

long cachelock__os_notify_drain(int fd)
{
    (void)fd;
    return 0;
}
