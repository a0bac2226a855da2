/*
 * test_pool.c - released lock files kept open for the next acquire: reuse,
 * the bound, fork, pruning and deletion while idle, and prompt wake-ups of
 * timed and asynchronous waiters when the releaser keeps its descriptor.
 */
#include "helpers.h"
#include "internal.h"

#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>

/* Does the handle lock the file its path names now? */
static int locks_current_file(cachelock_t *lock, const char *source)
{
    char path[600];
    struct stat a, b;
    snprintf(path, sizeof path, "%s/.locks/%s.lock", tap_dir, source);
    return fstat(cachelock_fd(lock), &a) == 0 && stat(path, &b) == 0 &&
           a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static int acquire(const char *source, cachelock_t **lock)
{
    return cachelock_acquire(tap_dir, source, lock);
}

/* Acquire and release s0 .. s{n-1} once each. */
static void use_sources(int n)
{
    char name[32];
    cachelock_t *lock;
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "s%d", i);
        CHECK_EQ(acquire(name, &lock), 0);
        cachelock_release(lock);
    }
}

/* try_once from another process (in this thread it would be -EDEADLK). */
static int try_elsewhere(const char *source)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int rc = try_once(tap_dir, source, CACHELOCK_EXCLUSIVE);
        _exit(rc == 0 ? 0 : rc == -EWOULDBLOCK ? 1 : 2);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    CHECK(WEXITSTATUS(status) < 2);
    return WEXITSTATUS(status) == 0 ? 0 : -EWOULDBLOCK;
}

/* Why the portable build keeps nothing to test here. */
#define NOTHING_KEPT "the portable build keeps no lock file open (no OFD locks for waiter " \
                     "marks), and on Linux cannot tell a local filesystem (no statfs kinds)"

static void test_a_released_lock_file_is_reused_and_closed_on_request(void)
{
    cachelock_t *lock;
    linux_only(NOTHING_KEPT);
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(cachelock_close_idle(), 1);
    CHECK_EQ(cachelock_close_idle(), 0);

    /* Reuse: no new descriptor, the same open file. */
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    int fds = count_fds();
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK_EQ(count_fds(), fds);
    CHECK(locks_current_file(lock, "s"));
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    cachelock_release(lock);
    CHECK_EQ(try_elsewhere("s"), 0);
}

static void test_two_holders_never_share_a_descriptor(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *a, *b;
    o.mode = CACHELOCK_SHARED;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &a), 0);
    cachelock_release(a);           /* now idle */
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &a), 0);
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &b), 0);
    CHECK(cachelock_fd(a) != cachelock_fd(b));
    /* Releasing one leaves the other held: an exclusive try elsewhere fails. */
    cachelock_release(a);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    cachelock_release(b);
    CHECK_EQ(try_elsewhere("s"), 0);
}

static void test_the_pool_is_bounded(void)
{
    linux_only(NOTHING_KEPT);
    use_sources(200);
    int n = cachelock_close_idle();
    tap_diag("%d of 200 released lock files were kept open", n);
    CHECK(n > 0 && n <= 64);
}

static void test_a_descriptor_given_away_is_not_reused(void)
{
    cachelock_t *lock;
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(cachelock_fd(lock) >= 3);
    cachelock_release(lock);
    CHECK_EQ(cachelock_close_idle(), 0);
}

/* The child's first acquire must not reuse a descriptor it inherited: it
 * shares that open file description with the parent, so it would share
 * the parent's lock and get it at once. */
static void test_a_forked_child_never_shares_the_parents_lock(void)
{
    cachelock_t *lock;
    int go[2], rep[2];
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);        /* idle, inherited by the child */
    CHECK(pipe(go) == 0 && pipe(rep) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char c;
        if (read(go[0], &c, 1) != 1)
            _exit(2);
        int rc = try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE);
        _exit(rc == -EWOULDBLOCK ? 0 : 1);
    }
    CHECK_EQ(acquire("s", &lock), 0);   /* the parent takes its idle file */
    send_byte(go[1], 'g');
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    cachelock_release(lock);
}

/* Pruned by another process while idle: the next acquire locks the new
 * file, not the unlinked one it still has open. */
