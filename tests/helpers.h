/*
 * helpers.h - cachelock-specific helpers shared by the C tests: a holder
 * process driven through pipes, and other processes of a case.
 *
 * On Unix they are forked.  Windows has no fork(2): there a helper is the
 * test program again, "PROGRAM --helper ROLE ARGS..." (tap.h), with its
 * standard input and output on our pipes; helper_main() below plays the
 * roles.
 */
#ifndef HELPERS_H
#define HELPERS_H

#include "tap.h"
#include "cachelock.h"

#include <limits.h>

/* The portable Unix build (make check PORTABLE=1): no inotify, no OFD
 * locks (so no kept lock files and no waiter marks), no /proc/locks, no
 * statfs(2) kinds.  Cases about those features say SKIP there. */
#ifdef CACHELOCK_PORTABLE
#define PORTABLE_BUILD 1
#else
#define PORTABLE_BUILD 0
#endif

__attribute__((unused)) static void linux_only(const char *why)
{
    if (PORTABLE_BUILD)
        SKIP(why);
}

#ifndef _WIN32
/* Is pid in a timed or asynchronous wait of this library on lockfile?
 * On Linux it then has an inotify instance (made once a try found the lock
 * busy); in the portable build, which has none, it has the lock file open
 * (from the same first step on). */
__attribute__((unused)) static int in_timed_wait(pid_t pid, const char *lockfile)
{
    char dir[64], link[PATH_MAX + 64], target[PATH_MAX];
    struct dirent *e;
    int found = 0;
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    while (!found && (e = readdir(d))) {
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        found = PORTABLE_BUILD ? strcmp(target, lockfile) == 0 : strstr(target, "inotify") != NULL;
    }
    closedir(d);
    return found;
}

/* Until pid is in a timed or asynchronous wait, for at most 2 s: out of
 * inotify instances (the per-user limit is shared by every process of the
 * user), it sleeps on its timer alone and never shows one. */
__attribute__((unused)) static void wait_in_timed_wait(pid_t pid, const char *lockfile)
{
    for (int i = 0; i < 2000 && !in_timed_wait(pid, lockfile); i++)
        usleep(1000);
}
#endif

struct holder {
    pid_t pid;
    int to;     /* we write commands */
    int from;   /* it writes replies */
#ifdef _WIN32
    HANDLE process;
#endif
};

#ifdef _WIN32
/* Start "PROGRAM --helper ARGS" (each argument quoted) with its standard
 * input and output on pipes to us. */
__attribute__((unused))
static struct holder helper_spawn(int argc, const char *const *argv)
{
    char self[MAX_PATH], cmd[4096];
    size_t used;
    SECURITY_ATTRIBUTES sa = { sizeof sa, NULL, TRUE };
    HANDLE in_r, in_w, out_r, out_w;
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    struct holder h;

    GetModuleFileNameA(NULL, self, sizeof self);
    used = (size_t)snprintf(cmd, sizeof cmd, "\"%s\" --helper", self);
    for (int i = 0; i < argc && used < sizeof cmd; i++)
        used += (size_t)snprintf(cmd + used, sizeof cmd - used, " \"%s\"", argv[i]);
    CHECK(used < sizeof cmd);
    CHECK(CreatePipe(&in_r, &in_w, &sa, 0) && CreatePipe(&out_r, &out_w, &sa, 0));
    SetHandleInformation(in_w, HANDLE_FLAG_INHERIT, 0);
    SetHandleInformation(out_r, HANDLE_FLAG_INHERIT, 0);
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = in_r;
    si.hStdOutput = out_w;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    CHECK(CreateProcessA(self, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi));
    CloseHandle(in_r);
    CloseHandle(out_w);
    CloseHandle(pi.hThread);
    h.pid = (pid_t)pi.dwProcessId;
    h.process = pi.hProcess;
    h.to = _open_osfhandle((intptr_t)in_w, _O_BINARY);
    h.from = _open_osfhandle((intptr_t)out_r, _O_BINARY);
    CHECK(h.to >= 0 && h.from >= 0);
    return h;
}

