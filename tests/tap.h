/*
 * tap.h - a tiny TAP test runner for the C tests (header-only, one per
 * test program).
 *
 * Every case runs in its own child process, in a fresh temporary directory,
 * under alarm(2): a deadlock fails the case instead of hanging the suite.
 * A case fails by CHECK(); it skips with SKIP("reason"), which prints the
 * reason in the TAP line.
 */
#ifndef TAP_H
#define TAP_H

#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct tap_case {
    const char *name;
    void (*fn)(void);
    unsigned timeout_s;     /* 0: 10 seconds */
};

/* The case's temporary directory, e.g. /tmp/cachelock-test.XXXXXX. */
static char tap_dir[256];
static int tap_skip_fd = -1;

#define CHECK(cond) do { if (!(cond)) tap_fail(__FILE__, __LINE__, "%s", #cond); } while (0)
#define CHECK_EQ(a, b) do { long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ != b_) tap_fail(__FILE__, __LINE__, "%s == %s: got %lld, expected %lld", #a, #b, a_, b_); \
    } while (0)
#define CHECK_STR_CONTAINS(s, sub) do { const char *s_ = (s), *u_ = (sub); \
    if (!s_ || !strstr(s_, u_)) tap_fail(__FILE__, __LINE__, "'%s' does not contain '%s'", s_ ? s_ : "(null)", u_); \
    } while (0)

__attribute__((noreturn, format(printf, 3, 4), unused))
static void tap_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "# %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    _exit(1);
}

__attribute__((noreturn, unused))
static void SKIP(const char *reason)
{
    if (tap_skip_fd >= 0 && write(tap_skip_fd, reason, strlen(reason)) < 0)
        _exit(1);
    _exit(77);
}

__attribute__((unused)) static void tap_diag(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "# ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

static int tap_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)ftw;
    if (flag == FTW_DP || flag == FTW_D)
        return rmdir(path) < 0 && errno != ENOENT ? 0 : 0;
    chmod(path, 0700);
    unlink(path);
    return 0;
}

/* Make directories writable again so cleanup can descend into them. */
static int tap_chmod(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D && !S_ISLNK(st->st_mode))
        chmod(path, 0700);
    return 0;
}

static int tap_run(const struct tap_case *cases, size_t n)
{
    int failed = 0;
    const char *tmp = getenv("TMPDIR");
    printf("1..%zu\n", n);
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        int skip[2], status;
        char reason[256] = "";
        pid_t pid;
        unsigned limit = cases[i].timeout_s ? cases[i].timeout_s : 10;

        snprintf(tap_dir, sizeof tap_dir, "%s/cachelock-test.XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(tap_dir) || pipe2(skip, O_CLOEXEC) < 0) {
            perror("# setup");
            return 1;
        }
        fflush(stdout);
        fflush(stderr);
        pid = fork();
        if (pid == 0) {
            close(skip[0]);
            tap_skip_fd = skip[1];
            setpgid(0, 0);
            alarm(limit);
            cases[i].fn();
            _exit(0);
        }
        close(skip[1]);
        waitpid(pid, &status, 0);
        /* Kill anything the case left behind (its process group) before
         * reading the skip reason: a child stuck after its case timed out
         * holds a copy of the pipe, and the read would wait for it forever. */
        kill(-pid, SIGKILL);
        ssize_t r = read(skip[0], reason, sizeof reason - 1);
        reason[r > 0 ? r : 0] = '\0';
        close(skip[0]);
        nftw(tap_dir, tap_chmod, 16, FTW_PHYS);
        nftw(tap_dir, tap_rm, 16, FTW_DEPTH | FTW_PHYS);

        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
            printf("ok %zu - %s\n", i + 1, cases[i].name);
        else if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
            printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, reason);
        else {
            failed++;
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
                printf("not ok %zu - %s # timed out after %u s (deadlock?)\n", i + 1,
                       cases[i].name, limit);
            else if (WIFSIGNALED(status))
                printf("not ok %zu - %s # killed by signal %d\n", i + 1, cases[i].name,
                       WTERMSIG(status));
            else
                printf("not ok %zu - %s\n", i + 1, cases[i].name);
        }
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

#define TAP_MAIN(...) \
    int main(void) { \
        static const struct tap_case cases_[] = { __VA_ARGS__ }; \
        return tap_run(cases_, sizeof cases_ / sizeof cases_[0]); \
    }
#define T(fn, ...) { #fn, fn, __VA_ARGS__ + 0 }

/* ---- helpers for multi-process cases ------------------------------------ */

/* Build "{tap_dir}/{rel}" into a static rotating buffer. */
__attribute__((unused)) static const char *tpath(const char *rel)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 512, "%s/%s", tap_dir, rel);
    return b;
}

__attribute__((unused)) static void send_byte(int fd, char c)
{
    CHECK(write(fd, &c, 1) == 1);
}

/* Block until a byte arrives (the case's alarm bounds the wait). */
__attribute__((unused)) static char recv_byte(int fd)
{
    char c;
    ssize_t r;
    do r = read(fd, &c, 1); while (r < 0 && errno == EINTR);
    if (r != 1)
        tap_fail(__FILE__, __LINE__, "pipe closed before a byte arrived");
    return c;
}

/* Is pid listed in /proc/locks as blocked ("->") on a lock? */
__attribute__((unused)) static int blocked_in_flock(pid_t pid)
{
    FILE *f = fopen("/proc/locks", "re");
    char line[256];
    int found = 0;
    if (!f)
        return 0;
    while (fgets(line, sizeof line, f)) {
        char *arrow = strstr(line, "->");
        int p;
        if (arrow && sscanf(arrow, "-> %*s %*s %*s %d", &p) == 1 && p == pid)
            found = 1;
    }
    fclose(f);
    return found;
}

/* Wait until the kernel shows pid waiting in flock(2): observable state,
 * not a guess about timing.  The case's alarm bounds the loop. */
__attribute__((unused)) static void wait_blocked_in_flock(pid_t pid)
{
    while (!blocked_in_flock(pid))
        usleep(1000);
}

/* How many descriptors does this process have open? */
__attribute__((unused)) static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;   /* ".", ".." and the DIR's own descriptor */
}

__attribute__((unused)) static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
