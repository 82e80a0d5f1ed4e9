# mlauth: see README.md.  `make check` installs what is missing, builds and runs every test.
VERSION   := 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec
MANDIR    ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share
DESTDIR   ?=
CC        ?= cc
comma     := ,
B         ?= build$(if $(findstring clang,$(notdir $(CC))),-clang)

PKGS      := libcurl jansson libsecret-1 glib-2.0 gio-2.0 libkeyutils libqrencode
# pkg-config runs when a recipe first needs its answer, not when make reads this file: on a
# fresh machine `make demo` or `make check` has only just installed the -dev packages then.
# (lazy NAME,COMMAND: the command's output, computed once.)
lazy = $(eval $1 := $$(shell $2))$($1)
PKG_CFLAGS = $(call lazy,PKG_CFLAGS,pkg-config --cflags $(PKGS) 2>/dev/null)
# Neither libcurl nor libsecret is linked: http.c opens libcurl on the first request
# (~6 ms to load), store.c opens the Secret Service module mlauth-secret.so (libsecret
# and GIO, ~1.3 ms) when a run uses the keyring.  A token served from the kernel cache
# and a `send` with a cached token need neither.
PKG_LIBS   = $(call lazy,PKG_LIBS,pkg-config --libs glib-2.0 jansson libkeyutils libqrencode 2>/dev/null)
# The helper, like the front, takes GLib, jansson and libkeyutils in statically: GLib and
# PCRE2 dynamic cost every helper start ~40 page faults and their relocations, most of
# what `send` cost beyond curl.  The Secret Service module brings its own (dynamic) GLib
# for libsecret: the two never meet, as the module's interface is plain C
# (store_secret_ops) and both allocate with malloc.  mlauth-jwt.so does the same with
# libjwt's jansson.
HELPER_LIBS = -Wl,-Bstatic $(FRONT_STATIC) -Wl,-Bdynamic \
              $(call lazy,HELPER_PKG_LIBS,pkg-config --libs libqrencode 2>/dev/null)
SECRET_LIBS = $(call lazy,SECRET_LIBS,pkg-config --libs libsecret-1 gio-2.0 glib-2.0 2>/dev/null)
# libjwt and libcrypto (~2 ms to load) only in the signature module mlauth-jwt.so, which
# verify.c opens when a token is validated (login, status --verify).
JWT_CFLAGS = $(call lazy,JWT_CFLAGS,pkg-config --cflags libjwt libcrypto 2>/dev/null)
JWT_LIBS   = $(call lazy,JWT_LIBS,pkg-config --libs libjwt libcrypto 2>/dev/null)
# The front binary serves cached tokens: only what starts in well under a millisecond.
# GLib (for GKeyFile), jansson and libkeyutils are linked in statically: no symbol
# lookups at start-up and only the pages it touches, which make bench measures (start-up
# against `cat`, peak RSS).  The helper links GLib dynamically: the Secret Service
# module brings libsecret, which must share the one GLib of the process.
FRONT_STATIC = $(call lazy,FRONT_PKG_LIBS,pkg-config --static --libs glib-2.0 2>/dev/null) -ljansson -lkeyutils
# ... and libc too: a static PIE has no dynamic loader to map and bind libc at every start
# (~0.5 ms, most of what a cached `mlauth token` cost beyond `true`).  The linker warns
# that getpwuid would need glibc's NSS modules at run time: the front never calls it (with
# neither HOME nor XDG_STATE_HOME set it leaves the lookup to the helper).  Sanitizer and
# valgrind builds (STATIC_FRONT=0) stay dynamic: their runtimes and memcheck's malloc
# replacement need the loader.
STATIC_FRONT ?= $(if $(SAN),0,1)
FRONT_LINK = $(if $(filter 0,$(STATIC_FRONT)),$(ALL_LDFLAGS) -Wl$(comma)-Bstatic $(FRONT_STATIC) -Wl$(comma)-Bdynamic,\
             -static-pie -Wl$(comma)-z$(comma)relro$(comma)-z$(comma)now $(LDFLAGS) $(FRONT_STATIC))

OPT       ?= -O2 -g
WARN      := -std=c11 -Wall -Wextra -Werror -Wformat=2 -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -Wno-unused-parameter
HARDEN    := -D_FORTIFY_SOURCE=2 -fstack-protector-strong -fPIE
SAN       ?=
ALL_CFLAGS  = $(OPT) $(WARN) $(HARDEN) $(SAN) -D_POSIX_C_SOURCE=200809L \
              -DMLAUTH_VERSION='"$(VERSION)"' -Iinclude $(PKG_CFLAGS) $(CFLAGS)
