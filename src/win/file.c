/*
 * file.c - opening, locking and checking lock files on Windows.
 *
 * The lock: LockFileEx(h, flags, 0, 0xFFFFFFFF, 0xFFFFFFFF, &ov), offset 0
 * and length 2^64 - 1, exclusive with LOCKFILE_EXCLUSIVE_LOCK, a try with
 * LOCKFILE_FAIL_IMMEDIATELY, and UnlockFile over the same range: exactly
 * what fs4 (the Rust original's lock crate), Rust's std File::lock, Cargo
 * and Go's cmd/go do, so that all of them and this library exclude one
 * another.  Like flock(2), such a lock belongs to the open file (the
 * handle), so threads of one process that each open the file exclude each
 * other like processes, and it goes when the handle is closed or its
 * process ends.
 *
 * Windows locks are MANDATORY: while a file is locked exclusive nobody
 * else may read or write the range, and while it is locked shared nobody
 * may write it, the holder included.  So nothing is ever stored in a lock
 * file, and nothing here reads or writes one (wine does not enforce
 * mandatory locking: a test under wine cannot catch a read).
 *
 * Handles are opened with every share mode (so that others, this library
 * included, can open, rename and delete the file while it is open), not
 * inheritable (the analogue of O_CLOEXEC), never truncating (OPEN_ALWAYS),
 * with FILE_FLAG_OPEN_REPARSE_POINT (a symbolic link or junction planted
 * as the lock file is seen as itself and refused, -ELOOP, instead of
 * followed: O_NOFOLLOW's counterpart) and FILE_FLAG_OVERLAPPED (so that a
 * timed or asynchronous wait can queue its lock request in the kernel,
 * wait.c).  .locks is opened the same way and must be a real directory.
 *
 * Released handles are never kept open (os_may_keep): with the classic
 * delete semantics (FAT, SMB, Windows before 10 1709, wine) a file
 * deleted by prune stays "delete pending", its name unusable, for as long
 * as any handle to it is open, and a handle kept idle in another process
 * could hold it so for ever.
 */
#include "win.h"

#include <stdlib.h>
#include <string.h>

/* mingw-w64 10 declares FileDispositionInfoEx only for _WIN32_WINNT >=
 * 0x0A000002; these are its values from the Windows SDK. */
#define FILE_DISPOSITION_INFO_EX_CLASS 21
#define DISPOSITION_DELETE 0x1
#define DISPOSITION_POSIX_SEMANTICS 0x2
#define DISPOSITION_IGNORE_READONLY 0x10

#define SHARE_ALL (FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE)

/* Classic delete semantics: after prune deletes a lock file, its name
 * cannot be opened (ERROR_ACCESS_DENIED, STATUS_DELETE_PENDING) until every
 * handle to the old file is closed.  Its waiters close theirs as soon as
 * they see it (the path check after a grant), so this passes: retry the
 * open this often, 1 ms apart at first, then up to 20 ms (about 1.5 s in
 * all), like SQLite's and git's retries on Windows. */
#define DELETE_PENDING_RETRIES 100

int cachelock__os_may_keep(const char *path)
{
    (void)path;
    return 0;
}

int cachelock__win_id(HANDLE h, struct cachelock__fileid *id, DWORD *attributes)
{
    BY_HANDLE_FILE_INFORMATION bi;
    if (!cachelock__sys.GetFileInformationByHandle(h, &bi))
        return cachelock__win_error(GetLastError());
    id->dev = bi.dwVolumeSerialNumber;
    id->ino = (uint64_t)bi.nFileIndexHigh << 32 | bi.nFileIndexLow;
    if (attributes)
        *attributes = bi.dwFileAttributes;
    return 0;
}

HANDLE cachelock__win_open_meta(const wchar_t *path)
{
    return cachelock__sys.CreateFileW(path, FILE_READ_ATTRIBUTES, SHARE_ALL, NULL, OPEN_EXISTING,
                                      FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT,
                                      NULL);
}

