# Node.js: the napi-rs addon (crate twilio-signature-node) and the npm package twilio-signature
# (bindings-node/). `make npm-pack` writes dist/twilio-signature-<version>.tgz (the stripped
# linux-x64-gnu addon, the licences, the README); test-node runs the suite in the checkout, then installs
# that tarball into a fresh temporary project with no cargo/rustc on PATH and runs the suite there.
TEST_TARGETS += test-node

NODE_PKG := $(ROOT)/bindings-node
NODE_ADDON := $(NODE_PKG)/twilio-signature.linux-x64-gnu.node
NODE_PKG_VERSION := $(shell sed -n 's/^  "version": "\(.*\)",$$/\1/p' bindings-node/package.json)
NODE_TGZ := $(ROOT)/dist/twilio-signature-$(NODE_PKG_VERSION).tgz
NODE_STAGE := $(ROOT)/target/npm-pack/twilio-signature
NODE_DEPS_STAMP := $(NODE_PKG)/node_modules/.twilio-signature-deps
# PATH for the tarball test: node and the system tools, without ~/.cargo/bin or $(TOOLS)/bin.
NODE_NO_RUST_PATH := $(dir $(shell command -v node)):/usr/bin:/bin

.PHONY: node-addon node-deps npm-pack test-node test-node-tarball

# The test and build dependencies (express, fastify, hono, ws, redis, twilio 6.2.0, typescript), exactly
# as locked: devDependencies only; the package itself has no runtime dependency.
node-deps: $(NODE_DEPS_STAMP)
$(NODE_DEPS_STAMP): bindings-node/package-lock.json
	cd bindings-node && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node-addon:
	$(CARGO) build --release -p twilio-signature-node
	cp $(ROOT)/target/release/libtwilio_signature_node.so $(NODE_ADDON)

npm-pack: node-addon
	rm -rf $(NODE_STAGE) && mkdir -p $(NODE_STAGE) $(ROOT)/dist
	cp -r bindings-node/package.json bindings-node/index.js bindings-node/index.mjs bindings-node/index.d.ts \
	  bindings-node/lib bindings-node/README.md LICENSE-MIT LICENSE-APACHE $(NODE_STAGE)/
	strip --strip-unneeded -o $(NODE_STAGE)/twilio-signature.linux-x64-gnu.node $(NODE_ADDON)
	cd $(NODE_STAGE) && npm pack --silent --pack-destination $(ROOT)/dist >/dev/null
	@test -f $(NODE_TGZ) && echo "npm-pack: $(NODE_TGZ) ($$(stat -c %s $(NODE_TGZ)) bytes)"

# python-install: the mixed-fleet test runs a Python instance (bindings-python's RedisStore) beside a Node
# one; TWILIO_SIGNATURE_REQUIRE_FLEET=1 makes its "no venv here: skip" a failure in this target.
test-node: redis-server python-install node-deps node-addon npm-pack
	$(CARGO) fmt -p twilio-signature-node --check
	$(CARGO) clippy --release -p twilio-signature-node --all-targets -- -D warnings
	cd bindings-node && npx --no-install tsc -p test/types --noEmit
	cd bindings-node && TWILIO_SIGNATURE_PYTHON=$(ROOT)/.venv/bin/python TWILIO_SIGNATURE_REQUIRE_FLEET=1 \
	  node --test --test-concurrency=2 --test-timeout=180000 test/*.test.js
	$(MAKE) --no-print-directory test-node-tarball

# The tarball, installed as a user would (npm install ./twilio-signature-x.y.z.tgz) in a fresh project,
# with no Rust on PATH; the suite (from the checkout) runs against that installed copy. Its test-only
# dependencies resolve from bindings-node/node_modules (NODE_PATH), never from the installed package.
test-node-tarball:
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	cd "$$tmp" && printf '{"name":"fresh-app","version":"1.0.0","private":true}\n' > package.json && \
	env PATH="$(NODE_NO_RUST_PATH)" npm install --no-audit --no-fund --loglevel=error $(NODE_TGZ) && \
	! env PATH="$(NODE_NO_RUST_PATH)" sh -c 'command -v cargo || command -v rustc' && \
	test "$$(ls node_modules)" = "twilio-signature" && \
	env PATH="$(NODE_NO_RUST_PATH)" node -e 'const t=require("twilio-signature"); new t.Validator("x"); import("twilio-signature").then((m)=>{ if (m.Validator!==t.Validator) process.exit(1) })' && \
	env PATH="$(NODE_NO_RUST_PATH)" TWILIO_SIGNATURE_PACKAGE="$$tmp/node_modules/twilio-signature" \
	  TWILIO_SIGNATURE_VECTORS=$(ROOT)/tests/vectors NODE_PATH=$(NODE_PKG)/node_modules \
	  node --test --test-concurrency=2 --test-timeout=180000 $(NODE_PKG)/test/*.test.js
