#!/bin/sh
# cachelock run: COMMAND never runs without the lock, whatever happens to
# the cachelock process.  By default COMMAND inherits the lock (a SIGKILLed
# cachelock leaves it locked, as flock(1) does); with -o COMMAND dies with
# cachelock; with -F there is only one process.
. "$(dirname "$0")/lib.sh"
plan 6

# start_cmd [run options]: cachelock run in the background with a command
# that writes its pid to $T/cmd.pid and sleeps; RUNNER and CMD are the pids.
start_cmd() {
    "$CACHELOCK" run "$@" "$D" s -- sh -c "echo \$\$ > '$T/cmd.tmp'; mv '$T/cmd.tmp' '$T/cmd.pid'; exec sleep 600" \
        >"$T/runner.out" 2>"$T/runner.err" &
    RUNNER=$!
    bg_pid "$RUNNER"
    wait_for_file "$T/cmd.pid" && CMD=$(cat "$T/cmd.pid") && bg_pid "$CMD"
}

t_sigkill_of_cachelock_leaves_command_locked() {
    start_cmd &&
    kill -KILL "$RUNNER" && { wait "$RUNNER" 2>/dev/null; true; } &&
    kill -0 "$CMD" &&
    # The command still holds the lock: another run and flock(1) are refused.
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    expect_status 1 flock -n "$D/.locks/s.lock" true &&
    # status still shows it held: not by the pid that took it (gone, its
    # number free for any process) but by the command, whose descriptor
    # holds it.
    "$CACHELOCK" status "$D" >"$T/status" &&
    cat "$T/status" &&
    grep -q "^s: exclusive by pid $CMD (sleep 600)$" "$T/status" &&
    kill "$CMD" && wait_until "gone $CMD" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok_named "SIGKILL of cachelock: the command keeps the lock, a second run -n fails (1)" t_sigkill_of_cachelock_leaves_command_locked

t_sigkill_while_another_waits() {
    # A waiter that was already queued does not get the lock when the
    # wrapper is killed; it gets it when the command exits.
    start_cmd || return 1
    "$CACHELOCK" run -w 20 "$D" s -- sh -c "echo ran > '$T/waiter.ran'" >/dev/null 2>"$T/waiter.err" &
    waiter=$!
    bg_pid $waiter
    wait_for_file "$T/waiter.err" "waiting for 's'" &&
    kill -KILL "$RUNNER" && { wait "$RUNNER" 2>/dev/null; true; } &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    test ! -e "$T/waiter.ran" &&
    kill "$CMD" &&
    { wait $waiter; st=$?; [ $st -eq 0 ] || { echo "waiter status $st"; false; }; } &&
    test -e "$T/waiter.ran"
}
ok "SIGKILL of cachelock: a queued waiter gets the lock only after the command" t_sigkill_while_another_waits

t_close_command_dies_with_cachelock() {
    start_cmd -o &&
    # With -o only cachelock holds the lock, so its death must end the
    # command (PR_SET_PDEATHSIG): the command never runs unlocked.
    kill -KILL "$RUNNER" && { wait "$RUNNER" 2>/dev/null; true; } &&
    wait_until "gone $CMD" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "-o: SIGKILL of cachelock kills the command too (it never runs unlocked)" t_close_command_dies_with_cachelock

t_close_releases_after_command() {
    start_cmd --close &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    kill "$CMD" &&
    { wait "$RUNNER"; st=$?; [ $st -eq 143 ] || { echo "status $st, want 143"; false; }; } &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "-o: cachelock holds the lock while the command runs and releases it after" t_close_releases_after_command

t_no_fork_execs_in_place() {
    "$CACHELOCK" run -F "$D" s -- sh -c "echo \$\$ > '$T/cmd.tmp'; mv '$T/cmd.tmp' '$T/cmd.pid'; exec sleep 600" \
        >/dev/null 2>&1 &
    runner=$!
    bg_pid $runner
    wait_for_file "$T/cmd.pid" &&
    test "$(cat "$T/cmd.pid")" = "$runner" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    kill -KILL "$runner" && { wait "$runner" 2>/dev/null; true; } &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true &&
    expect_status 7 "$CACHELOCK" run --no-fork "$D" s -- sh -c 'exit 7'
}
ok "-F/--no-fork: COMMAND replaces cachelock (same pid) and holds the lock" t_no_fork_execs_in_place

t_no_fork_exec_failure() {
    expect_status 69 "$CACHELOCK" run -F "$D" s -- /nonexistent/cmd 2>"$T/err" &&
    grep -q "cannot run '/nonexistent/cmd': No such file or directory" "$T/err" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true &&
    expect_status 64 "$CACHELOCK" run -F -o "$D" s -- true 2>"$T/err" &&
    grep -q "the --no-fork and --close options are incompatible" "$T/err"
}
ok "-F: a command that cannot run gives 69 and releases; -F with -o is 64" t_no_fork_exec_failure

done_testing
