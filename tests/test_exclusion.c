/*
 * test_exclusion.c - mutual exclusion without exceptions: no failed
 * acquire, rename, reused descriptor number, planted symbolic link, double
 * release or prune ever lets two holders in, or makes the library touch a
 * file or descriptor that is not its own.
 *
 * Each case is a regression test for a hole found in version 0.2.0 and
 * fails there:
 *
 *   - a failed acquire removed the lock file it had created, although
 *     another process had opened and locked it meanwhile;
 *   - a path looked up less than a second ago was trusted, so a lock file
 *     renamed away (itself, .locks, the cache directory, a symbolic link on
 *     the way) while kept open, or between the open and the grant, was
 *     locked although the path named another file, held by someone else;
 *   - a descriptor the library keeps between calls (a released lock file,
 *     an idle inotify instance, a wait's lock file between steps) whose
 *     number the program had closed and reused was locked, unlocked, read
 *     or closed as if it were still the library's;
 *   - a symbolic link planted as .locks was followed for up to a second;
 *   - releasing a handle twice released whoever got it next from the pool;
 *   - prune unlinked by path a file that was no longer the one it held.
 *
 * Races are made exact with the internal system-call table: a hook on
 * flock(2) (or fstat(2), fstatat(2)) does the other processes' part,
 * through pipes, at the one moment that matters.  Every wait is on a pipe;
 * nothing sleeps for ordering.  The hooks use only entries that 0.2.0's
 * table has too, so the file builds against both.
 */
#include "helpers.h"
#include "internal.h"

#include <limits.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/mman.h>
#include <sys/time.h>

/* ---- helpers ------------------------------------------------------------- */

/* "{tap_dir}/{rel}" in the caller's buffer: tpath()'s buffers are reused
 * after four calls, too soon for a path a whole case uses. */
#define PATHBUF 600
static const char *at(char *buf, const char *rel)
{
    snprintf(buf, PATHBUF, "%s/%s", tap_dir, rel);
    return buf;
}

/* A process driven through pipes that takes (dir, source) on request.  It is
 * forked before the case touches the library, so it inherits no descriptor
 * the case's process keeps, and it uses the real system calls. */
struct peer {
    pid_t pid;
    int to, from;
};

/* Our ends of every live peer's pipes: a new peer closes its copies, or a
 * peer would never see the end of another's command pipe. */
static int peer_ends[16];
static int npeer_ends;

static void peer_ends_forget(int fd)
{
    for (int i = 0; i < npeer_ends; i++)
        if (peer_ends[i] == fd)
            peer_ends[i] = peer_ends[--npeer_ends];
}

static void peer_serve(const char *dir, const char *source, int in, int out)
{
    cachelock_t *lock = NULL;
    char c;
    cachelock__syscalls_reset();
    while (read(in, &c, 1) == 1) {
        if (c == 'a') {
            /* Acquire, waiting as long as it takes; reply the inode. */
            struct stat st;
            uint64_t ino;
            if (lock || cachelock_acquire(dir, source, &lock) != 0 ||
                fstat(cachelock_fd(lock), &st) != 0)
                _exit(3);
            ino = (uint64_t)st.st_ino;
            if (write(out, &ino, sizeof ino) != (ssize_t)sizeof ino)
                _exit(4);
        } else if (c == 't') {
            /* Try once; hold it if free.  Reply the inode, or 0 if busy. */
            struct stat st;
            uint64_t ino = 0;
            int rc = lock ? -EALREADY : cachelock_try_acquire(dir, source, &lock);
            if (rc == 0 && fstat(cachelock_fd(lock), &st) != 0)
                _exit(3);
            if (rc != 0 && rc != -EWOULDBLOCK)
                _exit(5);
            if (rc == 0)
                ino = (uint64_t)st.st_ino;
            if (write(out, &ino, sizeof ino) != (ssize_t)sizeof ino)
                _exit(4);
        } else if (c == 'r') {
            cachelock_release(lock);
            lock = NULL;
            send_byte(out, 'R');
        }
    }
    cachelock_release(lock);
    _exit(0);
}

static struct peer peer_spawn(const char *dir, const char *source)
{
    int cmd[2], rep[2];
    struct peer p;
    CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0);
    p.pid = fork();
    CHECK(p.pid >= 0);
    if (p.pid == 0) {
        close(cmd[1]);
        close(rep[0]);
        for (int i = 0; i < npeer_ends; i++)
            close(peer_ends[i]);
        peer_serve(dir, source, cmd[0], rep[1]);
    }
    close(cmd[0]);
    close(rep[1]);
    p.to = cmd[1];
    p.from = rep[0];
    CHECK(npeer_ends + 2 <= (int)(sizeof peer_ends / sizeof peer_ends[0]));
    peer_ends[npeer_ends++] = p.to;
    peer_ends[npeer_ends++] = p.from;
    return p;
}

