/*
 * bench_peers.c - this library against its peers, in one run:
 *
 *   - uncontended acquire+release: the flock(2) floor, open+flock+close,
 *     this library (same source again; first acquire of an existing
 *     source), Python's filelock, Go's gofrs/flock and the design of the
 *     Rust original (tokio create_dir_all, then spawn_blocking around
 *     open+flock), each as time
 *     per acquire+release, a ratio to open+flock+close measured in the same
 *     run, and system calls per acquire+release counted with strace(1)
 *   - one lock per process invocation: util-linux flock(1) against
 *     `cachelock run`, both running `true`
 *
 * Scale and memory per held lock are in bench_scale.c.
 *
 *   bench_peers [CACHELOCK_BINARY]
 *
 * Every row of the first table is a program of its own that takes
 * (DIRECTORY, ITERATIONS) and prints nanoseconds per acquire+release, the
 * fastest of 10 chunks: bench_syscalls for the C variants, and under peers/
 * filelock_loop.py, gofrs_flock and ccpm_lock, all next to this program
 * (`make bench` builds them).  Running each in a process of its own, the C
 * ones too, times them all the same way; running them all ROUNDS times, one
 * after the other, keeps a slow stretch of a shared machine from landing on
 * all runs of one row.  A peer that could not be built has a file
 * NAME.skip that says why, and its row says "skipped".
 *
 * System calls: each program runs under `strace -c` for N and for 2N
 * iterations; (calls(2N) - calls(N)) / N leaves out start-up and setup, so
 * the count does not depend on the machine.
 */
#define _GNU_SOURCE
#include <cachelock.h>

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 3            /* runs of each row, the fastest kept */
#define FILES 10000         /* existing lock files for the first-acquire rows */
#define STRACE_N 1000       /* counting runs: STRACE_N and 2 * STRACE_N */
_Static_assert(2 * STRACE_N <= FILES, "a first acquire needs a file of its own");

extern char **environ;
static char dir[256], bindir[256];
static FILE *json;

struct row {
    const char *what;       /* label in the table */
    const char *key;        /* "variant" in the JSON object */
    const char *program;    /* relative to bindir */
    const char *variant;    /* first argument of bench_syscalls, else NULL */
    int iterations;         /* per timing run, a multiple of 10 */
    int main_thread_only;   /* count the calls of the first thread only */
    const char *count_env;  /* added to the environment of counting runs */
    /* results */
    double ns;              /* fastest run so far, 0 before the first */
    double syscalls;        /* per acquire+release, or -1 when not counted */
    char skipped[160];
};

/* Go's runtime runs a monitor thread (sysmon) that sleeps on a 20 us to
 * 10 ms timer and preempts long-running goroutines with signals; under
 * strace, which slows every call, those calls grow with the time the run
 * takes rather than with the locking.  So only the thread that runs the
 * loop is traced (the program pins it to the main thread) and signal
 * preemption is off while counting.  The Rust design needs -f: its work is
 * done on another thread by design, and those threads wake on work alone. */
static struct row rows[] = {
    { .what = "flock EX+UN on an open descriptor (floor)", .key = "flock_pair",
      .program = "bench_syscalls", .variant = "flock-pair", .iterations = 200000 },
    { .what = "open+flock+close, one file (flock(1)-style)", .key = "open_flock_close",
      .program = "bench_syscalls", .variant = "open-flock-close", .iterations = 200000 },
    { .what = "libcachelock, same source again", .key = "cachelock_same_source",
      .program = "bench_syscalls", .variant = "same-source", .iterations = 200000 },
    { .what = "libcachelock, first acquire of an existing source", .key = "cachelock_first_acquire",
      .program = "bench_syscalls", .variant = "first-acquire", .iterations = FILES },
    { .what = "  open+flock+close, another existing file each", .key = "open_flock_close_each",
      .program = "bench_syscalls", .variant = "open-flock-close-each", .iterations = FILES },
    { .what = "Python filelock, FileLock acquire+release", .key = "python_filelock",
      .program = "peers/filelock_loop.py", .iterations = 50000 },
    { .what = "Go gofrs/flock, Lock+Unlock", .key = "go_gofrs_flock", .program = "peers/gofrs_flock",
      .iterations = 100000, .main_thread_only = 1, .count_env = "GODEBUG=asyncpreemptoff=1" },
    { .what = "Rust original's design: tokio create_dir_all + spawn_blocking", .key = "rust_spawn_blocking",
      .program = "peers/ccpm_lock", .iterations = 20000 },
};
#define NROWS (sizeof rows / sizeof rows[0])
enum { ROW_OPEN_FLOCK_CLOSE = 1, ROW_SAME_SOURCE = 2, ROW_PYTHON = 5 };

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

