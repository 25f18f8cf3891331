# Python: the pyo3 extension built by maturin into $(ROOT)/.venv, its pytest suite (vectors,
# differential against twilio-python, real Flask/Django/FastAPI servers: Werkzeug, wsgiref, gunicorn,
# uvicorn), ruff, mypy --strict, stubtest; and the release wheel (`make wheel`), installed and run in a
# fresh venv with no Rust on PATH (test-python-wheel).
TEST_TARGETS += test-python test-python-wheel

VENV := $(ROOT)/.venv
VENV_BIN := $(VENV)/bin
# Pinned so a fresh clone tests against exactly what was tested here. Werkzeug, Flask, Django,
# FastAPI/Starlette and python-multipart are also the minimums pyproject.toml states for its extras.
# gunicorn serves the WSGI apps in the body-limit tests; redis (the package's `redis` extra) is what
# mypy checks RedisStore against, and the client of the retry tests (mk/idempotency.mk). websockets is
# the client of the WebSocket handshake tests and uvicorn's WebSocket protocol; flask-sock and
# channels are the Flask and Django stream routes they serve (tests/test_websockets.py).
MATURIN_PIN := maturin==1.16.0
PYTHON_DEPS := $(MATURIN_PIN) pytest==8.4.2 twilio==9.13.0 flask==3.1.2 werkzeug==3.1.9 django==5.2.7 \
	fastapi==0.119.0 starlette==0.48.0 python-multipart==0.0.34 uvicorn==0.37.0 gunicorn==27.0.1 \
	requests==2.32.5 httpx==0.28.1 mypy==1.18.2 ruff==0.14.0 redis==8.1.0 websockets==17.4 \
	flask-sock==0.7.0 channels==4.3.2
VENV_STAMP := $(VENV)/.twilio-signature-python-deps

.PHONY: venv python-install test-python bench-python wheel test-python-wheel
venv: $(VENV_STAMP)
$(VENV_STAMP): mk/python.mk
	test -x $(VENV_BIN)/python || python3 -m venv $(VENV)
	$(VENV_BIN)/pip install -q --disable-pip-version-check $(PYTHON_DEPS)
	touch $@

# maturin is the PEP 517 backend; it is already in the venv, so no isolated build env is needed.
python-install: venv
	PATH="$(VENV_BIN):$$PATH" $(VENV_BIN)/pip install -q --disable-pip-version-check \
	  --no-build-isolation --no-deps --force-reinstall $(ROOT)/bindings-python

test-python: python-install
	cd bindings-python && $(VENV_BIN)/ruff check . && $(VENV_BIN)/ruff format --check .
	cd bindings-python && $(VENV_BIN)/mypy --strict examples python/twilio_signature
	cd bindings-python && $(VENV_BIN)/python -m mypy.stubtest twilio_signature._native
	@# The retry tests (tests/test_idempotency_*.py) run in test-idempotency, with the redis-server
	@# they need; they are not run a second time here.
	cd bindings-python && $(VENV_BIN)/python -m pytest -q -p no:cacheprovider tests \
	  $(foreach t,$(IDEMPOTENCY_PY_TESTS),--ignore=$(t))

bench-python: python-install
	$(VENV_BIN)/python bindings-python/bench/compare.py

# The release artefacts in dist/: one abi3 wheel for CPython >= 3.10 tagged manylinux2014 (linked
# against glibc 2.17 by zig, stripped), and the sdist. Both carry LICENSE-MIT and LICENSE-APACHE.
# Built from a venv of their own holding only maturin, ziglang (the zig toolchain that links it: 411
# of the venv's 468 MB) and auditwheel (to confirm the tag), not the 723 MB development venv with its
# frameworks and linters (issue 25 item 8).
DIST := $(ROOT)/dist
WHEEL_BUILD_VENV := $(ROOT)/build/wheel-build-venv
WHEEL_BUILD_DEPS := $(MATURIN_PIN) ziglang==0.17.0 auditwheel==6.8.2
WHEEL_BUILD_STAMP := $(WHEEL_BUILD_VENV)/.twilio-signature-wheel-build-deps
$(WHEEL_BUILD_STAMP): mk/python.mk
	test -x $(WHEEL_BUILD_VENV)/bin/python || python3 -m venv $(WHEEL_BUILD_VENV)
	$(WHEEL_BUILD_VENV)/bin/pip install -q --disable-pip-version-check $(WHEEL_BUILD_DEPS)
	touch $@

wheel: $(WHEEL_BUILD_STAMP)
	rm -f $(DIST)/twilio_signature-*
	cd bindings-python && PATH="$(WHEEL_BUILD_VENV)/bin:$$PATH" maturin build --quiet --release --strip \
	  --zig --compatibility manylinux2014 --out $(DIST)
	cd bindings-python && PATH="$(WHEEL_BUILD_VENV)/bin:$$PATH" maturin sdist --out $(DIST)
	$(WHEEL_BUILD_VENV)/bin/auditwheel show $(DIST)/twilio_signature-*.whl
	@ls -l $(DIST)/twilio_signature-*

# The wheel in a fresh venv whose PATH has no cargo or rustc: pip must take the wheel as it is (no
# index, no build), and the installed package must verify real requests (tests/wheel_check.py).
WHEEL_VENV := $(ROOT)/build/wheel-venv
test-python-wheel: wheel
	rm -rf $(WHEEL_VENV)
	"$$($(WHEEL_BUILD_VENV)/bin/python -c 'import sys; print(sys._base_executable)')" -m venv $(WHEEL_VENV)
	env -i HOME="$$HOME" PATH="$(WHEEL_VENV)/bin:/usr/bin:/bin" $(WHEEL_VENV)/bin/pip install -q \
	  --disable-pip-version-check --no-index --only-binary :all: $(DIST)/twilio_signature-*.whl
	cd $(WHEEL_VENV) && env -i HOME="$$HOME" PATH="$(WHEEL_VENV)/bin:/usr/bin:/bin" \
	  $(WHEEL_VENV)/bin/python $(ROOT)/bindings-python/tests/wheel_check.py $(DIST)
