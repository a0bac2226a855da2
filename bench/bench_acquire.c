/*
 * bench_acquire.c - uncontended acquire+release against the system-call
 * floor, side by side in one run.
 *
 *   bench_acquire [ITERATIONS]
 *
 * Floors, written here in C: flock(LOCK_EX)+flock(LOCK_UN) on a descriptor
 * already open, then a ladder that adds, one rung at a time, the system
 * call each of the library's guarantees costs on that path (the identity
 * of a kept descriptor before the lock, the look-up of the path after the
 * grant, the identity again before the unlock, the waiter-mark test at the
 * release): what each guarantee costs, measured.  open+flock+close, and
 * the same with the guarantees' calls.  Then this library: the same source
 * again and again, the first acquire in this process of sources that
 * exist, and the first acquire of new sources (creating the lock file each
 * time), and the same source again in fair mode, nobody else there.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


static char dir[256], path[512];

#define ROUNDS 10

/* Keep the fastest per-iteration time of a chunk started at t. */
static void keep_best(double *best, double t, int iterations)
{
    double ns = (now_ns() - t) / iterations;
    if (ns < *best)
        *best = ns;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 200000;
    double t, floor_ns, needed_ns, ofc_ns, ofci_ns, lib_ns, first_ns, create_ns;
    double existing_ns, existing_raw_ns;
    cachelock_t *lock;
    char name[64], p2[600];

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || cachelock_acquire(dir, "s", &lock) != 0)
        return 1;
    cachelock_release(lock);
    snprintf(path, sizeof path, "%s/.locks/s.lock", dir);

    /* The repeated variants run in ROUNDS interleaved chunks and each keeps
     * its fastest chunk: on a shared, noisy machine a slow stretch then
     * hits one chunk of one variant, not a whole variant.  The ladder adds
     * the system call of one guarantee per rung, in the order the library
     * makes them for a kept descriptor. */
    enum { FLOOR, PRECHECK, PATHCHECK, RELCHECK, MARKS, LIB, FAIR, OFC, OFC_ALL, NV };
    double best[NV];
    for (int v = 0; v < NV; v++)
        best[v] = 1e18;
    int chunk = n / ROUNDS, fd = -1;
    for (int r = 0; r < ROUNDS; r++) {
        struct stat st;
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 1, .l_len = 1 };
        fd = open(path, O_RDWR | O_CLOEXEC);
        for (int v = FLOOR; v <= MARKS; v++) {
            t = now_ns();
            for (int i = 0; i < chunk; i++) {
                if (v >= PRECHECK)
                    fstat(fd, &st);
                flock(fd, LOCK_EX | LOCK_NB);
                if (v >= PATHCHECK)
                    fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW);
                if (v >= RELCHECK)
                    fstat(fd, &st);
                flock(fd, LOCK_UN);
                if (v >= MARKS)
                    fcntl(fd, F_OFD_GETLK, &fl);
            }
            keep_best(&best[v], t, chunk);
        }
        close(fd);

        t = now_ns();
        for (int i = 0; i < chunk; i++) {
            fd = open(path, O_RDWR | O_CLOEXEC);
            flock(fd, LOCK_EX);
            close(fd);
        }
        keep_best(&best[OFC], t, chunk);

        t = now_ns();
        for (int i = 0; i < chunk; i++) {
            fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
            fstat(fd, &st);
            flock(fd, LOCK_EX | LOCK_NB);
            fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW);
            fstat(fd, &st);
            flock(fd, LOCK_UN);
            close(fd);
        }
        keep_best(&best[OFC_ALL], t, chunk);

        t = now_ns();
        for (int i = 0; i < chunk; i++) {
            cachelock_acquire(dir, "s", &lock);
            cachelock_release(lock);
        }
        keep_best(&best[LIB], t, chunk);

        /* Fair mode, nobody else there: the same, plus one look at the
         * queue (F_OFD_GETLK). */
        cachelock_options_t fair = CACHELOCK_OPTIONS_INIT;
        fair.flags = CACHELOCK_F_FAIR;
        t = now_ns();
        for (int i = 0; i < chunk; i++) {
            cachelock_acquire_ex(dir, "s", &fair, &lock);
            cachelock_release(lock);
        }
        keep_best(&best[FAIR], t, chunk);
    }
    floor_ns = best[FLOOR];
    needed_ns = best[MARKS];
    ofc_ns = best[OFC];
    ofci_ns = best[OFC_ALL];
    lib_ns = best[LIB];

    /* Existing files, first use in this process: made beforehand (through
     * the library, then its kept descriptors closed), then taken once each,
     * interleaved with the raw open+flock+close of other existing files. */
    int e = n / 20 > 5000 ? 5000 : n / 20;
    for (int i = 0; i < 2 * e; i++) {
        snprintf(name, sizeof name, "e%d", i);
        if (cachelock_acquire(dir, name, &lock) != 0)
            return 1;
        cachelock_release(lock);
    }
    cachelock_close_idle();
    existing_ns = existing_raw_ns = 0;
    for (int i = 0; i < e; i++) {
        snprintf(p2, sizeof p2, "%s/.locks/e%d.lock", dir, e + i);
        snprintf(name, sizeof name, "e%d", i);
        first_use_pair(p2, 0, dir, name, &existing_raw_ns, &existing_ns);
    }
    existing_ns /= e;
    existing_raw_ns /= e;

    /* New files: each variant in a directory of its own, made beforehand,
     * so that neither pays for the other's directory growth. */
    int m = n / 20 > 20000 ? 20000 : n / 20;
    snprintf(p2, sizeof p2, "%s/raw", dir);
    mkdir(p2, 0777);
    snprintf(p2, sizeof p2, "%s/lib", dir);
    cachelock_acquire(p2, "warm", &lock);
    cachelock_release(lock);
    char libdir[600];
    snprintf(libdir, sizeof libdir, "%s/lib", dir);
    create_ns = first_ns = 0;
    for (int i = 0; i < m; i++) {
        snprintf(p2, sizeof p2, "%s/raw/new%d.lock", dir, i);
        snprintf(name, sizeof name, "new%d", i);
        first_use_pair(p2, O_CREAT, libdir, name, &create_ns, &first_ns);
    }
    create_ns /= m;
    first_ns /= m;

    printf("uncontended acquire+release (%d iterations, one run; repeated variants: the\n"
           "fastest of %d interleaved chunks each)\n\n", n, ROUNDS);
    printf("%-60s %7s %8s\n", "what", "us", "ratio");
    static const char *const rung[] = {
        "floor: flock EX+UN on an open descriptor",
        " + fstat before the lock (a kept descriptor is ours)",
        " + fstatat of the path after the grant (names our file)",
        " + fstat before the unlock (never a reused number)",
        " + F_OFD_GETLK at the release (waiters' marks)",
    };
    for (int v = FLOOR; v <= MARKS; v++)
        printf("%-60s %7.2f %7.2fx\n", rung[v], best[v] / 1e3, best[v] / floor_ns);
    printf("%-60s %7.2f %7.2fx\n", "cachelock_acquire+release, same source", lib_ns / 1e3,
           lib_ns / floor_ns);
    printf("%-60s %7.2f %7.2fx (vs the ladder's top)\n", "", lib_ns / 1e3, lib_ns / needed_ns);
    printf("%-60s %7.2f %7.2fx (vs open+flock+close)\n", "", lib_ns / 1e3, lib_ns / ofc_ns);
    printf("%-60s %7.2f %7.2fx (vs the same, not fair)\n",
           "cachelock_acquire_ex(CACHELOCK_F_FAIR)+release, same source", best[FAIR] / 1e3,
           best[FAIR] / lib_ns);
    printf("%-60s %7.2f %7.2fx\n", "open+flock+close", ofc_ns / 1e3, ofc_ns / floor_ns);
    printf("%-60s %7.2f %7.2fx\n", "open+fstat+flock+fstatat+fstat+unlock+close", ofci_ns / 1e3,
           ofci_ns / floor_ns);
    printf("%-52s %9.2f\n", "open+flock+close of other existing files", existing_raw_ns / 1e3);
    printf("%-52s %9.2f %7.2fx (vs open+flock+close)\n",
           "cachelock first acquire of an existing source", existing_ns / 1e3,
           existing_ns / existing_raw_ns);
    printf("%-52s %9.2f\n", "open(O_CREAT)+flock+close of a new file", create_ns / 1e3);
    printf("%-52s %9.2f %7.2fx (vs creating raw)\n", "cachelock first acquire of a new source",
           first_ns / 1e3, first_ns / create_ns);
    FILE *json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;
    if (json) {
        fprintf(json, "{\"bench\":\"uncontended\",\"floor_us\":%.3f,\"needed_us\":%.3f,"
                "\"open_flock_close_us\":%.3f,"
                "\"with_identity_us\":%.3f,\"cachelock_same_source_us\":%.3f,"
                "\"ratio_to_floor\":%.3f,\"ratio_to_needed\":%.3f,\"ratio_to_open_flock_close\":%.3f,"
                "\"existing_raw_us\":%.3f,\"cachelock_existing_first_us\":%.3f,"
                "\"existing_first_ratio\":%.3f,"
                "\"create_raw_us\":%.3f,\"cachelock_first_us\":%.3f,\"first_ratio\":%.3f,"
                "\"fair_same_source_us\":%.3f,\"fair_ratio\":%.3f}\n",
                floor_ns / 1e3, needed_ns / 1e3, ofc_ns / 1e3, ofci_ns / 1e3, lib_ns / 1e3,
                lib_ns / floor_ns, lib_ns / needed_ns, lib_ns / ofc_ns, existing_raw_ns / 1e3,
                existing_ns / 1e3, existing_ns / existing_raw_ns, create_ns / 1e3, first_ns / 1e3,
                first_ns / create_ns, best[FAIR] / 1e3, best[FAIR] / lib_ns);
        fclose(json);
    }
    snprintf(p2, sizeof p2, "rm -rf '%s'", dir);
    return system(p2) == 0 ? 0 : 1;
}
