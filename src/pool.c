/*
 * pool.c - released lock files kept open for the next acquire of the same
 * path in this process.
 *
 * Opening a lock file walks its path, which costs more than the flock(2)
 * pair itself (see README.md, "Benchmarks").  A released handle whose file
 * is on a local filesystem is therefore kept open and unlocked, keyed by
 * its path, and the next acquire of that path takes it over.
 *
 * The rules that keep this exactly as safe as opening afresh:
 *
 *   - A handle is either held (registry) or idle (here), never both: two
 *     holders never share a descriptor, hence never an open file
 *     description, hence never a lock.
 *   - After fork(2) (or _Fork(), or clone()) the child shares every open
 *     file description with the parent, and a flock on a shared description
 *     is the parent's lock too.  Idle handles of another process epoch are
 *     never handed out; the child closes its copies at its first use of the
 *     pool.
 *   - The program may close an idle descriptor and open something else
 *     under its number (a daemonising helper, closefrom()).  The taker
 *     compares the descriptor's identity with the recorded one before it
 *     locks (fd_is) and drops the handle, without closing what is now
 *     the program's descriptor, when they differ.
 *   - The file may have been pruned, renamed or replaced while idle: every
 *     grant, from the pool or not, is followed by a look-up of the path
 *     (os_path_names).
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
 * The .locks directories of recent acquires are kept open too (O_PATH
 * descriptors, at most DIRS_MAX), so that the first acquire of another
 * source in the same cache opens one name, not the whole path.  Only
 * existing lock files are opened through a kept directory: it may have
 * been renamed away since, and nothing is ever created there; the path
 * check after the grant sees such a rename, the acquire then forgets the
 * directory and opens the whole path again.  Kept directories carry no
 * locks, so sharing them with a forked child would be harmless; they are
 * still treated like idle handles (checked before use, dropped in a child)
 * so that one rule covers every descriptor the library keeps.
 *
 * Everything here is guarded by the tables mutex (registry.c).
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

#define POOL_MAX 64
#define POOL_BUCKETS 128        /* a power of two */

static struct cachelock__handle *buckets[POOL_BUCKETS];
static struct cachelock__handle *newest, *oldest;
static size_t idle;             /* read without the mutex by pool_has_room */
static uint64_t pool_epoch;

#define DIRS_MAX 8
static struct kept_dir {
    uint64_t hash;          /* of the .locks path */
    size_t len;
    char *path;             /* NULL: free slot */
    struct cachelock__dir d;
} dirs[DIRS_MAX];
static unsigned dirs_next;

int cachelock__fd_is(int fd, const struct cachelock__fileid *id)
{
    struct cachelock__fileid now = { 0, 0 };
    int rc;
    if (fd < 0)
        return 0;
    rc = cachelock__os_fd_id(fd, &now);
    /* -EBADF: closed by the program.  Any other failure says nothing about
     * whose descriptor it is: the caller must not keep it, but may close
     * it (a number reused by the program AND a failing fstat(2) on it is
     * far less likely than a leak hurting).  On Windows a handle value
     * reused for something that is not a file fails, or has another
     * identity: never ours to touch. */
    if (rc == -EBADF)
        return 0;
    if (rc < 0)
        return rc;
    return cachelock__same_id(&now, id);
}

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

void cachelock__handle_free(struct cachelock__handle *h)
{
    if (!h)
        return;
    if (h->fd >= 0)
        cachelock__os_close(h->fd);
    cachelock__sidecar_close(h);
    free(h);
}

