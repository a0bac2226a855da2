# wlib.sh - what the tests of the Windows build (tests/wNNNN-*.sh, run under
# wine by tests/wine.sh) add to lib.sh: cachelock.exe through wine, Windows
# paths, and a holder that is cachelock.exe running cmd.exe.

CACHELOCK="$TOP/cachelock"
printf '#!/bin/sh\nexec wine "%s/cachelock.exe" "$@"\n' "$BUILD" > "$CACHELOCK"
chmod +x "$CACHELOCK"

# running PATTERN: is a process running whose command line matches the
# extended regular expression?  (Wine's programs are Linux processes that
# show their Windows command line.)
running() {
    for f in /proc/[0-9]*/cmdline; do
        tr '\0' ' ' < "$f" 2>/dev/null | grep -Eq -- "$1" && return 0
    done
    return 1
}

# wpath PATH: the Windows spelling of a path, for cmd.exe.
wpath() { winepath -w "$1"; }

# whold NAME [run options...]: cachelock.exe holds $D/NAME in the background,
# running cmd.exe, which writes $T/held.NAME once it runs and, 20 s later,
# $T/after.NAME (unless it was killed).  WHOLDER is the pid of cachelock.exe
# (wine); wrelease NAME kills it (and, through its job, cmd.exe).
whold() {
    name=$1; shift
    rm -f "$T/held.$name" "$T/after.$name"
    "$CACHELOCK" run "$@" "$D" "$name" -c \
        "echo held>\"$(wpath "$T/held.$name")\"& ping -n 21 127.0.0.1 >NUL& echo after>\"$(wpath "$T/after.$name")\"" \
        >"$T/hold.$name.out" 2>"$T/hold.$name.err" &
    WHOLDER=$!
    bg_pid "$WHOLDER"
    wait_for_file "$T/held.$name"
}

wrelease() {
    kill -9 "$WHOLDER" 2>/dev/null
    wait "$WHOLDER" 2>/dev/null || true
}
