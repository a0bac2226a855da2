# cachelock - plain GNU Makefile.
#
#   make                 library (static + shared with soname), CLI, examples
#   make check           build everything and run the whole suite through prove
#   make demo            the README's demonstration
#   make install         PREFIX=/usr/local DESTDIR= (header, libs, .pc, man, CLI)
#   make bench           benchmarks (never part of check)
#   make windows         the same for Windows, cross-built with mingw-w64
#                        (make CROSS=x86_64-w64-mingw32-): cachelock.dll and
#                        its import library, the static library,
#                        cachelock.exe, the examples and the test programs
#   make check-windows   build for Windows and run the tests under wine
#
# Sanitizer builds go to their own directory, e.g.
#   make check BUILD=build-asan SANITIZE=address,undefined
#
#   make check PORTABLE=1  the portable Unix build (no inotify, no OFD locks,
#                        no /proc, no Linux statfs, no MADV_WIPEONFORK, no
#                        O_PATH: what the BSDs and macOS get), in build-portable

VERSION   := 0.3.0
SOVERSION := 0
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCLUDEDIR?= $(PREFIX)/include
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DESTDIR   ?=

CC        ?= cc
PORTABLE  ?=
ifeq ($(PORTABLE),1)
BUILD     ?= build-portable
PORTFLAGS := -DCACHELOCK_PORTABLE
endif
# CROSS=x86_64-w64-mingw32- cross-builds for Windows; which system the
# compiler builds for decides everything below.
CROSS     ?=
ifneq ($(CROSS),)
CC        := $(CROSS)gcc
AR        := $(CROSS)ar
endif
TARGET_OS := $(if $(findstring mingw,$(shell $(CC) -dumpmachine 2>/dev/null)),windows,unix)
ifeq ($(TARGET_OS),windows)
BUILD     ?= build-win
endif
BUILD     ?= build
SANITIZE  ?=
OPT       ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wpointer-arith -Wformat=2 -Wno-format-nonliteral
CSTD      := -std=c11 -D_POSIX_C_SOURCE=200809L
NOUNDEF   := -Wl,--no-undefined
ifneq ($(SANITIZE),)
SANFLAGS  := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
# The sanitizer runtime is linked into programs, not into the library.
NOUNDEF   :=
endif
ALLCFLAGS  = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) $(PORTFLAGS) -pthread -Iinclude $(CFLAGS)
LIBCFLAGS  = $(ALLCFLAGS) -fPIC -fvisibility=hidden
ALLLDFLAGS = $(SANFLAGS) -pthread $(LDFLAGS)

PORTABLE_SRC := src/error.c src/name.c src/registry.c src/pool.c src/watchers.c src/acquire.c \
                src/wait.c src/holders.c src/prune.c src/filesystem.c src/fair.c
LIB_SRC := $(PORTABLE_SRC) \
           src/unix/syscalls.c src/unix/file.c src/unix/statfs.c src/unix/fork.c src/unix/notify.c \
           src/unix/proc.c src/unix/queue.c
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/%.o)
HDRS    := include/cachelock.h src/internal.h src/unix/unix.h src/unix/os.h

EXE     :=
STATIC   = $(BUILD)/libcachelock.a
SHARED   = $(BUILD)/libcachelock.so.$(VERSION)
SONAME  := libcachelock.so.$(SOVERSION)

CLI_SRC := cli/main.c cli/run.c cli/lock.c cli/status.c cli/path.c cli/prune.c cli/selftest.c \
           cli/util.c cli/fair.c cli/runargs.c
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI      = $(BUILD)/cachelock$(EXE)
CLI_LDFLAGS :=

EXAMPLES = $(BUILD)/examples/take_turns$(EXE) $(BUILD)/examples/poll_acquire$(EXE)
TEST_C   := $(wildcard tests/test_*.c)
TESTS    = $(TEST_C:tests/%.c=$(BUILD)/tests/%$(EXE))
TEST_LDFLAGS :=
ALL_EXTRA :=

