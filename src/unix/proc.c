/*
 * proc.c - reading the kernel's lock table and process names on Linux.
 *
 * /proc/locks lists every flock(2), POSIX and OFD lock in the system, held
 * or waited for, whoever took it: the only way to tell a person who holds a
 * lock taken by flock(1) or by another program.  A line looks like
 *
 *     3: FLOCK  ADVISORY  WRITE 1788 fe:00:10952744 0 EOF
 *     3: -> FLOCK  ADVISORY  WRITE 1790 fe:00:10952744 0 EOF
 *
 * where "->" marks a process blocked waiting for the lock above it, the
 * device is MAJOR:MINOR in hex, and the inode is decimal.
 *
 * The pid is that of the process that took the lock, numbered in the PID
 * namespace of the /proc mount, and it can mislead:
 *
 *   - the process may have passed its descriptor on (cachelock run's
 *     command inherits the lock) and be gone, its number maybe reused by an
 *     unrelated process; so a holder is confirmed by its descriptors:
 *     /proc/PID/fdinfo/FD lists the locks held through that descriptor;
 *   - in a container with its own /proc (a PID namespace), the kernel
 *     leaves out the locks of processes outside it: a lock held from the
 *     host or another container does not show at all (holders.c then
 *     tries the lock to tell held from free);
 *   - with the /proc of an ancestor namespace (unshare --pid without
 *     --mount-proc), the numbers are the ancestor's: translated through
 *     /proc/PID/status's NSpid line, or 0 when the process has no number
 *     here.
 *
 * Nothing here decides whether a lock is free: only flock(2) does.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#ifdef __linux__
#include <sys/sysmacros.h>      /* makedev(); sys/types.h has it elsewhere */
#endif
#include <unistd.h>

