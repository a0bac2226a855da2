#!/bin/sh
# cachelock path, and the environment variables.
. "$(dirname "$0")/lib.sh"
plan 5

t_path_prints_lock_path() {
    test "$("$CACHELOCK" path /var/cache/x registry)" = /var/cache/x/.locks/registry.lock &&
    test "$("$CACHELOCK" path /var/cache/x/ registry)" = /var/cache/x/.locks/registry.lock &&
    test "$(CACHELOCK_DIR=/c "$CACHELOCK" path s)" = /c/.locks/s.lock &&
    test ! -e /var/cache/x
}
ok "path prints {dir}/.locks/{source}.lock and touches nothing" t_path_prints_lock_path

t_path_refuses_bad_names() {
    expect_status 64 "$CACHELOCK" path "$D" 'a/b' 2>"$T/err" &&
    grep -q "^cachelock: invalid source name 'a/b': contains a path separator$" "$T/err" &&
    expect_status 64 "$CACHELOCK" path "$D" '' 2>/dev/null &&
    expect_status 64 "$CACHELOCK" path "$D" 'con' 2>/dev/null &&
    expect_status 64 "$CACHELOCK" path 2>/dev/null &&
    expect_status 64 "$CACHELOCK" path a b c 2>/dev/null &&
    expect_status 64 env -u CACHELOCK_DIR "$CACHELOCK" path s 2>/dev/null &&
    expect_status 64 "$CACHELOCK" path --bogus 2>/dev/null
}
ok "path refuses bad names and arguments with 64" t_path_refuses_bad_names

t_cachelock_dir_default() {
    CACHELOCK_DIR="$D" "$CACHELOCK" run s -- true &&
    test -e "$D/.locks/s.lock" &&
    expect_status 64 env -u CACHELOCK_DIR "$CACHELOCK" run s -- true 2>"$T/err" &&
    grep -q "CACHELOCK_DIR is not set" "$T/err"
}
ok "CACHELOCK_DIR supplies the cache directory" t_cachelock_dir_default

t_cachelock_timeout_default() {
    hold s &&
    CACHELOCK_TIMEOUT=0.2 expect_status 1 "$CACHELOCK" run "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 200 ms" "$T/err" &&
    CACHELOCK_TIMEOUT=30 expect_status 1 "$CACHELOCK" run -n "$D" s -- true 2>/dev/null &&
    CACHELOCK_TIMEOUT=bogus expect_status 64 "$CACHELOCK" run "$D" s -- true 2>/dev/null
}
ok "CACHELOCK_TIMEOUT is the default timeout; -n and -w override it" t_cachelock_timeout_default

t_durations() {
    hold s &&
    expect_status 1 "$CACHELOCK" run -w 150ms "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 150 ms" "$T/err" &&
    expect_status 1 "$CACHELOCK" run -w .1 "$D" s -- true 2>"$T/err" &&
    grep -q "timed out after 100 ms" "$T/err" &&
    expect_status 64 "$CACHELOCK" run -w 1e3 "$D" s -- true 2>/dev/null &&
    expect_status 64 "$CACHELOCK" run -w . "$D" s -- true 2>/dev/null &&
    expect_status 64 "$CACHELOCK" run -w 1.5x "$D" s -- true 2>/dev/null &&
    expect_status 64 "$CACHELOCK" run -w '' "$D" s -- true 2>/dev/null &&
    expect_status 64 "$CACHELOCK" run -w 1.2.3 "$D" s -- true 2>/dev/null
}
ok "timeouts accept fractions and units, refuse junk" t_durations

done_testing
