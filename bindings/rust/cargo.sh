#!/bin/sh
# cargo.sh - run cargo on the Rust crate, offline, against Debian's packaged
# crates and the static library of a build directory.  Used by the Makefile
# (make rust, make rust-lint, make bench), tests/t0900-rust.sh (make check)
# and .ci/run.
#
#   BUILD=/abs/build-dir [CARGO=cargo] sh bindings/rust/cargo.sh [--make] COMMAND [ARGS...]
#
# COMMAND is a cargo subcommand (build, test, bench, ...), run with
# --offline in bindings/rust, with CACHELOCK_LIB_DIR=$BUILD (where
# libcachelock.a is) and CARGO_TARGET_DIR=$BUILD/rust-target; or `lint`:
# cargo fmt --check, cargo clippy --all-targets -D warnings and cargo doc
# with warnings as errors (fmt and clippy are skipped, with a note, when not
# installed, as with Debian's cargo).
#
# cargo is $CARGO, else the one on PATH, else rustup's ~/.cargo/bin/cargo.
# When it or the crates are missing, the reason is printed and the exit
# status is 77 (with --make: "SKIP rust: REASON" and 0).  With
# CACHELOCK_REQUIRE_RUST=1 (CI), a missing prerequisite is an error (1).

make_mode=0
if [ "$1" = --make ]; then
    make_mode=1
    shift
fi
if [ $# -eq 0 ]; then
    echo "usage: BUILD=DIR sh bindings/rust/cargo.sh [--make] COMMAND [ARGS...]" >&2
    exit 64
fi
command=$1
shift

here=$(cd "$(dirname "$0")" && pwd) || exit 1
registry=/usr/share/cargo/registry

skip() {
    if [ "${CACHELOCK_REQUIRE_RUST:-0}" = 1 ]; then
        echo "rust: $1 (and CACHELOCK_REQUIRE_RUST=1)" >&2
        exit 1
    fi
    if [ $make_mode = 1 ]; then
        echo "SKIP rust ($command): $1"
        exit 0
    fi
    echo "$1"
    exit 77
}

if [ -n "${CARGO:-}" ] && command -v "$CARGO" >/dev/null 2>&1; then
    :
elif command -v cargo >/dev/null 2>&1; then
    CARGO=cargo
elif [ -x "$HOME/.cargo/bin/cargo" ]; then
    CARGO=$HOME/.cargo/bin/cargo
else
    skip "no cargo (rustup, or apt-get install cargo)"
fi
# rustup's proxies (cargo-fmt, cargo-clippy) live next to its cargo.
case $CARGO in
    */*) PATH=$(dirname "$CARGO"):$PATH; export PATH ;;
esac

for crate in tokio-1. tokio-macros- libc-0.2.; do
    if ! ls -d "$registry/$crate"* >/dev/null 2>&1; then
        skip "no ${crate%-*} crate in $registry (apt-get install librust-tokio-dev librust-libc-dev)"
    fi
done

if [ -z "${BUILD:-}" ] || [ ! -f "$BUILD/libcachelock.a" ]; then
    echo "rust: no libcachelock.a in BUILD='${BUILD:-}' (run make first)" >&2
    exit 1
fi
CACHELOCK_LIB_DIR=$BUILD
CARGO_TARGET_DIR=$BUILD/rust-target
export CACHELOCK_LIB_DIR CARGO_TARGET_DIR
cd "$here" || exit 1

if [ "$command" != lint ]; then
    echo "cargo $command --offline $* (bindings/rust, library from $BUILD)"
    exec "$CARGO" "$command" --offline "$@"
fi

status=0
if "$CARGO" fmt --version >/dev/null 2>&1; then
    echo "cargo fmt --check"
    "$CARGO" fmt --check || status=1
else
    echo "note: no cargo fmt (rustup component add rustfmt): formatting not checked"
fi
if "$CARGO" clippy --version >/dev/null 2>&1; then
    echo "cargo clippy --offline --all-targets -- -D warnings"
    "$CARGO" clippy --offline --all-targets -- -D warnings || status=1
else
    echo "note: no cargo clippy (rustup component add clippy): lints not checked"
fi
echo "cargo doc --offline --no-deps (warnings are errors)"
RUSTDOCFLAGS="-D warnings" "$CARGO" doc --offline --no-deps || status=1
exit $status
