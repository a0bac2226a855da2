#!/bin/sh
# cachelock run: the lock descriptor is not inherited unless asked.
. "$(dirname "$0")/lib.sh"
plan 3

t_not_inherited_by_default() {
    "$CACHELOCK" run "$D" s -- sh -c 'ls -l /proc/$$/fd; echo "fd=${CACHELOCK_FD:-none}"' >"$T/out" &&
    ! grep -q 's\.lock' "$T/out" &&
    grep -q 'fd=none' "$T/out"
}
ok "the command does not inherit the lock descriptor" t_not_inherited_by_default

t_inherited_with_flag() {
    "$CACHELOCK" run --inherit-fd "$D" s -- sh -c 'ls -l /proc/$$/fd/$CACHELOCK_FD' >"$T/out" &&
    grep -q "$D/.locks/s.lock" "$T/out"
}
ok "--inherit-fd passes it, numbered in CACHELOCK_FD" t_inherited_with_flag

t_daemon_keeps_lock_only_with_inherit() {
    # A daemon started by the command outlives it.  By default it cannot
    # keep the lock; with --inherit-fd it holds it, like under flock(1).
    "$CACHELOCK" run "$D" s -- sh -c "sleep 600 >/dev/null 2>&1 & echo \$! > '$T/d1'" &&
    bg_pid "$(cat "$T/d1")" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true &&
    "$CACHELOCK" run --inherit-fd "$D" s -- sh -c "sleep 600 >/dev/null 2>&1 & echo \$! > '$T/d2'" &&
    bg_pid "$(cat "$T/d2")" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    kill "$(cat "$T/d2")" && while kill -0 "$(cat "$T/d2")" 2>/dev/null; do sleep 0.01; done &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "a daemon keeps the lock only with --inherit-fd" t_daemon_keeps_lock_only_with_inherit

done_testing
