/*
 * win.h - what the files of the Windows OS layer share among themselves.
 * Portable code never includes this.
 */
#ifndef CACHELOCK_WIN_H
#define CACHELOCK_WIN_H

#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
/* Declarations of Windows 10; each call used exists since Windows Vista or
 * 7, or is looked up at run time. */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#include <windows.h>

#include "../internal.h"

#ifndef ERROR_DISK_QUOTA_EXCEEDED
#define ERROR_DISK_QUOTA_EXCEEDED 1295L
#endif

/* A descriptor of the OS layer is a HANDLE's value (see os.h). */
static inline HANDLE cachelock__win_handle(int fd) { return (HANDLE)(intptr_t)fd; }
static inline int cachelock__win_fd(HANDLE h) { return (int)(intptr_t)h; }

/* The whole byte range that fs4, Rust's std File::lock, Cargo and Go's
 * cmd/go lock: offset 0, length 2^64 - 1.  Locking exactly this range is
 * what makes them, the Rust original and this library exclude one another
 * (and Python's filelock, whose one byte at offset 0 overlaps it). */
#define LOCK_ALL_LOW  0xFFFFFFFFul
#define LOCK_ALL_HIGH 0xFFFFFFFFul

/* ---- errors (error.c) ---------------------------------------------------- */

/* A Windows error code as this library's negative errno-style code (the
 * one table, libuv's src/win/error.c pattern).  ERROR_LOCK_VIOLATION and
 * ERROR_SHARING_VIOLATION mean "busy" where a lock or a delete is tried;
 * the callers that know it say so themselves. */
int cachelock__win_error(DWORD err);

/* Is the last failure of a call ERROR_ACCESS_DENIED because the file is
 * being deleted (STATUS_DELETE_PENDING: deleted with classic semantics
 * while others still have it open)? */
int cachelock__win_delete_pending(void);

/* ---- paths (path.c) ------------------------------------------------------ */

/* UTF-8 path (len bytes) to the UTF-16 path the OS layer opens: strictly
 * converted (invalid UTF-8 gives -EINVAL), made absolute (GetFullPathNameW:
 * against the current directory, '/' as '\\', "." and ".." resolved) and
 * given the \\?\ prefix, so that no MAX_PATH limit applies.  *out is from
 * malloc(); 0, or a negative code without a message. */
int cachelock__win_path(const char *path, size_t len, wchar_t **out);
/* Length of the root of a \\?\ path ("\\?\C:\", "\\?\UNC\server\share\"),
 * which directories are never created in. */
size_t cachelock__win_root_len(const wchar_t *path);
/* UTF-16 to UTF-8 into buf (size bytes); 0, or -1 when it does not convert
 * (an unpaired surrogate) or fit. */
int cachelock__win_utf8(const wchar_t *w, char *buf, size_t size);

/* ---- identity (file.c) ---------------------------------------------------- */

/* The identity of an open handle (volume serial number, file index) and
 * its attributes; 0 or a negative code. */
int cachelock__win_id(HANDLE h, struct cachelock__fileid *id, DWORD *attributes);
/* Open what path names, for its identity only: FILE_READ_ATTRIBUTES, every
 * share mode, a reparse point itself rather than what it points to. */
HANDLE cachelock__win_open_meta(const wchar_t *path);

#endif
