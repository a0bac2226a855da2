/*
 * test_fs.c - where caches really live: the filesystem a cache is on and
 * what the library does there, read-only mounts, caches shared by the
 * users of a group, and world-writable sticky directories.
 *
 * NFS and FUSE cannot be mounted in every test run (there is no NFS client
 * in the development machines' kernel), so their code paths are driven
 * through the library's system-call table: a hook on fstatfs(2) reports
 * the filesystem's magic number, hooks on openat(2) and flock(2) give the
 * errors those filesystems give.  A real FUSE mount (bindfs) is the
 * selftest's, in tests/t0120-deployment.sh.  Mounts, other users and
 * fs.protected_regular need root: those cases say SKIP without it.
 */
#include "helpers.h"
#include "internal.h"
#include "unix/unix.h"

#include <grp.h>
#include <sys/sysmacros.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/vfs.h>

#define NFS_MAGIC 0x6969
#define FUSE_MAGIC 0x65735546

/* ---- hooks ---------------------------------------------------------------- */

static struct cachelock__syscalls real;
static struct {
    long magic;             /* what fstatfs(2) says, 0: the truth */
    int fstatfs_fail;       /* errno of a failing fstatfs(2), 0: none */
    int fstatfs_calls;
    int ofd_calls;          /* fcntl(2) with an OFD lock command */
    int rdwr_err;           /* errno for every O_RDWR open of a lock file */
    int flock_err;          /* errno for every flock(2) but LOCK_UN */
    int nfs_rdonly_ex;      /* flock(LOCK_EX) on an O_RDONLY descriptor: EBADF */
    const char *mountinfo;  /* opened instead of /proc/self/mountinfo */
} H;

static int h_fstatfs(int fd, struct statfs *st)
{
    H.fstatfs_calls++;
    if (H.fstatfs_fail) {
        errno = H.fstatfs_fail;
        return -1;
    }
    int rc = real.fstatfs(fd, st);
    if (rc == 0 && H.magic)
        st->f_type = H.magic;
    return rc;
}

static int h_openat(int dfd, const char *path, int flags, ...)
{
    int mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    if (H.rdwr_err && (flags & O_ACCMODE) == O_RDWR && strstr(path, ".lock")) {
        errno = H.rdwr_err;
        return -1;
    }
    return real.openat(dfd, path, flags, mode);
}

static int h_open(const char *path, int flags, ...)
{
    int mode = 0;
    if (flags & O_CREAT) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, int);
        va_end(ap);
    }
    if (H.mountinfo && strcmp(path, "/proc/self/mountinfo") == 0)
        path = H.mountinfo;
    return real.open(path, flags, mode);
}

static int h_flock(int fd, int op)
{
    if ((op & ~LOCK_NB) != LOCK_UN) {
        if (H.flock_err) {
            errno = H.flock_err;
            return -1;
        }
        if (H.nfs_rdonly_ex && (op & ~LOCK_NB) == LOCK_EX &&
            (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) {
            errno = EBADF;
            return -1;
        }
    }
    return real.flock(fd, op);
}

static int h_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    va_start(ap, cmd);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_OFD_SETLK || cmd == F_OFD_GETLK || cmd == F_OFD_SETLKW)
        H.ofd_calls++;
    return real.fcntl(fd, cmd, arg);
}

/* Route the table through the hooks, which start telling the truth. */
static void hooks(void)
{
    memset(&H, 0, sizeof H);
    cachelock__syscalls_reset();
    real = cachelock__sys;
    cachelock__sys.fstatfs = h_fstatfs;
    cachelock__sys.openat = h_openat;
    cachelock__sys.open = h_open;
    cachelock__sys.flock = h_flock;
    cachelock__sys.fcntl = h_fcntl;
}

/* ---- helpers -------------------------------------------------------------- */

/* Descriptors of this process open on something below the case's
 * directory. */
