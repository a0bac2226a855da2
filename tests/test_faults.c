/*
 * test_faults.c - every entry of the system-call table (internal.h) fails
 * in turn, at its 1st, 2nd, ... call, with each errno that call can give,
 * on every path of the library: blocking acquires (fresh cache, existing
 * cache, kept descriptor, kept .locks directory, descriptors 0 and 1 free,
 * a busy lock), tries, timed and asynchronous waits, releases (kept or
 * closed), cachelock_close_idle(), cachelock_prune() (also of fair mode's
 * sidecars), cachelock_prepare(), cachelock_holders() and
 * cachelock_status(); and in fair mode: the cache's policy read, set and
 * cleared, the fast path, joining and waiting in the queue (blocking and
 * asynchronous, granted and cancelled), and a try of a lock others queue
 * for.
 *
 * Each path has a table below: for (entry, call number, errno) the EXACT
 * outcome, first matching row wins, and a fault that no row covers fails.
 * After every fault:
 *   - the outcome is the table's (the code, and what was reported or kept);
 *   - a failed call left its out pointers NULL and a message that names the
 *     path (and, for a system error, says which);
 *   - a lock reported held is held (a new open file description of the lock
 *     file cannot take it: flock(2) locks belong to open file descriptions,
 *     so that is what another process would see), and after the release
 *     every lock of ours is free;
 *   - the cache holds nothing new but the directories and the lock file an
 *     acquire creates (a failed acquire never removes them: see the header);
 *   - after cachelock_close_idle() no descriptor (lock file, directory,
 *     inotify instance) and no memory is left.
 *
 * FAULTS_TRACE=1 prints every path's calls without a fault; FAULTS_LIST=1
 * prints every fault and its outcome; FAULTS_ONLY=text runs only the paths
 * whose name contains text.
 */
#include "helpers.h"
#include "internal.h"

#include <ctype.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/vfs.h>

#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAVE_SANITIZER_ALLOCATOR 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define HAVE_SANITIZER_ALLOCATOR 1
#endif
#endif
#ifdef HAVE_SANITIZER_ALLOCATOR
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

/* ---- the table and its hooks -------------------------------------------- */

enum entry { E_OPEN, E_OPENAT, E_CLOSE, E_FLOCK, E_FSTAT, E_FSTATAT, E_MKDIR, E_UNLINKAT,
             E_RENAMEAT, E_FCNTL, E_POLL, E_INOTIFY_INIT1, E_INOTIFY_ADD_WATCH,
             E_INOTIFY_RM_WATCH, E_READ, E_IOCTL, E_MALLOC, E_FSTATFS, E_FCHMOD, E_PREAD, E_PWRITE,
             NENT };

/* A new entry in the table must be faulted here too. */
_Static_assert(sizeof(struct cachelock__syscalls) == NENT * sizeof(void (*)(void)),
               "the system-call table changed: add the new entry to test_faults.c");

static const char *const entry_name[NENT] = {
    "open", "openat", "close", "flock", "fstat", "fstatat", "mkdir", "unlinkat", "renameat",
    "fcntl", "poll", "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "read", "ioctl",
    "malloc", "fstatfs", "fchmod", "pread", "pwrite",
};

/* Errnos the test makes true before it reports them.  poll(2) failing
 * with EINTR while a handler without SA_RESTART is installed: the one way
 * a timed wait reports -EINTR.  inotify_rm_watch(2) failing with EINVAL
 * because the watch is in fact gone (its file was deleted): the hook
 * removes it first, so the kernel queues IN_IGNORED as it would. */
#define EINTR_NORESTART 100000
#define EINVAL_GONE 100001

/* The errno a pseudo-errno above stands for. */
static int plain_errno(int err)
{
    return err == EINTR_NORESTART ? EINTR : err == EINVAL_GONE ? EINVAL : err;
}

/* The errnos each call can really give.  Not injected, because they are
 * facts the library rightly acts on and the test cannot make true: EBADF
 * on calls that take a descriptor, and ENOTTY/EINVAL from FIONREAD ("this
 * descriptor is no longer yours": it is left open, which would be a leak
 * of the test's own making); EAGAIN from read(2) (the inotify queue is
 * empty); ENOENT from unlinkat(2) (prune's private name is gone); EINVAL
 * from inotify_rm_watch(2) while the watch in fact remains ("the watch is
 * gone already": the instance is kept for the next wait, and the watch
 * left in it would queue events that make the next wait take the instance
 * for the program's and abandon it, a leak of the test's own making).
 * EINVAL is injected only as EINVAL_GONE, made true first; the kernel
 * gives inotify_rm_watch(2) no other errno. */
static const int errnos[NENT][12] = {
    [E_OPEN] = { EACCES, ENOENT, ENOTDIR, ELOOP, EMFILE, ENFILE, ENOMEM, EINTR },
    [E_OPENAT] = { EACCES, EROFS, EPERM, ENOENT, ENOSPC, EDQUOT, EMFILE, ENFILE, ENOMEM, EINTR,
                   EIO, ELOOP },
    [E_CLOSE] = { EINTR, EIO },
    [E_FLOCK] = { EINTR, EWOULDBLOCK, ENOLCK, EIO },
    [E_FSTAT] = { EIO, ENOMEM, EOVERFLOW },
    [E_FSTATAT] = { ENOENT, ENOTDIR, EACCES, ELOOP, EIO, ENOMEM },
    [E_MKDIR] = { EEXIST, ENOENT, EACCES, EROFS, ENOSPC, EDQUOT, EMLINK, EIO },
    [E_UNLINKAT] = { EACCES, EPERM, EROFS, EBUSY, EIO },
    [E_RENAMEAT] = { ENOENT, EACCES, EPERM, EROFS, EBUSY, ENOSPC, EIO },
    [E_FCNTL] = { EMFILE, EINVAL, ENOLCK, EAGAIN, EINTR },
    [E_POLL] = { EINTR, ENOMEM, EINTR_NORESTART },
    [E_INOTIFY_INIT1] = { EMFILE, ENFILE, ENOMEM },
    [E_INOTIFY_ADD_WATCH] = { ENOSPC, EACCES, ENOENT, ENOMEM },
    [E_INOTIFY_RM_WATCH] = { EINVAL_GONE },
    [E_READ] = { EINTR, EIO },
    [E_IOCTL] = { EIO, EFAULT },
    [E_MALLOC] = { ENOMEM },
    [E_FSTATFS] = { EIO, ENOSYS, ENOMEM, EINTR },
    [E_FCHMOD] = { EPERM, EROFS, EIO },
    [E_PREAD] = { EIO, EINTR },
    [E_PWRITE] = { EIO, ENOSPC, EDQUOT, EINTR },
};

static struct {
    int entry, at, err;         /* fail call `at` of `entry` (-1: none) with err */
    int calls[NENT];            /* calls made since install(), per entry */
    int hit;                    /* the fault was injected */
    int phase;                  /* which API call of a run (for the trace) */
    int trace;                  /* print every call */
    /* Instead of the real poll(2), when set (after the fault check). */
    int (*poll)(struct pollfd *fds, unsigned long n, int timeout);
} F = { .entry = -1 };

static struct cachelock__syscalls real;
static char cache[400];    /* the cache directory of every path */

/* A path as the trace shows it: $C for the cache directory. */
static const char *shown(const char *path, char *buf, size_t size)
{
    size_t n = strlen(cache);
    if (path && n && strncmp(path, cache, n) == 0)
        snprintf(buf, size, "$C%s", path + n);
    else
        snprintf(buf, size, "%s", path ? path : "(null)");
    return buf;
}

/* What a descriptor is, for the trace. */
static const char *fd_shown(int fd, char *buf, size_t size)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        snprintf(target, sizeof target, "fd %d", fd);
    else
        target[n] = '\0';
    return shown(target, buf, size);
}

/* Count a call of e; 1 (errno set) when it is the one to fail. */
__attribute__((format(printf, 2, 3)))
static int hit(enum entry e, const char *fmt, ...)
{
    int n = ++F.calls[e];
    int fail = (int)e == F.entry && n == F.at;
    if (F.trace) {
        char what[PATH_MAX + 64];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        tap_diag("  [%d] %s #%d %s%s", F.phase, entry_name[e], n, what, fail ? "  <- fails" : "");
    }
    if (!fail)
        return 0;
    F.hit = 1;
    errno = plain_errno(F.err);
    return 1;
}

static int h_open(const char *p, int f, ...)
{
    int m = 0;
    char b[PATH_MAX];
    if (f & O_CREAT) {
        va_list ap;
        va_start(ap, f);
        m = va_arg(ap, int);
        va_end(ap);
    }
    if (hit(E_OPEN, "%s%s", shown(p, b, sizeof b), (f & O_PATH) ? " O_PATH" : " O_RDONLY"))
        return -1;
    return real.open(p, f, m);
}

static int h_openat(int d, const char *p, int f, ...)
{
    int m = 0;
    if (f & O_CREAT) {
        va_list ap;
        va_start(ap, f);
        m = va_arg(ap, int);
        va_end(ap);
    }
    if (hit(E_OPENAT, "%s %s%s", p, (f & O_ACCMODE) == O_RDWR ? "O_RDWR" : "O_RDONLY",
            (f & O_CREAT) ? "|O_CREAT" : ""))
        return -1;
    return real.openat(d, p, f, m);
}

/* Linux frees the descriptor whatever close(2) returns: so does the fault. */
static int h_close(int fd)
{
    char b[PATH_MAX];
    if (hit(E_CLOSE, "%s", F.trace ? fd_shown(fd, b, sizeof b) : "")) {
        int e = errno;
        real.close(fd);
        errno = e;
        return -1;
    }
    return real.close(fd);
}

static int h_flock(int fd, int op)
{
    const char *what = (op & ~LOCK_NB) == LOCK_UN ? "LOCK_UN"
                       : (op & LOCK_NB) ? "LOCK_EX|LOCK_NB" : "LOCK_EX (blocking)";
    if ((op & ~LOCK_NB) == LOCK_SH)
        what = (op & LOCK_NB) ? "LOCK_SH|LOCK_NB" : "LOCK_SH (blocking)";
    if (hit(E_FLOCK, "%s", what))
        return -1;
    return real.flock(fd, op);
}

static int h_fstat(int fd, struct stat *st)
{
    char b[PATH_MAX];
    if (hit(E_FSTAT, "%s", F.trace ? fd_shown(fd, b, sizeof b) : ""))
        return -1;
    return real.fstat(fd, st);
}

static int h_fstatat(int d, const char *p, struct stat *st, int f)
{
    char b[PATH_MAX];
    if (hit(E_FSTATAT, "%s%s", d == AT_FDCWD ? "" : ".locks/", shown(p, b, sizeof b)))
        return -1;
    return real.fstatat(d, p, st, f);
}

static int h_mkdir(const char *p, unsigned m)
{
    char b[PATH_MAX];
    if (hit(E_MKDIR, "%s", shown(p, b, sizeof b)))
        return -1;
    return real.mkdir(p, m);
}

static int h_unlinkat(int d, const char *p, int f)
{
    if (hit(E_UNLINKAT, ".locks/%s", p))
        return -1;
    return real.unlinkat(d, p, f);
}

static int h_renameat(int od, const char *op, int nd, const char *np)
{
    if (hit(E_RENAMEAT, ".locks/%s -> .locks/%s", op, np))
        return -1;
    return real.renameat(od, op, nd, np);
}

static int h_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    if (cmd == F_GETFL) {
        if (hit(E_FCNTL, "F_GETFL"))
            return -1;
        return real.fcntl(fd, cmd);
    }
    va_start(ap, cmd);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC) {
        int arg = va_arg(ap, int);
        va_end(ap);
        if (hit(E_FCNTL, "F_DUPFD_CLOEXEC %d", fd))
            return -1;
        return real.fcntl(fd, cmd, arg);
    }
    struct flock *fl = va_arg(ap, struct flock *);
    va_end(ap);
    char where[64];
    if (fl->l_start == (off_t)0x7ffffffffffffffeLL)
        snprintf(where, sizeof where, "mark");
    else if (fl->l_start == Q_MUTEX)
        snprintf(where, sizeof where, "queue mutex");
    else if (fl->l_start >= Q_WRITERS && fl->l_start < Q_MUTEX)
        snprintf(where, sizeof where, "writers+%lld", (long long)(fl->l_start - Q_WRITERS));
    else if (fl->l_start >= Q_ALL)
        snprintf(where, sizeof where, "queue+%lld len %lld", (long long)(fl->l_start - Q_ALL),
                 (long long)fl->l_len);
    else
        snprintf(where, sizeof where, "%lld", (long long)fl->l_start);
    if (hit(E_FCNTL, "%s %s %s", cmd == F_OFD_GETLK ? "F_OFD_GETLK" : cmd == F_OFD_SETLK
                                  ? "F_OFD_SETLK" : cmd == F_OFD_SETLKW ? "F_OFD_SETLKW" : "F_?",
            fl->l_type == F_UNLCK ? "F_UNLCK" : fl->l_type == F_RDLCK ? "F_RDLCK" : "F_WRLCK",
            where))
        return -1;
    return real.fcntl(fd, cmd, fl);
}

static int h_poll(struct pollfd *fds, unsigned long n, int timeout)
{
    if (hit(E_POLL, "%lu fd, %d ms", n, timeout))
        return -1;
    return F.poll ? F.poll(fds, n, timeout) : real.poll(fds, n, timeout);
}

static int h_inotify_init1(int flags)
{
    if (hit(E_INOTIFY_INIT1, "%s", ""))
        return -1;
    return real.inotify_init1(flags);
}

static int h_inotify_add_watch(int fd, const char *p, uint32_t mask)
{
    char b[PATH_MAX];
    if (hit(E_INOTIFY_ADD_WATCH, "%s", shown(p, b, sizeof b)))
        return -1;
    return real.inotify_add_watch(fd, p, mask);
}

/* EINVAL (the only errno injected here, as EINVAL_GONE) says the watch is
 * gone already: so it is made, as deleting the watched file would. */
static int h_inotify_rm_watch(int fd, int wd)
{
    if (hit(E_INOTIFY_RM_WATCH, "%s", "")) {
        int e = errno;
        real.inotify_rm_watch(fd, wd);
        errno = e;
        return -1;
    }
    return real.inotify_rm_watch(fd, wd);
}

static long h_read(int fd, void *buf, size_t n)
{
    if (hit(E_READ, "%s", "inotify"))
        return -1;
    long r = real.read(fd, buf, n);
    if (F.trace)
        tap_diag("      = %ld", r);
    return r;
}

static int h_ioctl(int fd, unsigned long req, ...)
{
    va_list ap;
    va_start(ap, req);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (hit(E_IOCTL, "%s", req == FIONREAD ? "FIONREAD" : "?"))
        return -1;
    return real.ioctl(fd, req, arg);
}

static void *h_malloc(size_t n)
{
    if (hit(E_MALLOC, "%zu bytes", n))
        return NULL;
    return real.malloc(n);
}

static int h_fstatfs(int fd, struct statfs *st)
{
    if (hit(E_FSTATFS, "%s", ""))
        return -1;
    return real.fstatfs(fd, st);
}

static int h_fchmod(int fd, unsigned mode)
{
    char b[PATH_MAX];
    if (hit(E_FCHMOD, "%s %04o", F.trace ? fd_shown(fd, b, sizeof b) : "", mode))
        return -1;
    return real.fchmod(fd, mode);
}

static long h_pread(int fd, void *buf, size_t n, int64_t off)
{
    char b[PATH_MAX];
    if (hit(E_PREAD, "%s %zu at %lld", F.trace ? fd_shown(fd, b, sizeof b) : "", n, (long long)off))
        return -1;
    return real.pread(fd, buf, n, off);
}

static long h_pwrite(int fd, const void *buf, size_t n, int64_t off)
{
    char b[PATH_MAX];
    if (hit(E_PWRITE, "%s %zu at %lld", F.trace ? fd_shown(fd, b, sizeof b) : "", n, (long long)off))
        return -1;
    return real.pwrite(fd, buf, n, off);
}

/* Route every entry through the hooks, counting; fail one call if entry
 * is not -1. */
