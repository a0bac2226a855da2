/*
 * syscalls.c - the table every system call of the library goes through.
 *
 * Tests replace entries to inject failures (EINTR, EMFILE, ENOSPC, ...) at
 * exact points and check that nothing leaks; see tests/test_faults.c.  The
 * table is hidden from the shared library's users.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

static int sys_mkdir(const char *path, unsigned mode) { return mkdir(path, (mode_t)mode); }
static int sys_poll(struct pollfd *fds, unsigned long n, int timeout) { return poll(fds, (nfds_t)n, timeout); }
static long sys_read(int fd, void *buf, size_t n) { return (long)read(fd, buf, n); }
static long sys_pread(int fd, void *buf, size_t n, int64_t off) { return (long)pread(fd, buf, n, (off_t)off); }
static long sys_pwrite(int fd, const void *buf, size_t n, int64_t off) { return (long)pwrite(fd, buf, n, (off_t)off); }

#define REAL_SYSCALLS { open, openat, close, flock, fstat, fstatat, sys_mkdir, unlinkat, renameat, fcntl, \
                        sys_poll, inotify_init1, inotify_add_watch, inotify_rm_watch, \
                        sys_read, ioctl, malloc, fstatfs, sys_pread, sys_pwrite }

struct cachelock__syscalls cachelock__sys = REAL_SYSCALLS;

void cachelock__syscalls_reset(void)
{
    struct cachelock__syscalls real = REAL_SYSCALLS;
    cachelock__sys = real;
}