# Windows (mingw-w64): src/win instead of src/unix; no -pthread (the
# library uses SRWLOCK and InitOnce, not winpthreads, which would add a
# runtime DLL); a DLL whose objects are built again with dllexport, and its
# import library; cachelock.exe with wmain (UTF-16 arguments).  The test
# programs link winpthreads statically for their own threads.
ifeq ($(TARGET_OS),windows)
ALLCFLAGS  = $(CSTD) $(OPT) $(WARN) -Iinclude $(CFLAGS)
LIBCFLAGS  = $(ALLCFLAGS)
ALLLDFLAGS = $(LDFLAGS)
LIB_SRC := $(PORTABLE_SRC) \
           src/win/syscalls.c src/win/error.c src/win/thread.c src/win/path.c src/win/file.c \
           src/win/wait.c src/win/proc.c src/win/fs.c src/win/queue.c
HDRS    := include/cachelock.h src/internal.h src/win/win.h src/win/os.h
EXE     := .exe
SHARED   = $(BUILD)/cachelock.dll
IMPLIB   = $(BUILD)/libcachelock.dll.a
CLI_SRC := cli/main.c cli/win.c cli/status.c cli/path.c cli/prune.c cli/util.c cli/fair.c \
           cli/runargs.c
CLI_LDFLAGS := -municode
TESTS    = $(WINE_TESTS:%=$(BUILD)/tests/%.exe)
TEST_LDFLAGS := -static -pthread
ALL_EXTRA = $(TESTS)
endif

# The C tests that mean something on Windows (the others exercise fork(2),
# signals, inotify, /proc or the Unix system-call table); make windows
# builds them and make check-windows runs them under wine.
WINE_TESTS := test_names test_acquire test_wait test_threads test_bad_input test_prune \
              test_interop test_holders test_ownership test_faults_win
BENCHES  := $(BUILD)/bench/bench_handoff $(BUILD)/bench/bench_acquire $(BUILD)/bench/bench_contended \
            $(BUILD)/bench/bench_peers $(BUILD)/bench/bench_scale $(BUILD)/bench/bench_status

.PHONY: all check demo install uninstall bench torture valgrind fuzz mutants clean kqueue-syntax \
        windows check-windows

all: $(STATIC) $(SHARED) $(CLI) $(EXAMPLES) $(ALL_EXTRA)

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(LIBCFLAGS) -c -o $@ $<

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

ifeq ($(TARGET_OS),windows)
# The same objects again, exporting the API (CACHELOCK_EXTERN becomes
# dllexport; with one dllexport, ld exports nothing else).
$(BUILD)/shared/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(LIBCFLAGS) -DCACHELOCK_BUILDING_SHARED -c -o $@ $<

# -static-libgcc: the emulated thread-local storage of the messages would
# otherwise need libgcc_s_seh-1.dll beside the DLL.
$(SHARED): $(LIB_SRC:%.c=$(BUILD)/shared/%.o)
	$(CC) -shared -static-libgcc $(NOUNDEF) -Wl,--out-implib,$(IMPLIB) $(ALLLDFLAGS) -o $@ $^
else
$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(NOUNDEF) $(ALLLDFLAGS) -o $@ $^
	ln -sf libcachelock.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libcachelock.so
endif

$(BUILD)/cli/%.o: cli/%.c cli/cli.h include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) $(ALLLDFLAGS) $(CLI_LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC)

$(BUILD)/examples/%$(EXE): examples/%.c $(STATIC) include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(ALLLDFLAGS)

$(BUILD)/tests/%$(EXE): tests/%.c tests/tap.h tests/helpers.h $(STATIC) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -Isrc -o $@ $< $(STATIC) $(ALLLDFLAGS) $(TEST_LDFLAGS)

$(BUILD)/bench/%: bench/%.c bench/bench.h $(STATIC) include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(ALLLDFLAGS)

# bench_contended watches the fair queue from inside, through the
# system-call table, as the tests do.
$(BUILD)/bench/bench_contended: bench/bench_contended.c $(STATIC) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -Isrc -o $@ $< $(STATIC) $(ALLLDFLAGS)