static int fds_below_case(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;
    while (d && (e = readdir(d))) {
        char link[300], target[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = '\0';
        n += strncmp(target, tap_dir, strlen(tap_dir)) == 0;
    }
    if (d)
        closedir(d);
    return n;
}

static int held_by_someone(const char *source)
{
    char path[600];
    snprintf(path, sizeof path, "%s/.locks/%s.lock", tap_dir, source);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int busy = flock(fd, LOCK_EX | LOCK_NB) < 0;
    close(fd);
    return busy;
}

static int acquire_mode(const char *dir, const char *source, cachelock_mode_t mode,
                        unsigned flags, cachelock_t **out)
{
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.mode = mode;
    o.flags = flags;
    o.timeout_ms = 0;
    *out = (cachelock_t *)&H;
    int rc = cachelock_acquire_ex(dir, source, &o, out);
    CHECK((rc == 0) == (*out != NULL));
    return rc;
}

/* ---- kinds ---------------------------------------------------------------- */

static void test_kinds_have_names(void)
{
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_LOCAL), "local") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_NFS), "nfs") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_SMB), "smb") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_FUSE), "fuse") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_9P), "9p") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_VIRTIOFS), "virtiofs") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_NETWORK), "network") == 0);
    CHECK(strcmp(cachelock_fs_name(CACHELOCK_FS_UNKNOWN), "unknown") == 0);
    CHECK(strcmp(cachelock_fs_name(-5), "unknown") == 0);
    CHECK(strcmp(cachelock_fs_name(99), "unknown") == 0);
}

/* Mount types (Linux) and f_fstypename values (BSD, macOS). */
static void test_type_names_give_kinds(void)
{
    static const struct { const char *name; int kind; } v[] = {
        { "nfs", CACHELOCK_FS_NFS }, { "nfs4", CACHELOCK_FS_NFS }, { "cifs", CACHELOCK_FS_SMB },
        { "smb3", CACHELOCK_FS_SMB }, { "smbfs", CACHELOCK_FS_SMB }, { "fuse", CACHELOCK_FS_FUSE },
        { "fuse.bindfs", CACHELOCK_FS_FUSE }, { "fuse.sshfs", CACHELOCK_FS_FUSE },
        { "fuseblk", CACHELOCK_FS_FUSE }, { "fusefs", CACHELOCK_FS_FUSE },
        { "macfuse", CACHELOCK_FS_FUSE }, { "9p", CACHELOCK_FS_9P }, { "p9fs", CACHELOCK_FS_9P },
        { "virtiofs", CACHELOCK_FS_VIRTIOFS }, { "ceph", CACHELOCK_FS_NETWORK },
        { "gfs2", CACHELOCK_FS_NETWORK }, { "ext4", CACHELOCK_FS_LOCAL },
        { "tmpfs", CACHELOCK_FS_LOCAL }, { "overlay", CACHELOCK_FS_LOCAL },
        { "apfs", CACHELOCK_FS_LOCAL }, { "ufs", CACHELOCK_FS_LOCAL }, { "zfs", CACHELOCK_FS_LOCAL },
        { "no-such-fs", CACHELOCK_FS_UNKNOWN }, { "", CACHELOCK_FS_UNKNOWN },
        { "fuse2", CACHELOCK_FS_UNKNOWN },
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        int kind = cachelock__os_fs_kind_by_name(v[i].name);
        if (kind != v[i].kind)
            tap_fail(__FILE__, __LINE__, "'%s' gives %s, expected %s", v[i].name,
                     cachelock_fs_name(kind), cachelock_fs_name(v[i].kind));
    }
}

static void need_linux_statfs(void)
{
#ifdef CACHELOCK_PORTABLE
    SKIP("the portable build has no statfs(2) that names the filesystem: every kind is unknown");
#endif
}

static void test_a_local_cache_is_local(void)
{
    cachelock_t *lock;
    need_linux_statfs();
    CHECK_EQ(cachelock_fs_of(tap_dir), CACHELOCK_FS_LOCAL);     /* no .locks yet */
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, CACHELOCK_F_LOCAL_ONLY, &lock), 0);
    CHECK_EQ(cachelock_fs(lock), CACHELOCK_FS_LOCAL);
    CHECK_EQ(cachelock_fs_of(tap_dir), CACHELOCK_FS_LOCAL);     /* .locks */
    cachelock_release(lock);
    CHECK_EQ(cachelock_fs(lock), -EINVAL);
    CHECK_EQ(cachelock_fs(NULL), -EINVAL);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "not a held lock");
}