static void test_a_file_pruned_while_idle_is_not_locked_again(void)
{
    cachelock_t *lock;
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        _exit(cachelock_prune(tap_dir, 0, 0, NULL, NULL) == 1 ? 0 : 1);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(locks_current_file(lock, "s"));
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    cachelock_release(lock);
}

static void test_a_cache_deleted_by_hand_while_idle_is_recreated(void)
{
    cachelock_t *lock;
    char cmd[600];
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    snprintf(cmd, sizeof cmd, "rm -rf '%s/.locks'", tap_dir);
    CHECK(system(cmd) == 0);
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(locks_current_file(lock, "s"));
    cachelock_release(lock);
}

/* Pruning in the same process takes the idle descriptor itself and must
 * not put the unlinked file back. */
static void test_pruning_in_the_same_process(void)
{
    cachelock_t *lock;
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), 1);
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(locks_current_file(lock, "s"));
    cachelock_release(lock);
}

/* A renamed cache is noticed at once: the path is looked up again after
 * every grant, and the kept descriptor (and kept .locks) of the old one is
 * not what it names. */
static void test_a_renamed_cache_is_noticed_at_once(void)
{
    cachelock_t *lock;
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/c", tap_dir);
    snprintf(to, sizeof to, "%s/c.old", tap_dir);
    CHECK_EQ(cachelock_acquire(from, "s", &lock), 0);
    cachelock_release(lock);
    CHECK(rename(from, to) == 0);
    CHECK_EQ(cachelock_acquire(from, "s", &lock), 0);
    struct stat a, b;
    char path[700];
    snprintf(path, sizeof path, "%s/.locks/s.lock", from);
    CHECK(fstat(cachelock_fd(lock), &a) == 0 && stat(path, &b) == 0);
    CHECK(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    cachelock_release(lock);
}

/* A waiter in another process, stepping an asynchronous wait and polling
 * its descriptor with no timeout at all: only an inotify event can wake
 * it.  The holder releases through the library, which would keep its
 * descriptor open; the waiter's mark makes it close instead.  Without
 * that, the waiter sleeps until the case's alarm fails it.  The waiter is
 * forked before the holder takes the lock, so it has no copy of the
 * holder's descriptor (a copy would keep the file open past the close). */
static void test_a_kept_descriptor_still_wakes_an_async_waiter(void)
{
    cachelock_t *lock;
    int go[2], rep[2];
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK(pipe(go) == 0 && pipe(rep) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_wait_t *w;
        cachelock_t *got = NULL;
        char c;
        if (read(go[0], &c, 1) != 1 || cachelock_wait_start(tap_dir, "s", NULL, &w) != 0)
            _exit(2);
        int rc = cachelock_wait_step(w, &got);
        if (rc != -EINPROGRESS || cachelock_wait_fd(w) < 0)
            _exit(rc == -EINPROGRESS ? 77 : 3);   /* 77: no inotify here */
        send_byte(rep[1], 'w');
        while (rc == -EINPROGRESS) {
            struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
            if (poll(&p, 1, -1) < 0)
                _exit(4);
            rc = cachelock_wait_step(w, &got);
        }
        cachelock_wait_free(w);
        _exit(rc == 0 ? 0 : 5);
    }
    close(rep[1]);
    CHECK_EQ(acquire("s", &lock), 0);   /* from the pool: would be kept */
    send_byte(go[1], 'g');
    char c = 0;
    int status;
    if (read(rep[0], &c, 1) != 1 || c != 'w') {
        CHECK(waitpid(pid, &status, 0) == pid);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            SKIP("inotify is not available here, so there is nothing to wake");
        CHECK(!"the waiter did not start waiting");
    }
    cachelock_release(lock);
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
    CHECK_EQ(cachelock_close_idle(), 0);    /* closed for the waiter */
    /* With nobody waiting, the same release keeps the file open. */
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(cachelock_close_idle(), 1);
}

/* With .locks kept open, an existing lock file is opened by one name
 * through it; what is planted there is refused as through the whole path. */
static void test_the_kept_locks_dir_refuses_what_the_whole_path_does(void)
{
    cachelock_t *lock = NULL;
    char p[600];
    linux_only(NOTHING_KEPT);
    CHECK_EQ(acquire("a", &lock), 0);
    cachelock_release(lock);        /* .locks is now kept open */
    snprintf(p, sizeof p, "%s/.locks/f.lock", tap_dir);
    CHECK(mkfifo(p, 0666) == 0);
    CHECK_EQ(acquire("f", &lock), -ENXIO);
    CHECK(lock == NULL);
    snprintf(p, sizeof p, "%s/.locks/d.lock", tap_dir);
    CHECK(mkdir(p, 0777) == 0);
    CHECK_EQ(acquire("d", &lock), -EISDIR);
    snprintf(p, sizeof p, "%s/.locks/s.lock", tap_dir);
    CHECK(symlink("/etc/passwd", p) == 0);
    CHECK_EQ(acquire("s", &lock), -ELOOP);
    CHECK(strstr(cachelock_errmsg(), "s.lock") != NULL);
    CHECK_EQ(cachelock_close_idle(), 1);    /* only "a": nothing else kept */
}

/* At the descriptor limit, the kept files are given back rather than the
 * acquire failing with EMFILE. */
static void test_kept_files_make_room_at_the_descriptor_limit(void)
{
    cachelock_t *lock;
    linux_only(NOTHING_KEPT);
    use_sources(8);
    /* No descriptor above the highest one in use, and every free one below
     * it taken: the process is exactly at its limit, with 8 kept files. */
    int high = 0;
    for (int fd = 0; fd < 1024; fd++)
        if (fcntl(fd, F_GETFD) >= 0)
            high = fd;
    struct rlimit r;
    CHECK(getrlimit(RLIMIT_NOFILE, &r) == 0);
    r.rlim_cur = (rlim_t)high + 1;
    CHECK(setrlimit(RLIMIT_NOFILE, &r) == 0);
    while (open("/dev/null", O_RDONLY | O_CLOEXEC) >= 0)
        ;
    CHECK_EQ(errno, EMFILE);
    CHECK_EQ(acquire("new", &lock), 0);
    CHECK(locks_current_file(lock, "new"));
    cachelock_release(lock);
}

/* A relative cache directory names another directory after chdir(2): the
 * next acquire must lock the file in the new one, at once. */
static void test_a_relative_cache_dir_follows_chdir(void)
{
    cachelock_t *lock;
    struct stat a, b;
    CHECK(mkdir(tpath("one"), 0777) == 0 && mkdir(tpath("two"), 0777) == 0);
    CHECK(chdir(tpath("one")) == 0);
    CHECK_EQ(cachelock_acquire("c", "s", &lock), 0);
    cachelock_release(lock);
    CHECK(chdir(tpath("two")) == 0);
    CHECK_EQ(cachelock_acquire("c", "s", &lock), 0);
    CHECK(fstat(cachelock_fd(lock), &a) == 0 && stat("c/.locks/s.lock", &b) == 0);
    CHECK(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
    cachelock_release(lock);
}

/* ---- what fstatfs(2) says decides whether anything is kept -------------- */

static long fake_type;
static int fake_fstatfs(int fd, struct statfs *st)
{
    int rc = fstatfs(fd, st);
    if (rc == 0)
        st->f_type = fake_type;
    return rc;
}
static int failing_fstatfs(int fd, struct statfs *st)
{
    (void)fd;
    (void)st;
    errno = EIO;
    return -1;
}

/* On NFS, FUSE, SMB (or when fstatfs fails) a release closes and a waiter
 * puts no mark: nothing is kept, as flock(1) would have it. */
static void nothing_kept_with(int (*hook)(int, struct statfs *), long type)
{
    cachelock_t *lock;
    cachelock_close_idle();
    fake_type = type;
    cachelock__sys.fstatfs = hook;
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(cachelock_close_idle(), 0);
    /* A timed waiter marks nothing there either. */
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = 30;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    holder_release(&h);
    holder_finish(&h);
    cachelock__syscalls_reset();
    /* The same on a local filesystem keeps it: the test can fail.  (The
     * kept .locks directory remembers what fstatfs said: forget it.) */
    cachelock_close_idle();
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(cachelock_close_idle(), 1);
}

static int marks_seen;
static int counting_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_OFD_SETLK && ((struct flock *)arg)->l_type == F_RDLCK)
        marks_seen++;
    return fcntl(fd, cmd, arg);
}

