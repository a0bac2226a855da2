"""A whole cache: who holds a source, which sources exist, pruning unused
lock files, and the descriptors the library keeps open."""

from __future__ import annotations

import datetime
import enum
import os
from ctypes import POINTER, byref, c_char_p, c_size_t
from dataclasses import dataclass
from typing import Union

from . import _errors, _library
from ._lock import StrPath

_lib = _library.lib


@dataclass(frozen=True)
class Holder:
    """One process holding a source, or blocked waiting for it."""

    #: The process that took the lock (after a fork, a child may be the one
    #: still holding it).
    pid: int
    #: Whether it holds (or wants) the lock shared rather than exclusive.
    shared: bool
    #: Whether it is blocked in ``flock(2)`` waiting for the lock rather
    #: than holding it.
    waiting: bool
    #: Its command line, arguments separated by spaces; ``""`` when it
    #: cannot be read.
    command: str


class PruneStatus(enum.Enum):
    """What :func:`prune` did with one lock file."""

    #: Removed (or, with ``dry_run``, would be).
    REMOVED = _library.CACHELOCK_PRUNE_REMOVED
    #: Someone holds it: left alone.
    BUSY = _library.CACHELOCK_PRUNE_BUSY
    #: Changed more recently than ``older_than``: left alone.
    RECENT = _library.CACHELOCK_PRUNE_RECENT
    #: A failure (in :attr:`Pruned.error`): left alone.
    FAILED = _library.CACHELOCK_PRUNE_FAILED


@dataclass(frozen=True)
class Pruned:
    """One lock file that :func:`prune` considered."""

    #: The source name: the file name without ``.lock``.  Any file name,
    #: not only portable ones (other tools may have made it).
    source: str
    #: What was done with it.
    status: PruneStatus
    #: Why it failed (:attr:`PruneStatus.FAILED`), or a
    #: :exc:`BlockingIOError` for :attr:`PruneStatus.BUSY`; ``None``
    #: otherwise.
    error: OSError | None


def holders(cache_dir: StrPath, source: str) -> list[Holder]:
    """Who holds a source of a cache, and who is blocked waiting for it:
    holders first, then waiters, one entry per process and mode.

    On Linux this reads the kernel's lock table, ``/proc/locks``, so it sees
    every ``flock(2)`` user (filelock, ``flock(1)``, other programs of the
    library), not only this process.  Waits of :meth:`CacheLock.acquire_async`
    and timed waits do not block in the kernel and are not listed.  The
    kernel gives no atomic view of its table: while other locks come and
    go, a holder may be missed or one that has just left listed.  Any file
    name is accepted as *source*, and nothing is created.

    Raises :exc:`FileNotFoundError` (a :exc:`CacheLockError`) when there is
    no lock file: nobody ever locked the source.
    """
    directory = _dir(cache_dir)
    name = os.fsencode(source)
    if b"\0" in name:
        raise ValueError(f"invalid source name '{_errors.shown(name)}': contains a NUL byte")
    out = POINTER(_library.cachelock_holder_t)()
    count = c_size_t()
    rc = _lib.cachelock_holders(directory, name, byref(out), byref(count))
    if rc < 0:
        raise _errors.last_for(rc, name, _library.CACHELOCK_F_ANYNAME, os.fsdecode(directory))
    try:
        return [Holder(pid=out[i].pid,
                       shared=out[i].mode == _library.CACHELOCK_SHARED,
                       waiting=bool(out[i].waiting),
                       command=out[i].command.decode("utf-8", "replace"))
                for i in range(count.value)]
    finally:
        _library.free(out)


def sources(cache_dir: StrPath) -> list[str]:
    """The names of all sources that have a lock file in a cache, sorted
    bytewise; ``[]`` for a cache without ``.locks`` (or no cache at all).

    Names that the portable rule refuses (made by ``flock(1)`` or other
    tools) are listed too: lock them with ``CacheLock(..., any_name=True)``.
    Names that are not UTF-8 are decoded as :func:`os.fsdecode` does, so
    that they give the same file back.
    """
    directory = _dir(cache_dir)
    out = POINTER(c_char_p)()
    count = c_size_t()
    rc = _lib.cachelock_sources(directory, byref(out), byref(count))
    if rc < 0:
        raise _errors.last(rc, os.fsdecode(directory))
    try:
        return [os.fsdecode(out[i]) for i in range(count.value)]
    finally:
        _lib.cachelock_sources_free(out, count)