static int parse_uint(const char *s, size_t n, int base, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        int d;
        char c = s[i];
        if (c >= '0' && c <= '9') d = c - '0';
        else if (base == 16 && c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (base == 16 && c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else return -EINVAL;
        if (v > (UINT64_MAX - (uint64_t)d) / (uint64_t)base)
            return -EINVAL;
        v = v * (uint64_t)base + (uint64_t)d;
    }
    *out = v;
    return 0;
}

/* "3: -> FLOCK  ADVISORY  WRITE 1790 fe:00:10952744 0 EOF" */
int cachelock__parse_lockline(const char *line, struct cachelock__lockline *out)
{
    const char *tok[9];
    size_t len[9];
    int n = 0, i = 0;
    uint64_t v;

    while (line[0] && n < 9) {
        while (*line == ' ' || *line == '\t')
            line++;
        if (!*line || *line == '\n')
            break;
        tok[n] = line;
        while (*line && *line != ' ' && *line != '\t' && *line != '\n')
            line++;
        len[n] = (size_t)(line - tok[n]);
        n++;
    }
    /* id, [->], type, advisory, access, pid, dev:ino, start, end */
    if (n < 7)
        return -EINVAL;
    if (len[0] < 2 || tok[0][len[0] - 1] != ':')
        return -EINVAL;
    memset(out, 0, sizeof *out);
    i = 1;
    if (len[1] == 2 && memcmp(tok[1], "->", 2) == 0) {
        out->waiting = 1;
        i = 2;
    }
    if (n < i + 5)
        return -EINVAL;
    if (!(len[i] == 5 && memcmp(tok[i], "FLOCK", 5) == 0))
        return -EINVAL;     /* POSIX, OFDLCK, LEASE, DELEG: not ours */
    i += 2;                 /* skip the type and ADVISORY/MANDATORY */
    if (len[i] == 5 && memcmp(tok[i], "WRITE", 5) == 0)
        out->exclusive = 1;
    else if (len[i] == 4 && memcmp(tok[i], "READ", 4) == 0)
        out->exclusive = 0;
    else
        return -EINVAL;
    i++;
    if (parse_uint(tok[i], len[i], 10, &v) < 0 || v > INT32_MAX)
        return -EINVAL;
    out->pid = (int)v;
    i++;
    {
        const char *s = tok[i], *c1, *c2, *end = tok[i] + len[i];
        c1 = memchr(s, ':', len[i]);
        if (!c1)
            return -EINVAL;
        c2 = memchr(c1 + 1, ':', (size_t)(end - c1 - 1));
        if (!c2)
            return -EINVAL;
        if (parse_uint(s, (size_t)(c1 - s), 16, &v) < 0 || v > UINT32_MAX)
            return -EINVAL;
        out->dev_major = (unsigned)v;
        if (parse_uint(c1 + 1, (size_t)(c2 - c1 - 1), 16, &v) < 0 || v > UINT32_MAX)
            return -EINVAL;
        out->dev_minor = (unsigned)v;
        if (parse_uint(c2 + 1, (size_t)(end - c2 - 1), 10, &out->ino) < 0)
            return -EINVAL;
        out->dev = (uint64_t)makedev(out->dev_major, out->dev_minor);
    }
    return 0;
}

#if USE_PROC
/* Read the whole table into a heap buffer (NUL-terminated).  The kernel
 * fills each read(2) of /proc/locks with as many whole lines as fit the
 * reader's buffer, up to a page, walking its lock list afresh from the
 * start each time (by position): lines can repeat or go missing where two
 * reads meet if locks come and go in between.  So never read in small
 * pieces (stdio would read 1 KiB at a time, four times the seams); ask for
 * at least READ_CHUNK at a time. */
#define READ_CHUNK 65536
static int read_table(char **out, size_t *len)
{
    size_t cap = 2 * READ_CHUNK, n = 0;
    char *buf = malloc(cap);
    int fd, rc = 0;

    *out = NULL;
    *len = 0;
    if (!buf)
        return -ENOMEM;
    fd = open("/proc/locks", O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ENOENT ? -ENOSYS : -errno;
        free(buf);
        return rc;
    }
    for (;;) {
        if (cap - n < READ_CHUNK + 1) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger) {
                rc = -ENOMEM;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = -errno;
            break;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

/* Call fn for the flock(2) lines of the table, all of them or those on id. */
static int each_line(const struct cachelock__fileid *id, cachelock__lock_fn fn, void *ctx)
{
    char *table, *line, *end;
    size_t len;
    int rc = read_table(&table, &len);

    if (rc < 0)
        return rc;
    for (line = table; line < table + len; line = end + 1) {
        struct cachelock__lockline l;
        end = memchr(line, '\n', (size_t)(table + len - line));
        if (!end)
            end = table + len;
        *end = '\0';
        if (cachelock__parse_lockline(line, &l) < 0)
            continue;
        if (id && (l.ino != id->ino || l.dev != id->dev))
            continue;
        rc = fn(&l, ctx);
        if (rc < 0)
            break;
    }
    free(table);
    return rc;
}

int cachelock__os_locks_on(const char *path, const struct cachelock__fileid *id,
                           cachelock__lock_fn fn, void *ctx)
{
    (void)path;     /* the table names files by identity */
    return each_line(id, fn, ctx);
}

int cachelock__os_locks_all(cachelock__lock_fn fn, void *ctx)
{
    return each_line(NULL, fn, ctx);
}

void cachelock__os_command(int pid, char *buf, size_t size)
{
    char path[64];
    int fd;
    ssize_t n;

    buf[0] = '\0';
    if (size < 2 || pid <= 0)
        return;
    snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, size - 1);
    close(fd);
    if (n <= 0) {
        buf[0] = '\0';
        return;
    }
    /* Arguments are NUL-separated; show them space-separated, and keep
     * control characters out of the terminal. */
    while (n > 0 && buf[n - 1] == '\0')
        n--;
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == '\0')
            buf[i] = ' ';
        else if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f)
            buf[i] = '?';
    }
    buf[n] = '\0';
}

/* The init PID namespace's inode number (PROC_PID_INIT_INO). */
#define INIT_PID_NS_INO 0xEFFFFFFCu

/* The numbers of the NSpid line of /proc/PID/status (PID 0: self), from
 * the /proc mount's namespace down to the process's own: how many (at
 * most max, into v), 0 when there is no such line (kernels before 4.1),
 * -errno when the file cannot be read. */
static int nspid(int pid, int *v, int max)
{
    char path[64];
    const size_t size = 4096;
    int fd, n = 0;
    ssize_t len;

    if (pid > 0)
        snprintf(path, sizeof path, "/proc/%d/status", pid);
    else
        snprintf(path, sizeof path, "/proc/self/status");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    /* On the heap: threads with 16 KiB stacks call this too. */
    char *buf = malloc(size);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    len = read(fd, buf, size - 1);
    close(fd);
    if (len < 0) {
        free(buf);
        return -EIO;
    }
    buf[len] = '\0';
    char *line = strstr(buf, "\nNSpid:");
    if (!line) {
        free(buf);
        return 0;
    }
    line += 7;
    while (n < max) {
        char *end;
        long x = strtol(line, &end, 10);
        if (end == line)
            break;
        v[n++] = (int)x;
        line = end;
    }
    free(buf);
    return n;
}