/* The peer acquires ('a', waiting as long as it takes) or tries ('t') and
 * holds; returns the inode of the file it locked, 0 if it was busy. */
static uint64_t peer_cmd(struct peer *p, char cmd)
{
    uint64_t ino;
    ssize_t r;
    send_byte(p->to, cmd);
    do r = read(p->from, &ino, sizeof ino); while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof ino)
        tap_fail(__FILE__, __LINE__, "the peer could not acquire its lock");
    return ino;
}

static uint64_t peer_take(struct peer *p)
{
    return peer_cmd(p, 'a');
}

static void peer_release(struct peer *p)
{
    send_byte(p->to, 'r');
    CHECK_EQ(recv_byte(p->from), 'R');
}

static void peer_finish(struct peer *p)
{
    int status;
    peer_ends_forget(p->to);
    peer_ends_forget(p->from);
    close(p->to);
    close(p->from);
    CHECK(waitpid(p->pid, &status, 0) == p->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A try of (dir, source) from a new process with the real system calls:
 * 0 (free), -EWOULDBLOCK (held), or the case fails on anything else. */
static int try_elsewhere(const char *dir, const char *source)
{
    int status;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock__syscalls_reset();
        int rc = try_once(dir, source, CACHELOCK_EXCLUSIVE);
        _exit(rc == 0 ? 0 : rc == -EWOULDBLOCK ? 1 : 2);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    CHECK(WEXITSTATUS(status) < 2);
    return WEXITSTATUS(status) == 0 ? 0 : -EWOULDBLOCK;
}

/* Can a new process flock(2) path exclusively right now (its own open)? */
static int flockable_elsewhere(const char *path)
{
    int status;
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            _exit(2);
        _exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : errno == EWOULDBLOCK ? 1 : 2);
    }
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    CHECK(WEXITSTATUS(status) < 2);
    return WEXITSTATUS(status) == 0;
}

static uint64_t inode_of(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        tap_fail(__FILE__, __LINE__, "stat '%s': %s", path, strerror(errno));
    return (uint64_t)st.st_ino;
}

/* The highest descriptor of this process whose /proc/self/fd link reads
 * want ("anon_inode:inotify", or a canonical path), or -1. */
static int fd_linked_to(const char *want)
{
    char got[PATH_MAX];
    struct dirent *e;
    int found = -1;
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    while ((e = readdir(d))) {
        ssize_t n;
        n = readlinkat(dirfd(d), e->d_name, got, sizeof got - 1);
        if (n <= 0)
            continue;
        got[n] = '\0';
        if (strcmp(got, want) == 0 && atoi(e->d_name) != dirfd(d) && atoi(e->d_name) > found)
            found = atoi(e->d_name);
    }
    closedir(d);
    return found;
}

/* The descriptor of this process open on path, or -1. */
static int fd_open_on(const char *path)
{
    char want[PATH_MAX];
    return realpath(path, want) ? fd_linked_to(want) : -1;
}

/* Does descriptor fd (still) refer to the file at path? */
static int fd_is_file(int fd, const char *path)
{
    struct stat a, b;
    return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
}

/* ---- hooks --------------------------------------------------------------- */

/* What a hook does at the first non-blocking lock call of this process. */
static void (*at_first_try)(void);
static int tries_seen, blocking_seen;

static int hook_flock(int fd, int op)
{
    if (!(op & LOCK_UN) && (op & LOCK_NB) && tries_seen++ == 0 && at_first_try)
        at_first_try();
    return flock(fd, op);
}

/* As hook_flock, and every blocking lock call is interrupted by a signal
 * handler without SA_RESTART. */
static int hook_flock_eintr(int fd, int op)
{
    if (!(op & (LOCK_UN | LOCK_NB))) {
        blocking_seen++;
        errno = EINTR;
        return -1;
    }
    return hook_flock(fd, op);
}

static void install_flock_hook(int (*hook)(int, int), void (*fn)(void))
{
    cachelock__syscalls_reset();
    at_first_try = fn;
    tries_seen = 0;
    blocking_seen = 0;
    cachelock__sys.flock = hook;
}

/* The peer and the paths the hooks act on. */
static struct peer the_peer;
static uint64_t peer_ino;
static char moved_from[PATHBUF], moved_to[PATHBUF];

static void peer_takes_it(void)
{
    peer_ino = peer_take(&the_peer);
}

static void rename_then_peer_takes_it(void)
{
    CHECK(rename(moved_from, moved_to) == 0);
    peer_ino = peer_take(&the_peer);
}

/* ---- 1. failed acquires -------------------------------------------------- */

/* A blocking acquire on a fresh cache creates .locks and the lock file; a
 * peer opens and locks that file while we look; our wait is interrupted.
 * The failure must not remove the file the peer holds: a third process
 * would then create and lock a new one, and there would be two holders. */
