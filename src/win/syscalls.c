/*
 * syscalls.c - the table every Windows call of the library's acquire,
 * wait, release and prune paths goes through, so that tests can make each
 * one fail (as on Unix, see src/unix/syscalls.c).  Hidden from the DLL's
 * users.  Each entry has the type of the real function with the types
 * spelled out (os.h): the wrappers below only convert.
 */
#include "win.h"

#include <stdlib.h>

static void *sys_CreateFileW(const wchar_t *path, unsigned long access, unsigned long share,
                             struct _SECURITY_ATTRIBUTES *sa, unsigned long disposition,
                             unsigned long flags, void *tmpl)
{
    return CreateFileW(path, access, share, sa, disposition, flags, tmpl);
}

static void *sys_ReOpenFile(void *h, unsigned long access, unsigned long share, unsigned long flags)
{
    return ReOpenFile(h, access, share, flags);
}

static int sys_CloseHandle(void *h) { return CloseHandle(h); }

static int sys_LockFileEx(void *h, unsigned long flags, unsigned long reserved, unsigned long low,
                          unsigned long high, struct _OVERLAPPED *ov)
{
    return LockFileEx(h, flags, reserved, low, high, ov);
}

static int sys_UnlockFile(void *h, unsigned long off_low, unsigned long off_high,
                          unsigned long low, unsigned long high)
{
    return UnlockFile(h, off_low, off_high, low, high);
}

static int sys_GetOverlappedResult(void *h, struct _OVERLAPPED *ov, unsigned long *n, int wait)
{
    return GetOverlappedResult(h, ov, n, wait);
}

static int sys_CancelIoEx(void *h, struct _OVERLAPPED *ov) { return CancelIoEx(h, ov); }

static void *sys_CreateEventW(struct _SECURITY_ATTRIBUTES *sa, int manual, int initial,
                              const wchar_t *name)
{
    return CreateEventW(sa, manual, initial, name);
}

static unsigned long sys_WaitForSingleObject(void *h, unsigned long ms)
{
    return WaitForSingleObject(h, ms);
}

static int sys_GetFileInformationByHandle(void *h, struct _BY_HANDLE_FILE_INFORMATION *info)
{
    return GetFileInformationByHandle(h, info);
}

static int sys_GetFileInformationByHandleEx(void *h, int cls, void *info, unsigned long size)
{
    return GetFileInformationByHandleEx(h, (FILE_INFO_BY_HANDLE_CLASS)cls, info, size);
}

static int sys_SetFileInformationByHandle(void *h, int cls, void *info, unsigned long size)
{
    return SetFileInformationByHandle(h, (FILE_INFO_BY_HANDLE_CLASS)cls, info, size);
}

static unsigned long sys_GetFileType(void *h) { return GetFileType(h); }

static int sys_CreateDirectoryW(const wchar_t *path, struct _SECURITY_ATTRIBUTES *sa)
{
    return CreateDirectoryW(path, sa);
}

static unsigned long sys_GetFullPathNameW(const wchar_t *path, unsigned long size, wchar_t *buf,
                                          wchar_t **file)
{
    return GetFullPathNameW(path, size, buf, file);
}

static void *sys_FindFirstFileExW(const wchar_t *path, int level, struct _WIN32_FIND_DATAW *data,
                                  int search, void *filter, unsigned long flags)
{
    return FindFirstFileExW(path, (FINDEX_INFO_LEVELS)level, data, (FINDEX_SEARCH_OPS)search,
                            filter, flags);
}

#define REAL_SYSCALLS { sys_CreateFileW, sys_ReOpenFile, sys_CloseHandle, sys_LockFileEx, \
                        sys_UnlockFile, sys_GetOverlappedResult, sys_CancelIoEx, sys_CreateEventW, \
                        sys_WaitForSingleObject, sys_GetFileInformationByHandle, \
                        sys_GetFileInformationByHandleEx, sys_SetFileInformationByHandle, \
                        sys_GetFileType, sys_CreateDirectoryW, sys_GetFullPathNameW, \
                        sys_FindFirstFileExW, malloc }

struct cachelock__syscalls cachelock__sys = REAL_SYSCALLS;

void cachelock__syscalls_reset(void)
{
    struct cachelock__syscalls real = REAL_SYSCALLS;
    cachelock__sys = real;
}