static int ns_ino(const char *path, uint64_t *ino)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return -errno;
    *ino = (uint64_t)st.st_ino;
    return 0;
}

/* What this process knows of its PID namespace, found once per process
 * (a child forked after unshare(CLONE_NEWPID) is in another one: the
 * process epoch tells). */
static struct {
    uint64_t epoch;         /* 0: not found yet; stored last */
    int levels;             /* numbers on our NSpid line (0: no such line) */
    int complete;           /* see os_locks_complete */
    uint64_t ns;            /* our namespace's inode, 0 when unknown */
} self;

/* No lock: two threads that find it out at once find the same, and a
 * child forked meanwhile just finds it out again. */
static void know_self(int *levels, int *complete, uint64_t *ns)
{
    uint64_t epoch = cachelock__os_process_epoch();
    if (__atomic_load_n(&self.epoch, __ATOMIC_ACQUIRE) != epoch) {
        int v[33];      /* a namespace has at most 32 ancestors */
        uint64_t ino = 0, me;
        int n = nspid(0, v, 33), all;
        me = ns_ino("/proc/self/ns/pid", &ino) == 0 ? ino : 0;
        /* Without NSpid (old kernels) or /proc/self/ns (older still), no
         * namespace can be told: the table is taken as it comes.  With the
         * /proc of an ancestor namespace (more than one number), it is
         * complete if that is the initial one: its process 1 says (only
         * root may look). */
        if (n <= 0 || (n == 1 && !me))
            all = 1;
        else if (n == 1)
            all = me == INIT_PID_NS_INO;
        else
            all = ns_ino("/proc/1/ns/pid", &ino) == 0 && ino == INIT_PID_NS_INO;
        __atomic_store_n(&self.levels, n, __ATOMIC_RELAXED);
        __atomic_store_n(&self.complete, all, __ATOMIC_RELAXED);
        __atomic_store_n(&self.ns, me, __ATOMIC_RELAXED);
        __atomic_store_n(&self.epoch, epoch, __ATOMIC_RELEASE);
    }
    *levels = __atomic_load_n(&self.levels, __ATOMIC_RELAXED);
    *complete = __atomic_load_n(&self.complete, __ATOMIC_RELAXED);
    *ns = __atomic_load_n(&self.ns, __ATOMIC_RELAXED);
}

int cachelock__os_locks_complete(void)
{
    int levels, complete;
    uint64_t ns;
    know_self(&levels, &complete, &ns);
    return complete;
}

int cachelock__os_pid_here(int pid)
{
    int other[33], levels, complete, m;
    uint64_t ns, b = 0;
    char path[64];

    if (pid <= 0)
        return 0;
    know_self(&levels, &complete, &ns);
    if (levels <= 1)
        return pid;         /* the table numbers processes as we do */
    /* Our numbers start levels - 1 levels up: the process has a number
     * here if it is in our namespace, the last of as many as ours. */
    m = nspid(pid, other, 33);
    if (m != levels)
        return 0;
    snprintf(path, sizeof path, "/proc/%d/ns/pid", pid);
    if (!ns || ns_ino(path, &b) < 0 || b != ns)
        return 0;
    return other[m - 1];
}

static int by_file(const void *key, const void *elem)
{
    const struct cachelock__fileid *x = key, *y = elem;
    if (x->dev != y->dev)
        return (x->dev > y->dev) - (x->dev < y->dev);
    return (x->ino > y->ino) - (x->ino < y->ino);
}

/* Does /proc/PID/fdinfo/FDNUM list an flock(2) lock on inode ino ("lock:\t1:
 * FLOCK  ADVISORY  WRITE 1788 fe:00:10952744 0 EOF")? */
