# Go: the twiliosig module over the C ABI (bindings-go/, see its README).
#
# The module links what pkg-config finds by default; the repository's own builds (these tests, the
# bench, the demo) use the `twiliosig_dev` tag and pass include/ and target/release through CGO_CFLAGS
# and CGO_LDFLAGS, so no file of the module names a path outside it. test-go also proves the default
# build as a user gets it: a module outside the repository, a copy of bindings-go/, an installed library.
TEST_TARGETS += test-go

# Go's build cache does not hash libraries named in CGO_LDFLAGS, so after the library changes a cgo
# build could link the old one. CGO_CFLAGS is part of the cache key: a define carrying the library's
# hash (computed when the recipe runs) makes Go rebuild exactly when the library changed. (An installed
# library's .pc carries the same define: see bindings-go/README.md, "After an upgrade".)
GO_DEV_CFLAGS = -O2 -g -I$(ROOT)/include -DTWS_LIB_SHA256=$$(sha256sum $(C_STATIC_LIB) | cut -c1-16)
GO_DEV_ENV = CGO_ENABLED=1 GOFLAGS=-tags=twiliosig_dev CGO_CFLAGS="$(GO_DEV_CFLAGS)" \
  TWS_VECTORS=$(ROOT)/tests/vectors/twilio-signatures.json
# The static dev build (what the bench and the demo use) and the shared one.
GO_CGO_ENV = $(GO_DEV_ENV) CGO_LDFLAGS="$(C_STATIC_LIB) $(C_NATIVE_LIBS)"
GO_CGO_ENV_SHARED = $(GO_DEV_ENV) CGO_LDFLAGS="-L$(ROOT)/target/release -ltwilio_signature" \
  LD_LIBRARY_PATH=$(ROOT)/target/release
GO_BUILD := $(ROOT)/target/go-tests

.PHONY: test-go test-go-dev test-go-no-cgo test-go-installed
test-go: test-go-dev test-go-no-cgo test-go-installed

test-go-dev: c-lib
	@unformatted=$$(cd bindings-go && gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted"; exit 1; fi
	cd bindings-go && $(GO_CGO_ENV) go vet ./...
	cd bindings-go && $(GO_CGO_ENV) go test -race -count=1 ./...
	@# The same suite against the shared library.
	cd bindings-go && $(GO_CGO_ENV_SHARED) go test -count=1 ./...
	@# WebSocket handshakes with coder/websocket and gorilla/websocket (a module of its own, so that
	@# twiliosig needs neither; its go.sum pins them, fetched through the module proxy).
	cd bindings-go/wstest && $(GO_CGO_ENV) go vet ./...
	cd bindings-go/wstest && $(GO_CGO_ENV) go test -race -count=1 ./...

# Without cgo the build must fail with a message that says what is missing (bindings-go/cgo_required.go).
test-go-no-cgo:
	@out=$$(cd bindings-go && CGO_ENABLED=0 GOFLAGS= go build . 2>&1) && { echo "CGO_ENABLED=0 go build succeeded"; exit 1; }; \
	grep -qF 'twiliosig needs cgo (CGO_ENABLED=1 and a C compiler) and the C library libtwilio_signature' <<<"$$out" \
	  || { echo "CGO_ENABLED=0: the error does not explain itself:"; echo "$$out"; exit 1; }; \
	echo "test-go-no-cgo: CGO_ENABLED=0 go build fails and says why"

# The module as a user gets it: installed library, a module outside the repository that requires a
# copy of bindings-go/ through `replace`, default (pkg-config, shared) and twiliosig_static builds.
test-go-installed:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(MAKE) --no-print-directory install-c PREFIX="$$tmp/prefix" >"$$tmp/install.log" 2>&1 \
	  || { cat "$$tmp/install.log"; exit 1; }; \
	bindings-go/testdata/outside/run.sh "$$tmp/prefix" "$$tmp/work"
