#!/bin/sh
# demo.sh - what `make demo` shows: workers sharing one cache entry through
# `cachelock run`, the messages they print while they wait, and a check
# that no update was lost.  Also the same workload without a lock, to show
# what the lock prevents.
set -eu
BUILD=${BUILD:-build}
CACHELOCK="$BUILD/cachelock"
WORKERS=4
ROUNDS=3
CACHE=$(mktemp -d "${TMPDIR:-/tmp}/cachelock-demo.XXXXXX")
trap 'rm -rf "$CACHE"' EXIT

say() { printf '\n== %s\n' "$*"; }

# One update: read the counter, think for a while, write it back plus one.
cat > "$CACHE/bump" <<'SCRIPT'
n=$(cat "$(dirname "$0")/counter"); sleep 0.1; echo $((n + 1)) > "$(dirname "$0")/counter"
SCRIPT

run_workers() {   # $1 = locked or unlocked
    echo 0 > "$CACHE/counter"
    i=1
    while [ $i -le $WORKERS ]; do
        (
            r=1
            while [ $r -le $ROUNDS ]; do
                if [ "$1" = locked ]; then
                    "$CACHELOCK" run "$CACHE" counter -- sh "$CACHE/bump" 2>&1 |
                        sed "s/^/  [worker $i] /"
                else
                    sh "$CACHE/bump"
                fi
                r=$((r + 1))
            done
        ) &
        i=$((i + 1))
    done
    wait
}

say "cachelock $("$CACHELOCK" --version | cut -d' ' -f2): $WORKERS workers, $ROUNDS updates each, one counter in $CACHE"
echo "Each update reads the counter, waits 0.1 s, and writes it back plus one."

say "Without a lock: the workers overwrite each other's updates"
run_workers unlocked
echo "  counter = $(cat "$CACHE/counter"), expected $((WORKERS * ROUNDS))"

say "With 'cachelock run CACHE counter -- ...': they take turns"
echo "  (a worker that finds the lock busy says who holds it, then waits)"
run_workers locked

say "While someone holds it, 'cachelock status' shows who"
"$CACHELOCK" run "$CACHE" counter -- sh -c "'$CACHELOCK' status '$CACHE' | sed 's/^/  /'"

got=$(cat "$CACHE/counter")
want=$((WORKERS * ROUNDS))
say "Result"
if [ "$got" -eq "$want" ]; then
    echo "  counter = $got, expected $want: no update was lost"
else
    echo "  counter = $got, expected $want: UPDATES WERE LOST"
    exit 1
fi
