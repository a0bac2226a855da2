"""CacheLock in one thread: filelock's behaviours that apply (context
managers, nesting, timeouts, tries, the default timeout, release on
exceptions and on deletion, the decorator), shared locks, the paths, and a
second object for the same source behaving like the C library."""

from __future__ import annotations

import errno
import gc
import math
import os
import pathlib
import pickle
import threading
import time
import unittest

from cachelock import Busy, CacheLock, CacheLockError, Timeout
from helpers import DEADLINE, CacheTest


class ContextManagerTest(CacheTest):

    def test_with_holds_and_releases(self) -> None:
        lock = CacheLock(self.cache, "registry")
        self.assertFalse(lock.locked)
        with lock as entered:
            self.assertIs(entered, lock)
            self.assertTrue(lock.locked)
            with self.assertRaises(Busy):
                CacheLock(self.cache, "registry").acquire(blocking=False)
        self.assertFalse(lock.locked)
        CacheLock(self.cache, "registry").acquire(blocking=False).lock.release()

    def test_nested_with_counts_up_and_releases_at_the_outermost_exit(self) -> None:
        lock = CacheLock(self.cache, "registry")
        other = CacheLock(self.cache, "registry")
        with lock:
            with lock as inner:
                self.assertIs(inner, lock)
                with lock:
                    self.assertTrue(lock.locked)
                self.assertTrue(lock.locked)
            self.assertTrue(lock.locked)
            self.assertRaises(Busy, other.acquire, blocking=False)
        self.assertFalse(lock.locked)
        with other.acquire(blocking=False):
            pass

    def test_acquire_returns_a_context_manager_that_releases_once(self) -> None:
        lock = CacheLock(self.cache, "registry")
        with lock.acquire() as first:
            self.assertIs(first, lock)
            with lock.acquire(timeout=1) as second:
                self.assertIs(second, lock)
            self.assertTrue(lock.locked)
        self.assertFalse(lock.locked)

    def test_forced_release_inside_with(self) -> None:
        lock = CacheLock(self.cache, "registry")
        with lock:
            lock.acquire()
            lock.acquire()
            lock.release(force=True)
            self.assertFalse(lock.locked)
            CacheLock(self.cache, "registry").acquire(blocking=False).lock.release()
        self.assertFalse(lock.locked)

    def test_exception_in_with_releases(self) -> None:
        lock = CacheLock(self.cache, "registry")
        with self.assertRaises(ZeroDivisionError):
            with lock:
                1 / 0
        self.assertFalse(lock.locked)
        with self.assertRaises(ZeroDivisionError):
            with lock.acquire():
                1 / 0
        self.assertFalse(lock.locked)

    def test_release_without_acquire_does_nothing(self) -> None:
        lock = CacheLock(self.cache, "registry")
        lock.release()
        lock.release(force=True)
        with lock:
            pass
        lock.release()
        self.assertFalse(lock.locked)

    def test_deleting_a_held_lock_releases_it(self) -> None:
        lock = CacheLock(self.cache, "registry")
        lock.acquire()
        lock.acquire()
        other = CacheLock(self.cache, "registry")
        self.assertRaises(Busy, other.acquire, blocking=False)
        del lock
        gc.collect()
        other.acquire(blocking=False)
        other.release()

    def test_decorator_holds_the_lock_while_the_function_runs(self) -> None:
        lock = CacheLock(self.cache, "registry")

        @lock
        def work(x: int) -> int:
            """Doubles."""
            self.assertTrue(lock.locked)
            return 2 * x

        self.assertEqual(work(21), 42)
        self.assertEqual(work.__doc__, "Doubles.")
        self.assertFalse(lock.locked)