# The suite: C unit tests and tNNNN-*.sh CLI tests, all TAP, all through prove.
# Every case of a program has its own time limit (tap.h's alarm, lib.sh's
# timeout(1)); TEST_LIMIT bounds each whole program too, so that nothing
# the cases miss can hang the suite.
TEST_LIMIT ?= 600
check: all $(TESTS) $(if $(PORTABLE),kqueue-syntax)
	BUILD=$(abspath $(BUILD)) CC="$(CC)" SANITIZE="$(SANITIZE)" PORTABLE="$(PORTABLE)" \
	    prove -f --timer --exec 'timeout -k 10 $(TEST_LIMIT)' $(TESTS) tests/t[0-9]*.sh

# The kqueue(2) code of src/unix/notify.c, compiled on Linux against
# stand-in declarations (tests/fake/sys/event.h): what a BSD compiler would
# say about it.  Never linked or run; make check PORTABLE=1 includes it.
kqueue-syntax:
	$(CC) $(CSTD) $(WARN) -pthread -Iinclude -DCACHELOCK_PORTABLE -DCACHELOCK_FAKE_KQUEUE \
	    -Itests/fake -fsyntax-only src/unix/notify.c
# Windows, cross-built with mingw-w64 into build-win, and its tests run
# under wine (tests/wine.sh: one wineserver for the whole run, a wine
# prefix inside the build directory): the C tests of WINE_TESTS, and
# tests/wNNNN-*.sh, the command line's.
WIN_CROSS ?= x86_64-w64-mingw32-
WIN_BUILD ?= build-win
windows:
	$(MAKE) CROSS=$(WIN_CROSS) BUILD=$(WIN_BUILD) all

check-windows: windows
	BUILD=$(abspath $(WIN_BUILD)) sh tests/wine.sh \
	    $(WINE_TESTS:%=$(abspath $(WIN_BUILD))/tests/%.exe) $(wildcard tests/w[0-9]*.sh)

demo: $(CLI) $(BUILD)/examples/take_turns
	BUILD=$(abspath $(BUILD)) sh examples/demo.sh

# bench_peers runs one program per row, each taking (DIRECTORY, ITERATIONS):
# bench_syscalls for the C variants, and under $(PEERS) the peers in other
# languages.  A peer is built only where its toolchain and library are
# installed (Debian packages, offline: no module proxy, no crates.io); one
# that cannot be built leaves NAME.skip with the reason, and bench_peers
# prints that reason in its row instead of failing.
PEERS        := $(BUILD)/bench/peers
PEER_PROGS   := $(PEERS)/filelock_loop.py $(PEERS)/gofrs_flock $(PEERS)/ccpm_lock
BENCH_PYTHON ?= /usr/bin/python3
GO           ?= go
GOFRS_GOPATH ?= /usr/share/gocode
CARGO        ?= $(or $(shell command -v cargo 2>/dev/null),$(HOME)/.cargo/bin/cargo)
DEBIAN_CRATES := /usr/share/cargo/registry
CCPM_LOCK_SRC := bench/peers/ccpm_lock/Cargo.toml bench/peers/ccpm_lock/.cargo/config.toml \
                 bench/peers/ccpm_lock/src/main.rs

$(PEERS)/filelock_loop.py: bench/peers/filelock_loop.py
	@mkdir -p $(@D); rm -f $@ $@.skip
	@if $(BENCH_PYTHON) -c 'import filelock' 2>/dev/null; then \
	    sed '1s|.*|#!$(BENCH_PYTHON)|' $< > $@ && chmod 755 $@; \
	else \
	    echo "no filelock for $(BENCH_PYTHON) (apt-get install python3-filelock)" > $@.skip; \
	fi

# GOPATH mode: Debian installs the library's source under $(GOFRS_GOPATH).
$(PEERS)/gofrs_flock: bench/peers/gofrs_flock/main.go
	@mkdir -p $(@D); rm -f $@ $@.skip
	@if ! command -v $(GO) >/dev/null 2>&1; then \
	    echo "no Go toolchain (apt-get install golang-go)" > $@.skip; \
	elif [ ! -d $(GOFRS_GOPATH)/src/github.com/gofrs/flock ]; then \
	    echo "no gofrs/flock (apt-get install golang-github-gofrs-flock-dev)" > $@.skip; \
	else \
	    echo "GO111MODULE=off GOPATH=$(GOFRS_GOPATH) $(GO) build -o $@ ./bench/peers/gofrs_flock"; \
	    GO111MODULE=off GOPATH=$(GOFRS_GOPATH) GOFLAGS= GOCACHE=$(abspath $(PEERS))/go-cache \
	        $(GO) build -o $@ ./bench/peers/gofrs_flock 2>$@.log || \
	        echo "go build failed, see $@.log" > $@.skip; \
	fi

