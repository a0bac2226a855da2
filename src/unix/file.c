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
 * file is opened relative to it with O_NOFOLLOW, so a symbolic link planted
 * as .locks or as the lock file is refused (ELOOP) instead of followed out of
 * the cache.  The cache directory itself may be a symlink (~/.cache often
 * is).  Files are created 0666 and directories 0777, minus the umask, so a
 * group-shared cache with a permissive umask or default ACLs works.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* Every open of a lock file, the long way (os_open) and the quick one
 * (os_open_known): never through a symbolic link, never inherited across
 * exec(2), never a controlling terminal, and O_NONBLOCK so that a FIFO
 * planted at the lock path cannot hang the open (flock(2) ignores it). */
#define LOCK_FILE_OPEN_FLAGS (O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK)

/* Keep the library's descriptors off 0, 1 and 2: if a program runs with
 * stdin closed, a lock file opened as descriptor 0 would later be read or
 * written by code that thinks it is stdin. */
static int keep_high(int fd)
{
    int nfd;
    if (fd < 0 || fd > 2)
        return fd;
    nfd = cachelock__sys.fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (nfd < 0) {
        int saved = errno;
        cachelock__sys.close(fd);
        errno = saved;
        return -1;
    }
    cachelock__sys.close(fd);
    return nfd;
}

int cachelock__os_keep_high(int fd)
{
    return keep_high(fd);
}

/* mkdir one directory of the path (the first len bytes of p, in dir); on
 * failure undo what this call created so far. */
