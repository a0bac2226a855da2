#!/bin/sh
# flock(1)'s descriptor mode on cache paths: cachelock path --create, then
# exec 9<>PATH, cachelock lock [-n|-s|-w] 9 ... cachelock unlock 9.
. "$(dirname "$0")/lib.sh"
plan 15

L() { echo "$D/.locks/${1:-s}.lock"; }

t_path_create() {
    p=$("$CACHELOCK" path --create "$D" s) &&
    test "$p" = "$(L)" && test -f "$p" && test ! -s "$p" &&
    echo keep > "$p" &&
    test "$("$CACHELOCK" path --create "$D" s)" = "$p" &&
    test "$(cat "$p")" = keep &&
    test "$(CACHELOCK_DIR="$D" "$CACHELOCK" path --create t)" = "$(L t)" && test -f "$(L t)" &&
    ln -s "$T/elsewhere" "$(L u)" &&
    expect_status 66 "$CACHELOCK" path --create "$D" u 2>"$T/err" >/dev/null &&
    grep -q "Too many levels of symbolic links" "$T/err" && test ! -e "$T/elsewhere" &&
    expect_status 64 "$CACHELOCK" path --create "$D" ../x 2>/dev/null >/dev/null
}
ok "path --create makes the cache, .locks and the lock file, prints the path" t_path_create

t_script_pattern() {
    # The script of README.md and cachelock(1), with checks in the middle.
    cat > "$T/script" <<EOF
CACHE='$D'
exec 9<>"\$("$CACHELOCK" path --create "\$CACHE" registry)" || exit 1
"$CACHELOCK" lock -n 9 || { echo busy; exit 1; }
"$CACHELOCK" run -n -q "\$CACHE" registry -- true; echo "run -n under the lock: \$?"
flock -n "\$CACHE/.locks/registry.lock" true; echo "flock -n under the lock: \$?"
"$CACHELOCK" status "\$CACHE" | sed 's/ by pid.*//'
"$CACHELOCK" unlock 9
"$CACHELOCK" run -n "\$CACHE" registry -- echo "free after unlock"
EOF
    timeout 20 sh "$T/script" >"$T/out" 2>&1 &&
    cat "$T/out" &&
    grep -qx "run -n under the lock: 1" "$T/out" &&
    grep -qx "flock -n under the lock: 1" "$T/out" &&
    grep -qx "registry: exclusive" "$T/out" &&
    grep -qx "free after unlock" "$T/out"
}
ok_named "the documented script: lock -n 9, commands under the lock, unlock 9" t_script_pattern

