/*
 * torture_chaos.c - locks under renames, _Fork() children, a program that
 * closes the library's descriptors, and a thread pool that hands locks from
 * thread to thread.  `make torture` runs it after tests/torture.
 *
 *   torture_chaos [SECONDS [PARTS]]   (default 10, or $TORTURE_SECONDS)
 *
 * PARTS is a comma-separated subset of renames,fork,daemon,pool (default:
 * all).  Plain worker processes always run.  Exit status: 0 clean, 1 a
 * violation or a hang, 2 the test could not be set up.
 *
 * All parts run at once, in separate processes, for SECONDS:
 *
 *   renamer   renames, every 0.5-3 ms, (a) a lock file away
 *             (x.lock -> x.lock.old-N), (b) .locks -> .locks.old-N, or
 *             (c) the cache directory -> cache.old-N (an absolute path; the
 *             library mkdir -p's it again), and removes the old copies
 *             (rm -rf) every 64 renames.
 *   workers   processes (some with two threads) that take the three
 *             sources of the renamed cache: blocking, try, timed and
 *             asynchronous, exclusive and shared.
 *   fork      single-threaded workers that also make children with _Fork()
 *             (no atfork handlers run), sometimes while holding a lock,
 *             which the child then releases (that must only close the
 *             child's copy).  Children take the same sources and exit; the
 *             parent goes on at once, so a child that reused the parent's
 *             kept descriptors would share its locks.  Skipped without
 *             _Fork() (glibc < 2.34).
 *   daemon    a process that, like a daemonising helper, closes all its
 *             descriptors >= 3 (close_range) behind the library's back:
 *             kept lock files, idle inotify instances, a held lock and the
 *             lock file and inotify instance of an asynchronous wait in
 *             progress (held busy by a helper process).  It opens its own
 *             "tap" files under the freed numbers, with a marker in each,
 *             the offset at 0, and every other one flock(LOCK_SH)ed by
 *             itself; every other cycle, the numbers that held inotify
 *             instances get eventfds with a count in them instead (same
 *             fstat identity as inotify: all anonymous inodes share one).
 *             Then it releases the held handle, steps the wait to its end
 *             and keeps acquiring.  Afterwards every tap must still be its
 *             file (fstat), hold its marker, be at offset 0 (nothing read
 *             from it), every eventfd still hold its count (nothing
 *             drained), and a helper process opening each tap file anew
 *             must find the own shared locks in place and nothing else
 *             (LOCK_EX|LOCK_NB fails on the locked ones and succeeds on
 *             the others; LOCK_SH|LOCK_NB succeeds on all).  The offset
 *             catches a library that reads a stale descriptor (an inotify
 *             instance drained after its number became a file, a pipe or
 *             a socket of the program's: data the program loses).
 *   pool      one process, four threads taking jobs from a queue, on a
 *             cache that is never renamed.  An acquire job takes a source
 *             (CACHELOCK_F_UNOWNED, or plain and then cachelock_disown()),
 *             increments an unprotected counter (load, yield, store) and
 *             queues a release job, which any thread may run.  -EDEADLK,
 *             an overlap (a flag set with compare-and-swap) or a lost
 *             increment (counter != grants) is a violation.  At most three
 *             threads are inside an acquire at once, so one is always free
 *             to run the release that a blocked acquire waits for.
 *             Skipped when the library has no CACHELOCK_F_UNOWNED.
 *
 * ACCOUNTING UNDER RENAMES
 *
 * A lock only protects the file the path names while it was granted; a
 * hold granted before a rename goes on holding the old file while the next
 * acquirer locks the new one.  Such overlaps are legal, so "two holders at
 * once" alone proves nothing.  A shared rename epoch tells them apart: the
 * renamer makes it odd before each rename(2) and even after it.  A holder
 * reads the epoch as e0 just before its acquire call and e1 just after it
 * returns.  If e0 == e1 and even, no rename ran at any time during the
 * acquire (the renamer's increments are sequentially consistent atomics and
 * rename(2) sits between them; system calls are full barriers), so every
 * path look-up the library made saw the layout of epoch e1, and in one
 * layout a path names one file (nothing here removes a live lock file, and
 * two concurrent creators open the same one).  The library checks after the
 * grant that the path names the locked file, so the hold is on THE file of
 * epoch e1: it is "protected".  Two protected holders of the same epoch
 * therefore hold one file, and flock(2) must keep an exclusive holder
 * alone.  Holders whose acquire overlapped a rename take no part.
 *
 * The check: owner[source][(e1 / 2) % 64] is one 64-bit word, 0 when free,
 * else the epoch in the high half and in the low half either 0x80000000|id
 * (an exclusive holder) or a count of shared holders.  A protected holder
 * enters it with compare-and-swap after its acquire returned and leaves it
 * before its release.  Finding the word taken by the SAME epoch in a
 * conflicting mode is a violation; finding it taken by another epoch (a
 * holder 64 renames old, still inside) leaves this hold "unchecked" and is
 * counted.  Holders of different epochs are never compared: they may
 * legally hold different files at once.
 *
 * Why no data-file counter here (tests/torture has one): a read-modify-
 * write counter updated by protected holders only is still not sound,
 * because protected holders of epochs e and e+2 may legally be inside at
 * once (the one of epoch e holds the renamed-away file); an increment could
 * be lost without any bug.  The compare-and-swap word checks exactly what
 * the library promises.  The thread pool's cache is never renamed, so there
 * a plain counter is sound and is used.
 *
 * An acquire that fails while a rename overlapped it (the directory was
 * renamed twice while the library was creating it: -ENOENT) is counted;
 * one that fails with no rename during it is a violation.
 *
 * Hangs: at the end every process gets 10 s to finish; one that does not
 * is a violation and is killed.  Each child has alarm(SECONDS + 25) with
 * the default action, and the main process alarm(SECONDS + 30), which
 * kills the children and exits 1.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/eventfd.h>
#include <sys/prctl.h>
#endif

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
#define HAVE__FORK 1
#define HAVE_CLOSE_RANGE 1
#endif

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define SOURCES 3
#define EPOCH_SLOTS 64
#define WORKER_PROCS 4          /* the first and the third have two threads */
#define FORKERS 2
#define FORK_KIDS 2             /* live _Fork() children per forker */
#define POOL_THREADS 4
#define POOL_SOURCES 2
#define POOL_JOBS 6
#define MAX_TAPS 256
#define MAX_FD_SCAN 1024
#define WRITER 0x80000000u
#define MAX_PROCS 16

