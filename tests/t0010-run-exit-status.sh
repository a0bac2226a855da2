#!/bin/sh
# cachelock run: every documented exit status.
. "$(dirname "$0")/lib.sh"
plan 14

t_command_status_passes_through() {
    expect_status 0 "$CACHELOCK" run "$D" s -- true &&
    expect_status 3 "$CACHELOCK" run "$D" s -- sh -c 'exit 3' &&
    expect_status 255 "$CACHELOCK" run "$D" s sh -c 'exit 255'
}
ok "command's own exit status" t_command_status_passes_through

t_killed_command_gives_128_plus_signal() {
    expect_status 137 "$CACHELOCK" run "$D" s -- sh -c 'kill -9 $$' &&
    expect_status 143 "$CACHELOCK" run "$D" s -- sh -c 'kill -TERM $$'
}
ok "killed command gives 128+signal" t_killed_command_gives_128_plus_signal

t_busy_nonblock_gives_conflict_code() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -n "$D" s -- true &&
    expect_status 42 "$CACHELOCK" run -n -E 42 "$D" s -- true &&
    expect_status 0 "$CACHELOCK" run -n --conflict-exit-code 0 "$D" s -- false &&
    expect_status 1 "$CACHELOCK" run -w 0 "$D" s -- true &&
    release s
}
ok "busy with -n gives the conflict code (-E sets it)" t_busy_nonblock_gives_conflict_code

t_timeout_gives_conflict_code() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -w 0.2 "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 200 ms waiting for lock '$D/.locks/s.lock'" "$T/err" &&
    expect_status 9 "$CACHELOCK" run --timeout 0.1 -E 9 "$D" s -- true 2>/dev/null &&
    release s
}
ok "timeout gives the conflict code and says so" t_timeout_gives_conflict_code

t_shared_holders_coexist() {
    hold s -s &&
    expect_status 0 "$CACHELOCK" run -s -n "$D" s -- true &&
    expect_status 1 "$CACHELOCK" run -x -n "$D" s -- true 2>/dev/null &&
    release s
}
ok "shared runs coexist and exclude -x" t_shared_holders_coexist

t_usage_errors_give_64() {
    expect_status 64 "$CACHELOCK" 2>"$T/e0" &&
    expect_status 64 "$CACHELOCK" frobnicate 2>"$T/e1" &&
    expect_status 64 "$CACHELOCK" run 2>"$T/e2" &&
    expect_status 64 "$CACHELOCK" run "$D" 2>"$T/e3" &&
    expect_status 64 "$CACHELOCK" run "$D" s 2>"$T/e4" &&
    expect_status 64 "$CACHELOCK" run "$D" s -- 2>"$T/e5" &&
    expect_status 64 "$CACHELOCK" run --bogus "$D" s -- true 2>"$T/e6" &&
    expect_status 64 "$CACHELOCK" run -z "$D" s -- true 2>"$T/e7" &&
    expect_status 64 "$CACHELOCK" run -w "$D" s -- true 2>"$T/e8" &&
    expect_status 64 "$CACHELOCK" run -w abc "$D" s -- true 2>"$T/e9" &&
    expect_status 64 "$CACHELOCK" run -w -1 "$D" s -- true 2>"$T/e10" &&
    expect_status 64 "$CACHELOCK" run -E 256 "$D" s -- true 2>"$T/e11" &&
    expect_status 64 "$CACHELOCK" run "$D" s -c 2>"$T/e12" &&
    expect_status 64 "$CACHELOCK" run --timeout 2>"$T/e13" &&
    for i in 0 1 2 3 4 5 6 7 8 9 10 11 12 13; do
        grep -q "^cachelock: " "$T/e$i" && grep -q -- "--help' for more information" "$T/e$i" ||
            { echo "e$i:"; cat "$T/e$i"; return 1; }
    done &&
    grep -q "invalid timeout 'abc'" "$T/e9" &&
    grep -q "unknown command 'frobnicate'" "$T/e1"
}
ok "usage errors give 64 and point to --help" t_usage_errors_give_64

