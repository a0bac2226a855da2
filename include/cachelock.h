/*
 * cachelock.h - per-source locks for a shared cache directory
 *
 * OVERVIEW
 *
 *   A cache directory is shared by many processes (package managers, build
 *   systems, CI jobs) and by many threads inside each.  Every named entry of
 *   the cache, a "source", has a lock file
 *
 *       {cache_dir}/.locks/{source}.lock
 *
 *   and a holder takes it exclusive (a writer) or shared (a reader).  The lock
 *   is an flock(2) lock on that file (LockFileEx on Windows, see WINDOWS), so
 *   it is released by the kernel when the holder releases it, closes it, or
 *   dies: a crashed holder never leaves a stale lock behind.  Lock files stay
 *   on disk; their presence means nothing.
 *
 *   The paths and the lock primitive are the same as those of the CacheLock
 *   of the Rust package manager ccpm/agpm, and of util-linux flock(1) and
 *   Python's filelock on Unix, so all of them exclude one another on one
 *   cache.
 *
 * CALLING SEQUENCE
 *
 *     #include <cachelock.h>
 *
 *     cachelock_t *lock;
 *     int rc = cachelock_acquire("/var/cache/pkg", "registry", &lock);
 *     if (rc != 0) {
 *         fprintf(stderr, "pkg: %s\n", cachelock_errmsg());
 *         return 1;
 *     }
 *     ... read and write /var/cache/pkg/registry ...
 *     cachelock_release(lock);
 *
 *   Shared locks, non-blocking tries and timeouts go through an options
 *   struct, which must be initialised with CACHELOCK_OPTIONS_INIT so that
 *   fields added in later versions get their defaults:
 *
 *     cachelock_options_t opts = CACHELOCK_OPTIONS_INIT;
 *     opts.mode = CACHELOCK_SHARED;
 *     opts.timeout_ms = 5000;
 *     rc = cachelock_acquire_ex(dir, "registry", &opts, &lock);
 *     if (rc == -ETIMEDOUT) ... still held by someone else after 5 s ...
 *
 *   Event loops use the asynchronous interface (cachelock_wait_start() and
 *   friends, below) and never block.  examples/poll_acquire.c is a complete
 *   program.
 *
 * ERROR HANDLING
 *
 *   Every function that can fail returns an int: 0 (or a non-negative count)
 *   on success, a negative errno-style code on failure, and on failure every
 *   output pointer is set to NULL, nothing is left to free and nothing is
 *   left locked.  What an acquire created on disk before it failed (the
 *   cache directory, .locks, an empty lock file) stays: it is what the next
 *   acquire needs, and removing it is never safe, because another process
 *   may have started using it the moment it existed.  Nothing is ever
 *   created outside the cache directory.  The system calls of acquire,
 *   wait, release and prune go through an internal table, and
 *   tests/test_faults.c makes each one fail in turn to prove this (all but
 *   reading the entries of .locks, and prune's linkat(2) that puts back a
 *   file renamed onto a name in the instant it was being removed);
 *   tests/test_faults_win.c does the same with the Windows calls.
 *
 *   -EWOULDBLOCK ("busy", from a try) and -ETIMEDOUT (the deadline passed)
 *   are outcomes, not errors of the system: the lock is held by someone else.
 *   -EDEADLK comes only from a blocking acquire (no timeout) of a lock that
 *   the calling thread itself holds in a conflicting mode: it would wait for
 *   itself forever (see OWNERSHIP).  -EINVAL and -ENAMETOOLONG are bad
 *   arguments.  -ESTALE means the lock file was replaced (renamed or
 *   removed) 1,000 times in a row while the acquire tried to lock it.
 *   Anything else is the negated errno of the system call that failed.
 *
 *   cachelock_strerror() turns a code into a short text.  cachelock_errmsg()
 *   returns a one-line message about the last failure in the calling thread,
 *   naming the operation and the path, ready to show to a person:
 *
 *       cannot create lock directory '/x/.locks': Permission denied
 *
 *   Messages are lowercase and have no trailing full stop, so programs can
 *   prefix them with their own name.  They are per thread, so several
 *   threads can fail at once without mixing their messages.  Control
 *   characters and bytes that are not UTF-8 (in a path or a name) are shown
 *   as \\xNN, so a message never carries them to a terminal or a log.
 *
 * WHAT IS GUARANTEED
 *
 *   Among users of this library, two holders never hold one source
 *   exclusively at the same time, and an exclusive holder never overlaps a
 *   shared one, with one exception that no lock can avoid: a hold granted
 *   BEFORE someone renames or removes the lock file, .locks or the cache
 *   directory (or retargets a symbolic link on the path) is on a file the
 *   path no longer names, and the next acquire locks the file the path
 *   names now.  Every grant is followed by a look-up of the whole path
 *   (one fstatat(2)) that must find the very file just locked, otherwise
 *   the lock is dropped and the acquire starts again: a file pruned,
 *   renamed or replaced while an acquire waited for it, or while it was
 *   kept open (KEPT DESCRIPTORS), is never held.  flock(1), the Rust
 *   original and other flock(2) users exclude users of this library and are
 *   excluded by them, but do not re-check the path: after a rename or a
 *   removal they may hold the old file.
 *
 * CAVEATS
 *
 *   - Never delete or rename lock files by hand, and never with a cleanup
 *     that does not take the lock first (the Rust original's TTL cleanup
 *     does exactly that): see WHAT IS GUARANTEED.  To clean up, use
 *     cachelock_prune(), which removes only files whose lock it holds.
 *
 *   - fork(2): a child inherits the parent's lock descriptors, and with them
 *     the parent's locks (flock locks belong to the open file, which both now
 *     share).  cachelock_release() in the parent unlocks explicitly, so the
 *     lock is free when it returns even if a child still has a copy.  In the
 *     child, the parent's locks are not the child's: releasing one there
 *     only closes the child's copy and never unlocks the parent's lock, a
 *     blocking acquire there waits for it like for any other holder, and a
 *     wait started in the parent fails with -EINVAL when stepped.  The child
 *     never reuses a descriptor the parent kept open (KEPT DESCRIPTORS).
 *     This holds for children of fork(2), _Fork() and clone() without
 *     CLONE_VM alike: the library tells a child by a memory page marked
 *     MADV_WIPEONFORK (by getpid(2) where the kernel lacks it), not by
 *     atfork handlers.  Atfork handlers of the program may call the library.
 *     As POSIX requires, a child of a multi-threaded process made by
 *     _Fork() or clone() must not call the library (another thread may have
 *     held its internal mutex at the fork).  Descriptors are opened with
 *     O_CLOEXEC, so a program started with exec(2) does not inherit them.  A
 *     child forked without exec(2) keeps copies of the parent's
 *     descriptors, so the parent's closing them makes no inotify event while
 *     the child lives: timed waiters then see a release at their next
 *     re-check.
 *
 *   - Descriptors: the library's descriptors are 3 or above.  A program
 *     that closes descriptors it does not own (closefrom(), a daemonising
 *     helper) and opens its own files under the same numbers is detected:
 *     the library compares a descriptor's file (device and inode) with the
 *     one it opened before it locks, unlocks or closes it, and leaves a
 *     descriptor that is now the program's alone.  The locks held through
 *     the closed descriptors are lost, of course.  (A program that closes a
 *     library descriptor and opens the very same lock file under the same
 *     number cannot be told apart.)
 *
 *   - The same source twice in one process: each acquire opens its own file
 *     description, so threads of one process exclude each other exactly like
 *     separate processes.  Holding the same source shared twice is allowed.
 *     Locks cannot be upgraded or downgraded: release and acquire again.
 *
 *   - Network and FUSE filesystems, containers, read-only mounts and
 *     caches shared by a group: see FILESYSTEMS.  Prefer a local directory
 *     for the lock files.

 *   - Source names are file names.  They are refused (-EINVAL) when they
 *     could escape .locks/ or are not portable: empty, "." and "..", any '/'
 *     or '\\', control characters, the characters < > : " | ? *, a trailing
 *     dot or space, names that are reserved devices on Windows (CON, PRN,
 *     AUX, NUL, COM0-9, LPT0-9 and COM/LPT with the superscript digits 1-3,
 *     CONIN$, CONOUT$, with any extension), and bytes that are not UTF-8.
 *     A name longer than 250 bytes (so that "{source}.lock" fits in 255)
 *     gives -ENAMETOOLONG.  Names differing only in case are one lock on
 *     case-insensitive filesystems.  CACHELOCK_F_ANYNAME accepts any valid
 *     file name of this system instead (not empty, ".", ".." or with a
 *     '/'), for caches shared with tools that create such names;
 *     cachelock_sources(), cachelock_holders(), cachelock_status() and
 *     cachelock_prune() always accept them.
 *
 *   - The library installs no signal handlers and creates no threads.
 *
 *   - Thread cancellation (pthread_cancel): every call runs with
 *     cancellation disabled, except the sleep of a timed acquire
 *     (cachelock_acquire_ex() with timeout_ms > 0), which is a cancellation
 *     point in the caller's cancellation state: a thread cancelled there
 *     leaves no descriptor, inotify instance or waiter mark behind.  A
 *     blocking acquire (timeout_ms == -1) sleeps in flock(2), which is not a
 *     cancellation point: a cancel takes effect after it returns.  Use a
 *     timeout for a wait that must be cancellable.
 *
 * OWNERSHIP
 *
 *   flock(2) cannot tell a thread that it is about to wait for a lock it
 *   holds itself: the second acquire opens its own file description and
 *   sleeps forever.  So every held lock records the thread that acquired
 *   it, and a BLOCKING acquire by that thread of a lock it holds in a
 *   conflicting mode fails at once with -EDEADLK.  Nothing else ever does:
 *   a try reports busy, and timed and asynchronous waits wait (and time
 *   out), because another thread or task may release the lock meanwhile.
 *   Ownership ends when the owning thread exits (ids are never reused, even
 *   when pthread_t values are).
 *
 *   Thread pools, event loops and language bindings that acquire a lock on
 *   one thread and use or release it on another (a task moved between
 *   worker threads, tokio's spawn_blocking) must say so: acquire with
 *   CACHELOCK_F_UNOWNED, or call cachelock_disown() before handing the lock
 *   over.  Otherwise a worker thread that runs another task's blocking
 *   acquire of the same source gets -EDEADLK although the first task would
 *   release it in time.  Any thread may release any lock.
 *
 * KEPT DESCRIPTORS
 *
 *   Opening a lock file costs more than locking it (two path walks against
 *   one flock(2) pair; see README.md, "Benchmarks").  So cachelock_release()
 *   unlocks the file and, when it is on a local filesystem (ext4, xfs,
 *   btrfs, tmpfs, overlayfs, zfs, f2fs, ...) and the cache directory was
 *   given as an absolute path (a relative one names another file after
 *   chdir(2)), keeps it open for the next acquire of the same path in this
 *   process.  What that means for a program:
 *
 *   - Up to 64 lock files per process stay open after their release, in
 *     addition to the held ones, and the .locks directories of up to 8
 *     caches (O_PATH descriptors: the first acquire of another source of
 *     the same cache then opens one name instead of the whole path; only
 *     existing lock files are opened through them, new ones are created
 *     through the whole path).  cachelock_close_idle() closes them (before
 *     counting descriptors, or so that a filesystem can be unmounted).  A
 *     file used once does not push out one in steady use.  An acquire that
 *     finds the process out of descriptors (EMFILE, ENFILE) closes them and
 *     tries again before it fails.
 *   - A kept file is never shared: two holders never use one descriptor,
 *     and a forked child never uses its parent's.  Before a kept descriptor
 *     is locked again, its file is compared with the one it was opened on
 *     (one fstat(2)); after the grant, the path is looked up again like
 *     after every grant (WHAT IS GUARANTEED).
 *   - A descriptor obtained with cachelock_fd() is never kept: it may have
 *     been handed to a child.
 *   - A release that keeps its file open makes no inotify event.  Timed
 *     and asynchronous waiters therefore mark the file while they wait (an
 *     OFD read lock on one byte at the far end of the file, which flock(2)
 *     ignores), and a releaser that finds a mark closes the file instead.
 *     Only this library's waiters mark; flock(1) and the Rust original
 *     block in the kernel and are woken by the unlock itself.
 *   - On other filesystems (NFS, SMB, FUSE, ...), whose servers may see
 *     flock and byte-range locks as one kind, nothing is kept and nothing
 *     is marked: every release closes, as flock(1) does.
 *
 * FILESYSTEMS
 *
 *   flock(2) is arbitrated by the local kernel on local filesystems (ext4,
 *   xfs, btrfs, tmpfs, overlayfs, zfs, apfs, ufs, ...), and there every
 *   guarantee above holds.  Elsewhere the filesystem decides:
 *
 *   - NFS: Linux turns flock(2) into a whole-file byte-range lock that the
 *     server arbitrates.  Locks then work between clients, but are lost if
 *     the server forgets them (lease expiry, server reboot); with the
 *     mount options nolock or local_lock=flock they exclude only processes
 *     of this client.  The server grants an exclusive lock only to a file
 *     open for writing, so a user who may only read a lock file gets
 *     -EACCES (not the kernel's EBADF) for an exclusive one.  A directory
 *     exported over NFS and locked both on the server and through NFS is
 *     not supported: the server's flock(2) locks and the clients'
 *     byte-range locks do not exclude each other.
 *   - SMB/CIFS: the server arbitrates, like NFS.
 *   - FUSE (sshfs, bindfs, ...): the kernel locks locally unless the
 *     daemon forwards locks; a FUSE view of a directory and the directory
 *     itself then do not exclude each other at all (measured with bindfs
 *     without --enable-lock-forwarding).  9p and virtiofs depend on their
 *     server in the same way.
 *
 *   The library finds out which kind a cache is on with statfs(2), once
 *   per .locks directory (cachelock_close_idle() forgets it), and says so:
 *   cachelock_fs() for a held lock, cachelock_fs_of() for a cache.  On any
 *   kind but local it keeps no descriptor open and puts no waiter mark
 *   (KEPT DESCRIPTORS), and change notifications from other machines do
 *   not arrive, so timed waits notice a remote release at their next
 *   re-check.  The lock is always taken, never skipped: a failure is an
 *   error with its own code, never a silent success.  Those the local
 *   kernel never gives: -ENOLCK (the server's lock manager refused or did
 *   not answer), -EOPNOTSUPP (the filesystem has no flock(2); ENOTSUP is
 *   the same code on Linux and is reported as EOPNOTSUPP everywhere),
 *   -ENOSYS.  CACHELOCK_F_LOCAL_ONLY refuses every kind but local with
 *   -EREMOTE; a program that would rather warn checks cachelock_fs().
 *   `cachelock selftest DIR` checks what a directory really does: whether
 *   locks exclude (also through a second path to it), shared locks
 *   coexist, locks die with their holder and waiters are notified.
 *
 *   A read-only mount (a cache bind-mounted read-only into a container):
 *   shared locks on lock files that exist work; an exclusive lock fails
 *   with -EROFS (a writer could not write what it locked), and so does
 *   one that would create a lock file.
 *
 *   A cache shared by the users of a group: make the cache directory
 *   set-group-ID and owned by the group (chgrp GROUP DIR; chmod 2775 DIR),
 *   and have its users run with umask 002.  New directories and files then
 *   take the group; .locks and the lock files made by the library are also
 *   given group read and write permission even under umask 022 (only when
 *   .locks is set-group-ID).  A user who may only read the cache takes
 *   shared (and, locally, exclusive) locks on lock files that exist, and
 *   gets -EACCES where one would have to be created.  In a world-writable
 *   sticky directory (fs.protected_regular refuses O_CREAT on another
 *   user's file there) an existing lock file is opened without O_CREAT.
 *
 * TIMED AND ASYNCHRONOUS WAITS
 *
 *   A wait forever (timeout_ms == -1) blocks in flock(2) and is woken by the
 *   kernel as soon as the lock is free.
 *
 *   A timed or asynchronous wait never blocks in the kernel lock call, so it
 *   can give up or be cancelled at any moment with nothing left behind: no
 *   helper thread, no lock arriving later.  It watches the lock file with
 *   inotify(7) and retries a non-blocking flock(2) whenever the file is
 *   closed, which is what a holder does when it exits or dies, or releases
 *   through flock(1), Python's filelock or the Rust original; a holder of
 *   this library closes when the file is marked as waited for (see KEPT
 *   DESCRIPTORS).  A holder that only calls flock(LOCK_UN) and keeps the
 *   file open produces no event; for it, and on filesystems where inotify
 *   sees no remote changes (NFS), the wait re-checks on a timer that starts
 *   at 5 ms (1 ms without inotify) and doubles up to
 *   CACHELOCK_RECHECK_MAX_MS, which bounds the handoff delay in that case.
 *   When inotify is unavailable (the per-user limit
 *   fs.inotify.max_user_instances, 128 by default, is used up) the wait
 *   falls back to the timer alone.  Each waiter costs one inotify instance,
 *   two descriptors and one mark while it waits.  Closing an inotify
 *   instance costs the kernel an RCU grace period (tens of milliseconds),
 *   so up to 4 idle instances are kept per process for later waits; they
 *   count against the per-user limit and are dropped by forked children.
 *
 *   See README.md, "Benchmarks", for the handoff of each kind of wait and
 *   holder side by side (make bench); polling loops such as Python's
 *   filelock pay half their polling interval.
 *
 *   Many waiters on one lock all wake at each release and all but one go
 *   back to sleep (a thundering herd); the kernel's blocking flock(2) has
 *   the same behaviour.
 *
 *   A timed wait sleeps in poll(2), which the kernel never restarts after a
 *   signal handler.  The library then looks at the installed handlers: if
 *   every caught signal has SA_RESTART it goes on waiting, otherwise it
 *   returns -EINTR.  Waits work with all signals blocked.
 *
 * WINDOWS
 *
 *   The same library, built with mingw-w64 (cachelock.dll, or the static
 *   library), with the same paths, names and calls.  What differs:
 *
 *   - The lock is LockFileEx(h, flags, 0, 0xFFFFFFFF, 0xFFFFFFFF, &ov):
 *     offset 0, length 2^64 - 1, exclusive with LOCKFILE_EXCLUSIVE_LOCK, and
 *     UnlockFile over the same range, exactly what fs4 (the Rust original's
 *     lock crate), Rust's std File::lock, Cargo and Go's cmd/go take, so
 *     that they and this library exclude one another (and Python's filelock,
 *     whose one byte at offset 0 lies inside).  Like flock(2) it belongs to
 *     the open file, so threads of one process exclude each other.
 *   - Windows locks are mandatory: nobody else may read or write a file
 *     locked exclusive, nobody at all may write one locked shared.  Lock
 *     files are empty and never read or written; never store anything in
 *     one, and expect backup or antivirus tools to be refused while a lock
 *     is held.
 *   - Timed and asynchronous waits queue their lock request in the kernel
 *     (an overlapped LockFileEx), which grants it at the release whoever
 *     releases and however; cachelock_wait_handle() is its event, and
 *     cachelock_wait_fd() is always -1.  Cancelling (a timeout,
 *     cachelock_wait_free()) is CancelIoEx followed by waiting for the
 *     request to end, and a grant that won that race is unlocked again:
 *     no lock ever arrives after a cancel.  Where requests are not queued
 *     (wine 8 answers ERROR_IO_PENDING and queues nothing, which the library
 *     detects), waits re-check on their timer alone (1 ms doubling to
 *     CACHELOCK_RECHECK_MAX_MS) and cachelock_wait_handle() is NULL.
 *   - Nothing is kept open after a release (KEPT DESCRIPTORS does not
 *     apply): on filesystems without POSIX deletion a kept handle would
 *     keep a pruned file "delete pending", its name unusable.
 *   - cachelock_prune() deletes the very file it holds, through a handle
 *     reopened from its own, with POSIX semantics where the filesystem has
 *     them (NTFS on Windows 10 1709 and later: the name is free at once);
 *     a file that another program opened without FILE_SHARE_DELETE
 *     (Python's filelock does) cannot be deleted and is reported busy.
 *     After every grant, a file that is "delete pending" or has no links
 *     counts as pruned, as a file the path no longer names does.
 *   - Paths are UTF-8, converted strictly (bytes that are not UTF-8 give
 *     -EINVAL), made absolute and given the \\?\ prefix, so the limit is
 *     CACHELOCK_PATH_MAX, not MAX_PATH.  The library joins with '\\' and
 *     takes '/' and '\\' alike.  Names differing only in case are one lock
 *     (NTFS is case-insensitive).  CACHELOCK_F_ANYNAME still refuses what
 *     no Windows file name holds ('\\', ':', '*', '?', '"', '<', '>', '|',
 *     control characters, bytes that are not UTF-8).
 *   - Who holds it: Windows keeps no lock table.  cachelock_holders() and
 *     cachelock_status() list the other processes that have the lock file
 *     open (NtQueryInformationFile with FileProcessIdsUsingFileInformation,
 *     or the Restart Manager), which holders, waiters and processes that
 *     merely have it open all do: every entry has waiting == -1 and says
 *     nothing of the mode; the calling process is never listed; command is
 *     the path of its program.
 *   - There is no fork(2), no signals and no thread cancellation: the
 *     caveats about them do not apply.  cachelock_fd() gives -ENOSYS;
 *     cachelock_handle() gives the HANDLE.  ESTALE and EDQUOT, which the
 *     C runtimes lack, are defined by this header.
 *
 *   make check-windows runs the tests under wine, which is not Windows:
 *   wine does not queue overlapped lock requests (so the timer path is what
 *   is tested there), does not enforce mandatory locking, has no POSIX
 *   deletion and no "delete pending", lists no process that has a file open,
 *   and makes no symbolic links.  Only a real Windows machine can confirm
 *   the queued waits and their cancel, mandatory locking, the holder
 *   listing, POSIX deletion and reparse points being refused (README.md,
 *   "Windows").
 *
 * FAIR MODE
 *
 *   flock(2) is not first come, first served: a process that releases and
 *   asks again usually takes the lock straight back, and one can run
 *   thousands of times in a row while others wait for tens or hundreds of
 *   milliseconds (README.md, "Fair mode", has the numbers).  In fair mode
 *   (CACHELOCK_F_FAIR on an acquire, or a cache whose policy is fair, see
 *   cachelock_set_fair_policy()) an acquire that finds the lock taken, or
 *   others waiting, joins a queue and is granted the lock in the order of
 *   joining, among all fair users of the source, in every process:
 *
 *   - Exclusive waiters wait for everyone queued before them; shared
 *     waiters only for exclusive ones queued before them, so readers queued
 *     back to back share the lock, and a writer is never overtaken by
 *     readers that came later.
 *   - The lock is still the flock(2) lock of the lock file: fair users
 *     exclude and are excluded by every other user (plain users of this
 *     library, flock(1), Python's filelock, the Rust original).  Those do
 *     not queue: whenever the lock is free they can take it in front of
 *     the queue.  Make fair mode the cache's policy so that every user of
 *     this library queues.
 *   - The queue is made of byte-range locks (OFD locks) on the lock file
 *     itself, far beyond its data, which die with the process or
 *     descriptor that holds them: a waiter or holder killed at any moment
 *     never stalls the queue, and a timed or asynchronous wait that gives
 *     up leaves nothing in it.  Beside the lock file, {source}.fifo keeps
 *     a hint of the next place (a few bytes; removed by cachelock_prune()
 *     with the lock file).  No memory is shared between processes.
 *   - Blocking waits sleep in the kernel (F_OFD_SETLKW, then flock(2)),
 *     woken by the waiter ahead of them.  Timed and asynchronous waits
 *     never block: they join without waiting and are woken by inotify, as
 *     other waits are (TIMED AND ASYNCHRONOUS WAITS); a step that finds
 *     another process in the middle of joining (a few system calls) says
 *     -EINPROGRESS and is woken when it is done.
 *   - A try (timeout 0) never joins: it fails with -EWOULDBLOCK when the
 *     lock is taken or anyone is queued.
 *   - Everything in WHAT IS GUARANTEED and OWNERSHIP holds: the path is
 *     checked after every grant (a waiter granted a file that was renamed
 *     or pruned meanwhile queues again on the new one), a blocking acquire
 *     of a source the calling thread holds in a conflicting mode fails with
 *     -EDEADLK before it joins, and a thread that holds a source shared and
 *     asks for it shared again gets it at once rather than queueing behind
 *     a writer that waits for that very hold.  The queue cannot deadlock:
 *     every waiter waits only for waiters ahead of it, or, at the head, for
 *     the holder.
 *   - Fair mode needs Linux 3.15 or later (OFD locks), a local filesystem
 *     (ext4, xfs, btrfs, tmpfs, ...) and write access to the lock file.
 *     Elsewhere (other systems, Windows included, NFS, SMB, FUSE, a
 *     read-only cache, a lock file another user owns and this one may only
 *     read) a fair acquire fails with -ENOTSUP and says why; it never runs
 *     unfair instead.  Under a fair policy that holds for acquires without
 *     the flag too: give every user of a fair cache write access to its
 *     lock files.
 *   - The price: an uncontended fair acquire costs one more system call;
 *     a contended one a few more and a wake-up per grant, which matters
 *     only when critical sections are very short (README.md).  A release
 *     of a lock that was granted through the queue yields the processor
 *     once (sched_yield(2)): the kernel wakes the next waiter on the
 *     releasing CPU, and without the yield it would wait for whatever the
 *     releasing thread does next.
 *   - Like a flock(2) lock, a place in the queue belongs to the open file:
 *     a child forked without exec(2) that keeps a copy of a waiting
 *     descriptor keeps the place while it lives.
 */
