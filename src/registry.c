/*
 * registry.c - the process-wide table of held locks.
 *
 * flock(2) cannot tell a thread that it is about to wait for a lock it holds
 * itself: each acquire opens its own file description, so the kernel sees
 * two independent owners and the thread sleeps forever.  Every held lock is
 * therefore recorded here with the thread that took it, and an acquire that
 * would conflict with the calling thread's own lock fails with -EDEADLK
 * before it waits.
 *
 * The table is keyed by the lock file's identity (device, inode), not by its
 * path, so two spellings of one cache directory (a symlink, "a/../b") are
 * still recognised as the same lock.
 *
 * The same mutex guards the pool of idle descriptors (pool.c), so that one
 * atfork handler makes both consistent in a child.
 *
 * fork(2): a child starts with a copy of the table but owns none of the
 * parent's locks.  An atfork handler bumps a generation counter in the child;
 * entries of an older generation are ignored by checks and are only closed,
 * never unlocked, when the child releases them (unlocking would free the
 * parent's lock, since parent and child share the open file description).
 */
#include "internal.h"

#include <stdlib.h>

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static struct cachelock **buckets;
static size_t nbuckets;     /* a power of two, or 0 before the first add */
static size_t count;
static unsigned generation;

/* Every live handle's address, so that a handle released twice (or never
 * acquired) is recognised without dereferencing it: an open-addressing set
 * of pointers with tombstones.  If it cannot grow (no memory), the handle is
 * counted as untracked and release trusts it, as before. */
#define TOMB ((uintptr_t)1)
static uintptr_t *live;
static size_t live_cap, live_used;      /* used counts tombstones too */
static size_t untracked;

static void before_fork(void)
{
    pthread_mutex_lock(&mutex);
    cachelock__os_notify_prefork();
}

static void after_fork_parent(void)
{
    cachelock__os_notify_postfork();
    pthread_mutex_unlock(&mutex);
}

static void after_fork_child(void)
{
    __atomic_add_fetch(&generation, 1, __ATOMIC_RELAXED);
    cachelock__os_notify_postfork();
    pthread_mutex_unlock(&mutex);
}

static void init(void)
{
    pthread_atfork(before_fork, after_fork_parent, after_fork_child);
}

unsigned cachelock__tables_lock(void)
{
    pthread_once(&once, init);
    pthread_mutex_lock(&mutex);
    return generation;
}

void cachelock__tables_unlock(void)
{
    pthread_mutex_unlock(&mutex);
}

unsigned cachelock__fork_generation(void)
{
    pthread_once(&once, init);
    return __atomic_load_n(&generation, __ATOMIC_RELAXED);
}

static size_t hash(const struct cachelock__fileid *id)
{
    uint64_t h = id->ino * 0x9e3779b97f4a7c15ull ^ id->dev;
    return (size_t)(h ^ (h >> 29));
}

static int same_id(const struct cachelock__fileid *a, const struct cachelock__fileid *b)
{
    return a->dev == b->dev && a->ino == b->ino;
}

/* Double the table when it gets crowded.  If memory is short we keep the
 * old table: chains get longer, nothing breaks. */
static void grow(void)
{
    size_t n = nbuckets ? nbuckets * 2 : 64;
    struct cachelock **nb = calloc(n, sizeof *nb);
    if (!nb)
        return;
    for (size_t i = 0; i < nbuckets; i++) {
        struct cachelock *l = buckets[i], *next;
        for (; l; l = next) {
            next = l->next;
            size_t b = hash(&l->id) & (n - 1);
            l->next = nb[b];
            nb[b] = l;
        }
    }
    free(buckets);
    buckets = nb;
    nbuckets = n;
}

static size_t ptr_hash(uintptr_t p)
{
    uint64_t h = (uint64_t)p * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17);
}

static int live_insert(uintptr_t p);

static int live_grow(void)
{
    size_t cap = live_cap ? live_cap * 2 : 256;
    uintptr_t *old = live;
    size_t old_cap = live_cap;
    live = calloc(cap, sizeof *live);
    if (!live) {
        live = old;
        return -1;
    }
    live_cap = cap;
    live_used = 0;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] > TOMB)
            live_insert(old[i]);
    free(old);
    return 0;
}

static int live_insert(uintptr_t p)
{
    if ((live_used + 1) * 2 > live_cap && live_grow() < 0)
        return -1;
    size_t i = ptr_hash(p) & (live_cap - 1);
    while (live[i] > TOMB)
        i = (i + 1) & (live_cap - 1);
    if (live[i] == 0)
        live_used++;
    live[i] = p;
    return 0;
}

static int live_remove(uintptr_t p)
{
    if (!live_cap)
        return -1;
    size_t i = ptr_hash(p) & (live_cap - 1);
    for (size_t n = 0; n < live_cap && live[i] != 0; n++) {
        if (live[i] == p) {
            live[i] = TOMB;
            return 0;
        }
        i = (i + 1) & (live_cap - 1);
    }
    return -1;
}

int cachelock__registry_check(const struct cachelock__fileid *id, cachelock_mode_t mode)
{
    int rc = 0;
    pthread_t self = pthread_self();

    pthread_once(&once, init);
    pthread_mutex_lock(&mutex);
    if (nbuckets) {
        for (struct cachelock *l = buckets[hash(id) & (nbuckets - 1)]; l; l = l->next) {
            if (l->fork_gen != generation || !same_id(&l->id, id) ||
                !pthread_equal(l->owner, self))
                continue;
            if (mode == CACHELOCK_EXCLUSIVE || l->mode == CACHELOCK_EXCLUSIVE) {
                rc = -EDEADLK;
                break;
            }
        }
    }
    pthread_mutex_unlock(&mutex);
    return rc;
}

void cachelock__registry_add(struct cachelock *lock)
{
    pthread_once(&once, init);
    lock->owner = pthread_self();
    pthread_mutex_lock(&mutex);
    lock->fork_gen = generation;
    if (count >= nbuckets)
        grow();
    if (!nbuckets) {
        /* No table at all (calloc failed on the first add): the lock still
         * works, only the same-thread deadlock check cannot see it. */
        lock->next = NULL;
    } else {
        size_t b = hash(&lock->id) & (nbuckets - 1);
        lock->next = buckets[b];
        buckets[b] = lock;
    }
    count++;
    if (live_insert((uintptr_t)lock) < 0)
        untracked++;
    pthread_mutex_unlock(&mutex);
}

int cachelock__registry_remove(struct cachelock *lock)
{
    int ours;
    pthread_mutex_lock(&mutex);
    if (live_remove((uintptr_t)lock) < 0) {
        if (!untracked) {
            pthread_mutex_unlock(&mutex);
            return -1;      /* released twice, or never ours: do not touch */
        }
        untracked--;
    }
    if (nbuckets) {
        struct cachelock **pp = &buckets[hash(&lock->id) & (nbuckets - 1)];
        for (; *pp; pp = &(*pp)->next) {
            if (*pp == lock) {
                *pp = lock->next;
                break;
            }
        }
    }
    count--;
    ours = lock->fork_gen == generation;
    pthread_mutex_unlock(&mutex);
    return ours;
}
