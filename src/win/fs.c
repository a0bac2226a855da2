/*
 * fs.c - what Windows can say about a cache's filesystem and about who
 * holds a lock, for the questions the Unix layer answers from statfs(2),
 * /proc/locks and /proc/PID/fdinfo.
 *
 * Windows has no PID namespaces, and its holder listing (proc.c) names the
 * processes that have the file open, by their real process ids: there is
 * nothing to confirm or renumber.  The filesystem kind comes from the kind
 * of drive: a fixed or RAM disk is local, a remote drive (a mapped share or
 * a UNC path) is SMB, anything else is unknown.
 */
#include "win.h"

#include <stdlib.h>
#include <wchar.h>

int cachelock__os_fs_of(const char *path, const char *op)
{
    wchar_t *w, root[CACHELOCK_PATH_MAX + 8];
    int rc = cachelock__win_path(path, strlen(path), &w);
    if (rc < 0)
        return cachelock__fail(rc, op, path);
    if (!GetVolumePathNameW(w, root, (DWORD)(sizeof root / sizeof root[0]))) {
        rc = cachelock__fail(cachelock__win_error(GetLastError()), op, path);
        free(w);
        return rc;
    }
    free(w);
    switch (GetDriveTypeW(root)) {
    case DRIVE_FIXED:
    case DRIVE_RAMDISK:
    case DRIVE_REMOVABLE:
        return CACHELOCK_FS_LOCAL;
    case DRIVE_REMOTE:
        return CACHELOCK_FS_SMB;
    default:
        return CACHELOCK_FS_UNKNOWN;
    }
}

void cachelock__os_fs_forget(void)
{
    /* Nothing is learned ahead: every question asks the system. */
}

int cachelock__os_fd_readonly(int fd)
{
    (void)fd;
    return 0;   /* lock handles are always opened for reading and writing */
}

int cachelock__os_locks_complete(void)
{
    return 1;   /* one machine-wide view: no namespaces hide processes */
}

int cachelock__os_pid_holds(int pid, const struct cachelock__fileid *ids, size_t n,
                            unsigned char *held)
{
    (void)pid;
    (void)ids;
    (void)n;
    (void)held;
    return -EACCES;     /* the listing is of open handles already: keep it */
}

int cachelock__os_pid_here(int pid)
{
    return pid;
}

int cachelock__os_find_holders(const struct cachelock__fileid *ids, size_t n,
                               int (*fn)(int pid, size_t i, void *ctx), void *ctx)
{
    (void)ids;
    (void)n;
    (void)fn;
    (void)ctx;
    return -ENOSYS;
}
