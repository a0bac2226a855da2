#!/bin/sh
# cachelock run: the command inherits the lock descriptor, as under
# flock(1); -o/--close opts out.
. "$(dirname "$0")/lib.sh"
plan 5

t_inherited_by_default() {
    "$CACHELOCK" run "$D" s -- sh -c 'ls -l /proc/$$/fd/$CACHELOCK_FD' >"$T/out" &&
    grep -q "$D/.locks/s.lock" "$T/out"
}
ok "the command inherits the lock descriptor, numbered in CACHELOCK_FD" t_inherited_by_default

t_inherit_fd_is_accepted_alias() {
    "$CACHELOCK" run --inherit-fd "$D" s -- sh -c 'ls -l /proc/$$/fd/$CACHELOCK_FD' >"$T/out" &&
    grep -q "$D/.locks/s.lock" "$T/out"
}
ok "--inherit-fd is still accepted (the default now)" t_inherit_fd_is_accepted_alias

t_close_does_not_pass_it() {
    env -u CACHELOCK_FD "$CACHELOCK" run -o "$D" s -- sh -c 'ls -l /proc/$$/fd; echo "fd=${CACHELOCK_FD:-none}"' >"$T/out" &&
    ! grep -q 's\.lock' "$T/out" &&
    grep -q 'fd=none' "$T/out" &&
    env -u CACHELOCK_FD "$CACHELOCK" run --close "$D" s -- sh -c 'echo "fd=${CACHELOCK_FD:-none}"' >"$T/out" &&
    grep -q 'fd=none' "$T/out"
}
ok "-o/--close: the command gets no lock descriptor" t_close_does_not_pass_it

t_daemon_keeps_lock_by_default() {
    # A daemon started by the command outlives it and keeps the inherited
    # lock, as under flock(1); cachelock itself does not unlock.
    "$CACHELOCK" run "$D" s -- sh -c "sleep 600 >/dev/null 2>&1 & echo \$! > '$T/d'" &&
    bg_pid "$(cat "$T/d")" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    kill "$(cat "$T/d")" && wait_until "gone $(cat "$T/d")" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "a daemon started by the command keeps the lock (as with flock(1))" t_daemon_keeps_lock_by_default

t_daemon_does_not_keep_it_with_close() {
    "$CACHELOCK" run -o "$D" s -- sh -c "sleep 600 >/dev/null 2>&1 & echo \$! > '$T/d'" &&
    bg_pid "$(cat "$T/d")" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "with -o the daemon does not keep it: released when the command exits" t_daemon_does_not_keep_it_with_close

done_testing
