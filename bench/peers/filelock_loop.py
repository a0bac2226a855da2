#!/usr/bin/python3
"""Python's filelock, for bench_peers: acquire and release one lock in a loop.

    filelock_loop.py DIRECTORY ITERATIONS

Locks DIRECTORY/.locks/python.lock through one ``FileLock``, made once and
reused, as a program holding a lock object does.  Prints the nanoseconds per
acquire+release of the fastest of ROUNDS chunks, as the C benchmarks do, so
that bench_peers can compare it with them and count its system calls under
strace (ITERATIONS is rounded down to a multiple of ROUNDS).
"""

import os
import sys
import time

from filelock import FileLock

ROUNDS = 10


def main() -> int:
    if len(sys.argv) != 3 or int(sys.argv[2]) < ROUNDS:
        print("usage: filelock_loop.py DIRECTORY ITERATIONS", file=sys.stderr)
        return 2
    locks = os.path.join(sys.argv[1], ".locks")
    os.makedirs(locks, exist_ok=True)
    lock = FileLock(os.path.join(locks, "python.lock"))
    chunk = int(sys.argv[2]) // ROUNDS
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for _ in range(chunk):
            lock.acquire()
            lock.release()
        best = min(best, (time.perf_counter_ns() - start) / chunk)
    print(f"{best:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