static void test_nothing_is_kept_on_network_or_fuse_filesystems(void)
{
    linux_only(NOTHING_KEPT);
    nothing_kept_with(fake_fstatfs, 0x6969);        /* NFS */
    nothing_kept_with(fake_fstatfs, 0x65735546);    /* FUSE */
    nothing_kept_with(fake_fstatfs, 0xFE534D42);    /* SMB2 */
    nothing_kept_with(failing_fstatfs, 0);          /* unknown: not local */
    /* And waiters mark only on local filesystems. */
    cachelock_t *lock;
    struct holder h = holder_spawn(tap_dir, "m", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = 30;
    cachelock_close_idle();
    fake_type = 0x6969;
    cachelock__sys.fstatfs = fake_fstatfs;
    cachelock__sys.fcntl = counting_fcntl;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "m", &o, &lock), -ETIMEDOUT);
    CHECK_EQ(marks_seen, 0);
    cachelock__syscalls_reset();
    cachelock__sys.fcntl = counting_fcntl;
    cachelock_close_idle();
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "m", &o, &lock), -ETIMEDOUT);
    CHECK(marks_seen > 0);
    cachelock__syscalls_reset();
    holder_release(&h);
    holder_finish(&h);
}

/* The open through a kept .locks directory has the same flags as the open
 * of the whole path: close-on-exec, no truncation, descriptors above 2;
 * and new files are created 0666 minus the umask. */
