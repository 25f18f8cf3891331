# Rust: formatting, lints, the core's tests, and the proof that core links without std or alloc.
TEST_TARGETS += test-rust

.PHONY: test-rust lint-rust test-no-std
test-rust: lint-rust test-no-std
	$(CARGO) test -p twilio-signature --release

lint-rust:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p twilio-signature --no-deps --quiet

# A #![no_std] staticlib with no global allocator: linking fails if core pulls in std or alloc.
test-no-std:
	$(CARGO) build --release --manifest-path tests/no_std_link/Cargo.toml
	@lib=tests/no_std_link/target/release/libno_std_link.a; \
	if nm -A "$$lib" 2>/dev/null | grep -E ' U (malloc|__rust_alloc|__rdl_alloc)$$'; then \
	  echo "test-no-std: core references an allocator"; exit 1; fi; \
	echo "test-no-std: core links as #![no_std] without an allocator"
