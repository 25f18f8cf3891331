# `twsig proxy` (cli/src/proxy/): the verifying reverse proxy, run as the real binary in front of a Python
# http.server app and a Node node:http app (cli/tests/proxy/), behind nginx as the TLS-terminating load
# balancer, with WebSocket handshakes tunnelled, and two instances sharing retries through a real
# redis-server; all on loopback. test-cli runs these test files too (they are the twsig crate's), where
# the nginx and Redis tests are skipped with a note if nginx or redis-server is missing; here both are
# installed first and required.
TEST_TARGETS += test-proxy

PROXY_TESTS := --test proxy --test proxy_nginx --test proxy_websocket --test proxy_redis

# redis-server (mk/idempotency.mk's target) for two proxy instances sharing answered retries.
.PHONY: test-proxy proxy-nginx
test-proxy: proxy-nginx redis-server
	TWSIG_PROXY_REQUIRE_NGINX=1 TWSIG_PROXY_REQUIRE_REDIS=1 $(CARGO) test -p twsig --release $(PROXY_TESTS)

# Debian's nginx, for the TLS-terminating load balancer in front of the proxy (started by the test on a
# free loopback port with its own prefix; the package's own service is not used).
proxy-nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }

# `make bench` (mk/bench.mk depends on this): requests/s of the signed SMS webhook through twsig proxy
# against nginx proxy_pass alone, both in front of the same nginx `return 200`, load from Debian's wrk.
# Writes bench/proxy/results.md.
.PHONY: bench-proxy proxy-bench-tools
PROXY_BENCH_SECONDS ?= 5
PROXY_BENCH_ROUNDS ?= 3

bench-proxy: proxy-bench-tools
	$(CARGO) build -p twsig --release
	python3 bench/proxy/run.py --twsig $(ROOT)/target/release/twsig \
	  --seconds $(PROXY_BENCH_SECONDS) --rounds $(PROXY_BENCH_ROUNDS)

proxy-bench-tools: proxy-nginx
	@command -v wrk >/dev/null 2>&1 \
	  || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
