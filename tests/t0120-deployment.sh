#!/bin/sh
# Where caches really live: cachelock selftest on a local directory and on
# a FUSE view of it (bindfs, with and without lock forwarding), a cache
# shared by PID namespaces (unshare), a read-only bind mount, and a cache
# shared by the users of a group.  Mounts, namespaces and other users need
# root: without it, or without bindfs or /dev/fuse, a case says SKIP and why.
. "$(dirname "$0")/lib.sh"
plan 9

is_root() { [ "$(id -u)" = 0 ]; }

# ---- selftest ---------------------------------------------------------------

t_selftest_local() {
    start=$(date +%s%N)
    "$CACHELOCK" selftest "$D" >"$T/out" 2>"$T/err" &&
    end=$(date +%s%N) &&
    cat "$T/out" &&
    test ! -s "$T/err" &&
    grep -q "^cachelock selftest of '$D' ($FS_LOCAL)$" "$T/out" &&
    grep -q "^  exclusion  *ok  *[0-9]* critical sections in 0.2 s, none overlapped$" "$T/out" &&
    grep -q "^  shared locks  *ok " "$T/out" &&
    grep -q "^  release on death  *ok  *free " "$T/out" &&
    if [ "${PORTABLE:-}" = 1 ]; then
        # No change notification there: waits re-check on the timer.
        grep -q "^  notification  *slow  *no change notification here: waiters notice a release only when they re-check, at most 20 ms late$" "$T/out"
    else
        grep -q "^  notification  *ok  *a waiter was woken " "$T/out"
    fi &&
    grep -q "^result: ok in 0\.[0-9]* s$" "$T/out" &&
    test $(( (end - start) / 1000000 )) -lt 2000 &&
    # Its lock file is gone; nothing else was made but the cache.
    test "$(ls -A "$D/.locks")" = "" &&
    # Options after CACHE_DIR, and JSON.
    "$CACHELOCK" selftest "$D" --json >"$T/json" &&
    grep -q '^{"cache_dir":"'"$D"'","fs":"'$FS_LOCAL'","second_path":null,"second_fs":null,"checks":\[{"name":"exclusion","result":"ok",' "$T/json" &&
    grep -q '"result":"ok","seconds":0\.[0-9]*}$' "$T/json" &&
    if have_python3; then python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$T/json"; fi
}
ok "selftest on a local directory: every check ok, in under 2 s, nothing left" t_selftest_local

t_selftest_usage() {
    mkdir -p "$T/other" &&
    expect_status 64 "$CACHELOCK" selftest "$D" --second-path "$T/other" 2>"$T/err" &&
    grep -q "^cachelock: '$T/other' is not another path to '$D'" "$T/err" &&
    test "$(ls -A "$D/.locks")" = "" &&
    ln -s "$D" "$T/link" &&
    "$CACHELOCK" selftest --second-path "$T/link" "$D" >"$T/out" &&
    grep -q "also through '$T/link' ($FS_LOCAL)" "$T/out" &&
    expect_status 64 "$CACHELOCK" selftest "$D" "$D" 2>/dev/null &&
    expect_status 64 env -u CACHELOCK_DIR "$CACHELOCK" selftest 2>/dev/null &&
    "$CACHELOCK" selftest --help | grep -q "^Usage: cachelock selftest"
}
ok "selftest: a second path must lead to the same directory; usage" t_selftest_usage

# Each FUSE case runs in a mount namespace of its own (in_mount_ns), so
# that its bindfs mount goes away with it, however the case ends (a test
# runner that kills it at its first failure included).
in_mount_ns() {
    unshare --mount --propagation private "$@"
}

why_no_fuse() {
    [ "${PORTABLE:-}" != 1 ] || { echo "the portable build cannot tell a FUSE mount"; return; }
    is_root || { echo "FUSE mounts need root here"; return; }
    command -v bindfs >/dev/null || { echo "bindfs is not installed (apt-get install bindfs)"; return; }
    [ -c /dev/fuse ] || { echo "no /dev/fuse"; return; }
    mkdir -p "$TOP/probe-src" "$TOP/probe-view"
    in_mount_ns sh -c "bindfs '$TOP/probe-src' '$TOP/probe-view' && fusermount3 -u '$TOP/probe-view'" \
        2>/dev/null ||
        echo "bindfs cannot mount here (in a mount namespace of its own)"
}
NO_FUSE=$(why_no_fuse)