/* The exit code of a helper that has ended (closing our pipes first). */
__attribute__((unused)) static long helper_wait(struct holder *h)
{
    DWORD code = 1;
    close(h->to);
    close(h->from);
    CHECK(WaitForSingleObject(h->process, INFINITE) == WAIT_OBJECT_0);
    GetExitCodeProcess(h->process, &code);
    CloseHandle(h->process);
    return (long)code;
}

static const char *mode_arg(cachelock_mode_t mode)
{
    return mode == CACHELOCK_SHARED ? "shared" : "exclusive";
}
#endif

/* A process that takes (dir, source, mode) - waiting as long as it takes -
 * replies 'L', then on 'r' releases and replies 'R', and exits when its
 * command pipe closes. */
__attribute__((unused))
static struct holder holder_spawn(const char *dir, const char *source, cachelock_mode_t mode)
{
#ifdef _WIN32
    const char *argv[] = { "holder", dir, source, mode_arg(mode) };
    return helper_spawn(4, argv);
#else
    int cmd[2], rep[2];
    struct holder h;
    CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0);
    h.pid = fork();
    CHECK(h.pid >= 0);
    if (h.pid == 0) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        cachelock_t *lock;
        char c;
        close(cmd[1]);
        close(rep[0]);
        o.mode = mode;
        if (cachelock_acquire_ex(dir, source, &o, &lock) != 0)
            _exit(3);
        send_byte(rep[1], 'L');
        while (read(cmd[0], &c, 1) == 1) {
            if (c == 'r') {
                cachelock_release(lock);
                lock = NULL;
                send_byte(rep[1], 'R');
            }
        }
        _exit(0);
    }
    close(cmd[0]);
    close(rep[1]);
    h.to = cmd[1];
    h.from = rep[0];
    return h;
#endif
}

/* Wait for the holder to report that it holds the lock. */
__attribute__((unused)) static void holder_wait_locked(struct holder *h)
{
    CHECK_EQ(recv_byte(h->from), 'L');
}

__attribute__((unused)) static void holder_release(struct holder *h)
{
    send_byte(h->to, 'r');
    CHECK_EQ(recv_byte(h->from), 'R');
}

/* Close the pipes and reap it; it must have exited cleanly. */
__attribute__((unused)) static void holder_finish(struct holder *h)
{
#ifdef _WIN32
    CHECK_EQ(helper_wait(h), 0);
#else
    int status;
    close(h->to);
    close(h->from);
    CHECK(waitpid(h->pid, &status, 0) == h->pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
#endif
}

/* Kill it (SIGKILL; TerminateProcess on Windows) without a word, and reap
 * it: a crash. */
__attribute__((unused)) static void holder_kill(struct holder *h)
{
#ifdef _WIN32
    CHECK(TerminateProcess(h->process, 137));
    helper_wait(h);
#else
    kill(h->pid, SIGKILL);
    waitpid(h->pid, NULL, 0);
    close(h->to);
    close(h->from);
#endif
}

/* Has the holder written a reply we have not read yet? */
__attribute__((unused)) static int holder_replied(struct holder *h)
{
#ifdef _WIN32
    DWORD n = 0;
    CHECK(PeekNamedPipe((HANDLE)_get_osfhandle(h->from), NULL, 0, NULL, &n, NULL));
    return n > 0;
#else
    struct pollfd p = { h->from, POLLIN, 0 };
    return poll(&p, 1, 0) > 0;
#endif
}

/* Until the holder, which has not replied 'L' yet, waits for its lock in
 * the kernel.  Unix shows it in /proc/locks; Windows has no such table, so
 * there this can only give it time. */
__attribute__((unused)) static void holder_wait_blocked(struct holder *h)
{
#ifdef _WIN32
    (void)h;
    Sleep(300);
#else
    wait_blocked_in_flock(h->pid);
#endif
}

/* Try a lock once from this process and release it: the return code. */
__attribute__((unused)) static int try_once(const char *dir, const char *source, cachelock_mode_t mode)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    int rc;
    o.mode = mode;
    o.timeout_ms = 0;
    rc = cachelock_acquire_ex(dir, source, &o, &lock);
    CHECK((rc == 0) == (lock != NULL));
    cachelock_release(lock);
    return rc;
}

/* try_once from a separate process, which opens the lock file afresh and so
 * sees the lock as the rest of the world does: 0 or -EWOULDBLOCK (anything
 * else fails the case). */
