"""Run the package's tests one at a time, for tests/t0910-python.sh.

    run.py --list      the ids of all tests (test_x.Class.test_y), one a line
    run.py TEST_ID     run one test: prints "ok", "skip: REASON" (both exit
                       status 0) or the failure (exit status 1)

The TAP script runs each test in its own interpreter under timeout(1), so
that a test that hangs or crashes takes nothing else with it and counting
descriptors sees only the test's own.  All of them also run in one process
with ``python3 -m unittest discover -s bindings/python/tests``, or pytest.
"""

from __future__ import annotations

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))


def ids(suite: unittest.TestSuite) -> list[str]:
    out = []
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            out.extend(ids(test))
        else:
            out.append(test.id())
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 64
    sys.path.insert(0, HERE)
    loader = unittest.TestLoader()
    if argv[1] == "--list":
        suite = loader.discover(HERE, top_level_dir=HERE)
        if loader.errors:
            for error in loader.errors:
                print(error, file=sys.stderr)
            return 1
        print("\n".join(ids(suite)))
        return 0
    test = loader.loadTestsFromName(argv[1])
    result = unittest.TestResult()
    test.run(result)
    if result.failures or result.errors or result.unexpectedSuccesses:
        for _, trace in result.failures + result.errors:
            print(trace, end="")
        if result.unexpectedSuccesses:
            print("unexpected success")
        return 1
    if result.testsRun == 0:
        print("no such test")
        return 1
    if result.skipped:
        print("skip:", result.skipped[0][1])
    else:
        print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
