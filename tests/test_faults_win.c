/*
 * test_faults_win.c - every entry of the Windows system-call table
 * (src/win/os.h) fails in turn, at its 1st, 2nd, ... call, with each error
 * it is given below, on the main paths of the library: blocking acquires
 * (fresh cache, existing cache), a try and a timed acquire of a busy lock,
 * an asynchronous wait granted at a release, prune, and the diagnostics.
 * (tests/test_faults.c does this for Unix, with an exact table of outcomes;
 * here the invariants are checked, not each outcome.)
 *
 * After every fault:
 *   - a failed call left its out pointer NULL and a message that names the
 *     cache; a lock reported held is held (another handle's try is
 *     refused), and after the release it is free;
 *   - after cachelock_close_idle() no handle is left behind.
 *
 * FAULTS_TRACE=1 prints every path's calls without a fault.
 */
#include "helpers.h"
#include "internal.h"

#ifdef _WIN32
enum entry { E_CREATEFILE, E_REOPENFILE, E_CLOSEHANDLE, E_LOCKFILEEX, E_UNLOCKFILE,
             E_GETOVERLAPPEDRESULT, E_CANCELIOEX, E_CREATEEVENT, E_WAIT, E_GETINFO, E_GETINFOEX,
             E_SETINFO, E_GETFILETYPE, E_CREATEDIRECTORY, E_GETFULLPATHNAME, E_FINDFIRSTFILE,
             E_MALLOC, NENT };

/* A new entry in the table must be faulted here too. */
_Static_assert(sizeof(struct cachelock__syscalls) == NENT * sizeof(void (*)(void)),
               "the system-call table changed: add the new entry to test_faults_win.c");

static const char *const entry_name[NENT] = {
    "CreateFileW", "ReOpenFile", "CloseHandle", "LockFileEx", "UnlockFile",
    "GetOverlappedResult", "CancelIoEx", "CreateEventW", "WaitForSingleObject",
    "GetFileInformationByHandle", "GetFileInformationByHandleEx", "SetFileInformationByHandle",
    "GetFileType", "CreateDirectoryW", "GetFullPathNameW", "FindFirstFileExW", "malloc",
};

/* The errors each call is made to fail with: two every call can give, and
 * those that mean something to the library for some (busy, in use, full).
 * Never ERROR_INVALID_HANDLE: the library rightly takes it as "this handle
 * is not yours any more" and leaves it open, a leak of the test's own
 * making. */
static const DWORD errors[NENT][5] = {
    [E_CREATEFILE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_SHARING_VIOLATION,
                       ERROR_TOO_MANY_OPEN_FILES, ERROR_DISK_FULL },
    [E_REOPENFILE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_SHARING_VIOLATION },
    [E_CLOSEHANDLE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_LOCKFILEEX] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_LOCK_VIOLATION,
                       ERROR_NOT_SUPPORTED },
    [E_UNLOCKFILE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_NOT_LOCKED },
    [E_GETOVERLAPPEDRESULT] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY,
                                ERROR_OPERATION_ABORTED },
    [E_CANCELIOEX] = { ERROR_ACCESS_DENIED, ERROR_NOT_FOUND },
    [E_CREATEEVENT] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_WAIT] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_GETINFO] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_GETINFOEX] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_SETINFO] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_SHARING_VIOLATION,
                    ERROR_INVALID_PARAMETER },
    [E_GETFILETYPE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_CREATEDIRECTORY] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY, ERROR_DISK_FULL,
                            ERROR_PATH_NOT_FOUND },
    [E_GETFULLPATHNAME] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_FINDFIRSTFILE] = { ERROR_ACCESS_DENIED, ERROR_NOT_ENOUGH_MEMORY },
    [E_MALLOC] = { ERROR_NOT_ENOUGH_MEMORY },
};

static struct cachelock__syscalls real;
static struct {
    int entry, at;
    DWORD err;
    int calls[NENT];
    int hit, trace;
} F = { .entry = -1 };

static int hit(enum entry e)
{
    int n = ++F.calls[e];
    int fail = (int)e == F.entry && n == F.at;
    if (F.trace)
        tap_diag("  %s #%d%s", entry_name[e], n, fail ? "  <- fails" : "");
    if (fail) {
        F.hit = 1;
        SetLastError(F.err);
    }
    return fail;
}

static void *h_CreateFileW(const wchar_t *p, unsigned long a, unsigned long s,
                           struct _SECURITY_ATTRIBUTES *sa, unsigned long d, unsigned long f, void *t)
{
    return hit(E_CREATEFILE) ? INVALID_HANDLE_VALUE : real.CreateFileW(p, a, s, sa, d, f, t);
}

