/*
 * test_ownership.c - which thread owns a held lock, and what -EDEADLK
 * means.
 *
 * What it proves:
 *   - only a BLOCKING acquire by the thread that owns a conflicting hold
 *     reports -EDEADLK, at once; a try reports busy, a timed acquire times
 *     out, and an asynchronous wait waits (two tasks of one event loop
 *     hand a lock to each other);
 *   - a lock taken with CACHELOCK_F_UNOWNED, or given up with
 *     cachelock_disown(), can be moved between the threads of a pool: a
 *     worker that runs another blocking acquire of the same source waits
 *     for the release by another worker, and mutual exclusion holds;
 *   - ownership ends with the owning thread: a new thread, even one with
 *     the exited thread's pthread_t, waits for the lock it left behind;
 *   - cachelock_disown(), cachelock_fd() and cachelock_mode() refuse NULL
 *     and tokens that are no longer held, even when their slot holds a new
 *     lock.
 *
 * Built against a version without CACHELOCK_F_UNOWNED (0.2.0), the pool
 * cases run with plain acquires and no disown, which is all such a program
 * could do, and fail with the -EDEADLK that version reported.
 */
#include "helpers.h"

#include <pthread.h>
#include <sched.h>

#ifdef CACHELOCK_F_UNOWNED
#define UNOWNED CACHELOCK_F_UNOWNED
static int disown(cachelock_t *lock)
{
    return cachelock_disown(lock);
}
#else
#define UNOWNED 0u
static int disown(cachelock_t *lock)
{
    (void)lock;
    return 0;
}
#endif

static int acquire(const char *source, cachelock_t **lock)
{
    return cachelock_acquire(tap_dir, source, lock);
}

/* Until this process has a thread blocked in flock(2) (1), or *done is
 * set first (0): a thread that fails at once must not leave the caller
 * waiting for a block that never comes.  The case's alarm bounds it.
 * Windows has no table that shows a blocked waiter: there "blocked" is
 * "has not returned within 50 ms". */
static int wait_blocked_or_done(const int *done)
{
#ifdef _WIN32
    for (int ms = 0; ms < 50; ms++) {
        if (__atomic_load_n(done, __ATOMIC_ACQUIRE))
            return 0;
        Sleep(1);
    }
    return 1;
#else
    while (!blocked_in_flock(getpid())) {
        if (__atomic_load_n(done, __ATOMIC_ACQUIRE))
            return 0;
        usleep(1000);
    }
    return 1;
#endif
}

/* ---- a blocking acquire by this thread, watched ---------------------------- */

struct watch {
    cachelock_t *held;      /* released by the watcher */
    int done;               /* atomic: the acquire returned */
    int saw_blocked;        /* the watcher saw it blocked in flock(2) */
};

static void *release_when_blocked(void *arg)
{
    struct watch *w = arg;
    w->saw_blocked = wait_blocked_or_done(&w->done);
    cachelock_release(w->held);
    return NULL;
}

/* A blocking acquire of s by the calling thread while another thread
 * waits to see it blocked in flock(2) and then releases held (at the end
 * in any case), so that a wait never hangs the case.  Returns the
 * acquire's code; *waited says whether it was seen blocked. */
static int watched_blocking_acquire(cachelock_t *held, unsigned flags, int *waited)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    struct watch w = { held, 0, 0 };
    cachelock_t *lock = NULL;
    pthread_t t;
    o.flags = flags;
    CHECK(pthread_create(&t, NULL, release_when_blocked, &w) == 0);
    int rc = cachelock_acquire_ex(tap_dir, "s", &o, &lock);
    __atomic_store_n(&w.done, 1, __ATOMIC_RELEASE);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK((rc == 0) == (lock != NULL));
    cachelock_release(lock);
    *waited = w.saw_blocked;
    return rc;
}

/* ---- a pool of worker threads ------------------------------------------------- */

/*
 * Four workers run 200 acquire jobs, one at a time.  Each job takes s
 * (blocking) and leaves the lock behind; another worker releases it later.
 * A pool runs into the case the flag is for by chance - a worker runs the
 * next blocking acquire of s while the lock it took for an earlier job is
 * still held - and the scheduling rules below make it certain:
 *
 *   - an odd-numbered job runs on the worker that ran the job before it,
 *     whose lock is still held; an even-numbered one on any other worker;
 *   - a held lock is released by a worker that did not take it, and only
 *     once the next job's acquire is seen blocked in flock(2) (only one
 *     acquire runs at a time, so a thread of this process blocked there is
 *     that one), or has returned, or there is no next job.
 */

