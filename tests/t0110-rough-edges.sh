#!/bin/sh
# The rough edges found in review: exit statuses as documented, JSON that
# is always valid, lost output, huge and tiny timeouts, names of other
# tools, one reading of the lock table for status.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
plan 11

NOBODY="setpriv --reuid=65534 --regid=65534 --clear-groups"

t_create_73_open_66_as_user() {
    # The rule: failing to create what is missing is 73, failing to open
    # what exists is 66.
    mkdir -p "$D/.locks" && : > "$D/.locks/t.lock" && chmod 600 "$D/.locks/t.lock" &&
    chmod 755 "$TOP" "$T" "$D" "$D/.locks" &&
    expect_status 73 $NOBODY "$CACHELOCK" run "$D" s -- true 2>"$T/e1" &&
    grep -q "^cachelock: cannot create lock file '$D/.locks/s.lock': Permission denied$" "$T/e1" &&
    expect_status 73 $NOBODY "$CACHELOCK" path --create "$D" s 2>/dev/null >/dev/null &&
    expect_status 66 $NOBODY "$CACHELOCK" run "$D" t -- true 2>"$T/e2" &&
    grep -q "^cachelock: cannot open lock file '$D/.locks/t.lock': Permission denied$" "$T/e2" &&
    expect_status 66 $NOBODY "$CACHELOCK" path --create "$D" t 2>/dev/null >/dev/null
}
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    ok "permission denied: creating a lock file is 73, opening an existing one 66" t_create_73_open_66_as_user
else
    skip "permission denied: creating a lock file is 73, opening an existing one 66" \
        "needs root and setpriv(1) to run as nobody"
fi

t_man_page_documents_every_status() {
    man="$ROOT/man/cachelock.1"
    sed -n '/^\.SH EXIT STATUS/,/^\.SH /p' "$man" > "$T/exit" &&
    for code in 1 64 66 69 71 73 75; do
        grep -q "^\.B $code\$" "$T/exit" || { echo "EXIT STATUS lacks $code"; return 1; }
    done &&
    grep -q '^\.SH DIFFERENCES FROM FLOCK(1)' "$man" &&
    grep -q 'exec 9<>"$(cachelock path \\-\\-create' "$man" &&
    grep -q 'exec 9<>"$(cachelock path --create' "$ROOT/README.md"
}
ok "the man page lists every exit status, the differences from flock(1), descriptor mode" t_man_page_documents_every_status

t_json_always_valid() {
    # A cache path, a source name and a holder command line with bytes that
    # are not UTF-8 and control characters.
    bad=$(printf 'c\377che')
    name=$(printf 'n\376m\001e')
    C="$T/$bad"
    mkdir -p "$C/.locks" && : > "$C/.locks/$name.lock" && : > "$C/.locks/ok.lock" &&
    flock1_hold "$C/.locks/$name.lock" -s &&
    "$CACHELOCK" run -s "$C" ok -- sh -c "echo \$\$ > '$T/p.tmp'; mv '$T/p.tmp' '$T/p'; exec sleep 600" "$(printf 'a\377b\tc')" >/dev/null 2>&1 &
    bg_pid $!
    wait_for_file "$T/p" && bg_pid "$(cat "$T/p")" &&
    "$CACHELOCK" status --json "$C" >"$T/json" &&
    test "$(wc -l < "$T/json")" -eq 2 &&
    grep -q '"source":"n\\ufffdm\\u0001e"' "$T/json" &&
    grep -q '"path":"[^"]*/c\\ufffdche/\.locks/ok\.lock"' "$T/json" &&
    grep -q 'a\\ufffdb' "$T/json" &&
    if have_python3; then
        python3 -m json.tool --json-lines "$T/json" >/dev/null
    fi &&
    "$CACHELOCK" status "$C" >"$T/text" &&
    grep -q '^n\\xfem\\x01e: shared by 1: pid ' "$T/text"
}
ok_named "status --json is valid JSON (U+FFFD for bytes not UTF-8); text is escaped" t_json_always_valid