static void test_failed_acquire_never_unlinks_a_lock_file_someone_holds(void)
{
    char dir[PATHBUF], path[PATHBUF];
    cachelock_t *lock = (cachelock_t *)&lock;

    at(dir, "c");
    at(path, "c/.locks/s.lock");
    the_peer = peer_spawn(dir, "s");
    install_flock_hook(hook_flock_eintr, peer_takes_it);
    int rc = cachelock_acquire(dir, "s", &lock);
    cachelock__syscalls_reset();
    CHECK_EQ(tries_seen, 1);
    CHECK_EQ(blocking_seen, 1);
    CHECK_EQ(rc, -EINTR);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "s.lock");

    CHECK(access(path, F_OK) == 0);
    CHECK_EQ(inode_of(path), peer_ino);
    CHECK_EQ(try_elsewhere(dir, "s"), -EWOULDBLOCK);
    peer_finish(&the_peer);
    CHECK_EQ(try_elsewhere(dir, "s"), 0);
}

/* ---- 2. renames ---------------------------------------------------------- */

/* P acquires and releases (its descriptor is kept open), move() makes the
 * path name another file, which the peer Q then creates and holds.  P's
 * try must find Q's lock busy, not lock its kept file: two holders. */
static void kept_file_moved(const char *p_rel, const char *q_rel, void (*move)(void))
{
    char p_dir[PATHBUF], q_dir[PATHBUF], path[PATHBUF + 20];
    cachelock_t *lock;

    at(p_dir, p_rel);
    at(q_dir, q_rel);
    snprintf(path, sizeof path, "%s/.locks/s.lock", p_dir);
    the_peer = peer_spawn(q_dir, "s");
    CHECK_EQ(cachelock_acquire(p_dir, "s", &lock), 0);
    cachelock_release(lock);
    if (fd_open_on(path) < 0)
        tap_diag("the released lock file was not kept open here; the case proves less");
    move();
    uint64_t q_ino = peer_take(&the_peer);
    CHECK_EQ(inode_of(path), q_ino);

    CHECK_EQ(try_once(p_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(try_elsewhere(p_dir, "s"), -EWOULDBLOCK);
    peer_release(&the_peer);
    /* And once Q lets go, P gets the file the path names. */
    CHECK_EQ(cachelock_acquire(p_dir, "s", &lock), 0);
    CHECK(fd_is_file(cachelock_fd(lock), path));
    cachelock_release(lock);
    peer_finish(&the_peer);
}

static void rename_lock_file(void)
{
    CHECK(rename(tpath("c/.locks/s.lock"), tpath("c/.locks/s.old")) == 0);
}

static void rename_locks_dir(void)
{
    CHECK(rename(tpath("c/.locks"), tpath("c/.locks.old")) == 0);
}

static void rename_cache_dir(void)
{
    CHECK(rename(tpath("c"), tpath("c.old")) == 0);
}

static void retarget_link(void)
{
    CHECK(symlink(tpath("real2"), tpath("link.new")) == 0);
    CHECK(rename(tpath("link.new"), tpath("link")) == 0);
}

static void test_renamed_lock_file_gives_no_second_holder(void)
{
    kept_file_moved("c", "c", rename_lock_file);
}

static void test_renamed_locks_dir_gives_no_second_holder(void)
{
    kept_file_moved("c", "c", rename_locks_dir);
}

static void test_renamed_cache_dir_gives_no_second_holder(void)
{
    kept_file_moved("c", "c", rename_cache_dir);
}

/* The cache directory is a symbolic link, retargeted to a directory where
 * Q already holds the lock file. */
static void test_retargeted_symlink_in_cache_path_gives_no_second_holder(void)
{
    CHECK(mkdir(tpath("real1"), 0777) == 0 && mkdir(tpath("real2"), 0777) == 0);
    CHECK(symlink(tpath("real1"), tpath("link")) == 0);
    kept_file_moved("link", "real2", retarget_link);
}

/* The lock file is renamed away after P opened it and before P's lock
 * call, and Q creates and holds the new one: P's grant on the old file
 * protects nothing, and P must find Q's lock busy. */
static void test_rename_between_open_and_grant_gives_no_second_holder(void)
{
    char dir[PATHBUF], path[PATHBUF];
    cachelock_t *lock = (cachelock_t *)&lock;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;

    at(dir, "c");
    at(path, "c/.locks/s.lock");
    at(moved_from, "c/.locks/s.lock");
    at(moved_to, "away");
    the_peer = peer_spawn(dir, "s");
    o.timeout_ms = 0;
    install_flock_hook(hook_flock, rename_then_peer_takes_it);
    int rc = cachelock_acquire_ex(dir, "s", &o, &lock);
    cachelock__syscalls_reset();
    CHECK(tries_seen >= 1);
    CHECK_EQ(rc, -EWOULDBLOCK);
    CHECK(lock == NULL);
    CHECK_EQ(inode_of(path), peer_ino);
    CHECK_EQ(try_elsewhere(dir, "s"), -EWOULDBLOCK);
    /* P holds nothing: the file it was granted is free. */
    CHECK(flockable_elsewhere(tpath("away")));
    peer_finish(&the_peer);
}

/* ---- 3. descriptor numbers the program reused ---------------------------- */

/* Open the program's own file under the free number n. */
static void reuse_number_fresh(int n, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0);
    if (fd != n) {
        CHECK(dup2(fd, n) == n);
        close(fd);
    }
}

/* Close descriptor n and open the program's own file under that number. */
static void reuse_number(int n, const char *path)
{
    CHECK(close(n) == 0);
    reuse_number_fresh(n, path);
}

/* The library keeps the released lock file open as descriptor N; the
 * program closes N (as closefrom() would) and opens its own file as N.
 * Then Q holds the lock.  P's try must not lock the program's file and
 * report success, and N must stay the program's, untouched. */
static void test_kept_descriptor_number_reused_by_program_is_never_locked(void)
{
    const char *dir = tap_dir;
    char path[PATHBUF], mine[PATHBUF];
    cachelock_t *lock;

    at(path, ".locks/s.lock");
    at(mine, "mine");
    the_peer = peer_spawn(dir, "s");
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
    cachelock_release(lock);
    int n = fd_open_on(path);
    if (n < 0)
        SKIP("released lock files are not kept open on this filesystem");
    reuse_number(n, mine);
    peer_take(&the_peer);

    CHECK_EQ(try_once(dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    CHECK(flockable_elsewhere(mine));
    cachelock_close_idle();
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    CHECK(flockable_elsewhere(mine));
    peer_finish(&the_peer);
    CHECK(close(n) == 0);
}

/* While P holds the lock, the program closes the lock's descriptor itself
 * and puts its own file, which it locks, under that number.  Releasing the
 * lock must neither unlock nor close the program's descriptor. */
static void test_release_never_touches_a_descriptor_number_the_program_reused(void)
{
    const char *dir = tap_dir;
    char mine[PATHBUF];
    cachelock_t *lock;

    at(mine, "mine");
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
    int n = fd_open_on(tpath(".locks/s.lock"));
    CHECK(n >= 3);
    reuse_number(n, mine);
    CHECK(flock(n, LOCK_EX | LOCK_NB) == 0);       /* the program's own lock */

    cachelock_release(lock);
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    CHECK(!flockable_elsewhere(mine));
    cachelock_close_idle();
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    CHECK(!flockable_elsewhere(mine));
    /* The lock itself went with the program's close. */
    CHECK_EQ(try_elsewhere(dir, "s"), 0);
    CHECK(close(n) == 0);
}

/* A timed wait that had to wait leaves its inotify instance open for the
 * next one (closing one is slow).  The program closes that number and puts
 * its own file there; the next timed wait must neither read it nor close
 * it.  make_own() puts the program's object on descriptor n. */
static void idle_watch_number_reused(void (*make_own)(int n), void (*check_own)(int n))
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;

    the_peer = peer_spawn(tap_dir, "s");
    peer_take(&the_peer);
    o.timeout_ms = 20;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    int n = fd_linked_to("anon_inode:inotify");
    if (n < 0)
        SKIP("no inotify instance was kept (inotify unavailable?)");
    CHECK(close(n) == 0);
    make_own(n);

    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    check_own(n);
    cachelock_close_idle();
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    check_own(n);
    peer_finish(&the_peer);
    CHECK(close(n) == 0);
}

static void put_file(int n)
{
    char mine[PATHBUF];
    reuse_number_fresh(n, at(mine, "mine"));
    CHECK(pwrite(n, "program", 7, 0) == 7);
}

static void check_file(int n)
{
    char mine[PATHBUF];
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, at(mine, "mine")));
    CHECK_EQ(lseek(n, 0, SEEK_CUR), 0);     /* nothing read from it */
}