t_bad_source_name_gives_64() {
    expect_status 64 "$CACHELOCK" run "$D" ../etc -- true 2>"$T/err" &&
    grep -q "invalid source name '../etc': contains a path separator" "$T/err" &&
    test ! -e "$D"
}
ok "invalid source name gives 64 and creates nothing" t_bad_source_name_gives_64

t_missing_command_gives_69() {
    expect_status 69 "$CACHELOCK" run "$D" s -- /nonexistent/cmd 2>"$T/err" &&
    grep -q "cannot run '/nonexistent/cmd': No such file or directory" "$T/err" &&
    expect_status 0 "$CACHELOCK" run -n "$D" s -- true
}
ok "command that cannot run gives 69 and releases" t_missing_command_gives_69

t_symlink_lock_file_gives_66() {
    mkdir -p "$D/.locks" && ln -s "$T/target" "$D/.locks/s.lock" &&
    expect_status 66 "$CACHELOCK" run "$D" s -- true 2>"$T/err" &&
    grep -q "cannot open lock file '$D/.locks/s.lock': Too many levels of symbolic links" "$T/err" &&
    test ! -e "$T/target"
}
ok "symlink at the lock path gives 66 (cannot open)" t_symlink_lock_file_gives_66

t_cache_under_a_file_gives_66() {
    : > "$T/plainfile" &&
    expect_status 66 "$CACHELOCK" run "$T/plainfile/sub" s -- true 2>"$T/err" &&
    grep -q "cannot open lock directory '$T/plainfile/sub/.locks': Not a directory" "$T/err"
}
ok "cache directory below a plain file gives 66" t_cache_under_a_file_gives_66

t_unwritable_cache_gives_73_as_user() {
    mkdir -p "$T/ro" && chmod 555 "$T/ro" && chmod 755 "$TOP" "$T" &&
    expect_status 73 setpriv --reuid=65534 --regid=65534 --clear-groups \
        "$CACHELOCK" run "$T/ro" s -- true 2>"$T/err" &&
    grep -q "cannot create lock directory '$T/ro/.locks': Permission denied" "$T/err"
}
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null; then
    ok "unwritable cache directory gives 73 (as nobody)" t_unwritable_cache_gives_73_as_user
elif [ "$(id -u)" != 0 ]; then
    t_unwritable_cache_gives_73_plain() {
        mkdir -p "$T/ro" && chmod 555 "$T/ro" &&
        expect_status 73 "$CACHELOCK" run "$T/ro" s -- true 2>"$T/err"
    }
    ok "unwritable cache directory gives 73" t_unwritable_cache_gives_73_plain
else
    skip "unwritable cache directory gives 73" "root without setpriv(1) bypasses permissions"
fi

t_out_of_descriptors_gives_71() {
    # With 4 descriptors and 0-2 in use, the lock file open fails (EMFILE).
    expect_status 71 sh -c "ulimit -n 4; exec '$CACHELOCK' run '$D' s -- true" 2>"$T/err" &&
    grep -q "Too many open files" "$T/err"
}
ok "system error gives 71" t_out_of_descriptors_gives_71

t_stdout_write_error_detected() {
    [ -w /dev/full ] || return 0
    expect_status 71 "$CACHELOCK" --help >/dev/full 2>"$T/err" &&
    grep -q "write error on standard output" "$T/err" &&
    expect_status 71 "$CACHELOCK" path "$D" s >/dev/full 2>/dev/null
}
ok "write errors on stdout are reported (71)" t_stdout_write_error_detected

t_help_and_version() {
    "$CACHELOCK" --help | grep -q "^Usage: cachelock COMMAND" &&
    "$CACHELOCK" run --help | grep -q "^Usage: cachelock run" &&
    "$CACHELOCK" status --help | grep -q "^Usage: cachelock status" &&
    "$CACHELOCK" path --help | grep -q "^Usage: cachelock path" &&
    "$CACHELOCK" --version | grep -q "^cachelock [0-9]" &&
    test -z "$("$CACHELOCK" --help 2>&1 >/dev/null)"
}
ok "--help goes to stdout with status 0; --version" t_help_and_version

done_testing
