/*
 * test_fair.c - fair mode (CACHELOCK_F_FAIR and the cache policy): the
 * order of grants, readers and writers, SIGKILL at every step, timed and
 * asynchronous waits, where fair mode is refused, ownership and fork,
 * pruning, and descriptors the program reuses.
 *
 * Ordering is checked against observable state only: a waiter is known to
 * be queued when the kernel's lock table (/proc/locks) shows its place (an
 * OFD write lock in the queue's range on the lock file), and each process
 * appends its name to a log, under the lock, when it is granted.
 */
#include "helpers.h"
#include "internal.h"

#include <pthread.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/vfs.h>

/* ---- the queue as the kernel shows it ------------------------------------ */

struct table {
    int places;     /* places in the queue (held write locks, Q_ALL region) */
    long long lowest, highest;  /* their offsets */
    int mutex;      /* the enqueue mutex is held */
    int blocked;    /* requests blocked on the queue's locks */
    int flock_waiters;
};

/* The kernel gives no atomic view of /proc/locks: while locks come and
 * go, a line can repeat or go missing where two of its reads meet (see
 * src/holders.c).  So places are counted by their offsets, which are
 * unique, merged over three readings. */
#define MAX_PLACES 64

static void add_place(long long *v, int *n, long long start)
{
    for (int i = 0; i < *n; i++)
        if (v[i] == start)
            return;
    if (*n < MAX_PLACES)
        v[(*n)++] = start;
}

/* One reading of /proc/locks: places added to v, the rest counted. */
static void read_table(unsigned long long ino, long long *v, int *n, struct table *t)
{
    char line[256];
    FILE *f = fopen("/proc/locks", "re");
    CHECK(f != NULL);
    while (fgets(line, sizeof line, f)) {
        char type[16], access[16], dev[32];
        long long pid, start;
        unsigned long long i;
        char *p = strchr(line, ':');
        int arrow = 0;
        if (!p)
            continue;
        p++;
        while (*p == ' ')
            p++;
        if (strncmp(p, "->", 2) == 0) {
            arrow = 1;
            p += 2;
        }
        if (sscanf(p, "%15s %*s %15s %lld %31s %lld", type, access, &pid, dev, &start) != 5)
            continue;
        char *colon = strrchr(dev, ':');
        if (!colon || sscanf(colon + 1, "%llu", &i) != 1 || i != ino)
            continue;
        if (strcmp(type, "FLOCK") == 0) {
            t->flock_waiters += arrow;
            continue;
        }
        if (strcmp(type, "OFDLCK") != 0 || start < Q_ALL)
            continue;
        if (arrow)
            t->blocked++;
        else if (strcmp(access, "WRITE") == 0 && start == Q_MUTEX)
            t->mutex = 1;
        else if (strcmp(access, "WRITE") == 0 && start < Q_WRITERS)
            add_place(v, n, start);
    }
    fclose(f);
}

static struct table look(const char *source)
{
    struct table t = { 0, 0, 0, 0, 0, 0 };
    long long places[MAX_PLACES];
    int n = 0;
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/.locks/%s.lock", tap_dir, source);
    if (stat(path, &st) < 0)
        return t;
    for (int reading = 0; reading < 3; reading++) {
        struct table r = { 0, 0, 0, 0, 0, 0 };
        read_table((unsigned long long)st.st_ino, places, &n, &r);
        /* Blocked requests have no identity to merge by: the fewest seen
         * (a repeated line never makes more than there are). */
        if (reading == 0 || r.blocked < t.blocked)
            t.blocked = r.blocked;
        if (reading == 0 || r.flock_waiters < t.flock_waiters)
            t.flock_waiters = r.flock_waiters;
        t.mutex |= r.mutex;
    }
    t.places = n;
    for (int i = 0; i < n; i++) {
        if (!i || places[i] < t.lowest)
            t.lowest = places[i];
        if (!i || places[i] > t.highest)
            t.highest = places[i];
    }
    return t;
}

/* Until the queue of source has n places (the case's alarm bounds it). */
static void wait_places(const char *source, int n)
{
    while (look(source).places != n)
        usleep(500);
}

static void wait_blocked(const char *source, int n)
{
    while (look(source).blocked < n)
        usleep(500);
}

/* ---- processes that take the lock ---------------------------------------- */

enum kind { BLOCKING, TIMED, ASYNC };

static int acquire_kind(const char *source, cachelock_mode_t mode, enum kind kind, unsigned flags,
                        cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    int rc;
    o.mode = mode;
    o.flags = flags;
    if (kind == BLOCKING)
        return cachelock_acquire_ex(tap_dir, source, &o, out);
    o.timeout_ms = 20000;
    if (kind == TIMED)
        return cachelock_acquire_ex(tap_dir, source, &o, out);
    rc = cachelock_wait_start(tap_dir, source, &o, &w);
    if (rc < 0)
        return rc;
    while ((rc = cachelock_wait_step(w, out)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        CHECK(cachelock_wait_timeout(w) <= CACHELOCK_RECHECK_MAX_MS);
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    cachelock_wait_free(w);
    return rc;
}

/* Append c to the log, a file in the case's directory. */
static void log_char(char c)
{
    int fd = open(tpath("log"), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, &c, 1) == 1);
    close(fd);
}

static void read_log(char *buf, size_t size)
{
    int fd = open(tpath("log"), O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, size - 1) : 0;
    buf[n > 0 ? n : 0] = '\0';
    if (fd >= 0)
        close(fd);
}



/* A process that takes (source, mode) with flags the way kind says, logs
 * name, replies 'L', and on 'r' releases and replies 'R'; on 'a' it
 * releases and at once acquires again (logging name again), replying 'A'
 * once it holds; it exits when its command pipe closes. */
static struct holder spawn(const char *source, cachelock_mode_t mode, enum kind kind,
                           unsigned flags, char name)
{
    int cmd[2], rep[2];
    struct holder h;
    CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0);
    h.pid = fork();
    CHECK(h.pid >= 0);
    if (h.pid == 0) {
        cachelock_t *lock = NULL;
        char c;
        /* Only our own pipes: a copy of another process's command pipe
         * would keep it from ever seeing its end. */
        for (int fd = 3; fd < 1024; fd++)
            if (fd != cmd[0] && fd != rep[1])
                close(fd);
        if (acquire_kind(source, mode, kind, flags, &lock) != 0) {
            tap_diag("%c: %s", name, cachelock_errmsg());
            _exit(3);
        }
        log_char(name);
        send_byte(rep[1], 'L');
        while (read(cmd[0], &c, 1) == 1) {
            if (c == 'r') {
                cachelock_release(lock);
                lock = NULL;
                send_byte(rep[1], 'R');
            } else if (c == 'a') {
                cachelock_release(lock);
                if (acquire_kind(source, mode, kind, flags, &lock) != 0)
                    _exit(4);
                log_char(name);
                send_byte(rep[1], 'A');
            }
        }
        _exit(0);
    }
    close(cmd[0]);
    close(rep[1]);
    h.to = cmd[1];
    h.from = rep[0];
    return h;
}

