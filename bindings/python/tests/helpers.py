"""What the test modules share: scratch caches, child processes that report
their state on a pipe, descriptor and lock counting, and optional peers.

Multi-process tests synchronise on what a process prints, on
``/proc/locks`` (through :func:`cachelock.holders`) or on files, never on a
bare sleep, and every wait has a deadline.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from typing import Callable

#: Generous bound for anything a test waits for: it only matters when the
#: test fails (a hang becomes a failure instead of running into timeout(1)).
DEADLINE = 20.0

PYTHON = sys.executable


def required() -> bool:
    """CACHELOCK_REQUIRE_PYTHON=1 (CI): a missing optional peer fails the
    test instead of skipping it."""
    return os.environ.get("CACHELOCK_REQUIRE_PYTHON") == "1"


def need(condition: bool, reason: str) -> None:
    """Skip the calling test with *reason* unless *condition* holds."""
    if condition:
        return
    if required():
        raise AssertionError(f"{reason} (and CACHELOCK_REQUIRE_PYTHON=1)")
    raise unittest.SkipTest(reason)


def need_filelock() -> None:
    need(importlib.util.find_spec("filelock") is not None,
         "no filelock for this Python (apt-get install python3-filelock)")


def need_flock() -> str:
    path = shutil.which("flock")
    need(path is not None, "no flock(1) (apt-get install util-linux)")
    return path  # type: ignore[return-value]


class CacheTest(unittest.TestCase):
    """A test with a fresh scratch directory, ``self.dir``, removed after
    the test; ``self.cache`` is a cache directory in it (not yet
    created)."""

    def setUp(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="cachelock-py-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)
        self.cache = os.path.join(self.dir, "cache")

    def lock_file(self, source: str) -> str:
        return os.path.join(self.cache, ".locks", source + ".lock")


def wait_until(condition: Callable[[], object], what: str,
               timeout: float = DEADLINE) -> None:
    """Poll *condition* (every millisecond) until it is true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.001)


class Child:
    """A child process (Python code or a command) whose stdout is read line
    by line with a deadline, and that is killed when the test ends."""

    def __init__(self, test: unittest.TestCase, args: list[str],
                 env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True, bufsize=1)
        self._buffer = ""
        test.addCleanup(self.close)

    @classmethod
    def python(cls, test: unittest.TestCase, code: str, *args: str) -> Child:
        """Run *code* (dedented) in a new interpreter with the same
        ``sys.path``, so that it imports this cachelock."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        return cls(test, [PYTHON, "-c", textwrap.dedent(code), *args], env=env)

    def readline(self, timeout: float = DEADLINE) -> str:
        """The next line of the child's stdout, without its newline; ""
        at end of file."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while "\n" not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise AssertionError(f"timed out after {timeout} s reading from the child")
                data = os.read(fd, 4096)
                if not data:
                    line, self._buffer = self._buffer, ""
                    return line
                self._buffer += data.decode()
        line, _, self._buffer = self._buffer.partition("\n")
        return line

    def expect(self, want: str, timeout: float = DEADLINE) -> str:
        """Read a line and check that it starts with *want*."""
        line = self.readline(timeout)
        if not line.startswith(want):
            raise AssertionError(f"expected {want!r} from the child, got {line!r}")
        return line

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def wait(self, timeout: float = DEADLINE) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


def open_descriptors() -> int:
    """How many descriptors this process has open."""
    return len(os.listdir("/proc/self/fd"))


def our_locks_on(path: str) -> list[str]:
    """The locks this process holds on the file at *path*, from the
    ``lock:`` lines of /proc/self/fdinfo (the library's waiter marks are
    OFD locks held through a waiter's descriptor)."""
    ino = os.stat(path).st_ino
    needle = f":{ino} "
    locks: list[str] = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                info = f.read()
        except OSError:
            continue  # the descriptor of the listing itself, gone
        locks.extend(f"fd {fd}: {line}" for line in info.splitlines()
                     if line.startswith("lock:") and needle in line)
    return locks


def waiter_marked(path: str) -> bool:
    """Whether a timed or asynchronous wait of this process is waiting for
    the lock file at *path*: such a wait marks the file with an OFD read
    lock (see KEPT DESCRIPTORS in cachelock.h), a blocking one does not."""
    return any("OFDLCK" in lock for lock in our_locks_on(path))


def increment(path: str) -> None:
    """Read the counter in *path*, let others run, write it back plus one:
    two processes or threads doing this at once lose an update."""
    try:
        with open(path) as f:
            value = int(f.read() or 0)
    except FileNotFoundError:
        value = 0
    time.sleep(0)
    with open(path + ".new", "w") as f:
        f.write(str(value + 1))
    os.replace(path + ".new", path)


def read_counter(path: str) -> int:
    with open(path) as f:
        return int(f.read())


class Inside:
    """Who is in the critical section: entering creates a marker file with
    O_EXCL, which fails if someone else is already in."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        os.close(fd)

    def __exit__(self, *exc: object) -> None:
        os.unlink(self.path)
