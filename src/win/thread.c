/*
 * thread.c - the mutex, one-time initialisation and thread identity of
 * portable code (os.h), on Windows' own primitives: an SRWLOCK (static
 * initialiser, nothing to destroy) and InitOnceExecuteOnce.  Not
 * winpthreads, which would add a runtime DLL to every program.
 */
#include "win.h"

#include <string.h>

_Static_assert(sizeof(cachelock__mutex_t) == sizeof(SRWLOCK), "a mutex is an SRWLOCK");
_Static_assert(sizeof(cachelock__once_t) == sizeof(INIT_ONCE), "a once flag is an INIT_ONCE");

void cachelock__mutex_lock(cachelock__mutex_t *m)
{
    AcquireSRWLockExclusive((PSRWLOCK)(void *)m);
}

void cachelock__mutex_unlock(cachelock__mutex_t *m)
{
    ReleaseSRWLockExclusive((PSRWLOCK)(void *)m);
}

static BOOL CALLBACK run_once(PINIT_ONCE once, PVOID param, PVOID *context)
{
    void (*fn)(void);
    (void)once;
    (void)context;
    memcpy(&fn, &param, sizeof fn);
    fn();
    return TRUE;
}

void cachelock__once(cachelock__once_t *o, void (*fn)(void))
{
    void *param;
    memcpy(&param, &fn, sizeof param);
    InitOnceExecuteOnce((PINIT_ONCE)(void *)o, run_once, param, NULL);
}

cachelock__thread_t cachelock__thread_self(void)
{
    return GetCurrentThreadId();
}

void cachelock__os_yield(void)
{
    SwitchToThread();
}
