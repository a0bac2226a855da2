/*
 * file.c - opening, locking and checking lock files on Unix.
 *
 * Why flock(2) and not fcntl(2) byte-range locks: POSIX fcntl locks belong
 * to the process, not to the open file, so closing ANY descriptor of the
 * file drops them (SQLite's "POSIX advisory locks are broken by design"
 * essay), two threads of one process never exclude each other, and they are
 * not inherited sensibly.  flock(2) locks belong to the open file
 * description: each acquire opens its own, so threads exclude each other
 * like processes, and the lock lives exactly as long as that description.
 * It is also what the Rust original (fs2/fs4), util-linux flock(1) and
 * Python's filelock use, so we all exclude one another.
 *
 * Path handling: .locks is opened with O_NOFOLLOW|O_DIRECTORY and the lock
 * file is opened relative to that descriptor with O_NOFOLLOW, every time,
 * so a symbolic link planted as .locks or as the lock file is refused
 * (ELOOP) instead of followed out of the cache, and nothing is ever created
 * or locked outside it.  The cache directory itself may be a symlink
 * (~/.cache often is).  Files are created 0666 and directories 0777, minus
 * the umask, so a group-shared cache with a permissive umask or default
 * ACLs works.  In a set-group-ID .locks (the usual way to share a
 * directory with a group: new files and directories take its group),
 * .locks and the lock files of their owner are also given group read and
 * write permission, whatever that owner's umask: one member with umask 022
 * must not shut the others out of a shared cache.
 *
 * Permissions: a lock file that cannot be opened for writing is opened
 * read-only, since flock(2) needs no write access on a local filesystem.
 * Opening with O_CREAT an existing file of another user in a world-writable
 * sticky directory fails with EACCES under fs.protected_regular, even when
 * the file is writable: so after EACCES the file is opened again without
 * O_CREAT before falling back to read-only.  On a read-only filesystem (a
 * read-only bind mount of the cache) existing lock files are opened
 * read-only, and acquire.c allows only shared locks there.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* .locks is opened only to open files relative to it, and to be kept for
 * that: O_PATH needs no read permission and cannot read.  Elsewhere a
 * directory opened O_RDONLY does the same. */
#if !USE_O_PATH
#undef O_PATH
#endif
#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* Every open of a lock file: never through a symbolic link, never inherited
 * across exec(2), never a controlling terminal, and O_NONBLOCK so that a
 * FIFO planted at the lock path cannot hang the open (flock(2) ignores
 * it). */
#define LOCK_FILE_OPEN_FLAGS (O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

int cachelock__os_keep_high(int fd)
{
    int nfd;
    if (fd < 0 || fd > 2)
        return fd;
    nfd = cachelock__sys.fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0) {
        /* F_DUPFD says EINVAL when 3 is at or above RLIMIT_NOFILE: the
         * truth is that no descriptor is left. */
        int saved = errno == EINVAL ? EMFILE : errno;
        cachelock__sys.close(fd);
        errno = saved;
        return -1;
    }
    cachelock__sys.close(fd);
    return nfd;
}

/* The directory p->buf[0..len) as a C string, for a moment: the byte at len
 * is swapped for a NUL and put back by dir_end().  No copy, no stack. */
static char dir_begin(struct cachelock__path *p, size_t len)
{
    char c = p->buf[len];
    p->buf[len] = '\0';
    return c;
}

static void dir_end(struct cachelock__path *p, size_t len, char c)
{
    p->buf[len] = c;
}

/* mkdir -p of the cache directory, then mkdir of .locks.  An existing
 * directory is fine; the open that follows finds out whether what exists is
 * really a directory.  Nothing this creates is ever removed again: another
 * process may start using a new directory the moment it exists. */
