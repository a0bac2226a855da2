/*
 * registry.c - the process-wide table of held locks: tokens for the
 * caller, ownership for the same-thread deadlock check, and fork(2).
 *
 * Tokens.  The cachelock_t pointer a caller gets is not the address of the
 * handle but a token naming a slot of this table and the slot's generation.
 * Releasing bumps the generation, so a token released twice (or a copy kept
 * after the release) no longer matches anything and is ignored, even when
 * the handle itself has since been handed to a new holder, which the pool
 * of released descriptors does on purpose.  Tokens are odd numbers, never
 * valid addresses.
 *
 * Ownership.  flock(2) cannot tell a thread that it is about to wait for a
 * lock it holds itself: each acquire opens its own file description, so
 * the kernel sees two owners and the thread sleeps forever.  Every held
 * lock records the thread that acquired it, and a blocking acquire that
 * would conflict with a lock the calling thread owns fails with -EDEADLK.
 * Thread ids come from a counter, never from pthread_t, which a new thread
 * may reuse after one exits: a lock owned by a thread that has exited is
 * owned by nobody.  Thread pools and language runtimes that move a lock
 * between threads say so (CACHELOCK_F_UNOWNED, cachelock_disown()), and
 * only a blocking acquire ever reports -EDEADLK: tries, timed and
 * asynchronous waits report busy or timed out, because another thread or
 * task may release the lock meanwhile.
 *
 * fork(2).  A child shares every open file description with its parent,
 * and an flock(2) lock belongs to the description: the parent's locks are
 * not the child's to release or to count.  Everything recorded here carries
 * the process epoch (os_process_epoch, which changes in every child whether
 * or not atfork handlers run, as after _Fork() or a raw clone()), and
 * entries of another epoch are only closed, never unlocked or reused.
 *
 * The mutex.  One mutex guards this table, the pool (pool.c) and the
 * inotify instances (watchers.c).  The atfork handlers take it around
 * fork(2) so that a child of a multi-threaded parent never inherits the
 * tables half-changed.  A program's own atfork handlers may call the
 * library on the forking thread while our handlers hold the mutex (its
 * prepare handlers run after ours when it registered first, its child
 * handlers before ours); those calls pass through instead of deadlocking.
 */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

static cachelock__mutex_t mutex = CACHELOCK__MUTEX_INIT;
static cachelock__once_t once = CACHELOCK__ONCE_INIT;
static int forking;                     /* atomic: our atfork handlers hold mutex */
static cachelock__thread_t fork_thread; /* the thread they hold it for */

static void before_fork(void)
{
    cachelock__mutex_lock(&mutex);
    fork_thread = cachelock__thread_self();
    __atomic_store_n(&forking, 1, __ATOMIC_RELEASE);
}

static void after_fork(void)
{
    __atomic_store_n(&forking, 0, __ATOMIC_RELEASE);
    cachelock__mutex_unlock(&mutex);
}

static void init(void)
{
    cachelock__atfork(before_fork, after_fork, after_fork);
}

int cachelock__tables_lock(void)
{
    cachelock__once(&once, init);
    /* Only the forking thread can see forking set by itself, so reading
     * fork_thread after the acquire load is safe. */
    if (__atomic_load_n(&forking, __ATOMIC_ACQUIRE) &&
        cachelock__thread_equal(fork_thread, cachelock__thread_self()))
        return 0;
    cachelock__mutex_lock(&mutex);
    return 1;
}

void cachelock__tables_unlock(int token)
{
    if (token)
        cachelock__mutex_unlock(&mutex);
}

uint64_t cachelock__thread_id(void)
{
    static uint64_t next;
    static _Thread_local uint64_t id;
    if (!id)
        id = __atomic_add_fetch(&next, 1, __ATOMIC_RELAXED);
    return id;
}

/* ---- the table ----------------------------------------------------------- */

struct slot {
    struct cachelock__handle *h;    /* NULL: free */
    uint32_t gen;
    uint32_t next_free;             /* index + 1 of the next free slot, 0: end */
};

static struct slot *slots;
static uint32_t nslots, cap;        /* in use (ever), allocated */
static uint32_t free_head;          /* index + 1 of the first free slot */

/* Token layout: bit 0 set (never an aligned address, never NULL), the slot
 * index above it, and the generation in the remaining high bits. */
#if UINTPTR_MAX > 0xffffffffu
#define SLOT_BITS 31
#else
#define SLOT_BITS 20
#endif
#define GEN_MASK ((uintptr_t)UINTPTR_MAX >> (SLOT_BITS + 1))
#define MAX_SLOTS ((uint32_t)1 << SLOT_BITS)

static cachelock_t *make_token(uint32_t index, uint32_t gen)
{
    uintptr_t v = ((uintptr_t)gen & GEN_MASK) << (SLOT_BITS + 1) | (uintptr_t)index << 1 | 1u;
    return (cachelock_t *)v;
}

/* The slot a token names, or NULL if it names none or an older holder.
 * Called with the mutex held. */
static struct slot *find(const cachelock_t *lock)
{
    uintptr_t v = (uintptr_t)lock;
    if (!(v & 1u))
        return NULL;
    uint32_t index = (uint32_t)((v >> 1) & (MAX_SLOTS - 1));
    uint32_t gen = (uint32_t)(v >> (SLOT_BITS + 1));
    if (index >= nslots || !slots[index].h || ((uintptr_t)slots[index].gen & GEN_MASK) != gen)
        return NULL;
    return &slots[index];
}

