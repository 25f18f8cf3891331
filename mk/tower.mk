# The tower layer (tower/): its tests through real axum and hyper servers on loopback, and the axum
# example run end to end (a free loopback port, a signed webhook → 200, a forged one → 403).
TEST_TARGETS += test-tower

.PHONY: test-tower test-tower-example
test-tower: test-tower-example
	$(CARGO) test -p twilio-signature-tower --release
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p twilio-signature-tower --no-deps --quiet

test-tower-example:
	$(CARGO) build --release -p twilio-signature-tower --example axum
	$(CARGO) build --release -p twsig
	tower/tests/run_example.sh target/release/examples/axum target/release/twsig