static int make_dirs(struct cachelock__path *p)
{
    char c = dir_begin(p, p->locks_len);
    int rc = cachelock__sys.mkdir(p->buf, 0777) == 0 || errno == EEXIST ? 0 : -errno;
    dir_end(p, p->locks_len, c);
    if (rc == 0)
        return 0;
    if (rc != -ENOENT) {
        c = dir_begin(p, p->locks_len);
        rc = cachelock__fail(rc, "create lock directory", p->buf);
        dir_end(p, p->locks_len, c);
        return rc;
    }

    /* The cache directory (or a parent) is missing too.  Climb up until a
     * directory exists, then create downwards, like mkdir -p but without
     * touching the ancestors that exist (they may not be ours to stat). */
    char *dir = cachelock__sys.malloc(p->locks_len + 1);
    if (!dir) {
        c = dir_begin(p, p->dir_len);
        rc = cachelock__fail(-ENOMEM, "create cache directory", p->buf);
        dir_end(p, p->dir_len, c);
        return rc;
    }
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';
    size_t end = p->dir_len;
    dir[end] = '\0';
    for (;;) {
        if (cachelock__sys.mkdir(dir, 0777) == 0 || errno == EEXIST)
            break;
        if (errno != ENOENT) {
            rc = cachelock__fail(-errno, "create cache directory", dir);
            goto out;
        }
        while (end > 1 && dir[end - 1] != '/')
            end--;
        while (end > 1 && dir[end - 1] == '/')
            end--;
        if (end <= 1) {
            memcpy(dir, p->buf, p->dir_len);
            dir[p->dir_len] = '\0';
            rc = cachelock__fail(-ENOENT, "create cache directory", dir);
            goto out;
        }
        dir[end] = '\0';
    }
    /* Now down again: every deeper component, then .locks. */
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';
    for (size_t i = end + 1; i <= p->locks_len; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        if (dir[i - 1] == '/')
            continue;       /* "a//b" */
        char saved = dir[i];
        dir[i] = '\0';
        if (cachelock__sys.mkdir(dir, 0777) < 0 && errno != EEXIST) {
            rc = cachelock__fail(-errno, i == p->locks_len ? "create lock directory"
                                                           : "create cache directory", dir);
            goto out;
        }
        dir[i] = saved;
    }
    rc = 0;
out:
    free(dir);
    return rc;
}