#define WORKERS 4
#ifdef _WIN32
#define JOBS 40         /* each waits for a blocked acquire by time there */
#else
#define JOBS 200
#endif

enum handoff { BY_FLAG, BY_DISOWN };

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    enum handoff handoff;
    int next_job;               /* jobs started so far */
    int last_by;                /* the worker of the latest job, -1 */
    int acquiring;              /* a job's acquire runs */
    int acquire_returned;       /* atomic: and has returned */
    cachelock_t *held;          /* the lock waiting for its release */
    int held_by;
    int releasing;              /* a worker is about to release one */
    /* results */
    int acquired, deadlocks, errors, self_contended, released_while_blocked;
    long counter;               /* guarded by the lock s alone */
};

static int inside;              /* atomic: holders of s right now */
static int overlaps;            /* atomic: times inside exceeded 1 */

struct worker {
    struct pool *p;
    int id;
    pthread_t t;
};

/* Take s and count; the lock, or NULL after a failure (counted).  The
 * worker leaves it for another one to release. */
static cachelock_t *acquire_job(struct pool *p)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    o.flags = p->handoff == BY_FLAG ? UNOWNED : 0u;
    int rc = cachelock_acquire_ex(tap_dir, "s", &o, &lock);
    __atomic_store_n(&p->acquire_returned, 1, __ATOMIC_RELEASE);
    if (rc == 0 && p->handoff == BY_DISOWN && (rc = disown(lock)) != 0) {
        cachelock_release(lock);
        rc = -1000;
    }
    if (rc != 0) {
        pthread_mutex_lock(&p->mu);
        if (rc == -EDEADLK)
            p->deadlocks++;
        else
            p->errors++;
        pthread_mutex_unlock(&p->mu);
        return NULL;
    }
    if (__atomic_add_fetch(&inside, 1, __ATOMIC_SEQ_CST) != 1)
        __atomic_add_fetch(&overlaps, 1, __ATOMIC_SEQ_CST);
    long v = p->counter;
    sched_yield();
    p->counter = v + 1;
    return lock;
}

/* May worker me start the next job now?  Called with mu held. */
static int may_start(const struct pool *p, int me)
{
    if (p->next_job == JOBS || p->acquiring)
        return 0;
    return p->next_job % 2 == 1 ? me == p->last_by : me != p->last_by;
}

/* May worker me release the held lock now?  Called with mu held. */
static int may_release(const struct pool *p, int me)
{
    return p->held && p->held_by != me && !p->releasing &&
           (p->acquiring || p->next_job == JOBS);
}

