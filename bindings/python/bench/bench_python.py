"""The Python package against Python's filelock: what an acquire costs, and
how long a waiter takes to notice a release.  Run by ``make bench``.

    CACHELOCK_LIBRARY=build/libcachelock.so.0 python3 bench_python.py [ITERATIONS]

Uncontended: acquire+release of one lock in a loop, one object made once
and reused as a program holding a lock object does, the fastest of ROUNDS
chunks (as the C benchmarks and bench/peers/filelock_loop.py report).

Handoff: from "the holder releases" to "the waiter holds", the holder in
another process, the waiter here: blocking (``acquire()``, asleep in
flock(2)), asyncio (``await acquire_async()``, in the event loop) and
filelock's ``acquire()``, which polls every 50 ms.  Each holder stamps
CLOCK_MONOTONIC just before it releases, the waiter just after it holds.
To be sure the waiter waits before the release, the holder sleeps 300 us
after the waiter says it is about to wait (a benchmark may do that, a test
may not); for filelock, whose handoff depends on where the release falls in
its polling interval, a random part of 50 ms more, as for a release at any
moment.

Prints two tables; with BENCH_JSON set, appends one JSON object per row to
that file, as the other benchmarks do.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import cachelock  # noqa: E402

try:
    import filelock
except ImportError:                 # its rows say SKIP and why
    filelock = None                 # type: ignore[assignment]

ROUNDS = 10
NO_FILELOCK = f"no filelock for {sys.executable} (apt-get install python3-filelock)"

# The holder: locks, says "H", waits for "W", lets the waiter start waiting,
# stamps and releases, then sends the stamp.
HOLDER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, sys.argv[3])
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "filelock":
        from filelock import FileLock
        lock = FileLock(path)
    else:
        import os
        from cachelock import CacheLock
        lock = CacheLock(os.path.dirname(os.path.dirname(path)),
                         os.path.basename(path)[:-len(".lock")])
    out = sys.stdout
    for line in sys.stdin:
        lock.acquire()
        out.write("H\\n"); out.flush()
        line = sys.stdin.readline()
        if not line.startswith("W "):
            break
        time.sleep(float(line[2:]))
        stamp = time.monotonic_ns()
        lock.release()
        out.write(f"{stamp}\\n"); out.flush()
""")


