/* test_wait.c - try, timed and asynchronous waits; signals; cancellation. */
#include "helpers.h"

#include <malloc.h>

#ifndef _WIN32
#include <sys/file.h>
#endif

/* Wait between two steps of w for what it says: its descriptor (Unix) or
 * its event (Windows; none under wine), at most for its timeout. */
static void wait_for(cachelock_wait_t *w)
{
#ifdef _WIN32
    void *event = cachelock_wait_handle(w);
    CHECK_EQ(cachelock_wait_fd(w), -1);
    if (event)
        WaitForSingleObject(event, (DWORD)cachelock_wait_timeout(w));
    else
        Sleep((DWORD)cachelock_wait_timeout(w));
#else
    struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
    poll(&p, p.fd >= 0, cachelock_wait_timeout(w));
#endif
}

#ifndef _WIN32
static int count_threads(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    int n = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "Threads: %d", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}
#endif

static int timed(const char *source, long ms, cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = ms;
    return cachelock_acquire_ex(tap_dir, source, &o, out);
}

static void test_try_on_busy_lock_returns_ewouldblock(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_t *lock = (cachelock_t *)&lock;
    holder_wait_locked(&h);
    CHECK_EQ(cachelock_try_acquire(tap_dir, "s", &lock), -EWOULDBLOCK);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "held by another owner");
    CHECK_STR_CONTAINS(cachelock_errmsg(), tap_dir);
    CHECK_STR_CONTAINS(cachelock_errmsg(), SEP ".locks" SEP "s.lock'");
    holder_release(&h);
    holder_finish(&h);
}

/* Never early.  How late is measured by make bench, not asserted here. */
static void test_timeout_expires_no_earlier_than_asked(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_t *lock;
    int64_t best = INT64_MAX;
    holder_wait_locked(&h);
    /* The best of three, so that one scheduling hiccup on a loaded
     * machine is not mistaken for a late timeout. */
    for (int i = 0; i < 3; i++) {
        int64_t t0 = now_us();
        CHECK_EQ(timed("s", 200, &lock), -ETIMEDOUT);
        int64_t took = now_us() - t0;
        CHECK(took >= 200000);
        if (took < best)
            best = took;
    }
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "timed out after 200 ms");
    CHECK_STR_CONTAINS(cachelock_errmsg(), tap_dir);
    CHECK_STR_CONTAINS(cachelock_errmsg(), SEP ".locks" SEP "s.lock'");
    tap_diag("timeout overshoot: %lld us", (long long)(best - 200000));
    holder_release(&h);
    holder_finish(&h);
}

