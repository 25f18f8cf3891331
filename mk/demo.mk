# `make demo`: builds twsig (and, when their areas exist, the Python package and the C library), then
# runs cli/demo/demo.sh: a real Flask app on 127.0.0.1, a signed webhook (200) and a forged one (403)
# sent with `twsig send`, and the same check from the CLI, C and Go. The script stops the app on exit.
.PHONY: demo
demo: cli
	@if grep -q '^python-install:' mk/python.mk 2>/dev/null; then \
	  echo "make demo: building the Python package (first run installs Flask etc. into .venv)"; \
	  $(MAKE) --no-print-directory python-install; fi
	@if grep -q '^c-lib:' mk/c.mk 2>/dev/null; then $(MAKE) --no-print-directory c-lib; fi
	@ROOT=$(ROOT) bash cli/demo/demo.sh
