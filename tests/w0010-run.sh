#!/bin/sh
# cachelock.exe run under wine: COMMAND's exit code, exclusion, waiting and
# timing out, and COMMAND never running without the lock.  Run by
# tests/wine.sh (make check-windows) with BUILD the Windows build.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wlib.sh"
plan 9

t_exit_code_passes_through() {
    expect_status 0 "$CACHELOCK" run "$D" s -- cmd /c exit 0 &&
    expect_status 7 "$CACHELOCK" run "$D" s -- cmd /c exit 7 &&
    expect_status 3 "$CACHELOCK" run "$D" s -c "exit 3" &&
    test -f "$D/.locks/s.lock"
}
ok "run exits with COMMAND's exit code (-- COMMAND and -c)" t_exit_code_passes_through

t_output_and_arguments() {
    "$CACHELOCK" run "$D" s -- cmd /c echo "two words" >"$T/out" &&
    grep -q "two words" "$T/out" &&
    "$CACHELOCK" run "$D" s -c "echo a&& echo b" >"$T/out2" &&
    test "$(tr -d '\r' <"$T/out2" | tr '\n' ' ')" = "a b "
}
ok "run passes arguments and output through" t_output_and_arguments

t_usage_and_missing_command() {
    expect_status 64 "$CACHELOCK" run "$D" 2>"$T/err" &&
    grep -q "Try 'cachelock run --help'" "$T/err" &&
    expect_status 64 "$CACHELOCK" run -F "$D" s -- cmd /c exit 0 2>"$T/err" &&
    grep -q "no-fork is not available on Windows" "$T/err" &&
    expect_status 69 "$CACHELOCK" run "$D" s -- no-such-program-here 2>"$T/err" &&
    grep -q "cannot run 'no-such-program-here'" "$T/err" &&
    expect_status 69 "$CACHELOCK" lock 9 2>"$T/err" &&
    grep -q "use 'cachelock run'" "$T/err"
}
ok "usage errors say 64, a missing COMMAND 69, lock and unlock are not here" t_usage_and_missing_command

t_busy_nonblock_and_conflict_code() {
    whold s &&
    expect_status 1 "$CACHELOCK" run -n "$D" s -- cmd /c exit 0 2>"$T/err" &&
    grep -q "held by another owner" "$T/err" &&
    expect_status 75 "$CACHELOCK" run -n -E 75 -q "$D" s -- cmd /c exit 0 2>"$T/err" &&
    test ! -s "$T/err" &&
    expect_status 0 "$CACHELOCK" run -n "$D" other -- cmd /c exit 0
}
ok "run -n on a held lock: the conflict code, other sources free" t_busy_nonblock_and_conflict_code

t_timeout_and_wait_message() {
    whold s &&
    start=$(date +%s%N) &&
    expect_status 1 "$CACHELOCK" run -w 0.5 "$D" s -- cmd /c exit 0 2>"$T/err" &&
    took=$(( ($(date +%s%N) - start) / 1000000 )) &&
    cat "$T/err" &&
    test "$took" -ge 500 &&
    grep -q "^cachelock: waiting for 's' ('$D\\\\.locks\\\\s.lock'), held by .*; giving up after 0.5s$" "$T/err" &&
    grep -q "timed out after 500 ms waiting for lock" "$T/err"
}
ok "run -w: times out no earlier than asked, saying what it waits for" t_timeout_and_wait_message

t_waiter_gets_it_after_release() {
    whold s || return 1
    "$CACHELOCK" run "$D" s -c "echo got>\"$(wpath "$T/got")\"" 2>"$T/err" &
    w=$!
    bg_pid $w
    sleep 0.5 &&
    test ! -e "$T/got" &&
    wrelease s &&
    wait $w &&
    test -e "$T/got"
}
ok "a waiting run gets the lock when the holder lets go" t_waiter_gets_it_after_release

t_shared_holders_coexist() {
    whold r -s &&
    expect_status 0 "$CACHELOCK" run -s -n "$D" r -- cmd /c exit 0 &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" r -- cmd /c exit 0
}
ok "shared holders coexist and exclude a writer" t_shared_holders_coexist

# cachelock holds the lock, COMMAND runs in a job that dies with it: kill
# cachelock (as TerminateProcess would) and COMMAND is gone too (wine's
# processes are Linux processes, with the Windows command line), and the
# lock is free.
t_command_never_runs_unlocked() {
    whold s || return 1
    command_of_s="$(basename "$TOP").*after\.s"
    running "cmd.exe.*$command_of_s" || { echo "COMMAND not seen running"; return 1; }
    kill -9 "$WHOLDER" && wait "$WHOLDER" 2>/dev/null
    wait_until "! running 'cmd.exe.*$command_of_s'" &&
    test ! -e "$T/after.s" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- cmd /c exit 0
}
ok "killing cachelock kills COMMAND too: it never runs without the lock" t_command_never_runs_unlocked

t_non_ascii_names_and_paths() {
    expect_status 0 "$CACHELOCK" run "$T/caché" "日本-é" -- cmd /c exit 0 &&
    test -f "$T/caché/.locks/日本-é.lock" &&
    expect_status 64 "$CACHELOCK" run "$D" "a:b" -- cmd /c exit 0 2>"$T/err" &&
    grep -q "invalid source name 'a:b'" "$T/err"
}
ok "UTF-8 names and directories reach the file system as they are" t_non_ascii_names_and_paths

done_testing