static void test_async_wait_gets_lock_when_holder_releases(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    int rc;
    holder_wait_locked(&h);
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
#ifdef _WIN32
    /* An event to wait for, where the kernel queues the lock request (not
     * under wine: the timeout alone there); never a descriptor. */
    CHECK_EQ(cachelock_wait_fd(w), -1);
    CHECK(on_wine() ? cachelock_wait_handle(w) == NULL : cachelock_wait_handle(w) != NULL);
#else
    if (PORTABLE_BUILD)
        CHECK_EQ(cachelock_wait_fd(w), -1);     /* the timer alone */
    else
        CHECK(cachelock_wait_fd(w) > 2);        /* an inotify descriptor to poll */
    CHECK(cachelock_wait_handle(w) == NULL);
#endif
    CHECK(cachelock_wait_timeout(w) <= CACHELOCK_RECHECK_MAX_MS);
    holder_release(&h);
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS)
        wait_for(w);
    CHECK_EQ(rc, 0);
    CHECK(lock != NULL);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EALREADY);
    CHECK(lock == NULL);
    CHECK(cachelock_wait_handle(w) == NULL);
    cachelock_wait_free(w);
    /* We hold it now. */
    CHECK_EQ(try_in_other_process(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    holder_finish(&h);
}

static void test_async_wait_sees_unlock_without_close(void)
{
    /* A holder that flock(LOCK_UN)s and keeps the file open produces no
     * inotify event: the re-check timer must still find the lock free.
     * (On Windows: UnlockFile, the range of fs4 and Rust's std.) */
    int rc;
    cachelock_t *lock;
    cachelock_wait_t *w;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
#ifdef _WIN32
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    HANDLE fd = CreateFileA(tpath(".locks/s.lock"), GENERIC_READ,
                            FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                            OPEN_EXISTING, 0, NULL);
    CHECK(fd != INVALID_HANDLE_VALUE && LockFileEx(fd, LOCKFILE_EXCLUSIVE_LOCK, 0, ~0u, ~0u, &ov));
#else
    int fd = open(tpath(".locks/s.lock"), O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
#endif
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
#ifdef _WIN32
    CHECK(UnlockFile(fd, 0, 0, ~0u, ~0u));
#else
    CHECK(flock(fd, LOCK_UN) == 0);
#endif
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS)
        wait_for(w);
    CHECK_EQ(rc, 0);
    cachelock_release(lock);
    cachelock_wait_free(w);
#ifdef _WIN32
    CloseHandle(fd);
#else
    close(fd);
#endif
}

/* One wait that has to watch the file, so that the library's small pool of
 * idle inotify instances (closing one costs an RCU grace period) holds what
 * it will hold from now on. */
static void warm_up_watch_pool(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    o.timeout_ms = 30;      /* long enough to get as far as the watch */
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
}

static void test_cancelled_wait_leaves_nothing_behind(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_wait_t *w;
    cachelock_t *lock;
    holder_wait_locked(&h);
    warm_up_watch_pool();
    int fds = count_lib_fds();
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    CHECK(count_lib_fds() > fds);
    cachelock_wait_free(w);
    CHECK_EQ(count_lib_fds(), fds);
    cachelock_wait_free(NULL);
    /* After the holder lets go, nobody holds it: no late grant. */
    holder_release(&h);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
    holder_finish(&h);
}

static void test_thousand_timeouts_leave_no_descriptors(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_t *lock;
    holder_wait_locked(&h);
    warm_up_watch_pool();
    int fds = count_lib_fds();
#ifdef _WIN32
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(timed("s", 1, &lock), -ETIMEDOUT);
    CHECK_EQ(count_lib_fds(), fds);
#else
    size_t heap = mallinfo2().uordblks;
    for (int i = 0; i < 1000; i++)
        CHECK_EQ(timed("s", 1, &lock), -ETIMEDOUT);
    /* Sanitizers replace malloc and report 0 here; they check leaks
     * themselves. */
    CHECK_EQ(mallinfo2().uordblks, heap);
    CHECK_EQ(count_lib_fds(), fds);
    CHECK(count_threads() <= 2);    /* 1, or 2 with TSan's background thread */
#endif
    holder_release(&h);
    holder_finish(&h);
}

#ifdef _WIN32
#define NO_SIGNALS(name) static void name(void) { SKIP("no signals on Windows"); }
NO_SIGNALS(test_signal_without_sa_restart_interrupts_blocking_wait)
NO_SIGNALS(test_signal_with_sa_restart_keeps_blocking_wait)
NO_SIGNALS(test_signal_without_sa_restart_interrupts_timed_wait)
NO_SIGNALS(test_signal_with_sa_restart_keeps_timed_wait)
NO_SIGNALS(test_timed_wait_works_with_all_signals_blocked)
NO_SIGNALS(test_library_installs_no_signal_handlers)
#else
static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { (void)sig; got_signal = 1; }

static void install(int sig, int flags)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = flags;
    sigemptyset(&sa.sa_mask);
    CHECK(sigaction(sig, &sa, NULL) == 0);
}

/* A child waits (blocking or timed) under a handler with the given flags;
 * we signal it once it is waiting and report how the wait ended. */
static int wait_with_signal(long timeout_ms, int flags, struct holder *h)
{
    int rep[2];
    CHECK(pipe2(rep, O_CLOEXEC) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        cachelock_t *lock;
        install(SIGUSR1, flags);
        int rc = timed("s", timeout_ms, &lock);
        if (write(rep[1], &rc, sizeof rc) != sizeof rc)
            _exit(1);
        _exit(got_signal ? 0 : 2);
    }
    close(rep[1]);
    struct pollfd p = { rep[0], POLLIN, 0 };
    if (timeout_ms < 0) {
        /* Seen blocked in flock(2) by the kernel: one signal lands there. */
        wait_blocked_in_flock(pid);
        kill(pid, SIGUSR1);
        if (poll(&p, 1, 300) == 0)
            holder_release(h);  /* SA_RESTART: still waiting; let it have it */
    } else {
        /* A timed waiter sleeps in poll(2) between short steps; a signal
         * that lands in a step (or before the first poll) interrupts
         * nothing, so keep signalling for a while. */
        wait_in_timed_wait(pid, tpath(".locks/s.lock"));
        int answered = 0;
        for (int i = 0; i < 60 && !answered; i++) {
            kill(pid, SIGUSR1);
            answered = poll(&p, 1, 5) > 0;
        }
        if (!answered)
            holder_release(h);  /* SA_RESTART: still waiting; let it have it */
    }
    int rc = 1;
    CHECK(read(rep[0], &rc, sizeof rc) == sizeof rc);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(rep[0]);
    return rc;
}

