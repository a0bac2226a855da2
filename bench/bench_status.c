/*
 * bench_status.c - who holds what in a cache of 10,000 sources: one call of
 * cachelock_status() (one reading of the kernel's lock table for the whole
 * cache) against cachelock_holders() source by source (a reading each, the
 * way `cachelock status` worked in 0.2.0), and the command itself.
 *
 *   bench_status [CACHELOCK_BINARY]
 *
 * A holder process keeps 1,000 of the sources locked (shared), so the lock
 * table the kernel prints has 1,000 lines plus whatever else the machine
 * holds.  The source-by-source loop is timed on 500 sources and scaled.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOURCES 10000
#define HELD 1000
#define SAMPLE 500

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    char dir[256], name[32], cmd[600];
    int go[2];
    snprintf(dir, sizeof dir, "%s/cachelock-status.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir) || pipe(go) < 0)
        return 1;
    for (int i = 0; i < SOURCES; i++) {
        snprintf(name, sizeof name, "s%05d", i);
        if (cachelock_prepare(dir, name, 0) != 0) {
            fprintf(stderr, "bench_status: %s\n", cachelock_errmsg());
            return 1;
        }
    }
    struct rlimit r;
    if (getrlimit(RLIMIT_NOFILE, &r) == 0) {
        r.rlim_cur = r.rlim_max;
        setrlimit(RLIMIT_NOFILE, &r);
    }
    int ready[2];
    if (pipe(ready) < 0)
        return 1;
    pid_t holder = fork();
    if (holder == 0) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        cachelock_t *lock;
        char c;
        o.mode = CACHELOCK_SHARED;
        close(go[1]);
        for (int i = 0; i < HELD; i++) {
            snprintf(name, sizeof name, "s%05d", i * (SOURCES / HELD));
            if (cachelock_acquire_ex(dir, name, &o, &lock) != 0)
                _exit(1);
        }
        if (write(ready[1], "L", 1) != 1)
            _exit(1);
        while (read(go[0], &c, 1) == 1)
            ;
        _exit(0);
    }
    close(go[0]);
    char c;
    if (read(ready[0], &c, 1) != 1)
        return 1;

    cachelock_source_status_t *st;
    size_t n, holders = 0;
    double t = now_s();
    if (cachelock_status(dir, &st, &n) != 0) {
        fprintf(stderr, "bench_status: %s\n", cachelock_errmsg());
        return 1;
    }
    double whole = now_s() - t;
    for (size_t i = 0; i < n; i++)
        holders += st[i].count;
    cachelock_status_free(st, n);

    t = now_s();
    for (int i = 0; i < SAMPLE; i++) {
        cachelock_holder_t *h;
        size_t k;
        snprintf(name, sizeof name, "s%05d", i * (SOURCES / SAMPLE));
        if (cachelock_holders(dir, name, &h, &k) != 0)
            return 1;
        free(h);
    }
    double each = (now_s() - t) / SAMPLE * SOURCES;

    double cli = -1;
    if (argc > 1) {
        snprintf(cmd, sizeof cmd, "%s status '%s' > /dev/null", argv[1], dir);
        t = now_s();
        if (system(cmd) == 0)
            cli = now_s() - t;
    }
    close(go[1]);
    waitpid(holder, NULL, 0);

    printf("status of a cache of %d sources, %d of them held (%zu holders seen), one run\n\n",
           SOURCES, HELD, holders);
    printf("%-58s %10s\n", "what", "ms");
    printf("%-58s %10.1f\n", "cachelock_status(), the whole cache", whole * 1e3);
    printf("%-58s %10.1f   (%.0fx; %d sources timed, scaled)\n",
           "cachelock_holders() source by source (0.2.0's status)", each * 1e3, each / whole,
           SAMPLE);
    if (cli >= 0)
        printf("%-58s %10.1f\n", "cachelock status DIR > /dev/null", cli * 1e3);
    FILE *json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;
    if (json) {
        fprintf(json, "{\"bench\":\"status\",\"sources\":%d,\"held\":%d,\"status_ms\":%.2f,"
                "\"holders_each_ms\":%.2f,\"cli_ms\":%.2f}\n", SOURCES, HELD, whole * 1e3,
                each * 1e3, cli * 1e3);
        fclose(json);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
