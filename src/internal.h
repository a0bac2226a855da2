/*
 * internal.h - what the portable code (the src directory) and the OS layer
 * (src/unix, later src/win) say to each other.  Nothing here is
 * exported from the shared library.
 *
 * Naming: cachelock__* is internal and non-static; static helpers have
 * short plain names.
 */
#ifndef CACHELOCK_INTERNAL_H
#define CACHELOCK_INTERNAL_H

#include "cachelock.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define LOCKS_DIR ".locks"
#define LOCK_SUFFIX ".lock"

/* ---- errors (error.c) ---------------------------------------------------- */

/* Record "cannot {op} '{path}': {strerror(-err)}" as this thread's message and
 * return err, so callers can write `return cachelock__fail(rc, ...)`. */
int cachelock__fail(int err, const char *op, const char *path);

/* Record a free-form message (printf-style) and return err. */
int cachelock__failf(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- names and paths (name.c) ------------------------------------------- */

/* A lock path split into the parts the OS layer needs:
 * buf = "{cache_dir}/.locks/{source}.lock", with the offsets of the pieces. */
struct cachelock__path {
    char buf[PATH_MAX];
    size_t dir_len;     /* strlen(cache_dir), the cache directory */
    size_t locks_len;   /* length of "{cache_dir}/.locks" */
    size_t len;         /* length of the whole path */
};

/* Validate source (message on failure) and fill p.  Returns 0, -EINVAL or
 * -ENAMETOOLONG. */
int cachelock__path_build(struct cachelock__path *p, const char *cache_dir,
                          const char *source);

/* The file name part of p: "{source}.lock". */
static inline const char *cachelock__path_file(const struct cachelock__path *p)
{
    return p->buf + p->locks_len + 1;
}

/* Check a source name; returns 0, -EINVAL or -ENAMETOOLONG and, when why is
 * not NULL, points it at a reason ("contains a path separator"). */
int cachelock__name_check(const char *source, size_t len, const char **why);

/* ---- held-lock registry (registry.c) ------------------------------------- */

/* Identity of a lock file: what fstat(2) says, compared after every grant. */
struct cachelock__fileid {
    uint64_t dev;
    uint64_t ino;
};

/* A lock handle, and also an entry of the pool of released descriptors
 * (pool.c): a handle is either held (in the registry, locked by its owner)
 * or idle (in the pool, unlocked), never both, so no two holders ever
 * share a descriptor. */
struct cachelock {
    struct cachelock *next;         /* registry chain when held, pool
                                       bucket chain when idle */
    struct cachelock *older, *newer;/* pool age list when idle */
    struct cachelock__fileid id;    /* valid when H_ID_KNOWN */
    pthread_t owner;                /* the thread that acquired it */
    uint64_t hash;                  /* of path, the pool key */
    int64_t checked_ms;             /* when path last named this file */
    int fd;
    cachelock_mode_t mode;
    unsigned fork_gen;              /* fork generation when opened */
    unsigned short flags;           /* H_* below */
    unsigned short path_len;
    char path[];                    /* "{cache_dir}/.locks/{source}.lock" */
};

#define H_ID_KNOWN  0x1     /* id has been read with fstat(2) */
#define H_LOCAL     0x40    /* local filesystem: may mark itself waiting
                               (see os_mark_waiting) */
#define H_POOLABLE  0x2     /* H_LOCAL and an absolute path: may be pooled */
#define H_EXPOSED   0x4     /* cachelock_fd() gave the descriptor away */
#define H_WAITING   0x8     /* carries a waiter mark */
#define H_NOKEEP    0x10    /* close at release: unlinked by prune, a waiter
                               is marked, or the state is unknown */
#define H_REUSED    0x20    /* taken from the pool at least once */

/* 0 if the calling thread may wait for id in mode; -EDEADLK if it holds id
 * in a conflicting mode itself. */
int cachelock__registry_check(const struct cachelock__fileid *id, cachelock_mode_t mode);
void cachelock__registry_add(struct cachelock *lock);
/* Bumped in every child after fork(2): who was forked from whom. */
unsigned cachelock__fork_generation(void);
/* Remove lock; returns 1 if it was taken in this process (same fork
 * generation), 0 if it was inherited from a parent across fork(2), -1 if it
 * is not a live handle (released already): then it must not be touched. */
int cachelock__registry_remove(struct cachelock *lock);
/* The one mutex of the process-wide tables (registry and pool); taking it
 * returns the current fork generation.  fork(2) waits for it. */
unsigned cachelock__tables_lock(void);
void cachelock__tables_unlock(void);

/* ---- released descriptors kept open (pool.c) ----------------------------- */

/* Hash of a lock path, the pool key. */
uint64_t cachelock__path_hash(const char *path, size_t len);
/* An idle handle for path, opened in this process, removed from the pool;
 * NULL if there is none. */
cachelock_t *cachelock__pool_take(const char *path, size_t len, uint64_t hash);
/* Would the pool take h now?  A handle used once is not let in when the
 * pool is full, so that a scan of many sources cannot push out the ones in
 * steady use (and its release then skips the waiter test: it closes). */
int cachelock__pool_has_room(const cachelock_t *h);
/* Keep an unlocked handle for later; closes and frees it (or an older one)
 * instead when it cannot be kept. */
void cachelock__pool_put(cachelock_t *h);
/* Close and free a handle that is not held. */
void cachelock__handle_free(cachelock_t *h);
/* Is the .locks directory of p known (checked within the last second) to
 * be a real directory, and on a local filesystem (*local)? */
int cachelock__dir_known(const struct cachelock__path *p, int *local);
/* Remember that the .locks directory of p was just opened safely. */
void cachelock__dir_remember(const struct cachelock__path *p, int local);
/* Forget every remembered directory (tests: the first-time path). */
void cachelock__dirs_forget(void);

/* ---- one acquire attempt (acquire.c) ------------------------------------- */

/* State shared by the blocking acquire and the wait machine (wait.c). */
struct cachelock__attempt {
    struct cachelock__path path;
    uint64_t hash;                  /* of path.buf */
    cachelock_mode_t mode;
    unsigned flags;
    cachelock_t *h;                 /* the open lock file, or NULL */
    size_t created_from;            /* directories this attempt created */
};

int cachelock__options_check(const cachelock_options_t *opts, cachelock_options_t *out);
/* Set up a from the path already in a->path. */
void cachelock__attempt_init(struct cachelock__attempt *a);
/* Open if needed and try once (block != 0: wait in the kernel).  Returns 0
 * with *out held, -EWOULDBLOCK when busy (fd stays open for the next try), or
 * a final error (fd closed).  Retries internally when the file was replaced. */
int cachelock__attempt_try(struct cachelock__attempt *a, int block, cachelock_t **out);
void cachelock__attempt_done(struct cachelock__attempt *a);

/* A timed or try acquire (wait.c): the wait machine driven by poll(2). */
int cachelock__wait_acquire(const struct cachelock__path *path, const cachelock_options_t *o,
                            cachelock_t **out);

/* ---- OS layer (src/unix) ------------------------------------------------- */

/* Open (creating what is missing unless nocreate) the lock file of p.
 * Returns 0 with *fd, *id, *local (1: a local filesystem, see
 * os_mark_waiting) and *created_from (length of the shallowest directory
 * this call created, 0 if none), or a negative code with the message set
 * and nothing created left behind. */
int cachelock__os_open(const struct cachelock__path *p, int nocreate, int *fd,
                       struct cachelock__fileid *id, int *local, size_t *created_from);
/* The quick open when .locks is known good: one open(2) of the whole path.
 * Returns the descriptor, -EAGAIN when os_open must try (it creates what is
 * missing, falls back to read-only and explains), or another negative
 * code. */
int cachelock__os_open_known(const struct cachelock__path *p, int nocreate);
/* fstat(2) h->fd into h->id (H_ID_KNOWN); a negative code if that fails or
 * the file is not a regular file. */
int cachelock__os_read_id(cachelock_t *h);
/* After a grant: does h's path still name the file h->fd locked?  1 yes,
 * 0 no (removed or replaced), negative on error.  One fstat(2) when the
 * file has one link and its path was resolved within the last second,
 * otherwise a stat(2) of the path too. */
int cachelock__os_check_granted(cachelock_t *h);
/* Waiter marks: a timed or asynchronous waiter puts an OFD read lock on
 * one byte far beyond the data (flock(2) and OFD locks are independent on
 * local filesystems), and a releaser that keeps its descriptor open tests
 * for it and closes instead, so that the waiter's inotify watch sees a
 * close.  Only on local filesystems: NFS emulates flock(2) with byte-range
 * locks, which such a mark would conflict with. */
int cachelock__os_mark_waiting(int fd, int on);
/* 1 if some other open file holds a waiter mark on fd's file, else 0. */
int cachelock__os_has_waiters(int fd);
/* Coarse monotonic clock in milliseconds (cheap; a few ms resolution). */
int64_t cachelock__os_now_coarse_ms(void);
/* Remove what an open that reported created_from made, after a later
 * failure of the same acquire.  Keeps errno. */
void cachelock__os_undo_create(const struct cachelock__path *p, size_t created_from);
/* flock the descriptor: 0, -EWOULDBLOCK (only when !block), -EINTR, -errno. */
int cachelock__os_lock(int fd, cachelock_mode_t mode, int block);
/* 0, or -errno: then only closing the descriptor is sure to unlock. */
int cachelock__os_unlock(int fd);
void cachelock__os_close(int fd);
/* Remove the lock file of p (we hold its lock). */
int cachelock__os_unlink(const struct cachelock__path *p);
/* Milliseconds since the file of fd last changed (its creation, for lock
 * files), or a negative code. */
int64_t cachelock__os_age_ms(int fd);
/* Identity of an existing lock file without creating anything. */
int cachelock__os_stat(const char *path, struct cachelock__fileid *id);

/* Move a descriptor to 3 or above (closing the low one); -1 on failure. */
int cachelock__os_keep_high(int fd);
/* Call fn for every entry name of dir; a missing dir has no entries. */
int cachelock__os_list(const char *dir, int (*fn)(const char *name, void *ctx), void *ctx);

/* Monotonic clock in microseconds. */
int64_t cachelock__os_now_us(void);

/* Change notification for waits: a pollable descriptor that becomes
 * readable when the lock file at path is closed, removed or renamed. */
struct cachelock__watch {
    int fd;     /* the inotify instance, or -1 */
    int wd;     /* the watch inside it */
};
/* Returns 0, or a negative code (then waits rely on the timer). */
int cachelock__os_watch(const char *path, struct cachelock__watch *w);
/* Empty a watch descriptor's queue; returns the bytes of events read. */
long cachelock__os_watch_drain(int wfd);
/* Give the instance back for the next wait, which removes this watch
 * first (off the handoff path); w->fd = -1. */
void cachelock__os_unwatch(struct cachelock__watch *w);
/* fork(2) hooks of the instance pool, called by registry.c's handlers. */
void cachelock__os_notify_prefork(void);
void cachelock__os_notify_postfork(void);

/* Sleep in poll(2) on fd (may be -1) for at most timeout_ms.  Returns 0, or
 * -EINTR when a signal handler without SA_RESTART may have run. */
int cachelock__os_poll(int fd, int timeout_ms);

/* Kernel lock table (proc.c): calls fn for every lock on id.  Returns 0,
 * -ENOSYS when there is no table, or -errno. */
struct cachelock__lockline {
    int pid;
    int waiting;
    int exclusive;
    unsigned dev_major, dev_minor;
    uint64_t ino;
};
typedef int (*cachelock__lock_fn)(const struct cachelock__lockline *l, void *ctx);
int cachelock__os_locks_on(const struct cachelock__fileid *id, cachelock__lock_fn fn, void *ctx);
/* The command line of pid into buf ("" when unreadable). */
void cachelock__os_command(int pid, char *buf, size_t size);
/* Parse one line of /proc/locks; 0 on success, -EINVAL if malformed. */
int cachelock__parse_lockline(const char *line, struct cachelock__lockline *out);

/* ---- system call table (unix/syscalls.c) --------------------------------- */

/* Every system call of the acquire, wait, release and prune paths goes
 * through this table (the diagnostics that read /proc and the signal-handler
 * check in notify.c do not), so tests can
 * inject failures (SQLite's aSyscall[] idea).  Tests link the static
 * library and swap entries; nothing outside the library can see it. */
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
    int (*unlink)(const char *path);
    int (*rmdir)(const char *path);
    int (*fcntl)(int fd, int cmd, ...);
    int (*poll)(struct pollfd *fds, unsigned long n, int timeout);
    int (*inotify_init1)(int flags);
    int (*inotify_add_watch)(int fd, const char *path, uint32_t mask);
    int (*inotify_rm_watch)(int fd, int wd);
    long (*read)(int fd, void *buf, size_t n);
    void *(*malloc)(size_t n);
    int (*fstatfs)(int fd, struct statfs *st);
};
extern struct cachelock__syscalls cachelock__sys;
/* Put every entry back to the real call. */
void cachelock__syscalls_reset(void);

#endif /* CACHELOCK_INTERNAL_H */