class TimeoutTest(CacheTest):

    def test_timeout_raises_and_never_ends_early(self) -> None:
        holder = CacheLock(self.cache, "registry")
        holder.acquire()
        waiter = CacheLock(self.cache, "registry")
        for seconds in (0.001, 0.05, 0.2):
            start = time.monotonic()
            with self.assertRaises(Timeout) as caught:
                waiter.acquire(timeout=seconds)
            elapsed = time.monotonic() - start
            self.assertGreaterEqual(elapsed, seconds)
            self.assertLess(elapsed, seconds + DEADLINE)
            self.assertNotIsInstance(caught.exception, Busy)
            self.assertEqual(caught.exception.errno, errno.ETIMEDOUT)
            self.assertEqual(caught.exception.filename, waiter.path)
            self.assertIn(waiter.path, str(caught.exception))
            self.assertFalse(waiter.locked)
            self.assertTrue(holder.locked)
        holder.release()
        waiter.acquire(timeout=0.05)
        waiter.release()

    def test_try_once_with_blocking_false_or_zero_timeout(self) -> None:
        holder = CacheLock(self.cache, "registry")
        holder.acquire()
        waiter = CacheLock(self.cache, "registry", timeout=5)
        # blocking=False wins over any timeout, as with filelock.
        for kwargs in ({"blocking": False}, {"timeout": 0}, {"timeout": 5, "blocking": False},
                       {"timeout": -1, "blocking": False}):
            start = time.monotonic()
            with self.assertRaises(Busy) as caught:
                waiter.acquire(**kwargs)  # type: ignore[arg-type]
            self.assertLess(time.monotonic() - start, 1.0)
            self.assertIsInstance(caught.exception, Timeout)        # filelock's except
            self.assertIsInstance(caught.exception, BlockingIOError)
            self.assertEqual(caught.exception.errno, errno.EWOULDBLOCK)
            self.assertFalse(waiter.locked)
        holder.release()
        with waiter.acquire(blocking=False):
            self.assertTrue(waiter.locked)

    def test_default_timeout_of_the_object(self) -> None:
        holder = CacheLock(self.cache, "registry")
        holder.acquire()
        waiter = CacheLock(self.cache, "registry", timeout=0.05)
        self.assertEqual(waiter.timeout, 0.05)
        self.assertRaises(Timeout, waiter.acquire)
        with self.assertRaises(Timeout):
            with waiter:
                pass
        waiter.timeout = 0
        self.assertEqual(waiter.timeout, 0)
        self.assertRaises(Busy, waiter.acquire)
        waiter.timeout = "0.01"  # type: ignore[assignment]  # filelock takes strings
        self.assertRaises(Timeout, waiter.acquire)
        with self.assertRaises(ValueError):
            waiter.timeout = math.nan
        holder.release()
        with waiter:
            pass

    def test_none_negative_and_infinite_timeouts_wait_until_released(self) -> None:
        for timeout in (None, -1, -0.5, math.inf):
            # The holder is another thread: a blocking acquire of a lock that
            # this thread holds would wait for itself (EDEADLK, below).
            got, released = threading.Event(), threading.Event()

            def hold() -> None:
                with CacheLock(self.cache, "registry"):
                    got.set()
                    time.sleep(0.05)
                    released.set()

            thread = threading.Thread(target=hold)
            thread.start()
            self.assertTrue(got.wait(DEADLINE))
            waiter = CacheLock(self.cache, "registry")
            waiter.acquire(timeout=timeout)
            self.assertTrue(released.is_set(), f"timeout={timeout} did not wait")
            waiter.release()
            thread.join(DEADLINE)

    def test_nan_timeout_is_refused(self) -> None:
        lock = CacheLock(self.cache, "registry")
        self.assertRaises(ValueError, lock.acquire, timeout=math.nan)
        self.assertRaises(ValueError, CacheLock, self.cache, "registry", timeout=math.nan)
        self.assertFalse(lock.locked)

    def test_huge_timeouts_are_accepted(self) -> None:
        lock = CacheLock(self.cache, "registry")
        for timeout in (1e30, 2.0 ** 62):
            with lock.acquire(timeout=timeout):
                pass


class SharedTest(CacheTest):

    def test_shared_locks_coexist_and_exclude_exclusive(self) -> None:
        readers = [CacheLock(self.cache, "index", shared=True) for _ in range(3)]
        for reader in readers:
            reader.acquire(blocking=False)
        self.assertTrue(readers[0].shared)
        writer = CacheLock(self.cache, "index")
        self.assertRaises(Busy, writer.acquire, blocking=False)
        self.assertRaises(Timeout, writer.acquire, timeout=0.02)
        for reader in readers:
            reader.release()
        with writer.acquire(blocking=False):
            self.assertRaises(Busy, readers[0].acquire, blocking=False)

    def test_different_sources_never_block_each_other(self) -> None:
        with CacheLock(self.cache, "a"), CacheLock(self.cache, "b"):
            with CacheLock(self.cache, "c").acquire(blocking=False):
                pass