cachelock_t *cachelock__handle_publish(struct cachelock__handle *h, int unowned)
{
    uint32_t index;
    cachelock_t *token = NULL;
    int t = cachelock__tables_lock();

    if (free_head) {
        index = free_head - 1;
        free_head = slots[index].next_free;
    } else {
        if (nslots == cap) {
            uint32_t ncap = cap ? cap * 2 : 64;
            struct slot *ns = ncap <= MAX_SLOTS ? realloc(slots, ncap * sizeof *ns) : NULL;
            if (!ns)
                goto out;
            slots = ns;
            cap = ncap;
        }
        index = nslots++;
        slots[index].gen = 1;
    }
    slots[index].h = h;
    slots[index].next_free = 0;
    h->owner = unowned ? 0 : cachelock__thread_id();
    token = make_token(index, slots[index].gen);
out:
    cachelock__tables_unlock(t);
    return token;
}

struct cachelock__handle *cachelock__handle_unpublish(const cachelock_t *lock, int *ours)
{
    struct cachelock__handle *h = NULL;
    uint64_t epoch = cachelock__os_process_epoch();
    int t = cachelock__tables_lock();
    struct slot *s = find(lock);
    if (s) {
        h = s->h;
        s->h = NULL;
        s->gen++;
        s->next_free = free_head;
        free_head = (uint32_t)(s - slots) + 1;
        *ours = h->epoch == epoch;
    }
    cachelock__tables_unlock(t);
    return h;
}

/* The modes in which the calling thread holds file id, as a mask of
 * 1 << cachelock_mode_t (0: none).  A scan of the held locks: it runs only
 * when an acquire found the lock busy. */
static unsigned held_by_this_thread(const struct cachelock__fileid *id)
{
    uint64_t self = cachelock__thread_id(), epoch = cachelock__os_process_epoch();
    unsigned held = 0;
    int t = cachelock__tables_lock();
    for (uint32_t i = 0; i < nslots; i++) {
        const struct cachelock__handle *h = slots[i].h;
        if (h && h->owner == self && h->epoch == epoch && cachelock__same_id(&h->id, id))
            held |= 1u << h->mode;
    }
    cachelock__tables_unlock(t);
    return held;
}

int cachelock__registry_check(const struct cachelock__fileid *id, cachelock_mode_t mode)
{
    unsigned held = held_by_this_thread(id);
    if (held & (1u << CACHELOCK_EXCLUSIVE) || (held && mode == CACHELOCK_EXCLUSIVE))
        return -EDEADLK;
    return 0;
}

int cachelock__registry_owns(const struct cachelock__fileid *id, cachelock_mode_t mode)
{
    return (held_by_this_thread(id) >> mode) & 1;
}

/* ---- the public calls that look a token up ------------------------------- */

/* The lock's descriptor (a HANDLE on Windows), given away; -EINVAL, with
 * the message, for a token that is not a held lock. */
static int give_away(const cachelock_t *lock)
{
    int fd = -EINVAL;
    int t = cachelock__tables_lock();
    struct slot *s = find(lock);
    if (s) {
        /* Handed out, the descriptor may be shared with a child or dup'ed:
         * never reuse it for another acquire. */
        s->h->flags |= H_EXPOSED;
        fd = s->h->fd;
    }
    cachelock__tables_unlock(t);
    if (fd < 0)
        cachelock__failf(fd, "invalid argument: not a held lock");
    return fd;
}

int cachelock_fd(const cachelock_t *lock)
{
    int fd = give_away(lock);
    if (fd >= 0 && CACHELOCK__FD_IS_HANDLE)
        return cachelock__failf(-ENOSYS, "cannot give the lock's descriptor: on Windows a lock "
                                "is held through a handle (cachelock_handle())");
    return fd;
}

void *cachelock_handle(const cachelock_t *lock)
{
    if (!CACHELOCK__FD_IS_HANDLE) {
        cachelock__failf(-ENOSYS, "cannot give the lock's handle: on this system a lock is "
                         "held through a descriptor (cachelock_fd())");
        return NULL;
    }
    int fd = give_away(lock);
    return fd < 0 ? NULL : (void *)(intptr_t)fd;
}

int cachelock_mode(const cachelock_t *lock)
{
    int mode = -EINVAL;
    int t = cachelock__tables_lock();
    struct slot *s = find(lock);
    if (s)
        mode = (int)s->h->mode;
    cachelock__tables_unlock(t);
    if (mode < 0)
        cachelock__failf(mode, "invalid argument: not a held lock");
    return mode;
}

int cachelock_fs(const cachelock_t *lock)
{
    int fs = -EINVAL;
    int t = cachelock__tables_lock();
    struct slot *s = find(lock);
    if (s)
        fs = s->h->fs;
    cachelock__tables_unlock(t);
    if (fs < 0)
        cachelock__failf(fs, "invalid argument: not a held lock");
    return fs;
}

int cachelock_disown(cachelock_t *lock)
{
    int rc = -EINVAL;
    int t = cachelock__tables_lock();
    struct slot *s = find(lock);
    if (s) {
        s->h->owner = 0;
        rc = 0;
    }
    cachelock__tables_unlock(t);
    if (rc < 0)
        cachelock__failf(rc, "cannot disown lock: not a held lock");
    return rc;
}
