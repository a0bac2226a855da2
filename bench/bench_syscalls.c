/*
 * bench_syscalls.c - one C variant of an uncontended acquire+release, alone
 * in its process, so that bench_peers can time it exactly as it times the
 * peers written in other languages, and count its system calls under
 * strace(1) (a run of 2N iterations minus a run of N leaves N iterations'
 * calls, with the setup below subtracted out).
 *
 *   bench_syscalls VARIANT DIRECTORY ITERATIONS
 *
 * VARIANT is one of
 *
 *   flock-pair        flock(LOCK_EX) + flock(LOCK_UN) on a descriptor opened
 *                     once, before the loop: the floor
 *   open-flock-close  open + flock(LOCK_EX) + close of one file, as flock(1)
 *                     and most lock-file code do it
 *   same-source       cachelock_acquire + cachelock_release of one source
 *   first-acquire     cachelock_acquire + cachelock_release of sources e0,
 *                     e1, ...: each the first use in this process of a lock
 *                     file that exists
 *   open-flock-close-each  open + flock + close of those same files,
 *                     DIRECTORY/.locks/e0.lock, e1.lock, ...
 *
 * The same-file variants use DIRECTORY/.locks/s.lock.  The caller makes the
 * directory and all these files beforehand (bench_peers does), so that no
 * variant pays for creating them.  ITERATIONS (rounded down to a multiple
 * of ROUNDS) is split into ROUNDS chunks; the output is the nanoseconds per
 * acquire+release of the fastest chunk, as in bench_acquire.c (a slow
 * stretch of a shared machine then spoils one chunk, not the result).
 * Exit status 2 for a usage error, 1 if a lock call fails.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 10

static char dir[256];

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* The two "different file each time" variants walk the same numbered files,
 * so that they differ only in who opens them. */
static void numbered(char *buf, size_t size, int i, int as_path)
{
    if (as_path)
        snprintf(buf, size, "%s/.locks/e%d.lock", dir, i);
    else
        snprintf(buf, size, "e%d", i);
}

/* Run iterations [first, first + count) of the variant; 0 or -1. */
static int run(const char *variant, int fd, const char *path, int first, int count)
{
    char name[600];
    cachelock_t *lock;

    if (strcmp(variant, "flock-pair") == 0) {
        for (int i = 0; i < count; i++)
            if (flock(fd, LOCK_EX) != 0 || flock(fd, LOCK_UN) != 0)
                return -1;
    } else if (strcmp(variant, "open-flock-close") == 0) {
        for (int i = 0; i < count; i++) {
            int f = open(path, O_RDWR | O_CLOEXEC);
            if (f < 0 || flock(f, LOCK_EX) != 0)
                return -1;
            close(f);
        }
    } else if (strcmp(variant, "same-source") == 0) {
        for (int i = 0; i < count; i++) {
            if (cachelock_acquire(dir, "s", &lock) != 0)
                return -1;
            cachelock_release(lock);
        }
    } else if (strcmp(variant, "first-acquire") == 0) {
        for (int i = first; i < first + count; i++) {
            numbered(name, sizeof name, i, 0);
            if (cachelock_acquire(dir, name, &lock) != 0)
                return -1;
            cachelock_release(lock);
        }
    } else {
        for (int i = first; i < first + count; i++) {
            numbered(name, sizeof name, i, 1);
            int f = open(name, O_RDWR | O_CLOEXEC);
            if (f < 0 || flock(f, LOCK_EX) != 0)
                return -1;
            close(f);
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const variants[] = { "flock-pair", "open-flock-close", "same-source",
                                            "first-acquire", "open-flock-close-each" };
    char path[600];
    int known = 0;

    for (size_t i = 0; argc == 4 && i < sizeof variants / sizeof variants[0]; i++)
        known |= strcmp(argv[1], variants[i]) == 0;
    int n = argc == 4 ? atoi(argv[3]) : 0;
    if (!known || n < ROUNDS || strlen(argv[2]) >= sizeof dir) {
        fprintf(stderr, "usage: bench_syscalls flock-pair|open-flock-close|same-source|"
                        "first-acquire|open-flock-close-each DIRECTORY ITERATIONS\n");
        return 2;
    }
    strcpy(dir, argv[2]);
    snprintf(path, sizeof path, "%s/.locks/s.lock", dir);

    /* Opened for every variant, used by flock-pair only: every run then has
     * the same setup, and setup is what the strace differencing removes. */
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        perror(path);
        return 1;
    }
    int chunk = n / ROUNDS;
    double best = 1e18;
    for (int r = 0; r < ROUNDS; r++) {
        double t = now_ns();
        if (run(argv[1], fd, path, r * chunk, chunk) != 0) {
            perror(argv[1]);
            return 1;
        }
        double ns = (now_ns() - t) / chunk;
        if (ns < best)
            best = ns;
    }
    close(fd);
    printf("%.1f\n", best);
    return 0;
}
