# The twsig CLI: its unit tests and the integration tests that run the real binary (sign/verify against
# the shared vectors, explain's diagnoses, send against a local server).
TEST_TARGETS += test-cli

.PHONY: cli test-cli
cli:
	$(CARGO) build -p twsig --release

test-cli:
	$(CARGO) test -p twsig --release
