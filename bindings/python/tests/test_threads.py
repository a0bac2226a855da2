"""Threads: no lost update under the lock, whether each thread has its own
object or all share one; re-entrancy per thread; waits release the GIL;
signals end a wait (KeyboardInterrupt) or let it go on."""

from __future__ import annotations

import os
import signal
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import cachelock
from cachelock import Busy, CacheLock
from helpers import (DEADLINE, CacheTest, Inside, increment, read_counter, wait_until,
                     waiter_marked)

THREADS = 8
INCREMENTS = 100


class CounterTest(CacheTest):

    def run_threads(self, work: Callable[[], None]) -> None:
        with ThreadPoolExecutor(THREADS) as pool:
            futures = [pool.submit(work) for _ in range(THREADS)]
            for future in futures:
                future.result(timeout=DEADLINE * 3)

    def test_threads_with_their_own_objects_lose_no_update(self) -> None:
        counter = os.path.join(self.dir, "counter")
        inside = Inside(os.path.join(self.dir, "inside"))

        def work() -> None:
            lock = CacheLock(self.cache, "counter")
            for _ in range(INCREMENTS):
                with lock, inside:
                    increment(counter)

        self.run_threads(work)
        self.assertEqual(read_counter(counter), THREADS * INCREMENTS)

    def test_threads_sharing_one_object_lose_no_update(self) -> None:
        counter = os.path.join(self.dir, "counter")
        inside = Inside(os.path.join(self.dir, "inside"))
        lock = CacheLock(self.cache, "counter")

        def work() -> None:
            for _ in range(INCREMENTS):
                with lock:
                    self.assertTrue(lock.locked)
                    with lock, inside:      # re-entrant in each thread
                        increment(counter)
                    self.assertTrue(lock.locked)

        self.run_threads(work)
        self.assertEqual(read_counter(counter), THREADS * INCREMENTS)
        self.assertFalse(lock.locked)

    def test_readers_share_and_writers_exclude_them(self) -> None:
        counter = os.path.join(self.dir, "counter")
        increment(counter)
        torn = []

        def writer() -> None:
            lock = CacheLock(self.cache, "data")
            for _ in range(INCREMENTS // 2):
                with lock:
                    with open(counter, "w") as f:     # empty for a moment
                        time.sleep(0)
                        f.write("1")

        def reader() -> None:
            lock = CacheLock(self.cache, "data", shared=True)
            for _ in range(INCREMENTS):
                with lock:
                    with open(counter) as f:
                        if f.read() != "1":
                            torn.append(1)

        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(writer) for _ in range(2)] + \
                      [pool.submit(reader) for _ in range(4)]
            for future in futures:
                future.result(timeout=DEADLINE * 3)
        self.assertEqual(torn, [])


class PerThreadTest(CacheTest):

    def test_another_thread_using_the_same_object_waits(self) -> None:
        lock = CacheLock(self.cache, "registry")
        lock.acquire()
        events = []

        def other() -> None:
            self.assertFalse(lock.locked)           # not this thread's hold
            self.assertRaises(Busy, lock.acquire, blocking=False)
            lock.release()                          # not held here: nothing
            with lock:
                events.append("other got it")

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.05)
        events.append("main releases")
        self.assertTrue(lock.locked)
        lock.release()
        thread.join(DEADLINE)
        self.assertEqual(events, ["main releases", "other got it"])

    def test_hold_of_a_thread_that_exited_passes_to_the_next_user(self) -> None:
        lock = CacheLock(self.cache, "registry")
        thread = threading.Thread(target=lock.acquire)
        thread.start()
        thread.join(DEADLINE)
        self.assertTrue(lock.locked)    # taken over: nobody else can release it
        self.assertRaises(Busy, CacheLock(self.cache, "registry").acquire, blocking=False)
        lock.release()
        self.assertFalse(lock.locked)
        # It was disowned for this thread: a blocking acquire does not
        # report a deadlock with the exited thread's lock.
        with CacheLock(self.cache, "registry").acquire(timeout=1):
            pass

    def test_hold_of_a_finished_task_passes_to_another_thread_disowned(self) -> None:
        import asyncio
        lock = CacheLock(self.cache, "registry")
        acquired, check, result = threading.Event(), threading.Event(), []

        def loop_thread() -> None:
            asyncio.run(lock.acquire_async())       # the task ends holding it
            acquired.set()
            check.wait(DEADLINE)
            # This thread took the lock, but it was handed over: its
            # blocking acquire waits for the new owner instead of
            # reporting a deadlock.
            try:
                with CacheLock(self.cache, "registry").acquire(timeout=-1):
                    result.append("waited")
            except Exception as exc:
                result.append(repr(exc))

        thread = threading.Thread(target=loop_thread)
        thread.start()
        self.assertTrue(acquired.wait(DEADLINE))
        self.assertTrue(lock.locked)                # taken over by this thread
        check.set()
        wait_until(lambda: result or any(h.waiting for h in
                                         cachelock.holders(self.cache, "registry")),
                   "the other thread to wait")
        lock.release()
        thread.join(DEADLINE)
        self.assertEqual(result, ["waited"])

    def test_waits_release_the_gil(self) -> None:
        for timeout in (None, DEADLINE):
            holder = CacheLock(self.cache, "registry")
            holder.acquire()
            self.addCleanup(holder.release)

            def wait(timeout: float | None = timeout) -> None:
                with CacheLock(self.cache, "registry").acquire(timeout=timeout):
                    pass

            thread = threading.Thread(target=wait)
            thread.start()
            if timeout is None:
                wait_until(lambda: any(h.waiting for h in
                                       cachelock.holders(self.cache, "registry")),
                           "the thread to block in flock(2)")
            else:
                wait_until(lambda: waiter_marked(holder.path), "the thread to wait")
            # The other thread waits in the library; this one keeps running.
            start, spins = time.monotonic(), 0
            while time.monotonic() - start < 0.1:
                spins += 1
            self.assertGreater(spins, 1000)
            self.assertTrue(thread.is_alive())
            holder.release()
            thread.join(DEADLINE)
            self.assertFalse(thread.is_alive())


