/*
 * bench_contended.c - N processes loop on one source: throughput, mutual
 * exclusion and fairness of a raw flock(2) loop, this library, and this
 * library in fair mode, side by side in one run.
 *
 *   bench_contended [SECONDS_PER_CASE]      (default 1)
 *
 * Each case runs in three rounds alternating with the variant it is
 * compared with (fair with plain, mixed with plain), and its figures are
 * those of the three rounds together: on a shared machine a slow stretch
 * then hits both alike.
 *
 * Each process loops: acquire, hold (nothing but an increment, or a
 * busy-wait of 20 us or 200 us), release.  Every acquisition is logged
 * inside the lock.  From that:
 *
 *   acq/s       acquisitions per second, and the ratio to plain mode (to
 *               the raw loop for plain mode itself)
 *   Jain        Jain's fairness index over the per-process counts (1 =
 *               perfectly even)
 *   run         the longest run of consecutive acquisitions by one process
 *               while another process was waiting (start-up, when the
 *               first process runs alone, does not count); for fair mode,
 *               waiting in the queue, and beside it by call time
 *   overtook    the share of acquisitions that overtook a process that was
 *               still waiting and had started earlier.  "Earlier" for raw
 *               and plain: called acquire earlier.  For fair mode: joined
 *               the queue earlier (its join completed before ours, or
 *               before our call when we took the lock without joining).
 *               Fair mode's promise is this second kind; its share by
 *               call time is given beside it ("by call"): a process
 *               preempted between calling acquire and joining the queue
 *               can be passed by one that joins meanwhile, which no queue
 *               can prevent.
 *   max wait    the longest time from calling acquire to holding
 *
 * The moment a join completes is taken from inside the library, through
 * its system-call table (as the tests do): just before the enqueue mutex
 * is released, while it is still held, so that these moments are ordered
 * exactly as the joins.
 *
 * Mixed: half the processes fair, half plain, on one source: plain users
 * barge in front of the queue; the fair ones' share of the acquisitions,
 * and overtakes among the fair ones (which must stay 0).
 */
#define _GNU_SOURCE
#include "internal.h"

#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAXN 8
#define LOG_MAX (8 << 20)

enum variant { RAW, PLAIN, FAIR, MIXED };
static const char *const variant_name[] = { "raw flock", "cachelock", "fair", "mixed" };

struct shared {
    int stop;
    long counter;
    long counts[MAXN];
    long overtakes, overtakes_call, overtakes_fair;
    long run, best_run, run_call, best_run_call;
    int last;
    int64_t longest_wait_ns;
    int64_t called[MAXN];       /* 0: not waiting */
    int64_t joined[MAXN];       /* fair: when the join completed, 0: none */
    unsigned char log[LOG_MAX];
};

static struct shared *sh;
static char dir[256], path[512];
static int me;                  /* in a worker */
static int (*real_fcntl)(int fd, int cmd, ...);

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The library's fcntl(2): notes the end of a join (the release of the
 * enqueue mutex), while the mutex is still held. */
static int hook_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    if (cmd == F_GETFL || cmd == F_GETFD)
        return real_fcntl(fd, cmd);
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_OFD_SETLK) {
        const struct flock *fl = arg;
        if (fl->l_type == F_UNLCK && fl->l_start == Q_MUTEX && fl->l_len == 1)
            __atomic_store_n(&sh->joined[me], now_ns(), __ATOMIC_SEQ_CST);
    }
    return real_fcntl(fd, cmd, arg);
}

static void hold_for(int64_t ns)
{
    if (ns <= 0)
        return;
    int64_t end = now_ns() + ns;
    while (now_ns() < end)
        ;
}

