"""Per-source locks for a cache directory shared by many processes, threads
and asyncio tasks, on top of the C library libcachelock.

Every named entry of a cache, a *source*, has a lock file
``{cache_dir}/.locks/{source}.lock``, locked with ``flock(2)``: the file
and the lock that Python's filelock, ``flock(1)`` and the Rust original use
too, so all of them exclude one another on one cache.  The kernel drops a
lock when its holder exits or crashes: there are no stale locks.

For a filelock user::

    from cachelock import CacheLock, Timeout

    lock = CacheLock("/var/cache/pkg", "registry")      # not a path: a name
    with lock:                                          # waits, GIL released
        ...                                             # update the entry
    try:
        with lock.acquire(timeout=5):
            ...
    except Timeout:
        print("still busy after 5 s")

    reader = CacheLock("/var/cache/pkg", "registry", shared=True)

    async def refresh():
        async with lock:                                # no thread blocked
            ...

Unlike filelock, a waiter is woken by the release itself (an inotify event
or the kernel's own wake-up) instead of polling every 50 ms; the lock file
is never truncated; locks can be shared; names are checked so that they
cannot escape the cache; and errors carry the library's message, which
names the operation and the path.

The module loads ``libcachelock.so.0`` when imported: from the path in the
environment variable ``CACHELOCK_LIBRARY``, next to the package, from the
``lib`` directory of the prefix it is installed in, or through the dynamic
loader (:func:`ctypes.util.find_library`).  When none loads, the import
fails with an :exc:`ImportError` that lists what was tried.
"""

from __future__ import annotations

from ._cache import (Holder, PruneStatus, Pruned, close_idle, fair_policy, holders,
                     library_path, library_version, prune, set_fair_policy, sources)
from ._errors import Busy, CacheLockError, Timeout
from ._lock import CacheLock

__version__ = "0.3.0"

__all__ = [
    "Busy",
    "CacheLock",
    "CacheLockError",
    "Holder",
    "PruneStatus",
    "Pruned",
    "Timeout",
    "close_idle",
    "fair_policy",
    "holders",
    "library_path",
    "library_version",
    "prune",
    "set_fair_policy",
    "sources",
]
