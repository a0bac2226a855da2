/*
 * notify.c - how a timed or asynchronous wait learns that a lock may be free.
 *
 * There is no pollable "flock became free" event and a blocked flock(2)
 * cannot be cancelled without a signal, so waits that must be able to give
 * up never block in flock(2).  Instead they watch the lock file and retry a
 * non-blocking flock(2) at once when something happens to it.
 *
 * Linux: inotify(7).  Every holder that releases by closing the file (this
 * library, flock(1), Python's filelock, the Rust original, and any process
 * that exits or is killed) produces IN_CLOSE_WRITE or IN_CLOSE_NOWRITE.
 * Pruning (unlink) and replacement show up as IN_ATTRIB (link count) or
 * IN_DELETE_SELF/IN_MOVE_SELF.
 *
 * The BSDs and macOS: kqueue(2)'s EVFILT_VNODE on a descriptor of the lock
 * file, with NOTE_CLOSE and NOTE_CLOSE_WRITE where the system has them
 * (FreeBSD 11 and later) and NOTE_FUNLOCK where it has that (macOS: a
 * flock(2) unlock, even one that keeps the file open), plus NOTE_DELETE,
 * NOTE_RENAME, NOTE_ATTRIB and NOTE_REVOKE.  Where neither close nor unlock
 * is reported (OpenBSD, NetBSD), only pruning and replacement are, and the
 * re-check timer sees releases.  This code is compiled on Linux against
 * stand-in declarations (make kqueue-syntax) but has not run on a BSD or a
 * Mac (see README.md, "Deployment").  kqueue(2) and kevent(2) do not go
 * through the system-call table.
 *
 * Elsewhere (and in the portable build on Linux): no notification; waits
 * re-check on the timer alone.
 *
 * None of these sees a holder that calls flock(LOCK_UN) and keeps the file
 * open (but macOS's NOTE_FUNLOCK), nor changes made on another NFS client;
 * the wait machine (wait.c) re-checks on a doubling timer for those.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#if USE_INOTIFY
#include <sys/inotify.h>
#elif USE_KQUEUE
#include <sys/types.h>
#include <sys/event.h>
#include <time.h>
#endif

#if USE_INOTIFY
int cachelock__os_notify_open(void)
{
    int fd = cachelock__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -errno;
    fd = cachelock__os_keep_high(fd);
    return fd < 0 ? -errno : fd;
}

int cachelock__os_notify_add(int fd, const char *path)
{
    /* IN_DONT_FOLLOW: the lock file is never a symbolic link we follow.
     * IN_MODIFY: fair mode announces changes of its queue by writing the
     * sidecar (see fair.c); nothing writes lock files. */
    const uint32_t mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_ATTRIB | IN_DELETE_SELF |
                          IN_MOVE_SELF | IN_MODIFY | IN_DONT_FOLLOW;
    int wd = cachelock__sys.inotify_add_watch(fd, path, mask);
    return wd < 0 ? -errno : wd;
}

int cachelock__os_notify_remove(int fd, int wd)
{
    return cachelock__sys.inotify_rm_watch(fd, wd) == 0 ? 0 : -errno;
}

int cachelock__os_notify_is(int fd, const struct cachelock__fileid *id, int empty)
{
    int queued = 0;
    int rc = cachelock__fd_is(fd, id);
    if (rc != 1)
        return rc;
    /* FIONREAD: inotify (and fanotify) answer with the bytes queued;
     * eventfd, epoll, signalfd and timerfd, which share the identity,
     * fail with ENOTTY. */
    if (cachelock__sys.ioctl(fd, FIONREAD, &queued) < 0)
        return errno == ENOTTY || errno == EINVAL ? 0 : -errno;
    return !empty || queued == 0;
}

long cachelock__os_notify_drain(int fd)
{
    /* Events on a watched file carry no name: 16 bytes each.  A small
     * buffer keeps this usable from threads with the smallest stacks. */
    char buf[512] __attribute__((aligned(__alignof__(struct inotify_event))));
    long n, total = 0;
    while ((n = cachelock__sys.read(fd, buf, sizeof buf)) > 0)
        total += n;
    return total;
}

#elif USE_KQUEUE