class SignalTest(CacheTest):

    def hold_in_thread(self) -> threading.Event:
        """Hold the lock in another thread until the returned event is set."""
        got, done = threading.Event(), threading.Event()

        def hold() -> None:
            with CacheLock(self.cache, "registry"):
                got.set()
                done.wait(DEADLINE)

        thread = threading.Thread(target=hold)
        thread.start()
        self.addCleanup(thread.join, DEADLINE)
        self.addCleanup(done.set)
        self.assertTrue(got.wait(DEADLINE))
        return done

    def blocked_waiter(self) -> bool:
        return any(h.waiting and h.pid == os.getpid()
                   for h in cachelock.holders(self.cache, "registry"))

    def test_ctrl_c_ends_a_blocking_wait(self) -> None:
        self.hold_in_thread()
        main = threading.get_ident()

        def interrupt() -> None:
            wait_until(self.blocked_waiter, "the main thread to block in flock(2)")
            signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=interrupt).start()
        lock = CacheLock(self.cache, "registry")
        with self.assertRaises(KeyboardInterrupt):
            lock.acquire()
        self.assertFalse(lock.locked)

    def test_ctrl_c_ends_a_timed_wait(self) -> None:
        self.hold_in_thread()
        main = threading.get_ident()
        lock = CacheLock(self.cache, "registry")

        def interrupt() -> None:
            wait_until(lambda: waiter_marked(lock.path), "the main thread to wait")
            signal.pthread_kill(main, signal.SIGINT)

        threading.Thread(target=interrupt).start()
        start = time.monotonic()
        with self.assertRaises(KeyboardInterrupt):
            lock.acquire(timeout=DEADLINE)
        self.assertLess(time.monotonic() - start, DEADLINE / 2)
        self.assertFalse(lock.locked)

    def test_a_handler_that_returns_lets_the_wait_go_on(self) -> None:
        caught = []
        previous = signal.signal(signal.SIGUSR1, lambda *_: caught.append(1))
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        main = threading.get_ident()
        for timeout in (None, DEADLINE):
            caught.clear()
            release = self.hold_in_thread()

            def waiting(blocking: bool = timeout is None) -> bool:
                if blocking:
                    return self.blocked_waiter()
                return waiter_marked(os.path.join(self.cache, ".locks", "registry.lock"))

            def poke() -> None:
                wait_until(waiting, "the main thread to wait")
                signal.pthread_kill(main, signal.SIGUSR1)
                wait_until(lambda: caught, "the handler to run")
                wait_until(waiting, "the main thread to wait again")
                release.set()

            threading.Thread(target=poke).start()
            with CacheLock(self.cache, "registry").acquire(timeout=timeout):
                self.assertEqual(caught, [1])


if __name__ == "__main__":
    unittest.main()
