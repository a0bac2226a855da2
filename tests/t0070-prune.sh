#!/bin/sh
# cachelock prune: removes unheld lock files only; dry run; age limit.
. "$(dirname "$0")/lib.sh"
plan 4

t_prune_removes_unheld_skips_held() {
    "$CACHELOCK" run "$D" a -- true && "$CACHELOCK" run "$D" c -- true &&
    hold b &&
    "$CACHELOCK" prune "$D" >"$T/out" &&
    cat "$T/out" &&
    grep -qx "removed a" "$T/out" && grep -qx "skipped b: in use" "$T/out" &&
    grep -qx "removed c" "$T/out" &&
    grep -qx "removed 2 lock files; skipped 1 in use, 0 newer, 0 failed" "$T/out" &&
    test ! -e "$D/.locks/a.lock" && test -e "$D/.locks/b.lock" &&
    expect_status 1 "$CACHELOCK" run -n -q "$D" b -- true
}
ok "prune removes unheld lock files and skips held ones" t_prune_removes_unheld_skips_held

t_dry_run() {
    "$CACHELOCK" run "$D" a -- true &&
    "$CACHELOCK" prune --dry-run "$D" >"$T/out" &&
    grep -qx "would remove a" "$T/out" && test -e "$D/.locks/a.lock"
}
ok "prune --dry-run removes nothing" t_dry_run

t_older_than() {
    "$CACHELOCK" run "$D" old -- true && "$CACHELOCK" run "$D" new -- true &&
    touch -d '2 hours ago' "$D/.locks/old.lock" &&
    "$CACHELOCK" prune --older-than 1h "$D" >"$T/out" &&
    grep -qx "removed old" "$T/out" && grep -qx "kept new: newer than the limit" "$T/out" &&
    test -e "$D/.locks/new.lock" && test ! -e "$D/.locks/old.lock"
}
ok "prune --older-than keeps newer files" t_older_than

t_prune_usage() {
    expect_status 64 "$CACHELOCK" prune --older-than soon "$D" 2>"$T/err" &&
    grep -q "invalid duration 'soon'" "$T/err" &&
    expect_status 64 "$CACHELOCK" prune "$D" extra 2>/dev/null &&
    expect_status 0 "$CACHELOCK" prune "$T/none" >/dev/null &&
    test ! -e "$T/none" &&
    "$CACHELOCK" prune --help | grep -q "Never delete lock files by hand"
}
ok "prune usage errors; a missing cache has nothing to prune" t_prune_usage

done_testing
