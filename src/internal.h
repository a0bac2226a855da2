/*
 * internal.h - what the portable code (the src directory) and the OS layer
 * (src/unix, src/win) say to each other.  Nothing here is exported from the
 * shared library.
 *
 * The interface is one-way: portable code calls the OS layer (the
 * cachelock__os_* functions below), never the other way round.  The OS
 * layer only reports facts (a descriptor, an identity, a process epoch);
 * every policy (pools, ownership, fork rules) lives in portable code.
 *
 * Naming: cachelock__* is internal and non-static; static helpers have
 * short plain names.
 */
#ifndef CACHELOCK_INTERNAL_H
#define CACHELOCK_INTERNAL_H

#include "cachelock.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* Threads, path spelling and the system-call table of this OS: the one
 * place where portable code depends on the system it is built for. */
#ifdef _WIN32
#include "win/os.h"
#else
#include "unix/os.h"
#endif

#define LOCKS_DIR ".locks"
#define LOCK_SUFFIX ".lock"
/* The sidecar of fair mode's queue beside "{source}.lock" (fair.c):
 * "{source}.fifo", of the same length.  And the cache's fair policy. */
#define SIDECAR_SUFFIX ".fifo"
#define POLICY_MARKER ".fair"
_Static_assert(sizeof SIDECAR_SUFFIX == sizeof LOCK_SUFFIX, "a sidecar's name fits its lock file's");

/* ---- errors (error.c) ---------------------------------------------------- */

/* Record "cannot {op} '{path}': {strerror(-err)}" as this thread's message and
 * return err, so callers can write `return cachelock__fail(rc, ...)`. */
int cachelock__fail(int err, const char *op, const char *path);