/* The last line of a file (a traceback ends with the error), cut to fit
 * out, for a reason to print. */
static void last_line(const char *path, char *out, size_t size)
{
    char line[512];
    FILE *f = fopen(path, "r");
    out[0] = '\0';
    while (f && fgets(line, sizeof line, f)) {
        size_t n = strcspn(line, "\n");
        if (n == 0)
            continue;
        if (n >= size)
            n = size - 1;
        memcpy(out, line, n);
        out[n] = '\0';
    }
    if (f)
        fclose(f);
}

/* Run argv with extra_env (or NULL) added to the environment, its stdout
 * into out (NUL-terminated) and its stderr into DIR/stderr.txt; 0 when it
 * exits with status 0, else -1 with a reason in why. */
static int run(char *const argv[], const char *extra_env, char *out, size_t size, char *why,
               size_t why_size)
{
    char errpath[300], *envp[256];
    size_t ne = 0, got = 0;
    int p[2], status, rc;
    pid_t pid;
    posix_spawn_file_actions_t fa;

    for (char **e = environ; *e && ne < 254; e++)
        envp[ne++] = *e;
    if (extra_env)
        envp[ne++] = (char *)extra_env;
    envp[ne] = NULL;
    snprintf(errpath, sizeof errpath, "%s/stderr.txt", dir);
    if (pipe2(p, O_CLOEXEC) != 0) {
        snprintf(why, why_size, "pipe: %s", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, errpath, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(p[1]);
    if (rc != 0) {
        close(p[0]);
        snprintf(why, why_size, "cannot run %s: %s", argv[0], strerror(rc));
        return -1;
    }
    for (ssize_t r; (r = read(p[0], out + got, size - 1 - got)) != 0;) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 || (got += (size_t)r) == size - 1)
            break;
    }
    out[got] = '\0';
    close(p[0]);
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            snprintf(why, why_size, "waitpid: %s", strerror(errno));
            return -1;
        }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    char err[120];
    last_line(errpath, err, sizeof err);
    const char *name = strrchr(argv[0], '/') ? strrchr(argv[0], '/') + 1 : argv[0];
    snprintf(why, why_size, "%s failed (%s %d)%s%s", name, WIFEXITED(status) ? "exit status" : "signal",
             WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), err[0] ? ": " : "", err);
    return -1;
}

/* argv for one run of a row: PROGRAM [VARIANT] DIR ITERATIONS, after the
 * words in prefix (the strace command line, or none). */
static void row_argv(const struct row *r, char *const prefix[], char *program, char *iterations,
                     char *argv[])
{
    int a = 0;
    while (prefix && prefix[a])
        argv[a] = prefix[a], a++;
    argv[a++] = program;
    if (r->variant)
        argv[a++] = (char *)r->variant;
    argv[a++] = dir;
    argv[a++] = iterations;
    argv[a] = NULL;
}

/* Skipped when the program is not there: its NAME.skip says why. */
static int present(struct row *r, char *program, size_t size)
{
    char skip[620];
    snprintf(program, size, "%s/%s", bindir, r->program);
    if (access(program, X_OK) == 0)
        return 1;
    snprintf(skip, sizeof skip, "%s.skip", program);
    last_line(skip, r->skipped, sizeof r->skipped);
    if (!r->skipped[0])
        snprintf(r->skipped, sizeof r->skipped, "%s not built (make bench builds it)", r->program);
    return 0;
}

static void time_row(struct row *r)
{
    char program[600], iterations[32], out[256], *argv[16];
    if (r->skipped[0] || !present(r, program, sizeof program))
        return;
    snprintf(iterations, sizeof iterations, "%d", r->iterations);
    row_argv(r, NULL, program, iterations, argv);
    double ns;
    if (run(argv, NULL, out, sizeof out, r->skipped, sizeof r->skipped) != 0)
        return;
    if (sscanf(out, "%lf", &ns) != 1 || ns <= 0) {
        snprintf(r->skipped, sizeof r->skipped, "%s printed no time", r->program);
        return;
    }
    if (r->ns <= 0 || ns < r->ns)
        r->ns = ns;
}

