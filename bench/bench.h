/*
 * bench.h - what bench_acquire and bench_scale both measure the same way.
 */
#ifndef CACHELOCK_BENCH_H
#define CACHELOCK_BENCH_H

#include <cachelock.h>

#include <fcntl.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* One first use of each kind, back to back, added to the two sums: the raw
 * open(raw_flags)+flock+close of raw_path, then this library's
 * acquire+release of (lib_dir, source).  Interleaving one of each in turn
 * keeps filesystem work of one kind (ext4 journal, writeback) from landing
 * on the other kind's loop. */
static void first_use_pair(const char *raw_path, int raw_flags, const char *lib_dir,
                           const char *source, double *raw_ns, double *lib_ns)
{
    cachelock_t *lock;
    double t = now_ns();
    int fd = open(raw_path, raw_flags | O_RDWR | O_CLOEXEC, 0666);
    flock(fd, LOCK_EX);
    close(fd);
    *raw_ns += now_ns() - t;
    t = now_ns();
    if (cachelock_acquire(lib_dir, source, &lock) == 0)
        cachelock_release(lock);
    *lib_ns += now_ns() - t;
}

#endif