enum kind { K_WORKER, K_FORK_PARENT, K_FORK_CHILD, K_DAEMON, K_KINDS };
static const char *const kind_names[K_KINDS] = { "worker", "fork parent", "_Fork child", "daemon" };
enum how { H_BLOCKING, H_TRY, H_TIMED, H_ASYNC, H_HOWS };

struct counts {
    long granted, by_how[H_HOWS], shared, busy;
    long protected_holds, overlapped, unchecked, failed_in_rename;
};

struct shared {
    int stop;
    uint64_t epoch;                         /* odd while a rename runs */
    uint64_t owner[SOURCES][EPOCH_SLOTS];
    uint32_t next_id;
    long violations;
    struct counts k[K_KINDS];
    long renames[3], rename_missed, cleanups;
    long children, held_across_fork, inherited_released;
    long daemon_cycles, daemon_closed, daemon_taps, daemon_event_taps;
    long daemon_wait_steps_after_close;
    int daemon_hold;                        /* 0, 1 helper holds, 2 helper may go */
    long pool_granted[POOL_SOURCES], pool_counter[POOL_SOURCES];
    int pool_inside[POOL_SOURCES];
    long pool_unowned, pool_disowned, pool_busy, pool_other_thread;
};

static struct shared *sh;
static char base[1024], cache[1100], stable[1100];
static const char *const names[SOURCES] = { "alpha", "beta", "gamma" };
static const char *const pool_names[POOL_SOURCES] = { "pool-a", "pool-b" };
static int seconds;
static pid_t main_pid;

/* ---- small helpers ------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int stopping(void)
{
    return __atomic_load_n(&sh->stop, __ATOMIC_SEQ_CST);
}

#define ADD(field, n) __atomic_add_fetch(&(field), (n), __ATOMIC_RELAXED)

__attribute__((format(printf, 1, 2)))
static void violation(const char *fmt, ...)
{
    char msg[512];
    static int printed;     /* per process: a broken library would flood the log */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int n = __atomic_add_fetch(&printed, 1, __ATOMIC_RELAXED);
    if (n <= 10)
        fprintf(stderr, "torture_chaos: VIOLATION: %s (pid %d)%s\n", msg, (int)getpid(),
                n == 10 ? "; further ones of this process are only counted" : "");
    __atomic_add_fetch(&sh->violations, 1, __ATOMIC_SEQ_CST);
}

static uint32_t new_id(enum kind k)
{
    uint32_t n = __atomic_add_fetch(&sh->next_id, 1, __ATOMIC_RELAXED) & 0xffffffu;
    return (uint32_t)k << 24 | n;
}

static const char *id_kind(uint32_t id)
{
    uint32_t k = (id & ~WRITER) >> 24;
    return k < K_KINDS ? kind_names[k] : "?";
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);       /* errors are fine: the next cleanup tries again */
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* rm -rf every entry of dir whose name contains ".old-". */
static void rm_old(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        char p[PATH_MAX];
        if (!strstr(e->d_name, ".old-"))
            continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        rm_rf(p);
    }
    closedir(d);
}

/* ---- the protected-holder accounting (see the top of the file) ---------- */