#ifndef O_EVTONLY
#define O_EVTONLY 0         /* macOS: a descriptor that only watches */
#endif
#ifndef NOTE_CLOSE
#define NOTE_CLOSE 0
#endif
#ifndef NOTE_CLOSE_WRITE
#define NOTE_CLOSE_WRITE 0
#endif
#ifndef NOTE_FUNLOCK
#define NOTE_FUNLOCK 0
#endif

int cachelock__os_notify_open(void)
{
    int fd = kqueue();
    if (fd < 0)
        return -errno;
    /* A kqueue is not inherited by fork(2) children; keep it from exec(2)
     * too, as every descriptor of the library. */
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    fd = cachelock__os_keep_high(fd);
    return fd < 0 ? -errno : fd;
}

/* The watch is a descriptor of the lock file itself (EVFILT_VNODE watches
 * descriptors, not paths); its number is the watch's.  It holds no lock. */
int cachelock__os_notify_add(int fd, const char *path)
{
    struct kevent ev;
    int wd = cachelock__sys.open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_EVTONLY);
    if (wd < 0)
        return -errno;
    wd = cachelock__os_keep_high(wd);
    if (wd < 0)
        return -errno;
    EV_SET(&ev, (uintptr_t)wd, EVFILT_VNODE, EV_ADD | EV_CLEAR,
           NOTE_DELETE | NOTE_RENAME | NOTE_ATTRIB | NOTE_REVOKE | NOTE_LINK | NOTE_CLOSE |
           NOTE_CLOSE_WRITE | NOTE_FUNLOCK, 0, NULL);
    if (kevent(fd, &ev, 1, NULL, 0, NULL) < 0) {
        int err = errno;
        cachelock__sys.close(wd);
        return -err;
    }
    return wd;
}

/* Closing the watched descriptor removes its event from every kqueue. */
int cachelock__os_notify_remove(int fd, int wd)
{
    (void)fd;
    return cachelock__sys.close(wd) == 0 || errno == EINTR ? 0 : -errno;
}

int cachelock__os_notify_is(int fd, const struct cachelock__fileid *id, int empty)
{
    static const struct timespec zero = { 0, 0 };
    int rc = cachelock__fd_is(fd, id);
    (void)empty;        /* an idle kqueue of ours has no watch, so no events */
    if (rc != 1)
        return rc;
    /* Every kqueue has the same fstat(2) identity: ask the descriptor to
     * behave like one (kevent(2) refuses any other kind). */
    if (kevent(fd, NULL, 0, NULL, 0, &zero) < 0)
        return errno == EBADF || errno == EINVAL ? 0 : -errno;
    return 1;
}

long cachelock__os_notify_drain(int fd)
{
    static const struct timespec zero = { 0, 0 };
    struct kevent evs[8];
    long total = 0;
    int n;
    while ((n = kevent(fd, NULL, 0, evs, 8, &zero)) > 0)
        total += n * (long)sizeof evs[0];
    return total;
}

#else   /* no change notification: the timer alone */

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

#endif

/* poll(2) is never restarted after a signal handler, even one installed with
 * SA_RESTART (signal(7)), so we decide ourselves: keep waiting if every
 * caught signal has SA_RESTART, report -EINTR if any handler lacks it.  We
 * cannot know which signal arrived; in a process that mixes both kinds, an
 * SA_RESTART signal also ends the wait.  Handlers of the synchronous fault
 * signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS; sanitizers and
 * language runtimes install them) do not count: those signals are raised by
 * the faulting instruction itself, never while we sleep in poll(2). */
static int restart_allowed(void)
{
    for (int sig = 1; sig < NSIG; sig++) {
        struct sigaction sa;
        switch (sig) {
        case SIGKILL: case SIGSTOP:
        case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL: case SIGTRAP: case SIGSYS:
            continue;
        }
        if (sigaction(sig, NULL, &sa) < 0)
            continue;
        if (sa.sa_handler == SIG_DFL || sa.sa_handler == SIG_IGN)
            continue;
        if (!(sa.sa_flags & SA_RESTART))
            return 0;
    }
    return 1;
}

int cachelock__os_poll(int fd, int lock_fd, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    (void)lock_fd;  /* a mark wakes nobody here: the watch does */
    if (cachelock__sys.poll(&p, fd >= 0 ? 1 : 0, timeout_ms) < 0) {
        if (errno == EINTR && !restart_allowed())
            return -EINTR;
        /* EINTR to be restarted, or ENOMEM: the caller just steps again. */
    }
    return 0;
}
