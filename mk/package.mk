# The crates meant for crates.io (twilio-signature, twilio-signature-tower) package and build from their
# .crate files as `cargo publish` would upload them: licence files, README and metadata included, the
# tower crate built against the packaged core. Needs the crates.io index only; uploads nothing.
# twsig, the C library crate, the Python binding and the benches are `publish = false`.
TEST_TARGETS += test-package

.PHONY: test-package
test-package:
	@# The dry run unpacks the .crate files under $$CARGO_HOME/registry/src/-<hash of its temporary
	@# registry's path>/ and builds them into target/debug; cargo takes a registry crate of the same
	@# version as unchanged, so after an earlier dry run from the same checkout the tower crate would
	@# build against the old core's unpacked source and build. Both are removed first (the workspace's
	@# own twilio-signature crates rebuild in debug, a few seconds).
	rm -rf "$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/-*/twilio-signature-[0-9]* \
	  "$${CARGO_HOME:-$$HOME/.cargo}"/registry/src/-*/twilio-signature-tower-[0-9]* \
	  target/package target/debug/.fingerprint/twilio-signature-*
	$(CARGO) publish --dry-run --allow-dirty -p twilio-signature -p twilio-signature-tower
