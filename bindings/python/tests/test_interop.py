"""Interoperability on one lock file, both ways: Python's filelock (which
truncates the file when it opens it: harmless, lock files are empty) and
flock(1), in this process and in others."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import unittest

from cachelock import Busy, CacheLock
from helpers import DEADLINE, CacheTest, Child, need_filelock, need_flock


class FileLockTest(CacheTest):

    def setUp(self) -> None:
        super().setUp()
        need_filelock()
        # filelock creates the file but not the directories.
        os.makedirs(os.path.join(self.cache, ".locks"))

    def test_filelock_holder_excludes_cachelock(self) -> None:
        import filelock
        theirs = filelock.FileLock(self.lock_file("registry"))
        ours = CacheLock(self.cache, "registry")
        with theirs:
            self.assertRaises(Busy, ours.acquire, blocking=False)
            self.assertRaises(Busy, CacheLock(self.cache, "registry", shared=True).acquire,
                              blocking=False)
        with ours.acquire(blocking=False):
            pass

    def test_cachelock_holder_excludes_filelock(self) -> None:
        import filelock
        theirs = filelock.FileLock(self.lock_file("registry"))
        with CacheLock(self.cache, "registry"):
            self.assertRaises(filelock.Timeout, theirs.acquire, timeout=0)
            self.assertRaises(filelock.Timeout, theirs.acquire, timeout=0.06)
        with CacheLock(self.cache, "registry", shared=True):
            self.assertRaises(filelock.Timeout, theirs.acquire, timeout=0)
        with theirs.acquire(timeout=0):
            pass

    def test_filelock_truncating_the_file_does_not_break_a_held_lock(self) -> None:
        import filelock
        with CacheLock(self.cache, "registry") as ours:
            # filelock opens with O_TRUNC before it tries the lock.
            for _ in range(3):
                self.assertRaises(filelock.Timeout,
                                  filelock.FileLock(ours.path).acquire, timeout=0)
            self.assertRaises(Busy, CacheLock(self.cache, "registry").acquire, blocking=False)
            self.assertEqual(os.path.getsize(ours.path), 0)

    def test_waiter_is_woken_when_a_filelock_process_releases(self) -> None:
        child = Child.python(self, """
            import sys, time
            from filelock import FileLock
            lock = FileLock(sys.argv[1])
            lock.acquire()
            print("held", flush=True)
            sys.stdin.readline()
            print(time.monotonic(), flush=True)
            lock.release()                  # unlock and close
            sys.stdin.readline()
            """, self.lock_file("registry"))
        child.expect("held")
        ours = CacheLock(self.cache, "registry")
        self.assertRaises(Busy, ours.acquire, blocking=False)
        threading.Timer(0.05, child.send, ("release",)).start()
        with ours.acquire(timeout=DEADLINE):
            got = time.monotonic()
        released = float(child.readline())
        child.send("exit")
        self.assertEqual(child.wait(), 0)
        self.assertLess(got - released, 1.0)    # a sanity bound only

    def test_filelock_process_waits_for_cachelock(self) -> None:
        ours = CacheLock(self.cache, "registry")
        ours.acquire()
        child = Child.python(self, """
            import sys
            from filelock import FileLock, Timeout
            lock = FileLock(sys.argv[1])
            try:
                lock.acquire(timeout=0)
            except Timeout:
                print("busy", flush=True)
            lock.acquire(timeout=20)
            print("got it", flush=True)
            """, self.lock_file("registry"))
        child.expect("busy")
        ours.release()
        child.expect("got it")
        self.assertEqual(child.wait(), 0)


class FlockCommandTest(CacheTest):

    def setUp(self) -> None:
        super().setUp()
        self.flock = need_flock()

    def flock_try(self, *options: str) -> int:
        return subprocess.run([self.flock, "-n", *options, self.lock_file("registry"), "true"],
                              timeout=DEADLINE).returncode

    def test_cachelock_holder_excludes_flock(self) -> None:
        with CacheLock(self.cache, "registry"):
            self.assertEqual(self.flock_try(), 1)
            self.assertEqual(self.flock_try("-s"), 1)
        with CacheLock(self.cache, "registry", shared=True):
            self.assertEqual(self.flock_try(), 1)
            self.assertEqual(self.flock_try("-s"), 0)
        self.assertEqual(self.flock_try(), 0)

    def test_flock_holder_excludes_cachelock(self) -> None:
        with CacheLock(self.cache, "registry"):
            pass
        child = Child(self, [self.flock, self.lock_file("registry"), "-c",
                             "echo held; read line"])
        child.expect("held")
        ours = CacheLock(self.cache, "registry")
        self.assertRaises(Busy, ours.acquire, blocking=False)
        self.assertRaises(Busy, CacheLock(self.cache, "registry", shared=True).acquire,
                          blocking=False)
        child.send("done")
        with ours.acquire(timeout=DEADLINE):
            pass
        self.assertEqual(child.wait(), 0)

    def test_flock_shared_holder_shares_with_cachelock_readers(self) -> None:
        with CacheLock(self.cache, "registry"):
            pass
        child = Child(self, [self.flock, "-s", self.lock_file("registry"), "-c",
                             "echo held; read line"])
        child.expect("held")
        with CacheLock(self.cache, "registry", shared=True).acquire(blocking=False):
            self.assertRaises(Busy, CacheLock(self.cache, "registry").acquire,
                              blocking=False)
        child.send("done")
        self.assertEqual(child.wait(), 0)


if __name__ == "__main__":
    unittest.main()