static void put_eventfd(int n)
{
    int fd = eventfd(5, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(fd >= 0);
    if (fd != n) {
        CHECK(dup2(fd, n) == n);
        close(fd);
    }
}

/* The program's event counter is still 5 (then put back). */
static void check_eventfd(int n)
{
    uint64_t v = 0;
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK_EQ(read(n, &v, sizeof v), (ssize_t)sizeof v);
    CHECK_EQ(v, 5);
    CHECK_EQ(write(n, &v, sizeof v), (ssize_t)sizeof v);
}

static void test_idle_watch_number_reused_by_program_is_never_touched(void)
{
    idle_watch_number_reused(put_file, check_file);
}

/* The same with an eventfd: every anonymous-inode descriptor (inotify,
 * eventfd, epoll, signalfd, timerfd) has one and the same device and
 * inode, so fstat(2) cannot tell the program's eventfd from our inotify
 * instance. */
static void test_idle_watch_number_reused_for_an_eventfd_is_never_read(void)
{
    idle_watch_number_reused(put_eventfd, check_eventfd);
}

/* An asynchronous wait keeps its lock file open between steps.  The
 * program closes that number and opens its own file there, then cancels
 * the wait: the program's descriptor must stay open. */
static void test_cancelled_wait_never_closes_a_descriptor_number_the_program_reused(void)
{
    char path[PATHBUF], mine[PATHBUF];
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;

    at(path, ".locks/s.lock");
    at(mine, "mine");
    the_peer = peer_spawn(tap_dir, "s");
    peer_take(&the_peer);
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    int n = fd_open_on(path);
    CHECK(n >= 3);
    reuse_number(n, mine);

    cachelock_wait_free(w);
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    cachelock_close_idle();
    CHECK(fcntl(n, F_GETFD) >= 0);
    CHECK(fd_is_file(n, mine));
    CHECK(flockable_elsewhere(mine));
    peer_finish(&the_peer);
    CHECK(close(n) == 0);
}

/* ---- 4. a symbolic link planted as .locks -------------------------------- */

static void test_symlink_planted_as_locks_dir_is_never_followed(void)
{
    char dir[PATHBUF];
    cachelock_t *lock;

    at(dir, "c");
    CHECK(mkdir(tpath("outside"), 0777) == 0);
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
    cachelock_release(lock);
    CHECK(rename(tpath("c/.locks"), tpath("c/.locks.old")) == 0);
    CHECK(symlink(tpath("outside"), tpath("c/.locks")) == 0);

    lock = (cachelock_t *)&lock;
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), -ELOOP);
    CHECK(lock == NULL);
    CHECK_EQ(dir_entries(tpath("outside")), 0);
    lock = (cachelock_t *)&lock;
    CHECK_EQ(cachelock_acquire(dir, "t", &lock), -ELOOP);
    CHECK(lock == NULL);
    CHECK_EQ(dir_entries(tpath("outside")), 0);
    CHECK_STR_CONTAINS(cachelock_errmsg(), ".locks");
}

