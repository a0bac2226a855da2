#!/bin/sh
# The examples of the Windows build run under wine, and the DLL exports the
# API and nothing else.  Run by tests/wine.sh (make check-windows).
. "$(dirname "$0")/lib.sh"
plan 4

t_take_turns_example() {
    timeout 60 wine "$BUILD/examples/take_turns.exe" "$(winepath -w "$D")" >"$T/out" &&
    tr -d '\r' <"$T/out" | grep -q "final counter: 20 (expected 20): no update lost" &&
    test "$(grep -c '^worker' "$T/out")" -eq 20
}
ok "examples/take_turns.exe: 4 processes, 20 updates, none lost" t_take_turns_example

t_poll_acquire_example() {
    timeout 20 wine "$BUILD/examples/poll_acquire.exe" "$D" src >"$T/out" &&
    grep -q "^poll_acquire: got 'src' after [1-9][0-9]* polls" "$T/out"
}
ok "examples/poll_acquire.exe: the header's loop waits and gets it" t_poll_acquire_example

t_dll_exports_only_the_api() {
    ${CROSS:-x86_64-w64-mingw32-}objdump -p "$BUILD/cachelock.dll" |
        sed -n '/\[Ordinal\/Name Pointer\] Table/,/^$/p' | awk '/^[[:space:]]*\[ *[0-9]/ {print $NF}' >"$T/names" &&
    grep -qx cachelock_acquire "$T/names" && grep -qx cachelock_wait_handle "$T/names" &&
    ! grep -v '^cachelock_[a-z_]*$' "$T/names" &&
    test -f "$BUILD/libcachelock.dll.a" && test -f "$BUILD/libcachelock.a"
}
ok "cachelock.dll exports cachelock_* only; import and static libraries exist" t_dll_exports_only_the_api

# Nothing to ship beside cachelock.dll and cachelock.exe: they import from
# Windows' own DLLs only (no libwinpthread-1.dll, no libgcc_s_seh-1.dll).
t_no_runtime_dlls_needed() {
    for f in "$BUILD/cachelock.dll" "$BUILD/cachelock.exe"; do
        ${CROSS:-x86_64-w64-mingw32-}objdump -p "$f" | sed -n 's/^[[:space:]]*DLL Name: //p' >"$T/dlls" &&
        cat "$T/dlls" &&
        ! grep -iv '^\(kernel32\|msvcrt\)\.dll$' "$T/dlls" || return 1
    done
}
ok "cachelock.dll and cachelock.exe need only kernel32.dll and msvcrt.dll" t_no_runtime_dlls_needed

done_testing