# Built from a copy under $(PEERS), so that cargo finds the crate's
# .cargo/config.toml (Debian's crates instead of crates.io) and writes its
# Cargo.lock there, not into the source tree.
$(PEERS)/ccpm_lock: $(CCPM_LOCK_SRC)
	@mkdir -p $(@D); rm -f $@ $@.skip
	@if ! command -v $(CARGO) >/dev/null 2>&1; then \
	    echo "no cargo (rustup, or apt-get install cargo)" > $@.skip; \
	elif ! ls -d $(DEBIAN_CRATES)/tokio-1.* $(DEBIAN_CRATES)/fs2-0.4.* >/dev/null 2>&1; then \
	    echo "no tokio or fs2 crate (apt-get install librust-tokio-dev librust-fs2-dev)" > $@.skip; \
	else \
	    echo "cargo build --release --offline (bench/peers/ccpm_lock, in $(PEERS)/ccpm_lock-src)"; \
	    rm -rf $(PEERS)/ccpm_lock-src && cp -R bench/peers/ccpm_lock $(PEERS)/ccpm_lock-src && \
	    (cd $(PEERS)/ccpm_lock-src && $(CARGO) build --release --offline --quiet \
	        --target-dir ../ccpm_lock-target) 2>$@.log && \
	    cp $(PEERS)/ccpm_lock-target/release/ccpm_lock $@ || \
	    echo "cargo build failed, see $@.log" > $@.skip; \
	fi

# Each benchmark prints a table and appends JSON objects to one file, which
# becomes bench/results.json (an array) to compare runs over time.
bench: $(BENCHES) $(BUILD)/bench/bench_syscalls $(PEER_PROGS) $(CLI) $(SHARED)
	@rm -f $(BUILD)/bench/results.jsonl
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_acquire
	@echo
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_handoff
	@echo
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_contended
	@echo
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_peers $(CLI)
	@echo
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_scale
	@echo
	BENCH_JSON=$(BUILD)/bench/results.jsonl $(BUILD)/bench/bench_status $(CLI)
	@echo; BENCH_JSON=$(abspath $(BUILD))/bench/results.jsonl $(MAKE) --no-print-directory rust-bench
	@echo; BENCH_JSON=$(BUILD)/bench/results.jsonl CACHELOCK_LIBRARY=$(abspath $(BUILD))/$(SONAME) $(BENCH_PYTHON) bindings/python/bench/bench_python.py
	@awk 'BEGIN { print "[" } NR > 1 { print "," } { printf "  %s", $$0 } END { print "\n]" }' \
	    $(BUILD)/bench/results.jsonl > bench/results.json
	@awk -f bench/summary.awk $(BUILD)/bench/results.jsonl
	@echo "results written to bench/results.json"

# The Rust crate, bindings/rust, linked against $(STATIC) and built offline
# against Debian's crates: `make rust` builds it, `make rust-lint` runs
# rustfmt, clippy and rustdoc on it, tests/t0900-rust.sh runs `cargo test`
# in `make check`, and `make bench` runs its benchmark.  Without cargo or
# the crates they say SKIP and why (see bindings/rust/cargo.sh).
RUST_CARGO = BUILD=$(abspath $(BUILD)) CARGO="$(CARGO)" sh bindings/rust/cargo.sh --make
.PHONY: rust rust-lint rust-bench
rust: $(STATIC)
	@$(RUST_CARGO) build
rust-lint: $(STATIC)
	@$(RUST_CARGO) lint
rust-bench: $(STATIC) $(BUILD)/bench/bench_syscalls
	@CACHELOCK_BENCH_SYSCALLS=$(abspath $(BUILD))/bench/bench_syscalls $(RUST_CARGO) bench --bench acquire