/* ---- 5. double release --------------------------------------------------- */

/* The second acquire may be handed the same kept descriptor (and, before
 * tokens, the same handle address) as the first: releasing the first
 * handle again must not release the second. */
static void test_double_release_never_releases_the_next_holder(void)
{
    cachelock_t *a, *b;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &a), 0);
    cachelock_release(a);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &b), 0);
    cachelock_release(a);
    CHECK_EQ(try_elsewhere(tap_dir, "s"), -EWOULDBLOCK);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "not a held lock");
    CHECK_EQ(cachelock_mode(b), CACHELOCK_EXCLUSIVE);
    cachelock_release(b);
    CHECK_EQ(try_elsewhere(tap_dir, "s"), 0);
}

/* ---- 6. prune ------------------------------------------------------------ */

struct prune_log {
    int status, err, calls;
};

static void record_s(const char *source, cachelock_prune_status_t status, int err, void *ctx)
{
    struct prune_log *l = ctx;
    if (strcmp(source, "s") == 0) {
        l->status = (int)status;
        l->err = err;
        l->calls++;
    }
}

/* A held file is reported busy and left.  And when the file the pruner
 * opened is renamed away before its lock call and Q creates and holds a
 * new one, the pruner's grant on the old file must not make it remove
 * the new one (by path) from under Q. */
static void test_prune_never_removes_a_file_it_does_not_hold(void)
{
    const char *dir = tap_dir;
    char path[PATHBUF];
    struct prune_log l = { -1, 0, 0 };
    struct peer q1 = peer_spawn(dir, "s");
    cachelock_t *lock;

    at(path, ".locks/s.lock");
    the_peer = peer_spawn(dir, "s");
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
    cachelock_release(lock);
    cachelock_close_idle();

    uint64_t ino = peer_take(&q1);
    CHECK_EQ(cachelock_prune(dir, 0, 0, record_s, &l), 0);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(l.status, CACHELOCK_PRUNE_BUSY);
    CHECK_EQ(inode_of(path), ino);
    CHECK_EQ(try_elsewhere(dir, "s"), -EWOULDBLOCK);
    peer_finish(&q1);

    at(moved_from, ".locks/s.lock");
    at(moved_to, "away");
    l.calls = 0;
    install_flock_hook(hook_flock, rename_then_peer_takes_it);
    int rc = cachelock_prune(dir, 0, 0, record_s, &l);
    cachelock__syscalls_reset();
    CHECK(tries_seen >= 1);
    CHECK_EQ(rc, 0);
    CHECK_EQ(l.calls, 1);
    CHECK_EQ(l.status, CACHELOCK_PRUNE_BUSY);
    CHECK(access(path, F_OK) == 0);
    CHECK_EQ(inode_of(path), peer_ino);
    CHECK_EQ(try_elsewhere(dir, "s"), -EWOULDBLOCK);
    peer_finish(&the_peer);
}

/* The pruner holds the lock file and has checked that the path names it;
 * then .locks is renamed away and R creates and holds a new lock file in a
 * new .locks.  The pruner must not move or remove R's file: while R's file
 * is not at the path, Q creates another one there and also holds "the"
 * lock.  (The hooks: the pruner's first fstat(2) after its grant, and its
 * first look, through a directory descriptor, at what it moved.) */
