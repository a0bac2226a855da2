/*
 * take_turns.c - several processes update one cache entry in turns.
 *
 *   take_turns [CACHE_DIR]
 *
 * Forks 4 workers.  Each one, 5 times, takes the exclusive lock of the
 * source "counter", reads the number in CACHE_DIR/counter, adds one, writes
 * it back and releases.  Without the lock, updates would be lost; with it,
 * the final number is exactly 20.  Exits 0 if so.
 */
#define _POSIX_C_SOURCE 200809L
#include <cachelock.h>

#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

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
        nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
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

int main(int argc, char **argv)
{
    char dir[4096], file[4200];
    int failed = 0;

    if (argc > 1) {
        snprintf(dir, sizeof dir, "%s", argv[1]);
    } else {
        snprintf(dir, sizeof dir, "%s/take_turns.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir)) {
            perror("take_turns: mkdtemp");
            return 1;
        }
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
        pid_t pid = fork();
        if (pid < 0) {
            perror("take_turns: fork");
            return 1;
        }
        if (pid == 0)
            _exit(worker(dir, file, i + 1));
    }
    for (int i = 0; i < WORKERS; i++) {
        int status;
        if (wait(&status) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    }
    long final = read_counter(file);
    printf("final counter: %ld (expected %d): %s\n", final, WORKERS * ROUNDS,
           final == WORKERS * ROUNDS && !failed ? "no update lost" : "UPDATES LOST");
    return final == WORKERS * ROUNDS && !failed ? 0 : 1;
}
