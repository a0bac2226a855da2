#!/bin/sh
# Fair mode from the command line: run --fair, the policy command
# (cachelock fair on|off|status), its usage errors and refusals, and prune
# of the queue's sidecar.
. "$(dirname "$0")/lib.sh"
plan 10

# The portable build (make check PORTABLE=1) has no OFD locks: fair mode is
# refused there, which the last case checks; the others skip.
NO_QUEUE=
[ "${PORTABLE:-}" != 1 ] || NO_QUEUE="the portable build has no OFD locks: fair mode is refused there"

# fair_ok NAME FUNCTION: ok, or skip without the queue.
fair_ok() {
    if [ -n "$NO_QUEUE" ]; then skip "$1" "$NO_QUEUE"; else ok "$@"; fi
}

NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

# places NAME: how many processes hold a place in the fair queue of
# $D/.locks/NAME.lock (OFD write locks at 2^62 + ticket, /proc/locks).
places() {
    ino=$(stat -c %i "$D/.locks/$1.lock") || return 1
    grep -c -- "OFDLCK ADVISORY  WRITE -1 [0-9a-f:]*:$ino 46116860184" /proc/locks
}

# queue NAME WHO [run options]: a waiter that appends WHO to $T/log under
# the lock; returns once it holds a place in the queue ($1 places then).
# Its pid is in WAITER.
queue() {
    name=$1 who=$2; shift 2
    before=$(places "$name")
    "$CACHELOCK" run -q "$@" "$D" "$name" -- sh -c "echo $who >> '$T/log'" &
    WAITER=$!
    bg_pid $WAITER
    wait_until "[ \$(places $name) -gt $before ]"
}

t_policy_command() {
    expect_status 0 "$CACHELOCK" fair status "$D" >"$T/out" &&
    test "$(cat "$T/out")" = "not fair" && test ! -e "$D" &&
    expect_status 0 "$CACHELOCK" fair off "$D" && test ! -e "$D" &&
    expect_status 0 "$CACHELOCK" fair on "$D" && test -f "$D/.locks/.fair" &&
    grep -q "cachelock fair off" "$D/.locks/.fair" &&
    expect_status 0 "$CACHELOCK" fair on "$D" &&
    test "$("$CACHELOCK" fair status "$D")" = fair &&
    CACHELOCK_DIR="$D" "$CACHELOCK" fair status | grep -qx fair &&
    expect_status 0 "$CACHELOCK" fair off "$D" && test ! -e "$D/.locks/.fair" &&
    test "$("$CACHELOCK" fair status "$D")" = "not fair" &&
    "$CACHELOCK" status "$D" >"$T/status" && test ! -s "$T/status"
}
fair_ok "fair on|off|status sets, clears and reports the policy marker; no source is listed" t_policy_command

t_usage() {
    expect_status 64 "$CACHELOCK" fair 2>"$T/e1" && grep -q "missing on, off or status" "$T/e1" &&
    grep -q "Try 'cachelock fair --help'" "$T/e1" &&
    expect_status 64 "$CACHELOCK" fair sideways "$D" 2>"$T/e2" &&
    grep -q "unknown 'sideways'" "$T/e2" &&
    expect_status 64 "$CACHELOCK" fair on "$D" extra 2>/dev/null &&
    (unset CACHELOCK_DIR; expect_status 64 "$CACHELOCK" fair status 2>/dev/null) &&
    expect_status 64 "$CACHELOCK" fair --nope 2>/dev/null &&
    "$CACHELOCK" fair --help >"$T/help" && grep -q "^Usage: cachelock fair on|off|status" "$T/help" &&
    "$CACHELOCK" run --help | grep -q -- "--fair" &&
    "$CACHELOCK" --help | grep -q "fair on|off|status"
}
ok "fair: usage errors exit 64, --help documents it" t_usage

t_run_fair_grants_in_order() {
    hold s --fair &&
    queue s a --fair && queue s b --fair -w 30 && queue s c --fair &&
    test "$(places s)" -eq 3 &&
    release s &&
    wait_until "[ \$(wc -l < '$T/log' 2>/dev/null || echo 0) -eq 3 ]" &&
    test "$(tr -d '\n' < "$T/log")" = abc &&
    test "$(places s)" -eq 0
}
fair_ok "run --fair: waiters are granted in the order they queued" t_run_fair_grants_in_order

t_policy_makes_plain_run_queue() {
    "$CACHELOCK" fair on "$D" &&
    hold s &&
    queue s a && queue s b -w 30 && queue s c &&
    release s &&
    wait_until "[ \$(wc -l < '$T/log' 2>/dev/null || echo 0) -eq 3 ]" &&
    test "$(tr -d '\n' < "$T/log")" = abc
}
fair_ok "under the fair policy, run without --fair queues too" t_policy_makes_plain_run_queue