#ifndef CACHELOCK_H
#define CACHELOCK_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CACHELOCK_EXTERN marks the public API; everything else in the library is
 * hidden.  The Windows port turns it into dllexport/dllimport. */
#if defined(_WIN32)
#  if defined(CACHELOCK_BUILDING_SHARED)
#    define CACHELOCK_EXTERN __declspec(dllexport)
#  else
#    define CACHELOCK_EXTERN
#  endif
#elif defined(__GNUC__)
#  define CACHELOCK_EXTERN __attribute__((visibility("default")))
#else
#  define CACHELOCK_EXTERN
#endif

/* Codes this library returns that the C runtimes of Windows lack: there
 * they take the values of Winsock's WSAESTALE, WSAEDQUOT and WSAEREMOTE. */
#if defined(_WIN32)
#  ifndef ESTALE
#    define ESTALE 10070
#  endif
#  ifndef EDQUOT
#    define EDQUOT 10069
#  endif
#  ifndef EREMOTE
#    define EREMOTE 10071
#  endif
#endif

#define CACHELOCK_VERSION_MAJOR 0
#define CACHELOCK_VERSION_MINOR 3
#define CACHELOCK_VERSION_PATCH 0
#define CACHELOCK_VERSION_STRING "0.3.0"

/* Longest accepted source name, in bytes: "{source}.lock" must fit NAME_MAX
 * (255) on every filesystem we support. */