/* Wait before retry number i of an open of a delete-pending file. */
static void delete_pending_pause(int i)
{
    Sleep(i < 10 ? 1 : i < 30 ? 5 : 20);
}

/* The part p->buf[0..len) as a \\?\ path; *w NULL and the message set on
 * failure. */
static int wide_part(struct cachelock__path *p, size_t len, const char *op, wchar_t **w)
{
    int rc = cachelock__win_path(p->buf, len, w);
    if (rc < 0) {
        char c = p->buf[len];
        p->buf[len] = '\0';
        if (rc == -EINVAL)
            cachelock__failf(rc, "cannot %s '%s': the path is not valid UTF-8", op, p->buf);
        else
            cachelock__fail(rc, op, p->buf);
        p->buf[len] = c;
    }
    return rc;
}

/* The message for a failure of the part p->buf[0..len). */
static int fail_part(int rc, const char *op, struct cachelock__path *p, size_t len)
{
    char c = p->buf[len];
    p->buf[len] = '\0';
    cachelock__fail(rc, op, p->buf);
    p->buf[len] = c;
    return rc;
}

/* Create .locks and whatever is missing above it, one level at a time:
 * climb up until a directory exists, then create downwards, like mkdir -p
 * without touching the ancestors that exist.  Nothing this creates is ever
 * removed again: another process may start using it the moment it exists.
 * New directories inherit the parent's permissions (the analogue of 0777
 * minus the umask). */
static int make_dirs(struct cachelock__path *p, wchar_t *locks)
{
    size_t root = cachelock__win_root_len(locks), end = wcslen(locks), full = end;
    DWORD err;

    if (cachelock__sys.CreateDirectoryW(locks, NULL) || GetLastError() == ERROR_ALREADY_EXISTS)
        return 0;
    err = GetLastError();
    if (err != ERROR_PATH_NOT_FOUND)
        return fail_part(cachelock__win_error(err), "create lock directory", p, p->locks_len);
    for (;;) {
        /* Up one level; never try to create a drive or a share. */
        while (end > root && locks[end - 1] != L'\\')
            end--;
        while (end > root && locks[end - 1] == L'\\')
            end--;
        if (end <= root)
            return fail_part(-ENOENT, "create cache directory", p, p->dir_len);
        locks[end] = 0;
        BOOL made = cachelock__sys.CreateDirectoryW(locks, NULL);
        err = made ? 0 : GetLastError();
        locks[end] = L'\\';
        if (made || err == ERROR_ALREADY_EXISTS)
            break;
        if (err != ERROR_PATH_NOT_FOUND)
            return fail_part(cachelock__win_error(err), "create cache directory", p, p->dir_len);
    }
    /* Down again: every deeper component, then .locks.  A component that
     * exists but is a file makes the next one ERROR_PATH_NOT_FOUND (or
     * ERROR_DIRECTORY): that is ENOTDIR. */
    for (size_t i = end + 1; i <= full; i++) {
        if (i < full && locks[i] != L'\\')
            continue;
        if (locks[i - 1] == L'\\')
            continue;
        wchar_t saved = locks[i];
        locks[i] = 0;
        BOOL made = cachelock__sys.CreateDirectoryW(locks, NULL);
        err = made ? 0 : GetLastError();
        locks[i] = saved;
        if (!made && err != ERROR_ALREADY_EXISTS) {
            int rc = err == ERROR_PATH_NOT_FOUND ? -ENOTDIR : cachelock__win_error(err);
            return fail_part(rc, i == full ? "create lock directory" : "create cache directory", p,
                             i == full ? p->locks_len : p->dir_len);
        }
    }
    return 0;
}

/* Check that .locks is a real directory, not followed through a reparse
 * point (a symbolic link or junction planted there): 0, -ENOENT (no
 * message: create it), or a code with the message. */
