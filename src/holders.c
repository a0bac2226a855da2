/*
 * holders.c - who holds a lock, and which sources a cache has: the
 * diagnostics behind "waiting for lock ... held by pid 1234 (make)" and
 * `cachelock status`.
 *
 * The kernel's lock table gives no atomic view (see os_locks_on in
 * src/unix/proc.c): where two of its reads meet, a line can repeat or go
 * missing while other locks come and go.  Every answer here therefore
 * comes from two readings, merged: entries are kept once per process, mode
 * and state, so a holder is missed only if both readings miss it; one that
 * left between the readings may still be listed.
 *
 * The table's pid is that of the process that took the lock, in the
 * numbering of /proc's PID namespace.  It is shown only when it means that
 * process here: a holder is confirmed by its descriptors and numbered in
 * this process's namespace.  A process that took the lock and is gone (or
 * no longer has it), its number maybe reused, is not shown: the processes
 * whose descriptors hold the lock are looked for instead (a script's shell
 * whose descriptor `flock 9` or `cachelock lock 9` locked and exited, the
 * command of a killed `cachelock run`).  When none is found the entry
 * stays, with pid 0: someone holds the lock, who cannot be said.
 *
 * Some holders are not in the table at all: those outside this PID
 * namespace (a container with its own /proc), on other machines (NFS), or
 * behind a FUSE daemon that forwards locks.  When the table may miss
 * holders like that and shows none for a source, the lock is tried on a
 * new open file description without waiting (exclusive, then shared) and
 * released at once: busy gives an entry with pid 0.  Like a prune, that
 * try may make another process's own try see the lock busy for those
 * microseconds.  Nothing here ever decides that a lock is free by looking
 * at a pid.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define READINGS 2

/* ---- a list of entries --------------------------------------------------- */

struct collect {
    cachelock_holder_t *v;
    size_t n, cap;
};

static int add_entry(struct collect *c, const struct cachelock__lockline *l)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 4;
        cachelock_holder_t *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    cachelock_holder_t *h = &c->v[c->n++];
    memset(h, 0, sizeof *h);
    h->pid = l->pid;
    h->mode = l->exclusive ? CACHELOCK_EXCLUSIVE : CACHELOCK_SHARED;
    h->waiting = l->waiting;
    return 0;
}

static int holders_first(const void *a, const void *b)
{
    const cachelock_holder_t *x = a, *y = b;
    if (x->waiting != y->waiting)
        return x->waiting - y->waiting;
    if (x->pid != y->pid)
        return (x->pid > y->pid) - (x->pid < y->pid);
    return (int)x->mode - (int)y->mode;
}

/* ---- what the table's pids mean here -------------------------------------- */

/* One process of the table, looked at once per call. */
struct pidcheck {
    int pid;                    /* as the table numbers it */
    int here;                   /* its number here, 0: none; -1: not asked yet */
    int rc;                     /* of os_pid_holds; 1: not asked yet */
    unsigned char *held;        /* per file of the resolver */
};

/* A process found holding file number file (when the table's pid was not
 * the holder). */
struct found {
    size_t file;
    int pid;
};

struct resolver {
    const struct cachelock__fileid *ids;    /* the files, sorted by identity */
    size_t nids;
    struct pidcheck *v;
    size_t n, cap;
    unsigned char *refuted;     /* per file: the table's holder is not it */
    struct found *found;
    size_t nfound, capfound;
};

static void resolver_free(struct resolver *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i].held);
    free(r->v);
    free(r->refuted);
    free(r->found);
}

static struct pidcheck *pidcheck(struct resolver *r, int pid)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].pid == pid)
            return &r->v[i];
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        struct pidcheck *v = realloc(r->v, cap * sizeof *v);
        if (!v)
            return NULL;
        r->v = v;
        r->cap = cap;
    }
    struct pidcheck *c = &r->v[r->n++];
    c->pid = pid;
    c->here = -1;
    c->rc = 1;
    c->held = NULL;
    return c;
}

static int pid_here(struct resolver *r, int pid)
{
    struct pidcheck *c = pidcheck(r, pid);
    if (!c)
        return cachelock__os_pid_here(pid);
    if (c->here < 0)
        c->here = cachelock__os_pid_here(pid);
    return c->here;
}

/* The pid to show for entry h on the resolver's file number f: the
 * table's, numbered here, if it is a waiter (blocked right now) or a
 * holder confirmed by its descriptors (or whose descriptors are not ours
 * to see); -1 for a holder that is not the process the table names (gone,
 * or its number reused): then the file is marked for search(). */