#define CACHELOCK_NAME_MAX 250

/* Longest lock path, "{cache_dir}/.locks/{source}.lock", in bytes (UTF-8
 * on Windows) without its NUL: longer ones give -ENAMETOOLONG.  The same on
 * every system, whatever its PATH_MAX (260 with mingw). */
#define CACHELOCK_PATH_MAX 4095

/* Longest interval between two re-checks of a timed or asynchronous wait,
 * in milliseconds: the worst handoff delay when the holder unlocks without
 * closing the file or inotify cannot see the release. */
#define CACHELOCK_RECHECK_MAX_MS 20

/* A held lock.  Opaque; released (and freed) by cachelock_release(). */
typedef struct cachelock cachelock_t;

/* An acquire in progress, for event loops.  Opaque; freed by
 * cachelock_wait_free(). */
typedef struct cachelock_wait cachelock_wait_t;

typedef enum cachelock_mode {
    CACHELOCK_EXCLUSIVE = 0,   /* one holder; excludes every other holder */
    CACHELOCK_SHARED = 1       /* any number of shared holders together */
} cachelock_mode_t;

/* Options of cachelock_acquire_ex() and cachelock_wait_start().  Always
 * start from CACHELOCK_OPTIONS_INIT (or from all zeroes, which means
 * version 1, exclusive, try once) so that fields added later get their
 * defaults. */
