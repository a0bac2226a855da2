/*
 * tap.h - a tiny TAP test runner for the C tests (header-only, one per
 * test program).
 *
 * Every case runs in its own child process, in a fresh temporary directory,
 * under a time limit: a deadlock fails the case instead of hanging the
 * suite.  A case fails by CHECK(); it skips with SKIP("reason"), which
 * prints the reason in the TAP line.
 *
 * On Unix the child is forked and limited by alarm(2).  Windows has no
 * fork: the program runs itself again, "PROGRAM --case N DIR", inside a job
 * object, waits for it with the limit, and ends the job, which kills
 * whatever the case left running (libuv's test runner does the same).
 * Helper processes of a case are the program again too, "PROGRAM --helper
 * ROLE ARGS..." (helpers.h), talking over pipes.
 */
#ifndef TAP_H
#define TAP_H

#ifdef _WIN32
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#include <windows.h>
#include <direct.h>
#include <io.h>
#include <process.h>
#else
#define _GNU_SOURCE
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* The separator of the paths the library builds (and messages show). */
#ifdef _WIN32
#define SEP "\\"
/* What the tests need of POSIX, in Windows' spelling. */
#define O_CLOEXEC _O_NOINHERIT
#define mkdir(path, mode) _mkdir(path)
#else
#define SEP "/"
#endif

struct tap_case {
    const char *name;
    void (*fn)(void);
    unsigned timeout_s;     /* 0: 10 seconds */
};

/* The case's temporary directory, e.g. /tmp/cachelock-test.XXXXXX. */
static char tap_dir[256];
#ifndef _WIN32
static int tap_skip_fd = -1;
#endif

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
#ifdef _WIN32
    /* The runner reads the reason from the file it named. */
    const char *file = getenv("TAP_SKIP_FILE");
    FILE *f = file ? fopen(file, "w") : NULL;
    if (f) {
        fputs(reason, f);
        fclose(f);
    }
#else
    if (tap_skip_fd >= 0 && write(tap_skip_fd, reason, strlen(reason)) < 0)
        _exit(1);
#endif
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

#ifdef _WIN32
/* Remove a directory tree (a \\?\ path), read-only files too, whatever
 * the names' length or characters.  Handles of a killed case close a
 * moment after its death: the caller retries. */
