/*
 * test_fork.c - a child process never shares its parent's locks, however it
 * was made: fork(2), _Fork() (which runs no atfork handlers) or a raw
 * clone(SIGCHLD) (which not even the C library knows about).
 *
 * What it proves, for each way of making a child:
 *   - the child's acquire never locks through a descriptor the parent kept
 *     open after a release, so parent and child exclude each other;
 *   - releasing an inherited handle in the child leaves the parent's lock
 *     held;
 *   - a blocking acquire in the child of a lock the parent holds waits for
 *     it instead of failing with -EDEADLK (the child owns none of it).
 * And for fork(2):
 *   - a wait started in the parent fails with -EINVAL when stepped in the
 *     child (never takes the lock there), and freeing it in the child does
 *     not disturb the parent's wait, which is still woken by the release;
 *   - atfork handlers of the program may call the library: fork() does not
 *     hang and the child handler's acquire works;
 *   - grandchildren exclude their grandparent and parent just the same.
 *
 * Cases that need _Fork() or clone() skip where the C library lacks _Fork()
 * or the system a raw clone().  The processes that make such children
 * never start a thread, as POSIX requires of a program whose child calls
 * anything but async-signal-safe functions after _Fork(); that also keeps
 * ThreadSanitizer's runtime (its background thread starts with the first
 * thread of the program) consistent in the child.
 */
#include "helpers.h"

#include <pthread.h>
#include <sys/syscall.h>

/* _Fork(): glibc 2.34 and later, POSIX 2024.  Declared weak so that this
 * file also builds (and skips) where the C library lacks it. */
extern pid_t _Fork(void) __attribute__((weak));

/* The raw clone(2) system call with only SIGCHLD (no CLONE_VM, and no new
 * stack: the child runs on a copy of ours, like fork).  Its argument order
 * differs on s390 and CRIS; with every other argument 0 only the flags
 * must come first. */
#if defined(__linux__) && defined(SYS_clone) && !defined(__s390__) && !defined(__CRIS__)
#define HAVE_RAW_CLONE 1
#else
#define HAVE_RAW_CLONE 0
#endif

enum how { BY_FORK, BY__FORK, BY_CLONE };

/* Skip the case when children cannot be made this way here. */
static void can_spawn(enum how how)
{
    if (how == BY__FORK && !_Fork)
        SKIP("no _Fork() in this C library (glibc has it since 2.34)");
    if (how == BY_CLONE && !HAVE_RAW_CLONE)
        SKIP("no raw clone(SIGCHLD) on this system");
}

static pid_t spawn(enum how how)
{
    fflush(stdout);
    fflush(stderr);
    switch (how) {
    case BY__FORK:
        return _Fork();
    case BY_CLONE:
#if HAVE_RAW_CLONE
        return (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, 0UL, 0UL, 0UL, 0UL);
#else
        errno = ENOSYS;
        return -1;
#endif
    case BY_FORK:
        break;
    }
    return fork();
}

static int acquire(const char *source, cachelock_t **lock)
{
    return cachelock_acquire(tap_dir, source, lock);
}

static void send_int(int fd, int v)
{
    CHECK(write(fd, &v, sizeof v) == (ssize_t)sizeof v);
}

static int recv_int(int fd)
{
    int v;
    ssize_t r;
    do r = read(fd, &v, sizeof v); while (r < 0 && errno == EINTR);
    if (r != (ssize_t)sizeof v)
        tap_fail(__FILE__, __LINE__, "pipe closed before a result arrived");
    return v;
}

