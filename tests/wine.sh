#!/bin/sh
# wine.sh - run the Windows build's tests under wine, through prove:
#
#   BUILD=build-win sh tests/wine.sh PROGRAM.exe... tests/wNNNN-*.sh
#
# PROGRAM.exe are C test programs (TAP); tests/wNNNN-*.sh are the command
# line's, which run $BUILD/cachelock.exe through wine.  The wine prefix lives
# in $BUILD/wineprefix (made on the first run, about 10 s; nothing touches
# ~/.wine), and one wineserver stays up for the whole run: without it every
# program pays 1.5-3 s to start one.  Each program has TEST_LIMIT seconds
# (600), as in make check; tap.h limits each case.
#
# Internally, prove runs each file as "sh tests/wine.sh --run FILE".
set -eu

if [ "${1:-}" = --run ]; then
    case $2 in
        *.exe) exec timeout -k 10 "${TEST_LIMIT:-600}" wine "$2" ;;
        *) exec timeout -k 10 "${TEST_LIMIT:-600}" sh "$2" ;;
    esac
fi

: "${BUILD:?BUILD must name the Windows build directory}"
command -v wine >/dev/null 2>&1 || {
    echo "wine.sh: wine is not installed (apt-get install wine)" >&2
    exit 1
}
export WINEPREFIX="$BUILD/wineprefix"
export WINEDEBUG=-all                   # wine's own FIXME lines are noise here
export WINEDLLOVERRIDES="mscoree,mshtml="   # no Mono or Gecko installers
export LC_ALL=C.UTF-8                   # arguments reach wine as UTF-8

if [ ! -f "$WINEPREFIX/system.reg" ]; then
    start=$(date +%s)
    wineboot -i >/dev/null 2>&1 || { echo "wine.sh: wineboot failed" >&2; exit 1; }
    echo "# wine prefix made in $(( $(date +%s) - start )) s: $WINEPREFIX"
fi
# A wineserver of this prefix still up (wineboot leaves one for a few
# seconds) ends first: only a new one can be told to stay.
wineserver -w
wineserver -p
trap 'wineserver -k 2>/dev/null || true' EXIT
# The first program starts wine's services (services.exe, winedevice.exe),
# which live as long as the wineserver and keep the descriptors they were
# started with: let that be this one, with nothing open that prove reads.
wine cmd /c exit </dev/null >/dev/null 2>&1
echo "# $(wine --version), wineserver kept up for the run"
prove -f --timer --exec "sh $0 --run" "$@"
