#!/bin/sh
# cachelock run speaks flock(1)'s options with flock(1)'s meaning and exit
# statuses.  Tests 1-6 are util-linux's own flock(1) scenarios
# (tests/ts/misc/flock: a shared holder, then non-block, no-fork, shared,
# exclusive and timeout attempts) redone on a cache with cachelock, and
# with ordering by observable state instead of sleep 3.
. "$(dirname "$0")/lib.sh"
plan 14

L() { echo "$D/.locks/s.lock"; }

# A shared holder through flock(1), as in util-linux's test.
shared_holder() {
    mkdir -p "$D/.locks" && : > "$(L)" && flock1_hold "$(L)" --shared
}

t_nonblock_conflict_exit_code() {
    shared_holder &&
    expect_status 123 "$CACHELOCK" run --nonblock --conflict-exit-code 123 "$D" s echo "You will never see this!" >"$T/out" 2>/dev/null &&
    expect_status 123 "$CACHELOCK" run --nonblocking -E 123 "$D" s echo never >>"$T/out" 2>/dev/null &&
    expect_status 123 "$CACHELOCK" run --nb -E 123 "$D" s echo never >>"$T/out" 2>/dev/null &&
    test ! -s "$T/out"
}
ok "flock(1) non-block: --nonblock/--nonblocking/--nb with -E 123 give 123" t_nonblock_conflict_exit_code

t_no_fork_nonblock() {
    shared_holder &&
    expect_status 123 "$CACHELOCK" run --no-fork --nonblock --conflict-exit-code 123 "$D" s echo "You will never see this!" >"$T/out" 2>/dev/null &&
    test ! -s "$T/out"
}
ok "flock(1) no-fork: --no-fork --nonblock -E 123 gives 123" t_no_fork_nonblock

t_shared_with_shared_holder() {
    shared_holder &&
    "$CACHELOCK" run --shared "$D" s echo "Have shared lock" >"$T/out" &&
    grep -qx "Have shared lock" "$T/out"
}
ok "flock(1) shared: --shared runs beside a shared holder" t_shared_with_shared_holder

t_exclusive_nonblock() {
    shared_holder &&
    expect_status 123 "$CACHELOCK" run --nonblock --exclusive --conflict-exit-code 123 "$D" s echo never >"$T/out" 2>/dev/null &&
    expect_status 123 "$CACHELOCK" run -e -n -E 123 "$D" s echo never >>"$T/out" 2>/dev/null &&
    test ! -s "$T/out"
}
ok "flock(1) exclusive: --exclusive and -e are refused beside a shared holder" t_exclusive_nonblock

t_timeout_then_granted_after_release() {
    # util-linux's "timeout" and "time-check": a --wait that outlasts the
    # holder gets the lock, and only after the holder has gone.
    shared_holder || return 1
    "$CACHELOCK" run --wait 20 --conflict-exit-code 5 "$D" s echo "After timeout." >"$T/out" 2>"$T/err" &
    waiter=$!
    bg_pid $waiter
    wait_for_file "$T/err" "waiting for 's'" &&
    test ! -s "$T/out" &&
    flock1_release &&
    { wait $waiter; st=$?; [ $st -eq 0 ] || { echo "status $st"; false; }; } &&
    grep -qx "After timeout." "$T/out"
}
ok "flock(1) timeout/time-check: --wait gets the lock once the holder is gone" t_timeout_then_granted_after_release

t_timeout_expires() {
    shared_holder &&
    expect_status 5 "$CACHELOCK" run --wait 0.2 -E 5 "$D" s echo never >"$T/out" 2>/dev/null &&
    expect_status 7 "$CACHELOCK" run -w 0 -E 7 "$D" s echo never >>"$T/out" 2>/dev/null &&
    test ! -s "$T/out"
}
ok "--wait that runs out gives the conflict code; -w 0 is -n" t_timeout_expires