typedef struct cachelock_options {
    int version;             /* CACHELOCK_OPTIONS_VERSION; 0 reads as 1 */
    cachelock_mode_t mode;   /* CACHELOCK_EXCLUSIVE (default) or _SHARED */
    long timeout_ms;         /* -1 wait forever (default), 0 try once,
                                >0 give up after that many milliseconds */
    unsigned flags;          /* CACHELOCK_F_* below; 0 by default */
} cachelock_options_t;

#define CACHELOCK_OPTIONS_VERSION 1
#define CACHELOCK_OPTIONS_INIT { CACHELOCK_OPTIONS_VERSION, CACHELOCK_EXCLUSIVE, -1L, 0u }

/* Do not create the cache directory, .locks/ or the lock file: fail with
 * -ENOENT if the lock file does not exist yet. */
#define CACHELOCK_F_NOCREATE 0x1u

/* The lock is owned by no thread: it may be released by any thread, and a
 * blocking acquire by the thread that took it never reports -EDEADLK for
 * it (see OWNERSHIP).  For thread pools, event loops and language
 * bindings that move locks between threads or tasks. */
#define CACHELOCK_F_UNOWNED 0x2u

/* Accept any source name that is one valid file name on this system, not
 * only portable ones (see CAVEATS): for caches shared with tools that
 * create names such as "aux" or "tools:beta" (the Rust original, flock(1)).
 * Still refused: empty, "." and "..", '/', and over CACHELOCK_NAME_MAX
 * bytes; on Windows also what no Windows file name holds (see WINDOWS).
 * A name that this flag lets through may mean another file there, or none
 * (a device: "nul"). */