static int shown_pid(struct resolver *r, const cachelock_holder_t *h, size_t f)
{
    struct pidcheck *c = pidcheck(r, h->pid);
    if (!c || f >= r->nids)
        return h->pid;
    if (!h->waiting) {
        if (c->rc == 1) {
            c->held = calloc(r->nids, 1);
            c->rc = c->held ? cachelock__os_pid_holds(h->pid, r->ids, r->nids, c->held) : -ENOMEM;
        }
        if (c->rc == -ESRCH || (c->rc == 0 && !c->held[f])) {
            if (!r->refuted)
                r->refuted = calloc(r->nids, 1);
            if (r->refuted)
                r->refuted[f] = 1;
            return -1;
        }
    }
    return pid_here(r, h->pid);
}

static void resolve(struct resolver *r, struct collect *c, size_t f)
{
    for (size_t i = 0; i < c->n; i++)
        c->v[i].pid = shown_pid(r, &c->v[i], f);
}

struct search_ctx {
    struct resolver *r;
    const size_t *file;         /* subset index to file number */
};

static int found_one(int pid, size_t i, void *ctx)
{
    struct search_ctx *s = ctx;
    struct resolver *r = s->r;
    if (r->nfound == r->capfound) {
        size_t cap = r->capfound ? r->capfound * 2 : 8;
        struct found *v = realloc(r->found, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        r->found = v;
        r->capfound = cap;
    }
    r->found[r->nfound].file = s->file[i];
    r->found[r->nfound].pid = pid;
    r->nfound++;
    return 0;
}

/* Look through every process for the descriptors that hold the files
 * whose table holder was refuted: one pass for all of them. */
static void search(struct resolver *r)
{
    size_t m = 0;
    if (!r->refuted)
        return;
    struct cachelock__fileid *sub = malloc(r->nids * sizeof *sub);
    size_t *file = malloc(r->nids * sizeof *file);
    if (sub && file) {
        for (size_t k = 0; k < r->nids; k++) {
            if (r->refuted[k]) {
                sub[m] = r->ids[k];
                file[m++] = k;
            }
        }
        struct search_ctx ctx = { r, file };
        cachelock__os_find_holders(sub, m, found_one, &ctx);
    }
    free(sub);
    free(file);
}

/* Could the table miss holders of this cache?  When this process sees
 * only its own PID namespace's locks, or the cache is not on a local
 * filesystem.  *fs caches the kind (-1: not known yet). */
static int table_may_miss(int complete, const struct cachelock__path *p, int *fs)
{
    if (complete <= 0)
        return 1;
    if (*fs < 0) {
        char c = p->buf[p->locks_len];
        p->buf[p->locks_len] = '\0';
        *fs = cachelock__os_fs_of(p->buf, "read the filesystem of");
        p->buf[p->locks_len] = c;
    }
    return *fs != CACHELOCK_FS_LOCAL;
}

/* Is the lock of p held by someone the table does not show?  Tried on a new
 * open file description without waiting, and let go at once: 1 with *mode
 * (exclusive when even a shared lock is refused), 0 when free (or nothing
 * can be told), negative when the file cannot be opened. */
static int probe(struct cachelock__path *p, cachelock_mode_t *mode)
{
    struct cachelock__fileid id;
    int fd, kind, ex, sh;
    int rc = cachelock__os_open(p, 1, &fd, &id, &kind, NULL);
    if (rc < 0)
        return rc;
    ex = cachelock__os_lock(fd, CACHELOCK_EXCLUSIVE, 0);
    if (ex == 0) {
        cachelock__os_unlock(fd);
        cachelock__os_close(fd);
        return 0;
    }
    sh = cachelock__os_lock(fd, CACHELOCK_SHARED, 0);
    if (sh == 0)
        cachelock__os_unlock(fd);
    cachelock__os_close(fd);
    if (sh == -EWOULDBLOCK) {
        *mode = CACHELOCK_EXCLUSIVE;
        return 1;
    }
    /* Shared granted: shared holders, if the exclusive try said busy (and
     * not, say, EBADF for a read-only descriptor on NFS). */
    if (sh == 0 && ex == -EWOULDBLOCK) {
        *mode = CACHELOCK_SHARED;
        return 1;
    }
    return 0;
}

/* Sort, keep one entry per process, mode and state (a process holding a
 * source shared through several handles is one holder, and a torn reading
 * cannot make it two), and name each process.  Hands the array to *out
 * (NULL when empty).  The pids are first made to mean what they say here
 * (r, file f; see the top of the file); with p given, a source that shows
 * no holder while the table may miss some is tried (complete, fs: see
 * table_may_miss). */
static int finish(struct collect *c, struct resolver *r, size_t f, struct cachelock__path *p,
                  int complete, int *fs, cachelock_holder_t **out, size_t *count)
{
    size_t kept = 0, holders = 0, n = c->n;
    for (size_t i = 0; i < n; i++) {
        if (c->v[i].pid == -1) {
            /* The processes whose descriptors hold it, found by search(),
             * in the mode the table says; 0 when none was found. */
            cachelock_mode_t mode = c->v[i].mode;
            int first = 1;
            c->v[i].pid = 0;
            for (size_t k = 0; k < r->nfound; k++) {
                if (r->found[k].file != f)
                    continue;
                int pid = pid_here(r, r->found[k].pid);
                if (first) {
                    c->v[i].pid = pid;
                    first = 0;
                } else {
                    struct cachelock__lockline l;
                    memset(&l, 0, sizeof l);
                    l.exclusive = mode == CACHELOCK_EXCLUSIVE;
                    if (add_entry(c, &l) < 0)
                        return -ENOMEM;
                    c->v[c->n - 1].pid = pid;
                }
            }
        }
    }
    for (size_t i = 0; i < c->n; i++)
        holders += !c->v[i].waiting;
    if (p && holders == 0 && table_may_miss(complete, p, fs)) {
        struct cachelock__lockline l;
        cachelock_mode_t mode;
        memset(&l, 0, sizeof l);
        if (probe(p, &mode) == 1) {
            l.exclusive = mode == CACHELOCK_EXCLUSIVE;
            if (add_entry(c, &l) < 0)
                return -ENOMEM;
        }
    }
    if (c->n)
        qsort(c->v, c->n, sizeof *c->v, holders_first);
    for (size_t i = 0; i < c->n; i++) {
        if (kept && holders_first(&c->v[kept - 1], &c->v[i]) == 0)
            continue;
        c->v[kept++] = c->v[i];
    }
    for (size_t i = 0; i < kept; i++)
        cachelock__os_command(c->v[i].pid, c->v[i].command, sizeof c->v[i].command);
    if (!kept) {
        free(c->v);
        c->v = NULL;
    }
    *out = c->v;
    *count = kept;
    c->v = NULL;
    c->n = c->cap = 0;
    return 0;
}

/* ---- one source ---------------------------------------------------------- */

static int collect_one(const struct cachelock__lockline *l, void *ctx)
{
    return add_entry(ctx, l);
}

static int holders(const char *cache_dir, const char *source,
                   cachelock_holder_t **out, size_t *count)
{
    struct cachelock__path p;
    struct cachelock__fileid id;
    struct collect c = { NULL, 0, 0 };
    struct resolver r = { &id, 1, NULL, 0, 0, NULL, NULL, 0, 0 };
    int rc, fs = -1;

    if (!out || !count)
        return cachelock__failf(-EINVAL, "invalid argument: out or count is NULL");
    *out = NULL;
    *count = 0;
    /* Any valid file name: this creates nothing. */
    rc = cachelock__path_build(&p, cache_dir, source, CACHELOCK_F_ANYNAME);
    if (rc < 0)
        return rc;
    rc = cachelock__os_stat(p.buf, &id);      /* says why itself */
    for (int i = 0; i < READINGS && rc == 0; i++) {
        rc = cachelock__os_locks_on(p.buf, &id, collect_one, &c);
        if (rc < 0)
            rc = cachelock__fail(rc, "read the lock table for", p.buf);
    }
    if (rc == 0) {
        resolve(&r, &c, 0);
        search(&r);
        rc = finish(&c, &r, 0, &p, cachelock__os_locks_complete(), &fs, out, count);
        if (rc < 0)
            rc = cachelock__fail(rc, "read the holders of", p.buf);
    }
    resolver_free(&r);
    free(c.v);
    cachelock__path_free(&p);
    return rc;
}

int cachelock_holders(const char *cache_dir, const char *source,
                      cachelock_holder_t **out, size_t *count)
{
    int old = cachelock__cancel_off();
    int rc = holders(cache_dir, source, out, count);
    cachelock__cancel_restore(old);
    return rc;
}

/* ---- sources ------------------------------------------------------------- */

struct names {
    char **v;
    size_t n, cap;
    struct names *sidecars;     /* also collect "{name}.fifo" there */
};

static int add_name(const char *entry, void *ctx)
{
    struct names *s = ctx;
    size_t len = strlen(entry), suffix = strlen(LOCK_SUFFIX);
    if (len <= suffix)
        return 0;
    if (s->sidecars && memcmp(entry + len - suffix, SIDECAR_SUFFIX, suffix) == 0)
        s = s->sidecars;
    else if (memcmp(entry + len - suffix, LOCK_SUFFIX, suffix) != 0)
        return 0;
    /* Any valid file name: caches shared with flock(1) or the Rust
     * original hold names the portable rule refuses. */
    if (cachelock__name_check(entry, len - suffix, CACHELOCK_F_ANYNAME, NULL) < 0)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *name = malloc(len - suffix + 1);
    if (!name)
        return -ENOMEM;
    memcpy(name, entry, len - suffix);
    name[len - suffix] = '\0';
    s->v[s->n++] = name;
    return 0;
}

static int by_bytes(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sources of a cache; with sidecars, also the names of the sidecars
 * of fair mode's queues ("{name}.fifo", fair.c), from the same listing. */
static int list(const char *cache_dir, char ***out, size_t *count, struct names *sidecars)
{
    struct cachelock__path p;
    struct names s = { NULL, 0, 0, sidecars };
    int rc;

    if (!out || !count)
        return cachelock__failf(-EINVAL, "invalid argument: out or count is NULL");
    *out = NULL;
    *count = 0;
    /* Any valid name will do: we only want the .locks part of the path. */
    rc = cachelock__path_build(&p, cache_dir, "x", 0);
    if (rc < 0)
        return rc;
    rc = cachelock__os_list(&p, p.locks_len, add_name, &s);
    if (rc < 0) {
        if (rc == -ENOMEM) {
            p.buf[p.locks_len] = '\0';
            cachelock__fail(rc, "list lock directory", p.buf);
        }
        cachelock_sources_free(s.v, s.n);
        if (sidecars) {
            cachelock_sources_free(sidecars->v, sidecars->n);
            sidecars->v = NULL;
            sidecars->n = 0;
        }
        cachelock__path_free(&p);
        return rc;
    }
    cachelock__path_free(&p);
    if (s.n)
        qsort(s.v, s.n, sizeof *s.v, by_bytes);
    *out = s.v;
    *count = s.n;
    return 0;
}

static int sources(const char *cache_dir, char ***out, size_t *count)
{
    return list(cache_dir, out, count, NULL);
}

int cachelock__sources_and_sidecars(const char *cache_dir, char ***names, size_t *n,
                                    char ***sidecars, size_t *ns)
{
    struct names side = { NULL, 0, 0, NULL };
    int rc = list(cache_dir, names, n, &side);
    *sidecars = side.v;
    *ns = side.n;
    return rc;
}

int cachelock_sources(const char *cache_dir, char ***out, size_t *count)
{
    int old = cachelock__cancel_off();
    int rc = sources(cache_dir, out, count);
    cachelock__cancel_restore(old);
    return rc;
}

void cachelock_sources_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* ---- a whole cache ------------------------------------------------------- */

/* The entries of one source into c, from READINGS readings: -ENOSYS where
 * the system can only be asked file by file is tried again that way. */
static int locks_of_one(const char *cache_dir, const char *source,
                        const struct cachelock__fileid *id, struct collect *c)
{
    struct cachelock__path p;
    int rc = cachelock__path_build(&p, cache_dir, source, CACHELOCK_F_ANYNAME);
    for (int r = 0; r < READINGS && rc == 0; r++)
        rc = cachelock__os_locks_on(p.buf, id, collect_one, c);
    cachelock__path_free(&p);
    return rc;
}

/* Which source a lock file is, by identity. */
struct file_of {
    struct cachelock__fileid id;
    size_t source;
};

struct cache_scan {
    struct file_of *files;      /* sorted by identity */
    size_t nfiles;
    struct collect *per_source;
};

static int by_id(const void *a, const void *b)
{
    const struct cachelock__fileid *x = a, *y = b;
    if (x->dev != y->dev)
        return (x->dev > y->dev) - (x->dev < y->dev);
    return (x->ino > y->ino) - (x->ino < y->ino);
}

static int collect_cache(const struct cachelock__lockline *l, void *ctx)
{
    struct cache_scan *scan = ctx;
    struct cachelock__fileid id = { l->dev, l->ino };
    const struct file_of *f = bsearch(&id, scan->files, scan->nfiles, sizeof *scan->files, by_id);
    return f ? add_entry(&scan->per_source[f->source], l) : 0;
}

void cachelock_status_free(cachelock_source_status_t *st, size_t count)
{
    if (!st)
        return;
    for (size_t i = 0; i < count; i++) {
        free(st[i].source);
        free(st[i].holders);
    }
    free(st);
}

static int status(const char *cache_dir, cachelock_source_status_t **out, size_t *count)
{
    struct cache_scan scan = { NULL, 0, NULL };
    struct resolver r = { NULL, 0, NULL, 0, 0, NULL, NULL, 0, 0 };
    struct cachelock__fileid *ids = NULL;
    size_t *file_of_source = NULL;
    cachelock_source_status_t *st = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc, fs = -1;

    if (!out || !count)
        return cachelock__failf(-EINVAL, "invalid argument: out or count is NULL");
    *out = NULL;
    *count = 0;
    rc = sources(cache_dir, &names, &n);
    if (rc < 0 || n == 0)
        return rc;
    st = calloc(n, sizeof *st);
    scan.files = calloc(n, sizeof *scan.files);
    scan.per_source = calloc(n, sizeof *scan.per_source);
    ids = calloc(n, sizeof *ids);
    file_of_source = calloc(n, sizeof *file_of_source);
    if (!st || !scan.files || !scan.per_source || !ids || !file_of_source) {
        rc = cachelock__failf(-ENOMEM, "cannot read the status of '%s': %s", cache_dir,
                              cachelock_strerror(ENOMEM));
        goto out;
    }
    /* Each lock file's identity, then ONE pass over the table per reading
     * for all of them: a cache of 10,000 sources costs 10,000 stat(2)s and
     * two readings, not 10,000 readings. */
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct cachelock__path p;
        st[i].source = names[i];
        names[i] = NULL;
        rc = cachelock__path_build(&p, cache_dir, st[i].source, CACHELOCK_F_ANYNAME);
        if (rc < 0)
            goto out;
        rc = cachelock__os_stat(p.buf, &scan.files[scan.nfiles].id);
        if (rc == 0)
            scan.files[scan.nfiles++].source = i;
        else if (rc == -ENOENT || rc == -ENOTDIR)
            rc = 0;                     /* removed meanwhile: free */
        cachelock__path_free(&p);
    }
    if (rc < 0)
        goto out;
    qsort(scan.files, scan.nfiles, sizeof *scan.files, by_id);
    for (int k = 0; k < READINGS && rc == 0; k++)
        rc = cachelock__os_locks_all(collect_cache, &scan);
    /* No table of the whole system (Windows): ask file by file. */
    if (rc == -ENOSYS && scan.nfiles > 0) {
        rc = 0;
        for (size_t k = 0; k < scan.nfiles && rc == 0; k++)
            rc = locks_of_one(cache_dir, st[scan.files[k].source].source, &scan.files[k].id,
                              &scan.per_source[scan.files[k].source]);
    }
    if (rc < 0) {
        rc = cachelock__failf(rc, "cannot read the lock table for '%s': %s", cache_dir,
                              cachelock_strerror(rc));
        goto out;
    }
    /* The identities in order, for the holders' descriptors to be matched
     * against, and where each source's is. */
    for (size_t k = 0; k < scan.nfiles; k++) {
        ids[k] = scan.files[k].id;
        file_of_source[scan.files[k].source] = k;
    }
    r.ids = ids;
    r.nids = scan.nfiles;
    for (size_t i = 0; i < n; i++)
        if (scan.per_source[i].n)
            resolve(&r, &scan.per_source[i], file_of_source[i]);
    search(&r);
    int complete = cachelock__os_locks_complete();
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct cachelock__path p;
        rc = cachelock__path_build(&p, cache_dir, st[i].source, CACHELOCK_F_ANYNAME);
        if (rc < 0)
            goto out;
        rc = finish(&scan.per_source[i], &r, file_of_source[i], &p, complete, &fs,
                    &st[i].holders, &st[i].count);
        cachelock__path_free(&p);
    }
    if (rc < 0) {
        rc = cachelock__failf(rc, "cannot read the status of '%s': %s", cache_dir,
                              cachelock_strerror(rc));
        goto out;
    }
    *out = st;
    *count = n;
    st = NULL;
out:
    if (scan.per_source)
        for (size_t i = 0; i < n; i++)
            free(scan.per_source[i].v);
    free(scan.per_source);
    free(scan.files);
    free(ids);
    free(file_of_source);
    resolver_free(&r);
    cachelock_status_free(st, n);
    cachelock_sources_free(names, n);
    return rc;
}

int cachelock_status(const char *cache_dir, cachelock_source_status_t **out, size_t *count)
{
    int old = cachelock__cancel_off();
    int rc = status(cache_dir, out, count);
    cachelock__cancel_restore(old);
    return rc;
}