/* Calls in the "total" line of `strace -c` output, or -1. */
static double strace_total(const char *path)
{
    char line[256];
    double calls = -1;
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof line, f)) {
        double pct, secs, usecs, n;
        char word[32];
        /* % time, seconds, usecs/call, calls, [errors,] "total". */
        if (strstr(line, " total") &&
            sscanf(line, "%lf %lf %lf %lf %31s", &pct, &secs, &usecs, &n, word) == 5)
            calls = n;
    }
    if (f)
        fclose(f);
    return calls;
}

/* The calls of one run of the row, under strace; -1 if it failed. */
static double count_run(struct row *r, const char *program, int iterations, char *why, size_t size)
{
    char straced[300], its[32], out[256], *argv[24];
    char *strace_f[] = { "strace", "-f", "-c", "-o", straced, "--", NULL };
    char *strace_1[] = { "strace", "-c", "-o", straced, "--", NULL };
    snprintf(straced, sizeof straced, "%s/strace.txt", dir);
    snprintf(its, sizeof its, "%d", iterations);
    row_argv(r, r->main_thread_only ? strace_1 : strace_f, (char *)program, its, argv);
    if (run(argv, r->count_env, out, sizeof out, why, size) != 0)
        return -1;
    return strace_total(straced);
}

static void count_row(struct row *r, char *why, size_t size)
{
    char program[600];
    r->syscalls = -1;
    if (r->skipped[0])
        return;
    snprintf(program, sizeof program, "%s/%s", bindir, r->program);
    double once = count_run(r, program, STRACE_N, why, size);
    double twice = once < 0 ? -1 : count_run(r, program, 2 * STRACE_N, why, size);
    if (once >= 0 && twice >= 0)
        r->syscalls = (twice - once) / STRACE_N;
}

/* s as a JSON string body: the reasons quote paths and messages. */
static void json_string(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
}

static void print_rows(const char *strace_why)
{
    double ofc = rows[ROW_OPEN_FLOCK_CLOSE].ns;
    printf("peers: uncontended acquire+release, one run (each row: the fastest of %d runs\n"
           "of 10 chunks; o+f+c: open+flock+close of one file; system calls: by strace -c,\n"
           "%d iterations minus %d)\n\n", ROUNDS, 2 * STRACE_N, STRACE_N);
    printf("%-50s %9s %9s %9s\n", "what", "us", "vs o+f+c", "syscalls");
    for (size_t i = 0; i < NROWS; i++) {
        struct row *r = &rows[i];
        if (r->skipped[0]) {
            printf("%-50s skipped: %s\n", r->what, r->skipped);
            if (json) {
                fprintf(json, "{\"bench\":\"peers_uncontended\",\"variant\":\"%s\",\"skipped\":\"", r->key);
                json_string(json, r->skipped);
                fprintf(json, "\"}\n");
            }
            continue;
        }
        char calls[16] = "-";
        if (r->syscalls >= 0)
            snprintf(calls, sizeof calls, "%.1f", r->syscalls);
        printf("%-50s %9.2f %8.2fx %9s\n", r->what, r->ns / 1e3, r->ns / ofc, calls);
        if (json) {
            fprintf(json, "{\"bench\":\"peers_uncontended\",\"variant\":\"%s\",\"us\":%.3f,"
                    "\"ratio_to_open_flock_close\":%.3f,\"syscalls\":", r->key, r->ns / 1e3, r->ns / ofc);
            if (r->syscalls >= 0)
                fprintf(json, "%.3f}\n", r->syscalls);
            else
                fprintf(json, "null}\n");
        }
    }
    if (strace_why[0])
        printf("(\"-\": system calls not counted: %s)\n", strace_why);
    printf("(Go: the locking thread only; Rust: all threads, the work is on another one)\n");
}

/* The first table: time and system calls of every row; 0, or -1 when the
 * row every ratio is to could not run. */