static void *h_ReOpenFile(void *h, unsigned long a, unsigned long s, unsigned long f)
{
    return hit(E_REOPENFILE) ? INVALID_HANDLE_VALUE : real.ReOpenFile(h, a, s, f);
}

/* Windows closes the handle whatever CloseHandle reports: so does the fault. */
static int h_CloseHandle(void *h)
{
    if (hit(E_CLOSEHANDLE)) {
        DWORD e = GetLastError();
        real.CloseHandle(h);
        SetLastError(e);
        return FALSE;
    }
    return real.CloseHandle(h);
}

static int h_LockFileEx(void *h, unsigned long f, unsigned long r, unsigned long l,
                        unsigned long hi, struct _OVERLAPPED *ov)
{
    return hit(E_LOCKFILEEX) ? FALSE : real.LockFileEx(h, f, r, l, hi, ov);
}

static int h_UnlockFile(void *h, unsigned long a, unsigned long b, unsigned long c, unsigned long d)
{
    return hit(E_UNLOCKFILE) ? FALSE : real.UnlockFile(h, a, b, c, d);
}

static int h_GetOverlappedResult(void *h, struct _OVERLAPPED *ov, unsigned long *n, int w)
{
    return hit(E_GETOVERLAPPEDRESULT) ? FALSE : real.GetOverlappedResult(h, ov, n, w);
}

static int h_CancelIoEx(void *h, struct _OVERLAPPED *ov)
{
    return hit(E_CANCELIOEX) ? FALSE : real.CancelIoEx(h, ov);
}

static void *h_CreateEventW(struct _SECURITY_ATTRIBUTES *sa, int m, int i, const wchar_t *n)
{
    return hit(E_CREATEEVENT) ? NULL : real.CreateEventW(sa, m, i, n);
}

static unsigned long h_WaitForSingleObject(void *h, unsigned long ms)
{
    return hit(E_WAIT) ? WAIT_FAILED : real.WaitForSingleObject(h, ms);
}

static int h_GetInfo(void *h, struct _BY_HANDLE_FILE_INFORMATION *i)
{
    return hit(E_GETINFO) ? FALSE : real.GetFileInformationByHandle(h, i);
}

static int h_GetInfoEx(void *h, int c, void *i, unsigned long s)
{
    return hit(E_GETINFOEX) ? FALSE : real.GetFileInformationByHandleEx(h, c, i, s);
}

static int h_SetInfo(void *h, int c, void *i, unsigned long s)
{
    return hit(E_SETINFO) ? FALSE : real.SetFileInformationByHandle(h, c, i, s);
}

static unsigned long h_GetFileType(void *h)
{
    return hit(E_GETFILETYPE) ? FILE_TYPE_UNKNOWN : real.GetFileType(h);
}

static int h_CreateDirectoryW(const wchar_t *p, struct _SECURITY_ATTRIBUTES *sa)
{
    return hit(E_CREATEDIRECTORY) ? FALSE : real.CreateDirectoryW(p, sa);
}

static unsigned long h_GetFullPathNameW(const wchar_t *p, unsigned long n, wchar_t *b, wchar_t **f)
{
    return hit(E_GETFULLPATHNAME) ? 0 : real.GetFullPathNameW(p, n, b, f);
}

static void *h_FindFirstFileExW(const wchar_t *p, int l, struct _WIN32_FIND_DATAW *d, int s,
                                void *f, unsigned long fl)
{
    return hit(E_FINDFIRSTFILE) ? INVALID_HANDLE_VALUE : real.FindFirstFileExW(p, l, d, s, f, fl);
}

static void *h_malloc(size_t n)
{
    return hit(E_MALLOC) ? NULL : real.malloc(n);
}

static void install(int entry, int at, DWORD err)
{
    cachelock__syscalls_reset();
    real = cachelock__sys;
    F.entry = entry;
    F.at = at;
    F.err = err;
    F.hit = 0;
    memset(F.calls, 0, sizeof F.calls);
    cachelock__sys.CreateFileW = h_CreateFileW;
    cachelock__sys.ReOpenFile = h_ReOpenFile;
    cachelock__sys.CloseHandle = h_CloseHandle;
    cachelock__sys.LockFileEx = h_LockFileEx;
    cachelock__sys.UnlockFile = h_UnlockFile;
    cachelock__sys.GetOverlappedResult = h_GetOverlappedResult;
    cachelock__sys.CancelIoEx = h_CancelIoEx;
    cachelock__sys.CreateEventW = h_CreateEventW;
    cachelock__sys.WaitForSingleObject = h_WaitForSingleObject;
    cachelock__sys.GetFileInformationByHandle = h_GetInfo;
    cachelock__sys.GetFileInformationByHandleEx = h_GetInfoEx;
    cachelock__sys.SetFileInformationByHandle = h_SetInfo;
    cachelock__sys.GetFileType = h_GetFileType;
    cachelock__sys.CreateDirectoryW = h_CreateDirectoryW;
    cachelock__sys.GetFullPathNameW = h_GetFullPathNameW;
    cachelock__sys.FindFirstFileExW = h_FindFirstFileExW;
    cachelock__sys.malloc = h_malloc;
}