static void unlink_idle(struct cachelock__handle *h)
{
    struct cachelock__handle **pp = &buckets[h->hash & (POOL_BUCKETS - 1)];
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
static struct cachelock__handle *detach_all(void)
{
    struct cachelock__handle *list = NULL;
    while (oldest) {
        struct cachelock__handle *h = oldest;
        unlink_idle(h);
        h->next = list;
        list = h;
    }
    return list;
}

/* Close and free a chain of idle handles, each only if its descriptor is
 * still the lock file: the program may have closed it and reused the
 * number. */
static int free_chain(struct cachelock__handle *list)
{
    int n = 0;
    while (list) {
        struct cachelock__handle *next = list->next;
        if (cachelock__fd_is(list->fd, &list->id) == 0)
            list->fd = -1;
        else
            n++;
        cachelock__handle_free(list);
        if (next == list)
            break;      /* cannot happen; tells the analyzer so */
        list = next;
    }
    return n;
}

/* Take every kept directory out into out[] (at most DIRS_MAX); the
 * caller closes them after unlocking.  Called with the mutex held. */
static int detach_dirs(struct kept_dir *out)
{
    int n = 0;
    for (unsigned i = 0; i < DIRS_MAX; i++) {
        if (dirs[i].path) {
            out[n++] = dirs[i];
            dirs[i].path = NULL;
        }
    }
    return n;
}

static int free_dirs(struct kept_dir *v, int n)
{
    int closed = 0;
    for (int i = 0; i < n; i++) {
        if (v[i].d.fd >= 0 && cachelock__fd_is(v[i].d.fd, &v[i].d.id) != 0) {
            cachelock__os_close(v[i].d.fd);
            closed++;
        }
        free(v[i].path);
    }
    return closed;
}

/* A new process epoch means a forked child: the idle handles are the
 * parent's descriptions.  Called with the mutex held; the directories go
 * to stale_dirs (DIRS_MAX entries), *nstale says how many. */
static struct cachelock__handle *check_epoch(uint64_t epoch, struct kept_dir *stale_dirs,
                                             int *nstale)
{
    *nstale = 0;
    if (pool_epoch == epoch)
        return NULL;
    pool_epoch = epoch;
    *nstale = detach_dirs(stale_dirs);
    return detach_all();
}

struct cachelock__handle *cachelock__pool_take(const char *path, size_t len, uint64_t hash)
{
    struct cachelock__handle *h, *stale;
    struct kept_dir stale_dirs[DIRS_MAX];
    int nstale;
    uint64_t epoch = cachelock__os_process_epoch();
    int t = cachelock__tables_lock();

    stale = check_epoch(epoch, stale_dirs, &nstale);
    for (h = buckets[hash & (POOL_BUCKETS - 1)]; h; h = h->next) {
        if (h->hash == hash && h->path_len == len && memcmp(h->path, path, len) == 0) {
            unlink_idle(h);
            h->flags |= H_REUSED;
            break;
        }
    }
    cachelock__tables_unlock(t);
    free_chain(stale);
    free_dirs(stale_dirs, nstale);
    return h;
}

int cachelock__pool_has_room(const struct cachelock__handle *h)
{
    /* A hint, read without the mutex: pool_put decides for real. */
    return (h->flags & H_REUSED) || __atomic_load_n(&idle, __ATOMIC_RELAXED) < POOL_MAX;
}

void cachelock__pool_put(struct cachelock__handle *h)
{
    struct cachelock__handle *out, *rejected = NULL;
    struct kept_dir stale_dirs[DIRS_MAX];
    int nstale;
    uint64_t epoch;
    int t;

    if ((h->flags & (H_POOLABLE | H_EXPOSED | H_WAITING | H_NOKEEP)) != H_POOLABLE) {
        cachelock__handle_free(h);
        return;
    }
    epoch = cachelock__os_process_epoch();
    t = cachelock__tables_lock();
    out = check_epoch(epoch, stale_dirs, &nstale);
    if (h->epoch != epoch || (!(h->flags & H_REUSED) && idle >= POOL_MAX)) {
        /* Opened in an ancestor process: not ours to keep.  Or used once
         * and the pool is full: not let in.  (The caller has just checked
         * its descriptor.) */
        rejected = h;
    } else {
        struct cachelock__handle **b = &buckets[h->hash & (POOL_BUCKETS - 1)];
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
            struct cachelock__handle *victim = oldest;
            unlink_idle(victim);
            victim->next = out;
            out = victim;
        }
    }
    cachelock__tables_unlock(t);
    cachelock__handle_free(rejected);
    free_chain(out);
    free_dirs(stale_dirs, nstale);
}

