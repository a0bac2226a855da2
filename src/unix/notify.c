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
#include "../internal.h"

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/inotify.h>
#include <unistd.h>

/* Closing an inotify instance is slow: the kernel waits for an SRCU grace
 * period before it frees the group (measured here: 14 to 24 ms per close),
 * which would make every timed acquire that had to wait take that long to
 * return.  Idle instances are therefore kept in a small per-process pool;
 * removing a watch (inotify_rm_watch) is cheap.  Instances inherited across
 * fork(2) are shared with the parent, so a child drops them (cheaply: the
 * parent still holds them) instead of reusing them. */
#define POOL_MAX 4

static pthread_mutex_t pool_mutex = PTHREAD_MUTEX_INITIALIZER;
static struct cachelock__watch pool[POOL_MAX];  /* wd: a watch still to remove */
static int pool_n;
static unsigned pool_gen;

void cachelock__os_notify_prefork(void) { pthread_mutex_lock(&pool_mutex); }
void cachelock__os_notify_postfork(void) { pthread_mutex_unlock(&pool_mutex); }

/* Drop instances inherited from a parent.  Called with pool_mutex held. */
static void pool_check_fork(void)
{
    unsigned gen = cachelock__fork_generation();
    if (gen == pool_gen)
        return;
    while (pool_n > 0)
        cachelock__os_close(pool[--pool_n].fd);
    pool_gen = gen;
}

static int instance_take(void)
{
    struct cachelock__watch idle = { -1, -1 };
    pthread_mutex_lock(&pool_mutex);
    pool_check_fork();
    if (pool_n > 0)
        idle = pool[--pool_n];
    pthread_mutex_unlock(&pool_mutex);
    if (idle.fd >= 0) {
        /* Remove the previous user's watch now, off its handoff path, and
         * the events it left.  EINVAL: the watch is gone already (its file
         * was deleted). */
        if (idle.wd < 0 || cachelock__sys.inotify_rm_watch(idle.fd, idle.wd) == 0 ||
            errno == EINVAL) {
            cachelock__os_watch_drain(idle.fd);
            return idle.fd;
        }
        cachelock__os_close(idle.fd);
    }
    int fd = cachelock__sys.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0)
        return -errno;
    fd = cachelock__os_keep_high(fd);
    return fd < 0 ? -errno : fd;
}

static void instance_give_back(int fd, int wd)
{
    pthread_mutex_lock(&pool_mutex);
    pool_check_fork();
    if (pool_n < POOL_MAX) {
        pool[pool_n].fd = fd;
        pool[pool_n].wd = wd;
        pool_n++;
        fd = -1;
    }
    pthread_mutex_unlock(&pool_mutex);
    if (fd >= 0)
        cachelock__os_close(fd);
}

int cachelock__os_watch(const char *path, struct cachelock__watch *w)
{
    const uint32_t mask = IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_ATTRIB | IN_DELETE_SELF |
                          IN_MOVE_SELF | IN_DONT_FOLLOW;
    int fd = instance_take();
    w->fd = -1;
    if (fd < 0)
        return fd;
    int wd = cachelock__sys.inotify_add_watch(fd, path, mask);
    if (wd < 0) {
        int err = -errno;
        instance_give_back(fd, -1);
        return err;
    }
    w->fd = fd;
    w->wd = wd;
    return 0;
}

long cachelock__os_watch_drain(int wfd)
{
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    long n, total = 0;
    while ((n = cachelock__sys.read(wfd, buf, sizeof buf)) > 0)
        total += n;
    return total;
}

void cachelock__os_unwatch(struct cachelock__watch *w)
{
    /* The watch is removed by the next user of the instance, so a wait that
     * got its lock returns without two more system calls. */
    if (w->fd >= 0)
        instance_give_back(w->fd, w->wd);
    w->fd = -1;
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
