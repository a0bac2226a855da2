/*
 * helpers.h - cachelock-specific helpers shared by the C tests: a holder
 * process driven through pipes.
 */
#ifndef HELPERS_H
#define HELPERS_H

#include "tap.h"
#include "cachelock.h"

#include <limits.h>

/* The portable Unix build (make check PORTABLE=1): no inotify, no OFD
 * locks (so no kept lock files and no waiter marks), no /proc/locks, no
 * statfs(2) kinds.  Cases about those features say SKIP there. */
#ifdef CACHELOCK_PORTABLE
#define PORTABLE_BUILD 1
#else
#define PORTABLE_BUILD 0
#endif

__attribute__((unused)) static void linux_only(const char *why)
{
    if (PORTABLE_BUILD)
        SKIP(why);
}

/* Is pid in a timed or asynchronous wait of this library on lockfile?
 * On Linux it then has an inotify instance (made once a try found the lock
 * busy); in the portable build, which has none, it has the lock file open
 * (from the same first step on). */
__attribute__((unused)) static int in_timed_wait(pid_t pid, const char *lockfile)
{
    char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
    struct dirent *e;
    int found = 0;
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    while (!found && (e = readdir(d))) {
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = PORTABLE_BUILD ? strcmp(target, lockfile) == 0 : strstr(target, "inotify") != NULL;
    }
    closedir(d);
    return found;
}

/* Until pid is in a timed or asynchronous wait, for at most 2 s: out of
 * inotify instances (the per-user limit is shared by every process of the
 * user), it sleeps on its timer alone and never shows one. */
__attribute__((unused)) static void wait_in_timed_wait(pid_t pid, const char *lockfile)
{
    for (int i = 0; i < 2000 && !in_timed_wait(pid, lockfile); i++)
        usleep(1000);
}

struct holder {
    pid_t pid;
    int to;     /* we write commands */
    int from;   /* it writes replies */
};

/* Fork a process that takes (dir, source, mode) - waiting as long as it
 * takes - replies 'L', then on 'r' releases and replies 'R', and exits when
 * its command pipe closes. */
__attribute__((unused))
static struct holder holder_spawn(const char *dir, const char *source, cachelock_mode_t mode)
{
    int cmd[2], rep[2];
    struct holder h;
    CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0);
    h.pid = fork();
    CHECK(h.pid >= 0);
    if (h.pid == 0) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        cachelock_t *lock;
        char c;
        close(cmd[1]);
        close(rep[0]);
        o.mode = mode;
        if (cachelock_acquire_ex(dir, source, &o, &lock) != 0)
            _exit(3);
        send_byte(rep[1], 'L');
        while (read(cmd[0], &c, 1) == 1) {
            if (c == 'r') {
                cachelock_release(lock);
                lock = NULL;
                send_byte(rep[1], 'R');
            }
        }
        _exit(0);
    }
    close(cmd[0]);
    close(rep[1]);
    h.to = cmd[1];
    h.from = rep[0];
    return h;
}

/* Wait for the holder to report that it holds the lock. */
__attribute__((unused)) static void holder_wait_locked(struct holder *h)
{
    CHECK_EQ(recv_byte(h->from), 'L');
}

__attribute__((unused)) static void holder_release(struct holder *h)
{
    send_byte(h->to, 'r');
    CHECK_EQ(recv_byte(h->from), 'R');
}

/* Close the pipes and reap it; it must have exited cleanly. */
__attribute__((unused)) static void holder_finish(struct holder *h)
{
    int status;
    close(h->to);
    close(h->from);
    CHECK(waitpid(h->pid, &status, 0) == h->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* Try a lock once from this process and release it: the return code. */
__attribute__((unused)) static int try_once(const char *dir, const char *source, cachelock_mode_t mode)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    int rc;
    o.mode = mode;
    o.timeout_ms = 0;
    rc = cachelock_acquire_ex(dir, source, &o, &lock);
    CHECK((rc == 0) == (lock != NULL));
    cachelock_release(lock);
    return rc;
}

/* Number of entries in a directory, not counting . and .. */
__attribute__((unused)) static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

/* A sorted listing of everything below dir, to compare before and after. */
__attribute__((unused)) static void snapshot_tree(const char *dir, char *out, size_t size)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . 2>/dev/null | sort", dir);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    if (p)
        pclose(p);
}

#endif
