# Python: the pyo3 extension built by maturin into $(ROOT)/.venv, its pytest suite (vectors,
# differential against twilio-python, real Flask/Django/FastAPI servers), ruff, mypy --strict, stubtest.
TEST_TARGETS += test-python

VENV := $(ROOT)/.venv
VENV_BIN := $(VENV)/bin
# Pinned so a fresh clone tests against exactly what was tested here.
PYTHON_DEPS := maturin==1.16.0 pytest==8.4.2 twilio==9.13.0 flask==3.1.2 django==5.2.7 \
	fastapi==0.119.0 uvicorn==0.37.0 requests==2.32.5 httpx==0.28.1 mypy==1.18.2 ruff==0.14.0
VENV_STAMP := $(VENV)/.twilio-signature-python-deps

.PHONY: venv python-install test-python bench-python
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
	cd bindings-python && $(VENV_BIN)/mypy --strict examples/flask_app.py python/twilio_signature
	cd bindings-python && $(VENV_BIN)/python -m mypy.stubtest twilio_signature._native
	cd bindings-python && $(VENV_BIN)/python -m pytest -q -p no:cacheprovider tests

bench-python: python-install
	$(VENV_BIN)/python bindings-python/bench/compare.py