static struct holder fair(const char *source, cachelock_mode_t mode, enum kind kind, char name)
{
    return spawn(source, mode, kind, CACHELOCK_F_FAIR, name);
}

/* The next byte from fd within ms milliseconds, or the case fails at once
 * (rather than at its time limit) saying what did not happen. */
static char recv_within(int fd, int ms, const char *what)
{
    struct pollfd p = { fd, POLLIN, 0 };
    int rc;
    do rc = poll(&p, 1, ms); while (rc < 0 && errno == EINTR);
    if (rc != 1)
        tap_fail(__FILE__, __LINE__, "%s: nothing within %d ms", what, ms);
    return recv_byte(fd);
}

/* Has h said something (without waiting)? */
static int said(struct holder *h)
{
    struct pollfd p = { h->from, POLLIN, 0 };
    return poll(&p, 1, 0) == 1;
}

/* ---- the order of grants --------------------------------------------------- */

/* A holder H, then waiters queued one after the other (each known to be
 * queued before the next starts); H releases and asks again at once. */
static void ordered(const enum kind *kinds, int n, unsigned holder_flags)
{
    struct holder h = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, holder_flags, 'H');
    struct holder w[8];
    char want[16], got[64];
    holder_wait_locked(&h);
    for (int i = 0; i < n; i++) {
        w[i] = fair("s", CACHELOCK_EXCLUSIVE, kinds[i], (char)('0' + i));
        wait_places("s", i + 1);
        want[i] = (char)('0' + i);
    }
    /* The releaser asks again at once: it queues behind them all.  (A
     * plain holder would take the lock straight back: it just releases.) */
    send_byte(h.to, holder_flags & CACHELOCK_F_FAIR ? 'a' : 'r');
    for (int i = 0; i < n; i++) {
        /* The holder asking again must not be granted before them. */
        struct pollfd p[2] = { { w[i].from, POLLIN, 0 }, { h.from, POLLIN, 0 } };
        while (poll(p, (holder_flags & CACHELOCK_F_FAIR) ? 2 : 1, -1) < 0 && errno == EINTR)
            ;
        if ((holder_flags & CACHELOCK_F_FAIR) && p[1].revents && !p[0].revents)
            tap_fail(__FILE__, __LINE__, "the releaser was granted again before waiter %d", i);
        holder_wait_locked(&w[i]);
        holder_release(&w[i]);
        holder_finish(&w[i]);
    }
    CHECK_EQ(recv_byte(h.from), holder_flags & CACHELOCK_F_FAIR ? 'A' : 'R');
    want[n] = holder_flags & CACHELOCK_F_FAIR ? 'H' : '\0';
    want[n + 1] = '\0';
    read_log(got, sizeof got);
    if (got[0] != 'H' || strcmp(got + 1, want) != 0)
        tap_fail(__FILE__, __LINE__, "grants in the order '%s', expected 'H%s'", got, want);
    if (holder_flags & CACHELOCK_F_FAIR)
        holder_release(&h);
    holder_finish(&h);
    CHECK_EQ(look("s").places, 0);
}

/* The portable build has no OFD locks: fair mode is refused there, which
 * test_fair_mode_is_refused_without_ofd_locks checks; the rest skip. */
static void needs_queue(void)
{
    linux_only("the portable build has no OFD locks: fair mode is refused there with -ENOTSUP "
               "(test_fair_mode_is_refused_without_ofd_locks)");
}

static void test_blocking_waiters_are_granted_in_the_order_they_queued(void)
{
    needs_queue();
    static const enum kind k[] = { BLOCKING, BLOCKING, BLOCKING, BLOCKING, BLOCKING };
    ordered(k, 5, CACHELOCK_F_FAIR);
}

static void test_timed_and_async_waiters_keep_their_place_among_blocking_ones(void)
{
    needs_queue();
    static const enum kind k[] = { ASYNC, BLOCKING, TIMED, ASYNC, BLOCKING, TIMED };
    ordered(k, 6, CACHELOCK_F_FAIR);
}

static void test_fair_waiters_keep_their_order_behind_a_plain_holder(void)
{
    needs_queue();
    static const enum kind k[] = { TIMED, BLOCKING, ASYNC, BLOCKING };
    ordered(k, 4, 0);
}

/* The kernel alone (no queue): a releaser that asks again takes the lock
 * back in front of a process that has waited; the queue prevents it.  One
 * waiter and a holder that releases and asks again 200 times: in fair mode
 * they alternate. */
static void test_a_releaser_that_asks_again_goes_behind_the_queue(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    struct holder w;
    char got[64];
    holder_wait_locked(&h);
    for (int i = 0; i < 20; i++) {
        w = fair("s", CACHELOCK_EXCLUSIVE, i % 3 == 0 ? BLOCKING : i % 3 == 1 ? TIMED : ASYNC,
                 'w');
        wait_places("s", 1);
        send_byte(h.to, 'a');
        holder_wait_locked(&w);
        CHECK(!said(&h));               /* H is queued behind w */
        holder_release(&w);
        holder_finish(&w);
        CHECK_EQ(recv_byte(h.from), 'A');
    }
    read_log(got, sizeof got);
    CHECK(strcmp(got, "HwHwHwHwHwHwHwHwHwHwHwHwHwHwHwHwHwHwHwHwH") == 0);
    holder_release(&h);
    holder_finish(&h);
}

/* The sidecar's hint is only a hint: written by someone else, truncated or
 * removed, it never lets a newcomer join ahead of those queued. */
