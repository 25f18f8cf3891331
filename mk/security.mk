# Security verification: constant-time evidence and the differential against twilio-node.
#   make test-ct          Valgrind memcheck taint check of the compare and the verify path (in `make test`)
#   make ct               dudect-style timing test, Welch's t (not in `make test`: timing is noisy)
#   make test-node-diff   twilio-node 6.2.0 vs the core on seeded random webhooks (in `make test`)
TEST_TARGETS += test-ct test-node-diff

CT_MANIFEST := tests/ct/Cargo.toml
NODE_DIFF := tests/node-diff
NODE_DIFF_CASES ?= 5000

.PHONY: test-ct ct test-node-diff valgrind-tool
valgrind-tool:
	@if ! command -v valgrind >/dev/null || [ ! -f /usr/include/valgrind/memcheck.h ]; then \
	  echo "installing valgrind (memcheck and its client-request header)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; fi

test-ct: valgrind-tool
	$(CARGO) run --quiet --release --manifest-path $(CT_MANIFEST) --bin memcheck

ct:
	$(CARGO) run --quiet --release --manifest-path $(CT_MANIFEST) --bin timing

test-node-diff:
	cd $(NODE_DIFF) && npm ci --no-audit --no-fund --loglevel=error
	$(CARGO) build --quiet --release --manifest-path $(NODE_DIFF)/Cargo.toml
	node $(NODE_DIFF)/diff.js $(NODE_DIFF_CASES)
