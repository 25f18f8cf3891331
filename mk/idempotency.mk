# Retries (issue 16): Twilio retries answered once — the Python twilio_signature.idempotency module and
# the Go Idempotent middleware with their in-memory and Redis stores, tested against a real redis-server
# that the suites start themselves on a free loopback port (no persistence) and stop. Python runs two
# app processes sharing it (and Flask, FastAPI and Django instances built with the helpers'
# idempotency= option); Go two httptest servers (Idempotent, and Options{Idempotency}).
# TWILIOSIG_REQUIRE_REDIS=1 turns the suites' "no Redis here: skip" into a failure, so this target
# never passes without having run them. (test-go collects the same Go files; without Redis the
# redisstore tests skip. test-python leaves the retry tests to this target.)
TEST_TARGETS += test-idempotency

# Pinned, like PYTHON_DEPS (the `redis` extra of the package).
IDEMPOTENCY_PYTHON_DEPS := redis==8.1.0
# mk/python.mk (VENV, VENV_BIN) is read after this file: names used in rules are spelled out here, and
# the venv is an order-only prerequisite.
IDEMPOTENCY_STAMP := $(ROOT)/.venv/.twilio-signature-idempotency-deps
# The retry tests: the driver and stores (neutral apps), then the web helpers' idempotency= option
# (tests/idempotency_helper_apps.py). test-python ignores them (they run here, once).
IDEMPOTENCY_PY_TESTS := tests/test_idempotency_stores.py tests/test_idempotency_apps.py \
	tests/test_idempotency_asgi.py tests/test_idempotency_helpers.py tests/test_idempotency_hardening.py
IDEMPOTENCY_PY := python/twilio_signature/idempotency.py tests/idempotency_support.py \
	tests/idempotency_helper_apps.py $(IDEMPOTENCY_PY_TESTS)

.PHONY: redis-server test-idempotency test-idempotency-python test-idempotency-go
redis-server:
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }

$(IDEMPOTENCY_STAMP): mk/idempotency.mk | venv
	$(VENV_BIN)/pip install -q --disable-pip-version-check $(IDEMPOTENCY_PYTHON_DEPS)
	touch $@

test-idempotency: test-idempotency-python test-idempotency-go

test-idempotency-python: redis-server python-install $(IDEMPOTENCY_STAMP)
	cd bindings-python && $(VENV_BIN)/ruff check $(IDEMPOTENCY_PY) && $(VENV_BIN)/ruff format --check $(IDEMPOTENCY_PY)
	cd bindings-python && $(VENV_BIN)/mypy --strict python/twilio_signature/idempotency.py
	cd bindings-python && TWILIOSIG_REQUIRE_REDIS=1 $(VENV_BIN)/python -m pytest -q -p no:cacheprovider \
	  $(IDEMPOTENCY_PY_TESTS)

# The in-memory store and the middleware live in package twiliosig (test-go runs them too; the build is
# shared through Go's cache); the Redis store is the separate module bindings-go/redisstore.
test-idempotency-go: redis-server c-lib
	@unformatted=$$(cd bindings-go && gofmt -l idempotency.go idempotency_test.go middleware.go middleware_idempotency_test.go \
	  idempotencytest redisstore); \
	if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted"; exit 1; fi
	cd bindings-go && $(GO_CGO_ENV) go test -race -count=1 \
	  -run 'Idempotent|Idempotency|MemoryStore|DeliveryKey|StoredResponse|AFailingStore' .
	cd bindings-go/redisstore && $(GO_CGO_ENV) go vet ./...
	cd bindings-go/redisstore && TWILIOSIG_REQUIRE_REDIS=1 $(GO_CGO_ENV) go test -race -count=1 ./...