ALL_LDFLAGS = -pie -Wl,-z,relro,-z,now $(SAN) $(LDFLAGS)

LIB_SRC   := $(filter-out src/main.c src/front.c src/cmd_%.c src/store_secret.c src/jwt_sig.c,$(wildcard src/*.c))
CMD_SRC   := src/main.c $(wildcard src/cmd_*.c)
LIB_OBJ   := $(LIB_SRC:src/%.c=$(B)/%.o)
CMD_OBJ   := $(CMD_SRC:src/%.c=$(B)/%.o)
FRONT_OBJ := $(addprefix $(B)/,front.o cli.o config.o err.o util.o secret.o cache.o \
             tokenfmt.o store_file.o record.o session.o)
UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
# A clang build keeps its binaries in its own tree, so it never replaces gcc's.
BIN       ?= $(if $(findstring clang,$(notdir $(CC))),build-clang/mlauth,mlauth)
HELPER    := $(dir $(BIN))mlauth-helper
SECRET_MOD := $(dir $(BIN))mlauth-secret.so
# The module carries its own copy of the little it needs (errors, wiping secrets), so it
# links with -z defs: a missing symbol fails the build, not a run.  (Not under a
# sanitizer: clang leaves the runtime's symbols to the executable.)
SECRET_MOD_OBJ := $(addprefix $(B)/pic/,store_secret.o err.o secret.o)
JWT_MOD   := $(dir $(BIN))mlauth-jwt.so
JWT_MOD_OBJ := $(addprefix $(B)/pic/,jwt_sig.o err.o)

.PHONY: all deps check unit e2e asan demo bench install uninstall clean

all: $(BIN) $(HELPER) $(SECRET_MOD) $(JWT_MOD)

# Two link lines, one library: the front (mlauth) and the helper that has the network
# and the Secret Service (installed as libexec/mlauth/mlauth-helper).
$(BIN): $(FRONT_OBJ)
	$(CC) -o $@ $(FRONT_OBJ) $(FRONT_LINK)

$(HELPER): $(CMD_OBJ) $(B)/libmlauth.a
	$(CC) $(ALL_LDFLAGS) -o $@ $(CMD_OBJ) $(B)/libmlauth.a $(HELPER_LIBS)

$(SECRET_MOD): $(SECRET_MOD_OBJ)
	$(CC) -shared -Wl,-z,relro,-z,now$(if $(SAN),,$(comma)-z$(comma)defs) $(SAN) $(LDFLAGS) \
	    -o $@ $(SECRET_MOD_OBJ) $(SECRET_LIBS)

$(JWT_MOD): $(JWT_MOD_OBJ)
	$(CC) -shared -Wl,-z,relro,-z,now$(if $(SAN),,$(comma)-z$(comma)defs) $(SAN) $(LDFLAGS) \
	    -o $@ $(JWT_MOD_OBJ) $(JWT_LIBS)

$(B)/pic/jwt_sig.o: ALL_CFLAGS += $(JWT_CFLAGS)

$(B)/pic/%.o: src/%.c $(wildcard include/mlauth/*.h) | $(B)/pic
	$(CC) $(ALL_CFLAGS) -fPIC -fvisibility=hidden -c -o $@ $<

$(B)/front.o: ALL_CFLAGS += -DMLAUTH_LIBEXECDIR='"$(LIBEXECDIR)"'
# front.o has LIBEXECDIR compiled in.  $(B)/paths holds the paths of the last build and is
# rewritten only when they change, so `make install PREFIX=/usr` after a plain `make`
# rebuilds the front for /usr, and an unchanged prefix rebuilds nothing (make -q stays 0).
PATHS_STAMP := $(B)/paths
ifneq ($(file <$(PATHS_STAMP)),LIBEXECDIR=$(LIBEXECDIR))
$(shell mkdir -p '$(B)' && printf '%s\n' 'LIBEXECDIR=$(LIBEXECDIR)' >'$(PATHS_STAMP)')
endif
$(B)/front.o: $(PATHS_STAMP)

$(B)/libmlauth.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(B)/%.o: src/%.c $(wildcard include/mlauth/*.h) | $(B)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(B)/tests/%: tests/unit/%.c tests/unit/unit.h $(B)/libmlauth.a | $(B)/tests
	$(CC) $(ALL_CFLAGS) -Itests/unit $(ALL_LDFLAGS) -o $@ $< $(B)/libmlauth.a \
	    $(PKG_LIBS) $(shell pkg-config --libs cmocka 2>/dev/null)

# Runs a command with keyctl forbidden, as some containers do (tests/e2e/cache.test.js).
$(B)/tests/no-keyctl: tests/e2e/no-keyctl.c | $(B)/tests
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $<

$(B) $(B)/tests $(B)/pic:
	@mkdir -p $@

deps:
	@sh scripts/deps.sh

check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

unit: $(UNIT_BIN)
	@sh tests/unit/run.sh $(UNIT_BIN)

e2e: $(BIN) $(HELPER) $(JWT_MOD) $(B)/tests/no-keyctl
	MLAUTH_BIN=$(abspath $(BIN)) NO_KEYCTL=$(abspath $(B)/tests/no-keyctl) \
	    node tests/e2e/run.js --test-concurrency=2 --test-reporter=spec --test-reporter-destination=stdout \
	    --test-reporter=$(abspath tests/e2e/totals.js) --test-reporter-destination=stdout tests/e2e/

# The same tests with AddressSanitizer, UBSan and LeakSanitizer, in a separate build tree.
# intercept_tls_get_addr=0: up to GCC 13 the runtime's __tls_get_addr hook takes a dynamic
# TLS block that happens to start 16 bytes into a page for a pre-2.25 glibc header and reads
# garbage bounds from it; LeakSanitizer's tracer then dies ("Tracer caught signal 11") in a
# process that dlopens a module with TLS (libcrypto in mlauth-jwt.so).  google/sanitizers#1322.
asan: deps
	@$(MAKE) --no-print-directory B=build-asan BIN=build-asan/mlauth OPT='-O1 -g -fno-omit-frame-pointer' \
	    SAN='-fsanitize=address,undefined -fno-sanitize-recover=all' all unit e2e \
	    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:intercept_tls_get_addr=0 \
	    LSAN_OPTIONS=suppressions=$(abspath tests/lsan.supp):print_suppressions=0 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Like check: build in a new make once deps has installed what the build needs.
demo: deps
	@$(MAKE) --no-print-directory all
	@node tests/demo.js

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR)/mlauth $(DESTDIR)$(MANDIR)/man1
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/mlauth
	install -m 0755 $(HELPER) $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-helper
	install -m 0644 $(SECRET_MOD) $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-secret.so
	install -m 0644 $(JWT_MOD) $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-jwt.so
	install -m 0644 man/mlauth.1 $(DESTDIR)$(MANDIR)/man1/mlauth.1
	install -d $(DESTDIR)$(DATADIR)/bash-completion/completions \
	    $(DESTDIR)$(DATADIR)/zsh/site-functions $(DESTDIR)$(DATADIR)/fish/vendor_completions.d
	install -m 0644 completions/mlauth.bash $(DESTDIR)$(DATADIR)/bash-completion/completions/mlauth
	install -m 0644 completions/_mlauth $(DESTDIR)$(DATADIR)/zsh/site-functions/_mlauth
	install -m 0644 completions/mlauth.fish $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/mlauth.fish

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/mlauth $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-helper \
	    $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-secret.so \
	    $(DESTDIR)$(LIBEXECDIR)/mlauth/mlauth-jwt.so \
	    $(DESTDIR)$(MANDIR)/man1/mlauth.1 \
	    $(DESTDIR)$(DATADIR)/bash-completion/completions/mlauth \
	    $(DESTDIR)$(DATADIR)/zsh/site-functions/_mlauth \
	    $(DESTDIR)$(DATADIR)/fish/vendor_completions.d/mlauth.fish

clean:
	rm -rf build build-asan build-clang build-vg mlauth mlauth-helper mlauth-secret.so mlauth-jwt.so

# ---- fuzz (begin): libFuzzer targets of tests/fuzz/, owned by the fuzzing work ----
# `make fuzz FUZZ_SECONDS=N` builds every tests/fuzz/fuzz_NAME.c with clang's libFuzzer,
# ASan and UBSan (needs libclang-rt-14-dev) into build-fuzz/ and runs each for N seconds
# on a copy of tests/fuzz/corpus/NAME/; any crash, leak or timeout fails.  `make -j2
# fuzz` runs two at a time; `make fuzz-run-jwt` runs one; `make fuzz-clean` tidies.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_B       := build-fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS   = -O1 -g -fno-omit-frame-pointer $(WARN) $(FUZZ_SAN) -D_POSIX_C_SOURCE=200809L \
                -DMLAUTH_VERSION='"$(VERSION)"' -Iinclude $(PKG_CFLAGS)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(FUZZ_B)/fuzz_%)
FUZZ_RUNS    := $(FUZZ_NAMES:%=fuzz-run-%)
FUZZ_LIB_OBJ := $(LIB_SRC:src/%.c=$(FUZZ_B)/obj/%.o)

.PHONY: fuzz fuzz-build fuzz-clean $(FUZZ_RUNS)

fuzz: $(FUZZ_RUNS)

fuzz-build: $(FUZZ_BIN)

$(FUZZ_RUNS): fuzz-run-%: $(FUZZ_B)/fuzz_%
	@sh tests/fuzz/run.sh $(FUZZ_B) $* $(FUZZ_SECONDS)

# The library with coverage instrumentation but without libFuzzer's main.
$(FUZZ_B)/obj/%.o: src/%.c $(wildcard include/mlauth/*.h) | $(FUZZ_B)/obj
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_B)/libmlauth.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_B)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_B)/libmlauth.a
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_B)/libmlauth.a $(PKG_LIBS)

# fuzz_sse_limits.c is fuzz_sse.c built for ~1 MiB streams.
$(FUZZ_B)/fuzz_sse_limits: tests/fuzz/fuzz_sse.c

$(FUZZ_B)/obj:
	@mkdir -p $@

fuzz-clean:
	rm -rf $(FUZZ_B)
# ---- fuzz (end) ----

# ---- bench (begin): `make bench`, owned by the performance work ----
# Times the token fast path and its peers (gh, oidc-agent, keyctl, secret-tool, cat),
# interleaved round by round (bench/rounds.c), with peak RSS, system calls (strace) and
# instructions (callgrind) beside each, against the local provider, API and keyring, and
# prints the tables (bench/bench.js); the same goes to bench/out/latest.json.  A benchmark, not a test: not part of
# `make check`, and a missed goal still exits 0 (non-zero only if it could not measure).
bench: deps
	@$(MAKE) --no-print-directory $(BIN) $(HELPER) $(B)/tests/no-keyctl bench/out/herd bench/out/rounds
	MLAUTH_BIN=$(abspath $(BIN)) NO_KEYCTL=$(abspath $(B)/tests/no-keyctl) \
	    BENCH_HERD=$(abspath bench/out/herd) BENCH_ROUNDS=$(abspath bench/out/rounds) node bench/bench.js

# Starts N copies of a command at one instant (the concurrent-refresh figure).
bench/out/herd: bench/herd.c
	@mkdir -p bench/out
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -o $@ bench/herd.c

# Runs commands interleaved round by round, each round in a shuffled order (the timings).
bench/out/rounds: bench/rounds.c
	@mkdir -p bench/out
	$(CC) -O2 -std=c11 -Wall -Wextra -Werror -o $@ bench/rounds.c
# ---- bench (end) ----

# ---- bench-proxy (begin): the proxy's part of `make bench` (bench/proxy.js) ----
# mlauth proxy's added latency to first and last byte beside curl straight to the API
# peer, 100 concurrent streams, memory per open stream; also bench/out/proxy-latest.json.
.PHONY: bench-proxy
bench: bench-proxy

bench-proxy: deps
	@$(MAKE) --no-print-directory $(BIN) $(HELPER)
	MLAUTH_BIN=$(abspath $(BIN)) node bench/proxy.js
# ---- bench-proxy (end) ----

# ---- valgrind (begin): memcheck over the main paths, owned by the security tests ----
# `make valgrind` runs login, token (the front's cached fast path and a refresh), status,
# send, send --stream and logout, with the file store and the Secret Service, under
# valgrind memcheck against the e2e rig: any memory error or definitely lost block fails.
# Library-internal noise only: tests/valgrind.supp.
.PHONY: valgrind

# memcheck cannot follow a static binary's start-up or replace its malloc: the front is
# linked dynamically for it, in a tree of its own.
valgrind: deps
	@$(MAKE) --no-print-directory B=build-vg BIN=build-vg/mlauth STATIC_FRONT=0 all
	@sh tests/valgrind.sh build-vg/mlauth
# ---- valgrind (end) ----