#define CACHELOCK_F_ANYNAME 0x4u

/* Refuse to lock unless the lock file is on a local filesystem, whose
 * flock(2) locks are the local kernel's own (CACHELOCK_FS_LOCAL): on any
 * other (NFS, SMB, FUSE, 9p, virtiofs, an unknown one) the acquire fails
 * with -EREMOTE and a message naming the filesystem, and nothing is
 * locked.  Without the flag such filesystems are used, and
 * cachelock_fs() tells the program where it is, to warn (see
 * FILESYSTEMS). */
#define CACHELOCK_F_LOCAL_ONLY 0x8u

/* What kind of filesystem a lock file is on, as far as locking goes (see
 * FILESYSTEMS); from cachelock_fs() and cachelock_fs_of(). */
typedef enum cachelock_fs_kind {
    CACHELOCK_FS_UNKNOWN = 0,   /* could not tell: statfs(2) failed, or a
                                   kind this library does not know */
    CACHELOCK_FS_LOCAL = 1,     /* locks are the local kernel's own: ext4,
                                   xfs, btrfs, tmpfs, overlayfs, zfs, apfs,
                                   ufs, ... */
    CACHELOCK_FS_NFS = 2,       /* NFS: the server arbitrates, with
                                   byte-range locks */
    CACHELOCK_FS_SMB = 3,       /* SMB/CIFS: the server arbitrates */
    CACHELOCK_FS_FUSE = 4,      /* FUSE: the kernel locks locally unless
                                   the daemon forwards locks */
    CACHELOCK_FS_9P = 5,        /* 9p (virtfs, WSL2's drives) */
    CACHELOCK_FS_VIRTIOFS = 6,  /* virtiofs: FUSE to the host */
    CACHELOCK_FS_NETWORK = 7    /* another network or cluster filesystem:
                                   ceph, afs, gfs2, ocfs2, lustre, gpfs */
} cachelock_fs_kind_t;
/* Fair mode: when the lock is taken or others wait, join a queue and be
 * granted the lock first come, first served, among every user of the
 * source that queues (this flag, or the cache's policy:
 * cachelock_set_fair_policy()).  See FAIR MODE; -ENOTSUP where it cannot
 * work (not Linux, NFS, SMB, FUSE, a read-only cache). */
#define CACHELOCK_F_FAIR 0x10u

/* ------------------------------------------------------------------------
 * Acquiring and releasing
 * ------------------------------------------------------------------------ */

/*
 * cachelock_acquire - take the exclusive lock of a source, waiting as long
 * as it takes.
 *
 *   [in]  cache_dir  the cache directory; created (with its parents, like
 *                    mkdir -p) when missing, as is {cache_dir}/.locks
 *   [in]  source     the source name (see CAVEATS for what is accepted)
 *   [out] out        the held lock, to be passed to cachelock_release();
 *                    NULL on failure
 *
 * Directories are created with mode 0777 and lock files with 0666, both
 * minus the umask, so that shared caches and default ACLs work.  The lock
 * file is opened without truncation and never followed through a symbolic
 * link; a lock file the caller may only read is still lockable.
 *
 * Returns 0, or:
 *   -EINVAL        cache_dir, source or out is NULL or empty; bad source name
 *   -ENAMETOOLONG  source longer than CACHELOCK_NAME_MAX, or the whole path
 *                  longer than CACHELOCK_PATH_MAX
 *   -EDEADLK       the calling thread already holds this source in a
 *                  conflicting mode (see OWNERSHIP)
 *   -EINTR         a signal handler without SA_RESTART ran while waiting
 *   -ELOOP         the lock file or .locks is a symbolic link
 *   -ENOTDIR       cache_dir or .locks exists and is not a directory
 *   -EISDIR, -ENXIO  the lock path is a directory, or not a regular file
 *                  (a socket or a FIFO)
 *   -ESTALE        the lock file was replaced 1,000 times in a row while
 *                  trying (someone keeps renaming or removing it)
 *   -EROFS         the cache is on a read-only mount and the lock is
 *                  exclusive, or its lock file would have to be created
 *   -EACCES        a directory or the lock file cannot be created; on NFS
 *                  also an exclusive lock on a lock file this user may only
 *                  read (see FILESYSTEMS)
 *   -ENOLCK, -EOPNOTSUPP, -ENOSYS
 *                  the filesystem's locking refused or does not exist (see
 *                  FILESYSTEMS); nothing is locked
 *   -EREMOTE       CACHELOCK_F_LOCAL_ONLY and the cache is not on a local
 *                  filesystem
 *   -ENOSPC, -EMFILE, -ENFILE, -ENOMEM, -EIO, ...
 *                  the failing system call's error
 */
CACHELOCK_EXTERN int cachelock_acquire(const char *cache_dir, const char *source,
                                       cachelock_t **out);

/*
 * cachelock_try_acquire - take the exclusive lock of a source if it is free
 * now; never waits.
 *
 * Parameters and errors as cachelock_acquire(), but never -EDEADLK or
 * -EINTR, plus:
 *   -EWOULDBLOCK   the lock is held by someone else, this thread included
 *                  (an outcome, not an error)
 */
CACHELOCK_EXTERN int cachelock_try_acquire(const char *cache_dir, const char *source,
                                           cachelock_t **out);

/*
 * cachelock_acquire_ex - take a lock with options.
 *
 *   [in]  opts  mode, timeout and flags; NULL means CACHELOCK_OPTIONS_INIT
 *               (exclusive, wait forever)
 *
 * Other parameters as cachelock_acquire().  Returns 0, or the codes of
 * cachelock_acquire(), plus:
 *   -EWOULDBLOCK   timeout_ms == 0 and the lock is held by someone else
 *                  (or, with CACHELOCK_F_FAIR, others are queued for it)
 *   -ETIMEDOUT     timeout_ms > 0 and the lock was still held when it ran out
 *   -ENOTSUP       CACHELOCK_F_FAIR (or the cache's policy) where fair mode
 *                  cannot work (see FAIR MODE)
 *   -EINVAL        opts has an unknown version, mode or flag, or
 *                  timeout_ms < -1
 *   -ENOENT        CACHELOCK_F_NOCREATE and the lock file does not exist
 * With a timeout (or 0), -EDEADLK is never returned: a lock this thread
 * holds is waited for like any other (another thread may release it).
 * Any timeout up to LONG_MAX means that long.  A timed wait is a
 * cancellation point (see CAVEATS).
 */
CACHELOCK_EXTERN int cachelock_acquire_ex(const char *cache_dir, const char *source,
                                          const cachelock_options_t *opts,
                                          cachelock_t **out);

