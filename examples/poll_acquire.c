/*
 * poll_acquire.c - acquire a lock from an event loop with poll(2).
 *
 *   poll_acquire CACHE_DIR SOURCE [TIMEOUT_MS]
 *
 * This is the example of the header's "Asynchronous acquire" section, as a
 * program.  To have something to wait for, it first starts a child that
 * holds the lock for 200 ms.  The loop never blocks in the lock call: it
 * could serve sockets, timers and signals at the same time, and could give
 * up at any moment by calling cachelock_wait_free().
 */
#define _POSIX_C_SOURCE 200809L
#include <cachelock.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    cachelock_options_t opts = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock = NULL;
    int ready[2], rc, polls = 0;
    char c;

    if (argc < 3) {
        fprintf(stderr, "usage: poll_acquire CACHE_DIR SOURCE [TIMEOUT_MS]\n");
        return 64;
    }
    opts.timeout_ms = argc > 3 ? atol(argv[3]) : 5000;

    /* A child holds the lock for 200 ms. */
    if (pipe(ready) < 0)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        if (cachelock_acquire(argv[1], argv[2], &lock) != 0)
            _exit(1);
        if (write(ready[1], "L", 1) != 1)
            _exit(1);
        nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL);
        cachelock_release(lock);
        _exit(0);
    }
    if (read(ready[0], &c, 1) != 1)
        return 1;

    /* The event loop. */
    rc = cachelock_wait_start(argv[1], argv[2], &opts, &w);
    if (rc == 0) {
        /* A step never blocks: 0 locked, -EINPROGRESS not yet, else final. */
        while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
            struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
            poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
            polls++;
        }
    }
    cachelock_wait_free(w);                     /* cancels if still waiting */

    waitpid(pid, NULL, 0);
    if (rc != 0) {
        fprintf(stderr, "poll_acquire: %s\n", cachelock_errmsg());
        return 1;
    }
    printf("poll_acquire: got '%s' after %d polls\n", argv[2], polls);
    cachelock_release(lock);
    return 0;
}
