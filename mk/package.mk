# The crates meant for crates.io (twilio-signature, twilio-signature-tower) package and build from their
# .crate files as `cargo publish` would upload them: licence files, README and metadata included, the
# tower crate built against the packaged core. Needs the crates.io index only; uploads nothing.
# twsig, the C library crate, the Python binding and the benches are `publish = false`.
TEST_TARGETS += test-package

.PHONY: test-package
test-package:
	$(CARGO) publish --dry-run --allow-dirty -p twilio-signature -p twilio-signature-tower
