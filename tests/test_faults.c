/*
 * test_faults.c - every system call the library makes fails, one at a time,
 * with each of EINTR, EMFILE, ENFILE, ENOSPC, EROFS, EACCES, ENOLCK, EIO
 * and ENOMEM, at its first, second, ... call.  Each failure must give the
 * right code and a message naming the path, and leave no descriptor, no
 * memory, no lock held, and nothing new in the cache but the directories
 * and the empty lock file that any acquire creates (a failed acquire never
 * removes them: another process may already be using them).
 */
#include "helpers.h"
#include "internal.h"

#include <malloc.h>
#include <sys/file.h>
#include <sys/inotify.h>

enum sc { S_OPEN, S_OPENAT, S_MKDIR, S_FSTAT, S_FSTATAT, S_FLOCK, S_FCNTL, S_MALLOC,
          S_INOTIFY_INIT, S_INOTIFY_ADD, NSC };
static const char *const sc_name[] = { "open", "openat", "mkdir", "fstat", "fstatat", "flock",
                                       "fcntl", "malloc", "inotify_init1", "inotify_add_watch" };

static enum sc target;
static int fail_at, fail_errno, calls;

/* Count calls of the target; fail the fail_at-th with fail_errno. */
static int hit(enum sc which)
{
    if (which != target)
        return 0;
    if (++calls != fail_at)
        return 0;
    errno = fail_errno;
    return 1;
}

static int h_open(const char *p, int f, ...)
{
    va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
    return hit(S_OPEN) ? -1 : open(p, f, m);
}
static int h_openat(int d, const char *p, int f, ...)
{
    va_list ap; va_start(ap, f); int m = va_arg(ap, int); va_end(ap);
    return hit(S_OPENAT) ? -1 : openat(d, p, f, m);
}
static int h_mkdir(const char *p, unsigned m) { return hit(S_MKDIR) ? -1 : mkdir(p, m); }
static int h_fstat(int fd, struct stat *st) { return hit(S_FSTAT) ? -1 : fstat(fd, st); }
static int h_fstatat(int d, const char *p, struct stat *st, int f)
{
    return hit(S_FSTATAT) ? -1 : fstatat(d, p, st, f);
}
/* A non-blocking flock(2) cannot really be interrupted and is retried. */
static int hit_nonblocking;
static int h_flock(int fd, int op)
{
    if (!hit(S_FLOCK))
        return flock(fd, op);
    hit_nonblocking = (op & LOCK_NB) != 0;
    return -1;
}
static int h_fcntl(int fd, int cmd, ...)
{
    va_list ap; va_start(ap, cmd); long arg = va_arg(ap, long); va_end(ap);
    return hit(S_FCNTL) ? -1 : fcntl(fd, cmd, arg);
}
static void *h_malloc(size_t n) { return hit(S_MALLOC) ? NULL : malloc(n); }
static int h_inotify_init1(int f) { return hit(S_INOTIFY_INIT) ? -1 : inotify_init1(f); }
static int h_inotify_add(int fd, const char *p, uint32_t m)
{
    return hit(S_INOTIFY_ADD) ? -1 : inotify_add_watch(fd, p, m);
}

static void install(enum sc which, int at, int err)
{
    cachelock__syscalls_reset();
    target = which;
    fail_at = at;
    fail_errno = err;
    calls = 0;
    hit_nonblocking = 0;
    cachelock__sys.open = h_open;
    cachelock__sys.openat = h_openat;
    cachelock__sys.mkdir = h_mkdir;
    cachelock__sys.fstat = h_fstat;
    cachelock__sys.fstatat = h_fstatat;
    cachelock__sys.flock = h_flock;
    cachelock__sys.fcntl = h_fcntl;
    cachelock__sys.malloc = h_malloc;
    cachelock__sys.inotify_init1 = h_inotify_init1;
    cachelock__sys.inotify_add_watch = h_inotify_add;
}

