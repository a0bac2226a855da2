#!/bin/sh
# cachelock run: signals reach the command, and the lock is released after.
. "$(dirname "$0")/lib.sh"
plan 2

# Start `cachelock run` with a command that reports its pid and waits; the
# cachelock pid is in $RUNNER, the command's in $CMDPID.
start_runner() {
    "$CACHELOCK" run "$@" "$D" s -- sh -c "trap 'echo got-USR1 > \"$T/trapped\"; exit 7' USR1; echo \$\$ > '$T/cmd.tmp'; mv '$T/cmd.tmp' '$T/cmd.pid'; while :; do sleep 0.05; done" \
        >/dev/null 2>"$T/runner.err" &
    RUNNER=$!
    bg_pid "$RUNNER"
    wait_for_file "$T/cmd.pid" && CMDPID=$(cat "$T/cmd.pid") && bg_pid "$CMDPID"
}

t_sigterm_is_forwarded_and_lock_released() {
    "$CACHELOCK" run "$D" s -- sh -c "echo \$\$ > '$T/cmd.tmp'; mv '$T/cmd.tmp' '$T/cmd.pid'; exec sleep 600" \
        >/dev/null 2>&1 &
    RUNNER=$!
    bg_pid $RUNNER
    wait_for_file "$T/cmd.pid" &&
    kill -TERM "$RUNNER" &&
    { wait "$RUNNER"; st=$?; [ "$st" -eq 143 ] || { echo "status $st, want 143"; false; }; } &&
    ! kill -0 "$(cat "$T/cmd.pid")" 2>/dev/null &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "SIGTERM sent to cachelock reaches the command; 143; lock released" t_sigterm_is_forwarded_and_lock_released

t_handled_signal_gives_command_status() {
    start_runner &&
    kill -USR1 "$RUNNER" &&
    { wait "$RUNNER"; st=$?; [ "$st" -eq 7 ] || { echo "status $st, want 7"; false; }; } &&
    grep -q got-USR1 "$T/trapped"
}
ok "a signal the command handles: its own exit status" t_handled_signal_gives_command_status

# What a SIGKILL of cachelock itself does: t0080-run-never-unlocked.sh.

done_testing