__attribute__((unused)) static int try_in_other_process(const char *dir, const char *source,
                                                         cachelock_mode_t mode)
{
#ifdef _WIN32
    const char *argv[] = { "try", dir, source, mode_arg(mode) };
    struct holder h = helper_spawn(4, argv);
    long code = helper_wait(&h);
#else
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int rc = try_once(dir, source, mode);
        _exit(rc == 0 ? 0 : rc == -EWOULDBLOCK ? 1 : 2);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status));
    long code = WEXITSTATUS(status);
#endif
    CHECK(code == 0 || code == 1);
    return code == 0 ? 0 : -EWOULDBLOCK;
}

/* Does the held lock hold the file at path (the same file, by identity)? */
__attribute__((unused)) static int lock_is_file(const cachelock_t *lock, const char *path)
{
#ifdef _WIN32
    BY_HANDLE_FILE_INFORMATION a, b;
    wchar_t w[1024];
    if (!MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, path, -1, w, 1024))
        return 0;
    HANDLE h = CreateFileW(w, FILE_READ_ATTRIBUTES,
                           FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_FLAG_BACKUP_SEMANTICS, NULL);
    int same = h != INVALID_HANDLE_VALUE && GetFileInformationByHandle(h, &b) &&
               GetFileInformationByHandle(cachelock_handle(lock), &a) &&
               a.dwVolumeSerialNumber == b.dwVolumeSerialNumber &&
               a.nFileIndexHigh == b.nFileIndexHigh && a.nFileIndexLow == b.nFileIndexLow;
    if (h != INVALID_HANDLE_VALUE)
        CloseHandle(h);
    return same;
#else
    struct stat a, b;
    return fstat(cachelock_fd(lock), &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
           a.st_ino == b.st_ino;
#endif
}

/* Number of entries in a directory, not counting . and .. */
__attribute__((unused)) static int dir_entries(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;
    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

#ifdef _WIN32
static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every path below dir (relative, '\\'-separated) into names[]. */
static void list_tree(const char *dir, const char *rel, char **names, size_t *n, size_t max)
{
    char pattern[700], sub[700];
    WIN32_FIND_DATAA d;
    snprintf(pattern, sizeof pattern, "%s\\%s%s*", dir, rel, *rel ? "\\" : "");
    HANDLE f = FindFirstFileA(pattern, &d);
    if (f == INVALID_HANDLE_VALUE)
        return;
    do {
        if (!strcmp(d.cFileName, ".") || !strcmp(d.cFileName, "..") || *n >= max)
            continue;
        snprintf(sub, sizeof sub, "%s%s%s", rel, *rel ? "\\" : "", d.cFileName);
        names[(*n)++] = strdup(sub);
        if ((d.dwFileAttributes & FILE_ATTRIBUTE_DIRECTORY) &&
            !(d.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT))
            list_tree(dir, sub, names, n, max);
    } while (FindNextFileA(f, &d));
    FindClose(f);
}
#endif

/* A sorted listing of everything below dir, to compare before and after. */
__attribute__((unused)) static void snapshot_tree(const char *dir, char *out, size_t size)
{
#ifdef _WIN32
    char *names[256];
    size_t n = 0, used = 0;
    list_tree(dir, "", names, &n, 256);
    qsort(names, n, sizeof names[0], by_name);
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (used < size)
            used += (size_t)snprintf(out + used, size - used, "%s\n", names[i]);
        free(names[i]);
    }
#else
    char cmd[600];
    snprintf(cmd, sizeof cmd, "cd '%s' && find . 2>/dev/null | sort", dir);
    FILE *p = popen(cmd, "r");
    size_t n = p ? fread(out, 1, size - 1, p) : 0;
    out[n] = '\0';
    if (p)
        pclose(p);
#endif
}

#ifdef _WIN32
/* ---- the helper roles (PROGRAM --helper ROLE ARGS...) --------------------- */

static cachelock_mode_t mode_of(const char *arg)
{
    return strcmp(arg, "shared") == 0 ? CACHELOCK_SHARED : CACHELOCK_EXCLUSIVE;
}