static void install(int entry, int at, int err)
{
    cachelock__syscalls_reset();
    real = cachelock__sys;
    F.entry = entry;
    F.at = at;
    F.err = err;
    memset(F.calls, 0, sizeof F.calls);
    F.hit = 0;
    F.phase = 0;
    cachelock__sys.open = h_open;
    cachelock__sys.openat = h_openat;
    cachelock__sys.close = h_close;
    cachelock__sys.flock = h_flock;
    cachelock__sys.fstat = h_fstat;
    cachelock__sys.fstatat = h_fstatat;
    cachelock__sys.mkdir = h_mkdir;
    cachelock__sys.unlinkat = h_unlinkat;
    cachelock__sys.renameat = h_renameat;
    cachelock__sys.fcntl = h_fcntl;
    cachelock__sys.poll = h_poll;
    cachelock__sys.inotify_init1 = h_inotify_init1;
    cachelock__sys.inotify_add_watch = h_inotify_add_watch;
    cachelock__sys.inotify_rm_watch = h_inotify_rm_watch;
    cachelock__sys.read = h_read;
    cachelock__sys.ioctl = h_ioctl;
    cachelock__sys.malloc = h_malloc;
    cachelock__sys.fstatfs = h_fstatfs;
    cachelock__sys.fchmod = h_fchmod;
    cachelock__sys.pread = h_pread;
    cachelock__sys.pwrite = h_pwrite;
}

static void uninstall(void)
{
    cachelock__syscalls_reset();
    F.entry = -1;
}

/* ---- names of codes ------------------------------------------------------ */

static const char *errno_name(int e)
{
    static const struct { int e; const char *name; } names[] = {
        { EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EINTR, "EINTR" }, { EIO, "EIO" },
        { ENXIO, "ENXIO" }, { EBADF, "EBADF" }, { EWOULDBLOCK, "EWOULDBLOCK" },
        { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" },
        { EEXIST, "EEXIST" }, { ENOTDIR, "ENOTDIR" }, { EISDIR, "EISDIR" },
        { EINVAL, "EINVAL" }, { ENFILE, "ENFILE" }, { EMFILE, "EMFILE" },
        { ENOTTY, "ENOTTY" }, { ENOSPC, "ENOSPC" }, { EROFS, "EROFS" }, { EMLINK, "EMLINK" },
        { EDEADLK, "EDEADLK" }, { ENOLCK, "ENOLCK" }, { ENOSYS, "ENOSYS" }, { ELOOP, "ELOOP" },
        { EOVERFLOW, "EOVERFLOW" }, { EDQUOT, "EDQUOT" }, { ESTALE, "ESTALE" },
        { ETIMEDOUT, "ETIMEDOUT" }, { EALREADY, "EALREADY" }, { EINPROGRESS, "EINPROGRESS" },
        { EINTR_NORESTART, "EINTR+handler" }, { EINVAL_GONE, "EINVAL+gone" },
        { ENOTSUP, "ENOTSUP" },
    };
    static char other[16];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == e)
            return names[i].name;
    snprintf(other, sizeof other, "%d", e);
    return other;
}

/* "0", "-EIO", or a count. */
static void code_text(char *buf, size_t size, int rc)
{
    if (rc < 0)
        snprintf(buf, size, "-%s", errno_name(-rc));
    else
        snprintf(buf, size, "%d", rc);
}

/* ---- what the tests look at ---------------------------------------------- */


__attribute__((unused)) static int on_valgrind(void)
{
    static int known = -1;
    if (known < 0) {
#ifdef RUNNING_ON_VALGRIND
        known = RUNNING_ON_VALGRIND ? 1 : 0;
#else
        const char *p = getenv("LD_PRELOAD");
        known = p && strstr(p, "vgpreload") != NULL;
#endif
    }
    return known;
}

/* Blocks in use on the heap.  mallinfo2() will not do: glibc keeps freed
 * blocks in per-thread caches that it counts as in use, so its figure moves
 * by hundreds of bytes with nothing leaked.  The sanitizers' allocators can
 * say exactly; otherwise every allocation of the process (the library's,
 * libc's own) goes through the counting wrappers below, which glibc allows
 * ("Replacing malloc" in its manual), over its own allocator. */
#ifdef HAVE_SANITIZER_ALLOCATOR
static long heap_blocks(void)
{
    return (long)__sanitizer_get_current_allocated_bytes();
}
#elif !defined(__GLIBC__)
static long heap_blocks(void)
{
    return 0;       /* no way to count: only descriptors are checked */
}
#else
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t align, size_t n);
void __libc_free(void *p);

static long live_blocks;

static void *counted(void *p)
{
    if (p)
        __atomic_add_fetch(&live_blocks, 1, __ATOMIC_RELAXED);
    return p;
}

void *malloc(size_t n)
{
    return counted(__libc_malloc(n));
}

void *calloc(size_t n, size_t size)
{
    return counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t n)
{
    if (!p)
        return malloc(n);
    if (n == 0) {
        free(p);
        return NULL;
    }
    return __libc_realloc(p, n);
}

void *aligned_alloc(size_t align, size_t n)
{
    return counted(__libc_memalign(align, n));
}

int posix_memalign(void **out, size_t align, size_t n)
{
    void *p = counted(__libc_memalign(align, n));
    if (!p)
        return ENOMEM;
    *out = p;
    return 0;
}

void free(void *p)
{
    if (p)
        __atomic_sub_fetch(&live_blocks, 1, __ATOMIC_RELAXED);
    __libc_free(p);
}

static long heap_blocks(void)
{
    if (on_valgrind()) {
        /* valgrind replaces these wrappers too; memcheck counts the
         * blocks (without its header, its leak check at exit is all). */
        unsigned long leaked = 0, dubious = 0, reachable = 0, suppressed = 0;
#ifdef VALGRIND_COUNT_LEAK_BLOCKS
        VALGRIND_DO_QUICK_LEAK_CHECK;
        VALGRIND_COUNT_LEAK_BLOCKS(leaked, dubious, reachable, suppressed);
#endif
        return (long)(leaked + dubious + reachable + suppressed);
    }
    return __atomic_load_n(&live_blocks, __ATOMIC_RELAXED);
}
#endif

#ifdef HAVE_SANITIZER_ALLOCATOR
#define HEAP_UNIT "bytes"
#else
#define HEAP_UNIT "blocks"
#endif

static const char *lock_path(const char *source)
{
    static char bufs[4][PATH_MAX];
    static int k;
    char *b = bufs[k++ & 3];
    snprintf(b, PATH_MAX, "%s/.locks/%s.lock", cache, source);
    return b;
}

/* Is the lock of source held?  A new open file description tries it:
 * flock(2) locks belong to descriptions, so this sees exactly what another
 * process would (and costs no fork, which valgrind makes slow). */
static int held_by_someone(const char *source)
{
    int fd = open(lock_path(source), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    int busy;
    if (fd < 0)
        return 0;
    busy = flock(fd, LOCK_EX | LOCK_NB) < 0;
    close(fd);
    return busy;
}

/* Every file and directory below the case's directory, sorted, one a line. */
static char *tree_lines[64];
static int tree_n;

static int tree_add(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    if (tree_n < 64)
        tree_lines[tree_n++] = strdup(p + strlen(tap_dir));
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void snapshot(char *out, size_t size)
{
    size_t at = 0;
    tree_n = 0;
    nftw(tap_dir, tree_add, 16, FTW_PHYS);
    qsort(tree_lines, (size_t)tree_n, sizeof tree_lines[0], by_str);
    out[0] = '\0';
    for (int i = 0; i < tree_n; i++) {
        int n = snprintf(out + at, size - at, "%s\n", tree_lines[i]);
        if (n > 0 && (size_t)n < size - at)
            at += (size_t)n;
        free(tree_lines[i]);
    }
}

/* Is line (without its newline) one of the lines of list? */
static int has_line(const char *list, const char *line, size_t n)
{
    for (const char *p = list; *p; ) {
        size_t m = strcspn(p, "\n");
        if (m == n && memcmp(p, line, n) == 0)
            return 1;
        p += m + (p[m] == '\n');
    }
    return 0;
}

/* The lines of a that are not in b, appended to out. */
static void lines_missing(const char *a, const char *b, char *out, size_t size)
{
    for (const char *p = a; *p; ) {
        size_t m = strcspn(p, "\n");
        if (!has_line(b, p, m)) {
            size_t at = strlen(out);
            snprintf(out + at, size - at, " %.*s", (int)m, p);
        }
        p += m + (p[m] == '\n');
    }
}

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)ftw;
    if (flag == FTW_DP)
        rmdir(p);
    else
        unlink(p);
    return 0;
}

static void remove_cache(void)
{
    nftw(cache, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a holder in another process ----------------------------------------- */

/* It takes the lock with plain flock(2), like flock(1), so that the library
 * under test is not involved on its side.  Commands: 'c' close (reply
 * 'C'), 'l' open and lock (reply 'L'), 'w' close as soon as our process is
 * blocked in flock(2) on the file, until 'x' (reply 'R' released, 'N'
 * not). */
static struct {
    pid_t pid;
    int to, from;
    const char *source;
    int holds;
} holder = { -1, -1, -1, NULL, 0 };

static void holder_child(const char *path, int cmd, int rep)
{
    int fd = -1;
    char c;
    for (;;) {
        if (fd < 0) {
            fd = open(path, O_RDWR | O_CLOEXEC);
            if (fd < 0 || flock(fd, LOCK_EX) < 0)
                _exit(3);
            send_byte(rep, 'L');
        }
        ssize_t r;
        do r = read(cmd, &c, 1); while (r < 0 && errno == EINTR);
        if (r != 1)
            _exit(0);
        if (c == 'c') {
            close(fd);
            fd = -1;
            send_byte(rep, 'C');
            do r = read(cmd, &c, 1); while (r < 0 && errno == EINTR);
            if (r != 1)
                _exit(0);
            /* 'l' comes next */
        } else if (c == 'w') {
            pid_t parent = getppid();
            for (;;) {
                struct pollfd p = { cmd, POLLIN, 0 };
                if (poll(&p, 1, 1) == 1)
                    break;
                if (blocked_in_flock(parent)) {
                    close(fd);
                    fd = -2;
                    break;
                }
            }
            if (read(cmd, &c, 1) != 1)
                _exit(0);
            send_byte(rep, fd == -2 ? 'R' : 'N');
            if (fd == -2) {
                if (read(cmd, &c, 1) != 1)
                    _exit(0);
                fd = -1;    /* 'l': lock again */
            }
        }
    }
}

static void holder_start(const char *source)
{
    int cmd[2], rep[2];
    CHECK(pipe2(cmd, O_CLOEXEC) == 0 && pipe2(rep, O_CLOEXEC) == 0);
    holder.pid = fork();
    CHECK(holder.pid >= 0);
    if (holder.pid == 0) {
        close(cmd[1]);
        close(rep[0]);
        holder_child(lock_path(source), cmd[0], rep[1]);
        _exit(0);
    }
    close(cmd[0]);
    close(rep[1]);
    holder.to = cmd[1];
    holder.from = rep[0];
    holder.source = source;
    CHECK_EQ(recv_byte(holder.from), 'L');
    holder.holds = 1;
}

/* Let go (close), for a wait to be granted. */
static void holder_close(void)
{
    send_byte(holder.to, 'c');
    CHECK_EQ(recv_byte(holder.from), 'C');
    holder.holds = 0;
}

/* Take the lock again after holder_close() or a 'w' that released. */
static void holder_lock(void)
{
    if (holder.holds)
        return;
    send_byte(holder.to, 'l');
    CHECK_EQ(recv_byte(holder.from), 'L');
    holder.holds = 1;
}

/* ---- paths --------------------------------------------------------------- */

/* One run of a path under a fault. */
struct run {
    int rc;                 /* what the call returned (async: the last step) */
    char what[200];         /* the outcome as the tables write it */
    cachelock_t *lock;      /* a lock the run got, released by the harness */
    int failed;             /* the call failed: out NULL and a message */
    int out_null;           /* its out pointers were NULL */
    int path_msg;           /* a failure reported through prune's callback
                               named the path (-1: none reported) */
    int stray_out;          /* a step that granted nothing set *out */
    int bad_wait_fd;        /* cachelock_wait_fd() gave neither -1 nor 3+ */
};

/* An expectation: for call numbers `calls` of `entry` ("1", "2,4", "3-",
 * "*") failing with one of errs (none listed: any), the outcome.  "ERR" in
 * it stands for the injected code.  " kept=N" at the end: the library keeps
 * N descriptors afterwards (after the release of a lock the run got, before
 * cachelock_close_idle()); without it, what is kept is not checked. */
struct expect {
    int entry;
    const char *calls;
    int errs[4];
    const char *outcome;
    const char *why;
};

static int row_has(const struct expect *x, int err)
{
    if (!x->errs[0])
        return 1;
    for (int i = 0; i < 4 && x->errs[i]; i++)
        if (x->errs[i] == err)
            return 1;
    return 0;
}

struct path {
    const char *name;
    const char *baseline;           /* the outcome without a fault */
    void (*init)(void);             /* once: the cache, a holder */
    void (*setup)(void);            /* before every run */
    void (*run)(struct run *r);
    const struct expect *table;
    size_t rows;
    const char *may_add;            /* new in the cache after a run */
    int may_remove_a;               /* prune: a.lock may go */
    const char *may_remove;         /* gone from the cache after a run:
                                       suffixes as in may_add */
};

#define BOGUS ((void *)&F)

static const char *const sources[] = { "s", "t", "a", "b" };

static void setup_nothing(void)
{
}

static void prepare(const char *source)
{
    CHECK_EQ(cachelock_prepare(cache, source, 0), 0);
}

static void acquire_release(const char *source)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(cache, source, &lock), 0);
    cachelock_release(lock);
}

static void got(struct run *r, int rc, cachelock_t *lock)
{
    r->rc = rc;
    code_text(r->what, sizeof r->what, rc);
    if (rc == 0) {
        r->lock = lock;
    } else {
        r->failed = 1;
        r->out_null = lock == NULL;
    }
}

/* blocking acquires */

static void init_existing(void)
{
    prepare("s");
}

static void run_acquire(struct run *r)
{
    cachelock_t *lock = BOGUS;
    int rc = cachelock_acquire(cache, "s", &lock);
    got(r, rc, lock);
}

static void setup_fresh(void)
{
    remove_cache();
}

/* The case's directory is set-group-ID, as a cache directory shared with a
 * group is, and the umask is 022, which would shut the group out. */
static void init_shared(void)
{
    CHECK(chmod(tap_dir, 02775) == 0);
    umask(022);
}

static void setup_kept_s(void)
{
    acquire_release("s");
}

static void init_kept_dir(void)
{
    prepare("s");
    prepare("t");
}

static void setup_kept_dir(void)
{
    acquire_release("t");
}

static void setup_only_dir_kept(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(cache, "t", &lock), 0);
    CHECK(cachelock_fd(lock) >= 3);     /* exposed: closed at the release */
    cachelock_release(lock);
}

static void init_low_fds(void)
{
    /* The next descriptors the kernel gives are 0 and 1: the library must
     * move its own above 2. */
    prepare("s");
    close(0);
    close(1);
}

static void init_busy_s(void)
{
    prepare("s");
    holder_start("s");
}

static void run_acquire_busy(struct run *r)
{
    cachelock_t *lock = BOGUS;
    send_byte(holder.to, 'w');
    int rc = cachelock_acquire(cache, "s", &lock);
    send_byte(holder.to, 'x');
    if (recv_byte(holder.from) == 'R')
        holder.holds = 0;
    got(r, rc, lock);
}

/* tries, timed and asynchronous waits */

static void run_try(struct run *r)
{
    cachelock_t *lock = BOGUS;
    int rc = cachelock_try_acquire(cache, "s", &lock);
    got(r, rc, lock);
}

#define TIMEOUT_MS 30

/* A timed wait that times out makes the same calls every time: its first
 * sleep ends at once, as if the re-check timer had run out, and the next
 * one lasts until just past the deadline, as if the process had not been
 * scheduled for that long.  (Real sleeps would make the number of steps
 * depend on the speed of the machine.) */
static int polls;
static int64_t wait_start_us;

static int poll_until_deadline(struct pollfd *fds, unsigned long n, int timeout)
{
    (void)timeout;
    if (++polls == 1)
        return 0;
    int64_t left = wait_start_us + (TIMEOUT_MS + 1) * 1000 - now_us();
    return real.poll(fds, n, left > 0 ? (int)((left + 999) / 1000) : 0);
}

static void setup_timed(void)
{
    polls = 0;
}

static void run_timed(struct run *r)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = BOGUS;
    o.timeout_ms = TIMEOUT_MS;
    F.poll = poll_until_deadline;
    wait_start_us = now_us();
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    F.poll = NULL;
    got(r, rc, lock);
    int64_t ms = (now_us() - wait_start_us) / 1000;
    if (r->rc == -ETIMEDOUT && ms < TIMEOUT_MS)
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what),
                 " after only %lld ms", (long long)ms);
}

/* The holder lets go at the first sleep from the second on; sleeps before
 * that return at once, as if the re-check timer had run out. */

