"""The exceptions of the package, made from the library's codes and messages.

Every failure of the library is an :exc:`OSError` whose ``str()`` is the
library's one-line message (lowercase, no full stop, the operation and the
path first, so a program can prefix it with its own name), with ``errno``
and ``filename`` set:

* :exc:`Timeout`, a :exc:`TimeoutError`: the lock was still held by
  someone else when the timeout ran out;
* :exc:`Busy`, a :exc:`Timeout` (as filelock reports a failed try) and a
  :exc:`BlockingIOError`: the lock is held and the call was not to wait;
* :exc:`CacheLockError` for everything else, also an instance of the
  built-in subclass for its errno (:exc:`PermissionError`,
  :exc:`NotADirectoryError`, ...), so that ``except PermissionError``
  keeps working.

Busy and timed out are outcomes, not failures of the system, so they are
not :exc:`CacheLockError`.  A source name that the library refuses is a
:exc:`ValueError`.
"""

from __future__ import annotations

import errno as _errno
import os
from typing import Any

from . import _library

_lib = _library.lib


class _Reported(OSError):
    """An OSError that reads as the library's message."""

    def __init__(self, errno: int, message: str, filename: str | None = None) -> None:
        super().__init__(errno, message, *_named(filename))
        self.strerror = os.strerror(errno)
        #: The library's one-line message, also what ``str()`` returns.
        self.message = message

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple[Any, ...]:
        return (_restore, (_base_of(type(self)), self.errno, self.message, self.filename))


class CacheLockError(_Reported):
    """A failure of the library other than busy or timed out.

    ``errno`` is the error of the system call that failed (or of a bad
    argument), ``filename`` the lock file or cache directory concerned, and
    ``str()`` the library's message, for example::

        cannot create lock directory '/var/cache/pkg/.locks': Permission denied

    The exception is also an instance of the built-in subclass of
    :exc:`OSError` for its errno, such as :exc:`PermissionError` or
    :exc:`NotADirectoryError`.  A blocking acquire of a lock that the
    calling thread already holds in a conflicting mode through another
    object fails with errno :data:`errno.EDEADLK`: it would wait for itself
    forever.
    """

    def __new__(cls, errno: int, message: str, filename: str | None = None) -> CacheLockError:
        # As OSError(errno, ...) makes the built-in subclass for errno.
        if cls is CacheLockError:
            cls = _error_class(errno)
        return OSError.__new__(cls, errno, message, *_named(filename))  # type: ignore[call-arg]


class Timeout(_Reported, TimeoutError):
    """The lock was still held by someone else when the timeout ran out
    (errno :data:`errno.ETIMEDOUT`).

    Also the base of :exc:`Busy`, so that ``except Timeout`` catches a
    failed try too, as with filelock.
    """

    def __init__(self, message: str, filename: str | None = None) -> None:
        super().__init__(_errno.ETIMEDOUT, message, filename)

    @property
    def lock_file(self) -> str | None:
        """The lock file's path, as filelock's :exc:`Timeout` has it."""
        path: str | None = self.filename
        return path


class Busy(Timeout, BlockingIOError):
    """The lock is held by someone else and the call was not to wait: a
    try (``blocking=False``, or a zero timeout).  errno is
    :data:`errno.EWOULDBLOCK`."""

    def __init__(self, message: str, filename: str | None = None) -> None:
        _Reported.__init__(self, _errno.EWOULDBLOCK, message, filename)


def _named(filename: str | None) -> tuple[str, ...]:
    """OSError's optional filename argument."""
    return () if filename is None else (filename,)


# CacheLockError combined with the built-in subclass of an errno, made on
# first use: CacheLockError for ENOTDIR is also a NotADirectoryError.
_combined: dict[type, type] = {}


def _error_class(errno: int) -> type[CacheLockError]:
    builtin = type(OSError(errno, ""))
    if builtin is OSError:
        return CacheLockError
    cls = _combined.get(builtin)
    if cls is None:
        cls = type(CacheLockError.__name__, (CacheLockError, builtin),
                   {"__module__": __name__, "__doc__": CacheLockError.__doc__,
                    "__qualname__": CacheLockError.__qualname__})
        _combined[builtin] = cls
    return cls


def _base_of(cls: type) -> str:
    for base in (Busy, Timeout, CacheLockError):
        if issubclass(cls, base):
            return base.__name__
    return CacheLockError.__name__


def _restore(base: str, errno: int, message: str, filename: str | None) -> OSError:
    """Unpickle an exception of this module."""
    if base == "Busy":
        return Busy(message, filename)
    if base == "Timeout":
        return Timeout(message, filename)
    return _error_class(errno)(errno, message, filename)


def make(code: int, message: str, filename: str | None = None) -> OSError:
    """The exception for a negative code of the library and its message."""
    errno = -code if code < 0 else _errno.EINVAL
    if not message:
        message = (_lib.cachelock_strerror(code) or b"").decode("utf-8", "replace")
    if errno == _errno.EWOULDBLOCK:
        return Busy(message, filename)
    if errno == _errno.ETIMEDOUT:
        return Timeout(message, filename)
    return _error_class(errno)(errno, message, filename)


def errmsg() -> str:
    """The library's message about the last failure in this thread.  Must be
    read right after the failing call, on the same thread."""
    return (_lib.cachelock_errmsg() or b"").decode("utf-8", "replace")


def last(code: int, filename: str | None = None) -> OSError:
    """The exception for the last failure in this thread, which returned
    ``code``."""
    return make(code, errmsg(), filename)


def last_for(code: int, source: bytes, flags: int,
             filename: str | None = None) -> Exception:
    """As :func:`last`, but a :exc:`ValueError` when the library refused
    the source name itself."""
    message = errmsg()
    if code in (-_errno.EINVAL, -_errno.ENAMETOOLONG):
        # (This check overwrites the thread's message, read above.)
        if _lib.cachelock_check_name_ex(source, flags & _library.CACHELOCK_F_ANYNAME) < 0:
            return ValueError(message)
    return make(code, message, filename)


def shown(data: bytes) -> str:
    """Bytes as the library's messages show them: UTF-8 as is, control
    characters and bytes that are not UTF-8 as ``\\xNN``."""
    out = []
    text = data.decode("utf-8", "surrogateescape")
    for ch in text:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(ch)
    return "".join(out)