static void uninstall(void)
{
    cachelock__syscalls_reset();
    F.entry = -1;
}

/* ---- another program's view of a lock file (real calls, not counted) ---- */

static HANDLE raw_open(const char *path)
{
    return CreateFileA(path, GENERIC_READ | GENERIC_WRITE,
                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_ALWAYS,
                       0, NULL);
}

static int raw_lock(HANDLE h, int try)
{
    OVERLAPPED ov;
    memset(&ov, 0, sizeof ov);
    return LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | (try ? LOCKFILE_FAIL_IMMEDIATELY : 0), 0,
                      ~0u, ~0u, &ov) ? 0 : -EWOULDBLOCK;
}

/* Is the lock of path free for another handle now? */
static int is_free(const char *path)
{
    HANDLE h = raw_open(path);
    int rc = h == INVALID_HANDLE_VALUE ? 0 : raw_lock(h, 1);
    if (h != INVALID_HANDLE_VALUE) {
        if (rc == 0)
            UnlockFile(h, 0, 0, ~0u, ~0u);
        CloseHandle(h);
    }
    return rc == 0;
}

/* ---- the paths ------------------------------------------------------------- */

static char cache[400], file_s[450], file_t[450];
static HANDLE busy;         /* a handle of "another program" holding s */

/* A failure's promises: out NULL, a message naming the cache. */
static void failed_well(const char *what, int rc, const void *out)
{
    if (out)
        tap_fail(__FILE__, __LINE__, "%s: %d but out is not NULL", what, rc);
    if (!strstr(cachelock_errmsg(), cache))
        tap_fail(__FILE__, __LINE__, "%s: %d with message '%s', which does not name the cache",
                 what, rc, cachelock_errmsg());
}

/* A success's promise: held, and free after the release. */
static void held_then_free(const char *what, cachelock_t *lock, const char *file)
{
    if (is_free(file))
        tap_fail(__FILE__, __LINE__, "%s: reported held, but another handle can lock it", what);
    cachelock_release(lock);
}

static void path_acquire(void)
{
    cachelock_t *lock = NULL;
    int rc = cachelock_acquire(cache, "s", &lock);
    if (rc < 0)
        failed_well("acquire", rc, lock);
    else
        held_then_free("acquire", lock, file_s);
}

static void path_try_busy(void)
{
    cachelock_t *lock = NULL;
    int rc = cachelock_try_acquire(cache, "s", &lock);
    if (rc == 0)
        tap_fail(__FILE__, __LINE__, "try: a lock another handle holds was granted");
    failed_well("try", rc, lock);
}

static void path_timed_busy(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_t *lock = NULL;
    o.timeout_ms = 20;
    int rc = cachelock_acquire_ex(cache, "s", &o, &lock);
    if (rc == 0)
        tap_fail(__FILE__, __LINE__, "timed: a lock another handle holds was granted");
    failed_well("timed", rc, lock);
}

/* An asynchronous wait, stepped while another handle holds s, then after it
 * lets go. */
static void path_async(void)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    cachelock_wait_t *w = NULL;
    cachelock_t *lock = NULL;
    int rc;
    o.timeout_ms = 2000;
    HANDLE holder = raw_open(file_s);
    CHECK(holder != INVALID_HANDLE_VALUE && raw_lock(holder, 1) == 0);
    rc = cachelock_wait_start(cache, "s", &o, &w);
    if (rc < 0) {
        failed_well("wait_start", rc, w);
    } else {
        rc = cachelock_wait_step(w, &lock);
        CHECK(rc != 0);
        UnlockFile(holder, 0, 0, ~0u, ~0u);
        while (rc == -EINPROGRESS) {
            void *event = cachelock_wait_handle(w);
            if (event)
                WaitForSingleObject(event, (DWORD)cachelock_wait_timeout(w));
            else
                Sleep((DWORD)cachelock_wait_timeout(w));
            rc = cachelock_wait_step(w, &lock);
        }
        if (rc < 0)
            failed_well("wait_step", rc, lock);
        cachelock_wait_free(w);
        if (rc == 0)
            held_then_free("wait_step", lock, file_s);
    }
    CloseHandle(holder);
}

