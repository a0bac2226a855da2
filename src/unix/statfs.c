/*
 * statfs.c - which kind of filesystem a cache is on, as far as locking goes.
 *
 * flock(2) is arbitrated by the local kernel (fs/locks.c on Linux) on every
 * filesystem but those that bring their own lock operation: NFS turns it
 * into a whole-file byte-range lock that the server arbitrates (or, mounted
 * with nolock or local_lock=flock, a lock only this client sees); SMB/CIFS
 * asks the server; FUSE locks in the local kernel unless the daemon
 * implements locking (bindfs --enable-lock-forwarding), and then the daemon
 * decides; 9p, virtiofs, ceph, AFS, GFS2, OCFS2 and Lustre likewise
 * depend on their server or cluster.  There, a lock taken on this machine
 * may not exclude one taken on another machine, or through another path
 * to the same files (measured: a bindfs view and its source directory do
 * not exclude each other at all without lock forwarding), and the library
 * keeps no descriptor open and puts no waiter mark (see file.c).
 *
 * The kind comes from statfs(2): f_type's magic number on Linux, the type
 * name on the BSDs and macOS.  virtiofs reports FUSE's magic number, so on
 * Linux a FUSE filesystem is looked up in /proc/self/mountinfo by its
 * device to tell the two apart.
 *
 * A cache's kind is learned once per .locks directory and kept in a small
 * table without locks (a sequence count per slot; a slot that a writer
 * holds is skipped, so nothing ever waits, not even in a child forked
 * while a writer was at work).  An entry holds only while the lock files
 * opened there are on the device it was learned on: a filesystem mounted
 * over the cache later has another device number.  cachelock_close_idle()
 * forgets the table.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if USE_LINUX_STATFS
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#elif USE_BSD_STATFS
#include <sys/param.h>
#include <sys/mount.h>
#endif

#ifndef O_PATH
#define O_PATH O_RDONLY
#endif

/* ---- names and magic numbers ---------------------------------------------- */

static const struct {
    const char *name;
    int kind;
} names[] = {
    /* Linux mount types */
    { "nfs", CACHELOCK_FS_NFS }, { "nfs4", CACHELOCK_FS_NFS },
    { "cifs", CACHELOCK_FS_SMB }, { "smb3", CACHELOCK_FS_SMB }, { "smbfs", CACHELOCK_FS_SMB },
    { "fuse", CACHELOCK_FS_FUSE }, { "fuseblk", CACHELOCK_FS_FUSE },
    { "9p", CACHELOCK_FS_9P }, { "virtiofs", CACHELOCK_FS_VIRTIOFS },
    { "ceph", CACHELOCK_FS_NETWORK }, { "afs", CACHELOCK_FS_NETWORK },
    { "gfs2", CACHELOCK_FS_NETWORK }, { "ocfs2", CACHELOCK_FS_NETWORK },
    { "lustre", CACHELOCK_FS_NETWORK }, { "gpfs", CACHELOCK_FS_NETWORK },
    { "orangefs", CACHELOCK_FS_NETWORK }, { "beegfs", CACHELOCK_FS_NETWORK },
    { "ext2", CACHELOCK_FS_LOCAL }, { "ext3", CACHELOCK_FS_LOCAL }, { "ext4", CACHELOCK_FS_LOCAL },
    { "xfs", CACHELOCK_FS_LOCAL }, { "btrfs", CACHELOCK_FS_LOCAL }, { "tmpfs", CACHELOCK_FS_LOCAL },
    { "ramfs", CACHELOCK_FS_LOCAL }, { "overlay", CACHELOCK_FS_LOCAL }, { "zfs", CACHELOCK_FS_LOCAL },
    { "f2fs", CACHELOCK_FS_LOCAL }, { "bcachefs", CACHELOCK_FS_LOCAL },
    { "reiserfs", CACHELOCK_FS_LOCAL }, { "jfs", CACHELOCK_FS_LOCAL }, { "vfat", CACHELOCK_FS_LOCAL },
    { "exfat", CACHELOCK_FS_LOCAL }, { "ntfs3", CACHELOCK_FS_LOCAL }, { "hfsplus", CACHELOCK_FS_LOCAL },
    { "squashfs", CACHELOCK_FS_LOCAL }, { "erofs", CACHELOCK_FS_LOCAL },
    { "iso9660", CACHELOCK_FS_LOCAL }, { "nilfs2", CACHELOCK_FS_LOCAL },
    /* BSD and macOS f_fstypename */
    { "fusefs", CACHELOCK_FS_FUSE }, { "macfuse", CACHELOCK_FS_FUSE },
    { "osxfuse", CACHELOCK_FS_FUSE }, { "p9fs", CACHELOCK_FS_9P },
    { "afpfs", CACHELOCK_FS_NETWORK }, { "webdav", CACHELOCK_FS_NETWORK },
    { "apfs", CACHELOCK_FS_LOCAL }, { "hfs", CACHELOCK_FS_LOCAL }, { "ufs", CACHELOCK_FS_LOCAL },
    { "ffs", CACHELOCK_FS_LOCAL }, { "msdosfs", CACHELOCK_FS_LOCAL },
    { "ext2fs", CACHELOCK_FS_LOCAL }, { "nullfs", CACHELOCK_FS_LOCAL },
    { "mfs", CACHELOCK_FS_LOCAL }, { "hammer2", CACHELOCK_FS_LOCAL },
};

