/*
 * poll_acquire.c - acquire a lock from an event loop with poll(2), or on
 * Windows with WaitForSingleObject().
 *
 *   poll_acquire CACHE_DIR SOURCE [TIMEOUT_MS]
 *
 * This is the example of the header's "Asynchronous acquire" section, as a
 * program.  To have something to wait for, it first starts a child that
 * holds the lock for 200 ms (on Windows, itself again with --hold).  The
 * loop never blocks in the lock call: it could serve sockets, timers and
 * signals at the same time, and could give up at any moment by calling
 * cachelock_wait_free().
 */
#define _POSIX_C_SOURCE 200809L
#include <cachelock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <poll.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#ifdef _WIN32
/* The holder: this program again, which takes the lock, says "L" on its
 * standard output (our pipe), holds it 200 ms and exits. */
static HANDLE holder;

static int start_holder(const char *self, const char *dir, const char *source)
{
    char cmd[3 * 4200], c;
    SECURITY_ATTRIBUTES sa = { sizeof sa, NULL, TRUE };
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    HANDLE r, w;
    DWORD n;
    if (!CreatePipe(&r, &w, &sa, 0))
        return -1;
    SetHandleInformation(r, HANDLE_FLAG_INHERIT, 0);
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    si.dwFlags = STARTF_USESTDHANDLES;
    si.hStdInput = GetStdHandle(STD_INPUT_HANDLE);
    si.hStdOutput = w;
    si.hStdError = GetStdHandle(STD_ERROR_HANDLE);
    snprintf(cmd, sizeof cmd, "\"%s\" --hold \"%s\" \"%s\"", self, dir, source);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi))
        return -1;
    CloseHandle(w);
    CloseHandle(pi.hThread);
    holder = pi.hProcess;
    int ok = ReadFile(r, &c, 1, &n, NULL) && n == 1 && c == 'L';
    CloseHandle(r);
    return ok ? 0 : -1;
}

static int hold(const char *dir, const char *source)
{
    cachelock_t *lock;
    if (cachelock_acquire(dir, source, &lock) != 0)
        return 1;
    fputs("L", stdout);
    fflush(stdout);
    Sleep(200);
    cachelock_release(lock);
    return 0;
}

static void reap_holder(void)
{
    WaitForSingleObject(holder, INFINITE);
    CloseHandle(holder);
}

/* Wait for the event of the lock request the wait queued in the kernel,
 * for at most the wait's timeout; with no event (wine), for the timeout. */
static void wait_for(cachelock_wait_t *w)
{
    void *event = cachelock_wait_handle(w);
    if (event)
        WaitForSingleObject(event, (DWORD)cachelock_wait_timeout(w));
    else
        Sleep((DWORD)cachelock_wait_timeout(w));
}
#else
static pid_t holder;

static int start_holder(const char *self, const char *dir, const char *source)
{
    int ready[2];
    char c;
    (void)self;
    if (pipe(ready) < 0)
        return -1;
    holder = fork();
    if (holder == 0) {
        cachelock_t *lock;
        if (cachelock_acquire(dir, source, &lock) != 0)
            _exit(1);
        if (write(ready[1], "L", 1) != 1)
            _exit(1);
        nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
        cachelock_release(lock);
        _exit(0);
    }
    return holder > 0 && read(ready[0], &c, 1) == 1 ? 0 : -1;
}

static void reap_holder(void)
{
    waitpid(holder, NULL, 0);
}

/* poll(2) the wait's descriptor, for at most the wait's timeout; with no
 * descriptor (no inotify), for the timeout. */
static void wait_for(cachelock_wait_t *w)
{
    struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
    poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
}
#endif

int main(int argc, char **argv)
{
    cachelock_options_t opts = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    int rc, polls = 0;

#ifdef _WIN32
    if (argc == 4 && strcmp(argv[1], "--hold") == 0)
        return hold(argv[2], argv[3]);
#endif
    if (argc < 3) {
        fprintf(stderr, "usage: poll_acquire CACHE_DIR SOURCE [TIMEOUT_MS]\n");
        return 64;
    }
    opts.timeout_ms = argc > 3 ? atol(argv[3]) : 5000;

    /* A child holds the lock for 200 ms. */
    if (start_holder(argv[0], argv[1], argv[2]) < 0)
        return 1;

    /* The event loop. */
    rc = cachelock_wait_start(argv[1], argv[2], &opts, &w);
    if (rc == 0) {
        /* A step never blocks: 0 locked, -EINPROGRESS not yet, else final. */
        while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
            wait_for(w);
            polls++;
        }
    }
    cachelock_wait_free(w);                     /* cancels if still waiting */

    reap_holder();
    if (rc != 0) {
        fprintf(stderr, "poll_acquire: %s\n", cachelock_errmsg());
        return 1;
    }
    printf("poll_acquire: got '%s' after %d polls\n", argv[2], polls);
    cachelock_release(lock);
    return 0;
}
