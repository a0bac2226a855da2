/* test_prune.c - pruning removes only unheld lock files and never breaks
 * mutual exclusion among users of the library. */
#include "helpers.h"

#ifndef _WIN32
#include <sched.h>
#include <sys/mman.h>
#include <sys/time.h>
#endif

struct seen { char name[64]; int status; int err; };
struct log { struct seen v[32]; int n; };

static void record(const char *source, cachelock_prune_status_t status, int err, void *ctx)
{
    struct log *l = ctx;
    if (l->n < 32) {
        snprintf(l->v[l->n].name, sizeof l->v[0].name, "%s", source);
        l->v[l->n].status = (int)status;
        l->v[l->n].err = err;
        l->n++;
    }
}

static int status_of(const struct log *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].name, name) == 0)
            return l->v[i].status;
    return -1;
}

static void make_sources(const char *const *names, int n)
{
    for (int i = 0; i < n; i++) {
        cachelock_t *lock;
        CHECK_EQ(cachelock_acquire(tap_dir, names[i], &lock), 0);
        cachelock_release(lock);
    }
}

static void test_prune_removes_unheld_and_skips_held(void)
{
    static const char *const names[] = { "a", "b", "c" };
    struct log l = { .n = 0 };
    make_sources(names, 3);
    struct holder h = holder_spawn(tap_dir, "b", CACHELOCK_SHARED);
    holder_wait_locked(&h);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, record, &l), 2);
    CHECK_EQ(status_of(&l, "a"), CACHELOCK_PRUNE_REMOVED);
    CHECK_EQ(status_of(&l, "b"), CACHELOCK_PRUNE_BUSY);
    CHECK_EQ(status_of(&l, "c"), CACHELOCK_PRUNE_REMOVED);
    CHECK(access(tpath(".locks/a.lock"), F_OK) != 0);
    CHECK(access(tpath(".locks/b.lock"), F_OK) == 0);
    CHECK(access(tpath(".locks/c.lock"), F_OK) != 0);
    /* The held lock is still held. */
    CHECK_EQ(try_once(tap_dir, "b", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    holder_release(&h);
    holder_finish(&h);
}

static void test_prune_dry_run_removes_nothing(void)
{
    static const char *const names[] = { "a", "b" };
    struct log l = { .n = 0 };
    make_sources(names, 2);
    CHECK_EQ(cachelock_prune(tap_dir, 0, CACHELOCK_PRUNE_DRY_RUN, record, &l), 2);
    CHECK(access(tpath(".locks/a.lock"), F_OK) == 0);
    CHECK(access(tpath(".locks/b.lock"), F_OK) == 0);
}

static void test_prune_older_than_keeps_recent_files(void)
{
    static const char *const names[] = { "old", "new" };
    struct log l = { .n = 0 };
    make_sources(names, 2);
#ifdef _WIN32
    /* Two hours ago, in 100 ns units since 1601. */
    FILETIME now, past;
    GetSystemTimeAsFileTime(&now);
    uint64_t t = ((uint64_t)now.dwHighDateTime << 32 | now.dwLowDateTime) - 7200ull * 10000000ull;
    past.dwLowDateTime = (DWORD)t;
    past.dwHighDateTime = (DWORD)(t >> 32);
    HANDLE f = CreateFileA(tpath(".locks/old.lock"), FILE_WRITE_ATTRIBUTES, FILE_SHARE_READ |
                           FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING, 0, NULL);
    CHECK(f != INVALID_HANDLE_VALUE && SetFileTime(f, &past, &past, &past));
    CloseHandle(f);
#else
    struct timeval past[2] = { { time(NULL) - 7200, 0 }, { time(NULL) - 7200, 0 } };
    CHECK(utimes(tpath(".locks/old.lock"), past) == 0);
#endif
    CHECK_EQ(cachelock_prune(tap_dir, 3600 * 1000L, 0, record, &l), 1);
    CHECK_EQ(status_of(&l, "old"), CACHELOCK_PRUNE_REMOVED);
    CHECK_EQ(status_of(&l, "new"), CACHELOCK_PRUNE_RECENT);
    CHECK(access(tpath(".locks/new.lock"), F_OK) == 0);
}

static void test_prune_skips_locks_of_the_calling_thread(void)
{
    cachelock_t *lock;
    struct log l = { .n = 0 };
    CHECK_EQ(cachelock_acquire(tap_dir, "mine", &lock), 0);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, record, &l), 0);
    CHECK_EQ(status_of(&l, "mine"), CACHELOCK_PRUNE_BUSY);
    CHECK_EQ(l.v[0].err, -EWOULDBLOCK);
    cachelock_release(lock);
}

