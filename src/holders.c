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

/* Sort, keep one entry per process, mode and state (a process holding a
 * source shared through several handles is one holder, and a torn reading
 * cannot make it two), and name each process.  Hands the array to *out
 * (NULL when empty). */
static void finish(struct collect *c, cachelock_holder_t **out, size_t *count)
{
    size_t kept = 0;
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
    int rc;

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
        rc = cachelock__os_locks_on(&id, collect_one, &c);
        if (rc < 0)
            rc = cachelock__fail(rc, "read the lock table for", p.buf);
    }
    if (rc == 0)
        finish(&c, out, count);
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
    cachelock_source_status_t *st = NULL;
    char **names = NULL;
    size_t n = 0;
    int rc;

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
    if (!st || !scan.files || !scan.per_source) {
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
    for (int r = 0; r < READINGS && rc == 0; r++)
        rc = cachelock__os_locks_all(collect_cache, &scan);
    if (rc < 0) {
        rc = cachelock__failf(rc, "cannot read the lock table for '%s': %s", cache_dir,
                              cachelock_strerror(rc));
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        finish(&scan.per_source[i], &st[i].holders, &st[i].count);
    *out = st;
    *count = n;
    st = NULL;
out:
    if (scan.per_source)
        for (size_t i = 0; i < n; i++)
            free(scan.per_source[i].v);
    free(scan.per_source);
    free(scan.files);
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