static int poll_releasing(struct pollfd *fds, unsigned long n, int timeout)
{
    if (holder.holds && ++polls < 2)
        return 0;
    if (holder.holds)
        holder_close();
    return real.poll(fds, n, timeout);
}

static void setup_released_wait(void)
{
    holder_lock();
    polls = 0;
}

static void run_timed_released(struct run *r)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = BOGUS;
    o.timeout_ms = 10000;
    F.poll = poll_releasing;
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    got(r, rc, lock);
    F.poll = NULL;
}

static void setup_holder_locks(void)
{
    holder_lock();
}

/* start, steps, free; the codes in a row.  With release, the holder lets
 * go before the last step. */
static void run_async(struct run *r, int steps, int release)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w = BOGUS;
    cachelock_t *lock = BOGUS;
    char code[32];
    int rc = cachelock_wait_start(cache, "s", &o, &w);
    code_text(r->what, sizeof r->what, rc);
    r->rc = rc;
    if (rc < 0) {
        r->failed = 1;
        r->out_null = w == NULL;
        return;
    }
    for (int i = 1; i <= steps; i++) {
        if (release && i == steps && holder.holds)
            holder_close();
        F.phase = i;
        lock = BOGUS;
        rc = cachelock_wait_step(w, &lock);
        code_text(code, sizeof code, rc);
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what), " %s", code);
        r->rc = rc;
        if (rc == 0)
            r->lock = lock;
        else if (lock != NULL)
            r->stray_out = 1;
        /* A descriptor to poll, or -1: never an error code. */
        int fd = cachelock_wait_fd(w);
        if (fd < -1 || (fd >= 0 && fd < 3))
            r->bad_wait_fd = 1;
    }
    if (rc != 0 && rc != -EINPROGRESS) {
        r->failed = 1;
        r->out_null = lock == NULL;
    }
    F.phase = steps + 1;
    cachelock_wait_free(w);
}

static void run_async_cancelled(struct run *r)
{
    run_async(r, 2, 0);
}

static void run_async_granted(struct run *r)
{
    run_async(r, 3, 1);
}

/* fair mode */

static void init_fair_policy(void)
{
    prepare("s");
    CHECK_EQ(cachelock_set_fair_policy(cache, 1), 0);
}

static void setup_policy_reread(void)
{
    /* Read the policy marker at every acquire, so that its look-up is
     * in every run. */
    cachelock__policy_recheck_us = 0;
}

static void run_fair_acquire(struct run *r)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = BOGUS;
    o.flags = CACHELOCK_F_FAIR;
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    got(r, rc, lock);
}

static void run_fair_acquire_busy(struct run *r)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = BOGUS;
    o.flags = CACHELOCK_F_FAIR;
    send_byte(holder.to, 'w');
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    send_byte(holder.to, 'x');
    if (recv_byte(holder.from) == 'R')
        holder.holds = 0;
    got(r, rc, lock);
}

/* Another open file description holds a place in s's queue, while the
 * lock itself is free: a fair try must not take it. */
static int queued_fd = -1;

static void init_queued_s(void)
{
    struct flock fl;
    prepare("s");
    queued_fd = open(lock_path("s"), O_RDWR | O_CLOEXEC);
    CHECK(queued_fd >= 0);
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = Q_ALL + 3;
    fl.l_len = 1;
    CHECK(fcntl(queued_fd, F_OFD_SETLK, &fl) == 0);
}

static void run_fair_try(struct run *r)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = BOGUS;
    o.flags = CACHELOCK_F_FAIR;
    o.timeout_ms = 0;
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    got(r, rc, lock);
}

/* As run_async, in fair mode. */
static void run_fair_async(struct run *r, int steps, int release)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w = BOGUS;
    cachelock_t *lock = BOGUS;
    char code[32];
    o.flags = CACHELOCK_F_FAIR;
    int rc = cachelock_wait_start(cache, "s", &o, &w);
    code_text(r->what, sizeof r->what, rc);
    r->rc = rc;
    if (rc < 0) {
        r->failed = 1;
        r->out_null = w == NULL;
        return;
    }
    for (int i = 1; i <= steps; i++) {
        if (release && i == steps && holder.holds)
            holder_close();
        F.phase = i;
        lock = BOGUS;
        rc = cachelock_wait_step(w, &lock);
        code_text(code, sizeof code, rc);
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what), " %s", code);
        r->rc = rc;
        if (rc == 0)
            r->lock = lock;
        else if (lock != NULL)
            r->stray_out = 1;
    }
    if (rc != 0 && rc != -EINPROGRESS) {
        r->failed = 1;
        r->out_null = lock == NULL;
    }
    F.phase = steps + 1;
    cachelock_wait_free(w);
}

static void run_fair_async_cancelled(struct run *r)
{
    run_fair_async(r, 2, 0);
}

static void run_fair_async_granted(struct run *r)
{
    run_fair_async(r, 3, 1);
}

static void run_policy_on(struct run *r)
{
    r->rc = cachelock_set_fair_policy(cache, 1);
    code_text(r->what, sizeof r->what, r->rc);
    r->failed = r->rc < 0;
    r->out_null = 1;
}

static void run_policy_off(struct run *r)
{
    r->rc = cachelock_set_fair_policy(cache, 0);
    code_text(r->what, sizeof r->what, r->rc);
    r->failed = r->rc < 0;
    r->out_null = 1;
}

static void setup_policy_on(void)
{
    CHECK_EQ(cachelock_set_fair_policy(cache, 1), 0);
}

/* prune of a with its sidecar, and of o's sidecar, whose lock file is
 * gone (b held, as in the other prune paths). */
static void setup_a_sidecars(void)
{
    int fd;
    prepare("a");
    char p[PATH_MAX];
    snprintf(p, sizeof p, "%s/.locks/a.fifo", cache);
    fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    CHECK(fd >= 0);
    close(fd);
    snprintf(p, sizeof p, "%s/.locks/o.fifo", cache);
    fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    CHECK(fd >= 0);
    close(fd);
}

/* releases */

static cachelock_t *held;
static int marker = -1;

static void setup_held(void)
{
    CHECK_EQ(cachelock_acquire(cache, "s", &held), 0);
}

/* A waiter's mark, as wait.c puts it: an OFD read lock far beyond the data. */
static void setup_held_waiter_marked(void)
{
    struct flock fl;
    setup_held();
    marker = open(lock_path("s"), O_RDONLY | O_CLOEXEC);
    CHECK(marker >= 0);
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = (off_t)0x7ffffffffffffffeLL;
    fl.l_len = 1;
    CHECK(fcntl(marker, F_OFD_SETLK, &fl) == 0);
}

static void setup_held_exposed(void)
{
    setup_held();
    CHECK(cachelock_fd(held) >= 3);
}

static void run_release(struct run *r)
{
    cachelock_release(held);
    held = NULL;
    r->rc = 0;
    snprintf(r->what, sizeof r->what, "released");
    if (marker >= 0) {
        close(marker);
        marker = -1;
    }
}

/* cachelock_close_idle(): a kept lock file, its kept .locks and an idle
 * inotify instance (of an asynchronous wait on t, held meanwhile through
 * another open file description). */
static void setup_all_kept(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w;
    cachelock_t *lock;
    int fd = open(lock_path("t"), O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    CHECK_EQ(cachelock_wait_start(cache, "t", &o, &w), 0);
    CHECK_EQ(cachelock_wait_step(w, &lock), -EINPROGRESS);
    cachelock_wait_free(w);
    close(fd);
    acquire_release("s");
}

static void run_close_idle(struct run *r)
{
    r->rc = cachelock_close_idle();
    code_text(r->what, sizeof r->what, r->rc);
}

/* prune, holders, status: a.lock free, b.lock held by the holder */

static void init_a_b(void)
{
    prepare("a");
    prepare("b");
    holder_start("b");
}

static void setup_a(void)
{
    prepare("a");
}

static const char *const status_name[] = { "removed", "busy", "recent", "failed" };

struct report {
    char a[64], b[64];
    int path_msg;
};

static void report(const char *source, cachelock_prune_status_t status, int err, void *ctx)
{
    struct report *rep = ctx;
    char *into = strcmp(source, "a") == 0 ? rep->a : strcmp(source, "b") == 0 ? rep->b : NULL;
    char code[32];
    if (!into)
        return;
    code_text(code, sizeof code, err);
    /* busy goes with -EWOULDBLOCK, removed and recent with 0 */
    int usual = status == CACHELOCK_PRUNE_BUSY ? err == -EWOULDBLOCK : err == 0;
    if (status == CACHELOCK_PRUNE_FAILED) {
        snprintf(into, 64, "failed(%s)", code);
        if (!strstr(cachelock_errmsg(), cache))
            rep->path_msg = 0;
    } else if (usual) {
        snprintf(into, 64, "%s", status_name[status]);
    } else {
        snprintf(into, 64, "%s(%s)", status_name[status], code);
    }
}

static void run_prune_with(struct run *r, long older_than_ms)
{
    struct report rep = { "-", "-", 1 };
    r->rc = cachelock_prune(cache, older_than_ms, 0, report, &rep);
    if (r->rc < 0) {
        r->failed = 1;
        r->out_null = 1;
        code_text(r->what, sizeof r->what, r->rc);
    } else {
        snprintf(r->what, sizeof r->what, "%d a=%s b=%s", r->rc, rep.a, rep.b);
    }
    r->path_msg = rep.path_msg;
}

static void run_prune(struct run *r)
{
    run_prune_with(r, 0);
}

static void run_prune_recent(struct run *r)
{
    run_prune_with(r, 3600L * 1000);
}

static void run_prepare(struct run *r)
{
    r->rc = cachelock_prepare(cache, "s", 0);
    code_text(r->what, sizeof r->what, r->rc);
    r->failed = r->rc < 0;
    r->out_null = 1;
}

static void run_holders(struct run *r)
{
    cachelock_holder_t *v = BOGUS;
    size_t n = 99;
    r->rc = cachelock_holders(cache, "b", &v, &n);
    if (r->rc < 0) {
        r->failed = 1;
        r->out_null = v == NULL && n == 0;
        code_text(r->what, sizeof r->what, r->rc);
    } else {
        snprintf(r->what, sizeof r->what, "%d n=%zu", r->rc, n);
    }
    if (r->rc == 0)
        free(v);
}

static void run_status(struct run *r)
{
    cachelock_source_status_t *st = BOGUS;
    size_t n = 99;
    r->rc = cachelock_status(cache, &st, &n);
    if (r->rc < 0) {
        r->failed = 1;
        r->out_null = st == NULL && n == 0;
        code_text(r->what, sizeof r->what, r->rc);
        return;
    }
    snprintf(r->what, sizeof r->what, "%d", r->rc);
    for (size_t i = 0; i < n; i++)
        snprintf(r->what + strlen(r->what), sizeof r->what - strlen(r->what), " %s=%zu",
                 st[i].source, st[i].count);
    cachelock_status_free(st, n);
}

/* ---- the harness --------------------------------------------------------- */

static int calls_match(const char *spec, int at)
{
    if (strcmp(spec, "*") == 0)
        return 1;
    for (const char *p = spec; *p; ) {
        char *end;
        long lo = strtol(p, &end, 10), hi = lo;
        if (*end == '-') {
            p = end + 1;
            hi = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : 1000000;
            if (!isdigit((unsigned char)*p))
                end = (char *)p;
        }
        if (at >= lo && at <= hi)
            return 1;
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p)
            break;
    }
    return 0;
}

/* "ERR" in the row's outcome, spelled out for err. */
static void expand(const char *tmpl, int err, char *out, size_t size)
{
    const char *e = errno_name(plain_errno(err));
    size_t at = 0;
    out[0] = '\0';
    for (const char *p = tmpl; *p && at + 1 < size; ) {
        if (strncmp(p, "ERR", 3) == 0) {
            at += (size_t)snprintf(out + at, size - at, "%s", e);
            p += 3;
        } else {
            out[at++] = *p++;
            out[at] = '\0';
        }
    }
}

/* Does the outcome match the expectation?  Kept descriptors count only when
 * the expectation says how many. */
static int outcome_is(const char *got, const char *want)
{
    if (strstr(want, " kept="))
        return strcmp(got, want) == 0;
    const char *k = strstr(got, " kept=");
    size_t n = k ? (size_t)(k - got) : strlen(got);
    return strlen(want) == n && strncmp(got, want, n) == 0;
}

static int listing;

struct tally {
    int faults, failures;
    int probe;                  /* follow every fault with a wait on s */
    int base_fds;
    long base_heap;
    unsigned char *row_used;
    const char *note;           /* the BUG note of the current row */
};

__attribute__((format(printf, 5, 6)))
static void bad(struct tally *t, const struct path *p, const char *fault, const char *got,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tap_diag("%s: %s -> %s: %s%s%s%s", p->name, fault, got, msg, t->note ? " [" : "",
             t->note ? t->note : "", t->note ? "]" : "");
    t->failures++;
}

static void on_signal(int sig)
{
    (void)sig;
}

/* The first row of p's table for call `at` of entry failing with err. */
static const struct expect *row_for(const struct path *p, int entry, int at, int err)
{
    for (size_t i = 0; i < p->rows; i++) {
        const struct expect *x = &p->table[i];
        if (x->entry == entry && calls_match(x->calls, at) && row_has(x, err))
            return x;
    }
    return NULL;
}

/* Nothing new in the cache but what p may add, nothing gone but a.lock
 * when prune says it removed it. */
static void check_tree(struct tally *t, const struct path *p, const char *fault,
                       const char *got, const char *before, const char *after)
{
    char added[2048] = "", removed[2048] = "", extra[2048] = "", gone[2048] = "", a_lock[700];
    const char *rel = cache + strlen(tap_dir);
    int a_gone = 0, a_removed = strstr(got, "a=removed") != NULL;

    lines_missing(after, before, added, sizeof added);
    lines_missing(before, after, removed, sizeof removed);
    snprintf(a_lock, sizeof a_lock, "%s/.locks/a.lock", rel);
    /* Lines of list that are not the cache directory followed by one of
     * the suffixes in allowed (separated by '|'), appended to out; a.lock
     * is allowed when prune may remove it and says it did. */
    for (int pass = 0; pass < 2; pass++) {
        const char *list = pass ? removed : added;
        const char *allowed = pass ? p->may_remove : p->may_add;
        char *out = pass ? gone : extra;
        for (const char *q = list; *q; ) {
            size_t m = strcspn(++q, " ");
            int ok = 0;
            if (pass && m == strlen(a_lock) && strncmp(q, a_lock, m) == 0) {
                a_gone = 1;
                ok = p->may_remove_a && a_removed;
            }
            for (const char *s = allowed; s && !ok; ) {
                size_t k = strcspn(s, "|");
                ok = m == strlen(rel) + k && strncmp(q, rel, strlen(rel)) == 0 &&
                     strncmp(q + strlen(rel), s, k) == 0;
                s = s[k] ? s + k + 1 : NULL;
            }
            if (!ok)
                snprintf(out + strlen(out), 2048 - strlen(out), " %.*s", (int)m, q);
            q += m;
        }
    }
    if (*extra)
        bad(t, p, fault, got, "new in the cache:%s", extra);
    if (*gone)
        bad(t, p, fault, got, "gone from the cache:%s", gone);
    if (p->may_remove_a && a_removed && !a_gone)
        bad(t, p, fault, got, "a reported removed, but a.lock is still there");
}

/* Run the path once with `entry` failing at call `at` with err (entry -1:
 * no fault) and check everything; returns whether the fault was reached. */