/* Open .locks without following a symbolic link there. */
static int open_locks_dir(struct cachelock__path *p)
{
    char c = dir_begin(p, p->locks_len);
    int dfd = cachelock__sys.open(p->buf, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        /* A symlink named .locks gives ELOOP with O_NOFOLLOW; with O_PATH
         * and O_DIRECTORY some kernels report ENOTDIR for it instead. */
        if (err == ENOTDIR) {
            struct stat st;
            if (cachelock__sys.fstatat(AT_FDCWD, p->buf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                err = ELOOP;
        }
        errno = err;
    }
    dir_end(p, p->locks_len, c);
    return dfd;
}

static void set_id(struct cachelock__fileid *id, const struct stat *st)
{
    id->dev = (uint64_t)st->st_dev;
    id->ino = (uint64_t)st->st_ino;
}

/* Open the lock file of p in the .locks directory dfd: *fd (3 or above)
 * and its identity (with its mode and owner in *st when st is not NULL).
 * 0, or OPENED_RDONLY_FS or OPENED_RDONLY when it could only be opened
 * read-only; -ENOENT (no message) when it does not exist and create is 0,
 * so that the caller can go the long way. */
static int open_in(int dfd, struct cachelock__path *p, int create, int *fdp,
                   struct cachelock__fileid *id, struct stat *stp)
{
    const char *file = cachelock__path_file(p);
    const int common = LOCK_FILE_OPEN_FLAGS;
    struct stat own = { 0 }, *st = stp ? stp : &own;
    int fd, rc, opened = 0;

    int missing = 0;
    fd = cachelock__sys.openat(dfd, file, O_RDWR | common | (create ? O_CREAT : 0), 0666);
    if (fd < 0 && errno == EACCES && create) {
        /* fs.protected_regular refuses O_CREAT on another user's file in
         * a world-writable sticky directory, even a writable one.  Without
         * O_CREAT it opens; ENOENT says it was the creation that failed. */
        fd = cachelock__sys.openat(dfd, file, O_RDWR | common);
        if (fd < 0 && errno == ENOENT) {
            errno = EACCES;
            missing = 1;
        } else if (fd < 0 && errno != EACCES) {
            missing = -1;   /* say what this open found */
        }
    }
    if (fd < 0 && !missing && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        /* A lock file we may only read can still be flock(2)ed; a
         * read-only filesystem still holds usable existing lock files. */
        int first = errno;
        opened = first == EROFS ? OPENED_RDONLY_FS : OPENED_RDONLY;
        fd = cachelock__sys.openat(dfd, file, O_RDONLY | common);
        if (fd < 0 && errno == ENOENT) {
            errno = first;
            missing = 1;    /* so it was the creation that failed */
        }
    }
    if (fd < 0) {
        if (errno == ENOENT && missing <= 0)
            return -ENOENT;
        /* "create" when there was nothing to open: the command line maps
         * that to EX_CANTCREAT, a file that exists but cannot be opened
         * to EX_NOINPUT. */
        if (create && errno == EROFS && missing > 0)
            return cachelock__failf(-EROFS, "cannot create lock file '%s': %s (the cache is on a "
                                    "read-only mount: only shared locks on lock files that "
                                    "exist already work there)", p->buf, cachelock_strerror(EROFS));
        if (create && (missing > 0 || errno == ENOSPC || errno == EDQUOT))
            return cachelock__fail(-errno, "create lock file", p->buf);
        return cachelock__fail(-errno, "open lock file", p->buf);
    }
    fd = cachelock__os_keep_high(fd);
    if (fd < 0)
        return cachelock__fail(-errno, "open lock file", p->buf);
    if (cachelock__sys.fstat(fd, st) < 0) {
        rc = cachelock__fail(-errno, "stat lock file", p->buf);
        cachelock__os_close(fd);
        return rc;
    }
    if (!S_ISREG(st->st_mode)) {
        cachelock__os_close(fd);
        return cachelock__failf(-ENXIO, "cannot open lock file '%s': not a regular file", p->buf);
    }
    set_id(id, st);
    *fdp = fd;
    return opened;
}

int cachelock__os_open_in(int dfd, struct cachelock__path *p, int *fd,
                          struct cachelock__fileid *id)
{
    return open_in(dfd, p, 0, fd, id, NULL);
}

/* A group-shared cache: .locks is set-group-ID (on Linux a directory made
 * in a set-group-ID directory inherits the bit and the group).  Give its
 * owner's .locks and lock files the group permissions that keep the cache
 * usable by every member: .locks rwx, a lock file rw (on NFS an exclusive
 * lock needs write access).  Only what this user owns can be changed; a
 * failure changes nothing else (the acquire goes on). */
static void share_with_group(int dfd, const struct stat *dir, int fd, const struct stat *file)
{
    uid_t me;
    if (!(dir->st_mode & S_ISGID))
        return;
    me = geteuid();
    if (dir->st_uid == me && (dir->st_mode & S_IRWXG) != S_IRWXG) {
        /* dfd may be an O_PATH descriptor, which fchmod(2) refuses: open
         * the very same directory through it (".", never a path that
         * someone could have turned into a symbolic link meanwhile). */
        int d = cachelock__sys.openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (d >= 0) {
            cachelock__sys.fchmod(d, (unsigned)(dir->st_mode & 07777) | S_IRWXG);
            cachelock__sys.close(d);
        }
    }
    if (file->st_uid == me && (file->st_mode & (S_IRGRP | S_IWGRP)) != (S_IRGRP | S_IWGRP))
        cachelock__sys.fchmod(fd, (unsigned)(file->st_mode & 07777) | S_IRGRP | S_IWGRP);
}

int cachelock__os_open(struct cachelock__path *p, int nocreate, int *fdp,
                       struct cachelock__fileid *id, int *local, struct cachelock__dir *keep)
{
    int mkdirs = 0, reopens = 0, dfd, rc;
    struct stat st, file = { 0 };

    *fdp = -1;
    *local = 0;
    if (keep)
        keep->fd = -1;
    for (;;) {
        dfd = open_locks_dir(p);
        if (dfd < 0) {
            /* Missing: create it.  Twice at most: a pruner elsewhere, or
             * someone cleaning up by hand, may remove what we just made. */
            if (errno == ENOENT && !nocreate && mkdirs++ < 2) {
                rc = make_dirs(p);
                if (rc < 0)
                    return rc;
                continue;
            }
            int err = -errno;
            char c = dir_begin(p, p->locks_len);
            rc = cachelock__fail(err, "open lock directory", p->buf);
            dir_end(p, p->locks_len, c);
            return rc;
        }
        rc = open_in(dfd, p, !nocreate, fdp, id, &file);
        if (rc == -ENOENT && !nocreate && reopens++ < 4) {
            /* .locks was removed between the two opens: start again. */
            cachelock__sys.close(dfd);
            continue;
        }
        if (rc == -ENOENT)
            cachelock__fail(rc, "open lock file", p->buf);
        break;
    }
    if (rc >= 0) {
        *local = cachelock__os_fs_kind_cached(p, dfd, id->dev);
        /* What .locks is: to keep it for later opens of its other lock
         * files when the caller wants it (and we can say what it is), and
         * to share a new lock file with the group. */
        if ((keep || !nocreate) && cachelock__sys.fstat(dfd, &st) == 0) {
            share_with_group(dfd, &st, *fdp, &file);
            if (keep) {
                set_id(&keep->id, &st);
                keep->local = *local;
                keep->fd = cachelock__os_keep_high(dfd);    /* closes dfd on failure */
                return rc;
            }
        }
    }
    cachelock__sys.close(dfd);
    return rc;
}

int cachelock__os_fd_readonly(int fd)
{
    int fl = cachelock__sys.fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    return (fl & O_ACCMODE) == O_RDONLY;
}

int cachelock__os_lock(int fd, cachelock_mode_t mode, int block)
{
    int op = (mode == CACHELOCK_SHARED ? LOCK_SH : LOCK_EX) | (block ? 0 : LOCK_NB);
    for (;;) {
        if (cachelock__sys.flock(fd, op) == 0)
            return 0;
        /* A blocking flock(2) is restarted by the kernel after a handler
         * with SA_RESTART, so EINTR here means a handler without it ran:
         * the caller asked to be interrupted.  A non-blocking one cannot
         * really be interrupted; retry it. */
        if (errno == EINTR && !block)
            continue;
        return errno == EAGAIN ? -EWOULDBLOCK : -errno;
    }
}

int cachelock__os_unlock(int fd)
{
    for (;;) {
        if (cachelock__sys.flock(fd, LOCK_UN) == 0)
            return 0;
        if (errno != EINTR)
            return -errno;
    }
}

void cachelock__os_close(int fd)
{
    /* Never retry close(2) on EINTR: on Linux the descriptor is gone
     * already, and a retry could close one another thread just opened. */
    int saved = errno;
    cachelock__sys.close(fd);
    errno = saved;
}

int cachelock__os_fd_id(int fd, struct cachelock__fileid *id)
{
    struct stat st;
    if (cachelock__sys.fstat(fd, &st) < 0)
        return errno > 0 ? -errno : -EIO;
    set_id(id, &st);
    return 0;
}

int cachelock__os_may_keep(const char *path)
{
    return path[0] == '/';
}

int cachelock__os_path_names(const char *path, int fd, const struct cachelock__fileid *id)
{
    struct stat st;
    (void)fd;   /* the path says it all: one fstatat(2) */
    /* The whole path, resolved now: a renamed lock file, .locks or cache
     * directory, a retargeted symbolic link on the way or a filesystem
     * mounted over it all make it name another file, or none. */
    if (cachelock__sys.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return cachelock__fail(-errno, "check lock file", path);
    }
    return (uint64_t)st.st_dev == id->dev && (uint64_t)st.st_ino == id->ino;
}

/* The waiter mark: one byte at the far end of the file's range, so that it
 * cannot meet a byte-range lock some other program takes on the data. */
#define MARK_OFFSET ((off_t)0x7ffffffffffffffeLL)

#if USE_OFD_MARKS
int cachelock__os_mark_waiting(int fd, cachelock_mode_t mode, int on)
{
    struct flock fl;
    (void)mode;     /* a mark is a read lock whatever the wait wants */
    memset(&fl, 0, sizeof fl);
    fl.l_type = on ? F_RDLCK : F_UNLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = MARK_OFFSET;
    fl.l_len = 1;
    if (cachelock__sys.fcntl(fd, F_OFD_SETLK, &fl) < 0)
        return -errno;
    return 0;
}

int cachelock__os_has_waiters(int fd)
{
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = MARK_OFFSET;
    fl.l_len = 1;
    /* If the test fails, assume a waiter: closing is always safe. */
    if (cachelock__sys.fcntl(fd, F_OFD_GETLK, &fl) < 0)
        return 1;
    return fl.l_type != F_UNLCK;
}
#else
/* Without OFD locks a waiter cannot mark a file, so a releaser must
 * assume one waits on every file: it closes, which the waiter's kqueue
 * watch (or its re-check timer) sees.  Released files are never kept open;
 * what the pool still keeps are descriptors of acquires that never got
 * their lock, which nobody waits to see closed. */
int cachelock__os_mark_waiting(int fd, cachelock_mode_t mode, int on)
{
    (void)fd;
    (void)mode;
    (void)on;
    return -ENOSYS;
}

int cachelock__os_has_waiters(int fd)
{
    (void)fd;
    return 1;
}
#endif

void *cachelock__os_mark_event(int fd)
{
    (void)fd;       /* the wait's inotify descriptor is what is polled */
    return NULL;
}

int cachelock__os_remove_held(struct cachelock__path *p, int fd,
                              const struct cachelock__fileid *id)
{
    static unsigned long counter;
    char tmp[64];
    struct stat st;
    int dfd, rc;

    (void)fd;       /* removed by name: Unix unlinks names, not files */
    dfd = open_locks_dir(p);
    if (dfd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 1;
        return cachelock__fail(-errno, "remove lock file", p->buf);
    }
    /* .locks looked up again may be another directory than the one our
     * file is in (renamed meanwhile): work only in a directory where the
     * name is our file right now; the descriptor keeps meaning that
     * directory whatever happens to its name later. */
    if (cachelock__sys.fstatat(dfd, cachelock__path_file(p), &st, AT_SYMLINK_NOFOLLOW) < 0) {
        rc = errno == ENOENT ? 1 : cachelock__fail(-errno, "remove lock file", p->buf);
        cachelock__sys.close(dfd);
        return rc;
    }
    if ((uint64_t)st.st_dev != id->dev || (uint64_t)st.st_ino != id->ino) {
        cachelock__sys.close(dfd);
        return 1;
    }
    /* unlink(2) removes whatever the name points to when it runs, and the
     * name may be renamed over between our check and the unlink.  So move
     * the name to a private one first (atomic), look at what we moved, and
     * remove only our own file; anything else goes back.  (What remains: a
     * file renamed onto the name in the microsecond between the check above
     * and the rename, and the name taken again before we put it back; then
     * the file stays under the private name, never removed.) */
    snprintf(tmp, sizeof tmp, ".prune-%ld-%lu.tmp", (long)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED));
    if (cachelock__sys.renameat(dfd, cachelock__path_file(p), dfd, tmp) < 0) {
        rc = errno == ENOENT ? 1 : cachelock__fail(-errno, "remove lock file", p->buf);
        cachelock__sys.close(dfd);
        return rc;
    }
    int ours = 0, err = 0;
    if (cachelock__sys.fstatat(dfd, tmp, &st, AT_SYMLINK_NOFOLLOW) < 0)
        err = -errno;
    else
        ours = (uint64_t)st.st_dev == id->dev && (uint64_t)st.st_ino == id->ino;
    if (ours && cachelock__sys.unlinkat(dfd, tmp, 0) == 0) {
        rc = 0;
    } else {
        if (ours)
            err = -errno;
        /* Not removed: not ours (someone renamed another file to this name
         * a moment ago), or we could not tell or not unlink.  Put it back,
         * unless the name has been taken again since (linkat(2) never
         * replaces); then it stays under the private name rather than being
         * removed while someone may hold it. */
        if (linkat(dfd, tmp, dfd, cachelock__path_file(p), 0) == 0) {
            cachelock__sys.unlinkat(dfd, tmp, 0);
        } else if (errno != EEXIST) {
            /* Neither removed nor back: say where it is.  (linkat is
             * not in the system-call table: this branch follows a race or
             * another failure, which the fault tests inject one at a time.) */
            int lerr = errno;
            char *c = strrchr(p->buf, '/');
            *c = '\0';
            rc = cachelock__failf(-lerr, "cannot put back lock file '%s/%s' from '%s/%s': %s",
                                  p->buf, c + 1, p->buf, tmp, cachelock_strerror(lerr));
            *c = '/';
            cachelock__sys.close(dfd);
            return rc;
        }
        rc = err < 0 ? cachelock__fail(err, "remove lock file", p->buf) : 1;
    }
    cachelock__sys.close(dfd);
    return rc;
}

int64_t cachelock__os_age_ms(int fd)
{
    struct stat st;
    struct timespec now;
    if (cachelock__sys.fstat(fd, &st) < 0)
        return -errno;
    clock_gettime(CLOCK_REALTIME, &now);
#ifdef __APPLE__
    const struct timespec changed = st.st_mtimespec;
#else
    const struct timespec changed = st.st_mtim;
#endif
    int64_t age = ((int64_t)now.tv_sec - changed.tv_sec) * 1000 +
                  (now.tv_nsec - changed.tv_nsec) / 1000000;
    return age < 0 ? 0 : age;
}

int cachelock__os_stat(const char *path, struct cachelock__fileid *id)
{
    struct stat st;
    if (cachelock__sys.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cachelock__fail(-errno, "stat lock file", path);
    set_id(id, &st);
    return 0;
}

int cachelock__os_stat_quiet(const char *path, struct cachelock__fileid *id)
{
    struct stat st;
    if (cachelock__sys.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return -errno;
    set_id(id, &st);
    return 0;
}

int cachelock__os_list(struct cachelock__path *p, size_t len,
                       int (*fn)(const char *name, void *ctx), void *ctx)
{
    char c = dir_begin(p, len);
    int dfd = cachelock__sys.open(p->buf, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (dfd < 0) {
        rc = errno == ENOENT ? 0 : cachelock__fail(-errno, "open lock directory", p->buf);
        goto out;
    }
    d = fdopendir(dfd);
    if (!d) {
        rc = cachelock__fail(-errno, "read lock directory", p->buf);
        cachelock__sys.close(dfd);
        goto out;
    }
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno)
                rc = cachelock__fail(-errno, "read lock directory", p->buf);
            break;
        }
        rc = fn(e->d_name, ctx);
        if (rc < 0)
            break;
    }
    closedir(d);
out:
    dir_end(p, len, c);
    return rc;
}

int64_t cachelock__os_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---- fair mode's files: the sidecar and the policy marker ---------------- */

int cachelock__os_sidecar_id(struct cachelock__path *p, struct cachelock__fileid *id)
{
    struct stat st;
    cachelock__path_sidecar(p);
    int rc = cachelock__sys.fstatat(AT_FDCWD, p->buf, &st, AT_SYMLINK_NOFOLLOW) == 0 ? 0 : -errno;
    cachelock__path_unsidecar(p);
    if (rc == 0)
        set_id(id, &st);
    return rc;
}

int cachelock__os_sidecar_remove(struct cachelock__path *p, const struct cachelock__fileid *id)
{
    cachelock__path_sidecar(p);
    /* No descriptor of the sidecar is at hand: -1, as the removal of a
     * lock file that is not kept open (os_remove_held). */
    int rc = cachelock__os_remove_held(p, -1, id);
    cachelock__path_unsidecar(p);
    return rc;
}

int cachelock__os_sidecar_open(struct cachelock__path *p, int *fdp, struct cachelock__fileid *id)
{
    /* "{source}.lock" becomes "{source}.fifo" in place, for a moment: the
     * same length, so a name that fits NAME_MAX still does. */
    cachelock__path_sidecar(p);
    struct stat st = { 0 }, dst;
    int dfd, fd = -1, err = -EIO;       /* until the sidecar is checked */

    dfd = open_locks_dir(p);
    if (dfd < 0) {
        err = -errno;
    } else {
        err = 0;
        /* Read and write, always: the sidecar holds a hint that waiters
         * write.  Never created through a symbolic link, and only in the
         * .locks directory that exists (the lock file is open in it). */
        fd = cachelock__sys.openat(dfd, cachelock__path_file(p),
                                   O_RDWR | O_CREAT | LOCK_FILE_OPEN_FLAGS, 0666);
        if (fd < 0)
            err = -errno;
        else if ((fd = cachelock__os_keep_high(fd)) < 0)
            err = -errno;
        else if (cachelock__sys.fstat(fd, &st) < 0)
            err = -errno;
        else if (!S_ISREG(st.st_mode))
            err = -ENXIO;       /* not ours to write a hint into */
        /* In a group-shared cache the other members write the hint too:
         * ours gets the group's read and write, as lock files do (.locks
         * is looked at only when the sidecar lacks them). */
        else if (st.st_uid == geteuid() &&
                 (st.st_mode & (S_IRGRP | S_IWGRP)) != (S_IRGRP | S_IWGRP) &&
                 cachelock__sys.fstat(dfd, &dst) == 0)
            share_with_group(dfd, &dst, fd, &st);
        if (err < 0 && fd >= 0)
            cachelock__os_close(fd);
        cachelock__sys.close(dfd);
    }
    cachelock__path_unsidecar(p);
    if (err < 0 || fd < 0)
        return err < 0 ? err : -EIO;
    set_id(id, &st);
    *fdp = fd;
    return 0;
}

/* p->buf names the policy marker, "{cache}/.locks/.fair", until
 * marker_end(): the file part of a lock path ("{source}.lock", at least 6
 * bytes) is overwritten in place and put back. */
static void marker_begin(struct cachelock__path *p, char saved[sizeof POLICY_MARKER])
{
    char *file = p->buf + p->locks_len + 1;
    memcpy(saved, file, sizeof POLICY_MARKER);
    memcpy(file, POLICY_MARKER, sizeof POLICY_MARKER);
}

static void marker_end(struct cachelock__path *p, const char saved[sizeof POLICY_MARKER])
{
    memcpy(p->buf + p->locks_len + 1, saved, sizeof POLICY_MARKER);
}

int cachelock__os_policy_read(struct cachelock__path *p)
{
    char saved[sizeof POLICY_MARKER];
    struct stat st;
    marker_begin(p, saved);
    /* A regular file, not followed through a symbolic link.  Anything else,
     * or no answer, is no policy: the acquire then does what its own flags
     * say. */
    int rc = cachelock__sys.fstatat(AT_FDCWD, p->buf, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
             S_ISREG(st.st_mode);
    marker_end(p, saved);
    return rc;
}

static const char policy_note[] =
    "cachelock: fair mode is the policy of this cache: every acquire of libcachelock\n"
    "queues in the order of arrival.  `cachelock fair off CACHE_DIR` removes it.\n";

int cachelock__os_policy_write(struct cachelock__path *p, int on)
{
    char saved[sizeof POLICY_MARKER];
    int dfd, fd, rc = 0;

    for (int mkdirs = 0;; mkdirs++) {
        dfd = open_locks_dir(p);
        if (dfd >= 0)
            break;
        if (errno == ENOENT && !on)
            return 0;       /* no .locks, no marker: off already */
        if (errno == ENOENT && mkdirs < 2) {
            rc = make_dirs(p);
            if (rc < 0)
                return rc;
            continue;
        }
        rc = -errno;
        char c = dir_begin(p, p->locks_len);
        rc = cachelock__fail(rc, "open lock directory", p->buf);
        dir_end(p, p->locks_len, c);
        return rc;
    }
    marker_begin(p, saved);
    if (!on) {
        if (cachelock__sys.unlinkat(dfd, POLICY_MARKER, 0) < 0 && errno != ENOENT)
            rc = cachelock__fail(-errno, "remove policy marker", p->buf);
        goto out;
    }
    /* Fair mode must work here before every user is told to use it. */
    struct stat dst;
    int kind = cachelock__sys.fstat(dfd, &dst) == 0
                   ? cachelock__os_fs_kind_fd(dfd, (uint64_t)dst.st_dev) : CACHELOCK_FS_UNKNOWN;
    if (kind != CACHELOCK_FS_LOCAL) {
        rc = cachelock__failf(-ENOTSUP, "cannot make '%.*s' fair: fair mode needs a local "
                              "filesystem, and this one is %s (its byte-range locks may be "
                              "flock(2)'s own)", (int)p->dir_len, p->buf,
                              kind == CACHELOCK_FS_UNKNOWN ? "of unknown kind"
                                                           : cachelock_fs_name(kind));
        goto out;
    }
    int made = 1;
    fd = cachelock__sys.openat(dfd, POLICY_MARKER,
                               O_RDWR | O_CREAT | O_EXCL | LOCK_FILE_OPEN_FLAGS, 0666);
    if (fd < 0 && errno == EEXIST) {
        made = 0;
        fd = cachelock__sys.openat(dfd, POLICY_MARKER, O_RDWR | LOCK_FILE_OPEN_FLAGS);
    }
    if (fd < 0) {
        rc = cachelock__fail(-errno, "create policy marker", p->buf);
        goto out;
    }
    fd = cachelock__os_keep_high(fd);
    if (fd < 0) {
        rc = cachelock__fail(-errno, "create policy marker", p->buf);
        if (made)
            cachelock__sys.unlinkat(dfd, POLICY_MARKER, 0);
        goto out;
    }
    int64_t at;
    rc = cachelock__os_range_test(fd, Q_ALL, 1, &at);
    if (rc == -ENOTSUP) {
        rc = cachelock__failf(-ENOTSUP, "cannot make '%.*s' fair: fair mode needs open file "
                              "description locks (F_OFD_SETLK, Linux 3.15 and later), which "
                              "this system does not have",
                              (int)p->dir_len, p->buf);
    } else if (rc < 0) {
        rc = cachelock__fail(rc, "test locks on policy marker", p->buf);
    } else {
        /* The note is for people; the policy is the marker's presence, so
         * a failure to write it changes nothing. */
        cachelock__os_pwrite(fd, policy_note, sizeof policy_note - 1, 0);
        rc = 0;
    }
    cachelock__os_close(fd);
    /* Refused: a marker made just now goes again. */
    if (rc < 0 && made)
        cachelock__sys.unlinkat(dfd, POLICY_MARKER, 0);
out:
    marker_end(p, saved);
    cachelock__sys.close(dfd);
    return rc;
}