t_selftest_bindfs_without_lock_forwarding() {
    mkdir -p "$D" "$T/view" || return 1
    in_mount_ns sh -c "
        bindfs '$D' '$T/view' || exit 99
        '$CACHELOCK' selftest '$T/view' --second-path '$D' >'$T/out' 2>'$T/err'; echo \$? >'$T/st'
        # Through one path only, the kernel's own locks on the FUSE inodes work.
        '$CACHELOCK' selftest '$T/view' >'$T/one' 2>&1; echo \$? >'$T/one.st'
        # --local-only refuses the FUSE view; without it, run warns.
        '$CACHELOCK' run --local-only '$T/view' s -- true 2>'$T/refused'; echo \$? >'$T/lo.st'
        '$CACHELOCK' run '$T/view' s -- true 2>'$T/warned'; echo \$? >'$T/warned.st'
        fusermount3 -u '$T/view'
    " || return 1
    cat "$T/out" "$T/refused" "$T/warned" &&
    test "$(cat "$T/st")" = 1 &&
    grep -q "^cachelock selftest of '$T/view' (fuse), also through '$D' (local)$" "$T/out" &&
    grep -q "^  exclusion  *fail  *a lock held through '$T/view' did not exclude one through '$D'" "$T/out" &&
    grep -q "^result: FAIL in 0\.[0-9]* s: locks do not work here through these two paths" "$T/out" &&
    test "$(cat "$T/one.st")" = 0 &&
    test "$(cat "$T/lo.st")" = 69 &&
    grep -q "cannot lock '$T/view/.locks/s.lock': the cache is on fuse, not a local filesystem" "$T/refused" &&
    test "$(cat "$T/warned.st")" = 0 &&
    grep -q "^cachelock: warning: the cache is on fuse (not a local filesystem), where locks may not exclude" "$T/warned"
}

t_selftest_bindfs_with_lock_forwarding() {
    mkdir -p "$D" "$T/view" || return 1
    in_mount_ns sh -c "
        bindfs --multithreaded --enable-lock-forwarding '$D' '$T/view' || exit 99
        '$CACHELOCK' selftest '$T/view' --second-path '$D' >'$T/out' 2>&1; echo \$? >'$T/st'
        '$CACHELOCK' selftest --json --second-path '$T/view' '$D' >'$T/json' 2>&1; echo \$? >'$T/js'
        fusermount3 -u '$T/view'
    " || return 1
    cat "$T/out" "$T/json" &&
    test "$(cat "$T/st")" = 0 && test "$(cat "$T/js")" = 0 &&
    grep -q "^  exclusion  *ok " "$T/out" &&
    grep -q "^result: ok in " "$T/out" &&
    grep -q '"fs":"local","second_path":"'"$T/view"'","second_fs":"fuse",' "$T/json"
}

if [ -z "$NO_FUSE" ]; then
    ok "selftest on a bindfs view and its source, no lock forwarding: exclusion fails (1)" \
        t_selftest_bindfs_without_lock_forwarding
    ok "selftest on a bindfs view with --enable-lock-forwarding: ok" \
        t_selftest_bindfs_with_lock_forwarding
else
    skip "selftest on a bindfs view and its source, no lock forwarding: exclusion fails" "$NO_FUSE"
    skip "selftest on a bindfs view with --enable-lock-forwarding: ok" "$NO_FUSE"
fi

# ---- PID namespaces -----------------------------------------------------------

why_no_pidns() {
    [ -z "$NO_TABLE" ] || { echo "$NO_TABLE"; return; }
    is_root || { echo "PID namespaces need root here"; return; }
    unshare --pid --fork --mount-proc true 2>/dev/null || echo "unshare --pid --fork --mount-proc fails here"
}
NO_PIDNS=$(why_no_pidns)

