# Fuzzing (fuzz/, its own workspace): cargo-fuzz on stable Rust via RUSTC_BOOTSTRAP=1.
#   make fuzz                every target for FUZZ_SECONDS (default 60) each
#   make test-fuzz-smoke     every target for FUZZ_SMOKE_SECONDS (default 10) each; part of `make test`
TEST_TARGETS += test-fuzz-smoke

FUZZ_SECONDS ?= 60
FUZZ_SMOKE_SECONDS ?= 10
CARGO_FUZZ_VERSION := 0.13.2

.PHONY: fuzz test-fuzz-smoke fuzz-tool fuzz-seeds
fuzz-tool:
	@if ! cargo-fuzz --version 2>/dev/null | grep -q '$(CARGO_FUZZ_VERSION)'; then \
	  $(CARGO) install --root $(TOOLS) --locked cargo-fuzz --version =$(CARGO_FUZZ_VERSION); fi

fuzz: fuzz-tool
	fuzz/run.sh $(FUZZ_SECONDS)

test-fuzz-smoke: fuzz-tool
	fuzz/run.sh $(FUZZ_SMOKE_SECONDS)

# Rebuild the committed seed corpus from tests/vectors/ (deterministic).
fuzz-seeds:
	python3 fuzz/make_seeds.py