# Processes, threads, a pruner and a killer, then renames, _Fork() children,
# a descriptor closer and a thread pool (tests/torture_chaos.c): half of
# TORTURE_SECONDS (default 10) each.
torture: $(BUILD)/tests/torture $(BUILD)/tests/torture_chaos
	$(BUILD)/tests/torture $$(( ($(or $(TORTURE_SECONDS),10) + 1) / 2 ))
	$(BUILD)/tests/torture_chaos $$(( $(or $(TORTURE_SECONDS),10) / 2 ))

# The C tests under valgrind memcheck: any error or definite leak fails.
valgrind: $(TESTS)
	@for t in $(TESTS); do \
	    echo "valgrind $$t"; \
	    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	        $$t >$$t.valgrind 2>&1 || { cat $$t.valgrind; exit 1; }; \
	    ! grep -q '^not ok' $$t.valgrind || { cat $$t.valgrind; exit 1; }; \
	done

# libFuzzer on the parsers (clang and its runtime), FUZZ_SECONDS per run.
FUZZ_SECONDS ?= 30
FUZZ_BUILD := build-fuzz
fuzz:
	$(MAKE) CC=clang BUILD=$(FUZZ_BUILD) SANITIZE=address,undefined CFLAGS=-fsanitize=fuzzer-no-link \
	    $(FUZZ_BUILD)/libcachelock.a
	clang $(CSTD) -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -Isrc -Icli \
	    -o $(FUZZ_BUILD)/fuzz_parsers fuzz/fuzz_parsers.c cli/util.c $(FUZZ_BUILD)/libcachelock.a -pthread
	mkdir -p $(FUZZ_BUILD)/corpus
	cp fuzz/corpus/* $(FUZZ_BUILD)/corpus/
	$(FUZZ_BUILD)/fuzz_parsers -max_total_time=$(FUZZ_SECONDS) -max_len=600 \
	    -print_final_stats=1 $(FUZZ_BUILD)/corpus

$(BUILD)/tests/torture: tests/torture.c $(STATIC) include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(ALLLDFLAGS)

$(BUILD)/tests/torture_chaos: tests/torture_chaos.c $(STATIC) include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(ALLLDFLAGS)

# Mutation testing: each property of README's Semantics table broken on
# purpose (tests/mutants/mutations.txt), one at a time, in scratch copies of
# the tree; some named test must fail.  Reports breaks that survive, stale
# mutations and rows without one.  MUTANTS_JOBS (2), MUTANTS_TIMEOUT (120 s).
mutants:
	CC="$(CC)" bash tests/mutants/run.sh

# `make install PYTHON=python3` also installs the Python package
# (bindings/python) for that interpreter, under PREFIX (see
# bindings/python/sitedir.py), where it finds the library in $(PREFIX)/lib.
# Only when asked on the command line: a PYTHON in the environment is not.
PYTHON =
PYTHON_SITEDIR ?= $(or $(shell $(PYTHON) bindings/python/sitedir.py $(PREFIX)),\
                     $(error PYTHON=$(PYTHON) cannot say where its packages go))
PY_SRC := $(wildcard bindings/python/src/cachelock/*.py) bindings/python/src/cachelock/py.typed

install: all
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(BINDIR) \
	           $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/cachelock.h $(DESTDIR)$(INCLUDEDIR)/
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/
	ln -sf libcachelock.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libcachelock.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    cachelock.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/cachelock.pc
	install -m 755 $(CLI) $(DESTDIR)$(BINDIR)/
	install -m 644 man/cachelock.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 644 man/cachelock.3 $(DESTDIR)$(MANDIR)/man3/
	$(if $(PYTHON),install -d $(DESTDIR)$(PYTHON_SITEDIR)/cachelock)
	$(if $(PYTHON),install -m 644 $(PY_SRC) $(DESTDIR)$(PYTHON_SITEDIR)/cachelock/)

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cachelock.h $(DESTDIR)$(LIBDIR)/libcachelock.* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/cachelock.pc $(DESTDIR)$(BINDIR)/cachelock \
	      $(DESTDIR)$(MANDIR)/man1/cachelock.1 $(DESTDIR)$(MANDIR)/man3/cachelock.3
	$(if $(PYTHON),rm -rf $(DESTDIR)$(PYTHON_SITEDIR)/cachelock)

clean:
	rm -rf build build-*
