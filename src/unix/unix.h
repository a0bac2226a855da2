/*
 * unix.h - what the files of the Unix OS layer share among themselves.
 * Portable code never includes this.
 *
 * Which features the build uses.  Linux has them all; the portable Unix
 * build (make PORTABLE=1, which defines CACHELOCK_PORTABLE, or any other
 * Unix) uses only POSIX and flock(2), plus kqueue(2) where the system has
 * it:
 *
 *   USE_INOTIFY       timed waits watch lock files with inotify(7)
 *   USE_KQUEUE        ... with kqueue(2)'s EVFILT_VNODE instead (BSDs,
 *                     macOS); with neither, waits re-check on a timer
 *   USE_OFD_MARKS     waiters mark lock files with OFD locks, so released
 *                     files can be kept open; without, every release
 *                     closes its file (kept .locks directories stay)
 *   USE_OFD_QUEUE     fair mode's queue of OFD locks (src/fair.c), which
 *                     also needs inotify to wake timed waits; without, fair
 *                     mode is refused with -ENOTSUP
 *   USE_PROC          /proc/locks (who holds what), /proc/PID/fdinfo (is
 *                     that really the holder), /proc/self/mountinfo
 *                     (virtiofs or FUSE); without, no holder listing
 *   USE_LINUX_STATFS  statfs(2)'s f_type names the filesystem
 *   USE_BSD_STATFS    statfs(2)'s f_fstypename names it
 *   USE_WIPEONFORK    a MADV_WIPEONFORK page tells a forked child; without,
 *                     getpid(2) does (fork.c)
 *   USE_O_PATH        .locks is kept open with O_PATH; without, O_RDONLY
 */
#ifndef CACHELOCK_UNIX_H
#define CACHELOCK_UNIX_H

#include "../internal.h"

#if defined(__linux__) && !defined(CACHELOCK_PORTABLE)
#define USE_INOTIFY 1
#define USE_OFD_MARKS 1
#define USE_OFD_QUEUE 1
#define USE_PROC 1
#define USE_LINUX_STATFS 1
#define USE_WIPEONFORK 1
#define USE_O_PATH 1
#else
#define USE_INOTIFY 0
#define USE_OFD_MARKS 0
#define USE_OFD_QUEUE 0
#define USE_PROC 0
#define USE_LINUX_STATFS 0
#define USE_WIPEONFORK 0
#define USE_O_PATH 0
#endif

/* CACHELOCK_FAKE_KQUEUE: compile the kqueue code on Linux against the
 * declarations in tests/fake (make kqueue-syntax), to catch what a BSD
 * compiler would; such a build is never run. */
#if !USE_INOTIFY && (defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
                     defined(__OpenBSD__) || defined(__DragonFly__) || defined(CACHELOCK_FAKE_KQUEUE))
#define USE_KQUEUE 1
#else
#define USE_KQUEUE 0
#endif

#if !USE_LINUX_STATFS && (defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) || \
                          defined(__DragonFly__))
#define USE_BSD_STATFS 1
#else
#define USE_BSD_STATFS 0
#endif

/* Move a descriptor to 3 or above (closing the low one): a lock file
 * opened as descriptor 0 would be read or written by code that thinks it
 * is stdin.  Returns the descriptor, or -1 with errno set (EMFILE when no
 * descriptor above 2 is left). */
int cachelock__os_keep_high(int fd);

/* The cachelock_fs_kind_t of a filesystem type name: a Linux mount type
 * ("nfs4", "cifs", "fuse.sshfs", "9p", "virtiofs", "ext4") or a BSD/macOS
 * f_fstypename ("nfs", "smbfs", "fusefs", "macfuse", "apfs", "ufs");
 * CACHELOCK_FS_UNKNOWN for a name it does not know. */
int cachelock__os_fs_kind_by_name(const char *name);
/* The kind of the filesystem of descriptor fd, with its statfs(2) (and,
 * for FUSE on Linux, /proc/self/mountinfo: virtiofs is FUSE inside);
 * CACHELOCK_FS_UNKNOWN when it cannot tell.  dev is the device of a file
 * there (st_dev). */
int cachelock__os_fs_kind_fd(int fd, uint64_t dev);
/* The same, learned once per .locks directory of p: kept while lock
 * files opened there are on device dev. */
int cachelock__os_fs_kind_cached(const struct cachelock__path *p, int dfd, uint64_t dev);

#endif