class SecondObjectTest(CacheTest):
    """A second object for the same source in the same thread is a second
    holder, as in the C library."""

    def test_try_reports_busy(self) -> None:
        with CacheLock(self.cache, "registry"):
            self.assertRaises(Busy, CacheLock(self.cache, "registry").acquire, blocking=False)

    def test_blocking_acquire_fails_instead_of_waiting_for_itself(self) -> None:
        with CacheLock(self.cache, "registry"):
            second = CacheLock(self.cache, "registry")
            start = time.monotonic()
            with self.assertRaises(CacheLockError) as caught:
                second.acquire()
            self.assertLess(time.monotonic() - start, 1.0)
            self.assertEqual(caught.exception.errno, errno.EDEADLK)
            self.assertIn("would deadlock", str(caught.exception))
            self.assertFalse(second.locked)
            shared = CacheLock(self.cache, "registry", shared=True)
            with self.assertRaises(CacheLockError):
                shared.acquire()

    def test_timed_acquire_waits_and_times_out(self) -> None:
        with CacheLock(self.cache, "registry"):
            self.assertRaises(Timeout, CacheLock(self.cache, "registry").acquire, timeout=0.02)

    def test_shared_twice_in_one_thread_is_allowed(self) -> None:
        with CacheLock(self.cache, "index", shared=True):
            with CacheLock(self.cache, "index", shared=True):
                pass


class PathTest(CacheTest):

    def test_path_is_cache_dir_dot_locks_source_dot_lock(self) -> None:
        lock = CacheLock("/home/user/.agpm/cache", "community")
        self.assertEqual(lock.path, "/home/user/.agpm/cache/.locks/community.lock")
        self.assertEqual(lock.source, "community")
        self.assertEqual(lock.cache_dir, "/home/user/.agpm/cache")
        self.assertFalse(os.path.exists("/home/user/.agpm/cache/.locks"))

    def test_cache_dir_may_be_str_bytes_or_path_like(self) -> None:
        dirs: list[str | bytes | pathlib.Path] = [self.cache, os.fsencode(self.cache),
                                                  pathlib.Path(self.cache)]
        for cache_dir in dirs:
            with CacheLock(cache_dir, "registry") as lock:
                self.assertEqual(lock.path, self.lock_file("registry"))

    def test_first_acquire_creates_the_directories_and_the_file(self) -> None:
        cache = os.path.join(self.cache, "deep", "er")
        with CacheLock(cache, "registry"):
            self.assertTrue(os.path.isfile(os.path.join(cache, ".locks", "registry.lock")))
        self.assertTrue(os.path.isfile(os.path.join(cache, ".locks", "registry.lock")))

    def test_lock_file_is_never_truncated(self) -> None:
        lock = CacheLock(self.cache, "registry")
        with lock:
            pass
        with open(lock.path, "w") as f:
            f.write("someone's notes")
        with lock:
            pass
        with open(lock.path) as f:
            self.assertEqual(f.read(), "someone's notes")

    def test_any_name_accepts_other_tools_names(self) -> None:
        self.assertRaises(ValueError, CacheLock, self.cache, "tools:beta")
        with CacheLock(self.cache, "tools:beta", any_name=True) as lock:
            self.assertEqual(lock.path, self.lock_file("tools:beta"))

    def test_repr_says_path_mode_and_state(self) -> None:
        lock = CacheLock(self.cache, "index", shared=True)
        self.assertEqual(repr(lock), f"<CacheLock {lock.path!r} shared, unlocked>")
        with lock:
            self.assertIn("shared, locked", repr(lock))

    def test_pickled_lock_is_a_new_unlocked_lock(self) -> None:
        lock = CacheLock(self.cache, "index", shared=True, timeout=3, any_name=True)
        with lock:
            copy = pickle.loads(pickle.dumps(lock))
        self.assertIsNot(copy, lock)
        self.assertFalse(copy.locked)
        self.assertEqual((copy.path, copy.shared, copy.timeout), (lock.path, True, 3))


if __name__ == "__main__":
    unittest.main()
