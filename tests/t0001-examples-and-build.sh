#!/bin/sh
# The examples build and run; the shared library exports only the API, has
# a soname, and installs with PREFIX and DESTDIR.
. "$(dirname "$0")/lib.sh"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
plan 6

t_take_turns_example() {
    timeout 60 "$BUILD/examples/take_turns" "$D" >"$T/out" &&
    grep -q "final counter: 20 (expected 20): no update lost" "$T/out" &&
    test "$(grep -c '^worker' "$T/out")" -eq 20
}
ok "examples/take_turns: 4 processes, 20 updates, none lost" t_take_turns_example

t_poll_acquire_example() {
    timeout 20 "$BUILD/examples/poll_acquire" "$D" src >"$T/out" &&
    grep -q "^poll_acquire: got 'src' after [1-9][0-9]* polls" "$T/out"
}
ok "examples/poll_acquire: the header's poll(2) loop waits and gets it" t_poll_acquire_example

t_only_public_symbols_exported() {
    nm -D --defined-only "$BUILD/libcachelock.so" | awk '{print $3}' | grep -v '^cachelock_[a-z_]*$' >"$T/extra" || true
    if [ -s "$T/extra" ]; then echo "not public:"; cat "$T/extra"; return 1; fi
    nm -D --defined-only "$BUILD/libcachelock.so" | grep -q ' T cachelock_acquire$'
}
ok "the shared library exports only cachelock_* functions" t_only_public_symbols_exported

t_soname() {
    readelf -d "$BUILD/libcachelock.so" | grep -q 'Library soname: \[libcachelock.so.0\]'
}
ok "the shared library has soname libcachelock.so.0" t_soname

install_into() {
    make -s -C "$ROOT" BUILD="$BUILD" install PREFIX=/opt/cl DESTDIR="$1" >/dev/null
}

t_install_with_destdir() {
    install_into "$T/root" &&
    test -f "$T/root/opt/cl/include/cachelock.h" &&
    test -f "$T/root/opt/cl/lib/libcachelock.a" &&
    test -L "$T/root/opt/cl/lib/libcachelock.so.0" &&
    test -x "$T/root/opt/cl/bin/cachelock" &&
    test -f "$T/root/opt/cl/share/man/man1/cachelock.1" &&
    test -f "$T/root/opt/cl/share/man/man3/cachelock.3" &&
    grep -q '^prefix=/opt/cl$' "$T/root/opt/cl/lib/pkgconfig/cachelock.pc"
}
ok "make install PREFIX= DESTDIR= installs everything" t_install_with_destdir

# A program built against the installed copy, through pkg-config.
t_pkg_config_builds_a_program() {
    install_into "$T/root" &&
    sed "s|^prefix=.*|prefix=$T/root/opt/cl|; s|^libdir=.*|libdir=$T/root/opt/cl/lib|; s|^includedir=.*|includedir=$T/root/opt/cl/include|" \
        "$T/root/opt/cl/lib/pkgconfig/cachelock.pc" > "$T/cachelock.pc" &&
    ${CC:-cc} ${SANITIZE:+-fsanitize=$SANITIZE} -o "$T/prog" "$ROOT/examples/take_turns.c" \
        $(PKG_CONFIG_PATH="$T" pkg-config --cflags --libs cachelock) &&
    LD_LIBRARY_PATH="$T/root/opt/cl/lib" "$T/prog" "$D" >/dev/null &&
    LD_LIBRARY_PATH="$T/root/opt/cl/lib" ldd "$T/prog" | grep -q "libcachelock.so.0 => $T/root/opt/cl/lib"
}
if command -v pkg-config >/dev/null; then
    ok "pkg-config builds a program against the installed library" t_pkg_config_builds_a_program
else
    skip "pkg-config builds a program against the installed library" "pkg-config is not installed"
fi

done_testing
