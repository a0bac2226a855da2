"""The asynchronous acquire: the library's wait machine
(``cachelock_wait_start()`` and friends) driven by an asyncio event loop.

::

    start ──> step ──held──────> the lock's handle
               │  └──final─────> Busy, Timeout, CacheLockError
               │ in progress
               v
    arm: loop.add_reader(cachelock_wait_fd()), and
         loop.call_later(cachelock_wait_timeout())
               │
               v
    await until the descriptor is readable or the timer fires,
    then disarm (remove the reader, cancel the timer) and step again

CacheLock.acquire_async() tries the lock first and comes here only when
it is busy; the first step, which tries again, runs before anything is
registered.  No thread ever blocks: a step never does, and between steps
the task awaits a future like any socket read.  Whatever ends the wait (the lock, an error, or the
task's cancellation at the await) goes through ``finally``: the reader and
the timer are removed and the wait is freed, which cancels it completely,
so that no lock can arrive later.

The reader is removed before every step because a step may close the
descriptor or give it back to the library's pool of idle inotify
instances, where another wait (of this loop or of a loop in another thread)
can take it at once: a registration left behind would then watch that
wait's descriptor, or the number of a file opened meanwhile.  The step
tries the lock before it drains the descriptor, so nothing is lost, and the
next step's descriptor, which may be another one, is registered afresh.
"""

from __future__ import annotations

import asyncio
import errno
from ctypes import byref, c_void_p

from . import _errors, _library

_lib = _library.lib


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def acquire(cache_dir: bytes, source: bytes,
                  opts: _library.cachelock_options_t, path: str) -> int:
    """Acquire a lock without blocking the event loop; return its handle.

    Raises :exc:`Busy`, :exc:`Timeout`, :exc:`CacheLockError` or
    :exc:`ValueError`, and :exc:`asyncio.CancelledError` when the task is
    cancelled, in which case nothing is left behind.
    """
    wait = c_void_p()
    rc = _lib.cachelock_wait_start(cache_dir, source, opts, byref(wait))
    if rc != 0:
        raise _errors.last_for(rc, source, opts.flags, path)
    loop = asyncio.get_running_loop()
    use_reader = True
    try:
        while True:
            held = c_void_p()
            rc = _lib.cachelock_wait_step(wait, byref(held))
            if rc == 0:
                return held.value  # type: ignore[return-value]
            if rc != -errno.EINPROGRESS:
                raise _errors.last(rc, path)
            fd = _lib.cachelock_wait_fd(wait) if use_reader else -1
            due = loop.create_future()
            if fd >= 0:
                try:
                    loop.add_reader(fd, _wake, due)
                except NotImplementedError:
                    # A loop without add_reader (Windows' proactor): the
                    # timer, never more than CACHELOCK_RECHECK_MAX_MS away,
                    # is the library's own fallback for a wait without a
                    # descriptor.
                    use_reader = False
                    fd = -1
            timer = loop.call_later(_lib.cachelock_wait_timeout(wait) / 1000, _wake, due)
            try:
                await due
            finally:
                timer.cancel()
                if fd >= 0:
                    loop.remove_reader(fd)
    finally:
        _lib.cachelock_wait_free(wait)
