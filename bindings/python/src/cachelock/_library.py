"""Finding and loading libcachelock, and declaring the functions we call.

The C API is declared here by hand from ``include/cachelock.h``; every name
keeps its C spelling, so the header is the manual for it.  Functions are
called through :class:`ctypes.CDLL`, which releases the GIL for the length
of each call: a thread blocked in ``cachelock_acquire_ex()`` lets the other
threads run.

The library is looked for, in this order, and the first one that loads is
used:

1. the file named by the environment variable ``CACHELOCK_LIBRARY`` (and
   nothing else when it is set);
2. ``libcachelock.so.0`` next to this package;
3. the ``lib`` directories of the prefix the package is installed in (and
   of ``sys.prefix``), where ``make install`` puts the library;
4. ``libcachelock.so.0`` through the dynamic loader's own search
   (``LD_LIBRARY_PATH``, ``ld.so.cache``), then
   :func:`ctypes.util.find_library`.

When none loads, importing the package fails with an :exc:`ImportError`
that lists every path tried and why each failed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import sysconfig
from ctypes import (POINTER, c_char, c_char_p, c_int, c_long, c_size_t,
                    c_uint, c_void_p)

SONAME = "libcachelock.so.0"

# cachelock_mode_t
CACHELOCK_EXCLUSIVE = 0
CACHELOCK_SHARED = 1

CACHELOCK_OPTIONS_VERSION = 1
CACHELOCK_F_NOCREATE = 0x1
CACHELOCK_F_UNOWNED = 0x2
CACHELOCK_F_ANYNAME = 0x4
CACHELOCK_F_FAIR = 0x10

# cachelock_prune_status_t
CACHELOCK_PRUNE_REMOVED = 0
CACHELOCK_PRUNE_BUSY = 1
CACHELOCK_PRUNE_RECENT = 2
CACHELOCK_PRUNE_FAILED = 3
CACHELOCK_PRUNE_DRY_RUN = 0x1

#: The largest timeout the library takes, in milliseconds (LONG_MAX).
LONG_MAX = (1 << (8 * ctypes.sizeof(c_long) - 1)) - 1


class cachelock_options_t(ctypes.Structure):  # noqa: N801 (the C name)
    """``cachelock_options_t``; always built with every field set."""

    _fields_ = [
        ("version", c_int),
        ("mode", c_int),            # an enum: int in the C ABI
        ("timeout_ms", c_long),
        ("flags", c_uint),
    ]


class cachelock_holder_t(ctypes.Structure):  # noqa: N801 (the C name)
    """``cachelock_holder_t``."""

    _fields_ = [
        ("pid", c_int),
        ("mode", c_int),
        ("waiting", c_int),
        ("command", c_char * 256),
    ]


#: ``cachelock_prune_fn``: (source, status, err, ctx).
cachelock_prune_fn = ctypes.CFUNCTYPE(None, c_char_p, c_int, c_int, c_void_p)

# Handles (cachelock_t *, cachelock_wait_t *) travel as plain integers
# (c_void_p values): the library treats a lock handle as a token, and
# Python never dereferences either.
_PROTOTYPES = {
    "cachelock_acquire_ex": (c_int, [c_char_p, c_char_p, POINTER(cachelock_options_t),
                                     POINTER(c_void_p)]),
    "cachelock_release": (None, [c_void_p]),
    "cachelock_disown": (c_int, [c_void_p]),
    "cachelock_close_idle": (c_int, []),
    "cachelock_set_fair_policy": (c_int, [c_char_p, c_int]),
    "cachelock_fair_policy": (c_int, [c_char_p]),
    "cachelock_wait_start": (c_int, [c_char_p, c_char_p, POINTER(cachelock_options_t),
                                     POINTER(c_void_p)]),
    "cachelock_wait_step": (c_int, [c_void_p, POINTER(c_void_p)]),
    "cachelock_wait_fd": (c_int, [c_void_p]),
    "cachelock_wait_timeout": (c_int, [c_void_p]),
    "cachelock_wait_free": (None, [c_void_p]),
    "cachelock_check_name_ex": (c_int, [c_char_p, c_uint]),
    "cachelock_path_ex": (c_int, [c_char_p, c_char_p, c_uint, c_char_p, c_size_t]),
    "cachelock_strerror": (c_char_p, [c_int]),
    "cachelock_errmsg": (c_char_p, []),
    "cachelock_version": (c_char_p, []),
    "cachelock_prune": (c_int, [c_char_p, c_long, c_uint, cachelock_prune_fn, c_void_p]),
    "cachelock_holders": (c_int, [c_char_p, c_char_p, POINTER(POINTER(cachelock_holder_t)),
                                  POINTER(c_size_t)]),
    "cachelock_sources": (c_int, [c_char_p, POINTER(POINTER(c_char_p)), POINTER(c_size_t)]),
    "cachelock_sources_free": (None, [POINTER(c_char_p), c_size_t]),
}


def _installed_prefixes(package_dir: str) -> list[str]:
    """The prefixes whose ``lib`` directories may hold the library: the one
    this package is installed in (``{prefix}/lib/pythonX.Y/site-packages``,
    or Debian's ``dist-packages``), then ``sys.prefix``."""
    prefixes = []
    parts = package_dir.split(os.sep)
    for i in range(len(parts) - 1, 2, -1):
        if parts[i] in ("site-packages", "dist-packages"):
            # {prefix}/{lib}/{pythonX.Y}/{site-packages}/cachelock
            prefixes.append(os.sep.join(parts[:i - 2]) or os.sep)
            break
    prefixes.append(sys.prefix)
    return prefixes


def candidates() -> list[str]:
    """Every file or name the library is looked for under, in order."""
    explicit = os.environ.get("CACHELOCK_LIBRARY")
    if explicit:
        return [explicit]
    here = os.path.dirname(os.path.abspath(__file__))
    paths = [os.path.join(here, SONAME)]
    multiarch = sysconfig.get_config_var("MULTIARCH")
    for prefix in _installed_prefixes(here):
        libdirs = ["lib", "lib64"]
        if multiarch:
            libdirs.append(os.path.join("lib", multiarch))
        paths.extend(os.path.join(prefix, d, SONAME) for d in libdirs)
    paths.append(SONAME)
    unique = []
    for path in paths:
        if path not in unique:
            unique.append(path)
    return unique


def load() -> tuple[ctypes.CDLL, str]:
    """Load the library and declare its functions; return it and the path
    it was loaded from.

    Raises :exc:`ImportError` naming every path tried when none loads.
    """
    explicit = bool(os.environ.get("CACHELOCK_LIBRARY"))
    paths = candidates()
    tried = []

    def attempt(path: str) -> ctypes.CDLL | None:
        try:
            lib = ctypes.CDLL(path)
            _declare(lib)
        except OSError as err:
            tried.append(f"  {path}: {err}")
        except AttributeError as err:
            tried.append(f"  {path}: too old for this package ({err})")
        else:
            return lib
        return None

    for path in paths:
        lib = attempt(path)
        if lib is not None:
            return lib, path
    if not explicit:
        # find_library() runs ldconfig or the compiler, which takes
        # milliseconds: only when everything else failed.
        found = ctypes.util.find_library("cachelock")
        if found is None:
            tried.append("  ctypes.util.find_library('cachelock'): not found")
        elif found not in paths:
            lib = attempt(found)
            if lib is not None:
                return lib, found
    how = ("CACHELOCK_LIBRARY names a file that does not load" if explicit else
           "set CACHELOCK_LIBRARY to the path of libcachelock.so.0, or install "
           "the library with make install")
    raise ImportError("cannot load the C library libcachelock ({}); tried:\n{}"
                      .format(how, "\n".join(tried)))


def _declare(lib: ctypes.CDLL) -> None:
    for name, (restype, argtypes) in _PROTOTYPES.items():
        func = getattr(lib, name)
        func.restype = restype
        func.argtypes = argtypes


lib, path = load()

# free(3), for what cachelock_holders() returns: the C library of the
# process, which is the one libcachelock allocates with.
_libc = ctypes.CDLL(None)
free = _libc.free
free.restype = None
free.argtypes = [c_void_p]
