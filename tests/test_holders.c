/*
 * test_holders.c - who holds and who waits, for one source
 * (cachelock_holders) and for a whole cache in one reading of the kernel's
 * lock table (cachelock_status), including lock files whose names only the
 * relaxed rule accepts.
 */
#include "helpers.h"

#ifdef _WIN32
/* Windows keeps no lock table: cachelock_holders() lists the other
 * processes that have the lock file open, holder or waiter unknown
 * (waiting -1).  Wine implements neither way to ask (it lists nobody), so
 * under wine these cases check everything but the list itself, and say
 * so. */
static const cachelock_holder_t *find(const cachelock_holder_t *h, size_t n, int pid)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].pid == pid)
            return &h[i];
    return NULL;
}

static void test_holders_lists_the_processes_that_have_the_file_open(void)
{
    cachelock_holder_t *h;
    cachelock_t *mine;
    size_t n;
    struct holder other = holder_spawn(tap_dir, "s", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&other);
    CHECK_EQ(cachelock_acquire(tap_dir, "t", &mine), 0);
    int rc = cachelock_holders(tap_dir, "s", &h, &n);
    if (rc == -ENOSYS)
        SKIP("no Restart Manager and no FileProcessIdsUsingFileInformation here");
    CHECK_EQ(rc, 0);
    for (size_t i = 0; i < n; i++)
        CHECK(h[i].waiting == -1 && h[i].pid != (int)GetCurrentProcessId());
    int wine = on_wine();
    if (!wine) {
        CHECK(find(h, n, other.pid) != NULL);
        CHECK_STR_CONTAINS(find(h, n, other.pid)->command, "test_holders");
    }
    free(h);
    /* The calling process is never listed: it has the file open itself. */
    CHECK_EQ(cachelock_holders(tap_dir, "t", &h, &n), 0);
    CHECK_EQ(n, 0);
    CHECK(h == NULL);
    cachelock_release(mine);
    holder_release(&other);
    holder_finish(&other);
    CHECK_EQ(cachelock_holders(tap_dir, "missing", &h, &n), -ENOENT);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "missing.lock");
    if (wine)
        SKIP("wine lists nobody (FileProcessIdsUsingFileInformation is not implemented, "
             "RmGetList lists no process): the rest passed, the list only Windows can show");
}

static void test_status_of_a_cache_in_one_call(void)
{
    cachelock_source_status_t *st;
    cachelock_options_t any = CACHELOCK_OPTIONS_INIT;
    cachelock_t *odd;
    size_t n;

    CHECK_EQ(cachelock_status(tpath("nothing"), &st, &n), 0);
    CHECK_EQ(n, 0);
    CHECK(st == NULL);
    CHECK_EQ(cachelock_prepare(tap_dir, "free", 0), 0);
    CHECK_EQ(cachelock_prepare(tap_dir, "excl", 0), 0);
    struct holder other = holder_spawn(tap_dir, "excl", CACHELOCK_EXCLUSIVE);
    holder_wait_locked(&other);
    any.flags = CACHELOCK_F_ANYNAME;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "dot.", &any, &odd), 0);

    int rc = cachelock_status(tap_dir, &st, &n);
    if (rc == -ENOSYS)
        SKIP("no Restart Manager and no FileProcessIdsUsingFileInformation here");
    CHECK_EQ(rc, 0);
    CHECK_EQ(n, 3);
    CHECK(strcmp(st[0].source, "dot.") == 0 && strcmp(st[1].source, "excl") == 0 &&
          strcmp(st[2].source, "free") == 0);
    CHECK_EQ(st[0].count, 0);           /* ours: never listed */
    CHECK_EQ(st[2].count, 0);
    CHECK(st[2].holders == NULL);
    int wine = on_wine();
    if (!wine) {
        CHECK(find(st[1].holders, st[1].count, other.pid) != NULL);
        CHECK_EQ(st[1].holders[0].waiting, -1);
    }
    cachelock_status_free(st, n);
    cachelock_status_free(NULL, 0);
    cachelock_release(odd);
    holder_release(&other);
    holder_finish(&other);
    CHECK_EQ(cachelock_status(tap_dir, NULL, &n), -EINVAL);
    if (wine)
        SKIP("wine lists nobody (FileProcessIdsUsingFileInformation is not implemented, "
             "RmGetList lists no process): the rest passed, the lists only Windows can show");
}

TAP_MAIN(
    T(test_holders_lists_the_processes_that_have_the_file_open),
    T(test_status_of_a_cache_in_one_call),
)
#else
#include <sys/file.h>

/* The write ends of the pipes that keep earlier flockers alive: a later
 * child must not hold copies, or closing ours would not end them. */
static int keepers[8], nkeepers;

/* A process that flock(2)s path (mode LOCK_EX or LOCK_SH) and keeps it
 * until its pipe closes; returns once it holds, or once it is blocked
 * when wait_blocked is set (then it is a waiter). */
static pid_t flocker(const char *path, int op, int wait_blocked, int *pipe_out)
{
    int p[2], ready[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0 && pipe2(ready, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char c;
        for (int i = 0; i < nkeepers; i++)
            close(keepers[i]);
        close(p[1]);
        close(ready[0]);
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0)
            _exit(2);
        if (!wait_blocked) {
            if (flock(fd, op) != 0)
                _exit(3);
            send_byte(ready[1], 'L');
        } else if (flock(fd, op) != 0) {
            _exit(3);
        }
        while (read(p[0], &c, 1) == 1)
            ;
        _exit(0);
    }
    close(p[0]);
    close(ready[1]);
    if (wait_blocked)
        wait_blocked_in_flock(pid);
    else
        CHECK_EQ(recv_byte(ready[0]), 'L');
    close(ready[0]);
    *pipe_out = p[1];
    CHECK(nkeepers < 8);
    keepers[nkeepers++] = p[1];
    return pid;
}