/* Reap a child; it must have exited with status 0. */
static void reap(pid_t pid)
{
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        tap_fail(__FILE__, __LINE__, "child %d %s %d", (int)pid,
                 WIFEXITED(status) ? "exited with status" : "was killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* try_once from a new process made by fork(2): through none of this
 * process's descriptors and none of its records. */
static int try_elsewhere(const char *source)
{
    fflush(stdout);
    fflush(stderr);
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

/* Until the kernel shows pid blocked in flock(2) (1), or a result arrives
 * on fd first (0): a child that fails at once must not leave us waiting
 * for a block that never comes.  The case's alarm bounds the loop. */
static int wait_blocked_or_readable(pid_t pid, int fd)
{
    for (;;) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (blocked_in_flock(pid))
            return 1;
        if (poll(&p, 1, 1) > 0)
            return 0;
    }
}

/* ---- the kept descriptor of a released lock ------------------------------ */

/* The parent keeps s open after its release.  A child that took that
 * descriptor over would lock the open file description it shares with
 * the parent, and the parent's next acquire, through the same
 * description, would be granted too (0.2.0 did this after _Fork() and
 * clone(), which run no atfork handlers: the parent's try got 0). */
static void child_acquire_excludes_parent(enum how how)
{
    cachelock_t *lock;
    int rep[2], go[2];
    can_spawn(how);
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK(pipe2(rep, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0);
    pid_t pid = spawn(how);
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_t *mine;
        char c;
        close(rep[0]);
        close(go[1]);
        if (acquire("s", &mine) != 0)
            _exit(2);
        send_byte(rep[1], 'L');
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        cachelock_release(mine);
        _exit(0);
    }
    close(rep[1]);
    close(go[0]);
    CHECK_EQ(recv_byte(rep[0]), 'L');
    /* Through the descriptor the parent kept: it must be busy. */
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    send_byte(go[1], 'r');
    reap(pid);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

static void test_a_fork_child_does_not_lock_through_the_parents_kept_file(void)
{
    child_acquire_excludes_parent(BY_FORK);
}

static void test_a__Fork_child_does_not_lock_through_the_parents_kept_file(void)
{
    child_acquire_excludes_parent(BY__FORK);
}

static void test_a_clone_child_does_not_lock_through_the_parents_kept_file(void)
{
    child_acquire_excludes_parent(BY_CLONE);
}

/* ---- a handle inherited by the child -------------------------------------- */

/* The child's copy of the parent's handle is the parent's lock: releasing
 * it there only closes the copy (0.2.0, after _Fork() or clone(), unlocked
 * the shared description: the parent lost its lock). */
static void child_release_keeps_parents_lock(enum how how)
{
    cachelock_t *lock;
    int rep[2];
    can_spawn(how);
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(pipe2(rep, O_CLOEXEC) == 0);
    pid_t pid = spawn(how);
    CHECK(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        cachelock_release(lock);
        /* Still the parent's, so busy for the child too. */
        send_int(rep[1], try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE));
        _exit(0);
    }
    close(rep[1]);
    reap(pid);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    CHECK_EQ(recv_int(rep[0]), -EWOULDBLOCK);   /* the child's try */
    CHECK_EQ(cachelock_mode(lock), CACHELOCK_EXCLUSIVE);
    cachelock_release(lock);
    CHECK_EQ(try_elsewhere("s"), 0);
}

static void test_a_fork_child_releasing_an_inherited_handle_leaves_the_lock_held(void)
{
    child_release_keeps_parents_lock(BY_FORK);
}

static void test_a__Fork_child_releasing_an_inherited_handle_leaves_the_lock_held(void)
{
    child_release_keeps_parents_lock(BY__FORK);
}

static void test_a_clone_child_releasing_an_inherited_handle_leaves_the_lock_held(void)
{
    child_release_keeps_parents_lock(BY_CLONE);
}

/* ---- the parent's lock is not the child's --------------------------------- */

/* A blocking acquire in the child of a lock the parent holds waits for the
 * parent's release like for any other holder.  0.2.0, after _Fork() or
 * clone(), took the parent's hold for the child's own (same thread, as
 * pthread_self() is copied) and failed at once with -EDEADLK. */
static void child_waits_for_parents_lock(enum how how)
{
    cachelock_t *lock;
    int rep[2];
    can_spawn(how);
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK(pipe2(rep, O_CLOEXEC) == 0);
    pid_t pid = spawn(how);
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_t *mine = NULL;
        close(rep[0]);
        int rc = acquire("s", &mine);
        send_int(rep[1], rc);
        cachelock_release(mine);
        _exit(0);
    }
    close(rep[1]);
    if (!wait_blocked_or_readable(pid, rep[0])) {
        int rc = recv_int(rep[0]);
        tap_fail(__FILE__, __LINE__, "the child's blocking acquire of the parent's lock "
                 "returned %d (%s) instead of waiting", rc, cachelock_strerror(rc));
    }
    cachelock_release(lock);
    CHECK_EQ(recv_int(rep[0]), 0);
    reap(pid);
}

static void test_a_fork_child_waits_for_the_parents_lock_without_edeadlk(void)
{
    child_waits_for_parents_lock(BY_FORK);
}

static void test_a__Fork_child_waits_for_the_parents_lock_without_edeadlk(void)
{
    child_waits_for_parents_lock(BY__FORK);
}

static void test_a_clone_child_waits_for_the_parents_lock_without_edeadlk(void)
{
    child_waits_for_parents_lock(BY_CLONE);
}

/* ---- asynchronous waits across fork(2) ------------------------------------ */

/* Step until the wait ends, polling as the header says. */
static int step_to_end(cachelock_wait_t *w, cachelock_t **got)
{
    int rc;
    while ((rc = cachelock_wait_step(w, got)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        CHECK(poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w)) >= 0);
    }
    return rc;
}

/* The child shares the wait's open lock file with the parent: a step there
 * would take the lock for both.  It fails with -EINVAL, before and after
 * the holder's release, and the parent's wait goes on.  (0.2.0 stepped it:
 * -EINPROGRESS while busy, then 0 - the lock granted to the child through
 * the parent's description.) */