static int pruner_granted, after_grant_fired, moved_look_fired;
static struct peer q_peer;
static uint64_t q_ino;

static int hook_flock_note_grant(int fd, int op)
{
    int rc = flock(fd, op);
    if (rc == 0 && (op & LOCK_NB) && !(op & LOCK_UN))
        pruner_granted = 1;
    return rc;
}

static int hook_fstat_after_grant(int fd, struct stat *st)
{
    if (pruner_granted && !after_grant_fired) {
        after_grant_fired = 1;
        CHECK(rename(moved_from, moved_to) == 0);
        peer_ino = peer_cmd(&the_peer, 't');
        CHECK(peer_ino != 0);
    }
    return fstat(fd, st);
}

static int hook_fstatat_in_dir(int dirfd, const char *path, struct stat *st, int flags)
{
    if (after_grant_fired && dirfd != AT_FDCWD && !moved_look_fired) {
        moved_look_fired = 1;
        q_ino = peer_cmd(&q_peer, 't');
    }
    return fstatat(dirfd, path, st, flags);
}

static void test_prune_never_moves_a_file_someone_else_holds(void)
{
    const char *dir = tap_dir;
    char path[PATHBUF];
    cachelock_t *lock;

    at(path, ".locks/s.lock");
    at(moved_from, ".locks");
    at(moved_to, ".locks.old");
    the_peer = peer_spawn(dir, "s");
    q_peer = peer_spawn(dir, "s");
    CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
    cachelock_release(lock);
    cachelock_close_idle();
    /* Old enough for an age limit: prune then reads the file's age with
     * an fstat(2) after its grant, which is where the hook strikes. */
    struct timeval past[2] = { { 1000, 0 }, { 1000, 0 } };
    CHECK(utimes(path, past) == 0);

    cachelock__syscalls_reset();
    cachelock__sys.flock = hook_flock_note_grant;
    cachelock__sys.fstat = hook_fstat_after_grant;
    cachelock__sys.fstatat = hook_fstatat_in_dir;
    int rc = cachelock_prune(dir, 1000, 0, NULL, NULL);
    cachelock__syscalls_reset();
    CHECK_EQ(after_grant_fired, 1);
    CHECK(rc >= 0);
    if (q_ino)
        tap_diag("Q holds a new file (inode %llu) while R holds inode %llu",
                 (unsigned long long)q_ino, (unsigned long long)peer_ino);
    CHECK(access(path, F_OK) == 0);
    CHECK_EQ(inode_of(path), peer_ino);
    CHECK_EQ(q_ino, 0);
    CHECK_EQ(try_elsewhere(dir, "s"), -EWOULDBLOCK);
    peer_finish(&q_peer);
    peer_finish(&the_peer);
}

/* Shared by the processes of the race below. */
struct arena {
    int inside;         /* holders in the critical section now */
    int overlaps;       /* times a holder found another one inside */
    int entries;        /* critical sections entered */
    int renames;        /* lock files renamed away by their holders */
    int errors;         /* unexpected codes */
    int stop;
};

enum { BLOCKING, TIMED, TRYING };

static void racer(struct arena *ar, int how, int64_t deadline)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    char path[600], away[600];
    cachelock_t *lock;

    o.timeout_ms = how == BLOCKING ? -1 : how == TIMED ? 100 : 0;
    snprintf(path, sizeof path, "%s/.locks/s.lock", tap_dir);
    for (int i = 0; i < 400 && now_us() < deadline; i++) {
        int rc = cachelock_acquire_ex(tap_dir, "s", &o, &lock);
        if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
            sched_yield();
            continue;
        }
        if (rc != 0) {
            __atomic_add_fetch(&ar->errors, 1, __ATOMIC_SEQ_CST);
            break;
        }
        if (__atomic_add_fetch(&ar->inside, 1, __ATOMIC_SEQ_CST) != 1)
            __atomic_add_fetch(&ar->overlaps, 1, __ATOMIC_SEQ_CST);
        __atomic_add_fetch(&ar->entries, 1, __ATOMIC_SEQ_CST);
        sched_yield();
        __atomic_sub_fetch(&ar->inside, 1, __ATOMIC_SEQ_CST);
        /* Out of the critical section but still holding: move the file
         * away, as a pruner does, so that waiters on it must move on. */
        if (i % 2 == 0) {
            snprintf(away, sizeof away, "%s/.locks/r%d-%d.lock", tap_dir, (int)getpid(), i);
            if (rename(path, away) == 0)
                __atomic_add_fetch(&ar->renames, 1, __ATOMIC_SEQ_CST);
        }
        cachelock_release(lock);
    }
}

/* Holders that wait in the kernel, in timed waits and with tries, renaming
 * the file away while they still hold it, and a pruner removing every file
 * it can: at no moment two holders in the critical section. */