int cachelock__os_fs_kind_by_name(const char *name)
{
    /* "fuse.sshfs", "fuse.bindfs": FUSE with the daemon's name. */
    if (strncmp(name, "fuse.", 5) == 0)
        return CACHELOCK_FS_FUSE;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(names[i].name, name) == 0)
            return names[i].kind;
    return CACHELOCK_FS_UNKNOWN;
}

#if USE_LINUX_STATFS
#define FUSE_MAGIC 0x65735546u

/* statfs(2) magic numbers (linux/magic.h and the filesystems' sources). */
static int kind_by_magic(unsigned long type)
{
    switch (type & 0xffffffffu) {
    case 0x6969:            /* nfs */
        return CACHELOCK_FS_NFS;
    case 0xFF534D42:        /* cifs */
    case 0xFE534D42:        /* smb2/smb3 */
    case 0x517B:            /* smbfs */
        return CACHELOCK_FS_SMB;
    case FUSE_MAGIC:        /* fuse, and virtiofs: see fuse_kind() */
        return CACHELOCK_FS_FUSE;
    case 0x01021997:        /* 9p (v9fs) */
        return CACHELOCK_FS_9P;
    case 0x00C36400:        /* ceph */
    case 0x5346414F:        /* afs */
    case 0x6B414653:        /* kafs */
    case 0x01161970:        /* gfs2 */
    case 0x7461636F:        /* ocfs2 */
    case 0x0BD00BD0:        /* lustre */
    case 0x47504653:        /* gpfs */
    case 0x20030528:        /* orangefs */
    case 0x19830326:        /* beegfs */
        return CACHELOCK_FS_NETWORK;
    case 0xEF53:            /* ext2, ext3, ext4 */
    case 0x58465342:        /* xfs */
    case 0x9123683E:        /* btrfs */
    case 0x01021994:        /* tmpfs */
    case 0x858458F6:        /* ramfs */
    case 0x794C7630:        /* overlayfs */
    case 0x2FC12FC1:        /* zfs */
    case 0xF2F52010:        /* f2fs */
    case 0xCA451A4E:        /* bcachefs */
    case 0x52654973:        /* reiserfs */
    case 0x3153464A:        /* jfs */
    case 0x4D44:            /* vfat, msdos */
    case 0x2011BAB0:        /* exfat */
    case 0x7366746E:        /* ntfs3 */
    case 0x482B:            /* hfsplus */
    case 0x73717368:        /* squashfs */
    case 0xE0F5E1E2:        /* erofs */
    case 0x9660:            /* iso9660 */
    case 0x3434:            /* nilfs2 */
        return CACHELOCK_FS_LOCAL;
    default:
        return CACHELOCK_FS_UNKNOWN;
    }
}

/* virtiofs is FUSE inside and says so only in the mount table: find the
 * mount of device dev in /proc/self/mountinfo ("36 25 0:45 / /mnt rw -
 * virtiofs tag rw"; the device is the third field, the type follows the
 * " - ").  FUSE when it cannot be found. */
static int fuse_kind(uint64_t dev)
{
    char want[48];
    int fd, kind = CACHELOCK_FS_FUSE;
    size_t have = 0;
    const size_t size = 4096;
    char *buf = cachelock__sys.malloc(size);

    if (!buf)
        return kind;
    snprintf(want, sizeof want, " %u:%u ", major((dev_t)dev), minor((dev_t)dev));
    fd = cachelock__sys.open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        free(buf);
        return kind;
    }
    for (;;) {
        long n = cachelock__sys.read(fd, buf + have, size - 1 - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        char *line = buf, *nl;
        while ((nl = strchr(line, '\n'))) {
            *nl = '\0';
            char *at = strstr(line, want), *sep = strstr(line, " - ");
            /* The device is the third field: before the root and the
             * mount point, so before any path that might contain " - ". */
            if (at && sep && at < sep) {
                char type[32];
                if (sscanf(sep + 3, "%31s", type) == 1 && strcmp(type, "virtiofs") == 0)
                    kind = CACHELOCK_FS_VIRTIOFS;
                goto done;
            }
            line = nl + 1;
        }
        have = strlen(line);
        if (have == size - 1)
            have = 0;       /* a line longer than the buffer: not ours */
        else
            memmove(buf, line, have);
    }
done:
    cachelock__sys.close(fd);
    free(buf);
    return kind;
}
#endif