static void finish(pid_t pid, int pipe_fd)
{
    int status;
    for (int i = 0; i < nkeepers; i++)
        if (keepers[i] == pipe_fd)
            keepers[i--] = keepers[--nkeepers];
    close(pipe_fd);
    CHECK(waitpid(pid, &status, 0) == pid);
}

static const cachelock_holder_t *find(const cachelock_holder_t *h, size_t n, pid_t pid,
                                      int waiting)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].pid == pid && h[i].waiting == waiting)
            return &h[i];
    return NULL;
}

static void test_holders_lists_holder_then_waiter_with_commands(void)
{
    linux_only("the portable build has no lock table: cachelock_holders() gives -ENOSYS");
    cachelock_holder_t *h;
    size_t n;
    int p1, p2;
    CHECK_EQ(cachelock_prepare(tap_dir, "s", 0), 0);
    const char *path = tpath(".locks/s.lock");
    pid_t holder = flocker(path, LOCK_EX, 0, &p1);
    pid_t waiter = flocker(path, LOCK_EX, 1, &p2);
    CHECK_EQ(cachelock_holders(tap_dir, "s", &h, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(h[0].pid == holder && !h[0].waiting && h[0].mode == CACHELOCK_EXCLUSIVE);
    CHECK(h[1].pid == waiter && h[1].waiting);
    CHECK_STR_CONTAINS(h[0].command, "test_holders");
    free(h);
    finish(holder, p1);
    finish(waiter, p2);
    CHECK_EQ(cachelock_holders(tap_dir, "s", &h, &n), 0);
    CHECK_EQ(n, 0);
    CHECK(h == NULL);
    CHECK_EQ(cachelock_holders(tap_dir, "missing", &h, &n), -ENOENT);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "missing.lock");
}

/* A process holding a source shared through three handles is one holder. */
static void test_one_process_is_one_holder(void)
{
    linux_only("the portable build has no lock table: cachelock_holders() gives -ENOSYS");
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *l[3];
    cachelock_holder_t *h;
    size_t n;
    int p;
    o.mode = CACHELOCK_SHARED;
    for (int i = 0; i < 3; i++)
        CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &l[i]), 0);
    pid_t other = flocker(tpath(".locks/s.lock"), LOCK_SH, 0, &p);
    CHECK_EQ(cachelock_holders(tap_dir, "s", &h, &n), 0);
    CHECK_EQ(n, 2);
    CHECK(find(h, n, getpid(), 0) != NULL && find(h, n, other, 0) != NULL);
    CHECK(h[0].mode == CACHELOCK_SHARED && h[1].mode == CACHELOCK_SHARED);
    free(h);
    for (int i = 0; i < 3; i++)
        cachelock_release(l[i]);
    finish(other, p);
}

static void test_status_of_a_cache_in_one_call(void)
{
    linux_only("the portable build has no lock table: cachelock_holders() gives -ENOSYS");
    cachelock_source_status_t *st;
    size_t n;
    int p1, p2, p3;
    cachelock_options_t any = CACHELOCK_OPTIONS_INIT;
    cachelock_t *mine, *odd;

    CHECK_EQ(cachelock_status(tpath("nothing"), &st, &n), 0);
    CHECK_EQ(n, 0);
    CHECK(st == NULL);
    CHECK_EQ(cachelock_prepare(tap_dir, "free", 0), 0);
    CHECK_EQ(cachelock_prepare(tap_dir, "shared", 0), 0);
    CHECK_EQ(cachelock_prepare(tap_dir, "excl", 0), 0);
    pid_t s1 = flocker(tpath(".locks/shared.lock"), LOCK_SH, 0, &p1);
    pid_t s2 = flocker(tpath(".locks/shared.lock"), LOCK_SH, 0, &p2);
    any.flags = CACHELOCK_F_ANYNAME;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "tools:beta", &any, &odd), 0);
    CHECK_EQ(cachelock_acquire(tap_dir, "excl", &mine), 0);
    pid_t w = flocker(tpath(".locks/excl.lock"), LOCK_EX, 1, &p3);

    CHECK_EQ(cachelock_status(tap_dir, &st, &n), 0);
    CHECK_EQ(n, 4);
    CHECK(strcmp(st[0].source, "excl") == 0 && strcmp(st[1].source, "free") == 0 &&
          strcmp(st[2].source, "shared") == 0 && strcmp(st[3].source, "tools:beta") == 0);
    CHECK_EQ(st[0].count, 2);
    CHECK(find(st[0].holders, 2, getpid(), 0) && find(st[0].holders, 2, w, 1));
    CHECK(st[0].holders[0].mode == CACHELOCK_EXCLUSIVE && !st[0].holders[0].waiting);
    CHECK_EQ(st[1].count, 0);
    CHECK(st[1].holders == NULL);
    CHECK_EQ(st[2].count, 2);
    CHECK(find(st[2].holders, 2, s1, 0) && find(st[2].holders, 2, s2, 0));
    CHECK_EQ(st[3].count, 1);
    CHECK(st[3].holders[0].pid == getpid());
    cachelock_status_free(st, n);
    cachelock_status_free(NULL, 0);

    finish(s1, p1);
    finish(s2, p2);
    cachelock_release(mine);
    cachelock_release(odd);
    finish(w, p3);
    CHECK_EQ(cachelock_status(tap_dir, NULL, &n), -EINVAL);
}

TAP_MAIN(
    T(test_holders_lists_holder_then_waiter_with_commands),
    T(test_one_process_is_one_holder),
    T(test_status_of_a_cache_in_one_call),
)
#endif