static void test_the_open_through_a_kept_directory_keeps_every_rule(void)
{
    cachelock_t *lock;
    struct stat st;
    CHECK_EQ(acquire("a", &lock), 0);          /* .locks is now kept open */
    cachelock_release(lock);
    CHECK_EQ(cachelock_prepare(tap_dir, "b", 0), 0);
    int fd = open(tpath(".locks/b.lock"), O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0 && write(fd, "keep me", 7) == 7);
    close(fd);
    CHECK_EQ(acquire("b", &lock), 0);          /* through the kept directory */
    CHECK(fcntl(cachelock_fd(lock), F_GETFD) & FD_CLOEXEC);
    cachelock_release(lock);
    CHECK(stat(tpath(".locks/b.lock"), &st) == 0 && st.st_size == 7);
    CHECK_EQ(cachelock_prepare(tap_dir, "b2", 0), 0);
    close(0);                                   /* the lowest free number */
    CHECK_EQ(acquire("b2", &lock), 0);         /* through the kept directory */
    CHECK(cachelock_fd(lock) > 2);
    CHECK(fcntl(0, F_GETFD) < 0);              /* 0 still closed */
    cachelock_release(lock);
    mode_t old = umask(022);
    CHECK_EQ(acquire("c", &lock), 0);
    cachelock_release(lock);
    CHECK(stat(tpath(".locks/c.lock"), &st) == 0 && (st.st_mode & 0777) == 0644);
    umask(0);
    CHECK_EQ(acquire("d", &lock), 0);
    cachelock_release(lock);
    CHECK(stat(tpath(".locks/d.lock"), &st) == 0 && (st.st_mode & 0777) == 0666);
    umask(old);
}

TAP_MAIN(
    T(test_nothing_is_kept_on_network_or_fuse_filesystems, 20),
    T(test_the_open_through_a_kept_directory_keeps_every_rule, 10),
    T(test_a_relative_cache_dir_follows_chdir, 10),
    T(test_kept_files_make_room_at_the_descriptor_limit, 10),
    T(test_the_kept_locks_dir_refuses_what_the_whole_path_does, 10),
    T(test_a_released_lock_file_is_reused_and_closed_on_request, 10),
    T(test_two_holders_never_share_a_descriptor, 10),
    T(test_the_pool_is_bounded, 10),
    T(test_a_descriptor_given_away_is_not_reused, 10),
    T(test_a_forked_child_never_shares_the_parents_lock, 10),
    T(test_a_file_pruned_while_idle_is_not_locked_again, 10),
    T(test_a_cache_deleted_by_hand_while_idle_is_recreated, 10),
    T(test_pruning_in_the_same_process, 10),
    T(test_a_renamed_cache_is_noticed_at_once, 10),
    T(test_a_kept_descriptor_still_wakes_an_async_waiter, 10),
)