t_closed_or_full_stdout() {
    "$CACHELOCK" run "$D" s -- true || return 1
    for cmd in "path $D x" "path --create $D x" "status $D" "status --json $D" "prune --dry-run $D" \
               "--version" "--help" "run --help" "lock --help" "status -V"; do
        set +e
        # shellcheck disable=SC2086
        timeout 20 "$CACHELOCK" $cmd >&- 2>"$T/err"; st=$?
        set -e
        [ $st -eq 71 ] && grep -q "write error on standard output" "$T/err" ||
            { echo "$cmd >&-: status $st"; cat "$T/err"; return 1; }
        if [ -w /dev/full ]; then
            set +e
            timeout 20 "$CACHELOCK" $cmd >/dev/full 2>"$T/err"; st=$?
            set -e
            [ $st -eq 71 ] && grep -q "write error on standard output: No space left on device" "$T/err" ||
                { echo "$cmd >/dev/full: status $st"; cat "$T/err"; return 1; }
        fi
    done &&
    # Nothing to write, nothing lost: a closed stdout is no error then.
    expect_status 0 "$CACHELOCK" status "$T/empty" >&-
}
ok "output to a closed or full stdout: 71 and a message, never 0" t_closed_or_full_stdout

t_huge_timeouts_saturate() {
    hold s &&
    for w in 307445734561.826m 106751991167d 99999999999999999999 9223372036854775807ms; do
        expect_status_within 0.5 124 "$CACHELOCK" run -q -w "$w" "$D" s -- true || return 1
    done &&
    CACHELOCK_TIMEOUT=99999999999999999999d expect_status_within 0.5 124 "$CACHELOCK" run -q "$D" s -- true &&
    expect_status 0 "$CACHELOCK" prune --older-than 99999999999999999999d "$D" >/dev/null
}
ok "-w saturates: huge values wait that long, never give up at once" t_huge_timeouts_saturate

t_tiny_timeout_is_a_wait() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -w 0.0000000001 "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 1 ms" "$T/err" &&
    expect_status 1 "$CACHELOCK" run -w 0.0000000000000000001ms "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 1 ms" "$T/err" &&
    expect_status 1 "$CACHELOCK" run -w 0.0000000000 "$D" s -- true 2>"$T/err" &&
    ! grep -q "timed out" "$T/err"
}
ok "more than 9 fraction digits round up to a real wait, never a try" t_tiny_timeout_is_a_wait

t_status_reads_lock_table_once() {
    # LeakSanitizer cannot run under ptrace.
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0
    export ASAN_OPTIONS
    "$CACHELOCK" run "$D" a -- true &&
    strace -f -e trace=open,openat -o "$T/one" "$CACHELOCK" status "$D" >/dev/null &&
    for s in b c d e f g h; do "$CACHELOCK" run "$D" $s -- true || return 1; done &&
    strace -f -e trace=open,openat -o "$T/many" "$CACHELOCK" status "$D" >"$T/out" &&
    test "$(wc -l < "$T/out")" -eq 8 &&
    one=$(grep -c '"/proc/locks"' "$T/one") && many=$(grep -c '"/proc/locks"' "$T/many") &&
    { [ "$one" -ge 1 ] && [ "$many" -eq "$one" ] ||
        { echo "/proc/locks opened $one times for 1 source, $many for 8"; false; }; }
}
if command -v strace >/dev/null && strace -o /dev/null true 2>/dev/null; then
    ok_named "status of a whole cache reads the lock table as often for 8 sources as for 1" t_status_reads_lock_table_once
else
    skip "status of a whole cache reads the lock table as often for 8 sources as for 1" \
        "strace(1) is not installed or ptrace is not allowed"
fi

# Lock files made by flock(1) or the Rust original with names that the
# portable rule refuses.
make_foreign() {
    mkdir -p "$D/.locks" &&
    for n in aux 'tools:beta' 'dot.' 'COM¹' ok; do : > "$D/.locks/$n.lock" || return 1; done
}