static int check_locks_dir(struct cachelock__path *p, const wchar_t *locks)
{
    struct cachelock__fileid id;
    DWORD attributes = 0;
    HANDLE h = cachelock__win_open_meta(locks);
    int rc;

    if (h == INVALID_HANDLE_VALUE) {
        DWORD err = GetLastError();
        if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND)
            return -ENOENT;
        return fail_part(cachelock__win_error(err), "open lock directory", p, p->locks_len);
    }
    rc = cachelock__win_id(h, &id, &attributes);
    cachelock__sys.CloseHandle(h);
    if (rc < 0)
        return fail_part(rc, "open lock directory", p, p->locks_len);
    if (attributes & FILE_ATTRIBUTE_REPARSE_POINT)
        return fail_part(-ELOOP, "open lock directory", p, p->locks_len);
    if (!(attributes & FILE_ATTRIBUTE_DIRECTORY))
        return fail_part(-ENOTDIR, "open lock directory", p, p->locks_len);
    return 0;
}

/* Open the lock file itself: the handle, or INVALID_HANDLE_VALUE with
 * *rc (message set). */
static HANDLE open_file(struct cachelock__path *p, const wchar_t *path, int create, int *rc)
{
    const DWORD flags = FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_OVERLAPPED;
    const DWORD disposition = create ? OPEN_ALWAYS : OPEN_EXISTING;
    HANDLE h;
    DWORD err = 0;

    for (int retry = 0;; retry++) {
        h = cachelock__sys.CreateFileW(path, GENERIC_READ | GENERIC_WRITE, SHARE_ALL, NULL,
                                       disposition, flags, NULL);
        if (h != INVALID_HANDLE_VALUE)
            return h;
        if (cachelock__win_delete_pending() && retry < DELETE_PENDING_RETRIES) {
            delete_pending_pause(retry);
            continue;
        }
        err = GetLastError();
        if (err == ERROR_ACCESS_DENIED || err == ERROR_WRITE_PROTECT) {
            /* A lock file we may only read can still be locked: a handle
             * with GENERIC_READ may take an exclusive lock. */
            h = cachelock__sys.CreateFileW(path, GENERIC_READ, SHARE_ALL, NULL, OPEN_EXISTING,
                                           flags, NULL);
            if (h != INVALID_HANDLE_VALUE)
                return h;
            if (cachelock__win_delete_pending() && retry < DELETE_PENDING_RETRIES) {
                delete_pending_pause(retry);
                continue;
            }
            DWORD second = GetLastError();
            if (second == ERROR_FILE_NOT_FOUND) {
                /* Nothing to open: it was the creation that was denied. */
                *rc = cachelock__fail(cachelock__win_error(err), "create lock file", p->buf);
                return INVALID_HANDLE_VALUE;
            }
            /* A directory there is refused with ERROR_ACCESS_DENIED too. */
            DWORD attributes = GetFileAttributesW(path);
            if (attributes != INVALID_FILE_ATTRIBUTES && (attributes & FILE_ATTRIBUTE_DIRECTORY)) {
                *rc = cachelock__fail(-EISDIR, "open lock file", p->buf);
                return INVALID_HANDLE_VALUE;
            }
        }
        break;
    }
    if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND) {
        *rc = -ENOENT;          /* the caller says it, or creates .locks */
        return INVALID_HANDLE_VALUE;
    }
    *rc = cachelock__fail(cachelock__win_error(err),
                          create && (err == ERROR_DISK_FULL || err == ERROR_HANDLE_DISK_FULL ||
                                     err == ERROR_DISK_QUOTA_EXCEEDED)
                          ? "create lock file" : "open lock file", p->buf);
    return INVALID_HANDLE_VALUE;
}

int cachelock__os_open(struct cachelock__path *p, int nocreate, int *fdp,
                       struct cachelock__fileid *id, int *local, struct cachelock__dir *keep)
{
    wchar_t *path = NULL, *locks = NULL;
    DWORD attributes = 0;
    HANDLE h = INVALID_HANDLE_VALUE;
    int rc, mkdirs = 0;