static void *worker(void *arg)
{
    struct worker *me = arg;
    struct pool *p = me->p;
    pthread_mutex_lock(&p->mu);
    while (p->next_job < JOBS || p->acquiring || p->held || p->releasing) {
        if (may_start(p, me->id)) {
            if (p->held && p->held_by == me->id)
                p->self_contended++;
            p->next_job++;
            p->acquiring = 1;
            __atomic_store_n(&p->acquire_returned, 0, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&p->mu);
            cachelock_t *lock = acquire_job(p);
            pthread_mutex_lock(&p->mu);
            if (lock) {
                if (p->held)
                    p->errors++;    /* cannot happen: s was held meanwhile */
                p->held = lock;
                p->held_by = me->id;
                p->acquired++;
            }
            /* In one step with the above: a releaser must never take this
             * lock for the previous one, whose next acquire is under way. */
            p->acquiring = 0;
            p->last_by = me->id;
        } else if (may_release(p, me->id)) {
            cachelock_t *lock = p->held;
            int next = p->acquiring;
            p->held = NULL;
            p->releasing = 1;
            pthread_mutex_unlock(&p->mu);
            int blocked = next && wait_blocked_or_done(&p->acquire_returned);
            __atomic_sub_fetch(&inside, 1, __ATOMIC_SEQ_CST);
            cachelock_release(lock);
            pthread_mutex_lock(&p->mu);
            p->releasing = 0;
            p->released_while_blocked += blocked;
        } else {
            pthread_cond_wait(&p->cv, &p->mu);
            continue;
        }
        pthread_cond_broadcast(&p->cv);
    }
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void run_pool(enum handoff handoff)
{
    static struct pool p;
    struct worker w[WORKERS];
    CHECK(pthread_mutex_init(&p.mu, NULL) == 0 && pthread_cond_init(&p.cv, NULL) == 0);
    p.handoff = handoff;
    p.last_by = -1;
    pthread_mutex_lock(&p.mu);      /* all start together */
    for (int i = 0; i < WORKERS; i++) {
        w[i].p = &p;
        w[i].id = i;
        CHECK(pthread_create(&w[i].t, NULL, worker, &w[i]) == 0);
    }
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(w[i].t, NULL) == 0);
    tap_diag("%d of %d jobs: blocking acquire while the lock this thread took before was held; "
             "%d locks released by another thread while the next acquire was blocked",
             p.self_contended, JOBS, p.released_while_blocked);
    CHECK_EQ(p.deadlocks, 0);
    CHECK_EQ(p.errors, 0);
    CHECK_EQ(__atomic_load_n(&overlaps, __ATOMIC_SEQ_CST), 0);
    CHECK_EQ(p.acquired, JOBS);
    CHECK_EQ(p.counter, JOBS);
    CHECK_EQ(p.self_contended, JOBS / 2);
    CHECK_EQ(p.released_while_blocked, JOBS - 1);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

/* 0.2.0 (no flag): every odd job failed with -EDEADLK. */
static void test_a_thread_pool_moves_unowned_locks_between_workers(void)
{
    run_pool(BY_FLAG);
}

static void test_a_thread_pool_moves_disowned_locks_between_workers(void)
{
    run_pool(BY_DISOWN);
}

/* ---- what still reports -EDEADLK ---------------------------------------------- */

/* A thread that owns s and asks for it again, blocking, would wait for
 * itself for ever: -EDEADLK at once, whatever flags the new acquire has,
 * and also when it holds an unowned lock of s besides. */
static void test_a_blocking_acquire_of_a_lock_the_thread_owns_reports_edeadlk(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock, *again = (cachelock_t *)&again;
    int waited;
    CHECK_EQ(acquire("s", &lock), 0);
    int64_t t0 = now_us();
    CHECK_EQ(acquire("s", &again), -EDEADLK);
    CHECK(again == NULL);
    o.mode = CACHELOCK_SHARED;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -EDEADLK);
    CHECK(now_us() - t0 < 1000000);
    /* Unowned or not, the new acquire would wait for the owned hold. */
    CHECK_EQ(watched_blocking_acquire(lock, UNOWNED, &waited), -EDEADLK);
    CHECK(!waited);
}

/* ---- an event loop ------------------------------------------------------------ */

enum task_state { T_IDLE, T_WAITING, T_HOLDING, T_DONE };

struct task {
    const char *name;
    enum task_state state;
    cachelock_wait_t *w;
    cachelock_t *lock;
    int steps;
};

static void task_start(struct task *t)
{
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", NULL, &t->w), 0);
    t->state = T_WAITING;
}

/* One step of a waiting task: it gets the lock or goes on waiting;
 * anything else fails the case. */
static void task_step(struct task *t)
{
    int rc = cachelock_wait_step(t->w, &t->lock);
    t->steps++;
    if (rc == -EINPROGRESS)
        return;
    if (rc != 0)
        tap_fail(__FILE__, __LINE__, "task %s: step %d returned %d (%s)", t->name, t->steps,
                 rc, cachelock_strerror(rc));
    cachelock_wait_free(t->w);
    t->w = NULL;
    t->state = T_HOLDING;
}

/* Two tasks of one single-threaded event loop: task one takes s through
 * the asynchronous interface and holds it over a few turns of the loop;
 * task two waits for s meanwhile (0.2.0: its first step reported
 * -EDEADLK, as the thread "held" s), and gets it once task one releases it
 * inside the loop. */
