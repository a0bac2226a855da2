"""A whole cache: holders(), sources(), prune() and close_idle(), returning
plain Python objects."""

from __future__ import annotations

import datetime
import os
import unittest

import cachelock
from cachelock import CacheLock, CacheLockError, Holder, PruneStatus
from helpers import CacheTest, Child, need_flock, open_descriptors, wait_until


class HoldersTest(CacheTest):

    def test_holders_and_blocked_waiters(self) -> None:
        flock = need_flock()
        lock = CacheLock(self.cache, "registry")
        lock.acquire()
        holders = cachelock.holders(self.cache, "registry")
        self.assertEqual(len(holders), 1)
        me = holders[0]
        self.assertIsInstance(me, Holder)
        self.assertEqual((me.pid, me.shared, me.waiting), (os.getpid(), False, False))
        self.assertIn("python", me.command)
        waiter = Child(self, [flock, "-s", lock.path, "true"])
        wait_until(lambda: len(cachelock.holders(self.cache, "registry")) == 2,
                   "flock(1) to wait")
        holders = cachelock.holders(self.cache, "registry")
        self.assertEqual(holders[0], me)
        self.assertEqual((holders[1].pid, holders[1].shared, holders[1].waiting),
                         (waiter.proc.pid, True, True))
        lock.release()
        self.assertEqual(waiter.wait(), 0)
        self.assertEqual(cachelock.holders(self.cache, "registry"), [])

    def test_no_lock_file_is_file_not_found(self) -> None:
        with self.assertRaises(FileNotFoundError) as caught:
            cachelock.holders(self.cache, "never")
        self.assertIsInstance(caught.exception, CacheLockError)
        self.assertIn("never", str(caught.exception))
        self.assertRaises(ValueError, cachelock.holders, self.cache, "a/b")
        self.assertFalse(os.path.exists(self.cache))


class SourcesTest(CacheTest):

    def test_sources_are_sorted_and_include_other_tools_names(self) -> None:
        self.assertEqual(cachelock.sources(self.cache), [])
        for name in ("zeta", "alpha", "Mid"):
            with CacheLock(self.cache, name):
                pass
        with CacheLock(self.cache, "tools:beta", any_name=True):
            pass
        with open(os.path.join(self.cache, ".locks", "not-a-lock.txt"), "w"):
            pass
        names = cachelock.sources(self.cache)
        self.assertEqual(names, ["Mid", "alpha", "tools:beta", "zeta"])
        # A listed name locks the same file again.
        for name in names:
            with CacheLock(self.cache, name, any_name=True) as lock:
                self.assertTrue(os.path.exists(lock.path))

    def test_names_that_are_not_utf8_round_trip(self) -> None:
        os.makedirs(os.path.join(self.cache, ".locks"))
        with open(os.path.join(os.fsencode(self.cache), b".locks", b"caf\xe9.lock"), "w"):
            pass
        [name] = cachelock.sources(self.cache)
        self.assertEqual(os.fsencode(name), b"caf\xe9")
        self.assertRaises(ValueError, CacheLock, self.cache, name)
        with CacheLock(self.cache, name, any_name=True) as lock:
            self.assertEqual(os.fsencode(lock.path),
                             os.path.join(os.fsencode(self.cache), b".locks", b"caf\xe9.lock"))

    def test_cache_that_is_a_file_is_an_error(self) -> None:
        os.makedirs(self.cache)
        with open(os.path.join(self.cache, ".locks"), "w"):
            pass
        self.assertRaises(NotADirectoryError, cachelock.sources, self.cache)


class PruneTest(CacheTest):

    def test_prune_removes_unheld_files_and_skips_busy_ones(self) -> None:
        for name in ("old", "in-use"):
            with CacheLock(self.cache, name):
                pass
        held = CacheLock(self.cache, "in-use")
        held.acquire()
        report = sorted(cachelock.prune(self.cache, dry_run=True), key=lambda p: p.source)
        self.assertEqual([(p.source, p.status) for p in report],
                         [("in-use", PruneStatus.BUSY), ("old", PruneStatus.REMOVED)])
        self.assertIsInstance(report[0].error, BlockingIOError)
        self.assertIsNone(report[1].error)
        self.assertTrue(os.path.exists(self.lock_file("old")))
        report = sorted(cachelock.prune(self.cache), key=lambda p: p.source)
        self.assertEqual([(p.source, p.status) for p in report],
                         [("in-use", PruneStatus.BUSY), ("old", PruneStatus.REMOVED)])
        self.assertFalse(os.path.exists(self.lock_file("old")))
        self.assertTrue(os.path.exists(self.lock_file("in-use")))
        self.assertRaises(cachelock.Busy, CacheLock(self.cache, "in-use").acquire,
                          blocking=False)
        held.release()

    def test_older_than_keeps_recent_files(self) -> None:
        with CacheLock(self.cache, "new"):
            pass
        ages: list[float | datetime.timedelta] = [3600, datetime.timedelta(hours=1)]
        for older_than in ages:
            report = cachelock.prune(self.cache, older_than=older_than)
            self.assertEqual([(p.source, p.status) for p in report],
                             [("new", PruneStatus.RECENT)])
        self.assertRaises(ValueError, cachelock.prune, self.cache, older_than=-1)
        self.assertEqual(cachelock.prune(self.cache, 0)[0].status, PruneStatus.REMOVED)

    def test_nothing_to_prune_in_a_missing_cache(self) -> None:
        self.assertEqual(cachelock.prune(os.path.join(self.dir, "none")), [])
        self.assertFalse(os.path.exists(os.path.join(self.dir, "none")))


class IdleTest(CacheTest):

    def test_close_idle_closes_what_the_library_keeps_open(self) -> None:
        cachelock.close_idle()
        before = open_descriptors()
        for name in ("a", "b", "c"):
            with CacheLock(self.cache, name):
                pass
        self.assertGreater(open_descriptors(), before)      # kept for the next acquire
        self.assertEqual(cachelock.close_idle(), 3)
        self.assertEqual(open_descriptors(), before)

    def test_versions_agree(self) -> None:
        self.assertEqual(cachelock.library_version(), cachelock.__version__)
        self.assertTrue(os.path.basename(cachelock.library_path()).startswith("libcachelock"))


if __name__ == "__main__":
    unittest.main()
