/*
 * filesystem.c - filesystems as far as locking goes: their names, which cache is
 * on which, and what a lock call's failure means there.
 *
 * The OS layer says what kind of filesystem a lock file is on (os_open,
 * os_fs_of); the policy is here and in acquire.c:
 *
 *   - local (the kernel's own locks): descriptors may be kept open and
 *     waiters may mark files (pool.c);
 *   - anything else (NFS, SMB, FUSE, 9p, virtiofs, other network
 *     filesystems, unknown): every release closes, nothing is marked, and
 *     CACHELOCK_F_LOCAL_ONLY refuses with -EREMOTE.  The lock itself is
 *     taken as everywhere: never skipped, and a failure is an error, never
 *     a silent success (Cargo skips locking on some network filesystems,
 *     and its users lost builds);
 *   - a read-only mount: shared locks on lock files that exist (acquire.c).
 *
 * Lock calls fail on such filesystems in ways they never do locally; each
 * gets its own code and a message that says what to do about it.
 */
#include "internal.h"

#include <stdio.h>
#include <string.h>

const char *cachelock_fs_name(int kind)
{
    switch (kind) {
    case CACHELOCK_FS_LOCAL:    return "local";
    case CACHELOCK_FS_NFS:      return "nfs";
    case CACHELOCK_FS_SMB:      return "smb";
    case CACHELOCK_FS_FUSE:     return "fuse";
    case CACHELOCK_FS_9P:       return "9p";
    case CACHELOCK_FS_VIRTIOFS: return "virtiofs";
    case CACHELOCK_FS_NETWORK:  return "network";
    default:                    return "unknown";
    }
}

static int fs_of(const char *cache_dir)
{
    struct cachelock__path p;
    int rc = cachelock__path_build(&p, cache_dir, "x", 0);
    if (rc < 0)
        return rc;
    /* .locks where the lock files are; the cache directory itself before
     * the first acquire made .locks. */
    p.buf[p.locks_len] = '\0';
    rc = cachelock__os_fs_of(p.buf, "read the filesystem of");
    if (rc == -ENOENT) {
        p.buf[p.dir_len] = '\0';
        rc = cachelock__os_fs_of(p.buf, "read the filesystem of");
    }
    cachelock__path_free(&p);
    return rc;
}

int cachelock_fs_of(const char *cache_dir)
{
    int old = cachelock__cancel_off();
    int rc = fs_of(cache_dir);
    cachelock__cancel_restore(old);
    return rc;
}

int cachelock__fs_refuse(const char *path, int fs)
{
    return cachelock__failf(-EREMOTE, "cannot lock '%s': the cache is on %s, not a local "
                            "filesystem, and CACHELOCK_F_LOCAL_ONLY was given (locks there may "
                            "not exclude other machines or other paths to the same files)",
                            path, fs == CACHELOCK_FS_UNKNOWN ? "a filesystem of unknown kind"
                                                             : cachelock_fs_name(fs));
}

int cachelock__fs_lock_error(int rc, const char *path, const struct cachelock__handle *h,
                             cachelock_mode_t mode)
{
    const char *fs = cachelock_fs_name(h->fs);

    switch (-rc) {
    case ENOLCK:
        if (h->fs == CACHELOCK_FS_NFS)
            return cachelock__failf(-ENOLCK, "cannot lock '%s': %s (the NFS lock manager refused "
                                    "or did not answer: lockd and rpc.statd must run on this "
                                    "client and on the server)", path, cachelock_strerror(ENOLCK));
        return cachelock__failf(-ENOLCK, "cannot lock '%s': %s (the filesystem, %s, could not "
                                "record the lock)", path, cachelock_strerror(ENOLCK), fs);
    case EOPNOTSUPP:
#if ENOTSUP != EOPNOTSUPP
    case ENOTSUP:
#endif
        return cachelock__failf(-EOPNOTSUPP, "cannot lock '%s': %s (the filesystem, %s, does not "
                                "support flock(2) locks: nothing was locked)", path,
                                cachelock_strerror(EOPNOTSUPP), fs);
    case ENOSYS:
        return cachelock__failf(-ENOSYS, "cannot lock '%s': %s (the filesystem, %s, has no "
                                "flock(2): nothing was locked)", path, cachelock_strerror(ENOSYS),
                                fs);
    case EBADF:
        /* NFS (and SMB) turn flock(2) into a byte-range lock, and the
         * server grants an exclusive one only to a file open for writing:
         * a lock file this user may only read gives EBADF there. */
        if (mode == CACHELOCK_EXCLUSIVE && cachelock__os_fd_readonly(h->fd) == 1)
            return cachelock__failf(-EACCES, "cannot lock '%s' exclusively: this user may only "
                                    "read the lock file, and on %s an exclusive lock needs write "
                                    "access (make it group-writable, or take a shared lock)",
                                    path, fs);
        break;
    }
    return cachelock__fail(rc, rc == -EINTR ? "wait for lock" : "lock", path);
}