    *fdp = -1;
    *local = 0;
    if (keep)
        keep->fd = -1;      /* .locks is never kept open here (os_may_keep) */
    rc = wide_part(p, p->len, "open lock file", &path);
    if (rc < 0)
        return rc;
    rc = wide_part(p, p->locks_len, "open lock directory", &locks);
    if (rc < 0)
        goto out;
    for (int reopens = 0;;) {
        rc = check_locks_dir(p, locks);
        if (rc == -ENOENT) {
            /* Missing: create it.  Twice at most: a pruner elsewhere, or
             * someone cleaning up by hand, may remove what we just made. */
            if (nocreate || mkdirs++ >= 2) {
                rc = fail_part(-ENOENT, "open lock directory", p, p->locks_len);
                goto out;
            }
            rc = make_dirs(p, locks);
            if (rc < 0)
                goto out;
            continue;
        }
        if (rc < 0)
            goto out;
        h = open_file(p, path, !nocreate, &rc);
        if (h != INVALID_HANDLE_VALUE)
            break;
        if (rc == -ENOENT && !nocreate && reopens++ < 4)
            continue;       /* .locks was removed between the two opens */
        if (rc == -ENOENT)
            cachelock__fail(rc, "open lock file", p->buf);
        goto out;
    }
    /* A device name that slipped through (CACHELOCK_F_ANYNAME "nul")
     * opens a character device, which LockFileEx refuses: refuse it
     * first, as Unix refuses what is not a regular file. */
    if (cachelock__sys.GetFileType(h) != FILE_TYPE_DISK) {
        rc = cachelock__failf(-ENXIO, "cannot open lock file '%s': not a regular file", p->buf);
        goto close;
    }
    rc = cachelock__win_id(h, id, &attributes);
    if (rc < 0) {
        cachelock__fail(rc, "stat lock file", p->buf);
        goto close;
    }
    if (attributes & FILE_ATTRIBUTE_REPARSE_POINT) {
        rc = cachelock__fail(-ELOOP, "open lock file", p->buf);
        goto close;
    }
    if (attributes & FILE_ATTRIBUTE_DIRECTORY) {
        rc = cachelock__fail(-EISDIR, "open lock file", p->buf);
        goto close;
    }
    /* Lock requests are queued in the kernel on every filesystem that
     * implements LockFileEx, local or not: waiters may always mark. */
    *local = 1;
    *fdp = cachelock__win_fd(h);
    rc = 0;
    goto out;
close:
    cachelock__sys.CloseHandle(h);
out:
    free(path);
    free(locks);
    return rc;
}

int cachelock__os_open_in(int dfd, struct cachelock__path *p, int *fd,
                          struct cachelock__fileid *id)
{
    /* Never called: nothing is kept (os_may_keep).  Go the long way. */
    (void)dfd;
    (void)p;
    (void)fd;
    (void)id;
    return -ENOENT;
}

int cachelock__os_fd_id(int fd, struct cachelock__fileid *id)
{
    return cachelock__win_id(cachelock__win_handle(fd), id, NULL);
}

int cachelock__os_path_names(const char *path, int fd, const struct cachelock__fileid *id)
{
    FILE_STANDARD_INFO si;
    struct cachelock__fileid now;
    wchar_t *w;
    HANDLE h;
    int rc;

    /* Pruned while we waited: a file deleted with POSIX semantics has no
     * links left, one deleted with classic semantics is "delete pending"
     * until its last handle closes.  Either way it is not the lock of the
     * path any more.  (Wine reports neither; there the name keeps naming
     * the doomed file until its last handle closes, and every opener gets
     * that same file, so all still contend on one lock.) */
    if (cachelock__sys.GetFileInformationByHandleEx(cachelock__win_handle(fd), FileStandardInfo,
                                                    &si, sizeof si) &&
        (si.DeletePending || si.NumberOfLinks == 0))
        return 0;
    rc = cachelock__win_path(path, strlen(path), &w);
    if (rc < 0)
        return cachelock__fail(rc, "check lock file", path);
    h = cachelock__win_open_meta(w);
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD err = GetLastError();
        if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND ||
            cachelock__win_delete_pending())
            return 0;
        return cachelock__fail(cachelock__win_error(err), "check lock file", path);
    }
    rc = cachelock__win_id(h, &now, NULL);
    cachelock__sys.CloseHandle(h);
    if (rc < 0)
        return cachelock__fail(rc, "check lock file", path);
    return cachelock__same_id(&now, id);
}