t_nonblock_wins_over_wait() {
    shared_holder &&
    expect_status_within 5 1 "$CACHELOCK" run -n -w 60 "$D" s true 2>/dev/null &&
    expect_status_within 5 1 "$CACHELOCK" run -w 60 -n "$D" s true 2>/dev/null &&
    expect_status_within 5 1 "$CACHELOCK" run --nb --wait=60 "$D" s true 2>/dev/null
}
ok "-n wins over -w in either order, as in flock(1)" t_nonblock_wins_over_wait

t_same_statuses_as_flock1() {
    # Each line: a scenario run through flock(1) and through cachelock.
    mkdir -p "$D/.locks" && : > "$(L)" &&
    for args in "true" "sh -c 'exit 5'" "sh -c 'kill -TERM \$\$'" "-c 'exit 3'" \
                "/nonexistent/cmd" "-F sh -c 'exit 6'"; do
        eval "set -- $args"
        opts=
        if [ "$1" = -F ]; then opts=-F; shift; fi
        set +e
        if [ "$1" = -c ]; then
            timeout 20 flock $opts "$(L)" -c "$2" 2>/dev/null; f=$?
            timeout 20 "$CACHELOCK" run $opts "$D" s -c "$2" 2>/dev/null; c=$?
        else
            timeout 20 flock $opts "$(L)" "$@" 2>/dev/null; f=$?
            timeout 20 "$CACHELOCK" run $opts "$D" s "$@" 2>/dev/null; c=$?
        fi
        set -e
        [ "$f" -eq "$c" ] || { echo "$args: flock(1) $f, cachelock $c"; return 1; }
    done
    flock1_hold "$(L)" &&
    for opts in "-n" "-n -E 9" "-w 0.1" "-w 0.1 -E 0" "-s -n" "--bogus"; do
        set +e
        timeout 20 flock $opts "$(L)" true 2>/dev/null; f=$?
        timeout 20 "$CACHELOCK" run $opts "$D" s true 2>/dev/null; c=$?
        set -e
        [ "$f" -eq "$c" ] || { echo "$opts (busy): flock(1) $f, cachelock $c"; return 1; }
    done
}
ok "the same exit statuses as flock(1): command, signal, -c, not found, -F, busy, timeout, usage" t_same_statuses_as_flock1

t_dash_c_runs_through_sh() {
    expect_status 3 "$CACHELOCK" run "$D" s -c 'echo "$0 ran"; exit 3' >"$T/out" &&
    grep -qx "sh ran" "$T/out" &&
    expect_status 4 "$CACHELOCK" run "$D" s --command 'exit 4' &&
    expect_status 0 "$CACHELOCK" run -c "echo 'a  b' > '$T/c'" "$D" s &&
    test "$(cat "$T/c")" = "a  b" &&
    expect_status 0 env CACHELOCK_DIR="$D" "$CACHELOCK" run s -c 'exit 0' &&
    expect_status 64 "$CACHELOCK" run "$D" s -c 'true' extra 2>"$T/err" &&
    grep -q "requires exactly one command argument" "$T/err"
}
ok "-c COMMAND runs through sh -c (after the operands, or before them)" t_dash_c_runs_through_sh

t_only_first_dashes_end_operands() {
    "$CACHELOCK" run "$D" s printf '%s,' a -- b >"$T/o1" &&
    test "$(cat "$T/o1")" = "a,--,b," &&
    "$CACHELOCK" run "$D" s -- printf '%s,' a -- b >"$T/o2" &&
    test "$(cat "$T/o2")" = "a,--,b," &&
    CACHELOCK_DIR="$D" "$CACHELOCK" run s -- printf '%s,' -- x >"$T/o3" &&
    test "$(cat "$T/o3")" = "--,x," &&
    "$CACHELOCK" run -s -- "$D" s printf '%s,' -- y >"$T/o4" &&
    test "$(cat "$T/o4")" = "--,y,"
}
ok "only the first -- ends the operands: run DIR SRC cmd a -- b runs cmd a -- b" t_only_first_dashes_end_operands

