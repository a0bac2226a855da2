/*
 * take_turns.c - several processes update one cache entry in turns.
 *
 *   take_turns [CACHE_DIR]
 *
 * Starts 4 workers (forks them; on Windows, runs itself again with
 * --worker).  Each one, 5 times, takes the exclusive lock of the source
 * "counter", reads the number in CACHE_DIR/counter, adds one, writes it
 * back and releases.  Without the lock, updates would be lost; with it,
 * the final number is exactly 20.  Exits 0 if so.
 */
#define _POSIX_C_SOURCE 200809L
#include <cachelock.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <process.h>
#define getpid _getpid
#else
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#endif

#define WORKERS 4
#define ROUNDS 5

static long read_counter(const char *file)
{
    long v = 0;
    FILE *f = fopen(file, "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static int write_counter(const char *file, long v)
{
    FILE *f = fopen(file, "w");
    if (!f)
        return -1;
    fprintf(f, "%ld\n", v);
    return fclose(f);
}

static int worker(const char *dir, const char *file, int id)
{
    for (int round = 0; round < ROUNDS; round++) {
        cachelock_t *lock;
        int rc = cachelock_acquire(dir, "counter", &lock);
        if (rc != 0) {
            fprintf(stderr, "take_turns: %s\n", cachelock_errmsg());
            return 1;
        }
        long v = read_counter(file);
        /* Hold the lock a moment so that the others really have to wait. */
#ifdef _WIN32
        Sleep(20);
#else
        nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
#endif
        if (write_counter(file, v + 1) != 0) {
            perror("take_turns: write counter");
            cachelock_release(lock);
            return 1;
        }
        printf("worker %d (pid %d): counter %ld -> %ld\n", id, (int)getpid(), v, v + 1);
        fflush(stdout);
        cachelock_release(lock);
    }
    return 0;
}

#ifdef _WIN32
/* Windows has no fork(2): a worker is this program again, "--worker ID
 * DIR FILE", and its process handle is what we wait for. */
static HANDLE workers[8];

static int start_worker(const char *self, const char *dir, const char *file, int id)
{
    char cmd[3 * 4200];
    STARTUPINFOA si;
    PROCESS_INFORMATION pi;
    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    snprintf(cmd, sizeof cmd, "\"%s\" --worker %d \"%s\" \"%s\"", self, id, dir, file);
    if (!CreateProcessA(NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi))
        return -1;
    CloseHandle(pi.hThread);
    workers[id - 1] = pi.hProcess;
    return 0;
}

static int wait_worker(int id)
{
    DWORD code = 1;
    WaitForSingleObject(workers[id - 1], INFINITE);
    GetExitCodeProcess(workers[id - 1], &code);
    CloseHandle(workers[id - 1]);
    return code == 0 ? 0 : -1;
}

static char *make_temp_dir(char *dir, size_t size)
{
    char tmp[MAX_PATH];
    if (!GetTempPathA(sizeof tmp, tmp))
        return NULL;
    snprintf(dir, size, "%stake_turns.%lu", tmp, (unsigned long)GetCurrentProcessId());
    return CreateDirectoryA(dir, NULL) ? dir : NULL;
}
#else
static int start_worker(const char *self, const char *dir, const char *file, int id)
{
    (void)self;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0)
        _exit(worker(dir, file, id));
    return 0;
}

static int wait_worker(int id)
{
    int status;
    (void)id;
    return wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0 ? -1 : 0;
}

static char *make_temp_dir(char *dir, size_t size)
{
    snprintf(dir, size, "%s/take_turns.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(dir);
}
#endif

int main(int argc, char **argv)
{
    char dir[4096], file[4200];
    int failed = 0;

    if (argc == 5 && strcmp(argv[1], "--worker") == 0)
        return worker(argv[3], argv[4], atoi(argv[2]));
    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else if (!make_temp_dir(dir, sizeof dir)) {
        perror("take_turns: cannot make a temporary directory");
        return 1;
    }
    snprintf(file, sizeof file, "%s/counter", dir);
    /* Start from zero, under the lock like every other update. */
    cachelock_t *lock;
    if (cachelock_acquire(dir, "counter", &lock) != 0 || write_counter(file, 0) != 0) {
        fprintf(stderr, "take_turns: %s\n", cachelock_errmsg());
        return 1;
    }
    cachelock_release(lock);

    for (int i = 0; i < WORKERS; i++) {
        if (start_worker(argv[0], dir, file, i + 1) < 0) {
            perror("take_turns: cannot start a worker");
            return 1;
        }
    }
    for (int i = 0; i < WORKERS; i++) {
        if (wait_worker(i + 1) < 0)
            failed = 1;
    }
    long final = read_counter(file);
    printf("final counter: %ld (expected %d): %s\n", final, WORKERS * ROUNDS,
           final == WORKERS * ROUNDS && !failed ? "no update lost" : "UPDATES LOST");
    return final == WORKERS * ROUNDS && !failed ? 0 : 1;
}