static void test_prune_of_missing_cache_and_bad_arguments(void)
{
    CHECK_EQ(cachelock_prune(tpath("nothing-here"), 0, 0, NULL, NULL), 0);
    CHECK(access(tpath("nothing-here"), F_OK) != 0);
    CHECK_EQ(cachelock_prune(tap_dir, -1, 0, NULL, NULL), -EINVAL);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0x10, NULL, NULL), -EINVAL);
    CHECK_EQ(cachelock_prune(NULL, 0, 0, NULL, NULL), -EINVAL);
}

/* Workers increment a counter under the lock while a pruner removes the
 * lock file as often as it can.  Shared memory counts how many hold the
 * lock at once; it must never exceed one, and no increment may be lost.
 * (On Windows: processes of the program again, a counter file, and a
 * marker file that only one may create at a time.) */
#define WORKERS 4
#define ROUNDS 300

#ifdef _WIN32
static void test_prune_in_a_loop_never_breaks_mutual_exclusion(void)
{
    struct holder w[WORKERS];
    char rounds[16];
    int prunes = 0, running = WORKERS;
    FILE *f = fopen(tpath("counter"), "w");
    CHECK(f && fputs("0", f) >= 0 && fclose(f) == 0);
    snprintf(rounds, sizeof rounds, "%d", ROUNDS);
    for (int i = 0; i < WORKERS; i++) {
        const char *argv[] = { "increment", tap_dir, "hot", rounds, tpath("counter"),
                               tpath("inside") };
        w[i] = helper_spawn(6, argv);
    }
    while (running > 0) {
        int n = cachelock_prune(tap_dir, 0, 0, NULL, NULL);
        if (n > 0)
            prunes += n;
        running = 0;
        for (int i = 0; i < WORKERS; i++)
            running += WaitForSingleObject(w[i].process, 0) == WAIT_TIMEOUT;
    }
    for (int i = 0; i < WORKERS; i++)
        CHECK_EQ(helper_wait(&w[i]), 0);        /* 5: two held the lock at once */
    long counter = -1;
    f = fopen(tpath("counter"), "r");
    CHECK(f && fscanf(f, "%ld", &counter) == 1);
    fclose(f);
    tap_diag("%ld increments, %d files pruned meanwhile", counter, prunes);
    CHECK_EQ(counter, WORKERS * ROUNDS);
    CHECK(prunes > 0);
}
#else
static void test_prune_in_a_loop_never_breaks_mutual_exclusion(void)
{
    struct shared { int inside, max_inside, counter, stop, prunes; } *sh;
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    CHECK(sh != MAP_FAILED);
    memset(sh, 0, sizeof *sh);

    pid_t pruner = fork();
    if (pruner == 0) {
        while (!__atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST)) {
            int n = cachelock_prune(tap_dir, 0, 0, NULL, NULL);
            if (n > 0)
                __atomic_add_fetch(&sh->prunes, n, __ATOMIC_SEQ_CST);
        }
        _exit(0);
    }
    pid_t w[WORKERS];
    for (int i = 0; i < WORKERS; i++) {
        w[i] = fork();
        if (w[i] == 0) {
            for (int r = 0; r < ROUNDS; r++) {
                cachelock_t *lock;
                if (cachelock_acquire(tap_dir, "hot", &lock) != 0)
                    _exit(2);
                int in = __atomic_add_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
                if (in > __atomic_load_n(&sh->max_inside, __ATOMIC_SEQ_CST))
                    __atomic_store_n(&sh->max_inside, in, __ATOMIC_SEQ_CST);
                int v = sh->counter;
                sched_yield();
                sh->counter = v + 1;
                __atomic_sub_fetch(&sh->inside, 1, __ATOMIC_SEQ_CST);
                cachelock_release(lock);
            }
            _exit(0);
        }
    }
    for (int i = 0; i < WORKERS; i++) {
        int status;
        CHECK(waitpid(w[i], &status, 0) == w[i]);
        CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    waitpid(pruner, NULL, 0);
    tap_diag("%d increments, %d files pruned meanwhile", sh->counter, sh->prunes);
    CHECK_EQ(sh->max_inside, 1);
    CHECK_EQ(sh->counter, WORKERS * ROUNDS);
    CHECK(sh->prunes > 0);
}
#endif

TAP_MAIN(
    T(test_prune_removes_unheld_and_skips_held),
    T(test_prune_dry_run_removes_nothing),
    T(test_prune_older_than_keeps_recent_files),
    T(test_prune_skips_locks_of_the_calling_thread),
    T(test_prune_of_missing_cache_and_bad_arguments),
    T(test_prune_in_a_loop_never_breaks_mutual_exclusion, 60),
)
