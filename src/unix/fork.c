/*
 * fork.c - telling a forked child from its parent without atfork handlers.
 *
 * pthread_atfork() handlers do not run in a child made by _Fork() (glibc
 * 2.34, POSIX 2024) or by a raw clone(SIGCHLD), yet such a child shares
 * every open file description, and so every flock(2) lock, with its
 * parent.  The library must never treat the parent's descriptors as the
 * child's own, so it needs a test that no way of forking can skip.
 *
 * Linux (4.14 and later): one anonymous page marked MADV_WIPEONFORK is
 * zero-filled in every child made without CLONE_VM, by whatever call.  The
 * page holds the current epoch; a zero there means "a new process": the
 * first caller in the child takes a fresh epoch from a counter that lives
 * in ordinary memory, which the child inherited, so the fresh value is
 * larger than any epoch an ancestor handed out.  Cost: one load per call.
 *
 * Elsewhere (older kernels, other Unixes): the same with getpid(2) as the
 * test, one system call per check.  A pid can be reused, but never by a
 * live ancestor; and an epoch also carries the counter, which only grows
 * down the line of descendants.
 */
#define _GNU_SOURCE
#include "unix.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

static uint64_t *wipe_page;     /* NULL: no MADV_WIPEONFORK */
static uint64_t counter;        /* inherited by children: grows down the line */
static uint64_t by_pid;         /* fallback: pid << 32 | counter */
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void setup(void)
{
#if USE_WIPEONFORK && defined(MADV_WIPEONFORK)
    long size = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, size > 0 ? (size_t)size : 4096, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return;
    if (madvise(p, size > 0 ? (size_t)size : 4096, MADV_WIPEONFORK) != 0) {
        munmap(p, size > 0 ? (size_t)size : 4096);
        return;
    }
    wipe_page = p;
#endif
}

/* A value no ancestor and no other thread has been given. */
static uint64_t fresh(void)
{
    return __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
}

uint64_t cachelock__os_process_epoch(void)
{
    uint64_t e, expected = 0;

    pthread_once(&once, setup);
    if (wipe_page) {
        e = __atomic_load_n(wipe_page, __ATOMIC_ACQUIRE);
        if (e)
            return e;
        e = fresh();
        /* Two threads of a new child may race here; one value wins. */
        if (__atomic_compare_exchange_n(wipe_page, &expected, e, 0, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return e;
        return expected;
    }
    uint64_t pid = (uint64_t)(uint32_t)getpid();
    e = __atomic_load_n(&by_pid, __ATOMIC_ACQUIRE);
    while (!e || e >> 32 != pid) {
        uint64_t want = pid << 32 | (fresh() & 0xffffffffu);
        if (__atomic_compare_exchange_n(&by_pid, &e, want, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            return want;
    }
    return e;
}
