/*
 * bench_contended.c - N processes loop on one source: throughput against a
 * raw flock(2) loop on open descriptors, mutual exclusion, and fairness.
 *
 *   bench_contended [SECONDS_PER_CASE]      (default 1)
 *
 * Every acquisition is logged inside the lock: the owner's id in order,
 * whether it overtook a process that had started waiting earlier and was
 * still waiting, and how long it waited.  From that: Jain's fairness index
 * over the per-process counts (1 = perfectly even), the longest run of
 * consecutive acquisitions by one process, the share of acquisitions that
 * overtook an earlier waiter, and the longest wait.  Linux flock(2) is not
 * FIFO, so the raw loop is unfair too; the point is the comparison.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <fcntl.h>
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

struct shared {
    int stop;
    long counter;
    long counts[MAXN];
    long overtakes;
    int64_t longest_wait_ns;
    int64_t waiting_since[MAXN];
    unsigned char log[LOG_MAX];
};

static struct shared *sh;
static char dir[256], path[512];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void worker(int me, int n, int raw)
{
    int fd = raw ? open(path, O_RDWR | O_CLOEXEC) : -1;
    while (!__atomic_load_n(&sh->stop, __ATOMIC_RELAXED)) {
        cachelock_t *lock = NULL;
        int64_t since = now_ns();
        __atomic_store_n(&sh->waiting_since[me], since, __ATOMIC_SEQ_CST);
        if (raw ? flock(fd, LOCK_EX) != 0 : cachelock_acquire(dir, "hot", &lock) != 0)
            _exit(2);
        int64_t got = now_ns();
        __atomic_store_n(&sh->waiting_since[me], 0, __ATOMIC_SEQ_CST);
        for (int q = 0; q < n; q++) {
            int64_t ws = __atomic_load_n(&sh->waiting_since[q], __ATOMIC_SEQ_CST);
            if (q != me && ws && ws < since) {
                sh->overtakes++;
                break;
            }
        }
        if (got - since > sh->longest_wait_ns)
            sh->longest_wait_ns = got - since;
        long c = sh->counter;
        if (c < LOG_MAX)
            sh->log[c] = (unsigned char)me;
        sh->counter = c + 1;
        sh->counts[me]++;
        if (raw)
            flock(fd, LOCK_UN);
        else
            cachelock_release(lock);
    }
    _exit(0);
}

struct result { double per_s, jain, overtake_share, longest_wait_ms; long run, total; int exclusive; };

static struct result run_case(int n, int raw, double seconds)
{
    struct result r;
    memset(sh, 0, sizeof *sh);
    pid_t pid[MAXN];
    for (int i = 0; i < n; i++)
        if ((pid[i] = fork()) == 0)
            worker(i, n, raw);
    int64_t t0 = now_ns();
    usleep((useconds_t)(seconds * 1e6));
    __atomic_store_n(&sh->stop, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < n; i++)
        waitpid(pid[i], NULL, 0);
    double elapsed = (now_ns() - t0) / 1e9;
    long sum = 0;
    double sq = 0;
    for (int i = 0; i < n; i++) {
        sum += sh->counts[i];
        sq += (double)sh->counts[i] * sh->counts[i];
    }
    r.total = sh->counter;
    r.exclusive = sum == sh->counter;
    r.per_s = sh->counter / elapsed;
    r.jain = sq > 0 ? (double)sum * sum / (n * sq) : 0;
    r.overtake_share = sh->counter ? (double)sh->overtakes / sh->counter : 0;
    r.longest_wait_ms = sh->longest_wait_ns / 1e6;
    long logged = sh->counter < LOG_MAX ? sh->counter : LOG_MAX, run = 0, best = 0;
    for (long i = 0; i < logged; i++) {
        run = i && sh->log[i] == sh->log[i - 1] ? run + 1 : 1;
        if (run > best)
            best = run;
    }
    r.run = best;
    return r;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    static const int ns[] = { 2, 4, 8 };
    cachelock_t *lock;
    FILE *json = fopen(getenv("BENCH_JSON") ? getenv("BENCH_JSON") : "/dev/null", "a");

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (!mkdtemp(dir) || sh == MAP_FAILED || cachelock_acquire(dir, "hot", &lock) != 0)
        return 1;
    cachelock_release(lock);
    snprintf(path, sizeof path, "%s/.locks/hot.lock", dir);

    printf("contended: N processes loop acquire/increment/release on one source, %.1f s each\n\n",
           seconds);
    printf("%2s %-9s %11s %7s %6s %9s %10s %11s %s\n", "N", "variant", "acq/s", "vs raw", "Jain",
           "max run", "overtook", "max wait", "exclusion");
    int ok = 1;
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        struct result raw = run_case(ns[k], 1, seconds), lib = run_case(ns[k], 0, seconds);
        for (int v = 0; v < 2; v++) {
            struct result *r = v ? &lib : &raw;
            printf("%2d %-9s %11.0f %6.2fx %6.3f %9ld %9.1f%% %9.2fms %s\n", ns[k],
                   v ? "cachelock" : "raw flock", r->per_s, r->per_s / raw.per_s, r->jain, r->run,
                   100 * r->overtake_share, r->longest_wait_ms,
                   r->exclusive ? "ok (counter = sum)" : "VIOLATED");
            ok &= r->exclusive;
            if (json)
                fprintf(json, "{\"bench\":\"contended\",\"n\":%d,\"variant\":\"%s\",\"acq_per_s\":%.0f,"
                        "\"ratio_to_raw\":%.3f,\"jain\":%.4f,\"longest_run\":%ld,\"overtake_share\":%.4f,"
                        "\"longest_wait_ms\":%.3f,\"exclusive\":%s}\n", ns[k], v ? "cachelock" : "raw",
                        r->per_s, r->per_s / raw.per_s, r->jain, r->run, r->overtake_share,
                        r->longest_wait_ms, r->exclusive ? "true" : "false");
        }
    }
    if (json)
        fclose(json);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) {}
    return ok ? 0 : 1;
}
