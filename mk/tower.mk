# The tower layer (tower/): its tests through real axum and hyper servers on loopback, and the examples
# run end to end: axum (a free loopback port, a signed webhook → 200, a forged one → 403) and
# media_streams (TwiML naming the stream, a signed WebSocket handshake → 101 and Media Streams messages,
# a forged one → 403), by the ignored test in tower/tests/websocket.rs that starts it. Both examples
# deny warnings, so these builds fail on one. The tests run with the `http2` feature (HTTP/2 WebSocket
# handshakes) and the `redis` feature: tower/tests/redis.rs starts its own redis-server on a free loopback
# port (mk/idempotency.mk's redis-server target installs it) and checks a mixed fleet with the Python
# face's RedisStore (its module loaded from bindings-python's source, with the venv's redis package);
# TWILIOSIG_REQUIRE_REDIS=1 makes a missing redis-server or Python a failure, not a skip.
# clippy --all-targets builds the crate without the features.
TEST_TARGETS += test-tower

.PHONY: test-tower test-tower-example
TOWER_FEATURES := http2,redis

test-tower: test-tower-example redis-server $(IDEMPOTENCY_STAMP)
	TWILIOSIG_REQUIRE_REDIS=1 $(CARGO) test -p twilio-signature-tower --release --features $(TOWER_FEATURES)
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p twilio-signature-tower --no-deps --quiet --features $(TOWER_FEATURES)

test-tower-example:
	$(CARGO) build --release -p twilio-signature-tower --example axum
	$(CARGO) build --release -p twsig
	tower/tests/run_example.sh target/release/examples/axum target/release/twsig
	$(CARGO) build --release -p twilio-signature-tower --example media_streams
	TOWER_MEDIA_EXAMPLE=$(CURDIR)/target/release/examples/media_streams \
	  $(CARGO) test -p twilio-signature-tower --release --features $(TOWER_FEATURES) --test websocket -- --ignored