static void put_hint(uint64_t next)
{
    unsigned char b[16] = { 0 };
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(next >> (8 * i));
    int fd = open(tpath(".locks/s.fifo"), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    CHECK(fd >= 0 && pwrite(fd, b, sizeof b, 0) == (ssize_t)sizeof b);
    close(fd);
}

/* Until n places; the newest must be above top, the highest before. */
static void wait_place_above(const char *source, int n, long long top)
{
    wait_places(source, n);
    struct table now = look(source);
    if (now.highest <= top)
        tap_fail(__FILE__, __LINE__, "a new place at %lld, not above %lld", now.highest - Q_ALL,
                 top - Q_ALL);
}

static void test_a_wrong_hint_never_lets_a_newcomer_join_ahead(void)
{
    needs_queue();
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);   /* the lock file */
    cachelock_release(lock);
    /* Places far up: then a hint that says 0 (truncated, or a new
     * sidecar) would put the next one in front of them. */
    put_hint(1000);
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    holder_wait_locked(&h);
    struct holder a = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'a');
    wait_places("s", 1);
    CHECK_EQ(look("s").lowest, Q_ALL + 1000);     /* the hint was used */
    long long top = look("s").highest;
    struct holder b = fair("s", CACHELOCK_SHARED, ASYNC, 'b');
    wait_place_above("s", 2, top);
    CHECK(truncate(tpath(".locks/s.fifo"), 0) == 0);
    top = look("s").highest;
    struct holder c = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'c');
    wait_place_above("s", 3, top);
    CHECK(unlink(tpath(".locks/s.fifo")) == 0);
    top = look("s").highest;
    struct holder d = fair("s", CACHELOCK_EXCLUSIVE, TIMED, 'd');
    wait_place_above("s", 4, top);
    put_hint(UINT64_MAX);       /* garbage */
    top = look("s").highest;
    struct holder e = fair("s", CACHELOCK_SHARED, BLOCKING, 'e');
    wait_place_above("s", 5, top);
    put_hint(3);                /* behind, pointing into the queue */
    top = look("s").highest;
    struct holder f = fair("s", CACHELOCK_EXCLUSIVE, ASYNC, 'f');
    wait_place_above("s", 6, top);
    holder_release(&h);
    struct holder *order[] = { &a, &b, &c, &d, &e, &f };
    for (int i = 0; i < 6; i++) {
        holder_wait_locked(order[i]);
        holder_release(order[i]);
    }
    for (int i = 0; i < 6; i++)
        holder_finish(order[i]);
    holder_finish(&h);
    char got[16];
    read_log(got, sizeof got);
    CHECK(strcmp(got, "Habcdef") == 0);
}

/* ---- readers and writers ------------------------------------------------- */

static void test_readers_queued_back_to_back_share_and_writers_keep_their_turn(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    static const char names[] = "abWcdX";
    static const cachelock_mode_t modes[] = { CACHELOCK_SHARED, CACHELOCK_SHARED,
                                              CACHELOCK_EXCLUSIVE, CACHELOCK_SHARED,
                                              CACHELOCK_SHARED, CACHELOCK_EXCLUSIVE };
    struct holder w[6];
    char got[64];
    holder_wait_locked(&h);
    for (int i = 0; i < 6; i++) {
        w[i] = fair("s", modes[i], i % 2 ? ASYNC : BLOCKING, names[i]);
        wait_places("s", i + 1);
    }
    holder_release(&h);
    /* a and b hold together; W waits. */
    holder_wait_locked(&w[0]);
    holder_wait_locked(&w[1]);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    CHECK(!said(&w[2]));
    holder_release(&w[0]);
    CHECK(!said(&w[2]));
    holder_release(&w[1]);
    /* W alone; c and d wait for it. */
    holder_wait_locked(&w[2]);
    CHECK(!said(&w[3]) && !said(&w[4]));
    holder_release(&w[2]);
    holder_wait_locked(&w[3]);
    holder_wait_locked(&w[4]);
    CHECK(!said(&w[5]));
    holder_release(&w[3]);
    holder_release(&w[4]);
    holder_wait_locked(&w[5]);
    holder_release(&w[5]);
    for (int i = 0; i < 6; i++)
        holder_finish(&w[i]);
    holder_finish(&h);
    read_log(got, sizeof got);
    CHECK(strncmp(got, "Hab", 3) == 0 || strncmp(got, "Hba", 3) == 0);
    CHECK(got[3] == 'W');
    CHECK(strncmp(got + 4, "cd", 2) == 0 || strncmp(got + 4, "dc", 2) == 0);
    CHECK(strcmp(got + 6, "X") == 0);
}

static void test_a_writer_is_not_starved_by_a_stream_of_readers(void)
{
    needs_queue();
    struct holder r = fair("s", CACHELOCK_SHARED, BLOCKING, 'r');
    holder_wait_locked(&r);
    struct holder w = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'W');
    wait_places("s", 1);
    /* A plain reader barges: the lock is only shared.  A fair one does
     * not, whether it tries or waits. */
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_SHARED), 0);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    o.mode = CACHELOCK_SHARED;
    o.flags = CACHELOCK_F_FAIR;
    o.timeout_ms = 0;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -EWOULDBLOCK);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "queued");
    struct holder readers[3];
    for (int i = 0; i < 3; i++) {
        readers[i] = fair("s", CACHELOCK_SHARED, i == 1 ? ASYNC : BLOCKING, (char)('1' + i));
        wait_places("s", 2 + i);
    }
    holder_release(&r);
    holder_wait_locked(&w);
    for (int i = 0; i < 3; i++)
        CHECK(!said(&readers[i]));
    holder_release(&w);
    for (int i = 0; i < 3; i++)
        holder_wait_locked(&readers[i]);
    for (int i = 0; i < 3; i++) {
        holder_release(&readers[i]);
        holder_finish(&readers[i]);
    }
    holder_finish(&w);
    holder_finish(&r);
}

/* ---- SIGKILL at every step ------------------------------------------------- */

/* Where a victim stops (in the system-call table's hooks), to be killed. */
enum step {
    S_MUTEX_TAKEN, S_HINT_READ, S_PLACE_TAKEN, S_WRITER_PLACE_TAKEN, S_HINT_WRITTEN,
    S_MUTEX_RELEASED, S_WAITING_FOR_PLACE, S_HEAD_IN_FLOCK, S_GRANTED, S_PLACE_GIVEN_UP,
    S_RELEASED, S_ASYNC_MUTEX_TAKEN, S_ASYNC_PLACE_TAKEN, NSTEPS
};
static const char *const step_name[] = {
    "join: enqueue mutex taken", "join: hint read", "join: place taken",
    "join: exclusive place taken", "join: hint written", "join: enqueue mutex released",
    "wait: blocked on the place ahead", "wait: head, blocked in flock(2)",
    "grant: flock(2) granted, place kept", "grant: place given up, path unchecked",
    "release: flock(2) unlocked", "async join: enqueue mutex taken",
    "async join: place taken",
};

