"""CacheLock: one source of a cache directory, locked from Python.

Holds and owners
----------------

A CacheLock keeps one *hold* (a handle of the library and a count) per
*owner*: the asyncio task that acquired it when a task is running, else the
thread.  A second acquire by the same owner counts up; the hold is released
when its count drops to zero.  Another owner of the same object acquires
the lock like a second object would, through the library: it waits for an
exclusive hold, and shares a shared one.  This is filelock's re-entrancy
(per thread, as in filelock since 3.10), extended to tasks, so that tasks
sharing one lock object exclude each other as they do with
:class:`asyncio.Lock`.

An owner that has finished (a thread that exited, a task that is done)
can never release its hold, so the next owner of the object that calls
:meth:`~CacheLock.acquire`, :meth:`~CacheLock.release` or
:attr:`~CacheLock.locked` takes it over.  That is what makes
``await asyncio.wait_for(lock.acquire_async(), 5)`` work on Python 3.11,
whose ``wait_for`` runs the acquire in a task of its own.

The library records the thread that acquired each lock (see OWNERSHIP in
cachelock.h), and a blocking acquire of a lock that the calling thread
already holds in a conflicting mode fails at once with EDEADLK instead of
waiting for itself forever.  Python threads and tasks never move between
threads, so the package keeps that: every lock is owned by the thread
that took it, and a hold taken over by another thread is disowned
(``cachelock_disown()``) first.  Timed, non-blocking and asynchronous waits
never report EDEADLK: two tasks of one event loop queue.

After fork(2), the parent's holds are not the child's: the child forgets
them at its first use of the object (closing its copies of the
descriptors), and acquires for itself.
"""

from __future__ import annotations

import errno
import functools
import inspect
import math
import os
import sys
import threading
import time
from ctypes import byref, c_void_p, create_string_buffer
from types import TracebackType
from typing import Any, Callable, TypeVar, Union

from . import _errors, _library

_lib = _library.lib

StrPath = Union[str, "os.PathLike[str]", bytes, "os.PathLike[bytes]"]
F = TypeVar("F", bound=Callable[..., Any])


class _Forks:
    """Bumped in every forked child: an object made in an older epoch holds
    its parent's locks."""

    epoch = 0


def _forked() -> None:
    _Forks.epoch += 1


os.register_at_fork(after_in_child=_forked)


def _owner() -> object:
    """The owner of holds taken now: the running asyncio task, else the
    thread."""
    aio = sys.modules.get("asyncio")
    if aio is not None:
        loop = aio._get_running_loop()
        if loop is not None:
            task = aio.current_task(loop)
            if task is not None:
                return task
    return threading.current_thread()


def _finished(owner: object) -> bool:
    if isinstance(owner, threading.Thread):
        return not owner.is_alive()
    return bool(owner.done())  # type: ignore[attr-defined]


class _Hold:
    """One owner's hold: the library's handle and how many times it was
    acquired."""

    __slots__ = ("handle", "count", "thread")

    def __init__(self, handle: int, thread: int) -> None:
        self.handle = handle
        self.count = 1
        self.thread = thread     # the thread the library counts as owner


def _options(mode: int, timeout_ms: int, flags: int) -> _library.cachelock_options_t:
    return _library.cachelock_options_t(_library.CACHELOCK_OPTIONS_VERSION, mode,
                                        timeout_ms, flags)


class _Acquired:
    """What :meth:`CacheLock.acquire` and :meth:`CacheLock.acquire_async`
    return: a context manager that releases the lock once when exited, so
    that ``with lock.acquire(timeout=5):`` works as with filelock."""

    __slots__ = ("lock",)

    def __init__(self, lock: CacheLock) -> None:
        self.lock = lock

    def __enter__(self) -> CacheLock:
        return self.lock

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.lock.release()

    async def __aenter__(self) -> CacheLock:
        return self.lock

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.lock.release()


