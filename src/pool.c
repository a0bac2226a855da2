/*
 * pool.c - what the process keeps between acquires: released lock files
 * still open, and the .locks directories known to be safe to open through.
 *
 * Opening a lock file walks its path, which costs more than the flock(2)
 * pair itself (0.45 us against 0.25 us measured here).  A released handle
 * whose file is on a local filesystem is therefore kept open and unlocked,
 * keyed by its path, and the next acquire of that path takes it over.
 *
 * The rules that keep this as safe as opening afresh:
 *
 *   - A handle is either held (registry) or idle (here), never both: two
 *     holders never share a descriptor, hence never an open file
 *     description, hence never a lock.
 *   - After fork(2) the child shares every open file description with the
 *     parent, and a flock on a shared description is the parent's lock
 *     too.  Idle handles of an older fork generation are never handed out;
 *     the child closes them at its first use of the pool.
 *   - The file may have been pruned (or deleted by hand) while idle.  Every
 *     grant is followed by an identity check (os_check_granted): its link
 *     count, and its path at least once a second.
 *   - A release that keeps the descriptor open makes no inotify event, so
 *     timed and asynchronous waiters mark themselves (os_mark_waiting) and
 *     a releaser that finds a mark closes instead of pooling.
 *   - At most POOL_MAX idle handles.  When full, a handle used only once is
 *     closed rather than let in (a scan of many sources would otherwise
 *     push out the ones in steady use, and LRU keeps nothing of a loop over
 *     more sources than fit); a reused one pushes out the least recently
 *     released.  cachelock_close_idle() closes them all, and so does an
 *     acquire that runs out of descriptors (EMFILE), before it retries.
 *   - Only absolute paths: a relative one names another file after chdir.
 *
 * Everything here is guarded by the registry's mutex (cachelock__tables_lock),
 * which the atfork handlers also take.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define POOL_MAX 64
#define POOL_BUCKETS 128        /* a power of two */
#define DIRS_MAX 8
#define DIR_TRUST_MS 1000       /* how long a checked .locks stays trusted */

static cachelock_t *buckets[POOL_BUCKETS];
static cachelock_t *newest, *oldest;
static size_t idle;             /* read without the mutex by pool_has_room */
static unsigned pool_gen;

/* .locks directories opened safely (O_NOFOLLOW, a directory) lately. */
static struct known_dir {
    uint64_t hash;
    int64_t checked_ms;
    int local;
    size_t len;
    char *path;
} dirs[DIRS_MAX];
static unsigned dirs_next;

uint64_t cachelock__path_hash(const char *path, size_t len)
{
    /* Eight bytes per multiply: paths are tens of bytes and this runs on
     * every acquire.  Not keyed: a collision costs a memcmp, nothing more. */
    uint64_t h = 0x9e3779b97f4a7c15ull ^ len;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, path + i, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    if (i < len) {
        uint64_t w = 0;
        memcpy(&w, path + i, len - i);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
    }
    return h ^ (h >> 29);
}

void cachelock__handle_free(cachelock_t *h)
{
    if (!h)
        return;
    if (h->fd >= 0)
        cachelock__os_close(h->fd);
    free(h);
}

static void unlink_idle(cachelock_t *h)
{
    cachelock_t **pp = &buckets[h->hash & (POOL_BUCKETS - 1)];
    while (*pp != h)
        pp = &(*pp)->next;
    *pp = h->next;
    if (h->newer)
        h->newer->older = h->older;
    else
        newest = h->older;
    if (h->older)
        h->older->newer = h->newer;
    else
        oldest = h->newer;
    __atomic_store_n(&idle, idle - 1, __ATOMIC_RELAXED);
}

/* Take every idle handle out; the caller frees the chain (via ->next)
 * after unlocking.  Called with the mutex held. */
static cachelock_t *detach_all(void)
{
    cachelock_t *list = NULL;
    while (oldest) {
        cachelock_t *h = oldest;
        unlink_idle(h);
        h->next = list;
        list = h;
    }
    return list;
}

static int free_chain(cachelock_t *list)
{
    int n = 0;
    while (list) {
        cachelock_t *next = list->next;
        cachelock__handle_free(list);
        n++;
        if (next == list)
            break;      /* cannot happen; tells the analyzer so */
        list = next;
    }
    return n;
}