int cachelock__os_fs_kind_fd(int fd, uint64_t dev)
{
#if USE_LINUX_STATFS
    struct statfs sf;
    /* Unknown when it fails: not local, the behaviour that is always safe. */
    if (cachelock__sys.fstatfs(fd, &sf) < 0)
        return CACHELOCK_FS_UNKNOWN;
    int kind = kind_by_magic((unsigned long)sf.f_type);
    if ((sf.f_type & 0xffffffffu) == FUSE_MAGIC)
        kind = fuse_kind(dev);
    return kind;
#elif USE_BSD_STATFS
    struct statfs sf;
    (void)dev;
    if (cachelock__sys.fstatfs(fd, &sf) < 0)
        return CACHELOCK_FS_UNKNOWN;
    /* MNT_LOCAL is the system's own word; the name says which remote. */
    int kind = cachelock__os_fs_kind_by_name(sf.f_fstypename);
    return kind == CACHELOCK_FS_UNKNOWN && (sf.f_flags & MNT_LOCAL) ? CACHELOCK_FS_LOCAL : kind;
#else
    /* No statfs(2) that names the filesystem: ask the table all the same,
     * so that tests can say what it would have answered. */
    (void)dev;
    if (cachelock__sys.fstatfs(fd, NULL) < 0)
        return CACHELOCK_FS_UNKNOWN;
    return CACHELOCK_FS_UNKNOWN;
#endif
}

/* ---- what each .locks directory is on ------------------------------------- */

#define SLOTS 16
static struct slot {
    unsigned seq;           /* odd while a writer fills the slot */
    uint64_t hash;          /* of the .locks path; 0: empty */
    uint64_t dev;
    uint64_t kind_gen;      /* kind | generation << 8 */
} slots[SLOTS];
static unsigned next_slot;
static uint64_t generation; /* bumped by os_fs_forget: older entries are void */

static int cache_find(uint64_t hash, uint64_t dev)
{
    uint64_t gen = __atomic_load_n(&generation, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < SLOTS; i++) {
        struct slot *s = &slots[i];
        unsigned before = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        if (before & 1)
            continue;
        uint64_t h = __atomic_load_n(&s->hash, __ATOMIC_RELAXED);
        uint64_t d = __atomic_load_n(&s->dev, __ATOMIC_RELAXED);
        uint64_t kg = __atomic_load_n(&s->kind_gen, __ATOMIC_RELAXED);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        if (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) != before)
            continue;
        if (h == hash && d == dev && kg >> 8 == gen)
            return (int)(kg & 0xff);
    }
    return -1;
}

static void cache_put(uint64_t hash, uint64_t dev, int kind)
{
    struct slot *s = &slots[__atomic_fetch_add(&next_slot, 1, __ATOMIC_RELAXED) % SLOTS];
    unsigned seq = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
    /* Another writer has the slot: the kind just is not kept this time. */
    if ((seq & 1) || !__atomic_compare_exchange_n(&s->seq, &seq, seq + 1, 0, __ATOMIC_ACQUIRE,
                                                 __ATOMIC_RELAXED))
        return;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&s->hash, hash, __ATOMIC_RELAXED);
    __atomic_store_n(&s->dev, dev, __ATOMIC_RELAXED);
    __atomic_store_n(&s->kind_gen, (uint64_t)kind |
                     __atomic_load_n(&generation, __ATOMIC_ACQUIRE) << 8, __ATOMIC_RELAXED);
    __atomic_store_n(&s->seq, seq + 2, __ATOMIC_RELEASE);
}

int cachelock__os_fs_kind_cached(const struct cachelock__path *p, int dfd, uint64_t dev)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len) | 1;    /* never 0 */
    int kind = cache_find(hash, dev);
    if (kind >= 0)
        return kind;
    kind = cachelock__os_fs_kind_fd(dfd, dev);
    cache_put(hash, dev, kind);
    return kind;
}

void cachelock__os_fs_forget(void)
{
    __atomic_add_fetch(&generation, 1, __ATOMIC_ACQ_REL);
}

int cachelock__os_fs_of(const char *path, const char *op)
{
    struct stat st;
    int fd = cachelock__sys.open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return cachelock__fail(-errno, op, path);
    if (cachelock__sys.fstat(fd, &st) < 0) {
        int rc = cachelock__fail(-errno, op, path);
        cachelock__sys.close(fd);
        return rc;
    }
    int kind = cachelock__os_fs_kind_fd(fd, (uint64_t)st.st_dev);
    cachelock__sys.close(fd);
    return kind;
}
