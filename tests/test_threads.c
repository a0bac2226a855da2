/* test_threads.c - threads of one process, and the same-thread registry. */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>

#define THREADS 6
#define ROUNDS 300

static long counter;    /* deliberately unsynchronised but for the lock */
static int inside;

static void *increment(void *arg)
{
    (void)arg;
    for (int i = 0; i < ROUNDS; i++) {
        cachelock_t *lock;
        if (cachelock_acquire(tap_dir, "counter", &lock) != 0)
            return (void *)1;
        if (__atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST) != 1)
            return (void *)2;
        long v = counter;
        sched_yield();
        counter = v + 1;
        __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
        cachelock_release(lock);
    }
    return NULL;
}

static void test_exclusive_excludes_threads_of_one_process(void)
{
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, increment, NULL) == 0);
    for (int i = 0; i < THREADS; i++) {
        void *r;
        CHECK(pthread_join(t[i], &r) == 0);
        CHECK(r == NULL);
    }
    CHECK_EQ(counter, THREADS * ROUNDS);
}

static pthread_barrier_t barrier;

static void *hold_shared_at_barrier(void *arg)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    (void)arg;
    o.mode = CACHELOCK_SHARED;
    if (cachelock_acquire_ex(tap_dir, "s", &o, &lock) != 0)
        return (void *)1;
    /* Both threads hold it at the same time, or this never returns. */
    pthread_barrier_wait(&barrier);
    cachelock_release(lock);
    return NULL;
}

static void test_shared_locks_coexist_across_threads(void)
{
    pthread_t a, b;
    void *ra, *rb;
    pthread_barrier_init(&barrier, NULL, 2);
    CHECK(pthread_create(&a, NULL, hold_shared_at_barrier, NULL) == 0);
    CHECK(pthread_create(&b, NULL, hold_shared_at_barrier, NULL) == 0);
    pthread_join(a, &ra);
    pthread_join(b, &rb);
    CHECK(ra == NULL && rb == NULL);
}

static void *try_from_other_thread(void *arg)
{
    return (void *)(intptr_t)try_once(tap_dir, "s", *(cachelock_mode_t *)arg);
}

static int try_in_thread(cachelock_mode_t mode)
{
    pthread_t t;
    void *r;
    CHECK(pthread_create(&t, NULL, try_from_other_thread, &mode) == 0);
    pthread_join(t, &r);
    return (int)(intptr_t)r;
}

static void test_same_thread_reacquire_gives_edeadlk_at_once(void)
{
    cachelock_t *lock, *again = (cachelock_t *)&again;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    /* Blocking: would hang forever without the registry (the case alarm
     * turns a hang into a failure). */
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &again), -EDEADLK);
    CHECK(again == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "would deadlock");
    CHECK_STR_CONTAINS(cachelock_errmsg(), ".locks" SEP "s.lock");
    o.mode = CACHELOCK_SHARED;  /* a conflicting mode is the same */
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -EDEADLK);
    /* A try or a timed wait can end (another thread may release the lock):
     * they report busy and timed out, never -EDEADLK. */
    CHECK_EQ(cachelock_try_acquire(tap_dir, "s", &again), -EWOULDBLOCK);
    o.timeout_ms = 30;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -ETIMEDOUT);
    /* Another thread is simply busy, not deadlocked. */
    CHECK_EQ(try_in_thread(CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    /* Another source is fine. */
    CHECK_EQ(cachelock_acquire(tap_dir, "t", &again), 0);
    cachelock_release(again);
    cachelock_release(lock);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
}

static void test_same_thread_shared_twice_is_allowed(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *a, *b, *c;
    o.mode = CACHELOCK_SHARED;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &a), 0);
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &b), 0);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &c), -EDEADLK);
    cachelock_release(a);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &c), -EDEADLK);
    cachelock_release(b);
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &c), 0);
    cachelock_release(c);
}

static void test_registry_sees_through_symlinked_cache_dir(void)
{
    cachelock_t *lock, *again;
    CHECK(mkdir(tpath("real"), 0777) == 0);
#ifdef _WIN32
    if (!CreateSymbolicLinkA(tpath("alias"), tpath("real"), SYMBOLIC_LINK_FLAG_DIRECTORY |
                             SYMBOLIC_LINK_FLAG_ALLOW_UNPRIVILEGED_CREATE))
        SKIP("cannot make symbolic links here (Developer Mode or the privilege is needed)");
    if (!(GetFileAttributesA(tpath("alias")) & FILE_ATTRIBUTE_REPARSE_POINT) ||
        GetFileAttributesA(tpath("alias")) == INVALID_FILE_ATTRIBUTES)
        SKIP("CreateSymbolicLink succeeded but made no link (wine 8 does that)");
#else
    CHECK(symlink(tpath("real"), tpath("alias")) == 0);
#endif
    CHECK_EQ(cachelock_acquire(tpath("real"), "s", &lock), 0);
    CHECK_EQ(cachelock_acquire(tpath("alias"), "s", &again), -EDEADLK);
    cachelock_release(lock);
}

struct msg_arg { const char *name; char msg[512]; pthread_barrier_t *b; };

static void *fail_and_read_message(void *p)
{
    struct msg_arg *a = p;
    cachelock_t *lock;
    cachelock_acquire("/nowhere", a->name, &lock);
    pthread_barrier_wait(a->b);     /* both have failed before either reads */
    snprintf(a->msg, sizeof a->msg, "%s", cachelock_errmsg());
    return NULL;
}

/* Two threads fail with DIFFERENT messages at the same time: each must read
 * its own (a buffer shared by the process would show one of them twice). */
static void test_error_messages_are_per_thread(void)
{
    pthread_barrier_t b;
    struct msg_arg x = { "first/bad", "", &b }, y = { "second\\bad", "", &b };
    pthread_t tx, ty;
    pthread_barrier_init(&b, NULL, 2);
    CHECK(pthread_create(&tx, NULL, fail_and_read_message, &x) == 0);
    CHECK(pthread_create(&ty, NULL, fail_and_read_message, &y) == 0);
    pthread_join(tx, NULL);
    pthread_join(ty, NULL);
    CHECK_STR_CONTAINS(x.msg, "'first/bad'");
    CHECK(strstr(x.msg, "second") == NULL);
    CHECK_STR_CONTAINS(y.msg, "second");
    CHECK(strstr(y.msg, "first") == NULL);
    /* And this thread, which failed at nothing, has no message. */
    CHECK_EQ(cachelock_errmsg()[0], '\0');
    cachelock_t *lock;
#ifdef _WIN32
    /* A cache below a file cannot be made. */
    const char *nowhere = tpath("file/nonexistent-dir");
    close(open(tpath("file"), O_CREAT | O_WRONLY, 0666));
#else
    const char *nowhere = "/proc/1/nonexistent-dir";
#endif
    CHECK_EQ(cachelock_acquire(nowhere, "s", &lock) < 0, 1);
    char mine[512];
    snprintf(mine, sizeof mine, "%s", cachelock_errmsg());
    CHECK_STR_CONTAINS(mine, nowhere);
    CHECK(mine[0] >= 'a' && mine[0] <= 'z');
    CHECK(mine[strlen(mine) - 1] != '.');
}

TAP_MAIN(
    T(test_exclusive_excludes_threads_of_one_process, 30),
    T(test_shared_locks_coexist_across_threads),
    T(test_same_thread_reacquire_gives_edeadlk_at_once),
    T(test_same_thread_shared_twice_is_allowed),
    T(test_registry_sees_through_symlinked_cache_dir),
    T(test_error_messages_are_per_thread),
)