/* 1 entered, 0 unchecked (the slot belongs to another epoch), -1 violation. */
static int enter(int s, uint64_t e, int shared, uint32_t id)
{
    uint64_t *slot = &sh->owner[s][(e >> 1) % EPOCH_SLOTS];
    uint64_t tag = (e & 0xffffffffu) << 32;
    uint64_t cur = __atomic_load_n(slot, __ATOMIC_SEQ_CST), want;
    for (;;) {
        if (cur == 0)
            want = tag | (shared ? 1u : (WRITER | id));
        else if ((cur & ~(uint64_t)0xffffffffu) != tag)
            return 0;
        else if (!shared || (cur & WRITER)) {
            uint32_t low = (uint32_t)cur;
            violation("two protected holders of %s in rename epoch %llu: %s %s (id %#x) "
                      "found %s inside",
                      names[s], (unsigned long long)e, kind_names[id >> 24],
                      shared ? "shared" : "exclusive", (unsigned)id,
                      low & WRITER ? id_kind(low) : "shared holders");
            return -1;
        } else
            want = cur + 1;
        if (__atomic_compare_exchange_n(slot, &cur, want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return 1;
    }
}

static void leave(int s, uint64_t e, int shared, uint32_t id)
{
    uint64_t *slot = &sh->owner[s][(e >> 1) % EPOCH_SLOTS];
    uint64_t tag = (e & 0xffffffffu) << 32;
    uint64_t cur = __atomic_load_n(slot, __ATOMIC_SEQ_CST), want;
    for (;;) {
        if (shared ? (cur & ~(uint64_t)0xffffffffu) != tag || (cur & WRITER) || (uint32_t)cur == 0
                   : cur != (tag | WRITER | id)) {
            violation("the slot of %s in epoch %llu changed while id %#x was inside",
                      names[s], (unsigned long long)e, (unsigned)id);
            return;
        }
        want = !shared || (uint32_t)cur == 1 ? 0 : cur - 1;
        if (__atomic_compare_exchange_n(slot, &cur, want, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            return;
    }
}

static void hold_a_while(unsigned *seed)
{
    int n = (int)(rand_r(seed) % 4);
    for (int i = 0; i < n; i++)
        sched_yield();
    if (rand_r(seed) % 32 == 0)
        usleep(100 + rand_r(seed) % 400);
}

/* An asynchronous acquire driven by poll(2), as an event loop would. */
static int acquire_async(const char *dir, const char *source, const cachelock_options_t *o,
                         cachelock_t **out)
{
    cachelock_wait_t *w;
    int rc = cachelock_wait_start(dir, source, o, &w);
    *out = NULL;
    if (rc != 0)
        return rc;
    while ((rc = cachelock_wait_step(w, out)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    cachelock_wait_free(w);
    return rc;
}

/* One acquire, hold and release of a source of the renamed cache, with the
 * protected-holder accounting. */
static void one_cycle(enum kind k, unsigned *seed, uint32_t id)
{
    struct counts *c = &sh->k[k];
    int s = (int)(rand_r(seed) % SOURCES);
    int shared = rand_r(seed) % 4 == 0;
    int r = (int)(rand_r(seed) % 8);
    enum how how = r < 4 ? H_BLOCKING : r == 4 ? H_TRY : r < 7 ? H_TIMED : H_ASYNC;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    int rc;

    o.mode = shared ? CACHELOCK_SHARED : CACHELOCK_EXCLUSIVE;
    o.timeout_ms = how == H_BLOCKING ? -1 : how == H_TRY ? 0 : 1 + (long)(rand_r(seed) % 20);
    uint64_t e0 = __atomic_load_n(&sh->epoch, __ATOMIC_SEQ_CST);
    if (how == H_ASYNC)
        rc = acquire_async(cache, names[s], &o, &lock);
    else
        rc = cachelock_acquire_ex(cache, names[s], &o, &lock);
    uint64_t e1 = __atomic_load_n(&sh->epoch, __ATOMIC_SEQ_CST);
    int calm = e0 == e1 && !(e1 & 1);

    if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
        ADD(c->busy, 1);
        return;
    }
    if (rc != 0) {
        if (calm)
            violation("acquire of %s failed with no rename during it: %s", names[s],
                      cachelock_errmsg());
        else
            ADD(c->failed_in_rename, 1);
        return;
    }
    ADD(c->granted, 1);
    ADD(c->by_how[how], 1);
    if (shared)
        ADD(c->shared, 1);
    int in = 0;
    if (calm) {
        in = enter(s, e1, shared, id);
        if (in == 1)
            ADD(c->protected_holds, 1);
        else if (in == 0)
            ADD(c->unchecked, 1);
    } else {
        ADD(c->overlapped, 1);
    }
    hold_a_while(seed);
    if (in == 1)
        leave(s, e1, shared, id);
    cachelock_release(lock);
}

/* ---- processes ----------------------------------------------------------- */

static void child_setup(void)
{
    signal(SIGALRM, SIG_DFL);
    alarm((unsigned)seconds + 25);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
}

static pid_t spawn(void (*fn)(int), int arg)
{
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    child_setup();
    if (getppid() != main_pid)
        _exit(1);
    fn(arg);
    _exit(0);
}

static void renamer(int unused)
{
    unsigned seed = (unsigned)getpid() * 2654435761u;
    char from[PATH_MAX], to[PATH_MAX];
    (void)unused;
    for (long n = 1; !stopping(); n++) {
        usleep(500 + rand_r(&seed) % 2500);
        int r = (int)(rand_r(&seed) % 8);
        int kind = r < 4 ? 0 : r < 6 ? 1 : 2;
        if (kind == 0) {
            const char *src = names[rand_r(&seed) % SOURCES];
            snprintf(from, sizeof from, "%s/.locks/%s.lock", cache, src);
            snprintf(to, sizeof to, "%s/.locks/%s.lock.old-%ld", cache, src, n);
        } else if (kind == 1) {
            snprintf(from, sizeof from, "%s/.locks", cache);
            snprintf(to, sizeof to, "%s/.locks.old-%ld", cache, n);
        } else {
            snprintf(from, sizeof from, "%s", cache);
            snprintf(to, sizeof to, "%s.old-%ld", cache, n);
        }
        __atomic_add_fetch(&sh->epoch, 1, __ATOMIC_SEQ_CST);     /* odd: renaming */
        int rc = rename(from, to);
        int err = errno;
        __atomic_add_fetch(&sh->epoch, 1, __ATOMIC_SEQ_CST);     /* even: done */
        if (rc == 0)
            ADD(sh->renames[kind], 1);
        else if (err == ENOENT)
            ADD(sh->rename_missed, 1);      /* not (re)created yet */
        else
            violation("renamer: cannot rename '%s': %s", from, strerror(err));
        if (n % 64 == 0) {
            char locks[1200];
            snprintf(locks, sizeof locks, "%s/.locks", cache);
            rm_old(locks);
            rm_old(cache);
            rm_old(base);
            ADD(sh->cleanups, 1);
        }
    }
}

static void *worker_thread(void *arg)
{
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)(uintptr_t)arg;
    uint32_t id = new_id(K_WORKER);
    while (!stopping())
        one_cycle(K_WORKER, &seed, id);
    return NULL;
}

static void worker(int index)
{
    pthread_t t[2];
    int threads = index % 2 == 0 ? 2 : 1;
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, worker_thread, (void *)(uintptr_t)(i + 1)) != 0)
            _exit(1);
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
}

#ifdef HAVE__FORK
/* A _Fork() child: no atfork handler ran.  It may get a lock its parent
 * holds; releasing that handle here must only close this copy. */
__attribute__((noreturn))
static void fork_child(cachelock_t *inherited)
{
    unsigned seed = (unsigned)getpid() * 2654435761u;
    uint32_t id = new_id(K_FORK_CHILD);
    child_setup();
    if (inherited) {
        cachelock_release(inherited);
        ADD(sh->inherited_released, 1);
    }
    for (int i = 0; i < 200 && !stopping(); i++)
        one_cycle(K_FORK_CHILD, &seed, id);
    _exit(0);
}

static void reap(pid_t *kids, int *nkids, int block)
{
    for (int i = 0; i < *nkids;) {
        int status;
        pid_t p = waitpid(kids[i], &status, block ? 0 : WNOHANG);
        if (p == 0) {
            i++;
            continue;
        }
        if (p < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            violation("_Fork child %d ended badly (status %#x)", (int)kids[i], p < 0 ? -1 : status);
        kids[i] = kids[--*nkids];
    }
}

static void forker(int index)
{
    unsigned seed = (unsigned)getpid() * 2654435761u;
    uint32_t id = new_id(K_FORK_PARENT);
    pid_t kids[FORK_KIDS];
    int nkids = 0;
    (void)index;
    for (long n = 0; !stopping(); n++) {
        one_cycle(K_FORK_PARENT, &seed, id);
        reap(kids, &nkids, 0);
        if (n % 16 != 0 || nkids >= FORK_KIDS)
            continue;

        /* Sometimes hold a lock across the _Fork(), as a protected holder. */
        cachelock_t *held = NULL;
        int s = (int)(rand_r(&seed) % SOURCES), in = 0;
        uint64_t e1 = 0;
        if (rand_r(&seed) % 2) {
            uint64_t e0 = __atomic_load_n(&sh->epoch, __ATOMIC_SEQ_CST);
            int rc = cachelock_acquire(cache, names[s], &held);
            e1 = __atomic_load_n(&sh->epoch, __ATOMIC_SEQ_CST);
            if (rc != 0) {
                if (e0 == e1 && !(e1 & 1))
                    violation("acquire of %s failed with no rename during it: %s", names[s],
                              cachelock_errmsg());
                held = NULL;
            } else if (e0 == e1 && !(e1 & 1)) {
                in = enter(s, e1, 0, id);
            }
        }
        pid_t pid = _Fork();
        if (pid == 0)
            fork_child(held);
        if (pid < 0)
            violation("_Fork: %s", strerror(errno));
        else {
            kids[nkids++] = pid;
            ADD(sh->children, 1);
        }
        if (held) {
            ADD(sh->held_across_fork, 1);
            usleep(200 + rand_r(&seed) % 800);      /* the child runs meanwhile */
            if (in == 1)
                leave(s, e1, 0, id);
            cachelock_release(held);
        }
    }
    reap(kids, &nkids, 1);
}
#endif

/* ---- the daemon-like process --------------------------------------------- */

struct tap {
    int fd, own_locked;
    int event;                  /* an eventfd holding value, not a file */
    uint64_t value;
    dev_t dev;
    ino_t ino;
    char path[PATH_MAX];
    char marker[64];
    size_t len;
};

static struct tap taps[MAX_TAPS];

/* Which descriptors >= 3 are open (1), and which of them are anonymous
 * inodes such as inotify instances (2); returns the highest, 2 if none. */
static int open_fds(unsigned char *open_now, int *count)
{
    int max = 2;
    *count = 0;
    for (int fd = 3; fd < MAX_FD_SCAN; fd++) {
        open_now[fd] = fcntl(fd, F_GETFD) >= 0;
        if (open_now[fd]) {
            char link[64], target[64];
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t n = readlink(link, target, sizeof target - 1);
            if (n > 0 && (target[n] = '\0', strncmp(target, "anon_inode:", 11) == 0))
                open_now[fd] = 2;
            max = fd;
            ++*count;
        }
    }
    return max;
}

static void close_from_3(void)
{
#ifdef HAVE_CLOSE_RANGE
    if (close_range(3, ~0u, 0) == 0)
        return;
#endif
    for (int fd = 3; fd < MAX_FD_SCAN; fd++)
        close(fd);
}

/* A tap file; with anon set, where the lowest free number held an
 * anonymous inode (an inotify instance), an eventfd instead: it has the
 * same device and inode as every inotify instance, so only a check beyond
 * fstat(2) tells it from the library's own. */
static int open_tap(struct tap *t, const char *dir, long cycle, int i, const unsigned char *anon)
{
    struct stat st;
    snprintf(t->path, sizeof t->path, "%s/tap-%ld-%d", dir, cycle, i);
    t->event = 0;
    t->fd = open(t->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (t->fd < 0)
        return -1;
#ifdef __linux__
    if (anon && t->fd < MAX_FD_SCAN && anon[t->fd] == 2) {
        close(t->fd);
        unlink(t->path);
        t->event = 1;
        t->value = (uint64_t)cycle * 1000 + (uint64_t)i + 1;
        t->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        t->own_locked = 0;
        if (t->fd < 0 || write(t->fd, &t->value, sizeof t->value) != (ssize_t)sizeof t->value ||
            fstat(t->fd, &st) != 0)
            return -1;
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        return 0;
    }
#else
    (void)anon;
#endif
    t->len = (size_t)snprintf(t->marker, sizeof t->marker, "tap %ld.%d on fd %d\n", cycle, i, t->fd);
    t->own_locked = i % 2;
    if (write(t->fd, t->marker, t->len) != (ssize_t)t->len || lseek(t->fd, 0, SEEK_SET) != 0 ||
        (t->own_locked && flock(t->fd, LOCK_SH) != 0) || fstat(t->fd, &st) != 0)
        return -1;
    t->dev = st.st_dev;
    t->ino = st.st_ino;
    return 0;
}

/* The taps must be exactly as the program left them. */
static void check_taps(int ntaps)
{
    for (int i = 0; i < ntaps; i++) {
        struct tap *t = &taps[i];
        struct stat st;
        char buf[64];
        if (fstat(t->fd, &st) != 0 || st.st_dev != t->dev || st.st_ino != t->ino) {
            violation("daemon: tap fd %d was closed or replaced by the library", t->fd);
            continue;
        }
        if (t->event) {
            uint64_t v = 0;
            if (read(t->fd, &v, sizeof v) != (ssize_t)sizeof v || v != t->value)
                violation("daemon: eventfd tap fd %d was read (drained) or replaced by the "
                          "library (%llu instead of %llu)", t->fd, (unsigned long long)v,
                          (unsigned long long)t->value);
            continue;
        }
        off_t off = lseek(t->fd, 0, SEEK_CUR);
        if (off != 0)
            violation("daemon: tap fd %d was read or moved by the library (offset %lld)", t->fd,
                      (long long)off);
        if (pread(t->fd, buf, t->len, 0) != (ssize_t)t->len || memcmp(buf, t->marker, t->len) != 0)
            violation("daemon: tap fd %d lost its content", t->fd);
    }
    /* Locks are seen from another open file description: a helper. */
    pid_t pid = fork();
    if (pid == 0) {
        int bad = 0;
        for (int i = 0; i < ntaps; i++) {
            struct tap *t = &taps[i];
            if (t->event)
                continue;
            int fd = open(t->path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) {
                bad++;
                continue;
            }
            int ex = flock(fd, LOCK_EX | LOCK_NB) == 0;
            if (ex)
                flock(fd, LOCK_UN);
            int sh_ok = flock(fd, LOCK_SH | LOCK_NB) == 0;
            if (t->own_locked ? ex || !sh_ok : !ex) {
                fprintf(stderr, "torture_chaos: tap fd %d (%s by the program): exclusive %s, "
                        "shared %s\n", t->fd, t->own_locked ? "shared-locked" : "unlocked",
                        ex ? "granted" : "refused", sh_ok ? "granted" : "refused");
                bad++;
            }
            close(fd);
        }
        _exit(bad > 100 ? 100 : bad);
    }
    int status;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        violation("daemon: tap check helper failed");
    else if (WEXITSTATUS(status) != 0)
        violation("daemon: %d tap files were locked or unlocked by the library",
                  WEXITSTATUS(status));
}

/* Holds "daemon" in the stable cache until told to let go. */
static void daemon_holder(void)
{
    cachelock_t *lock;
    child_setup();
    if (cachelock_acquire(stable, "daemon", &lock) != 0)
        _exit(3);
    __atomic_store_n(&sh->daemon_hold, 1, __ATOMIC_SEQ_CST);
    int64_t end = now_ms() + 10000;
    while (__atomic_load_n(&sh->daemon_hold, __ATOMIC_SEQ_CST) != 2 && now_ms() < end)
        usleep(200);
    cachelock_release(lock);
    _exit(0);
}

static int wait_for_flag(int *flag, int value, int ms)
{
    int64_t end = now_ms() + ms;
    while (__atomic_load_n(flag, __ATOMIC_SEQ_CST) != value)
        if (now_ms() > end)
            return -1;
        else
            usleep(100);
    return 0;
}

static void daemon_cycle(long cycle, unsigned *seed, uint32_t id, const char *tapdir)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w = NULL;
    cachelock_t *held = NULL, *got = NULL;
    int rc, status;

    /* Use the library, so that it keeps lock files and inotify instances. */
    for (int i = 0; i < 24 && !stopping(); i++)
        one_cycle(K_DAEMON, seed, id);

    /* A helper holds "daemon"; our asynchronous wait for it is under way
     * (lock file open, inotify watch set) when the descriptors go. */
    __atomic_store_n(&sh->daemon_hold, 0, __ATOMIC_SEQ_CST);
    pid_t holder = fork();
    if (holder == 0)
        daemon_holder();
    if (holder < 0 || wait_for_flag(&sh->daemon_hold, 1, 5000) < 0) {
        violation("daemon: the holder did not take its lock");
        goto reap;
    }
    o.timeout_ms = 5000;
    rc = cachelock_wait_start(stable, "daemon", &o, &w);
    for (int i = 0; rc == 0 && i < 2; i++)
        rc = cachelock_wait_step(w, &got) == -EINPROGRESS ? 0 : -1;
    if (rc != 0) {
        violation("daemon: wait for a held lock did not stay in progress: %s", cachelock_errmsg());
        goto release;
    }
    /* And a lock of our own, held while its descriptor goes. */
    if (cachelock_acquire(stable, "daemon-own", &held) != 0) {
        violation("daemon: cannot acquire daemon-own: %s", cachelock_errmsg());
        goto release;
    }

    unsigned char was_open[MAX_FD_SCAN];
    int count, maxfd = open_fds(was_open, &count);
    ADD(sh->daemon_closed, count);
    close_from_3();
    /* Open taps up to the highest closed number, then close those that
     * fill gaps: every number the library had is now a tap, and no other. */
    int ntaps = 0, opened = 0;
    for (int last = 2; last < maxfd && opened < MAX_TAPS; opened++) {
        /* Every other cycle, eventfds where inotify instances were. */
        if (open_tap(&taps[opened], tapdir, cycle, opened, cycle % 2 ? was_open : NULL) < 0) {
            violation("daemon: cannot open tap file: %s", strerror(errno));
            break;
        }
        last = taps[opened].fd;
    }
    for (int i = 0; i < opened; i++) {
        if (taps[i].fd < MAX_FD_SCAN && was_open[taps[i].fd]) {
            taps[ntaps++] = taps[i];
        } else {
            close(taps[i].fd);
            if (!taps[i].event)
                unlink(taps[i].path);
        }
    }
    ADD(sh->daemon_taps, ntaps);
    for (int i = 0; i < ntaps; i++)
        if (taps[i].event)
            ADD(sh->daemon_event_taps, 1);

    /* Its descriptor number is a tap now: neither unlock nor close that. */
    cachelock_release(held);
    held = NULL;

    /* Step the wait while the lock is still busy, then let the helper go. */
    for (int i = 0; i < 3; i++) {
        rc = cachelock_wait_step(w, &got);
        ADD(sh->daemon_wait_steps_after_close, 1);
        if (rc != -EINPROGRESS)
            break;
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, 1);
    }
    if (rc == -EINPROGRESS) {
        __atomic_store_n(&sh->daemon_hold, 2, __ATOMIC_SEQ_CST);
        while ((rc = cachelock_wait_step(w, &got)) == -EINPROGRESS) {
            ADD(sh->daemon_wait_steps_after_close, 1);
            struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
            poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
        }
    }
    if (rc != 0 || !got)
        violation("daemon: wait resumed after close_range ended with %d: %s", rc,
                  cachelock_errmsg());
    cachelock_release(got);

    for (int i = 0; i < 64 && !stopping(); i++)
        one_cycle(K_DAEMON, seed, id);

    check_taps(ntaps);
    for (int i = 0; i < ntaps; i++) {
        close(taps[i].fd);
        if (!taps[i].event)
            unlink(taps[i].path);
    }
    ADD(sh->daemon_cycles, 1);
release:
    cachelock_wait_free(w);
    cachelock_release(held);
reap:
    __atomic_store_n(&sh->daemon_hold, 2, __ATOMIC_SEQ_CST);
    if (holder > 0 && (waitpid(holder, &status, 0) != holder || !WIFEXITED(status) ||
                       WEXITSTATUS(status) != 0))
        violation("daemon: the holder ended badly");
}

static void daemon_proc(int unused)
{
    unsigned seed = (unsigned)getpid() * 2654435761u;
    uint32_t id = new_id(K_DAEMON);
    char tapdir[1200];
    (void)unused;
    /* Like a daemon: nothing inherited stays open (so the taps below cover
     * only numbers the library used). */
    close_from_3();
    snprintf(tapdir, sizeof tapdir, "%s/taps", base);
    if (mkdir(tapdir, 0777) != 0) {
        violation("daemon: cannot create '%s': %s", tapdir, strerror(errno));
        return;
    }
    for (long cycle = 0; !stopping(); cycle++)
        daemon_cycle(cycle, &seed, id, tapdir);
}

/* ---- the thread pool ----------------------------------------------------- */

#ifdef CACHELOCK_F_UNOWNED
struct job {
    int src, by;
    cachelock_t *lock;
};

struct ring {
    struct job j[POOL_JOBS];
    int head, n;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct ring acq, rel;
    int in_acquire;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, { { { 0, 0, NULL } }, 0, 0 },
        { { { 0, 0, NULL } }, 0, 0 }, 0 };

static void push(struct ring *r, struct job j)
{
    r->j[(r->head + r->n++) % POOL_JOBS] = j;
}

static struct job pop(struct ring *r)
{
    struct job j = r->j[r->head];
    r->head = (r->head + 1) % POOL_JOBS;
    r->n--;
    return j;
}

/* Take the lock, count, hand the handle on.  Returns the next job's kind:
 * 1 a release is queued, 0 try another acquire. */
static int pool_acquire(struct job *j, int self, unsigned *seed)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    int plain = rand_r(seed) % 3 == 0;
    int r = (int)(rand_r(seed) % 6);
    int s = j->src;
    o.flags = plain ? 0 : CACHELOCK_F_UNOWNED;
    o.timeout_ms = r < 4 ? -1 : r == 4 ? 50 : 0;
    int rc = cachelock_acquire_ex(stable, pool_names[s], &o, &j->lock);
    if (rc == -EWOULDBLOCK || rc == -ETIMEDOUT) {
        ADD(sh->pool_busy, 1);
        return 0;
    }
    if (rc != 0) {
        violation("pool: acquire of %s: %s", pool_names[s],
                  rc == -EDEADLK ? "-EDEADLK for a lock this thread does not own"
                                 : cachelock_errmsg());
        return 0;
    }
    if (plain) {
        if (cachelock_disown(j->lock) != 0)
            violation("pool: cachelock_disown: %s", cachelock_errmsg());
        ADD(sh->pool_disowned, 1);
    } else {
        ADD(sh->pool_unowned, 1);
    }
    int expected = 0;
    if (!__atomic_compare_exchange_n(&sh->pool_inside[s], &expected, 1, 0, __ATOMIC_SEQ_CST,
                                     __ATOMIC_SEQ_CST))
        violation("pool: two holders of %s at once", pool_names[s]);
    long v = __atomic_load_n(&sh->pool_counter[s], __ATOMIC_RELAXED);
    sched_yield();
    __atomic_store_n(&sh->pool_counter[s], v + 1, __ATOMIC_RELAXED);
    ADD(sh->pool_granted[s], 1);
    j->by = self;
    return 1;
}

static void pool_release(struct job *j, int self, unsigned *seed)
{
    if (rand_r(seed) % 4 == 0)
        usleep(100 + rand_r(seed) % 300);
    if (j->by != self)
        ADD(sh->pool_other_thread, 1);
    if (__atomic_exchange_n(&sh->pool_inside[j->src], 0, __ATOMIC_SEQ_CST) != 1)
        violation("pool: %s was not marked held at its release", pool_names[j->src]);
    cachelock_release(j->lock);
}

static void *pool_thread(void *arg)
{
    int self = (int)(uintptr_t)arg;
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)self * 40503u;
    for (;;) {
        struct job j;
        int release;
        pthread_mutex_lock(&q.mu);
        for (;;) {
            if (q.rel.n > 0) {
                j = pop(&q.rel);
                release = 1;
                break;
            }
            if (stopping()) {
                if (q.in_acquire == 0) {
                    pthread_cond_broadcast(&q.cv);
                    pthread_mutex_unlock(&q.mu);
                    return NULL;
                }
            } else if (q.acq.n > 0 && q.in_acquire < POOL_THREADS - 1) {
                j = pop(&q.acq);
                q.in_acquire++;
                release = 0;
                break;
            }
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 10 * 1000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&q.cv, &q.mu, &ts);
        }
        pthread_mutex_unlock(&q.mu);

        if (release) {
            pool_release(&j, self, &seed);
            j.src = (int)(rand_r(&seed) % POOL_SOURCES);
            j.lock = NULL;
        }
        int queued_release = release ? 0 : pool_acquire(&j, self, &seed);
        if (!queued_release && !release)
            j.src = (int)(rand_r(&seed) % POOL_SOURCES);
        pthread_mutex_lock(&q.mu);
        if (!release)
            q.in_acquire--;
        push(queued_release ? &q.rel : &q.acq, j);
        pthread_cond_broadcast(&q.cv);
        pthread_mutex_unlock(&q.mu);
    }
}

