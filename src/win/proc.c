/*
 * proc.c - who has a lock file open, and process names, on Windows.
 *
 * Windows keeps no table of byte-range locks that a program could read,
 * so the question "who holds it" cannot be answered.  What can be: which
 * processes have the lock file open.  NtQueryInformationFile with
 * FileProcessIdsUsingFileInformation (class 47) lists them for a handle we
 * open ourselves, and the Restart Manager (RmGetList) is the fallback
 * where that class is refused.  Both see every program, this library,
 * the Rust original, Cargo and Python's filelock alike, and cost the
 * holders nothing; but neither can tell a holder from a process waiting
 * for the lock, or from one that just has the file open, so every entry
 * has waiting == -1.  The calling process is left out: it has the file
 * open itself, if only to ask.  Wine implements neither (class 47 is
 * STATUS_NOT_IMPLEMENTED, RmGetList lists nobody), so under wine the list
 * is always empty.
 */
#include "win.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_PROCESS_IDS_USING_FILE_INFORMATION 47

typedef struct {
    ULONG NumberOfProcessIdsInList;
    ULONG_PTR ProcessIdList[1];
} process_ids_t;

typedef LONG (NTAPI *query_file_fn)(HANDLE, void *iosb, void *info, ULONG size, int cls);

/* The processes of class 47 into fn: 0, or -ENOSYS when the class is not
 * there (then ask the Restart Manager). */
static int by_file_information(HANDLE h, cachelock__lock_fn fn, void *ctx)
{
    static query_file_fn query;
    static volatile LONG looked_up;
    ULONG_PTR iosb[2];
    ULONG size = 4096;
    process_ids_t *ids = NULL;
    LONG status;
    int rc = 0;

    if (!__atomic_load_n(&looked_up, __ATOMIC_ACQUIRE)) {
        HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");
        query_file_fn f =
            ntdll ? (query_file_fn)(void *)GetProcAddress(ntdll, "NtQueryInformationFile") : NULL;
        __atomic_store_n(&query, f, __ATOMIC_RELAXED);
        __atomic_store_n(&looked_up, 1, __ATOMIC_RELEASE);
    }
    query_file_fn q = __atomic_load_n(&query, __ATOMIC_RELAXED);
    if (!q)
        return -ENOSYS;
    for (;;) {
        process_ids_t *bigger = realloc(ids, size);
        if (!bigger) {
            free(ids);
            return -ENOMEM;
        }
        ids = bigger;
        status = q(h, iosb, ids, size, FILE_PROCESS_IDS_USING_FILE_INFORMATION);
        /* STATUS_INFO_LENGTH_MISMATCH, STATUS_BUFFER_OVERFLOW: more room */
        if ((status == (LONG)0xC0000004L || status == (LONG)0x80000005L) && size < (1u << 24)) {
            size *= 4;
            continue;
        }
        break;
    }
    if (status < 0) {
        free(ids);
        return -ENOSYS;
    }
    DWORD self = GetCurrentProcessId();
    for (ULONG i = 0; i < ids->NumberOfProcessIdsInList && rc == 0; i++) {
        struct cachelock__lockline l;
        memset(&l, 0, sizeof l);
        l.pid = (int)ids->ProcessIdList[i];
        l.waiting = -1;
        if ((DWORD)l.pid != self)
            rc = fn(&l, ctx);
    }
    free(ids);
    return rc;
}

/* The Restart Manager, loaded when needed (rstrtmgr.dll). */
typedef DWORD (WINAPI *rm_start_fn)(DWORD *, DWORD, WCHAR *);
typedef DWORD (WINAPI *rm_register_fn)(DWORD, UINT, LPCWSTR *, UINT, void *, UINT, LPCWSTR *);
typedef DWORD (WINAPI *rm_list_fn)(DWORD, UINT *, UINT *, void *, DWORD *);
typedef DWORD (WINAPI *rm_end_fn)(DWORD);