static void test_fs_of_a_missing_cache_fails_with_the_path(void)
{
    CHECK_EQ(cachelock_fs_of(tpath("missing")), -ENOENT);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot read the filesystem of '");
    CHECK_STR_CONTAINS(cachelock_errmsg(), "/missing': No such file or directory");
    CHECK_EQ(cachelock_fs_of(""), -EINVAL);
    CHECK_EQ(cachelock_fs_of(NULL), -EINVAL);
    CHECK(access(tpath("missing"), F_OK) != 0);        /* nothing created */
}

/* statfs(2) is asked once per .locks directory, not at every open (on NFS
 * and FUSE it is a round trip to the server), until close_idle. */
static void test_the_kind_is_learned_once_per_cache(void)
{
    cachelock_t *lock;
    need_linux_statfs();
    hooks();
    H.magic = NFS_MAGIC;
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
        CHECK_EQ(cachelock_fs(lock), CACHELOCK_FS_NFS);
        cachelock_release(lock);
    }
    CHECK_EQ(H.fstatfs_calls, 1);
    /* Another cache is another directory. */
    CHECK(mkdir(tpath("other"), 0777) == 0);
    CHECK_EQ(acquire_mode(tpath("other"), "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(H.fstatfs_calls, 2);
    cachelock_close_idle();
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(H.fstatfs_calls, 3);
    cachelock__syscalls_reset();
}

/* What is learned holds only for the filesystem it was learned on: one
 * mounted over the cache later has another device, and is asked anew. */
static void mounted_over(void)
{
    cachelock_t *lock;
    hooks();
    H.magic = NFS_MAGIC;
    if (acquire_mode(tpath("c"), "s", CACHELOCK_EXCLUSIVE, 0, &lock) != 0)
        _exit(1);
    cachelock_release(lock);
    if (mount("tmpfs", tpath("c"), "tmpfs", 0, NULL) < 0)
        _exit(77);
    H.magic = 0;        /* the truth: tmpfs, local */
    CHECK_EQ(acquire_mode(tpath("c"), "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    CHECK_EQ(cachelock_fs(lock), CACHELOCK_FS_LOCAL);
    CHECK_EQ(H.fstatfs_calls, 2);
    cachelock_release(lock);
    cachelock_close_idle();
    umount2(tpath("c"), MNT_DETACH);
}

static void test_a_filesystem_mounted_over_the_cache_is_learned_anew(void)
{
    need_linux_statfs();
    if (geteuid() != 0)
        SKIP("mounting needs root");
    CHECK(mkdir(tpath("c"), 0755) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (unshare(CLONE_NEWNS) < 0 || mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
            _exit(77);
        mounted_over();
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        SKIP("cannot mount in a mount namespace of its own");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* On NFS a released lock file is closed and waiters put no mark: the
 * server may see flock(2) and byte-range locks as one kind. */
static void test_nothing_is_kept_or_marked_on_nfs(void)
{
    cachelock_t *lock;
    need_linux_statfs();
    hooks();
    H.magic = NFS_MAGIC;
    int base = fds_below_case();
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    cachelock_release(lock);
    CHECK_EQ(fds_below_case(), base);       /* neither the file nor .locks */

    /* A timed wait on a busy lock, through to its timeout. */
    int fd = open(tpath(".locks/s.lock"), O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && flock(fd, LOCK_EX) == 0);
    cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
    o.timeout_ms = 30;
    lock = NULL;
    CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), -ETIMEDOUT);
    CHECK_EQ(H.ofd_calls, 0);
    close(fd);
    CHECK_EQ(fds_below_case(), base);
    cachelock__syscalls_reset();
    cachelock_close_idle();
}

static void test_local_only_refuses_other_filesystems(void)
{
    static const struct { long magic; int fail; const char *says; } v[] = {
        { NFS_MAGIC, 0, "the cache is on nfs, not a local filesystem" },
        { 0xFF534D42, 0, "the cache is on smb, not a local filesystem" },
        { 0x01021997, 0, "the cache is on 9p, not a local filesystem" },
        { 0x00C36400, 0, "the cache is on network, not a local filesystem" },
        { 0x12345678, 0, "the cache is on a filesystem of unknown kind" },
        { 0, EIO, "the cache is on a filesystem of unknown kind" },
    };
    need_linux_statfs();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        cachelock_t *lock;
        hooks();
        H.magic = v[i].magic;
        H.fstatfs_fail = v[i].fail;
        CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, CACHELOCK_F_LOCAL_ONLY, &lock),
                 -EREMOTE);
        CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot lock '");
        CHECK_STR_CONTAINS(cachelock_errmsg(), "/.locks/s.lock'");
        CHECK_STR_CONTAINS(cachelock_errmsg(), v[i].says);
        CHECK_STR_CONTAINS(cachelock_errmsg(), "CACHELOCK_F_LOCAL_ONLY");
        CHECK(!held_by_someone("s"));
        /* Without the flag the lock is taken there, and says where. */
        CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
        CHECK(held_by_someone("s"));
        CHECK(cachelock_fs(lock) != CACHELOCK_FS_LOCAL);
        cachelock_release(lock);
        cachelock__syscalls_reset();
        cachelock_close_idle();
    }
}

/* virtiofs has FUSE's magic number: /proc/self/mountinfo tells them apart
 * by the device's mount type. */
static void test_virtiofs_is_told_from_fuse(void)
{
    struct stat st;
    cachelock_t *lock;
    char info[700];
    need_linux_statfs();
    CHECK(stat(tap_dir, &st) == 0);
    snprintf(info, sizeof info, "%s/mountinfo", tap_dir);
    FILE *f = fopen(info, "w");
    CHECK(f != NULL);
    fprintf(f, "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n"
               "36 22 %u:%u / %s rw - virtiofs cache rw\n"
               "37 22 0:99 / /other rw - tmpfs tmpfs rw\n",
            major(st.st_dev), minor(st.st_dev), tap_dir);
    fclose(f);
    hooks();
    H.magic = FUSE_MAGIC;
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    CHECK_EQ(cachelock_fs(lock), CACHELOCK_FS_FUSE);        /* the real mountinfo */
    cachelock_release(lock);
    cachelock_close_idle();
    H.mountinfo = info;
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    CHECK_EQ(cachelock_fs(lock), CACHELOCK_FS_VIRTIOFS);
    cachelock_release(lock);
    CHECK_EQ(cachelock_fs_of(tap_dir), CACHELOCK_FS_VIRTIOFS);
    cachelock__syscalls_reset();
    cachelock_close_idle();
}

/* ---- lock calls that fail where locks are not the local kernel's ---------- */

static void test_lock_errors_are_told_apart(void)
{
    static const struct { int err, code; const char *says; } v[] = {
        { ENOLCK, -ENOLCK, "lockd and rpc.statd must run on this client and on the server" },
        { EOPNOTSUPP, -EOPNOTSUPP, "(the filesystem, nfs, does not support flock(2) locks: "
                                   "nothing was locked)" },
        { ENOSYS, -ENOSYS, "(the filesystem, nfs, has no flock(2): nothing was locked)" },
        { EIO, -EIO, "cannot lock '" },
    };
    need_linux_statfs();
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        for (int timed = 0; timed < 2; timed++) {
            cachelock_options_t o = CACHELOCK_OPTIONS_INIT;
            cachelock_t *lock = (cachelock_t *)&H;
            hooks();
            H.magic = NFS_MAGIC;
            H.flock_err = v[i].err;
            o.timeout_ms = timed ? 100 : -1;
            CHECK_EQ(cachelock_acquire_ex(tap_dir, "s", &o, &lock), v[i].code);
            CHECK(lock == NULL);
            CHECK_STR_CONTAINS(cachelock_errmsg(), "/.locks/s.lock'");
            CHECK_STR_CONTAINS(cachelock_errmsg(), v[i].says);
            CHECK_STR_CONTAINS(cachelock_errmsg(), cachelock_strerror(v[i].code));
            cachelock__syscalls_reset();
            CHECK(!held_by_someone("s"));
        }
    }
    /* ENOLCK elsewhere says what failed without blaming NFS. */
    cachelock_t *lock;
    cachelock_close_idle();         /* forget that it was NFS */
    hooks();
    H.flock_err = ENOLCK;
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), -ENOLCK);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "(the filesystem, local, could not record the lock)");
    cachelock__syscalls_reset();
    cachelock_close_idle();
}