def emit(row: dict[str, object]) -> None:
    path = os.environ.get("BENCH_JSON")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def best_of(acquire_release: object, iterations: int) -> float:
    """Nanoseconds per call of the fastest of ROUNDS chunks."""
    chunk = max(1, iterations // ROUNDS)
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(chunk):
            acquire_release()  # type: ignore[operator]
        best = min(best, (time.perf_counter_ns() - start) / chunk)
    return best


def uncontended(cache: str, iterations: int) -> None:
    print(f"uncontended acquire+release, one object reused, best of {ROUNDS} "
          f"chunks of {iterations // ROUNDS}")
    rows: list[tuple[str, float | None, str]] = []
    lock = cachelock.CacheLock(cache, "python")

    def cachelock_pair() -> None:
        lock.acquire()
        lock.release()

    def cachelock_with() -> None:
        with lock:
            pass

    rows.append(("cachelock acquire()+release()", best_of(cachelock_pair, iterations), ""))
    rows.append(("cachelock with lock", best_of(cachelock_with, iterations), ""))

    async def async_pairs(n: int) -> float:
        start = time.perf_counter_ns()
        for _ in range(n):
            await lock.acquire_async()
            lock.release()
        return (time.perf_counter_ns() - start) / n

    async def async_best() -> float:
        return min([await async_pairs(max(1, iterations // ROUNDS)) for _ in range(ROUNDS)])

    rows.append(("cachelock await acquire_async()+release()", asyncio.run(async_best()), ""))
    if filelock is not None:
        theirs = filelock.FileLock(os.path.join(cache, ".locks", "filelock.lock"))

        def filelock_pair() -> None:
            theirs.acquire()
            theirs.release()

        rows.append(("filelock acquire()+release()", best_of(filelock_pair, iterations), ""))
    else:
        rows.append(("filelock acquire()+release()", None, NO_FILELOCK))
    ours = rows[0][1]
    theirs_ns = rows[-1][1]
    print(f"  {'what':<44} {'us':>8} {'vs filelock':>12}")
    for what, ns, why in rows:
        if ns is None:
            print(f"  {what:<44} {'-':>8}   SKIP: {why}")
            continue
        ratio = f"{ns / theirs_ns:.2f}x" if theirs_ns else "-"
        print(f"  {what:<44} {ns / 1000:>8.2f} {ratio:>12}")
        emit({"bench": "python_uncontended", "variant": what, "us": round(ns / 1000, 3)})
    if ours and theirs_ns:
        print(f"  so cachelock is {theirs_ns / ours:.2f}x as fast as filelock "
              "(goal: faster)")
        emit({"bench": "python_peers", "cachelock_us": round(ours / 1000, 3),
              "filelock_us": round(theirs_ns / 1000, 3),
              "speedup": round(theirs_ns / ours, 2)})


class Holder:
    """The holder process."""

    def __init__(self, kind: str, path: str) -> None:
        src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, kind, path, src],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)

    def hold(self) -> None:
        self.proc.stdin.write("go\n")                   # type: ignore[union-attr]
        self.proc.stdin.flush()                         # type: ignore[union-attr]
        if self.proc.stdout.readline() != "H\n":        # type: ignore[union-attr]
            raise RuntimeError("the holder failed")

    def release_soon(self, delay: float = 0.0003) -> None:
        self.proc.stdin.write(f"W {delay}\n")           # type: ignore[union-attr]
        self.proc.stdin.flush()                         # type: ignore[union-attr]

    def stamp(self) -> int:
        return int(self.proc.stdout.readline())         # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.stdin.close()                         # type: ignore[union-attr]
        self.proc.wait(10)
        self.proc.stdout.close()                        # type: ignore[union-attr]


def handoff(cache: str, iterations: int) -> None:
    print(f"\nhandoff from a holder process to a waiting Python process "
          f"(release to held; {iterations} times, filelock {max(10, iterations // 5)})")
    path = os.path.join(cache, ".locks", "handoff.lock")
    with cachelock.CacheLock(cache, "handoff"):
        pass
    lock = cachelock.CacheLock(cache, "handoff")

    def blocking(holder: Holder) -> int:
        holder.release_soon()
        lock.acquire()
        got = time.monotonic_ns()
        lock.release()
        return got

    loop = asyncio.new_event_loop()

    def in_loop(holder: Holder) -> int:
        async def wait() -> int:
            holder.release_soon()
            await lock.acquire_async()
            got = time.monotonic_ns()
            lock.release()
            return got
        return loop.run_until_complete(wait())

    waiters: list[tuple[str, object, str]] = [("cachelock blocking", blocking, ""),
                                              ("cachelock asyncio", in_loop, "")]
    if filelock is not None:
        theirs = filelock.FileLock(path)

        def polling(holder: Holder) -> int:
            holder.release_soon(0.0003 + random.uniform(0, 0.05))
            theirs.acquire()
            got = time.monotonic_ns()
            theirs.release()
            return got

        waiters.append(("filelock (polls every 50 ms)", polling, ""))
    else:
        waiters.append(("filelock (polls every 50 ms)", None, NO_FILELOCK))
    holders = ["cachelock"] + (["filelock"] if filelock is not None else [])
    print(f"  {'waiter':<30} {'holder':<10} {'p50 us':>10} {'p90 us':>10} {'vs blocking':>12}")
    base: dict[str, float] = {}
    for name, wait, why in waiters:
        if wait is None:
            print(f"  {name:<30} {'-':<10}   SKIP: {why}")
            continue
        for kind in holders:
            holder = Holder(kind, path)
            n = iterations if name.startswith("cachelock") else max(10, iterations // 5)
            samples = []
            try:
                for _ in range(n):
                    holder.hold()
                    got = wait(holder)  # type: ignore[operator]
                    samples.append((got - holder.stamp()) / 1000)
            finally:
                holder.close()
            samples.sort()
            p50 = statistics.median(samples)
            p90 = samples[int(len(samples) * 0.9) - 1]
            base.setdefault(kind, p50)
            print(f"  {name:<30} {kind:<10} {p50:>10.1f} {p90:>10.1f} "
                  f"{p50 / base[kind]:>11.2f}x")
            emit({"bench": "python_handoff", "waiter": name, "holder": kind,
                  "p50_us": round(p50, 1), "p90_us": round(p90, 1),
                  "ratio_to_blocking": round(p50 / base[kind], 2)})
    loop.close()


def main() -> int:
    iterations = int(sys.argv[1]) if len(sys.argv) > 1 else 200000
    print(f"bench_python: cachelock {cachelock.__version__} "
          f"({cachelock.library_path()}), Python {sys.version.split()[0]}")
    cache = tempfile.mkdtemp(prefix="cachelock-bench-py-")
    try:
        uncontended(cache, iterations)
        handoff(cache, max(20, min(200, iterations // 1000)))
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
