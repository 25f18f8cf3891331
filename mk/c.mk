# C ABI: the generated header (and its staleness check), the C test programs (plain, ASan+UBSan,
# Valgrind) and the example. The library is ffi-c/ (crate twilio-signature-ffi).
TEST_TARGETS += test-c

CBINDGEN_VERSION := 0.29.4
CBINDGEN := $(TOOLS)/bin/cbindgen
C_BUILD := $(ROOT)/target/c-tests
C_STATIC_LIB := $(ROOT)/target/release/libtwilio_signature.a
# Go's build cache does not hash libraries named in `#cgo LDFLAGS`, so after the library changes a cgo
# build could link the old one. CGO_CFLAGS is part of the cache key: a define carrying the library's
# hash (computed when the recipe runs) makes Go rebuild exactly when the library changed.
GO_CGO_ENV = CGO_ENABLED=1 CGO_CFLAGS="-O2 -g -DTWS_LIB_SHA256=$$(sha256sum $(C_STATIC_LIB) | cut -c1-16)"
# Rust's std needs these from the system when linked statically (see ffi-c/README.md).
C_NATIVE_LIBS := -lpthread -ldl -lm
C_FLAGS := -std=c11 -Wall -Wextra -Werror -pedantic -g -I$(ROOT)/include
C_SANITIZE := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
C_TESTS := test_api test_vectors
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

c-lib:
	$(CARGO) build --release -p twilio-signature-ffi

# The JSON vectors stay the single source; C reads this line form of them.
c-vectors:
	@mkdir -p $(C_BUILD)
	python3 tests/c/vectors_to_lines.py tests/vectors/twilio-signatures.json $(C_BUILD)/vectors.txt

test-c: check-header test-c-plain test-c-sanitizers test-c-valgrind
	$(CARGO) test -p twilio-signature-ffi --release

test-c-plain: c-lib c-vectors
	for t in $(C_TESTS); do cc $(C_FLAGS) tests/c/$$t.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/$$t; done
	cc $(C_FLAGS) ffi-c/examples/verify.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/verify_example
	$(C_BUILD)/test_api
	$(C_BUILD)/test_vectors $(C_BUILD)/vectors.txt
	$(C_BUILD)/verify_example

test-c-sanitizers: c-lib c-vectors
	for t in $(C_TESTS); do \
	  cc $(C_FLAGS) $(C_SANITIZE) tests/c/$$t.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(C_BUILD)/$$t-asan; done
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 $(C_BUILD)/test_api-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(C_BUILD)/test_vectors-asan $(C_BUILD)/vectors.txt

test-c-valgrind: test-c-plain
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	$(VALGRIND) $(C_BUILD)/test_api
	$(VALGRIND) $(C_BUILD)/test_vectors $(C_BUILD)/vectors.txt

# Installs the library, header and pkg-config file under PREFIX (default /usr/local).
PREFIX ?= /usr/local
C_VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
.PHONY: install-c
install-c: c-lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 target/release/libtwilio_signature.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 target/release/libtwilio_signature.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 include/twilio_signature.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(C_VERSION)|' ffi-c/twilio_signature.pc.in \
	  > $(DESTDIR)$(PREFIX)/lib/pkgconfig/twilio_signature.pc