/* Record a free-form message (printf-style) and return err. */
int cachelock__failf(int err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- cancellation (error.c) ---------------------------------------------- */

/* Every public function runs with pthread cancellation disabled, so that a
 * cancellation point inside it (open, close, read) can never unwind past a
 * half-done step and leak a descriptor or a lock.  Only the sleep of a
 * timed wait (wait.c) is a cancellation point, with a cleanup handler.
 * cancel_off() returns the caller's state for cancel_restore(); the state
 * is also kept for the timed wait, which sleeps in the caller's state. */
int cachelock__cancel_off(void);
void cachelock__cancel_restore(int old);
/* The caller's cancellation state saved by the outermost cancel_off(). */
int cachelock__cancel_caller_state(void);

/* ---- names and paths (name.c) ------------------------------------------- */

/* A lock path split into the parts the OS layer needs:
 * buf = "{cache_dir}/.locks/{source}.lock", with the offsets of the pieces.
 * Short paths live in the struct itself, long ones on the heap: threads
 * with the smallest stacks (16 KiB) must be able to acquire. */
#define PATH_INLINE 200
struct cachelock__path {
    char *buf;          /* inline or heap; NUL-terminated */
    size_t dir_len;     /* strlen(cache_dir), the cache directory */
    size_t locks_len;   /* length of "{cache_dir}/.locks" */
    size_t len;         /* length of the whole path */
    char inline_buf[PATH_INLINE];
};

/* Validate source (message on failure; flags: CACHELOCK_F_ANYNAME) and
 * fill p.  Returns 0, -EINVAL, -ENAMETOOLONG or -ENOMEM; on failure nothing
 * is left to free. */
int cachelock__path_build(struct cachelock__path *p, const char *cache_dir,
                          const char *source, unsigned flags);
/* Copy src into dst (fresh); 0 or -ENOMEM. */
int cachelock__path_copy(struct cachelock__path *dst, const struct cachelock__path *src);
/* Free what path_build or path_copy allocated; p may be reused after. */
void cachelock__path_free(struct cachelock__path *p);

/* The file name part of p: "{source}.lock". */
static inline const char *cachelock__path_file(const struct cachelock__path *p)
{
    return p->buf + p->locks_len + 1;
}

/* p names the sidecar of its lock file ("{source}.fifo", in place) until
 * cachelock__path_unsidecar(p) names the lock file again. */
static inline void cachelock__path_sidecar(struct cachelock__path *p)
{
    memcpy(p->buf + p->len - (sizeof LOCK_SUFFIX - 1), SIDECAR_SUFFIX, sizeof LOCK_SUFFIX - 1);
}

static inline void cachelock__path_unsidecar(struct cachelock__path *p)
{
    memcpy(p->buf + p->len - (sizeof LOCK_SUFFIX - 1), LOCK_SUFFIX, sizeof LOCK_SUFFIX - 1);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if none. */
size_t cachelock__utf8_len(const unsigned char *s, size_t n);

/* Check a source name (flags: CACHELOCK_F_ANYNAME for the relaxed rule);
 * returns 0, -EINVAL or -ENAMETOOLONG and, when why is not NULL, points it
 * at a reason ("contains a path separator"). */
int cachelock__name_check(const char *source, size_t len, unsigned flags, const char **why);

/* ---- handles ------------------------------------------------------------- */

/* Identity of a file: what fstat(2) says (on Windows: the volume serial
 * number and the file index). */
struct cachelock__fileid {
    uint64_t dev;
    uint64_t ino;
};

static inline int cachelock__same_id(const struct cachelock__fileid *a,
                                     const struct cachelock__fileid *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* An open lock file.  A handle is either held (in the handle table,
 * registry.c, which gives the caller a token for it), idle (in the pool of
 * released descriptors, pool.c), or in the hands of one acquire attempt;
 * never two of these, so no two holders ever share a descriptor.  The
 * public cachelock_t pointer is a token naming a table slot and its
 * generation, never this struct's address: a token released twice is
 * recognised even after the struct has been handed out again. */
struct cachelock__handle {
    struct cachelock__handle *next;          /* pool bucket chain when idle */
    struct cachelock__handle *older, *newer; /* pool age list when idle */
    struct cachelock__fileid id;    /* of the file fd was opened on */
    uint64_t owner;                 /* thread id (thread_id()) that owns
                                       the hold, 0 for none */
    uint64_t epoch;                 /* process epoch when opened */
    uint64_t hash;                  /* of path, the pool key */
    int fd;                         /* a descriptor (CACHELOCK__FD_IS_HANDLE:
                                       a HANDLE's value), -1 for none */
    int sfd;                        /* fair mode: the queue's sidecar
                                       ({source}.fifo, fair.c), or -1 */
    struct cachelock__fileid sid;   /* identity of the sidecar */
    uint64_t ticket;                /* H_QUEUED: the place in the queue */
    uint64_t wait_hint;             /* H_QUEUED: a ticket to wait for first
                                       (fair.c), Q_NONE for none */
    int64_t policy_until_us;        /* the cache's fair policy, as read
                                       last, holds until then (fair.c) */
    cachelock_mode_t mode;
    unsigned char fs;               /* cachelock_fs_kind_t of its file */
    unsigned short flags;           /* H_* below */
    unsigned short path_len;
    char path[];                    /* "{cache_dir}/.locks/{source}.lock" */
};

#define H_LOCAL     0x1     /* local filesystem: may mark itself waiting
                               (see os_mark_waiting) */
#define H_POOLABLE  0x2     /* H_LOCAL and an absolute path: may be pooled */
#define H_EXPOSED   0x4     /* cachelock_fd() gave the descriptor away */
#define H_WAITING   0x8     /* carries a waiter mark */
#define H_NOKEEP    0x10    /* close at release: a waiter is marked, or the
                               state is unknown */
#define H_REUSED    0x20    /* taken from the pool at least once */
#define H_RDONLY_FS 0x40    /* opened read-only because the filesystem is
                               (a read-only mount): shared locks only */
#define H_QUEUED    0x80    /* holds a place in the fair queue (fair.c) */
#define H_POLICY    0x100   /* the cache's policy is fair (as of
                               policy_until_us) */
#define H_WCHECKED  0x200   /* H_WRITABLE is known */
#define H_WRITABLE  0x400   /* fd is open for writing: can take the
                               queue's byte-range write locks */
#define H_HANDOFF   0x800   /* granted through the fair queue: others are
                               likely queued, the release yields (fair.c) */

/* An open .locks directory, kept for later opens (pool.c). */
struct cachelock__dir {
    int fd;                         /* O_PATH descriptor, or -1 */
    struct cachelock__fileid id;    /* of the directory */
    int local;                      /* its cachelock_fs_kind_t (1: local) */
};

/* Close (when fd >= 0) and free a handle that nobody holds. */
void cachelock__handle_free(struct cachelock__handle *h);

/* ---- the handle table, ownership, fork (registry.c) ---------------------- */

/* The one mutex of the process-wide tables (handles, pool, inotify
 * instances).  lock() returns what unlock() needs: while fork(2) runs the
 * library's atfork handlers hold the mutex for the forking thread, and
 * atfork handlers of the program that call the library on that same thread
 * pass through instead of deadlocking. */
int cachelock__tables_lock(void);
void cachelock__tables_unlock(int token);

/* The calling thread's id: unique for the life of the process, never
 * reused (pthread_t values are reused after a thread exits). */
uint64_t cachelock__thread_id(void);

/* Hand a granted handle to the caller: record it (owned by the calling
 * thread unless unowned) and return its token; NULL when out of memory
 * (the handle is untouched then). */
cachelock_t *cachelock__handle_publish(struct cachelock__handle *h, int unowned);
/* Take a token back for release: the handle, with *ours 1 if it was
 * acquired in this process and 0 if inherited across fork(2); NULL if the
 * token is not a held lock (released already, or never a lock). */
struct cachelock__handle *cachelock__handle_unpublish(const cachelock_t *lock, int *ours);
/* -EDEADLK if the calling thread owns a held lock on id, in this process,
 * in a mode that conflicts with mode; else 0. */
int cachelock__registry_check(const struct cachelock__fileid *id, cachelock_mode_t mode);
/* 1 if the calling thread owns a held lock on id, in this process, in
 * mode; else 0. */
int cachelock__registry_owns(const struct cachelock__fileid *id, cachelock_mode_t mode);

/* ---- released descriptors kept open (pool.c) ----------------------------- */

/* Does descriptor fd still refer to the file id?  1 yes, 0 no (closed or
 * reused by the program: do not touch it), or -errno when its identity
 * cannot be read otherwise (then close it if it must go, but never reuse
 * it). */
int cachelock__fd_is(int fd, const struct cachelock__fileid *id);
/* Hash of a lock path, the pool key. */
uint64_t cachelock__path_hash(const char *path, size_t len);
/* An idle handle for path, opened in this process, removed from the pool;
 * NULL if there is none.  Its descriptor must be checked (fd_is) before
 * use: the program may have closed it meanwhile. */
struct cachelock__handle *cachelock__pool_take(const char *path, size_t len, uint64_t hash);
/* Would the pool take h now?  A handle used once is not let in when the
 * pool is full, so that a scan of many sources cannot push out the ones in
 * steady use (and its release then skips the waiter test: it closes). */
int cachelock__pool_has_room(const struct cachelock__handle *h);
/* Keep an unlocked handle for later; closes and frees it (or an older one)
 * instead when it cannot be kept. */
void cachelock__pool_put(struct cachelock__handle *h);
/* Close every idle handle; the number closed. */
int cachelock__pool_close_all(void);
/* Close every kept .locks directory; the number closed. */
int cachelock__dirs_close_all(void);
/* The kept .locks directory of p, taken out of the table while the caller
 * uses it (so no other thread closes it meanwhile): 1 with *d filled, or 0.
 * Its descriptor must be checked (fd_is) before use. */
int cachelock__dir_take(const struct cachelock__path *p, struct cachelock__dir *d);
/* Keep d (opened in this process) for the .locks directory of p; closes it
 * instead when an entry exists already. */
void cachelock__dir_put(const struct cachelock__path *p, const struct cachelock__dir *d);
/* Close the kept directory of p, if any: the path led elsewhere. */
void cachelock__dir_forget(const struct cachelock__path *p);

/* ---- inotify instances kept for later waits (watchers.c) ----------------- */

/* A change-notification watch on one lock file, for a timed or
 * asynchronous wait. */
struct cachelock__watch {
    int fd;                         /* pollable descriptor, or -1 */
    int wd;                         /* the watch inside it */
    int wd2;                        /* a second one (fair mode: the
                                       sidecar), or -1 */
    struct cachelock__fileid fd_id; /* identity of fd itself */
    uint64_t epoch;                 /* process epoch when fd was made */
};
/* Start watching path; 0, or a negative code (then waits use the timer). */
int cachelock__watch_start(const char *path, struct cachelock__watch *w);
/* Watch a second path with the same instance (w->wd2); 0 or a negative
 * code (then that path's changes are seen at the re-check). */
int cachelock__watch_add(const char *path, struct cachelock__watch *w);
/* Close the idle instances (cachelock_close_idle); how many. */
int cachelock__watchers_close_all(void);
/* Stop; the instance is kept for the next wait when possible.  In another
 * process than the one that started it (a forked child), only the child's
 * copy is closed: the watch is the parent's.  w->fd = -1. */
void cachelock__watch_stop(struct cachelock__watch *w);

/* ---- one acquire attempt (acquire.c) ------------------------------------- */

/* State shared by the blocking acquire and the wait machine (wait.c). */
struct cachelock__attempt {
    struct cachelock__path path;
    uint64_t hash;                  /* of path.buf */
    cachelock_mode_t mode;
    unsigned flags;                 /* CACHELOCK_F_* */
    struct cachelock__handle *h;    /* the open lock file, or NULL */
    int fresh;                      /* h->fd opened or checked within this
                                       call: no need to check it again */
    int step;                       /* a step of a timed or asynchronous
                                       wait (not a try): a fair attempt
                                       may join the queue and stay in it */
    int fair;                       /* the last try was in fair mode */
};

int cachelock__options_check(const cachelock_options_t *opts, cachelock_options_t *out);
/* Set up a from the path already in a->path. */
void cachelock__attempt_init(struct cachelock__attempt *a);
/* Open if needed and try once (block != 0: wait in the kernel).  Returns 0
 * with *out held, -EWOULDBLOCK when busy (fd stays open for the next try), or
 * a final error (fd closed).  Retries internally when the file was replaced.
 * A fair attempt (fair.c) that is a step of a wait keeps its place in the
 * queue in a->h between calls. */
int cachelock__attempt_try(struct cachelock__attempt *a, int block, cachelock_t **out);
/* Let go of the attempt's open file (never granted, so unlocked). */
void cachelock__attempt_done(struct cachelock__attempt *a);
/* Release a handle that attempt_try granted but that will not be handed
 * out (prune): unlock, close, free. */
void cachelock__attempt_ungrant(struct cachelock__handle *h);

/* ---- filesystems (filesystem.c) --------------------------------------------------- */

/* CACHELOCK_F_LOCAL_ONLY and a lock file on filesystem kind fs, not local:
 * the message, and -EREMOTE. */
int cachelock__fs_refuse(const char *path, int fs);
/* The lock call on h failed with rc (negative): the code to report, with a
 * message that says what it means on h's filesystem (ENOLCK, EOPNOTSUPP,
 * ENOSYS, and NFS's EBADF for an exclusive lock through a read-only
 * descriptor, reported as -EACCES). */
int cachelock__fs_lock_error(int rc, const char *path, const struct cachelock__handle *h,
                             cachelock_mode_t mode);

/* A timed or try acquire (wait.c): the wait machine driven by poll(2). */
int cachelock__wait_acquire(const struct cachelock__path *path, const cachelock_options_t *o,
                            cachelock_t **out);

/* ---- fair mode: the FIFO queue (fair.c) ---------------------------------- */

/* Is this attempt fair: CACHELOCK_F_FAIR, or the cache's policy (read at
 * most every cachelock__policy_recheck_us per process and cache)?  1 or 0. */
int cachelock__fair_wanted(struct cachelock__attempt *a, struct cachelock__handle *h);
/* In cachelock__attempt.flags: never fair, whatever the policy (prune). */
#define ATTEMPT_PLAIN 0x80000000u
/* Lock h's file in fair mode (see fair.c): 0 granted (flock(2) held, the
 * place in the queue given up), -EWOULDBLOCK not yet (with a->step, h may
 * stay queued: H_QUEUED), or an error (with a message; h may still be
 * queued: the caller drops it, which closes it). */
int cachelock__fair_lock(struct cachelock__attempt *a, struct cachelock__handle *h, int block);
/* How long a process trusts what it read of a cache's policy marker;
 * tests set it. */
extern int64_t cachelock__policy_recheck_us;
/* Close h->sfd if it is still the sidecar opened (never a number the
 * program reused). */
void cachelock__sidecar_close(struct cachelock__handle *h);
/* Is anyone queued for (or enqueueing on) the lock file open on fd?  1 yes,
 * 0 no, or -errno.  The fast path and prune look first. */
int cachelock__fair_queued(int fd);
/* cachelock_sources(), and from the same listing the names of the
 * sidecars in .locks ("{name}.fifo", unsorted; free both with
 * cachelock_sources_free()). */
int cachelock__sources_and_sidecars(const char *cache_dir, char ***names, size_t *n,
                                    char ***sidecars, size_t *ns);

/* Byte offsets of the queue's locks on the lock file (fair.c).  Every lock
 * is an OFD byte-range lock far beyond the data (lock files hold none),
 * which flock(2) ignores on local filesystems. */
#define Q_TICKETS ((uint64_t)1 << 60)               /* tickets are below */
#define Q_ALL     ((int64_t)1 << 62)                /* + t: every waiter */
#define Q_WRITERS (Q_ALL + ((int64_t)1 << 60))      /* + t: exclusive ones */
#define Q_MUTEX   (Q_ALL + ((int64_t)1 << 61))      /* the enqueue mutex */
#define Q_SPAN    (Q_MUTEX + 1 - Q_ALL)             /* from Q_ALL: all of it */
#define Q_NONE    UINT64_MAX

/* ---- OS layer (src/unix, src/win) ---------------------------------------- */

/* Open (creating what is missing unless nocreate) the lock file of p,
 * through .locks opened without following a symbolic link.  Returns 0 (or
 * an OPENED_* value below) with *fd, *id and *local, the filesystem's
 * cachelock_fs_kind_t (CACHELOCK_FS_LOCAL is 1; see os_mark_waiting), or a
 * negative code with the message set.  Directories and the lock file it
 * created stay when a later step fails: another process may already use
 * them.  When keep is not NULL, the .locks descriptor is handed over in it
 * (keep->fd -1 if it could not be). */
int cachelock__os_open(struct cachelock__path *p, int nocreate, int *fd,
                       struct cachelock__fileid *id, int *local, struct cachelock__dir *keep);
/* What a successful open returns besides 0: the file could only be
 * opened read-only, because the filesystem is read-only (a read-only
 * mount), or for want of write permission.  flock(2) needs no write
 * access on a local filesystem. */
#define OPENED_RDONLY_FS 1
#define OPENED_RDONLY    2
/* Open an EXISTING lock file of p inside the kept .locks descriptor dfd
 * (never creates: a directory renamed away since must not get new files).
 * 0 or an OPENED_* value, -ENOENT without a message (go the long way), or
 * another code with the message set. */
int cachelock__os_open_in(int dfd, struct cachelock__path *p, int *fd,
                          struct cachelock__fileid *id);
/* The cachelock_fs_kind_t of the directory path (its statfs(2)), or a
 * negative code with the message set (op names the operation). */
int cachelock__os_fs_of(const char *path, const char *op);
/* Forget the filesystem kinds learned so far (os_open learns the kind of
 * each .locks directory once, and keeps it while the lock files it opens
 * there are on the same device). */
void cachelock__os_fs_forget(void);
/* Is fd open read-only?  1 yes, 0 no, -errno when it cannot tell. */
int cachelock__os_fd_readonly(int fd);
/* The identity of an open descriptor; 0, -EBADF when fd is not open (a
 * HANDLE value that is not one, on Windows), or another -errno. */
int cachelock__os_fd_id(int fd, struct cachelock__fileid *id);
/* After a grant on fd (file id): does path name that file now?  1 yes, 0
 * no (removed, being removed, or replaced), negative on error (message
 * set). */
int cachelock__os_path_names(const char *path, int fd, const struct cachelock__fileid *id);
/* May a lock file opened through path be kept open after its release (the
 * pool, kept .locks directories)?  Unix: when path is absolute; Windows:
 * never (see src/win/file.c). */
int cachelock__os_may_keep(const char *path);
/* Waiter marks.  Unix: a timed or asynchronous waiter puts an OFD read
 * lock on one byte far beyond the data (flock(2) and OFD locks are
 * independent on local filesystems), and a releaser that keeps its
 * descriptor open tests for it and closes instead, so that the waiter's
 * inotify watch sees a close.  Only on local filesystems: NFS emulates
 * flock(2) with byte-range locks, which such a mark would conflict with.
 * Windows (CACHELOCK__MARK_WAKES): the mark is the lock request itself, in
 * mode, queued in the kernel, which grants it at the release; os_lock()
 * then collects the grant, and unmarking cancels a request still queued
 * (a lock it was granted meanwhile is given back): no lock ever arrives
 * after the mark is gone.  0 marked (or unmarked), 1 marked and the lock
 * is free now (try again at once), or -errno (wait on the timer alone). */
int cachelock__os_mark_waiting(int fd, cachelock_mode_t mode, int on);
/* What an event loop waits on for the mark of fd (Windows: the request's
 * event, as a HANDLE); NULL where there is none. */
void *cachelock__os_mark_event(int fd);
/* 1 if some other open file holds a waiter mark on fd's file, else 0. */
int cachelock__os_has_waiters(int fd);
/* Lock the descriptor (flock(2); LockFileEx on Windows, where a queued
 * request of os_mark_waiting is collected instead when there is one): 0,
 * -EWOULDBLOCK (only when !block), -EINTR, -errno. */
int cachelock__os_lock(int fd, cachelock_mode_t mode, int block);
/* 0, or -errno: then only closing the descriptor is sure to unlock. */
int cachelock__os_unlock(int fd);
/* Close (Windows: after cancelling a request still queued on it). */
void cachelock__os_close(int fd);
/* Remove the lock file of p, whose lock we hold exclusively through fd
 * (identity id), so that no other file is ever removed.  Unix: it is
 * renamed to a private name first, and removed only if that name is our
 * file.  Windows: deleted through a handle reopened from fd, with POSIX
 * semantics where the filesystem has them.  0, 1 if the path no longer
 * names our file or (Windows) a program that has it open forbids deleting
 * it (nothing removed), or a negative code. */
int cachelock__os_remove_held(struct cachelock__path *p, int fd,
                              const struct cachelock__fileid *id);
/* Milliseconds since the file of fd last changed (its creation, for lock
 * files), or a negative code. */
int64_t cachelock__os_age_ms(int fd);
/* Identity of an existing lock file without creating anything. */
int cachelock__os_stat(const char *path, struct cachelock__fileid *id);
/* The same without a message: 0 or -errno. */
int cachelock__os_stat_quiet(const char *path, struct cachelock__fileid *id);
/* Call fn for every entry name of the directory p->buf[0..len) (a missing
 * one has no entries). */
int cachelock__os_list(struct cachelock__path *p, size_t len,
                       int (*fn)(const char *name, void *ctx), void *ctx);

/* Monotonic clock in microseconds. */
int64_t cachelock__os_now_us(void);

/* The process epoch (fork.c): a nonzero number that changes in every child
 * made by fork(2), _Fork() or clone() without CLONE_VM, whether or not
 * atfork handlers ran, and never takes a value an ancestor had.  Anything
 * recorded under another epoch belongs to an ancestor process. */
uint64_t cachelock__os_process_epoch(void);

/* Change notification (notify.c): a pollable descriptor that becomes
 * readable when a watched lock file is closed, removed or renamed. */
/* A new instance (descriptor 3 or above), or -errno. */
int cachelock__os_notify_open(void);
/* Watch path in instance fd: the watch number, or -errno. */
int cachelock__os_notify_add(int fd, const char *path);
/* Remove watch wd; 0, or -errno (-EINVAL: it is gone already). */
int cachelock__os_notify_remove(int fd, int wd);
/* Is fd still the notification instance whose identity is id?  Every
 * anonymous-inode descriptor (eventfd, epoll, timerfd, ...) has the same
 * fstat(2) identity, so this also asks the instance for its queue size,
 * which only notification instances answer; with empty, the queue must
 * also be empty (an idle instance of ours always is).  1 yes, 0 no (do not
 * touch it), -errno when it cannot tell. */
int cachelock__os_notify_is(int fd, const struct cachelock__fileid *id, int empty);
/* Empty the instance's queue; returns the bytes of events read. */
long cachelock__os_notify_drain(int fd);

/* Sleep in poll(2) on fd (may be -1) for at most timeout_ms; on Windows
 * until the request queued by the mark of lock_fd (may be -1) completes.
 * Returns 0, or -EINTR when a signal handler without SA_RESTART may have
 * run.  A cancellation point. */
int cachelock__os_poll(int fd, int lock_fd, int timeout_ms);

/* Kernel lock table (proc.c): calls fn for every flock(2) lock on id, the
 * file at path.  Windows has no such table: there fn gets every other
 * process that has the file open, with waiting -1.  Returns 0, -ENOSYS
 * when there is no table, or -errno. */
struct cachelock__lockline {
    int pid;
    int waiting;                    /* 1 waits, 0 holds, -1 unknown: has the
                                       file open (Windows) */
    int exclusive;
    unsigned dev_major, dev_minor;
    uint64_t dev;                   /* as fstat(2) gives st_dev */
    uint64_t ino;
};
typedef int (*cachelock__lock_fn)(const struct cachelock__lockline *l, void *ctx);
int cachelock__os_locks_on(const char *path, const struct cachelock__fileid *id,
                           cachelock__lock_fn fn, void *ctx);
/* The same for every flock(2) lock of the system, one reading; -ENOSYS
 * where the system can only be asked file by file. */
int cachelock__os_locks_all(cachelock__lock_fn fn, void *ctx);
/* The command line of pid into buf ("" when unreadable; Windows: the path
 * of its program). */
void cachelock__os_command(int pid, char *buf, size_t size);
/* Does the lock table show the locks of every process of this machine?
 * 1 yes; 0 when it shows only those of this process's PID namespace (a
 * container with its own /proc: the kernel leaves out locks of processes
 * it cannot see); -ENOSYS without a table. */
int cachelock__os_locks_complete(void);
/* Which of the files ids[0..n) (sorted by dev, then ino) process pid, as
 * the lock table numbers it, holds an flock(2) lock on through one of its
 * descriptors: held[i] is set to 1 for those.  0; -ESRCH when there is no
 * such process in the table's namespace; -EACCES when its descriptors
 * cannot be looked at (another user's process): nothing is known. */
int cachelock__os_pid_holds(int pid, const struct cachelock__fileid *ids, size_t n,
                            unsigned char *held);
/* The number in this process's PID namespace of the process that the
 * lock table numbers pid, or 0 when it has none here (it runs in another
 * namespace). */
int cachelock__os_pid_here(int pid);
/* Every process (numbered as the lock table does) whose descriptors hold
 * an flock(2) lock on one of ids[0..n) (sorted by dev, then ino):
 * fn(pid, i, ctx) for each such file i.  0, -ENOSYS without /proc, or what
 * fn returned (negative: stop).  Processes of other users are skipped
 * unless the caller may look at their descriptors. */
int cachelock__os_find_holders(const struct cachelock__fileid *ids, size_t n,
                               int (*fn)(int pid, size_t i, void *ctx), void *ctx);
/* Parse one line of /proc/locks; 0 on success, -EINVAL if malformed or
 * not a flock(2) lock. */
int cachelock__parse_lockline(const char *line, struct cachelock__lockline *out);

/* The fair queue on the OS (unix/queue.c).  A byte-range OFD lock on fd:
 * type 'r' read, 'w' write, 'u' unlock, over [start, start + len); wait:
 * block until granted.  0, -EWOULDBLOCK (busy, without wait), -EINTR (a
 * handler without SA_RESTART ran while it waited), -ENOTSUP (no OFD locks
 * here), or -errno. */
int cachelock__os_range_lock(int fd, int type, int64_t start, int64_t len, int wait);
/* Can this build have the queue at all (1), or is fair mode always
 * refused (0: no OFD locks, or a system whose lock is a byte range itself)?
 * A kernel too old for OFD locks answers 1 and fails the first call. */
int cachelock__os_has_queue(void);
/* Is [start, start + len) write-locked through another open file
 * description?  1 with *at (the first byte of the first such lock the
 * kernel lists), 0 no, or -errno (-ENOTSUP: no OFD locks here). */
int cachelock__os_range_test(int fd, int64_t start, int64_t len, int64_t *at);
/* Is fd open for writing?  1, 0, or -errno. */
int cachelock__os_fd_writable(int fd);
/* Open (creating it) the sidecar of p, "{source}.fifo" in .locks, for
 * reading and writing, never through a symbolic link and never creating
 * .locks: 0 with *fd and *id, or a negative code (no message). */
int cachelock__os_sidecar_open(struct cachelock__path *p, int *fd, struct cachelock__fileid *id);
/* The identity of the sidecar of p: 0, or -errno (-ENOENT: none); no
 * message. */
int cachelock__os_sidecar_id(struct cachelock__path *p, struct cachelock__fileid *id);
/* Remove the sidecar of p if it is still the file id, as
 * cachelock__os_remove_held() removes a lock file: 0, 1 not removed (not
 * that file), or a negative code. */
int cachelock__os_sidecar_remove(struct cachelock__path *p, const struct cachelock__fileid *id);
/* Read or write n bytes at off of fd: the count, or -errno. */
long cachelock__os_pread(int fd, void *buf, size_t n, int64_t off);
long cachelock__os_pwrite(int fd, const void *buf, size_t n, int64_t off);
/* The per-cache policy marker, .locks/.fair, of the cache of p: 1 it
 * exists (fair), 0 not. */
int cachelock__os_policy_read(struct cachelock__path *p);
/* Create (on) or remove (off) the marker; 0 or a negative code with the
 * message set.  Creating it checks that fair mode works there (a local
 * filesystem, writable, OFD locks): -ENOTSUP otherwise. */
int cachelock__os_policy_write(struct cachelock__path *p, int on);

/* ---- system call table ---------------------------------------------------- */

/* struct cachelock__syscalls (the OS header) routes every system call of
 * the acquire, wait, release and prune paths, so tests can inject
 * failures; portable code uses only its malloc. */
extern struct cachelock__syscalls cachelock__sys;
/* Put every entry back to the real call. */
void cachelock__syscalls_reset(void);

#endif /* CACHELOCK_INTERNAL_H */
