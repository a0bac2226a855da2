/*
 * os.h - what portable code needs from Windows beyond C11: threads (a
 * mutex, one-time initialisation, thread identity; no fork, no
 * cancellation), how paths are spelled, and the system-call table.
 * Included by internal.h; src/unix/os.h is the same for Unix.
 *
 * No <windows.h> here: portable code sees plain C types only.  The mutex
 * and the once flag have the layout of an SRWLOCK and an INIT_ONCE (one
 * pointer, zero to start), and src/win/thread.c checks that.  No
 * winpthreads: it would make every program that links the library ship
 * libwinpthread-1.dll.
 */
#ifndef CACHELOCK_WIN_OS_H
#define CACHELOCK_WIN_OS_H

#include <stddef.h>
#include <stdint.h>
#include <wchar.h>

/* What a descriptor of the OS layer is (see struct cachelock__handle): a
 * HANDLE's value here, which Windows keeps within 32 bits (handles are
 * shared between 32- and 64-bit processes), positive and a multiple of 4. */
#define CACHELOCK__FD_IS_HANDLE 1

/* A waiter mark (os_mark_waiting) is a lock request queued in the kernel:
 * it wakes the wait by itself, no watch needed. */
#define CACHELOCK__MARK_WAKES 1

/* ---- threads (win/thread.c) ---------------------------------------------- */

typedef struct { void *ptr; } cachelock__mutex_t;           /* an SRWLOCK */
#define CACHELOCK__MUTEX_INIT { NULL }
void cachelock__mutex_lock(cachelock__mutex_t *m);
void cachelock__mutex_unlock(cachelock__mutex_t *m);

typedef struct { void *ptr; } cachelock__once_t;            /* an INIT_ONCE */
#define CACHELOCK__ONCE_INIT { NULL }
void cachelock__once(cachelock__once_t *o, void (*fn)(void));

typedef unsigned long cachelock__thread_t;                  /* a thread id */
cachelock__thread_t cachelock__thread_self(void);
static inline int cachelock__thread_equal(cachelock__thread_t a, cachelock__thread_t b)
{
    return a == b;
}

/* There is no fork(2): nothing to run around it. */
static inline void cachelock__atfork(void (*prepare)(void), void (*parent)(void),
                                     void (*child)(void))
{
    (void)prepare;
    (void)parent;
    (void)child;
}

void cachelock__os_yield(void);

/* There is no thread cancellation either: the state is only carried. */
#define CACHELOCK__CANCEL_DISABLE 1
static inline int cachelock__setcancelstate(int state)
{
    (void)state;
    return CACHELOCK__CANCEL_DISABLE;
}
#define cachelock__cleanup_push(fn, arg) \
    { void (*cleanup_fn_)(void *) = (fn); void *cleanup_arg_ = (arg);
#define cachelock__cleanup_pop(run) \
    if (run) cleanup_fn_(cleanup_arg_); }

/* ---- paths ------------------------------------------------------------------ */

/* Windows takes '/' and '\\' alike; the library joins with '\\', as Rust's
 * Path::join does (so messages show the paths the Rust original shows). */
#define CACHELOCK__SEP '\\'
static inline int cachelock__os_is_sep(char c) { return c == '\\' || c == '/'; }
/* The root that trailing separators are never trimmed into: "\" (the
 * current drive's), "C:" or "C:\", "\\server\share\", "\\?\C:\". */
size_t cachelock__os_root_len(const char *dir, size_t len);

/* Why a name is no Windows file name beyond the rule of every system
 * (CACHELOCK_F_ANYNAME), or NULL: a '\\', a control character, one of
 * < > : " | ? *, or bytes that are not UTF-8. */
const char *cachelock__os_name_refused(const char *name, size_t len);

/* ---- system call table (win/syscalls.c) ---------------------------------- */

/* Every Windows call of the acquire, wait, release and prune paths goes
 * through this table (the diagnostics that list processes do not), so tests
 * can inject failures, as on Unix.  Types are spelled out so that portable
 * code needs no <windows.h>: void * is a HANDLE, unsigned long a DWORD,
 * int a BOOL.  Portable code uses only its malloc. */
struct _SECURITY_ATTRIBUTES;
struct _OVERLAPPED;
struct _BY_HANDLE_FILE_INFORMATION;
struct _WIN32_FIND_DATAW;
struct cachelock__syscalls {
    void *(*CreateFileW)(const wchar_t *path, unsigned long access, unsigned long share,
                         struct _SECURITY_ATTRIBUTES *sa, unsigned long disposition,
                         unsigned long flags, void *tmpl);
    void *(*ReOpenFile)(void *h, unsigned long access, unsigned long share, unsigned long flags);
    int (*CloseHandle)(void *h);
    int (*LockFileEx)(void *h, unsigned long flags, unsigned long reserved, unsigned long low,
                      unsigned long high, struct _OVERLAPPED *ov);
    int (*UnlockFile)(void *h, unsigned long off_low, unsigned long off_high, unsigned long low,
                      unsigned long high);
    int (*GetOverlappedResult)(void *h, struct _OVERLAPPED *ov, unsigned long *n, int wait);
    int (*CancelIoEx)(void *h, struct _OVERLAPPED *ov);
    void *(*CreateEventW)(struct _SECURITY_ATTRIBUTES *sa, int manual, int initial,
                          const wchar_t *name);
    unsigned long (*WaitForSingleObject)(void *h, unsigned long ms);
    int (*GetFileInformationByHandle)(void *h, struct _BY_HANDLE_FILE_INFORMATION *info);
    int (*GetFileInformationByHandleEx)(void *h, int cls, void *info, unsigned long size);
    int (*SetFileInformationByHandle)(void *h, int cls, void *info, unsigned long size);
    unsigned long (*GetFileType)(void *h);
    int (*CreateDirectoryW)(const wchar_t *path, struct _SECURITY_ATTRIBUTES *sa);
    unsigned long (*GetFullPathNameW)(const wchar_t *path, unsigned long size, wchar_t *buf,
                                      wchar_t **file);
    void *(*FindFirstFileExW)(const wchar_t *path, int level, struct _WIN32_FIND_DATAW *data,
                              int search, void *filter, unsigned long flags);
    void *(*malloc)(size_t n);
};

#endif