int cachelock__os_has_waiters(int fd)
{
    /* Waiters queue their requests in the kernel, which grants them at the
     * unlock itself; and nothing is kept open anyway. */
    (void)fd;
    return 0;
}

int cachelock__os_unlock(int fd)
{
    /* The same range as the lock, once (Rust's std unlocks twice to undo a
     * stacked shared lock; this library never stacks). */
    if (cachelock__sys.UnlockFile(cachelock__win_handle(fd), 0, 0, LOCK_ALL_LOW, LOCK_ALL_HIGH))
        return 0;
    return cachelock__win_error(GetLastError());
}

int cachelock__os_remove_held(struct cachelock__path *p, int fd,
                              const struct cachelock__fileid *id)
{
    HANDLE h;
    int rc;

    /* Only while the path still names the file we hold. */
    rc = cachelock__os_path_names(p->buf, fd, id);
    if (rc <= 0)
        return rc < 0 ? rc : 1;
    /* Delete the very file we hold, through a handle reopened from ours
     * (no path, so no race with a rename): DELETE access needs every other
     * handle to allow FILE_SHARE_DELETE.  A program that opened it without
     * (Python's filelock does) keeps it: busy, as prune reports a lock
     * that is held. */
    h = cachelock__sys.ReOpenFile(cachelock__win_handle(fd), DELETE, SHARE_ALL,
                                  FILE_FLAG_OPEN_REPARSE_POINT);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD err = GetLastError();
        if (err == ERROR_SHARING_VIOLATION)
            return 1;
        return cachelock__fail(cachelock__win_error(err), "remove lock file", p->buf);
    }
    /* POSIX semantics where the filesystem has them (NTFS on Windows 10
     * 1709 and later): the name goes at once, when this handle closes,
     * though our lock handle and waiters' handles stay open, so the next
     * acquire creates a new file at once.  Elsewhere classic semantics:
     * the name stays, "delete pending", until the last handle closes, and
     * opens of it wait for that (open_file). */
    struct { DWORD Flags; } ex = { DISPOSITION_DELETE | DISPOSITION_POSIX_SEMANTICS |
                                   DISPOSITION_IGNORE_READONLY };     /* FILE_DISPOSITION_INFO_EX */
    if (!cachelock__sys.SetFileInformationByHandle(h, FILE_DISPOSITION_INFO_EX_CLASS, &ex,
                                                   sizeof ex)) {
        DWORD err = GetLastError();
        if (err == ERROR_INVALID_PARAMETER || err == ERROR_NOT_SUPPORTED ||
            err == ERROR_INVALID_FUNCTION) {
            FILE_DISPOSITION_INFO classic = { TRUE };
            if (!cachelock__sys.SetFileInformationByHandle(h, FileDispositionInfo, &classic,
                                                           sizeof classic))
                err = GetLastError();
            else
                err = 0;
        }
        if (err) {
            cachelock__sys.CloseHandle(h);
            if (err == ERROR_SHARING_VIOLATION)
                return 1;
            return cachelock__fail(cachelock__win_error(err), "remove lock file", p->buf);
        }
    }
    cachelock__sys.CloseHandle(h);
    return 0;
}

int64_t cachelock__os_age_ms(int fd)
{
    FILE_BASIC_INFO bi;
    FILETIME now;
    /* The last write, not the creation time: NTFS "tunnels" the creation
     * time of a file deleted and re-created under the same name within 15
     * seconds, and lock files are never written. */
    if (!cachelock__sys.GetFileInformationByHandleEx(cachelock__win_handle(fd), FileBasicInfo, &bi,
                                                     sizeof bi))
        return cachelock__win_error(GetLastError());
    GetSystemTimeAsFileTime(&now);
    int64_t t = (int64_t)((uint64_t)now.dwHighDateTime << 32 | now.dwLowDateTime);
    int64_t age = (t - bi.LastWriteTime.QuadPart) / 10000;    /* 100 ns units */
    return age < 0 ? 0 : age;
}

