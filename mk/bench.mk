# Benchmarks: `make bench` builds everything in release, then bench/run.py runs the criterion benches and
# the interleaved cross-language rounds and writes BENCHMARKS.md and bench/benchmarks.png.
# `make test` never runs benches (noisy machines); test-bench-build only proves they still build.
TEST_TARGETS += test-bench-build

BENCH_OUT := $(ROOT)/target/bench
BENCH_ROUNDS ?= 15
# The chart's only dependency, installed here rather than in the Python area's test set.
BENCH_MATPLOTLIB := matplotlib==3.10.7
BENCH_C_FLAGS := -std=c11 -O2 -Wall -Wextra -Werror -pedantic -I$(ROOT)/include

.PHONY: bench bench-deps bench-c bench-go bench-node test-bench-build

# twsig proxy against nginx proxy_pass (mk/proxy.mk; writes bench/proxy/results.md).
bench: bench-proxy
bench: python-install bench-deps bench-c bench-go bench-node
	CARGO="$(CARGO)" $(VENV_BIN)/python bench/run.py --rounds $(BENCH_ROUNDS)

bench-deps: venv
	$(VENV_BIN)/python -c 'import matplotlib' 2>/dev/null \
	  || $(VENV_BIN)/pip install -q --disable-pip-version-check $(BENCH_MATPLOTLIB)

bench-c: c-lib
	@mkdir -p $(BENCH_OUT)
	cc $(BENCH_C_FLAGS) bench/c/bench_c.c $(C_STATIC_LIB) $(C_NATIVE_LIBS) -o $(BENCH_OUT)/bench_c
	cc $(BENCH_C_FLAGS) -fPIC -shared bench/c/malloc_count.c -o $(BENCH_OUT)/libmalloc_count.so

bench-go: c-lib
	cd bench/go && $(GO_CGO_ENV) go build -o $(BENCH_OUT)/gobench .

# The pinned twilio-node, exactly as locked.
bench-node: node-addon
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error

test-bench-build: c-lib venv
	$(CARGO) bench -p twilio-signature-bench --no-run
	$(CARGO) test -p twilio-signature-bench --release --lib
	cc $(BENCH_C_FLAGS) -fsyntax-only bench/c/bench_c.c bench/c/malloc_count.c
	cd bench/go && test -z "$$(gofmt -l .)" && $(GO_CGO_ENV) go vet ./...
	$(VENV_BIN)/ruff check bench && $(VENV_BIN)/ruff format --check bench
