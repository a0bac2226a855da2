/*
 * bench_acquire.c - uncontended acquire+release against the system-call
 * floor, side by side in one run.
 *
 *   bench_acquire [ITERATIONS]
 *
 * Floors, written here in C: flock(LOCK_EX)+flock(LOCK_UN) on a descriptor
 * already open; open+flock+close; the same plus the fstat+fstatat identity
 * check.  Then this library: the same source again and again, and the first
 * acquire of new sources (creating the lock file each time).
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static char dir[256], path[512];

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    double t, floor_ns, ofc_ns, ofci_ns, lib_ns, first_ns, create_ns;
    cachelock_t *lock;
    char name[64], p2[600];

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || cachelock_acquire(dir, "s", &lock) != 0)
        return 1;
    cachelock_release(lock);
    snprintf(path, sizeof path, "%s/.locks/s.lock", dir);

    int fd = open(path, O_RDWR | O_CLOEXEC);
    t = now_ns();
    for (int i = 0; i < n; i++) {
        flock(fd, LOCK_EX);
        flock(fd, LOCK_UN);
    }
    floor_ns = (now_ns() - t) / n;
    close(fd);

    t = now_ns();
    for (int i = 0; i < n; i++) {
        fd = open(path, O_RDWR | O_CLOEXEC);
        flock(fd, LOCK_EX);
        close(fd);
    }
    ofc_ns = (now_ns() - t) / n;

    t = now_ns();
    for (int i = 0; i < n; i++) {
        struct stat a, b;
        fd = open(path, O_RDWR | O_CLOEXEC);
        flock(fd, LOCK_EX);
        fstat(fd, &a);
        fstatat(AT_FDCWD, path, &b, AT_SYMLINK_NOFOLLOW);
        close(fd);
    }
    ofci_ns = (now_ns() - t) / n;

    t = now_ns();
    for (int i = 0; i < n; i++) {
        cachelock_acquire(dir, "s", &lock);
        cachelock_release(lock);
    }
    lib_ns = (now_ns() - t) / n;

    /* New files: each variant in a directory of its own, made beforehand,
     * so that neither pays for the other's directory growth. */
    int m = n / 20 > 20000 ? 20000 : n / 20;
    snprintf(p2, sizeof p2, "%s/raw", dir);
    mkdir(p2, 0777);
    snprintf(p2, sizeof p2, "%s/lib", dir);
    cachelock_acquire(p2, "warm", &lock);
    cachelock_release(lock);
    /* Interleaved, one of each in turn: measured one loop after the other,
     * the second loop paid for the first one's filesystem work (ext4
     * journal and writeback), whichever came second. */
    char libdir[600];
    snprintf(libdir, sizeof libdir, "%s/lib", dir);
    create_ns = first_ns = 0;
    for (int i = 0; i < m; i++) {
        snprintf(p2, sizeof p2, "%s/raw/new%d.lock", dir, i);
        t = now_ns();
        fd = open(p2, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        flock(fd, LOCK_EX);
        close(fd);
        create_ns += now_ns() - t;
        snprintf(name, sizeof name, "new%d", i);
        t = now_ns();
        cachelock_acquire(libdir, name, &lock);
        cachelock_release(lock);
        first_ns += now_ns() - t;
    }
    create_ns /= m;
    first_ns /= m;

    printf("uncontended acquire+release (%d iterations, one run)\n\n", n);
    printf("%-52s %9s %8s\n", "what", "us", "ratio");
    printf("%-52s %9.2f %7.2fx\n", "floor: flock EX+UN on an open descriptor", floor_ns / 1e3, 1.0);
    printf("%-52s %9.2f %7.2fx\n", "open+flock+close", ofc_ns / 1e3, ofc_ns / floor_ns);
    printf("%-52s %9.2f %7.2fx\n", "open+flock+fstat+fstatat+close", ofci_ns / 1e3, ofci_ns / floor_ns);
    printf("%-52s %9.2f %7.2fx\n", "cachelock_acquire+release, same source", lib_ns / 1e3,
           lib_ns / floor_ns);
    printf("%-52s %9.2f %7.2fx (vs open+flock+close)\n", "", lib_ns / 1e3, lib_ns / ofc_ns);
    printf("%-52s %9.2f\n", "open(O_CREAT)+flock+close of a new file", create_ns / 1e3);
    printf("%-52s %9.2f %7.2fx (vs creating raw)\n", "cachelock first acquire of a new source",
           first_ns / 1e3, first_ns / create_ns);
    FILE *json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;
    if (json) {
        fprintf(json, "{\"bench\":\"uncontended\",\"floor_us\":%.3f,\"open_flock_close_us\":%.3f,"
                "\"with_identity_us\":%.3f,\"cachelock_same_source_us\":%.3f,"
                "\"ratio_to_floor\":%.3f,\"ratio_to_open_flock_close\":%.3f,"
                "\"create_raw_us\":%.3f,\"cachelock_first_us\":%.3f,\"first_ratio\":%.3f}\n",
                floor_ns / 1e3, ofc_ns / 1e3, ofci_ns / 1e3, lib_ns / 1e3, lib_ns / floor_ns,
                lib_ns / ofc_ns, create_ns / 1e3, first_ns / 1e3, first_ns / create_ns);
        fclose(json);
    }
    snprintf(p2, sizeof p2, "rm -rf '%s'", dir);
    return system(p2) == 0 ? 0 : 1;
}