/* holder DIR SOURCE MODE [TIMEOUT_MS]: as holder_spawn() says. */
static int helper_holder(int argc, char **argv)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock;
    char c;
    o.mode = mode_of(argv[3]);
    if (argc > 4)
        o.timeout_ms = atol(argv[4]);
    if (cachelock_acquire_ex(argv[1], argv[2], &o, &lock) != 0)
        return 3;
    send_byte(1, 'L');
    while (read(0, &c, 1) == 1) {
        if (c == 'r') {
            cachelock_release(lock);
            lock = NULL;
            send_byte(1, 'R');
        }
    }
    return 0;
}

/* range PATH OFFSET LENGTH MODE: another program's lock, LockFileEx on
 * bytes [OFFSET, OFFSET + LENGTH) of PATH, as fs4, Rust's std, Cargo and Go
 * (0, 2^64 - 1) or Python's filelock (0, 1) take it; 'L' when held, 'B'
 * when busy (then it exits 1), held until the pipe closes. */
static int helper_range(int argc, char **argv)
{
    OVERLAPPED ov;
    char c;
    (void)argc;
    uint64_t off = strtoull(argv[2], NULL, 0), len = strtoull(argv[3], NULL, 0);
    /* Python's filelock opens without FILE_SHARE_DELETE, as here with
     * "nodelete" in MODE. */
    DWORD share = FILE_SHARE_READ | FILE_SHARE_WRITE |
                  (strstr(argv[4], "nodelete") ? 0 : FILE_SHARE_DELETE);
    HANDLE h = CreateFileA(argv[1], GENERIC_READ | GENERIC_WRITE, share, NULL, OPEN_ALWAYS, 0, NULL);
    if (h == INVALID_HANDLE_VALUE)
        return 3;
    memset(&ov, 0, sizeof ov);
    ov.Offset = (DWORD)off;
    ov.OffsetHigh = (DWORD)(off >> 32);
    DWORD flags = (strstr(argv[4], "shared") ? 0 : LOCKFILE_EXCLUSIVE_LOCK) |
                  (strstr(argv[4], "try") ? LOCKFILE_FAIL_IMMEDIATELY : 0);
    if (!LockFileEx(h, flags, 0, (DWORD)len, (DWORD)(len >> 32), &ov)) {
        send_byte(1, 'B');
        return 1;
    }
    send_byte(1, 'L');
    while (read(0, &c, 1) == 1)
        ;
    return 0;
}

/* increment DIR SOURCE ROUNDS COUNTER MARKER: ROUNDS times, under the
 * lock, create MARKER (which must not exist: exit 5 if another holder is
 * inside), add one to the number in COUNTER, remove MARKER. */
static int helper_increment(char **argv)
{
    int rounds = atoi(argv[3]);
    for (int r = 0; r < rounds; r++) {
        cachelock_t *lock;
        long v = 0;
        if (cachelock_acquire(argv[1], argv[2], &lock) != 0) {
            fprintf(stderr, "# increment: %s\n", cachelock_errmsg());
            return 2;
        }
        HANDLE inside = CreateFileA(argv[5], GENERIC_WRITE, 0, NULL, CREATE_NEW,
                                    FILE_FLAG_DELETE_ON_CLOSE, NULL);
        if (inside == INVALID_HANDLE_VALUE)
            return 5;
        FILE *f = fopen(argv[4], "r+");
        if (!f || fscanf(f, "%ld", &v) != 1)
            return 3;
        SwitchToThread();
        rewind(f);
        fprintf(f, "%ld", v + 1);
        if (fclose(f) != 0)
            return 4;
        CloseHandle(inside);
        cachelock_release(lock);
    }
    return 0;
}

static int helper_main(int argc, char **argv)
{
    if (strcmp(argv[0], "increment") == 0 && argc == 6)
        return helper_increment(argv);
    if (strcmp(argv[0], "holder") == 0 && argc >= 4)
        return helper_holder(argc, argv);
    if (strcmp(argv[0], "try") == 0 && argc == 4) {
        int rc = try_once(argv[1], argv[2], mode_of(argv[3]));
        return rc == 0 ? 0 : rc == -EWOULDBLOCK ? 1 : 2;
    }
    if (strcmp(argv[0], "range") == 0 && argc == 5)
        return helper_range(argc, argv);
    fprintf(stderr, "# unknown helper role '%s'\n", argv[0]);
    return 2;
}
#undef TAP_HELPERS
#define TAP_HELPERS helper_main
#endif

#endif