static enum step stop_at;
static int stop_fd = -1;
static struct cachelock__syscalls real;

static void stop_here(void)
{
    char c = 'S';
    if (write(stop_fd, &c, 1) != 1)
        _exit(5);
    for (;;)
        pause();
}

static int v_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    if (cmd == F_GETFL)
        return real.fcntl(fd, cmd);
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    int rc = real.fcntl(fd, cmd, arg);
    const struct flock *fl = arg;
    if (rc != 0 || (cmd != F_OFD_SETLK && cmd != F_OFD_SETLKW))
        return rc;
    int w = fl->l_type == F_WRLCK, u = fl->l_type == F_UNLCK;
    switch (stop_at) {
    case S_MUTEX_TAKEN:
    case S_ASYNC_MUTEX_TAKEN:
        if (w && fl->l_start == Q_MUTEX)
            stop_here();
        break;
    case S_PLACE_TAKEN:
    case S_ASYNC_PLACE_TAKEN:
        if (w && fl->l_start >= Q_ALL && fl->l_start < Q_WRITERS)
            stop_here();
        break;
    case S_WRITER_PLACE_TAKEN:
        if (w && fl->l_start >= Q_WRITERS && fl->l_start < Q_MUTEX)
            stop_here();
        break;
    case S_MUTEX_RELEASED:
        if (u && fl->l_start == Q_MUTEX)
            stop_here();
        break;
    case S_PLACE_GIVEN_UP:
        if (u && fl->l_start == Q_ALL)
            stop_here();
        break;
    default:
        break;
    }
    return rc;
}

static long v_pread(int fd, void *buf, size_t n, int64_t off)
{
    long r = real.pread(fd, buf, n, off);
    if (stop_at == S_HINT_READ)
        stop_here();
    return r;
}

static long v_pwrite(int fd, const void *buf, size_t n, int64_t off)
{
    long r = real.pwrite(fd, buf, n, off);
    if (stop_at == S_HINT_WRITTEN && off == 0)
        stop_here();
    return r;
}

static int v_flock(int fd, int op)
{
    int rc = real.flock(fd, op);
    if (rc == 0 && stop_at == S_GRANTED && op == LOCK_EX)
        stop_here();
    if (rc == 0 && stop_at == S_RELEASED && op == LOCK_UN)
        stop_here();
    return rc;
}

/* The victim: a fair exclusive waiter (async for the async steps) that
 * stops at its step; for S_RELEASED it holds and releases on 'r'. */
static pid_t victim(enum step step, int *stopped)
{
    int p[2];
    CHECK(pipe2(p, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        stop_fd = p[1];
        stop_at = step;
        cachelock__syscalls_reset();
        real = cachelock__sys;
        cachelock__sys.fcntl = v_fcntl;
        cachelock__sys.pread = v_pread;
        cachelock__sys.pwrite = v_pwrite;
        cachelock__sys.flock = v_flock;
        cachelock_t *lock = NULL;
        enum kind kind = step >= S_ASYNC_MUTEX_TAKEN ? ASYNC : BLOCKING;
        if (acquire_kind("s", CACHELOCK_EXCLUSIVE, kind, CACHELOCK_F_FAIR, &lock) != 0)
            _exit(3);
        log_char('V');
        cachelock_release(lock);
        /* Every step stops before this, but S_RELEASED, which stopped
         * inside the release. */
        _exit(6);
    }
    close(p[1]);
    *stopped = p[0];
    return pid;
}

/* The victim holds the lock at this step (or is being granted it). */
static int holds_at(enum step step)
{
    return step == S_GRANTED || step == S_PLACE_GIVEN_UP || step == S_RELEASED;
}

static void kill_at(enum step step)
{
    int stopped = -1, status;
    char got[64];
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    struct holder ahead = { -1, -1, -1 }, behind;
    holder_wait_locked(&h);
    if (step == S_WAITING_FOR_PLACE) {
        ahead = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'A');
        wait_places("s", 1);
    }
    pid_t v = victim(step, &stopped);
    switch (step) {
    case S_WAITING_FOR_PLACE:
        /* Really blocked in the kernel, on the place of 'A'. */
        wait_blocked("s", 1);
        break;
    case S_HEAD_IN_FLOCK:
        wait_blocked_in_flock(v);
        break;
    case S_GRANTED:
    case S_PLACE_GIVEN_UP:
    case S_RELEASED:
        /* The victim queues as the head; the step comes once H lets go. */
        wait_blocked_in_flock(v);
        break;
    default:
        CHECK_EQ(recv_within(stopped, 10000, step_name[step]), 'S');
        break;
    }
    /* Someone behind the victim, really waiting. */
    behind = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'B');
    wait_blocked("s", step == S_WAITING_FOR_PLACE ? 2 : 1);
    if (holds_at(step)) {
        /* The victim is granted the lock once H lets go, and stops (in
         * its release for S_RELEASED, after the unlock). */
        holder_release(&h);
        CHECK_EQ(recv_within(stopped, 10000, step_name[step]), 'S');
        if (step != S_RELEASED)
            CHECK(!said(&behind));
    }
    int64_t t0 = now_us();
    CHECK(kill(v, SIGKILL) == 0);
    CHECK(waitpid(v, &status, 0) == v);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (!holds_at(step)) {
        t0 = now_us();
        holder_release(&h);
    }
    if (ahead.pid > 0) {
        holder_wait_locked(&ahead);
        holder_release(&ahead);
        holder_finish(&ahead);
    }
    holder_wait_locked(&behind);
    int64_t took = now_us() - t0;
    holder_release(&behind);
    holder_finish(&behind);
    holder_finish(&h);
    close(stopped);
    /* Nothing left of the victim: no place, the lock free. */
    struct table t = look("s");
    CHECK_EQ(t.places, 0);
    CHECK_EQ(t.mutex, 0);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), 0);
    read_log(got, sizeof got);
    const char *want = step == S_WAITING_FOR_PLACE ? "HAB" : step == S_RELEASED ? "HVB" : "HB";
    if (strcmp(got, want) != 0)
        tap_fail(__FILE__, __LINE__, "%s: grants '%s', expected '%s'", step_name[step], got, want);
    tap_diag("%-40s the next waiter held %lld us after %s", step_name[step], (long long)took,
             holds_at(step) ? "the kill" : "the kill and the holder's release");
}