static void test_signal_without_sa_restart_interrupts_blocking_wait(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    CHECK_EQ(wait_with_signal(-1, 0, &h), -EINTR);
    holder_finish(&h);
}

static void test_signal_with_sa_restart_keeps_blocking_wait(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    CHECK_EQ(wait_with_signal(-1, SA_RESTART, &h), 0);
    holder_finish(&h);
}

static void test_signal_without_sa_restart_interrupts_timed_wait(void)
{
    const char *preload = getenv("LD_PRELOAD");
    if (preload && strstr(preload, "vgpreload"))
        SKIP("valgrind restarts poll(2) after a signal handler itself");
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    CHECK_EQ(wait_with_signal(30000, 0, &h), -EINTR);
    holder_finish(&h);
}

static void test_signal_with_sa_restart_keeps_timed_wait(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&h);
    CHECK_EQ(wait_with_signal(30000, SA_RESTART, &h), 0);
    holder_finish(&h);
}

static void test_timed_wait_works_with_all_signals_blocked(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    sigset_t all;
    cachelock_t *lock;
    holder_wait_locked(&h);
    sigfillset(&all);
    CHECK(sigprocmask(SIG_BLOCK, &all, NULL) == 0);
    CHECK_EQ(timed("s", 50, &lock), -ETIMEDOUT);
    holder_release(&h);
    CHECK_EQ(timed("s", 5000, &lock), 0);
    cachelock_release(lock);
    holder_finish(&h);
}

static void test_library_installs_no_signal_handlers(void)
{
    /* Compare every disposition before and after a timed wait (sanitizer
     * runtimes install handlers of their own before main). */
    struct sigaction before[NSIG], after;
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_t *lock;
    for (int sig = 1; sig < NSIG; sig++)
        sigaction(sig, NULL, &before[sig]);
    holder_wait_locked(&h);
    CHECK_EQ(timed("s", 20, &lock), -ETIMEDOUT);
    holder_release(&h);
    CHECK_EQ(timed("s", 1000, &lock), 0);
    cachelock_release(lock);
    for (int sig = 1; sig < NSIG; sig++) {
        if (sigaction(sig, NULL, &after) == 0)
            CHECK(after.sa_handler == before[sig].sa_handler);
    }
    holder_finish(&h);
}

#endif

static void test_timed_wait_survives_lock_file_replacement(void)
{
    /* The holder prunes (unlinks while holding) and releases; the timed
     * waiter must end up holding the lock on the file at the path. */
#ifdef _WIN32
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    const char *argv[] = { "holder", tap_dir, "s", "exclusive", "5000" };
    struct holder w = helper_spawn(5, argv);
    holder_wait_blocked(&w);
    CHECK(DeleteFileA(tpath(".locks/s.lock")));
    cachelock_release(lock);
    holder_wait_locked(&w);
    CHECK(access(tpath(".locks/s.lock"), F_OK) == 0);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    holder_release(&w);
    holder_finish(&w);
#else
    cachelock_t *lock, *mine;
    cachelock_wait_t *w;
    struct stat a, b;
    int rc;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    pid_t pid = fork();
    if (pid == 0) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        o.timeout_ms = 5000;
        if (cachelock_wait_start(tap_dir, "s", &o, &w) != 0)
            _exit(1);
        while ((rc = cachelock_wait_step(w, &mine)) == -EINPROGRESS)
            wait_for(w);
        if (rc != 0 || fstat(cachelock_fd(mine), &a) != 0 ||
            stat(tpath(".locks/s.lock"), &b) != 0 || a.st_ino != b.st_ino)
            _exit(2);
        _exit(0);
    }
    wait_in_timed_wait(pid, tpath(".locks/s.lock"));
    CHECK(unlink(tpath(".locks/s.lock")) == 0);
    cachelock_release(lock);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    CHECK_EQ(WEXITSTATUS(status), 0);
#endif
}

TAP_MAIN(
    T(test_try_on_busy_lock_returns_ewouldblock),
    T(test_timeout_expires_no_earlier_than_asked),
    T(test_async_wait_gets_lock_when_holder_releases),
    T(test_async_wait_sees_unlock_without_close),
    T(test_cancelled_wait_leaves_nothing_behind),
    T(test_thousand_timeouts_leave_no_descriptors, 30),
    T(test_signal_without_sa_restart_interrupts_blocking_wait),
    T(test_signal_with_sa_restart_keeps_blocking_wait),
    T(test_signal_without_sa_restart_interrupts_timed_wait),
    T(test_signal_with_sa_restart_keeps_timed_wait),
    T(test_timed_wait_works_with_all_signals_blocked),
    T(test_library_installs_no_signal_handlers),
    T(test_timed_wait_survives_lock_file_replacement),
)