static int one(const struct path *p, struct tally *t, int entry, int at, int err)
{
    struct run r;
    char before[8192], after[8192], fault[96], got[256], msg[PATH_MAX + 256];
    const struct expect *row = NULL;
    struct sigaction old_sa;
    int code = plain_errno(err);

    memset(&r, 0, sizeof r);
    r.path_msg = -1;
    if (entry >= 0)
        snprintf(fault, sizeof fault, "%s #%d %s", entry_name[entry], at, errno_name(err));
    else
        snprintf(fault, sizeof fault, "no fault");
    p->setup();
    snapshot(before, sizeof before);
    cachelock_check_name("");       /* a message that names no path */
    if (err == EINTR_NORESTART) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;  /* and no SA_RESTART */
        sigaction(SIGUSR1, &sa, &old_sa);
    }
    install(entry, at, err);
    F.trace = entry < 0 && getenv("FAULTS_TRACE") != NULL;
    if (F.trace)
        tap_diag("%s, calls without a fault ([n]: the API call of the run):", p->name);
    p->run(&r);
    F.trace = 0;
    uninstall();
    if (err == EINTR_NORESTART)
        sigaction(SIGUSR1, &old_sa, NULL);
    snprintf(msg, sizeof msg, "%s", cachelock_errmsg());

    if (entry >= 0 && !F.hit) {
        /* Not reached this time (the caller says so): clean up. */
        if (r.lock)
            cachelock_release(r.lock);
        if (holder.source && !holder.holds)
            holder_lock();
        cachelock_close_idle();
        return 0;
    }
    if (entry >= 0) {
        row = row_for(p, entry, at, err);
        t->note = row && strstr(row->why, "BUG") ? row->why : NULL;
    }

    /* A failure leaves nothing in the out pointers and says what failed
     * and where (and, for the injected error, which). */
    snprintf(got, sizeof got, "%s", r.what);
    if (r.failed && !r.out_null)
        bad(t, p, fault, got, "out pointer not NULL after a failure");
    if (r.stray_out)
        bad(t, p, fault, got, "a step that granted nothing left its out pointer set");
    if (r.bad_wait_fd)
        bad(t, p, fault, got, "cachelock_wait_fd() gave neither -1 nor a descriptor above 2");
    if (r.failed && !strstr(msg, cache))
        bad(t, p, fault, got, "message does not name the path: '%s'", msg);
    if (r.failed && entry >= 0 && r.rc == -code && r.rc != -EWOULDBLOCK &&
        !strstr(msg, cachelock_strerror(r.rc)))
        bad(t, p, fault, got, "message does not say '%s': '%s'", cachelock_strerror(r.rc), msg);
    if (r.path_msg == 0)
        bad(t, p, fault, got, "a failure reported to prune's callback does not name the path");

    snapshot(after, sizeof after);
    check_tree(t, p, fault, got, before, after);

    /* Held when it says so, and free once released. */
    if (r.lock && !held_by_someone("s"))
        bad(t, p, fault, got, "reported held, but the lock is free");
    if (r.lock)
        cachelock_release(r.lock);
    for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
        if (holder.holds && strcmp(holder.source, sources[i]) == 0)
            continue;
        if (held_by_someone(sources[i]))
            bad(t, p, fault, got, "the lock of %s is left held", sources[i]);
    }
    if (holder.source && !holder.holds)
        holder_lock();

    /* What the library keeps now. */
    snprintf(got + strlen(got), sizeof got - strlen(got), " kept=%d", count_lib_fds() - t->base_fds);

    /* What a fault left in the library's tables must not hurt the next
     * call: a wait takes an idle inotify instance, if one was kept. */
    if (t->probe && holder.holds && strcmp(holder.source, "s") == 0) {
        cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
        cachelock_wait_t *w = NULL;
        cachelock_t *lock = NULL;
        int rc = cachelock_wait_start(cache, "s", &o, &w);
        if (rc == 0)
            rc = cachelock_wait_step(w, &lock);
        cachelock_wait_free(w);
        if (rc != -EINPROGRESS)
            bad(t, p, fault, got, "the next wait on the busy lock gives %d", rc);
    }

    /* Then nothing at all once it lets go of what it keeps. */
    cachelock_close_idle();
    int fds = count_lib_fds();
    long heap = heap_blocks();
    if (fds != t->base_fds) {
        bad(t, p, fault, got, "%d descriptors leaked", fds - t->base_fds);
        t->base_fds = fds;
    }
    if (heap != t->base_heap) {
        bad(t, p, fault, got, "%ld %s of memory leaked", heap - t->base_heap, HEAP_UNIT);
        t->base_heap = heap;
    }

    /* The outcome: exactly the table's. */
    if (listing)
        tap_diag("%s: %s -> %s", p->name, fault, got);
    if (entry < 0) {
        if (!outcome_is(got, p->baseline))
            bad(t, p, fault, got, "expected %s", p->baseline);
    } else if (!row) {
        bad(t, p, fault, got, "no row of the table says what to expect");
    } else {
        char want[256];
        expand(row->outcome, err, want, sizeof want);
        t->row_used[row - p->table] = 1;
        t->note = NULL;
        if (!outcome_is(got, want))
            bad(t, p, fault, got, "expected %s (%s)", want, row->why);
    }
    t->note = NULL;
    return 1;
}

/* A forked child, with the table as it is outside the tests, finds every
 * lock of ours free (all but the holder's). */
static void check_free_for_a_child(const struct path *p, struct tally *t)
{
    pid_t pid = fork();
    int status;
    CHECK(pid >= 0);
    if (pid == 0) {
        cachelock__syscalls_reset();
        for (size_t i = 0; i < sizeof sources / sizeof sources[0]; i++) {
            if ((holder.holds && strcmp(holder.source, sources[i]) == 0) ||
                access(lock_path(sources[i]), F_OK) != 0)
                continue;
            if (try_once(cache, sources[i], CACHELOCK_EXCLUSIVE) != 0)
                _exit(1);
        }
        _exit(0);
    }
    CHECK(waitpid(pid, &status, 0) == pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bad(t, p, "no fault", "-", "a forked child cannot take a lock that should be free");
}

static void run_path(const struct path *p)
{
    struct tally t;
    int base_calls[NENT], used = 0;
    unsigned char row_used[128] = { 0 };

    CHECK(p->rows <= sizeof row_used);
    /* The cache's fair policy is read once (in the warm-up), never again
     * at a time that depends on the clock. */
    cachelock__policy_recheck_us = INT64_MAX / 4;
    if (getenv("FAULTS_ONLY") && !strstr(p->name, getenv("FAULTS_ONLY")))
        SKIP("not in FAULTS_ONLY");
    linux_only("the tables list the system calls of the Linux build; the portable build makes "
               "others (no inotify, no waiter marks, nothing kept)");
    memset(&t, 0, sizeof t);
    t.row_used = row_used;
    listing = getenv("FAULTS_LIST") != NULL;

    /* The cache directory: long enough that every lock path is built on
     * the heap, so that its allocation goes through the table too. */
    snprintf(cache, sizeof cache, "%s/cache-%0*d", tap_dir,
             (int)(strlen(tap_dir) < 180 ? 190 - strlen(tap_dir) - 7 : 1), 0);
    CHECK(strlen(cache) + sizeof "/.locks/s.lock" > PATH_INLINE);
    p->init();

    /* Warm up what the library allocates once per process (the handle
     * table, the thread's ids), then take the measures. */
    for (int i = 0; i < 2; i++) {
        struct run r;
        char tree[8192];
        memset(&r, 0, sizeof r);
        p->setup();
        snapshot(tree, sizeof tree);
        install(-1, 0, 0);
        p->run(&r);
        uninstall();
        if (r.lock)
            cachelock_release(r.lock);
        if (holder.source && !holder.holds)
            holder_lock();
        cachelock_close_idle();
    }
    t.base_fds = count_lib_fds();
    t.base_heap = heap_blocks();

    /* Once without a fault: the outcome, and how often each entry is
     * called. */
    one(p, &t, -1, 0, 0);
    memcpy(base_calls, F.calls, sizeof base_calls);
    t.probe = base_calls[E_INOTIFY_INIT1] > 0;
    check_free_for_a_child(p, &t);

    for (int e = 0; e < NENT; e++) {
        if (base_calls[e] == 0)
            continue;
        used++;
        for (int at = 1; at <= base_calls[e]; at++) {
            for (int k = 0; k < 12 && errnos[e][k]; k++) {
                if (one(p, &t, e, at, errnos[e][k]))
                    t.faults++;
                else
                    bad(&t, p, entry_name[e], "-", "call %d not reached with %s", at,
                        errno_name(errnos[e][k]));
            }
        }
    }

    char list[512] = "";
    for (int e = 0; e < NENT; e++)
        if (base_calls[e])
            snprintf(list + strlen(list), sizeof list - strlen(list), " %s:%d", entry_name[e],
                     base_calls[e]);
    tap_diag("%s: %d faults injected, %d entries used (calls:%s)", p->name, t.faults, used,
             list);
    if (t.faults < used)
        bad(&t, p, "-", "-", "fewer faults (%d) than entries used (%d)", t.faults, used);
    for (size_t i = 0; i < p->rows; i++) {
        const struct expect *x = &p->table[i];
        if (!row_used[i])
            bad(&t, p, entry_name[x->entry], "-",
                "the row for calls %s (%s) is never used: is it still called through the "
                "table?", x->calls, x->why);
    }
    CHECK_EQ(t.failures, 0);
}

/* ---- the tables ---------------------------------------------------------- */

/*
 * One table per path.  Read a row as: when call CALLS of ENTRY fails with
 * one of ERRNOS (none listed: any of the entry's errnos above), the
 * outcome is OUTCOME, because WHY.  The first matching row wins.  "ERR"
 * is the injected code; "kept=N" the descriptors the library keeps
 * afterwards (lock files, .locks directories, idle inotify instances).
 * A row whose WHY says BUG expects what the header promises and the
 * code does not do yet (there is none now), and a failure of it prints
 * that note; FAULTS_TRACE=1 shows which call each number is.
 */

#define A(...) { __VA_ARGS__ }
#define ANY { 0 }

/* The first open of an existing lock file, the long way: open #1 is
 * .locks by its path, openat #1 the lock file in it, fstat #1 the lock
 * file's identity, fstatfs #1 its filesystem, fstat #2 the identity of
 * .locks (to keep it).  FAIL is the outcome when the open fails, OK the
 * outcome otherwise, kept K normally, K_NODIR when .locks cannot be kept,
 * K_REMOTE when the filesystem is not known to be local and K_ROFS when
 * the exclusive lock is refused on a read-only mount. */
#define LONG_OPEN(FAIL, OK, K, K_NODIR, K_REMOTE, K_ROFS) \
    { E_OPEN, "1", A(ENOENT), OK " kept=" K, ".locks 'missing': mkdir finds it, opened again" }, \
    { E_OPEN, "1", ANY, FAIL " kept=0", "open of .locks" }, \
    { E_OPENAT, "1", A(EACCES), OK " kept=" K, "opened again without O_CREAT, which " \
      "fs.protected_regular allows (and read-only if that fails too)" }, \
    { E_OPENAT, "1", A(EPERM), OK " kept=" K, \
      "opened read-only instead: flock(2) needs no write access" }, \
    { E_OPENAT, "1", A(EROFS), FAIL " kept=" K_ROFS, "a read-only mount: opened read-only, and " \
      "the exclusive lock refused (.locks kept)" }, \
    { E_OPENAT, "1", A(ENOENT), OK " kept=" K, ".locks removed between the two opens: again" }, \
    { E_OPENAT, "1", ANY, FAIL " kept=0", "open of the lock file" }, \
    { E_FSTAT, "1", ANY, FAIL " kept=0", "identity of the lock file" }, \
    { E_FSTAT, "2", ANY, OK " kept=" K_NODIR, "identity of .locks unknown: it is not kept" }, \
    { E_FSTATFS, "1", ANY, OK " kept=" K_REMOTE, "filesystem not known to be local: nothing " \
      "kept (neither the lock file nor .locks), nothing marked" }

/* The lock call of an acquire that waits in the kernel when it must, and
 * the path check after the grant (fstatat #1). */
#define LOCK_AND_CHECK(OK, K, K_FAILED, K_UNCHECKED) \
    { E_FLOCK, "1", A(EINTR), OK " kept=" K, "a non-blocking flock(2) is retried" }, \
    { E_FLOCK, "1", A(EWOULDBLOCK), OK " kept=" K, "busy: the blocking flock(2) follows" }, \
    { E_FLOCK, "1", ANY, "-ERR kept=" K_FAILED, "flock(2): the file closed, .locks kept" }, \
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), OK " kept=" K, "path check: the file is gone, again" }, \
    { E_FSTATAT, "1", ANY, "-ERR kept=" K_UNCHECKED, "path check: unlocked, closed, .locks " \
      "forgotten" }

