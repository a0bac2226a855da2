/*
 * bench_handoff.c - how long from "the holder releases" to "the waiter
 * holds", for each way of waiting and each way of releasing.
 *
 *   bench_handoff [ITERATIONS]
 *
 * Waiters: blocking (timeout -1, flock(2) in the kernel), timed (timeout
 * 10 s, the wait machine driven by poll(2)), async (cachelock_wait_step with
 * the caller's poll loop).  Holders: this library's release, a raw flock(2)
 * user that closes (what flock(1) and Python's filelock do), a process that
 * exits, and a raw user that only calls flock(LOCK_UN) and keeps the file
 * open (no close event: the re-check timer's bound).
 *
 * Then fair mode (CACHELOCK_F_FAIR) for each kind of waiter, the holder
 * releasing with cachelock_release(), against the same waiter without it.
 *
 * The holder stamps CLOCK_MONOTONIC just before it releases, the waiter just
 * after it holds; both live in shared memory.  To be sure the waiter is
 * really waiting before the release, the holder sleeps 300 us after the
 * waiter says it is about to wait: a benchmark may do that, a test may not.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum waiter { W_BLOCKING, W_TIMED, W_ASYNC, NWAITERS };
static int fair_waiter;     /* the waiter asks in fair mode */
enum holder { H_LIBRARY, H_CLOSE, H_EXIT, H_UNLOCK_ONLY, NHOLDERS };
static const char *const waiter_name[] = { "blocking", "timed", "async" };
static const char *const holder_name[] = { "library release", "flock+close (flock(1), filelock)",
                                           "holder exits", "flock(LOCK_UN) only, fd kept" };

static char dir[256];
static char path[512];
static volatile int64_t *stamp;     /* shared: [0] release time, [1] acquire time */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put(int fd, char c) { if (write(fd, &c, 1) != 1) _exit(2); }
static char get(int fd) { char c; if (read(fd, &c, 1) != 1) _exit(3); return c; }

static void pause_us(long us)
{
    struct timespec ts = { 0, us * 1000 };
    nanosleep(&ts, NULL);
}

/* One hold: take the lock, say 'H', wait for 'W', let the waiter block,
 * stamp, release the way `how` says. */
static void hold_once(enum holder how, int to_waiter, int from_waiter)
{
    cachelock_t *lock = NULL;
    int fd = -1;
    if (how == H_LIBRARY) {
        if (cachelock_acquire(dir, "h", &lock) != 0)
            _exit(4);
    } else {
        fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(4);
    }
    put(to_waiter, 'H');
    get(from_waiter);
    pause_us(300);
    stamp[0] = now_ns();
    switch (how) {
    case H_LIBRARY: cachelock_release(lock); break;
    case H_CLOSE: close(fd); break;
    case H_EXIT: _exit(0);
    case H_UNLOCK_ONLY: flock(fd, LOCK_UN); break;
    default: break;
    }
    get(from_waiter);   /* 'D': the waiter has measured and released */
    if (fd >= 0)
        close(fd);
}

static int wait_once(enum waiter how, int to_holder)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    int rc;
    if (fair_waiter)
        o.flags = CACHELOCK_F_FAIR;
    put(to_holder, 'W');
    if (how == W_BLOCKING) {
        rc = cachelock_acquire_ex(dir, "h", &o, &lock);
    } else if (how == W_TIMED) {
        o.timeout_ms = 10000;
        rc = cachelock_acquire_ex(dir, "h", &o, &lock);
    } else {
        cachelock_wait_t *w;
        o.timeout_ms = 10000;
        rc = cachelock_wait_start(dir, "h", &o, &w);
        if (rc == 0) {
            while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
                struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
                poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
            }
        }
        cachelock_wait_free(w);
    }
    stamp[1] = now_ns();
    if (rc != 0) {
        fprintf(stderr, "bench_handoff: %s\n", cachelock_errmsg());
        return -1;
    }
    cachelock_release(lock);
    return 0;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Returns p50 and p99 of the handoff in nanoseconds. */