/* RM_PROCESS_INFO, whose first member is the one needed. */
typedef struct {
    DWORD dwProcessId;
    FILETIME ProcessStartTime;
} rm_unique_process_t;
typedef struct {
    rm_unique_process_t Process;
    WCHAR strAppName[256];
    WCHAR strServiceShortName[64];
    int ApplicationType;
    ULONG AppStatus;
    DWORD TSSessionId;
    BOOL bRestartable;
} rm_process_info_t;

static int by_restart_manager(const wchar_t *path, cachelock__lock_fn fn, void *ctx)
{
    HMODULE rm = LoadLibraryW(L"rstrtmgr.dll");
    rm_process_info_t *procs = NULL;
    DWORD session, reasons = 0;
    WCHAR key[64];
    UINT needed = 0, count = 0;
    int rc = -ENOSYS;

    if (!rm)
        return -ENOSYS;
    rm_start_fn start = (rm_start_fn)(void *)GetProcAddress(rm, "RmStartSession");
    rm_register_fn reg = (rm_register_fn)(void *)GetProcAddress(rm, "RmRegisterResources");
    rm_list_fn list = (rm_list_fn)(void *)GetProcAddress(rm, "RmGetList");
    rm_end_fn end = (rm_end_fn)(void *)GetProcAddress(rm, "RmEndSession");
    if (!start || !reg || !list || !end || start(&session, 0, key) != ERROR_SUCCESS)
        goto out;
    /* The Restart Manager wants the path without \\?\. */
    LPCWSTR files[1] = { wcsncmp(path, L"\\\\?\\", 4) == 0 && wcsncmp(path, L"\\\\?\\UNC\\", 8) != 0
                         ? path + 4 : path };
    if (reg(session, 1, files, 0, NULL, 0, NULL) == ERROR_SUCCESS) {
        DWORD r;
        do {
            count = needed;
            free(procs);
            procs = count ? calloc(count, sizeof *procs) : NULL;
            if (count && !procs) {
                rc = -ENOMEM;
                break;
            }
            r = list(session, &needed, &count, procs, &reasons);
        } while (r == ERROR_MORE_DATA);
        if (r == ERROR_SUCCESS) {
            DWORD self = GetCurrentProcessId();
            rc = 0;
            for (UINT i = 0; i < count && rc == 0; i++) {
                struct cachelock__lockline l;
                memset(&l, 0, sizeof l);
                l.pid = (int)procs[i].Process.dwProcessId;
                l.waiting = -1;
                if (procs[i].Process.dwProcessId != self)
                    rc = fn(&l, ctx);
            }
        }
    }
    end(session);
out:
    free(procs);
    FreeLibrary(rm);
    return rc;
}

int cachelock__os_locks_on(const char *path, const struct cachelock__fileid *id,
                           cachelock__lock_fn fn, void *ctx)
{
    struct cachelock__fileid now;
    wchar_t *w;
    int rc = cachelock__win_path(path, strlen(path), &w);
    if (rc < 0)
        return rc;
    HANDLE h = cachelock__win_open_meta(w);
    if (h == INVALID_HANDLE_VALUE) {
        rc = cachelock__win_error(GetLastError());
        free(w);
        return rc;
    }
    /* The file the caller looked up, or it went meanwhile: nobody. */
    if (cachelock__win_id(h, &now, NULL) == 0 && !cachelock__same_id(&now, id)) {
        CloseHandle(h);
        free(w);
        return 0;
    }
    rc = by_file_information(h, fn, ctx);
    CloseHandle(h);
    if (rc == -ENOSYS)
        rc = by_restart_manager(w, fn, ctx);
    free(w);
    return rc;
}

int cachelock__os_locks_all(cachelock__lock_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return -ENOSYS;     /* ask file by file (holders.c) */
}

void cachelock__os_command(int pid, char *buf, size_t size)
{
    wchar_t image[MAX_PATH * 4];
    DWORD len = sizeof image / sizeof image[0];
    buf[0] = '\0';
    if (size < 2 || pid <= 0)
        return;
    HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
    if (!p)
        return;
    if (QueryFullProcessImageNameW(p, 0, image, &len) && cachelock__win_utf8(image, buf, size) < 0)
        buf[0] = '\0';
    CloseHandle(p);
}