t_wait_message_says_queued() {
    hold s --fair || return 1
    "$CACHELOCK" run --fair -w 0.3 "$D" s -- true 2>"$T/err"
    st=$?
    [ $st -eq 1 ] && cat "$T/err" &&
    grep -q "^cachelock: waiting for 's' .*held exclusive by pid .*; queued, first come first served (fair mode); giving up after 0.3s$" "$T/err" &&
    grep -q "timed out after 300 ms waiting for lock" "$T/err" &&
    test "$(places s)" -eq 0
}
fair_ok "run --fair: the wait line says it is queued; a timeout leaves no place behind" t_wait_message_says_queued

t_busy_with_nonblock() {
    hold s --fair &&
    expect_status 7 "$CACHELOCK" run --fair -n -E 7 "$D" s -- true 2>"$T/err" &&
    grep -q "held by another owner" "$T/err" && test "$(places s)" -eq 0
}
fair_ok "run --fair -n: busy is the conflict status, and no place is taken" t_busy_with_nonblock

t_killed_waiter_does_not_stall() {
    hold s --fair || return 1
    "$CACHELOCK" run -q --fair "$D" s -- sh -c "echo x >> '$T/log'" &
    victim=$!
    bg_pid $victim
    wait_until "[ \$(places s) -eq 1 ]" &&
    queue s b --fair &&
    kill -9 $victim && wait_until "gone $victim" &&
    wait_until "[ \$(places s) -eq 1 ]" &&
    release s &&
    wait_until "[ -s '$T/log' ]" && test "$(cat "$T/log")" = b
}
fair_ok "a queued waiter killed with SIGKILL leaves no place: the next one gets the lock" t_killed_waiter_does_not_stall

t_prune_removes_sidecar() {
    hold s &&
    queue s a --fair &&
    release s &&
    # The waiter has run and exited: nobody holds s any more.
    wait "$WAITER" && test -s "$T/log" && test "$(places s)" -eq 0 &&
    test -f "$D/.locks/s.fifo" &&
    "$CACHELOCK" prune "$D" >"$T/out" &&
    grep -qx "removed s" "$T/out" &&
    grep -qx "removed 1 lock file; skipped 0 in use, 0 newer, 0 failed" "$T/out" &&
    test ! -e "$D/.locks/s.lock" && test ! -e "$D/.locks/s.fifo"
}
fair_ok "prune removes the queue's sidecar with its lock file, and counts sources only" t_prune_removes_sidecar

t_refused_where_it_cannot_work() {
    # Lock files another user owns and this one may only read: fair mode
    # needs to write-lock them (status 69, the reason said); plain works.
    "$CACHELOCK" run "$D" s -- true &&
    chmod 755 "$TOP" "$T" "$D" "$D/.locks" && chmod 644 "$D/.locks/s.lock" &&
    expect_status 69 $NOBODY "$CACHELOCK" run --fair "$D" s -- true 2>"$T/err" &&
    grep -q "cannot lock '$D/.locks/s.lock' in fair mode: fair mode needs write access" "$T/err" &&
    expect_status 0 $NOBODY "$CACHELOCK" run -s "$D" s -- true &&
    # The policy cannot be set without write access to .locks either.
    expect_status 73 $NOBODY "$CACHELOCK" fair on "$D" 2>"$T/err2" &&
    grep -q "cannot create policy marker '$D/.locks/.fair': Permission denied" "$T/err2" &&
    test ! -e "$D/.locks/.fair"
}
if [ -n "$NO_QUEUE" ]; then
    skip "fair mode is refused (status 69, with the reason) on a lock file it cannot write" \
        "$NO_QUEUE"
elif [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    ok "fair mode is refused (status 69, with the reason) on a lock file it cannot write" t_refused_where_it_cannot_work
else
    skip "fair mode is refused (status 69, with the reason) on a lock file it cannot write" \
        "needs root and setpriv(1) to run as nobody"
fi

t_refused_without_ofd_locks() {
    expect_status 69 "$CACHELOCK" run --fair "$D" s -- true 2>"$T/err" &&
    grep -q "cannot lock '$D/.locks/s.lock' in fair mode: fair mode needs open file description locks" "$T/err" &&
    expect_status 69 "$CACHELOCK" fair on "$D" 2>"$T/err2" &&
    grep -q "cannot make '$D' fair: fair mode needs open file description locks" "$T/err2" &&
    test ! -e "$D/.locks/.fair" &&
    expect_status 0 "$CACHELOCK" run "$D" s -- true
}
if [ -n "$NO_QUEUE" ]; then
    ok "without OFD locks, run --fair and fair on are refused (status 69, with the reason)" \
        t_refused_without_ofd_locks
else
    skip "without OFD locks, run --fair and fair on are refused (status 69, with the reason)" \
        "this build has OFD locks (test_fair checks the refusal through the system-call table)"
fi

done_testing