static void test_sigkill_at_every_step_never_stalls_the_queue(void)
{
    needs_queue();
    for (int s = 0; s < NSTEPS; s++) {
        pid_t pid = fork();
        int status;
        CHECK(pid >= 0);
        if (pid == 0) {
            /* A directory per step, and the step's processes in their own
             * process group, killed with it. */
            size_t len = strlen(tap_dir);
            CHECK(len + 8 < sizeof tap_dir);
            snprintf(tap_dir + len, sizeof tap_dir - len, "/step%d", s % 100);
            CHECK(mkdir(tap_dir, 0700) == 0);
            kill_at((enum step)s);
            _exit(0);
        }
        CHECK(waitpid(pid, &status, 0) == pid);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            tap_fail(__FILE__, __LINE__, "step '%s' failed", step_name[s]);
    }
}

/* ---- timed and asynchronous waits ------------------------------------------ */

static void test_a_timed_wait_that_gives_up_leaves_no_place_behind(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    holder_wait_locked(&h);
    struct holder ahead = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'A');
    wait_places("s", 1);
    int fds = count_lib_fds();
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    o.flags = CACHELOCK_F_FAIR;
    o.timeout_ms = 150;
    int64_t t0 = now_us();
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    CHECK(now_us() - t0 >= 150000);
    CHECK(lock == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "timed out after 150 ms");
    CHECK_EQ(look("s").places, 1);      /* A's only */
    cachelock_close_idle();
    CHECK_EQ(count_lib_fds(), fds);
    /* Behind A, a blocking waiter is not held up by the place given up. */
    struct holder b = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'B');
    wait_places("s", 2);
    holder_release(&h);
    holder_wait_locked(&ahead);
    holder_release(&ahead);
    holder_wait_locked(&b);
    holder_release(&b);
    holder_finish(&b);
    holder_finish(&ahead);
    holder_finish(&h);
}

/* Without inotify (the per-user limit used up) a timed wait has no watch
 * and puts no waiter mark on its lock file, whose descriptor the release
 * of a wait could then keep: its place must go all the same. */
static int no_inotify(int flags)
{
    (void)flags;
    errno = EMFILE;
    return -1;
}

static void test_a_timed_wait_without_inotify_gives_up_its_place(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    holder_wait_locked(&h);
    cachelock__sys.inotify_init1 = no_inotify;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    o.flags = CACHELOCK_F_FAIR;
    o.timeout_ms = 60;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    cachelock__syscalls_reset();
    CHECK_EQ(look("s").places, 0);
    struct holder b = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'B');
    wait_places("s", 1);
    holder_release(&h);
    holder_wait_locked(&b);
    holder_release(&b);
    holder_finish(&b);
    holder_finish(&h);
}

static void test_a_cancelled_asynchronous_wait_leaves_no_place_and_no_late_lock(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    holder_wait_locked(&h);
    int fds = count_lib_fds();
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "held by another owner");
    CHECK_EQ(look("s").places, 1);
    struct holder b = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'B');
    wait_places("s", 2);
    wait_blocked("s", 1);               /* B waits for our place */
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "held by another owner");
    cachelock_wait_free(w);
    CHECK_EQ(look("s").places, 1);      /* B's */
    holder_release(&h);
    holder_wait_locked(&b);
    holder_release(&b);
    holder_finish(&b);
    holder_finish(&h);
    cachelock_close_idle();
    CHECK_EQ(count_lib_fds(), fds);
    CHECK(lock == NULL);
}

/* A victim stopped while it holds the enqueue mutex: an asynchronous step
 * must still return at once, and the wait must go on once it is gone. */
static void test_asynchronous_steps_never_block_on_the_queue(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    int stopped;
    holder_wait_locked(&h);
    pid_t v = victim(S_MUTEX_TAKEN, &stopped);
    CHECK_EQ(recv_within(stopped, 10000, "a victim stopped holding the enqueue mutex"), 'S');
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    int64_t worst = 0;
    for (int i = 0; i < 5; i++) {
        int64_t t0 = now_us();
        CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
        if (now_us() - t0 > worst)
            worst = now_us() - t0;
        CHECK_STR_CONTAINS(cachelock_errmsg(), "joining the queue");
        CHECK(cachelock_wait_timeout(w) <= CACHELOCK_RECHECK_MAX_MS);
    }
    CHECK(worst < 200000);
    CHECK_EQ(look("s").places, 0);
    kill(v, SIGKILL);
    waitpid(v, NULL, 0);
    close(stopped);
    /* Joins at a step now. */
    int rc;
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS && look("s").places == 0) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    CHECK_EQ(rc, -EINPROGRESS);
    CHECK_EQ(look("s").places, 1);
    holder_release(&h);
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    CHECK_EQ(rc, 0);
    cachelock_wait_free(w);
    CHECK_EQ(look("s").places, 0);
    cachelock_release(lock);
    holder_finish(&h);
}

/* ---- where fair mode cannot work ------------------------------------------- */

static long fake_fs;

static int fake_fstatfs(int fd, struct statfs *st)
{
    int rc = real.fstatfs(fd, st);
    if (rc == 0)
        st->f_type = fake_fs;
    return rc;
}

static int rdonly_openat(int dfd, const char *p, int flags, ...)
{
    if ((flags & O_ACCMODE) == O_RDWR) {
        errno = EROFS;
        return -1;
    }
    return real.openat(dfd, p, flags, 0);
}

static int no_ofd_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    if (cmd == F_GETFL)
        return real.fcntl(fd, cmd);
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_OFD_GETLK || cmd == F_OFD_SETLK || cmd == F_OFD_SETLKW) {
        errno = EINVAL;     /* what kernels before 3.15 say */
        return -1;
    }
    return real.fcntl(fd, cmd, arg);
}