/*
 * cachelock_release - release a lock and free its handle.
 *
 *   [in] lock  a handle from an acquire; NULL is a no-op
 *
 * The lock is explicitly unlocked first, so when this returns the lock is
 * free for others even if a forked child still holds a copy of the
 * descriptor.  The descriptor is then closed, or kept open for the next
 * acquire of the same source (see KEPT DESCRIPTORS).  In a forked child,
 * releasing a handle inherited from the parent only closes the child's copy
 * (see CAVEATS).  Any thread may release a lock.
 *
 * A handle is a token, not an address: a handle released already (twice,
 * or a stale copy) is recognised and ignored, even when the library has
 * since handed out a new handle for the same source; cachelock_errmsg()
 * says so.  A descriptor that the program closed and reused meanwhile is
 * left alone (see CAVEATS).
 */
CACHELOCK_EXTERN void cachelock_release(cachelock_t *lock);

/* cachelock_fd - the lock's descriptor, for fstat(2) or to hand to a child
 * (it has FD_CLOEXEC set).  Do not close it or flock(2) it; it stays owned
 * by the handle, and is closed (never kept) at the release.  -EINVAL if
 * lock is NULL or not a held lock; -ENOSYS on Windows, where a lock is
 * held through a HANDLE (cachelock_handle()). */
CACHELOCK_EXTERN int cachelock_fd(const cachelock_t *lock);

/* cachelock_handle - Windows: the lock's file HANDLE, as a void *, for
 * GetFileInformationByHandle() or DuplicateHandle().  It is not
 * inheritable.  Do not close it, lock or unlock it; it stays owned by the
 * lock and is closed at the release.  NULL (with the message) if lock is
 * NULL or not a held lock, and on other systems, where a lock is held
 * through a descriptor (cachelock_fd()). */
CACHELOCK_EXTERN void *cachelock_handle(const cachelock_t *lock);

/* cachelock_mode - the mode the lock is held in, or -EINVAL if lock is
 * NULL or not a held lock. */
CACHELOCK_EXTERN int cachelock_mode(const cachelock_t *lock);

/*
 * cachelock_fs - the kind of filesystem a held lock's file is on: a
 * cachelock_fs_kind_t (CACHELOCK_FS_LOCAL, CACHELOCK_FS_NFS, ...), or
 * -EINVAL if lock is NULL or not a held lock.  Found with statfs(2) when
 * the file was opened, once per cache directory (see FILESYSTEMS).  A
 * program that wants to warn rather than refuse (CACHELOCK_F_LOCAL_ONLY)
 * checks this after the acquire.
 */
CACHELOCK_EXTERN int cachelock_fs(const cachelock_t *lock);

/*
 * cachelock_fs_of - the kind of filesystem the lock files of a cache are
 * on, without locking or creating anything: that of {cache_dir}/.locks,
 * or of cache_dir itself while .locks does not exist yet.  Returns a
 * cachelock_fs_kind_t, or -EINVAL (cache_dir NULL or empty),
 * -ENAMETOOLONG, -ENOENT (no cache directory), -ENOTDIR, -EACCES, ...
 */
CACHELOCK_EXTERN int cachelock_fs_of(const char *cache_dir);

/* cachelock_fs_name - a short name for a filesystem kind: "local", "nfs",
 * "smb", "fuse", "9p", "virtiofs", "network", or "unknown" (also for a
 * value that is not a kind).  Never NULL; static. */
CACHELOCK_EXTERN const char *cachelock_fs_name(int kind);

/*
 * cachelock_disown - the lock is no longer owned by the thread that
 * acquired it (see OWNERSHIP): hand it to another thread or task, and that
 * thread's later blocking acquire of the same source waits instead of
 * reporting -EDEADLK.  The lock stays held.  Returns 0, or -EINVAL if lock
 * is NULL or not a held lock.
 */
CACHELOCK_EXTERN int cachelock_disown(cachelock_t *lock);

/*
 * cachelock_close_idle - close the descriptors this process keeps open
 * between calls (see KEPT DESCRIPTORS): released lock files, the .locks
 * directories they were opened through, and idle inotify instances of
 * timed waits (closing one of those costs the kernel an RCU grace period:
 * this call may take tens of milliseconds when there are any).
 *
 * Useful before a program counts or closes its descriptors, or so that an
 * unmount of the cache's filesystem is not held up by them.  Held locks are
 * not affected.  Returns the number of lock files closed (the kept
 * directories, at most 8, are not counted).
 */
CACHELOCK_EXTERN int cachelock_close_idle(void);

/* ------------------------------------------------------------------------
 * Asynchronous acquire, for event loops
 *
 *   cachelock_wait_t *w;
 *   cachelock_t *lock = NULL;
 *   int rc = cachelock_wait_start(dir, "registry", &opts, &w);
 *   if (rc == 0) {
 *       // A step never blocks: 0 locked, -EINPROGRESS not yet, else final.
 *       while ((rc = cachelock_wait_step(w, &lock)) == -EINPROGRESS) {
 *           struct pollfd p = { cachelock_wait_fd(w), POLLIN, 0 };
 *           poll(&p, p.fd >= 0 ? 1 : 0, cachelock_wait_timeout(w));
 *       }
 *   }
 *   cachelock_wait_free(w);                  // cancels if still waiting
 *   if (rc != 0) ... cachelock_errmsg() says why ...
 *
 * Nothing blocks and nothing runs in the background: between steps the wait
 * is only an open lock file and an inotify descriptor.  Freeing a wait at
 * any time cancels it completely; a lock never arrives later.
 * ------------------------------------------------------------------------ */

/*
 * cachelock_wait_start - begin acquiring a lock without blocking.
 *
 *   [in]  opts  as for cachelock_acquire_ex(); timeout_ms -1 waits until
 *               cancelled, 0 gives up at the first step that finds it busy
 *   [out] out   the wait, to be stepped and finally freed with
 *               cachelock_wait_free(); NULL on failure
 *
 * Returns 0, or the argument errors of cachelock_acquire_ex() (-EINVAL,
 * -ENAMETOOLONG) and -ENOMEM.  Everything else is reported by the steps.
 */
CACHELOCK_EXTERN int cachelock_wait_start(const char *cache_dir, const char *source,
                                          const cachelock_options_t *opts,
                                          cachelock_wait_t **out);

/*
 * cachelock_wait_step - make progress; never blocks.
 *
 *   [in]  wait  a started wait
 *   [out] out   the held lock when 0 is returned, NULL otherwise
 *
 * Returns:
 *   0              the lock is held; *out is yours to release.  Further
 *                  steps return -EALREADY.
 *   -EINPROGRESS   not yet: poll cachelock_wait_fd() for POLLIN, for at most
 *                  cachelock_wait_timeout() milliseconds, then step again
 *   -ETIMEDOUT, -EWOULDBLOCK, or any error of cachelock_acquire_ex() but
 *                  -EDEADLK: final; further steps return the same code.  A
 *                  lock held by another task of the same thread is waited
 *                  for, never reported as a deadlock.
 *   -EINVAL        wait or out is NULL, or the wait was started in another
 *                  process (a forked child steps its parent's wait): the
 *                  wait is untouched
 */
CACHELOCK_EXTERN int cachelock_wait_step(cachelock_wait_t *wait, cachelock_t **out);

/* cachelock_wait_fd - the descriptor to poll for POLLIN between steps, or
 * -1 when there is none (no inotify: rely on the timeout alone).  It may
 * change after a step; fetch it again before every poll. */
CACHELOCK_EXTERN int cachelock_wait_fd(const cachelock_wait_t *wait);