class CacheLock:
    """The lock of one source of a cache directory: an ``flock(2)`` lock on
    ``{cache_dir}/.locks/{source}.lock``.

    *cache_dir* is a path (created with its parents, and ``.locks`` in it,
    at the first acquire when missing); *source* the name of an entry of
    the cache, a portable file name: names that could escape ``.locks`` or
    are not portable (empty, ``.``, ``..``, with ``/`` or ``\\``, control
    characters, ``< > : " | ? *``, a trailing dot or space, Windows device
    names, longer than 250 bytes) raise :exc:`ValueError` here, unless
    *any_name* is true, which accepts any one file name of this system
    (for caches shared with tools that make names such as ``tools:beta``).

    With *fair* true the lock is taken in fair mode: when it is taken or
    others are queued, the acquire joins a queue and is granted the lock
    in the order of joining among all users that queue (see
    :func:`set_fair_policy` to make every user of a cache queue).  Where
    fair mode cannot work (not Linux 3.15 or later, a network or FUSE
    filesystem, a lock file this user may only read) acquiring raises
    :exc:`OSError` with errno ENOTSUP rather than wait unfairly.

    With *shared* true the lock is taken shared: any number of shared
    holders together, excluded by an exclusive one.  *timeout* is the
    default of :meth:`acquire` and of ``with``: a negative value waits as
    long as it takes, 0 tries once, a positive value gives up after that
    many seconds.

    The same file and the same lock as Python's filelock, ``flock(1)`` and
    the Rust original use, so all of them exclude one another.  The kernel
    releases the lock when its holder releases it, exits or crashes: there
    are no stale locks, and the lock file stays on disk.

    The object is re-entrant, as filelock's locks are::

        lock = CacheLock(cache_dir, "registry")
        with lock:
            with lock:          # the same thread: counts up
                ...
            ...                 # still held
        # released

    Each thread and each asyncio task has its own count; another thread
    (or task) using the same object waits for the lock like a second
    object would.  A second object for the same source in the same thread
    is a second holder, as in the C library: a try reports :exc:`Busy`, and
    a blocking acquire of an exclusive lock held there fails with errno
    EDEADLK instead of waiting for itself forever.

    Waiting releases the GIL: other threads keep running.  In asyncio, use
    ``async with lock:`` or :meth:`acquire_async`, which wait in the event
    loop (on the library's inotify descriptor and a re-check timer) without
    blocking any thread, and can be cancelled at any time with nothing
    left behind.
    """

    def __init__(self, cache_dir: StrPath, source: str, *, shared: bool = False,
                 timeout: float = -1, any_name: bool = False, fair: bool = False) -> None:
        if not isinstance(source, str):
            raise TypeError(f"source must be a str, not {type(source).__name__}")
        self._dir = os.fsencode(cache_dir)
        self._src = os.fsencode(source)
        if b"\0" in self._dir:
            raise ValueError("invalid cache directory '{}': contains a NUL byte"
                             .format(_errors.shown(self._dir)))
        if b"\0" in self._src:
            raise ValueError("invalid source name '{}': contains a NUL byte"
                             .format(_errors.shown(self._src)))
        self._flags = ((_library.CACHELOCK_F_ANYNAME if any_name else 0) |
                       (_library.CACHELOCK_F_FAIR if fair else 0))
        self._shared = bool(shared)
        self._mode = _library.CACHELOCK_SHARED if shared else _library.CACHELOCK_EXCLUSIVE
        self._path = _lock_path(self._dir, self._src, self._flags & _library.CACHELOCK_F_ANYNAME)
        self.timeout = timeout
        self._cache_dir = os.fspath(cache_dir)
        self._source = source
        self._try = _options(self._mode, 0, self._flags)
        self._forever = _options(self._mode, -1, self._flags)
        self._holds: dict[object, _Hold] = {}
        self._epoch = _Forks.epoch

    # -- properties -----------------------------------------------------

    @property
    def path(self) -> str:
        """The lock file: ``{cache_dir}/.locks/{source}.lock``."""
        return self._path

    @property
    def cache_dir(self) -> str | bytes:
        """The cache directory, as given."""
        return self._cache_dir

    @property
    def source(self) -> str:
        """The source name."""
        return self._source

    @property
    def shared(self) -> bool:
        """Whether the lock is taken shared rather than exclusive."""
        return self._shared

    @property
    def timeout(self) -> float:
        """The default timeout of :meth:`acquire`, :meth:`acquire_async`
        and ``with``, in seconds: negative waits as long as it takes."""
        return self._timeout

    @timeout.setter
    def timeout(self, value: float) -> None:
        value = float(value)
        if math.isnan(value):
            raise ValueError("timeout must be a number of seconds, not NaN")
        self._timeout = value

    @property
    def locked(self) -> bool:
        """Whether this object holds the lock for the calling thread (or
        asyncio task)."""
        return self._hold(_owner()) is not None

    # -- acquiring and releasing --------------------------------------------

    def acquire(self, timeout: float | None = None, blocking: bool = True) -> _Acquired:
        """Acquire the lock, waiting as long as *timeout* says.

        *timeout* is in seconds; ``None`` means the object's
        :attr:`timeout`, a negative value (or infinity) waits as long as it
        takes, and 0 tries once, as does ``blocking=False`` whatever the
        timeout.  If the calling thread (or task) holds the lock through
        this object already, the count goes up and nothing waits.

        The return value releases the lock once when used as a context
        manager, as with filelock: ``with lock.acquire(timeout=10): ...``.

        Raises :exc:`Busy` when a try finds the lock held,
        :exc:`Timeout` when it is still held after *timeout*, and
        :exc:`CacheLockError` when the library fails (the cache directory
        cannot be created, or a blocking acquire would wait for the
        calling thread itself: errno EDEADLK).  A signal handler that
        raises (Ctrl-C's :exc:`KeyboardInterrupt`) ends the wait; one that
        returns lets it go on.
        """
        owner = _owner()
        hold = self._hold(owner)
        if hold is not None:
            hold.count += 1
            return _Acquired(self)
        handle = self._take(self._timeout_ms(timeout, blocking))
        self._holds[owner] = _Hold(handle, threading.get_ident())
        return _Acquired(self)

    async def acquire_async(self, timeout: float | None = None,
                            blocking: bool = True) -> _Acquired:
        """Acquire the lock in an asyncio event loop, without blocking it.

        Arguments, re-entrancy and exceptions as :meth:`acquire`, but the
        wait runs in the event loop: the task sleeps until the lock file is
        closed by its holder (an inotify event) or a re-check timer fires,
        and no thread blocks.  Two tasks of one loop queue behind each
        other; a task that holds the lock through another object waits for
        itself, as in the C library, until its timeout.  Cancelling the task (``asyncio.wait_for``,
        ``asyncio.timeout``, :meth:`asyncio.Task.cancel`) cancels the wait
        completely: nothing is held, and no lock arrives later.

        The return value releases the lock once when used as an
        asynchronous context manager: ``async with await
        lock.acquire_async(timeout=10): ...``.
        """
        owner = _owner()
        hold = self._hold(owner)
        if hold is not None:
            hold.count += 1
            return _Acquired(self)
        ms = self._timeout_ms(timeout, blocking)
        # A try first: a lock that is free costs one call, as in acquire().
        held = c_void_p()
        rc = _lib.cachelock_acquire_ex(self._dir, self._src, self._try, byref(held))
        if rc == 0:
            handle = held.value
        elif rc != -errno.EWOULDBLOCK or ms == 0:
            raise _errors.last_for(rc, self._src, self._flags, self._path)
        else:
            from . import _wait     # asyncio, imported when first needed

            handle = await _wait.acquire(self._dir, self._src, self._options(ms), self._path)
        self._holds[owner] = _Hold(handle, threading.get_ident())  # type: ignore[arg-type]
        return _Acquired(self)

    def release(self, force: bool = False) -> None:
        """Release the lock once, or for good with *force*.

        The lock is released when the calling thread (or task) has released
        it as many times as it acquired it; it is then free for others at
        once, even if a forked child still has a copy of the descriptor.
        Releasing a lock that the calling thread or task does not hold does
        nothing, as with filelock.
        """
        owner = _owner()
        hold = self._hold(owner)
        if hold is None:
            return
        hold.count -= 1
        if hold.count > 0 and not force:
            return
        del self._holds[owner]
        _lib.cachelock_release(hold.handle)

    def __enter__(self) -> CacheLock:
        self.acquire()
        return self

    def __exit__(self, exc_type: type[BaseException] | None,
                 exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> CacheLock:
        await self.acquire_async()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self.release()

    def __call__(self, func: F) -> F:
        """Use the lock as a decorator: the function (or coroutine
        function) runs holding it, as under ``with`` (``async with``)."""
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def locked_coroutine(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)
            return locked_coroutine  # type: ignore[return-value]

        @functools.wraps(func)
        def locked_call(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)
        return locked_call  # type: ignore[return-value]

    def __del__(self) -> None:
        # Release what is still held, by any owner, as filelock does.
        holds = getattr(self, "_holds", None)
        if not holds:
            return
        release = getattr(_lib, "cachelock_release", None)
        for hold in list(holds.values()):
            if release is not None:
                release(hold.handle)
        holds.clear()

    def __repr__(self) -> str:
        mode = "shared" if self._shared else "exclusive"
        state = "locked" if self.locked else "unlocked"
        return f"<{type(self).__name__} {self._path!r} {mode}, {state}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # A copy in another process (multiprocessing's spawn) is a new,
        # unlocked object for the same lock.
        return (_rebuild, (self._cache_dir, self._source, self._shared, self._timeout,
                           bool(self._flags & _library.CACHELOCK_F_ANYNAME),
                           bool(self._flags & _library.CACHELOCK_F_FAIR)))

    # -- internals ----------------------------------------------------------

    def _hold(self, owner: object) -> _Hold | None:
        """The hold of *owner*, taking over one whose owner has finished."""
        if self._epoch != _Forks.epoch:
            self._forget_parent()
        holds = self._holds
        hold = holds.get(owner)
        if hold is not None or not holds:
            return hold
        for other in list(holds):
            if other is owner or not _finished(other):
                continue
            hold = holds.pop(other, None)
            if hold is None:
                continue            # another thread took it over meanwhile
            holds[owner] = hold
            me = threading.get_ident()
            if hold.thread != me:
                _lib.cachelock_disown(hold.handle)
                hold.thread = me
            return hold
        return None

    def _forget_parent(self) -> None:
        """In a forked child: the holds are the parent's.  Releasing them
        here only closes the child's copies of their descriptors."""
        holds = list(self._holds.values())
        self._holds.clear()
        self._epoch = _Forks.epoch
        for hold in holds:
            _lib.cachelock_release(hold.handle)

    def _timeout_ms(self, timeout: float | None, blocking: bool) -> int:
        """The library's timeout: -1 forever, 0 try once, else
        milliseconds rounded up (a timeout never ends early)."""
        if not blocking:
            return 0
        seconds = self._timeout if timeout is None else float(timeout)
        if math.isnan(seconds):
            raise ValueError("timeout must be a number of seconds, not NaN")
        if seconds < 0 or math.isinf(seconds):
            return -1
        if seconds == 0:
            return 0
        return min(math.ceil(seconds * 1000), _library.LONG_MAX)

    def _options(self, timeout_ms: int) -> _library.cachelock_options_t:
        if timeout_ms == 0:
            return self._try
        if timeout_ms < 0:
            return self._forever
        return _options(self._mode, timeout_ms, self._flags)

    def _take(self, timeout_ms: int) -> int:
        """One blocking, timed or non-blocking acquire through the library;
        the handle."""
        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms > 0 else 0.0
        opts = self._options(timeout_ms)
        while True:
            held = c_void_p()
            rc = _lib.cachelock_acquire_ex(self._dir, self._src, opts, byref(held))
            if rc == 0:
                return held.value  # type: ignore[return-value]
            if rc != -errno.EINTR:
                raise _errors.last_for(rc, self._src, self._flags, self._path)
            # A signal handler without SA_RESTART (all of Python's) ran
            # while the library waited.  Python runs its handler at the
            # next bytecode: one that raises (KeyboardInterrupt) ends the
            # wait there, and one that returns lets it go on with what is
            # left of the timeout (PEP 475).
            if timeout_ms > 0:
                left = math.ceil((deadline - time.monotonic()) * 1000)
                if left <= 0:
                    raise _errors.Timeout(
                        f"timed out after {timeout_ms} ms waiting for lock "
                        f"'{_errors.shown(os.fsencode(self._path))}'", self._path)
                opts = _options(self._mode, left, self._flags)


def _rebuild(cache_dir: StrPath, source: str, shared: bool, timeout: float,
             any_name: bool, fair: bool = False) -> CacheLock:
    return CacheLock(cache_dir, source, shared=shared, timeout=timeout, any_name=any_name,
                     fair=fair)


def _lock_path(cache_dir: bytes, source: bytes, flags: int) -> str:
    """The lock file's path; ValueError for a bad name or argument."""
    size = 4097
    buf = create_string_buffer(size)
    rc = _lib.cachelock_path_ex(cache_dir, source, flags, buf, size)
    if rc == -errno.ERANGE:
        size = 65537
        buf = create_string_buffer(size)
        rc = _lib.cachelock_path_ex(cache_dir, source, flags, buf, size)
    if rc < 0:
        err = _errors.last_for(rc, source, flags)
        if rc == -errno.EINVAL:
            # Nothing on disk is looked at: an empty cache directory.
            raise ValueError(str(err))
        raise err
    return os.fsdecode(buf.raw[:rc])


__all__ = ["CacheLock"]
