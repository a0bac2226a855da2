/*
 * bench_scale.c - does acquire cost stay flat as more sources are held,
 * and how much memory does the library use per held lock?
 *
 *   bench_scale [MAX_HELD]        (default 100000)
 *
 * The sources are created first (creating files measures the filesystem's
 * journal, not locking).  Holder processes then take them, at most 10,000
 * each (descriptors: the hard RLIMIT_NOFILE here is 20,000), until 1,000,
 * 10,000 and 100,000 are held across processes.  At each level this
 * process measures, side by side with the raw floors:
 *
 *   - acquire+release of one more source, again and again (its descriptor
 *     kept between, as in steady use): the fastest of 10 chunks
 *   - the first acquire+release in this process of sources that exist but
 *     are not held
 *
 * Memory: this process takes 10,000 locks itself and divides the growth of
 * the heap (mallinfo2) by that: handle, path, registry and live-set slots.
 * While it holds them, the repeated acquire is measured once more (the
 * registry of held locks is then 10,000 entries).
 */
#define _GNU_SOURCE
#include "bench.h"

#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PER_HOLDER 10000
#define MAX_HOLDERS 16
#define FIRST_N 2000            /* first acquires measured per level */
#define SAME_N 100000           /* repeated acquires measured per level */

static char dir[256];
/* Write ends of the holders' pipes: each holder exits when its pipe
 * closes, so later holders must not keep copies of earlier ones' ends. */
static int held_pipes[MAX_HOLDERS];
static int nheld_pipes;


static void raise_fd_limit(void)
{
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
}

static void name_of(char *buf, size_t size, const char *kind, int i)
{
    snprintf(buf, size, "%s%06d", kind, i);
}

/* A process holding sources [from, to), until its pipe closes. */
static pid_t spawn_holder(int from, int to, int *pipe_out)
{
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0)
        exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        char name[32], c;
        cachelock_t *lock;
        close(up[0]);
        close(down[1]);
        for (int i = 0; i < nheld_pipes; i++)
            close(held_pipes[i]);
        raise_fd_limit();
        for (int i = from; i < to; i++) {
            name_of(name, sizeof name, "h", i);
            if (cachelock_acquire(dir, name, &lock) != 0) {
                fprintf(stderr, "holder: %s\n", cachelock_errmsg());
                _exit(2);
            }
        }
        if (write(up[1], "L", 1) != 1 || read(down[0], &c, 1) < 0)
            _exit(3);
        _exit(0);       /* the kernel releases them all */
    }
    close(up[1]);
    close(down[0]);
    char c;
    if (read(up[0], &c, 1) != 1) {
        fprintf(stderr, "bench_scale: a holder failed\n");
        exit(1);
    }
    close(up[0]);
    *pipe_out = down[1];
    held_pipes[nheld_pipes++] = down[1];
    return pid;
}

/* Repeated acquire+release of "probe": the fastest of ROUNDS chunks, so
 * that a noisy stretch of the shared machine hits one chunk, not a level. */
#define ROUNDS 10
static double probe_ns(void)
{
    double best = 1e18;
    cachelock_t *lock;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_ns();
        for (int i = 0; i < SAME_N / ROUNDS; i++) {
            cachelock_acquire(dir, "probe", &lock);
            cachelock_release(lock);
        }
        t = (now_ns() - t) / (SAME_N / ROUNDS);
        if (t < best)
            best = t;
    }
    return best;
}

struct level {
    int held;
    double floor_ns, same_ns, first_raw_ns, first_ns;
};