/* NFS grants an exclusive lock only to a descriptor open for writing (it
 * becomes a write lock on the server): a user who may only read the lock
 * file gets EBADF from flock(2), which must not read as "bad descriptor". */
static void test_nfs_exclusive_lock_through_a_read_only_descriptor(void)
{
    cachelock_t *lock;
    need_linux_statfs();
    CHECK_EQ(cachelock_prepare(tap_dir, "s", 0), 0);
    cachelock_close_idle();         /* forget that it is local */
    hooks();
    H.magic = NFS_MAGIC;
    H.rdwr_err = EACCES;
    H.nfs_rdonly_ex = 1;
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), -EACCES);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot lock '");
    CHECK_STR_CONTAINS(cachelock_errmsg(), "/.locks/s.lock' exclusively: this user may only read "
                                           "the lock file, and on nfs an exclusive lock needs "
                                           "write access");
    CHECK(!held_by_someone("s"));
    /* A shared lock is a read lock there: it works. */
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_SHARED, 0, &lock), 0);
    CHECK((fcntl(cachelock_fd(lock), F_GETFL) & O_ACCMODE) == O_RDONLY);
    cachelock_release(lock);
    /* With write access, exclusive works. */
    H.rdwr_err = 0;
    CHECK_EQ(acquire_mode(tap_dir, "s", CACHELOCK_EXCLUSIVE, 0, &lock), 0);
    cachelock_release(lock);
    cachelock__syscalls_reset();
    cachelock_close_idle();
}

