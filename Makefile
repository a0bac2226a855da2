# cachelock - plain GNU Makefile.
#
#   make                 library (static + shared with soname), CLI, examples
#   make check           build everything and run the whole suite through prove
#   make demo            the README's demonstration
#   make install         PREFIX=/usr/local DESTDIR= (header, libs, .pc, man, CLI)
#   make bench           benchmarks (never part of check)
#
# Sanitizer builds go to their own directory, e.g.
#   make check BUILD=build-asan SANITIZE=address,undefined

VERSION   := 0.3.0
SOVERSION := 0
PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib
INCLUDEDIR?= $(PREFIX)/include
BINDIR    ?= $(PREFIX)/bin
MANDIR    ?= $(PREFIX)/share/man
DESTDIR   ?=

CC        ?= cc
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
ALLCFLAGS  = $(CSTD) $(OPT) $(WARN) $(SANFLAGS) -pthread -Iinclude $(CFLAGS)
LIBCFLAGS  = $(ALLCFLAGS) -fPIC -fvisibility=hidden
ALLLDFLAGS = $(SANFLAGS) -pthread $(LDFLAGS)

LIB_SRC := src/error.c src/name.c src/registry.c src/pool.c src/watchers.c src/acquire.c src/wait.c \
           src/holders.c src/prune.c src/fair.c \
           src/unix/syscalls.c src/unix/file.c src/unix/fork.c src/unix/notify.c src/unix/proc.c \
           src/unix/queue.c
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
HDRS    := include/cachelock.h src/internal.h src/unix/unix.h

STATIC  := $(BUILD)/libcachelock.a
SHARED  := $(BUILD)/libcachelock.so.$(VERSION)
SONAME  := libcachelock.so.$(SOVERSION)

CLI_SRC := cli/main.c cli/run.c cli/lock.c cli/status.c cli/path.c cli/prune.c cli/util.c cli/fair.c
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
CLI     := $(BUILD)/cachelock

EXAMPLES := $(BUILD)/examples/take_turns $(BUILD)/examples/poll_acquire
TEST_C   := $(wildcard tests/test_*.c)
TESTS    := $(TEST_C:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BUILD)/bench/bench_handoff $(BUILD)/bench/bench_acquire $(BUILD)/bench/bench_contended \
            $(BUILD)/bench/bench_peers $(BUILD)/bench/bench_scale $(BUILD)/bench/bench_status

.PHONY: all check demo install uninstall bench torture valgrind fuzz mutants clean

all: $(STATIC) $(SHARED) $(CLI) $(EXAMPLES)

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(LIBCFLAGS) -c -o $@ $<

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,$(SONAME) $(NOUNDEF) $(ALLLDFLAGS) -o $@ $^
	ln -sf libcachelock.so.$(VERSION) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libcachelock.so

$(BUILD)/cli/%.o: cli/%.c cli/cli.h include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -c -o $@ $<

$(CLI): $(CLI_OBJ) $(STATIC)
	$(CC) $(ALLLDFLAGS) -o $@ $(CLI_OBJ) $(STATIC)

$(BUILD)/examples/%: examples/%.c $(STATIC) include/cachelock.h
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -o $@ $< $(STATIC) $(ALLLDFLAGS)

$(BUILD)/tests/%: tests/%.c tests/tap.h $(STATIC) $(HDRS)
	@mkdir -p $(@D)
	$(CC) $(ALLCFLAGS) -Isrc -o $@ $< $(STATIC) $(ALLLDFLAGS)

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
check: all $(TESTS)
	BUILD=$(abspath $(BUILD)) CC="$(CC)" SANITIZE="$(SANITIZE)" \
	    prove -f --timer --exec 'timeout -k 10 $(TEST_LIMIT)' $(TESTS) tests/t[0-9]*.sh

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
bench: $(BENCHES) $(BUILD)/bench/bench_syscalls $(PEER_PROGS) $(CLI)
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

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cachelock.h $(DESTDIR)$(LIBDIR)/libcachelock.* \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/cachelock.pc $(DESTDIR)$(BINDIR)/cachelock \
	      $(DESTDIR)$(MANDIR)/man1/cachelock.1 $(DESTDIR)$(MANDIR)/man3/cachelock.3

clean:
	rm -rf build build-*
