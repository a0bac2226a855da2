#!/bin/sh
# cachelock status: text and JSON, with our holders, flock(1) and waiters.
. "$(dirname "$0")/lib.sh"
plan 8

t_lists_all_sources_free_and_held() {
    "$CACHELOCK" run "$D" idle -- true &&
    hold busy &&
    "$CACHELOCK" status "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -qx "idle: free" "$T/out" &&
    grep -q "^busy: exclusive by pid $HOLDER (.*cachelock run $D busy -- sh -c" "$T/out" &&
    test "$(sed -n 1p "$T/out" | cut -d: -f1)" = busy   # sorted
}
ok_named "status lists every source: free, exclusive with pid and command" t_lists_all_sources_free_and_held

t_shared_by_n() {
    hold r -s && h1=$HOLDER &&
    "$CACHELOCK" status "$D" r >"$T/out" &&
    grep -q "^r: shared by 1: pid $h1 (" "$T/out"
}
ok_named "status shows shared holders" t_shared_by_n

t_json_lines() {
    "$CACHELOCK" run "$D" idle -- true &&
    hold busy &&
    "$CACHELOCK" status --json "$D" >"$T/out" &&
    cat "$T/out" &&
    test "$(wc -l < "$T/out")" -eq 2 &&
    grep -q "^{\"source\":\"busy\",\"path\":\"$D/.locks/busy.lock\",\"state\":\"exclusive\",\"holders\":\[{\"pid\":$HOLDER,\"mode\":\"exclusive\",\"command\":\".*cachelock run $D busy -- sh -c echo" "$T/out" &&
    grep -q "^{\"source\":\"idle\",.*\"state\":\"free\",\"holders\":\[\],\"waiters\":\[\]" "$T/out" &&
    cp "$T/out" "$TOP/json.$n"
}
ok_named "status --json prints one valid JSON object per source" t_json_lines

t_flock1_holder_and_waiter() {
    mkdir -p "$D/.locks" && : > "$D/.locks/s.lock" &&
    flock1_hold "$D/.locks/s.lock" || return 1
    # A second flock(1) blocks in the kernel: a waiter /proc/locks shows.
    flock -s "$D/.locks/s.lock" true >/dev/null 2>&1 &
    w=$!
    bg_pid $w
    i=0
    until grep -q -- "-> FLOCK.* $w " /proc/locks; do
        i=$((i + 1)); [ $i -lt 2000 ] || return 1; sleep 0.01
    done
    "$CACHELOCK" status "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -q "^s: exclusive by pid $FLOCK1 (flock $D/.locks/s.lock sh -c .*); 1 waiting: pid $w (flock -s $D/.locks/s.lock true)$" "$T/out" &&
    "$CACHELOCK" status --json "$D" s >"$T/json" &&
    grep -q "\"waiters\":\[{\"pid\":$w,\"mode\":\"shared\",\"command\":\"flock -s $D/.locks/s.lock true\",\"visible\":true}\]" "$T/json"
}
ok_named "status sees a flock(1) holder and a blocked waiter" t_flock1_holder_and_waiter

t_named_sources_and_missing_file() {
    "$CACHELOCK" status "$D" never >"$T/out" &&
    grep -qx "never: free (no lock file yet)" "$T/out" &&
    test ! -e "$D" &&
    expect_status 64 "$CACHELOCK" status "$D" "../x" 2>"$T/err" &&
    grep -q "invalid source name" "$T/err"
}
ok "status of a named source without a lock file; bad names" t_named_sources_and_missing_file

t_json_escapes_strings() {
    # The holder's command line has a double quote, a backslash and a tab.
    "$CACHELOCK" run "$D" 'ünï name' -- sh -c "echo \$\$ > '$T/p.tmp'; mv '$T/p.tmp' '$T/p'; exec sleep 600" 'quo"te	back\slash' >/dev/null 2>&1 &
    bg_pid $!
    wait_for_file "$T/p" && bg_pid "$(cat "$T/p")" &&
    "$CACHELOCK" status --json "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -q '"source":"ünï name"' "$T/out" &&
    grep -qF 'quo\"te?back\\slash' "$T/out" &&   # control characters shown as ?
    cp "$T/out" "$TOP/json.$n"
}
ok_named "status --json output stays valid JSON" t_json_escapes_strings

t_empty_or_missing_cache() {
    "$CACHELOCK" status "$D" >"$T/out" && test ! -s "$T/out" &&
    CACHELOCK_DIR="$D" "$CACHELOCK" status >"$T/out" && test ! -s "$T/out" &&
    expect_status 64 env -u CACHELOCK_DIR "$CACHELOCK" status 2>/dev/null &&
    : > "$T/file" &&
    expect_status 66 "$CACHELOCK" status "$T/file" 2>"$T/err" &&
    grep -q "cannot open lock directory '$T/file/.locks': Not a directory" "$T/err"
}
ok "status of an empty, missing or bad cache" t_empty_or_missing_cache

# The JSON of the two cases above, through a JSON parser.
t_json_parses() {
    for f in "$TOP"/json.*; do
        python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$f" || return 1
    done
}
if command -v python3 >/dev/null; then
    ok_named "status --json output parses as JSON (python3)" t_json_parses
else
    skip "status --json output parses as JSON" "python3 is not installed"
fi

done_testing