static void measure(struct level *lv, int round)
{
    char name[32], path[600];
    cachelock_t *lock;

    /* The floor, on a file of its own. */
    snprintf(path, sizeof path, "%s/.locks/floor.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    double t = now_ns();
    for (int i = 0; i < SAME_N; i++) {
        flock(fd, LOCK_EX);
        flock(fd, LOCK_UN);
    }
    lv->floor_ns = (now_ns() - t) / SAME_N;
    close(fd);

    if (cachelock_acquire(dir, "probe", &lock) != 0)
        exit(1);
    cachelock_release(lock);
    lv->same_ns = probe_ns();

    /* First acquires of existing, unheld sources, interleaved with the raw
     * open+flock+close of other existing files (the same kind of work). */
    lv->first_ns = lv->first_raw_ns = 0;
    for (int i = 0; i < FIRST_N; i++) {
        name_of(name, sizeof name, "r", round * FIRST_N + i);
        snprintf(path, sizeof path, "%s/.locks/%s.lock", dir, name);
        name_of(name, sizeof name, "f", round * FIRST_N + i);
        first_use_pair(path, 0, dir, name, &lv->first_raw_ns, &lv->first_ns);
    }
    lv->first_ns /= FIRST_N;
    lv->first_raw_ns /= FIRST_N;
}

/* Heap growth per held lock, and (into *same_ns) the repeated acquire of
 * one more source while this process itself holds them all. */
static double bytes_per_held_lock(double *same_ns)
{
    enum { N = PER_HOLDER };
    static cachelock_t *locks[N];
    char name[32];
    cachelock_close_idle();
    size_t before = mallinfo2().uordblks;
    for (int i = 0; i < N; i++) {
        name_of(name, sizeof name, "m", i);
        if (cachelock_acquire(dir, name, &locks[i]) != 0) {
            fprintf(stderr, "bench_scale: %s\n", cachelock_errmsg());
            exit(1);
        }
    }
    size_t after = mallinfo2().uordblks;
    *same_ns = probe_ns();
    for (int i = 0; i < N; i++)
        cachelock_release(locks[i]);
    cachelock_close_idle();
    return (double)(after - before) / N;
}

int main(int argc, char **argv)
{
    int max_held = argc > 1 ? atoi(argv[1]) : 100000;
    int targets[] = { 1000, 10000, 100000 };
    struct level levels[3];
    int nlevels = 0, held = 0, nholders = 0, pipes[MAX_HOLDERS];
    pid_t pids[MAX_HOLDERS];
    char name[32];
    cachelock_t *lock;

    raise_fd_limit();
    snprintf(dir, sizeof dir, "%s/cachelock-scale.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    fprintf(stderr, "creating %d lock files ...\n", max_held + 6 * FIRST_N + PER_HOLDER);
    const char *kinds[] = { "h", "r", "f", "m" };
    const int counts[] = { max_held, 3 * FIRST_N, 3 * FIRST_N, PER_HOLDER };
    for (int k = 0; k < 4; k++) {
        for (int i = 0; i < counts[k]; i++) {
            name_of(name, sizeof name, kinds[k], i);
            if (cachelock_acquire(dir, name, &lock) != 0) {
                fprintf(stderr, "bench_scale: %s\n", cachelock_errmsg());
                return 1;
            }
            cachelock_release(lock);
        }
    }
    cachelock_close_idle();
    sync();

    for (int l = 0; l < 3 && targets[l] <= max_held; l++) {
        while (held < targets[l] && nholders < MAX_HOLDERS) {
            int to = held + PER_HOLDER < targets[l] ? held + PER_HOLDER : targets[l];
            pids[nholders] = spawn_holder(held, to, &pipes[nholders]);
            nholders++;
            held = to;
        }
        levels[l].held = held;
        measure(&levels[l], l);
        nlevels++;
    }
    for (int i = 0; i < nholders; i++) {
        close(pipes[i]);
        waitpid(pids[i], NULL, 0);
    }
    double own_same_ns;
    double per_lock = bytes_per_held_lock(&own_same_ns);

    printf("acquire cost while N sources are held by other processes (one run)\n\n");
    printf("%8s %9s %9s %12s %8s %11s %11s %8s\n", "held", "floor us", "lib us", "lib/floor",
           "vs 1st", "raw open us", "lib 1st us", "ratio");
    for (int l = 0; l < nlevels; l++) {
        struct level *lv = &levels[l];
        printf("%8d %9.2f %9.2f %11.2fx %7.2fx %11.2f %11.2f %7.2fx\n", lv->held, lv->floor_ns / 1e3,
               lv->same_ns / 1e3, lv->same_ns / lv->floor_ns, lv->same_ns / levels[0].same_ns,
               lv->first_raw_ns / 1e3, lv->first_ns / 1e3, lv->first_ns / lv->first_raw_ns);
    }
    printf("%8s %9s %9.2f %11s %7.2fx   (all %d held by this process itself)\n", "", "",
           own_same_ns / 1e3, "", own_same_ns / levels[0].same_ns, PER_HOLDER);
    printf("\nlibrary heap per held lock (%d held in one process, path of %zu bytes): %.0f bytes\n",
           PER_HOLDER, strlen(dir) + strlen("/.locks/m000000.lock"), per_lock);

    FILE *json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;
    if (json) {
        for (int l = 0; l < nlevels; l++) {
            struct level *lv = &levels[l];
            fprintf(json, "{\"bench\":\"scale\",\"held\":%d,\"floor_us\":%.3f,\"same_us\":%.3f,"
                    "\"same_ratio_to_floor\":%.3f,\"same_ratio_to_first_level\":%.3f,"
                    "\"first_raw_us\":%.3f,\"first_us\":%.3f,\"first_ratio\":%.3f}\n",
                    lv->held, lv->floor_ns / 1e3, lv->same_ns / 1e3, lv->same_ns / lv->floor_ns,
                    lv->same_ns / levels[0].same_ns, lv->first_raw_ns / 1e3, lv->first_ns / 1e3,
                    lv->first_ns / lv->first_raw_ns);
        }
        fprintf(json, "{\"bench\":\"memory\",\"held\":%d,\"bytes_per_held_lock\":%.1f,"
                "\"same_us_while_holding\":%.3f,\"same_ratio_to_first_level\":%.3f}\n",
                PER_HOLDER, per_lock, own_same_ns / 1e3, own_same_ns / levels[0].same_ns);
        fclose(json);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
