/*
 * error.c - Windows error codes as this library's codes, in one table
 * (the pattern of libuv's src/win/error.c): portable code and callers see
 * the same negative errno-style codes on every system.
 */
#include "win.h"

int cachelock__win_error(DWORD err)
{
    switch (err) {
    case ERROR_SUCCESS:                 return 0;
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_DRIVE:
    case ERROR_BAD_NETPATH:
    case ERROR_BAD_NET_NAME:            return -ENOENT;
    case ERROR_ACCESS_DENIED:
    case ERROR_PRIVILEGE_NOT_HELD:
    case ERROR_CANT_ACCESS_FILE:        return -EACCES;
    case ERROR_DIRECTORY:               return -ENOTDIR;   /* "the directory name is invalid":
                                                              a file where a directory should be */
    case ERROR_TOO_MANY_OPEN_FILES:     return -EMFILE;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
    case ERROR_NO_SYSTEM_RESOURCES:
    case ERROR_NOT_ENOUGH_QUOTA:        return -ENOMEM;
    case ERROR_HANDLE_DISK_FULL:
    case ERROR_DISK_FULL:               return -ENOSPC;
    case ERROR_DISK_QUOTA_EXCEEDED:     return -EDQUOT;
    case ERROR_WRITE_PROTECT:           return -EROFS;
    case ERROR_FILENAME_EXCED_RANGE:
    case ERROR_BUFFER_OVERFLOW:         return -ENAMETOOLONG;
    case ERROR_INVALID_NAME:
    case ERROR_BAD_PATHNAME:
    case ERROR_INVALID_PARAMETER:
    case ERROR_NO_UNICODE_TRANSLATION:  return -EINVAL;
    case ERROR_ALREADY_EXISTS:
    case ERROR_FILE_EXISTS:             return -EEXIST;
    case ERROR_CANT_RESOLVE_FILENAME:   return -ELOOP;
    case ERROR_LOCK_VIOLATION:          return -EWOULDBLOCK;
    case ERROR_SHARING_VIOLATION:       return -EBUSY;
    case ERROR_INVALID_HANDLE:          return -EBADF;
    case ERROR_NOT_SUPPORTED:
    case ERROR_INVALID_FUNCTION:
    case ERROR_CALL_NOT_IMPLEMENTED:    return -ENOLCK;    /* Cargo and Go read these from
                                                              LockFileEx as "no locks here" */
    case ERROR_NOT_LOCKED:              return -ENOLCK;
    case ERROR_OPERATION_ABORTED:       return -EINTR;
    case ERROR_SEM_TIMEOUT:
    case WAIT_TIMEOUT:                  return -ETIMEDOUT;
    case ERROR_NOT_READY:
    case ERROR_DEV_NOT_EXIST:           return -ENODEV;
    default:                            return -EIO;
    }
}

/* STATUS_DELETE_PENDING, which Win32 reports as ERROR_ACCESS_DENIED. */
#define STATUS_DELETE_PENDING_ ((LONG)0xC0000056L)

int cachelock__win_delete_pending(void)
{
    typedef LONG (WINAPI *last_status_fn)(void);
    static last_status_fn last_status;
    static volatile LONG looked_up;

    if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
        /* RtlGetLastNtStatus is exported by ntdll since Windows XP (and by
         * wine); it keeps the NT status behind the last Win32 error. */
        HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
        last_status_fn f =
            ntdll ? (last_status_fn)(void *)GetProcAddress(ntdll, "RtlGetLastNtStatus") : NULL;
        __atomic_store_n(&last_status, f, __ATOMIC_RELAXED);
        __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
    }
    last_status_fn f = __atomic_load_n(&last_status, __ATOMIC_RELAXED);
    return GetLastError() == ERROR_ACCESS_DENIED && f && f() == STATUS_DELETE_PENDING_;
}