static void worker(int index, int n, enum variant v, int fair, int64_t hold_ns)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    int fd = v == RAW ? open(path, O_RDWR | O_CLOEXEC) : -1;
    me = index;
    if (fair) {
        o.flags |= CACHELOCK_F_FAIR;
        real_fcntl = cachelock__sys.fcntl;
        cachelock__sys.fcntl = hook_fcntl;
    }
    while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
        cachelock_t *lock = NULL;
        int64_t since = now_ns();
        __atomic_store_n(&sh->joined[me], 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&sh->called[me], since, __ATOMIC_SEQ_CST);
        if (v == RAW ? flock(fd, LOCK_EX) != 0 : cachelock_acquire_ex(dir, "hot", &o, &lock) != 0)
            _exit(2);
        int64_t got = now_ns();
        int64_t joined = __atomic_load_n(&sh->joined[me], __ATOMIC_SEQ_CST);
        __atomic_store_n(&sh->called[me], 0, __ATOMIC_SEQ_CST);
        int others = 0, queued = 0, ov = 0, ov_call = 0, ov_fair = 0;
        for (int q = 0; q < n; q++) {
            if (q == me)
                continue;
            int64_t c = __atomic_load_n(&sh->called[q], __ATOMIC_SEQ_CST);
            int64_t j = __atomic_load_n(&sh->joined[q], __ATOMIC_SEQ_CST);
            if (!c)
                continue;
            others = 1;
            queued |= j != 0;
            if (c < since)
                ov_call = 1;
            /* q still waits; it is ahead of us if it joined before we did
             * (or before we called, when we did not join). */
            if (j && j < (joined ? joined : since))
                ov_fair = 1;
        }
        ov = fair ? ov_fair : ov_call;
        if (got - since > sh->longest_wait_ns)
            sh->longest_wait_ns = got - since;
        long c = sh->counter;
        if (c < LOG_MAX)
            sh->log[c] = (unsigned char)me;
        sh->counter = c + 1;
        sh->counts[me]++;
        sh->overtakes += ov;
        sh->overtakes_call += ov_call;
        /* In a mixed run, overtakes of a fair process by a fair one. */
        sh->overtakes_fair += fair && ov_fair;
        /* Runs while another waited: for fair mode, in the queue (joined);
         * by call time too, as for the others. */
        int waited = fair ? queued : others;
        if (waited && c > 0 && sh->last == me)
            sh->run++;
        else
            sh->run = waited;
        if (sh->run > sh->best_run)
            sh->best_run = sh->run;
        if (others && c > 0 && sh->last == me)
            sh->run_call++;
        else
            sh->run_call = others;
        if (sh->run_call > sh->best_run_call)
            sh->best_run_call = sh->run_call;
        sh->last = me;
        hold_for(hold_ns);
        if (v == RAW)
            flock(fd, LOCK_UN);
        else
            cachelock_release(lock);
    }
    _exit(0);
}

struct result {
    double per_s, jain, overtake_share, call_share, longest_wait_ms, fair_share;
    long run, run_call, total, fair_overtakes;
    int exclusive;
};

/* What one round adds to a case's totals. */
struct totals {
    double elapsed;
    long counter, counts[MAXN], overtakes, overtakes_call, overtakes_fair, best_run, best_run_call;
    int64_t longest_wait_ns;
    int exclusive;
};

static void run_round(int n, enum variant v, int64_t hold_ns, double seconds, struct totals *t)
{
    memset(sh, 0, sizeof *sh);
    pid_t pid[MAXN];
    for (int i = 0; i < n; i++)
        if ((pid[i] = fork()) == 0)
            worker(i, n, v, v == FAIR || (v == MIXED && i % 2 == 0), hold_ns);
    int64_t t0 = now_ns();
    usleep((useconds_t)(seconds * 1e6));
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++)
        waitpid(pid[i], NULL, 0);
    t->elapsed += (now_ns() - t0) / 1e9;
    long sum = 0;
    for (int i = 0; i < n; i++) {
        sum += sh->counts[i];
        t->counts[i] += sh->counts[i];
    }
    t->exclusive &= sum == sh->counter;
    t->counter += sh->counter;
    t->overtakes += sh->overtakes;
    t->overtakes_call += sh->overtakes_call;
    t->overtakes_fair += sh->overtakes_fair;
    if (sh->best_run > t->best_run)
        t->best_run = sh->best_run;
    if (sh->best_run_call > t->best_run_call)
        t->best_run_call = sh->best_run_call;
    if (sh->longest_wait_ns > t->longest_wait_ns)
        t->longest_wait_ns = sh->longest_wait_ns;
}

static struct result result_of(int n, const struct totals *t)
{
    struct result r;
    long sum = 0, fair_sum = 0;
    double sq = 0;
    for (int i = 0; i < n; i++) {
        sum += t->counts[i];
        fair_sum += i % 2 == 0 ? t->counts[i] : 0;
        sq += (double)t->counts[i] * t->counts[i];
    }
    r.total = t->counter;
    r.exclusive = t->exclusive;
    r.per_s = t->counter / t->elapsed;
    r.jain = sq > 0 ? (double)sum * sum / (n * sq) : 0;
    r.overtake_share = t->counter ? (double)t->overtakes / t->counter : 0;
    r.call_share = t->counter ? (double)t->overtakes_call / t->counter : 0;
    r.fair_overtakes = t->overtakes_fair;
    r.fair_share = sum ? (double)fair_sum / sum : 0;
    r.longest_wait_ms = t->longest_wait_ns / 1e6;
    r.run = t->best_run;
    r.run_call = t->best_run_call;
    return r;
}

/* Variants a and b (b may be a), ROUNDS rounds each, alternating, so that
 * a slow stretch of a shared machine hits both alike. */