# A holder outside, contenders inside a PID namespace with its own /proc,
# whose lock table leaves the holder out.
t_holder_outside_the_namespace() {
    hold s || return 1
    unshare --pid --fork --mount-proc sh -c "
        '$CACHELOCK' run -n -q '$D' s -- true; echo \"run -n: \$?\"
        '$CACHELOCK' run -s -n -q '$D' s -- true; echo \"run -s -n: \$?\"
        '$CACHELOCK' run -w 0.2 '$D' s -- true 2>'$T/wait'; echo \"run -w: \$?\"
        '$CACHELOCK' status '$D'
        '$CACHELOCK' status --json '$D'
    " >"$T/out" 2>&1
    cat "$T/out" "$T/wait" &&
    grep -qx "run -n: 1" "$T/out" &&
    grep -qx "run -s -n: 1" "$T/out" &&
    grep -qx "run -w: 1" "$T/out" &&
    grep -qx "s: exclusive by a process not visible here (in another PID namespace, on another machine, or one that inherited the lock from a process now gone)" "$T/out" &&
    grep -q '"holders":\[{"pid":0,"mode":"exclusive","command":"","visible":false}\]' "$T/out" &&
    grep -q "^cachelock: waiting for 's' ('$D/.locks/s.lock'), held exclusive by a process not visible here" "$T/wait" &&
    ! grep -q "by pid" "$T/out" "$T/wait"
}

# A holder inside a namespace, seen from outside: its pid here, its command.
t_holder_inside_the_namespace() {
    mkdir -p "$D" &&
    unshare --pid --fork --mount-proc "$CACHELOCK" run "$D" s -- sh -c "echo in > '$T/in'; exec sleep 600" \
        >/dev/null 2>&1 &
    bg_pid $!
    wait_for_file "$T/in" || return 1
    expect_status 1 "$CACHELOCK" run -n -q "$D" s -- true &&
    "$CACHELOCK" status "$D" >"$T/out" &&
    cat "$T/out" &&
    pid=$(sed -n 's/^s: exclusive by pid \([0-9]*\) (.*cachelock run .* s -- sh -c.*)$/\1/p' "$T/out") &&
    test -n "$pid" &&
    # That pid is the holder's here: it is a cachelock run in another namespace.
    grep -q "cachelock" "/proc/$pid/cmdline" &&
    test "$(readlink "/proc/$pid/ns/pid")" != "$(readlink /proc/self/ns/pid)"
}

# With /proc of the parent namespace (no --mount-proc), the table lists the
# holder with a number that means nothing inside: never shown as a pid.
t_parents_proc_numbers_are_not_shown() {
    hold s || return 1
    unshare --pid --fork sh -c "'$CACHELOCK' status '$D'" >"$T/out" 2>&1
    cat "$T/out" &&
    grep -qx "s: exclusive by a process not visible here (in another PID namespace, on another machine, or one that inherited the lock from a process now gone)" "$T/out"
}

if [ -z "$NO_PIDNS" ]; then
    ok "a holder outside a PID namespace excludes those inside and is shown as not visible" \
        t_holder_outside_the_namespace
    ok "a holder inside a PID namespace excludes those outside and is named there" \
        t_holder_inside_the_namespace
    ok "with the parent namespace's /proc, its pids are not shown as local ones" \
        t_parents_proc_numbers_are_not_shown
else
    for c in "a holder outside a PID namespace is shown as not visible" \
             "a holder inside a PID namespace is named outside" \
             "with the parent namespace's /proc, its pids are not shown"; do
        skip "$c" "$NO_PIDNS"
    done
fi

# ---- a read-only bind mount ------------------------------------------------------

why_no_mountns() {
    is_root || { echo "bind mounts need root here"; return; }
    unshare --mount true 2>/dev/null || echo "unshare --mount fails here"
}
NO_MOUNTNS=$(why_no_mountns)

