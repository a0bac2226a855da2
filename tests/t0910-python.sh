#!/bin/sh
# t0910-python.sh - the Python package's suite (bindings/python/tests) in
# make check: filelock's behaviours, threads, processes, asyncio (tasks
# queueing, 1,000 cancelled waits), interop with filelock and flock(1) both
# ways, holders/sources/prune, finding the library, and packaging.  One TAP
# line per test, each test in its own interpreter under timeout(1); on
# failure its output follows as TAP comments.
#
# Runs $PYTHON (default /usr/bin/python3) against the shared library of the
# build directory.  Skipped, with the reason, without python3 or the shared
# library, and in sanitizer builds (the instrumented library needs its
# sanitizer's runtime loaded before the interpreter).  Tests that need an
# optional peer (filelock, flock(1), pip, setuptools, wheel) skip with the
# reason; with CACHELOCK_REQUIRE_PYTHON=1 (CI) a missing python3, library
# or peer is a failure instead.

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-$PWD/build}
PYTHON=${PYTHON:-/usr/bin/python3}
LIMIT=${CACHELOCK_PYTHON_TEST_LIMIT:-120}
export BUILD

skip_all() {
    if [ "${CACHELOCK_REQUIRE_PYTHON:-0}" = 1 ]; then
        echo "1..1"
        echo "not ok 1 - python: $1 (and CACHELOCK_REQUIRE_PYTHON=1)"
        exit 1
    fi
    echo "1..0 # SKIP $1"
    exit 0
}

if [ "${PORTABLE:-}" = 1 ]; then
    echo "1..0 # SKIP portable build: the package's tests expect Linux's lock table, inotify and OFD marks"
    exit 0
fi
if [ -n "${SANITIZE:-}" ]; then
    echo "1..0 # SKIP SANITIZE=$SANITIZE build: the package runs in plain builds only"
    exit 0
fi
command -v "$PYTHON" >/dev/null 2>&1 || skip_all "no $PYTHON (apt-get install python3)"
[ -e "$BUILD/libcachelock.so.0" ] || skip_all "no $BUILD/libcachelock.so.0 (make)"
command -v timeout >/dev/null 2>&1 || skip_all "no timeout(1) (apt-get install coreutils)"

CACHELOCK_LIBRARY=$BUILD/libcachelock.so.0
PYTHONPATH=$PWD/bindings/python/src
PYTHONDONTWRITEBYTECODE=1
export CACHELOCK_LIBRARY PYTHONPATH PYTHONDONTWRITEBYTECODE
run="timeout -k 5 $LIMIT $PYTHON -W error bindings/python/tests/run.py"

if ! tests=$($run --list 2>&1); then
    echo "1..1"
    echo "not ok 1 - python: cannot list the tests"
    printf '%s\n' "$tests" | sed 's/^/# /'
    exit 1
fi
set -- $tests
echo "1..$#"
n=0
failed=0
for test in "$@"; do
    n=$((n + 1))
    out=$($run "$test" 2>&1)
    status=$?
    case $status:$out in
    0:ok)
        echo "ok $n - $test" ;;
    0:skip:*)
        echo "ok $n - $test # SKIP ${out#skip: }" ;;
    *)
        case $status in
        124|137) why=" (killed by timeout(1) after $LIMIT s)" ;;
        *) why=" (exit status $status)" ;;
        esac
        echo "not ok $n - $test$why"
        printf '%s\n' "$out" | sed 's/^/# /'
        failed=$((failed + 1)) ;;
    esac
done
[ $failed = 0 ]