static void refused(const char *why)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = (cachelock_t *)&lock;
    o.flags = CACHELOCK_F_FAIR;
    for (long t = -1; t <= 100; t += t < 0 ? 1 : 100) {
        o.timeout_ms = t;
        lock = (cachelock_t *)&lock;
        CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ENOTSUP);
        CHECK(lock == NULL);
        CHECK_STR_CONTAINS(cachelock_errmsg(), why);
        CHECK_STR_CONTAINS(cachelock_errmsg(), "/.locks/s.lock' in fair mode");
    }
    o.timeout_ms = -1;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -ENOTSUP);
    CHECK(lock == NULL);
    cachelock_wait_free(w);
    /* Without fair mode, the lock works as it always did (shared: on a
     * read-only mount an exclusive lock is refused with -EROFS, fair or
     * not). */
    o.flags = 0;
    o.mode = CACHELOCK_SHARED;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), 0);
    cachelock_release(lock);
    cachelock_close_idle();
}

static void test_fair_mode_is_refused_on_network_and_fuse_filesystems(void)
{
    needs_queue();
    static const long kinds[] = { 0x6969 /* NFS */, 0xFF534D42 /* CIFS */,
                                  0x65735546 /* FUSE */, 0x12345678 /* unknown */ };
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        cachelock__syscalls_reset();
        real = cachelock__sys;
        fake_fs = kinds[i];
        cachelock__sys.fstatfs = fake_fstatfs;
        cachelock_close_idle();
        refused("needs a local filesystem");
        /* Nor can it be made the cache's policy there. */
        CHECK_EQ(cachelock_set_fair_policy(tap_dir, 1), -ENOTSUP);
        CHECK_STR_CONTAINS(cachelock_errmsg(), "needs a local filesystem");
        CHECK(access(tpath(".locks/.fair"), F_OK) != 0);
    }
    cachelock__syscalls_reset();
}

static void test_fair_mode_is_refused_on_a_read_only_cache(void)
{
    needs_queue();
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);
    cachelock_release(lock);
    cachelock_close_idle();
    real = cachelock__sys;
    cachelock__sys.openat = rdonly_openat;
    refused("needs write access to the lock file");
    cachelock__syscalls_reset();
}

static void test_fair_mode_is_refused_without_ofd_locks(void)
{
    real = cachelock__sys;
    cachelock__sys.fcntl = no_ofd_fcntl;
    refused("open file description locks");
    CHECK_EQ(cachelock_set_fair_policy(tap_dir, 1), -ENOTSUP);
    CHECK(access(tpath(".locks/.fair"), F_OK) != 0);
    cachelock__syscalls_reset();
}

/* ---- the cache's policy ----------------------------------------------------- */

static void test_the_policy_makes_every_acquire_of_the_cache_queue(void)
{
    needs_queue();
    CHECK_EQ(cachelock_fair_policy(tpath("none")), 0);
    CHECK(access(tpath("none"), F_OK) != 0);
    CHECK_EQ(cachelock_set_fair_policy(tpath("none"), 0), 0);
    CHECK(access(tpath("none"), F_OK) != 0);
    CHECK_EQ(cachelock_fair_policy(tap_dir), 0);
    CHECK_EQ(cachelock_set_fair_policy(tap_dir, 1), 0);
    CHECK_EQ(cachelock_fair_policy(tap_dir), 1);
    CHECK_EQ(cachelock_set_fair_policy(tap_dir, 1), 0);     /* on twice */
    /* Plain acquires (no flag) queue now: a try sees the queue. */
    struct holder h = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'H');
    holder_wait_locked(&h);
    struct holder a = spawn("s", CACHELOCK_EXCLUSIVE, TIMED, 0, 'a');
    wait_places("s", 1);
    struct holder b = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'b');
    wait_places("s", 2);
    send_byte(h.to, 'a');
    holder_wait_locked(&a);
    holder_release(&a);
    holder_wait_locked(&b);
    holder_release(&b);
    CHECK_EQ(recv_byte(h.from), 'A');
    char got[16];
    read_log(got, sizeof got);
    CHECK(strcmp(got, "HabH") == 0);
    holder_release(&h);
    holder_finish(&a);
    holder_finish(&b);
    holder_finish(&h);
    /* Sources are still only the lock files. */
    char **names;
    size_t n;
    CHECK_EQ(cachelock_sources(tap_dir, &names, &n), 0);
    CHECK(n == 1 && strcmp(names[0], "s") == 0);
    cachelock_sources_free(names, n);
    /* Off: plain acquires do not queue. */
    CHECK_EQ(cachelock_set_fair_policy(tap_dir, 0), 0);
    CHECK_EQ(cachelock_fair_policy(tap_dir), 0);
    CHECK(access(tpath(".locks/.fair"), F_OK) != 0);
    h = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'H');
    holder_wait_locked(&h);
    a = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'a');
    wait_blocked_in_flock(a.pid);
    CHECK_EQ(look("s").places, 0);
    holder_release(&h);
    holder_wait_locked(&a);
    holder_release(&a);
    holder_finish(&a);
    holder_finish(&h);
}

/* A running process sees a change of the policy at its next re-read. */
static void test_a_running_process_notices_the_policy(void)
{
    needs_queue();
    cachelock_t *lock;
    cachelock__policy_recheck_us = 0;
    CHECK_EQ(cachelock_acquire(tap_dir, "s", &lock), 0);     /* pooled, policy read */
    cachelock_release(lock);
    struct holder h = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'H');
    holder_wait_locked(&h);
    /* Another process sets it. */
    pid_t pid = fork();
    if (pid == 0)
        _exit(cachelock_set_fair_policy(tap_dir, 1) == 0 ? 0 : 1);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    CHECK_EQ(look("s").places, 1);      /* we queued */
    cachelock_wait_free(w);
    CHECK_EQ(look("s").places, 0);
    holder_release(&h);
    holder_finish(&h);
}

/* ---- ownership and fork ---------------------------------------------------- */

/* valgrind 3.19 does not know that F_OFD_SETLKW may block: a thread
 * sleeping in it keeps valgrind's scheduler lock, and every other thread
 * of the process stops until it returns (measured with a two-thread
 * program; F_SETLKW is handled).  Tests that need another thread to run
 * while one waits in the queue skip that part there. */
static int on_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

static void *blocking_fair(void *arg)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    o.flags = CACHELOCK_F_FAIR;
    long rc = cachelock_acquire_ex(tap_dir, "s", &o, &lock);
    *(cachelock_t **)arg = lock;
    return (void *)rc;
}

