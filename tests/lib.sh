# lib.sh - TAP helpers for the CLI tests (tNNNN-*.sh), in the spirit of
# git's test-lib.sh.  Every command that could hang runs under timeout(1);
# processes synchronise on files and on the messages they print, never on a
# bare sleep.

set -u
BUILD=${BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
CACHELOCK="$BUILD/cachelock"
TOP=$(mktemp -d "${TMPDIR:-/tmp}/cachelock-t.XXXXXX")
T=$TOP
D="$T/cache"
n=0
failed=0

# Background processes of a test are listed in $T/bg.pids (tests run in
# subshells, so a variable would not survive); each test kills its own.
kill_background() {
    [ -f "$T/bg.pids" ] || return 0
    for p in $(cat "$T/bg.pids"); do kill -9 "$p" 2>/dev/null; done
    for p in $(cat "$T/bg.pids"); do wait "$p" 2>/dev/null; done
    rm -f "$T/bg.pids"
}
bg_pid() { echo "$1" >> "$T/bg.pids"; }

cleanup() {
    for t in "$TOP"/t*; do T=$t kill_background; done
    chmod -R u+rwx "$TOP" 2>/dev/null
    rm -rf "$TOP"
}
trap cleanup EXIT

plan() { echo "1..$1"; }

# ok NAME COMMAND...: run the command (a shell function, usually) in a
# subshell with a fresh scratch directory $T and cache directory $D (not yet
# created), and report.
ok() {
    name=$1; shift
    n=$((n + 1))
    T="$TOP/t$n"
    D="$T/cache"
    mkdir -p "$T"
    if out=$("$@" 2>&1); then
        echo "ok $n - $name"
    else
        echo "not ok $n - $name"
        printf '%s\n' "$out" | sed 's/^/# /'
        # What expect_status found (it writes there, not to a stdout that
        # the test may have redirected).
        [ ! -s "$T/why" ] || sed 's/^/# /' "$T/why"
        failed=$((failed + 1))
    fi
    kill_background
}

skip() { n=$((n + 1)); echo "ok $n - $1 # SKIP $2"; }

# The portable Unix build (make check PORTABLE=1) has no lock table, so no
# holder can be named, and cannot tell which filesystem a cache is on.
# ok_named NAME COMMAND...: as ok, but SKIP there.
NO_TABLE=
[ "${PORTABLE:-}" != 1 ] || NO_TABLE="the portable build has no lock table: no holder can be named"
ok_named() {
    if [ -n "$NO_TABLE" ]; then skip "$1" "$NO_TABLE"; else ok "$@"; fi
}
# The filesystem kind status and selftest name for a local cache.
FS_LOCAL=local
[ "${PORTABLE:-}" != 1 ] || FS_LOCAL=unknown

done_testing() { [ "$failed" -eq 0 ]; }

# expect_status WANT COMMAND...: the command exits with WANT.
expect_status() {
    want=$1; shift
    set +e
    timeout 20 "$@"
    got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
        echo "expected exit status $want, got $got from: $*" >>"$T/why"
        return 1
    fi
}

# wait_for_file FILE [PATTERN]: until FILE exists (and contains PATTERN).
wait_for_file() {
    i=0
    while :; do
        if [ -e "$1" ] && { [ $# -lt 2 ] || grep -q -- "$2" "$1"; }; then return 0; fi
        i=$((i + 1))
        [ $i -lt 2000 ] || { echo "timed out waiting for $1 ${2:-}"; return 1; }
        sleep 0.01
    done
}

# hold NAME [run options...]: start a holder of $D/NAME in the background;
# it writes its command's pid to $T/held.NAME once the lock is held.  Release
# it with release NAME (which kills the command; cachelock then exits).
hold() {
    name=$1; shift
    rm -f "$T/held.$name"
    "$CACHELOCK" run "$@" "$D" "$name" -- sh -c "echo \$\$ > '$T/held.$name.tmp'; mv '$T/held.$name.tmp' '$T/held.$name'; exec sleep 600" \
        >"$T/hold.$name.out" 2>"$T/hold.$name.err" &
    HOLDER=$!
    bg_pid "$HOLDER"
    wait_for_file "$T/held.$name" && bg_pid "$(cat "$T/held.$name")"
}

release() {
    kill "$(cat "$T/held.$1")" 2>/dev/null
    wait "$HOLDER" 2>/dev/null || true
}

# flock1_hold FILE [flock options]: util-linux flock(1) holds FILE; the
# pid of its command (which inherited the lock) is in FLOCK_PID, that of
# flock(1) itself in FLOCK1.  flock1_release kills the command.
flock1_hold() {
    file=$1; shift
    rm -f "$T/flock1.pid"
    flock "$@" "$file" sh -c "echo \$\$ > '$T/flock1.tmp'; mv '$T/flock1.tmp' '$T/flock1.pid'; exec sleep 600" >/dev/null 2>&1 &
    FLOCK1=$!
    bg_pid "$FLOCK1"
    wait_for_file "$T/flock1.pid"
    FLOCK_PID=$(cat "$T/flock1.pid")
    bg_pid "$FLOCK_PID"
}

flock1_release() {
    kill "$FLOCK_PID" 2>/dev/null
    wait "$FLOCK1" 2>/dev/null || true
}

# expect_status_within SECONDS WANT COMMAND...: the command exits with WANT
# within SECONDS (timeout(1) gives 124 otherwise).
expect_status_within() {
    limit=$1; want=$2; shift 2
    set +e
    timeout "$limit" "$@"
    got=$?
    set -e
    if [ "$got" -ne "$want" ]; then
        echo "expected exit status $want within ${limit}s, got $got from: $*" >>"$T/why"
        return 1
    fi
}

# wait_until SHELL_CONDITION: poll (every 10 ms, at most 20 s) until the
# condition, a string for eval, holds.
wait_until() {
    i=0
    until eval "$1"; do
        i=$((i + 1))
        [ $i -lt 2000 ] || { echo "timed out waiting until: $1"; return 1; }
        sleep 0.01
    done
}

# gone PID: true once the process no longer exists (or is a zombie).
gone() {
    ! kill -0 "$1" 2>/dev/null ||
        [ "$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null)" = Z ]
}

# blocked_on FILE: how many processes are blocked in flock(2) on FILE, from
# the kernel's lock table ("->" lines carry the inode).
blocked_on() {
    ino=$(stat -c %i "$1") || return 1
    grep -c -- "-> FLOCK .*:$ino " /proc/locks
}

# python3 for JSON checks, or a reason to skip.
have_python3() { command -v python3 >/dev/null 2>&1 && python3 -c 'import json' 2>/dev/null; }