static void test_a_wait_started_before_fork_cannot_be_stepped_in_the_child(void)
{
    struct holder h = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    cachelock_wait_t *w;
    cachelock_t *got = NULL;
    int rep[2], go[2];
    holder_wait_locked(&h);
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &got), -EINPROGRESS);
    CHECK(pipe2(rep, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_t *mine = NULL;
        char c;
        close(rep[0]);
        close(go[1]);
        send_int(rep[1], cachelock_wait_step(w, &mine));   /* s busy */
        CHECK(mine == NULL);
        if (read(go[0], &c, 1) != 1)
            _exit(3);       /* the parent failed already */
        send_int(rep[1], cachelock_wait_step(w, &mine));   /* s free */
        CHECK(mine == NULL);
        if (read(go[0], &c, 1) != 1)
            _exit(3);
        _exit(0);
    }
    close(rep[1]);
    close(go[0]);
    CHECK_EQ(recv_int(rep[0]), -EINVAL);
    holder_release(&h);
    send_byte(go[1], 'g');
    CHECK_EQ(recv_int(rep[0]), -EINVAL);
    /* The parent's wait completes normally and holds s alone. */
    CHECK_EQ(step_to_end(w, &got), 0);
    CHECK(got != NULL);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    cachelock_release(got);
    CHECK_EQ(try_elsewhere("s"), 0);
    send_byte(go[1], 'x');
    reap(pid);
    cachelock_wait_free(w);
    holder_finish(&h);
}

/* Freeing the parent's wait in the child closes the child's copies and
 * nothing else; a wait of the child's own afterwards uses an inotify
 * instance of its own.  The parent, polling its wait's descriptor with no
 * re-check timer, is woken by the holder's release.  (0.2.0 put the
 * parent's inotify instance, shared across fork, into the child's idle
 * pool; the child's next wait took it and removed the parent's watch from
 * it, so the release woke nobody.) */
static void test_freeing_the_parents_wait_in_the_child_leaves_its_watch_alone(void)
{
    struct holder hs = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    struct holder ht = holder_spawn(tap_dir, "t", CACHELOCK_EXCLUSIVE);
    cachelock_wait_t *w;
    cachelock_t *got = NULL;
    holder_wait_locked(&hs);
    holder_wait_locked(&ht);
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &got), -EINPROGRESS);
    if (cachelock_wait_fd(w) < 0)
        SKIP("inotify is not available here, so there is no watch to disturb");
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_wait_t *own;
        cachelock_t *mine = NULL;
        cachelock_wait_free(w);
        CHECK_EQ(cachelock_wait_start(tap_dir, "t", NULL, &own), 0);
        CHECK_EQ(cachelock_wait_step(own, &mine), -EINPROGRESS);  /* t busy */
        cachelock_wait_free(own);
        _exit(0);
    }
    reap(pid);
    /* Still busy; this step also reads whatever the child's descriptors
     * made the parent's watch report. */
    CHECK_EQ(cachelock_wait_step(w, &got), -EINPROGRESS);
    holder_release(&hs);
    int64_t t0 = now_us();
    struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
    int n = poll(&p, 1, 3000);
    if (n != 1)
        tap_fail(__FILE__, __LINE__, "the parent's wait was not woken by the release "
                 "(poll returned %d after %lld ms)", n, (long long)(now_us() - t0) / 1000);
    tap_diag("the parent's wait was woken %lld us after the release returned",
             (long long)(now_us() - t0));
    CHECK_EQ(step_to_end(w, &got), 0);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    cachelock_release(got);
    cachelock_wait_free(w);
    /* ht has copies of hs's pipes (it was forked after hs): it goes first. */
    holder_release(&ht);
    holder_finish(&ht);
    holder_finish(&hs);
}

/* ---- atfork handlers of the program ---------------------------------------- */

static int prepare_closed = -1;
static int parent_rc = 1, child_rc = 1;

static void prepare_close_idle(void)
{
    prepare_closed = cachelock_close_idle();
}

static void parent_acquire_release(void)
{
    cachelock_t *lock = NULL;
    parent_rc = acquire("p", &lock);
    cachelock_release(lock);
}

static void child_acquire_release(void)
{
    cachelock_t *lock = NULL;
    child_rc = acquire("s", &lock);
    cachelock_release(lock);
}

/* Handlers registered before the program's first library call run inside
 * the library's own: the prepare handler after the library's has taken
 * the library's mutex, the parent and child handlers before the library's
 * let go of it.  0.2.0 hung in fork() for ever (the prepare handler waited
 * for the mutex its own thread held); the case's alarm turns that into a
 * failure. */