static void test_ownership_in_fair_mode(void)
{
    needs_queue();
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *mine, *again = NULL;
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &mine), 0);
    /* Someone queued behind us. */
    struct holder w = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'w');
    wait_places("s", 1);
    /* The owner waiting for itself: refused at once, not queued. */
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -EDEADLK);
    CHECK(again == NULL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "would deadlock");
    CHECK_EQ(look("s").places, 1);
    /* A timed wait of the owner waits and times out. */
    o.timeout_ms = 50;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &again), -ETIMEDOUT);
    o.timeout_ms = -1;
    if (on_valgrind()) {
        tap_diag("under valgrind: no second thread waiting in F_OFD_SETLKW (see on_valgrind)");
        cachelock_release(mine);
        holder_wait_locked(&w);
        holder_release(&w);
        holder_finish(&w);
        return;
    }
    /* Another thread queues (no -EDEADLK) and gets it after w. */
    pthread_t t;
    cachelock_t *theirs = NULL;
    CHECK(pthread_create(&t, NULL, blocking_fair, &theirs) == 0);
    wait_places("s", 2);
    cachelock_release(mine);
    holder_wait_locked(&w);
    holder_release(&w);
    void *rc;
    CHECK(pthread_join(t, &rc) == 0);
    CHECK(rc == NULL && theirs != NULL);
    cachelock_release(theirs);
    holder_finish(&w);
}

/* A thread that holds the source shared asks again, shared, while a
 * writer waits for that hold: it must not queue behind the writer. */
static void test_a_shared_holder_asking_again_does_not_wait_behind_a_writer(void)
{
    needs_queue();
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *first, *second = NULL;
    o.mode = CACHELOCK_SHARED;
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &first), 0);
    struct holder w = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'W');
    wait_blocked_in_flock(w.pid);
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &second), 0);
    CHECK(!said(&w));
    cachelock_release(first);
    CHECK(!said(&w));
    cachelock_release(second);
    holder_wait_locked(&w);
    holder_release(&w);
    holder_finish(&w);
}

static void test_a_forked_child_cannot_step_or_drop_the_parents_place(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    holder_wait_locked(&h);
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    CHECK_EQ(look("s").places, 1);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock_t *l = NULL;
        if (cachelock_wait_step(w, &l) != -EINVAL || l != NULL)
            _exit(1);
        cachelock_wait_free(w);
        _exit(look("s").places == 1 ? 0 : 2);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    CHECK_EQ(look("s").places, 1);      /* still ours */
    holder_release(&h);
    int rc;
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    CHECK_EQ(rc, 0);
    cachelock_wait_free(w);
    /* A child releasing the inherited hold only closes its copy. */
    pid = fork();
    if (pid == 0) {
        cachelock_release(lock);
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_EQ(try_once(tap_dir, "s", CACHELOCK_EXCLUSIVE), -EWOULDBLOCK);
    cachelock_release(lock);
    holder_finish(&h);
}

/* ---- prune ------------------------------------------------------------------- */

struct pruned { char names[256]; int removed; };

static void note(const char *source, cachelock_prune_status_t status, int err, void *ctx)
{
    struct pruned *p = ctx;
    (void)err;
    snprintf(p->names + strlen(p->names), sizeof p->names - strlen(p->names), "%s=%d ", source,
             (int)status);
}

/* Make the sidecar of source: a fair wait that had to queue. */
static void make_sidecar(const char *source)
{
    struct holder h = spawn(source, CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'h');
    holder_wait_locked(&h);
    struct holder w = fair(source, CACHELOCK_EXCLUSIVE, BLOCKING, 'w');
    wait_places(source, 1);
    holder_release(&h);
    holder_wait_locked(&w);
    holder_release(&w);
    holder_finish(&w);
    holder_finish(&h);
    char p[64];
    snprintf(p, sizeof p, ".locks/%.40s.fifo", source);
    CHECK(access(tpath(p), F_OK) == 0);
}

static void test_prune_removes_sidecars_with_their_lock_files_and_skips_queues(void)
{
    needs_queue();
    struct pruned r;
    make_sidecar("a");
    make_sidecar("b");
    make_sidecar("q");
    /* An orphan: its lock file removed by hand. */
    make_sidecar("o");
    CHECK(unlink(tpath(".locks/o.lock")) == 0);
    CHECK_EQ(cachelock_set_fair_policy(tap_dir, 1), 0);
    /* q has a queue while its lock is free: a waiter's place, as a fair
     * waiter holds it in the instant between two owners. */
    int fd = open(tpath(".locks/q.lock"), O_RDWR | O_CLOEXEC);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = Q_ALL + 7, .l_len = 1 };
    CHECK(fd >= 0 && fcntl(fd, F_OFD_SETLK, &fl) == 0);
    /* b is held. */
    struct holder h = spawn("b", CACHELOCK_EXCLUSIVE, BLOCKING, CACHELOCK_F_FAIR, 'h');
    holder_wait_locked(&h);

    memset(&r, 0, sizeof r);
    CHECK_EQ(cachelock_prune(tap_dir, 0, CACHELOCK_PRUNE_DRY_RUN, note, &r), 1);
    CHECK(strcmp(r.names, "a=0 b=1 q=1 ") == 0);
    CHECK(access(tpath(".locks/a.fifo"), F_OK) == 0);
    CHECK(access(tpath(".locks/o.fifo"), F_OK) == 0);

    memset(&r, 0, sizeof r);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, note, &r), 1);
    /* Only sources are reported and counted: not sidecars, not .fair. */
    CHECK(strcmp(r.names, "a=0 b=1 q=1 ") == 0);
    CHECK(access(tpath(".locks/a.lock"), F_OK) != 0);
    CHECK(access(tpath(".locks/a.fifo"), F_OK) != 0);
    CHECK(access(tpath(".locks/b.fifo"), F_OK) == 0);
    CHECK(access(tpath(".locks/q.lock"), F_OK) == 0);
    CHECK(access(tpath(".locks/q.fifo"), F_OK) == 0);
    CHECK(access(tpath(".locks/o.fifo"), F_OK) != 0);
    CHECK(access(tpath(".locks/.fair"), F_OK) == 0);
    close(fd);
    holder_release(&h);
    holder_finish(&h);
    CHECK_EQ(cachelock_prune(tap_dir, 0, 0, NULL, NULL), 2);
    CHECK_EQ(dir_entries(tpath(".locks")), 1);      /* .fair */
}