/* cachelock_wait_handle - Windows: the event to wait for between steps
 * (WaitForSingleObject(), WaitForMultipleObjects(),
 * MsgWaitForMultipleObjectsEx(), RegisterWaitForSingleObject()), as a
 * void *, for at most cachelock_wait_timeout() milliseconds; or NULL when
 * there is none: rely on the timeout alone (as under wine, see README.md,
 * "Windows").  It is signalled when the lock request that the wait queued
 * in the kernel is granted.  It belongs to the wait: do not close, set or
 * reset it.  It may change after a step; fetch it again before every wait.
 * NULL on other systems, where cachelock_wait_fd() is what to poll; on
 * Windows cachelock_wait_fd() is always -1. */
CACHELOCK_EXTERN void *cachelock_wait_handle(const cachelock_wait_t *wait);

/* cachelock_wait_timeout - milliseconds until the next step is due (the
 * next re-check or the deadline, whichever is first), for poll(2); 0 when a
 * step is due now.  Never -1 while in progress, never more than
 * CACHELOCK_RECHECK_MAX_MS. */
CACHELOCK_EXTERN int cachelock_wait_timeout(const cachelock_wait_t *wait);

/* cachelock_wait_free - cancel a wait if it is still in progress and free
 * it.  NULL is a no-op.  A lock already returned by a step is not touched:
 * release it with cachelock_release().  In a forked child, freeing the
 * parent's wait only closes the child's copies of its descriptors. */
CACHELOCK_EXTERN void cachelock_wait_free(cachelock_wait_t *wait);

/* ------------------------------------------------------------------------
 * Fair mode as the policy of a cache
 * ------------------------------------------------------------------------ */

/*
 * cachelock_set_fair_policy - make fair mode the policy of a cache (on), or
 * stop (off): while it is, every acquire of this library on the cache
 * queues as with CACHELOCK_F_FAIR (see FAIR MODE).
 *
 *   [in] cache_dir  the cache; with on, created (and .locks) when missing
 *   [in] on         1 set, 0 clear
 *
 * The policy is a file, {cache_dir}/.locks/.fair.  Processes that are
 * running notice a change within a second (the calling process at once).
 * Setting it checks first that fair mode works there.  Clearing it where
 * there is no marker (or no cache) does nothing and returns 0.  Returns 0,
 * or, with cachelock_errmsg() naming the operation and the path:
 *   -ENOTSUP       a network, FUSE or unknown filesystem, or a system
 *                  without OFD locks (Linux before 3.15, the BSDs, macOS,
 *                  Windows); the marker is not made
 *   -EINVAL, -ENAMETOOLONG  a bad cache_dir (as cachelock_acquire)
 *   -EACCES, -EPERM, -EROFS, -ENOTDIR, -ELOOP  the cache, .locks or the
 *                  marker cannot be created, opened or removed
 *   -ENOMEM, -ENOSPC, -EDQUOT, -EIO, -EMFILE  and other system errors
 */
CACHELOCK_EXTERN int cachelock_set_fair_policy(const char *cache_dir, int on);

/* cachelock_fair_policy - 1 if fair mode is the policy of the cache, 0 if
 * not (or there is no cache), or -EINVAL, -ENAMETOOLONG. */
CACHELOCK_EXTERN int cachelock_fair_policy(const char *cache_dir);

/* ------------------------------------------------------------------------
 * Names, paths and messages
 * ------------------------------------------------------------------------ */

/*
 * cachelock_check_name - check a source name without touching the disk.
 * Returns 0, -EINVAL (NULL or not accepted) or -ENAMETOOLONG; on failure
 * cachelock_errmsg() says why.
 */
CACHELOCK_EXTERN int cachelock_check_name(const char *source);

/* cachelock_check_name_ex - the same with flags: 0 (the portable rule) or
 * CACHELOCK_F_ANYNAME (any valid file name on this system).  -EINVAL also
 * for an unknown flag. */
CACHELOCK_EXTERN int cachelock_check_name_ex(const char *source, unsigned flags);

/*
 * cachelock_path - write the lock file path of a source into buf.
 *
 *   [in]  cache_dir, source  as for cachelock_acquire()
 *   [out] buf, size          room for the path and its NUL
 *
 * Returns the length of the path (not counting the NUL), or -EINVAL,
 * -ENAMETOOLONG (the path is longer than CACHELOCK_PATH_MAX) or -ERANGE (it
 * does not fit size).  Touches nothing on disk.  On Windows the path is
 * joined with '\\' (see WINDOWS).
 */
CACHELOCK_EXTERN int cachelock_path(const char *cache_dir, const char *source,
                                    char *buf, size_t size);

/* cachelock_path_ex - the same with flags: 0 or CACHELOCK_F_ANYNAME. */
CACHELOCK_EXTERN int cachelock_path_ex(const char *cache_dir, const char *source, unsigned flags,
                                       char *buf, size_t size);

/*
 * cachelock_prepare - create the cache directory, .locks and the lock file
 * of a source when missing, without locking anything: for scripts that
 * open the lock file themselves (`cachelock path --create`, then
 * `exec 9<>PATH` and `cachelock lock 9`).
 *
 *   [in] cache_dir, source  as for cachelock_acquire()
 *   [in] flags              0 or CACHELOCK_F_ANYNAME
 *
 * The same rules as an acquire: nothing is followed through a symbolic
 * link at .locks or the lock file, nothing is truncated.  Returns 0, or the
 * errors of cachelock_acquire() that are not about waiting (-EINVAL,
 * -ENAMETOOLONG, -ELOOP, -ENOTDIR, -EISDIR, -ENXIO, -EACCES, -EROFS,
 * -ENOSPC, ...).
 */
CACHELOCK_EXTERN int cachelock_prepare(const char *cache_dir, const char *source, unsigned flags);

/* cachelock_strerror - a short text for a code returned by this library
 * (negative) or an errno value (positive).  Never NULL; the string is
 * static and must not be freed. */
CACHELOCK_EXTERN const char *cachelock_strerror(int err);

/* cachelock_errmsg - a one-line message about the most recent failure of a
 * cachelock_* call in the calling thread, naming the operation and the
 * path, lowercase, no trailing full stop; "" if there was none.  The buffer
 * belongs to the thread and is overwritten by its next failure. */
CACHELOCK_EXTERN const char *cachelock_errmsg(void);

/* cachelock_version - the library's version, e.g. "0.1.0". */
CACHELOCK_EXTERN const char *cachelock_version(void);

/* ------------------------------------------------------------------------
 * Pruning lock files safely
 * ------------------------------------------------------------------------ */

/* What cachelock_prune() did with one lock file. */
typedef enum cachelock_prune_status {
    CACHELOCK_PRUNE_REMOVED = 0,    /* unlinked (or would be, with DRY_RUN) */
    CACHELOCK_PRUNE_BUSY = 1,       /* someone holds it, or it was replaced
                                       meanwhile (not ours): left alone */
    CACHELOCK_PRUNE_RECENT = 2,     /* newer than older_than_ms: left alone */
    CACHELOCK_PRUNE_FAILED = 3      /* an error (err says which): left alone */
} cachelock_prune_status_t;

/* Called once per lock file; err is 0, -EWOULDBLOCK with
 * CACHELOCK_PRUNE_BUSY, or the negative code of a failure. */
typedef void (*cachelock_prune_fn)(const char *source, cachelock_prune_status_t status,
                                   int err, void *ctx);