static void path_prune(void)
{
    int rc = cachelock_prune(cache, 0, 0, NULL, NULL);
    if (rc < 0)
        failed_well("prune", rc, NULL);
    CHECK(rc <= 2);
}

static void path_status(void)
{
    cachelock_source_status_t *st = NULL;
    cachelock_holder_t *h = NULL;
    size_t n;
    int rc = cachelock_status(cache, &st, &n);
    if (rc < 0)
        failed_well("status", rc, st);
    cachelock_status_free(st, rc < 0 ? 0 : n);
    rc = cachelock_holders(cache, "s", &h, &n);
    if (rc < 0)
        failed_well("holders", rc, h);
    free(h);
}

/* How each path starts: 0 nothing, 1 the cache exists with s and t, 2 and
 * another program holds s. */
static void set_up(int state)
{
    tap_rm_tree(cache);
    if (state == 0)
        return;
    CHECK_EQ(cachelock_prepare(cache, "s", 0), 0);
    CHECK_EQ(cachelock_prepare(cache, "t", 0), 0);
    if (state == 2) {
        busy = raw_open(file_s);
        CHECK(busy != INVALID_HANDLE_VALUE && raw_lock(busy, 1) == 0);
    }
}

static void tear_down(void)
{
    if (busy) {
        CloseHandle(busy);
        busy = NULL;
    }
}

static void run_path(const char *name, void (*path)(void), int state)
{
    int base, calls[NENT], faults = 0;

    snprintf(cache, sizeof cache, "%s", tpath("cache"));
    snprintf(file_s, sizeof file_s, "%s", tpath("cache/.locks/s.lock"));
    snprintf(file_t, sizeof file_t, "%s", tpath("cache/.locks/t.lock"));
    /* Once without a fault, to let the runtime and wine's probes set up
     * what they keep; again, to count the calls. */
    set_up(state);
    path();
    tear_down();
    cachelock_close_idle();
    base = count_fds();
    set_up(state);
    F.trace = getenv("FAULTS_TRACE") != NULL;
    install(-1, 0, 0);
    path();
    memcpy(calls, F.calls, sizeof calls);
    F.trace = 0;
    uninstall();
    tear_down();
    cachelock_close_idle();
    CHECK_EQ(count_fds(), base);
    for (int e = 0; e < NENT; e++) {
        for (int at = 1; at <= calls[e]; at++) {
            for (int k = 0; k < 5 && errors[e][k]; k++) {
                DWORD err = errors[e][k];
                set_up(state);
                install(e, at, err);
                path();
                uninstall();
                tear_down();
                cachelock_close_idle();
                faults++;
                if (count_fds() != base)
                    tap_fail(__FILE__, __LINE__, "%s: %s #%d failing with %lu left %d handles "
                             "behind", name, entry_name[e], at, (unsigned long)err,
                             count_fds() - base);
                if (state && !is_free(file_s))
                    tap_fail(__FILE__, __LINE__, "%s: %s #%d failing with %lu left s locked", name,
                             entry_name[e], at, (unsigned long)err);
            }
        }
    }
    tap_diag("%s: %d faults", name, faults);
}

static void test_faults_of_a_blocking_acquire_of_a_fresh_cache(void)
{
    run_path("acquire, fresh", path_acquire, 0);
}

static void test_faults_of_a_blocking_acquire_of_an_existing_cache(void)
{
    run_path("acquire, existing", path_acquire, 1);
}

static void test_faults_of_a_try_of_a_busy_lock(void)
{
    run_path("try, busy", path_try_busy, 2);
}

static void test_faults_of_a_timed_acquire_of_a_busy_lock(void)
{
    run_path("timed, busy", path_timed_busy, 2);
}

static void test_faults_of_an_asynchronous_wait(void)
{
    run_path("async", path_async, 1);
}

static void test_faults_of_prune(void)
{
    run_path("prune", path_prune, 1);
}

static void test_faults_of_status_and_holders(void)
{
    run_path("status", path_status, 1);
}

TAP_MAIN(
    T(test_faults_of_a_blocking_acquire_of_a_fresh_cache, 120),
    T(test_faults_of_a_blocking_acquire_of_an_existing_cache, 120),
    T(test_faults_of_a_try_of_a_busy_lock, 120),
    T(test_faults_of_a_timed_acquire_of_a_busy_lock, 120),
    T(test_faults_of_an_asynchronous_wait, 120),
    T(test_faults_of_prune, 120),
    T(test_faults_of_status_and_holders, 120),
)
#else
static void test_windows_system_call_table(void)
{
    SKIP("Windows' system-call table; test_faults faults Unix's");
}

TAP_MAIN(T(test_windows_system_call_table))
#endif