static int tap_rm_tree_w(const wchar_t *dir)
{
    wchar_t pattern[1100], path[1100];
    WIN32_FIND_DATAW d;
    _snwprintf(pattern, 1100, L"%ls\\*", dir);
    HANDLE f = FindFirstFileW(pattern, &d);
    if (f != INVALID_HANDLE_VALUE) {
        do {
            if (!wcscmp(d.cFileName, L".") || !wcscmp(d.cFileName, L".."))
                continue;
            _snwprintf(path, 1100, L"%ls\\%ls", dir, d.cFileName);
            SetFileAttributesW(path, FILE_ATTRIBUTE_NORMAL);
            if ((d.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) &&
                !(d.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
                tap_rm_tree_w(path);
            else if (!DeleteFileW(path))
                RemoveDirectoryW(path);
        } while (FindNextFileW(f, &d));
        FindClose(f);
    }
    return RemoveDirectoryW(dir) || GetLastError() == ERROR_FILE_NOT_FOUND ? 0 : -1;
}

static int tap_rm_tree(const char *dir)
{
    wchar_t w[600];
    _snwprintf(w, 600, L"\\\\?\\%hs", dir);
    return tap_rm_tree_w(w);
}

/* Run one case in its own process, inside a job: its exit code, or -1
 * when it ran out of time. */
static long tap_run_case(const char *self, size_t i, unsigned limit)
{
    char cmd[1200];
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    JOBOBJECT_EXTENDED_LIMIT_INFORMATION li;
    DWORD code = 1;
    HANDLE job = CreateJobObjectA(NULL, NULL);

    memset(&li, 0, sizeof li);
    li.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE |
                                          JOB_OBJECT_LIMIT_DIE_ON_UNHANDLED_EXCEPTION;
    SetInformationJobObject(job, JobObjectExtendedLimitInformation, &li, sizeof li);
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    /* The case's stdout goes to our stderr: only the runner writes TAP. */
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdOutput = GetStdHandle(STD_ERROR_HANDLE);
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    snprintf(cmd, sizeof cmd, "\"%s\" --case %zu \"%s\"", self, i, tap_dir);
    if (!CreateProcessA(self, cmd, NULL, NULL, TRUE, CREATE_SUSPENDED, NULL, NULL, &si, &pi)) {
        fprintf(stderr, "# CreateProcess: error %lu\n", (unsigned long)GetLastError());
        CloseHandle(job);
        return 1;
    }
    AssignProcessToJobObject(job, pi.hProcess);
    ResumeThread(pi.hThread);
    CloseHandle(pi.hThread);
    DWORD w = WaitForSingleObject(pi.hProcess, limit * 1000);
    if (w == WAIT_OBJECT_0)
        GetExitCodeProcess(pi.hProcess, &code);
    /* Whatever the case left running (helpers, a stuck case) goes now. */
    TerminateJobObject(job, 137);
    WaitForSingleObject(pi.hProcess, 5000);
    CloseHandle(pi.hProcess);
    CloseHandle(job);
    return w == WAIT_OBJECT_0 ? (long)code : -1;
}

static int tap_run(const struct tap_case *cases, size_t n, int argc, char **argv,
                   int (*helpers)(int, char **))
{
    char self[MAX_PATH], tmp[MAX_PATH], skip_file[300];
    int failed = 0;

    SetErrorMode(SEM_FAILCRITICALERRORS | SEM_NOGPFAULTERRORBOX);
    _setmode(1, _O_BINARY);
    _setmode(2, _O_BINARY);
    if (argc >= 3 && strcmp(argv[1], "--helper") == 0)
        return helpers ? helpers(argc - 2, argv + 2) : 2;
    if (argc == 4 && strcmp(argv[1], "--case") == 0) {
        size_t i = (size_t)strtoul(argv[2], NULL, 10);
        snprintf(tap_dir, sizeof tap_dir, "%s", argv[3]);
        if (i >= n)
            return 2;
        cases[i].fn();
        return 0;
    }
    GetModuleFileNameA(NULL, self, sizeof self);
    GetTempPathA(sizeof tmp, tmp);
    printf("1..%zu\n", n);
    fflush(stdout);
    for (size_t i = 0; i < n; i++) {
        char reason[256] = "";
        unsigned limit = cases[i].timeout_s ? cases[i].timeout_s : 10;
        snprintf(tap_dir, sizeof tap_dir, "%scachelock-test.%lu.%llu.%zu", tmp,
                 (unsigned long)GetCurrentProcessId(), (unsigned long long)GetTickCount64(), i);
        snprintf(skip_file, sizeof skip_file, "%s.skip", tap_dir);
        if (!CreateDirectoryA(tap_dir, NULL)) {
            fprintf(stderr, "# setup: cannot create %s: error %lu\n", tap_dir,
                    (unsigned long)GetLastError());
            return 1;
        }
        DeleteFileA(skip_file);
        SetEnvironmentVariableA("TAP_SKIP_FILE", skip_file);
        fflush(stdout);
        fflush(stderr);
        long code = tap_run_case(self, i, limit);
        FILE *f = fopen(skip_file, "r");
        if (f) {
            size_t r = fread(reason, 1, sizeof reason - 1, f);
            reason[r] = '\0';
            fclose(f);
            DeleteFileA(skip_file);
        }
        for (int tries = 0; tap_rm_tree(tap_dir) < 0 && tries < 50; tries++)
            Sleep(20);

        if (code == 0)
            printf("ok %zu - %s\n", i + 1, cases[i].name);
        else if (code == 77)
            printf("ok %zu - %s # SKIP %s\n", i + 1, cases[i].name, reason);
        else {
            failed++;
            if (code < 0)
                printf("not ok %zu - %s # timed out after %u s (deadlock?)\n", i + 1,
                       cases[i].name, limit);
            else if ((unsigned long)code >= 0xC0000000ul)
                printf("not ok %zu - %s # crashed: exception 0x%lx\n", i + 1, cases[i].name,
                       (unsigned long)code);
            else
                printf("not ok %zu - %s\n", i + 1, cases[i].name);
        }
        fflush(stdout);
    }
    return failed ? 1 : 0;
}

/* helpers.h names its helper roles here; a program without any has none. */
#ifndef TAP_HELPERS
#define TAP_HELPERS NULL
#endif

#define TAP_MAIN(...) \
    int main(int argc, char **argv) { \
        static const struct tap_case cases_[] = { __VA_ARGS__ }; \
        return tap_run(cases_, sizeof cases_ / sizeof cases_[0], argc, argv, TAP_HELPERS); \
    }
#else
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
#endif
#define T(fn, ...) { #fn, fn, __VA_ARGS__ + 0 }

/* ---- helpers for multi-process cases ------------------------------------ */

#ifdef _WIN32
/* Running under wine, which is not Windows (README.md, "Windows")? */
__attribute__((unused)) static int on_wine(void)
{
    HMODULE ntdll = GetModuleHandleA("ntdll.dll");
    return ntdll && GetProcAddress(ntdll, "wine_get_version") != NULL;
}
#endif

/* Build "{tap_dir}/{rel}" into a static rotating buffer ('\\' instead of
 * '/' on Windows, so that it reads like the paths the library builds). */
__attribute__((unused)) static const char *tpath(const char *rel)
{
    static char bufs[4][512];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, 512, "%s" SEP "%s", tap_dir, rel);
#ifdef _WIN32
    for (char *c = b; *c; c++)
        if (*c == '/')
            *c = '\\';
#endif
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

#ifndef _WIN32
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
#endif

/* How many descriptors does this process have open? */
__attribute__((unused)) static int count_fds(void)
{
#ifdef _WIN32
    /* Handles of every kind, by asking for each handle value in turn
     * (multiples of 4; a test process has far fewer than 1024):
     * GetProcessHandleCount says 0 under wine. */
    int n = 0;
    for (uintptr_t v = 4; v < 0x1000; v += 4) {
        DWORD flags;
        n += GetHandleInformation((HANDLE)v, &flags) != 0;
    }
    return n;
#else
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (!d)
        return -1;
    while (readdir(d))
        n++;
    closedir(d);
    return n - 3;   /* ".", ".." and the DIR's own descriptor */
#endif
}

/* Descriptors of the library's kinds: below the case's directory (lock
 * files, .locks, sidecars), and inotify instances.  Sanitizer runtimes
 * open descriptors of their own at unpredictable times, so counting all of
 * them is not reliable.  On Windows: every handle of the process (lock
 * files, events). */
__attribute__((unused)) static int count_lib_fds(void)
{
#ifdef _WIN32
    return count_fds();
#else
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char link[320], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        if (strstr(target, "inotify") || strncmp(target, tap_dir, strlen(tap_dir)) == 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
#endif
}

__attribute__((unused)) static int64_t now_us(void)
{
#ifdef _WIN32
    LARGE_INTEGER f, t;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&t);
    return (int64_t)(t.QuadPart / f.QuadPart) * 1000000 +
           (int64_t)(t.QuadPart % f.QuadPart) * 1000000 / f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
#endif
}

#endif