int cachelock__os_stat_quiet(const char *path, struct cachelock__fileid *id)
{
    wchar_t *w;
    int rc = cachelock__win_path(path, strlen(path), &w);
    if (rc < 0)
        return rc;
    HANDLE h = cachelock__win_open_meta(w);
    free(w);
    if (h == INVALID_HANDLE_VALUE)
        return cachelock__win_error(GetLastError());
    rc = cachelock__win_id(h, id, NULL);
    cachelock__sys.CloseHandle(h);
    return rc < 0 ? rc : 0;
}

int cachelock__os_stat(const char *path, struct cachelock__fileid *id)
{
    int rc = cachelock__os_stat_quiet(path, id);
    return rc < 0 ? cachelock__fail(rc, "stat lock file", path) : 0;
}

int cachelock__os_list(struct cachelock__path *p, size_t len,
                       int (*fn)(const char *name, void *ctx), void *ctx)
{
    WIN32_FIND_DATAW data;
    char name[4 * MAX_PATH];
    wchar_t *dir, *pattern;
    size_t n;
    int rc = wide_part(p, len, "open lock directory", &dir);

    if (rc < 0)
        return rc;
    n = wcslen(dir);
    pattern = malloc((n + 3) * sizeof *pattern);
    if (!pattern) {
        free(dir);
        return fail_part(-ENOMEM, "read lock directory", p, len);
    }
    memcpy(pattern, dir, n * sizeof *pattern);
    memcpy(pattern + n, L"\\*", 3 * sizeof *pattern);
    free(dir);
    HANDLE find = cachelock__sys.FindFirstFileExW(pattern, FindExInfoBasic, &data,
                                                  FindExSearchNameMatch, NULL,
                                                  FIND_FIRST_EX_LARGE_FETCH);
    free(pattern);
    if (find == INVALID_HANDLE_VALUE) {
        DWORD err = GetLastError();
        /* A missing .locks has no entries. */
        if (err == ERROR_FILE_NOT_FOUND || err == ERROR_PATH_NOT_FOUND)
            return 0;
        return fail_part(err == ERROR_DIRECTORY ? -ENOTDIR : cachelock__win_error(err),
                         "open lock directory", p, len);
    }
    do {
        /* A name that is not valid UTF-16 (an unpaired surrogate) has no
         * UTF-8 spelling: no source can have it. */
        if (cachelock__win_utf8(data.cFileName, name, sizeof name) < 0)
            continue;
        rc = fn(name, ctx);
        if (rc < 0)
            break;
    } while (FindNextFileW(find, &data));
    if (rc == 0 && GetLastError() != ERROR_NO_MORE_FILES)
        rc = fail_part(cachelock__win_error(GetLastError()), "read lock directory", p, len);
    FindClose(find);
    return rc;
}

int64_t cachelock__os_now_us(void)
{
    static LARGE_INTEGER frequency;
    LARGE_INTEGER now;
    if (!__atomic_load_n(&frequency.QuadPart, __ATOMIC_RELAXED)) {
        LARGE_INTEGER f;
        QueryPerformanceFrequency(&f);
        __atomic_store_n(&frequency.QuadPart, f.QuadPart, __ATOMIC_RELAXED);
    }
    QueryPerformanceCounter(&now);
    int64_t f = __atomic_load_n(&frequency.QuadPart, __ATOMIC_RELAXED);
    return (int64_t)(now.QuadPart / f) * 1000000 + (int64_t)(now.QuadPart % f) * 1000000 / f;
}

uint64_t cachelock__os_process_epoch(void)
{
    /* No fork(2): a process is never a copy of another. */
    return 1;
}
