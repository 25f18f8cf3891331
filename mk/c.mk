# C ABI: the generated header (and its staleness check), the C test programs (plain, ASan+UBSan,
# Valgrind) and the example. The library is ffi-c/ (crate twilio-signature-ffi).
TEST_TARGETS += test-c

CBINDGEN_VERSION := 0.29.4
CBINDGEN := $(TOOLS)/bin/cbindgen
C_BUILD := $(ROOT)/target/c-tests
C_STATIC_LIB := $(ROOT)/target/release/libtwilio_signature.a
# Rust's std needs these from the system when linked statically (see ffi-c/README.md).
C_NATIVE_LIBS := -lpthread -ldl -lm
C_FLAGS := -std=c11 -Wall -Wextra -Werror -pedantic -g -I$(ROOT)/include
C_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
C_TESTS := test_api test_vectors test_explain
VALGRIND := valgrind -q --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=all

.PHONY: header check-header cbindgen c-lib c-vectors test-c test-c-plain test-c-sanitizers test-c-valgrind

cbindgen:
	@if ! "$(CBINDGEN)" --version 2>/dev/null | grep -qx 'cbindgen $(CBINDGEN_VERSION)'; then \
	  $(CARGO) install --root $(TOOLS) --locked cbindgen --version =$(CBINDGEN_VERSION); fi

# Regenerates the committed header from the ffi-c sources.
header: cbindgen
	$(CBINDGEN) --quiet --config ffi-c/cbindgen.toml --crate twilio-signature-ffi \
	  --output include/twilio_signature.h ffi-c

# Fails when include/twilio_signature.h is not what `make header` would write.
check-header: cbindgen
	@mkdir -p $(C_BUILD)
	$(CBINDGEN) --quiet --config ffi-c/cbindgen.toml --crate twilio-signature-ffi \
	  --output $(C_BUILD)/twilio_signature.h ffi-c
	@diff -u include/twilio_signature.h $(C_BUILD)/twilio_signature.h \
	  || { echo "check-header: include/twilio_signature.h is stale: run 'make header' and commit it"; exit 1; }

# The in-tree build that tests, benches and the demo link. The shared library's SONAME is
# libtwilio_signature.so.$(C_SOMAJOR), so the loader (LD_LIBRARY_PATH=target/release) looks for that name.
c-lib:
	$(CARGO) build --release -p twilio-signature-ffi
	ln -sfn libtwilio_signature.so $(ROOT)/target/release/libtwilio_signature.so.$(C_SOMAJOR)

# The JSON vectors stay the single source; C reads this line form of them.
c-vectors:
	@mkdir -p $(C_BUILD)
	python3 tests/c/vectors_to_lines.py tests/vectors/twilio-signatures.json $(C_BUILD)/vectors.txt

test-c: check-header test-c-plain test-c-sanitizers test-c-valgrind test-c-install
	$(CARGO) test -p twilio-signature-ffi --release

test-c-plain: c-lib c-vectors
	for t in $(C_TESTS); do cc $(C_FLAGS) tests/c/$$t.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/$$t; done
	cc $(C_FLAGS) ffi-c/examples/verify.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/verify_example
	$(C_BUILD)/test_api
	$(C_BUILD)/test_vectors $(C_BUILD)/vectors.txt
	$(C_BUILD)/test_explain
	$(C_BUILD)/verify_example

test-c-sanitizers: c-lib c-vectors
	for t in $(C_TESTS); do \
	  cc $(C_FLAGS) $(C_SANITIZE) tests/c/$$t.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/$$t-asan; done
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(C_BUILD)/test_api-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(C_BUILD)/test_vectors-asan $(C_BUILD)/vectors.txt
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(C_BUILD)/test_explain-asan

test-c-valgrind: test-c-plain
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	$(VALGRIND) $(C_BUILD)/test_api
	$(VALGRIND) $(C_BUILD)/test_vectors $(C_BUILD)/vectors.txt

# Installs the library the way a distribution would, under PREFIX (default /usr/local; DESTDIR for
# staging): lib/libtwilio_signature.a (debug info stripped), lib/libtwilio_signature.so.$(C_VERSION)
# (stripped, SONAME libtwilio_signature.so.$(C_SOMAJOR), set by ffi-c/build.rs) with the .so.$(C_SOMAJOR)
# and unversioned dev symlinks, include/twilio_signature.h, and lib/pkgconfig/twilio_signature.pc and
# twilio_signature-static.pc (see ffi-c/README.md).
PREFIX ?= /usr/local
C_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
C_SOMAJOR := $(firstword $(subst ., ,$(C_VERSION)))
C_DIST := $(ROOT)/target/dist
C_LIBDIR = $(DESTDIR)$(PREFIX)/lib
.PHONY: c-dist install-c test-c-install
# The C snippets of README.md and ffi-c/README.md compiled as written (-Wall -Wextra -Werror -pedantic),
# then ffi-c/README.md's install, compile and run commands, run as written (PREFIX a temporary directory).
test-c-install:
	tests/c/readme_commands.sh
# The `dist` profile (Cargo.toml): LTO into one codegen unit, no debug info. One crate type per build,
# because with `rlib` among the crate types cargo does not LTO the static library (23 MB against 7.6 MB).
c-dist:
	$(CARGO) rustc --profile dist -p twilio-signature-ffi --crate-type staticlib
	$(CARGO) rustc --profile dist -p twilio-signature-ffi --crate-type cdylib

install-c: c-dist
	install -d $(C_LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(C_DIST)/libtwilio_signature.a $(C_LIBDIR)/
	strip --strip-debug $(C_LIBDIR)/libtwilio_signature.a
	install -m 755 -s $(C_DIST)/libtwilio_signature.so $(C_LIBDIR)/libtwilio_signature.so.$(C_VERSION)
	ln -sfn libtwilio_signature.so.$(C_VERSION) $(C_LIBDIR)/libtwilio_signature.so.$(C_SOMAJOR)
	ln -sfn libtwilio_signature.so.$(C_SOMAJOR) $(C_LIBDIR)/libtwilio_signature.so
	install -m 644 include/twilio_signature.h $(DESTDIR)$(PREFIX)/include/
	lib_sha=$$(sha256sum $(C_LIBDIR)/libtwilio_signature.a | cut -c1-16); \
	for pc in twilio_signature twilio_signature-static; do \
	  sed -e 's|^prefix=@PREFIX@$$|prefix=$(PREFIX)|' -e 's|@VERSION@|$(C_VERSION)|g' \
	    -e "s|@LIB_SHA256@|$$lib_sha|" ffi-c/$$pc.pc.in > $(C_LIBDIR)/pkgconfig/$$pc.pc; done