static void test_atfork_handlers_of_the_program_may_call_the_library(void)
{
    cachelock_t *lock;
    int rep[2];
    /* The runner (tap.h) never calls the library, so this is the first
     * thing this process does with it. */
    CHECK_EQ(pthread_atfork(prepare_close_idle, parent_acquire_release,
                            child_acquire_release), 0);
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);            /* kept open: something to close */
    CHECK(pipe2(rep, O_CLOEXEC) == 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(rep[0]);
        send_int(rep[1], child_rc);
        /* And the library works in the child after the handlers. */
        send_int(rep[1], try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE));
        _exit(0);
    }
    close(rep[1]);
    CHECK_EQ(prepare_closed, PORTABLE_BUILD ? 0 : 1);     /* nothing kept there */
    CHECK_EQ(parent_rc, 0);
    CHECK_EQ(recv_int(rep[0]), 0);
    CHECK_EQ(recv_int(rep[0]), 0);
    reap(pid);
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
}

/* ---- grandchildren ---------------------------------------------------------- */

/* The grandparent and the child each keep s open after a release; the
 * grandchild takes s and holds it; the child's and the grandparent's tries
 * must both find it busy.  (0.2.0 passed with fork(), whose atfork handler
 * counted generations, and failed with _Fork() or clone(): the child's and
 * the grandchild's acquires took the kept descriptor over, and every try
 * through it was granted.) */
static void grandchild_excludes_ancestors(enum how first, enum how second)
{
    cachelock_t *lock;
    int rep[2], go[2], mid[2];
    can_spawn(first);
    can_spawn(second);
    CHECK_EQ(acquire("s", &lock), 0);
    cachelock_release(lock);
    CHECK(pipe2(rep, O_CLOEXEC) == 0 && pipe2(go, O_CLOEXEC) == 0 && pipe2(mid, O_CLOEXEC) == 0);
    pid_t child = spawn(first);
    CHECK(child >= 0);
    if (child == 0) {
        close(rep[0]);
        close(go[1]);
        CHECK_EQ(acquire("s", &lock), 0);
        cachelock_release(lock);
        pid_t grandchild = spawn(second);
        CHECK(grandchild >= 0);
        if (grandchild == 0) {
            cachelock_t *mine;
            char c;
            close(mid[0]);
            if (acquire("s", &mine) != 0)
                _exit(2);
            send_byte(mid[1], 'L');
            if (read(go[0], &c, 1) != 1)
                _exit(3);
            cachelock_release(mine);
            _exit(0);
        }
        close(mid[1]);
        CHECK_EQ(recv_byte(mid[0]), 'L');
        send_int(rep[1], try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE));
        reap(grandchild);
        _exit(0);
    }
    close(rep[1]);
    close(go[0]);
    close(mid[0]);
    close(mid[1]);
    CHECK_EQ(recv_int(rep[0]), -EWOULDBLOCK);   /* the child's try */
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK_EQ(try_elsewhere("s"), -EWOULDBLOCK);
    send_byte(go[1], 'r');
    reap(child);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

static void test_grandchildren_of_fork_do_not_share_kept_files(void)
{
    grandchild_excludes_ancestors(BY_FORK, BY_FORK);
}

static void test_grandchildren_of__Fork_do_not_share_kept_files(void)
{
    grandchild_excludes_ancestors(BY__FORK, BY__FORK);
}

static void test_a_clone_grandchild_of_a_fork_child_does_not_share_kept_files(void)
{
    grandchild_excludes_ancestors(BY_FORK, BY_CLONE);
}

TAP_MAIN(
    T(test_a_fork_child_does_not_lock_through_the_parents_kept_file, 5),
    T(test_a__Fork_child_does_not_lock_through_the_parents_kept_file, 5),
    T(test_a_clone_child_does_not_lock_through_the_parents_kept_file, 5),
    T(test_a_fork_child_releasing_an_inherited_handle_leaves_the_lock_held, 5),
    T(test_a__Fork_child_releasing_an_inherited_handle_leaves_the_lock_held, 5),
    T(test_a_clone_child_releasing_an_inherited_handle_leaves_the_lock_held, 5),
    T(test_a_fork_child_waits_for_the_parents_lock_without_edeadlk, 5),
    T(test_a__Fork_child_waits_for_the_parents_lock_without_edeadlk, 5),
    T(test_a_clone_child_waits_for_the_parents_lock_without_edeadlk, 5),
    T(test_a_wait_started_before_fork_cannot_be_stepped_in_the_child, 5),
    T(test_freeing_the_parents_wait_in_the_child_leaves_its_watch_alone, 10),
    T(test_atfork_handlers_of_the_program_may_call_the_library, 5),
    T(test_grandchildren_of_fork_do_not_share_kept_files, 5),
    T(test_grandchildren_of__Fork_do_not_share_kept_files, 5),
    T(test_a_clone_grandchild_of_a_fork_child_does_not_share_kept_files, 5),
)
