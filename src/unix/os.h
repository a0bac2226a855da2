/*
 * os.h - what portable code needs from Unix beyond C11: threads (a mutex,
 * one-time initialisation, thread identity, fork handlers, cancellation),
 * how paths are spelled, and the system-call table.  Included by
 * internal.h; src/win/os.h is the same for Windows.
 */
#ifndef CACHELOCK_UNIX_OS_H
#define CACHELOCK_UNIX_OS_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

/* What a descriptor of the OS layer is (see struct cachelock__handle): a
 * file descriptor here. */
#define CACHELOCK__FD_IS_HANDLE 0

/* A waiter mark (os_mark_waiting) only makes releasers close: the wait
 * learns of the release through its watch. */
#define CACHELOCK__MARK_WAKES 0

/* ---- threads -------------------------------------------------------------- */

typedef pthread_mutex_t cachelock__mutex_t;
#define CACHELOCK__MUTEX_INIT PTHREAD_MUTEX_INITIALIZER
static inline void cachelock__mutex_lock(cachelock__mutex_t *m) { pthread_mutex_lock(m); }
static inline void cachelock__mutex_unlock(cachelock__mutex_t *m) { pthread_mutex_unlock(m); }

typedef pthread_once_t cachelock__once_t;
#define CACHELOCK__ONCE_INIT PTHREAD_ONCE_INIT
static inline void cachelock__once(cachelock__once_t *o, void (*fn)(void)) { pthread_once(o, fn); }

typedef pthread_t cachelock__thread_t;
static inline cachelock__thread_t cachelock__thread_self(void) { return pthread_self(); }
static inline int cachelock__thread_equal(cachelock__thread_t a, cachelock__thread_t b)
{
    return pthread_equal(a, b);
}

/* Handlers run around fork(2) (registry.c). */
static inline void cachelock__atfork(void (*prepare)(void), void (*parent)(void),
                                     void (*child)(void))
{
    pthread_atfork(prepare, parent, child);
}

/* Let other threads run (a waiter woken a moment too early, wait.c). */
static inline void cachelock__os_yield(void) { sched_yield(); }

/* Thread cancellation (pthread_cancel), which portable code turns off in
 * every public call (error.c) and on only for the sleep of a timed wait
 * (wait.c).  cachelock__setcancelstate() returns the previous state. */
#define CACHELOCK__CANCEL_DISABLE PTHREAD_CANCEL_DISABLE
static inline int cachelock__setcancelstate(int state)
{
    int old;
    pthread_setcancelstate(state, &old);
    return old;
}
#define cachelock__cleanup_push(fn, arg) pthread_cleanup_push(fn, arg)
#define cachelock__cleanup_pop(run) pthread_cleanup_pop(run)

/* ---- paths ------------------------------------------------------------------ */

/* The separator the library joins paths with, and which bytes separate. */
#define CACHELOCK__SEP '/'
static inline int cachelock__os_is_sep(char c) { return c == '/'; }
/* How many leading bytes of a directory are its root ("/"), which trailing
 * separators are never trimmed into. */
static inline size_t cachelock__os_root_len(const char *dir, size_t len)
{
    return len > 0 && dir[0] == '/' ? 1 : 0;
}

/* Why a name is no file name of this system beyond the rule of every
 * system (CACHELOCK_F_ANYNAME), or NULL: any byte but '/' and NUL goes. */
static inline const char *cachelock__os_name_refused(const char *name, size_t len)
{
    (void)name;
    (void)len;
    return NULL;
}

/* ---- system call table (unix/syscalls.c) --------------------------------- */

/* Every system call of the acquire, wait, release and prune paths goes
 * through this table (the diagnostics that read /proc and the signal-handler
 * check in notify.c do not), so tests can inject failures (SQLite's
 * aSyscall[] idea).  Tests link the static library and swap entries;
 * nothing outside the library can see it.  Portable code uses only its
 * malloc. */
struct stat;
struct statfs;
struct pollfd;
struct cachelock__syscalls {
    int (*open)(const char *path, int flags, ...);
    int (*openat)(int dirfd, const char *path, int flags, ...);
    int (*close)(int fd);
    int (*flock)(int fd, int op);
    int (*fstat)(int fd, struct stat *st);
    int (*fstatat)(int dirfd, const char *path, struct stat *st, int flags);
    int (*mkdir)(const char *path, unsigned mode);
    int (*unlinkat)(int dirfd, const char *path, int flags);
    int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
    int (*fcntl)(int fd, int cmd, ...);
    int (*poll)(struct pollfd *fds, unsigned long n, int timeout);
    int (*inotify_init1)(int flags);
    int (*inotify_add_watch)(int fd, const char *path, uint32_t mask);
    int (*inotify_rm_watch)(int fd, int wd);
    long (*read)(int fd, void *buf, size_t n);
    int (*ioctl)(int fd, unsigned long request, ...);
    void *(*malloc)(size_t n);
    int (*fstatfs)(int fd, struct statfs *st);
    int (*fchmod)(int fd, unsigned mode);
    long (*pread)(int fd, void *buf, size_t n, int64_t off);
    long (*pwrite)(int fd, const void *buf, size_t n, int64_t off);
};

#endif