static void test_two_tasks_of_one_event_loop_hand_a_lock_over(void)
{
    struct task one = { "one", T_IDLE, NULL, NULL, 0 }, two = { "two", T_IDLE, NULL, NULL, 0 };
    struct task *tasks[2] = { &one, &two };

    for (int turn = 0; one.state != T_DONE || two.state != T_DONE; turn++) {
        CHECK(turn < 100000);
        /* Run what can run. */
        if (one.state == T_IDLE)
            task_start(&one);
        if (one.state == T_WAITING)
            task_step(&one);
        if (two.state == T_IDLE && one.state == T_HOLDING)
            task_start(&two);
        if (two.state == T_WAITING) {
            task_step(&two);
            if (two.state == T_HOLDING && one.state != T_DONE)
                tap_fail(__FILE__, __LINE__, "task two got s while task one held it");
        }
        if (one.state == T_HOLDING && two.state == T_WAITING && two.steps >= 3) {
            cachelock_release(one.lock);
            one.state = T_DONE;
        }
        if (two.state == T_HOLDING) {
            CHECK_EQ(cachelock_mode(two.lock), CACHELOCK_EXCLUSIVE);
            cachelock_release(two.lock);
            two.state = T_DONE;
        }
        /* Sleep until a waiting task's descriptor (its event on Windows)
         * or re-check is due. */
#ifdef _WIN32
        HANDLE p[2];
#else
        struct pollfd p[2];
#endif
        int n = 0, timeout = -1;
        for (int i = 0; i < 2; i++) {
            if (tasks[i]->state != T_WAITING)
                continue;
            int fd = cachelock_wait_fd(tasks[i]->w), ms = cachelock_wait_timeout(tasks[i]->w);
#ifdef _WIN32
            (void)fd;
            if (cachelock_wait_handle(tasks[i]->w))
                p[n++] = cachelock_wait_handle(tasks[i]->w);
#else
            if (fd >= 0) {
                p[n].fd = fd;
                p[n].events = POLLIN;
                p[n++].revents = 0;
            }
#endif
            if (timeout < 0 || ms < timeout)
                timeout = ms;
        }
        if (timeout < 0)
            timeout = 0;            /* nobody waits: run again now */
#ifdef _WIN32
        if (n)
            WaitForMultipleObjects((DWORD)n, p, FALSE, (DWORD)timeout);
        else
            Sleep((DWORD)timeout);
#else
        CHECK(poll(p, (nfds_t)n, timeout) >= 0);
#endif
    }
    tap_diag("task two stepped %d times", two.steps);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
}

/* A try, a timed acquire and asynchronous waits with a deadline by the
 * thread that holds s: busy and timed out, never -EDEADLK (0.2.0 reported
 * -EDEADLK for all of them). */
static void test_a_timed_acquire_or_try_of_a_lock_the_thread_holds_is_busy(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock, *again = NULL;
    cachelock_wait_t *w;
    CHECK_EQ(acquire("s", &lock), 0);
    o.timeout_ms = 50;
    int64_t t0 = now_us();
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -ETIMEDOUT);
    CHECK(now_us() - t0 >= 45000);
    CHECK(again == NULL);
    CHECK_EQ(cachelock_try_acquire(tap_dir, "s", &again), -EWOULDBLOCK);
    o.mode = CACHELOCK_SHARED;
    o.timeout_ms = 0;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -EWOULDBLOCK);
    o.timeout_ms = 20;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -ETIMEDOUT);
    /* The same through the asynchronous interface. */
    o.mode = CACHELOCK_EXCLUSIVE;
    o.timeout_ms = 0;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &again), -EWOULDBLOCK);
    cachelock_wait_free(w);
    o.timeout_ms = 30;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    int rc;
    while ((rc = cachelock_wait_step(w, &again)) == -EINPROGRESS) {
#ifdef _WIN32
        void *event = cachelock_wait_handle(w);
        if (event)
            WaitForSingleObject(event, (DWORD)cachelock_wait_timeout(w));
        else
            Sleep((DWORD)cachelock_wait_timeout(w));
#else
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        CHECK(poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w)) >= 0);
#endif
    }
    CHECK_EQ(rc, -ETIMEDOUT);
    cachelock_wait_free(w);
    cachelock_release(lock);
    o.timeout_ms = 50;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), 0);
    cachelock_release(again);
}

/* ---- ownership ends with the thread ---------------------------------------- */

struct in_thread {
    cachelock_t *lock;
    int rc;
    int done;               /* atomic */
};

static void *acquire_in_thread(void *arg)
{
    struct in_thread *a = arg;
    a->rc = acquire("s", &a->lock);
    __atomic_store_n(&a->done, 1, __ATOMIC_RELEASE);
    return NULL;
}

/* A thread takes s and exits without releasing it (main keeps the handle).
 * A new thread, which glibc usually gives the exited thread's pthread_t,
 * asks for s, blocking: it owns nothing, so it must wait until main
 * releases the old lock.  (0.2.0 recorded owners by pthread_t and failed
 * the new thread with -EDEADLK when the value was reused.) */