#define ROUNDS 3
static void run_pair(int n, enum variant a, enum variant b, int64_t hold_ns, double seconds,
                     struct result *ra, struct result *rb)
{
    struct totals ta, tb;
    memset(&ta, 0, sizeof ta);
    memset(&tb, 0, sizeof tb);
    ta.exclusive = tb.exclusive = 1;
    for (int k = 0; k < ROUNDS; k++) {
        run_round(n, a, hold_ns, seconds / ROUNDS, &ta);
        if (rb)
            run_round(n, b, hold_ns, seconds / ROUNDS, &tb);
    }
    *ra = result_of(n, &ta);
    if (rb)
        *rb = result_of(n, &tb);
}

static FILE *json;
static int ok = 1;

static void report(int n, enum variant v, long hold_us, const struct result *r, double base)
{
    char ov[64];
    if (v == FAIR)
        snprintf(ov, sizeof ov, "%6.2f%% (by call %.2f%%, run %ld)", 100 * r->overtake_share,
                 100 * r->call_share, r->run_call);
    else if (v == MIXED)
        snprintf(ov, sizeof ov, "fair ones: %ld", r->fair_overtakes);
    else
        snprintf(ov, sizeof ov, "%6.2f%%", 100 * r->overtake_share);
    printf("%2d %6ld %-9s %9.0f %6.2fx %6.3f %7ld  %-36s %9.2fms %s\n", n, hold_us,
           variant_name[v], r->per_s, r->per_s / base, r->jain, r->run, ov, r->longest_wait_ms,
           r->exclusive ? "ok" : "VIOLATED");
    if (v == MIXED)
        printf("%2s %6s %-9s fair processes got %.1f%% of the acquisitions (half of the processes)\n",
               "", "", "", 100 * r->fair_share);
    fflush(stdout);
    ok &= r->exclusive;
    if (v == FAIR && r->overtake_share > 0)
        ok = 0;
    if (v == MIXED && r->fair_overtakes > 0)
        ok = 0;
    if (json)
        fprintf(json, "{\"bench\":\"contended\",\"n\":%d,\"hold_us\":%ld,\"variant\":\"%s\","
                "\"acq_per_s\":%.0f,\"%s\":%.3f,\"jain\":%.4f,\"longest_run\":%ld,"
                "\"longest_run_call\":%ld,\"overtake_share\":%.5f,\"overtake_call_share\":%.5f,"
                "\"longest_wait_ms\":%.3f,\"fair_share\":%.4f,\"fair_overtakes\":%ld,"
                "\"exclusive\":%s}\n",
                n, hold_us, v == RAW ? "raw" : v == PLAIN ? "cachelock" : v == FAIR ? "fair" : "mixed",
                r->per_s, v == FAIR || v == MIXED ? "ratio_to_plain" : "ratio_to_raw",
                r->per_s / base, r->jain, r->run, r->run_call, r->overtake_share, r->call_share,
                r->longest_wait_ms, r->fair_share, r->fair_overtakes, r->exclusive ? "true" : "false");
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    static const int ns[] = { 2, 4, 8 };
    static const long holds_us[] = { 0, 20, 200 };
    cachelock_t *lock;
    json = fopen(getenv("BENCH_JSON") ? getenv("BENCH_JSON") : "/dev/null", "a");

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!mkdtemp(dir) || sh == MAP_FAILED || cachelock_acquire(dir, "hot", &lock) != 0)
        return 1;
    cachelock_release(lock);
    snprintf(path, sizeof path, "%s/.locks/hot.lock", dir);

    printf("contended: N processes loop acquire / hold / release on one source, %.1f s each,\n"
           "in %d rounds that alternate with the variant compared (ratio: fair and mixed to\n"
           "plain cachelock, plain to the raw flock loop)\n\n", seconds, ROUNDS);
    printf("%2s %6s %-9s %9s %7s %6s %7s  %-36s %11s %s\n", "N", "hold", "variant", "acq/s",
           "ratio", "Jain", "run", "overtook", "max wait", "exclusion");
    for (size_t hk = 0; hk < sizeof holds_us / sizeof holds_us[0]; hk++) {
        for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
            int64_t hold = holds_us[hk] * 1000;
            struct result raw, plain, fair;
            if (holds_us[hk] == 0) {
                run_pair(ns[k], RAW, RAW, hold, seconds, &raw, NULL);
                report(ns[k], RAW, holds_us[hk], &raw, raw.per_s);
            }
            run_pair(ns[k], PLAIN, FAIR, hold, seconds, &plain, &fair);
            report(ns[k], PLAIN, holds_us[hk], &plain, holds_us[hk] == 0 ? raw.per_s : plain.per_s);
            report(ns[k], FAIR, holds_us[hk], &fair, plain.per_s);
        }
    }
    for (int n = 4; n <= 8; n += 4) {
        struct result plain, mixed;
        run_pair(n, PLAIN, MIXED, 0, seconds, &plain, &mixed);
        report(n, MIXED, 0, &mixed, plain.per_s);
    }
    if (json)
        fclose(json);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {}
    return ok ? 0 : 1;
}
