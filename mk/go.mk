# Go: the twiliosig module over the C ABI (cgo, linking target/release/libtwilio_signature.a).
TEST_TARGETS += test-go

.PHONY: test-go
test-go: c-lib
	@unformatted=$$(cd bindings-go && gofmt -l .); \
	if [ -n "$$unformatted" ]; then echo "gofmt: $$unformatted"; exit 1; fi
	cd bindings-go && $(GO_CGO_ENV) go vet ./...
	cd bindings-go && $(GO_CGO_ENV) go test -count=1 ./...
	@# The same suite against the shared library.
	cd bindings-go && $(GO_CGO_ENV) LD_LIBRARY_PATH=$(ROOT)/target/release go test -count=1 -tags twiliosig_shared ./...
