/*
 * notify.c - how a timed or asynchronous wait learns that a lock may be free.
 *
 * Linux has no pollable "flock became free" event and a blocked flock(2)
 * cannot be cancelled without a signal, so waits that must be able to give
 * up never block in flock(2).  Instead they watch the lock file with
 * inotify(7): every holder that releases by closing the file (this library,
 * flock(1), Python's filelock, the Rust original, and any process that exits
 * or is killed) produces IN_CLOSE_WRITE or IN_CLOSE_NOWRITE, and the waiter
 * retries a non-blocking flock(2) at once.  Pruning (unlink) and replacement
 * show up as IN_ATTRIB (link count) or IN_DELETE_SELF/IN_MOVE_SELF.
 *
 * inotify does not see a holder that calls flock(LOCK_UN) and keeps the file
 * open, nor changes made on another NFS client; the wait machine (wait.c)
 * re-checks on a doubling timer for those.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <poll.h>
#include <signal.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <unistd.h>

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
    int rc = cachelock__os_fd_is(fd, id);
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

int cachelock__os_poll(int fd, int timeout_ms)
{
    struct pollfd p = { fd, POLLIN, 0 };
    if (cachelock__sys.poll(&p, fd >= 0 ? 1 : 0, timeout_ms) < 0) {
        if (errno == EINTR && !restart_allowed())
            return -EINTR;
        /* EINTR to be restarted, or ENOMEM: the caller just steps again. */
    }
    return 0;
}