/* The lock must be free: a separate process can take it. */
static int free_for_others(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        cachelock__syscalls_reset();
        _exit(try_once(dir, "s", CACHELOCK_EXCLUSIVE) == 0 ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const int errnos[] = { EINTR, EMFILE, ENFILE, ENOSPC, EROFS, EACCES, ENOLCK, EIO, ENOMEM };

struct scenario {
    int (*run)(const char *dir, cachelock_t **out);
    int expect;         /* the result without a fault: 0 or -ETIMEDOUT */
    int busy;           /* someone else holds the lock throughout */
    int fresh;          /* the cache does not exist before */
    int kept;           /* what the process kept from earlier acquires:
                           COLD nothing, POOLED an idle descriptor */
};
enum { COLD, POOLED };

/* Drop what the library keeps between acquires: the idle descriptors, so
 * that only what a failure left behind is counted. */
static void drop_kept(const struct scenario *sc)
{
    (void)sc;
    cachelock_close_idle();
}

/* Every line of before is in after, and after adds nothing but the cache
 * directory, .locks and the lock file of "s". */
static int only_acquire_paths_added(const char *before, const char *after)
{
    static const char *const allowed[] = { "./c", "./c/.locks", "./c/.locks/s.lock" };
    char line[600];
    const char *p;
    for (p = before; *p; ) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "\n%.*s\n", (int)n, p);
        char wrapped[8200];
        snprintf(wrapped, sizeof wrapped, "\n%s", after);
        if (!strstr(wrapped, line))
            return 0;
        p += n + (p[n] == '\n');
    }
    for (p = after; *p; ) {
        size_t n = strcspn(p, "\n");
        snprintf(line, sizeof line, "\n%.*s\n", (int)n, p);
        char wrapped[8200];
        snprintf(wrapped, sizeof wrapped, "\n%s", before);
        int ok = strstr(wrapped, line) != NULL;
        for (size_t i = 0; i < sizeof allowed / sizeof allowed[0] && !ok; i++)
            ok = strlen(allowed[i]) == n && memcmp(allowed[i], p, n) == 0;
        if (!ok)
            return 0;
        p += n + (p[n] == '\n');
    }
    return 1;
}

/* Put the library's per-process memory into the state the scenario wants. */
static void prepare(const char *dir, const struct scenario *sc)
{
    drop_kept(sc);
    if (sc->kept == POOLED) {
        cachelock_t *lock;
        CHECK_EQ(cachelock_acquire(dir, "s", &lock), 0);
        cachelock_release(lock);
    }
}

static void remove_cache(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tpath("c"));
    CHECK(system(cmd) == 0);
}

static void fail_case(enum sc s, int at, int err, const char *what)
{
    tap_fail(__FILE__, __LINE__, "%s #%d %s: %s (%s)", sc_name[s], at, cachelock_strerror(err),
             what, cachelock_errmsg());
}