static void test_a_lock_left_by_an_exited_thread_is_owned_by_nobody(void)
{
    struct in_thread first = { NULL, -1, 0 }, second = { NULL, -1, 0 };
    pthread_t t1, t2;
    CHECK(pthread_create(&t1, NULL, acquire_in_thread, &first) == 0);
    CHECK(pthread_join(t1, NULL) == 0);
    CHECK_EQ(first.rc, 0);
    CHECK(pthread_create(&t2, NULL, acquire_in_thread, &second) == 0);
    tap_diag("the new thread %s the exited thread's pthread_t",
             pthread_equal(t1, t2) ? "reuses" : "does not reuse");
    if (!wait_blocked_or_done(&second.done)) {
        CHECK(pthread_join(t2, NULL) == 0);
        cachelock_release(second.lock);
        tap_fail(__FILE__, __LINE__, "the new thread's blocking acquire returned %d (%s) "
                 "instead of waiting", second.rc, cachelock_strerror(second.rc));
    }
    cachelock_release(first.lock);
    CHECK(pthread_join(t2, NULL) == 0);
    CHECK_EQ(second.rc, 0);
    CHECK_EQ(cachelock_mode(second.lock), CACHELOCK_EXCLUSIVE);
    cachelock_release(second.lock);
}

/* ---- cachelock_disown() --------------------------------------------------------- */

/* The thread that took s hands it to another thread after disowning it;
 * its own blocking acquire of s then waits for the other thread's release
 * instead of failing (0.2.0, which could not disown: -EDEADLK).  The lock
 * it then gets is owned again. */
static void test_after_disown_the_acquiring_thread_waits_for_its_old_lock(void)
{
    cachelock_t *lock;
    int waited;
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK_EQ(disown(lock), 0);
    CHECK_EQ(cachelock_mode(lock), CACHELOCK_EXCLUSIVE);   /* still held */
    CHECK_EQ(watched_blocking_acquire(lock, 0, &waited), 0);
    CHECK(waited);
    /* Owned by default: the same question now has the other answer. */
    CHECK_EQ(acquire("s", &lock), 0);
    CHECK_EQ(watched_blocking_acquire(lock, 0, &waited), -EDEADLK);
    CHECK(!waited);
}

/* NULL and tokens that are not held are refused, also once the slot of a
 * released token holds a new lock of the same source (0.2.0 read the
 * released handle, kept for reuse, and returned its descriptor and mode). */
static void test_disown_fd_and_mode_refuse_null_and_released_tokens(void)
{
    cachelock_t *old, *cur;
    int waited;
    CHECK_EQ(cachelock_fd(NULL), -EINVAL);
    CHECK_EQ(cachelock_mode(NULL), -EINVAL);
#ifdef CACHELOCK_F_UNOWNED
    CHECK_EQ(cachelock_disown(NULL), -EINVAL);
#endif
    CHECK_EQ(acquire("s", &old), 0);
    CHECK_EQ(cachelock_mode(old), CACHELOCK_EXCLUSIVE);
    cachelock_release(old);
    CHECK_EQ(cachelock_fd(old), -EINVAL);
    CHECK_EQ(cachelock_mode(old), -EINVAL);
#ifdef CACHELOCK_F_UNOWNED
    CHECK_EQ(cachelock_disown(old), -EINVAL);
#endif
    /* The released file is reused for the next hold. */
    CHECK_EQ(acquire("s", &cur), 0);
    CHECK_EQ(cachelock_fd(old), -EINVAL);
    CHECK_EQ(cachelock_mode(old), -EINVAL);
#ifdef _WIN32
    CHECK(cachelock_handle(cur) != NULL);
#else
    CHECK(cachelock_fd(cur) >= 3);
#endif
    CHECK_EQ(cachelock_mode(cur), CACHELOCK_EXCLUSIVE);
#ifdef CACHELOCK_F_UNOWNED
    CHECK_EQ(cachelock_disown(old), -EINVAL);
    /* ... and did not disown the new hold: this thread still owns it. */
    CHECK_EQ(watched_blocking_acquire(cur, 0, &waited), -EDEADLK);
    CHECK(!waited);
#else
    (void)waited;
    cachelock_release(cur);
#endif
}

TAP_MAIN(
    T(test_a_thread_pool_moves_unowned_locks_between_workers, 10),
    T(test_a_thread_pool_moves_disowned_locks_between_workers, 10),
    T(test_a_blocking_acquire_of_a_lock_the_thread_owns_reports_edeadlk, 5),
    T(test_two_tasks_of_one_event_loop_hand_a_lock_over, 5),
    T(test_a_timed_acquire_or_try_of_a_lock_the_thread_holds_is_busy, 5),
    T(test_a_lock_left_by_an_exited_thread_is_owned_by_nobody, 5),
    T(test_after_disown_the_acquiring_thread_waits_for_its_old_lock, 5),
    T(test_disown_fd_and_mode_refuse_null_and_released_tokens, 5),
)