t_status_and_prune_handle_foreign_names() {
    make_foreign && flock1_hold "$D/.locks/tools:beta.lock" &&
    "$CACHELOCK" status "$D" >"$T/out" &&
    cat "$T/out" &&
    test "$(wc -l < "$T/out")" -eq 5 &&
    grep -qx "aux: free (name not portable: --any-name)" "$T/out" &&
    grep -qx "dot.: free (name not portable: --any-name)" "$T/out" &&
    grep -qx "ok: free" "$T/out" &&
    grep -q "^tools:beta: exclusive by pid $FLOCK1 (flock .*) (name not portable: --any-name)$" "$T/out" &&
    "$CACHELOCK" status --json "$D" >"$T/json" &&
    grep -q '"source":"aux",.*"portable":false' "$T/json" &&
    grep -q '"source":"ok",.*"portable":true' "$T/json" &&
    "$CACHELOCK" prune "$D" >"$T/prune" &&
    cat "$T/prune" &&
    grep -qx "removed aux" "$T/prune" && grep -qx "removed dot." "$T/prune" &&
    grep -qx "removed COM¹" "$T/prune" &&
    grep -qx "skipped tools:beta: in use" "$T/prune" &&
    test ! -e "$D/.locks/aux.lock" && test -e "$D/.locks/tools:beta.lock"
}
ok_named "status shows and prune handles lock files with names the portable rule refuses" t_status_and_prune_handle_foreign_names

t_any_name_opt_in() {
    make_foreign || return 1
    for n in aux 'tools:beta' 'dot.' 'COM¹' 'CONIN$' 'x '; do
        expect_status 64 "$CACHELOCK" run "$D" "$n" -- true 2>"$T/err" &&
        grep -q "not portable: --any-name accepts it" "$T/err" &&
        expect_status 64 "$CACHELOCK" path "$D" "$n" 2>/dev/null >/dev/null &&
        expect_status 64 "$CACHELOCK" status "$D" "$n" 2>/dev/null >/dev/null &&
        expect_status 0 "$CACHELOCK" run --any-name "$D" "$n" -- true &&
        test "$("$CACHELOCK" path --any-name "$D" "$n")" = "$D/.locks/$n.lock" &&
        "$CACHELOCK" status --any-name "$D" "$n" >/dev/null || { echo "name '$n'"; return 1; }
    done &&
    flock1_hold "$D/.locks/aux.lock" &&
    expect_status 1 "$CACHELOCK" run --any-name -n -q "$D" aux -- true &&
    "$CACHELOCK" status --any-name "$D" aux >"$T/out" &&
    grep -q "^aux: exclusive by pid $FLOCK1 " "$T/out" &&
    expect_status 64 "$CACHELOCK" run --any-name "$D" 'a/b' -- true 2>/dev/null
}
ok_named "--any-name (run, path, status) opts in to names valid here; portable by default" t_any_name_opt_in

t_wait_line_escapes() {
    n=$(printf 'esc\033[2Jape')
    "$CACHELOCK" path --create --any-name "$D" "$n" >/dev/null &&
    hold "$n" --any-name &&
    expect_status 1 "$CACHELOCK" run --any-name -w 0.1 "$D" "$n" -- true 2>"$T/err" &&
    grep -q "waiting for 'esc\\\\x1b\[2Jape'" "$T/err" &&
    ! grep -q "$(printf '\033')" "$T/err"
}
ok "names and command lines reach the terminal escaped" t_wait_line_escapes

t_status_named_missing() {
    "$CACHELOCK" status "$D" a >"$T/out" &&
    grep -qx "a: free (no lock file yet)" "$T/out" &&
    "$CACHELOCK" status --json "$D" a >"$T/json" &&
    grep -q '"exists":false,"known":true,"portable":true' "$T/json"
}
ok "status of a named source without a lock file, in text and JSON" t_status_named_missing

done_testing