/* ---- read-only mounts ------------------------------------------------------- */

/* Run fn in a child with the case's directory bind-mounted read-only at
 * {tap_dir}/ro, in a mount namespace of its own. */
static void in_read_only_view(void (*fn)(const char *view))
{
    if (geteuid() != 0)
        SKIP("a read-only bind mount needs root");
    CHECK(mkdir(tpath("ro"), 0755) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char view[600];
        snprintf(view, sizeof view, "%s/ro", tap_dir);
        /* "none" where the kernel reads no type: valgrind checks the
         * pointer all the same. */
        if (unshare(CLONE_NEWNS) < 0 ||
            mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0 ||
            mount(tpath("cache"), view, "none", MS_BIND, NULL) < 0 ||
            mount("none", view, "none", MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
            _exit(77);
        fn(view);
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        SKIP("cannot make a read-only bind mount (unshare(CLONE_NEWNS) or mount(2) refused)");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void read_only_view(const char *view)
{
    cachelock_t *lock, *other;
    /* Shared locks on lock files that exist work, and exclude writers of
     * the writable view. */
    CHECK_EQ(acquire_mode(view, "s", CACHELOCK_SHARED, 0, &lock), 0);
    CHECK_EQ(acquire_mode(tpath("cache"), "s", CACHELOCK_EXCLUSIVE, 0, &other), -EWOULDBLOCK);
    CHECK_EQ(acquire_mode(tpath("cache"), "s", CACHELOCK_SHARED, 0, &other), 0);
    cachelock_release(other);
    cachelock_release(lock);
    /* Blocking too. */
    CHECK_EQ(cachelock_acquire_ex(view, "s", &(cachelock_options_t){ 1, CACHELOCK_SHARED, -1, 0 },
                                  &lock), 0);
    cachelock_release(lock);
    /* Exclusive: refused, although flock(2) would grant it. */
    CHECK_EQ(acquire_mode(view, "s", CACHELOCK_EXCLUSIVE, 0, &lock), -EROFS);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "/ro/.locks/s.lock' exclusively: Read-only file "
                                           "system (the cache is on a read-only mount: only "
                                           "shared locks work there)");
    CHECK_EQ(cachelock_acquire(view, "s", &lock), -EROFS);
    CHECK(lock == NULL);
    /* A lock file that does not exist cannot be made. */
    CHECK_EQ(acquire_mode(view, "new", CACHELOCK_SHARED, 0, &lock), -EROFS);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot create lock file '");
    CHECK_STR_CONTAINS(cachelock_errmsg(), "/ro/.locks/new.lock': Read-only file system (the "
                                           "cache is on a read-only mount");
    CHECK_EQ(cachelock_prepare(view, "new", 0), -EROFS);
    CHECK(access(tpath("cache/.locks/new.lock"), F_OK) != 0);
}

static void test_read_only_mount_allows_shared_locks_only(void)
{
    CHECK(mkdir(tpath("cache"), 0755) == 0);
    CHECK_EQ(cachelock_prepare(tpath("cache"), "s", 0), 0);
    in_read_only_view(read_only_view);
}

/* ---- other users -------------------------------------------------------- */

struct user {
    uid_t uid;
    gid_t gid;
    gid_t group;            /* a supplementary group, or 0 for none */
    mode_t umask;
};

/* Run fn as user u in a child; its exit status is the case's verdict. */
static void as_user(const struct user *u, void (*fn)(void))
{
    if (geteuid() != 0)
        SKIP("switching users needs root");
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        gid_t groups[1] = { u->group };
        if (setgroups(u->group ? 1 : 0, groups) < 0 || setgid(u->gid) < 0 ||
            setuid(u->uid) < 0)
            _exit(77);
        umask(u->umask);
        fn();
        _exit(0);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        SKIP("cannot switch users");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

#define GROUP 4242
static const struct user member1 = { 4001, 4001, GROUP, 022 };
static const struct user member2 = { 4002, 4002, GROUP, 022 };
static const struct user stranger = { 4003, 4003, 0, 022 };

static const char *shared_cache(void)
{
    return tpath("shared");
}

static void member1_locks_a(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(shared_cache(), "a", &lock), 0);
    cachelock_release(lock);
}

static void member2_locks_a_and_b(void)
{
    cachelock_t *lock;
    /* a.lock is member1's: opened for writing thanks to the group. */
    CHECK_EQ(cachelock_acquire(shared_cache(), "a", &lock), 0);
    CHECK((fcntl(cachelock_fd(lock), F_GETFL) & O_ACCMODE) == O_RDWR);
    cachelock_release(lock);
    /* A new lock file in .locks, which member1 made. */
    CHECK_EQ(cachelock_acquire(shared_cache(), "b", &lock), 0);
    cachelock_release(lock);
}

static void stranger_reads(void)
{
    cachelock_t *lock;
    /* Others may read: shared locks on lock files that exist. */
    CHECK_EQ(acquire_mode(shared_cache(), "a", CACHELOCK_SHARED, 0, &lock), 0);
    cachelock_release(lock);
    /* A new one: a clear error at once, no hang, no success. */
    CHECK_EQ(acquire_mode(shared_cache(), "c", CACHELOCK_SHARED, 0, &lock), -EACCES);
    CHECK_STR_CONTAINS(cachelock_errmsg(), "cannot create lock file '");
    CHECK_STR_CONTAINS(cachelock_errmsg(), "/shared/.locks/c.lock': Permission denied");
    CHECK_EQ(cachelock_acquire(shared_cache(), "c", &lock), -EACCES);
    CHECK(lock == NULL);
}

/* The recipe of README's "Deployment": a set-group-ID cache directory of
 * the group.  A member with umask 022 makes .locks and a lock file; they
 * get the group and group write permission, so that the next member can
 * lock that file for writing and make new ones. */
static void test_group_shared_cache_works_for_every_member(void)
{
    struct stat st;
    if (geteuid() != 0)
        SKIP("a group's cache and its users need root");
    CHECK(chmod(tap_dir, 0755) == 0);
    CHECK(mkdir(shared_cache(), 0770) == 0);
    CHECK(chown(shared_cache(), 0, GROUP) == 0);
    CHECK(chmod(shared_cache(), 02775) == 0);
    as_user(&member1, member1_locks_a);
    CHECK(stat(tpath("shared/.locks"), &st) == 0);
    CHECK_EQ(st.st_gid, GROUP);
    CHECK_EQ(st.st_mode & 07777, 02775);
    CHECK(stat(tpath("shared/.locks/a.lock"), &st) == 0);
    CHECK_EQ(st.st_gid, GROUP);
    CHECK_EQ(st.st_mode & 0777, 0664);
    as_user(&member2, member2_locks_a_and_b);
    CHECK(stat(tpath("shared/.locks/b.lock"), &st) == 0);
    CHECK_EQ(st.st_uid, member2.uid);
    CHECK_EQ(st.st_gid, GROUP);
    CHECK_EQ(st.st_mode & 0777, 0664);
    as_user(&stranger, stranger_reads);
    CHECK(access(tpath("shared/.locks/c.lock"), F_OK) != 0);
}

/* Without the set-group-ID bit nothing is changed: the umask rules. */
static void plain_member_locks(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tpath("plain"), "a", &lock), 0);
    cachelock_release(lock);
}

static void test_a_cache_not_shared_with_a_group_keeps_the_umask(void)
{
    struct stat st;
    CHECK(chmod(tap_dir, 0755) == 0);
    CHECK(mkdir(tpath("plain"), 0777) == 0);
    CHECK(chmod(tpath("plain"), 0777) == 0);
    as_user(&member1, plain_member_locks);
    CHECK(stat(tpath("plain/.locks"), &st) == 0);
    CHECK_EQ(st.st_mode & 07777, 0755);
    CHECK(stat(tpath("plain/.locks/a.lock"), &st) == 0);
    CHECK_EQ(st.st_mode & 0777, 0644);
}

/* fs.protected_regular (1: world-writable sticky directories) refuses
 * O_CREAT on an existing file of another user even when it is writable:
 * the lock file is opened again without O_CREAT, for writing. */
static void other_user_locks_for_writing(void)
{
    cachelock_t *lock;
    CHECK_EQ(cachelock_acquire(tpath("sticky"), "s", &lock), 0);
    CHECK((fcntl(cachelock_fd(lock), F_GETFL) & O_ACCMODE) == O_RDWR);
    cachelock_release(lock);
}

static void owner_makes_s(void)
{
    CHECK_EQ(cachelock_prepare(tpath("sticky"), "s", 0), 0);
}

static void test_sticky_directory_with_protected_regular(void)
{
    static const char knob[] = "/proc/sys/fs/protected_regular";
    char was[16] = "";
    const struct user owner = { 4001, 4001, 0, 0 }, other = { 4002, 4002, 0, 0 };
    if (geteuid() != 0)
        SKIP("fs.protected_regular and other users need root");
    FILE *f = fopen(knob, "r");
    if (!f || !fgets(was, sizeof was, f))
        SKIP("no fs.protected_regular in this kernel");
    fclose(f);
    CHECK(chmod(tap_dir, 0755) == 0);
    CHECK(mkdir(tpath("sticky"), 01777) == 0 && chmod(tpath("sticky"), 01777) == 0);
    CHECK(mkdir(tpath("sticky/.locks"), 01777) == 0 && chmod(tpath("sticky/.locks"), 01777) == 0);
    as_user(&owner, owner_makes_s);
    CHECK(chmod(tpath("sticky/.locks/s.lock"), 0666) == 0);
    if (atoi(was) == 0) {
        f = fopen(knob, "w");
        if (!f || fputs("1\n", f) < 0 || fclose(f) != 0)
            SKIP("cannot turn fs.protected_regular on");
    }
    /* The kernel refuses what the library must not do. */
    pid_t pid = fork();
    if (pid == 0) {
        if (setuid(other.uid) < 0)
            _exit(77);
        int fd = open(tpath("sticky/.locks/s.lock"), O_RDWR | O_CREAT, 0666);
        _exit(fd < 0 && errno == EACCES ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    int refused = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    as_user(&other, other_user_locks_for_writing);
    if (atoi(was) == 0 && (f = fopen(knob, "w"))) {
        fputs(was, f);
        fclose(f);
    }
    CHECK(refused);
}

TAP_MAIN(
    T(test_kinds_have_names),
    T(test_type_names_give_kinds),
    T(test_a_local_cache_is_local),
    T(test_fs_of_a_missing_cache_fails_with_the_path),
    T(test_the_kind_is_learned_once_per_cache),
    T(test_a_filesystem_mounted_over_the_cache_is_learned_anew),
    T(test_nothing_is_kept_or_marked_on_nfs),
    T(test_local_only_refuses_other_filesystems),
    T(test_virtiofs_is_told_from_fuse),
    T(test_lock_errors_are_told_apart),
    T(test_nfs_exclusive_lock_through_a_read_only_descriptor),
    T(test_read_only_mount_allows_shared_locks_only),
    T(test_group_shared_cache_works_for_every_member),
    T(test_a_cache_not_shared_with_a_group_keeps_the_umask),
    T(test_sticky_directory_with_protected_regular),
)
