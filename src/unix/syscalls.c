/*
 * syscalls.c - the table every system call of the library goes through.
 *
 * Tests replace entries to inject failures (EINTR, EMFILE, ENOSPC, ...) at
 * exact points and check that nothing leaks; see tests/test_faults.c.  The
 * table is hidden from the shared library's users.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static int sys_mkdir(const char *path, unsigned mode) { return mkdir(path, (mode_t)mode); }
static int sys_poll(struct pollfd *fds, unsigned long n, int timeout) { return poll(fds, (nfds_t)n, timeout); }
static long sys_read(int fd, void *buf, size_t n) { return (long)read(fd, buf, n); }
static int sys_fchmod(int fd, unsigned mode) { return fchmod(fd, (mode_t)mode); }
static long sys_pread(int fd, void *buf, size_t n, int64_t off) { return (long)pread(fd, buf, n, (off_t)off); }
static long sys_pwrite(int fd, const void *buf, size_t n, int64_t off) { return (long)pwrite(fd, buf, n, (off_t)off); }

#if USE_INOTIFY
#include <sys/inotify.h>
#define SYS_INOTIFY inotify_init1, inotify_add_watch, inotify_rm_watch
#else
/* Without inotify (the portable build) the entries stay, so that tests
 * can swap them on every build; the library never calls them. */
static int no_init1(int flags) { (void)flags; errno = ENOSYS; return -1; }
static int no_add(int fd, const char *path, uint32_t mask) { (void)fd; (void)path; (void)mask; errno = ENOSYS; return -1; }
static int no_rm(int fd, int wd) { (void)fd; (void)wd; errno = ENOSYS; return -1; }
#define SYS_INOTIFY no_init1, no_add, no_rm
#endif

#if USE_LINUX_STATFS
#include <sys/vfs.h>
#define SYS_FSTATFS fstatfs
#elif USE_BSD_STATFS
#include <sys/param.h>
#include <sys/mount.h>
#define SYS_FSTATFS fstatfs
#else
/* The portable build has no statfs(2) with a filesystem type: the entry
 * says so, and every filesystem is of unknown kind. */
static int no_fstatfs(int fd, struct statfs *st) { (void)fd; (void)st; errno = ENOSYS; return -1; }
#define SYS_FSTATFS no_fstatfs
#endif

#define REAL_SYSCALLS { open, openat, close, flock, fstat, fstatat, sys_mkdir, unlinkat, renameat, fcntl, \
                        sys_poll, SYS_INOTIFY, sys_read, ioctl, malloc, SYS_FSTATFS, sys_fchmod, \
                        sys_pread, sys_pwrite }

struct cachelock__syscalls cachelock__sys = REAL_SYSCALLS;

void cachelock__syscalls_reset(void)
{
    struct cachelock__syscalls real = REAL_SYSCALLS;
    cachelock__sys = real;
}