static void test_pruner_racing_holders_and_renames_never_lets_two_holders_in(void)
{
    struct arena *ar = mmap(NULL, sizeof *ar, PROT_READ | PROT_WRITE,
                            MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    const int kinds[] = { BLOCKING, BLOCKING, TIMED, TRYING };
    const int nracers = (int)(sizeof kinds / sizeof kinds[0]);
    pid_t racers[4], pruner;
    int status;
    int64_t deadline = now_us() + 1500 * 1000;

    CHECK(ar != MAP_FAILED);
    memset(ar, 0, sizeof *ar);
    for (int k = 0; k < nracers; k++) {
        racers[k] = fork();
        CHECK(racers[k] >= 0);
        if (racers[k] == 0) {
            racer(ar, kinds[k], deadline);
            _exit(0);
        }
    }
    pruner = fork();
    CHECK(pruner >= 0);
    if (pruner == 0) {
        int n = 0;
        while (!__atomic_load_n(&ar->stop, __ATOMIC_SEQ_CST) && n >= 0)
            n = cachelock_prune(tap_dir, 0, 0, NULL, NULL);
        _exit(n >= 0 ? 0 : 1);
    }
    for (int k = 0; k < nracers; k++) {
        CHECK(waitpid(racers[k], &status, 0) == racers[k]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&ar->stop, 1, __ATOMIC_SEQ_CST);
    CHECK(waitpid(pruner, &status, 0) == pruner);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

    tap_diag("%d critical sections, %d renames, %d overlaps", ar->entries, ar->renames,
             ar->overlaps);
    CHECK_EQ(ar->errors, 0);
    CHECK_EQ(ar->overlaps, 0);
    CHECK(ar->entries > 0);
    CHECK(munmap(ar, sizeof *ar) == 0);
}

/* The program's own inotify instance, with an event queued, under the
 * reused number: the library must neither read its queue nor add watches
 * to it (an idle instance of ours is always empty). */
static void put_inotify(int n)
{
    char watched[PATHBUF];
    int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    CHECK(fd >= 0);
    if (fd != n) {
        CHECK(dup2(fd, n) == n);
        close(fd);
    }
    int w = open(at(watched, "watched"), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    CHECK(w >= 0);
    close(w);
    CHECK(inotify_add_watch(n, watched, IN_ATTRIB) >= 0);
    CHECK(chmod(watched, 0600) == 0);           /* one event queued */
}

static void check_inotify(int n)
{
    char buf[512] __attribute__((aligned(__alignof__(struct inotify_event))));
    CHECK(fcntl(n, F_GETFD) >= 0);
    ssize_t r = read(n, buf, sizeof buf);
    CHECK(r >= (ssize_t)sizeof(struct inotify_event));
    CHECK(((struct inotify_event *)buf)->mask & IN_ATTRIB);
    CHECK(chmod(tpath("watched"), 0644) == 0);  /* queue one for the next check */
}

static void test_idle_watch_number_reused_for_an_inotify_instance_is_never_read(void)
{
    idle_watch_number_reused(put_inotify, check_inotify);
}

/* A failure after this acquire created .locks leaves .locks: another
 * process may have started using it the moment it existed. */
static int enospc_on_lock_file(int d, const char *p, int f, ...)
{
    va_list ap;
    va_start(ap, f);
    int m = va_arg(ap, int);
    va_end(ap);
    if (strstr(p, ".lock")) {
        errno = ENOSPC;
        return -1;
    }
    return openat(d, p, f, m);
}

static void test_failed_acquire_keeps_the_directories_it_created(void)
{
    char locks[PATHBUF];
    cachelock_t *lock;
    CHECK(mkdir(tpath("c"), 0777) == 0);
    cachelock__sys.openat = enospc_on_lock_file;
    CHECK_EQ(cachelock_acquire(tpath("c"), "s", &lock), -ENOSPC);
    cachelock__syscalls_reset();
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot create lock file");
    CHECK(access(at(locks, "c/.locks"), F_OK) == 0);
    cachelock__sys.openat = enospc_on_lock_file;
    CHECK_EQ(cachelock_acquire(tpath("d/e"), "s", &lock), -ENOSPC);
    cachelock__syscalls_reset();
    CHECK(access(at(locks, "d/e/.locks"), F_OK) == 0);
}

/* ---- prune against renames at the worst moments ------------------------- */

static struct peer prune_peer;
static char held_elsewhere[PATHBUF], pruned_name[PATHBUF];
static int swap_done, foreign_renames;
static uint64_t foreign_ino;

/* After the pruner's check that the name is its file (an fstatat relative
 * to .locks), the file another process holds is renamed onto the name. */
static int swap_after_check(int d, const char *p, struct stat *st, int f)
{
    int rc = fstatat(d, p, st, f);
    if (d != AT_FDCWD && !swap_done && strcmp(p, "s.lock") == 0) {
        swap_done = 1;
        CHECK(rename(held_elsewhere, pruned_name) == 0);
    }
    return rc;
}

/* Prune checked the name, then the name became another process's file:
 * prune must neither remove nor keep away that file (it goes back). */
static void test_prune_never_removes_a_file_renamed_onto_the_name_after_its_check(void)
{
    struct stat st;
    at(held_elsewhere, ".locks/g.lock");
    at(pruned_name, ".locks/s.lock");
    prune_peer = peer_spawn(tap_dir, "g");
    CHECK_EQ(cachelock_prepare(tap_dir, "s", 0), 0);
    uint64_t g = peer_take(&prune_peer);
    cachelock_close_idle();
    cachelock__sys.fstatat = swap_after_check;
    int removed = cachelock_prune(tap_dir, 0, 0, NULL, NULL);
    cachelock__syscalls_reset();
    CHECK(swap_done);
    CHECK(stat(pruned_name, &st) == 0);             /* not removed */
    CHECK_EQ((uint64_t)st.st_ino, g);               /* the peer's file, back */
    CHECK(removed <= 1);
    CHECK_EQ(try_elsewhere(tap_dir, "s"), -EWOULDBLOCK);
    peer_finish(&prune_peer);
}

/* Renames by the pruner are spied on: it must never rename a file that is
 * not the one it holds. */
static int spy_renameat(int od, const char *op, int nd, const char *np)
{
    struct stat st;
    if (fstatat(od, op, &st, AT_SYMLINK_NOFOLLOW) == 0 && (uint64_t)st.st_ino == foreign_ino)
        foreign_renames++;
    return renameat(od, op, nd, np);
}

/* Right after the pruner's path check, .locks is renamed away and a new
 * .locks holds another process's file under the name. */
static int swap_locks_after_path_check(int d, const char *p, struct stat *st, int f)
{
    int rc = fstatat(d, p, st, f);
    if (d == AT_FDCWD && !swap_done && strstr(p, "/.locks/s.lock")) {
        char from[PATHBUF], to[PATHBUF];
        swap_done = 1;
        CHECK(rename(at(from, ".locks"), at(to, ".locks.old")) == 0);
        foreign_ino = peer_take(&prune_peer);       /* creates .locks/s.lock anew */
    }
    return rc;
}

static void test_prune_never_renames_a_file_in_a_locks_dir_swapped_after_its_check(void)
{
    struct stat st;
    char path[PATHBUF];
    prune_peer = peer_spawn(tap_dir, "s");
    CHECK_EQ(cachelock_prepare(tap_dir, "s", 0), 0);
    cachelock_close_idle();
    cachelock__sys.fstatat = swap_locks_after_path_check;
    cachelock__sys.renameat = spy_renameat;
    cachelock_prune(tap_dir, 0, 0, NULL, NULL);
    cachelock__syscalls_reset();
    CHECK(swap_done);
    CHECK_EQ(foreign_renames, 0);
    CHECK(stat(at(path, ".locks/s.lock"), &st) == 0);
    CHECK_EQ((uint64_t)st.st_ino, foreign_ino);
    CHECK_EQ(try_elsewhere(tap_dir, "s"), -EWOULDBLOCK);
    peer_finish(&prune_peer);
}

TAP_MAIN(
    T(test_idle_watch_number_reused_for_an_inotify_instance_is_never_read, 10),
    T(test_failed_acquire_keeps_the_directories_it_created, 10),
    T(test_prune_never_removes_a_file_renamed_onto_the_name_after_its_check, 10),
    T(test_prune_never_renames_a_file_in_a_locks_dir_swapped_after_its_check, 10),
    T(test_failed_acquire_never_unlinks_a_lock_file_someone_holds, 10),
    T(test_renamed_lock_file_gives_no_second_holder, 10),
    T(test_renamed_locks_dir_gives_no_second_holder, 10),
    T(test_renamed_cache_dir_gives_no_second_holder, 10),
    T(test_retargeted_symlink_in_cache_path_gives_no_second_holder, 10),
    T(test_rename_between_open_and_grant_gives_no_second_holder, 10),
    T(test_kept_descriptor_number_reused_by_program_is_never_locked, 10),
    T(test_release_never_touches_a_descriptor_number_the_program_reused, 10),
    T(test_idle_watch_number_reused_by_program_is_never_touched, 10),
    T(test_idle_watch_number_reused_for_an_eventfd_is_never_read, 10),
    T(test_cancelled_wait_never_closes_a_descriptor_number_the_program_reused, 10),
    T(test_symlink_planted_as_locks_dir_is_never_followed, 10),
    T(test_double_release_never_releases_the_next_holder, 10),
    T(test_prune_never_removes_a_file_it_does_not_hold, 10),
    T(test_prune_never_moves_a_file_someone_else_holds, 10),
    T(test_pruner_racing_holders_and_renames_never_lets_two_holders_in, 10),
)