/* Run the scenario under every fault; returns the number of faults hit. */
static int run_all(const char *dir, const struct scenario *sc)
{
    int hits = 0;
    char before[8192], after[8192];
    cachelock_t *lock;

    /* Warm up what the library allocates once per process (the registry
     * table, the pool of watches) so that it is not mistaken for a leak;
     * a busy lock is waited for long enough to get as far as the watch. */
    if (sc->busy) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        o.timeout_ms = 100;
        CHECK_EQ(cachelock_acquire_ex(dir, "s", &o, &lock), -ETIMEDOUT);
    } else {
        CHECK_EQ(sc->run(dir, &lock), sc->expect);
        cachelock_release(lock);
    }
    if (sc->fresh)
        remove_cache();
    snapshot_tree(tap_dir, before, sizeof before);
    drop_kept(sc);
    int fds = count_fds();
    size_t heap = mallinfo2().uordblks;

    for (int s = 0; s < NSC; s++) {
        for (size_t e = 0; e < sizeof errnos / sizeof errnos[0]; e++) {
            int err = errnos[e];
            if (s == S_MALLOC && err != ENOMEM)
                continue;       /* malloc fails only one way */
            for (int at = 1; at < 10; at++) {
                if (!sc->fresh)
                    prepare(dir, sc);
                lock = (cachelock_t *)&lock;
                install((enum sc)s, at, err);
                int rc = sc->run(dir, &lock);
                int reached = calls >= at;
                cachelock__syscalls_reset();
                if (rc == 0)
                    cachelock_release(lock);
                if (!reached) {
                    drop_kept(sc);
                    if (sc->fresh)
                        remove_cache();
                    break;      /* the call is not made that often */
                }
                hits++;

                if (rc == sc->expect) {
                    /* Retried (EINTR), worked around (read-only open), or a
                     * kept descriptor that could not be checked and was
                     * replaced by a fresh open (the first fstat), or a
                     * .locks directory that could not be kept for later
                     * (the fstat after the lock file's). */
                    if (rc == 0 && !(err == EINTR && (s != S_FLOCK || hit_nonblocking)) &&
                        !((s == S_OPENAT || s == S_OPEN) && (err == EACCES || err == EROFS)) &&
                        !(sc->kept == POOLED && s == S_FSTAT && at == 1) &&
                        !(sc->kept == COLD && s == S_FSTAT && at == 2))
                        fail_case((enum sc)s, at, err, "succeeded despite the fault");
                } else if (rc == -err) {
                    if (lock != NULL)
                        fail_case((enum sc)s, at, err, "out is not NULL");
                    if (!strstr(cachelock_errmsg(), tap_dir))
                        fail_case((enum sc)s, at, err, "message does not name the path");
                    snapshot_tree(tap_dir, after, sizeof after);
                    if (!only_acquire_paths_added(before, after)) {
                        fprintf(stderr, "# before:\n%s# after:\n%s", before, after);
                        fail_case((enum sc)s, at, err, "the cache changed");
                    }
                    if (!sc->busy && !free_for_others(dir))
                        fail_case((enum sc)s, at, err, "lock left held");
                } else {
                    char what[64];
                    snprintf(what, sizeof what, "returned %d", rc);
                    fail_case((enum sc)s, at, err, what);
                }
                drop_kept(sc);
                if (count_fds() != fds)
                    fail_case((enum sc)s, at, err, "descriptor leaked");
                if (mallinfo2().uordblks != heap)
                    fail_case((enum sc)s, at, err, "memory leaked");
                if (sc->fresh)
                    remove_cache();
            }
        }
    }
    return hits;
}

static int acquire_blocking(const char *dir, cachelock_t **out)
{
    return cachelock_acquire(dir, "s", out);
}

static void test_faults_in_a_fresh_cache_leave_nothing_held(void)
{
    /* Nothing exists: mkdir -p, open, fstat, flock, identity check. */
    static const struct scenario sc = { acquire_blocking, 0, 0, 1, COLD };
    int hits = run_all(tpath("c"), &sc);
    tap_diag("%d faults injected", hits);
    CHECK(hits > 50);
}

/* An existing cache, seen for the first time (the open through .locks),
 * and with the lock file still open from the last release (no open). */
static void existing_cache(int kept, int min_hits)
{
    const struct scenario sc = { acquire_blocking, 0, 0, 0, kept };
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tpath("c"), "s", &lock), 0);
    cachelock_release(lock);
    int hits = run_all(tpath("c"), &sc);
    tap_diag("%d faults injected", hits);
    CHECK(hits > min_hits);
}

static void test_faults_in_an_existing_cache_seen_first(void)
{
    existing_cache(COLD, 30);
}

static void test_faults_with_the_lock_file_kept_open(void)
{
    existing_cache(POOLED, 15);
}

static int timed_on_busy(const char *dir, cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = 5;
    return cachelock_acquire_ex(dir, "s", &o, out);
}

static void test_faults_during_a_timed_wait(void)
{
    static const struct scenario sc = { timed_on_busy, -ETIMEDOUT, 1, 0, COLD };
    struct holder h = holder_spawn(tpath("c"), "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    int hits = run_all(tpath("c"), &sc);
    tap_diag("%d faults injected", hits);
    CHECK(hits > 20);
    holder_release(&h);
    holder_finish(&h);
}

TAP_MAIN(
    T(test_faults_in_a_fresh_cache_leave_nothing_held, 120),
    T(test_faults_in_an_existing_cache_seen_first, 120),
    T(test_faults_with_the_lock_file_kept_open, 120),
    T(test_faults_during_a_timed_wait, 120),
)