/* Report what would be removed, remove nothing. */
#define CACHELOCK_PRUNE_DRY_RUN 0x1u

/*
 * cachelock_prune - remove lock files that nobody holds.
 *
 *   [in] cache_dir     the cache; nothing is created
 *   [in] older_than_ms only files whose last change (creation: nothing
 *                      writes lock files) is at least this old; 0 for all
 *   [in] flags         0 or CACHELOCK_PRUNE_DRY_RUN
 *   [in] report        called for every lock file considered; may be NULL
 *   [in] ctx           passed to report
 *
 * Each file is locked exclusively WITHOUT waiting, removed while held, and
 * released; a busy file is skipped, so pruning never blocks the cache's
 * users (a user's own try may see it busy for those microseconds).  The
 * removal renames the file to a private name in .locks first and unlinks
 * it only if that name is the very file locked, so a file renamed into
 * place meanwhile is never removed (it is put back).  Users of this
 * library re-check after every grant that the path still names the file
 * they locked, so a waiter that was blocked on a pruned file moves to the
 * new one and mutual exclusion holds.  It does NOT hold for plain flock(1)
 * users (or the Rust original) that were already waiting on the old file:
 * they end up holding a lock nobody else sees.  Prune only caches whose
 * users are all this library, or while they are idle.
 *
 * Fair mode (see FAIR MODE): a source that others are queued for is busy,
 * even while its lock is free.  After the lock files, every sidecar
 * ({source}.fifo) whose lock file is gone is removed the same careful way;
 * sidecars are never reported nor counted.
 *
 * Returns the number of files removed (or that would be), 0 for a cache
 * without .locks (or no cache at all: there is nothing to prune), or
 * -EINVAL, -ENAMETOOLONG, -ENOTDIR, -EACCES, ... when the cache cannot be
 * listed.
 * Failures on single files are reported through report and do not stop it.
 */
CACHELOCK_EXTERN int cachelock_prune(const char *cache_dir, long older_than_ms, unsigned flags,
                                     cachelock_prune_fn report, void *ctx);

/* ------------------------------------------------------------------------
 * Who holds it: diagnostics
 * ------------------------------------------------------------------------ */

typedef struct cachelock_holder {
    int pid;                 /* the process, in the caller's PID namespace;
                                0: one that cannot be named (see below) */
    cachelock_mode_t mode;   /* how it holds or wants the lock */
    int waiting;             /* 1: blocked in flock(2) waiting for it;
                                -1 (Windows): has the lock file open,
                                holding it or waiting, mode unknown */
    char command[256];       /* its command line, "" if unreadable */
} cachelock_holder_t;

/*
 * cachelock_holders - who holds, and who is blocked waiting for, a source.
 *
 *   [in]  cache_dir, source  as for cachelock_acquire(), but any name that
 *                 is a valid file name is accepted (CACHELOCK_F_ANYNAME);
 *                 nothing is created
 *   [out] out     an array of *count entries, holders first, then waiters,
 *                 one per process and mode (a process holding the source
 *                 through several handles is listed once); free it with
 *                 free(3).  NULL when *count is 0 or on failure
 *   [out] count   number of entries
 *
 * On Linux this reads the kernel's lock table, /proc/locks, so it sees
 * every flock(2) user, not only this library.  The table names the
 * process that took the lock; a holder is listed by pid only when its
 * descriptors confirm that it holds the lock (/proc/PID/fdinfo), numbered
 * in the caller's PID namespace.  When the process that took it passed it
 * on and is gone (a killed `cachelock run` whose command inherited it, a
 * script's `cachelock lock 9` or `flock 9`), the processes whose
 * descriptors hold it are listed instead.  A holder that cannot be named
 * has pid 0 and an empty command: one in another PID namespace, on
 * another machine, or not found.  A container with its own /proc does not
 * see the locks of processes outside it at all, nor does a client see
 * other NFS clients' locks: where the table may miss holders like that
 * (this process is not in the initial PID namespace, or the cache is not
 * on a local filesystem) and shows none, the lock is tried on a new open
 * file description without waiting, exclusive then shared, and released
 * at once; busy gives one entry with pid 0 (a try of another process at
 * that instant may find the lock busy, as during a prune).  Waiters in
 * timed or asynchronous waits of this library do not block in the kernel
 * and are not listed (their marks show in /proc/locks and lslocks(8) as
 * OFD read locks, which carry no pid); nor are fair-mode waiters queued
 * behind others (only the head of the queue waits in flock(2); the places
 * show as OFD write locks at 2^62 and above).  The kernel gives no atomic view of
 * its table: it is read twice and both readings are merged, but while
 * other locks come and go a holder may still be missed or one that has
 * just left listed.
 *
 * Windows has no lock table: there the entries are the other processes
 * that have the lock file open, each with waiting -1 (see WINDOWS).
 *
 * Returns 0, or -EINVAL, -ENAMETOOLONG, -ENOENT (no lock file: nobody ever
 * locked it), -ENOSYS (no lock table on this system), -ENOMEM, or another
 * system error.
 */
CACHELOCK_EXTERN int cachelock_holders(const char *cache_dir, const char *source,
                                       cachelock_holder_t **out, size_t *count);

/*
 * cachelock_sources - the names of all sources that have a lock file in a
 * cache, sorted bytewise.
 *
 *   [out] out    an array of *count strings; free it with
 *                cachelock_sources_free()
 *   [out] count  number of names
 *
 * Every "{name}.lock" in .locks is listed whose name is a valid file name
 * (the CACHELOCK_F_ANYNAME rule), including names that the portable rule
 * refuses (made by flock(1) or the Rust original): acquire those with
 * CACHELOCK_F_ANYNAME, or check them with cachelock_check_name().  Other
 * entries are ignored.  A cache without .locks has no sources (0, *count
 * == 0).  Returns 0, or -EINVAL, -ENAMETOOLONG, -ENOTDIR, -EACCES, -ENOMEM,
 * or another system error.
 */
CACHELOCK_EXTERN int cachelock_sources(const char *cache_dir, char ***out, size_t *count);

/* cachelock_sources_free - free what cachelock_sources() returned.  NULL is
 * a no-op. */
CACHELOCK_EXTERN void cachelock_sources_free(char **names, size_t count);

/* One source of a cache and who holds or waits for it. */
typedef struct cachelock_source_status {
    char *source;                    /* the name, as in cachelock_sources() */
    cachelock_holder_t *holders;     /* holders first, then waiters; NULL
                                        when count is 0 */
    size_t count;
} cachelock_source_status_t;

/*
 * cachelock_status - every source of a cache with its holders and waiters,
 * from ONE reading of the kernel's lock table (twice, merged, as
 * cachelock_holders() does), however many sources there are.
 *
 *   [out] out    an array of *count entries sorted by name, one per
 *                source (free ones have count 0); free it with
 *                cachelock_status_free()
 *   [out] count  number of sources
 *
 * Returns 0, or the errors of cachelock_sources() and cachelock_holders()
 * (-ENOSYS: no lock table on this system).
 */
CACHELOCK_EXTERN int cachelock_status(const char *cache_dir, cachelock_source_status_t **out,
                                      size_t *count);

/* cachelock_status_free - free what cachelock_status() returned.  NULL is a
 * no-op. */
CACHELOCK_EXTERN void cachelock_status_free(cachelock_source_status_t *status, size_t count);

#ifdef __cplusplus
}
#endif

#endif /* CACHELOCK_H */
