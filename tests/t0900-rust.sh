#!/bin/sh
# t0900-rust.sh - the Rust crate's suite (bindings/rust, `cargo test`) in
# make check: the original's five tests 100 times each on both tokio
# runtimes, 8 tasks on one source, 1,000 cancelled waits, interop with a
# process locking like the original, the API, and the doc examples.  One
# TAP line per test binary; on failure cargo's output goes to stderr.
#
# Skipped, with the reason, without cargo or Debian's crates (see
# bindings/rust/cargo.sh), and in sanitizer builds: the crate links
# libcachelock.a without the sanitizer's runtime (Rust's sanitizers need a
# nightly compiler), so it runs in the plain builds only; and in the
# portable build (PORTABLE=1), whose missing lock table its tests of
# holders() would only report.

cd "$(dirname "$0")/.." || exit 1
BUILD=${BUILD:-$PWD/build}
export BUILD

if [ -n "${SANITIZE:-}" ]; then
    echo "1..0 # SKIP SANITIZE=$SANITIZE build: the crate runs in plain builds only"
    exit 0
fi
if [ "${PORTABLE:-}" = 1 ]; then
    echo "1..0 # SKIP the portable build: the crate's suite lists holders, which that build cannot (no lock table); its C suite runs"
    exit 0
fi

log=$BUILD/rust-test.log
limit=
if command -v timeout >/dev/null 2>&1; then
    limit="timeout 1200"
fi
$limit sh bindings/rust/cargo.sh test --no-fail-fast >"$log" 2>&1
status=$?
if [ $status = 77 ]; then
    echo "1..0 # SKIP $(tail -n 1 "$log")"
    exit 0
fi

# "Running tests/x.rs (...)" or "Doc-tests cachelock", then its
# "test result: ok. N passed; ..." line.
awk -v status="$status" '
    /^ *Running / { name = $2; if (name == "unittests") name = name " " $3 }
    /^ *Doc-tests / { name = "doc tests of " $2 }
    /^test result: / {
        n++
        split($0, f, /[.;] */)
        printf "%s %d - cargo test: %s: %s, %s\n", ($3 == "ok.") ? "ok" : "not ok", n, name, f[2], f[3]
    }
    END {
        n++
        printf "%s %d - cargo test exit status %d\n", (status == 0) ? "ok" : "not ok", n, status
        printf "1..%d\n", n
    }
' "$log"
if [ $status != 0 ]; then
    cat "$log" >&2
    exit 1
fi
exit 0
