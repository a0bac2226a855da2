#!/bin/sh
# cachelock.exe status, path and prune under wine.  Run by tests/wine.sh
# (make check-windows) with BUILD the Windows build.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/wlib.sh"
plan 6

t_path_joins_with_backslashes() {
    "$CACHELOCK" path "$D" registry >"$T/out" &&
    test "$(cat "$T/out")" = "$D\\.locks\\registry.lock" &&
    test ! -e "$D" &&
    "$CACHELOCK" path --create "$D" registry >/dev/null &&
    test -f "$D/.locks/registry.lock" &&
    "$CACHELOCK" path 'C:\cache\' s >"$T/out" &&
    test "$(cat "$T/out")" = 'C:\cache\.locks\s.lock' &&
    expect_status 64 "$CACHELOCK" path "$D" "a\\b" 2>"$T/err" &&
    grep -q "path separator" "$T/err"
}
ok "path prints the lock file's path, joined with '\\', and --create makes it" t_path_joins_with_backslashes

t_status_lists_sources() {
    "$CACHELOCK" run "$D" idle -- cmd /c exit 0 &&
    "$CACHELOCK" run --any-name "$D" "dot." -- cmd /c exit 0 &&
    "$CACHELOCK" status "$D" >"$T/out" &&
    cat "$T/out" &&
    test "$(sed -n 1p "$T/out")" = "dot.: free (name not portable: --any-name)" &&
    test "$(sed -n 2p "$T/out")" = "idle: free" &&
    "$CACHELOCK" status "$D" never >"$T/out" &&
    grep -qx "never: free (no lock file yet)" "$T/out"
}
ok "status lists every source, sorted, and names without a lock file" t_status_lists_sources

t_status_json() {
    "$CACHELOCK" run "$D" idle -- cmd /c exit 0 &&
    "$CACHELOCK" status --json "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -q "^{\"source\":\"idle\",\"path\":\"$(printf '%s' "$D" | sed 's/\//\\\//g')\\\\\\\\.locks\\\\\\\\idle.lock\",\"state\":\"free\",\"holders\":\[\],\"waiters\":\[\],\"exists\":true" "$T/out" &&
    { ! have_python3 || python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$T/out"; }
}
ok "status --json prints one valid JSON object per source" t_status_json

t_prune_removes_unheld_skips_held() {
    "$CACHELOCK" run "$D" a -- cmd /c exit 0 && "$CACHELOCK" run "$D" c -- cmd /c exit 0 &&
    whold b &&
    "$CACHELOCK" prune "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -qx "removed a" "$T/out" && grep -qx "skipped b: in use" "$T/out" &&
    grep -qx "removed c" "$T/out" &&
    grep -qx "removed 2 lock files; skipped 1 in use, 0 newer, 0 failed" "$T/out" &&
    test ! -e "$D/.locks/a.lock" && test -e "$D/.locks/b.lock" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" b -- cmd /c exit 0
}
ok "prune removes unheld lock files and skips held ones" t_prune_removes_unheld_skips_held

t_prune_dry_run_and_age() {
    "$CACHELOCK" run "$D" a -- cmd /c exit 0 &&
    "$CACHELOCK" prune --dry-run "$D" >"$T/out" &&
    grep -qx "would remove a" "$T/out" && test -e "$D/.locks/a.lock" &&
    "$CACHELOCK" prune --older-than 1h "$D" >"$T/out" &&
    grep -qx "kept a: newer than the limit" "$T/out" && test -e "$D/.locks/a.lock" &&
    touch -d '2 hours ago' "$D/.locks/a.lock" &&
    "$CACHELOCK" prune --older-than 1h "$D" >"$T/out" &&
    grep -qx "removed a" "$T/out" && test ! -e "$D/.locks/a.lock"
}
ok "prune --dry-run removes nothing, --older-than keeps newer files" t_prune_dry_run_and_age

t_run_after_prune() {
    "$CACHELOCK" run "$D" s -- cmd /c exit 0 &&
    "$CACHELOCK" prune -q "$D" >/dev/null &&
    test ! -e "$D/.locks/s.lock" &&
    expect_status 0 "$CACHELOCK" run "$D" s -- cmd /c exit 0 &&
    test -e "$D/.locks/s.lock"
}
ok "a pruned lock file is made again by the next run" t_run_after_prune

done_testing