t_verbose() {
    "$CACHELOCK" run --verbose "$D" s echo out >"$T/out" 2>"$T/err" &&
    test "$(cat "$T/out")" = out &&
    grep -q "^cachelock: getting lock took [0-9]*\.[0-9]\{6\} seconds$" "$T/err" &&
    grep -qx "cachelock: executing echo" "$T/err"
}
ok "--verbose says how long the lock took and what runs (on stderr)" t_verbose

t_version_after_subcommand() {
    for cmd in run lock unlock status path prune; do
        "$CACHELOCK" $cmd -V >"$T/v" && grep -q "^cachelock [0-9]" "$T/v" &&
        "$CACHELOCK" $cmd --version >"$T/v" && grep -q "^cachelock [0-9]" "$T/v" ||
            { echo "$cmd -V"; return 1; }
    done
}
ok "-V/--version after the subcommand" t_version_after_subcommand

t_long_option_errors_name_the_option() {
    expect_status 64 "$CACHELOCK" run --shared=1 "$D" s true 2>"$T/e1" &&
    grep -q "^cachelock: option '--shared' doesn't allow an argument$" "$T/e1" &&
    expect_status 64 "$CACHELOCK" run --sh=1 "$D" s true 2>"$T/e2" &&
    grep -q "option '--shared' doesn't allow an argument" "$T/e2" &&
    expect_status 64 "$CACHELOCK" run --wait 2>"$T/e3" &&
    grep -q "option '--wait' requires an argument" "$T/e3" &&
    expect_status 64 "$CACHELOCK" run --bogus "$D" s true 2>"$T/e4" &&
    grep -q "unrecognized option '--bogus'" "$T/e4" &&
    expect_status 64 "$CACHELOCK" run -z "$D" s true 2>"$T/e5" &&
    grep -q "invalid option -- 'z'" "$T/e5" &&
    expect_status 64 "$CACHELOCK" status --json=yes "$D" 2>"$T/e6" &&
    grep -q "option '--json' doesn't allow an argument" "$T/e6" &&
    expect_status 64 "$CACHELOCK" prune --dry-run=1 "$D" 2>"$T/e7" &&
    grep -q "option '--dry-run' doesn't allow an argument" "$T/e7" &&
    expect_status 64 "$CACHELOCK" path --create=1 "$D" s 2>"$T/e8" &&
    grep -q "option '--create' doesn't allow an argument" "$T/e8" &&
    expect_status 64 "$CACHELOCK" lock --quiet=1 9 2>"$T/e9" &&
    grep -q "option '--quiet' doesn't allow an argument" "$T/e9" &&
    for i in 1 2 3 4 5 6 7 8 9; do
        grep -q -- "--help' for more information" "$T/e$i" || { cat "$T/e$i"; return 1; }
    done
}
ok "--shared=1 and the like name the long option; usage errors give 64" t_long_option_errors_name_the_option

t_quiet_and_stderr_only() {
    # flock(1) prints nothing while it waits; cachelock prints one line, on
    # stderr only, and -q silences every message about waiting or conflict.
    shared_holder || return 1
    "$CACHELOCK" run -x -w 20 "$D" s echo ran >"$T/out" 2>"$T/err" &
    waiter=$!
    bg_pid $waiter
    wait_for_file "$T/err" "waiting for 's'" &&
    test ! -s "$T/out" &&
    expect_status 1 "$CACHELOCK" run -q -w 0.1 "$D" s true >"$T/qout" 2>"$T/qerr" &&
    expect_status 1 "$CACHELOCK" run -q -n "$D" s true >>"$T/qout" 2>>"$T/qerr" &&
    test ! -s "$T/qout" && test ! -s "$T/qerr" &&
    flock1_release && wait $waiter &&
    test "$(cat "$T/out")" = ran
}
ok "the wait line goes to stderr only; -q prints nothing while waiting or on conflict" t_quiet_and_stderr_only

done_testing