int cachelock__pool_close_all(void)
{
    struct cachelock__handle *list;
    int t = cachelock__tables_lock();
    list = detach_all();
    cachelock__tables_unlock(t);
    return free_chain(list);
}

int cachelock__dirs_close_all(void)
{
    struct kept_dir v[DIRS_MAX];
    int t = cachelock__tables_lock();
    int n = detach_dirs(v);
    cachelock__tables_unlock(t);
    return free_dirs(v, n);
}

/* The slot of p's .locks directory, or NULL.  Called with the mutex held. */
static struct kept_dir *find_dir(const struct cachelock__path *p, uint64_t hash)
{
    for (unsigned i = 0; i < DIRS_MAX; i++) {
        struct kept_dir *k = &dirs[i];
        if (k->path && k->hash == hash && k->len == p->locks_len &&
            memcmp(k->path, p->buf, p->locks_len) == 0)
            return k;
    }
    return NULL;
}

int cachelock__dir_take(const struct cachelock__path *p, struct cachelock__dir *d)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len);
    struct kept_dir stale[DIRS_MAX], *k;
    int nstale = 0, found = 0;
    char *path = NULL;
    uint64_t epoch = cachelock__os_process_epoch();
    int t = cachelock__tables_lock();
    if (pool_epoch != epoch) {
        struct cachelock__handle *old = check_epoch(epoch, stale, &nstale);
        cachelock__tables_unlock(t);
        free_chain(old);
        free_dirs(stale, nstale);
        return 0;
    }
    k = find_dir(p, hash);
    if (k) {
        *d = k->d;
        path = k->path;
        k->path = NULL;
        found = 1;
    }
    cachelock__tables_unlock(t);
    free(path);
    return found;
}

void cachelock__dir_put(const struct cachelock__path *p, const struct cachelock__dir *d)
{
    uint64_t hash = cachelock__path_hash(p->buf, p->locks_len);
    struct kept_dir stale[DIRS_MAX], out = { 0, 0, NULL, { -1, { 0, 0 }, 0 } };
    struct cachelock__handle *old;
    uint64_t epoch = cachelock__os_process_epoch();
    char *copy = malloc(p->locks_len + 1);
    int nstale, t;

    if (!copy) {
        cachelock__os_close(d->fd);     /* just opened or checked: ours */
        return;
    }
    memcpy(copy, p->buf, p->locks_len);
    copy[p->locks_len] = '\0';
    t = cachelock__tables_lock();
    old = check_epoch(epoch, stale, &nstale);
    if (find_dir(p, hash)) {
        out.path = copy;            /* another thread kept one meanwhile */
        out.d = *d;
    } else {
        struct kept_dir *k = &dirs[dirs_next++ % DIRS_MAX];
        out = *k;                   /* the oldest slot, maybe empty */
        k->hash = hash;
        k->len = p->locks_len;
        k->path = copy;
        k->d = *d;
    }
    cachelock__tables_unlock(t);
    free_chain(old);
    free_dirs(stale, nstale);
    if (out.path)
        free_dirs(&out, 1);
}

void cachelock__dir_forget(const struct cachelock__path *p)
{
    struct cachelock__dir d;
    if (cachelock__dir_take(p, &d) && cachelock__fd_is(d.fd, &d.id) != 0)
        cachelock__os_close(d.fd);
}

int cachelock_close_idle(void)
{
    int old = cachelock__cancel_off();
    int n = cachelock__pool_close_all();
    cachelock__dirs_close_all();
    cachelock__watchers_close_all();
    cachelock__os_fs_forget();
    cachelock__cancel_restore(old);
    return n;
}