t_read_only_bind_mount() {
    "$CACHELOCK" path --create "$D" s >/dev/null &&
    mkdir -p "$T/ro" || return 1
    unshare --mount sh -c "
        mount --make-rprivate / && mount --bind '$D' '$T/ro' && mount -o remount,bind,ro '$T/ro' || exit 99
        '$CACHELOCK' run -s '$T/ro' s -- echo shared-ran; echo \"run -s: \$?\"
        '$CACHELOCK' run '$T/ro' s -- echo exclusive-ran 2>'$T/ex'; echo \"run: \$?\"
        '$CACHELOCK' run -s '$T/ro' new -- echo new-ran 2>'$T/new'; echo \"run -s new: \$?\"
    " >"$T/out" 2>&1
    cat "$T/out" "$T/ex" "$T/new" &&
    grep -qx "shared-ran" "$T/out" && grep -qx "run -s: 0" "$T/out" &&
    ! grep -q "exclusive-ran" "$T/out" && grep -qx "run: 73" "$T/out" &&
    grep -q "^cachelock: cannot lock '$T/ro/.locks/s.lock' exclusively: Read-only file system (the cache is on a read-only mount: only shared locks work there)$" "$T/ex" &&
    ! grep -q "new-ran" "$T/out" && grep -qx "run -s new: 73" "$T/out" &&
    grep -q "^cachelock: cannot create lock file '$T/ro/.locks/new.lock': Read-only file system" "$T/new" &&
    test ! -e "$D/.locks/new.lock"
}

if [ -z "$NO_MOUNTNS" ]; then
    ok "read-only bind mount: shared locks on existing lock files; exclusive or new ones: 73" \
        t_read_only_bind_mount
else
    skip "read-only bind mount: shared locks only" "$NO_MOUNTNS"
fi

# ---- a cache shared by a group -------------------------------------------------------

why_no_users() {
    is_root || { echo "other users need root here"; return; }
    command -v setpriv >/dev/null || echo "no setpriv(1) (util-linux)"
}
NO_USERS=$(why_no_users)

# as UID [GROUP] -- COMMAND...: run as another user (umask 022), with the
# supplementary group GROUP if given.
as() {
    uid=$1; shift
    if [ "$1" != -- ]; then groups="--groups=$1"; shift; else groups=--clear-groups; fi
    shift
    setpriv --reuid="$uid" --regid="$uid" $groups sh -c 'umask 022; exec "$@"' sh "$@"
}

t_group_shared_cache() {
    chmod 755 "$TOP" "$T" &&
    mkdir "$D" && chgrp 4242 "$D" && chmod 2775 "$D" &&
    as 4001 4242 -- "$CACHELOCK" run "$D" a -- true &&
    test "$(stat -c %a:%g "$D/.locks")" = "2775:4242" &&
    test "$(stat -c %a:%g "$D/.locks/a.lock")" = "664:4242" &&
    as 4002 4242 -- "$CACHELOCK" run "$D" a -- true &&
    as 4002 4242 -- "$CACHELOCK" run "$D" b -- true &&
    test "$(stat -c %a:%u:%g "$D/.locks/b.lock")" = "664:4002:4242" &&
    as 4002 4242 -- "$CACHELOCK" path --create "$D" c >/dev/null &&
    test "$(stat -c %a:%g "$D/.locks/c.lock")" = "664:4242" &&
    # Not in the group: shared locks on what exists; a clear error, at once,
    # where a lock file would have to be made.
    as 4003 -- "$CACHELOCK" run -s "$D" a -- echo read >"$T/out" &&
    grep -qx read "$T/out" &&
    expect_status_within 5 73 setpriv --reuid=4003 --regid=4003 --clear-groups \
        "$CACHELOCK" run -s "$D" new -- echo no 2>"$T/err" &&
    grep -q "^cachelock: cannot create lock file '$D/.locks/new.lock': Permission denied$" "$T/err" &&
    test ! -e "$D/.locks/new.lock"
}

if [ -z "$NO_USERS" ]; then
    ok "group-shared cache (set-group-ID, members with umask 022): works for every member" \
        t_group_shared_cache
else
    skip "group-shared cache: works for every member" "$NO_USERS"
fi

done_testing
