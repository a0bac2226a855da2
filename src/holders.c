/*
 * holders.c - who holds a lock, and which sources a cache has: the
 * diagnostics behind "waiting for lock ... held by pid 1234 (make)" and
 * `cachelock status`.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- one line of the kernel lock table ---------------------------------- */

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
    }
    return 0;
}

/* ---- holders ------------------------------------------------------------- */

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
    return (x->pid > y->pid) - (x->pid < y->pid);
}

int cachelock_holders(const char *cache_dir, const char *source,
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
        return rc;
    rc = cachelock__os_locks_on(&id, collect_one, &c);
    if (rc < 0) {
        free(c.v);
        return cachelock__fail(rc, "read the lock table for", p.buf);
    }
    if (c.n == 0) {
        free(c.v);
        return 0;
    }
    qsort(c.v, c.n, sizeof *c.v, holders_first);
    for (size_t i = 0; i < c.n; i++)
        cachelock__os_command(c.v[i].pid, c.v[i].command, sizeof c.v[i].command);
    *out = c.v;
    *count = c.n;
    return 0;
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

int cachelock_sources(const char *cache_dir, char ***out, size_t *count)
{
    struct cachelock__path p;
    struct names s = { NULL, 0, 0 };
    char dir[PATH_MAX];
    int rc;

    if (!out || !count)
        return cachelock__failf(-EINVAL, "invalid argument: out or count is NULL");
    *out = NULL;
    *count = 0;
    /* Any valid name will do: we only want the .locks part of the path. */
    rc = cachelock__path_build(&p, cache_dir, "x");
    if (rc < 0)
        return rc;
    memcpy(dir, p.buf, p.locks_len);
    dir[p.locks_len] = '\0';
    rc = cachelock__os_list(dir, add_name, &s);
    if (rc < 0) {
        if (rc == -ENOMEM)
            cachelock__fail(rc, "list lock directory", dir);
        cachelock_sources_free(s.v, s.n);
        return rc;
    }
    if (s.n)
        qsort(s.v, s.n, sizeof *s.v, by_bytes);
    *out = s.v;
    *count = s.n;
    return 0;
}

void cachelock_sources_free(char **names, size_t count)
{
    if (!names)
        return;
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}