t_held_until_the_script_exits() {
    "$CACHELOCK" path --create "$D" s >/dev/null &&
    sh -c "exec 9<>'$(L)'; '$CACHELOCK' lock 9 || exit 1; touch '$T/locked'
           i=0; while [ ! -e '$T/go' ] && [ \$i -lt 2000 ]; do sleep 0.01; i=\$((i+1)); done" >/dev/null 2>&1 &
    script=$!
    bg_pid $script
    wait_for_file "$T/locked" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    expect_status 1 flock -n "$(L)" true &&
    touch "$T/go" && wait $script &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "the lock outlives cachelock lock: held by the script until it exits" t_held_until_the_script_exits

t_nonblock_busy() {
    "$CACHELOCK" path --create "$D" s >/dev/null && hold s || return 1
    exec 9<>"$(L)"
    expect_status 1 "$CACHELOCK" lock -n 9 >"$T/out" 2>"$T/err" &&
    test ! -s "$T/out" &&
    grep -q "^cachelock: cannot lock '$(L)': busy, held exclusive by pid $HOLDER (" "$T/err" &&
    expect_status 7 "$CACHELOCK" lock --nonblock -E 7 9 2>/dev/null &&
    expect_status 1 "$CACHELOCK" lock -q --nb 9 >"$T/out" 2>"$T/err" &&
    test ! -s "$T/out" && test ! -s "$T/err" &&
    expect_status_within 5 1 "$CACHELOCK" lock -w 60 -n 9 2>/dev/null &&
    expect_status 1 "$CACHELOCK" lock -w 0 9 2>/dev/null
}
ok_named "lock -n on a busy file: 1 (or -E), message on stderr only, -q silent, -n wins" t_nonblock_busy

t_timeout() {
    "$CACHELOCK" path --create "$D" s >/dev/null && hold s || return 1
    exec 9<>"$(L)"
    expect_status 1 "$CACHELOCK" lock -w 0.3 9 >"$T/out" 2>"$T/err" &&
    test ! -s "$T/out" &&
    grep -q "waiting for '$(L)' (descriptor 9), held exclusive by pid $HOLDER" "$T/err" &&
    grep -q "timed out after 300 ms waiting for lock '$(L)'" "$T/err" &&
    expect_status 5 "$CACHELOCK" lock --wait 0.1 -E 5 -q 9 2>"$T/err" &&
    test ! -s "$T/err" &&
    CACHELOCK_TIMEOUT=0.1 expect_status 1 "$CACHELOCK" lock -q 9 &&
    expect_status_within 1 124 "$CACHELOCK" lock -q -w 106751991167d 9
}
ok_named "lock -w: a timer ends the blocked flock(2): conflict code; huge values wait" t_timeout

t_blocks_then_granted() {
    "$CACHELOCK" path --create "$D" s >/dev/null && hold s || return 1
    sh -c "exec 9<>'$(L)'; '$CACHELOCK' lock 9 && echo granted > '$T/got'" >/dev/null 2>"$T/err" &
    w=$!
    bg_pid $w
    # It blocks in the kernel: the lock table shows it waiting.
    wait_until '[ "$(blocked_on "$(L)")" = 1 ]' &&
    test ! -e "$T/got" &&
    grep -q "waiting for '$(L)'" "$T/err" &&
    release s &&
    wait $w && grep -qx granted "$T/got"
}
ok "lock without -n blocks in flock(2) and is granted when the holder goes" t_blocks_then_granted

t_shared() {
    "$CACHELOCK" path --create "$D" s >/dev/null || return 1
    exec 8<>"$(L)" 9<>"$(L)"
    "$CACHELOCK" lock -s 8 &&
    "$CACHELOCK" lock --shared -n 9 &&
    expect_status 0 "$CACHELOCK" run -s -n "$D" s -- true &&
    expect_status 1 "$CACHELOCK" run -x -n -q "$D" s -- true &&
    "$CACHELOCK" unlock 8 && "$CACHELOCK" lock -u 9 &&
    expect_status 0 "$CACHELOCK" run -x -n "$D" s -- true
}
ok "lock -s: shared locks on two descriptors coexist and exclude -x" t_shared

t_not_a_lock_file() {
    mkdir -p "$D/.locks" && : > "$T/plain" && : > "$D/.locks/notes.txt" || return 1
    expect_status 64 "$CACHELOCK" lock x 2>"$T/e1" &&
    grep -q "invalid file descriptor 'x'" "$T/e1" &&
    expect_status 64 "$CACHELOCK" lock 9 9>&- 2>"$T/e2" &&
    grep -q "descriptor 9 is not open" "$T/e2" &&
    expect_status 64 "$CACHELOCK" lock 9 9</dev/null 2>"$T/e3" &&
    grep -q "descriptor 9 is not a lock file of a cache: '/dev/null' is not a regular file" "$T/e3" &&
    expect_status 64 "$CACHELOCK" lock 9 9<>"$T/plain" 2>"$T/e4" &&
    grep -q "is not in a .locks directory" "$T/e4" &&
    expect_status 64 "$CACHELOCK" lock 9 9<>"$D/.locks/notes.txt" 2>"$T/e5" &&
    grep -q "is not {CACHE_DIR}/.locks/{SOURCE}.lock" "$T/e5" &&
    expect_status 64 "$CACHELOCK" lock 2>/dev/null &&
    expect_status 64 "$CACHELOCK" lock 9 10 2>/dev/null &&
    expect_status 64 "$CACHELOCK" unlock 9 9>&- 2>/dev/null
}
ok "lock refuses an FD that is not open or not a lock file of a cache (64)" t_not_a_lock_file

t_pruned_before_lock() {
    p=$("$CACHELOCK" path --create "$D" s) || return 1
    exec 9<>"$p"
    "$CACHELOCK" prune -q "$D" >/dev/null && test ! -e "$p" &&
    expect_status 75 "$CACHELOCK" lock 9 2>"$T/err" &&
    grep -q "lock file of descriptor 9 was removed by cachelock prune: open its path again" "$T/err" &&
    # Removed by other means: the message names the path.
    exec 9<>"$("$CACHELOCK" path --create "$D" s)" && rm "$p" &&
    expect_status 75 "$CACHELOCK" lock 9 2>"$T/err" &&
    grep -q "lock file '$p' (descriptor 9) was removed (pruned?): open its path again" "$T/err" &&
    exec 9<>"$("$CACHELOCK" path --create "$D" s)" &&
    expect_status 0 "$CACHELOCK" lock -n 9
}
ok "lock on a pruned file: 75, telling the script to open the path again" t_pruned_before_lock

t_replaced_while_waiting() {
    p=$("$CACHELOCK" path --create "$D" s) && hold s || return 1
    sh -c "exec 9<>'$p'; '$CACHELOCK' lock 9; echo \$? > '$T/st.tmp'; mv '$T/st.tmp' '$T/st'
           flock -n '$T/old.lock' true; echo \$? > '$T/old.tmp'; mv '$T/old.tmp' '$T/old'" >/dev/null 2>"$T/err" &
    w=$!
    bg_pid $w
    wait_until '[ "$(blocked_on "$p")" = 1 ]' &&
    # Someone replaces the lock file while the script waits on the old one
    # (what only a careless cleanup does; prune never removes a held file).
    mv "$p" "$T/old.lock" && : > "$p" &&
    release s &&
    wait_for_file "$T/old" &&
    test "$(cat "$T/st")" = 75 &&
    grep -q "was removed or replaced while we waited for it (pruned?); it is unlocked" "$T/err" &&
    # ...and it did not keep the old file locked.
    test "$(cat "$T/old")" = 0
}
ok "lock granted on a file the path no longer names: unlocked, 75" t_replaced_while_waiting

t_flock1_interop() {
    p=$("$CACHELOCK" path --create "$D" s) || return 1
    flock1_hold "$p" &&
    exec 9<>"$p" &&
    expect_status 1 "$CACHELOCK" lock -n -q 9 &&
    flock1_release &&
    "$CACHELOCK" lock -n 9 &&
    expect_status 1 flock -n "$p" true &&
    "$CACHELOCK" unlock 9 &&
    expect_status 0 flock -n "$p" true
}
ok "flock(1) and cachelock lock exclude each other on the same file" t_flock1_interop

t_any_name() {
    p=$("$CACHELOCK" path --create --any-name "$D" 'tools:beta') &&
    test "$p" = "$D/.locks/tools:beta.lock" && test -f "$p" || return 1
    exec 9<>"$p"
    expect_status 64 "$CACHELOCK" lock -n 9 2>"$T/err" &&
    grep -q "invalid source name 'tools:beta'.*--any-name" "$T/err" &&
    "$CACHELOCK" lock -n --any-name 9 &&
    expect_status 1 "$CACHELOCK" run -n -q --any-name "$D" 'tools:beta' -- true
}
ok "lock --any-name for names that are valid here but not portable" t_any_name

t_blocked_sigalrm_does_not_defeat_timeout() {
    "$CACHELOCK" path --create "$D" s >/dev/null && hold s || return 1
    exec 9<>"$(L)"
    # A SIGALRM blocked by the caller is inherited across exec.
    expect_status 1 python3 -c '
import os, signal, sys
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])
os.execv(sys.argv[1], sys.argv[1:])' "$CACHELOCK" lock -q -w 0.2 9
}
if have_python3; then
    ok "lock -w works when the caller blocks SIGALRM" t_blocked_sigalrm_does_not_defeat_timeout
else
    skip "lock -w works when the caller blocks SIGALRM" "python3 is not installed"
fi

t_stray_sigalrm_does_not_end_wait() {
    "$CACHELOCK" path --create "$D" s >/dev/null && hold s || return 1
    sh -c "exec 9<>'$(L)'; exec '$CACHELOCK' lock -w 20 9" >/dev/null 2>"$T/err" &
    w=$!
    bg_pid $w
    wait_until '[ "$(blocked_on "$(L)")" = 1 ]' &&
    kill -ALRM $w &&
    wait_until '[ "$(blocked_on "$(L)")" = 1 ]' &&
    kill -0 $w &&
    release s &&
    wait $w
}
ok "lock -w: only its own timer ends the wait, not a SIGALRM from kill(1)" t_stray_sigalrm_does_not_end_wait

t_verbose() {
    "$CACHELOCK" path --create "$D" s >/dev/null || return 1
    exec 9<>"$(L)"
    "$CACHELOCK" lock --verbose 9 >"$T/out" 2>"$T/err" &&
    test ! -s "$T/out" &&
    grep -q "^cachelock: getting lock took [0-9]*\.[0-9]\{6\} seconds$" "$T/err"
}
ok "lock --verbose says how long it took, on stderr" t_verbose

done_testing
