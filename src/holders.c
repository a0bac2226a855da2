/*
 * holders.c - who holds a lock, and which sources a cache has: the
 * diagnostics behind "waiting for lock ... held by pid 1234 (make)" and
 * `cachelock status`.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- holders ------------------------------------------------------------ */

struct collect {
    cachelock_holder_t *v;
    size_t n, cap;
};

static int collect_one(const struct cachelock__lockline *l, void *ctx)
{
    struct collect *c = ctx;
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

/* The entries of the kernel's lock table for id, sorted.  The kernel gives
 * no atomic view of its table (see os_locks_on): where two of its reads
 * meet, a line can repeat or go missing while other locks come and go.
 * Two passes are read and their union kept (holders() then merges entries
 * per process), so a holder is missed only if both passes miss it; a
 * holder that left between the passes may still be listed. */
#define PASSES 2
static int snapshot(const struct cachelock__fileid *id, struct collect *c)
{
    c->n = 0;
    for (int i = 0; i < PASSES; i++) {
        int rc = cachelock__os_locks_on(id, collect_one, c);
        if (rc < 0)
            return rc;
    }
    if (c->n)
        qsort(c->v, c->n, sizeof *c->v, holders_first);
    return 0;
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
    rc = cachelock__path_build(&p, cache_dir, source);
    if (rc < 0)
        return rc;
    rc = cachelock__os_stat(p.buf, &id);
    if (rc < 0)
        goto out;
    rc = snapshot(&id, &c);
    if (rc < 0) {
        free(c.v);
        rc = cachelock__fail(rc, "read the lock table for", p.buf);
        goto out;
    }
    if (c.n == 0) {
        free(c.v);
        goto out;
    }
    /* One entry per process, mode and state: a process holding the source
     * shared through several handles is one holder, and a torn read of the
     * table (see snapshot) cannot make it two. */
    size_t kept = 0;
    for (size_t i = 0; i < c.n; i++) {
        if (kept && c.v[kept - 1].pid == c.v[i].pid && c.v[kept - 1].mode == c.v[i].mode &&
            c.v[kept - 1].waiting == c.v[i].waiting)
            continue;
        c.v[kept++] = c.v[i];
    }
    c.n = kept;
    for (size_t i = 0; i < c.n; i++)
        cachelock__os_command(c.v[i].pid, c.v[i].command, sizeof c.v[i].command);
    *out = c.v;
    *count = c.n;
out:
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
};

static int add_name(const char *entry, void *ctx)
{
    struct names *s = ctx;
    size_t len = strlen(entry), suffix = strlen(LOCK_SUFFIX);
    if (len <= suffix || memcmp(entry + len - suffix, LOCK_SUFFIX, suffix) != 0)
        return 0;
    if (cachelock__name_check(entry, len - suffix, NULL) < 0)
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

static int sources(const char *cache_dir, char ***out, size_t *count)
{
    struct cachelock__path p;
    struct names s = { NULL, 0, 0 };
    int rc;

    if (!out || !count)
        return cachelock__failf(-EINVAL, "invalid argument: out or count is NULL");
    *out = NULL;
    *count = 0;
    /* Any valid name will do: we only want the .locks part of the path. */
    rc = cachelock__path_build(&p, cache_dir, "x");
    if (rc < 0)
        return rc;
    rc = cachelock__os_list(&p, p.locks_len, add_name, &s);
    if (rc < 0) {
        if (rc == -ENOMEM) {
            p.buf[p.locks_len] = '\0';
            cachelock__fail(rc, "list lock directory", p.buf);
        }
        cachelock_sources_free(s.v, s.n);
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