static int per_lock_table(void)
{
    char why[160] = "", out[64];
    char *probe[] = { "strace", "-o", "/dev/null", "true", NULL };

    for (int round = 0; round < ROUNDS; round++)
        for (size_t i = 0; i < NROWS; i++)
            time_row(&rows[i]);
    if (rows[ROW_OPEN_FLOCK_CLOSE].skipped[0]) {
        fprintf(stderr, "bench_peers: %s\n", rows[ROW_OPEN_FLOCK_CLOSE].skipped);
        return -1;
    }
    if (run(probe, NULL, out, sizeof out, why, sizeof why) == 0) {
        /* A row that fails under strace shows "-"; the first reason is
         * printed under the table. */
        for (size_t i = 0; i < NROWS; i++) {
            char reason[160] = "";
            count_row(&rows[i], reason, sizeof reason);
            if (reason[0] && !why[0])
                snprintf(why, sizeof why, "%s", reason);
        }
    } else {
        snprintf(why, sizeof why, "no strace (apt-get install strace)");
    }
    print_rows(why);
    if (rows[ROW_PYTHON].ns > 0)
        printf("Python filelock vs this library, same source again: %.1fx\n",
               rows[ROW_PYTHON].ns / rows[ROW_SAME_SOURCE].ns);
    return 0;
}

/* The second table: a process per lock, flock(1) against `cachelock run`;
 * then the one JSON object of earlier runs, kept so that runs compare. */
static void per_invocation_table(const char *cli)
{
    char path[512];
    snprintf(path, sizeof path, "%s/.locks/s.lock", dir);
    char *flock_argv[] = { "flock", path, "true", NULL };
    double fl = per_invocation(flock_argv, 200);
    char *run_argv[] = { (char *)cli, "run", dir, "s", "--", "true", NULL };
    double cr = per_invocation(run_argv, 200);
    printf("\npeers: one lock per process invocation, running `true` (mean of 200)\n\n");
    printf("%-50s %9s %11s\n", "what", "us", "vs flock(1)");
    if (fl > 0)
        printf("%-50s %9.1f %10.2fx\n", "flock(1) FILE true", fl * 1e6, 1.0);
    else
        printf("%-50s skipped: flock(1) not installed\n", "flock(1) FILE true");
    if (cr > 0 && fl > 0)
        printf("%-50s %9.1f %10.2fx\n", "cachelock run DIR SOURCE -- true", cr * 1e6, cr / fl);
    else if (cr > 0)
        printf("%-50s %9.1f\n", "cachelock run DIR SOURCE -- true", cr * 1e6);
    else
        printf("%-50s skipped: %s failed\n", "cachelock run DIR SOURCE -- true", cli);

    double lib = rows[ROW_SAME_SOURCE].ns, py = rows[ROW_PYTHON].ns;
    if (json)
        fprintf(json, "{\"bench\":\"peers\",\"library_us\":%.3f,\"flock1_us\":%.1f,\"cachelock_run_us\":%.1f,"
                "\"python_filelock_us\":%.3f}\n", lib / 1e3, fl * 1e6, cr * 1e6, py > 0 ? py / 1e3 : -1);
}

int main(int argc, char **argv)
{
    const char *cli = argc > 1 ? argv[1] : "build/cachelock";
    char cmd[1024];
    cachelock_t *lock;
    int status = 0;

    /* The row programs are next to this one. */
    const char *slash = strrchr(argv[0], '/');
    snprintf(bindir, sizeof bindir, "%.*s", slash ? (int)(slash - argv[0]) : 1, slash ? argv[0] : ".");
    snprintf(dir, sizeof dir, "%s/cachelock-bench.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    /* The lock files the C rows use, made beforehand so that no row pays
     * for creating them: s, and e0 .. e(FILES-1) for the first acquires. */
    for (int i = -1; i < FILES && status == 0; i++) {
        char name[32];
        snprintf(name, sizeof name, i < 0 ? "s" : "e%d", i);
        if (cachelock_acquire(dir, name, &lock) != 0)
            status = 1;
        else
            cachelock_release(lock);
    }
    cachelock_close_idle();

    json = getenv("BENCH_JSON") ? fopen(getenv("BENCH_JSON"), "a") : NULL;
    if (status == 0 && per_lock_table() == 0)
        per_invocation_table(cli);
    else
        status = 1;
    if (json)
        fclose(json);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? status : 1;
}