static int measure(enum holder h, enum waiter w, int iters, int64_t *p50, int64_t *p99)
{
    int a[2], b[2];     /* a: holder -> waiter, b: waiter -> holder */
    int64_t *v = calloc((size_t)iters, sizeof *v);
    if (!v || pipe(a) < 0 || pipe(b) < 0)
        return -1;
    pid_t holder = fork();
    if (holder == 0) {
        close(a[0]);
        close(b[1]);
        for (int i = 0; i < iters; i++) {
            if (h == H_EXIT) {
                pid_t c = fork();
                if (c == 0)
                    hold_once(h, a[1], b[0]);
                waitpid(c, NULL, 0);
                get(b[0]);
            } else {
                hold_once(h, a[1], b[0]);
            }
        }
        _exit(0);
    }
    close(a[1]);
    close(b[0]);
    for (int i = 0; i < iters; i++) {
        get(a[0]);
        if (wait_once(w, b[1]) < 0)
            return -1;
        v[i] = stamp[1] - stamp[0];
        put(b[1], 'D');
    }
    close(a[0]);
    close(b[1]);
    waitpid(holder, NULL, 0);
    qsort(v, (size_t)iters, sizeof *v, cmp64);
    *p50 = v[iters / 2];
    *p99 = v[(iters * 99) / 100];
    free(v);
    return 0;
}

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 400;
    cachelock_t *lock;
    int64_t p50[NHOLDERS][NWAITERS], p99[NHOLDERS][NWAITERS];
    FILE *json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || cachelock_acquire(dir, "h", &lock) != 0) {
        perror("bench_handoff: setup");
        return 1;
    }
    cachelock_release(lock);
    snprintf(path, sizeof path, "%s/.locks/h.lock", dir);
    stamp = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (stamp == MAP_FAILED)
        return 1;

    printf("handoff latency: holder releases -> waiter holds (%d handoffs each, one run)\n\n", iters);
    printf("%-34s %-9s %10s %10s %12s\n", "holder", "waiter", "p50 us", "p99 us", "p50 ratio");
    for (int h = 0; h < NHOLDERS; h++) {
        for (int w = 0; w < NWAITERS; w++) {
            if (measure((enum holder)h, (enum waiter)w, iters, &p50[h][w], &p99[h][w]) < 0)
                return 1;
            printf("%-34s %-9s %10.1f %10.1f %11.2fx\n", w == 0 ? holder_name[h] : "",
                   waiter_name[w], p50[h][w] / 1000.0, p99[h][w] / 1000.0,
                   (double)p50[h][w] / (double)p50[h][0]);
            fflush(stdout);
            if (json)
                fprintf(json, "{\"bench\":\"handoff\",\"holder\":\"%s\",\"waiter\":\"%s\","
                        "\"p50_us\":%.2f,\"p99_us\":%.2f,\"ratio_to_blocking\":%.3f}\n",
                        holder_name[h], waiter_name[w], p50[h][w] / 1000.0, p99[h][w] / 1000.0,
                        (double)p50[h][w] / (double)p50[h][0]);
        }
    }
    /* Fair mode: the same handoffs from a library release, the waiter
     * queued (as the head) instead of trying flock(2) alone.  Run right
     * after the plain ones, against which they are compared. */
    printf("\nfair mode (the waiter queues; the holder releases with cachelock_release):\n");
    printf("%-34s %-9s %10s %10s %12s\n", "", "waiter", "p50 us", "p99 us", "vs not fair");
    fair_waiter = 1;
    for (int w = 0; w < NWAITERS; w++) {
        int64_t f50, f99;
        if (measure(H_LIBRARY, (enum waiter)w, iters, &f50, &f99) < 0)
            return 1;
        printf("%-34s %-9s %10.1f %10.1f %11.2fx\n", "", waiter_name[w], f50 / 1000.0, f99 / 1000.0,
               (double)f50 / (double)p50[H_LIBRARY][w]);
        fflush(stdout);
        if (json)
            fprintf(json, "{\"bench\":\"handoff_fair\",\"waiter\":\"%s\",\"p50_us\":%.2f,"
                    "\"p99_us\":%.2f,\"ratio_to_plain\":%.3f}\n", waiter_name[w], f50 / 1000.0,
                    f99 / 1000.0, (double)f50 / (double)p50[H_LIBRARY][w]);
    }
    if (json)
        fclose(json);
    printf("\nratio: the waiter's p50 over the blocking waiter's p50 for the same holder.\n"
           "With 'flock(LOCK_UN) only' no close event exists; timed and async waits are\n"
           "bounded by their re-check timer (5 ms doubling to %d ms).\n", CACHELOCK_RECHECK_MAX_MS);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