static void pool_proc(int unused)
{
    pthread_t t[POOL_THREADS];
    (void)unused;
    for (int i = 0; i < POOL_JOBS; i++)
        push(&q.acq, (struct job){ i % POOL_SOURCES, -1, NULL });
    for (int i = 0; i < POOL_THREADS; i++)
        if (pthread_create(&t[i], NULL, pool_thread, (void *)(uintptr_t)i) != 0)
            _exit(1);
    for (int i = 0; i < POOL_THREADS; i++)
        pthread_join(t[i], NULL);
}
#endif

/* ---- main: set up, run, watch, account ----------------------------------- */

static pid_t procs[MAX_PROCS];
static int nprocs;

static void on_alarm(int sig)
{
    static const char msg[] = "torture_chaos: VIOLATION: watchdog: still running long after "
                              "the end; killing everything\n";
    (void)sig;
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    if (write(2, msg, sizeof msg - 1) < 0) {}
    for (int i = 0; i < nprocs; i++)
        kill(procs[i], SIGKILL);
    _exit(1);
}

static int part_on(const char *parts, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = parts; (p = strstr(p, name)) != NULL; p += n)
        if ((p == parts || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
            return 1;
    return 0;
}

static void print_kind(enum kind k)
{
    const struct counts *c = &sh->k[k];
    printf("torture_chaos: %-11s %6ld acquired (blocking %ld, try %ld, timed %ld, async %ld; "
           "%ld shared), %ld busy; %ld protected, %ld overlapped a rename, %ld unchecked, "
           "%ld failed during a rename\n",
           kind_names[k], c->granted, c->by_how[H_BLOCKING], c->by_how[H_TRY], c->by_how[H_TIMED],
           c->by_how[H_ASYNC], c->shared, c->busy, c->protected_holds, c->overlapped,
           c->unchecked, c->failed_in_rename);
}

int main(int argc, char **argv)
{
    const char *env = getenv("TORTURE_SECONDS");
    const char *parts = argc > 2 ? argv[2] : "renames,fork,daemon,pool";
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tmpl[1024], real[PATH_MAX];
    int hung = 0;

    seconds = argc > 1 ? atoi(argv[1]) : env ? atoi(env) : 10;
    if (seconds < 1)
        seconds = 1;
    main_pid = getpid();
    setvbuf(stdout, NULL, _IOLBF, 0);

    snprintf(tmpl, sizeof tmpl, "%s/cachelock-chaos.XXXXXX", tmp);
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || !mkdtemp(tmpl) || !realpath(tmpl, real)) {
        perror("torture_chaos: setup");
        return 2;
    }
    if (strlen(real) >= sizeof base) {
        fprintf(stderr, "torture_chaos: setup: '%s' is too long\n", real);
        return 2;
    }
    strcpy(base, real);
    /* Absolute: renaming the cache directory is only meaningful (and the
     * library only keeps descriptors) for an absolute path. */
    snprintf(cache, sizeof cache, "%s/cache", base);
    snprintf(stable, sizeof stable, "%s/stable", base);

    int do_renames = part_on(parts, "renames"), do_fork = part_on(parts, "fork");
    int do_daemon = part_on(parts, "daemon"), do_pool = part_on(parts, "pool");
    printf("torture_chaos: library %s, %d s, %d worker processes (%d threads)%s%s%s%s, in %s\n",
           cachelock_version(), seconds, WORKER_PROCS, WORKER_PROCS + (WORKER_PROCS + 1) / 2,
           do_renames ? ", a renamer" : "", do_fork ? ", _Fork() makers" : "",
           do_daemon ? ", a descriptor closer" : "", do_pool ? ", a thread pool" : "", base);
#ifndef HAVE__FORK
    if (do_fork) {
        printf("torture_chaos: skip _Fork(): not available (glibc 2.34 or later needed)\n");
        do_fork = 0;
    }
#endif
#ifndef CACHELOCK_F_UNOWNED
    if (do_pool) {
        printf("torture_chaos: skip thread pool: this library has no CACHELOCK_F_UNOWNED\n");
        do_pool = 0;
    }
#endif

    signal(SIGALRM, on_alarm);
    alarm((unsigned)seconds + 30);

    if (do_renames)
        procs[nprocs++] = spawn(renamer, 0);
    for (int i = 0; i < WORKER_PROCS; i++)
        procs[nprocs++] = spawn(worker, i);
#ifdef HAVE__FORK
    for (int i = 0; do_fork && i < FORKERS; i++)
        procs[nprocs++] = spawn(forker, i);
#endif
    if (do_daemon)
        procs[nprocs++] = spawn(daemon_proc, 0);
#ifdef CACHELOCK_F_UNOWNED
    if (do_pool)
        procs[nprocs++] = spawn(pool_proc, 0);
#endif
    for (int i = 0; i < nprocs; i++)
        if (procs[i] < 0) {
            perror("torture_chaos: fork");
            __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
            return 2;
        }

    int64_t end = now_ms() + seconds * 1000L;
    while (now_ms() < end)
        usleep(50000);
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);

    int64_t deadline = now_ms() + 10000;
    for (int i = 0; i < nprocs; i++) {
        int status;
        pid_t p;
        while ((p = waitpid(procs[i], &status, WNOHANG)) == 0) {
            if (now_ms() > deadline) {
                fprintf(stderr, "torture_chaos: VIOLATION: pid %d hung\n", (int)procs[i]);
                hung++;
                kill(procs[i], SIGKILL);
                waitpid(procs[i], &status, 0);
                break;
            }
            usleep(1000);
        }
        if (p > 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
            violation("process %d ended with status %#x%s", (int)procs[i], status,
                      WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM ? " (its watchdog: hung)"
                                                                          : "");
    }
    alarm(0);
    sh->violations += hung;

    for (int s = 0; s < POOL_SOURCES && do_pool; s++)
        if (sh->pool_counter[s] != sh->pool_granted[s])
            violation("pool: %s counter %ld after %ld grants: increments lost", pool_names[s],
                      sh->pool_counter[s], sh->pool_granted[s]);

    long granted = 0, prot = 0;
    for (int k = 0; k < K_KINDS; k++) {
        granted += sh->k[k].granted;
        prot += sh->k[k].protected_holds;
        if (sh->k[k].granted || sh->k[k].busy)
            print_kind((enum kind)k);
    }
    if (do_renames)
        printf("torture_chaos: renames: %ld lock files, %ld .locks, %ld cache dirs (%ld found "
               "nothing to rename), %ld cleanups\n", sh->renames[0], sh->renames[1],
               sh->renames[2], sh->rename_missed, sh->cleanups);
    if (do_fork)
        printf("torture_chaos: _Fork(): %ld children, %ld with a lock held across the fork "
               "(%ld released by the child)\n", sh->children, sh->held_across_fork,
               sh->inherited_released);
    if (do_daemon)
        printf("torture_chaos: daemon: %ld cycles, closed %ld descriptors, reused them for %ld "
               "taps (%ld of them eventfds), %ld wait steps after the close\n", sh->daemon_cycles,
               sh->daemon_closed, sh->daemon_taps, sh->daemon_event_taps,
               sh->daemon_wait_steps_after_close);
    if (do_pool)
        printf("torture_chaos: thread pool: %ld acquired (%ld unowned, %ld disowned), %ld busy, "
               "%ld released by another thread; %s %ld/%ld, %s %ld/%ld (counter/grants)\n",
               sh->pool_unowned + sh->pool_disowned, sh->pool_unowned, sh->pool_disowned,
               sh->pool_busy, sh->pool_other_thread, pool_names[0], sh->pool_counter[0],
               sh->pool_granted[0], pool_names[1], sh->pool_counter[1], sh->pool_granted[1]);
    printf("torture_chaos: %ld acquisitions, %ld protected holds, %d hung, %ld violations\n",
           granted + sh->pool_unowned + sh->pool_disowned, prot, hung, sh->violations);

    rm_rf(base);
    return sh->violations == 0 ? 0 : 1;
}