def prune(cache_dir: StrPath, older_than: Union[float, datetime.timedelta] = 0, *,
          dry_run: bool = False) -> list[Pruned]:
    """Remove the lock files of a cache that nobody holds and that were
    created at least *older_than* ago (seconds, or a
    :class:`datetime.timedelta`; 0 for all), and say what was done with
    each.

    Each file is locked without waiting, removed while held, and released;
    a busy one is skipped, so pruning never blocks the cache's users, and
    users of the library that were waiting for a pruned file move to the
    new one.  Users that do not re-check the path after locking (filelock,
    ``flock(1)``, the Rust original) may then hold a file nobody else sees:
    prune only caches whose users are all this library, or while they are
    idle.  Never delete lock files by hand.  With *dry_run*, nothing is
    removed, and what would be is reported as :attr:`PruneStatus.REMOVED`.

    Raises :exc:`CacheLockError` when ``.locks`` cannot be listed; failures
    on single files are reported in the list.
    """
    directory = _dir(cache_dir)
    if isinstance(older_than, datetime.timedelta):
        seconds = older_than.total_seconds()
    else:
        seconds = float(older_than)
    if not seconds >= 0:
        raise ValueError(f"older_than must be 0 or more seconds, not {older_than!r}")
    older_than_ms = min(int(seconds * 1000), _library.LONG_MAX)
    report: list[Pruned] = []

    def record(name: bytes, status: int, err: int, ctx: object) -> None:
        error = None
        if err < 0:
            error = OSError(-err, os.strerror(-err), os.fsdecode(name))
        try:
            what = PruneStatus(status)
        except ValueError:          # a status added to the library later
            what = PruneStatus.FAILED
        report.append(Pruned(os.fsdecode(name), what, error))

    callback = _library.cachelock_prune_fn(record)
    flags = _library.CACHELOCK_PRUNE_DRY_RUN if dry_run else 0
    rc = _lib.cachelock_prune(directory, older_than_ms, flags, callback, None)
    if rc < 0:
        raise _errors.last(rc, os.fsdecode(directory))
    return report


def close_idle() -> int:
    """Close the descriptors the library keeps open in this process between
    acquires: released lock files (at most 64), the ``.locks`` directories
    they were opened through, and idle inotify instances of waits.  Held
    locks are not affected.  Returns the number of lock files closed.

    Useful before counting or closing descriptors, or so that the cache's
    filesystem can be unmounted.  It may take tens of milliseconds when it
    closes inotify instances.
    """
    return max(0, int(_lib.cachelock_close_idle()))


def set_fair_policy(cache_dir: StrPath, on: bool = True) -> None:
    """Make fair mode the policy of a cache (*on* true; the cache directory
    and ``.locks`` are created when missing), or stop it: while it is, every
    acquire of the library on the cache queues and is granted in the order
    of arrival, as with ``CacheLock(..., fair=True)``.  Running processes
    notice a change within a second.  Raises :exc:`OSError` with errno
    ENOTSUP where fair mode cannot work (nothing is changed), or another
    :exc:`OSError`.
    """
    directory = _dir(cache_dir)
    rc = _lib.cachelock_set_fair_policy(directory, 1 if on else 0)
    if rc < 0:
        raise _errors.last(rc, os.fsdecode(directory))


def fair_policy(cache_dir: StrPath) -> bool:
    """Whether fair mode is the policy of a cache (False when there is no
    cache)."""
    directory = _dir(cache_dir)
    rc = int(_lib.cachelock_fair_policy(directory))
    if rc < 0:
        raise _errors.last(rc, os.fsdecode(directory))
    return rc == 1


def library_version() -> str:
    """The version of the C library in use, e.g. ``"0.3.0"``."""
    return (_lib.cachelock_version() or b"").decode("ascii", "replace")


def library_path() -> str:
    """The file or name the C library was loaded from."""
    return _library.path


def _dir(cache_dir: StrPath) -> bytes:
    directory = os.fsencode(cache_dir)
    if b"\0" in directory:
        raise ValueError("invalid cache directory '{}': contains a NUL byte"
                         .format(_errors.shown(directory)))
    if not directory:
        raise ValueError("invalid cache directory '': is empty")
    return directory
