"""Fair mode from Python: CacheLock(..., fair=True) grants the lock in the
order the waiters joined the queue, across processes; asyncio waits queue
too and give their place up when cancelled; the cache's policy
(set_fair_policy, fair_policy) makes plain objects queue; pickling keeps
the mode."""

from __future__ import annotations

import asyncio
import os
import pickle
import sys
import unittest

import cachelock
from cachelock import CacheLock
from helpers import DEADLINE, CacheTest, Child, need, wait_until

# The queue's places: an OFD write lock at byte 2^62 + ticket of the lock
# file for every waiter (exclusive ones hold a second one, 2^60 further).
QUEUE_BASE = 1 << 62
QUEUE_END = QUEUE_BASE + (1 << 60)


def places(lock_file: str) -> int:
    """How many processes hold a place in the fair queue of *lock_file*,
    from the kernel's lock table."""
    ino = os.stat(lock_file).st_ino
    count = 0
    with open("/proc/locks", encoding="ascii") as table:
        for line in table:
            fields = line.split()
            if "->" in fields:
                continue
            # "N: OFDLCK ADVISORY WRITE -1 MAJ:MIN:INO START END"
            if (len(fields) >= 8 and fields[1] == "OFDLCK" and fields[3] == "WRITE"
                    and fields[5].rsplit(":", 1)[-1] == str(ino)
                    and QUEUE_BASE <= int(fields[6]) < QUEUE_END):
                count += 1
    return count


HOLDER = """
    import sys
    from cachelock import CacheLock
    lock = CacheLock(sys.argv[1], "registry", fair=sys.argv[2] == "fair")
    lock.acquire()
    print("held", flush=True)
    sys.stdin.readline()
    lock.release()
    print("released", flush=True)
"""

WAITER = """
    import sys
    from cachelock import CacheLock
    lock = CacheLock(sys.argv[1], "registry", fair=sys.argv[2] == "fair")
    with lock:
        with open(sys.argv[3], "a") as log:
            log.write(sys.argv[4] + "\\n")
    print("done", flush=True)
"""


class FairTest(CacheTest):
    def setUp(self) -> None:
        super().setUp()
        need(sys.platform.startswith("linux") and os.path.exists("/proc/locks"),
             "fair mode needs Linux's OFD locks, and the test reads /proc/locks")
        probe = CacheLock(self.cache, "probe", fair=True)
        try:
            probe.acquire(timeout=0)
        except OSError as err:
            need(False, f"fair mode is refused here: {err}")
        probe.release()

    def hold(self, mode: str = "fair") -> Child:
        holder = Child.python(self, HOLDER, self.cache, mode)
        holder.expect("held")
        return holder

    def queue(self, who: str, log: str, mode: str = "fair") -> Child:
        """A waiter that appends *who* to *log* under the lock; returns once
        it holds a place in the queue."""
        before = places(self.lock_file("registry"))
        waiter = Child.python(self, WAITER, self.cache, mode, log, who)
        wait_until(lambda: places(self.lock_file("registry")) > before,
                   f"{who} to join the queue")
        return waiter

    def test_waiters_in_other_processes_are_granted_in_the_order_they_queued(self) -> None:
        log = os.path.join(self.dir, "log")
        holder = self.hold()
        waiters = [self.queue(who, log) for who in ("a", "b", "c", "d")]
        self.assertEqual(places(self.lock_file("registry")), 4)
        holder.send("")
        holder.expect("released")
        for waiter in waiters:
            waiter.expect("done")
            self.assertEqual(waiter.wait(), 0)
        with open(log, encoding="ascii") as f:
            self.assertEqual(f.read().split(), ["a", "b", "c", "d"])
        self.assertEqual(places(self.lock_file("registry")), 0)

    def test_an_asyncio_waiter_keeps_its_place_and_a_cancelled_one_leaves_none(self) -> None:
        log = os.path.join(self.dir, "log")
        holder = self.hold()

        async def scenario() -> None:
            mine = CacheLock(self.cache, "registry", fair=True)
            task = asyncio.ensure_future(mine.acquire_async())
            await asyncio.sleep(0)
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while places(self.lock_file("registry")) < 1:
                self.assertLess(asyncio.get_running_loop().time(), deadline)
                await asyncio.sleep(0.001)
            # A process that comes later queues behind this task.
            later = self.queue("later", log)
            holder.send("")
            await asyncio.wait_for(task, DEADLINE)
            self.assertTrue(mine.locked)
            self.assertFalse(os.path.exists(log))     # "later" still waits
            mine.release()
            later.expect("done")

            # Cancelled while queued: its place goes at once.
            again = self.hold()
            gone = CacheLock(self.cache, "registry", fair=True)
            task = asyncio.ensure_future(gone.acquire_async())
            deadline = asyncio.get_running_loop().time() + DEADLINE
            while places(self.lock_file("registry")) < 1:
                self.assertLess(asyncio.get_running_loop().time(), deadline)
                await asyncio.sleep(0.001)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertEqual(places(self.lock_file("registry")), 0)
            self.assertFalse(gone.locked)
            again.send("")
            again.expect("released")

        asyncio.run(scenario())
        with open(log, encoding="ascii") as f:
            self.assertEqual(f.read().split(), ["later"])

    def test_a_try_never_joins_and_is_busy_while_others_are_queued(self) -> None:
        log = os.path.join(self.dir, "log")
        holder = self.hold()
        waiter = self.queue("a", log)
        lock = CacheLock(self.cache, "registry", fair=True)
        with self.assertRaises(cachelock.Busy):
            lock.acquire(timeout=0)
        self.assertEqual(places(self.lock_file("registry")), 1)
        holder.send("")
        waiter.expect("done")

    def test_the_policy_makes_plain_objects_queue(self) -> None:
        self.assertFalse(cachelock.fair_policy(self.cache))
        cachelock.set_fair_policy(self.cache)
        self.assertTrue(cachelock.fair_policy(self.cache))
        self.assertTrue(os.path.isfile(os.path.join(self.cache, ".locks", ".fair")))
        log = os.path.join(self.dir, "log")
        holder = self.hold("plain")
        waiter = self.queue("a", log, "plain")      # queues: the policy says so
        self.assertEqual(places(self.lock_file("registry")), 1)
        holder.send("")
        waiter.expect("done")
        cachelock.set_fair_policy(self.cache, False)
        self.assertFalse(cachelock.fair_policy(self.cache))
        self.assertFalse(os.path.exists(os.path.join(self.cache, ".locks", ".fair")))

    def test_pickling_keeps_fair_mode(self) -> None:
        lock = CacheLock(self.cache, "registry", fair=True, any_name=True)
        copy = pickle.loads(pickle.dumps(lock))
        self.assertEqual(copy._flags, lock._flags)  # noqa: SLF001 (the mode is private)
        plain = pickle.loads(pickle.dumps(CacheLock(self.cache, "registry")))
        self.assertEqual(plain._flags, 0)  # noqa: SLF001


class FairRefusedTest(CacheTest):
    def test_policy_of_a_bad_directory_is_a_clear_error(self) -> None:
        with self.assertRaises(ValueError):
            cachelock.set_fair_policy("")
        with self.assertRaises(ValueError):
            cachelock.fair_policy("a\0b")
        self.assertFalse(cachelock.fair_policy(os.path.join(self.dir, "none")))
        self.assertFalse(os.path.exists(os.path.join(self.dir, "none")))


if __name__ == "__main__":
    unittest.main()