cachelock_t *cachelock__pool_take(const char *path, size_t len, uint64_t hash)
{
    cachelock_t *h, *stale = NULL;
    unsigned gen = cachelock__tables_lock();

    if (pool_gen != gen) {
        stale = detach_all();       /* forked: those are the parent's */
        pool_gen = gen;
    }
    for (h = buckets[hash & (POOL_BUCKETS - 1)]; h; h = h->next) {
        if (h->hash == hash && h->path_len == len && memcmp(h->path, path, len) == 0) {
            unlink_idle(h);
            h->flags |= H_REUSED;
            break;
        }
    }
    cachelock__tables_unlock();
    free_chain(stale);
    return h;
}

int cachelock__pool_has_room(const cachelock_t *h)
{
    /* A hint, read without the mutex: pool_put decides for real. */
    return (h->flags & H_REUSED) || __atomic_load_n(&idle, __ATOMIC_RELAXED) < POOL_MAX;
}

void cachelock__pool_put(cachelock_t *h)
{
    cachelock_t *out = NULL;
    unsigned gen;

    if ((h->flags & (H_POOLABLE | H_EXPOSED | H_WAITING | H_NOKEEP)) != H_POOLABLE) {
        cachelock__handle_free(h);
        return;
    }
    gen = cachelock__tables_lock();
    if (pool_gen != gen) {
        out = detach_all();
        pool_gen = gen;
    }
    if (h->fork_gen != gen || (!(h->flags & H_REUSED) && idle >= POOL_MAX)) {
        /* Opened before a fork, in the parent: not ours to keep.  Or used
         * once and the pool is full: not let in. */
        h->next = out;
        out = h;
    } else {
        cachelock_t **b = &buckets[h->hash & (POOL_BUCKETS - 1)];
        h->next = *b;
        *b = h;
        h->older = newest;
        h->newer = NULL;
        if (newest)
            newest->newer = h;
        else
            oldest = h;
        newest = h;
        __atomic_store_n(&idle, idle + 1, __ATOMIC_RELAXED);
        if (idle > POOL_MAX) {
            cachelock_t *victim = oldest;
            unlink_idle(victim);
            victim->next = out;
            out = victim;
        }
    }
    cachelock__tables_unlock();
    free_chain(out);
}

int cachelock_close_idle(void)
{
    cachelock_t *list;
    cachelock__tables_lock();
    list = detach_all();
    cachelock__tables_unlock();
    return free_chain(list);
}

static struct known_dir *find_dir(const struct cachelock__path *p, uint64_t hash)
{
    for (unsigned i = 0; i < DIRS_MAX; i++) {
        struct known_dir *d = &dirs[i];
        if (d->path && d->hash == hash && d->len == p->locks_len &&
            memcmp(d->path, p->buf, p->locks_len) == 0)
            return d;
    }
    return NULL;
}

int cachelock__dir_known(const struct cachelock__path *p, int *local)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len);
    int64_t now = cachelock__os_now_coarse_ms();
    int known = 0;

    cachelock__tables_lock();
    struct known_dir *d = find_dir(p, hash);
    if (d && now - d->checked_ms < DIR_TRUST_MS) {
        known = 1;
        *local = d->local;
    }
    cachelock__tables_unlock();
    return known;
}

void cachelock__dir_remember(const struct cachelock__path *p, int local)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len);
    int64_t now = cachelock__os_now_coarse_ms();
    char *copy = NULL, *old = NULL;

    cachelock__tables_lock();
    struct known_dir *d = find_dir(p, hash);
    if (!d) {
        cachelock__tables_unlock();
        copy = malloc(p->locks_len + 1);
        if (!copy)
            return;     /* then the slow open stays in use: no harm */
        memcpy(copy, p->buf, p->locks_len);
        copy[p->locks_len] = '\0';
        cachelock__tables_lock();
        d = find_dir(p, hash);
        if (!d) {
            d = &dirs[dirs_next++ % DIRS_MAX];
            old = d->path;
            d->path = copy;
            d->len = p->locks_len;
            d->hash = hash;
            copy = NULL;
        }
    }
    d->checked_ms = now;
    d->local = local;
    cachelock__tables_unlock();
    free(copy);
    free(old);
}

void cachelock__dirs_forget(void)
{
    char *paths[DIRS_MAX];
    cachelock__tables_lock();
    for (unsigned i = 0; i < DIRS_MAX; i++) {
        paths[i] = dirs[i].path;
        dirs[i].path = NULL;
    }
    cachelock__tables_unlock();
    for (unsigned i = 0; i < DIRS_MAX; i++)
        free(paths[i]);
}