static int make_one(const struct cachelock__path *p, const char *dir, size_t len,
                    const char *op, size_t *created_from)
{
    if (cachelock__sys.mkdir(dir, 0777) == 0) {
        if (!*created_from)
            *created_from = len;
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    int rc = cachelock__fail(-errno, op, dir);
    cachelock__os_undo_create(p, *created_from);
    *created_from = 0;
    return rc;
}

/* mkdir -p of the cache directory, then mkdir of .locks.  An existing
 * directory is fine; the open that follows finds out whether what exists is
 * really a directory.  *created_from is set to the length of the shallowest
 * directory this call created (0: none), so that a failure later in the
 * same acquire can take them away again (undo_create). */
static int make_dirs(const struct cachelock__path *p, size_t *created_from)
{
    char dir[PATH_MAX];
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';

    *created_from = 0;
    if (cachelock__sys.mkdir(dir, 0777) == 0) {
        *created_from = p->locks_len;
        return 0;
    }
    if (errno == EEXIST)
        return 0;
    if (errno != ENOENT)
        return cachelock__fail(-errno, "create lock directory", dir);

    /* The cache directory (or a parent) is missing too.  Climb up until a
     * directory exists, then create downwards, like mkdir -p but without
     * touching the ancestors that exist (they may not be ours to stat). */
    size_t end = p->dir_len;
    dir[end] = '\0';
    for (;;) {
        if (cachelock__sys.mkdir(dir, 0777) == 0) {
            *created_from = end;
            break;
        }
        if (errno == EEXIST)
            break;
        if (errno != ENOENT)    /* nothing created yet: nothing to undo */
            return cachelock__fail(-errno, "create cache directory", dir);
        while (end > 1 && dir[end - 1] != '/')
            end--;
        while (end > 1 && dir[end - 1] == '/')
            end--;
        if (end <= 1)
            return cachelock__fail(-ENOENT, "create cache directory", p->buf);
        dir[end] = '\0';
    }
    /* Now down again: every deeper component. */
    memcpy(dir, p->buf, p->dir_len);
    dir[p->dir_len] = '\0';
    for (size_t i = end + 1; i <= p->dir_len; i++) {
        if (dir[i] != '/' && dir[i] != '\0')
            continue;
        if (i > 0 && dir[i - 1] == '/')
            continue;       /* "a//b" */
        char c = dir[i];
        dir[i] = '\0';
        int rc = make_one(p, dir, i, "create cache directory", created_from);
        if (rc < 0)
            return rc;
        dir[i] = c;
    }
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';
    return make_one(p, dir, p->locks_len, "create lock directory", created_from);
}

/* Take away what a failed acquire created: the lock file (only when its
 * .locks directory is new too, so the file cannot be anyone else's) and the
 * directories, deepest first.  rmdir(2) fails harmlessly on a directory that
 * someone else has meanwhile put something in.  A process that opened the
 * new file in the microseconds between finds it gone at its identity check
 * and starts again. */
void cachelock__os_undo_create(const struct cachelock__path *p, size_t created_from)
{
    char dir[PATH_MAX];
    int saved = errno;
    if (!created_from)
        return;
    cachelock__sys.unlink(p->buf);
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';
    for (size_t len = p->locks_len; len >= created_from; len--) {
        if (dir[len] == '/' || dir[len] == '\0') {
            dir[len] = '\0';
            if (cachelock__sys.rmdir(dir) < 0 && errno != ENOENT)
                break;      /* not empty: someone else's now */
        }
        if (len == 0)
            break;
    }
    errno = saved;
}

static int open_locks_dir(const struct cachelock__path *p)
{
    char dir[PATH_MAX];
    int dfd;
    memcpy(dir, p->buf, p->locks_len);
    dir[p->locks_len] = '\0';
    dfd = cachelock__sys.open(dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        int err = errno;
        /* A symlink named .locks gives ELOOP with O_NOFOLLOW; with O_PATH
         * and O_DIRECTORY some kernels report ENOTDIR for it instead. */
        if (err == ENOTDIR) {
            struct stat st;
            if (cachelock__sys.fstatat(AT_FDCWD, dir, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISLNK(st.st_mode))
                err = ELOOP;
        }
        errno = err;
    }
    return dfd;
}

/* Filesystems whose locks are the local kernel's own (fs/locks.c), where
 * flock(2) and OFD byte-range locks never interact.  Network and FUSE
 * filesystems may implement or emulate both with one server-side
 * mechanism (NFS turns flock into a whole-file byte-range lock), so there
 * descriptors are not pooled and waiters put no marks: releases close, as
 * they did before the pool existed.  Magic numbers from statfs(2). */
static int is_local_fs(long type)
{
    switch ((unsigned long)type & 0xffffffffu) {
    case 0xEF53:        /* ext2, ext3, ext4 */
    case 0x58465342:    /* xfs */
    case 0x9123683E:    /* btrfs */
    case 0x01021994:    /* tmpfs */
    case 0x858458F6:    /* ramfs */
    case 0x794C7630:    /* overlayfs */
    case 0x2FC12FC1:    /* zfs */
    case 0xF2F52010:    /* f2fs */
    case 0xCA451A4E:    /* bcachefs */
    case 0x52654973:    /* reiserfs */
    case 0x3153464A:    /* jfs */
        return 1;
    default:
        return 0;
    }
}

static int dir_is_local(int dfd)
{
    struct statfs sf;
    /* Unknown means not local: no pool, the behaviour that is always safe. */
    return cachelock__sys.fstatfs(dfd, &sf) == 0 && is_local_fs((long)sf.f_type);
}

int cachelock__os_open(const struct cachelock__path *p, int nocreate, int *fdp,
                       struct cachelock__fileid *id, int *local, size_t *created_from)
{
    const char *file = cachelock__path_file(p);
    const int common = LOCK_FILE_OPEN_FLAGS;
    int mkdirs = 0, reopens = 0, dfd, fd, rc;
    struct stat st;

    *fdp = -1;
    *local = 0;
    *created_from = 0;
    for (;;) {
        dfd = open_locks_dir(p);
        if (dfd < 0) {
            /* Missing: create it.  Twice at most: a pruner or an undo of a
             * failed acquire elsewhere may remove what we just created. */
            if (errno == ENOENT && !nocreate && mkdirs++ < 2) {
                size_t made;
                rc = make_dirs(p, &made);
                if (rc < 0) {
                    cachelock__os_undo_create(p, *created_from);
                    *created_from = 0;
                    return rc;
                }
                if (made && (!*created_from || made < *created_from))
                    *created_from = made;
                continue;
            }
            char dir[PATH_MAX];
            int err = -errno;
            memcpy(dir, p->buf, p->locks_len);
            dir[p->locks_len] = '\0';
            rc = cachelock__fail(err, "open lock directory", dir);
            goto undo;
        }

        /* O_NONBLOCK: opening a FIFO planted at the lock path must not hang
         * waiting for a writer; flock(2) ignores the flag. */
        fd = cachelock__sys.openat(dfd, file, O_RDWR | common | (nocreate ? 0 : O_CREAT), 0666);
        if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
            /* A lock file we may only read can still be flock(2)ed; a
             * read-only filesystem still holds usable existing lock files. */
            int first = errno;
            fd = cachelock__sys.openat(dfd, file, O_RDONLY | common);
            if (fd < 0 && errno == ENOENT)
                errno = first;
        }
        if (fd < 0 && errno == ENOENT && !nocreate && mkdirs < 2 && reopens++ < 4) {
            /* .locks was removed between the two opens: start again. */
            cachelock__sys.close(dfd);
            continue;
        }
        int err = errno;
        if (fd >= 0)
            *local = dir_is_local(dfd);
        cachelock__sys.close(dfd);
        if (fd < 0) {
            rc = cachelock__fail(-err, "open lock file", p->buf);
            goto undo;
        }
        break;
    }

    fd = keep_high(fd);
    if (fd < 0) {
        rc = cachelock__fail(-errno, "open lock file", p->buf);
        goto undo;
    }
    if (cachelock__sys.fstat(fd, &st) < 0) {
        rc = cachelock__fail(-errno, "stat lock file", p->buf);
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = cachelock__failf(-ENXIO, "cannot open lock file '%s': not a regular file", p->buf);
        goto close_fd;
    }
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    *fdp = fd;
    return 0;

close_fd:
    cachelock__os_close(fd);
undo:
    cachelock__os_undo_create(p, *created_from);
    *created_from = 0;
    return rc;
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

int cachelock__os_open_known(const struct cachelock__path *p, int nocreate)
{
    /* .locks was opened with O_NOFOLLOW and found to be a directory within
     * the last second, so the whole path can be opened in one call; the
     * last component still refuses symbolic links. */
    int fd = cachelock__sys.open(p->buf, O_RDWR | LOCK_FILE_OPEN_FLAGS | (nocreate ? 0 : O_CREAT),
                                 0666);
    if (fd >= 0) {
        fd = keep_high(fd);
        return fd >= 0 ? fd : -errno;
    }
    switch (errno) {
    case ENOENT: case ENOTDIR: case ELOOP:      /* .locks changed: create, explain */
    case EACCES: case EPERM: case EROFS:        /* read-only fallback */
    case EINTR:
        return -EAGAIN;     /* go the long way (os_open) */
    default:
        return -errno;      /* EMFILE, EISDIR, ...: the long way would say the same */
    }
}

/* Record what fstat(2) said as h's identity, once: a lock file must be a
 * regular file (a FIFO or socket planted at the path is refused). */
static int set_id(cachelock_t *h, const struct stat *st)
{
    if (!S_ISREG(st->st_mode))
        return cachelock__failf(-ENXIO, "cannot open lock file '%s': not a regular file", h->path);
    h->id.dev = (uint64_t)st->st_dev;
    h->id.ino = (uint64_t)st->st_ino;
    h->flags |= H_ID_KNOWN;
    return 0;
}

int cachelock__os_read_id(cachelock_t *h)
{
    struct stat st;
    if (cachelock__sys.fstat(h->fd, &st) < 0)
        return cachelock__fail(-errno, "stat lock file", h->path);
    return set_id(h, &st);
}

/* How long a path resolution is trusted for a file that still has its one
 * link: catches a renamed .locks or cache directory within that time.
 * Removal (pruning, rm -rf) is seen at once through the link count. */
#define PATH_TRUST_MS 1000

int cachelock__os_check_granted(cachelock_t *h)
{
    struct stat st;
    if (cachelock__sys.fstat(h->fd, &st) < 0)
        return cachelock__fail(-errno, "stat lock file", h->path);
    if (!(h->flags & H_ID_KNOWN)) {
        int rc = set_id(h, &st);
        if (rc < 0)
            return rc;
    }
    if (st.st_nlink == 0)
        return 0;       /* unlinked: pruned or deleted while we waited */
    int64_t now = cachelock__os_now_coarse_ms();
    if (st.st_nlink == 1 && now - h->checked_ms < PATH_TRUST_MS)
        return 1;
    /* A second link (a hard-linked copy of the cache) or an old
     * resolution: look the path up again. */
    if (cachelock__sys.fstatat(AT_FDCWD, h->path, &st, AT_SYMLINK_NOFOLLOW) < 0) {
        if (errno == ENOENT)
            return 0;
        return cachelock__fail(-errno, "check lock file", h->path);
    }
    if ((uint64_t)st.st_dev != h->id.dev || (uint64_t)st.st_ino != h->id.ino)
        return 0;
    h->checked_ms = now;
    return 1;
}

/* The waiter mark: one byte at the far end of the file's range, so that it
 * cannot meet a byte-range lock some other program takes on the data. */
#define MARK_OFFSET ((off_t)0x7ffffffffffffffeLL)

int cachelock__os_mark_waiting(int fd, int on)
{
    struct flock fl;
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

int64_t cachelock__os_now_coarse_ms(void)
{
    struct timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cachelock__os_unlink(const struct cachelock__path *p)
{
    if (cachelock__sys.unlink(p->buf) < 0)
        return cachelock__fail(-errno, "remove lock file", p->buf);
    return 0;
}

int64_t cachelock__os_age_ms(int fd)
{
    struct stat st;
    struct timespec now;
    if (cachelock__sys.fstat(fd, &st) < 0)
        return -errno;
    clock_gettime(CLOCK_REALTIME, &now);
    int64_t age = ((int64_t)now.tv_sec - st.st_mtim.tv_sec) * 1000 +
                  (now.tv_nsec - st.st_mtim.tv_nsec) / 1000000;
    return age < 0 ? 0 : age;
}

int cachelock__os_stat(const char *path, struct cachelock__fileid *id)
{
    struct stat st;
    if (cachelock__sys.fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cachelock__fail(-errno, "stat lock file", path);
    id->dev = (uint64_t)st.st_dev;
    id->ino = (uint64_t)st.st_ino;
    return 0;
}

int cachelock__os_list(const char *dir, int (*fn)(const char *name, void *ctx), void *ctx)
{
    int dfd = cachelock__sys.open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (dfd < 0) {
        if (errno == ENOENT)
            return 0;
        return cachelock__fail(-errno, "open lock directory", dir);
    }
    d = fdopendir(dfd);
    if (!d) {
        rc = cachelock__fail(-errno, "read lock directory", dir);
        cachelock__sys.close(dfd);
        return rc;
    }
    for (;;) {
        errno = 0;
        e = readdir(d);
        if (!e) {
            if (errno)
                rc = cachelock__fail(-errno, "read lock directory", dir);
            break;
        }
        rc = fn(e->d_name, ctx);
        if (rc < 0)
            break;
    }
    closedir(d);
    return rc;
}

int64_t cachelock__os_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}
