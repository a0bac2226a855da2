/*
 * bench_peers.c - this library against its peers, in one run:
 *
 *   - one lock per process invocation: util-linux flock(1) against
 *     `cachelock run`, both running `true`
 *   - Python's filelock acquire+release in a loop (when python3-filelock is
 *     installed for /usr/bin/python3), against this library's
 *
 * Scale and memory per held lock are in bench_scale.c.
 *
 *   bench_peers [CACHELOCK_BINARY]
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;
static char dir[256];
static FILE *json;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Mean seconds per run of argv, over n runs; -1 if it cannot run. */
static double per_invocation(char *const argv[], int n)
{
    double t = now_s();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        int status;
        if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
            return -1;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return -1;
    }
    return (now_s() - t) / n;
}

static double library_loop(const char *source, int n)
{
    cachelock_t *lock;
    double t = now_s();
    for (int i = 0; i < n; i++) {
        if (cachelock_acquire(dir, source, &lock) != 0)
            return -1;
        cachelock_release(lock);
    }
    return (now_s() - t) / n;
}

int main(int argc, char **argv)
{
    const char *cli = argc > 1 ? argv[1] : "build/cachelock";
    char path[512], cmd[1024];
    json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;

    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    double lib = library_loop("s", 100000);
    snprintf(path, sizeof path, "%s/.locks/s.lock", dir);

    printf("peers, per lock taken (one run)\n\n");
    printf("%-48s %12s %10s\n", "what", "us", "vs library");
    printf("%-48s %12.2f %9.1fx\n", "libcachelock acquire+release", lib * 1e6, 1.0);

    char *flock_argv[] = { "flock", path, "true", NULL };
    double fl = per_invocation(flock_argv, 200);
    char *run_argv[] = { (char *)cli, "run", dir, "s", "--", "true", NULL };
    double cr = per_invocation(run_argv, 200);
    if (fl > 0)
        printf("%-48s %12.1f %9.0fx\n", "flock(1) FILE true, per invocation", fl * 1e6, fl / lib);
    else
        printf("%-48s %12s\n", "flock(1) FILE true, per invocation", "not installed");
    if (cr > 0)
        printf("%-48s %12.1f %9.0fx\n", "cachelock run DIR SOURCE -- true, per invocation", cr * 1e6,
               cr / lib);

    double py = -1;
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import filelock, time\n"
             "l = filelock.FileLock('%s')\n"
             "n = 20000\n"
             "t = time.perf_counter()\n"
             "for i in range(n):\n    l.acquire(); l.release()\n"
             "print((time.perf_counter() - t) / n)\" 2>/dev/null", path);
    FILE *p = popen(cmd, "r");
    if (p) {
        if (fscanf(p, "%lf", &py) != 1)
            py = -1;
        pclose(p);
    }
    if (py > 0)
        printf("%-48s %12.2f %9.1fx\n", "Python filelock acquire+release", py * 1e6, py / lib);
    else
        printf("%-48s %12s\n", "Python filelock acquire+release",
               "missing (apt-get install python3-filelock)");

    if (json) {
        fprintf(json, "{\"bench\":\"peers\",\"library_us\":%.3f,\"flock1_us\":%.1f,\"cachelock_run_us\":%.1f,"
                "\"python_filelock_us\":%.3f}\n", lib * 1e6, fl * 1e6, cr * 1e6, py * 1e6);
        fclose(json);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : 1;
}