/* ---- descriptors the program reuses ---------------------------------------- */

static int fd_of(const char *suffix)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int found = -1;
    while (d && (e = readdir(d))) {
        char link[320], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        size_t n = strlen(target), k = strlen(suffix);
        if (n > k && strcmp(target + n - k, suffix) == 0)
            found = atoi(e->d_name);
    }
    if (d)
        closedir(d);
    return found;
}

static void contended_fair_acquire(void)
{
    struct holder h = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'h');
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    int rc;
    holder_wait_locked(&h);
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_wait_start(tap_dir, "s", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    holder_release(&h);
    while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
        struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
        poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
    }
    CHECK_EQ(rc, 0);
    cachelock_wait_free(w);
    cachelock_release(lock);
    holder_finish(&h);
}

/* In a group-shared cache (.locks set-group-ID) the sidecar gets the
 * group's read and write, as lock files do, whatever the umask: the other
 * members write the hint too. */
static void test_a_group_shared_cache_shares_the_sidecar_with_the_group(void)
{
    needs_queue();
    char cache[PATH_MAX + 8], side[PATH_MAX + 32];
    struct stat st;
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *held, *lock = NULL;
    snprintf(cache, sizeof cache, "%s/g", tap_dir);
    snprintf(side, sizeof side, "%s/.locks/s.fifo", cache);
    CHECK(mkdir(cache, 0775) == 0);
    CHECK(chmod(cache, 02775) == 0);    /* .locks inherits the bit */
    mode_t old = umask(022);
    o.flags = CACHELOCK_F_FAIR;
    CHECK_EQ(cachelock_acquire_ex(cache, "s", &o, &held), 0);
    CHECK(access(side, F_OK) != 0);     /* the fast path makes no sidecar */
    o.timeout_ms = 20;                  /* joins, which makes it, and gives up */
    CHECK_EQ(cachelock_acquire_ex(cache, "s", &o, &lock), -ETIMEDOUT);
    umask(old);
    CHECK(stat(side, &st) == 0);
    CHECK_EQ(st.st_mode & 0777, 0664);
    cachelock_release(held);
}

static void test_a_sidecar_descriptor_the_program_reused_is_left_alone(void)
{
    needs_queue();
    contended_fair_acquire();
    int sfd = fd_of(".fifo");
    CHECK(sfd >= 3);        /* kept with the released lock file */
    /* The program closes it and opens a file of its own there. */
    int mine = open(tpath("mine"), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    CHECK(mine >= 0 && dup3(mine, sfd, O_CLOEXEC) == sfd);
    close(mine);
    mine = sfd;
    CHECK(write(mine, "keep this", 9) == 9);
    contended_fair_acquire();
    char buf[32] = "";
    CHECK(pread(mine, buf, sizeof buf - 1, 0) == 9);
    CHECK(strcmp(buf, "keep this") == 0);
    CHECK_EQ(lseek(mine, 0, SEEK_CUR), 9);
    struct stat a, b;
    CHECK(fstat(mine, &a) == 0 && stat(tpath("mine"), &b) == 0 && a.st_ino == b.st_ino);
    cachelock_close_idle();
    CHECK(fcntl(mine, F_GETFD) >= 0);   /* still open */
    close(mine);
}

/* ---- the path check after every grant --------------------------------------- */

/* A fair waiter granted the lock of a file renamed away while it waited
 * starts again on the file the path names, and waits for its holder. */
static void test_a_waiter_granted_a_renamed_file_queues_again_on_the_new_one(void)
{
    needs_queue();
    struct holder h = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'H');
    holder_wait_locked(&h);
    struct holder w = fair("s", CACHELOCK_EXCLUSIVE, BLOCKING, 'W');
    wait_places("s", 1);
    CHECK(rename(tpath(".locks/s.lock"), tpath(".locks/old")) == 0);
    struct holder n = spawn("s", CACHELOCK_EXCLUSIVE, BLOCKING, 0, 'N');
    holder_wait_locked(&n);
    holder_release(&h);
    /* W got the old file, saw the path name another, and queued on it. */
    wait_places("s", 1);
    CHECK(!said(&w));
    holder_release(&n);
    holder_wait_locked(&w);
    holder_release(&w);
    holder_finish(&w);
    holder_finish(&n);
    holder_finish(&h);
    char got[16];
    read_log(got, sizeof got);
    CHECK(strcmp(got, "HNW") == 0);
}

TAP_MAIN(
    T(test_blocking_waiters_are_granted_in_the_order_they_queued, 20),
    T(test_timed_and_async_waiters_keep_their_place_among_blocking_ones, 20),
    T(test_fair_waiters_keep_their_order_behind_a_plain_holder, 20),
    T(test_a_releaser_that_asks_again_goes_behind_the_queue, 30),
    T(test_a_wrong_hint_never_lets_a_newcomer_join_ahead, 20),
    T(test_readers_queued_back_to_back_share_and_writers_keep_their_turn, 20),
    T(test_a_writer_is_not_starved_by_a_stream_of_readers, 20),
    T(test_sigkill_at_every_step_never_stalls_the_queue, 60),
    T(test_a_timed_wait_that_gives_up_leaves_no_place_behind, 20),
    T(test_a_timed_wait_without_inotify_gives_up_its_place, 20),
    T(test_a_cancelled_asynchronous_wait_leaves_no_place_and_no_late_lock, 20),
    T(test_asynchronous_steps_never_block_on_the_queue, 20),
    T(test_fair_mode_is_refused_on_network_and_fuse_filesystems, 20),
    T(test_fair_mode_is_refused_on_a_read_only_cache, 20),
    T(test_fair_mode_is_refused_without_ofd_locks, 20),
    T(test_the_policy_makes_every_acquire_of_the_cache_queue, 20),
    T(test_a_running_process_notices_the_policy, 20),
    T(test_ownership_in_fair_mode, 20),
    T(test_a_shared_holder_asking_again_does_not_wait_behind_a_writer, 20),
    T(test_a_forked_child_cannot_step_or_drop_the_parents_place, 20),
    T(test_prune_removes_sidecars_with_their_lock_files_and_skips_queues, 20),
    T(test_a_group_shared_cache_shares_the_sidecar_with_the_group, 20),
    T(test_a_sidecar_descriptor_the_program_reused_is_left_alone, 20),
    T(test_a_waiter_granted_a_renamed_file_queues_again_on_the_new_one, 20),
)
