#!/bin/sh
# cachelock run: the line printed while waiting names the holder.
. "$(dirname "$0")/lib.sh"
plan 6

t_message_names_source_path_and_holder() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -w 0.3 "$D" s -- true 2>"$T/err" &&
    grep -q "^cachelock: waiting for 's' ('$D/.locks/s.lock'), held exclusive by pid $HOLDER (.*cachelock run $D s -- sh -c" "$T/err" &&
    grep -q "locks die with their process, so a wait means a live holder" "$T/err" &&
    grep -q "giving up after 0.3s" "$T/err" &&
    test "$(grep -c '^cachelock: waiting for' "$T/err")" -eq 1
}
ok_named "wait message: source, path, holder pid and command" t_message_names_source_path_and_holder

t_message_is_printed_before_waiting() {
    hold s || return 1
    "$CACHELOCK" run "$D" s -- touch "$T/ran" 2>"$T/err" &
    waiter=$!
    bg_pid $waiter
    wait_for_file "$T/err" "waiting for 's'" &&
    test ! -e "$T/ran" &&
    release s &&
    wait "$waiter" && test -e "$T/ran"
}
ok "the message appears while waiting; the command runs after release" t_message_is_printed_before_waiting

t_quiet_silences_it() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -q -w 0.2 "$D" s -- true 2>"$T/err" &&
    test ! -s "$T/err" &&
    expect_status 1 "$CACHELOCK" run --quiet -n "$D" s -- true 2>"$T/err" &&
    test ! -s "$T/err"
}
ok "-q silences the wait and conflict messages" t_quiet_silences_it

t_flock1_holder_is_named() {
    mkdir -p "$D/.locks" && : > "$D/.locks/s.lock" &&
    flock1_hold "$D/.locks/s.lock" &&
    expect_status 1 "$CACHELOCK" run -w 0.2 "$D" s -- true 2>"$T/err" &&
    grep -q "held exclusive by pid $FLOCK1 (flock $D/.locks/s.lock sh -c" "$T/err"
}
ok_named "a flock(1) holder is named from /proc/locks" t_flock1_holder_is_named

t_shared_holders_are_counted() {
    hold a -s || return 1
    h1=$HOLDER
    "$CACHELOCK" run -s "$D" a -- sh -c "echo \$\$ > '$T/h2.tmp'; mv '$T/h2.tmp' '$T/h2'; exec sleep 600" >/dev/null 2>&1 &
    h2=$!
    bg_pid $h2
    wait_for_file "$T/h2" && bg_pid "$(cat "$T/h2")" &&
    expect_status 1 "$CACHELOCK" run -x -w 0.2 "$D" a -- true 2>"$T/err" &&
    { grep -q "held shared by 2: pid $h1 (.*), pid $h2 (.*)" "$T/err" ||
      grep -q "held shared by 2: pid $h2 (.*), pid $h1 (.*)" "$T/err"; }
}
ok_named "shared holders are counted and listed" t_shared_holders_are_counted

t_terminal_shows_elapsed_counter() {
    hold s &&
    # script(1) gives the waiter a terminal for stderr.
    expect_status 1 script -qec "'$CACHELOCK' run -w 1.2 '$D' s -- true" /dev/null >"$T/tty" 2>&1 &&
    grep -q "waited 1s" "$T/tty" &&
    grep -q "waited 1.2s" "$T/tty" &&
    grep -q "timed out after 1200 ms" "$T/tty"
}
if command -v script >/dev/null; then
    ok "on a terminal an elapsed-time counter updates" t_terminal_shows_elapsed_counter
else
    skip "on a terminal an elapsed-time counter updates" "script(1) from util-linux is not installed"
fi

done_testing