static const struct expect t_fresh[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle, the directory to create" },
    { E_OPEN, "*", A(ENOENT), "0 kept=2", ".locks missing: created, opened again" },
    { E_OPEN, "*", ANY, "-ERR kept=0", "open of .locks" },
    { E_MKDIR, "1,3", A(EEXIST), "0 kept=2", ".locks 'exists' but cannot be opened: made again" },
    { E_MKDIR, "1,2", A(ENOENT), "0 kept=2", "a parent is missing: up, then create downwards" },
    { E_MKDIR, "2", A(EEXIST), "-ENOENT kept=0", "the cache directory 'exists' but .locks cannot "
      "be made in it: the ENOENT of that mkdir" },
    { E_MKDIR, "*", ANY, "-ERR kept=0", "mkdir of the cache directory or .locks" },
    { E_OPENAT, "1", A(ENOENT), "0 kept=2", ".locks removed between the two opens: again" },
    { E_OPENAT, "1", ANY, "-ERR kept=0", "creating the lock file (after EACCES the open without "
      "O_CREAT, after EROFS, EPERM the read-only open, finds no file: the first error)" },
    { E_FSTAT, "1", ANY, "-ERR kept=0", "identity of the lock file" },
    { E_FSTAT, "2", ANY, "0 kept=1", "identity of .locks unknown: it is not kept" },
    { E_FSTATFS, "1", ANY, "0 kept=0", "filesystem not known to be local: nothing kept, "
      "neither the lock file nor .locks" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

static const struct expect t_existing[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    LONG_OPEN("-ERR", "0", "2", "1", "0", "1"),
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

static const struct expect t_kept_file[] = {
    { E_MALLOC, "1", ANY, "-ENOMEM kept=2", "the path: nothing touched, nothing closed" },
    { E_FSTAT, "1", ANY, "0 kept=2", "the kept descriptor cannot be checked: closed, the file "
      "opened again through the kept .locks" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

/* t.lock and .locks are kept; s.lock exists but was never opened. */
static const struct expect t_kept_dir[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=2", "the path, the handle: nothing closed" },
    { E_FSTAT, "1", ANY, "0 kept=3", "the kept .locks cannot be checked: closed, the long way "
      "(which keeps .locks again)" },
    { E_OPENAT, "1", A(EACCES, EPERM), "0 kept=3", "opened read-only instead" },
    { E_OPENAT, "1", A(EROFS), "-EROFS kept=2", "a read-only mount: opened read-only, the "
      "exclusive lock refused" },
    { E_OPENAT, "1", A(ENOENT), "0 kept=3", "not in the kept .locks (renamed away?): the long "
      "way, which alone creates files" },
    { E_OPENAT, "1", A(EMFILE, ENFILE), "0 kept=3", "out of descriptors: the kept .locks "
      "closed, then the long way, which succeeds with the descriptor given back (t.lock stays "
      "kept: the long way did not run out) and keeps .locks again" },
    { E_OPENAT, "1", ANY, "-ERR kept=1", "open through the kept .locks: .locks closed" },
    { E_FSTAT, "2", ANY, "-ERR kept=1", "identity of the lock file: the kept .locks closed" },
    LOCK_AND_CHECK("0", "3", "2", "1"),
};

/* Only .locks is kept (t's release closed its exposed descriptor). */
static const struct expect t_only_dir[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=1", "the path, the handle: nothing closed" },
    { E_FSTAT, "1", ANY, "0 kept=2", "the kept .locks cannot be checked: the long way" },
    { E_OPENAT, "1", A(EACCES, EPERM), "0 kept=2", "opened read-only instead" },
    { E_OPENAT, "1", A(EROFS), "-EROFS kept=1", "a read-only mount: opened read-only, the "
      "exclusive lock refused" },
    { E_OPENAT, "1", A(ENOENT), "0 kept=2", "not in the kept .locks: the long way" },
    { E_OPENAT, "1", A(EMFILE, ENFILE), "0 kept=2", "out of descriptors: the kept .locks is "
      "closed, then the long way, which keeps .locks again" },
    { E_OPENAT, "1", ANY, "-ERR kept=0", "open through the kept .locks: .locks closed" },
    { E_FSTAT, "2", ANY, "-ERR kept=0", "identity of the lock file: .locks closed" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

/* Descriptors 0 and 1 are free: the lock file and .locks are moved. */
static const struct expect t_low_fds[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    LONG_OPEN("-ERR", "0", "2", "1", "0", "1"),
    { E_FCNTL, "1", A(EINVAL), "-EMFILE kept=0", "moving the lock file above 2: EINVAL says no "
      "descriptor above 2 is left" },
    { E_FCNTL, "1", ANY, "-ERR kept=0", "moving the lock file above 2" },
    { E_FCNTL, "2", ANY, "0 kept=1", "moving .locks above 2 to keep it: closed instead" },
    { E_CLOSE, "*", ANY, "0 kept=2", "close(2) of a moved descriptor: ignored, it is gone" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

/* Another process holds s and lets go once we block in flock(2). */
static const struct expect t_busy[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    LONG_OPEN("-ERR", "0", "2", "1", "0", "1"),
    { E_FLOCK, "2", A(EINTR), "-EINTR kept=1", "the blocking flock(2): a handler without "
      "SA_RESTART ran, the caller asked to be interrupted" },
    { E_FLOCK, "2", ANY, "-ERR kept=1", "the blocking flock(2) (EWOULDBLOCK, which it cannot "
      "give, is passed on as the call's error)" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

static const struct expect t_try_free[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the wait's copy, the handle" },
    LONG_OPEN("-ERR", "0", "2", "1", "0", "1"),
    { E_FLOCK, "1", A(EINTR), "0 kept=2", "a non-blocking flock(2) is retried" },
    { E_FLOCK, "1", A(EWOULDBLOCK), "-EWOULDBLOCK kept=2", "busy: a try says so, the file kept" },
    { E_FLOCK, "1", ANY, "-ERR kept=1", "flock(2): the file closed, .locks kept" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 kept=2", "path check: the file is gone, again" },
    { E_FSTATAT, "1", ANY, "-ERR kept=0", "path check: unlocked, closed, .locks forgotten" },
};

static const struct expect t_try_busy[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the wait's copy, the handle" },
    LONG_OPEN("-ERR", "-EWOULDBLOCK", "2", "1", "0", "1"),
    { E_FLOCK, "1", A(EINTR, EWOULDBLOCK), "-EWOULDBLOCK kept=2", "retried; busy as it is" },
    { E_FLOCK, "1", ANY, "-ERR kept=1", "flock(2): its error, not busy" },
};

/* The wait's steps: [0] the first (try, watch, try again), [1] after a
 * sleep that ends at once, [2] at the deadline; then the end of the wait.
 * fstat #3 is the new inotify instance, #4 #6 #8 its checks in the steps
 * (ioctl #1-#3), #5 #7 the checks of the kept lock file, #9 and #10 the
 * checks of the instance at the end, before its watch is removed and
 * after its queue is drained (ioctl #4 #5, the second one asking for an
 * empty queue); read #4 drains IN_IGNORED, read #5 finds the queue empty. */
static const struct expect t_timed_out[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the wait's copy, the handle" },
    LONG_OPEN("-ERR", "-ETIMEDOUT", "2", "1", "1", "1"),
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "-ETIMEDOUT kept=2", "retried; busy as it is" },
    { E_FLOCK, "1", ANY, "-ERR kept=1", "a try fails: its error, not -ETIMEDOUT (no watch yet)" },
    { E_FLOCK, "*", ANY, "-ERR kept=2", "a try fails: its error, not -ETIMEDOUT" },
    { E_INOTIFY_INIT1, "1", ANY, "-ETIMEDOUT kept=2", "no inotify: the timer alone, to the "
      "deadline; unmarked, the lock file is kept" },
    { E_FSTAT, "3", ANY, "-ETIMEDOUT kept=2", "the new instance cannot be identified: closed, "
      "the timer alone" },
    { E_INOTIFY_ADD_WATCH, "1", ANY, "-ETIMEDOUT kept=3", "no watch: the timer alone; the "
      "instance kept idle, the unmarked lock file kept" },
    { E_FCNTL, "1", ANY, "-ETIMEDOUT kept=2", "no waiter mark in the first step: the next "
      "step marks the file, so it is closed at the end" },
    /* Closing an instance takes the kernel an RCU grace period, which may
     * use up the 30 ms: whether a new one is made in time is not checked. */
    { E_FSTAT, "4,6", ANY, "-ETIMEDOUT", "the instance cannot be checked: closed, a new one "
      "made if there is time" },
    { E_IOCTL, "1,2", ANY, "-ETIMEDOUT", "the instance cannot be checked: closed, a new one "
      "made if there is time" },
    { E_FSTAT, "5", ANY, "-ETIMEDOUT kept=2", "the kept lock file cannot be checked: opened "
      "again, and the new one marked as waited for, so closed at the end" },
    { E_FSTAT, "7", ANY, "-ETIMEDOUT kept=3", "opened again in the step that times out, before "
      "any mark: the unmarked file is kept" },
    { E_FSTAT, "8", ANY, "-ETIMEDOUT kept=1", "the instance cannot be checked in the step "
      "that times out: closed" },
    { E_IOCTL, "3", ANY, "-ETIMEDOUT kept=1", "the instance cannot be checked in the step "
      "that times out: closed" },
    { E_FSTAT, "9,10", ANY, "-ETIMEDOUT kept=1", "the instance cannot be checked at the end, "
      "before or after its watch is removed: closed, not kept" },
    { E_IOCTL, "4,5", ANY, "-ETIMEDOUT kept=1", "the instance cannot be checked at the end, "
      "before or after its watch is removed: closed, not kept" },
    { E_INOTIFY_RM_WATCH, "1", ANY, "-ETIMEDOUT kept=2", "the watch is gone already: "
      "IN_IGNORED drained, the instance left empty and kept" },
    { E_READ, "4", ANY, "-ETIMEDOUT kept=1", "the queue cannot be emptied at the end: the "
      "second check finds IN_IGNORED queued, the instance closed, not kept" },
    { E_READ, "5", ANY, "-ETIMEDOUT kept=2", "the read that would find the queue empty at the "
      "end fails: the second check finds it empty, the instance kept" },
    { E_READ, "*", ANY, "-ETIMEDOUT kept=2", "draining a queue with nothing in it" },
    { E_POLL, "*", A(EINTR_NORESTART), "-EINTR kept=2", "a handler without SA_RESTART ran" },
    { E_POLL, "*", ANY, "-ETIMEDOUT kept=2", "EINTR with only SA_RESTART handlers, ENOMEM: "
      "stepped again, times out at the deadline" },
    { E_CLOSE, "1", ANY, "-ETIMEDOUT kept=2", "closing the marked lock file: failure ignored" },
};

/* As above, but the holder closes at the second sleep: [2] is granted. */
static const struct expect t_timed_got[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the wait's copy, the handle" },
    LONG_OPEN("-ERR", "0", "3", "2", "1", "1"),
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "0 kept=3", "retried; busy as it is: waits on" },
    { E_FLOCK, "1", ANY, "-ERR kept=1", "a try fails: its error (no watch yet)" },
    { E_FLOCK, "*", ANY, "-ERR kept=2", "a try fails: its error" },
    { E_INOTIFY_INIT1, "1", ANY, "0 kept=2", "no inotify: the timer sees the release" },
    { E_FSTAT, "3", ANY, "0 kept=2", "the new instance cannot be identified: the timer alone" },
    { E_INOTIFY_ADD_WATCH, "1", ANY, "0 kept=3", "no watch: the timer; the instance kept idle" },
    { E_FCNTL, "1", ANY, "0 kept=3", "no waiter mark in the first step: the next one marks "
      "the file, the grant unmarks it, kept at the release" },
    { E_FCNTL, "2", ANY, "0 kept=2", "the mark cannot be removed after the grant: closed at "
      "the release, not kept" },
    { E_FSTAT, "4,6", ANY, "0 kept=3", "the instance cannot be checked: a new one" },
    { E_IOCTL, "1,2", ANY, "0 kept=3", "the instance cannot be checked: a new one" },
    { E_FSTAT, "5,7", ANY, "0 kept=3", "the kept lock file cannot be checked: opened again" },
    { E_FSTAT, "8,9", ANY, "0 kept=2", "the instance cannot be checked at the end, before "
      "or after its watch is removed: closed" },
    { E_IOCTL, "3,4", ANY, "0 kept=2", "the instance cannot be checked at the end, before "
      "or after its watch is removed: closed" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 kept=3", "path check: the file is gone, again" },
    { E_FSTATAT, "1", ANY, "-ERR kept=1", "path check: unlocked, closed, .locks forgotten" },
    { E_INOTIFY_RM_WATCH, "1", ANY, "0 kept=3", "the watch is gone already: the close and "
      "IN_IGNORED drained, the instance left empty and kept" },
    { E_READ, "3", ANY, "0 kept=2", "the close and IN_IGNORED cannot be read at the end: the "
      "second check finds them queued, the instance closed" },
    { E_READ, "4", ANY, "0 kept=3", "the read that would find the queue empty at the end "
      "fails: the second check finds it empty, the instance kept" },
    { E_READ, "*", ANY, "0 kept=3", "draining a queue with nothing in it" },
    { E_POLL, "*", A(EINTR_NORESTART), "-EINTR kept=2", "a handler without SA_RESTART ran" },
    { E_POLL, "*", ANY, "0 kept=3", "stepped again" },
};

/* [0] start, [1] [2] steps, [3] free.  fstat #3 is the new inotify
 * instance, #4 #6 its checks in the steps (ioctl #1 #2), #7 #8 its checks
 * at the free, before its watch is removed and after its queue is drained
 * (ioctl #3 #4), #5 #9 the lock file's. */
static const struct expect t_async_cancelled[] = {
    { E_MALLOC, "1-3", ANY, "-ENOMEM kept=0", "start: the path, the wait, its copy" },
    { E_MALLOC, "4", ANY, "0 -ENOMEM -ENOMEM kept=0", "the handle: final, and said again" },
    LONG_OPEN("0 -ERR -ERR", "0 -EINPROGRESS -EINPROGRESS", "2", "1", "1", "1"),
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "retried; busy" },
    { E_FLOCK, "1", ANY, "0 -ERR -ERR kept=1", "the first try fails: final (no watch yet)" },
    { E_FLOCK, "2", ANY, "0 -ERR -ERR kept=2", "the try after the watch fails: final" },
    { E_FLOCK, "3", ANY, "0 -EINPROGRESS -ERR kept=2", "the second step's try: final" },
    { E_INOTIFY_INIT1, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no inotify: no fd to "
      "poll, the timeout alone; unmarked, the lock file is kept" },
    { E_FSTAT, "3", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the new instance cannot be "
      "identified: closed" },
    { E_INOTIFY_ADD_WATCH, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=3", "no watch: the "
      "instance kept idle, the unmarked lock file kept" },
    { E_FCNTL, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no waiter mark in the first "
      "step: the second step marks the file, so it is closed at the free" },
    { E_FSTAT, "4,6", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the instance cannot be "
      "checked: a new one" },
    { E_IOCTL, "1,2", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the instance cannot be "
      "checked: a new one" },
    { E_FSTAT, "5", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the lock file cannot be "
      "checked: opened again and marked, so closed at the free" },
    { E_FSTAT, "7,8", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "the instance cannot be "
      "checked at the free, before or after its watch is removed: closed" },
    { E_IOCTL, "3,4", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "the instance cannot be "
      "checked at the free, before or after its watch is removed: closed" },
    { E_FSTAT, "9", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the lock file cannot be checked "
      "at the free: closed all the same (it carries the mark)" },
    { E_CLOSE, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "ignored" },
    { E_INOTIFY_RM_WATCH, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the watch is gone "
      "already: IN_IGNORED drained, the instance left empty and kept" },
    { E_READ, "3", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "IN_IGNORED cannot be read: the "
      "second check finds it queued, the instance closed" },
    { E_READ, "4", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the read that would find the "
      "queue empty at the free fails: the second check finds it empty, the instance kept" },
    { E_READ, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "an empty queue" },
};

/* [0] start, [1] [2] steps, the holder closes, [3] step: granted. */
static const struct expect t_async_granted[] = {
    { E_MALLOC, "1-3", ANY, "-ENOMEM kept=0", "start: the path, the wait, its copy" },
    { E_MALLOC, "4", ANY, "0 -ENOMEM -ENOMEM -ENOMEM kept=0", "the handle: final, said again" },
    LONG_OPEN("0 -ERR -ERR -ERR", "0 -EINPROGRESS -EINPROGRESS 0", "3", "2", "1", "1"),
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS 0 kept=3",
      "retried; busy: waits on" },
    { E_FLOCK, "1", ANY, "0 -ERR -ERR -ERR kept=1", "the first try: final" },
    { E_FLOCK, "2", ANY, "0 -ERR -ERR -ERR kept=2", "the try after the watch: final" },
    { E_FLOCK, "3", ANY, "0 -EINPROGRESS -ERR -ERR kept=2", "the second step's try: final" },
    { E_FLOCK, "4", ANY, "0 -EINPROGRESS -EINPROGRESS -ERR kept=2", "the last try: final" },
    { E_INOTIFY_INIT1, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "no inotify" },
    { E_FSTAT, "3", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "no identity: no inotify" },
    { E_INOTIFY_ADD_WATCH, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "no watch" },
    { E_FCNTL, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "no waiter mark in the "
      "first step: the second one marks the file, the grant unmarks it, kept at the release" },
    { E_FCNTL, "2", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "the mark cannot be removed "
      "after the grant: closed at the release" },
    { E_FSTAT, "4,6", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "a new instance" },
    { E_IOCTL, "1,2", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "a new instance" },
    { E_FSTAT, "5,7", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "the lock file opened again" },
    { E_FSTAT, "8,9", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "the instance cannot be "
      "checked at the end, before or after its watch is removed: closed" },
    { E_IOCTL, "3,4", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "the instance cannot be "
      "checked at the end, before or after its watch is removed: closed" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "path check: "
      "the file is gone, again" },
    { E_FSTATAT, "1", ANY, "0 -EINPROGRESS -EINPROGRESS -ERR kept=1", "path check: final" },
    { E_INOTIFY_RM_WATCH, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "the watch is gone "
      "already: the close and IN_IGNORED drained, the instance left empty and kept" },
    { E_READ, "3", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "the close and IN_IGNORED "
      "cannot be read: the second check finds them queued, the instance closed" },
    { E_READ, "4", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "the read that would find the "
      "queue empty at the end fails: the second check finds it empty, the instance kept" },
    { E_READ, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "an empty queue" },
};

static const struct expect t_release_kept[] = {
    { E_FSTAT, "1", ANY, "released kept=1", "the descriptor cannot be checked: unlocked, closed" },
    { E_FLOCK, "1", A(EINTR), "released kept=2", "LOCK_UN is retried" },
    { E_FLOCK, "1", ANY, "released kept=1", "cannot unlock: closed, which unlocks; not kept" },
    { E_FCNTL, "1", ANY, "released kept=1", "the waiter test fails: assume a waiter, close" },
};

/* Another open file description of s carries a waiter's mark. */
static const struct expect t_release_waiter[] = {
    { E_FSTAT, "1", ANY, "released kept=1", "the descriptor cannot be checked: unlocked, closed" },
    { E_FLOCK, "1", ANY, "released kept=1", "cannot unlock: the close unlocks" },
    { E_FCNTL, "1", ANY, "released kept=1", "the waiter test fails: closed as it was to be" },
    { E_CLOSE, "1", ANY, "released kept=1", "close(2) fails: ignored, never retried" },
};

/* cachelock_fd() gave the descriptor away: never kept, no waiter test. */
static const struct expect t_release_exposed[] = {
    { E_FSTAT, "1", ANY, "released kept=1", "the descriptor cannot be checked: unlocked, closed" },
    { E_FLOCK, "1", ANY, "released kept=1", "cannot unlock: the close unlocks" },
    { E_CLOSE, "1", ANY, "released kept=1", "close(2) fails: ignored, never retried" },
};

static const struct expect t_close_idle[] = {
    { E_FSTAT, "*", ANY, "1 kept=0", "a kept descriptor cannot be checked: closed all the same" },
    { E_IOCTL, "1", ANY, "1 kept=0", "the idle instance cannot be checked: closed" },
    { E_CLOSE, "*", ANY, "1 kept=0", "close(2) fails: ignored" },
};

/* a, then b: listing (open #1), a's long open, check, its fair queue
 * (fcntl #1), then with an age limit a's age (fstat #3: too recent, left
 * alone), without one its sidecar (fstatat #2: none) and its removal (open
 * #3, fstatat #3, renameat, fstatat #4, unlinkat); unlock; b through the
 * kept .locks (fstat B_DIR, openat #2, fstat B_ID), busy. */
#define PRUNE_COMMON(A_OK, A_BUSY_KEPT, K, B_DIR, B_ID) \
    { E_MALLOC, "1", ANY, "-ENOMEM kept=0", "listing .locks: prune fails" }, \
    { E_OPEN, "1", A(ENOENT), "0 a=- b=- kept=0", "no .locks, no lock files: nothing to do" }, \
    { E_OPEN, "1", ANY, "-ERR kept=0", "listing .locks: prune fails" }, \
    { E_MALLOC, "2,3", ANY, "0 a=failed(-ENOMEM) b=busy kept=" K, "a's path, a's handle" }, \
    { E_OPEN, "2", A(ENOENT), "0 a=- b=busy kept=" K, ".locks gone meanwhile: so is a" }, \
    { E_OPEN, "2", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a: open of .locks" }, \
    { E_OPENAT, "1", A(EACCES, EPERM), A_OK " b=busy kept=" K, "a opened read-only" }, \
    { E_OPENAT, "1", A(EROFS), "0 a=failed(-EROFS) b=busy kept=" K, "a on a read-only mount: " \
      "prune's exclusive lock refused" }, \
    { E_OPENAT, "1", A(ENOENT), "0 a=- b=busy kept=" K, "a gone meanwhile: not reported" }, \
    { E_OPENAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a: open of the lock file" }, \
    { E_FSTAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a: its identity" }, \
    { E_FSTAT, "2", ANY, A_OK " b=busy kept=" K, ".locks not kept: b opens the long way" }, \
    { E_FLOCK, "1", A(EINTR), A_OK " b=busy kept=" K, "retried" }, \
    { E_FLOCK, "1", A(EWOULDBLOCK), "0 a=busy b=busy kept=" A_BUSY_KEPT, "a busy: left alone" }, \
    { E_FLOCK, "1", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a: its lock call" }, \
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), A_OK " b=busy kept=" K, "a's path check: again" }, \
    { E_FSTATAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a's path check" }, \
    { E_MALLOC, "4,5", ANY, A_OK " b=failed(-ENOMEM) kept=1", "b's path, b's handle" }, \
    { E_FSTAT, B_DIR, ANY, A_OK " b=busy kept=" K, "the kept .locks cannot be checked: the " \
      "long way" }, \
    { E_OPENAT, "2", A(EROFS), A_OK " b=failed(-EROFS) kept=1", "b on a read-only mount: " \
      "prune's exclusive lock refused" }, \
    { E_OPENAT, "2", A(EACCES, EPERM, ENOENT), A_OK " b=busy kept=" K, "b read-only, or " \
      "not in the kept .locks: the long way" }, \
    { E_OPENAT, "2", A(EMFILE, ENFILE), A_OK " b=busy kept=" K, "out of descriptors: the kept " \
      ".locks closed, then the long way, which keeps .locks again" }, \
    { E_OPENAT, "2", ANY, A_OK " b=failed(-ERR) kept=0", "b: open through the kept .locks" }, \
    { E_FSTAT, B_ID, ANY, A_OK " b=failed(-ERR) kept=0", "b: its identity" }, \
    { E_FLOCK, "3", A(EINTR, EWOULDBLOCK), A_OK " b=busy kept=" K, "retried; busy as it is" }, \
    { E_FLOCK, "3", ANY, A_OK " b=failed(-ERR) kept=1", "b: its lock call" }, \
    { E_FCNTL, "1", A(EINVAL), A_OK " b=busy kept=" K, "a's fair queue cannot be looked at: " \
      "no OFD locks, so no queue" }, \
    { E_FCNTL, "1", A(EINTR), A_OK " b=busy kept=" K, "looking at the queue never waits: " \
      "retried" }, \
    { E_FCNTL, "1", ANY, "0 a=failed(-ERR) b=busy kept=" K, "a's fair queue cannot be looked " \
      "at: left alone, the error reported" }

/* No age limit: every file qualifies, and its age is not read. */
static const struct expect t_prune[] = {
    PRUNE_COMMON("1 a=removed", "3", "2", "3", "4"),
    { E_OPEN, "3", A(ENOENT, ENOTDIR), "0 a=busy b=busy kept=2", "removal: no .locks where a "
      "was: not ours to remove" },
    { E_OPEN, "3", ANY, "0 a=failed(-ERR) b=busy kept=2", "removal: open of .locks" },
    { E_FSTATAT, "2", A(ENOENT), "0 a=busy b=busy kept=2", "removal: the name is not a now" },
    { E_FSTATAT, "2", ANY, "0 a=failed(-ERR) b=busy kept=2", "removal: a's name unchecked" },
    { E_RENAMEAT, "1", A(ENOENT), "0 a=busy b=busy kept=2", "removal: the name vanished" },
    { E_RENAMEAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "removal: the rename" },
    { E_FSTATAT, "3", ANY, "0 a=failed(-ERR) b=busy kept=2", "what was renamed cannot be "
      "checked (ENOENT too: the private name cannot be told to be a): put back, the error "
      "reported" },
    { E_UNLINKAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "the private name cannot be "
      "removed: a put back, the private name removed, the error reported" },
    { E_CLOSE, "*", ANY, "1 a=removed b=busy kept=2", "ignored" },
    { E_FLOCK, "2", ANY, "1 a=removed b=busy kept=2", "the unlock after the removal: closed" },
};

static const struct expect t_prune_recent[] = {
    PRUNE_COMMON("0 a=recent", "3", "2", "4", "5"),
    { E_FSTAT, "3", ANY, "0 a=failed(-ERR) b=busy kept=2", "a's age unknown: left alone, the "
      "error reported" },
    { E_CLOSE, "1", ANY, "0 a=recent b=busy kept=2", "ignored" },
    { E_FLOCK, "2", ANY, "0 a=recent b=busy kept=2", "the unlock: closed anyway" },
};

static const struct expect t_prepare[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the directory to create" },
    { E_OPEN, "*", A(ENOENT), "0 kept=0", ".locks missing: created, opened again" },
    { E_OPEN, "*", ANY, "-ERR kept=0", "open of .locks" },
    { E_MKDIR, "1,3", A(EEXIST), "0 kept=0", ".locks 'exists' but cannot be opened: again" },
    { E_MKDIR, "1,2", A(ENOENT), "0 kept=0", "a parent is missing: up, then down" },
    { E_MKDIR, "2", A(EEXIST), "-ENOENT kept=0", "the cache 'exists', .locks cannot be made" },
    { E_MKDIR, "*", ANY, "-ERR kept=0", "mkdir of the cache directory or .locks" },
    { E_OPENAT, "1", A(ENOENT), "0 kept=0", ".locks removed between the two opens: again" },
    { E_OPENAT, "1", ANY, "-ERR kept=0", "creating the lock file" },
    { E_FSTAT, "1", ANY, "-ERR kept=0", "identity of the lock file" },
    { E_FSTATFS, "1", ANY, "0 kept=0", "not local: nothing is kept by prepare anyway" },
    { E_FSTAT, "2", ANY, "0 kept=0", "identity of .locks, to see whether it is shared with a "
      "group: unknown, nothing changed" },
    { E_CLOSE, "*", ANY, "0 kept=0", "close(2) fails: ignored" },
};

/* A fresh cache in a set-group-ID directory, made with umask 022: .locks
 * (2755) is given group write permission through a descriptor of its own
 * (openat #2 ".", fchmod #1, close #1), the new lock file (0644) group
 * read and write (fchmod #2). */
static const struct expect t_shared[] = {
    { E_OPENAT, "2", ANY, "0 kept=2", ".locks cannot be opened to change its permissions: "
      "left as it is, the acquire goes on" },
    { E_FCHMOD, "1,2", ANY, "0 kept=2", "group permissions cannot be given: left as they are, "
      "the acquire goes on" },
    { E_CLOSE, "1", ANY, "0 kept=2", "close(2) fails: ignored" },
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle, the directory to create" },
    { E_OPEN, "*", A(ENOENT), "0 kept=2", ".locks missing: created, opened again" },
    { E_OPEN, "*", ANY, "-ERR kept=0", "open of .locks" },
    { E_MKDIR, "1,3", A(EEXIST), "0 kept=2", ".locks 'exists' but cannot be opened: made again" },
    { E_MKDIR, "1,2", A(ENOENT), "0 kept=2", "a parent is missing: up, then create downwards" },
    { E_MKDIR, "2", A(EEXIST), "-ENOENT kept=0", "the cache directory 'exists' but .locks cannot "
      "be made in it" },
    { E_MKDIR, "*", ANY, "-ERR kept=0", "mkdir of the cache directory or .locks" },
    { E_OPENAT, "1", A(ENOENT), "0 kept=2", ".locks removed between the two opens: again" },
    { E_OPENAT, "1", ANY, "-ERR kept=0", "creating the lock file" },
    { E_FSTAT, "1", ANY, "-ERR kept=0", "identity of the lock file" },
    { E_FSTAT, "2", ANY, "0 kept=1", "identity of .locks unknown: not kept, and its permissions "
      "and the lock file's left as they are" },
    { E_FSTATFS, "1", ANY, "0 kept=0", "filesystem not known to be local: nothing kept" },
    LOCK_AND_CHECK("0", "2", "1", "0"),
};

static const struct expect t_holders[] = {
    { E_MALLOC, "1", ANY, "-ENOMEM kept=0", "the path" },
    { E_FSTATAT, "1", ANY, "-ERR kept=0", "identity of the lock file (ENOENT: never locked)" },
};

/* a is free, b held: listing (open #1), then the identity of each, then
 * the filesystem of .locks (open #2, fstat #1, fstatfs #1, close #1): it
 * is local, so a, which shows no holder, is not tried. */
static const struct expect t_status[] = {
    { E_MALLOC, "1", ANY, "-ENOMEM kept=0", "listing .locks" },
    { E_MALLOC, "2,3", ANY, "-ENOMEM kept=0", "a's, b's path: the status is unknown, the "
      "error" },
    { E_OPEN, "1", A(ENOENT), "0 kept=0", "no .locks: no sources" },
    { E_OPEN, "1", ANY, "-ERR kept=0", "listing .locks" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 a=0 b=1 kept=0", "a removed meanwhile: free" },
    { E_FSTATAT, "2", A(ENOENT, ENOTDIR), "0 a=0 b=0 kept=0", "b removed meanwhile: free" },
    { E_FSTATAT, "*", ANY, "-ERR kept=0", "an identity unknown: the error, as from "
      "cachelock_holders()" },
    { E_MALLOC, "4,5", ANY, "-ENOMEM kept=0", "a's, b's path, to try a source that shows no "
      "holder: the status is unknown, the error" },
    { E_OPEN, "2", ANY, "0 a=0 b=1 kept=0", "the filesystem of .locks cannot be read: a, which "
      "shows no holder, is tried (the table may miss holders elsewhere), and is free" },
    { E_FSTAT, "1", ANY, "0 a=0 b=1 kept=0", "the filesystem of .locks cannot be read: a is "
      "tried, and is free" },
    { E_FSTATFS, "1", ANY, "0 a=0 b=1 kept=0", "the filesystem of .locks of unknown kind: a is "
      "tried, and is free" },
    { E_CLOSE, "1", ANY, "0 a=0 b=1 kept=0", "close(2) fails: ignored" },
};

/* Fair mode.  The first open of an existing lock file the long way, as in
 * LONG_OPEN, but the lock file must be writable and its filesystem local,
 * else fair mode is refused (-ENOTSUP): open #1 .locks, openat #1 the lock
 * file, fstat #1 its identity, fstatfs #1 its filesystem, fstat #2 .locks
 * (kept).  FAIL is the outcome when the open fails, OK when it works. */
#define FAIR_OPEN(FAIL, NOTSUP, OK, K, K_NODIR) \
    { E_OPEN, "1", A(ENOENT), OK " kept=" K, ".locks 'missing': mkdir finds it, opened again" }, \
    { E_OPEN, "1", ANY, FAIL " kept=0", "open of .locks" }, \
    { E_OPENAT, "1", A(EACCES), OK " kept=" K, "opened again without O_CREAT, which " \
      "fs.protected_regular allows" }, \
    { E_OPENAT, "1", A(EROFS, EPERM), NOTSUP " kept=1", "opened read-only: fair mode needs " \
      "write access, refused (.locks kept)" }, \
    { E_OPENAT, "1", A(ENOENT), OK " kept=" K, ".locks removed between the two opens: again" }, \
    { E_OPENAT, "1", ANY, FAIL " kept=0", "open of the lock file" }, \
    { E_FSTAT, "1", ANY, FAIL " kept=0", "identity of the lock file" }, \
    { E_FSTAT, "2", ANY, OK " kept=" K_NODIR, "identity of .locks unknown: it is not kept" }, \
    { E_FSTATFS, "1", ANY, NOTSUP " kept=0", "filesystem not known to be local: fair mode " \
      "refused, nothing kept" }

/* The fair fast path of a blocking acquire: fcntl #1 F_GETFL (is the lock
 * file writable?), fcntl #2 F_OFD_GETLK (anyone queued?), flock #1
 * LOCK_NB, fstatat PC (the path check). */
#define FAIR_FAST(OK, K, K_FAILED, K_UNCHECKED, K_JOINED, PC) \
    { E_FCNTL, "1", ANY, "-ERR kept=" K_FAILED, "F_GETFL fails: the lock file closed (its " \
      "EWOULDBLOCK, which it cannot give, passed on as the error)" }, \
    { E_FCNTL, "2", A(EINVAL), "-ENOTSUP kept=" K_FAILED, "no OFD locks: fair mode refused" }, \
    { E_FCNTL, "2", A(EINTR), OK " kept=" K, "looking at the queue never waits: retried" }, \
    { E_FCNTL, "2", ANY, "-ERR kept=" K_FAILED, "the queue cannot be looked at: closed" }, \
    { E_FLOCK, "1", A(EINTR), OK " kept=" K, "a non-blocking flock(2) is retried" }, \
    { E_FLOCK, "1", A(EWOULDBLOCK), OK " kept=" K_JOINED, "busy: joins the queue (the " \
      "sidecar made and kept), is its head, and waits in flock(2)" }, \
    { E_FLOCK, "1", ANY, "-ERR kept=" K_FAILED, "flock(2): the file closed, .locks kept" }, \
    { E_FSTATAT, PC, A(ENOENT, ENOTDIR), OK " kept=" K, "path check: the file is gone, again" }, \
    { E_FSTATAT, PC, ANY, "-ERR kept=" K_UNCHECKED, "path check: unlocked, closed, .locks " \
      "forgotten" }

/* Fair mode through the cache's policy, read at every acquire here:
 * fstatat #1 is the marker. */
static const struct expect t_fair_policy[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    FAIR_OPEN("-ERR", "-ENOTSUP", "0", "2", "1"),
    { E_FSTATAT, "1", ANY, "0 kept=2", "the marker cannot be looked at (or is not there): no "
      "policy known, a plain acquire, which is free" },
    FAIR_FAST("0", "2", "1", "0", "3", "2"),
};

static const struct expect t_fair_free[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    FAIR_OPEN("-ERR", "-ENOTSUP", "0", "2", "1"),
    FAIR_FAST("0", "2", "1", "0", "3", "1"),
};

/* Another process holds s; it lets go once we block in flock(2), as the
 * head of the queue: the fast path (fcntl #1-2, flock #1: busy), the
 * sidecar (open #2 .locks, openat #2 s.fifo, fstat #3, fstat #4 .locks
 * to share it with a group, close #1 .locks),
 * the join (fcntl #3 the mutex, pread #1 the hint, fcntl #4 the check
 * above it, fcntl #5 the place, fcntl #6 the exclusive place, pwrite #1
 * the hint, fcntl #7 the mutex given back), the wait (fcntl #8 on the
 * place before ours, as the hint says; fcntl #9 any place before ours),
 * flock #2 blocking, the grant (fcntl #10 the places given up), fstatat #1
 * the path check. */
static const struct expect t_fair_busy[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the handle" },
    FAIR_OPEN("-ERR", "-ENOTSUP", "0", "3", "2"),
    { E_FCNTL, "1", ANY, "-ERR kept=1", "F_GETFL fails: the lock file closed" },
    { E_FCNTL, "2,4,9", A(EINTR), "0 kept=3", "a look at the queue never waits: retried" },
    { E_FCNTL, "2-9", A(EINVAL), "-ENOTSUP kept=1", "no OFD locks: fair mode refused, closed" },
    { E_FCNTL, "5,6", A(EINTR), "0 kept=3", "taking a place never waits: retried" },
    { E_FCNTL, "5,6", A(EWOULDBLOCK), "0 kept=3", "the place is taken (a stale read lock of "
      "a waiter): the next one" },
    { E_FCNTL, "7", A(EINTR), "0 kept=3", "giving the mutex back: retried" },
    { E_FCNTL, "3,8", A(EINTR), "-EINTR kept=1", "a wait in the queue: a handler without "
      "SA_RESTART ran; the place given up by closing" },
    { E_FCNTL, "2-9", ANY, "-ERR kept=1", "the queue's locks fail: closed, which gives up the "
      "place and the mutex (EWOULDBLOCK, which blocking calls cannot give, passed on)" },
    { E_FCNTL, "10", A(EINTR), "0 kept=3", "giving up the places: retried" },
    { E_FCNTL, "10", ANY, "0 kept=1", "the places cannot be given up: held, and closed at the "
      "release, which drops them" },
    { E_FLOCK, "1", A(EINTR, EWOULDBLOCK), "0 kept=3", "retried; busy as it is: joins" },
    { E_FLOCK, "1", ANY, "-ERR kept=1", "flock(2): the file closed, .locks kept" },
    { E_FLOCK, "2", A(EINTR), "-EINTR kept=1", "the blocking flock(2) of the head: a handler "
      "without SA_RESTART ran; the place given up by closing" },
    { E_FLOCK, "2", ANY, "-ERR kept=1", "the blocking flock(2): its error, the place given up" },
    { E_OPEN, "2", ANY, "0 kept=2", "the sidecar's .locks: no sidecar, fair all the same (the "
      "hint read as nothing, the places checked)" },
    { E_OPENAT, "2", ANY, "0 kept=2", "the sidecar cannot be opened: fair without it" },
    { E_FSTAT, "3", ANY, "0 kept=2", "the sidecar's identity: closed, fair without it" },
    { E_FSTAT, "4", ANY, "0 kept=3", ".locks, to give a group-shared cache's members the sidecar: unknown, "
      "nothing changed" },
    { E_CLOSE, "1", ANY, "0 kept=3", "close(2) of .locks fails: ignored" },
    { E_PREAD, "1", ANY, "0 kept=3", "the hint cannot be read: the places say where to join" },
    { E_PWRITE, "1", ANY, "0 kept=3", "the hint cannot be written: the next joiner checks the "
      "places anyway" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 kept=2", "path check: the file is gone, again: "
      "free by now, taken without joining (the sidecar went with the first descriptor)" },
    { E_FSTATAT, "1", ANY, "-ERR kept=0", "path check: unlocked, closed, .locks forgotten" },
};

/* Another description holds a place in s's queue; s itself is free. */
static const struct expect t_fair_try[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path, the wait's copy, the handle" },
    FAIR_OPEN("-ERR", "-ENOTSUP", "-EWOULDBLOCK", "2", "1"),
    { E_FCNTL, "1", A(EWOULDBLOCK), "-EWOULDBLOCK kept=2", "F_GETFL fails with EWOULDBLOCK, "
      "which it cannot give: taken for busy, the file kept" },
    { E_FCNTL, "1", ANY, "-ERR kept=1", "F_GETFL fails: the lock file closed" },
    { E_FCNTL, "2", A(EINVAL), "-ENOTSUP kept=1", "no OFD locks: fair mode refused" },
    { E_FCNTL, "2", A(EINTR, EWOULDBLOCK), "-EWOULDBLOCK kept=2", "retried; busy as it is" },
    { E_FCNTL, "2", ANY, "-ERR kept=1", "the queue cannot be looked at: closed" },
};

/* [0] start, [1] [2] steps, [3] free.  Step 1: the fast path (fcntl #1-2,
 * flock #1), the sidecar (open #2, openat #2, fstat #3, fstat #4 .locks to
 * share it with a group, close #1), the join without waiting (fcntl #3-7,
 * pread #1, pwrite #1), a look below our place (fcntl #8) and flock #2;
 * then the watch (inotify_init1, fstat #5, add_watch #1 the lock file, #2
 * the sidecar), the mark (fcntl #9), and the same again (fcntl #10, flock
 * #3), the instance's checks (fstat #6, ioctl #1) and queue (read #1).
 * Step 2: fstat #7 the lock file, fcntl #11, flock #4, fstat #8, ioctl #2,
 * read #2.  The free: the instance (fstat #9, ioctl #3, rm_watch #1 #2,
 * read #3 #4, fstat #10, ioctl #4), the lock file (fstat #11, close #2) and
 * the sidecar (fstat #12, close #3), closed: the place given up. */
static const struct expect t_fair_async_cancelled[] = {
    { E_MALLOC, "1-3", ANY, "-ENOMEM kept=0", "start: the path, the wait, its copy" },
    { E_MALLOC, "4", ANY, "0 -ENOMEM -ENOMEM kept=0", "the handle: final, and said again" },
    FAIR_OPEN("0 -ERR -ERR", "0 -ENOTSUP -ENOTSUP", "0 -EINPROGRESS -EINPROGRESS", "2", "1"),
    { E_FCNTL, "1", A(EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "F_GETFL's "
      "EWOULDBLOCK, which it cannot give: taken for busy" },
    { E_FCNTL, "1", ANY, "0 -ERR -ERR kept=1", "F_GETFL fails: final, the lock file closed" },
    { E_FCNTL, "2-8", A(EINVAL), "0 -ENOTSUP -ENOTSUP kept=1", "no OFD locks: refused, closed" },
    { E_FCNTL, "2-8", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "retried, "
      "the next place, or taken for busy (a step never waits): waits on" },
    { E_FCNTL, "2-8", ANY, "0 -ERR -ERR kept=1", "the queue's locks fail: final, closed" },
    { E_FCNTL, "9", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no waiter mark: the timer "
      "covers what closes would tell" },
    { E_FCNTL, "10", A(EINVAL), "0 -ENOTSUP -ENOTSUP kept=2", "no OFD locks: refused" },
    { E_FCNTL, "11", A(EINVAL), "0 -EINPROGRESS -ENOTSUP kept=2", "no OFD locks: refused" },
    { E_FCNTL, "10", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "retried; "
      "taken for busy" },
    { E_FCNTL, "11", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "retried; "
      "taken for busy" },
    { E_FCNTL, "10", ANY, "0 -ERR -ERR kept=2", "the look below our place fails: final, closed "
      "(the idle inotify instance kept)" },
    { E_FCNTL, "11", ANY, "0 -EINPROGRESS -ERR kept=2", "the second step's look fails: final" },
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS kept=2", "retried; busy" },
    { E_FLOCK, "1,2", ANY, "0 -ERR -ERR kept=1", "a try of the first step fails: final (no "
      "watch yet)" },
    { E_FLOCK, "3", ANY, "0 -ERR -ERR kept=2", "the try after the watch fails: final" },
    { E_FLOCK, "4", ANY, "0 -EINPROGRESS -ERR kept=2", "the second step's try: final" },
    { E_OPEN, "2", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no sidecar: fair without it" },
    { E_OPENAT, "2", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no sidecar: fair without it" },
    { E_CLOSE, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "ignored" },
    { E_FSTAT, "4", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", ".locks, to give a group-shared cache's members the sidecar: unknown, "
      "nothing changed" },
    { E_FSTAT, "2,5,9,10", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", ".locks or the inotify "
      "instance cannot be identified or checked: not kept" },
    { E_FSTAT, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the sidecar, the lock file or "
      "the instance cannot be checked: closed or opened again" },
    { E_PREAD, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no hint: the places say" },
    { E_PWRITE, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the hint not written" },
    { E_INOTIFY_INIT1, "1", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "no inotify: the "
      "timeout alone" },
    { E_INOTIFY_ADD_WATCH, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "no watch of the "
      "lock file or of the sidecar: the timer covers it" },
    { E_INOTIFY_RM_WATCH, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the watch is gone "
      "already: IN_IGNORED drained, the instance kept" },
    { E_IOCTL, "1,2", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "the instance cannot be "
      "checked: a new one" },
    { E_IOCTL, "3,4", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "the instance cannot be "
      "checked at the free: closed" },
    { E_READ, "3", ANY, "0 -EINPROGRESS -EINPROGRESS kept=1", "IN_IGNORED cannot be read: "
      "the instance closed" },
    { E_READ, "*", ANY, "0 -EINPROGRESS -EINPROGRESS kept=2", "an empty queue" },
};

/* As above, but the holder closes before step 3, which is granted: fstat
 * #9 the lock file, fcntl #12 the look below, flock #5 granted, fcntl #13
 * the places given up, fstatat #1 the path check, fcntl #14 our mark
 * removed. */
static const struct expect t_fair_async_granted[] = {
    { E_MALLOC, "1-3", ANY, "-ENOMEM kept=0", "start: the path, the wait, its copy" },
    { E_MALLOC, "4", ANY, "0 -ENOMEM -ENOMEM -ENOMEM kept=0", "the handle: final, said again" },
    FAIR_OPEN("0 -ERR -ERR -ERR", "0 -ENOTSUP -ENOTSUP -ENOTSUP", "0 -EINPROGRESS -EINPROGRESS 0",
              "4", "3"),
    { E_FCNTL, "1", A(EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "F_GETFL's "
      "EWOULDBLOCK: taken for busy" },
    { E_FCNTL, "1", ANY, "0 -ERR -ERR -ERR kept=1", "F_GETFL fails: final" },
    { E_FCNTL, "2-8", A(EINVAL), "0 -ENOTSUP -ENOTSUP -ENOTSUP kept=1", "no OFD locks" },
    { E_FCNTL, "2-8", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "retried, "
      "the next place, or taken for busy" },
    { E_FCNTL, "2-8", ANY, "0 -ERR -ERR -ERR kept=1", "the queue's locks fail: final" },
    { E_FCNTL, "9", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "no waiter mark: the timer "
      "covers what closes would tell" },
    { E_FCNTL, "10-12", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "retried; "
      "taken for busy" },
    { E_FCNTL, "10", A(EINVAL), "0 -ENOTSUP -ENOTSUP -ENOTSUP kept=2", "no OFD locks" },
    { E_FCNTL, "11", A(EINVAL), "0 -EINPROGRESS -ENOTSUP -ENOTSUP kept=2", "no OFD locks" },
    { E_FCNTL, "12", A(EINVAL), "0 -EINPROGRESS -EINPROGRESS -ENOTSUP kept=2", "no OFD locks" },
    { E_FCNTL, "10", ANY, "0 -ERR -ERR -ERR kept=2", "a look below our place fails: final" },
    { E_FCNTL, "11", ANY, "0 -EINPROGRESS -ERR -ERR kept=2", "a look below our place fails: "
      "final" },
    { E_FCNTL, "12", ANY, "0 -EINPROGRESS -EINPROGRESS -ERR kept=2", "a look below our place "
      "fails: final" },
    { E_FCNTL, "13", A(EINTR), "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "retried" },
    { E_FCNTL, "13", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "the places cannot be given up "
      "at the grant: closed at the release, which drops them" },
    { E_FCNTL, "14", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=2", "our mark cannot be removed: "
      "closed at the release" },
    { E_FLOCK, "*", A(EINTR, EWOULDBLOCK), "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "retried; "
      "busy: waits on" },
    { E_FLOCK, "1,2", ANY, "0 -ERR -ERR -ERR kept=1", "a try of the first step: final" },
    { E_FLOCK, "3", ANY, "0 -ERR -ERR -ERR kept=2", "the try after the watch: final" },
    { E_FLOCK, "4", ANY, "0 -EINPROGRESS -ERR -ERR kept=2", "the second step's try: final" },
    { E_FLOCK, "5", ANY, "0 -EINPROGRESS -EINPROGRESS -ERR kept=2", "the last try: final" },
    { E_OPEN, "2", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "no sidecar: fair without it" },
    { E_OPENAT, "2", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "no sidecar" },
    { E_CLOSE, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "ignored" },
    { E_FSTAT, "4", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", ".locks, to give a group-shared cache's members the sidecar: unknown, "
      "nothing changed" },
    { E_FSTAT, "6-8", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "the instance or the lock "
      "file cannot be checked: a new one" },
    { E_FSTAT, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", ".locks, the sidecar, the "
      "instance or the lock file cannot be identified or checked: one of them not kept" },
    { E_PREAD, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "no hint: the places say" },
    { E_PWRITE, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "the hint not written" },
    { E_INOTIFY_INIT1, "1", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "no inotify" },
    { E_INOTIFY_ADD_WATCH, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "no watch" },
    { E_INOTIFY_RM_WATCH, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "gone already" },
    { E_IOCTL, "1,2", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "a new instance" },
    { E_IOCTL, "3,4", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "the instance closed" },
    { E_READ, "3", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "the instance closed" },
    { E_READ, "*", ANY, "0 -EINPROGRESS -EINPROGRESS 0 kept=4", "an empty queue" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "0 -EINPROGRESS -EINPROGRESS 0 kept=3", "path check: "
      "the file is gone, again" },
    { E_FSTATAT, "1", ANY, "0 -EINPROGRESS -EINPROGRESS -ERR kept=1", "path check: final" },
};

/* open #1 .locks (missing), mkdir #1 .locks, mkdir #2 the cache, mkdir #3
 * .locks, open #2, fstatfs #1, openat #1 the marker (O_EXCL), fcntl #1 a
 * test of OFD locks on it, pwrite #1 the note, close #1 #2. */
static const struct expect t_policy_on[] = {
    { E_MALLOC, "*", ANY, "-ENOMEM kept=0", "the path" },
    { E_OPEN, "*", A(ENOENT), "0 kept=0", ".locks missing: created, opened again" },
    { E_OPEN, "*", ANY, "-ERR kept=0", "open of .locks" },
    { E_MKDIR, "1,3", A(EEXIST), "0 kept=0", ".locks 'exists' but cannot be opened: again" },
    { E_MKDIR, "1,2", A(ENOENT), "0 kept=0", "a parent is missing: up, then down" },
    { E_MKDIR, "2", A(EEXIST), "-ENOENT kept=0", "the cache 'exists', .locks cannot be made" },
    { E_MKDIR, "*", ANY, "-ERR kept=0", "mkdir of the cache directory or .locks" },
    { E_FSTAT, "1", ANY, "-ENOTSUP kept=0", "the device of .locks unknown, so its filesystem: "
      "refused, no marker" },
    { E_FSTATFS, "1", ANY, "-ENOTSUP kept=0", "the filesystem not known to be local: refused, "
      "no marker" },
    { E_OPENAT, "1", ANY, "-ERR kept=0", "the marker cannot be made" },
    { E_FCNTL, "1", A(EINVAL), "-ENOTSUP kept=0", "no OFD locks: refused, the marker removed" },
    { E_FCNTL, "1", A(EINTR), "0 kept=0", "never waits: retried" },
    { E_FCNTL, "1", ANY, "-ERR kept=0", "OFD locks cannot be tested: the error, the marker "
      "removed" },
    { E_PWRITE, "1", ANY, "0 kept=0", "the note for people cannot be written: the marker is "
      "the policy" },
    { E_CLOSE, "*", ANY, "0 kept=0", "close(2) fails: ignored" },
};

static const struct expect t_policy_off[] = {
    { E_MALLOC, "1", ANY, "-ENOMEM kept=0", "the path" },
    { E_OPEN, "1", A(ENOENT), "0 kept=0", "no .locks: no marker, off already" },
    { E_OPEN, "1", ANY, "-ERR kept=0", "open of .locks" },
    { E_UNLINKAT, "1", ANY, "-ERR kept=0", "the marker cannot be removed" },
    { E_CLOSE, "1", ANY, "0 kept=0", "close(2) fails: ignored" },
};

/* prune of a (with its sidecar a.fifo) and of the orphan o.fifo, b held:
 * listing (open #1, malloc #1), a as in the prune path (fstatat #1 the path
 * check, fcntl #1 its queue), a's removal (open #3, fstatat #2, renameat
 * #1, fstatat #3, unlinkat #1, close #2); b (busy); then each sidecar
 * listed, in the order of the directory: its lock file missing (a.lock just
 * removed, o.lock never there), its identity, and its removal (open,
 * fstatat, renameat, fstatat, unlinkat, close): fstatat #4-#11, open #4
 * #5, renameat #2 #3, unlinkat #2 #3, close #3 #4. */
static const struct expect t_prune_sidecars[] = {
    { E_MALLOC, "1", ANY, "-ENOMEM kept=0", "listing .locks: prune fails" },
    { E_MALLOC, "2,3", ANY, "0 a=failed(-ENOMEM) b=busy kept=2", "a's path, a's handle" },
    { E_MALLOC, "4,5", ANY, "1 a=removed b=failed(-ENOMEM) kept=1", "b's path, b's handle" },
    { E_MALLOC, "6,7", ANY, "1 a=removed b=busy kept=2", "the sidecars' paths: an orphan "
      "stays" },
    { E_OPEN, "1", A(ENOENT), "0 a=- b=- kept=0", "no .locks: nothing to do" },
    { E_OPEN, "1", ANY, "-ERR kept=0", "listing .locks: prune fails" },
    { E_OPEN, "2", A(ENOENT), "0 a=- b=busy kept=2", ".locks gone meanwhile: so is a" },
    { E_OPEN, "2", ANY, "0 a=failed(-ERR) b=busy kept=2", "a: open of .locks" },
    { E_OPEN, "3", A(ENOENT, ENOTDIR), "0 a=busy b=busy kept=2", "a's removal: no .locks" },
    { E_OPEN, "3", ANY, "0 a=failed(-ERR) b=busy kept=2", "a's removal: open of .locks" },
    { E_OPEN, "4,5", ANY, "1 a=removed b=busy kept=2", "a sidecar's removal: no .locks, the "
      "sidecar stays (an orphan, for the next prune)" },
    { E_OPENAT, "1", A(EACCES, EPERM), "1 a=removed b=busy kept=2", "a opened read-only" },
    { E_OPENAT, "1", A(EROFS), "0 a=failed(-EROFS) b=busy kept=2", "a on a read-only mount: "
      "prune's exclusive lock refused" },
    { E_OPENAT, "1", A(ENOENT), "0 a=- b=busy kept=2", "a gone meanwhile" },
    { E_OPENAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a: open of the lock file" },
    { E_OPENAT, "2", A(EROFS), "1 a=removed b=failed(-EROFS) kept=1", "b on a read-only mount: "
      "prune's exclusive lock refused" },
    { E_OPENAT, "2", A(EACCES, EPERM, ENOENT), "1 a=removed b=busy kept=2", "b read-only, or "
      "the long way" },
    { E_OPENAT, "2", A(EMFILE, ENFILE), "1 a=removed b=busy kept=2", "out of descriptors: the "
      "long way" },
    { E_OPENAT, "2", ANY, "1 a=removed b=failed(-ERR) kept=0", "b: open" },
    { E_FSTAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a: its identity" },
    { E_FSTAT, "2,3", ANY, "1 a=removed b=busy kept=2", ".locks not kept: the long way" },
    { E_FSTAT, "4", ANY, "1 a=removed b=failed(-ERR) kept=0", "b: its identity" },
    { E_FLOCK, "1", A(EINTR), "1 a=removed b=busy kept=2", "retried" },
    { E_FLOCK, "1", A(EWOULDBLOCK), "0 a=busy b=busy kept=3", "a busy: left alone" },
    { E_FLOCK, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a: its lock call" },
    { E_FLOCK, "2", ANY, "1 a=removed b=busy kept=2", "the unlock after the removal: closed" },
    { E_FLOCK, "3", A(EINTR, EWOULDBLOCK), "1 a=removed b=busy kept=2", "b busy" },
    { E_FLOCK, "3", ANY, "1 a=removed b=failed(-ERR) kept=1", "b: its lock call" },
    { E_FCNTL, "1", A(EINVAL, EINTR), "1 a=removed b=busy kept=2", "no OFD locks (no queue), or "
      "retried" },
    { E_FCNTL, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a's queue cannot be looked at" },
    { E_FSTATAT, "1", A(ENOENT, ENOTDIR), "1 a=removed b=busy kept=2", "a's path check: again" },
    { E_FSTATAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a's path check" },
    { E_FSTATAT, "2", A(ENOENT), "0 a=busy b=busy kept=2", "removal: the name is not a now" },
    { E_FSTATAT, "2", ANY, "0 a=failed(-ERR) b=busy kept=2", "removal: a's name unchecked" },
    { E_FSTATAT, "3", ANY, "0 a=failed(-ERR) b=busy kept=2", "what was renamed cannot be "
      "checked: put back, the error reported" },
    { E_FSTATAT, "4-11", ANY, "1 a=removed b=busy kept=2", "a sidecar's removal cannot check "
      "what it removes (or whether its lock file is there): the sidecar stays, or is put "
      "back" },
    { E_RENAMEAT, "1", A(ENOENT), "0 a=busy b=busy kept=2", "removal: the name vanished" },
    { E_RENAMEAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "removal: the rename" },
    { E_RENAMEAT, "2,3", ANY, "1 a=removed b=busy kept=2", "a sidecar cannot be renamed away: "
      "it stays" },
    { E_UNLINKAT, "1", ANY, "0 a=failed(-ERR) b=busy kept=2", "a cannot be removed: put back" },
    { E_UNLINKAT, "2,3", ANY, "1 a=removed b=busy kept=2", "a sidecar cannot be removed: put "
      "back" },
    { E_CLOSE, "*", ANY, "1 a=removed b=busy kept=2", "ignored" },
};

#define PATH(var, name, baseline, init, setup, run, table, may_add, may_remove_a) \
    static const struct path var = { name, baseline, init, setup, run, table, \
                                      sizeof table / sizeof table[0], may_add, may_remove_a, \
                                      NULL }
#define PATH_RM(var, name, baseline, init, setup, run, table, may_add, may_remove_a, may_remove) \
    static const struct path var = { name, baseline, init, setup, run, table, \
                                      sizeof table / sizeof table[0], may_add, may_remove_a, \
                                      may_remove }
#define CREATES "|/.locks|/.locks/s.lock"

PATH(p_fresh, "acquire in a fresh cache", "0 kept=2", init_existing, setup_fresh,
     run_acquire, t_fresh, CREATES, 0);
PATH(p_existing, "acquire in an existing cache", "0 kept=2", init_existing, setup_nothing,
     run_acquire, t_existing, NULL, 0);
PATH(p_kept_file, "acquire with the lock file kept", "0 kept=2", init_existing, setup_kept_s,
     run_acquire, t_kept_file, NULL, 0);
PATH(p_kept_dir, "acquire with .locks kept", "0 kept=3", init_kept_dir, setup_kept_dir,
     run_acquire, t_kept_dir, NULL, 0);
PATH(p_only_dir, "acquire with only .locks kept", "0 kept=2", init_kept_dir,
     setup_only_dir_kept, run_acquire, t_only_dir, NULL, 0);
PATH(p_low_fds, "acquire with descriptors 0 and 1 free", "0 kept=2", init_low_fds,
     setup_nothing, run_acquire, t_low_fds, NULL, 0);
PATH(p_busy, "acquire of a busy lock", "0 kept=2", init_busy_s, setup_holder_locks,
     run_acquire_busy, t_busy, NULL, 0);
PATH(p_try_free, "try of a free lock", "0 kept=2", init_existing, setup_nothing, run_try,
     t_try_free, NULL, 0);
PATH(p_try_busy, "try of a busy lock", "-EWOULDBLOCK kept=2", init_busy_s, setup_nothing,
     run_try, t_try_busy, NULL, 0);
PATH(p_timed_out, "timed wait that times out", "-ETIMEDOUT kept=2", init_busy_s, setup_timed,
     run_timed, t_timed_out, NULL, 0);
PATH(p_timed_got, "timed wait that gets the lock", "0 kept=3", init_busy_s,
     setup_released_wait, run_timed_released, t_timed_got, NULL, 0);
PATH(p_async_cancelled, "asynchronous wait cancelled", "0 -EINPROGRESS -EINPROGRESS kept=2",
     init_busy_s, setup_nothing, run_async_cancelled, t_async_cancelled, NULL, 0);
PATH(p_async_granted, "asynchronous wait granted", "0 -EINPROGRESS -EINPROGRESS 0 kept=3",
     init_busy_s, setup_holder_locks, run_async_granted, t_async_granted, NULL, 0);
PATH(p_release_kept, "release, kept", "released kept=2", init_existing, setup_held,
     run_release, t_release_kept, NULL, 0);
PATH(p_release_waiter, "release with a waiter", "released kept=1", init_existing,
     setup_held_waiter_marked, run_release, t_release_waiter, NULL, 0);
PATH(p_release_exposed, "release of an exposed descriptor", "released kept=1", init_existing,
     setup_held_exposed, run_release, t_release_exposed, NULL, 0);
PATH(p_close_idle, "close_idle", "1 kept=0", init_kept_dir, setup_all_kept, run_close_idle,
     t_close_idle, NULL, 0);
PATH(p_prune, "prune", "1 a=removed b=busy kept=2", init_a_b, setup_a, run_prune, t_prune,
     NULL, 1);
PATH(p_prune_recent, "prune of recent files", "0 a=recent b=busy kept=2", init_a_b, setup_a,
     run_prune_recent, t_prune_recent, NULL, 0);
PATH(p_shared, "acquire in a fresh group-shared cache", "0 kept=2", init_shared, setup_fresh,
     run_acquire, t_shared, CREATES, 0);
PATH(p_prepare, "prepare in a fresh cache", "0 kept=0", init_existing, setup_fresh,
     run_prepare, t_prepare, CREATES, 0);
PATH(p_holders, "holders", "0 n=1 kept=0", init_a_b, setup_nothing, run_holders, t_holders,
     NULL, 0);
PATH(p_status, "status", "0 a=0 b=1 kept=0", init_a_b, setup_nothing, run_status, t_status,
     NULL, 0);

PATH(p_fair_policy, "acquire under the fair policy", "0 kept=2", init_fair_policy,
     setup_policy_reread, run_acquire, t_fair_policy, "|/.locks/s.fifo", 0);
PATH(p_fair_free, "fair acquire of a free lock", "0 kept=2", init_existing, setup_nothing,
     run_fair_acquire, t_fair_free, "|/.locks/s.fifo", 0);
PATH(p_fair_busy, "fair acquire of a busy lock", "0 kept=3", init_busy_s, setup_holder_locks,
     run_fair_acquire_busy, t_fair_busy, "|/.locks/s.fifo", 0);
PATH(p_fair_try, "fair try of a lock others queue for", "-EWOULDBLOCK kept=2", init_queued_s,
     setup_nothing, run_fair_try, t_fair_try, NULL, 0);
PATH(p_fair_async_cancelled, "fair asynchronous wait cancelled",
     "0 -EINPROGRESS -EINPROGRESS kept=2", init_busy_s, setup_nothing, run_fair_async_cancelled,
     t_fair_async_cancelled, "|/.locks/s.fifo", 0);
PATH(p_fair_async_granted, "fair asynchronous wait granted",
     "0 -EINPROGRESS -EINPROGRESS 0 kept=4", init_busy_s, setup_holder_locks,
     run_fair_async_granted, t_fair_async_granted, "|/.locks/s.fifo", 0);
PATH(p_policy_on, "fair policy set in a fresh cache", "0 kept=0", init_existing, setup_fresh,
     run_policy_on, t_policy_on, "|/.locks|/.locks/.fair", 0);
PATH_RM(p_policy_off, "fair policy cleared", "0 kept=0", init_existing, setup_policy_on,
        run_policy_off, t_policy_off, NULL, 0, "/.locks/.fair");
PATH_RM(p_prune_sidecars, "prune with sidecars", "1 a=removed b=busy kept=2", init_a_b,
        setup_a_sidecars, run_prune, t_prune_sidecars, NULL, 1, "/.locks/a.fifo|/.locks/o.fifo");

static const struct path *const all_paths[] = {
    &p_fresh, &p_existing, &p_kept_file, &p_kept_dir, &p_only_dir, &p_low_fds, &p_busy,
    &p_try_free, &p_try_busy, &p_timed_out, &p_timed_got, &p_async_cancelled,
    &p_async_granted, &p_release_kept, &p_release_waiter, &p_release_exposed, &p_close_idle,
    &p_prune, &p_prune_recent, &p_shared, &p_prepare, &p_holders, &p_status, &p_fair_policy,
    &p_fair_free, &p_fair_busy, &p_fair_try, &p_fair_async_cancelled, &p_fair_async_granted,
    &p_policy_on, &p_policy_off, &p_prune_sidecars,
};

/* Every entry of the table has rows on some path (and every row is used,
 * which run_path checks): each entry is faulted somewhere. */
static void test_every_entry_is_faulted_on_some_path(void)
{
    for (int e = 0; e < NENT; e++) {
        int rows = 0;
        for (size_t i = 0; i < sizeof all_paths / sizeof all_paths[0]; i++)
            for (size_t k = 0; k < all_paths[i]->rows; k++)
                rows += all_paths[i]->table[k].entry == e;
        if (!rows)
            tap_fail(__FILE__, __LINE__, "no path expects anything of %s", entry_name[e]);
    }
}

/* The checks themselves can fail: each one sees what it looks for. */
static void test_the_checks_see_what_they_look_for(void)
{
    char before[8192], after[8192];
    cachelock_t *lock = BOGUS;
    snprintf(cache, sizeof cache, "%s/c", tap_dir);
    prepare("s");
    long blocks = heap_blocks();
    void *volatile p = malloc(16);
    CHECK(heap_blocks() != blocks);
    free(p);
    CHECK_EQ(heap_blocks(), blocks);
    int fds = count_lib_fds();
    int fd = open(lock_path("s"), O_RDONLY | O_CLOEXEC);
    CHECK_EQ(count_lib_fds(), fds + 1);
    CHECK(!held_by_someone("s"));
    CHECK(flock(fd, LOCK_EX) == 0);
    CHECK(held_by_someone("s"));
    close(fd);
    snapshot(before, sizeof before);
    prepare("x");
    snapshot(after, sizeof after);
    CHECK(strcmp(before, after) != 0);
    install(E_FLOCK, 1, ENOLCK);
    CHECK_EQ(cachelock_try_acquire(cache, "s", &lock), -ENOLCK);
    CHECK(F.hit && F.calls[E_FLOCK] == 1);
    uninstall();
    CHECK(lock == NULL);
    cachelock_close_idle();
}

#define CASE(fn, path) static void fn(void) { run_path(&path); }
CASE(test_faults_acquire_fresh_cache, p_fresh)
CASE(test_faults_acquire_existing_cache, p_existing)
CASE(test_faults_acquire_kept_lock_file, p_kept_file)
CASE(test_faults_acquire_kept_locks_dir, p_kept_dir)
CASE(test_faults_acquire_only_locks_dir_kept, p_only_dir)
CASE(test_faults_acquire_low_descriptors, p_low_fds)
CASE(test_faults_acquire_busy_lock, p_busy)
CASE(test_faults_try_free_lock, p_try_free)
CASE(test_faults_try_busy_lock, p_try_busy)
CASE(test_faults_timed_wait_times_out, p_timed_out)
CASE(test_faults_timed_wait_gets_lock, p_timed_got)
CASE(test_faults_async_wait_cancelled, p_async_cancelled)
CASE(test_faults_async_wait_granted, p_async_granted)
CASE(test_faults_release_kept, p_release_kept)
CASE(test_faults_release_with_waiter, p_release_waiter)
CASE(test_faults_release_exposed, p_release_exposed)
CASE(test_faults_close_idle, p_close_idle)
CASE(test_faults_prune, p_prune)
CASE(test_faults_prune_recent, p_prune_recent)
CASE(test_faults_acquire_fresh_shared_cache, p_shared)
CASE(test_faults_prepare_fresh_cache, p_prepare)
CASE(test_faults_holders, p_holders)
CASE(test_faults_status, p_status)
CASE(test_faults_acquire_under_fair_policy, p_fair_policy)
CASE(test_faults_fair_acquire_free_lock, p_fair_free)
CASE(test_faults_fair_acquire_busy_lock, p_fair_busy)
CASE(test_faults_fair_try_queued_lock, p_fair_try)
CASE(test_faults_fair_async_wait_cancelled, p_fair_async_cancelled)
CASE(test_faults_fair_async_wait_granted, p_fair_async_granted)
CASE(test_faults_fair_policy_on, p_policy_on)
CASE(test_faults_fair_policy_off, p_policy_off)
CASE(test_faults_prune_sidecars, p_prune_sidecars)

TAP_MAIN(
    T(test_the_checks_see_what_they_look_for, 10),
    T(test_every_entry_is_faulted_on_some_path, 5),
    T(test_faults_acquire_fresh_cache, 20),
    T(test_faults_acquire_existing_cache, 20),
    T(test_faults_acquire_kept_lock_file, 10),
    T(test_faults_acquire_kept_locks_dir, 20),
    T(test_faults_acquire_only_locks_dir_kept, 20),
    T(test_faults_acquire_low_descriptors, 20),
    T(test_faults_acquire_busy_lock, 20),
    T(test_faults_try_free_lock, 20),
    T(test_faults_try_busy_lock, 20),
    T(test_faults_timed_wait_times_out, 60),
    T(test_faults_timed_wait_gets_lock, 30),
    T(test_faults_async_wait_cancelled, 30),
    T(test_faults_async_wait_granted, 30),
    T(test_faults_release_kept, 10),
    T(test_faults_release_with_waiter, 10),
    T(test_faults_release_exposed, 10),
    T(test_faults_close_idle, 10),
    T(test_faults_prune, 30),
    T(test_faults_prune_recent, 30),
    T(test_faults_acquire_fresh_shared_cache, 20),
    T(test_faults_prepare_fresh_cache, 20),
    T(test_faults_holders, 10),
    T(test_faults_status, 10),
    T(test_faults_acquire_under_fair_policy, 20),
    T(test_faults_fair_acquire_free_lock, 20),
    T(test_faults_fair_acquire_busy_lock, 30),
    T(test_faults_fair_try_queued_lock, 20),
    T(test_faults_fair_async_wait_cancelled, 30),
    T(test_faults_fair_async_wait_granted, 30),
    T(test_faults_fair_policy_on, 20),
    T(test_faults_fair_policy_off, 10),
    T(test_faults_prune_sidecars, 30),
)