static int fdinfo_has_flock(int pid, long fdnum, uint64_t ino)
{
    char path[96];
    const size_t size = 4096;
    int fd, found = 0;
    ssize_t len;

    snprintf(path, sizeof path, "/proc/%d/fdinfo/%ld", pid, fdnum);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char *buf = malloc(size);
    len = buf ? read(fd, buf, size - 1) : -1;
    close(fd);
    if (len <= 0) {
        free(buf);
        return 0;
    }
    buf[len] = '\0';
    for (char *line = buf; line && *line; ) {
        char *nl = strchr(line, '\n');
        if (nl)
            *nl = '\0';
        struct cachelock__lockline l;
        if (strncmp(line, "lock:", 5) == 0 && cachelock__parse_lockline(line + 5, &l) == 0 &&
            !l.waiting && l.ino == ino)
            found = 1;
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return found;
}

int cachelock__os_pid_holds(int pid, const struct cachelock__fileid *ids, size_t n,
                            unsigned char *held)
{
    char path[64];
    DIR *d;
    struct dirent *e;
    int dfd;

    if (pid <= 0)
        return -ESRCH;
    snprintf(path, sizeof path, "/proc/%d/fd", pid);
    dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0)
        return errno == ENOENT ? -ESRCH : errno == EACCES || errno == EPERM ? -EACCES : -errno;
    d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -ENOMEM;
    }
    int rc = 0, seen = 0;
    while ((e = readdir(d))) {
        struct stat st;
        if (e->d_name[0] == '.')
            continue;
        /* What the descriptor is open on (the link followed): a stat per
         * descriptor, and fdinfo read only for our lock files. */
        if (fstatat(dirfd(d), e->d_name, &st, 0) < 0) {
            if (errno == EACCES || errno == EPERM)
                rc = -EACCES;
            continue;
        }
        seen = 1;
        struct cachelock__fileid id = { (uint64_t)st.st_dev, (uint64_t)st.st_ino };
        const struct cachelock__fileid *f = bsearch(&id, ids, n, sizeof *ids, by_file);
        if (f && !held[f - ids] && fdinfo_has_flock(pid, strtol(e->d_name, NULL, 10), id.ino))
            held[f - ids] = 1;
    }
    closedir(d);
    /* Another user's process: the directory may be listed, its links not
     * followed.  Then nothing is known. */
    return rc < 0 && !seen ? rc : 0;
}

int cachelock__os_find_holders(const struct cachelock__fileid *ids, size_t n,
                               int (*fn)(int pid, size_t i, void *ctx), void *ctx)
{
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (n == 0)
        return 0;
    unsigned char *held = malloc(n);
    if (!held)
        return -ENOMEM;
    d = opendir("/proc");
    if (!d) {
        free(held);
        return errno == ENOENT ? -ENOSYS : -errno;
    }
    while (rc >= 0 && (e = readdir(d))) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0 || pid > INT32_MAX)
            continue;
        memset(held, 0, n);
        if (cachelock__os_pid_holds((int)pid, ids, n, held) < 0)
            continue;       /* gone meanwhile, or not ours to see */
        for (size_t i = 0; i < n && rc >= 0; i++)
            if (held[i])
                rc = fn((int)pid, i, ctx);
    }
    closedir(d);
    free(held);
    return rc < 0 ? rc : 0;
}
#else
/* No lock table here (the portable build, other Unixes). */
int cachelock__os_locks_on(const char *path, const struct cachelock__fileid *id,
                           cachelock__lock_fn fn, void *ctx)
{
    (void)path;
    (void)id;
    (void)fn;
    (void)ctx;
    return -ENOSYS;
}

int cachelock__os_locks_all(cachelock__lock_fn fn, void *ctx)
{
    (void)fn;
    (void)ctx;
    return -ENOSYS;
}

void cachelock__os_command(int pid, char *buf, size_t size)
{
    (void)pid;
    if (size)
        buf[0] = '\0';
}

int cachelock__os_locks_complete(void)
{
    return -ENOSYS;
}

int cachelock__os_pid_here(int pid)
{
    return pid;
}

int cachelock__os_pid_holds(int pid, const struct cachelock__fileid *ids, size_t n,
                            unsigned char *held)
{
    (void)pid;
    (void)ids;
    (void)n;
    (void)held;
    return -EACCES;
}

int cachelock__os_find_holders(const struct cachelock__fileid *ids, size_t n,
                               int (*fn)(int pid, size_t i, void *ctx), void *ctx)
{
    (void)ids;
    (void)n;
    (void)fn;
    (void)ctx;
    return -ENOSYS;
}
#endif
